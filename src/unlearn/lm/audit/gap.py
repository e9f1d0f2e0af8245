"""Gap to Retrain for language models: `gap-lm`, built like the classifiers' `gap-rmia`.

    gap-lm = mean of |m − m_retrain| over {forget accuracy, neighbour accuracy, retain accuracy,
             Min-K%++ AUC of forget vs held-out text}

all four in percent, the units of `gap-rmia` (`unlearn.audit.gap`: FA, RA, TA and RMIA's AUC), so
the `original` row (the gap of doing nothing), the `retrain-floor` row (a second retrain's gap:
the noise floor) and the verdicts read the same. The neighbour accuracy takes the place of test
accuracy: for facts, the knowledge nearest the forgotten facts that must survive. Two-sided, like
`gap-rmia`: forgetting *below* Retrain (answers suppressed below the base rate, text made to look
less like training data than unseen text) is a failure too.
"""

from __future__ import annotations

from collections.abc import Mapping

from unlearn.audit.gap import avg_gap, flatten
from unlearn.audit.stats import normal_quantile, proportion_standard_error

GAP_LM = "gap-lm"
TERMS = ("acc.forget", "acc.neighbour", "acc.retain", "minkpp.auc")
MIA = "minkpp"


def lm_gaps(metrics: Mapping, reference_metrics: Mapping) -> dict[str, float | None]:
    """|m − m_retrain| per term and "gap-lm", their mean; gap-lm is None (n/a) when a term is
    missing on both sides (a split with no neighbours); a term on one side only is refused."""
    flat, reference = flatten(metrics), flatten(reference_metrics)
    present = [k for k in TERMS if flat.get(k) is not None or reference.get(k) is not None]
    out: dict[str, float | None] = dict(avg_gap(flat, reference, present)) if present else {}
    mean = out.pop("avg_gap", None)
    out[GAP_LM] = mean if len(present) == len(TERMS) else None
    return out


def term_standard_errors(flat: Mapping, sizes: Mapping[str, int]) -> dict[str, float]:
    """Sampling SE of each gap-lm term of one audit: binomial for the accuracies (over the number of
    questions asked), DeLong for the AUC (from its interval). Combined by
    `unlearn.audit.gap.gap_standard_error(GAP_LM, errors, TERMS)`, as for gap-rmia."""
    out = {}
    for part in ("forget", "neighbour", "retain"):
        key = f"acc.{part}"
        if flat.get(key) is not None and sizes.get(part):
            out[key] = proportion_standard_error(float(flat[key]), int(sizes[part]))
    low, high = flat.get(f"{MIA}.auc_low"), flat.get(f"{MIA}.auc_high")
    if low is not None and high is not None:
        out[f"{MIA}.auc"] = (float(high) - float(low)) / (2 * normal_quantile())
    return out
