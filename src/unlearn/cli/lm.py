"""`unlearn lm train|forget|audit|demo`: language models from the command line.

The LM family's counterparts of `unlearn train`, `forget`, `audit` and `demo`, on a model
*directory* (anything `save_pretrained` wrote: a config and a tokenizer; `unlearn.lm.models`):
- `train` trains the default GPT-2 from scratch on the embedded corpus (or a user JSONL), minus
  the forget entities, through the model bank, and writes it with `--out`;
- `forget` applies one LM method (`unlearn.lm.methods`) to a model directory and writes the new
  model to another directory (the input is never touched);
- `audit` runs every LM audit (`unlearn.lm.audit.evaluate_lm`) on a model, against a retrained
  model when `--reference` names one;
- `demo` trains the default LM, unlearns 10% of the entities with every method and prints the
  table with the `original`, `retrain` and `retrain-floor` rows (an `unlearn bench` run, its
  jobs in one process per core: the original and the retrain train at once, then the floor
  retrain trains while the methods run).

Data: `--corpus NAME` (default `facts`) or `--data FILE.jsonl` (TOFU-style question/answer lines
or MUSE-style text lines); the forget set is `--forget FILE` (entity ids, one a line, as a bench
writes them under RUN_DIR/forget/) or, on an embedded corpus, `--fraction` drawn with `--seed`.
Every input is checked before anything is written: a bad one is one line and exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from unlearn.cli.common import (
    BankOpt,
    DeviceOpt,
    QuietOpt,
    SeedOpt,
    app,
    check_device,
    console,
    parse_sets,
    table,
)
from unlearn.errors import UnlearnInputError
from unlearn.files import write_text

lm_app = typer.Typer(no_args_is_help=True, help="Language models: train, forget, audit, demo.")
app.add_typer(lm_app, name="lm")

CorpusOpt = typer.Option(None, "--corpus", help="embedded corpus (facts, facts-tiny; default facts)")
DataOpt = typer.Option(None, "--data", help="user data: JSONL of question/answer or text lines")
ForgetOpt = typer.Option(None, "--forget", help="file of entity ids to forget, one a line")
FractionOpt = typer.Option(None, "--fraction", help="forget this fraction of the embedded corpus's entities")
HoldoutOpt = typer.Option(None, "--holdout", help="file of entity ids never trained on (--data: MIA non-members)")


def read_ids(path: Path | None) -> list[str]:
    """Entity ids from a file, one a line ('#' starts a comment); [] for no file."""
    if path is None:
        return []
    if not path.is_file():
        raise UnlearnInputError(f"{path}: no such file of entity ids")
    ids = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [i for i in ids if i]


def corpus_and_split(corpus: str | None, data: Path | None, forget: Path | None, fraction: float | None,
                     seed: int, holdout: Path | None = None, need_forget: bool = True):
    """(corpus, split or None): the embedded corpus or the user's JSONL, and the forget set asked for."""
    from unlearn.lm import corpus as lm_corpus

    if corpus is not None and data is not None:
        raise UnlearnInputError("give --corpus or --data, not both")
    if forget is not None and fraction is not None:
        raise UnlearnInputError("give --forget or --fraction, not both")
    if data is not None:
        if fraction is not None:
            raise UnlearnInputError("--fraction draws from an embedded corpus; with --data give --forget FILE")
        ids = read_ids(forget)
        if not ids:
            if need_forget:
                raise UnlearnInputError("--data needs --forget FILE: the entity ids to forget")
            return lm_corpus.load_jsonl(data, None, read_ids(holdout))
        return lm_corpus.load_jsonl(data, ids, read_ids(holdout))
    if holdout is not None:
        raise UnlearnInputError("--holdout is for --data; an embedded corpus has its own holdout entities")
    loaded = lm_corpus.load(corpus or "facts")
    if forget is not None:
        return loaded, lm_corpus.split_from_ids(loaded, read_ids(forget))
    if fraction is not None:
        return loaded, lm_corpus.forget_split(loaded, fraction, seed)
    if need_forget:
        raise UnlearnInputError("give the forget set: --forget FILE or --fraction F")
    return loaded, None


def examples_of(corpus, entities) -> list:
    """What a method trains on for `entities`: their trained questions, or their texts (MUSE-style data)."""
    from unlearn.lm.examples import LMExample

    if corpus.qa:
        return [q.example() for q in corpus.questions(entities, held_out=False)]
    return [LMExample("", t.text, id=t.id) for t in corpus.texts(entities, held_out=False)]


def _fresh_out(out: Path, *inputs: Path) -> None:
    """Refuse to write over an input model or over anything that exists."""
    for given in inputs:
        if given is not None and out.resolve() == Path(given).resolve():
            raise UnlearnInputError(f"--out {out} is the input model; the input is never modified")
    if out.exists():
        raise UnlearnInputError(f"--out {out} exists; give a new directory")


@lm_app.command("train")
def lm_train(
    corpus: str = CorpusOpt,
    data: Path = DataOpt,
    forget: Path = ForgetOpt,
    fraction: float = FractionOpt,
    holdout: Path = HoldoutOpt,
    seed: int = SeedOpt,
    sets: list[str] = typer.Option(None, "--set", help="recipe override key=value (epochs, lr, n_layer, ...)"),
    out: Path = typer.Option(None, "--out", "-o", help="write the model directory here (default: the bank only)"),
    device: str = DeviceOpt,
    bank: Path = BankOpt,
):
    """Train the default GPT-2 from scratch on the corpus minus the forget entities (served from the bank)."""
    from unlearn.bank import ModelBank
    from unlearn.lm.audit import answer_accuracy
    from unlearn.lm.models import LMRecipe, bank_lm, lm_key, save_lm

    check_device(device)
    try:
        recipe = LMRecipe(**parse_sets(sets))
    except TypeError as err:
        raise UnlearnInputError(f"--set: not a field of the LM recipe ({err})") from None
    if out is not None:
        _fresh_out(out)
    loaded, split = corpus_and_split(corpus, data, forget, fraction, seed, holdout, need_forget=False)
    entities = split.retain if split is not None else loaded.trainable
    store = ModelBank(bank)
    model, tokenizer = bank_lm(loaded, entities, seed=seed, recipe=recipe, device=device, bank=store)
    seconds = store.lookup(lm_key(loaded, entities, recipe, seed))[1]
    trained = [q.example() for q in loaded.questions(entities, held_out=False)]
    accuracy = f", exact answers on its trained questions {answer_accuracy(model, tokenizer, trained):.1f}%" \
        if trained else ""
    console.print(f"GPT-2 ({recipe.n_layer} layers, {recipe.n_embd} wide) on {loaded.name}, {len(entities)} entities, "
                  f"seed {seed}: {'trained' if store.trained else 'served from the bank'} "
                  f"(training took {seconds:.1f} s){accuracy}")
    if out is not None:
        save_lm(model, tokenizer, out)
        console.print(f"saved to {out}")


@lm_app.command("forget")
def lm_forget(
    model_dir: Path = typer.Argument(..., help="model directory (config + tokenizer)"),
    method: str = typer.Option(..., "--method", help="LM method (ga, graddiff, npo, simnpo, rmu, idknll, idkdpo, "
                                                     "sg, amun)"),
    sets: list[str] = typer.Option(None, "--set", help="hyperparameter key=value (lr, epochs, beta, ...)"),
    corpus: str = CorpusOpt,
    data: Path = DataOpt,
    forget: Path = ForgetOpt,
    fraction: float = FractionOpt,
    holdout: Path = HoldoutOpt,
    no_retain: bool = typer.Option(False, "--no-retain", help="do not give the method D_R"),
    seed: int = SeedOpt,
    out: Path = typer.Option(..., "--out", "-o", help="directory for the unlearned model (must not exist)"),
    device: str = DeviceOpt,
):
    """Unlearn the forget entities from MODEL_DIR with one method; write the new model to --out."""
    import time

    from unlearn.lm import methods
    from unlearn.lm.audit import answer_accuracy
    from unlearn.lm.models import load_lm, save_lm

    check_device(device)
    _fresh_out(out, model_dir)
    if method not in methods.available():
        from unlearn import methods as classifier_methods

        what = "a classifier method (see `unlearn forget`)" if method in classifier_methods.available() else "unknown"
        raise UnlearnInputError(f"--method {method}: {what}; LM methods: {', '.join(methods.available())}")
    chosen = methods.get(method, **parse_sets(sets))
    chosen.check()
    loaded, split = corpus_and_split(corpus, data, forget, fraction, seed, holdout)
    model, tokenizer = load_lm(model_dir, device)
    forget_set = examples_of(loaded, split.forget)
    retain_set = None if no_retain else examples_of(loaded, split.retain)
    context = {"holdout": examples_of(loaded, split.holdout)} if split.holdout else {}
    start = time.perf_counter()
    new = chosen.unlearn(model, tokenizer, forget_set, retain_set, seed=seed, device=device, **context)
    seconds = time.perf_counter() - start
    save_lm(new, tokenizer, out)
    if loaded.qa:
        console.print(f"forget accuracy {answer_accuracy(model, tokenizer, forget_set):.1f}% -> "
                      f"{answer_accuracy(new, tokenizer, forget_set):.1f}% on {len(forget_set)} questions")
    console.print(f"{method} ({chosen.get_params()}) in {seconds:.1f} s; saved to {out}")


@lm_app.command("audit")
def lm_audit(
    model_dir: Path = typer.Argument(..., help="model directory (config + tokenizer)"),
    reference: Path = typer.Option(None, "--reference", help="the retrained model's directory: adds forget quality, "
                                                             "PrivLeak and gap-lm"),
    corpus: str = CorpusOpt,
    data: Path = DataOpt,
    forget: Path = ForgetOpt,
    fraction: float = FractionOpt,
    holdout: Path = HoldoutOpt,
    seed: int = SeedOpt,
    json_out: Path = typer.Option(None, "--json", help="write every figure as JSON here"),
    device: str = DeviceOpt,
):
    """Every LM audit of MODEL_DIR on the forget set: accuracies, truth ratio, VerbMem, Min-K%++, PrivLeak, gap-lm."""
    from unlearn.audit.gap import flatten
    from unlearn.lm.audit import evaluate_lm
    from unlearn.lm.models import load_lm

    check_device(device)
    loaded, split = corpus_and_split(corpus, data, forget, fraction, seed, holdout)
    model, tokenizer = load_lm(model_dir, device)
    ref = load_lm(reference, device) if reference is not None else None
    report = evaluate_lm(model, tokenizer, loaded, split, reference=ref)
    rows = [[k, v] for k, v in flatten(report).items() if isinstance(v, int | float) and not k.startswith("sizes.")]
    console.print(table(f"{model_dir}: {len(split.forget)} forget entities of {loaded.name}", ["figure", "value"], rows))
    if json_out is not None:
        write_text(json_out, json.dumps(report, indent=1))


def demo_lm_protocol(seed: int = 0, fraction: float = 0.1, corpus: str = "facts", device: str = "cpu",
                     recipe: dict | None = None, max_questions: int = 200) -> dict:
    """The demo's protocol: every LM method, untuned, at the recipe's learning rate (`LMConfig.hparams`)."""
    from unlearn.lm import methods

    return {"name": "lm-demo", "corpus": corpus, "recipe": recipe or {}, "seeds": [seed],
            "forget": [{"fraction": fraction, "seeds": [seed]}], "settings": ["with_retain"],
            "methods": {"retrain": None, **{name: {} for name in methods.available()}},
            "audit": {"max_questions": max_questions}, "tune": {"trials": 0}, "device": device}


@lm_app.command("demo")
def lm_demo(
    seed: int = typer.Option(0, "--seed", help="seed of the original model and of the forget set"),
    fraction: float = typer.Option(0.1, "--fraction", help="share of the entities to forget"),
    corpus: str = typer.Option("facts", "--corpus", help="embedded corpus"),
    out: Path = typer.Option(Path("runs/lm-demo"), "--out", "-o", help="run directory"),
    workers: int = typer.Option(None, "--workers", help="processes running the jobs, one torch thread each "
                                                        "(default: one per core on a CPU, 1 on a GPU)"),
    sets: list[str] = typer.Option(None, "--set", help="recipe override key=value (epochs, n_layer, ...; "
                                                      "default: the default LM)"),
    device: str = DeviceOpt,
    bank: Path = BankOpt,
    quiet: bool = QuietOpt,
):
    """Train the default LM, unlearn 10% of the entities with every method, print the table, write the report."""
    import yaml

    from unlearn.bank import ModelBank
    from unlearn.cli.bench import print_summary
    from unlearn.cli.common import progress_of
    from unlearn.experiments import parse_config, run_bench
    from unlearn.experiments.executors import usable_cores
    from unlearn.experiments.report import write_report

    check_device(device)
    if workers is None:  # on a GPU the jobs run in this process, one at a time: they would share one device
        workers = usable_cores() if device == "cpu" else 1
    if workers < 1:
        raise UnlearnInputError(f"--workers {workers}: give at least 1")
    config = parse_config(yaml.safe_dump(demo_lm_protocol(seed, fraction, corpus, device, parse_sets(sets)),
                                         sort_keys=False), source="lm demo protocol")
    model = f"GPT-2 with {', '.join(sets)}" if sets else "the default GPT-2"
    console.print(f"{corpus}, {model}, forget {fraction:.0%} of the entities, seed {seed}: "
                  f"{len(config.methods) - 1} methods ({', '.join(m for m in config.methods if m != 'retrain')}); "
                  f"{workers} {'processes' if workers > 1 else 'process'}")
    backend = "processes" if workers > 1 else "local"
    result = run_bench(config, out, bank=ModelBank(bank), progress=progress_of(quiet), backend=backend,
                       workers=workers if workers > 1 else None)
    print_summary(out, result.rows, result.tuning)
    report = write_report(out)
    console.print(f"{result.seconds:.1f} s ({result.trained} models trained, {result.executed} jobs run); "
                  f"report: {report}")
    if result.crashed:
        for rec in result.crashed:
            console.print(f"[red]crashed[/red] {rec['method']}: {rec['error']}")
        raise typer.Exit(1)
