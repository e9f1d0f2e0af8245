"""The contract every registered unlearning method keeps, checked over the whole registry.

Like scikit-learn's `check_estimator`: parametrised by `methods.available()`, so a method is held
to it the day it is registered, with no test written for it. The contract (methods/base.py):
- the model it is given is bit-identical afterwards (weights, buffers, mode, gradients);
- it returns a new model, in eval mode, that gives finite logits of the right shape;
- the same seed gives the same weights and the same outputs;
- an unknown hyperparameter, or a value of one it cannot use, is refused with an
  `UnlearnInputError` that names the hyperparameter, before any damage;
- an empty forget set is refused; a method that needs D_R refuses to run without it, and one that
  does not need it runs without it.

Cheap on purpose: a 32-unit MLP trained for 5 epochs on 300 digits, 20 of them forgotten, and the
few knobs that set a method's cost (epochs, PGD steps, shards) turned down where a method has them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearn import methods, models
from unlearn.errors import UnlearnInputError

REQUIRED = {"amun", "amun-salun", "sg", "sisa", "retrain"}
# Methods defined by training on D_R: they must say so (`requires_retain`), and are then held to refusing without it.
NEED_RETAIN = {"retrain", "ft", "l1-sparse", "sisa", "sg"}
# The original's recipe: retrain and sisa reuse it, so it is what sets their cost.
TINY_RECIPE = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "epochs": 5, "batch_size": 64,
               "schedule": "onecycle"}
# Knobs that set a method's cost, turned down wherever a method has them; everything else stays default.
CHEAP = {"epochs": 1, "attack_steps": 10, "calibration_samples": 20, "shards": 2, "slices": 1}
# Values no method can use for these conventional names, whatever else it takes.
OUT_OF_RANGE = {"lr": -0.1, "epochs": -1, "batch_size": 0}


@pytest.fixture(scope="module")
def tiny(digits, bank):
    train = np.arange(300)
    model = bank.get(digits, "mlp", train, TINY_RECIPE, seed=0, arch_args={"hidden": [32]}, progress=False)
    forget = digits.train.subset(train[:20])
    retain = digits.train.subset(train[20:])
    holdout = digits.test.subset(np.arange(60))  # known non-members, for methods that take them (sg)
    return model, forget, retain, holdout


def cheap(name: str) -> dict:
    known = methods.get_class(name).hyperparameters()
    return {k: v for k, v in CHEAP.items() if k in known}


def run(name, tiny, *, retain="given", seed=0, **hparams):
    model, forget, retain_set, holdout = tiny
    method = methods.get(name, **{**cheap(name), **hparams})
    return method.unlearn(model, forget, retain_set if retain == "given" else retain, seed=seed, holdout=holdout)


def snapshot(model: torch.nn.Module) -> dict:
    return {"state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "training": [m.training for m in model.modules()],
            "grad": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
            "requires_grad": [p.requires_grad for p in model.parameters()]}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def unusable_values(name: str) -> list[tuple[str, object]]:
    """(hyperparameter, value) pairs the method cannot use: a range no method allows for a
    conventional name, a word where a number or a flag belongs (YAML and `--set` give strings),
    and an unknown choice where a string choice belongs."""
    pairs = []
    for key, default in methods.get_class(name).hyperparameters().items():
        if key in OUT_OF_RANGE:
            pairs.append((key, OUT_OF_RANGE[key]))
        if isinstance(default, bool):
            pairs.append((key, "maybe"))
        elif isinstance(default, (int, float)):
            pairs.append((key, "fast"))
        elif isinstance(default, str):
            pairs.append((key, "no-such-choice"))
    return pairs


def test_the_registry_holds_the_methods_this_contract_must_cover():
    assert REQUIRED <= set(methods.available()), sorted(REQUIRED - set(methods.available()))
    assert {name for name in NEED_RETAIN if not methods.get_class(name).requires_retain} == set()


@pytest.mark.parametrize("name", methods.available())
def test_hyperparameters_are_stored_as_given(name):
    # scikit-learn's contract: constructor arguments kept as attributes of the same name, unchanged.
    defaults = methods.get_class(name).hyperparameters()
    assert methods.get(name).get_params() == defaults
    assert all(key.isidentifier() for key in defaults)


@pytest.mark.parametrize("name", methods.available())
def test_input_untouched_new_model_in_eval_mode_and_same_seed_same_weights(name, tiny):
    model, forget, _, holdout = tiny
    before = snapshot(model)
    first = run(name, tiny, seed=3)
    after = snapshot(model)
    assert same_state(after["state"], before["state"]), "the input model's weights or buffers changed"
    assert after["training"] == before["training"] and after["requires_grad"] == before["requires_grad"]
    assert all((a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
               for a, b in zip(after["grad"], before["grad"])), "gradients were left on the input model"

    assert first is not model and isinstance(first, torch.nn.Module)
    assert not any(m.training for m in first.modules()), "the returned model is not in eval mode"
    inputs = {id(p) for p in model.parameters()} | {p.data_ptr() for p in model.parameters()}
    assert not any(id(p) in inputs or (p.numel() and p.data_ptr() in inputs) for p in first.parameters())
    out = torch.cat([models.logits(first, forget), models.logits(first, holdout)])
    assert out.shape == (len(forget) + len(holdout), 10) and torch.isfinite(out).all()

    second = run(name, tiny, seed=3)
    assert same_state(first.state_dict(), second.state_dict()), "same seed, different weights"
    again = torch.cat([models.logits(second, forget), models.logits(second, holdout)])
    assert torch.equal(out, again), "same seed, different outputs"


@pytest.mark.parametrize("name", methods.available())
def test_unknown_hyperparameters_are_refused_by_name(name):
    with pytest.raises(UnlearnInputError, match="no_such_knob"):
        methods.get(name, no_such_knob=1)


@pytest.mark.parametrize("name", methods.available())
def test_unusable_hyperparameter_values_are_refused_by_name(name, tiny):
    model, *_ = tiny
    before = snapshot(model)["state"]
    wrong = []  # every value the method mishandles, so one run lists them all
    for key, value in unusable_values(name):
        try:
            run(name, tiny, **{key: value})
        except UnlearnInputError as err:
            if key not in str(err):
                wrong.append(f"{key}={value!r} refused without naming it: {err}")
        except Exception as err:  # noqa: BLE001  a crash deep inside is what the contract forbids
            wrong.append(f"{key}={value!r} crashed with {type(err).__name__}: {err}")
        else:
            wrong.append(f"{key}={value!r} accepted")
    assert not wrong, f"{name}: " + "; ".join(wrong)
    assert same_state(snapshot(model)["state"], before)


@pytest.mark.parametrize("name", methods.available())
def test_an_empty_forget_set_is_refused(name, tiny):
    model, forget, retain, holdout = tiny
    with pytest.raises(UnlearnInputError, match="empty"):
        methods.get(name, **cheap(name)).unlearn(model, forget.subset([]), retain, holdout=holdout)


@pytest.mark.parametrize("name", methods.available())
def test_a_method_that_needs_the_retain_set_refuses_to_run_without_it(name, tiny):
    _, _, retain, _ = tiny
    if methods.get_class(name).requires_retain:
        for missing in (None, retain.subset([])):
            with pytest.raises(UnlearnInputError, match="retain"):
                run(name, tiny, retain=missing)
    else:
        new = run(name, tiny, retain=None)
        assert not any(m.training for m in new.modules())


@pytest.mark.parametrize("name", methods.available())
def test_hyperparameter_strings_convert_to_the_type_of_the_default(name):
    # `--set flip=yes` and YAML's `1e-3` arrive as strings (methods.get converts them); found by
    # the mutation check: no test said that "yes" must become True rather than False.
    for key, default in methods.get_class(name).hyperparameters().items():
        if isinstance(default, bool):
            assert methods.get(name, **{key: "yes"}).get_params()[key] is True, key
            assert methods.get(name, **{key: "False"}).get_params()[key] is False, key
        elif isinstance(default, int):
            assert methods.get(name, **{key: "3"}).get_params()[key] == 3, key
        elif isinstance(default, float):
            assert methods.get(name, **{key: "1e-3"}).get_params()[key] == 1e-3, key
