"""SISA on digits: exact deletion (known answer: the ensemble trained from scratch without the points)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.ensemble import RandomForestClassifier

from unlearn import data, methods, models
from unlearn.cli import main
from unlearn.errors import UnlearnInputError
from unlearn.methods.sisa import SISA
from unlearn.training import get_recipe

QUICK = get_recipe("digits").with_(epochs=8)


def same_models(a: SISA, b: SISA) -> bool:
    return all((ma is None) == (mb is None) for ma, mb in zip(a.models_, b.models_)) and all(
        torch.equal(x, y) for ma, mb in zip(a.models_, b.models_) if ma is not None
        for x, y in zip(ma.state_dict().values(), mb.state_dict().values()))


@pytest.fixture(scope="module")
def deletion(digits):
    rng = np.random.default_rng(3)
    return rng.choice(len(digits.train), size=4, replace=False)


@pytest.mark.parametrize("aggregation", ["vote", "mean"])
def test_torch_sisa_deletion_equals_training_from_scratch_without_the_points(digits, deletion, aggregation):
    sisa = SISA("mlp", shards=4, slices=3, aggregation=aggregation, recipe=QUICK, seed=1).fit(digits)
    record = sisa.delete(deletion)
    remaining = np.setdiff1d(np.arange(len(digits.train)), deletion)
    scratch = SISA("mlp", shards=4, slices=3, aggregation=aggregation, recipe=QUICK, seed=1).fit(digits, remaining)
    assert same_models(sisa, scratch)
    assert torch.equal(sisa.predict(digits.test), scratch.predict(digits.test))
    assert torch.equal(sisa.predict_proba(digits.test), scratch.predict_proba(digits.test))
    assert record["shards_retrained"] == len(np.unique(sisa.shard_[deletion]))
    assert 0 < record["sample_passes"] < record["full_sample_passes"] == scratch.fit_sample_passes_
    assert 100 * (sisa.predict(digits.test) == digits.test.y).float().mean() > 85


def test_deleting_from_a_late_slice_costs_less_than_from_the_first(digits):
    sisa = SISA("mlp", shards=3, slices=4, recipe=QUICK, seed=2).fit(digits)
    shard0 = np.flatnonzero(sisa.shard_ == 0)
    late = shard0[sisa.slice_[shard0] == 3][:1]
    early = shard0[sisa.slice_[shard0] == 0][:1]
    late_cost = sisa.delete(late)["sample_passes"]
    early_cost = sisa.delete(early)["sample_passes"]
    assert late_cost < early_cost


def test_sklearn_estimator_deletion_is_exact_too(digits, deletion):
    forest = RandomForestClassifier(n_estimators=20)
    sisa = SISA(forest, shards=4, aggregation="mean", seed=0).fit(digits)
    record = sisa.delete(deletion)
    remaining = np.setdiff1d(np.arange(len(digits.train)), deletion)
    scratch = SISA(forest, shards=4, aggregation="mean", seed=0).fit(digits, remaining)
    assert torch.equal(sisa.predict_proba(digits.test), scratch.predict_proba(digits.test))
    assert record["fraction_of_full_retrain"] < 1.0
    assert not hasattr(forest, "estimators_")  # the user's estimator is cloned, never fitted


def test_bad_requests_are_refused(digits):
    sisa = SISA(RandomForestClassifier(n_estimators=5), shards=2, seed=0).fit(digits, np.arange(100))
    with pytest.raises(UnlearnInputError, match="not in the ensemble"):
        sisa.delete([500])
    sisa.delete([3])
    with pytest.raises(UnlearnInputError, match="not in the ensemble"):
        sisa.delete([3])
    with pytest.raises(UnlearnInputError, match="duplicate"):
        sisa.delete([4, 4])
    with pytest.raises(UnlearnInputError, match="aggregation"):
        SISA("mlp", aggregation="median")
    with pytest.raises(UnlearnInputError, match="estimator"):
        SISA(42)


def test_registered_method_trains_its_own_ensemble_on_d_and_deletes_d_f(digits, digits_split, digits_original):
    forget, retain = digits.train.subset(digits_split.forget), digits.train.subset(digits_split.retain)
    with pytest.raises(UnlearnInputError, match="sisa needs the retain set"):
        methods.get("sisa").unlearn(digits_original, forget, None)
    method = methods.get("sisa", shards=3, slices=2)
    module = method.unlearn(digits_original, forget, retain, dataset=digits, split=digits_split)
    scratch = SISA("mlp", shards=3, slices=2, recipe=digits_original.spec["training"]["recipe"], seed=0)
    scratch.fit(digits, digits_split.retain)
    assert torch.equal(models.logits(module, digits.test).argmax(1), scratch.predict(digits.test))
    assert method.stats_["deletion"]["n_deleted"] == len(digits_split.forget)
    # Without the dataset context (as the benchmark runner calls it), D is D_R then D_F: still exact.
    local = methods.get("sisa", shards=3, slices=1, estimator="random-forest").unlearn(digits_original, forget,
                                                                                      retain)
    d = data.Dataset("digits", data.ArrayDataset(torch.cat([retain.x, forget.x]), torch.cat([retain.y, forget.y])),
                     digits.test, digits.classes, "", digits.mean, digits.std)
    scratch = SISA("random-forest", shards=3, slices=1, seed=0).fit(d, np.arange(len(retain)))
    assert torch.equal(models.logits(local, digits.test).argmax(1), scratch.predict(digits.test))


def test_cli_forget_with_sisa_writes_an_ensemble_and_its_cost(tmp_path, digits, digits_original, capsys):
    import json

    model_file = models.save_model(digits_original, tmp_path / "original.safetensors")
    forget_csv = data.save_forget_csv(tmp_path / "forget.csv", [1, 2, 3])
    out = tmp_path / "sisa.safetensors"
    with pytest.raises(SystemExit) as info:
        main(["forget", "--model", str(model_file), "--forget", str(forget_csv), "--method", "sisa",
              "--set", "shards=2", "--set", "slices=2", "--out", str(out)])
    assert info.value.code in (0, None), capsys.readouterr().err
    stats = json.loads((tmp_path / "sisa.safetensors.stats.json").read_text())
    assert stats["deletion"]["n_deleted"] == 3 and stats["deletion"]["cost_saved"] > 0
    loaded = SISA.load(out, digits)
    assert 100 * (loaded.predict(digits.test) == digits.test.y).float().mean() > 85
    with pytest.raises(UnlearnInputError, match="not an unlearn|without unlearn model metadata"):
        models.load_model(out, digits)  # a plain-model reader refuses the ensemble file clearly
