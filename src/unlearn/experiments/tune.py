"""Tuning, a stage of every bench: each method's hyperparameters searched with an equal budget.

Defaults copied from CIFAR-10 ResNet-18 do not transfer to another model or data set (a method
whose learning rate is too small for the setting forgets nothing), and the papers compare methods
only after tuning each one on the setting. So before evaluating, a bench tunes every method, per
forget set and setting, as AMUN (ICML 2025, Sec. 5) tunes its own:
- apart from the evaluation: on an original model of its own (`tune.model_seed`, refused if an
  evaluation model uses it) and its retrains; on a tuning forget set per forget set of the
  protocol (`jobs.tuning_splits`: nested prefixes of one permutation drawn with
  `tune.forget_seed`), drawn first, the evaluation forget sets then drawn outside them (so they are
  disjoint, and the evaluation sets can change without moving a tuning score; a protocol where
  that is impossible is refused); on a dataset whose test split is the validation half only
  (`jobs.validation_half`), so no model a tuning score depends on, RMIA's reference models on
  train + test included, holds an evaluation-half sample. That half is split in two again, one
  quarter of the test split given to methods as known non-members (SG's auditor), the other the
  audited D_T of the trials (a method is not scored on the non-members it trained against);
- minimising one named gap (`tune.objective`: gap-rmia when RMIA is audited, else gap-mis);
- with the same number of trials for every method (`tune.trials`), over the search space each
  method's paper tunes (`DEFAULT_SPACES`, at least lr and epochs; a protocol's
  `tune.space.<method>` replaces it). The first trial is the protocol's own values
  (the paper's defaults) when they lie in the space, so a tuned method is never worse on the
  tuning set than its defaults: on mnist1d, 8 random-start trials without it left RL and SalUn
  above their untuned gap (6.9 and 6.2 vs 5.5 and 5.7). The next trials take fixed absolute
  learning rates (`coverage_lrs`): both ends of `tune.lr_range` (default [1e-5, 0.1], holding every
  paper default and 0.1), then its decades, so every study reaches the same range whatever its
  default: with the default x10 and /10 instead (procedure 4), GA never went above 1e-3 and Bad
  Teacher never above 1e-3 in 3 CIFAR-10 trials, while FT forgot only at 0.1;
- a trial without a score (diverged) is replaced by another, up to `tune.replace_failed` per
  study, and counted (`replaced` in tuning.json): SCRUB at 50% had one usable trial of three;
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
# 5: trials on a model seed and forget set of their own, a dataset without the evaluation half; after
#    the default, both ends of tune.lr_range and its decades; failed trials replaced.
TUNING_PROCEDURE = 5
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
               start: dict[str, Any] | None, lr_range: tuple[float, float] | None = None):
    """One method's Optuna study, its first trials queued: the protocol's values `start` (so tuning
    never does worse than them on the tuning set), then `start` with the learning rates of
    `coverage_lrs` (both ends of `lr_range` first; on `nearest_point` when `start` is None, the
    protocol's values lying outside the space); the sampler proposes the rest."""
    import optuna

    study = optuna.create_study(direction="minimize", sampler=study_sampler(forget, setting, method, trials))
    base = start or nearest_point(space)
    lrs = coverage_lrs(start.get("lr") if start else None, space, lr_range)
    for point in [*([start] if start else []), *({**base, "lr": lr} for lr in lrs)]:
        study.enqueue_trial(point)
    return study


def nearest_point(space: dict[str, Any]) -> dict[str, Any]:
    """A point of the space to vary the learning rate on when the protocol's values lie outside it:
    each hyperparameter at its first choice, or the geometric (log) or arithmetic middle of its range."""
    point = {}
    for name, spec in space.items():
        if isinstance(spec, list):
            point[name] = spec[0]
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int) and not spec.get("log"):
            point[name] = (spec["low"] + spec["high"]) // 2
        else:
            low, high = float(spec["low"]), float(spec["high"])
            point[name] = math.sqrt(low * high) if spec.get("log") else (low + high) / 2
    return point


def coverage_lrs(start_lr, space: dict[str, Any], lr_range: tuple[float, float] | None = None) -> list[float]:
    """The learning rates a study tries after its default `start_lr`, in order: the high end of
    `lr_range`, its low end, then its decades, each time the one farthest (in log scale) from every
    rate tried so far (ties: the higher); each brought onto the space (the nearest choice of a grid),
    leaving out a rate equal to one already tried.

    The learning rate decides whether a method forgets at all, and its useful value moves by
    decades with the model and the optimiser: on the CIFAR-10 CNN FT forgot only at 0.1, ten times
    its paper default, and with the default x10 and /10 (tuning procedure 4) GA, whose default is
    1e-4, never went above 1e-3 in 3 trials. Fixed absolute points give every method the same
    range whatever its default: 3 trials reach both ends, 5 every decade of [1e-5, 1e-1]."""
    if "lr" not in space:
        return []
    spec = space["lr"]
    low, high = lr_range or space_ends(spec)
    decades = [10.0 ** k for k in range(math.ceil(math.log10(low) - 1e-9), math.floor(math.log10(high) + 1e-9) + 1)]
    wanted = [high, low, *[d for d in sorted(decades, reverse=True) if not (math.isclose(d, low) or math.isclose(d, high))]]
    candidates = []
    for lr in (_onto(c, spec) for c in wanted):
        if not any(math.isclose(lr, c) for c in candidates):
            candidates.append(lr)
    tried = [float(start_lr)] if isinstance(start_lr, int | float) and start_lr > 0 else []
    order = [c for c in candidates[:2] if not any(math.isclose(c, t) for t in tried)]
    rest = [c for c in candidates[2:] if not any(math.isclose(c, t) for t in tried + order)]
    while rest:
        def distance(lr):
            return min((abs(math.log10(lr / t)) for t in tried + order), default=math.inf)
        pick = max(rest, key=lambda lr: (distance(lr), lr))
        order.append(pick)
        rest.remove(pick)
    return order


def space_ends(spec) -> tuple[float, float]:
    """The lowest and highest positive learning rate of a searched range or grid: the range a study
    covers when its protocol states none (the LM bench)."""
    if isinstance(spec, list):
        values = [float(c) for c in spec if isinstance(c, int | float) and not isinstance(c, bool) and c > 0]
        return min(values), max(values)
    return float(spec["low"]), float(spec["high"])


def _onto(lr: float, spec) -> float:
    """`lr` brought into a searched range, or the nearest (in log scale) positive choice of a grid."""
    if isinstance(spec, list):
        choices = [c for c in spec if isinstance(c, int | float) and not isinstance(c, bool) and c > 0]
        return float(min(choices, key=lambda c: abs(math.log(c / lr)))) if choices else lr
    return min(max(lr, float(spec["low"])), float(spec["high"]))


def reaches(lrs: list[float], lr_range: tuple[float, float]) -> bool:
    """Whether the learning rates tried reach both ends of `lr_range` (to rounding)."""
    low, high = lr_range
    return bool(lrs) and (min(lrs) <= low or math.isclose(min(lrs), low)) and \
        (max(lrs) >= high or math.isclose(max(lrs), high))


def check_coverage(config: Config, methods: list[str]) -> None:
    """Every tuned method's learning-rate space reaches both ends of `tune.lr_range`, and its
    protocol value lies inside it: otherwise equal coverage is impossible, so the bench refuses."""
    from unlearn import methods as registry

    low, high = config.tune.lr_range
    for method in methods:
        space = search_space(config, method)
        if "lr" not in space:
            continue
        spec = space["lr"]
        ends = [_onto(low, spec), _onto(high, spec)]
        if not reaches(ends, (low, high)):
            raise UnlearnInputError(f"tune.space.{method}.lr: does not reach both ends of tune.lr_range "
                                    f"[{low:g}, {high:g}]; every study must be able to")
        lr = {**registry.get_class(method).hyperparameters(), **config.hparams(method)}.get("lr")
        if isinstance(lr, int | float) and not low <= lr <= high:
            raise UnlearnInputError(f"tune.lr_range [{low:g}, {high:g}] does not hold {method}'s learning rate {lr:g}")


def _sobol(trials: int) -> bool:
    return trials <= QMC_MAX_TRIALS


def sampler_name(trials: int) -> str:
    kind = "scrambled Sobol sequence (Optuna QMC)" if _sobol(trials) else "Optuna TPE"
    return (f"{kind}, seeded per method, forget set and setting, after the protocol's values and the "
            "learning rates of tune.lr_range: both ends, then its decades")


def _suggest(trial, name: str, spec):
    if isinstance(spec, list):
        return trial.suggest_categorical(name, spec)
    if isinstance(spec["low"], int) and isinstance(spec["high"], int) and not spec.get("log"):
        return trial.suggest_int(name, spec["low"], spec["high"])
    return trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))


def tuning_halves(dataset) -> tuple[np.ndarray, np.ndarray]:
    """(known non-members given to methods, audited D_T) of the trials, as indices into the test
    split of the tuning dataset (`jobs.validation_half`: the validation half only), split in two
    stratified halves. The evaluation half is not in that dataset at all."""
    return split_holdout(dataset.test.y.numpy(), seed=1)


def tuning_protocol(config: Config, methods: list[str] | None = None) -> Config:
    """The protocol the trials run in: each forget set's tuning draw (`jobs.tuning_splits`, labelled
    with `tune.forget_seed`), the tuning model seed, one run, no reference rows, no tuning of its own."""
    forget = [spec.model_copy(update={"seeds": [config.tune.forget_seed]}) for spec in config.forget]
    chosen = {m: config.methods[m] for m in (methods or config.methods)}
    return config.model_copy(update={"forget": forget, "seeds": [config.tune.model_seed], "runs": 1,
                                     "methods": chosen, "reference_rows": [], "draws": "crossed",
                                     "tune": config.tune.model_copy(update={"trials": 0})})


def tuning_plan(config: Config, methods: list[str]):
    """The tuning stage's jobs, on a dataset whose test split is the validation half only: so no model
    a tuning score depends on (the tuning original, its retrains, RMIA's reference models on train +
    test) holds an evaluation-half sample, and the forget sets are the tuning draws."""
    from unlearn.experiments.jobs import dataset_of, resolve, tuning_splits

    tuning = tuning_protocol(config, methods)
    spec = (*config.dataset_spec, True)
    dataset = dataset_of(*spec)
    plan = resolve(tuning, dataset, reserved=np.zeros(0, dtype=np.int64))
    drawn = tuning_splits(config, len(dataset.train))
    plan.splits = {(label, seed): drawn[label] for label, seed in plan.splits}
    plan.dataset_spec = spec
    plan.validation, plan.evaluation = tuning_halves(dataset)
    return plan


def tuning_digest(config: Config, dataset, methods: list[str], settings: list[str]) -> str:
    """Everything the tuning outcome depends on (the evaluation's seeds not among them); a stored
    outcome with another digest is not reused."""
    from unlearn.experiments.jobs import context_digest

    tune = config.tune.model_dump()
    if tune["repeats"] == 1:  # the default: outcomes stored before `repeats` existed stay valid
        del tune["repeats"]
    blob = {"context": context_digest(tuning_protocol(config, methods), dataset), "tune": tune,
            "methods": {m: config.hparams(m) for m in methods}, "spaces": {m: search_space(config, m) for m in methods},
            "settings": settings, "objective": config.tune_objective, "procedure": TUNING_PROCEDURE}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def protocol_point(config: Config, method: str, space: dict[str, Any], setting: str = "with_retain"
                   ) -> dict[str, Any] | None:
    """The protocol's values of the searched hyperparameters in `setting` (the paper's defaults, as
    the method resolves them for the setting, unless the protocol sets others), when every one lies
    in the search space; else None."""
    from unlearn import methods as registry

    defaults = registry.get_class(method).setting_hyperparameters(setting == "with_retain")
    return point_in_space({**defaults, **config.hparams(method)}, space)


def point_in_space(values: dict[str, Any], space: dict[str, Any]) -> dict[str, Any] | None:
    """`values` restricted to the searched keys, when each lies in its range or choices; else None."""
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
    replaced: int = 0  # trials without a score that another trial replaced (at most tune.replace_failed)

    def wants(self, budget: int) -> bool:
        return len(self.trials) < budget + self.replaced


def tune_stage(config: Config, run_dir: str | Path, *, bank: ModelBank, executor, progress: bool | None = None,
               methods: list[str] | None = None, settings: list[str] | None = None) -> dict[str, Any]:
    """Tune `methods` (default: every tunable method of the protocol) in `settings` (default: the
    protocol's); return the outcome written to `RUN_DIR/tuning.json` (reused when it matches)."""
    import optuna

    from unlearn import methods as registry
    from unlearn.experiments.jobs import RunJob
    from unlearn.experiments.stages import BenchResult, run_stage, train_stage
    from unlearn.experiments.store import ResultStore

    run_dir = Path(run_dir)
    methods = [m for m in (methods or config.methods) if m != "retrain" and search_space(config, m)]
    check_coverage(config, methods)
    settings = settings or list(config.settings)
    plan = tuning_plan(config, methods)
    digest = tuning_digest(config, plan.dataset, methods, settings)
    stored = _load(run_dir / TUNING_FILE)
    if stored is not None and stored.get("digest") == digest:
        return stored

    store = ResultStore(run_dir / "tune")
    scratch = BenchResult(run_dir, plan, [])
    models = train_stage(plan, bank, executor, progress)
    oracle = run_stage(plan.oracle, plan, models, None, bank, store, executor, scratch, progress,
                        "tuning: auditing retrained models")
    if scratch.crashed:
        raise RuntimeError(f"tuning: the Retrain oracle's audit crashed: {scratch.crashed[0]['error']}")
    references = {(r["forget"], r["forget_seed"], r["model_seed"]): r["metrics"] for r in oracle}
    objective = config.tune_objective
    model_seed = config.tune.model_seed

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    studies = []
    for spec in plan.config.forget:
        for setting in settings:
            for method in methods:
                if registry.get_class(method).requires_retain and setting == "without_retain":
                    continue
                space = search_space(config, method)
                optuna_study = open_study(spec.label, setting, method, space, config.tune.trials,
                                          protocol_point(config, method, space, setting), config.tune.lr_range)
                studies.append(Study(spec.label, setting, method, space, optuna_study, []))
    repeats, budget = config.tune.repeats, config.tune.trials
    rounds = 0
    while any(study.wants(budget) for study in studies):
        rounds += 1
        asked, jobs = [], []
        for study in (s for s in studies if s.wants(budget)):
            trial = study.optuna_study.ask()
            params = {k: _suggest(trial, k, s) for k, s in study.space.items()}
            hp = json.dumps({**config.hparams(study.method), **params}, sort_keys=True)
            # Run seed 0 first: a trial of one run is the same job as before `repeats` existed.
            runs = [RunJob(study.method, hp, study.setting, study.forget, config.tune.forget_seed, model_seed, run,
                           plan.oracle[0].context) for run in range(repeats)]
            jobs += runs
            asked.append((study, trial, params, runs))
        scratch.crashed = []
        title = f"tuning: trial {rounds} of {budget}" if rounds <= budget else f"tuning: replacing {len(asked)} trials"
        records = {r["id"]: r for r in run_stage(jobs, plan, models, references, bank, store, executor, scratch,
                                                  progress, title)}
        crashed = {c["id"]: c for c in scratch.crashed}  # not stored, but their error goes into tuning.json
        for study, trial, params, runs in asked:
            results = [records.get(job.id) or crashed.get(job.id, {"status": "crashed"}) for job in runs]
            scores = [_score(record, objective) for record in results]
            failed = next((r for r, s in zip(results, scores) if s is None), None)
            # A trial any of whose runs diverged failed: its point is not one to choose.
            score = None if failed is not None else float(np.mean(scores))
            if score is None:
                study.optuna_study.tell(trial, state=optuna.trial.TrialState.FAIL)
                if study.replaced < config.tune.replace_failed:
                    study.replaced += 1
            else:
                study.optuna_study.tell(trial, score)
            shown = failed or results[0]  # the run whose status and error the trial reports
            seconds = [r.get("seconds") for r in results]
            entry = {"trial": trial.number, "params": params, "score": score, "status": shown["status"],
                     "seconds": None if None in seconds else sum(seconds), "error": shown.get("error")}
            if repeats > 1:
                entry["scores"] = scores
            study.trials.append(entry)
    outcome = {"digest": digest, "objective": objective, "trials": budget, "repeats": repeats,
               "lr_range": list(config.tune.lr_range), "replace_failed": config.tune.replace_failed,
               "sampler": sampler_name(budget), "forget_seed": config.tune.forget_seed, "model_seed": model_seed,
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
    tried = [t["params"]["lr"] for t in study.trials if isinstance(t["params"].get("lr"), int | float)]
    lr_range = getattr(config.tune, "lr_range", None) or (space_ends(study.space["lr"]) if tried else None)
    span = {"lr_span": [min(tried), max(tried)], "lr_ends_reached": reaches(tried, lr_range)} \
        if tried else {"lr_span": None, "lr_ends_reached": None}
    return {"forget": study.forget, "setting": study.setting, "method": study.method, "space": study.space,
            "best": {**config.hparams(study.method), **best["params"]} if best else None,
            "best_score": best["score"] if best else None, "replaced": study.replaced,
            "failed": len(study.trials) - len(finished), **span, "trials": study.trials}


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
