"""FT: fine-tune the original model on the retain set D_R only.

The simplest approximate unlearner: keep training on what should be remembered and rely on
catastrophic forgetting to erase D_F (Warnecke et al., NDSS 2023; the SalUn benchmark's "FT").
It needs D_R by definition.

    new = unlearn.methods.get("ft", lr=0.01, epochs=10).unlearn(model, forget, retain)
"""

from __future__ import annotations

from unlearn.methods.base import Method, register
from unlearn.methods.shared import finetune, method_recipe
from unlearn.training import Source


@register
class FT(Method):
    """Fine-tuning on D_R.

    Parameters
    ----------
    lr : SGD learning rate (SalUn's public benchmark default for CIFAR-10: 0.01).
    epochs : passes over D_R (default 10, as in SalUn's benchmark).
    batch_size : 128, with momentum 0.9 and weight decay 5e-4 (`finetune_recipe`).
    crop_padding, flip : augmentation of D_R (the papers use crop 4 + flip on CIFAR-10; off
        by default here because the embedded `digits` are not translation/flip invariant).

    References
    ----------
    Warnecke et al., "Machine Unlearning of Features and Labels", NDSS 2023;
    Fan et al., "SalUn", ICLR 2024 (benchmark protocol).
    """

    name = "ft"
    requires_retain = True

    def __init__(self, lr: float = 0.01, epochs: int = 10, batch_size: int = 128, crop_padding: int = 0,
                 flip: bool = False):
        self.lr, self.epochs, self.batch_size = lr, epochs, batch_size
        self.crop_padding, self.flip = crop_padding, flip

    def _unlearn(self, model, forget, retain, *, seed, device, **context):
        recipe = method_recipe(self)
        return finetune(model, [Source(retain)], recipe, seed=seed, device=device, name=self.name)
