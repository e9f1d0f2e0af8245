"""LiRA: the likelihood-ratio attack (Carlini et al., IEEE S&P 2022, "Membership Inference
Attacks From First Principles").

Signal φ = log(p_y / (1 − p_y)) of the audited model. Per example, Gaussians of φ are fitted under
IN reference models (trained with the example) and OUT models (without it); the score is the
log-likelihood ratio log N(φ; μ_in, σ_in²) − log N(φ; μ_out, σ_out²). Offline (OUT models only)
the score is the one-sided test −log Pr[Z > φ], Z ~ N(μ_out, σ_out²).

As the paper recommends with few reference models (< 64 here), one variance per side is pooled
over all examples ("fixed variance"); with more models each example gets its own. With augmented
queries (the data's own augmentation, see `queries`), each view gets its own Gaussians and the
score is the mean of the views' scores (the paper's Sec. VI averages the views' likelihoods; with
a diagonal covariance, as here, that is this mean of log-ratios).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import norm

from unlearn.audit.references import References
from unlearn.audit.scores import logit_confidence, roc_summary
from unlearn.errors import UnlearnInputError

PER_EXAMPLE_VARIANCE_FROM = 64  # reference models; below it the variance is pooled (Carlini et al. Sec. VI)


def gaussian_fit(phi: np.ndarray, mask: np.ndarray, fixed_variance: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-example mean and standard deviation of `phi` (K, n) over the models where `mask` is True."""
    count = mask.sum(0)
    if (count == 0).any():
        raise UnlearnInputError("LiRA needs, for every point, at least one reference model of each kind it uses")
    mean = (phi * mask).sum(0) / count
    residual = np.where(mask, phi - mean, 0.0)
    if fixed_variance:
        std = np.full(phi.shape[1], np.sqrt((residual**2).sum() / max(1, mask.sum() - phi.shape[1])))
    else:
        std = np.sqrt((residual**2).sum(0) / np.maximum(1, count - 1))
    return mean, np.maximum(std, 1e-6)


def lira_scores(target_phi: np.ndarray, reference_phi: np.ndarray, members: np.ndarray, offline: bool = False,
                fixed_variance: bool | None = None) -> np.ndarray:
    """LiRA score per point (higher = more likely a member)."""
    if fixed_variance is None:
        fixed_variance = reference_phi.shape[0] < PER_EXAMPLE_VARIANCE_FROM
    mu_out, sd_out = gaussian_fit(reference_phi, ~members, fixed_variance)
    if offline:
        return -norm.logsf(target_phi, mu_out, sd_out)
    mu_in, sd_in = gaussian_fit(reference_phi, members, fixed_variance)
    return norm.logpdf(target_phi, mu_in, sd_in) - norm.logpdf(target_phi, mu_out, sd_out)


def lira(target_logits: torch.Tensor, labels: torch.Tensor, references: References, is_forget: np.ndarray, *,
         offline: bool = False, fixed_variance: bool | None = None, queries: int = 1) -> dict:
    """LiRA of D_F (points with `is_forget`) vs D_T, on the points of `references`.

    `target_logits` is (Q, n, C) and `references.logits` (K, Q, n, C); the first `queries` views are
    used (0: all of them).
    """
    views = min(queries or target_logits.shape[0], target_logits.shape[0], references.logits.shape[1])
    scores = np.mean([lira_scores(logit_confidence(target_logits[q], labels).numpy(),
                                  np.stack([logit_confidence(lg[q], labels).numpy() for lg in references.logits]),
                                  references.members, offline, fixed_variance) for q in range(views)], axis=0)
    return {**roc_summary(scores[is_forget], scores[~is_forget]), "scores": scores}
