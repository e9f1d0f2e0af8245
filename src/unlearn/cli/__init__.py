"""The `unlearn` command. Each sub-command lives in its own module and registers on `app`.

Exit codes: 0 ok; 2 bad input, with a one-line reason on stderr; 1 internal failure.
"""

from __future__ import annotations

import sys

import typer

from unlearn.cli.common import app
from unlearn.errors import UnlearnInputError

# Sub-command modules register themselves on import.
from unlearn.cli import train as _train  # noqa: E402,F401  isort: skip
from unlearn.cli import demo as _demo  # noqa: E402,F401  isort: skip
from unlearn.cli import forget as _forget  # noqa: E402,F401  isort: skip
from unlearn.cli import bench as _bench  # noqa: E402,F401  isort: skip
from unlearn.cli import report as _report  # noqa: E402,F401  isort: skip
from unlearn.cli import tune as _tune  # noqa: E402,F401  isort: skip
from unlearn.cli import audit as _audit  # noqa: E402,F401  isort: skip
from unlearn.cli import split as _split  # noqa: E402,F401  isort: skip
from unlearn.cli import requests as _requests  # noqa: E402,F401  isort: skip
from unlearn.cli import lm as _lm  # noqa: E402,F401  isort: skip


def main(argv: list[str] | None = None) -> None:
    # Typer's standalone mode already turns usage errors into exit code 2 and --help into 0;
    # what reaches us here is ours to classify.
    try:
        app(args=argv, prog_name="unlearn")
    except UnlearnInputError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as err:  # noqa: BLE001  an internal failure: say what, exit 1
        typer.echo(f"internal error: {type(err).__name__}: {err}", err=True)
        sys.exit(1)
