"""l1-sparse: fine-tune on D_R with an L1 penalty that sparsifies the weights.

Loss: CE(θ; D_R) + γ_e·‖θ‖₁, with γ_e decaying linearly over the epochs from γ (e = 0) towards 0
(Jia et al., "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023, "ℓ1-sparse MU",
the decaying schedule of its public code). The penalty covers all parameters. Needs D_R.

    new = unlearn.methods.get("l1-sparse", gamma=5e-4).unlearn(model, forget, retain)
"""

from __future__ import annotations

import math

import torch.nn.functional as F

from unlearn.errors import UnlearnInputError
from unlearn.methods.base import Method, register
from unlearn.methods.shared import finetune, method_recipe
from unlearn.training import Source


@register
class L1Sparse(Method):
    """ℓ1-sparse unlearning (Jia et al. 2023).

    Parameters
    ----------
    gamma : initial L1 weight γ (the paper: 5e-4; docs/methods.md), decayed linearly to 0 by epoch.
    lr : SGD learning rate (paper's scripts: 0.01).
    epochs : passes over D_R (default 10).
    batch_size : 128, momentum 0.9, weight decay 5e-4.
    crop_padding, flip : augmentation of D_R (off by default, see `FT`).

    References
    ----------
    Jia, Liu, Ram, Yao, Liu, Liu, Sharma, Liu, "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023.
    """

    name = "l1-sparse"
    requires_retain = True

    def __init__(self, gamma: float = 5e-4, lr: float = 0.01, epochs: int = 10, batch_size: int = 128,
                 crop_padding: int = 0, flip: bool = False):
        self.gamma, self.lr, self.epochs, self.batch_size = gamma, lr, epochs, batch_size
        self.crop_padding, self.flip = crop_padding, flip

    def _unlearn(self, model, forget, retain, *, seed, device, **context):
        recipe = method_recipe(self)
        if not (isinstance(self.gamma, (int, float)) and self.gamma >= 0):
            raise UnlearnInputError(f"l1-sparse: gamma must be a number >= 0, got {self.gamma!r}")
        params = [p for p in model.parameters() if p.requires_grad]
        steps_per_epoch = math.ceil(len(retain) / self.batch_size)
        step = 0

        def loss(logits, labels, source_ids):
            nonlocal step
            epoch = step // steps_per_epoch  # `fit` calls the loss once per optimiser step
            step += 1
            gamma = self.gamma * (1.0 - epoch / self.epochs)
            return F.cross_entropy(logits, labels) + gamma * sum(p.abs().sum() for p in params)

        return finetune(model, [Source(retain)], recipe, seed=seed, device=device, name=self.name, loss_fn=loss)
