"""Intervals a reviewer accepts: Student's t over seeds, DeLong for an AUC, binomial for an accuracy.

- Over seeds (n = 3 in the papers), the percentile bootstrap of the mean is far too narrow: its
  95% interval covered the true mean 74% of the time at n = 3 (three values cannot show the tails).
  Student's t interval, mean ± t_{n−1} · s/√n, is exact for normal data; `tests/test_audit_scores.py`
  measures its coverage by simulation.
- Over samples, for one AUC: DeLong et al. (Biometrics 1988) give the variance of the empirical
  AUC from the structural components (each member's share of non-members it outscores, and vice
  versa), computed here from midranks in O(n log n).
- An accuracy on n samples has the binomial standard error sqrt(p(1 − p)/n) (Agresti-Coull's p).
- Two samples' means (e.g. the per-sample loss on D_F before and after unlearning, as an auditor
  sampling D_F would compare them): Welch's t interval of the difference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as scipy_stats

from unlearn.errors import UnlearnInputError

CONFIDENCE = 0.95


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise UnlearnInputError(f"confidence must lie in (0, 1), got {confidence}")


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE):
    """Student's t interval of the mean of `values`; (nan, nan) for fewer than two values (no spread to see).

    A 2-D array gives one interval per row (two arrays), for simulations.
    """
    _check_confidence(confidence)
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[-1]
    if n < 2:
        nan = np.full(values.shape[:-1], np.nan)
        return (float("nan"), float("nan")) if values.ndim == 1 else (nan, nan)
    mean = values.mean(-1)
    half = scipy_stats.t.ppf((1 + confidence) / 2, n - 1) * values.std(-1, ddof=1) / np.sqrt(n)
    if values.ndim == 1:
        return (float(mean - half), float(mean + half))
    return (mean - half, mean + half)


def normal_quantile(confidence: float = CONFIDENCE) -> float:
    _check_confidence(confidence)
    return float(scipy_stats.norm.ppf((1 + confidence) / 2))


def auc_standard_error(member_scores, nonmember_scores) -> float:
    """DeLong's standard error of the empirical ROC AUC (as a fraction, not percent); members positive."""
    x = np.asarray(member_scores, dtype=np.float64).ravel()
    y = np.asarray(nonmember_scores, dtype=np.float64).ravel()
    m, n = x.size, y.size
    if m < 2 or n < 2:
        return float("nan")
    combined = scipy_stats.rankdata(np.r_[x, y])  # midranks: ties count one half
    # v10[i]: fraction of non-members member i outscores; v01[j]: fraction of members above non-member j.
    v10 = (combined[:m] - scipy_stats.rankdata(x)) / n
    v01 = 1.0 - (combined[m:] - scipy_stats.rankdata(y)) / m
    return float(np.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n))


def proportion_standard_error(percent: float, n: int) -> float:
    """Binomial standard error, in percentage points, of a rate given in percent over n samples.

    Agresti-Coull's p̃ = (k + 2) / (n + 4) instead of p, so that 100% (or 0%) of n samples is not
    reported as exact: a forget accuracy of 100% on 400 samples is not known to be 100.0 ± 0.
    """
    if n < 1:
        return float("nan")
    p = (percent / 100.0 * n + 2) / (n + 4)
    return 100.0 * float(np.sqrt(p * (1 - p) / (n + 4)))


def welch_interval(before, after, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Welch's t interval of mean(after) − mean(before), two samples of unequal variance."""
    _check_confidence(confidence)
    a, b = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    if a.size < 2 or b.size < 2:
        return (float("nan"), float("nan"))
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    difference = float(b.mean() - a.mean())
    if va + vb == 0:
        return (difference, difference)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(scipy_stats.t.ppf((1 + confidence) / 2, df) * np.sqrt(va + vb))
    return (difference - half, difference + half)


def unchanged_within_noise(before_correct, after_correct, before_loss, after_loss,
                           confidence: float = CONFIDENCE) -> bool:
    """Are accuracy and mean loss on a set (D_F) the same before and after, within sampling noise?

    Both 95% intervals of the change cover 0: the accuracies' (binomial errors) and the mean
    losses' (Welch). This is what `unlearn forget` warns about: a model an auditor comparing D_F's
    figures before and after could not tell apart, i.e. one that forgot nothing detectable.
    """
    n = len(before_correct)
    acc_before, acc_after = 100.0 * float(np.mean(before_correct)), 100.0 * float(np.mean(after_correct))
    acc_half = normal_quantile(confidence) * float(np.hypot(proportion_standard_error(acc_before, n),
                                                            proportion_standard_error(acc_after, n)))
    loss_low, loss_high = welch_interval(before_loss, after_loss, confidence)
    return abs(acc_after - acc_before) <= acc_half and loss_low <= 0 <= loss_high
