"""Known answer on real data that leaks: original far above 50, retrained near 50, on every MIA.

digits barely leaks membership (see test_audit.py), so this check uses a class-balanced CIFAR-10
subset (100 train / 50 test images per class, read straight from the archive: about 1,500 JPEG
decodes, not 60,000) and an MLP that fits it to 100% with ~30% test accuracy, the kind of
overfitted model whose membership every attack should see.
Measured (seed 0, 4 reference models): original loss 93.4, RMIA 95.1, LiRA 97.7, LiRA offline
93.9; retrained 52.7, 53.5, 55.0, 52.7.
"""

import io
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from unlearn import audit, data
from unlearn.data import ArrayDataset, Dataset

PER_CLASS_TRAIN, PER_CLASS_TEST = 100, 50
MIAS = ("loss", "rmia", "lira", "lira-offline")


def _images(path):
    """(split, class, file name, bytes) of the first images per class (files 0000.jpg, 0001.jpg, ...)."""
    wanted = {"train": PER_CLASS_TRAIN, "test": PER_CLASS_TEST}

    def keep(split, fname):
        return split in wanted and fname.split(".")[0].isdigit() and int(fname.split(".")[0]) < wanted[split]

    if path.is_dir():
        for p in sorted(path.glob("*/*/*")):
            if keep(p.parts[-3], p.name):
                yield p.parts[-3], p.parts[-2], p.name, p.read_bytes()
        return
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and len(parts) >= 3 and keep(parts[-3], parts[-1]):
                yield parts[-3], parts[-2], parts[-1], tar.extractfile(member).read()


@pytest.fixture(scope="module")
def cifar_mini(cifar10_path):
    records = {"train": [], "test": []}
    for split, cls, fname, blob in _images(cifar10_path):
        records[split].append((cls, fname, np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))))
    classes = sorted({cls for cls, _, _ in records["train"]})
    parts = {}
    for split, recs in records.items():
        recs.sort(key=lambda r: (classes.index(r[0]), r[1]))
        x = torch.from_numpy(np.stack([r[2] for r in recs]).transpose(0, 3, 1, 2).copy())
        parts[split] = ArrayDataset(x, torch.tensor([classes.index(r[0]) for r in recs]))
    assert len(parts["train"]) == 10 * PER_CLASS_TRAIN and len(parts["test"]) == 10 * PER_CLASS_TEST
    pixels = parts["train"].x.float() / 255
    return Dataset("cifar10-mini", parts["train"], parts["test"], tuple(classes),
                   f"cifar10-mini-{PER_CLASS_TRAIN}-{PER_CLASS_TEST}", tuple(pixels.mean((0, 2, 3)).tolist()),
                   tuple(pixels.std((0, 2, 3)).tolist()))


@pytest.mark.cifar
@pytest.mark.slow
def test_overfitted_original_is_caught_and_retrained_is_not(cifar_mini, bank):
    split = data.random_forget(len(cifar_mini.train), fraction=0.1, seed=0)
    attacks = ("acc", "mis", *MIAS)
    results = {}
    for name, indices in (("original", None), ("retrained", split.retain)):
        model = bank.get(cifar_mini, "mlp", indices, "digits", seed=0, progress=False)
        results[name] = audit.evaluate(model, cifar_mini, split, attacks=attacks, bank=bank, n_reference=4, seed=0)
    original, retrained = results["original"], results["retrained"]
    assert original["acc"]["retain"] == 100.0 and original["acc"]["test"] < 50  # it overfits
    for attack in MIAS:
        assert original[attack]["auc"] > 85, attack
        assert abs(retrained[attack]["auc"] - 50) < 8, attack
    assert original["rmia"]["tpr_at_1pct_fpr"] > 10 * max(retrained["rmia"]["tpr_at_1pct_fpr"], 1.0) / 2
    assert original["mis"]["mis"] < 10 < retrained["mis"]["mis"]
