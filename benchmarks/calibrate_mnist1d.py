"""Calibrate the `mnist1d` recipe: does the MLP fit its training set, and does membership leak?

Trains the original model and a model retrained without a 10% random forget set (the bank's
training path, so the seconds are what a bench pays), then audits both on D_F against the
evaluation half of the test split: accuracies, loss MIA and RMIA with `--n-reference` reference
models. The figures go into the recipe's comment in `unlearn/training/recipes.py`.

    python benchmarks/calibrate_mnist1d.py --threads 1 --seeds 0,1 --n-reference 8
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from unlearn import audit, data, models
from unlearn.bank import ModelBank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--n-reference", type=int, default=8)
    parser.add_argument("--arch", default="mlp")
    parser.add_argument("--recipe", default="mnist1d")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = data.load("mnist1d")
    bank = ModelBank(tempfile.mkdtemp(prefix="calibrate-mnist1d-"))
    _, evaluation = data.split_holdout(ds.test.y.numpy(), seed=0)
    print("seed | model | seconds | train % | test % | forget % | loss AUC | RMIA AUC")
    for seed in (int(s) for s in args.seeds.split(",")):
        split = data.random_forget(len(ds.train), fraction=0.1, seed=seed)
        for label, indices in (("original", None), ("retrained", split.retain)):
            start = time.perf_counter()
            net = bank.get(ds, args.arch, indices, args.recipe, seed=seed, progress=False)
            seconds = time.perf_counter() - start
            result = audit.evaluate(net, ds, split, attacks=["acc", "loss", "rmia"], bank=bank,
                                    n_reference=args.n_reference, seed=seed, evaluation=evaluation)
            print(f"{seed} | {label} | {seconds:.1f} | {models.accuracy(net, ds.train):.1f} | "
                  f"{result['acc']['test']:.1f} | {result['acc']['forget']:.1f} | {result['loss']['auc']:.1f} | "
                  f"{result['rmia']['auc']:.1f}")


if __name__ == "__main__":
    main()
