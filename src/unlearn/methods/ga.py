"""GA (gradient ascent): maximise the cross-entropy of the original model on D_F.

The loss is −CE(θ; D_F), minimised with SGD (Thudi et al. 2022, as benchmarked by SalUn and
AMUN). It is defined on D_F alone, so a retain set, when given, is ignored. Unbounded: with too
large a step the loss runs to −inf, which the training loop stops with a `DivergenceError`.

    new = unlearn.methods.get("ga", lr=1e-4, epochs=5).unlearn(model, forget)
"""

from __future__ import annotations

import torch.nn.functional as F

from unlearn.methods.base import Method, register
from unlearn.methods.shared import finetune, method_recipe
from unlearn.training import Source


def negative_cross_entropy(logits, labels, source_ids):
    return -F.cross_entropy(logits, labels)


@register
class GA(Method):
    """Gradient ascent on D_F.

    Parameters
    ----------
    lr : SGD learning rate (SalUn's benchmark default for GA on CIFAR-10: 1e-4; GA is very
        sensitive to it: too small does nothing, too large destroys the model).
    epochs : passes over D_F (default 5, as in SalUn's benchmark).
    batch_size : 128, momentum 0.9, weight decay 5e-4.

    References
    ----------
    Thudi et al., "Unrolling SGD: Understanding Factors Influencing Machine Unlearning", EuroS&P 2022;
    Fan et al., "SalUn", ICLR 2024.
    """

    name = "ga"
    uses_retain = False

    def __init__(self, lr: float = 1e-4, epochs: int = 5, batch_size: int = 128):
        self.lr, self.epochs, self.batch_size = lr, epochs, batch_size

    def _unlearn(self, model, forget, retain, *, seed, device, **context):
        recipe = method_recipe(self)
        return finetune(model, [Source(forget, augment=False)], recipe, seed=seed, device=device, name=self.name,
                        loss_fn=negative_cross_entropy)
