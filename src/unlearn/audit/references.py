"""Reference (shadow) models for RMIA and LiRA, drawn from the model bank.

The population pool is the dataset's train + test split, as a `Dataset` of its own whose
fingerprint derives from the dataset's, so the bank keys reference models apart from models
trained on the training split. Reference models come in pairs: a random half of the pool and its
complement, so every pool point is IN for exactly half of the models (the online setting of
Carlini et al. 2022 and Zarifzadeh et al. 2024); the offline attacks use, per point, only the
models it is OUT of. Each model has the audited model's architecture, arguments and recipe and
is trained once per (pool, seed, pair): a second audit with the same seed is served from the bank,
and raising `n_reference` keeps the models already trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from unlearn.data import ArrayDataset, Dataset
from unlearn.errors import UnlearnInputError
from unlearn.models import logits as model_logits
from unlearn.training import Recipe, default_recipe, get_recipe, progress_bar


@dataclass(frozen=True)
class References:
    """Reference models' logits on the audited points and which of them each model trained on."""

    logits: torch.Tensor      # (K, n_points, C)
    members: np.ndarray       # (K, n_points) bool: point in the model's training half
    points: np.ndarray        # the audited points, as indices into the population pool
    trained: int              # models trained by this call (the rest came from the bank)

    @property
    def count(self) -> int:
        return int(self.logits.shape[0])


def population(dataset: Dataset) -> Dataset:
    """The pool train + test as a `Dataset`: pool index i < n_train is training sample i, the rest test."""
    pool = ArrayDataset(torch.cat([dataset.train.x, dataset.test.x]), torch.cat([dataset.train.y, dataset.test.y]))
    return Dataset(f"{dataset.name}:population", pool, dataset.test, dataset.classes,
                   f"{dataset.fingerprint}:population", dataset.mean, dataset.std)


def training_setup(model, dataset: Dataset) -> tuple[str, dict, Recipe]:
    """Architecture, arguments and recipe of the audited model, from its spec."""
    spec = getattr(model, "spec", None)
    if not spec or "arch" not in spec:
        raise UnlearnInputError("reference models need an unlearn Classifier whose spec names its architecture")
    recipe = (spec.get("training") or {}).get("recipe") or default_recipe(dataset)
    return spec["arch"], dict(spec.get("arch_args") or {}), get_recipe(recipe)


def pair_halves(n_pool: int, pair: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The `pair`-th random half of the pool and its complement (sorted index arrays)."""
    order = np.random.default_rng([seed, pair]).permutation(n_pool)
    return np.sort(order[: n_pool // 2]), np.sort(order[n_pool // 2:])


def check_count(n_reference: int, minimum: int, attack: str) -> None:
    if n_reference < minimum or n_reference % 2:
        raise UnlearnInputError(
            f"{attack} needs an even number of at least {minimum} reference models (pairs of complementary "
            f"halves, every point IN for exactly half of them); got n_reference={n_reference}"
        )


def reference_logits(model, dataset: Dataset, points: Sequence[int], *, bank=None, n_reference: int = 8,
                     seed: int = 0, device: str | torch.device = "cpu", progress: bool | None = None) -> References:
    """Logits of `n_reference` reference models on the pool points `points`, training missing models.

    Model 2k is trained on the k-th random half of the pool, model 2k+1 on its complement, with
    training seed 2k (resp. 2k+1) offset by 10,000 × `seed`.
    """
    from unlearn.bank import ModelBank

    check_count(n_reference, 2, "reference models")
    bank = bank if bank is not None else ModelBank()
    arch, arch_args, recipe = training_setup(model, dataset)
    pool = population(dataset)
    points = np.asarray(points, dtype=np.int64)
    queried = pool.train.subset(points)
    all_logits, members = [], []
    trained_before = bank.trained
    with progress_bar(progress) as bar:
        task = bar.add_task(f"reference models ({arch} on {pool.name})", total=n_reference)
        for pair in range(n_reference // 2):
            for side, half in enumerate(pair_halves(len(pool.train), pair, seed)):
                index = 2 * pair + side
                ref = bank.get(pool, arch, half, recipe, seed=10_000 * seed + index, device=device,
                               arch_args=arch_args, progress=False, name=f"reference model {index + 1}/{n_reference}")
                all_logits.append(model_logits(ref, queried))
                inside = np.zeros(len(pool.train), dtype=bool)
                inside[half] = True
                members.append(inside[points])
                bar.advance(task)
    return References(torch.stack(all_logits), np.stack(members), points, bank.trained - trained_before)
