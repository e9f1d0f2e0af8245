"""The two stages every bench and every tuning search is made of: train what the bank lacks, run jobs.

`train_stage` brings the models a plan needs (originals, retrains, floor retrains) from the model
bank, training the missing ones through the executor; `run_stage` runs the jobs the results store
lacks and stores their records. The bench driver (`runner`) and the tuning stage (`tune`) both
call them, so they live here rather than in either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearn.bank import ModelBank
from unlearn.experiments.jobs import (
    FLOOR,
    ORACLE,
    ORIGINAL,
    Plan,
    crash_record,
    floor_seed,
    model_from_payload,
    model_payload,
    run_job,
    train_job,
)
from unlearn.experiments.store import ResultStore
from unlearn.files import write_text
from unlearn.progress import progress_bar


@dataclass
class BenchResult:
    run_dir: Path
    plan: Plan
    records: list[dict[str, Any]]
    trained: int = 0        # models added to the bank during this bench (audit reference models included)
    executed: int = 0       # jobs run by this bench (the rest came from the results store)
    crashed: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    tuning: dict[str, Any] | None = None  # the tuning stage's outcome (None: untuned)
    rows: list[dict[str, Any]] = field(default_factory=list)  # the summary's rows (`summary.aggregate`)


def train_stage(plan: Plan, bank: ModelBank, executor, progress) -> dict[tuple, tuple[Any, float]]:
    """Originals per model seed, retrains and floor retrains per (forget set, model seed): in the bank,
    or trained now. Returns (role, split key, model seed) -> (shared payload, training seconds)."""
    from unlearn.training import default_arch_args, get_recipe

    config, dataset = plan.config, plan.dataset
    recipe = get_recipe(config.recipe)
    arch, arch_args = config.model.arch, default_arch_args(dataset.name, config.model.arch, config.model.args)
    # (role, split key, model seed) -> (training indices or None for all, the seed it trains with)
    wanted = {(ORIGINAL, None, seed): (None, seed) for seed in config.seeds}
    for split_key, seed in plan.retrains():
        wanted[(ORACLE, split_key, seed)] = (plan.splits[split_key].retain, seed)
    for split_key, seed in plan.floors():
        wanted[(FLOOR, split_key, seed)] = (plan.splits[split_key].retain, floor_seed(seed))
    missing, keys = [], set()
    for role_key, (indices, seed) in wanted.items():
        idx = indices if indices is not None else range(len(dataset.train))
        key = bank.key(dataset, arch, idx, recipe, seed, arch_args)
        if bank.lookup(key) is None and key.digest not in keys:  # two roles may share one model
            keys.add(key.digest)
            missing.append((role_key, key, idx, seed))
    jobs = [{"dataset_spec": plan.dataset_spec, "arch": arch, "arch_args": arch_args,
             "indices": list(map(int, idx)), "recipe": recipe.to_dict(), "seed": seed, "device": config.device,
             "name": f"{role} seed {seed}"} for (role, _, _), _, idx, seed in missing]
    with progress_bar(progress) as bar:
        task = bar.add_task("training models for the bank", total=len(jobs))
        for index, out in executor.map(train_job, jobs):
            if isinstance(out, BaseException):
                raise out
            bank.put(missing[index][1], model_from_payload(out["model"]), out["seconds"])
            bar.advance(task)
    models = {}
    for role_key, (indices, seed) in wanted.items():
        model, seconds = bank.get_with_time(dataset, arch, indices, recipe, seed, arch_args=arch_args)
        models[role_key] = (executor.share(model_payload(model)), seconds)
    return models


def _model_of(job, models: dict[tuple, tuple[Any, float]]):
    """The payload a job starts from: its retrained model for the oracle and the floor, else the original."""
    if job.method in (ORACLE, FLOOR):
        return models[(job.method, job.split_key, job.model_seed)][0]
    return models[(ORIGINAL, None, job.model_seed)][0]


def run_stage(jobs, plan: Plan, models, references, bank: ModelBank, store: ResultStore, executor,
               result: BenchResult, progress, title: str) -> list[dict[str, Any]]:
    done = [store.get(j.id) for j in jobs if j.id in store]
    todo = [j for j in jobs if j.id not in store]
    audit_spec = plan.config.audit.model_dump()
    kwargs = []
    for job in list(todo):
        oracle = job.method == ORACLE
        if not oracle and (job.forget, job.forget_seed, job.model_seed) not in references:
            todo.remove(job)
            result.crashed.append(crash_record(job, RuntimeError("the Retrain oracle of this job crashed")))
            continue
        kwargs.append({
            "job": job, "dataset_spec": plan.dataset_spec,
            "split": plan.splits[job.split_key], "validation": plan.validation, "evaluation": plan.evaluation,
            "model": _model_of(job, models), "audit_spec": audit_spec,
            "reference": None if oracle else references[(job.forget, job.forget_seed, job.model_seed)],
            "retrain_seconds": models[(ORACLE, job.split_key, job.model_seed)][1], "bank_root": str(bank.root),
            "device": plan.config.device})
    return done + execute_jobs(run_job, todo, kwargs, store, executor, result, progress, title)


def execute_jobs(job_fn, todo, kwargs, store: ResultStore, executor, result: BenchResult, progress,
                 title: str) -> list[dict[str, Any]]:
    """Run `job_fn` over `kwargs` (one per job of `todo`) through the executor, storing each record
    as it arrives so an interrupted run resumes; a crash is recorded against its job. Classifier
    and LM stages share it."""
    done = []
    with progress_bar(progress) as bar:
        task = bar.add_task(title, total=len(todo))
        for index, out in executor.map(job_fn, kwargs):
            if isinstance(out, BaseException):
                result.crashed.append(crash_record(todo[index], out))
            else:
                store.put(out)
                done.append(out)
                result.executed += 1
            bar.advance(task)
    return done


def write_timings(run_dir: Path, executor) -> None:
    """timings.json: each job this invocation ran, in the order they finished, with its worker,
    wall-clock start and end and CPU seconds (`executors.timed_call`), so the parallel structure
    of a run (which jobs overlapped, what waited on what) can be read afterwards. Empty for Ray."""
    write_text(Path(run_dir) / "timings.json",
               json.dumps({"backend": executor.name, "workers": getattr(executor, "workers", 1),
                           "jobs": executor.timings}, indent=1))
