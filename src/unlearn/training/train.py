"""Train a classifier from scratch on (a subset of) a dataset's training split."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from unlearn.data import Dataset
from unlearn.models import Classifier, create
from unlearn.training.loop import fit
from unlearn.training.recipes import Recipe, default_arch_args, default_recipe, get_recipe


def indices_digest(indices) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(indices, dtype=np.int64)).tobytes()).hexdigest()[:16]


def train(arch: str, dataset: Dataset, indices=None, recipe: str | Recipe | dict | None = None, seed: int = 0,
          device: str | torch.device = "cpu", arch_args: dict | None = None, progress: bool | None = None,
          name: str | None = None) -> Classifier:
    """Train `arch` from a seeded initialisation on `dataset.train[indices]` (all samples if None).

    Same seed, same indices, same recipe: bit-identical weights on CPU.
    """
    recipe_obj = get_recipe(recipe if recipe is not None else default_recipe(dataset))
    arch_args = default_arch_args(dataset.name, arch, arch_args)
    indices = np.arange(len(dataset.train)) if indices is None else np.sort(np.asarray(indices, dtype=np.int64))
    torch.manual_seed(seed)
    model = create(arch, dataset, **arch_args)
    fit(model, dataset.train.subset(indices), recipe_obj, seed=seed, device=device,
        name=name or f"training {arch}", progress=progress)
    model.spec["training"] = {"dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint,
                              "recipe": recipe_obj.to_dict(), "seed": seed, "n_train": int(len(indices)),
                              "indices_sha256": indices_digest(indices)}
    return model.cpu()
