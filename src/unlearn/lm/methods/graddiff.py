"""GradDiff: gradient ascent on the forget set, gradient descent on the retain set.

Minimises γ·(−NLL(F)) + α·NLL(R) (TOFU's "Gradient Difference", Maini et al. 2024;
OpenUnlearning's `GradDiff`, defaults γ = α = 1 and an NLL retain loss). Its KL retain loss
(OpenUnlearning's `retain_loss_type: KL`) is not offered.
"""

from __future__ import annotations

from unlearn.lm.methods.base import LMMethod, register
from unlearn.lm.scoring import mean_token_nll


@register
class GradDiff(LMMethod):
    """γ·(−NLL(F)) + α·NLL(R).

    gamma : weight of the forget term (1). alpha : weight of the retain term (1).
    Other hyperparameters: the loop's (`LMMethod`).
    """

    name = "graddiff"
    requires_retain = True

    def __init__(self, gamma: float = 1.0, alpha: float = 1.0, **loop):
        super().__init__(**loop)
        self.gamma = gamma
        self.alpha = alpha

    def check(self):
        super().check()
        self.non_negative("gamma", "alpha")

    def loss(self, model, forget_batch, retain_batch):
        forget = -mean_token_nll(model, forget_batch.encode())
        return self.gamma * forget + self.alpha * self.retain_nll(model, retain_batch)
