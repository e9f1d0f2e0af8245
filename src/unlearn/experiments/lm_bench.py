"""The bench of a language-model protocol: tune, train what the bank lacks, audit the oracle, run the rows.

`unlearn bench` hands an `LMConfig` here (`runner.run_bench`); the stages are those of the
classifier bench, with the jobs of `unlearn.experiments.lm_jobs`, and write the same run
directory (config.yaml, environment.json, tuning.json, tune/runs/, runs/, summary.md/.csv), so
`unlearn report` and the verdicts read it unchanged.

Tuning follows the classifier bench's rules (`unlearn.experiments.tune`): every method gets the
same number of trials, on its own forget set (the protocol's forget fraction drawn with
`tune.forget_seed`, never an evaluation seed), scored by gap-lm; the first trial is the
protocol's values, the next ones the learning rates that cover the lr range (`tune.open_study`:
both ends first), the rest a seeded Sobol sequence (or TPE beyond ten trials) over the method's
search space (`lm_config.DEFAULT_LM_SPACES`). As the classifier stage's procedure 5, nothing a
trial's score depends on is part of the evaluation: the trials run on an original of their own
(`tune.model_seed`), on forget sets no evaluation forget set meets, and the tuning audit's
non-members are a part of the holdout entities that neither the evaluation audit nor any method
sees (`lm_jobs.holdout_parts`). The retain entities are shared, as the classifier stage shares
its training set: they are what every model trains on.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from unlearn.bank import ModelBank
from unlearn.experiments.jobs import FLOOR, ORACLE, ORIGINAL, RunJob, crash_record
from unlearn.experiments.lm_config import LMConfig, lm_search_space
from unlearn.experiments.lm_jobs import LMPlan, lm_run_job, lm_train_job, model_entities, resolve_lm
from unlearn.experiments.provenance import environment
from unlearn.experiments.stages import BenchResult, execute_jobs, write_timings
from unlearn.experiments.store import ResultStore
from unlearn.experiments.summary import write_summary
from unlearn.files import write_text
from unlearn.progress import progress_bar

# Bumped when the LM search changes, so a stored outcome of an older search is not reused.
# 2: the classifier stage's procedure 5 learning rates (`tune.coverage_lrs`), which `open_study` queues.
LM_TUNING_PROCEDURE = 3


def lm_train_stage(plan: LMPlan, bank: ModelBank, executor, progress) -> dict[tuple, float]:
    """Originals and retrains in the bank (trained now through the executor when missing); returns
    (role, split key, model seed) -> training seconds.

    The floor retrains are not trained here but by their own `retrain-floor` row's job
    (`lm_run_job` takes its model from the bank, training it when missing): no other job waits for
    them, so with several workers a floor trains while the oracle's audit and the methods run."""
    from unlearn.lm.models import lm_key

    config, corpus, recipe = plan.config, plan.corpus, plan.config.lm_recipe
    wanted = {(ORIGINAL, None, seed): (tuple(corpus.trainable), seed) for seed in config.seeds}
    for split_key, seed in plan.retrains():
        wanted[(ORACLE, split_key, seed)] = (tuple(plan.splits[split_key].retain), seed)
    jobs, seen = [], set()
    for role, (entities, seed) in wanted.items():
        key = lm_key(corpus, entities, recipe, seed)
        if bank.lookup(key) is None and key.digest not in seen:
            seen.add(key.digest)
            jobs.append({"corpus_spec": (config.corpus, config.corpus_seed), "entities": list(entities),
                         "recipe": recipe.to_dict(), "seed": seed, "bank_root": str(bank.root),
                         "device": config.device, "name": f"train {role[0]} seed {seed}"})
    with progress_bar(progress) as bar:
        task = bar.add_task("training language models for the bank", total=len(jobs))
        for _index, out in executor.map(lm_train_job, jobs):
            if isinstance(out, BaseException):
                raise out
            bar.advance(task)
    return {role: bank.lookup(lm_key(corpus, entities, recipe, seed))[1]
            for role, (entities, seed) in wanted.items()}


def lm_run_stage(jobs: list[RunJob], plan: LMPlan, seconds: dict[tuple, float], references: dict | None,
                 bank: ModelBank, store: ResultStore, executor, result: BenchResult, progress, title: str) -> list:
    """Run the jobs `store` lacks, store each record as it comes; return every record of `jobs`.

    The floor rows go first: each trains its model (`lm_train_stage`), the longest job of the
    stage, and a pool hands jobs out in order, so starting the longest first ends the stage soonest."""
    done = [store.get(j.id) for j in jobs if j.id in store]
    todo = sorted((j for j in jobs if j.id not in store), key=lambda j: j.method != FLOOR)
    kwargs = []
    for job in list(todo):
        oracle = job.method == ORACLE
        unit = (job.forget, job.forget_seed, job.model_seed)
        if not oracle and unit not in references:
            todo.remove(job)
            result.crashed.append(crash_record(job, RuntimeError("the Retrain oracle of this job crashed")))
            continue
        kwargs.append({"job": job, "corpus_spec": (plan.config.corpus, plan.config.corpus_seed),
                       "split": plan.splits[job.split_key], "given": plan.given,
                       "recipe": plan.config.lm_recipe.to_dict(), "audit_spec": plan.config.audit.model_dump(),
                       "reference": None if oracle else references[unit],
                       "retrain_seconds": seconds[(ORACLE, job.split_key, job.model_seed)],
                       "bank_root": str(bank.root), "device": plan.config.device})
    return done + execute_jobs(lm_run_job, todo, kwargs, store, executor, result, progress, title)


def _references(records) -> dict[tuple, dict]:
    return {(r["forget"], r["forget_seed"], r["model_seed"]): r["metrics"] for r in records if r["status"] == "ok"}


def _evaluate(plan: LMPlan, bank, store, executor, result, progress, prefix: str = "") -> list:
    """Train the models, audit the oracle, then run every row; return the rows' records."""
    pending = any(job.id not in store for job in plan.oracle + plan.runs)
    # A run whose every record is stored (the committed results/ on a machine with an empty bank)
    # trains nothing; the training times are needed only by jobs still to run.
    seconds = lm_train_stage(plan, bank, executor, progress) if pending else {}
    oracle = lm_run_stage(plan.oracle, plan, seconds, None, bank, store, executor, result, progress,
                          f"{prefix}auditing retrained models")
    return lm_run_stage(plan.runs, plan, seconds, _references(oracle), bank, store, executor, result, progress,
                        f"{prefix}unlearning and auditing")


# ---- tuning -------------------------------------------------------------------------------------

def lm_tuning_protocol(config: LMConfig, methods: list[str]) -> LMConfig:
    forget = [spec.model_copy(update={"seeds": [config.tune.forget_seed]}) for spec in config.forget]
    return config.model_copy(update={"forget": forget, "seeds": [config.tune.model_seed], "runs": 1,
                                     "methods": {m: config.methods[m] for m in methods}, "reference_rows": [],
                                     "tune": config.tune.model_copy(update={"trials": 0})})


def lm_protocol_point(config: LMConfig, method: str, space: dict[str, Any]) -> dict[str, Any] | None:
    """The protocol's values of the searched hyperparameters, when each lies in the space."""
    from unlearn.experiments.tune import point_in_space
    from unlearn.lm import methods as registry

    return point_in_space({**registry.get_class(method).hyperparameters(), **config.hparams(method)}, space)


def lm_tune_stage(config: LMConfig, run_dir: Path, *, bank: ModelBank, executor, progress) -> dict[str, Any]:
    """Tune every tunable method in every setting of the protocol; the outcome goes to tuning.json
    (the classifier stage's format) and is reused when everything it depends on is unchanged."""
    import optuna

    from unlearn.experiments.tune import (
        TUNING_FILE,
        Study,
        _best,
        _load,
        _score,
        _suggest,
        open_study,
        sampler_name,
    )
    from unlearn.lm import methods as registry

    methods = [m for m in config.methods if m != ORACLE and lm_search_space(config, m)]
    # What the outcome depends on: not the evaluation seeds, rows or name (adding a seed keeps the tuning).
    blob = {"corpus": [config.corpus, config.corpus_seed], "recipe": config.lm_recipe.to_dict(),
            "forget": [[f.label, f.fraction] for f in config.forget], "audit": config.audit.model_dump(),
            "tune": config.tune.model_dump(), "settings": list(config.settings),
            "methods": {m: config.hparams(m) for m in methods}, "procedure": LM_TUNING_PROCEDURE,
            "spaces": {m: lm_search_space(config, m) for m in methods}}
    digest = hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]
    stored = _load(run_dir / TUNING_FILE)
    if stored is not None and stored.get("digest") == digest:
        return stored
    tuning = lm_tuning_protocol(config, methods)
    plan = resolve_lm(tuning, tuning=True)
    store = ResultStore(run_dir / "tune")
    scratch = BenchResult(run_dir, plan, [])
    seconds = lm_train_stage(plan, bank, executor, progress)
    oracle = lm_run_stage(plan.oracle, plan, seconds, None, bank, store, executor, scratch, progress,
                          "tuning: auditing retrained models")
    if scratch.crashed:
        raise RuntimeError(f"tuning: the Retrain oracle's audit crashed: {scratch.crashed[0]['error']}")
    references = _references(oracle)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    studies = []
    for spec in tuning.forget:
        for setting in config.settings:
            for method in methods:
                if registry.get_class(method).requires_retain and setting == "without_retain":
                    continue
                space = lm_search_space(config, method)
                study = open_study(spec.label, setting, method, space, config.tune.trials,
                                   lm_protocol_point(config, method, space))
                studies.append(Study(spec.label, setting, method, space, study, []))
    context, model_seed = plan.oracle[0].context, tuning.seeds[0]
    for round_ in range(config.tune.trials):
        asked, jobs = [], []
        for study in studies:
            trial = study.optuna_study.ask()
            params = {k: _suggest(trial, k, s) for k, s in study.space.items()}
            hp = json.dumps({**config.hparams(study.method), **params}, sort_keys=True)
            runs = [RunJob(study.method, hp, study.setting, study.forget, config.tune.forget_seed, model_seed, run,
                           context) for run in range(config.tune.repeats)]
            jobs += runs
            asked.append((study, trial, params, runs))
        scratch.crashed = []
        records = {r["id"]: r for r in lm_run_stage(jobs, plan, seconds, references, bank, store, executor, scratch,
                                                    progress, f"tuning: trial {round_ + 1} of {config.tune.trials}")}
        crashed = {c["id"]: c for c in scratch.crashed}
        for study, trial, params, runs in asked:
            results = [records.get(job.id) or crashed.get(job.id, {"status": "crashed"}) for job in runs]
            scores = [_score(record, config.tune_objective) for record in results]
            failed = next((r for r, s in zip(results, scores) if s is None), None)
            score = None if failed is not None else float(np.mean(scores))
            if score is None:
                study.optuna_study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.optuna_study.tell(trial, score)
            shown = failed or results[0]
            took = [r.get("seconds") for r in results]
            study.trials.append({"trial": trial.number, "params": params, "score": score, "status": shown["status"],
                                 "seconds": None if None in took else sum(took), "error": shown.get("error")})
    outcome = {"digest": digest, "objective": config.tune_objective, "trials": config.tune.trials,
               "repeats": config.tune.repeats, "sampler": sampler_name(config.tune.trials),
               "forget_seed": config.tune.forget_seed, "model_seed": model_seed,
               "scored_on": "the tuning forget set's audit on the tuning original (its own forget entities; "
                            "the tuning part of the holdout entities as non-members)",
               "studies": [_best(config, study) for study in studies]}
    write_text(run_dir / TUNING_FILE, json.dumps(outcome, indent=1, default=str))
    return outcome


# ---- the bench ----------------------------------------------------------------------------------

def run_lm_bench(config: LMConfig, run_dir, *, backend: str = "local", address: str | None = None,
                 bank: ModelBank | None = None, progress: bool | None = None, tune: bool = True,
                 workers: int | None = None) -> BenchResult:
    """Run an LM protocol into `run_dir` (resuming what is there) and write its summary."""
    from unlearn.experiments.executors import make_executor
    from unlearn.experiments.tune import tuned_hparams

    if not tune:
        config = config.model_copy(update={"tune": config.tune.model_copy(update={"trials": 0})})
    start = time.perf_counter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    env = environment(backend)
    previous = run_dir / "environment.json"
    if previous.is_file():
        earlier = json.loads(previous.read_text())
        env["earlier"] = earlier.pop("earlier", []) + [earlier]
    write_text(run_dir / "environment.json", json.dumps(env, indent=1))
    bank = bank if bank is not None else ModelBank()
    store = ResultStore(run_dir)
    executor = make_executor(backend, address, config.device, workers)
    models_before = len(bank)
    threads = torch.get_num_threads()
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    try:
        tuning = lm_tune_stage(config, run_dir, bank=bank, executor=executor, progress=progress) \
            if config.tune.trials else None
        plan = resolve_lm(config, tuned_hparams(tuning))
        result = BenchResult(run_dir, plan, [], tuning=tuning)
        for (label, seed), split in plan.splits.items():  # so any figure can be re-audited by hand
            write_text(run_dir / "forget" / f"{label}-seed{seed}.txt", "\n".join(split.forget) + "\n")
        _evaluate(plan, bank, store, executor, result, progress)
    finally:
        executor.close()
        torch.set_num_threads(threads)
        write_timings(run_dir, executor)
    for job in plan.not_applicable:
        if job.id not in store:
            store.put({"id": job.id, **job.describe(), "status": "n/a", "error": f"{job.method} needs the retain set"})
    store.set_current({j.id for j in plan.oracle + plan.runs + plan.not_applicable})
    result.records = list(store.current_records())
    result.trained = len(bank) - models_before
    result.seconds = time.perf_counter() - start
    result.rows = write_summary(result.records, run_dir, config, tuning)
    return result


__all__ = ["lm_run_stage", "lm_train_stage", "lm_tune_stage", "model_entities", "run_lm_bench"]
