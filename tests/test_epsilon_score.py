"""The ε score against the NeurIPS 2023 challenge's published definition (Triantafillou et al. 2024).

`published_forget_score` below is written in the test, from the definition, the plain way: every
attack of both families listed one by one and judged by its own rates, nothing shared with
`unlearn.audit.epsilon` (which counts through sorted samples and a table of ε per rate pair). The
two must agree on synthetic signals, example by example, in cases that exercise each rule.
"""

import functools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearn.audit.epsilon import bucket_count, example_epsilons, forget_signal, forgetting_quality
from unlearn.data import ArrayDataset
from unlearn.errors import UnlearnInputError

DELTA, CAP = 1e-5, 50.0


def published_epsilon(unlearned: np.ndarray, retrained: np.ndarray) -> float:
    """ε of one forget example from the two samples (N values each) of the logit-scaled confidence."""
    # "Positive" for the single threshold: the kind with the larger median (ties: unlearned).
    if np.median(retrained) > np.median(unlearned):
        positive, negative = retrained, unlearned
    else:
        positive, negative = unlearned, retrained
    widths = [positive.max() - positive.min(), negative.max() - negative.min()]
    if max(widths) > 0 and min(widths) / max(widths) < 0.01:
        return CAP  # peakiness rule
    both = np.concatenate([positive, negative])
    t = np.linspace(both.min(), both.max(), math.ceil((both.max() - both.min()) * 100))[:, None]
    single_fpr = (negative >= t).mean(1)  # a retrained model called unlearned, or the reverse
    single_fnr = (positive < t).mean(1)
    # Double threshold: "positive" is the narrower sample (ties: the other one); windows [l, r].
    narrow, wide = (negative, positive) if widths[0] >= widths[1] else (positive, negative)
    w = narrow.max() - narrow.min()
    lo, hi = narrow.min() + w - 2.0, narrow.max() + 2.0
    rights = np.linspace(lo, hi, math.ceil((hi - lo) * 100))
    lefts = np.stack([np.linspace(r - w - 2.0, r - w + 2.0, 400) for r in rights])   # (R, 400)
    right, left = rights[:, None, None], lefts[:, :, None]
    double_fpr = ((left <= wide) & (wide <= right)).mean(-1).ravel()
    double_fnr = (~((left <= narrow) & (narrow <= right))).mean(-1).ravel()
    fpr, fnr = np.concatenate([single_fpr, double_fpr]), np.concatenate([single_fnr, double_fnr])
    if ((fpr == 0) & (fnr == 0)).any():
        return CAP  # perfect separation: ε = ∞, capped
    kept = (fpr > 0) & (fnr > 0) & ((fpr < 1) | (fnr < 1))  # one rate 0: discarded; both 1: undefined
    if not kept.any():
        return 0.0
    fpr, fnr = fpr[kept], fnr[kept]
    with np.errstate(invalid="ignore"):  # log of 1 − δ − 1 < 0: that half of the max is undefined
        eps = np.fmax(np.log(1 - DELTA - fpr) - np.log(fnr), np.log(1 - DELTA - fnr) - np.log(fpr))
    return min(max(float(eps.max()), 0.0), CAP)


def published_forget_score(unlearned: np.ndarray, retrained: np.ndarray) -> tuple[float, list[float]]:
    """F in percent, and ε per example: points 1, ½, ¼, … per bucket of 0.5 below ⌈ln(N − 1)⌉, else 0."""
    epsilons = [published_epsilon(unlearned[:, i], retrained[:, i]) for i in range(unlearned.shape[1])]
    top = math.ceil(math.log(unlearned.shape[0] - 1))
    points = []
    for eps in epsilons:
        start, value, got = 0.0, 1.0, 0.0
        while start + 0.5 <= top:
            if eps < start + 0.5:
                got = value
                break
            start, value = start + 0.5, value / 2
        points.append(got)
    return 100 * float(np.mean(points)), epsilons


def _cases():
    rng = np.random.default_rng(29)
    n, s = 64, 8
    mixed_u, mixed_r = rng.normal(0, 3, (8, 6)), rng.normal(2, 1, (8, 6))
    mixed_u[:, 4] = 1.0 + rng.normal(0, 1e-4, 8)   # an unlearner that gives one value: peaky,
    mixed_r[0, 4] = np.median(mixed_u[:, 4])        # and no window holds it without a retrained one
    mixed_u[:, 5] = mixed_r[:, 5] + 100.0          # far apart: perfectly separated
    return {
        "identical N=64": (rng.normal(0, 1, (n, s)), rng.normal(0, 1, (n, s))),
        "shifted by 2.5 N=64": (rng.normal(2.5, 1, (n, s)), rng.normal(0, 1, (n, s))),
        "unlearned 3x narrower N=64": (rng.normal(0, 1 / 3, (n, s)), rng.normal(0, 1, (n, s))),
        "N=8, wider unlearned, one peaky and one separated example": (mixed_u, mixed_r),
    }


CASES = _cases()


@functools.cache
def published(name: str) -> tuple[float, list[float]]:
    return published_forget_score(*CASES[name])


@pytest.mark.parametrize("name", list(CASES))
def test_epsilon_score_matches_the_published_definition(name):
    unlearned, retrained = CASES[name]
    expected_score, expected_eps = published(name)
    eps = example_epsilons(unlearned, retrained)
    np.testing.assert_allclose(eps, expected_eps, rtol=0, atol=1e-9)
    assert 100 * forgetting_quality(eps, unlearned.shape[0]) == pytest.approx(expected_score, abs=1e-9)


def test_the_cases_reach_every_rule():
    """The comparison above means something only if its cases take every path of the definition."""
    _, mixed = published("N=8, wider unlearned, one peaky and one separated example")
    assert mixed[4] == CAP and mixed[5] == CAP  # peaky, and separated
    _, shifted = published("shifted by 2.5 N=64")
    assert 4 < max(shifted) < 4.5 and min(shifted) < 4  # the last two buckets with N = 64 ([4.5, 5) is empty)


def test_bucket_count_is_twice_the_ceiling_of_ln_n_minus_1():
    assert [bucket_count(n) for n in (3, 8, 64, 512)] == [2, 4, 10, 14]
    with pytest.raises(UnlearnInputError, match="at least 3 models"):
        bucket_count(2)
    # N = 64: 1, ½, 2⁻⁸ (ε in [4, 4.5)), and nothing at the cap.
    assert forgetting_quality(np.array([0.1, 0.7, 4.1, CAP]), 64) == pytest.approx((1 + 0.5 + 2**-8 + 0) / 4)
    assert forgetting_quality(np.array([4.1]), 8) == 0.0  # past 2⌈ln 7⌉ = 4 buckets


def test_separated_examples_score_nothing_and_identical_models_score_everything():
    unlearned, retrained = np.zeros((8, 3)), np.ones((8, 3))
    assert (example_epsilons(unlearned, retrained) == CAP).all()
    assert forgetting_quality(example_epsilons(unlearned, retrained), 8) == 0.0
    same = np.random.default_rng(0).normal(0, 1, (8, 5))
    assert (example_epsilons(same, same) == 0).all()  # no attack beats chance on the same models


def test_the_signal_keeps_confident_examples_apart():
    """Logit margins of 20 and 40: float32 cross-entropy is 0 for both, φ = z_y − ln 9 is not."""
    model = torch.nn.Linear(2, 10, bias=False)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[0] = torch.tensor([20.0, 40.0])
    forget = ArrayDataset(torch.eye(2), torch.zeros(2, dtype=torch.long))
    loss = torch.nn.functional.cross_entropy(model(forget.x), forget.y, reduction="none")
    assert loss.tolist() == [0.0, 0.0]
    np.testing.assert_allclose(forget_signal(model, forget), [20 - math.log(9), 40 - math.log(9)], rtol=1e-12)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000))
def test_epsilon_is_symmetric_and_within_its_range(seed):
    rng = np.random.default_rng(seed)
    u, r = rng.normal(0, 1, (6, 5)), rng.normal(0.5, 1, (6, 5))
    eps = example_epsilons(u, r)
    assert ((eps >= 0) & (eps <= CAP)).all()
    np.testing.assert_allclose(eps, example_epsilons(r, u))
