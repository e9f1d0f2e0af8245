"""SalUn: random-label unlearning restricted to the weights most salient for D_F.

Step 1, the mask: the weights whose |∇θ CE(θ_o; D_F)| is in the top `ratio` fraction (global
threshold over all parameters). Step 2: RL (D_R ∪ D_F with random wrong labels, or D_F alone)
updating only the masked weights (Fan et al., ICLR 2024). Unlike the public code, the mask is
enforced after every optimiser step (`shared.MaskedUpdate`), so weight decay and momentum cannot
move the unmasked weights either: they stay bit-identical to θ_o.

    new = unlearn.methods.get("salun", ratio=0.5).unlearn(model, forget, retain)
"""

from __future__ import annotations

from unlearn.methods.base import Method, register
from unlearn.methods.rl import random_label_sources
from unlearn.methods.shared import finetune, method_recipe, saliency_mask


@register
class SalUn(Method):
    """Saliency unlearning (Fan et al. 2024).

    Parameters
    ----------
    ratio : fraction of the weights that may change (paper: 0.5).
    lr : SGD learning rate (default 0.01; SalUn tunes it per setting).
    epochs : passes over the mix (default 10, as in the paper).
    batch_size : 128, momentum 0.9, weight decay 5e-4.
    crop_padding, flip : augmentation (off by default, see `FT`).

    After `unlearn`, `stats_` records the fraction of weights the mask let change.

    References
    ----------
    Fan, Liu, Zhang, Wei, Wong, Liu, "SalUn: Empowering Machine Unlearning via Gradient-based Weight
    Saliency in Both Image Classification and Generation", ICLR 2024.
    """

    name = "salun"

    def __init__(self, ratio: float = 0.5, lr: float = 0.01, epochs: int = 10, batch_size: int = 128,
                 crop_padding: int = 0, flip: bool = False):
        self.ratio, self.lr, self.epochs, self.batch_size = ratio, lr, epochs, batch_size
        self.crop_padding, self.flip = crop_padding, flip

    def _unlearn(self, model, forget, retain, *, seed, device, **context):
        recipe = method_recipe(self)
        from unlearn.errors import UnlearnInputError

        if not (isinstance(self.ratio, (int, float)) and 0.0 < self.ratio <= 1.0):
            raise UnlearnInputError(f"salun: ratio must lie in (0, 1], got {self.ratio}")
        mask = saliency_mask(model, forget, self.ratio, device=device)
        chosen = sum(int(m.sum()) for m in mask.values())
        self.stats_ = {"mask_ratio": chosen / sum(m.numel() for m in mask.values())}
        return finetune(model, random_label_sources(model, forget, retain), recipe, seed=seed, device=device,
                        name=self.name, mask=mask)
