"""`unlearn bench CONFIG`: run a benchmark protocol (methods x forget sets x seeds) into a run directory."""

from __future__ import annotations

from pathlib import Path

import typer

from unlearn.cli.common import BankOpt, QuietOpt, app, check_device, console, progress_of
from unlearn.errors import UnlearnInputError


def print_packaged() -> None:
    """The packaged protocols, each with the first sentence of its opening comment."""
    from unlearn import protocols

    for name in protocols.names():
        lines = protocols.protocol_text(name).splitlines()
        comment = " ".join(line.lstrip("# ") for line in lines[:next(i for i, x in enumerate(lines) if
                                                                         not x.startswith("#"))])
        about = comment.split(": ", 1)[-1].split(". ")[0].rstrip(".")
        console.print(f"{name:<14} {about}", highlight=False)


def print_summary(run_dir: Path) -> None:
    from rich.markdown import Markdown

    console.print(Markdown((run_dir / "summary.md").read_text()))


@app.command()
def bench(
    config: str = typer.Argument(None, help="protocol YAML file, or the name of a packaged protocol "
                                           "(unlearn bench --list)"),
    list_protocols: bool = typer.Option(False, "--list", help="list the packaged protocols and exit"),
    out: Path = typer.Option(None, "--out", "-o", help="run directory (default runs/<config name>)"),
    backend: str = typer.Option("local", "--backend", help="local (in this process) or ray"),
    address: str = typer.Option(None, "--address", help="Ray cluster address (default: start a local instance)"),
    no_tune: bool = typer.Option(False, "--no-tune", help="skip tuning: every method with the protocol's "
                                 "hyperparameters (the papers' defaults), labelled untuned"),
    bank: Path = BankOpt,
    quiet: bool = QuietOpt,
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
    from unlearn.protocols import load_protocol

    if list_protocols:
        print_packaged()
        return
    if config is None:
        raise UnlearnInputError("give a protocol: a YAML file or a packaged protocol's name (unlearn bench --list)")
    cfg = load_protocol(config)  # refuses a malformed protocol before any work starts
    if backend == "local":  # with Ray the workers' devices count, not the driver's
        check_device(cfg.device)
    run_dir = out or Path("runs") / cfg.name
    result = run_bench(cfg, run_dir, backend=backend, address=address, bank=ModelBank(bank), tune=not no_tune,
                       progress=progress_of(quiet))
    print_summary(run_dir)
    total = len(result.plan.oracle) + len(result.plan.runs)
    console.print(f"{total} jobs: {result.executed} run now, {total - result.executed - len(result.crashed)} "
                  f"from the results store; {result.trained} models trained into the bank; "
                  f"{result.seconds:.1f} s. Results in {run_dir}/")
    if result.crashed:
        for rec in result.crashed:
            console.print(f"[red]crashed[/red] {rec['method']} ({rec['setting']}, forget {rec['forget']} "
                          f"seed {rec['forget_seed']}, model seed {rec['model_seed']}): {rec['error']}")
        raise typer.Exit(1)
