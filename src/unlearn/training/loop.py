"""The one training loop: original, retrained and reference models, and every fine-tuning method.

`fit` trains a model in place on a shuffled union of `Source`s. Each source carries its own
samples, whether they are augmented, and an optional relabelling drawn anew on every batch
(random labels for RL, adversarial labels are simply a source's stored `y`). A method with its
own objective passes `loss_fn(logits, labels, source_ids)`; masked updates pass `after_step`.
All randomness (initialisation, shuffling, augmentation, relabelling) comes from `seed`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearn.data import ArrayDataset, as_float, augment
from unlearn.errors import DivergenceError, UnlearnInputError
from unlearn.progress import progress_bar
from unlearn.training.recipes import Recipe

Relabel = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Source:
    """One part of a training mix: its samples, whether to augment them, how to relabel them."""

    data: ArrayDataset
    augment: bool = True
    relabel: Relabel | None = None


def make_optimizer(params, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    raise UnlearnInputError(f"unknown optimizer {recipe.optimizer!r}; use 'sgd' or 'adam'")


def lr_factor(recipe: Recipe, steps_per_epoch: int) -> Callable[[int], float]:
    """Learning-rate multiplier per optimiser step, for every schedule the recipes name."""
    total = max(1, recipe.epochs * steps_per_epoch)
    if recipe.schedule == "constant":
        return lambda it: 1.0
    if recipe.schedule == "step":
        return lambda it: recipe.gamma ** ((it // steps_per_epoch) // max(1, recipe.step_size))
    if recipe.schedule == "cosine":
        return lambda it: 0.5 * (1 + math.cos(math.pi * min(it, total) / total))
    if recipe.schedule == "onecycle":
        # Linear warm-up over the first 25% to the peak, then linear decay to zero.
        warm = max(1, int(0.25 * total))
        return lambda it: (it + 1) / warm if it < warm else max(0.0, (total - it) / (total - warm))
    raise UnlearnInputError(f"unknown schedule {recipe.schedule!r}; use constant, step, cosine or onecycle")


def _stack(sources: Sequence[Source]):
    xs = [s.data.x for s in sources]
    if len({x.dtype for x in xs}) > 1:  # e.g. uint8 images mixed with float adversarial examples
        xs = [as_float(x) for x in xs]
    x = torch.cat(xs)
    y = torch.cat([s.data.y for s in sources])
    source_id = torch.cat([torch.full((len(s.data),), k, dtype=torch.long) for k, s in enumerate(sources)])
    return x, y, source_id


def fit(model: nn.Module, sources: Sequence[Source] | ArrayDataset, recipe: Recipe, *, seed: int = 0,
        device: str | torch.device = "cpu", loss_fn: LossFn | None = None,
        after_step: Callable[[], None] | None = None, optimizer: torch.optim.Optimizer | None = None,
        name: str = "training", progress: bool | None = None) -> nn.Module:
    """Train `model` in place for `recipe.epochs` epochs over the union of `sources`; return it."""
    if isinstance(sources, ArrayDataset):
        sources = [Source(sources)]
    sources = [s for s in sources if len(s.data)]
    if not sources:
        raise UnlearnInputError(f"{name}: nothing to train on (all sources are empty)")
    device = torch.device(device)
    model.to(device).train()
    x_all, y_all, source_all = _stack(sources)
    augmentable = torch.tensor([s.augment for s in sources])
    relabels = [(k, s.relabel) for k, s in enumerate(sources) if s.relabel is not None]
    gen = torch.Generator().manual_seed(seed)
    n = len(y_all)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    optimizer = optimizer or make_optimizer(model.parameters(), recipe)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(recipe, steps_per_epoch))
    step = 0
    with progress_bar(progress) as bar:
        task = bar.add_task(name, total=recipe.epochs * steps_per_epoch)
        for _ in range(recipe.epochs):
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, recipe.batch_size):
                idx = order[start:start + recipe.batch_size]
                xb, yb, sb = x_all[idx], y_all[idx].clone(), source_all[idx]
                for k, relabel in relabels:
                    chosen = sb == k
                    if chosen.any():
                        yb[chosen] = relabel(yb[chosen], gen)
                xb = augment(as_float(xb.to(device)), gen, recipe.crop_padding, recipe.flip,
                             apply=augmentable[sb])
                yb, sb = yb.to(device), sb.to(device)
                out = model(xb)
                loss = loss_fn(out, yb, sb) if loss_fn else F.cross_entropy(out, yb)
                if not torch.isfinite(loss):
                    raise DivergenceError(name, step, float(loss.detach()))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                if after_step is not None:
                    after_step()
                step += 1
                bar.advance(task)
    model.eval()
    return model
