import os
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearn import data
from unlearn.errors import UnlearnInputError


def test_digits_split_is_fixed_and_stratified(digits):
    again = data.load("digits")
    assert torch.equal(digits.train.y, again.train.y) and digits.fingerprint == again.fingerprint
    assert len(digits.train) + len(digits.test) == 1797
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    train_share = np.bincount(digits.train.y.numpy()) / len(digits.train)
    test_share = np.bincount(digits.test.y.numpy()) / len(digits.test)
    assert np.abs(train_share - test_share).max() < 0.01
    assert 0.0 <= float(digits.train.x.min()) and float(digits.train.x.max()) <= 1.0


@pytest.mark.cifar
def test_cifar10_tarball_loads_in_standard_order(cifar10):
    assert (len(cifar10.train), len(cifar10.test)) == (50000, 10000)
    assert cifar10.input_shape == (3, 32, 32) and cifar10.train.x.dtype == torch.uint8
    assert cifar10.classes[0] == "airplane" and cifar10.classes[-1] == "truck"
    assert torch.equal(torch.bincount(cifar10.train.y), torch.full((10,), 5000))
    assert torch.equal(torch.bincount(cifar10.test.y), torch.full((10,), 1000))
    # JPEG q75 copy: per-channel mean close to the original CIFAR-10's (data README).
    mean = cifar10.train.x.float().div(255).mean((0, 2, 3))
    assert torch.allclose(mean, torch.tensor([0.4914, 0.4822, 0.4465]), atol=0.005)


@pytest.mark.cifar
def test_imagefolder_cache_is_reused_and_invalidated(cifar10_path, tmp_path, monkeypatch):
    import tarfile
    import time

    monkeypatch.setenv("UNLEARN_CACHE", str(tmp_path / "cache"))
    # A small image folder cut from the real archive: 3 classes, a few images each.
    folder = tmp_path / "mini"
    with tarfile.open(cifar10_path) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.split("/")[1] in ("bird", "cat", "dog")
                   and int(m.name.split("/")[-1][:4]) < 5]
        tar.extractall(folder, members=members, filter="data")
    first = data.load(f"imagefolder:{folder}")
    assert first.classes == ("bird", "cat", "dog") and len(first.train) == 15 and len(first.test) == 15
    assert len(list((tmp_path / "cache" / "datasets").glob("*.npz"))) == 1
    second = data.load(f"imagefolder:{folder}")
    assert torch.equal(first.train.x, second.train.x) and first.fingerprint == second.fingerprint
    time.sleep(0.01)
    # The same images elsewhere, with new modification times, are the same data set: same fingerprint
    # (it keys the model bank and job records), although the decode cache is keyed by path and time.
    import shutil

    moved = tmp_path / "elsewhere" / "mini"
    shutil.copytree(folder, moved)
    for f in moved.rglob("*.jpg"):
        os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    assert data.load(f"imagefolder:{moved}").fingerprint == first.fingerprint
    assert len(list((tmp_path / "cache" / "datasets").glob("*.npz"))) == 2
    victim = sorted((folder / "train" / "cat").glob("*.jpg"))[0]
    victim.unlink()
    third = data.load(f"imagefolder:{folder}")
    assert len(third.train) == 14 and third.fingerprint != first.fingerprint


def test_random_forget_is_seeded_disjoint_and_sized():
    a = data.random_forget(1000, fraction=0.1, seed=3)
    b = data.random_forget(1000, fraction=0.1, seed=3)
    c = data.random_forget(1000, fraction=0.1, seed=4)
    assert np.array_equal(a.forget, b.forget) and not np.array_equal(a.forget, c.forget)
    assert len(a.forget) == 100 and len(a.retain) == 900
    assert np.intersect1d(a.forget, a.retain).size == 0
    assert len(data.random_forget(50, count=7, seed=0).forget) == 7


def test_class_forget_takes_whole_classes(digits):
    split = data.class_forget(digits.train.y.numpy(), [3, 5])
    labels = digits.train.y.numpy()
    assert set(labels[split.forget]) == {3, 5} and not np.isin(labels[split.retain], [3, 5]).any()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 199), min_size=1, max_size=150, unique=True))
def test_forget_csv_round_trips(tmp_path_factory, indices):
    path = tmp_path_factory.mktemp("csv") / "forget.csv"
    data.save_forget_csv(path, indices)
    loaded = data.load_forget_csv(path, 200)
    assert np.array_equal(loaded.forget, np.sort(indices))
    assert len(loaded.forget) + len(loaded.retain) == 200


@pytest.mark.parametrize("content, message", [
    ("index\n", "empty"),
    ("index\n1\n1\n", "duplicate"),
    ("index\n5\n200\n", "outside the training set"),
    ("index\n-1\n", "outside the training set"),
    ("idx\n1\n", "'index' column"),
    ("index\n1\nabc\n", "not an integer"),
])
def test_bad_forget_csv_is_refused_with_reason(tmp_path, content, message):
    path = tmp_path / "forget.csv"
    path.write_text(content)
    with pytest.raises(UnlearnInputError, match=message):
        data.load_forget_csv(path, 200)
    assert path.read_text() == content  # never modified


def test_forget_set_equal_to_training_set_is_refused():
    with pytest.raises(UnlearnInputError, match="whole training set"):
        data.validate_forget(np.arange(10), 10)
    with pytest.raises(UnlearnInputError, match=r"\(0, 1\)"):
        data.random_forget(10, fraction=1.0)


def test_augmentation_is_seeded_and_shape_preserving():
    x = torch.rand(64, 3, 8, 8)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a = data.augment(x, g1, crop_padding=2, flip=True)
    b = data.augment(x, g2, crop_padding=2, flip=True)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    # Flip only: every output is the input or its mirror image.
    f = data.random_flip(x, torch.Generator().manual_seed(1))
    same = (f == x).flatten(1).all(1) | (f == x.flip(3)).flatten(1).all(1)
    assert same.all()
    # Crop with zero offset pattern: the centre crop of a padded image is the image itself;
    # every crop is a shifted copy, so pixel sums can only drop (zeros padded in).
    c = data.random_crop(x, 2, torch.Generator().manual_seed(2))
    assert (c.flatten(1).sum(1) <= x.flatten(1).sum(1) + 1e-4).all()
    # Restricting to some samples leaves the others untouched.
    apply = torch.arange(64) % 2 == 0
    m = data.augment(x, torch.Generator().manual_seed(0), crop_padding=2, flip=True, apply=apply)
    assert torch.equal(m[~apply], x[~apply])


def test_optional_loader_without_its_package_says_what_to_install():
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed here; the message is for machines without it")
    with pytest.raises(UnlearnInputError, match="pip install torchvision"):
        data.load("torchvision:cifar10")


def test_random_forget_bounds_and_defaults():
    # Found by the mutation check (docs/testing.md): the default seed, the smallest set and the
    # refused fractions were not pinned.
    assert np.array_equal(data.random_forget(100, fraction=0.1).forget, data.random_forget(100, 0.1, seed=0).forget)
    assert len(data.random_forget(1000, fraction=0.0004).forget) == 1  # rounds to 0, at least one sample
    for bad in (0.0, 1.0):
        with pytest.raises(UnlearnInputError, match=r"fraction must lie in \(0, 1\)"):
            data.random_forget(100, fraction=bad)
    assert len(data.random_forget(100, count=1).forget) == 1 and len(data.random_forget(100, count=99).forget) == 99
    for bad in (0, 100):
        with pytest.raises(UnlearnInputError, match=re.escape("forget count must lie in [1, 99]")):
            data.random_forget(100, count=bad)
    for both_or_neither in ({}, {"fraction": 0.1, "count": 5}):
        with pytest.raises(UnlearnInputError, match="exactly one of fraction or count"):
            data.random_forget(100, **both_or_neither)


def test_split_holdout_gives_stratified_halves_that_depend_on_the_seed():
    labels = np.repeat(np.arange(5), 40)
    validation, evaluation = data.split_holdout(labels, seed=0)
    assert len(validation) == len(evaluation) == 100 and not set(validation) & set(evaluation)
    assert (np.bincount(labels[validation]) == 20).all()  # stratified: each class halved
    assert np.array_equal(data.split_holdout(labels, seed=0)[0], validation)
    assert not np.array_equal(data.split_holdout(labels, seed=1)[0], validation)
