"""Summary tables of a run: mean and 95% interval over seeds, per forget set, setting and method.

Columns follow BENCHMARKS.md: forget, retain and test accuracy, each MIA metric, the two Avg. Gaps
to Retrain (gap-rmia, gap-mis; never mixed; a language-model run has its own audits' columns and
gap-lm, `unlearn.experiments.lm_bench`), and wall time (unlearning only, and as a fraction of
the retrain time). Rows: Retrain first, then the two reference rows, `retrain-floor` (a second
retrain from another seed: the noise floor) and `original` (the untouched model: the gap of doing
nothing), all the same model in both settings, then the methods in config order. A method that
failed or cannot run in a setting gets a row saying so.

Statistics: every cell is a mean over the runs (n beside it) ± the half-width of Student's t 95%
interval, over what the runs drew (the caption counts their model seeds, forget sets and run seeds); an AUC cell also gives the DeLong 95% interval over samples of one audit ([low, high],
averaged over runs). A method whose headline gap (gap-rmia, else gap-mis) is not clearly below the
original's (`audit.gap.clearly_below`: paired t interval over seeds, or with one seed the sampling
error of every term) is marked "forgot nothing detectable", or "worse than doing nothing" when it
is clearly above it; one clearly below is "below original", unless it closed less than a tenth of
the distance from the original's gap down to the `retrain-floor`'s: that is "forgot little" (a
consistent but tiny change, e.g. RMIA AUC 88 where the original has 89.6 and Retrain 52, is not
forgetting a reader should count).

    rows = aggregate(records, method_order)   # what `unlearn demo` and `unlearn bench` print
    rows[0]["method"], rows[0]["gap.gap-rmia"]["mean"], rows[3]["verdict"]
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from unlearn.audit.gap import clearly_below, gap_standard_error, term_standard_errors
from unlearn.audit.stats import t_interval
from unlearn.experiments.jobs import FLOOR, ORACLE, ORIGINAL
from unlearn.files import atomic_path, write_text

REFERENCE_ORDER = (ORACLE, FLOOR, ORIGINAL)
NOTHING = "forgot nothing detectable"  # gap within noise of doing nothing
WORSE = "worse than doing nothing"      # gap clearly above the original's (e.g. a wrecked model)
BELOW = "below original"
LITTLE = "forgot little"                # clearly below, but closed < LITTLE_SHARE of the way to the floor
LITTLE_SHARE = 0.1
# (flat metric key, column title), in table order; a column appears when some record has it.
COLUMNS = [
    ("acc.forget", "forget acc"), ("acc.retain", "retain acc"), ("acc.test", "test acc"), ("mis.mis", "MIS"),
    ("loss.auc", "loss MIA AUC"), ("rmia.auc", "RMIA AUC"), ("rmia.tpr_at_1pct_fpr", "RMIA TPR@1%"),
    ("lira.auc", "LiRA AUC"), ("ulira.accuracy", "U-LiRA acc"), ("epsilon.score", "ε score"),
    ("relearn.after", "relearn FA"), ("relearn.excess", "relearn FA − Retrain's"),
    # Language models (`unlearn.lm.audit.evaluate_lm`); retain acc is the column above.
    ("acc.forget_paraphrased", "paraphrased forget acc"), ("acc.neighbour", "neighbour acc"),
    ("forget_quality", "forget quality"), ("utility.model_utility", "model utility"),
    ("verbmem.forget", "VerbMem"), ("minkpp.auc", "Min-K%++ AUC"), ("privleak", "PrivLeak"), ("gap.gap-lm", "gap-lm"),
    ("gap.gap-rmia", "gap-rmia"), ("gap.gap-mis", "gap-mis"), ("seconds", "time (s)"),
    ("time_fraction", "time / retrain"),
]
HEADLINE_GAPS = ("gap-rmia", "gap-mis", "gap-lm")


def _values(record: dict[str, Any]) -> dict[str, float | None]:
    values = dict(record.get("flat") or {})
    values["seconds"] = record["seconds"]
    values["time_fraction"] = record["seconds"] / record["retrain_seconds"] if record.get("retrain_seconds") else math.nan
    return values


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def cell(values: list[float]) -> dict[str, float]:
    """mean, sample std, Student's t 95% interval and n of one column of one row."""
    low, high = t_interval(values) if len(values) > 1 else (math.nan, math.nan)
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "low": low, "high": high, "n": len(values)}


def aggregate(records: list[dict[str, Any]], method_order: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per (forget set, setting, method): n, status, tuned, verdict, and a `cell` per column."""
    settings = sorted({r["setting"] for r in records if r["method"] not in REFERENCE_ORDER}) or ["with_retain"]
    groups: dict[tuple, list] = defaultdict(list)
    for r in records:
        for setting in (settings if r["method"] in REFERENCE_ORDER else [r["setting"]]):
            groups[(r["forget"], setting, r["method"])].append(r)
    order = [*REFERENCE_ORDER, *[m for m in (method_order or []) if m not in REFERENCE_ORDER]]
    rank = {m: i for i, m in enumerate(order)}
    rows = []
    for (forget, setting, method), group in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][1], rank.get(kv[0][2], len(rank)), kv[0][2])):
        ok = [r for r in group if r["status"] == "ok"]
        row = {"forget": forget, "setting": setting, "method": method, "n": len(ok),
               "status": "ok" if ok else group[0]["status"], "note": "" if ok else group[0].get("error", ""),
               # None where tuning does not apply: the reference rows, and a method that did not run
               "tuned": None if method in REFERENCE_ORDER or not ok else all(r.get("tuned") for r in ok),
               "verdict": None, "seen": set()}
        if len(ok) < len(group) and ok:
            row["note"] = f"{len(group) - len(ok)} of {len(group)} runs failed: {_first_error(group)}"
        for key, _ in COLUMNS:
            raw = [_values(r).get(key, math.nan) for r in ok]
            if any(key in (r.get("flat") or {}) for r in ok) or key in ("seconds", "time_fraction"):
                row["seen"].add(key)
            vals = [v for v in raw if _finite(v)]
            row[key] = cell(vals) if vals else None
            if row[key] is not None and key.endswith(".auc"):  # DeLong's interval over samples, mean over runs
                lows = [(r.get("flat") or {}).get(f"{key}_low") for r in ok]
                highs = [(r.get("flat") or {}).get(f"{key}_high") for r in ok]
                if all(_finite(v) for v in lows + highs):
                    row[key].update(sample_low=float(np.mean(lows)), sample_high=float(np.mean(highs)))
        row["sources"] = draw_sources(ok)
        row["records"] = ok
        rows.append(row)
    _verdicts(rows)
    for row in rows:
        del row["records"]
    return rows


def headline_gap(rows) -> str | None:
    """gap-rmia when the run has it, else gap-mis: the gap a verdict is judged on."""
    return next((g for g in HEADLINE_GAPS if any(r.get(f"gap.{g}") for r in rows)), None)


def _verdicts(rows) -> None:
    """Mark each method row: clearly below the original's gap, or "forgot nothing detectable"."""
    name = headline_gap(rows)
    if name is None:
        return
    key = f"gap.{name}"
    originals = {(r["forget"], r["setting"]): r for r in rows if r["method"] == ORIGINAL and r["status"] == "ok"}
    floors = {(r["forget"], r["setting"]): r[key]["mean"] for r in rows
              if r["method"] == FLOOR and r["status"] == "ok" and r.get(key)}
    for row in rows:
        baseline = originals.get((row["forget"], row["setting"]))
        if row["method"] in REFERENCE_ORDER or row["status"] != "ok" or baseline is None:
            continue
        by_unit = defaultdict(list)
        for r in row["records"]:
            by_unit[(r["forget_seed"], r["model_seed"])].append(r)
        base = {(r["forget_seed"], r["model_seed"]): r for r in baseline["records"]}
        units = [u for u in by_unit if u in base and all(_finite((r.get("flat") or {}).get(key)) for r in by_unit[u])
                 and _finite((base[u].get("flat") or {}).get(key))]
        if not units:
            continue
        gaps = [float(np.mean([r["flat"][key] for r in by_unit[u]])) for u in units]
        baselines = [base[u]["flat"][key] for u in units]
        errors = None
        if len(units) == 1:
            unit = units[0]
            errors = [_gap_standard_error(name, r) for r in (by_unit[unit][0], base[unit])]
        floor = floors.get((row["forget"], row["setting"]))
        row["verdict"] = verdict(gaps, baselines, floor, errors)


def _gap_standard_error(name: str, record) -> float | None:
    """The sampling SE of one record's gap `name`; gap-lm's terms are the LM audit's."""
    flat, sizes = record["flat"], record.get("sizes") or {}
    if name == "gap-lm":
        from unlearn.lm.audit.gap import TERMS
        from unlearn.lm.audit.gap import term_standard_errors as lm_term_errors

        return gap_standard_error(name, lm_term_errors(flat, sizes), TERMS)
    return gap_standard_error(name, term_standard_errors(flat, sizes))


def verdict(gaps, baselines, floor: float | None = None, standard_errors=None) -> str | None:
    """A method's verdict from its per-seed gaps and the original's, paired by seed (see the module
    docstring); `floor` is the retrain-floor's mean gap (0 when the run has no floor row)."""
    below = clearly_below(gaps, baselines, standard_errors=standard_errors)
    if below is None:
        return None
    if below:
        closed = float(np.mean(baselines) - np.mean(gaps))
        distance = float(np.mean(baselines)) - (floor or 0.0)
        return LITTLE if closed < LITTLE_SHARE * distance else BELOW
    return WORSE if clearly_below(baselines, gaps, standard_errors=standard_errors) else NOTHING


def _first_error(group) -> str:
    return next((r.get("error", "") for r in group if r["status"] != "ok"), "")


def present_columns(rows) -> list[tuple[str, str]]:
    return [(k, t) for k, t in COLUMNS if any(k in r.get("seen", ()) for r in rows)]


def fmt(value, row_n: int = 2) -> str:
    """`mean ± t half-width`, `(n=k)` when fewer runs have this figure than the row, `[low, high]` for
    an AUC's DeLong interval; `n/a` for a figure the audit could not give (e.g. TPR on a small D_T)."""
    if value is None:
        return "n/a"
    text = f"{value['mean']:.2f}"
    if value["n"] > 1:
        text += f" ± {value['high'] - value['mean']:.2f}"
    if "sample_low" in value:
        text += f" [{value['sample_low']:.1f}, {value['sample_high']:.1f}]"
    if value["n"] != row_n:
        text += f" (n={value['n']})"
    return text


def best_text(study: dict[str, Any]) -> str:
    """A tuning study's outcome in one line: best score and the tuned values."""
    if study["best"] is None:
        return "every trial failed; the protocol's values ran"
    values = ", ".join(f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}"
                       for k, v in study["best"].items() if k in study["space"])
    return f"best {study['best_score']:.2f} with {values}"


def method_label(row) -> str:
    return f"{row['method']} (untuned)" if row.get("tuned") is False and row.get("tuning") else row["method"]


def draw_sources(records) -> dict[str, int]:
    """How many distinct model seeds, forget sets and run seeds a row's runs span: what its interval
    is over. Forget sets are told apart by their indices (`forget_digest`) where the record has
    them, so the one 50% set disjoint from the tuning set counts once whatever its seeds."""
    return {"model seeds": len({r.get("model_seed") for r in records}),
            "forget sets": len({r.get("forget_digest") or r.get("forget_seed") for r in records}),
            "run seeds": len({r.get("run_seed") for r in records})}


def sources_text(sources: dict[str, int]) -> str:
    """'3 model seeds x 1 forget set x 3 run seeds'-style words for a caption."""
    return ", ".join(f"{k} {name if k != 1 else name[:-1]}" for name, k in sources.items())


def caption(part, tuning: dict[str, Any] | None) -> str:
    n = max((r["n"] for r in part), default=0)
    # Over the rows with the most runs, each source's largest count: the method rows' run seeds,
    # not the reference rows' (Retrain, original and the floor are one run each, run seed 0).
    found = [r["sources"] for r in part if r["n"] == n and r.get("sources")]
    sources = {k: max(f[k] for f in found) for k in found[0]} if found else None
    over = f" ({sources_text(sources)})" if sources else ""
    spread = f"mean ± 95% t half-width over {n} runs{over}" if n > 1 else f"one run{over}: no interval over seeds"
    if tuning:
        runs = f" (each the mean of {tuning['repeats']} runs)" if tuning.get("repeats", 1) > 1 else ""
        scored = "the validation half of the test split" if tuning["objective"] != "gap-lm" else \
            "that forget set's own audit"  # an LM corpus has no test split (`lm_bench`)
        own_seed = "lr_range" in tuning and not tuning.get("source")
        tuned = (f"methods tuned: {tuning['trials']} trials each{runs} on forget seed {tuning['forget_seed']}"
                 + (f" and model seed {tuning['model_seed']}" if own_seed else "")
                 + f", minimising {tuning['objective']} on {scored}")
        if tuning.get("source"):  # a preset: values another run's tuning found
            tuned += (f", by the {tuning['protocol']} protocol on model seed {tuning['model_seed']} "
                      f"(values from {tuning['source']})")
    else:
        tuned = "untuned: every method with the protocol's hyperparameters (the papers' defaults)"
    return f"{spread}; {tuned}"


def span_text(study: dict[str, Any], tuning: dict[str, Any]) -> str:
    """The learning rates a study tried, whether they reached both ends of the stated range, and its
    replaced (diverged) trials; '' for a study without a learning rate or from an older procedure."""
    parts = []
    if study.get("lr_span"):
        reached = "both ends reached" if study["lr_ends_reached"] else "ENDS NOT REACHED"
        stated = f"range [{tuning['lr_range'][0]:g}, {tuning['lr_range'][1]:g}]" if "lr_range" in tuning \
            else "the search space's range"
        parts.append(f"lr tried {study['lr_span'][0]:.3g} to {study['lr_span'][1]:.3g} ({stated}: {reached})")
    if study.get("failed"):
        parts.append(f"{study['failed']} trial(s) failed, {study.get('replaced', 0)} replaced")
    return "; ".join(parts)


def markdown(rows, columns, tuning: dict[str, Any] | None = None) -> str:
    out = []
    gap = headline_gap(rows)
    for forget, setting in dict.fromkeys((r["forget"], r["setting"]) for r in rows):
        part = [r for r in rows if r["forget"] == forget and r["setting"] == setting]
        out.append(f"### {forget}, {setting.replace('_', ' ')}\n")
        out.append(f"{caption(part, tuning)}.\n")
        out.append("| method | n | " + " | ".join(t for _, t in columns) + " | vs original |")
        out.append("| --- | --- |" + " --- |" * len(columns) + " --- |")
        notes = []
        for r in part:
            r = {**r, "tuning": bool(tuning)}
            # A run that did not happen fills its row with its status and explains it below the
            # table, so one long reason does not widen a numeric column.
            cells = [fmt(r[k], r["n"]) for k, _ in columns] if r["status"] == "ok" else [r["status"]] * len(columns)
            out.append(f"| {method_label(r)} | {r['n']} | " + " | ".join(cells) + f" | {r['verdict'] or ''} |")
            if r["status"] != "ok":
                notes.append(f"- {r['method']}: {r['status']}: {r['note']}")
        out.append("")
        if notes:
            out += notes + [""]
    if gap:
        out.append(f"vs original: \"{BELOW}\" when the method's {gap} is clearly below the original model's "
                   f"(the 95% t interval of the paired difference over seeds lies below 0; with one seed, the "
                   f"difference exceeds 1.96 sampling standard errors) by at least {LITTLE_SHARE:.0%} of the way "
                   f"down to the retrain-floor's, \"{LITTLE}\" when clearly below by less, \"{WORSE}\" when "
                   f"clearly above it, else \"{NOTHING}\". retrain-floor: a second retrain from another seed, the "
                   f"gap no method can be expected to beat.\n")
    if tuning:
        out.append(f"Tuned hyperparameters ({tuning.get('source') or 'tuning.json'} has every trial):\n")
        for study in tuning["studies"]:
            span = span_text(study, tuning)
            out.append(f"- {study['method']} ({study['forget']}, {study['setting'].replace('_', ' ')}): "
                       f"{best_text(study)}" + (f"; {span}" if span else ""))
        with_lr = [s for s in tuning["studies"] if s.get("lr_span")]
        if with_lr and "lr_range" in tuning:
            reached = sum(bool(s["lr_ends_reached"]) for s in with_lr)
            out.append(f"\nLearning-rate coverage: {reached} of {len(with_lr)} studies with a learning rate reached "
                       f"both ends of [{tuning['lr_range'][0]:g}, {tuning['lr_range'][1]:g}]; "
                       f"{sum(s.get('replaced', 0) for s in tuning['studies'])} failed trials replaced "
                       f"(at most {tuning['replace_failed']} per study).")
        out.append("")
    return "\n".join(out)


def write_summary(records: list[dict[str, Any]], run_dir: Path, config=None,
                  tuning: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    rows = aggregate(records, list(config.methods) if config is not None else None)
    columns = present_columns(rows)
    write_text(Path(run_dir) / "summary.md", markdown(rows, columns, tuning))
    with atomic_path(Path(run_dir) / "summary.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["forget", "setting", "method", "n", "status", "tuned", "verdict", "note"]
                        + [f"{k}_{s}" for k, _ in columns for s in ("mean", "std", "ci_low", "ci_high", "n")])
        for r in rows:
            cells = [x for k, _ in columns for x in (_csv_cell(r[k]))]
            tuned = "" if r["tuned"] is None else ("tuned" if r["tuned"] and tuning else "untuned")
            writer.writerow([r["forget"], r["setting"], r["method"], r["n"], r["status"], tuned, r["verdict"] or "",
                             r["note"], *cells])
    return rows


def _csv_cell(value) -> tuple:
    if value is None:
        return ("n/a", "", "", "", 0)
    return tuple("" if isinstance(v, float) and math.isnan(v) else v
                 for v in (value["mean"], value["std"], value["low"], value["high"], value["n"]))
