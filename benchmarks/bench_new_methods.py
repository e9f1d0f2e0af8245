"""Issue 18's methods on `mnist1d`: their cost, the Fisher's two routes, and certified removal's budget.

Protocol: mnist1d, MLP 40-256-256-10, recipe "mnist1d", seed 0, 10% random forget set (seed 0),
the original model from the bank. Prints
1. the diagonal Fisher of D_R by the Linear-layer shortcut and by vmapped per-sample gradients
   (after one warm-up call, so functorch's first-use import is not counted), and their largest
   relative difference;
2. each method's wall time at its defaults (certified at the demo's λ = 1e-4, σ = 0.1) and what it
   reports in `stats_`;
3. for certified removal, the data-dependent bound of removing m points at once against the
   budget σε/c: why a 10% forget set takes the retrain branch on a data set of this size.

    .venv/bin/python benchmarks/bench_new_methods.py

Measured (2 shared cores, torch 2.13, 1 thread, load average 13 from other jobs, one run):
Fisher of D_R (3,600 samples) 1.28 s by the shortcut, 60.4 s by per-sample vmap, largest relative
difference 3.4e-7; certified 9.2 s (it retrained: bound 183 for the 400 points against a budget
of 0.0228), fisher 0.9 s, ssd 0.3 s, bad-teacher 0.2 s; the bound of removing 1 / 10 / 100 / 400
points at once: 1.09 / 5.73 / 43.1 / 183, so even one removal exceeds the budget at this size.
"""

from __future__ import annotations

import time

import torch

from unlearn import data, methods
from unlearn.bank import ModelBank
from unlearn.methods import certified
from unlearn.methods.fisher import fisher_diagonal


def main() -> None:
    torch.set_num_threads(1)
    ds = data.load("mnist1d")
    model = ModelBank().get(ds, "mlp", None, seed=0, progress=False)
    split = data.random_forget(len(ds.train), fraction=0.1, seed=0)
    forget, retain = ds.train.subset(split.forget), ds.train.subset(split.retain)
    cpu = torch.device("cpu")

    fisher_diagonal(model, retain.subset(range(8)), cpu, linear_shortcut=False)  # warm-up (imports)
    t = time.perf_counter()
    fast = fisher_diagonal(model, retain, cpu)
    t_fast = time.perf_counter() - t
    t = time.perf_counter()
    slow = fisher_diagonal(model, retain, cpu, linear_shortcut=False)
    t_slow = time.perf_counter() - t
    worst = max(float((fast[k] - slow[k]).abs().max() / slow[k].abs().max()) for k in slow)
    print(f"Fisher of D_R ({len(retain)} samples): shortcut {t_fast:.2f} s, per-sample vmap {t_slow:.2f} s, "
          f"largest relative difference {worst:.1e}")

    settings = {"certified": {"lam": 1e-4, "sigma": 0.1}, "fisher": {}, "ssd": {}, "bad-teacher": {}}
    for name, hparams in settings.items():
        method = methods.get(name, **hparams)
        t = time.perf_counter()
        method.unlearn(model, forget, retain, seed=0)
        print(f"{name:12s} {time.perf_counter() - t:6.2f} s  {getattr(method, 'stats_', {})}")

    lam, sigma = 1e-4, 0.1
    _, features = certified.head_features(model, ds.train, cpu)
    X = features / features.norm(dim=1).max()
    Y = certified.one_vs_rest(ds.train.y, 10)
    b = certified.perturbation((X.shape[1], 10), sigma, torch.Generator().manual_seed(0))
    W, _ = certified.fit_perturbed(X, Y, lam, b)
    order = torch.as_tensor(split.forget)
    print(f"certified, λ = {lam}, σ = {sigma}: budget σε/c = {certified.removal_budget(1.0, 1e-4, sigma):.3g}")
    for m in (1, 10, 100, len(order)):
        keep = torch.ones(len(X), dtype=torch.bool)
        keep[order[:m]] = False
        _, bound = certified.newton_removal(W, X[keep], Y[keep], X[~keep], Y[~keep], lam)
        print(f"  removing {m:4d} at once: bound {float(bound.sum()):.3g}")


if __name__ == "__main__":
    main()
