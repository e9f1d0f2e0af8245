"""`unlearn demo`: the main job on the embedded `digits` data."""

from __future__ import annotations

from pathlib import Path

import typer

from unlearn.cli.common import BankOpt, DeviceOpt, app, check_device, console, table


@app.command()
def demo(
    seed: int = typer.Option(0, "--seed"),
    device: str = DeviceOpt,
    bank: Path = BankOpt,
):
    """Train the original and the retrained model on digits (10% random forget) and compare them."""
    from unlearn import data, models
    from unlearn.bank import ModelBank

    check_device(device)
    ds = data.load("digits")
    split = data.random_forget(len(ds.train), fraction=0.1, seed=seed)
    store = ModelBank(bank)
    original = store.get(ds, "mlp", None, seed=seed, device=device, name="original")
    retrained = store.get(ds, "mlp", split.retain, seed=seed, device=device, name="retrain")
    forget_set, retain_set = ds.train.subset(split.forget), ds.train.subset(split.retain)
    rows = [[name, models.accuracy(m, forget_set), models.accuracy(m, retain_set), models.accuracy(m, ds.test)]
            for name, m in (("original", original), ("retrain", retrained))]
    console.print(table(f"digits, 10% random forget ({len(split.forget)} samples), seed {seed}",
                        ["model", "forget acc", "retain acc", "test acc"], rows))
