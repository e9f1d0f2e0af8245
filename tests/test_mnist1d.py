"""The embedded default `mnist1d`: generated offline, deterministic, in [0, 1], and leaky.

The last test is the known answer that must fail when a membership attack is blind: on mnist1d
the original MLP (100% train, about 60% test accuracy) leaks, a model retrained without D_F
does not. Measured with 4 reference models, seed 0: original loss-MIA 71, RMIA about 85;
retrained about 50 on both.
"""

import numpy as np
import pytest
import torch

from unlearn import audit, data, models
from unlearn.errors import UnlearnInputError
from unlearn.training import default_arch, default_recipe


def test_shape_size_range_and_classes(mnist1d):
    assert (len(mnist1d.train), len(mnist1d.test)) == (4000, 1000)
    assert mnist1d.input_shape == (1, 40) and mnist1d.num_classes == 10
    for part in (mnist1d.train, mnist1d.test):
        assert part.x.dtype == part.inputs().dtype
        assert 0.0 <= float(part.x.min()) and float(part.x.max()) <= 1.0
        # every class present in both splits, roughly balanced (the generator draws 500 per class)
        counts = np.bincount(part.y.numpy(), minlength=10)
        assert counts.min() > 0.8 * len(part) / 10


def test_generation_is_deterministic_cached_and_leaves_numpy_alone(tmp_path, monkeypatch, mnist1d):
    monkeypatch.setenv("UNLEARN_CACHE", str(tmp_path))
    np.random.seed(123)
    expected_draw = np.random.rand()
    np.random.seed(123)
    fresh = data.load("mnist1d")  # generated again into an empty cache
    assert np.random.rand() == expected_draw  # the generator's global reseeding was undone
    assert fresh.fingerprint == mnist1d.fingerprint
    assert list((tmp_path / "datasets").glob("mnist1d-*.npz"))
    assert data.load("mnist1d").fingerprint == mnist1d.fingerprint  # from the cache


def test_a_different_generator_seed_gives_different_data(mnist1d):
    assert data.load("mnist1d", seed=7).fingerprint != mnist1d.fingerprint


def test_defaults_follow_the_data_not_its_name(mnist1d):
    assert (default_arch(mnist1d), default_recipe(mnist1d)) == ("mlp", "mnist1d")
    renamed = data.Dataset("imagefolder:/somewhere/signals", mnist1d.train, mnist1d.test, mnist1d.classes, "x")
    assert (default_arch(renamed), default_recipe(renamed)) == ("mlp", "mnist1d")
    images = data.ArrayDataset(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.zeros(4, dtype=torch.long))
    photos = data.Dataset("imagefolder:/somewhere/photos", images, images, tuple("0123456789"), "y")
    assert (default_arch(photos), default_recipe(photos)) == ("cnn", "cifar10-cpu")


def test_cnn1d_takes_signals_and_refuses_images(mnist1d):
    net = models.create("cnn1d", mnist1d)
    assert net(mnist1d.test.inputs()[:5]).shape == (5, 10)
    with pytest.raises(UnlearnInputError, match="signals shaped"):
        models.build("cnn1d", 10, (3, 32, 32))


def test_membership_leaks_on_the_original_and_not_after_retraining(mnist1d, mnist1d_split, mnist1d_original,
                                                                   mnist1d_retrained, bank):
    evaluation = data.split_holdout(mnist1d.test.y.numpy(), seed=0)[1]
    results = {name: audit.evaluate(model, mnist1d, mnist1d_split, attacks=("acc", "loss", "rmia"), bank=bank,
                                    n_reference=4, seed=0, evaluation=evaluation)
               for name, model in (("original", mnist1d_original), ("retrained", mnist1d_retrained))}
    original, retrained = results["original"], results["retrained"]
    assert original["acc"]["retain"] >= 99.0 and original["acc"]["test"] < 75  # it fits and overfits
    assert original["loss"]["auc"] > 65 and original["rmia"]["auc"] > 70
    for attack in ("loss", "rmia"):
        assert abs(retrained[attack]["auc"] - 50) < 6, attack
