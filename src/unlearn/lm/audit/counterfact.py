"""CounterFact's measures of a fact edit (Meng et al. 2022, ROME, Sec. 3 and Table 1 there).

For an edit of a fact (s, r, o) to the counterfactual o*:
- **efficacy**: after the rewrite prompt, P(o*) > P(o) (the whole answer's likelihood);
- **paraphrase generalisation**: the same on the fact's other question templates (for our
  corpus: the two other trained templates and the held-out one, never trained on);
- **neighbourhood specificity**: on questions of the same relation about other entities
  (CounterFact: subjects sharing the original object o; here those first, then other entities of
  the same kind, `neighbours` in all), P(their true answer) > P(o*): the edit leaves them alone.
  The unedited model's specificity on the same questions is the level to keep;
- **says new**: the greedy answer to the rewrite prompt is o* (exact match), the plain
  question-answering view of efficacy.

Each edit is applied to a fresh copy of the model (CounterFact's protocol: edits are
independent); the scores are percentages over the edits (paraphrase and specificity: over all
their prompts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from unlearn.lm.audit.answers import answer_set
from unlearn.lm.examples import LMExample
from unlearn.lm.scoring import completion_logprob

NEIGHBOURS = 10


def _prefers(model, tokenizer, prompts: Sequence[str], better: Sequence[str], worse: Sequence[str]) -> np.ndarray:
    """Whether P(better | prompt) > P(worse | prompt), summed token log-likelihoods, per prompt."""
    good = completion_logprob(model, tokenizer, list(prompts), list(better))[0]
    bad = completion_logprob(model, tokenizer, list(prompts), list(worse))[0]
    return (good > bad).numpy()


def neighbour_questions(corpus, request, n: int = NEIGHBOURS) -> list:
    """Template-0 questions of `request`'s relation about up to `n` other trainable entities: those
    whose value is the edited fact's old one first, then others (in corpus order)."""
    others = [q for q in corpus.questions(corpus.trainable) if q.relation == request.relation
              and q.template == 0 and q.entity != request.entity and q.answer != request.new]
    same = [q for q in others if q.answer == request.old]
    return (same + [q for q in others if q.answer != request.old])[:n]


def counterfact_scores(model, tokenizer, corpus, requests: Sequence, edit: Callable, n_neighbours: int = NEIGHBOURS) -> dict:
    """Efficacy, paraphrase, specificity and says-new (percent) of `edit(model, tokenizer, request)`
    over `requests`, with the unedited model's specificity on the same neighbours and the seconds per edit."""
    hits = {"efficacy": [], "paraphrase": [], "specificity": [], "original_specificity": [], "says_new": []}
    seconds = []
    for request in requests:
        started = time.perf_counter()
        edited = edit(model, tokenizer, request)
        seconds.append(time.perf_counter() - started)
        hits["efficacy"].extend(_prefers(edited, tokenizer, [request.prompt], [request.new], [request.old]))
        hits["paraphrase"].extend(_prefers(edited, tokenizer, request.paraphrases, [request.new] * len(request.paraphrases),
                                           [request.old] * len(request.paraphrases)))
        near = neighbour_questions(corpus, request, n_neighbours)
        prompts, truths = [q.example().prompt for q in near], [q.answer for q in near]
        for name, m in (("specificity", edited), ("original_specificity", model)):
            hits[name].extend(_prefers(m, tokenizer, prompts, truths, [request.new] * len(near)))
        hits["says_new"].extend(answer_set(edited, tokenizer, [LMExample(request.prompt, request.new)]).correct)
    out = {name: 100.0 * float(np.mean(values)) for name, values in hits.items()}
    out.update(edits=len(requests), seconds_per_edit=float(np.mean(seconds)))
    return out
