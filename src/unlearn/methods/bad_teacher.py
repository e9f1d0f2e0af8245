"""Bad Teacher: a student learns D_R from a competent teacher and D_F from an incompetent one.

Student = a copy of θ_o. Competent teacher = θ_o (frozen). Incompetent teacher = the same
architecture freshly initialised at random (frozen). The student is distilled, with a
temperature-T KL divergence, towards the competent teacher on a random subset of D_R and towards
the incompetent teacher on D_F, both mixed in shuffled batches (Chundawat, Tarun, Mandal,
Kankanhalli, AAAI 2023, Eq. 3 and their public code: 30% of D_R, 1 epoch, Adam lr 1e-4, batch 256,
T = 1). As in that code, every sample's label in the unlearning data is its origin (1 = D_F), and
the teacher's output is chosen per sample by it.

    new = unlearn.methods.get("bad-teacher").unlearn(model, forget, retain)

Deviations: the KL is averaged over the batch (`kl_to_teacher`, "batchmean") where the public
code's `F.kl_div` default also divides by the number of classes, a constant factor that Adam's
normalised steps all but remove; the KL is scaled by T² (the distillation convention, no effect
at the paper's T = 1). The method needs D_R: without the competent teacher's half it would only
pull D_F towards a random network, which is not the paper's method.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from unlearn.data import ArrayDataset
from unlearn.methods.base import Method, register
from unlearn.methods.distill import distill_pass, kl_to_teacher
from unlearn.methods.shared import check_finetune_hparams, check_number, union


def randomly_initialised(model: nn.Module, seed: int) -> nn.Module:
    """A copy of `model` with every layer re-initialised by its own `reset_parameters`, seeded."""
    fresh = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in fresh.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            if hasattr(module, "reset_running_stats"):
                module.reset_running_stats()
    return fresh


class TwoTeachers(nn.Module):
    """Both teachers' logits side by side; the objective picks a half per sample by its origin."""

    def __init__(self, competent: nn.Module, incompetent: nn.Module):
        super().__init__()
        self.competent, self.incompetent = competent, incompetent

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.competent(x), self.incompetent(x)], dim=1)


@register
class BadTeacher(Method):
    """Unlearning with an incompetent teacher (Chundawat et al. 2023).

    Parameters
    ----------
    retain_fraction : fraction of D_R the competent teacher is distilled on (paper: 0.3).
    epochs : passes over D_F ∪ the D_R subset (paper: 1).
    lr : Adam learning rate (paper: 1e-4), no weight decay.
    batch_size : 256 (paper).
    temperature : KL temperature T (paper: 1).

    References
    ----------
    Chundawat, Tarun, Mandal, Kankanhalli, "Can Bad Teaching Induce Forgetting? Unlearning in Deep
    Networks Using an Incompetent Teacher", AAAI 2023 (code: github.com/vikram2000b/bad-teaching-unlearning).
    """

    name = "bad-teacher"
    requires_retain = True

    def __init__(self, retain_fraction: float = 0.3, epochs: int = 1, lr: float = 1e-4, batch_size: int = 256,
                 temperature: float = 1.0):
        self.retain_fraction, self.epochs, self.lr = retain_fraction, epochs, lr
        self.batch_size, self.temperature = batch_size, temperature

    def _unlearn(self, model, forget, retain, *, seed, device, **context):
        check_finetune_hparams(self.name, self.lr, self.epochs, self.batch_size)
        fraction = check_number(self.name, "retain_fraction", self.retain_fraction, high=1.0)
        temperature = check_number(self.name, "temperature", self.temperature)
        gen = torch.Generator().manual_seed(seed)
        chosen = torch.randperm(len(retain), generator=gen)[:max(1, int(fraction * len(retain)))]
        mixed = union(retain.subset(chosen.sort().values), forget)
        origin = torch.cat([torch.zeros(len(chosen), dtype=torch.long), torch.ones(len(forget), dtype=torch.long)])
        teachers = TwoTeachers(copy.deepcopy(model), randomly_initialised(model, seed)).to(device).eval()
        for p in teachers.parameters():
            p.requires_grad_(False)

        def towards_the_teacher_of_its_origin(student_logits, both, from_forget):
            num_classes = student_logits.shape[1]
            competent, incompetent = both[:, :num_classes], both[:, num_classes:]
            target = torch.where(from_forget[:, None].bool(), incompetent, competent)
            return kl_to_teacher(student_logits, target, temperature)

        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        step = 0
        for _ in range(self.epochs):
            step = distill_pass(model, teachers, ArrayDataset(mixed.x, origin), optimizer,
                                towards_the_teacher_of_its_origin, batch_size=self.batch_size, generator=gen,
                                device=device, name=self.name, step=step)
        self.stats_ = {"retain_used": len(chosen), "forget_used": len(forget)}
        return model
