"""`unlearn forget`: apply one unlearning method, found by name in the registry, to one model file.

Generic over `unlearn.methods`: hyperparameters come as `--set key=value`, D_R is passed unless
`--no-retain`, and every method also receives the context it may use (the dataset, the split, the
bank for Retrain, and the validation half of the test split as known non-members for SG). The
evaluation half of the test split is never given to a method. When the result's forget accuracy
and loss on D_F are unchanged from the original's within noise, it warns: "forgot nothing
detectable".
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from unlearn.cli.common import (
    BankOpt,
    DataRootOpt,
    DatasetOpt,
    DeviceOpt,
    SeedOpt,
    app,
    check_device,
    console,
    load_dataset,
    parse_sets,
    table,
)
from unlearn.files import write_text


def preset_values(name: str, method: str, setting: str) -> dict:
    """The tuned values of `method` in `setting` from packaged preset `name` (`unlearn.published`)."""
    from unlearn.errors import UnlearnInputError
    from unlearn.published import load_preset, preset_hparams

    values = preset_hparams(load_preset(name), setting, method)
    if values is None:
        raise UnlearnInputError(f"--preset {name}: no tuned values for {method} {setting.replace('_', ' ')} "
                                f"(nothing to tune, or it needs D_R); drop --preset or choose another method")
    return dict(values)


def forgot_nothing(original, new, forget_set) -> bool:
    """Forget accuracy and per-sample loss on D_F unchanged from the original's within noise."""
    from unlearn.audit.stats import unchanged_within_noise
    from unlearn.models import logits, per_sample_loss

    labels = forget_set.y
    return unchanged_within_noise((logits(original, forget_set).argmax(1) == labels).numpy(),
                                  (logits(new, forget_set).argmax(1) == labels).numpy(),
                                  per_sample_loss(original, forget_set).numpy(), per_sample_loss(new, forget_set).numpy())


@app.command()
def forget(
    model: Path = typer.Option(..., "--model", "-m", help="the trained model file (.safetensors)"),
    forget_csv: Path = typer.Option(..., "--forget", "-f", help="CSV with an 'index' column: samples to forget"),
    method: str = typer.Option(..., "--method", help="unlearning method by name: retrain, ft, rl, ga, neggrad+, salun, amun, ..."),
    out: Path = typer.Option(..., "--out", "-o", help="where to write the unlearned model"),
    no_retain: bool = typer.Option(False, "--no-retain", help="do not give the method the retain set D_R"),
    sets: list[str] = typer.Option(None, "--set", help="method hyperparameter key=value, repeatable"),
    preset: str = typer.Option(None, "--preset", help="start from the values a published protocol's tuning "
                               "found for this method and setting (mnist1d: the demo's); --set overrides them"),
    dataset: str = DatasetOpt,
    data_root: Path = DataRootOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    bank: Path = BankOpt,
):
    """Unlearn the --forget samples from --model with --method and write the result to --out."""
    from unlearn import data, methods, models
    from unlearn.bank import ModelBank
    from unlearn.errors import DivergenceError, UnlearnInputError

    check_device(device)
    if method not in methods.available():
        from unlearn.lm import methods as lm_methods

        if method in lm_methods.available():
            raise UnlearnInputError(f"--method {method}: a language-model method (see `unlearn lm forget`); "
                                    f"classifier methods: {', '.join(methods.available())}")
    tuned = {}
    if preset is not None:
        tuned = preset_values(preset, method, "without_retain" if no_retain else "with_retain")
        console.print(f"--preset {preset}: {tuned}", highlight=False)
    chosen = methods.get(method, **{**tuned, **parse_sets(sets)})
    ds = load_dataset(dataset, data_root, model)
    original = models.load_model(model, ds, device)
    split = data.load_forget_csv(forget_csv, len(ds.train))
    forget_set, retain_set = ds.train.subset(split.forget), ds.train.subset(split.retain)
    validation, _evaluation = data.split_holdout(ds.test.y.numpy(), seed=0)
    start = time.perf_counter()
    try:
        new = chosen.unlearn(original, forget_set, None if no_retain else retain_set, seed=seed, device=device,
                             dataset=ds, split=split, bank=ModelBank(bank), holdout=ds.test.subset(validation))
    except DivergenceError as err:  # a learning rate too large for this model: the user's to change
        raise UnlearnInputError(str(err)) from err
    seconds = time.perf_counter() - start
    record = {"method": method, "hyperparameters": chosen.get_params(), "retain_given": not no_retain,
              "n_forget": int(len(split.forget)), "seed": seed, "seconds": round(seconds, 3)}
    if hasattr(new, "sisa"):  # SISA returns its sharded ensemble, written in its own format
        new.sisa.save(out)
    elif hasattr(new, "spec"):
        models.save_model(new, out, extra={"unlearning": json.dumps(record, default=str)})
    else:
        raise UnlearnInputError(f"method {method!r} returned a model that cannot be saved as one file")
    stats = getattr(chosen, "stats_", None)
    if stats is not None:
        write_text(f"{out}.stats.json", json.dumps(stats, indent=2, default=str))
    rows = [[name, models.accuracy(m, forget_set), models.accuracy(m, retain_set), models.accuracy(m, ds.test)]
            for name, m in (("original", original), (method, new))]
    console.print(table(f"{method} on {ds.name}: {len(split.forget)} samples forgotten in {seconds:.1f} s "
                        f"({'without' if no_retain else 'with'} D_R)",
                        ["model", "forget acc", "retain acc", "test acc"], rows))
    if hasattr(new, "spec") and forgot_nothing(original, new, forget_set):
        console.print(f"[yellow]warning: forgot nothing detectable[/yellow]: forget accuracy and loss on D_F are "
                      f"unchanged from the original's within noise (95% intervals of the change cover 0). "
                      f"{method}'s hyperparameters may be too weak for this model; tune them "
                      f"(`unlearn tune`) or raise lr / epochs.")
    console.print(f"saved to {out}")
