"""Signals and score summaries shared by every membership-inference audit.

Signals are computed from logits in one batched pass: the true-class probability (RMIA's p(x|θ)),
the RMIA authors' soft-margin Taylor-softmax, and LiRA's logit-scaled confidence
φ = log(p_y / (1 − p_y)). Summaries (ROC AUC, TPR at a fixed FPR) come from scikit-learn, so every
attack reports the same, standard numbers; members (D_F) are the positive class.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from unlearn.audit.stats import auc_standard_error, normal_quantile
from unlearn.errors import UnlearnInputError


def true_class_probability(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """p(y | x, θ): softmax of `logits / temperature` at the true label."""
    if temperature <= 0:
        raise UnlearnInputError(f"signal temperature must be positive, got {temperature}")
    return (logits.double() / temperature).softmax(1).gather(1, labels.view(-1, 1)).squeeze(1)


def taylor_exp(z: torch.Tensor, terms: int) -> torch.Tensor:
    """Σ_{k<terms} z^k / k!: the truncated exponential of the Taylor-softmax."""
    return torch.stack([z**k / math.factorial(k) for k in range(terms)]).sum(0)


def soft_margin_taylor_probability(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 2.0,
                                   margin: float = 0.6, terms: int = 4) -> torch.Tensor:
    """The RMIA authors' "taylor-soft-margin" signal (Zarifzadeh et al., ICML 2024, App. B.2; their code's
    `sm_taylor_softmax`): with z = logits / temperature and t(u) = Σ_{k<terms} u^k / k!,

        p = t(z_y − margin) / (t(z_y − margin) + Σ_{j≠y} t(z_j)).

    Their CIFAR-10 setting is temperature 2, margin 0.6 and 4 terms (a cubic). A cubic is negative
    below u ≈ −1.6, so for very confident models p can be negative or above 1; the authors' code
    (research/2024_rmia, `convert_signals`) keeps it as it is, and so do we: RMIA only compares
    ratios of this signal, and `rmia.rmia_scores` tests them with their signs.
    """
    if temperature <= 0:
        raise UnlearnInputError(f"signal temperature must be positive, got {temperature}")
    if terms < 2:
        raise UnlearnInputError(f"the Taylor-softmax needs at least 2 terms, got {terms}")
    z = logits.double() / temperature
    true = z.gather(1, labels.view(-1, 1))
    others = taylor_exp(z, terms).scatter(1, labels.view(-1, 1), 0.0).sum(1)
    numerator = taylor_exp(true - margin, terms).squeeze(1)
    return numerator / (numerator + others)


def logit_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """LiRA's φ = log(p_y / (1 − p_y)) = z_y − logsumexp_{j≠y} z_j, exact even when p_y rounds to 1."""
    z = logits.double()
    true = z.gather(1, labels.view(-1, 1)).squeeze(1)
    others = z.scatter(1, labels.view(-1, 1), float("-inf")).logsumexp(1)
    return true - others


# TPR at a false-positive rate f is read at the threshold that lets n·f non-members through. With
# fewer than this many, the low-FPR figure rests on a handful of test points (at 0.1% FPR on the
# 500-point evaluation half of mnist1d, on half of one), so it is reported as None ("n/a").
MIN_FALSE_POSITIVES = 5


def roc_summary(member_scores, nonmember_scores) -> dict[str, float | None]:
    """ROC AUC with its DeLong 95% interval, and TPR at 1% and 0.1% FPR, in percent.

    Higher score = "member" (D_F is positive). A TPR whose FPR would let fewer than
    `MIN_FALSE_POSITIVES` non-members through is None: D_T is too small to measure it.
    """
    member_scores = np.asarray(member_scores, dtype=np.float64).ravel()
    nonmember_scores = np.asarray(nonmember_scores, dtype=np.float64).ravel()
    if member_scores.size == 0 or nonmember_scores.size == 0:
        raise UnlearnInputError("an MIA needs at least one member and one non-member score")
    if not (np.isfinite(member_scores).all() and np.isfinite(nonmember_scores).all()):
        raise UnlearnInputError("MIA scores contain NaN or infinite values")
    truth = np.r_[np.ones(member_scores.size), np.zeros(nonmember_scores.size)]
    scores = np.r_[member_scores, nonmember_scores]
    fpr, tpr, _ = roc_curve(truth, scores)
    auc = float(roc_auc_score(truth, scores))
    half = normal_quantile() * auc_standard_error(member_scores, nonmember_scores)
    out: dict[str, float | None] = {"auc": 100.0 * auc, "auc_low": None, "auc_high": None}
    if math.isfinite(half):  # DeLong needs two scores on each side
        out.update(auc_low=100.0 * max(auc - half, 0.0), auc_high=100.0 * min(auc + half, 1.0))
    for key, rate in (("tpr_at_1pct_fpr", 0.01), ("tpr_at_0.1pct_fpr", 0.001)):
        enough = nonmember_scores.size * rate >= MIN_FALSE_POSITIVES
        out[key] = 100.0 * tpr_at_fpr(fpr, tpr, rate) if enough else None
    return out


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """The highest TPR among ROC points whose FPR does not exceed `target` (LiRA's low-FPR metric)."""
    ok = fpr <= target
    return float(tpr[ok].max()) if ok.any() else 0.0


ROC_GRID = np.logspace(-3, 0, 61)  # FPRs at which stored ROC curves are sampled, so runs can be averaged


def roc_on_grid(member_scores, nonmember_scores, grid: np.ndarray = ROC_GRID) -> dict[str, list]:
    """The ROC curve (D_F positive) sampled at the FPRs of `grid`, as JSON-able lists."""
    truth = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    fpr, tpr, _ = roc_curve(truth, np.r_[member_scores, nonmember_scores])
    return {"fpr": grid.tolist(), "tpr": np.interp(grid, fpr, tpr).tolist()}
