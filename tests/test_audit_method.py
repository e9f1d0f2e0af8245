"""Audits that judge a method from many models: U-LiRA and the NeurIPS 2023 ε score, on mnist1d.

mnist1d is the data set on which membership leaks, so an unlearner that does nothing must be told
apart from Retrain. To keep the cost of many models low, the training split is a stratified
1,000-sample subset (MLP, the mnist1d recipe: about 1.5 s per model on one idle core).
"""

import copy

import numpy as np
import pytest

from unlearn import audit, data, methods
from unlearn.errors import UnlearnInputError
from unlearn.experiments.jobs import dataset_of


class DoNothing:
    """An unlearner that returns the model unchanged: the worst case every audit must flag."""

    def unlearn(self, model, forget, retain=None, **_context):
        return copy.deepcopy(model)


@pytest.fixture(scope="module")
def mnist1d_small():
    return dataset_of("mnist1d", None, 1000, 0)


@pytest.fixture(scope="module")
def small_split(mnist1d_small):
    return data.random_forget(len(mnist1d_small.train), fraction=0.1, seed=0)


def test_epsilon_score_tells_a_do_nothing_unlearner_from_retrain(mnist1d_small, small_split, bank):
    kw = {"n_models": 4, "bank": bank, "progress": False}
    retrain = audit.epsilon_score(methods.get("retrain"), mnist1d_small, small_split, "mlp", "mnist1d", **kw)
    nothing = audit.epsilon_score(DoNothing(), mnist1d_small, small_split, "mlp", "mnist1d", **kw)
    # The do-nothing models fit D_F, the retrained ones do not: most forget examples are perfectly
    # separated (ε = ∞). Retrain against retrained models separates few by chance with 4 models.
    assert nothing["separated"] > 50 > retrain["separated"]
    assert retrain["score"] > 2 * nothing["score"]
    assert retrain["ra_ratio"] == pytest.approx(1.0, abs=0.02)
    assert 0 <= nothing["score"] <= 100 and retrain["n_models"] == 4


def test_epsilon_score_compares_with_independent_retrains(mnist1d_small, small_split, bank):
    """Retrain's models (seeds 0..N−1) and the retrained models it is compared with (seeds 1,000 + i)
    are independent samples: by chance some forget examples look apart, so Retrain's own score is
    not a trivial 100 (were they the same models, no attack would beat chance and F would be 100)."""
    retrain = audit.epsilon_score(methods.get("retrain"), mnist1d_small, small_split, "mlp", "mnist1d",
                                  n_models=4, bank=bank, progress=False)
    assert retrain["max_finite_epsilon"] > 0 and retrain["forgetting_quality"] < 100
    assert retrain["buckets"] == 4  # 2⌈ln 3⌉


def test_ulira_tells_a_do_nothing_unlearner_from_retrain(mnist1d_small, bank):
    kw = {"arch_args": None, "recipe": "mnist1d", "bank": bank, "n_shadow": 4, "n_targets": 64, "progress": False}
    retrain = audit.ulira(methods.get("retrain"), mnist1d_small, "mlp", **kw)
    nothing = audit.ulira(DoNothing(), mnist1d_small, "mlp", **kw)
    assert nothing["accuracy"] > 70  # the per-target test sees the trained-in targets
    assert abs(retrain["accuracy"] - 50) < 12  # 128 decisions per side with 4 shadows
    assert nothing["accuracy"] > retrain["accuracy"] + 15


class Recording(DoNothing):
    """Does nothing, and keeps the size of every request it gets."""

    def __init__(self):
        self.requests = []

    def unlearn(self, model, forget, retain=None, **context):
        self.requests.append((len(forget), len(retain)))
        return super().unlearn(model, forget, retain)


def test_ulira_asks_each_shadow_to_forget_the_requested_number_of_points(mnist1d_small, bank):
    kw = {"arch_args": None, "recipe": "mnist1d", "bank": bank, "n_shadow": 4, "n_targets": 64, "progress": False}
    method = Recording()
    result = audit.ulira(method, mnist1d_small, "mlp", forget_size=100, **kw)
    # Each shadow trains on 1,000 points; it forgets its 32 targets and 68 others.
    assert method.requests == [(100, 900)] * 4 and result["forget_size"] == 100
    earlier = Recording()
    audit.ulira(earlier, mnist1d_small, "mlp", **kw)
    assert earlier.requests == [(32, 968)] * 4  # without forget_size: the half of the targets alone
    with pytest.raises(UnlearnInputError, match="forget_size"):
        audit.ulira(method, mnist1d_small, "mlp", forget_size=20, **kw)


def test_evaluate_runs_ulira_and_epsilon_for_a_method(mnist1d_small, small_split, bank):
    original = bank.get(mnist1d_small, "mlp", None, "mnist1d", seed=0, progress=False)
    result = audit.evaluate(original, mnist1d_small, small_split, attacks=("acc", "ulira", "epsilon"), bank=bank,
                            method=DoNothing(), n_models=4, n_shadow=4)
    assert {"accuracy", "n_shadow", "n_targets"} <= set(result["ulira"])
    assert result["ulira"]["forget_size"] == len(small_split.forget)  # U-LiRA's request: the audited size
    assert {"score", "forgetting_quality", "separated", "median_epsilon"} <= set(result["epsilon"])
    assert np.isfinite(result["epsilon"]["score"])


def test_bench_records_ulira_epsilon_and_relearning_per_method(tmp_path, bank):
    """A protocol with `ulira`, `epsilon` and `relearn`: every record carries the figures and the
    summary has their columns (digits, a tiny MLP recipe, so the extra models cost little)."""
    import json

    import yaml

    from unlearn.experiments import parse_config, run_bench

    raw = {"name": "tiny-method-audits", "dataset": "digits", "model": {"arch": "mlp", "args": {"hidden": [64]}},
           "recipe": {"lr": 0.05, "epochs": 8, "batch_size": 64, "schedule": "onecycle", "weight_decay": 0.0},
           "forget": [{"name": "r10", "kind": "random", "fraction": 0.1, "seeds": [0]}], "settings": ["with_retain"],
           "methods": {"retrain": None, "ft": {"lr": 0.01, "epochs": 1}},
           "audit": {"attacks": ["acc", "ulira", "epsilon", "relearn"], "n_models": 3, "n_shadow": 4},
           # no gap to tune against (neither RMIA nor MIS) and no reference rows: the method audits only
           "tune": {"trials": 0}, "reference_rows": []}
    config = parse_config(yaml.safe_dump(raw, sort_keys=False))
    result = run_bench(config, tmp_path / "run", bank=bank, progress=False)
    assert not result.crashed
    records = [json.loads(p.read_text()) for p in (tmp_path / "run" / "runs").glob("*.json")]
    assert sorted(r["method"] for r in records) == ["ft", "retrain"]
    for r in records:
        assert 0 <= r["flat"]["ulira.accuracy"] <= 100 and 0 <= r["flat"]["epsilon.score"] <= 100
        assert "relearn.after" in r["flat"]
    ft = next(r for r in records if r["method"] == "ft")
    assert ft["flat"]["relearn.excess"] == ft["flat"]["relearn.after"] - ft["flat"]["relearn.reference_after"]
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "U-LiRA acc" in summary and "ε score" in summary and "relearn FA" in summary
