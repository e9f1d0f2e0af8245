"""`unlearn split`: write a forget set as a CSV, so any figure can be reproduced from the command line.

    unlearn split --dataset mnist1d --fraction 0.1 --seed 0 --out forget.csv
    unlearn split --dataset mnist1d --classes 3,7 --out forget-classes.csv

The same functions draw the forget sets of `unlearn bench` (`unlearn.data.random_forget` and
`class_forget`), so a split written here with a bench's fraction and seed is that bench's split.
"""

from __future__ import annotations

from pathlib import Path

import typer

from unlearn.cli.common import DataRootOpt, DatasetOpt, SeedOpt, app, console, load_dataset


@app.command()
def split(
    out: Path = typer.Option(..., "--out", "-o", help="the CSV to write (an 'index' column of training indices)"),
    fraction: float = typer.Option(None, "--fraction", help="random forget: this fraction of the training set"),
    count: int = typer.Option(None, "--count", help="random forget: exactly this many samples"),
    classes: str = typer.Option(None, "--classes", help="class forget: comma list of class indices"),
    dataset: str = DatasetOpt,
    data_root: Path = DataRootOpt,
    seed: int = SeedOpt,
):
    """Draw a forget set (random, or whole classes) of DATASET's training split and write it as a CSV."""
    from unlearn import data
    from unlearn.errors import UnlearnInputError

    given = [name for name, value in (("--fraction", fraction), ("--count", count), ("--classes", classes))
             if value is not None]
    if len(given) != 1:
        raise UnlearnInputError(f"give exactly one of --fraction, --count or --classes (got {', '.join(given) or 'none'})")
    ds = load_dataset(dataset, data_root)
    if classes is not None:
        try:
            chosen = [int(c) for c in classes.split(",") if c.strip()]
        except ValueError as err:
            raise UnlearnInputError(f"--classes {classes!r}: expected a comma list of class indices") from err
        out_of_range = [c for c in chosen if not 0 <= c < ds.num_classes]
        if not chosen or out_of_range:
            raise UnlearnInputError(f"--classes {classes!r}: class indices must lie in 0..{ds.num_classes - 1}")
        forget = data.class_forget(ds.train.y.numpy(), chosen)
        how = f"classes {chosen}"
    else:
        forget = data.random_forget(len(ds.train), fraction=fraction, count=count, seed=seed)
        how = f"random, {'fraction ' + str(fraction) if fraction is not None else str(count) + ' samples'}, seed {seed}"
    data.save_forget_csv(out, forget.forget)
    console.print(f"{len(forget.forget)} of {len(ds.train)} {ds.name} training samples ({how}) written to {out}")
