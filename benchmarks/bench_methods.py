"""Every baseline on `digits` against Retrain: audit figures over seeds, and cost relative to retraining.

Protocol (BENCHMARKS.md, scale 1): digits, MLP 256-256, recipe "digits", 10% random forget set;
for each seed s the original model is trained with seed s, the forget set drawn with seed s, and
Retrain is trained *in this run* (not served from the bank) so that every method's wall time can
be divided by a retraining time measured on the same machine in the same process. Each method
runs with its documented defaults (the papers' CIFAR-10 settings, untuned for digits; override
with --set method.key=value), with D_R and, where allowed, without it. Every model is audited with
`unlearn.audit.evaluate` (accuracies, MIS, loss MIA, RMIA) against that seed's retrained model,
which gives the Avg. Gap. SISA (k = 5 shards, r = 4 slices) trains its own ensemble on D and then
deletes D_F; its time is the deletion alone, and its training cost saved is reported too.

    .venv/bin/python benchmarks/bench_methods.py                       # 3 seeds, prints the tables
    .venv/bin/python benchmarks/bench_methods.py --seeds 0 --json out.json --set ga.lr=0.1

Measured (2 shared CPU cores, torch 2.13, 1 thread, load ~5 from other jobs; 130 s in all, seeds 0-2):
Retrain 1.8 s, Avg. Gap of the untouched original 1.90. With D_R, Avg. Gap / time as a fraction of
retraining: FT 1.80 / 0.22, RL 4.05 / 0.26, GA 1.89 / 0.02, NegGrad+ 1.76 / 0.33, BS 1.83 / 0.28,
l1-sparse 1.91 / 0.31, SalUn 3.80 / 0.38, SCRUB 1.88 / 0.12, SISA 2.18 / 1.23 (a 10% deletion hits
every shard's first slice, so nothing is saved; one point per request retrains 15% of the ensemble).
The papers' CIFAR-10 learning rates barely move GA, BS, SCRUB on digits (their rows equal the original);
RL and SalUn without D_R collapse (Avg. Gap 38.5, 35.2).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from unlearn import audit, data, methods
from unlearn.bank import ModelBank

WITH_RETAIN = ["ft", "rl", "ga", "neggrad+", "bs", "l1-sparse", "salun", "scrub", "sisa"]
WITHOUT_RETAIN = ["rl", "ga", "neggrad+", "bs", "salun", "scrub"]
COLUMNS = ["acc.forget", "acc.retain", "acc.test", "mis.mis", "loss.auc", "rmia.auc", "gap.gap-rmia"]


def parse_overrides(pairs: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        method, name = key.split(".", 1)
        out.setdefault(method, {})[name] = yaml.safe_load(value)
    return out


def run_seed(seed: int, ds, bank: ModelBank, overrides: dict, n_reference: int) -> list[dict]:
    split = data.random_forget(len(ds.train), fraction=0.1, seed=seed)
    forget, retain = ds.train.subset(split.forget), ds.train.subset(split.retain)
    original = bank.get(ds, "mlp", None, seed=seed, progress=False)
    start = time.perf_counter()
    retrained = methods.get("retrain").unlearn(original, forget, retain, seed=seed)  # trained here, timed
    retrain_seconds = time.perf_counter() - start

    def evaluate(model, reference):
        return audit.flatten(audit.evaluate(model, ds, split, attacks=("acc", "mis", "loss", "rmia"),
                                            reference=reference, bank=bank, n_reference=n_reference, seed=seed))

    reference = audit.evaluate(retrained, ds, split, attacks=("acc", "mis", "loss", "rmia"), bank=bank,
                               n_reference=n_reference, seed=seed)
    rows = [{"method": "retrain", "retain": True, "seed": seed, "seconds": retrain_seconds, "time_fraction": 1.0,
             **evaluate(retrained, reference)}]
    rows.append({"method": "original", "retain": True, "seed": seed, "seconds": 0.0, "time_fraction": 0.0,
                 **evaluate(original, reference)})
    jobs = [(name, True) for name in WITH_RETAIN] + [(name, False) for name in WITHOUT_RETAIN]
    for name, with_retain in jobs:
        method = methods.get(name, **overrides.get(name, {}))
        start = time.perf_counter()
        model = method.unlearn(original, forget, retain if with_retain else None, seed=seed,
                               dataset=ds, split=split)
        seconds = time.perf_counter() - start
        row = {"method": name, "retain": with_retain, "seed": seed, **evaluate(model, reference)}
        if name == "sisa":  # exact: time and cost of the deletion itself, not of training the ensemble
            seconds = method.stats_["deletion"]["seconds"]
            row["sisa_cost_saved"] = method.stats_["deletion"]["cost_saved"]
            row["sisa_fit_seconds"] = method.stats_["fit_seconds"]
        row.update(seconds=seconds, time_fraction=seconds / retrain_seconds)
        rows.append(row)
        print(f"seed {seed}: {name:10s} {'with' if with_retain else 'w/o '} D_R  {seconds:6.2f} s  "
              f"gap {row.get('gap.gap-rmia', float('nan')):6.2f}", file=sys.stderr)
    return rows


def single_deletions(ds, seed: int, requests: int = 10) -> dict:
    """SISA's cost when deletion requests arrive one point at a time (its intended use)."""
    from unlearn.methods.sisa import SISA
    from unlearn.training import train

    start = time.perf_counter()
    train("mlp", ds, None, "digits", seed=seed, progress=False)
    retrain_seconds = time.perf_counter() - start
    sisa = SISA("mlp", shards=5, slices=4, seed=seed).fit(ds)
    points = np.random.default_rng(seed).choice(len(ds.train), size=requests, replace=False)
    records = [sisa.delete([p]) for p in points]
    return {"fractions": [r["fraction_of_full_retrain"] for r in records],
            "seconds": [r["seconds"] for r in records], "retrain_seconds": retrain_seconds}


def summarise(rows: list[dict]) -> str:
    order = []
    for r in rows:
        if (r["method"], r["retain"]) not in order:
            order.append((r["method"], r["retain"]))
    head = "| method | D_R | " + " | ".join(COLUMNS) + " | time (s) | time / retrain |"
    lines = [head, "|" + " --- |" * (len(COLUMNS) + 4)]
    for name, with_retain in order:
        group = [r for r in rows if r["method"] == name and r["retain"] == with_retain]
        cells = []
        for col in COLUMNS + ["seconds", "time_fraction"]:
            values = np.array([r.get(col, np.nan) for r in group], dtype=float)
            cells.append(f"{values.mean():.2f} ± {values.std():.2f}" if col != "time_fraction"
                         else f"{values.mean():.3f} ± {values.std():.3f}")
        lines.append(f"| {name} | {'yes' if with_retain else 'no'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-reference", type=int, default=8, help="RMIA reference models")
    parser.add_argument("--bank", type=Path, default=None, help="model bank (default: a fresh temporary one)")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="method.key=value override")
    parser.add_argument("--json", type=Path, default=None, help="also write every row here")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the benchmark machine is shared; one thread keeps timings comparable
    ds = data.load("digits")
    overrides = parse_overrides(args.sets)
    with tempfile.TemporaryDirectory() as tmp:
        bank = ModelBank(args.bank or tmp)
        start = time.perf_counter()
        rows = [row for seed in args.seeds for row in run_seed(seed, ds, bank, overrides, args.n_reference)]
        total = time.perf_counter() - start
    sisa = [r for r in rows if r["method"] == "sisa"]
    print(f"digits, MLP, 10% random forget, seeds {args.seeds}, {args.n_reference} RMIA reference models; "
          f"mean ± std over seeds; figures in percent; time / retrain measured in this run "
          f"(torch {torch.__version__}, {platform.machine()}, 1 thread, total {total:.0f} s)\n")
    print(summarise(rows))
    if sisa:
        saved = np.array([r["sisa_cost_saved"] for r in sisa])
        print(f"\nSISA (5 shards x 4 slices): deleting D_F ({len(data.random_forget(len(ds.train), 0.1).forget)} "
              f"points) retrained {100 * (1 - saved.mean()):.1f}% of the ensemble's training cost "
              f"(samples x epochs); saved {100 * saved.mean():.1f} ± {100 * saved.std():.1f}%.")
    single = single_deletions(ds, seed=args.seeds[0])
    print(f"\nSISA, one point per request ({len(single['fractions'])} successive requests, seed {args.seeds[0]}): "
          f"retrained {100 * np.mean(single['fractions']):.1f} ± {100 * np.std(single['fractions']):.1f}% of the "
          f"ensemble's cost per request, {np.mean(single['seconds']):.2f} s each = "
          f"{np.mean(single['seconds']) / single['retrain_seconds']:.3f} of retraining one model "
          f"({single['retrain_seconds']:.2f} s).")
    if args.json:
        args.json.write_text(json.dumps({"seeds": args.seeds, "overrides": overrides, "rows": rows}, indent=1,
                                        default=float))


if __name__ == "__main__":
    main()
