"""SCRUB: a student that stays close to the teacher on D_R and moves away from it on D_F.

Teacher = θ_o (frozen), student initialised at θ_o. Each epoch, for the first `max_epochs`
epochs, a max-step pass over D_F maximises KL(teacher ‖ student); then a min-step pass over D_R
minimises γ·CE + α·KL(teacher ‖ student) (Kurmanji et al., NeurIPS 2023, Alg. 1; T = 4, 2 max-step
epochs of 3, the paper's CIFAR defaults). One SGD optimiser serves both passes, as in the
public code. Without D_R only the max-steps remain (our choice, so that the "without D_R" column
exists; expect it to damage the model more, since nothing anchors it on D_R).

    new = unlearn.methods.get("scrub").unlearn(model, forget, retain)
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from unlearn.errors import UnlearnInputError
from unlearn.methods.base import Method, register
from unlearn.methods.distill import distill_pass, kl_to_teacher
from unlearn.methods.shared import check_finetune_hparams


@register
class SCRUB(Method):
    """SCRUB (Kurmanji et al. 2023).

    Parameters
    ----------
    epochs : total epochs (paper: 3); `max_epochs` of them (paper: 2) start with a max-step pass.
    temperature : distillation temperature T (paper: 4).
    ce_weight, kl_weight : γ and α of the min-step loss γ·CE + α·KL (public code: 0.99, 0.001).
    lr : SGD learning rate (public code: 5e-4), momentum 0.9, weight decay 5e-4.
    batch_size : D_R batch (128); `forget_batch_size`: D_F batch of the max-steps (32).
    crop_padding, flip : augmentation of both passes (the public code's CIFAR loaders augment;
        off by default, see `FT`).

    References
    ----------
    Kurmanji, Triantafillou, Hayes, Triantafillou, "Towards Unbounded Machine Unlearning", NeurIPS 2023.
    """

    name = "scrub"

    def __init__(self, epochs: int = 3, max_epochs: int = 2, temperature: float = 4.0, ce_weight: float = 0.99,
                 kl_weight: float = 0.001, lr: float = 5e-4, batch_size: int = 128, forget_batch_size: int = 32,
                 crop_padding: int = 0, flip: bool = False):
        self.epochs, self.max_epochs, self.temperature = epochs, max_epochs, temperature
        self.ce_weight, self.kl_weight, self.lr = ce_weight, kl_weight, lr
        self.batch_size, self.forget_batch_size = batch_size, forget_batch_size
        self.crop_padding, self.flip = crop_padding, flip

    def _unlearn(self, model, forget, retain, *, seed, device, **context):
        check_finetune_hparams(self.name, self.lr, self.epochs, self.batch_size)
        check_finetune_hparams(self.name, self.lr, self.max_epochs, self.forget_batch_size)
        if not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            raise UnlearnInputError(f"scrub: temperature must be a positive number, got {self.temperature!r}")
        teacher = copy.deepcopy(model).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        optimizer = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=0.9, weight_decay=5e-4)
        gen = torch.Generator().manual_seed(seed)
        T = self.temperature

        def away_from_teacher(s, t, y):  # max-step: ascend the KL on D_F
            return -kl_to_teacher(s, t, T)

        def close_to_teacher(s, t, y):  # min-step: stay the teacher (and right) on D_R
            return self.ce_weight * F.cross_entropy(s, y) + self.kl_weight * kl_to_teacher(s, t, T)

        step = 0
        for epoch in range(self.epochs):
            if epoch < self.max_epochs:
                step = distill_pass(model, teacher, forget, optimizer, away_from_teacher,
                                    batch_size=self.forget_batch_size, generator=gen, device=device,
                                    name=self.name, step=step, crop_padding=self.crop_padding, flip=self.flip)
            if retain is not None and len(retain):
                step = distill_pass(model, teacher, retain, optimizer, close_to_teacher,
                                    batch_size=self.batch_size, generator=gen, device=device,
                                    name=self.name, step=step, crop_padding=self.crop_padding, flip=self.flip)
        return model
