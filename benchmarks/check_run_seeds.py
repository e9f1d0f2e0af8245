"""One method at fixed hyperparameters on a protocol's forget sets, over several run seeds.

A tuning trial is one unlearning run scored once (docs/benchmarks.md, "Tuning"). Where a method
sits on an edge, whether it forgets at all can turn on the run's seed, and one trial then
misjudges the point. This script measures that spread: it takes the protocol's original model
from the model bank (run the bench first, so it is there), draws the forget set of one fraction
with each `--forget-seeds` seed (the tuning seed and an evaluation seed, say), runs the method
once per run seed and prints forget / retain / test accuracy per run. The published check
(docs/results.md, "One trial is one draw"):

    UNLEARN_CIFAR10=../shared/data/cifar10-jpg.tar.gz .venv/bin/python benchmarks/check_run_seeds.py \\
        configs/cifar10-cpu.yaml --method ft --set lr=0.1 --set epochs=10 --fraction 0.5 \\
        --forget-seeds 1000 0 --runs 4
"""

from __future__ import annotations

import argparse
import sys

import torch
import yaml

from unlearn import methods
from unlearn.bank import ModelBank
from unlearn.experiments.config import load_config
from unlearn.experiments.jobs import dataset_of, make_split
from unlearn.models.predict import accuracy
from unlearn.training import default_arch_args, get_recipe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--method", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a hyperparameter of the method (YAML value)")
    parser.add_argument("--fraction", type=float, required=True, help="which of the protocol's forget sets")
    parser.add_argument("--forget-seeds", type=int, nargs="+", required=True)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--model-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    config = load_config(args.config)
    if any("=" not in item for item in args.set):
        parser.error("--set takes KEY=VALUE")
    hparams = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    specs = [f for f in config.forget if f.kind == "random" and f.fraction == args.fraction]
    if not specs:
        sys.exit(f"{args.config}: no random forget set with fraction {args.fraction}")
    dataset = dataset_of(*config.dataset_spec)
    arch = config.model.arch
    arch_args = default_arch_args(dataset.name, arch, config.model.args)
    recipe = get_recipe(config.recipe)
    bank = ModelBank()
    if bank.lookup(bank.key(dataset, arch, range(len(dataset.train)), recipe, args.model_seed, arch_args)) is None:
        sys.exit(f"the original model (seed {args.model_seed}) is not in the bank {bank.root}: run the bench first")
    original = bank.get(dataset, arch, None, recipe, args.model_seed, arch_args=arch_args).eval()

    print("forget seed | run seed | forget acc | retain acc | test acc")
    for forget_seed in args.forget_seeds:
        split = make_split(specs[0], len(dataset.train), dataset.train.y.numpy(), forget_seed)
        forget, retain = dataset.train.subset(split.forget), dataset.train.subset(split.retain)
        for run_seed in range(args.runs):
            torch.manual_seed(run_seed)
            new = methods.get(args.method, **hparams).unlearn(original, forget, retain, seed=run_seed).eval()
            figures = [accuracy(new, part) for part in (forget, retain, dataset.test)]
            print(f"{forget_seed} | {run_seed} | " + " | ".join(f"{x:.1f}" for x in figures), flush=True)
    figures = [accuracy(original, part) for part in (dataset.train, dataset.test)]
    print(f"original: train {figures[0]:.1f}, test {figures[1]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
