"""`unlearn tune`: hyperparameter search that minimises the Avg. Gap to Retrain, as AMUN tunes.

AMUN (ICML 2025, Sec. 5) tunes the learning rate and the step of its schedule on a *separate*
random forget set, so the figures reported on the benchmark's forget sets are not tuned on them.
Here the separate set is the protocol's first forget set drawn with `tune.forget_seed` (a seed
the benchmark does not use), on the first original model, in `tune.setting`. Each trial unlearns
and audits like a bench job (same job function, same results store, so an interrupted search
keeps every trial it finished), and Optuna's TPE sampler (seeded) proposes the next values.

Search space: `tune.space[method]` in the protocol (a list = choices; `{low, high, log}` = a
range), else the papers' grids for the hyperparameters the method has: lr in
{1e-1, 5e-2, 1e-2, 5e-3, 1e-3, 1e-4, 1e-5}, AMUN's StepLR period k (`step_size`) in {1, 5, 10},
SG's alpha in {0, 0.05, 0.1, 0.25, 0.5, 1, 2, 5}. Other hyperparameters keep the protocol's values.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from unlearn.bank import ModelBank
from unlearn.errors import UnlearnInputError
from unlearn.experiments.config import Config
from unlearn.files import atomic_path, write_text

PAPER_GRIDS: dict[str, list] = {
    "lr": [1e-1, 5e-2, 1e-2, 5e-3, 1e-3, 1e-4, 1e-5],   # AMUN's grid (docs/methods.md, "amun")
    "step_size": [1, 5, 10],                           # AMUN's k: StepLR x0.1 every k epochs
    "alpha": [0, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],       # SG's auditor weight
}


@dataclass
class TuneResult:
    method: str
    best_params: dict[str, Any]
    best_gap: float
    trials: list[dict[str, Any]]
    fragment: Path


def search_space(config: Config, method: str) -> dict[str, Any]:
    from unlearn import methods

    known = methods.get_class(method).hyperparameters()
    space = config.tune.space.get(method)
    if space is None:
        space = {k: grid for k, grid in PAPER_GRIDS.items() if k in known}
    unknown = set(space) - set(known)
    if unknown:
        raise UnlearnInputError(f"tune.space.{method}: {method} has no hyperparameter(s) {sorted(unknown)}")
    if not space:
        raise UnlearnInputError(f"tune.space.{method}: nothing to tune; give a search space in the protocol")
    return space


def _suggest(trial, name: str, spec):
    if isinstance(spec, list):
        return trial.suggest_categorical(name, spec)
    if isinstance(spec, dict) and {"low", "high"} <= set(spec):
        if isinstance(spec["low"], int) and isinstance(spec["high"], int) and not spec.get("log"):
            return trial.suggest_int(name, spec["low"], spec["high"])
        return trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    raise UnlearnInputError(f"tune space for {name}: give a list of choices or {{low, high, log}}, got {spec!r}")


def tune(config: Config, method: str, run_dir: str | Path, *, trials: int | None = None,
         bank: ModelBank | None = None, progress: bool | None = None, out: str | Path | None = None) -> TuneResult:
    """Search `method`'s hyperparameters on the protocol's tuning forget set; write the best as a fragment."""
    import optuna

    from unlearn.experiments.jobs import RunJob, context_digest, model_payload, run_job
    from unlearn.experiments.runner import run_bench
    from unlearn.experiments.store import ResultStore

    if method not in config.methods:
        raise UnlearnInputError(f"--method {method}: not among the protocol's methods ({', '.join(config.methods)})")
    if method == "retrain":
        raise UnlearnInputError("--method retrain: the oracle has nothing to tune")
    space = search_space(config, method)
    spec = config.forget[0].model_copy(update={"seeds": [config.tune.forget_seed]})
    tuning = config.model_copy(update={"forget": [spec], "seeds": [config.seeds[0]], "runs": 1,
                                       "methods": {method: config.hparams(method)},
                                       "settings": [config.tune.setting]})
    bank = bank if bank is not None else ModelBank()
    # The bench of the tuning protocol trains the models and audits the oracle (and the protocol's
    # own hyperparameters, the baseline the search must beat).
    base = run_bench(tuning, run_dir, bank=bank, progress=progress)
    oracle = next(r for r in base.records if r["method"] == "retrain")
    plan, store = base.plan, ResultStore(run_dir)
    model_seed, split_key = tuning.seeds[0], (spec.label, config.tune.forget_seed)
    original, _ = bank.get_with_time(plan.dataset, tuning.model.arch, None, tuning.recipe, model_seed,
                                     arch_args=_arch_args(tuning, plan.dataset))
    payload = model_payload(original)
    context = context_digest(tuning, plan.dataset)
    history: list[dict[str, Any]] = []

    def objective(trial) -> float:
        hp = {**config.hparams(method), **{k: _suggest(trial, k, s) for k, s in space.items()}}
        job = RunJob(method, json.dumps(hp, sort_keys=True), config.tune.setting, spec.label,
                     config.tune.forget_seed, model_seed, 0, context)
        record = store.get(job.id)
        if record is None:
            record = run_job(job, tuning.dataset_spec, plan.splits[split_key], plan.validation,
                             plan.evaluation, payload, tuning.audit.model_dump(), oracle["metrics"],
                             oracle["retrain_seconds"], str(bank.root), tuning.device)
            store.put(record)
        gap = record.get("flat", {}).get("gap.avg_gap", math.nan) if record["status"] == "ok" else math.nan
        history.append({"trial": trial.number, **hp, "avg_gap": gap, "status": record["status"],
                        "seconds": record.get("seconds")})
        return gap  # NaN marks the trial failed (diverged); Optuna then ignores it

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=0))
    threads = torch.get_num_threads()
    if config.torch_threads:  # as in the bench (see Config.torch_threads)
        torch.set_num_threads(config.torch_threads)
    try:
        study.optimize(objective, n_trials=trials or config.tune.trials)
    finally:
        torch.set_num_threads(threads)
    finished = [t for t in study.trials if t.value is not None and not math.isnan(t.value)]
    if not finished:
        raise UnlearnInputError(f"tune {method}: every trial failed (diverged); narrow the search space")
    best = min(finished, key=lambda t: t.value)
    best_params = {**config.hparams(method), **best.params}
    run_dir = Path(run_dir)
    with atomic_path(run_dir / f"trials-{method}.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    fragment = Path(out) if out is not None else run_dir / f"best-{method}.yaml"
    write_text(
        fragment,
        f"# unlearn tune --method {method}: best Avg. Gap to Retrain {best.value:.2f} over {len(finished)} "
        f"trials\n# on forget set {spec.label} drawn with seed {config.tune.forget_seed}, model seed {model_seed}, "
        f"{config.tune.setting}. Paste under `methods:`.\n"
        + yaml.safe_dump({"methods": {method: best_params}}, sort_keys=False))
    return TuneResult(method, best_params, float(best.value), history, fragment)


def _arch_args(config: Config, dataset) -> dict:
    from unlearn.training import default_arch_args

    return default_arch_args(dataset.name, config.model.arch, config.model.args)
