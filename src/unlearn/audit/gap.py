"""Gap to retrain: how far an unlearned model's figures are from the retrained model's.

Avg. Gap (AMUN, Table 1; SalUn) = mean of |m − m_retrain| over {FA, RA, TA, MIA metric}, in
percentage points. It is two-sided on purpose: a forget accuracy far *below* the retrained
model's (over-unlearning) is a failure too. With several seeds, `summarize` gives mean ± std and a
percentile-bootstrap confidence interval of any figure, the gap included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from unlearn.errors import UnlearnInputError

DEFAULT_GAP_KEYS = ("acc.forget", "acc.retain", "acc.test", "mis.mis")


def flatten(metrics: Mapping, prefix: str = "") -> dict:
    """{"acc": {"forget": 1.0}} -> {"acc.forget": 1.0}; flat keys pass through unchanged."""
    flat = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def avg_gap(metrics: Mapping, reference_metrics: Mapping, keys: Iterable[str] = DEFAULT_GAP_KEYS) -> dict[str, float]:
    """|m − m_retrain| for every key (nested or flat dicts) and "avg_gap", their mean."""
    flat, reference = flatten(metrics), flatten(reference_metrics)
    keys = list(keys)
    if not keys:
        raise UnlearnInputError("Avg. Gap needs at least one metric key")
    missing = [k for k in keys if k not in flat or k not in reference]
    if missing:
        raise UnlearnInputError(f"Avg. Gap: metric(s) {missing} missing from the model's or the reference's figures")
    gaps = {k: abs(float(flat[k]) - float(reference[k])) for k in keys}
    gaps["avg_gap"] = float(np.mean(list(gaps.values())))
    return gaps


def summarize(values: Sequence[float], confidence: float = 0.95, n_bootstrap: int = 2000,
              seed: int = 0) -> dict[str, float]:
    """Mean, sample std and a percentile-bootstrap CI of the mean of `values` (one per seed)."""
    values = np.asarray([float(v) for v in values], dtype=np.float64)
    if values.size == 0:
        raise UnlearnInputError("nothing to summarise: no values")
    if not 0 < confidence < 1:
        raise UnlearnInputError(f"confidence must lie in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_bootstrap, values.size))].mean(1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
            "ci_low": float(low), "ci_high": float(high), "n": int(values.size)}


def summarize_runs(runs: Sequence[Mapping], **kwargs) -> dict[str, dict[str, float]]:
    """`summarize` for every numeric figure the runs (one metrics dict per seed) have in common."""
    flats = [flatten(r) for r in runs]
    if not flats:
        raise UnlearnInputError("nothing to summarise: no runs")
    common = [k for k in flats[0] if all(k in f for f in flats[1:])]
    return {k: summarize([f[k] for f in flats], **kwargs) for k in common
            if all(isinstance(f[k], int | float) and not isinstance(f[k], bool) for f in flats)}


def gap_over_seeds(runs: Sequence[Mapping], reference_runs: Sequence[Mapping],
                   keys: Iterable[str] = DEFAULT_GAP_KEYS, **kwargs) -> dict[str, dict[str, float]]:
    """Per-seed gaps (run i against reference i), summarised: mean ± std and bootstrap CI per key."""
    if len(runs) != len(reference_runs):
        raise UnlearnInputError(f"{len(runs)} runs but {len(reference_runs)} reference runs; pair them by seed")
    keys = list(keys)
    return summarize_runs([avg_gap(r, ref, keys) for r, ref in zip(runs, reference_runs)], **kwargs)
