"""Augmented queries: the audited points as the model saw them in training, several views each.

A model trained with augmentation has seen every training point under many small transformations,
so a membership attack that queries several views and combines them is stronger than one that
queries the point once (Carlini et al. 2022, Sec. VI; Zarifzadeh et al. 2024 query 18 views of each
CIFAR-10 image). The views follow the data's own augmentation:

- images (N, C, H, W): horizontal flips if the training recipe flips, and shifts by whole pixels (zero
  padding, as the recipe's random crop) if it crops: views (flip, dx, dy) for dx, dy in {0, ±1, ±2, ...}
  up to the crop padding, nearest shifts first;
- 1-D signals (N, L) or (N, 1, L) (mnist1d): shifts by ±1, ±2 positions along the signal, the
  end values repeated (mnist1d's own generator translates its templates; its background is not 0
  on our [0, 1] scale, so zero padding would invent a spike);
- anything else (tabular data, or a recipe without augmentation): the point itself only.

View 0 is always the unchanged input, so `count = 1` is the plain single query. `count = 0` (the
RMIA default) means "the model's own augmentation": up to `AUTO_VIEWS` views if its recipe flips or
crops, else the point only. Measured (docs/audits.md): on a CIFAR-10 subset trained with flips the
flipped view raises RMIA's AUC; on mnist1d, trained without shifts, shifted views lower it.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from unlearn.errors import UnlearnInputError

MAX_SIGNAL_SHIFT = 2  # positions; mnist1d signals are 40 long
AUTO_VIEWS = 18       # the RMIA authors' number of queries on CIFAR-10


def view_count(count: int, flip: bool, crop_padding: int) -> int:
    """`count`, or for 0 the views the training recipe's own augmentation produces (at most AUTO_VIEWS)."""
    if count < 0:
        raise UnlearnInputError(f"augmented queries: need a non-negative number of views, got {count}")
    if count:
        return count
    return AUTO_VIEWS if flip or crop_padding > 0 else 1


def shift(x: torch.Tensor, dx: int, dy: int = 0, mode: str = "constant") -> torch.Tensor:
    """Translate the last axis by `dx` (and the one before it by `dy`, for images); the space left
    is filled with zeros (`mode="constant"`) or with the edge values (`mode="replicate"`)."""
    if dx == 0 and dy == 0:
        return x
    pad = [max(dx, 0), max(-dx, 0)] + ([max(dy, 0), max(-dy, 0)] if dy else [])
    if mode == "replicate":  # torch pads the last axis of a (N, C, L) batch
        padded = F.pad(x.float().reshape(x.shape[0], -1, x.shape[-1]), pad, mode="replicate").reshape(
            *x.shape[:-1], -1).to(x.dtype)
    else:
        padded = F.pad(x, pad)
    out = padded[..., max(-dx, 0): max(-dx, 0) + x.shape[-1]]
    if dy:
        out = out[..., max(-dy, 0): max(-dy, 0) + x.shape[-2], :]
    return out


def view_plan(input_shape: tuple[int, ...], flip: bool, crop_padding: int) -> list[tuple[bool, int, int]]:
    """Every (flip, dx, dy) view the data's augmentation allows, identity first, nearest first."""
    if len(input_shape) == 3 and input_shape[1] > 1:  # (C, H, W) image
        reach = max(0, crop_padding)
        offsets = sorted(itertools.product(range(-reach, reach + 1), repeat=2), key=lambda d: (abs(d[0]) + abs(d[1]), d))
        flips = (False, True) if flip else (False,)
        return [(f, dx, dy) for dx, dy in offsets for f in flips]
    if len(input_shape) == 1 or (len(input_shape) == 2 and input_shape[0] == 1):  # (L,) or (1, L) signal
        shifts = [0] + [s for k in range(1, MAX_SIGNAL_SHIFT + 1) for s in (k, -k)]
        return [(False, s, 0) for s in shifts]
    return [(False, 0, 0)]


def query_views(x: torch.Tensor, count: int, flip: bool = False, crop_padding: int = 0) -> list[torch.Tensor]:
    """The first `count` views of the batch `x` (capped at the views the data allows); 0: `view_count`."""
    count = view_count(count, flip, crop_padding)
    shape = tuple(x.shape[1:])
    mode = "replicate" if len(shape) == 1 or (len(shape) == 2 and shape[0] == 1) else "constant"
    views = []
    for mirrored, dx, dy in view_plan(shape, flip, crop_padding)[:count]:
        views.append(shift(x.flip(-1) if mirrored else x, dx, dy, mode))
    return views
