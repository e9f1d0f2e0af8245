"""The bench driver: train what the bank lacks, run what the results store lacks, summarise.

The driver owns the model bank and the results store; executors (local or Ray) only receive job
specs and return weights or records. The run directory holds:
    config.yaml       the protocol as validated
    environment.json  versions, host, backend, start time
    forget/<label>-seed<k>.csv  each evaluation forget set (an `index` column; `unlearn audit --forget`)
    tuning.json       the tuning stage's outcome: tuned values, search spaces, every trial's score
    tune/runs/*.json  one record per tuning trial (and the tuning split's oracle)
    runs/<id>.json    one record per job (metrics, timings, histograms, ROC points)
    timings.json      where and when each job of this invocation ran, and its CPU seconds
    summary.md/.csv   mean ± t interval per method per setting over seeds, with the reference rows
Stages: tune every method (`unlearn.experiments.tune`; skipped with `tune.trials: 0`), train the
originals, retrains and floor retrains the bank lacks, audit the retrained models (the oracle),
then the reference rows (`original`, `retrain-floor`) and the methods with their tuned values.
Re-running the same protocol into the same directory trains nothing the bank holds and re-runs
no job whose record exists, so an interrupted bench resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from unlearn.bank import ModelBank
from unlearn.data import save_forget_csv
from unlearn.experiments.config import Config
from unlearn.experiments.executors import make_executor
from unlearn.experiments.jobs import Plan, dataset_of, reserved_for_tuning, resolve, with_recipe
from unlearn.experiments.provenance import environment
from unlearn.experiments.stages import BenchResult, run_stage, train_stage, write_timings
from unlearn.experiments.store import ResultStore
from unlearn.experiments.summary import write_summary
from unlearn.files import write_text


def run_bench(config: Config, run_dir: str | os.PathLike, *, backend: str = "local", address: str | None = None,
              bank: ModelBank | None = None, progress: bool | None = None, tune: bool = True,
              preset: dict[str, Any] | None = None, workers: int | None = None) -> BenchResult:
    """Run a protocol into `run_dir` (resuming what is there) and write its summary.

    `tune=False` (`--no-tune`) skips the tuning stage as `tune.trials: 0` does: every method runs
    with the protocol's hyperparameters and the tables say "untuned". `preset` (a tuning outcome
    recorded elsewhere, `unlearn.published.load_preset`: the demo's) replaces the tuning stage: its
    values run, and the tables say where they come from. `workers`: the process count of
    `backend="processes"` (`executors.make_executor`).
    """
    from unlearn.experiments.lm_config import LMConfig
    from unlearn.experiments.tune import tune_stage, tuned_hparams

    if isinstance(config, LMConfig):  # a language-model protocol: the same stages, LM jobs
        from unlearn.experiments.lm_bench import run_lm_bench

        return run_lm_bench(config, run_dir, backend=backend, address=address, bank=bank, progress=progress, tune=tune,
                            workers=workers)
    # The evaluation forget sets stay outside the tuning forget sets even untuned (--no-tune), so a
    # tuned and an untuned run of one protocol evaluate on the same sets.
    tuned_protocol = config
    if not tune:
        config = config.model_copy(update={"tune": config.tune.model_copy(update={"trials": 0})})
    start = time.perf_counter()
    config = with_recipe(config)  # the recipe chosen for the data goes into config.yaml
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    env = environment(backend)
    env["torch_threads"] = config.torch_threads or env["torch_threads"]
    previous = run_dir / "environment.json"
    if previous.is_file():  # a resumed run: keep what the earlier invocations ran on
        earlier = json.loads(previous.read_text())
        env["earlier"] = earlier.pop("earlier", []) + [earlier]
    write_text(run_dir / "environment.json", json.dumps(env, indent=1))
    bank = bank if bank is not None else ModelBank()  # not `or`: an empty bank has len 0
    store = ResultStore(run_dir)
    dataset = dataset_of(*config.dataset_spec)
    executor = make_executor(backend, address, config.device, workers)
    models_before = len(bank)
    threads = torch.get_num_threads()
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    try:
        tuning = preset if preset is not None else \
            tune_stage(config, run_dir, bank=bank, executor=executor, progress=progress) if config.tune.trials else None
        plan = resolve(config, dataset, tuned_hparams(tuning),
                       reserved=reserved_for_tuning(tuned_protocol, len(dataset.train)))
        for (label, forget_seed), split in plan.splits.items():  # so any figure can be re-audited by hand
            save_forget_csv(run_dir / "forget" / f"{label}-seed{forget_seed}.csv", split.forget)
        result = BenchResult(run_dir, plan, [], tuning=tuning)
        # Models are needed only by jobs still to run: a run whose every record is stored (e.g. the
        # committed results/ of a protocol, on a machine with an empty bank) trains nothing.
        pending = any(job.id not in store for job in plan.oracle + plan.runs)
        models = train_stage(plan, bank, executor, progress) if pending else {}
        oracle = run_stage(plan.oracle, plan, models, None, bank, store, executor, result,
                            progress, "auditing retrained models")
        references = {(r["forget"], r["forget_seed"], r["model_seed"]): r["metrics"] for r in oracle}
        run_stage(plan.runs, plan, models, references, bank, store, executor, result, progress,
                   "unlearning and auditing")
    finally:
        executor.close()
        torch.set_num_threads(threads)
        write_timings(run_dir, executor)
    for job in plan.not_applicable:  # stored too, so `unlearn report` shows the same rows as the summary
        if job.id not in store:
            store.put({"id": job.id, **job.describe(), "status": "n/a", "error": f"{job.method} needs the retain set"})
    store.set_current(_ids(plan) | {j.id for j in plan.not_applicable})
    result.records = list(store.current_records())
    result.trained = len(bank) - models_before
    result.seconds = time.perf_counter() - start
    result.rows = write_summary(result.records, run_dir, config, tuning)
    return result


def _ids(plan: Plan) -> set[str]:
    return {j.id for j in plan.oracle + plan.runs}
