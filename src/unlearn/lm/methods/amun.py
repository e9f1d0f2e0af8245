"""AMUN for language models: train on the forget questions with their nearest wrong answers.

AMUN (Ebrahimpour-Boroojeny, Sundaram, Chandrasekaran, ICML 2025; `unlearn.methods.amun` for
classifiers) fine-tunes on D_F together with D_A, the closest adversarial example of every
forget sample labelled with the model's own wrong prediction: a retrained model is merely less
confident on D_F, and the nearest wrong label lowers the confidence around each forget sample
without the collapse that arbitrary wrong labels or gradient ascent cause.

What carries over to a question/answer fact: the input perturbation does not (a question has no
small continuous neighbourhood to search), the label does. The "nearest wrong answer" of a forget
question is the wrong alternative the original model already finds most likely, the wrong value
of the same relation closest to the true one in the model's eyes:

    â(q) = argmax over a in LMExample.alternatives of  log p_θo(a | q) / |a|

(per-token, TOFU's length-normalised answer probability, so that short alternatives are not
favoured). The loss is AMUN's cross-entropy on the union D_R ∪ D_F ∪ D_A: the mean token NLL of
the forget questions with their true answers (`with_forget`, as AMUN keeps D_F), of the same
questions with â(q), and of the retain batch when a retain set is given. The model ends up
torn between the true answer and its closest rival, as a model that never saw the fact would be.
D_A is computed once, on the model being unlearned (AMUN's "adaptive" choice for one request).
A forget example without alternatives is refused.
"""

from __future__ import annotations

from unlearn.errors import UnlearnInputError
from unlearn.lm.methods.base import LMMethod, register
from unlearn.lm.methods.batch import LMBatch
from unlearn.lm.scoring import completion_logprob, mean_token_nll


def nearest_wrong_answers(model, tokenizer, examples) -> list[str]:
    """The most likely alternative (per-token log-probability) of every example under `model`."""
    missing = [e.id or e.prompt[:40] for e in examples if not e.alternatives]
    if missing:
        raise UnlearnInputError(f"amun needs wrong alternatives for every forget example; none for {missing[:3]}")
    prompts = [e.prompt for e in examples for _ in e.alternatives]
    wrong = [a for e in examples for a in e.alternatives]
    logp, count = completion_logprob(model, tokenizer, prompts, wrong)
    per_token = (logp / count.clamp(min=1)).tolist()
    chosen, start = [], 0
    for example in examples:
        scores = per_token[start:start + len(example.alternatives)]
        chosen.append(example.alternatives[max(range(len(scores)), key=scores.__getitem__)])
        start += len(example.alternatives)
    return chosen


@register
class AMUN(LMMethod):
    """Fine-tuning on D_F ∪ D_A (∪ D_R), D_A the nearest wrong answers under the original.

    with_forget : keep the true answers of the forget questions in the mix (AMUN: yes).
    Other hyperparameters: the loop's (`LMMethod`). After `unlearn`, `wrong_answers_` holds â(q)
    for each forget example, in order.
    """

    name = "amun"

    def __init__(self, with_forget: bool = True, **loop):
        super().__init__(**loop)
        self.with_forget = with_forget

    def check(self):
        super().check()
        if not isinstance(self.with_forget, bool):
            self._refuse("with_forget", "true or false")

    def prepare(self, model, tokenizer, forget, retain, *, generator, context):
        self.wrong_answers_ = nearest_wrong_answers(model, tokenizer, forget)
        return [(answer,) for answer in self.wrong_answers_]

    def loss(self, model, forget_batch, retain_batch):
        examples, completions = list(forget_batch.examples), list(forget_batch.targets)
        if self.with_forget:
            examples += forget_batch.examples
            completions += [e.completion for e in forget_batch.examples]
        if retain_batch is not None:
            examples += retain_batch.examples
            completions += [e.completion for e in retain_batch.examples]
        return mean_token_nll(model, LMBatch(forget_batch.tokenizer, examples).encode(completions))
