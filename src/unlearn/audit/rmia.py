"""RMIA: the relative membership-inference attack (Zarifzadeh et al., ICML 2024, "Low-Cost
High-Power Membership Inference Attacks"), as the AMUN paper uses it to audit unlearning.

For a point x the signal is p(x|θ), the probability the audited model gives the true label;
p̄(x) is its mean over reference models (online: all of them, each point IN for exactly half;
offline: OUT models only, corrected as p̄ = ((1 + a)·mean_OUT + (1 − a)) / 2, paper Sec. 3).
The likelihood ratio against a population point z is LR(x, z) = (p(x|θ)/p̄(x)) / (p(z|θ)/p̄(z)),
and score(x) = fraction of population points z with LR(x, z) > γ. The audit reports ROC AUC of
D_F (positives) vs D_T and TPR at 1% and 0.1% FPR. For the retrained model D_F is as unseen as
D_T, so its AUC is ≈ 50.

The population Z is the test side D_T: points of the pool that the audited model never saw
(the paper draws Z from population data that are non-members of the target). AMUN used 128
reference models and γ = 2; the offline a = 0.3 is the default of the RMIA authors' code.
"""

from __future__ import annotations

import numpy as np
import torch

from unlearn.audit.references import References
from unlearn.audit.scores import roc_summary, true_class_probability
from unlearn.errors import UnlearnInputError


def mean_reference_probability(reference_p: np.ndarray, members: np.ndarray, offline: bool = False,
                               offline_a: float = 0.3) -> np.ndarray:
    """p̄(x) per point from reference probabilities (K, n) and memberships (K, n)."""
    if not offline:
        return reference_p.mean(0)
    out = ~members
    if not out.any(0).all():
        raise UnlearnInputError("offline RMIA needs, for every point, at least one reference model it is OUT of")
    mean_out = (reference_p * out).sum(0) / out.sum(0)
    return ((1 + offline_a) * mean_out + (1 - offline_a)) / 2


def rmia_scores(target_p: np.ndarray, mean_p: np.ndarray, population: np.ndarray, gamma: float = 2.0) -> np.ndarray:
    """score(x) = fraction of population points z with LR(x, z) > γ, for every point x.

    `target_p` and `mean_p` are p(x|θ) and p̄(x) per point; `population` selects the points z
    (a boolean mask or an index array). LR(x, z) > γ ⟺ ratio(z) < ratio(x) / γ, so one sort of
    the population ratios answers all points at once (O(n log n), no n × |Z| matrix).
    """
    if gamma <= 0:
        raise UnlearnInputError(f"RMIA's gamma must be positive, got {gamma}")
    ratio = np.asarray(target_p, dtype=np.float64) / np.maximum(np.asarray(mean_p, dtype=np.float64),
                                                                 np.finfo(np.float64).tiny)
    z_ratio = np.sort(ratio[population])
    if z_ratio.size == 0:
        raise UnlearnInputError("RMIA needs at least one population point")
    return np.searchsorted(z_ratio, ratio / gamma, side="left") / z_ratio.size


def rmia(target_logits: torch.Tensor, labels: torch.Tensor, references: References, is_forget: np.ndarray, *,
         gamma: float = 2.0, offline: bool = False, offline_a: float = 0.3, temperature: float = 1.0,
         taylor_order: int | None = None) -> dict[str, float]:
    """RMIA of D_F (points with `is_forget`) vs D_T (the others, also the population Z).

    `target_logits` (n, C) are the audited model's logits on `references.points`, in the same order.
    """
    target_p = true_class_probability(target_logits, labels, temperature, taylor_order).numpy()
    reference_p = torch.stack([true_class_probability(lg, labels, temperature, taylor_order)
                               for lg in references.logits]).numpy()
    mean_p = mean_reference_probability(reference_p, references.members, offline, offline_a)
    scores = rmia_scores(target_p, mean_p, ~is_forget, gamma)
    return roc_summary(scores[is_forget], scores[~is_forget])
