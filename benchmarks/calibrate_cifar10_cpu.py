"""Calibrate the cifar10-cpu protocol on this machine: one original model of configs/cifar10-cpu.yaml.

Trains the protocol's model (stratified training subset, small CNN, the cifar10-cpu recipe) once,
into a private bank, and prints the figures BENCHMARKS.md asks the config's comments to record:
training time, train / test accuracy, mean true-class confidence on train / test.

    .venv/bin/python benchmarks/calibrate_cifar10_cpu.py [--config configs/cifar10-cpu.yaml] [--bank DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from unlearn.bank import ModelBank
from unlearn.experiments import load_config
from unlearn.experiments.jobs import dataset_of
from unlearn.models import accuracy, true_class_confidence
from unlearn.training import default_arch_args, get_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/cifar10-cpu.yaml")
    parser.add_argument("--bank", default=None, help="model bank (default: a fresh temporary folder)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the protocol's)")
    args = parser.parse_args()
    config = load_config(args.config)
    if args.threads or config.torch_threads:
        torch.set_num_threads(args.threads or config.torch_threads)
    start = time.perf_counter()
    dataset = dataset_of(*config.dataset_spec)
    load_seconds = time.perf_counter() - start
    bank = ModelBank(args.bank or tempfile.mkdtemp(prefix="calibrate-"))
    arch_args = default_arch_args(dataset.name, config.model.arch, config.model.args)
    model, seconds = bank.get_with_time(dataset, config.model.arch, None, config.recipe, config.seeds[0],
                                        arch_args=arch_args, progress=False)
    print(f"machine: {os.cpu_count()} cpus, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"dataset {dataset.name}: {len(dataset.train)} train / {len(dataset.test)} test (loaded in {load_seconds:.0f} s)")
    print(f"model {config.model.arch} {arch_args}, recipe {get_recipe(config.recipe).to_dict()}")
    print(f"training: {seconds:.0f} s")
    print(f"train acc {accuracy(model, dataset.train):.1f}%  test acc {accuracy(model, dataset.test):.1f}%")
    print(f"mean true-class confidence train {true_class_confidence(model, dataset.train).mean():.2f} / "
          f"test {true_class_confidence(model, dataset.test).mean():.2f}")


if __name__ == "__main__":
    main()
