"""NPO: negative preference optimisation, a bounded gradient ascent against a frozen reference.

Zhang, Lin, Bai, Mei, "Negative Preference Optimization: From Catastrophic Collapse to
Effective Unlearning", 2024. DPO (Rafailov et al. 2023) with the forget answer as the losing
response and no winning one:

    L_F = −(2/β) · E_F[ log σ(−β · (log π_θ(y|x) − log π_ref(y|x))) ],

with sequence log-likelihoods (summed over the answer's tokens) and π_ref the original model,
frozen. At θ = θ_ref the loss is (2/β)·log 2; as π_θ(y|x) → 0 it tends to 0, so unlike GA it
cannot run away, and its gradient is GA's weighted by 2·π_θ^β/(π_θ^β + π_ref^β), which vanishes
on answers already forgotten. Plus α·NLL(R), the paper's NPO-RT and OpenUnlearning's `NPO`
(β = 0.1, α = γ = 1): used when a retain set is given, the paper's plain NPO without one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unlearn.lm.methods.base import LMMethod, register
from unlearn.lm.scoring import sequence_nll


def preference_loss(preferred_log_ratio, rejected_log_ratio, beta: float) -> torch.Tensor:
    """DPO's −(2/β)·mean log σ(β·(r_w − r_l)), r = log π_θ − log π_ref per sequence (NPO: r_w = 0).

    The factor 2/β (NPO's, and OpenUnlearning's for both) makes the gradient at θ = θ_ref equal
    to GA's on the rejected answer.
    """
    return -(2.0 / beta) * F.logsigmoid(beta * (preferred_log_ratio - rejected_log_ratio)).mean()


def log_ratio(method: LMMethod, model, encoded) -> torch.Tensor:
    """log π_θ(y|x) − log π_ref(y|x) per sequence; differentiable in θ."""
    return method.reference_nll(encoded) - sequence_nll(model, encoded)[0]


@register
class NPO(LMMethod):
    """NPO (+ α·NLL(R) when a retain set is given).

    beta : inverse temperature (0.1, TOFU setting of the paper and OpenUnlearning).
    gamma : weight of the forget term (1). alpha : weight of the retain term (1).
    Other hyperparameters: the loop's (`LMMethod`).
    """

    name = "npo"
    needs_reference = True

    def __init__(self, beta: float = 0.1, gamma: float = 1.0, alpha: float = 1.0, **loop):
        super().__init__(**loop)
        self.beta = beta
        self.gamma = gamma
        self.alpha = alpha

    def check(self):
        super().check()
        self.positive("beta")
        self.non_negative("gamma", "alpha")

    def loss(self, model, forget_batch, retain_batch):
        forget = preference_loss(0.0, log_ratio(self, model, forget_batch.encode()), self.beta)
        return self.gamma * forget + self.alpha * self.retain_nll(model, retain_batch)
