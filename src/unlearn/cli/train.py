"""`unlearn train`: train a model on a dataset (minus a forget set), to a file or into the bank."""

from __future__ import annotations

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
)


@app.command()
def train(
    dataset: str = DatasetOpt,
    model: str = typer.Option(None, "--model", "-m", help="architecture (mlp, cnn, resnet18, vgg11, vgg19)"),
    seed: int = SeedOpt,
    forget: Path = typer.Option(None, "--forget", help="CSV of training indices to leave out (retraining)"),
    recipe: str = typer.Option(None, "--recipe",
                               help="named recipe (mnist1d, digits, cifar10-cpu, cifar10-paper; default: the "
                                    "data set's own, else chosen by its input shape)"),
    sets: list[str] = typer.Option(None, "--set", help="recipe override key=value (lr, epochs, batch_size, "
                                                         "optimizer, ...), repeatable"),
    arch_args: list[str] = typer.Option(None, "--arch", help="architecture argument key=value, repeatable"),
    out: Path = typer.Option(None, "--out", "-o", help="write the model here (default: into the bank only)"),
    data_root: Path = DataRootOpt,
    device: str = DeviceOpt,
    bank: Path = BankOpt,
    quiet: bool = QuietOpt,
):
    """Train on DATASET (minus --forget), served from the bank when it was trained before."""
    from unlearn import data, models
    from unlearn.bank import ModelBank
    from unlearn.training import default_arch, default_recipe, get_recipe

    check_device(device)
    ds = load_dataset(dataset, data_root)
    arch = model or default_arch(ds)
    recipe_name = recipe or default_recipe(ds)
    recipe_obj = get_recipe(recipe_name).with_(**parse_sets(sets))  # unknown keys named here
    overrides = f" with {', '.join(sets)}" if sets else ""
    console.print(f"recipe {recipe_name!r}{overrides}: {recipe_obj.to_dict()}")
    models.build(arch, ds.num_classes, ds.input_shape, **parse_sets(arch_args))  # names the problem early
    indices = None
    if forget is not None:
        indices = data.load_forget_csv(forget, len(ds.train)).retain
    store = ModelBank(bank)
    net, seconds = store.get_with_time(ds, arch, indices, recipe_obj, seed=seed, device=device,
                                       arch_args=parse_sets(arch_args) if arch_args else None,
                                       progress=progress_of(quiet))
    train_set = ds.train if indices is None else ds.train.subset(indices)
    served = "trained" if store.trained else "served from the bank"
    console.print(f"{arch} on {ds.name} ({len(train_set)} samples, seed {seed}): {served}, "
                  f"train acc {models.accuracy(net, train_set):.2f}%, test acc {models.accuracy(net, ds.test):.2f}% "
                  f"(training took {seconds:.1f} s)")
    if out is not None:
        models.save_model(net, out)
        console.print(f"saved to {out}")
