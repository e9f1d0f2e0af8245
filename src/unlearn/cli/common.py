"""Pieces every sub-command shares: the Typer app, dataset/bank options, tables."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from unlearn.errors import UnlearnInputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Machine unlearning of trained classifiers, and audits that check it.")
# Piped or captured output (CI logs, `| tee`) gets wide tables instead of rich's 80-column
# default, so method tables stay one line per row.
console = Console(stderr=False, width=None if sys.stdout.isatty() else 160)

DEFAULT_DATASET = "mnist1d"
DatasetOpt = typer.Option(None, "--dataset", "-d",
                          help="mnist1d, digits, cifar10, imagefolder:PATH, torchvision:NAME (default: the data set "
                               "recorded in --model's file, else mnist1d)")
DataRootOpt = typer.Option(None, "--data-root", help="where the dataset lives (cifar10: folder or .tar.gz)")
DeviceOpt = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, mps")
BankOpt = typer.Option(None, "--bank", help="model bank folder (default $UNLEARN_BANK or ~/.cache/unlearn/bank)")
SeedOpt = typer.Option(0, "--seed", help="seed of every random choice")
QuietOpt = typer.Option(False, "--quiet", "-q", help="no progress (by default a bar on a terminal, else a plain "
                                                      "line to stderr every few seconds)")

WideOpt = typer.Option(False, "--wide", help="print every column of summary.md (AUC intervals, TPR, both gaps): "
                                             "wider than 100 columns")


def progress_of(quiet: bool) -> bool | None:
    """The `progress` argument for `--quiet`: off, or chosen by the terminal (`unlearn.progress`)."""
    return False if quiet else None


def load_dataset(name: str | None, root: Path | None, model_file: Path | None = None):
    """The data set named, else the one `model_file` was trained on, else the embedded default."""
    from unlearn import data, models

    if name is None and model_file is not None:
        recorded = (models.read_spec(model_file).get("training") or {}).get("dataset")
        if recorded is None:  # a file from elsewhere: the default's compatibility check names the mismatch
            return data.load(DEFAULT_DATASET, root=root)
        try:
            return data.load(recorded, root=root)
        except UnlearnInputError as err:
            raise UnlearnInputError(f"{model_file} was trained on {recorded!r}, which does not load by that name "
                                    f"({err}); give --dataset") from err
    return data.load(name or DEFAULT_DATASET, root=root)


def check_device(device: str) -> str:
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise UnlearnInputError(f"--device {device!r} is not a device name ({err})") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UnlearnInputError(f"--device {device}: CUDA is not available on this machine")
    return device


def parse_sets(pairs: list[str] | None) -> dict:
    """`--set key=value` pairs, values parsed as YAML scalars (numbers, booleans, lists)."""
    import yaml

    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UnlearnInputError(f"--set {pair!r}: expected key=value")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def table(title: str, columns: list[str], rows: list[list]) -> Table:
    t = Table(title=title)
    for c in columns:
        t.add_column(c, justify="left" if c == columns[0] else "right")
    for r in rows:
        t.add_row(*[f"{v:.2f}" if isinstance(v, float) else "n/a" if v is None else str(v) for v in r])
    return t
