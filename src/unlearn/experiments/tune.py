"""Tuning, a stage of every bench: each method's hyperparameters searched with an equal budget.

Defaults copied from CIFAR-10 ResNet-18 do not transfer to another model or data set (a method
whose learning rate is too small for the setting forgets nothing), and the papers compare methods
only after tuning each one on the setting. So before evaluating, a bench tunes every method, per
forget set and setting, as AMUN (ICML 2025, Sec. 5) tunes its own:
- on a *separate* forget set: the protocol's forget set drawn with `tune.forget_seed`, a seed the
  evaluation does not use, on the first original model (and its retrain on that set);
- scored with the validation half of the test split only, never the evaluation half: that half
  is itself split in two, one quarter of the test split given to methods as known non-members
  (SG's auditor), the other quarter the audited D_T of the trials (so a method is not scored on
  the non-members it trained against); RMIA's reference models are the bench's, trained on
  random halves of the whole pool as in any RMIA audit, but no evaluation-half point is scored;
- minimising one named gap (`tune.objective`: gap-rmia when RMIA is audited, else gap-mis);
- with the same number of trials for every method (`tune.trials`), over the search space each
  method's paper tunes (`DEFAULT_SPACES`, at least lr and epochs; a protocol's
  `tune.space.<method>` replaces it). The first trial is the protocol's own values
  (the paper's defaults) when they lie in the space, so a tuned method is never worse on the
  tuning set than its defaults: on mnist1d, 8 random-start trials without it left RL and SalUn
  above their untuned gap (6.9 and 6.2 vs 5.5 and 5.7). The second and third trials are the
  defaults with the learning rate a decade up and a decade down (`lr_steps`): on the CIFAR-10
  CNN, FT forgot only at about ten times its default lr, which 3 trials spread over the whole
  space did not reach (docs/results.md, tuning procedure 3).
- then proposed by a sampler of each study's own (`study_sampler`): a budget of at most
  `QMC_MAX_TRIALS` trials is a scrambled Sobol sequence, so that a few trials still cover the
  space (after the queued trials, 4 more put one learning rate in each quarter of its log range; with
  TPE, which samples at random until its tenth trial, 2 of 3 CIFAR-10 trials of FT fell below
  lr 0.003, where FT does nothing); larger budgets use TPE. The seed is derived from the
  study's forget set, setting and method: one shared seed made every method with the same
  search space try the very same values (docs/results.md, tuning procedure 2).
Trials are bench jobs: the same job function, run by the same executor (local or Ray: one trial
of every study at a time, in parallel), stored in `RUN_DIR/tune/runs/` so an interrupted search
keeps what it finished, and Optuna proposes the same values again when the stage is re-run. The
outcome (tuned values, search spaces, every trial and its score) goes to `RUN_DIR/tuning.json`; a
second bench with the same protocol reuses it without running a trial.

`unlearn tune --method M CONFIG` runs the same stage for one method and writes a config fragment.
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from unlearn.bank import ModelBank
from unlearn.data import split_holdout
from unlearn.errors import UnlearnInputError
from unlearn.experiments.config import Config
from unlearn.files import write_text

LR = {"low": 1e-5, "high": 1e-1, "log": True}
EPOCHS = {"low": 1, "high": 10}
AMUN_LR = [1e-1, 5e-2, 1e-2, 5e-3, 1e-3, 1e-4, 1e-5]  # AMUN's grid (docs/methods.md, "amun")
# k: StepLR x0.1 every k epochs. Whether D_F joins the mix is searched too: the paper keeps it but
# drops it for very large forget sets, and where the original's test accuracy is far below 100%
# (a retrained model gets D_F about as right as D_T) training on D_F's true labels holds forget
# accuracy up: on mnist1d, 10% with D_R, gap-rmia 10.3 with D_F against 1.6 without (docs/results.md).
AMUN_SPACE = {"lr": AMUN_LR, "step_size": [1, 5, 10], "epochs": EPOCHS, "with_forget": [True, False]}
# What each paper tunes, and at least lr and epochs for every method that has them (ranges where
# the paper gives none). SISA is exact and Retrain the oracle: nothing to tune.
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "ft": {"lr": LR, "epochs": EPOCHS},
    "rl": {"lr": LR, "epochs": EPOCHS},
    "ga": {"lr": LR, "epochs": EPOCHS},
    "bs": {"lr": LR, "epochs": EPOCHS},
    "neggrad+": {"lr": LR, "epochs": EPOCHS, "beta": {"low": 0.9, "high": 0.9999}},  # Kurmanji et al.'s α
    "l1-sparse": {"lr": LR, "epochs": EPOCHS, "gamma": {"low": 5e-5, "high": 5e-4, "log": True}},  # SalUn App.
    "salun": {"lr": LR, "epochs": EPOCHS},
    "scrub": {"lr": LR, "epochs": {"low": 2, "high": 10}, "max_epochs": {"low": 1, "high": 5}},  # SCRUB's msteps
    "amun": AMUN_SPACE,
    "amun-salun": AMUN_SPACE,
    "sg": {"alpha": [0, 0.05, 0.1, 0.25, 0.5, 1, 2, 5], "lr": LR, "epochs": {"low": 5, "high": 30}},  # SG's α grid
    "bad-teacher": {"lr": LR, "epochs": EPOCHS},
    # Ours (docs/methods.md, "loss-match"): the matching weight λ alongside lr and epochs.
    "loss-match": {"lr": LR, "epochs": EPOCHS, "forget_weight": {"low": 0.1, "high": 3.0, "log": True}},
    # No optimiser, so no lr or epochs: the strength of the edit is what the papers tune.
    "fisher": {"alpha": {"low": 1e-8, "high": 1e-5, "log": True}},  # the authors' notebook sweep
    "ssd": {"alpha": {"low": 1.0, "high": 100.0, "log": True}, "lam": {"low": 0.1, "high": 5.0, "log": True}},
    # The head's L2 weight λ and loss-perturbation scale σ trade accuracy against the removal
    # budget (Guo et al.); ε and δ are the user's guarantee, not a knob to tune.
    "certified": {"lam": {"low": 1e-5, "high": 1e-2, "log": True}, "sigma": {"low": 0.01, "high": 10.0, "log": True}},
}
TUNING_FILE = "tuning.json"
# Bumped when the search itself changes, so a stored outcome of an older search is not reused.
# 2: the first trial of every study is the protocol's own values.
# 3: each study has its own seed, and small budgets are a Sobol sequence instead of TPE.
# 4: the second and third trials are the default with the learning rate a decade up and down.
TUNING_PROCEDURE = 4
# TPE draws its first 10 trials at random (Optuna's n_startup_trials); up to there a
# low-discrepancy sequence covers the space better for the same budget.
QMC_MAX_TRIALS = 10


def search_space(config: Config, method: str) -> dict[str, Any]:
    """The protocol's `tune.space.<method>`, else the paper's (`DEFAULT_SPACES`); {} = nothing to tune."""
    from unlearn import methods

    known = methods.get_class(method).hyperparameters()
    space = config.tune.space.get(method, DEFAULT_SPACES.get(method, {}))
    unknown = set(space) - set(known)
    if unknown:
        raise UnlearnInputError(f"tune.space.{method}: {method} has no hyperparameter(s) {sorted(unknown)}")
    for name, spec in space.items():
        _check_spec(method, name, spec)
    return dict(space)


def _check_spec(method: str, name: str, spec) -> None:
    if isinstance(spec, list) and spec:
        return
    if isinstance(spec, dict) and {"low", "high"} <= set(spec) <= {"low", "high", "log"} and spec["low"] < spec["high"]:
        return
    raise UnlearnInputError(f"tune.space.{method}.{name}: give a list of choices or {{low, high, log}} with "
                            f"low < high, got {spec!r}")


def study_sampler(forget: str, setting: str, method: str, trials: int):
    """The sampler of one study, seeded by its own key (the same every run: a re-run stage proposes
    the same values), so that methods with the same search space do not try the same points."""
    import warnings

    import optuna

    seed = zlib.crc32(f"{forget}|{setting}|{method}".encode())
    if not _sobol(trials):
        return optuna.samplers.TPESampler(seed=seed)
    with warnings.catch_warnings():  # QMCSampler is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed,
                                          warn_independent_sampling=False, warn_asynchronous_seeding=False)


def open_study(forget: str, setting: str, method: str, space: dict[str, Any], trials: int,
               start: dict[str, Any] | None):
    """One method's Optuna study, its first trials queued: the protocol's values `start` (so tuning
    never does worse than them on the tuning set), then `start` with the learning rate a decade up
    and a decade down (`lr_steps`); the sampler proposes the rest."""
    import optuna

    study = optuna.create_study(direction="minimize", sampler=study_sampler(forget, setting, method, trials))
    if start:
        for point in [start, *lr_steps(start, space)]:
            study.enqueue_trial(point)
    return study


def lr_steps(start: dict[str, Any], space: dict[str, Any]) -> list[dict[str, Any]]:
    """`start` with its learning rate ×10 and ÷10, each brought into the searched range (the nearest
    choice of a grid), leaving out a point equal to `start`.

    The learning rate decides whether a method forgets at all, and its useful value moves by
    decades with the model and the optimiser it was trained with: on the CIFAR-10 CNN, FT forgot
    nothing at lr 0.036 and forgot at 0.1 (ten times its paper default), while on mnist1d the
    default works. A budget of a few trials spread over the whole space (4 decades of lr, 10 epoch
    counts) rarely lands there, so the first two trials after the default take a decade each way,
    as AMUN's lr grid does (its values are decades and half-decades apart), with the other
    hyperparameters at their defaults. Budgets of more trials go on with the sampler over the
    whole space."""
    if "lr" not in space or not isinstance(start.get("lr"), int | float) or start["lr"] <= 0:
        return []
    spec, points = space["lr"], []
    for factor in (10.0, 0.1):
        wanted = start["lr"] * factor
        if isinstance(spec, list):
            choices = [c for c in spec if isinstance(c, int | float) and c > 0]
            lr = min(choices, key=lambda c: abs(math.log(c / wanted))) if choices else start["lr"]
        else:
            lr = min(max(wanted, float(spec["low"])), float(spec["high"]))
        if not math.isclose(lr, start["lr"]) and all(not math.isclose(lr, p["lr"]) for p in points):
            points.append({**start, "lr": lr})
    return points


def _sobol(trials: int) -> bool:
    return trials <= QMC_MAX_TRIALS


def sampler_name(trials: int) -> str:
    kind = "scrambled Sobol sequence (Optuna QMC)" if _sobol(trials) else "Optuna TPE"
    return (f"{kind}, seeded per method, forget set and setting, after three trials: the protocol's values, "
            "then its learning rate x10 and /10")


def _suggest(trial, name: str, spec):
    if isinstance(spec, list):
        return trial.suggest_categorical(name, spec)
    if isinstance(spec["low"], int) and isinstance(spec["high"], int) and not spec.get("log"):
        return trial.suggest_int(name, spec["low"], spec["high"])
    return trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))


def tuning_halves(dataset) -> tuple[np.ndarray, np.ndarray]:
    """(known non-members given to methods, audited D_T) of the trials: the validation half of the
    test split, split again in two stratified halves. The evaluation half is not among them."""
    validation, _evaluation = split_holdout(dataset.test.y.numpy(), seed=0)
    given, scored = split_holdout(dataset.test.y.numpy()[validation], seed=1)
    return validation[given], validation[scored]


def tuning_protocol(config: Config, methods: list[str] | None = None) -> Config:
    """The protocol the trials run in: each forget set drawn with `tune.forget_seed`, the first model
    seed, one run, no reference rows, no tuning of its own."""
    forget = [spec.model_copy(update={"seeds": [config.tune.forget_seed]}) for spec in config.forget]
    chosen = {m: config.methods[m] for m in (methods or config.methods)}
    return config.model_copy(update={"forget": forget, "seeds": [config.seeds[0]], "runs": 1, "methods": chosen,
                                     "reference_rows": [], "tune": config.tune.model_copy(update={"trials": 0})})


def tuning_digest(config: Config, dataset, methods: list[str], settings: list[str]) -> str:
    """Everything the tuning outcome depends on; a stored outcome with another digest is not reused."""
    from unlearn.experiments.jobs import context_digest

    tune = config.tune.model_dump()
    if tune["repeats"] == 1:  # the default: outcomes stored before `repeats` existed stay valid
        del tune["repeats"]
    blob = {"context": context_digest(config, dataset), "tune": tune, "seed": config.seeds[0],
            "methods": {m: config.hparams(m) for m in methods}, "spaces": {m: search_space(config, m) for m in methods},
            "settings": settings, "objective": config.tune_objective, "procedure": TUNING_PROCEDURE}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def protocol_point(config: Config, method: str, space: dict[str, Any]) -> dict[str, Any] | None:
    """The protocol's values of the searched hyperparameters (the paper's defaults unless it sets
    others), when every one lies in the search space; else None."""
    from unlearn import methods as registry

    values = {**registry.get_class(method).hyperparameters(), **config.hparams(method)}
    point = {k: values[k] for k in space}

    def inside(value, spec) -> bool:
        if isinstance(spec, list):
            return value in spec
        return isinstance(value, int | float) and spec["low"] <= value <= spec["high"]

    return point if all(inside(point[k], spec) for k, spec in space.items()) else None


@dataclass
class Study:
    forget: str
    setting: str
    method: str
    space: dict[str, Any]
    optuna_study: Any
    trials: list[dict[str, Any]]


def tune_stage(config: Config, run_dir: str | Path, *, bank: ModelBank, executor, progress: bool | None = None,
               methods: list[str] | None = None, settings: list[str] | None = None) -> dict[str, Any]:
    """Tune `methods` (default: every tunable method of the protocol) in `settings` (default: the
    protocol's); return the outcome written to `RUN_DIR/tuning.json` (reused when it matches)."""
    import optuna

    from unlearn import methods as registry
    from unlearn.experiments.jobs import RunJob, dataset_of, resolve
    from unlearn.experiments.stages import BenchResult, run_stage, train_stage
    from unlearn.experiments.store import ResultStore

    run_dir = Path(run_dir)
    dataset = dataset_of(*config.dataset_spec)
    methods = [m for m in (methods or config.methods) if m != "retrain" and search_space(config, m)]
    settings = settings or list(config.settings)
    digest = tuning_digest(config, dataset, methods, settings)
    stored = _load(run_dir / TUNING_FILE)
    if stored is not None and stored.get("digest") == digest:
        return stored

    tuning = tuning_protocol(config, methods)
    plan = resolve(tuning, dataset)
    plan.validation, plan.evaluation = tuning_halves(dataset)
    store = ResultStore(run_dir / "tune")
    scratch = BenchResult(run_dir, plan, [])
    models = train_stage(plan, bank, executor, progress)
    oracle = run_stage(plan.oracle, plan, models, None, bank, store, executor, scratch, progress,
                        "tuning: auditing retrained models")
    if scratch.crashed:
        raise RuntimeError(f"tuning: the Retrain oracle's audit crashed: {scratch.crashed[0]['error']}")
    references = {(r["forget"], r["forget_seed"], r["model_seed"]): r["metrics"] for r in oracle}
    objective = config.tune_objective
    model_seed = tuning.seeds[0]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    studies = []
    for spec in tuning.forget:
        for setting in settings:
            for method in methods:
                if registry.get_class(method).requires_retain and setting == "without_retain":
                    continue
                space = search_space(config, method)
                optuna_study = open_study(spec.label, setting, method, space, config.tune.trials,
                                          protocol_point(config, method, space))
                studies.append(Study(spec.label, setting, method, space, optuna_study, []))
    repeats = config.tune.repeats
    for _round in range(config.tune.trials):
        asked, jobs = [], []
        for study in studies:
            trial = study.optuna_study.ask()
            params = {k: _suggest(trial, k, s) for k, s in study.space.items()}
            hp = json.dumps({**config.hparams(study.method), **params}, sort_keys=True)
            # Run seed 0 first: a trial of one run is the same job as before `repeats` existed.
            runs = [RunJob(study.method, hp, study.setting, study.forget, config.tune.forget_seed, model_seed, run,
                           plan.oracle[0].context) for run in range(repeats)]
            jobs += runs
            asked.append((study, trial, params, runs))
        scratch.crashed = []
        records = {r["id"]: r for r in run_stage(jobs, plan, models, references, bank, store, executor, scratch,
                                                   progress, f"tuning: trial {_round + 1} of {config.tune.trials}")}
        crashed = {c["id"]: c for c in scratch.crashed}  # not stored, but their error goes into tuning.json
        for study, trial, params, runs in asked:
            results = [records.get(job.id) or crashed.get(job.id, {"status": "crashed"}) for job in runs]
            scores = [_score(record, objective) for record in results]
            failed = next((r for r, s in zip(results, scores) if s is None), None)
            # A trial any of whose runs diverged failed: its point is not one to choose.
            score = None if failed is not None else float(np.mean(scores))
            if score is None:
                study.optuna_study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.optuna_study.tell(trial, score)
            shown = failed or results[0]  # the run whose status and error the trial reports
            seconds = [r.get("seconds") for r in results]
            entry = {"trial": trial.number, "params": params, "score": score, "status": shown["status"],
                     "seconds": None if None in seconds else sum(seconds), "error": shown.get("error")}
            if repeats > 1:
                entry["scores"] = scores
            study.trials.append(entry)
    outcome = {"digest": digest, "objective": objective, "trials": config.tune.trials, "repeats": repeats,
               "sampler": sampler_name(config.tune.trials), "forget_seed": config.tune.forget_seed, "model_seed": model_seed,
               "scored_on": f"{len(plan.evaluation)} test points of the validation half (evaluation half untouched)",
               "studies": [_best(config, study) for study in studies]}
    write_text(run_dir / TUNING_FILE, json.dumps(outcome, indent=1, default=str))
    return outcome


def _score(record: dict[str, Any], objective: str) -> float | None:
    """A finished run's gap, or None when it failed, crashed or has no finite gap."""
    score = (record.get("metrics") or {}).get("gap", {}).get(objective) if record["status"] == "ok" else None
    return float(score) if score is not None and math.isfinite(score) else None


def _best(config: Config, study: Study) -> dict[str, Any]:
    finished = [t for t in study.trials if t["score"] is not None]  # `_score` keeps only finite gaps
    best = min(finished, key=lambda t: t["score"]) if finished else None
    return {"forget": study.forget, "setting": study.setting, "method": study.method, "space": study.space,
            "best": {**config.hparams(study.method), **best["params"]} if best else None,
            "best_score": best["score"] if best else None, "trials": study.trials}


def tuned_hparams(outcome: dict[str, Any] | None) -> dict[tuple[str, str, str], dict]:
    """(forget set, setting, method) -> tuned hyperparameters, for `jobs.resolve`. A study whose
    every trial failed tunes nothing: that method runs with the protocol's values, labelled untuned."""
    if not outcome:
        return {}
    return {(s["forget"], s["setting"], s["method"]): s["best"] for s in outcome["studies"] if s["best"] is not None}


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass
class TuneResult:
    method: str
    best_params: dict[str, Any]
    best_gap: float
    trials: list[dict[str, Any]]
    fragment: Path
    outcome: dict[str, Any]


def tune(config: Config, method: str, run_dir: str | Path, *, trials: int | None = None,
         bank: ModelBank | None = None, progress: bool | None = None, out: str | Path | None = None,
         backend: str = "local", address: str | None = None) -> TuneResult:
    """`unlearn tune`: the tuning stage for one method; write its best values (first forget set and
    setting) as a config fragment to paste under `methods:`."""
    from unlearn.experiments.executors import make_executor
    from unlearn.experiments.jobs import with_recipe

    config = with_recipe(config)
    if method not in config.methods:
        raise UnlearnInputError(f"--method {method}: not among the protocol's methods ({', '.join(config.methods)})")
    if method == "retrain":
        raise UnlearnInputError("--method retrain: the oracle has nothing to tune")
    if not search_space(config, method):
        raise UnlearnInputError(f"tune.space.{method}: nothing to tune; give a search space in the protocol")
    if trials is not None:
        config = config.model_copy(update={"tune": config.tune.model_copy(update={"trials": trials})})
    if not config.tune.trials:
        raise UnlearnInputError("tune: trials is 0; give --trials or tune.trials in the protocol")
    bank = bank if bank is not None else ModelBank()
    executor = make_executor(backend, address, config.device)
    try:
        outcome = tune_stage(config, run_dir, bank=bank, executor=executor, progress=progress, methods=[method],
                             settings=[config.tune.setting] if config.tune.setting else None)
    finally:
        executor.close()
    study = outcome["studies"][0]
    if study["best"] is None:
        raise UnlearnInputError(f"tune {method}: every trial failed (diverged); narrow the search space")
    history = [{"trial": t["trial"], **t["params"], config.tune_objective: t["score"], "status": t["status"]}
               for t in study["trials"]]
    fragment = Path(out) if out is not None else Path(run_dir) / f"best-{method}.yaml"
    write_text(
        fragment,
        f"# unlearn tune --method {method}: best {outcome['objective']} {study['best_score']:.2f} over "
        f"{len(history)} trials\n# on forget set {study['forget']} drawn with seed {config.tune.forget_seed}, "
        f"model seed {outcome['model_seed']}, {study['setting']}. Paste under `methods:`.\n"
        + yaml.safe_dump({"methods": {method: study["best"]}}, sort_keys=False))
    return TuneResult(method, study["best"], float(study["best_score"]), history, fragment, outcome)
