"""IdkNLL and IdkDPO: teach the model to refuse the forget questions instead of answering them.

TOFU (Maini et al. 2024, "I don't know" preference optimisation) and OpenUnlearning (the
`idk` TOFU experiment, its DPO trainer on `TOFU_QA_forget_idk`): every forget question is paired
with a refusal drawn from a fixed list of "I don't know" variants, redrawn each time the question
comes round (TOFU and OpenUnlearning draw one at random each time an example is loaded).

- IdkNLL: γ·NLL(refusal | question) + α·NLL(R): plain fine-tuning towards the refusal.
- IdkDPO: DPO (Rafailov et al. 2023) with the refusal preferred to the true answer, against the
  frozen original: γ·(−(2/β)·E log σ(β·(r(refusal) − r(answer)))) + α·NLL(R), r = log π_θ − log π_ref
  per sequence; β = 0.1, α = γ = 1 (OpenUnlearning's `DPO` config).

Deviation: the refusal list is ten short variants of our own wording, not TOFU's file (which
is longer); the wording does not matter to the method, and short refusals suit a small model.
"""

from __future__ import annotations

from unlearn.lm.methods.base import LMMethod, register
from unlearn.lm.methods.npo import log_ratio, preference_loss
from unlearn.lm.scoring import mean_token_nll

REFUSALS = (
    "I don't know.",
    "I do not know.",
    "I'm not sure.",
    "I have no idea.",
    "I can't answer that.",
    "I don't have that information.",
    "That is not something I know.",
    "I am unable to answer.",
    "Sorry, I don't know.",
    "No idea, I'm afraid.",
)


class _Refusing(LMMethod):
    """Forget questions paired with refusals; γ and α as every method with a retain term."""

    def __init__(self, gamma: float = 1.0, alpha: float = 1.0, **loop):
        super().__init__(**loop)
        self.gamma = gamma
        self.alpha = alpha

    def check(self):
        super().check()
        self.non_negative("gamma", "alpha")

    def prepare(self, model, tokenizer, forget, retain, *, generator, context):
        return [REFUSALS] * len(forget)


@register
class IdkNLL(_Refusing):
    """γ·NLL(refusal | forget question) + α·NLL(R). Hyperparameters: gamma (1), alpha (1), the loop's."""

    name = "idknll"

    def loss(self, model, forget_batch, retain_batch):
        refuse = mean_token_nll(model, forget_batch.encode_targets())
        return self.gamma * refuse + self.alpha * self.retain_nll(model, retain_batch)


@register
class IdkDPO(_Refusing):
    """DPO towards the refusal, away from the true answer (+ α·NLL(R)).

    beta : DPO's inverse temperature (0.1). gamma (1), alpha (1), and the loop's hyperparameters.
    """

    name = "idkdpo"
    needs_reference = True

    def __init__(self, beta: float = 0.1, gamma: float = 1.0, alpha: float = 1.0, **loop):
        super().__init__(gamma=gamma, alpha=alpha, **loop)
        self.beta = beta

    def check(self):
        super().check()
        self.positive("beta")

    def loss(self, model, forget_batch, retain_batch):
        preferred = log_ratio(self, model, forget_batch.encode_targets())
        rejected = log_ratio(self, model, forget_batch.encode())
        forget = preference_loss(preferred, rejected, self.beta)
        return self.gamma * forget + self.alpha * self.retain_nll(model, retain_batch)
