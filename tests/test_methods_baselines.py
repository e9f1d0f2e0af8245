"""Baselines on digits: real models from the session bank, real numbers, no mocks."""

from __future__ import annotations

import pytest
import torch

from unlearn import data, methods, models
from unlearn.cli import main
from unlearn.errors import DivergenceError, UnlearnInputError

BASELINES = ["retrain", "ft", "rl", "ga", "neggrad+", "bs", "l1-sparse", "salun", "scrub", "sisa"]


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def sets(digits, digits_split):
    return digits.train.subset(digits_split.forget), digits.train.subset(digits_split.retain)


def test_every_baseline_is_registered():
    missing = [name for name in BASELINES if name not in methods.available()]
    assert not missing, f"not registered: {missing}"


def test_retrain_is_the_bank_oracle_and_direct_training_gives_the_same_weights(
        digits, digits_split, digits_original, digits_retrained, bank, sets):
    forget, retain = sets
    before = bank.trained
    served = methods.get("retrain").unlearn(digits_original, forget, retain, bank=bank, dataset=digits,
                                            split=digits_split)
    assert bank.trained == before  # the conftest oracle was reused, not trained again
    direct = methods.get("retrain").unlearn(digits_original, forget, retain)
    assert same_weights(weights(served), weights(digits_retrained))
    assert same_weights(weights(direct), weights(digits_retrained))


@pytest.mark.parametrize("name", ["ft", "rl"])
def test_ft_and_rl_keep_test_accuracy_and_leave_the_input_alone(name, digits, digits_original, sets):
    forget, retain = sets
    before = weights(digits_original)
    new = methods.get(name).unlearn(digits_original, forget, retain, seed=1)
    assert same_weights(weights(digits_original), before)
    assert not same_weights(weights(new), before)
    assert abs(models.accuracy(new, digits.test) - models.accuracy(digits_original, digits.test)) < 3.0


def test_ga_lowers_forget_accuracy(digits_original, sets):
    forget, _ = sets
    new = methods.get("ga", lr=0.3, epochs=5).unlearn(digits_original, forget)
    assert models.accuracy(new, forget) < models.accuracy(digits_original, forget) - 10


def test_rl_without_retain_uses_only_the_forget_set(digits_original, sets):
    forget, retain = sets
    new = methods.get("rl").unlearn(digits_original, forget, None)
    assert models.accuracy(new, forget) < models.accuracy(digits_original, forget)


@pytest.mark.parametrize("name", ["retrain", "ft", "l1-sparse"])
def test_methods_that_need_the_retain_set_refuse_to_run_without_it(name, digits_original, sets):
    forget, _ = sets
    with pytest.raises(UnlearnInputError, match="retain"):
        methods.get(name).unlearn(digits_original, forget, None)


def test_divergence_names_method_and_step_and_leaves_the_model_untouched(digits_original, sets):
    forget, _ = sets
    before = weights(digits_original)
    with pytest.raises(DivergenceError, match=r"^ga: loss became .* at step \d+") as info:
        methods.get("ga", lr=1e8).unlearn(digits_original, forget)
    assert info.value.method == "ga" and info.value.step >= 0
    assert same_weights(weights(digits_original), before)


def test_unknown_hyperparameter_is_refused():
    with pytest.raises(UnlearnInputError, match="no hyperparameter"):
        methods.get("ft", learning_rate=0.1)


def _cli(args, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out + captured.err


def test_cli_forget_writes_a_loadable_model(tmp_path, digits, digits_split, digits_original, capsys):
    model_file = models.save_model(digits_original, tmp_path / "original.safetensors")
    forget_csv = data.save_forget_csv(tmp_path / "forget.csv", digits_split.forget)
    out = tmp_path / "ga.safetensors"
    code, text = _cli(["forget", "--model", str(model_file), "--forget", str(forget_csv), "--method", "ga",
                       "--no-retain", "--set", "lr=0.3", "--out", str(out)], capsys)
    assert code == 0, text
    new = models.load_model(out, digits)
    forget = digits.train.subset(digits_split.forget)
    assert models.accuracy(new, forget) < models.accuracy(digits_original, forget) - 10
    assert '"method": "ga"' in new.spec["training"]["unlearning"]


def test_cli_forget_refuses_bad_requests_with_exit_2(tmp_path, digits_split, digits_original, capsys):
    model_file = models.save_model(digits_original, tmp_path / "original.safetensors")
    forget_csv = data.save_forget_csv(tmp_path / "forget.csv", digits_split.forget)
    base = ["forget", "--model", str(model_file), "--forget", str(forget_csv), "--out", str(tmp_path / "o.st")]
    code, text = _cli(base + ["--method", "ft", "--no-retain"], capsys)
    assert code == 2 and "ft needs the retain set" in text
    code, text = _cli(base + ["--method", "nope"], capsys)
    assert code == 2 and "unknown method" in text
    code, text = _cli(base + ["--method", "ga", "--set", "lr=1.0e+8"], capsys)
    assert code == 2 and "ga: loss became" in text
    assert not (tmp_path / "o.st").exists()
