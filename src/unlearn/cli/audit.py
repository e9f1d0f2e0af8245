"""`unlearn audit`: every audit figure of one model on one forget set, as a table or as JSON.

Reference models for RMIA/LiRA are trained into the bank on first use (with a progress bar) and
served from it afterwards; `--n-reference` sets how many, `--seed` which ones, and the output says
how many were trained now. RMIA's settings (`--signal`, `--temperature`, `--margin`,
`--taylor-terms`, `--trim`, `--queries`, `--gamma`, `--offline-a`) default to the protocol defaults
of docs/audits.md and are recorded in the result. `ulira` and `epsilon` judge a method (`--method
NAME --set key=value`): U-LiRA with `--n-shadow` shadow models, the ε score from `--n-models`
unlearned and retrained models. D_T is the evaluation half of the test split, as in `unlearn
bench`, so the same model gets the same figures from both (`--whole-test` audits on the whole test
split instead); for a forget set that is whole classes, the MIAs use the test samples of those
classes. With `--reference` (the retrained model) the gap to retrain is added. `--json` prints one
JSON document with every figure, nested by attack.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from unlearn.cli.common import (
    BankOpt,
    DataRootOpt,
    DatasetOpt,
    DeviceOpt,
    QuietOpt,
    SeedOpt,
    app,
    check_device,
    console,
    load_dataset,
    parse_sets,
    progress_of,
    table,
)


@app.command()
def audit(
    model: Path = typer.Option(..., "--model", "-m", help="the model file to audit (.safetensors)"),
    forget_csv: Path = typer.Option(..., "--forget", "-f", help="CSV with an 'index' column: the forget set D_F"),
    reference: Path = typer.Option(None, "--reference", "-r", help="the retrained model file: adds the gap to retrain"),
    attacks: str = typer.Option("acc,mis,loss,rmia", "--attacks",
                                help="comma list of acc, mis, loss, rmia, rmia-offline, lira, lira-offline, "
                                     "confidence, relearn, ulira, epsilon"),
    n_reference: int = typer.Option(8, "--n-reference", help="reference models for RMIA/LiRA (trained once)"),
    signal: str = typer.Option(None, "--signal", help="RMIA signal: softmax (default) or taylor-soft-margin"),
    temperature: float = typer.Option(None, "--temperature", help="RMIA signal temperature"),
    margin: float = typer.Option(None, "--margin", help="RMIA soft margin on the true logit"),
    taylor_terms: int = typer.Option(None, "--taylor-terms", help="RMIA Taylor-softmax terms"),
    trim: float = typer.Option(None, "--trim", help="RMIA: fraction of reference models trimmed at each end"),
    queries: int = typer.Option(None, "--queries", help="RMIA/LiRA: augmented views per point (1: none)"),
    gamma: float = typer.Option(None, "--gamma", help="RMIA's likelihood-ratio threshold γ"),
    offline_a: str = typer.Option(None, "--offline-a", help="offline RMIA's a: 'fit' or a number in [0, 1]"),
    method: str = typer.Option(None, "--method", help="ulira/epsilon: the unlearning method to judge"),
    sets: list[str] = typer.Option(None, "--set", help="ulira/epsilon: method hyperparameter key=value, repeatable"),
    no_retain: bool = typer.Option(False, "--no-retain", help="ulira/epsilon: the method gets no D_R"),
    n_models: int = typer.Option(8, "--n-models", help="epsilon: unlearned and retrained models of each kind"),
    n_shadow: int = typer.Option(16, "--n-shadow", help="ulira: shadow models (even)"),
    whole_test: bool = typer.Option(False, "--whole-test",
                                    help="use the whole test split as D_T (default: its evaluation half, "
                                         "the half no method ever sees, as `unlearn bench` does)"),
    plot: Path = typer.Option(None, "--plot", help="write confidence histograms (D_R, D_F, D_T) to this .png/.svg"),
    as_json: bool = typer.Option(False, "--json", help="print every figure as one JSON document"),
    dataset: str = DatasetOpt,
    data_root: Path = DataRootOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    bank: Path = BankOpt,
    quiet: bool = QuietOpt,
):
    """Audit --model on the --forget set: accuracies, MIAs, and the gap to --reference."""
    from unlearn import audit as audit_layer
    from unlearn import data, methods, models
    from unlearn.bank import ModelBank
    from unlearn.errors import UnlearnInputError

    check_device(device)
    chosen = [a.strip() for a in attacks.split(",") if a.strip()]
    unknown = [a for a in chosen if a not in audit_layer.ATTACKS]
    if unknown:
        raise UnlearnInputError(f"--attacks: unknown attack(s) {unknown}; known: {', '.join(audit_layer.ATTACKS)}")
    if offline_a is not None and offline_a != "fit":
        try:
            offline_a = float(offline_a)
        except ValueError:
            raise UnlearnInputError(f"--offline-a must be 'fit' or a number in [0, 1], got {offline_a!r}") from None
    given = {"signal": signal, "temperature": temperature, "margin": margin, "taylor_terms": taylor_terms,
             "trim": trim, "queries": queries, "gamma": gamma, "offline_a": offline_a}
    settings = audit_layer.RMIASettings.of({k: v for k, v in given.items() if v is not None})
    judged = None
    if method is not None:
        judged = methods.get(method, **parse_sets(sets))
    elif sets:
        raise UnlearnInputError("--set needs --method")
    ds = load_dataset(dataset, data_root, model)
    audited = models.load_model(model, ds, device)
    audit_layer.check_model(audited, ds, f"--model {model}")
    retrained = None
    if reference is not None:
        retrained = models.load_model(reference, ds, device)
        audit_layer.check_model(retrained, ds, f"--reference {reference}")
    split = data.load_forget_csv(forget_csv, len(ds.train))
    evaluation = None if whole_test else data.split_holdout(ds.test.y.numpy(), seed=0)[1]
    store = ModelBank(bank)
    uses_references = any(a in audit_layer.MIN_REFERENCES for a in chosen)
    for a in chosen:
        if a in audit_layer.MIN_REFERENCES:
            audit_layer.check_count(n_reference, audit_layer.MIN_REFERENCES[a], f"--attacks {a}")
    trained_before = store.trained
    result = audit_layer.evaluate(audited, ds, split, attacks=chosen, reference=retrained, bank=store,
                                  n_reference=n_reference, seed=seed, device=device, evaluation=evaluation,
                                  rmia_settings=settings, method=judged, with_retain=not no_retain,
                                  n_models=n_models, n_shadow=n_shadow, progress=progress_of(quiet or as_json))
    n_test = len(ds.test) if evaluation is None else len(evaluation)
    typer.echo(f"D_T: {'the whole test split' if evaluation is None else 'the evaluation half of the test split'} "
               f"({n_test} of {len(ds.test)} samples)", err=True)
    if uses_references:
        trained = store.trained - trained_before
        typer.echo(f"{n_reference} reference models on {ds.name} (seed {seed}): {trained} trained now, "
                   f"{max(n_reference - trained, 0)} served from the bank {store.root}", err=True)
    if plot is not None:
        test = ds.test if evaluation is None else ds.test.subset(evaluation)
        audit_layer.plot_confidence(audited, ds.train.subset(split.forget), ds.train.subset(split.retain), test,
                                    plot, title=f"{model.name} on {ds.name}")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    flat = audit_layer.flatten(result)
    reference_flat = {} if retrained is None else {k[len("gap."):]: v for k, v in flat.items() if k.startswith("gap.")}
    rows = [[key, value, reference_flat.get(key, "")] for key, value in flat.items()
            if not key.startswith("gap.") and not isinstance(value, list)]
    columns = ["figure (%)", "value"] + (["|gap to retrain|"] if retrained is not None else [])
    if retrained is None:
        rows = [r[:2] for r in rows]
    else:
        rows += [[name, "n/a" if flat[f"gap.{name}"] is None else flat[f"gap.{name}"], ""] for name in audit_layer.GAPS]
    console.print(table(f"audit of {model.name}: {ds.name}, {len(split.forget)} forget samples, seed {seed}",
                        columns, rows))
    if "relearn" in result:
        curve = result["relearn"]
        console.print("relearning attack, forget accuracy per step: model "
                      + " ".join(f"{v:.0f}" for v in curve["model"])
                      + ("" if "reference" not in curve else
                         "; retrained " + " ".join(f"{v:.0f}" for v in curve["reference"])))
    if plot is not None:
        console.print(f"confidence histograms written to {plot}")
