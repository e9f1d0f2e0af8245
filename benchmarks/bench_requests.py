"""Five successive deletion requests through the request ledger: AMUN-A vs plain AMUN vs Retrain.

One ledger, one base model, three branches from it. Requests arrive one after another; after each
arrives, every branch's current model honours it (`unlearn.requests.apply_requests`, successive)
and is verified on it (`verify_request`, against the model retrained without every request so
far, from the bank). Per request and branch: seconds to honour it, the certificate's Avg. Gap to
the retrained model on the request's samples (forget / retain / test accuracy and RMIA AUC), the
accuracy gap on everything deleted so far (AMUN's successive-setting figure), and the verdict.

- AMUN-A: `amun` (adaptive: adversarial examples searched on the current model);
- plain AMUN: `amun` with `adaptive=False` (the base model's adversarial examples every time);
- Retrain: `retrain` through the bank (the oracle itself: its gap is 0 by construction; its
  seconds are the bank's record of the retraining, what honouring a request costs that way).

    .venv/bin/python benchmarks/bench_requests.py                       # mnist1d, 5 x 40 samples
    .venv/bin/python benchmarks/bench_requests.py --size 20 --epochs 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from unlearn import data, models, training
from unlearn.bank import ModelBank
from unlearn.cli.common import parse_sets
from unlearn.requests import Ledger, apply_requests, init_ledger, verify_request

BRANCHES = {"AMUN-A": ("amun", {}), "AMUN (plain)": ("amun", {"adaptive": False}), "Retrain": ("retrain", {})}


def retrain_seconds(bank, ds, base: dict, deleted: np.ndarray) -> float:
    """What retraining without `deleted` took when the bank trained it (Retrain is served from there)."""
    keep = np.setdiff1d(np.arange(len(ds.train)), deleted)
    return bank.get_with_time(ds, base["arch"], keep, base["recipe"], seed=base["seed"], arch_args=base["arch_args"],
                              progress=False)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--size", type=int, default=40, help="samples per request")
    parser.add_argument("--epochs", type=int, default=10, help="AMUN's fine-tuning epochs")
    parser.add_argument("--lr", type=float, default=0.01, help="AMUN's learning rate")
    parser.add_argument("--amun-set", action="append", default=[], help="another AMUN hyperparameter key=value "
                                                                         "(e.g. with_forget=false), repeatable")
    parser.add_argument("--n-reference", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="seed of the requests' random draw")
    parser.add_argument("--bank", default=None, help="model bank (default: $UNLEARN_BANK)")
    parser.add_argument("--json", default=None, help="also write every row as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    amun_extra = parse_sets(args.amun_set)

    ds = data.load(args.dataset)
    bank = ModelBank(args.bank)
    arch = training.DEFAULT_ARCH.get(ds.name, ("mlp", {}))[0]
    work = Path(tempfile.mkdtemp(prefix="bench-requests-"))
    base_file = models.save_model(bank.get(ds, arch, None, seed=0, progress=False), work / "base.safetensors")
    ledger = Ledger(work / "requests.sqlite")
    base = init_ledger(ledger, base_file, args.dataset)
    order = np.random.default_rng(args.seed).permutation(len(ds.train))
    current = dict.fromkeys(BRANCHES, base_file)
    rows = []
    for k in range(1, args.requests + 1):
        ledger.add_request(order[(k - 1) * args.size:k * args.size], len(ds.train), "benchmark", "bench")
        for branch, (method, extra) in BRANCHES.items():
            hparams = {**extra, **amun_extra, "epochs": args.epochs, "lr": args.lr} if method == "amun" else extra
            out = work / f"{branch.split()[0].lower()}-{k}.safetensors"
            start = time.perf_counter()
            [step] = apply_requests(ledger, current[branch], method, out, hyperparameters=hparams, bank=bank)
            wall = time.perf_counter() - start
            certificate = verify_request(ledger, k, out, n_reference=args.n_reference, bank=bank)
            seconds = (retrain_seconds(bank, ds, base, order[:k * args.size]) if method == "retrain"
                       else step["seconds"])
            rows.append({"request": k, "branch": branch, "seconds": seconds, "wall_seconds": wall,
                         "avg_gap": certificate["gap_to_retrained"]["gap-rmia"],
                         "forget_acc": certificate["figures"]["model"]["acc"]["forget"],
                         "retrained_forget_acc": certificate["figures"]["retrained"]["acc"]["forget"],
                         "all_deleted_gap": certificate["all_deleted_accuracy_gap"]["avg_gap"],
                         "verdict": certificate["verdict"]})
            current[branch] = out
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{args.dataset}, {args.requests} successive requests of {args.size} samples, AMUN epochs {args.epochs} "
          f"lr {args.lr} {amun_extra or ''}, {args.n_reference} RMIA reference models, request seed {args.seed}, "
          "1 torch thread\n")
    print("| request | branch | seconds | Avg. Gap (request) | FA / retrained FA | acc. gap (all deleted) | verdict |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['request']} | {r['branch']} | {r['seconds']:.1f} | {r['avg_gap']:.2f} | "
              f"{r['forget_acc']:.1f} / {r['retrained_forget_acc']:.1f} | {r['all_deleted_gap']:.2f} | {r['verdict']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
