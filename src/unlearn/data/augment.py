"""Batched tensor augmentation: random crop with zero padding and horizontal flip.

Both act on a whole batch at once (no per-sample Python loop) and draw from an explicit
`torch.Generator`, so a seeded run is reproducible. Only image batches (N, C, H, W) are
augmented; tabular batches pass through.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Pad by `padding` zeros on each side and cut a random H x W window per sample."""
    if padding <= 0 or x.dim() != 4:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device="cpu").to(x.device)
    rows = (offsets[0][:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (offsets[1][:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half (in expectation) of the batch left-right."""
    if x.dim() != 4:
        return x
    flip = torch.rand(len(x), generator=generator, device="cpu").to(x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def augment(x: torch.Tensor, generator: torch.Generator, crop_padding: int = 0, flip: bool = False,
            apply: torch.Tensor | None = None) -> torch.Tensor:
    """Crop and/or flip a batch; `apply` (bool, per sample) limits augmentation to some samples."""
    if x.dim() != 4 or (crop_padding <= 0 and not flip):
        return x
    out = random_crop(x, crop_padding, generator) if crop_padding > 0 else x
    out = random_flip(out, generator) if flip else out
    if apply is not None:
        out = torch.where(apply.to(x.device)[:, None, None, None], out, x)
    return out
