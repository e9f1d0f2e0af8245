"""FGSM (Goodfellow et al., ICLR 2015): one signed-gradient step of size ε on the true-label loss.

Boundary Shrink (Chen et al., CVPR 2023) relabels each forget sample with the prediction at its
FGSM neighbour (ε = 0.1 in L∞); AMUN's ablations use it as a cheaper, farther adversarial set.
It is PGD with one step of the full radius and no early exit, so it shares `pgd`'s code.

    adv = fgsm(model, forget.x, forget.y, epsilon=0.1)
    neighbour_labels = adv.y_adv
"""

from __future__ import annotations

import torch
from torch import nn

from unlearn.attacks.pgd import AdversarialSet, pgd


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float | torch.Tensor = 0.1, *,
         norm: str = "linf", batch_size: int = 512, device: str | torch.device | None = None) -> AdversarialSet:
    """x + ε·sign(∇ₓ CE(f(x), y)) clamped to [0, 1] (with `norm="l2"`: ε times the unit-L2 gradient).

    `y_adv` is the prediction at the perturbed input, whether or not it differs from `y`.
    """
    return pgd(model, x, y, epsilon, norm=norm, steps=1, step_ratio=1.0, early_exit=False,
               batch_size=batch_size, device=device)
