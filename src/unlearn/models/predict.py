"""Batched inference shared by methods and audits: logits, probabilities, losses, accuracy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unlearn.data import ArrayDataset, as_float


@torch.no_grad()
def logits(model: nn.Module, data: ArrayDataset | torch.Tensor, batch_size: int = 1024,
           device: str | torch.device | None = None) -> torch.Tensor:
    """Eval-mode logits for every input (CPU tensor); the model's train/eval mode is restored."""
    x = data.x if isinstance(data, ArrayDataset) else data
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        out = [model(as_float(x[i:i + batch_size].to(device))).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def accuracy(model: nn.Module, data: ArrayDataset, **kw) -> float:
    """Top-1 accuracy in percent."""
    if len(data) == 0:
        return float("nan")
    return 100.0 * (logits(model, data, **kw).argmax(1) == data.y).float().mean().item()


def per_sample_loss(model: nn.Module, data: ArrayDataset, **kw) -> torch.Tensor:
    return F.cross_entropy(logits(model, data, **kw), data.y, reduction="none")


def true_class_confidence(model: nn.Module, data: ArrayDataset, **kw) -> torch.Tensor:
    return logits(model, data, **kw).softmax(1).gather(1, data.y[:, None]).squeeze(1)
