"""Audit benchmarks: cost vs number of reference models, reuse from the bank, and known answers.

    python benchmarks/bench_audit.py scaling            # digits: audit time vs n_reference (4, 8, 16), 2nd audit reuses
    python benchmarks/bench_audit.py leak               # original vs retrained: every MIA's AUC (digits)
    python benchmarks/bench_audit.py leak --cifar       # the same on a leaky CIFAR-10 subset (needs the tarball):
                                                        # 100 train / 50 test images per class, MLP, recipe digits

`scaling` uses a fresh temporary bank, so the first audit trains every reference model and the
second must train none; the table gives both times and the time per reference model (linear
cost = a constant per-model time). All ratios come from one run on one machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from unlearn import audit, data
from unlearn.bank import ModelBank
from unlearn.data import Dataset

CIFAR = Path(os.environ.get("UNLEARN_CIFAR10", Path(__file__).resolve().parents[2] / "shared" / "data"
                            / "cifar10-jpg.tar.gz"))
MIAS = ("loss", "rmia", "rmia-offline", "lira", "lira-offline")


def scaling(counts: list[int], seed: int) -> None:
    ds = data.load("digits")
    split = data.random_forget(len(ds.train), fraction=0.1, seed=seed)
    with tempfile.TemporaryDirectory() as root:
        bank = ModelBank(root)
        model = bank.get(ds, "mlp", None, seed=seed, progress=False)
        print(f"digits, mlp, recipe 'digits', attacks rmia+lira, torch threads {torch.get_num_threads()}; "
              "CPU s = this process's CPU time (robust to other jobs on the machine), wall s = elapsed")
        print("| n_reference | 1st audit CPU s | wall s | trained | CPU s / reference model | "
              "2nd audit CPU s | wall s | trained | rmia.auc |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for n in counts:
            # Each count gets its own seed so nothing is shared with the previous row's models.
            fresh_seed = 1000 + n
            cpu, wall, trained = [], [], []
            for _ in range(2):
                bank.trained = 0
                start_cpu, start = time.process_time(), time.perf_counter()
                result = audit.evaluate(model, ds, split, attacks=("acc", "rmia", "lira"), bank=bank,
                                        n_reference=n, seed=fresh_seed)
                cpu.append(time.process_time() - start_cpu)
                wall.append(time.perf_counter() - start)
                trained.append(bank.trained)
            print(f"| {n} | {cpu[0]:.1f} | {wall[0]:.1f} | {trained[0]} | {cpu[0] / n:.2f} | {cpu[1]:.2f} | "
                  f"{wall[1]:.2f} | {trained[1]} | {result['rmia']['auc']:.1f} |", flush=True)


def cifar_subset(per_class_train: int, per_class_test: int) -> Dataset:
    """A class-balanced CIFAR-10 subset (the first images of each class), which an MLP overfits."""
    full = data.load("cifar10", root=CIFAR, progress=False)

    def take(part, per_class):
        y = part.y.numpy()
        return np.sort(np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)]))

    train, test = full.train.subset(take(full.train, per_class_train)), full.test.subset(take(full.test, per_class_test))
    pixels = train.x.float() / 255
    return Dataset(f"cifar10-{per_class_train}x10", train, test, full.classes,
                   f"{full.fingerprint}-sub{per_class_train}-{per_class_test}",
                   tuple(pixels.mean((0, 2, 3)).tolist()), tuple(pixels.std((0, 2, 3)).tolist()))


def leak(use_cifar: bool, n_reference: int, seeds: list[int]) -> None:
    if use_cifar:
        if not CIFAR.exists():
            raise SystemExit(f"CIFAR-10 copy not found at {CIFAR}")
        ds = cifar_subset(100, 50)
    else:
        ds = data.load("digits")
    bank = ModelBank()
    print(f"{ds.name}: {len(ds.train)} train / {len(ds.test)} test, mlp (256, 256), recipe 'digits', "
          f"{n_reference} reference models, 10% random forget; AUCs in % (D_F positive vs D_T)")
    print("| seed | model | acc on train split | test acc | forget acc | " + " | ".join(f"{m} AUC" for m in MIAS)
          + " | rmia TPR@1%FPR | mis | train s | audit s |")
    print("| --- " * (10 + len(MIAS)) + "|")
    for seed in seeds:
        split = data.random_forget(len(ds.train), fraction=0.1, seed=seed)
        for name, indices in (("original", None), ("retrained", split.retain)):
            start = time.perf_counter()
            model = bank.get(ds, "mlp", indices, "digits", seed=seed, progress=False)
            trained = time.perf_counter() - start
            start = time.perf_counter()
            r = audit.evaluate(model, ds, split, attacks=("acc", "mis") + MIAS, bank=bank, n_reference=n_reference,
                               seed=0)
            audit_seconds = time.perf_counter() - start
            train_acc = audit.accuracies(model, ds.train.subset(split.forget), ds.train, ds.test)["retain"]
            print(f"| {seed} | {name} | {train_acc:.1f} | {r['acc']['test']:.1f} | {r['acc']['forget']:.1f} | "
                  + " | ".join(f"{r[m]['auc']:.1f}" for m in MIAS)
                  + f" | {r['rmia']['tpr_at_1pct_fpr']:.1f} | {r['mis']['mis']:.1f} | {trained:.0f} | "
                  f"{audit_seconds:.0f} |", flush=True)


def main() -> None:
    torch.set_num_threads(1)  # one core: per-model cost is not distorted by thread contention
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["scaling", "leak"])
    parser.add_argument("--counts", default="4,8,16", help="reference-model counts for 'scaling'")
    parser.add_argument("--n-reference", type=int, default=8, help="reference models for 'leak'")
    parser.add_argument("--seeds", default="0", help="comma list of forget/original seeds for 'leak'")
    parser.add_argument("--cifar", action="store_true", help="'leak' on a 1,000-image CIFAR-10 subset")
    args = parser.parse_args()
    if args.part == "scaling":
        scaling([int(c) for c in args.counts.split(",")], seed=0)
    else:
        leak(args.cifar, args.n_reference, [int(s) for s in args.seeds.split(",")])


if __name__ == "__main__":
    main()
