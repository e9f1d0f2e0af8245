"""Signals and score summaries shared by every membership-inference audit.

Signals are computed from logits in one batched pass: the true-class probability (RMIA's p(x|θ)),
its Taylor-softmax variant (AMUN's RMIA setting), and LiRA's logit-scaled confidence
φ = log(p_y / (1 − p_y)). Summaries (ROC AUC, TPR at a fixed FPR) come from scikit-learn, so every
attack reports the same, standard numbers; members (D_F) are the positive class.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from unlearn.errors import UnlearnInputError


def true_class_probability(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0,
                           taylor_order: int | None = None) -> torch.Tensor:
    """p(y | x, θ): softmax of `logits / temperature` at the true label.

    With `taylor_order` (an even n), exp is replaced by its n-th order Taylor polynomial
    Σ_{k≤n} z^k / k! before normalising: the "Taylor-softmax" that AMUN's RMIA audit uses with
    temperature 2 (Zarifzadeh et al., ICML 2024, App. on signals). An even order keeps every term
    positive; the order is our choice, the papers do not state it.
    """
    if temperature <= 0:
        raise UnlearnInputError(f"signal temperature must be positive, got {temperature}")
    z = logits.double() / temperature
    if taylor_order is None:
        probs = z.softmax(1)
    else:
        if taylor_order < 2 or taylor_order % 2:
            raise UnlearnInputError(f"Taylor-softmax order must be an even number >= 2, got {taylor_order}")
        terms = torch.stack([z**k / math.factorial(k) for k in range(taylor_order + 1)]).sum(0)
        probs = terms / terms.sum(1, keepdim=True)
    return probs.gather(1, labels.view(-1, 1)).squeeze(1)


def logit_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """LiRA's φ = log(p_y / (1 − p_y)) = z_y − logsumexp_{j≠y} z_j, exact even when p_y rounds to 1."""
    z = logits.double()
    true = z.gather(1, labels.view(-1, 1)).squeeze(1)
    others = z.scatter(1, labels.view(-1, 1), float("-inf")).logsumexp(1)
    return true - others


def roc_summary(member_scores, nonmember_scores) -> dict[str, float]:
    """ROC AUC and TPR at 1% and 0.1% FPR, in percent; higher score = "member" (D_F is positive)."""
    member_scores = np.asarray(member_scores, dtype=np.float64).ravel()
    nonmember_scores = np.asarray(nonmember_scores, dtype=np.float64).ravel()
    if member_scores.size == 0 or nonmember_scores.size == 0:
        raise UnlearnInputError("an MIA needs at least one member and one non-member score")
    if not (np.isfinite(member_scores).all() and np.isfinite(nonmember_scores).all()):
        raise UnlearnInputError("MIA scores contain NaN or infinite values")
    truth = np.r_[np.ones(member_scores.size), np.zeros(nonmember_scores.size)]
    scores = np.r_[member_scores, nonmember_scores]
    fpr, tpr, _ = roc_curve(truth, scores)
    return {"auc": 100.0 * float(roc_auc_score(truth, scores)),
            "tpr_at_1pct_fpr": 100.0 * tpr_at_fpr(fpr, tpr, 0.01),
            "tpr_at_0.1pct_fpr": 100.0 * tpr_at_fpr(fpr, tpr, 0.001)}


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """The highest TPR among ROC points whose FPR does not exceed `target` (LiRA's low-FPR metric)."""
    ok = fpr <= target
    return float(tpr[ok].max()) if ok.any() else 0.0
