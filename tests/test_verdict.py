"""The statistics of a verification verdict (`unlearn.requests.verdict`): known answers, both error rates
by simulation, and the direction of every one-sided check. Numbers only, no models: fast."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from unlearn.requests import verdict
from unlearn.requests.verdict import FAIL, GREATER, INCONCLUSIVE, PASS, TWO_SIDED, judge


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=0, max_size=8))
def test_the_poisson_binomial_is_the_distribution_of_the_count(p):
    brute = np.zeros(len(p) + 1)
    for outcome in itertools.product((0, 1), repeat=len(p)):
        brute[sum(outcome)] += math.prod(q if o else 1 - q for o, q in zip(outcome, p))
    assert np.allclose(verdict.poisson_binomial(np.array(p)), brute, atol=1e-12)


def test_equal_probabilities_give_the_binomial_and_the_predictive_uses_jeffreys_prior():
    assert np.allclose(verdict.poisson_binomial(np.full(30, 0.3)), scipy_stats.binom.pmf(np.arange(31), 30, 0.3))
    oracles = np.array([[1, 0, 0], [1, 0, 1], [1, 0, 0], [1, 0, 0]])
    assert verdict.predictive(oracles).tolist() == [4.5 / 5, 0.5 / 5, 1.5 / 5]


@pytest.mark.parametrize("count", [0, 3, 9, 20])
def test_the_p_value_is_the_binomial_tail_on_each_side(count):
    # Three of four oracles give a one on every sample, so every sample's predictive probability is
    # the same (Jeffreys: (3 + 0.5) / (4 + 1)) and the count is binomial: both tails are closed forms.
    n, oracles = 20, np.array([[1] * 3 + [0] * 5] * 20).T[:4]
    rate = (oracles[:, 0].sum() + 0.5) / (len(oracles) + 1)
    model = np.array([1] * count + [0] * (n - count))
    upper, lower = scipy_stats.binom.sf(count - 1, n, rate), scipy_stats.binom.cdf(count, n, rate)
    assert verdict.differs_p_value(model, oracles, GREATER) == pytest.approx(min(1.0, upper), rel=1e-9)
    assert verdict.differs_p_value(model, oracles, TWO_SIDED) == pytest.approx(min(1.0, 2 * min(upper, lower)),
                                                                               rel=1e-9)


def test_the_gap_bound_is_a_paired_t_bound_and_undefined_for_one_sample():
    model = np.array([1, 1, 0, 1, 0, 1])
    oracles = np.array([[1, 0, 0, 1, 0, 0], [0, 1, 0, 1, 1, 0]])
    d = model - oracles.mean(0)
    margin = scipy_stats.t.ppf(0.95, 5) * d.std(ddof=1) / math.sqrt(6)
    assert verdict.gap_bound(model, oracles, TWO_SIDED) == pytest.approx(abs(d.mean()) + margin)
    assert verdict.gap_bound(model, oracles, GREATER) == pytest.approx(d.mean() + margin)
    assert verdict.gap_bound(1 - model, 1 - oracles, GREATER) == pytest.approx(-d.mean() + margin)  # direction kept
    assert verdict.gap_bound(model[:1], oracles[:, :1], TWO_SIDED) == math.inf


@settings(max_examples=30, deadline=None)
@given(model=st.integers(0, 1), oracles=st.lists(st.integers(0, 1), min_size=2, max_size=8),
       tolerance=st.floats(0.1, 100), side=st.sampled_from([TWO_SIDED, GREATER]))
def test_a_one_sample_request_is_always_inconclusive(model, oracles, tolerance, side):
    result = judge([model], np.array(oracles)[:, None], tolerance, side, n_checks=1)
    assert result["result"] == INCONCLUSIVE and result["passed"] is None


def test_the_one_sided_check_fails_only_upwards_and_the_two_sided_both_ways():
    rng = np.random.default_rng(0)
    oracles = (rng.random((4, 200)) < 0.05).astype(float)  # retrained models flag about 5%
    many, none = np.ones(200), np.zeros(200)
    assert judge(many, oracles, 10, GREATER, 1)["result"] == FAIL
    assert judge(none, oracles, 10, GREATER, 1)["result"] == PASS  # flagging fewer is no failure
    assert judge(none, oracles, 1, GREATER, 1)["result"] == PASS
    assert verdict.differs_p_value(none, oracles, GREATER) == 1.0
    assert verdict.differs_p_value(none, 1 - oracles, TWO_SIDED) < 1e-10  # far below, two-sided: differs
    assert judge(none, 1 - oracles, 10, TWO_SIDED, 1)["result"] == FAIL
    assert judge(many, 1 - oracles, 10, TWO_SIDED, 1)["result"] == PASS


def test_a_gap_within_the_tolerance_passes_and_one_beyond_it_does_not():
    rng = np.random.default_rng(1)
    p = rng.beta(2, 1, 2000)
    oracles = (rng.random((4, 2000)) < p).astype(float)
    retrain = (rng.random(2000) < p).astype(float)
    kept = np.maximum(retrain, rng.random(2000) < 0.5)  # remembers about half of what it got wrong
    assert judge(retrain, oracles, 5, TWO_SIDED, 1)["result"] == PASS
    gap = judge(kept, oracles, 5, TWO_SIDED, 1)
    assert gap["gap"] > 5 and gap["result"] == FAIL


def simulate(n: int, trials: int, shift: float, tolerance: float, seed: int) -> dict:
    """Verdicts of one check for models whose per-sample chance of a one is p_i + shift (clipped),
    against 4 oracles drawn with p_i; p_i ~ Beta(1.2, 0.8), the spread of an accuracy near 60%."""
    rng = np.random.default_rng(seed)
    counts = {PASS: 0, FAIL: 0, INCONCLUSIVE: 0}
    for _ in range(trials):
        p = rng.beta(1.2, 0.8, n)
        oracles = (rng.random((4, n)) < p).astype(float)
        model = (rng.random(n) < np.clip(p + shift, 0, 1)).astype(float)
        counts[judge(model, oracles, tolerance, TWO_SIDED, n_checks=1)["result"]] += 1
    return {k: v / trials for k, v in counts.items()}


@pytest.mark.parametrize("n", [10, 40, 400])
def test_an_honest_retrain_fails_at_most_at_the_stated_rate(n):
    # 400 trials: a true 5% rate exceeds 8% with probability < 0.3% (binomial tail).
    rates = simulate(n, 400, shift=0.0, tolerance=10, seed=n)
    assert rates[FAIL] <= 0.08, rates


@pytest.mark.parametrize("n", [10, 40, 400])
def test_a_model_beyond_the_tolerance_passes_at_most_at_the_stated_rate(n):
    # A shift of 0.15 moves the mean gap past 12 points (less clipping): beyond the 10-point tolerance.
    rates = simulate(n, 400, shift=0.15, tolerance=10, seed=100 + n)
    assert rates[PASS] <= 0.08, rates
    if n == 400:
        assert rates[FAIL] >= 0.9  # and a large request shows the difference


def test_the_verdict_needs_every_check_and_any_failure_decides():
    assert verdict.overall([PASS, PASS, PASS]) == PASS
    assert verdict.overall([PASS, INCONCLUSIVE, PASS]) == INCONCLUSIVE
    assert verdict.overall([PASS, INCONCLUSIVE, FAIL]) == FAIL
    assert verdict.overall([]) == INCONCLUSIVE


def test_the_fail_level_is_split_over_checks_and_tails():
    values, oracles = np.ones(20), np.zeros((4, 20))
    assert judge(values, oracles, 10, TWO_SIDED, n_checks=3)["fail_level"] == pytest.approx(0.05 / 6)
    assert judge(values, oracles, 10, GREATER, n_checks=3)["fail_level"] == pytest.approx(0.05 / 3)
