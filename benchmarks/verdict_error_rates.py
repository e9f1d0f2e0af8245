"""How often `unlearn requests verify` is wrong: false-pass and false-fail rates by request size (mnist1d).

The verdict (`unlearn.requests.verify.assess`, statistics in `unlearn.requests.verdict`) is run on
two kinds of model whose right answer is known:

- a do-nothing model, trained on every sample, request included (what a method that changed
  nothing would hand in): "consistent" is a false pass;
- an honest retrain, trained without the request from a seed none of the oracles has: "not
  consistent" is a false fail.

Models come from the bank and are reused across trials, so the whole run trains a few dozen
mnist1d MLPs once (each a few seconds to a minute). The request is drawn inside a block B of
`--block` random training samples; every retrained model (oracles and honest retrains) is
trained without the whole block, so one pool serves every request inside it. That is the one
departure from `verify`, whose oracles lack only the honoured requests: here they also lack the
rest of the block (10% of the training set), for the honest retrain and the oracles alike, so the
honest retrain is exchangeable with the oracles as the verdict assumes. A trial draws a block, a
request of n samples from it, K = 4 oracles and one honest retrain (distinct seeds from the
block's pool) and one do-nothing model; both models are judged against the same oracles. At
n = block size the request is the whole block, so trials differ only in the models drawn.

    .venv/bin/python benchmarks/verdict_error_rates.py                     # sizes 1 10 40 400, 200 trials each
    .venv/bin/python benchmarks/verdict_error_rates.py --trials 50 --json rates.json
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from unlearn import data, training
from unlearn.bank import ModelBank
from unlearn.requests.verify import CONSISTENT, DEFAULT_THRESHOLDS, N_ORACLES, NOT_CONSISTENT, assess


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a rate k/n, in percent."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100 * (centre - half), 100 * (centre + half)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 40, 400])
    parser.add_argument("--trials", type=int, default=200, help="trials per request size")
    parser.add_argument("--blocks", type=int, default=3, help="disjoint blocks of training samples")
    parser.add_argument("--block", type=int, default=400, help="samples per block (>= the largest size)")
    parser.add_argument("--pool", type=int, default=6, help="models retrained without each block (> K = 4)")
    parser.add_argument("--full", type=int, default=3, help="do-nothing models (trained on everything)")
    parser.add_argument("--n-reference", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write every trial's outcome here")
    args = parser.parse_args()
    if max(args.sizes) > args.block or args.pool <= N_ORACLES:
        parser.error("every size must fit in a block, and the pool must exceed the 4 oracles")
    torch.set_num_threads(1)
    ds = data.load("mnist1d")
    arch, arch_args = training.DEFAULT_ARCH["mnist1d"]
    recipe = training.default_recipe(ds.name)
    bank = ModelBank()
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(ds.train))
    blocks = [np.sort(order[b * args.block:(b + 1) * args.block]) for b in range(args.blocks)]
    start = time.perf_counter()

    def get(indices, seed):
        return bank.get(ds, arch, indices, recipe, seed=seed, arch_args=arch_args, progress=False)

    full = [get(None, 100 + s) for s in range(args.full)]
    pools = [[get(np.setdiff1d(np.arange(len(ds.train)), block), 1 + s) for s in range(args.pool)]
             for block in blocks]
    print(f"models ready in {time.perf_counter() - start:.0f} s ({bank.trained} trained now)", flush=True)
    evaluation = data.split_holdout(ds.test.y.numpy(), seed=0)[1]
    outcomes = []
    for size in args.sizes:
        for trial in range(args.trials):
            b = int(rng.integers(args.blocks))
            request = np.sort(rng.choice(blocks[b], size, replace=False))
            drawn = rng.choice(args.pool, N_ORACLES + 1, replace=False)
            oracles, honest = [pools[b][k] for k in drawn[:N_ORACLES]], pools[b][drawn[-1]]
            nothing = full[int(rng.integers(args.full))]
            row = {"size": size, "trial": trial, "block": b}
            for name, model in (("honest", honest), ("nothing", nothing)):
                # seed 0, as `verify` by default: the same RMIA reference models (and relearning split rule) every trial
                judged = assess(model, oracles, ds, request, evaluation, bank=bank, thresholds=DEFAULT_THRESHOLDS,
                                n_reference=args.n_reference, seed=0)
                row[name] = judged["verdict"]
                row[f"{name}_checks"] = {c: v["result"] for c, v in judged["checks"].items()}
            outcomes.append(row)
        print(f"size {size} done at {time.perf_counter() - start:.0f} s", flush=True)

    print(f"\nmnist1d MLP (recipe {recipe}), K = {N_ORACLES} oracles, tolerances {DEFAULT_THRESHOLDS}, "
          f"{args.trials} trials per size, {args.blocks} blocks of {args.block}\n")
    print("| request size | do-nothing: consistent (false pass) | inconclusive | not consistent "
          "| honest retrain: not consistent (false fail) | inconclusive | consistent |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in args.sizes:
        rows = [o for o in outcomes if o["size"] == size]
        n = len(rows)

        def rate(name, verdict, rows=rows, n=n):
            k = sum(o[name] == verdict for o in rows)
            low, high = wilson(k, n)
            return f"{100 * k / n:.1f}% [{low:.1f}, {high:.1f}]"

        inconclusive = "inconclusive"
        print(f"| {size} | {rate('nothing', CONSISTENT)} | {rate('nothing', inconclusive)} | "
              f"{rate('nothing', NOT_CONSISTENT)} | {rate('honest', NOT_CONSISTENT)} | "
              f"{rate('honest', inconclusive)} | {rate('honest', CONSISTENT)} |")
    print(f"\n(95% Wilson intervals in brackets; {time.perf_counter() - start:.0f} s in all)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(outcomes, f, indent=1)


if __name__ == "__main__":
    main()
