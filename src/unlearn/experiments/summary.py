"""Summary tables of a run: mean ± std over seeds, per forget set, setting and method.

Columns follow BENCHMARKS.md: forget, retain and test accuracy, each MIA metric, Avg. Gap to
Retrain, and wall time (unlearning only, and as a fraction of the retrain time). Rows: Retrain
first (the same model in both settings), then methods in config order. A method that failed or
cannot run in a setting gets a row saying so.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from unlearn.files import atomic_path, write_text

# (flat metric key, column title), in table order; a column appears when some record has it.
COLUMNS = [
    ("acc.forget", "forget acc"), ("acc.retain", "retain acc"), ("acc.test", "test acc"), ("mis.mis", "MIS"),
    ("loss.auc", "loss MIA AUC"), ("rmia.auc", "RMIA AUC"), ("rmia.tpr_at_1pct_fpr", "RMIA TPR@1%"),
    ("lira.auc", "LiRA AUC"), ("ulira.accuracy", "U-LiRA acc"), ("epsilon.score", "ε score"),
    ("relearn.after", "relearn FA"), ("relearn.excess", "relearn FA − Retrain's"),
    ("gap.avg_gap", "Avg. Gap"), ("seconds", "time (s)"),
    ("time_fraction", "time / retrain"),
]


def _values(record: dict[str, Any]) -> dict[str, float]:
    values = dict(record.get("flat") or {})
    values["seconds"] = record["seconds"]
    values["time_fraction"] = record["seconds"] / record["retrain_seconds"] if record.get("retrain_seconds") else math.nan
    return values


def aggregate(records: list[dict[str, Any]], method_order: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per (forget set, setting, method): n, status, and mean/std of every column."""
    settings = sorted({r["setting"] for r in records if r["method"] != "retrain"}) or ["with_retain"]
    groups: dict[tuple, list] = defaultdict(list)
    for r in records:
        for setting in (settings if r["method"] == "retrain" else [r["setting"]]):
            groups[(r["forget"], setting, r["method"])].append(r)
    order = ["retrain", *[m for m in (method_order or []) if m != "retrain"]]
    rank = {m: i for i, m in enumerate(order)}
    rows = []
    for (forget, setting, method), group in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][1], rank.get(kv[0][2], len(rank)), kv[0][2])):
        ok = [r for r in group if r["status"] == "ok"]
        row = {"forget": forget, "setting": setting, "method": method, "n": len(ok),
               "status": "ok" if ok else group[0]["status"], "note": "" if ok else group[0].get("error", "")}
        if len(ok) < len(group) and ok:
            row["note"] = f"{len(group) - len(ok)} of {len(group)} runs failed: {_first_error(group)}"
        for key, _ in COLUMNS:
            vals = [v for v in (_values(r).get(key, math.nan) for r in ok) if v is not None and not math.isnan(v)]
            row[key] = (float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0) if vals else None
        rows.append(row)
    return rows


def _first_error(group) -> str:
    return next((r.get("error", "") for r in group if r["status"] != "ok"), "")


def present_columns(rows) -> list[tuple[str, str]]:
    return [(k, t) for k, t in COLUMNS if any(r.get(k) is not None for r in rows)]


def fmt(cell, n: int = 2) -> str:
    """`mean ± std`; a single run has no spread to show, so just its value."""
    if cell is None:
        return "-"
    mean, std = cell
    return f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"


def markdown(rows, columns) -> str:
    out = []
    for forget, setting in dict.fromkeys((r["forget"], r["setting"]) for r in rows):
        part = [r for r in rows if r["forget"] == forget and r["setting"] == setting]
        n = max((r["n"] for r in part), default=0)
        spread = f"mean ± std over {n} runs" if n > 1 else "one run"
        out.append(f"### {forget}, {setting.replace('_', ' ')} ({spread})\n")
        out.append("| method | " + " | ".join(t for _, t in columns) + " |")
        out.append("| --- |" + " --- |" * len(columns))
        notes = []
        for r in part:
            # A run that did not happen fills its row with its status and explains it below the
            # table, so one long reason does not widen a numeric column.
            cells = [fmt(r[k], r["n"]) for k, _ in columns] if r["status"] == "ok" else [r["status"]] * len(columns)
            out.append(f"| {r['method']} | " + " | ".join(cells) + " |")
            if r["status"] != "ok":
                notes.append(f"- {r['method']}: {r['status']}: {r['note']}")
        out.append("")
        if notes:
            out += notes + [""]
    return "\n".join(out)


def write_summary(records: list[dict[str, Any]], run_dir: Path, config=None) -> list[dict[str, Any]]:
    rows = aggregate(records, list(config.methods) if config is not None else None)
    columns = present_columns(rows)
    write_text(Path(run_dir) / "summary.md", markdown(rows, columns))
    with atomic_path(Path(run_dir) / "summary.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["forget", "setting", "method", "n", "status", "note"]
                        + [f"{k}_{s}" for k, _ in columns for s in ("mean", "std")])
        for r in rows:
            cells = [x for k, _ in columns for x in (r[k] if r[k] is not None else ("", ""))]
            writer.writerow([r["forget"], r["setting"], r["method"], r["n"], r["status"], r["note"], *cells])
    return rows
