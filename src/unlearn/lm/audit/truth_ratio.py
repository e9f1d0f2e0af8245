"""TOFU's truth ratio and forget quality (Maini, Feng, Schwarzschild, Lipton, Kolter, 2024).

For a question q with a correct answer ã (TOFU: the answer *paraphrased*) and wrong answers
â_1..â_k of the same kind (TOFU's "perturbed" answers), with P_n(a) = P(a|q)^{1/|a|}:

    R(q) = geomean_i P_n(â_i) / P_n(ã)

R ≈ 1: the model cannot tell the truth from the wrong answers (a model that never learned the
fact); R → 0: it prefers the truth. The paper writes the arithmetic mean of the P_n(â_i); TOFU's
and OpenUnlearning's code average the per-token losses, i.e. take the geometric mean, which we
follow (the two agree when the wrong answers are equally likely).

Summaries, as in TOFU's `aggregate_eval_stat.py` and OpenUnlearning's aggregators:
- on the forget set, mean min(R, 1/R) (1 = indifferent, "closer to 1 is better");
- on retained knowledge, mean max(0, 1 − R) (1 = always prefers the truth), a part of model utility.

**Forget quality**: the p-value of the two-sample Kolmogorov-Smirnov test between the unlearned
model's and the retrained model's R on the forget set (scipy.stats.ks_2samp, two-sided, exact
for small samples); high = indistinguishable from Retrain. The test is invariant under a monotone
change of R, so it does not matter whether R or 1/R (TOFU's code) is tested.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import ks_2samp

from unlearn.errors import UnlearnInputError
from unlearn.lm.examples import QA_PROMPT
from unlearn.lm.scoring import completion_logprob


def _candidates(item) -> tuple[str, str, Sequence[str]]:
    """(prompt, correct answer, wrong answers): a corpus QAItem gives its question, *paraphrased*
    answer and the perturbed answers worded the same way (TOFU's perturbed answers are
    perturbations of its paraphrased answer; the bare perturbed values when the item has no
    such wording); an LMExample its prompt, completion and alternatives."""
    if hasattr(item, "paraphrased_answer"):
        wrong = getattr(item, "paraphrased_perturbed", ()) or item.perturbed
        return QA_PROMPT.format(question=item.question), item.paraphrased_answer, wrong
    return item.prompt, item.completion, item.alternatives


def truth_ratio(model, tokenizer, items: Sequence, batch_size: int = 64) -> np.ndarray:
    """R per item (see the module docstring); items are corpus QAItems or LMExamples with alternatives."""
    if len(items) == 0:
        raise UnlearnInputError("no questions for the truth ratio")
    prompts, answers, owner, is_correct = [], [], [], []
    for index, item in enumerate(items):
        prompt, correct, wrong = _candidates(item)
        if not wrong:
            raise UnlearnInputError(f"the truth ratio needs wrong answers; item {index} has none")
        for answer, truth in ((correct, True), *((w, False) for w in wrong)):
            prompts.append(prompt)
            answers.append(answer)
            owner.append(index)
            is_correct.append(truth)
    logprob, count = completion_logprob(model, tokenizer, prompts, answers, batch_size=batch_size)
    normalised = (logprob / count).numpy().astype(np.float64)  # log P_n of every candidate
    owner, is_correct = np.asarray(owner), np.asarray(is_correct)
    wrong_sum = np.bincount(owner[~is_correct], weights=normalised[~is_correct], minlength=len(items))
    wrong_count = np.bincount(owner[~is_correct], minlength=len(items))
    correct = np.empty(len(items))
    correct[owner[is_correct]] = normalised[is_correct]
    return np.exp(wrong_sum / wrong_count - correct)


def forget_score(ratios) -> float:
    """mean min(R, 1/R): 1 when the model is indifferent between truth and wrong answers."""
    ratios = np.asarray(ratios, dtype=np.float64)
    return float(np.mean(np.minimum(ratios, 1.0 / ratios)))


def retain_score(ratios) -> float:
    """mean max(0, 1 − R): 1 when the model always prefers the truth, 0 when it never does."""
    return float(np.mean(np.maximum(0.0, 1.0 - np.asarray(ratios, dtype=np.float64))))


def forget_quality(tr_model, tr_retrain) -> float:
    """Two-sample KS p-value between the model's and the retrained model's truth ratios on D_F."""
    tr_model, tr_retrain = np.asarray(tr_model, np.float64), np.asarray(tr_retrain, np.float64)
    if tr_model.size == 0 or tr_retrain.size == 0:
        raise UnlearnInputError("forget quality needs truth ratios of both models on the forget set")
    return float(ks_2samp(tr_model, tr_retrain).pvalue)
