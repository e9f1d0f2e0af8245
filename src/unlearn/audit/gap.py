"""Gap to retrain: how far an unlearned model's figures are from the retrained model's.

Avg. Gap = mean of |m − m_retrain| over {FA, RA, TA, one MIA metric}, in percentage points, in
two named variants that are never mixed:
- `gap-rmia`: the MIA term is RMIA's AUC on D_F vs D_T (the AMUN paper's headline, Table 1);
- `gap-mis`: the MIA term is MIS, SalUn's SVC "MIA-efficacy" (SalUn's and AMUN's Table 2).
A variant whose MIA was not run is None (shown "n/a"); a term present in one model's figures but
not in the reference's is an error. The gap is two-sided on purpose: a forget accuracy far *below*
the retrained model's (over-unlearning) is a failure too.

With several seeds, `summarize` gives mean, sample std and Student's t interval of any figure
(`unlearn.audit.stats`); `clearly_below` decides whether one set of gaps is below another beyond
noise: a paired t interval over seeds, or with a single seed the sampling error of every term.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from unlearn.audit.stats import CONFIDENCE, normal_quantile, proportion_standard_error, t_interval
from unlearn.errors import UnlearnInputError

DEFAULT_GAP_KEYS = ("acc.forget", "acc.retain", "acc.test", "mis.mis")
# The two Avg. Gaps of the papers: name -> its four terms (flat metric keys).
GAPS: dict[str, tuple[str, ...]] = {
    "gap-rmia": ("acc.forget", "acc.retain", "acc.test", "rmia.auc"),
    "gap-mis": ("acc.forget", "acc.retain", "acc.test", "mis.mis"),
}


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


def named_gap(name: str, metrics: Mapping, reference_metrics: Mapping) -> float:
    """One of `GAPS` by name; refuses, naming it, a term missing from either side."""
    if name not in GAPS:
        raise UnlearnInputError(f"unknown gap {name!r}; the gaps are {', '.join(GAPS)}")
    flat, reference = flatten(metrics), flatten(reference_metrics)
    missing = [k for k in GAPS[name] if flat.get(k) is None or reference.get(k) is None]
    if missing:
        raise UnlearnInputError(f"{name} needs {', '.join(GAPS[name])}; {', '.join(missing)} missing "
                                f"(run its audit, or use the other gap); a gap never drops a term")
    return avg_gap(flat, reference, GAPS[name])["avg_gap"]


def gaps(metrics: Mapping, reference_metrics: Mapping) -> dict[str, float | None]:
    """|m − m_retrain| per term both sides have, and each named gap: its value, or None (n/a) when
    neither side ran its MIA. A term only one side has is refused (the two audits differ)."""
    flat, reference = flatten(metrics), flatten(reference_metrics)
    terms = dict.fromkeys(k for keys in GAPS.values() for k in keys)
    one_sided = [k for k in terms if (flat.get(k) is None) != (reference.get(k) is None)]
    if one_sided:
        raise UnlearnInputError(f"gap: {', '.join(one_sided)} in only one of the model's and the reference's "
                                f"figures; audit both with the same attacks")
    out: dict[str, float | None] = {k: abs(float(flat[k]) - float(reference[k])) for k in terms
                                    if flat.get(k) is not None}
    for name, keys in GAPS.items():
        out[name] = float(np.mean([out[k] for k in keys])) if all(k in out for k in keys) else None
    return out


def term_standard_errors(flat: Mapping, sizes: Mapping[str, int]) -> dict[str, float]:
    """Sampling standard error of each gap term of one audit: binomial for the accuracies and MIS
    (over |D_F|, |D_R|, |D_T|), DeLong for an AUC (from its interval `auc_low`, `auc_high`)."""
    z = normal_quantile()
    out = {}
    for key, part in (("acc.forget", "forget"), ("acc.retain", "retain"), ("acc.test", "test"), ("mis.mis", "forget")):
        if flat.get(key) is not None and sizes.get(part):
            out[key] = proportion_standard_error(float(flat[key]), int(sizes[part]))
    for attack in ("rmia", "loss", "lira"):
        low, high = flat.get(f"{attack}.auc_low"), flat.get(f"{attack}.auc_high")
        if low is not None and high is not None:
            out[f"{attack}.auc"] = (float(high) - float(low)) / (2 * z)
    return out


def clearly_below(gap: Sequence[float], baseline: Sequence[float], *, standard_errors: Sequence[float] | None = None,
                  confidence: float = CONFIDENCE) -> bool | None:
    """Is `gap` below `baseline` beyond noise? Both are per-seed values, paired by position.

    Two or more pairs: the upper end of Student's t interval of the mean difference lies below 0.
    One pair: the difference must exceed z · SE, where `standard_errors` are the sampling standard
    errors of the two gaps (`gap_standard_error`); without them, None (undecided).
    """
    gap, baseline = np.asarray(gap, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if gap.shape != baseline.shape or gap.size == 0:
        raise UnlearnInputError(f"clearly_below pairs gaps by seed: got {gap.size} and {baseline.size} values")
    difference = gap - baseline
    if difference.size >= 2:
        return bool(t_interval(difference, confidence)[1] < 0)
    if standard_errors is None or any(e is None or not np.isfinite(e) for e in standard_errors):
        return None
    return bool(difference[0] + normal_quantile(confidence) * float(np.hypot(*standard_errors)) < 0)


def gap_standard_error(name: str, term_errors: Mapping[str, float], terms: Sequence[str] | None = None) -> float | None:
    """Sampling SE of a named gap, the mean of four |Δ| terms, treating the terms as independent and
    the reference's figures as fixed; None when a term's error is unknown. `terms`: those of a gap
    defined elsewhere (the LM's gap-lm, `unlearn.lm.audit.gap`); default `GAPS[name]`."""
    errors = [term_errors.get(k) for k in (GAPS[name] if terms is None else terms)]
    if any(e is None for e in errors):
        return None
    return float(np.sqrt(np.sum(np.square(errors)))) / len(errors)


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, float]:
    """Mean, sample std and Student's t interval of the mean of `values` (one per seed).

    With one value the interval is (nan, nan): one seed shows no spread.
    """
    values = np.asarray([float(v) for v in values], dtype=np.float64)
    if values.size == 0:
        raise UnlearnInputError("nothing to summarise: no values")
    low, high = t_interval(values, confidence)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
            "ci_low": low, "ci_high": high, "n": int(values.size)}


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
    """Per-seed gaps (run i against reference i), summarised: mean ± std and t interval per key."""
    if len(runs) != len(reference_runs):
        raise UnlearnInputError(f"{len(runs)} runs but {len(reference_runs)} reference runs; pair them by seed")
    keys = list(keys)
    return summarize_runs([avg_gap(r, ref, keys) for r, ref in zip(runs, reference_runs)], **kwargs)
