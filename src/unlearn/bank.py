"""The model bank: every trained model (original, retrained oracle, audit reference) trained once.

A model is keyed by what determines its weights: dataset fingerprint, architecture and arguments,
recipe, the exact training indices and the seed. Weights are safetensors files named by the key;
an SQLite index records what is there. A model is written to a temporary file and renamed into
place before its index row is committed, so an interrupted write leaves neither a half file nor
a row. A per-key file lock makes two processes that want the same model train it once: the second
waits and then reads the first's result.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from unlearn.data import Dataset
from unlearn.models import Classifier, load_model, save_model
from unlearn.training import Recipe, default_arch_args, default_recipe, get_recipe, indices_digest
from unlearn.training import train as train_model


def default_root() -> Path:
    return Path(os.environ.get("UNLEARN_BANK", Path.home() / ".cache" / "unlearn" / "bank"))


@dataclass(frozen=True)
class ModelKey:
    dataset: str
    arch: str
    arch_args: dict
    recipe: dict
    indices_sha256: str
    n_train: int
    seed: int

    @property
    def digest(self) -> str:
        blob = json.dumps(self.__dict__, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


class ModelBank:
    """Content-addressed cache of trained models under `root` (default `$UNLEARN_BANK`)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_root()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "models").mkdir(exist_ok=True)
        (self.root / "locks").mkdir(exist_ok=True)
        self.trained = 0  # models this bank object trained (the rest were served from disk)
        self._create_index()

    def _create_index(self, attempts: int = 100) -> None:
        """The index table, in WAL mode (a property of the file: set once, kept by every connection).

        Switching a new file to WAL takes an exclusive lock that SQLite's busy timeout does not wait
        for, so processes opening a fresh bank at the same moment (two test workers, Ray workers)
        got "database is locked": retry instead."""
        for attempt in range(attempts):
            try:
                with self._db() as db:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("CREATE TABLE IF NOT EXISTS models (key TEXT PRIMARY KEY, file TEXT NOT NULL, "
                               "spec TEXT NOT NULL, seconds REAL, created REAL)")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or attempt == attempts - 1:
                    raise
                time.sleep(0.05)

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.root / "index.sqlite", timeout=60)

    def key(self, dataset: Dataset, arch: str, indices, recipe: Recipe, seed: int, arch_args: dict) -> ModelKey:
        indices = np.sort(np.asarray(indices, dtype=np.int64))
        return ModelKey(dataset.fingerprint, arch, dict(arch_args), recipe.to_dict(), indices_digest(indices),
                        int(len(indices)), int(seed))

    def lookup(self, key: ModelKey) -> tuple[Path, float] | None:
        with self._db() as db:
            row = db.execute("SELECT file, seconds FROM models WHERE key = ?", (key.digest,)).fetchone()
        if row is None:
            return None
        path = self.root / "models" / row[0]
        return (path, row[1]) if path.exists() else None

    def __contains__(self, key: ModelKey) -> bool:
        return self.lookup(key) is not None

    def __len__(self) -> int:
        with self._db() as db:
            return db.execute("SELECT COUNT(*) FROM models").fetchone()[0]

    def lock(self, key: ModelKey) -> FileLock:
        """The per-key lock: whoever holds it trains the model while others wait for the result."""
        return FileLock(self.root / "locks" / f"{key.digest}.lock")

    def put(self, key: ModelKey, model, seconds: float, save: Callable[[object, Path], object] = save_model,
            suffix: str = ".safetensors") -> Path:
        """Store `model` under `key`; `save` (atomic) writes it, e.g. a language model's directory (suffix "")."""
        path = self.root / "models" / f"{key.digest}{suffix}"
        save(model, path)  # atomic: temp file or directory + rename
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?)",
                       (key.digest, path.name, json.dumps(key.__dict__), seconds, time.time()))
        return path

    def get(self, dataset: Dataset, arch: str, indices=None, recipe: str | Recipe | dict | None = None,
            seed: int = 0, device: str | torch.device = "cpu", arch_args: dict | None = None,
            progress: bool | None = None, trainer: Callable[..., Classifier] | None = None,
            name: str | None = None) -> Classifier:
        """The model trained with these settings: from the bank if present, else trained and stored."""
        model, _ = self.get_with_time(dataset, arch, indices, recipe, seed, device, arch_args, progress, trainer, name)
        return model

    def get_with_time(self, dataset: Dataset, arch: str, indices=None, recipe=None, seed: int = 0,
                      device: str | torch.device = "cpu", arch_args: dict | None = None,
                      progress: bool | None = None, trainer: Callable[..., Classifier] | None = None,
                      name: str | None = None) -> tuple[Classifier, float]:
        """Like `get`, also returning the seconds the model took to train (when it was trained)."""
        recipe_obj = get_recipe(recipe if recipe is not None else default_recipe(dataset))
        arch_args = default_arch_args(dataset.name, arch, arch_args)
        indices = np.arange(len(dataset.train)) if indices is None else np.asarray(indices, dtype=np.int64)
        key = self.key(dataset, arch, indices, recipe_obj, seed, arch_args)
        with self.lock(key):
            found = self.lookup(key)
            if found is not None:
                return load_model(found[0], dataset, device), found[1]
            start = time.perf_counter()
            model = (trainer or train_model)(arch, dataset, indices, recipe_obj, seed=seed, device=device,
                                             arch_args=arch_args, progress=progress, name=name)
            seconds = time.perf_counter() - start
            self.put(key, model, seconds)
            self.trained += 1
        return model.to(device), seconds
