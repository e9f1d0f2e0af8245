"""`unlearn report RUN_DIR`: one self-contained HTML file from a run directory.

What BENCHMARKS.md asks a benchmark to show, in one file that opens anywhere (no scripts, no
external files; every plot is a base64-embedded PNG drawn by matplotlib):
- the summary tables (mean ± t interval per method per setting, with n; the `original` and
  `retrain-floor` reference rows; gap-rmia and gap-mis to Retrain; each method's verdict against
  the original; time vs retrain), and whether the methods were tuned;
- the tuning stage: search space, tuned values, every trial and its score;
- true-class confidence histograms on D_R, D_F, D_T per method, beside Retrain's (for the
  retrained model the D_F and D_T curves coincide; a method that unlearned well looks the same);
  for a language model the histograms are of the answer probability P(answer | question)^(1/len)
  on retain, forget and holdout questions (`lm_jobs._curves`), and say so (`Histogram`);
- MIA ROC curves on log-log axes (the low-FPR region is where membership inference matters);
- Avg. Gap vs cost (unlearning time as a fraction of retraining);
- for a language-model protocol with the relearning audit, accuracy after k relearning steps per
  method beside Retrain's (recovery vs steps), with the attack's settings;
- the statistics a method records (`stats_`: AMUN's adversarial set, SISA's cost, ...);
- the protocol and the environment it ran in.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from unlearn.errors import UnlearnInputError
from unlearn.experiments.store import ResultStore
from unlearn.experiments.summary import (
    LITTLE,
    NOTHING,
    REFERENCE_ORDER,
    WORSE,
    aggregate,
    best_text,
    caption,
    fmt,
    headline_gap,
    markdown,
    method_label,
    present_columns,
    span_text,
)
from unlearn.files import atomic_path, write_text

PART_COLOURS = {"retain": "tab:blue", "forget": "tab:red", "test": "tab:green"}


class Histogram:
    """What a run's histograms count: a classifier's true-class confidence on D_R, D_F and D_T,
    or a language model's length-normalised answer probability on retain, forget and holdout
    (never trained on) questions (`lm_jobs._curves`). An LM protocol names a corpus, a classifier
    protocol a dataset."""

    def __init__(self, config: dict[str, Any]):
        self.lm = "corpus" in config
        self.axis = "P(answer | question)^(1/len)" if self.lm else "true-class confidence"
        self.name = "answer probability" if self.lm else "true-class confidence"
        self.short = "answer probability" if self.lm else "confidence"  # the images' alt texts
        self.parts = {"retain": "retain", "forget": "forget", "test": "holdout"} if self.lm else \
            {part: f"D_{part[0].upper()}" for part in PART_COLOURS}
        self.heading = ("Answer probability P(answer | question)^(1/len) on retain, forget and holdout "
                        "questions" if self.lm else "True-class confidence") + ": each method beside Retrain"


def model_name(config: dict[str, Any]) -> str:
    """The protocol's model: a classifier's architecture, or the LM bench's GPT-2 (trained from
    scratch on the corpus) with its recipe's size."""
    if "corpus" in config:
        from unlearn.lm.models import LMRecipe

        recipe = LMRecipe(**(config.get("recipe") or {}))  # the protocol's overrides of the default recipe
        return f"GPT-2 trained on the corpus, {recipe.n_layer} layers, {recipe.n_embd} wide"
    return str((config.get("model") or {}).get("arch", "?"))


def _save(fig, target) -> None:
    """Write `fig` as PNG to a path or file object, and free it."""
    import matplotlib.pyplot as plt

    fig.savefig(target, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)


def _png(fig) -> str:
    buf = io.BytesIO()
    _save(fig, buf)
    return base64.b64encode(buf.getvalue()).decode()


def _img(fig, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(fig)}">'


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")  # headless; also safe when a GUI backend is configured
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def _in_row_order(methods: dict[str, list], part: list[dict[str, Any]]) -> dict[str, list]:
    """The methods of one table in the order of its rows (Retrain, the reference rows, the config's)."""
    return {r["method"]: methods[r["method"]] for r in part if r["method"] in methods}


def _by_table(records) -> dict[tuple[str, str], dict[str, list]]:
    """(forget set, setting) -> method -> successful records; Retrain's go into every setting."""
    settings = sorted({r["setting"] for r in records if r["method"] not in REFERENCE_ORDER}) or ["with_retain"]
    out: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.get("status") != "ok":
            continue
        for setting in (settings if r["method"] in REFERENCE_ORDER else [r["setting"]]):
            out[(r["forget"], setting)][r["method"]].append(r)
    return out


def _hist_panel(ax, runs, title, quantity: Histogram):
    edges = np.asarray(runs[0]["hist_edges"])
    centres = (edges[:-1] + edges[1:]) / 2
    for part, colour in PART_COLOURS.items():
        counts = np.sum([r["hist"][part] for r in runs], axis=0).astype(float)
        ax.step(centres, counts / max(counts.sum(), 1), where="mid", color=colour, label=quantity.parts[part])
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(quantity.axis, fontsize=8)
    ax.set_yscale("log")
    ax.tick_params(labelsize=7)


def histograms(methods: dict[str, list], quantity: Histogram) -> list[str]:
    images = []
    for method, runs in methods.items():
        if method == "retrain" or "retrain" not in methods:
            continue
        fig, axes = _figure(1, 2, figsize=(6.4, 2.4), sharey=True)
        _hist_panel(axes[0], methods["retrain"], "Retrain", quantity)
        _hist_panel(axes[1], runs, method, quantity)
        axes[0].set_ylabel("fraction", fontsize=8)
        axes[1].legend(fontsize=7)
        images.append(_img(fig, f"{quantity.short} histogram {method}"))
    return images


def roc_curves(methods: dict[str, list], emit=_img) -> list[str]:
    attacks = sorted({a for runs in methods.values() for r in runs for a in r.get("roc", {})})
    images = []
    for attack in attacks:
        fig, ax = _figure(figsize=(4.2, 3.6))
        grid = np.logspace(-3, 0, 50)
        ax.plot(grid, grid, color="grey", linestyle=":", label="chance")
        for index, (method, runs) in enumerate(methods.items()):
            curves = [r["roc"][attack] for r in runs if attack in r.get("roc", {})]
            if not curves:
                continue
            fpr = np.asarray(curves[0]["fpr"])
            tpr = np.mean([c["tpr"] for c in curves], axis=0)
            # matplotlib cycles 10 colours; dash the next ten so 13 methods stay distinguishable
            style = {"color": "black", "linewidth": 2} if method == "retrain" else \
                {"linestyle": "-" if index < 10 else "--"}
            ax.plot(fpr, np.maximum(tpr, 1e-4), label=method, **style)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(1e-3, 1)
        ax.set_ylim(1e-3, 1.05)
        ax.set_xlabel("false positive rate (D_T called member)", fontsize=8)
        ax.set_ylabel("true positive rate (D_F called member)", fontsize=8)
        ax.set_title(f"{attack} MIA, D_F vs D_T", fontsize=9)
        ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))  # beside the axes: curves stay visible
        images.append(emit(fig, f"ROC {attack}"))
    return images


def gap_vs_cost(rows: list[dict[str, Any]], forget: str, setting: str, emit=_img) -> str | None:
    gap = headline_gap(rows)
    key = f"gap.{gap}"
    part = [r for r in rows if r["forget"] == forget and r["setting"] == setting and r["status"] == "ok"]
    points = [r for r in part if r["method"] not in REFERENCE_ORDER and r.get(key) and r.get("time_fraction")
              and r["time_fraction"]["mean"] > 0]
    if not points:
        return None
    fig, ax = _figure(figsize=(4.2, 3.2))
    for method, style in (("original", ":"), ("retrain-floor", "--")):
        ref = next((r for r in part if r["method"] == method and r.get(key)), None)
        if ref is not None:  # doing nothing, and the noise floor: horizontal lines to compare against
            ax.axhline(ref[key]["mean"], color="grey", linestyle=style, linewidth=1, label=method)
    for index, r in enumerate(points):
        x, y = r["time_fraction"]["mean"], r[key]["mean"]
        spread = r[key]["high"] - y if r[key]["n"] > 1 else 0.0
        ax.errorbar(x, y, yerr=spread, fmt="o" if index < 10 else "s")
        ax.annotate(r["method"], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter("")  # a narrow log range otherwise labels every minor tick
    ax.set_xlabel("unlearning time / retraining time", fontsize=8)
    ax.set_ylabel(f"{gap} to Retrain (points)", fontsize=8)
    ax.set_title(f"gap vs cost, {forget}, {setting.replace('_', ' ')}", fontsize=9)
    ax.legend(fontsize=6)
    return emit(fig, "gap vs cost")


def relearn_curves(methods: dict[str, list], emit=_img) -> list[str]:
    """Language models with the relearning audit (`audit: relearn:` in the protocol): per attack,
    accuracy on the forget facts the attack did not teach after k fine-tuning steps, mean over runs,
    one line per method, Retrain's dashed: the recovery is each line's height above it."""
    images = []
    for attack, what in (("facts", "untaught forget facts"), ("benign", "forget facts")):
        runs = {m: [r["metrics"]["relearn"][attack] for r in rs if "relearn" in (r.get("metrics") or {})]
                for m, rs in methods.items()}
        runs = {m: curves for m, curves in runs.items() if curves}
        if not runs:
            continue
        fig, ax = _figure(figsize=(4.6, 3.2))
        for method, curves in runs.items():
            steps = curves[0]["steps"]
            mean = np.mean([c["accuracy"] for c in curves if c["steps"] == steps], axis=0)
            style = dict(color="black", linestyle="--") if method == "retrain" else {}
            ax.plot(steps, mean, marker="o", markersize=3, label=method, **style)
        ax.set_xlabel("relearning steps k", fontsize=8)
        ax.set_ylabel(f"accuracy on {what} (%)", fontsize=8)
        ax.set_title(f"relearning ({attack}): what comes back", fontsize=9)
        ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
        images.append(emit(fig, f"relearning {attack}"))
    return images


def confidence_grid(methods: dict[str, list], quantity: Histogram, emit=_img, columns: int = 4) -> str | None:
    """All methods' histograms (true-class confidence, or an LM's answer probability) in one figure,
    Retrain's panel first."""
    order = list(dict.fromkeys(m for m in ("retrain", *methods) if m in methods))
    if not order:
        return None
    rows = -(-len(order) // columns)
    fig, axes = _figure(rows, columns, figsize=(2.6 * columns, 2.1 * rows), sharex=True, sharey=True, squeeze=False)
    for ax, method in zip(axes.flat, order):
        _hist_panel(ax, methods[method], method, quantity)
    for ax in list(axes.flat)[len(order):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return emit(fig, f"{quantity.name} histograms")


def _table_html(rows, columns, tuned: bool) -> str:
    head = "<th>method</th><th>n</th>" + "".join(f"<th>{html.escape(t)}</th>" for _, t in columns) \
        + "<th>vs original</th>"
    body = []
    for r in rows:
        if r["status"] == "ok":
            cells = "".join(f"<td>{fmt(r[k], r['n'])}</td>" for k, _ in columns)
            verdict = r["verdict"] or ""
            style = ' style="color:#b00"' if verdict in (NOTHING, LITTLE, WORSE) else ""
            cells += f"<td{style}>{html.escape(verdict)}</td>"
        else:
            cells = f'<td colspan="{len(columns) + 1}">{html.escape(r["status"])}: {html.escape(r["note"])}</td>'
        label = method_label({**r, "tuning": tuned})
        body.append(f"<tr><td>{html.escape(label)}</td><td>{r['n']}</td>{cells}</tr>")
    return f"<table class='summary'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _td(value) -> str:
    if value is None:
        return "<td>n/a</td>"
    return f"<td>{value:.4g}</td>" if isinstance(value, float) else f"<td>{html.escape(str(value))}</td>"


def _tuning_html(tuning: dict[str, Any] | None) -> str:
    """The tuning stage: per study its search space, tuned values and every trial's score."""
    if not tuning:
        return ("<h2>Tuning</h2><p>Untuned: every method ran with the protocol's hyperparameters (the papers' "
                "defaults); <code>tune.trials: 0</code> or <code>--no-tune</code>.</p>")
    sampler = html.escape(tuning.get("sampler", "Optuna TPE"))
    runs = f", each the mean of {tuning['repeats']} runs" if tuning.get("repeats", 1) > 1 else ""
    parts = [f"<h2>Tuning</h2><p>{tuning['trials']} trials per method and setting ({sampler}{runs}), on a forget set "
             f"drawn with seed {tuning['forget_seed']} and model seed {tuning['model_seed']}, minimising "
             f"{html.escape(tuning['objective'])}, scored on {html.escape(tuning['scored_on'])}.</p>"]
    for study in tuning["studies"]:
        space = ", ".join(f"{k} ∈ {v}" for k, v in study["space"].items())
        best = best_text(study)
        rows = "".join(f"<tr><td>{t['trial']}</td>" + "".join(_td(v) for v in t["params"].values())
                       + _td(t["score"]) + _td(t["status"]) + "</tr>" for t in study["trials"])
        head = "<th>trial</th>" + "".join(f"<th>{html.escape(k)}</th>" for k in study["space"]) + \
            f"<th>{html.escape(tuning['objective'])}</th><th>status</th>"
        span = span_text(study, tuning)
        parts.append(f"<details><summary>{html.escape(study['method'])}, {html.escape(study['forget'])}, "
                     f"{html.escape(study['setting'].replace('_', ' '))}: {html.escape(best)}"
                     f"{html.escape('; ' + span) if span else ''}</summary>"
                     f"<p>search space: {html.escape(space)}</p><table><thead><tr>{head}</tr></thead>"
                     f"<tbody>{rows}</tbody></table></details>")
    return "".join(parts)


def _stats_html(methods: dict[str, list]) -> str:
    """Statistics methods leave in `stats_` (AMUN's adversarial set, SISA's cost, ...), first run, scalars only."""
    from unlearn.audit import flatten

    blocks = []
    for method, runs in methods.items():
        stats = next((r["stats"] for r in runs if isinstance(r.get("stats"), dict) and r["stats"]), None)
        if stats is None:
            continue
        scalars = {k: v for k, v in flatten(stats).items() if isinstance(v, (int, float, str, bool))}
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(f'{v:.4g}' if isinstance(v, float) else str(v))}"
                       f"</td></tr>" for k, v in scalars.items())
        blocks.append(f"<details><summary>{html.escape(method)}</summary><table>{rows}</table></details>")
    return "<h3>Method statistics (first run)</h3>" + "".join(blocks) if blocks else ""


STYLE = """body{font-family:sans-serif;margin:1.5em;max-width:1200px}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #bbb;padding:2px 6px;text-align:right;font-size:13px}td:first-child{text-align:left}
img{margin:4px;vertical-align:top}pre{background:#f4f4f4;padding:.5em;font-size:12px;overflow:auto}"""


def _load_run(run_dir: Path) -> tuple[list, dict, dict, dict | None]:
    """A run directory's records, protocol, environment and tuning stage (None when untuned)."""
    import yaml

    if not (run_dir / "runs").is_dir():
        raise UnlearnInputError(f"{run_dir} is not a run directory (no runs/ folder); run `unlearn bench` first")
    records = list(ResultStore(run_dir).current_records())
    if not records:
        raise UnlearnInputError(f"{run_dir}: the run has no finished jobs yet")
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    env = json.loads((run_dir / "environment.json").read_text()) if (run_dir / "environment.json").is_file() else {}
    tuning = json.loads((run_dir / "tuning.json").read_text()) if (run_dir / "tuning.json").is_file() and \
        ((config or {}).get("tune") or {}).get("trials") else None
    return records, config or {}, env, tuning


def overview_markdown(rows: list[dict[str, Any]]) -> str:
    """One table for the whole run: a row per method, a column per (forget set, setting), each cell
    the headline gap (mean ± t half-width) and the verdict when it is not "below original"."""
    gap = headline_gap(rows)
    if gap is None:
        return ""
    key = f"gap.{gap}"
    tables = list(dict.fromkeys((r["forget"], r["setting"]) for r in rows))
    cells = {(r["forget"], r["setting"], r["method"]): r for r in rows}
    marks = {NOTHING: "nothing", LITTLE: "little", WORSE: "worse"}
    out = [f"{gap} to Retrain (lower is better; mean ± 95% t half-width over seeds; a mark when the "
           f"verdict is not \"below original\": nothing = {NOTHING}, little = {LITTLE}, worse = {WORSE})\n",
           "| method | " + " | ".join(f"{f}, {s.replace('_', ' ')}" for f, s in tables) + " |",
           "| --- |" + " --- |" * len(tables)]
    for method in dict.fromkeys(r["method"] for r in rows):
        texts = []
        for forget, setting in tables:
            r = cells.get((forget, setting, method))
            if r is None or r["status"] != "ok" or r.get(key) is None:
                texts.append("n/a" if r is None or r["status"] == "n/a" else r["status"])
                continue
            text = fmt(r[key], r["n"])
            if r["verdict"] in marks:
                text += f" ({marks[r['verdict']]})"
            texts.append(text)
        out.append(f"| {method} | " + " | ".join(texts) + " |")
    return "\n".join(out) + "\n"


def write_markdown(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Write `out_dir/tables.md` (the summary tables, tuned values, environment) and beside it one PNG
    per figure (per table: ROC curves, confidence histograms, gap vs cost): a report to commit and
    read on a forge, where an HTML file with embedded images does not render. Returns tables.md."""
    import re

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    records, config, env, tuning = _load_run(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = aggregate(records, list(config.get("methods") or []))
    columns = present_columns(rows)
    tables = _by_table(records)
    text = markdown(rows, columns, tuning)
    figures = []
    for forget, setting in dict.fromkeys((r["forget"], r["setting"]) for r in rows):
        stem = re.sub(r"[^a-z0-9]+", "-", f"{forget}-{setting}".lower()).strip("-")
        links = []

        def emit(fig, alt, stem=stem, links=links):
            name = f"{stem}-{re.sub(r'[^a-z0-9]+', '-', alt.lower()).strip('-')}.png"
            with atomic_path(out_dir / name) as tmp:
                _save(fig, tmp)
            links.append(f"![{alt}]({name})")
            return name

        part = [r for r in rows if r["forget"] == forget and r["setting"] == setting]
        methods = _in_row_order(tables.get((forget, setting), {}), part)
        roc_curves(methods, emit)
        gap_vs_cost(part, forget, setting, emit)
        relearn_curves(methods, emit)
        confidence_grid(methods, Histogram(config), emit)
        figures.append(f"### Figures: {forget}, {setting.replace('_', ' ')}\n\n" + "\n".join(links) + "\n")
    invocations = [*env.get("earlier", []), {k: v for k, v in env.items() if k != "earlier"}]
    env_text = "\n".join(f"- {e.get('started')}: {e.get('host')}, {e.get('cpus')} cpus, torch {e.get('torch')} with "
                         f"{e.get('torch_threads')} threads, {e.get('backend')} backend, commit {e.get('git_commit')}"
                         for e in invocations)
    page = (f"## {config.get('name', run_dir.name)}: {len(records)} job records\n\n"
            f"Built by `unlearn report {run_dir} --markdown {out_dir}`. The bench invocations that wrote "
            f"the run (each job record also names its own host, torch, threads and commit):\n\n{env_text}\n\n"
            + "### Overview\n\n" + overview_markdown(rows) + "\n" + text + "\n" + "\n".join(figures))
    write_text(out_dir / "tables.md", page)
    return out_dir / "tables.md"


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write `run_dir/report.html` (or `out`) and return its path."""
    import yaml

    run_dir = Path(run_dir)
    records, config, env, tuning = _load_run(run_dir)
    rows = aggregate(records, list(config.get("methods") or []))
    columns = present_columns(rows)
    tables = _by_table(records)
    quantity = Histogram(config)
    parts = [f"<h1>unlearn benchmark: {html.escape(str(config.get('name', run_dir.name)))}</h1>",
             f"<p>{len(records)} job records from <code>{html.escape(str(run_dir))}</code>; "
             f"dataset {html.escape(str(config.get('dataset', config.get('corpus', '?'))))}, model "
             f"{html.escape(model_name(config))}. All figures in percent; "
             f"each cell is the mean over n runs ± the half-width of Student's t 95% interval, an AUC also "
             f"with DeLong's 95% interval over samples [low, high]. Rows <em>original</em> (the untouched "
             f"model: the gap of doing nothing) and <em>retrain-floor</em> (a second retrain from another "
             f"seed: the noise floor); a method whose gap is not clearly below the original's is marked "
             f"\"{NOTHING}\" (\"{LITTLE}\" when it closed less than a tenth of the way to the floor). Time: unlearning alone, wall clock; \"time / retrain\" divides it by "
             f"the retrain time the model bank recorded when it trained the oracle (possibly in an earlier "
             f"run, under another machine load).</p>"]
    for forget, setting in dict.fromkeys((r["forget"], r["setting"]) for r in rows):
        part = [r for r in rows if r["forget"] == forget and r["setting"] == setting]
        title = f"{forget}, {setting.replace('_', ' ')}"
        parts.append(f"<h2>{html.escape(title)}</h2><p>{html.escape(caption(part, tuning))}.</p>")
        parts.append(_table_html(part, columns, bool(tuning)))
        methods = _in_row_order(tables.get((forget, setting), {}), part)
        scatter = gap_vs_cost(part, forget, setting)
        parts.append("<h3>MIA ROC curves (log-log) and gap vs cost</h3><div>"
                     + "".join(roc_curves(methods)) + (scatter or "") + "</div>")
        relearned = relearn_curves(methods)
        if relearned:
            settings = next(r["metrics"]["relearn"]["settings"] for rs in methods.values() for r in rs
                            if "relearn" in (r.get("metrics") or {}))
            parts.append("<h3>Relearning: accuracy after k fine-tuning steps, beside Retrain's</h3><p>"
                         f"Settings: {html.escape(json.dumps(settings))}.</p><div>" + "".join(relearned) + "</div>")
        parts.append(f"<h3>{html.escape(quantity.heading)}</h3><div>"
                     + "".join(histograms(methods, quantity)) + "</div>")
        parts.append(_stats_html(methods))
    parts.append(_tuning_html(tuning))
    parts.append("<h2>Protocol</h2><pre>" + html.escape(yaml.safe_dump(config, sort_keys=False)) + "</pre>")
    parts.append("<h2>Environment</h2><pre>" + html.escape(json.dumps(env, indent=1)) + "</pre>")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>unlearn report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")
    out = Path(out) if out is not None else run_dir / "report.html"
    write_text(out, page)
    return out
