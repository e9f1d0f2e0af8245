"""Teacher-student distillation, written once for the methods that need it (SCRUB).

`kl_to_teacher` is Hinton et al.'s temperature-scaled KL(teacher ‖ student)·T², averaged over the
batch. `distill_pass` is one shuffled pass of a student over a dataset with an objective of
(student logits, teacher logits, labels); the caller owns the optimiser, so alternating passes
(SCRUB's max- and min-steps) share its momentum as in the paper's code. A NaN/inf loss raises
`DivergenceError` naming the method and the step; the caller works on a copy, so the user's model
is untouched.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from unlearn.data import ArrayDataset, as_float, augment
from unlearn.errors import DivergenceError

Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def kl_to_teacher(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(t/T) ‖ softmax(s/T))·T², mean over the batch (T² keeps gradients comparable across T)."""
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean") * temperature**2


def distill_pass(student: nn.Module, teacher: nn.Module, data: ArrayDataset, optimizer: torch.optim.Optimizer,
                 objective: Objective, *, batch_size: int, generator: torch.Generator, device: torch.device,
                 name: str, step: int = 0, crop_padding: int = 0, flip: bool = False) -> int:
    """One shuffled pass minimising `objective` over `data`; returns the updated global step count.

    Teacher and student see the same augmented batch (the teacher's targets follow the input).
    """
    student.train()
    teacher.eval()
    order = torch.randperm(len(data), generator=generator)
    for start in range(0, len(data), batch_size):
        idx = order[start:start + batch_size]
        x = augment(as_float(data.x[idx].to(device)), generator, crop_padding, flip)
        y = data.y[idx].to(device)
        with torch.no_grad():
            teacher_logits = teacher(x)
        loss = objective(student(x), teacher_logits, y)
        if not torch.isfinite(loss):
            raise DivergenceError(name, step, float(loss.detach()))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
    return step
