"""`unlearn tune --method M CONFIG`: hyperparameter search against the gap to the retrained model."""

from __future__ import annotations

from pathlib import Path

import typer

from unlearn.cli.common import BankOpt, QuietOpt, app, check_device, console, progress_of, table
from unlearn.errors import UnlearnInputError


@app.command()
def tune(
    config: str = typer.Argument(..., help="protocol YAML (its `tune:` section sets trials, seed, space), or a "
                                          "packaged protocol's name"),
    method: str = typer.Option(..., "--method", "-m", help="a method named in the protocol"),
    trials: int = typer.Option(None, "--trials", help="number of trials (default: the protocol's tune.trials)"),
    out: Path = typer.Option(None, "--out", "-o", help="config fragment to write (default RUN_DIR/best-M.yaml)"),
    run_dir: Path = typer.Option(None, "--run-dir", help="where trials are stored (default runs/<name>-tune-M)"),
    backend: str = typer.Option("local", "--backend", help="local (in this process) or ray"),
    address: str = typer.Option(None, "--address", help="Ray cluster address (default: start a local instance)"),
    bank: Path = BankOpt,
    quiet: bool = QuietOpt,
):
    """Tune one method as `unlearn bench` does (Optuna, on a separate forget set, scored on the
    validation half of the test split); write the best values as a config fragment.

    `unlearn bench` tunes every method itself; this command is for looking at one method's trials.
    """
    from unlearn.bank import ModelBank
    from unlearn.experiments.tune import tune as run_tune
    from unlearn.published import load_protocol

    cfg = load_protocol(config)
    if getattr(cfg, "kind", None) == "lm":
        raise UnlearnInputError(f"{config}: a language-model protocol; its methods are tuned by `unlearn bench` "
                                f"(tune.trials), not `unlearn tune`")
    check_device(cfg.device)
    if trials is not None and trials < 1:
        raise UnlearnInputError(f"--trials must be at least 1, got {trials}")
    run_dir = run_dir or Path("runs") / f"{cfg.name}-tune-{method}"
    result = run_tune(cfg, method, run_dir, trials=trials, bank=ModelBank(bank), out=out, backend=backend,
                      address=address, progress=progress_of(quiet))
    objective = result.outcome["objective"]
    keys = [k for k in result.trials[0] if k not in ("trial", "status")]
    # Hyperparameters as given (a 2-decimal float format would print lr 0.005 as 0.01); the score as a float.
    rows = [[t["trial"], *[t[k] if k == objective else f"{t[k]:.4g}" if isinstance(t[k], float) else f"{t[k]}"
                           for k in keys], t["status"]] for t in result.trials]
    console.print(table(f"tune {method}: trials", ["trial", *keys, "status"], rows))
    console.print(f"best {objective} {result.best_gap:.2f} with {result.best_params}; fragment: {result.fragment}")
