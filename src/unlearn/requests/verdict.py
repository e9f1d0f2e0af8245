"""The statistics of a verdict: on a request's samples, is a model like the models retrained without them?

Each check gives, for every sample i of the request, one value in {0, 1} per model: correct or
not (accuracy), correct after the relearning attack (relearn), flagged as a member by RMIA at 5%
false positives (flagged). The audited model gives v_i; K oracles, retrained from K seeds without
every request the model honoured, give o_ki. Two questions are asked of every check, each with
its own error rate:

- **Is the model shown to be within the tolerance Δ of retraining?** (its false-pass rate). The
  per-sample differences d_i = v_i − mean_k o_ki estimate the model's gap to retraining over
  samples like the request's; the one-sided (1 − α_pass) upper confidence bound of |mean d|
  (of mean d for a one-sided check) is |d̄| + t_{1−α_pass, n−1} · s_d / √n, Student's t with n − 1
  degrees of freedom (a paired t bound; two one-sided tests, Schuirmann 1987). The check passes
  when that bound is below Δ. A request of one sample has no such bound: it cannot pass. A
  model truly Δ or more off passes with probability about α_pass, and the verdict needs every
  check to pass, so that holds for the verdict too (an intersection-union test).
- **Is the model shown to differ from retraining?** (its false-fail rate). Under the hypothesis
  that the model is one more retrain, v_i is a draw of sample i's value over retraining seeds,
  Bernoulli(p_i). With Jeffreys' prior Beta(½, ½) on p_i, K oracle values with x_i ones predict
  a one with probability p̃_i = (x_i + ½)/(K + 1) for a new retrain, and the model's count S = Σ v_i
  has the Poisson-binomial distribution of the p̃_i (samples independent). The check fails when S
  lies in a tail of it of probability ≤ α_fail / (2C) for a two-sided check, α_fail / C for a
  one-sided one, with C the checks that ran (Bonferroni: the verdict's false-fail rate is at most
  α_fail). The test is exact for small requests, so a one-sample request cannot fail: with
  K = 4 no tail is smaller than 1/10.

A check passes if the first holds, fails if only the second does, and is inconclusive otherwise;
the verdict is "consistent with retraining" when every check passes, "not consistent" when any
fails, and "inconclusive" otherwise: the request is too small to tell, at these tolerances, a
model that forgot from one that did not. What the tests assume: samples independent given the
seed (the seed's effect shared by all samples of one model is not modelled, which makes the fail
test slightly liberal on large requests); the oracles are exchangeable with a retrain of the
audited model's recipe. benchmarks/verdict_error_rates.py measures both rates on mnist1d.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as scipy_stats

ALPHA_PASS = 0.05  # a model at least the tolerance off on some check is called consistent at most this often
ALPHA_FAIL = 0.05  # a model that is one more retrain is called not consistent at most this often
PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
TWO_SIDED, GREATER = "two-sided", "greater"


def poisson_binomial(p: np.ndarray) -> np.ndarray:
    """pmf[s] = P(Σ Bernoulli(p_i) = s) for s = 0..n, by adding one sample at a time (O(n²))."""
    pmf = np.zeros(len(p) + 1)
    pmf[0] = 1.0
    for k, q in enumerate(np.asarray(p, dtype=np.float64), start=1):
        pmf[1:k + 1] = pmf[1:k + 1] * (1 - q) + pmf[:k] * q
        pmf[0] *= 1 - q
    return pmf


def predictive(oracle_values: np.ndarray) -> np.ndarray:
    """p̃_i = (x_i + ½)/(K + 1): the chance of a one for a new retrain, Jeffreys' prior, K oracle values."""
    oracle_values = np.asarray(oracle_values, dtype=np.float64)
    return (oracle_values.sum(0) + 0.5) / (len(oracle_values) + 1)


def differs_p_value(model_values: np.ndarray, oracle_values: np.ndarray, side: str) -> float:
    """P-value of "the model is one more retrain": the Poisson-binomial tail of its count of ones
    (the upper tail for a one-sided check, twice the smaller tail for a two-sided one)."""
    count = int(np.asarray(model_values).sum())
    pmf = poisson_binomial(predictive(oracle_values))
    upper, lower = float(pmf[count:].sum()), float(pmf[:count + 1].sum())
    return min(1.0, upper if side == GREATER else 2 * min(upper, lower))


def gap_bound(model_values: np.ndarray, oracle_values: np.ndarray, side: str, alpha: float = ALPHA_PASS) -> float:
    """The (1 − alpha) upper confidence bound of the model's gap to retraining (|gap| if two-sided),
    by Student's t on the per-sample differences; inf for a single sample."""
    diffs = np.asarray(model_values, dtype=np.float64) - np.asarray(oracle_values, dtype=np.float64).mean(0)
    if diffs.size < 2:
        return math.inf
    mean = float(diffs.mean())
    margin = float(scipy_stats.t.ppf(1 - alpha, diffs.size - 1)) * float(diffs.std(ddof=1)) / math.sqrt(diffs.size)
    return (abs(mean) if side == TWO_SIDED else mean) + margin


def judge(model_values, oracle_values, tolerance: float, side: str, n_checks: int) -> dict:
    """One check: its figures in percent, both tests, and pass / fail / inconclusive."""
    model_values = np.asarray(model_values, dtype=np.float64)
    oracle_values = np.asarray(oracle_values, dtype=np.float64)
    alpha_fail = ALPHA_FAIL / n_checks / (2 if side == TWO_SIDED else 1)
    bound = gap_bound(model_values, oracle_values, side)
    p_value = differs_p_value(model_values, oracle_values, side)
    result = PASS if bound < tolerance / 100 else FAIL if p_value <= alpha_fail else INCONCLUSIVE
    gap = float(model_values.mean() - oracle_values.mean())
    return {"model": 100 * float(model_values.mean()), "retrained": 100 * float(oracle_values.mean()),
            "retrained_each": [100 * float(v) for v in oracle_values.mean(1)],
            "gap": 100 * (abs(gap) if side == TWO_SIDED else gap), "side": side, "n": int(model_values.size),
            "gap_bound": 100 * bound, "tolerance": float(tolerance), "p_value": p_value, "fail_level": alpha_fail,
            "result": result, "passed": {PASS: True, FAIL: False, INCONCLUSIVE: None}[result]}


def overall(results: list[str]) -> str:
    """FAIL if any check failed, PASS if every check passed, INCONCLUSIVE otherwise."""
    return FAIL if FAIL in results else PASS if results and all(r == PASS for r in results) else INCONCLUSIVE
