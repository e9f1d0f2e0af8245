"""Reference (shadow) models for RMIA and LiRA, drawn from the model bank.

The population pool is the dataset's train + test split, as a `Dataset` of its own whose
fingerprint derives from the dataset's, so the bank keys reference models apart from models
trained on the training split. Every reference model trains on a random subset of the pool *of the
audited model's own training-set size* n (the size of the training split), so that the target is
exchangeable with its references: it could have been one of them (Zarifzadeh et al. 2024, Sec. 2;
references on smaller sets are less confident everywhere and bias p̄(x) low).

With a pool of N points, each point is IN a reference with probability n / N. So that every point
is also OUT of some references (the offline attacks need them), models come in blocks of
B = ⌈N / (N − n)⌉: a block splits a random permutation of the pool into B parts and model j of the
block leaves part j out (dropping further random points if it still has more than n). From B
models on, every pool point is OUT of at least one model. Each model has the audited model's
architecture, arguments and recipe and is trained once per (pool, n, seed, index): a second audit
with the same reference seed is served from the bank, models are shared by every method and seed
of a protocol, and raising `n_reference` keeps the models already trained.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from unlearn.audit.queries import query_views
from unlearn.data import ArrayDataset, Dataset
from unlearn.errors import UnlearnInputError
from unlearn.models import logits as model_logits
from unlearn.progress import progress_bar
from unlearn.training import Recipe, default_recipe, get_recipe


@dataclass(frozen=True)
class References:
    """Reference models' logits on the audited points and which of them each model trained on."""

    logits: torch.Tensor      # (K, Q, n_points, C): K models, Q augmented queries
    members: np.ndarray       # (K, n_points) bool: point in the model's training set
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


def block_size(n_pool: int, n_train: int) -> int:
    """B = ⌈N / (N − n)⌉: models per block, so that each leaves a disjoint part of the pool out."""
    if not 0 < n_train < n_pool:
        raise UnlearnInputError(f"reference models need a pool larger than the training set ({n_pool} vs {n_train})")
    return -(-n_pool // (n_pool - n_train))


def reference_training_set(n_pool: int, n_train: int, index: int, seed: int) -> np.ndarray:
    """Training indices (sorted) of reference model `index`: n_train pool points, see the module docstring."""
    size = block_size(n_pool, n_train)
    block, part = divmod(index, size)
    order = np.random.default_rng([seed, block]).permutation(n_pool)
    left_out = np.array_split(order, size)[part]
    kept = np.setdiff1d(np.arange(n_pool), left_out)
    if len(kept) > n_train:
        kept = np.random.default_rng([seed, block, part]).choice(kept, n_train, replace=False)
    return np.sort(kept)


def check_count(n_reference: int, minimum: int, attack: str) -> None:
    if n_reference < minimum:
        raise UnlearnInputError(f"{attack} needs at least {minimum} reference models; got n_reference={n_reference}")


def query_logits(model, points: ArrayDataset, recipe: Recipe, queries: int = 1) -> torch.Tensor:
    """Logits (Q, n, C) of `model` on the `queries` augmented views of `points` (view 0: the points)."""
    views = query_views(points.x, queries, flip=recipe.flip, crop_padding=recipe.crop_padding)
    return torch.stack([model_logits(model, ArrayDataset(view, points.y)) for view in views])


# Logits of reference models on audited points, kept per process: a protocol audits hundreds of
# unlearned models against the same references on the same points (the same D_F + D_T for every
# method of a forget set), and querying K references costs K forward passes over those points,
# usually more than the rest of the audit. Keyed by the bank model's key digest (the model's whole
# training specification), the points and the views, so a hit is the very same computation.
_LOGITS_CACHE: OrderedDict[tuple, torch.Tensor] = OrderedDict()
_LOGITS_CACHE_BYTES = 512 * 2**20


def _cached_query(bank, key, load, points: np.ndarray, queried: ArrayDataset, recipe: Recipe, queries: int,
                  device) -> torch.Tensor:
    cache_key = (str(bank.root), key.digest, hashlib.sha256(points.tobytes()).hexdigest(), queries, str(device))
    if cache_key in _LOGITS_CACHE:
        _LOGITS_CACHE.move_to_end(cache_key)
        return _LOGITS_CACHE[cache_key]
    logits = query_logits(load(), queried, recipe, queries)
    _LOGITS_CACHE[cache_key] = logits
    while sum(t.numel() * t.element_size() for t in _LOGITS_CACHE.values()) > _LOGITS_CACHE_BYTES:
        _LOGITS_CACHE.popitem(last=False)
    return logits


def reference_logits(model, dataset: Dataset, points: Sequence[int], *, bank=None, n_reference: int = 8,
                     seed: int = 0, queries: int = 1, device: str | torch.device = "cpu",
                     progress: bool | None = None) -> References:
    """Logits (K, Q, n, C) of `n_reference` reference models on the pool points `points`, training missing models.

    Model k trains on `reference_training_set(N, n_train, k, seed)` with training seed 10,000 × `seed` + k.
    """
    from unlearn.bank import ModelBank

    check_count(n_reference, 1, "reference models")
    bank = bank if bank is not None else ModelBank()
    arch, arch_args, recipe = training_setup(model, dataset)
    pool = population(dataset)
    n_pool, n_train = len(pool.train), len(dataset.train)
    points = np.asarray(points, dtype=np.int64)
    queried = pool.train.subset(points)
    all_logits, members = [], []
    trained_before = bank.trained
    with progress_bar(progress) as bar:
        task = bar.add_task(f"reference models ({arch} on {pool.name})", total=n_reference)
        for index in range(n_reference):
            indices = reference_training_set(n_pool, n_train, index, seed)
            ref_seed = 10_000 * seed + index

            def load(indices=indices, ref_seed=ref_seed, index=index):
                return bank.get(pool, arch, indices, recipe, seed=ref_seed, device=device, arch_args=arch_args,
                                progress=False, name=f"reference model {index + 1}/{n_reference}")

            key = bank.key(pool, arch, indices, recipe, ref_seed, arch_args)
            all_logits.append(_cached_query(bank, key, load, points, queried, recipe, queries, device))
            inside = np.zeros(n_pool, dtype=bool)
            inside[indices] = True
            members.append(inside[points])
            bar.advance(task)
    return References(torch.stack(all_logits), np.stack(members), points, bank.trained - trained_before)
