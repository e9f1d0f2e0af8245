"""`unlearn bench CONFIG`: run a benchmark protocol (methods x forget sets x seeds) into a run directory."""

from __future__ import annotations

from pathlib import Path

import typer

from unlearn.cli.common import BankOpt, QuietOpt, WideOpt, app, check_device, console, progress_of
from unlearn.errors import UnlearnInputError


def print_packaged() -> None:
    """The packaged protocols, each with the first sentence of its opening comment."""
    from unlearn import published

    for name in published.names():
        lines = published.protocol_text(name).splitlines()
        comment = " ".join(line.lstrip("# ") for line in lines[:next(i for i, x in enumerate(lines) if
                                                                         not x.startswith("#"))])
        about = comment.split(": ", 1)[-1].split(". ")[0].rstrip(".")
        console.print(f"{name:<14} {about}", highlight=False)


# The terminal table's columns: what says whether a method forgot, at what cost, in 100 columns.
# Everything else (retain acc, MIS, the AUCs' DeLong intervals, TPR, the other gap, time / retrain)
# is in summary.md, the HTML report and `--wide`.
TERMINAL_WIDTH = 100


def terminal_columns(rows) -> list[tuple[str, str]]:
    from unlearn.experiments.summary import headline_gap, present_columns

    gap = headline_gap(rows)
    auc = "rmia.auc" if gap == "gap-rmia" else "loss.auc"
    wanted = ["acc.forget", "acc.test", auc, *([f"gap.{gap}"] if gap else []), "seconds"]
    present = dict(present_columns(rows))
    return [(key, present[key]) for key in wanted if key in present]


def short_cell(value) -> str:
    """`mean ± t half-width` with one decimal (summary.md has two, and the AUCs' intervals)."""
    if value is None:
        return "n/a"
    text = f"{value['mean']:.1f}"
    return text + f" ± {value['high'] - value['mean']:.1f}" if value["n"] > 1 else text


def summary_tables(rows, tuning) -> list:
    """Per forget set and setting: its caption, then a table that fits `TERMINAL_WIDTH` columns."""
    from rich import box
    from rich.table import Table

    from unlearn.experiments.summary import caption, method_label

    columns = terminal_columns(rows)
    out = []
    for forget, setting in dict.fromkeys((r["forget"], r["setting"]) for r in rows):
        part = [r for r in rows if r["forget"] == forget and r["setting"] == setting]
        table = Table(title=f"{forget}, {setting.replace('_', ' ')}", box=box.SIMPLE_HEAD, padding=(0, 0),
                      collapse_padding=True, pad_edge=False, show_edge=False, title_justify="left")
        for i, (_, title) in enumerate([("method", "method"), *columns, ("verdict", "vs original")]):
            table.add_column(title, justify="left" if i in (0, len(columns) + 1) else "right", no_wrap=True)
        for r in part:
            cells = [short_cell(r[k]) for k, _ in columns] if r["status"] == "ok" else [r["status"]] * len(columns)
            table.add_row(method_label({**r, "tuning": bool(tuning)}), *cells, r["verdict"] or "")
        out += [table, f"{caption(part, tuning)}."]
        out += [f"{r['method']}: {r['status']}: {r['note']}" for r in part if r["status"] != "ok"]
    return out


def print_summary(run_dir: Path, rows, tuning, wide: bool = False) -> None:
    """The run's tables: compact (100 columns) by default, summary.md in full with `wide`."""
    from rich.markdown import Markdown

    if wide:
        console.print(Markdown((run_dir / "summary.md").read_text()))
        return
    for item in summary_tables(rows, tuning):
        console.print(item, highlight=False)
    console.print(f"Every column, the AUCs' intervals and the tuned values: {run_dir / 'summary.md'}, "
                  f"`unlearn report {run_dir}`, or --wide.", highlight=False)


@app.command()
def bench(
    config: str = typer.Argument(None, help="protocol YAML file, or the name of a packaged protocol "
                                           "(unlearn bench --list)"),
    list_protocols: bool = typer.Option(False, "--list", help="list the packaged protocols and exit"),
    out: Path = typer.Option(None, "--out", "-o", help="run directory (default runs/<config name>)"),
    backend: str = typer.Option("local", "--backend", help="local (in this process), processes (a pool on this "
                                                           "machine, --workers) or ray"),
    address: str = typer.Option(None, "--address", help="Ray cluster address (default: start a local instance)"),
    workers: int = typer.Option(None, "--workers", help="--backend processes: how many (default one per core)"),
    no_tune: bool = typer.Option(False, "--no-tune", help="skip tuning: every method with the protocol's "
                                 "hyperparameters (the papers' defaults), labelled untuned"),
    bank: Path = BankOpt,
    quiet: bool = QuietOpt,
    wide: bool = WideOpt,
):
    """Run CONFIG: tune every method, train originals and retrains into the bank, unlearn, audit, write tables.

    Each method is first tuned (tune.trials trials, on a separate forget set, scored on the
    validation half of the test split), then evaluated with its tuned values. Tables have the
    `original` and `retrain-floor` reference rows. Re-running into the same run directory resumes:
    the tuning outcome is reused, models in the bank are not retrained and jobs with a stored
    record are not re-run.
    """
    from unlearn.bank import ModelBank
    from unlearn.experiments import run_bench
    from unlearn.published import load_protocol

    if list_protocols:
        print_packaged()
        return
    if config is None:
        raise UnlearnInputError("give a protocol: a YAML file or a packaged protocol's name (unlearn bench --list)")
    cfg = load_protocol(config)  # refuses a malformed protocol before any work starts
    if backend != "ray":  # with Ray the workers' devices count, not the driver's
        check_device(cfg.device)
    run_dir = out or Path("runs") / cfg.name
    result = run_bench(cfg, run_dir, backend=backend, address=address, bank=ModelBank(bank), tune=not no_tune,
                       progress=progress_of(quiet), workers=workers)
    print_summary(run_dir, result.rows, result.tuning, wide)
    total = len(result.plan.oracle) + len(result.plan.runs)
    console.print(f"{total} jobs: {result.executed} run now, {total - result.executed - len(result.crashed)} "
                  f"from the results store; {result.trained} models trained into the bank; "
                  f"{result.seconds:.1f} s. Results in {run_dir}/")
    if result.crashed:
        for rec in result.crashed:
            console.print(f"[red]crashed[/red] {rec['method']} ({rec['setting']}, forget {rec['forget']} "
                          f"seed {rec['forget_seed']}, model seed {rec['model_seed']}): {rec['error']}")
        raise typer.Exit(1)
