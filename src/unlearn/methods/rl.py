"""RL (random labels): fine-tune on D_R ∪ D_F where every forget sample carries a wrong label.

Each forget sample gets a uniformly random label other than its own, drawn anew on every batch
(Golatkar et al. 2020, as benchmarked by SalUn and AMUN). Without D_R the mix is D_F alone.

    new = unlearn.methods.get("rl").unlearn(model, forget, retain)        # or retain=None
"""

from __future__ import annotations

from unlearn.methods.base import Method, register
from unlearn.methods.shared import finetune, method_recipe, num_classes_of, random_wrong_labels
from unlearn.training import Source


def random_label_sources(model, forget, retain, augment: bool = True) -> list[Source]:
    """RL's training mix: D_R with its labels (when given) and D_F relabelled at random."""
    sources = [Source(forget, augment=augment, relabel=random_wrong_labels(num_classes_of(model)))]
    return ([Source(retain, augment=augment)] + sources) if retain is not None else sources


@register
class RL(Method):
    """Random-label fine-tuning.

    Parameters
    ----------
    lr : SGD learning rate (SalUn's benchmark default for RL on CIFAR-10: 0.01).
    epochs : passes over the mix (default 10).
    batch_size : 128, momentum 0.9, weight decay 5e-4.
    crop_padding, flip : augmentation of D_R and D_F (off by default, see `FT`).

    References
    ----------
    Golatkar, Achille, Soatto, "Eternal Sunshine of the Spotless Net", CVPR 2020;
    Fan et al., "SalUn", ICLR 2024.
    """

    name = "rl"

    def __init__(self, lr: float = 0.01, epochs: int = 10, batch_size: int = 128, crop_padding: int = 0,
                 flip: bool = False):
        self.lr, self.epochs, self.batch_size = lr, epochs, batch_size
        self.crop_padding, self.flip = crop_padding, flip

    def _unlearn(self, model, forget, retain, *, seed, device, **context):
        recipe = method_recipe(self)
        return finetune(model, random_label_sources(model, forget, retain), recipe, seed=seed, device=device,
                        name=self.name)
