"""NegGrad+: descend on D_R and ascend on D_F in the same step.

Loss per batch: β·CE(θ; batch ∩ D_R) − (1−β)·CE(θ; batch ∩ D_F), over a shuffled union of D_R and
D_F (Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023, Sec. 5). The retain
term is what keeps it from GA's collapse. Without D_R only the ascent term is left, i.e. GA
scaled by (1−β); that is what runs then (documented, not refused, so the "without D_R" column of
the benchmark exists for every NegGrad-style method).

    new = unlearn.methods.get("neggrad+", beta=0.999).unlearn(model, forget, retain)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unlearn.methods.base import Method, register
from unlearn.methods.shared import finetune, method_recipe
from unlearn.training import Source


def neggrad_plus_loss(beta: float, forget_id: int):
    """β·mean CE over the batch's D_R samples − (1−β)·mean CE over its D_F samples (source `forget_id`)."""

    def loss(logits: torch.Tensor, labels: torch.Tensor, source_ids: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, labels, reduction="none")
        is_forget = source_ids == forget_id
        total = logits.new_zeros(())
        if (~is_forget).any():
            total = total + beta * ce[~is_forget].mean()
        if is_forget.any():
            total = total - (1.0 - beta) * ce[is_forget].mean()
        return total

    return loss


@register
class NegGradPlus(Method):
    """NegGrad+ (Kurmanji et al. 2023).

    Parameters
    ----------
    beta : weight of the retain term, in [0, 1]; 1 − β weighs the ascent on D_F (β = 0 is GA).
        The paper tunes β per setting; 0.999 (our default) keeps the retain term dominant.
    lr : SGD learning rate (default 0.01, as FT; the paper tunes it).
    epochs : passes over D_R ∪ D_F (default 10).
    batch_size : 128, momentum 0.9, weight decay 5e-4.
    crop_padding, flip : augmentation (off by default, see `FT`).

    References
    ----------
    Kurmanji, Triantafillou, Hayes, Triantafillou, "Towards Unbounded Machine Unlearning", NeurIPS 2023.
    """

    name = "neggrad+"

    def __init__(self, beta: float = 0.999, lr: float = 0.01, epochs: int = 10, batch_size: int = 128,
                 crop_padding: int = 0, flip: bool = False):
        self.beta, self.lr, self.epochs, self.batch_size = beta, lr, epochs, batch_size
        self.crop_padding, self.flip = crop_padding, flip

    def _unlearn(self, model, forget, retain, *, seed, device, **context):
        recipe = method_recipe(self)
        from unlearn.errors import UnlearnInputError

        if not (isinstance(self.beta, (int, float)) and 0.0 <= self.beta <= 1.0):
            raise UnlearnInputError(f"neggrad+: beta must lie in [0, 1], got {self.beta}")
        sources = ([Source(retain)] if retain is not None and len(retain) else []) + [Source(forget)]
        return finetune(model, sources, recipe, seed=seed, device=device, name=self.name,
                        loss_fn=neggrad_plus_loss(self.beta, forget_id=len(sources) - 1))
