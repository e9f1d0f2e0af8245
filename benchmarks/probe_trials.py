"""One method at given hyperparameter points, each run and scored exactly as a tuning trial.

A tuning trial (docs/benchmarks.md, "Tuning") unlearns the protocol's forget set drawn with
`tune.forget_seed` from the first original model, gives the method the first quarter of the test
split as known non-members and scores it against the second (the evaluation half is not used).
This script queues the points you name instead of the sampler's, so a method's behaviour can be
mapped before its search space is fixed (docs/methods.md, "loss-match": every probe figure there
comes from it). Models come from the bank (trained when missing); records go to `--out`.

    PYTHONPATH=src python benchmarks/probe_trials.py configs/mnist1d.yaml loss-match \\
        --setting with_retain --fraction 0.1 '{"lr": 0.01, "forget_weight": 0.3}' '{"lr": 0.03}'
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from unlearn.bank import ModelBank
from unlearn.experiments.config import load_config
from unlearn.experiments.executors import LocalExecutor
from unlearn.experiments.jobs import RunJob, dataset_of, resolve
from unlearn.experiments.stages import BenchResult, run_stage, train_stage
from unlearn.experiments.store import ResultStore
from unlearn.experiments.tune import tuning_halves, tuning_protocol


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("method")
    parser.add_argument("points", nargs="+", help="JSON objects of hyperparameters")
    parser.add_argument("--setting", choices=["with_retain", "without_retain"], default="with_retain")
    parser.add_argument("--fraction", type=float, required=True, help="which of the protocol's forget sets")
    parser.add_argument("--out", default="runs/probe", help="where the trial records are kept")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = load_config(args.config)
    forget = [f for f in config.forget if f.fraction == args.fraction]
    if not forget:
        sys.exit(f"{args.config}: no forget set with fraction {args.fraction}")
    config = config.model_copy(update={"forget": forget, "methods": {**config.methods, args.method: {}}})
    tuning = tuning_protocol(config, [args.method])
    dataset = dataset_of(*config.dataset_spec)
    plan = resolve(tuning, dataset)
    plan.validation, plan.evaluation = tuning_halves(dataset)
    store, scratch = ResultStore(Path(args.out) / "tune"), BenchResult(Path(args.out), plan, [])
    bank, executor = ModelBank(), LocalExecutor()
    models = train_stage(plan, bank, executor, False)
    oracle = run_stage(plan.oracle, plan, models, None, bank, store, executor, scratch, False, "oracle")
    references = {(r["forget"], r["forget_seed"], r["model_seed"]): r["metrics"] for r in oracle}
    first = plan.oracle[0]
    points = [json.loads(p) for p in args.points]
    jobs = [RunJob(args.method, json.dumps({**config.hparams(args.method), **p}, sort_keys=True), args.setting,
                   first.forget, first.forget_seed, first.model_seed, 0, first.context) for p in points]
    records = {r["id"]: r for r in run_stage(jobs, plan, models, references, bank, store, executor, scratch,
                                               False, "probe")}
    crashed = {c["id"]: c for c in scratch.crashed}

    def row(metrics) -> str:
        return " | ".join(f"{x:.1f}" for x in (metrics["acc"]["forget"], metrics["acc"]["retain"],
                                                metrics["acc"]["test"], metrics["rmia"]["auc"]))

    print("point | gap-rmia | forget acc | retain acc | test acc | RMIA AUC")
    print(f"retrain | 0 | {row(oracle[0]['metrics'])}")
    for point, job in zip(points, jobs):
        record = records.get(job.id) or crashed.get(job.id, {"status": "crashed"})
        if record["status"] != "ok":
            print(f"{json.dumps(point)} | {record['status']}: {record.get('error')}")
            continue
        print(f"{json.dumps(point)} | {record['metrics']['gap']['gap-rmia']:.2f} | {row(record['metrics'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
