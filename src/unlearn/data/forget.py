"""Forget sets: which training indices a model must forget, made, saved, loaded and validated.

A forget set is an int64 index array into the training split. On disk it is a CSV file with an
`index` column (other columns are ignored), so users can write one by hand or from a database.
Every forget set passes through `validate_forget`, the one place that checks them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unlearn.errors import UnlearnInputError
from unlearn.files import atomic_path


@dataclass(frozen=True)
class ForgetSplit:
    """Forget and retain indices into a training set of `n_train` samples (disjoint, covering)."""

    forget: np.ndarray
    retain: np.ndarray

    @classmethod
    def from_forget(cls, forget, n_train: int) -> ForgetSplit:
        forget = validate_forget(forget, n_train)
        keep = np.ones(n_train, dtype=bool)
        keep[forget] = False
        return cls(forget, np.flatnonzero(keep).astype(np.int64))


def validate_forget(indices, n_train: int, source: str = "forget set") -> np.ndarray:
    """Return the indices as a sorted int64 array, or raise naming what is wrong with them."""
    arr = np.asarray(indices)
    if arr.size == 0:
        raise UnlearnInputError(f"{source} is empty")
    if arr.ndim != 1:
        raise UnlearnInputError(f"{source} must be one-dimensional, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise UnlearnInputError(f"{source} must hold integer indices, got {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = arr[(arr < 0) | (arr >= n_train)]
    if bad.size:
        raise UnlearnInputError(
            f"{source} has {bad.size} indices outside the training set [0, {n_train}), e.g. {int(bad[0])}"
        )
    uniq, counts = np.unique(arr, return_counts=True)
    if (counts > 1).any():
        raise UnlearnInputError(f"{source} has duplicate indices, e.g. {int(uniq[counts > 1][0])}")
    if uniq.size == n_train:
        raise UnlearnInputError(f"{source} covers the whole training set; nothing would be left to retain")
    return uniq


def random_forget(n_train: int, fraction: float | None = None, count: int | None = None,
                  seed: int = 0) -> ForgetSplit:
    """A uniformly random forget set of `fraction` of the training set or exactly `count` samples."""
    if (fraction is None) == (count is None):
        raise UnlearnInputError("give exactly one of fraction or count for a random forget set")
    if fraction is not None:
        if not 0 < fraction < 1:
            raise UnlearnInputError(f"forget fraction must lie in (0, 1), got {fraction}")
        count = max(1, int(round(fraction * n_train)))
    if not 0 < count < n_train:
        raise UnlearnInputError(f"forget count must lie in [1, {n_train - 1}], got {count}")
    rng = np.random.default_rng(seed)
    return ForgetSplit.from_forget(rng.choice(n_train, size=count, replace=False), n_train)


def class_forget(labels, classes) -> ForgetSplit:
    """Forget every training sample of the given classes."""
    labels = np.asarray(labels)
    classes = np.atleast_1d(np.asarray(classes))
    missing = [int(c) for c in classes if not (labels == c).any()]
    if missing:
        raise UnlearnInputError(f"classes {missing} have no training samples")
    return ForgetSplit.from_forget(np.flatnonzero(np.isin(labels, classes)), len(labels))


def load_forget_csv(path, n_train: int) -> ForgetSplit:
    """Read a CSV with an `index` column and validate it against a training set of `n_train`."""
    path = Path(path)
    if not path.is_file():
        raise UnlearnInputError(f"forget file {str(path)!r} does not exist")
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "index" not in [h.strip() for h in reader.fieldnames]:
                raise UnlearnInputError(f"{path}: forget CSV needs an 'index' column, found {reader.fieldnames}")
            key = next(h for h in reader.fieldnames if h.strip() == "index")
            values = [row[key].strip() for row in reader]
    except UnicodeDecodeError as err:
        raise UnlearnInputError(f"{path}: not a text CSV file") from err
    try:
        indices = np.array([int(v) for v in values], dtype=np.int64)
    except ValueError as err:
        raise UnlearnInputError(f"{path}: 'index' column has a value that is not an integer ({err})") from err
    return ForgetSplit.from_forget(indices, n_train) if indices.size else _empty(path)


def _empty(path):
    raise UnlearnInputError(f"{path}: forget set is empty")


def save_forget_csv(path, indices) -> Path:
    """Write indices as a CSV with an `index` column, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        f.write("index\n")
        f.writelines(f"{int(i)}\n" for i in np.asarray(indices))
    return path


def as_index_tensor(indices) -> torch.Tensor:
    return torch.as_tensor(np.asarray(indices), dtype=torch.long)


def split_holdout(labels, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified halves of the test split: (validation, evaluation) index arrays.

    Methods that need known non-members (SG's auditor) may use the validation half only; the
    evaluation half is never touched by a method and is left for the final audit.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    validation, evaluation = train_test_split(np.arange(len(labels)), test_size=0.5, stratify=labels,
                                              random_state=seed)
    return np.sort(validation), np.sort(evaluation)
