"""Adversarial search on real models: digits (MLP from the session bank), CIFAR-10 when present."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unlearn import models
from unlearn.attacks import calibrate_epsilon, closest_adversarial, fgsm, pgd
from unlearn.errors import UnlearnInputError


@pytest.fixture(scope="module")
def forget(digits, digits_split):
    return digits.train.subset(digits_split.forget)


@pytest.fixture(scope="module")
def found(digits_original, forget):
    x_before = forget.x.clone()
    adv = closest_adversarial(digits_original, forget.x, forget.y)
    assert torch.equal(forget.x, x_before)  # inputs are never modified
    return adv


def test_closest_l2_examples_are_adversarial_and_inside_their_ball(digits_original, forget, found):
    assert found.success_rate >= 0.95
    ok = found.success
    assert (found.y_adv[ok] != forget.y[ok]).all()
    # Evaluated again in one batch, the stored iterates still give the stored adversarial labels.
    assert torch.equal(models.logits(digits_original, found.x_adv[ok]).argmax(1), found.y_adv[ok])
    assert (found.distance <= found.epsilon * (1 + 1e-5)).all()
    assert found.x_adv.min() >= 0 and found.x_adv.max() <= 1
    torch.testing.assert_close(found.distance, (found.x_adv - forget.x).flatten(1).norm(dim=1))


def test_radii_are_the_calibrated_start_doubled_and_start_fools_95_percent(found):
    eps0 = found.epsilon_init
    doublings = torch.log2(found.epsilon / eps0)
    assert torch.allclose(doublings, doublings.round(), atol=1e-5)
    assert ((found.epsilon - eps0).abs() < 1e-6).float().mean() >= 0.9  # most found at the first radius
    summary = found.summary()
    assert summary["success_rate"] == 100 * found.success_rate and summary["n"] == len(found)


def test_calibration_returns_the_smallest_passing_radius_to_its_resolution(digits_original, forget):
    x, y = forget.x[:100], forget.y[:100]
    eps = calibrate_epsilon(digits_original, x, y, samples=100, resolution=1.1)
    assert pgd(digits_original, x, y, eps).success_rate >= 0.95
    assert pgd(digits_original, x, y, eps / 1.1).success_rate < 0.95


def test_early_exit_finds_closer_examples_than_plain_pgd(digits_original, forget, found):
    eps = 2 * found.epsilon_init
    early = pgd(digits_original, forget.x, forget.y, eps)
    plain = pgd(digits_original, forget.x, forget.y, eps, early_exit=False)
    both = early.success & plain.success
    assert both.float().mean() > 0.9
    assert early.distance[both].median() < 0.8 * plain.distance[both].median()
    assert early.sample_steps < 0.5 * plain.sample_steps  # samples leave the batch once fooled


def test_search_cost_stays_within_three_pgd_passes_apart_from_calibration(found):
    search_only = (found.sample_steps - found.calibration_steps) / (len(found) * found.steps)
    assert search_only <= 3.0


def test_batch_composition_does_not_change_the_result(digits_original, forget, found):
    """Per sample, the search is the same in any batch, up to what float rounding can change.

    Another batch size runs other matrix kernels (and thread splits), so a logit may differ in its
    last bits, and a decision taken at a point within that rounding of the decision boundary may go
    the other way. In PGD that is rare (a sample exits a step earlier or later, moving ‖δ‖ by about
    one step α = ε/10 ≥ ‖δ‖/10): at most 2% of samples. Where the searches agree (their ‖δ‖ within
    one refinement bracket, 2^-refine_steps of ‖δ‖, far below α), the bisections on the two segments
    bracket the same boundary crossing and end at most one bracket apart, plus the bracket the
    segments may differ by. (On one machine a sample moved by 0.0006 of a 0.67 segment: < 2^-10.)
    """
    small = closest_adversarial(digits_original, forget.x, forget.y, epsilon=found.epsilon_init, batch_size=40)
    assert (small.y_adv == found.y_adv).float().mean() >= 0.98
    bracket = found.distance_search * 2.0 ** -found.refine_steps
    same_search = (small.distance_search - found.distance_search).abs() <= bracket
    assert same_search.float().mean() >= 0.98
    moved = (small.distance - found.distance).abs()
    assert (moved[same_search] <= 2 * bracket[same_search]).all()


def test_already_misclassified_samples_are_their_own_adversarial_example(digits_original, forget):
    pred = models.logits(digits_original, forget.x[:20]).argmax(1)
    wrong = (pred + 1) % 10
    adv = pgd(digits_original, forget.x[:20], wrong, 0.5)
    assert adv.success.all() and torch.equal(adv.y_adv, pred)
    assert (adv.distance == 0).all() and adv.sample_steps == 20  # one forward pass each


def test_linf_search_stays_in_its_box(digits_original, forget):
    adv = closest_adversarial(digits_original, forget.x, forget.y, norm="linf", calibration_samples=50)
    assert adv.success_rate >= 0.95
    linf = (adv.x_adv - forget.x).abs().flatten(1).max(1).values
    assert (linf <= adv.epsilon + 1e-6).all()
    assert (adv.y_adv[adv.success] != forget.y[adv.success]).all()


def test_fgsm_is_one_full_signed_step(digits_original, forget):
    x, y = forget.x[:50].clone(), forget.y[:50]
    adv = fgsm(digits_original, x, y, epsilon=0.1)
    # The cross-entropy's gradient in float64, where the softmax of these margins does not round
    # to one-hot (in float32 it does for some, and their CE gradient is zero there).
    exact = copy.deepcopy(digits_original).double()
    xg = x.double().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(exact(xg), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, xg)
    expected = (x + 0.1 * grad.sign().float()).clamp(0, 1)
    torch.testing.assert_close(adv.x_adv, expected)
    assert torch.equal(adv.y_adv, models.logits(digits_original, expected).argmax(1))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(eps=st.floats(0.05, 3.0), start=st.integers(0, 100), norm=st.sampled_from(["l2", "linf"]),
       early_exit=st.booleans())
def test_pgd_properties_hold_for_any_radius(digits_original, forget, eps, start, norm, early_exit):
    x, y = forget.x[start:start + 20], forget.y[start:start + 20]
    eps = eps if norm == "l2" else eps / 8  # comparable budgets: an 8x8 image's L2 ≈ 8 × L∞
    # 12 steps of ε/2 walk 6ε: only the projection keeps the iterates inside the ball.
    adv = pgd(digits_original, x, y, eps, norm=norm, steps=12, step_ratio=0.5, early_exit=early_exit)
    delta = (adv.x_adv - x).flatten(1)
    size = delta.norm(dim=1) if norm == "l2" else delta.abs().max(1).values
    assert (size <= eps * (1 + 1e-5) + 1e-7).all()
    assert adv.x_adv.min() >= 0 and adv.x_adv.max() <= 1
    assert (adv.success == (adv.y_adv != y)).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"norm": "l3"}, "unknown norm"),
    ({"epsilon": -1.0}, "positive"),
    ({"epsilon": math.inf}, "positive"),
    ({"steps": 0}, "at least one step"),
])
def test_bad_attack_arguments_are_refused(digits_original, forget, kwargs, message):
    kw = {"epsilon": 0.5, **kwargs}
    with pytest.raises(UnlearnInputError, match=message):
        pgd(digits_original, forget.x, forget.y, **kw)


def test_mismatched_inputs_are_refused(digits_original, forget):
    with pytest.raises(UnlearnInputError, match="expects"):
        pgd(digits_original, forget.x.flatten(1), forget.y, 0.5)
    with pytest.raises(UnlearnInputError, match="labels must lie"):
        pgd(digits_original, forget.x, forget.y + 10, 0.5)
    with pytest.raises(UnlearnInputError, match="differ in length"):
        pgd(digits_original, forget.x, forget.y[:-1], 0.5)


@pytest.mark.cifar
@pytest.mark.slow
def test_cifar10_small_cnn_closest_examples(cifar10, bank):
    # A small CNN on 2,000 training images for 3 epochs: enough to be a real CIFAR-10 classifier
    # (well above chance) while training in seconds; the adversarial search is what is tested.
    subset = np.sort(np.random.default_rng(0).permutation(len(cifar10.train))[:2000])
    recipe = {"lr": 0.05, "epochs": 3, "batch_size": 128, "schedule": "onecycle", "weight_decay": 5e-4}
    model = bank.get(cifar10, "cnn", subset, recipe=recipe, seed=0, arch_args={"width": 8}, progress=False)
    sample = cifar10.train.subset(subset[:150])
    right = models.logits(model, sample).argmax(1) == sample.y
    sample = sample.subset(torch.nonzero(right).flatten()[:100].numpy())
    adv = closest_adversarial(model, sample.x, sample.y, calibration_samples=50)
    assert adv.success_rate >= 0.95
    ok = adv.success
    assert (adv.y_adv[ok] != sample.y[ok]).all()
    assert (adv.distance <= adv.epsilon * (1 + 1e-5)).all()


def saturated(model, forget, margin=55.0):
    """`model` with its last layer scaled so that every forget sample's logit margin is ≥ `margin`.

    Scaling the logits changes no decision, so the same adversarial examples exist; but the
    softmax rounds to one-hot in float32 and the cross-entropy gradient vanishes.
    """
    top = models.logits(model, forget.x).topk(2, dim=1).values
    scale = margin / float((top[:, 0] - top[:, 1]).min())
    over = copy.deepcopy(model)
    with torch.no_grad():
        over.net[-1].weight.mul_(scale)
        over.net[-1].bias.mul_(scale)
    return over


def test_saturated_model_still_gets_closest_examples(digits_original, forget):
    over = saturated(digits_original, forget)
    z = models.logits(over, forget.x)
    top = z.topk(2, dim=1).values
    assert (top[:, 0] - top[:, 1]).min() >= 50
    # The cross-entropy gradient is exactly zero on many of these samples: CE-PGD could not move them.
    xg = forget.x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(over(xg), forget.y, reduction="sum"), xg)
    assert (grad.flatten(1).norm(dim=1) == 0).float().mean() >= 0.25
    adv = closest_adversarial(over, forget.x, forget.y)
    assert adv.success_rate >= 0.95 and adv.calibration_rate >= 0.95
    ok = adv.success
    assert torch.equal(models.logits(over, adv.x_adv[ok]).argmax(1), adv.y_adv[ok])
    assert (adv.y_adv[ok] != forget.y[ok]).all()


def test_calibration_reports_the_rate_it_reached_and_never_leaves_the_box(digits_original, forget):
    # A weak search (5 steps of ε/100: at most 5% of ε in all) fools some samples only, even at the box's
    # diameter √64 = 8: calibration reports the rate it reached instead of failing, and the
    # doubling stops at the diameter.
    weak = {"steps": 5, "step_ratio": 0.01}
    given = closest_adversarial(digits_original, forget.x, forget.y, epsilon=0.3, **weak)
    assert given.epsilon.max() == pytest.approx(8.0) and 0 < given.success_rate < 0.95
    calibrated = closest_adversarial(digits_original, forget.x, forget.y, calibration_samples=len(forget), **weak)
    assert 0 < calibrated.calibration_rate < 0.95
    assert calibrated.epsilon.max() <= 8.0 + 1e-6
    summary = calibrated.summary()
    assert summary["calibration_rate"] == pytest.approx(100 * calibrated.calibration_rate)
    assert summary["n_without_example"] == int((~calibrated.success).sum()) > 0
    # Calibration on the samples alone: the smallest ε reaching the rate the diameter reaches.
    reached = pgd(digits_original, forget.x, forget.y, 8.0, **weak).success_rate
    eps = calibrate_epsilon(digits_original, forget.x, forget.y, samples=len(forget), resolution=1.1, **weak)
    assert pgd(digits_original, forget.x, forget.y, eps, **weak).success_rate >= reached - 1e-9
    assert pgd(digits_original, forget.x, forget.y, eps / 1.1, **weak).success_rate < reached


def test_refinement_shortens_examples_and_keeps_them_adversarial(digits_original, forget, found):
    raw = closest_adversarial(digits_original, forget.x, forget.y, refine_steps=0)
    ok = found.success
    assert torch.equal(ok, raw.success)
    assert torch.allclose(found.distance_search, raw.distance)
    assert (found.distance <= raw.distance + 1e-6).all()
    assert found.distance[ok].mean() <= 0.95 * raw.distance[ok].mean()
    assert (found.y_adv[ok] != forget.y[ok]).all()
    assert torch.equal(models.logits(digits_original, found.x_adv[ok]).argmax(1), found.y_adv[ok])
    # Every refined example lies on its segment from x to the unrefined one.
    direction = (raw.x_adv - forget.x).flatten(1)
    moved = (found.x_adv - forget.x).flatten(1)
    t = (moved * direction).sum(1) / direction.pow(2).sum(1).clamp_min(1e-12)
    torch.testing.assert_close(moved[ok], (t[:, None] * direction)[ok], atol=1e-5, rtol=0)
    assert found.refine_forwards == 10 * int((ok & (raw.distance > 0)).sum())
