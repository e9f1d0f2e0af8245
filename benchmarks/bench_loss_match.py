"""loss-match's cost against retraining, for its two targets (issue 27; docs/methods.md).

Protocol: mnist1d, MLP 40-256-256-10, recipe "mnist1d", model seed 0, random forget sets of 10%
and 50% (seed 0), the holdout = the validation half of the test split (as the bench gives it).
In one process, one after another: retraining on D_R (the recipe from scratch), then loss-match
at its tuned values (10 epochs, λ 0.3; lr 0.01 at 10%, 0.1 at 50%) with target "original" and
"current", with and without D_R. Prints each wall time and its ratio to the retrain.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/bench_loss_match.py

Measured (2-core machine, idle, torch 2.13, 1 thread, one run; seconds and / retrain):
10%: retrain 2.37; with D_R original 0.65 (0.27), current 0.79 (0.33); without D_R 0.16 and
0.17 (0.07). 50%: retrain 1.35; with D_R 0.36 (0.27) and 0.44 (0.32); without D_R 0.59 (0.43)
and 0.66 (0.49): without D_R an epoch is a pass over D_F, 2,000 samples at 50%.
"""

from __future__ import annotations

import time

import torch

from unlearn import data, methods
from unlearn.training import train


def main() -> None:
    torch.set_num_threads(1)
    dataset = data.load("mnist1d")
    validation, _ = data.split_holdout(dataset.test.y.numpy(), seed=0)
    holdout = dataset.test.subset(validation)
    original = train("mlp", dataset, None, "mnist1d", seed=0, progress=False)
    print("fraction | setting | target | seconds | / retrain")
    for fraction, lr in ((0.1, 0.01), (0.5, 0.1)):
        split = data.random_forget(len(dataset.train), fraction, seed=0)
        forget, retain = dataset.train.subset(split.forget), dataset.train.subset(split.retain)
        start = time.perf_counter()
        train("mlp", dataset, split.retain, "mnist1d", seed=0, progress=False)
        retrain = time.perf_counter() - start
        print(f"{fraction:.0%} | retrain | | {retrain:.2f} | 1.00")
        for setting, kept in (("with D_R", retain), ("without D_R", None)):
            for target in ("original", "current"):
                method = methods.get("loss-match", lr=lr, epochs=10, forget_weight=0.3, target=target)
                start = time.perf_counter()
                method.unlearn(original, forget, kept, seed=0, holdout=holdout)
                seconds = time.perf_counter() - start
                print(f"{fraction:.0%} | {setting} | {target} | {seconds:.2f} | {seconds / retrain:.2f}")


if __name__ == "__main__":
    main()
