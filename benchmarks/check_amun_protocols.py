"""AMUN and AMUN+SalUn on every shipped protocol's hyperparameters, in both settings.

A completion check, not a benchmark: for every `configs/*.yaml` that lists `amun` or `amun-salun`,
run the method with that protocol's hyperparameters (epochs cut to `--epochs` to keep it short)
with and without D_R, on a real model of the protocol's data set (`digits`, `mnist1d`: the data
sets' default MLPs; CIFAR-10: a small CNN trained briefly on 2,000 images, a real but quick
stand-in for the protocol's model). The same runs follow on an over-trained copy of each model
(last layer scaled until every forget sample's logit margin is at least 55), where the softmax
saturates. Prints one line per run: adversarial examples found, calibration rate, seconds.

    .venv/bin/python benchmarks/check_amun_protocols.py --cifar ../shared/data/cifar10-jpg.tar.gz
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from unlearn import data, methods, models
from unlearn.bank import ModelBank
from unlearn.experiments.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def saturated(model, forget, margin=55.0):
    top = models.logits(model, forget.x).topk(2, dim=1).values
    over = copy.deepcopy(model)
    last = [m for m in over.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        for p in last.parameters():
            p.mul_(margin / float((top[:, 0] - top[:, 1]).clamp_min(1e-3).min()))
    return over


def setup(name: str, cifar: Path | None, bank):
    if name == "cifar10":
        ds = data.load("cifar10", root=cifar, progress=False)
        subset = np.sort(np.random.default_rng(0).permutation(len(ds.train))[:2000])
        recipe = {"lr": 0.05, "epochs": 5, "batch_size": 128, "schedule": "onecycle", "weight_decay": 5e-4,
                  "flip": True}
        model = bank.get(ds, "cnn", subset, recipe=recipe, seed=0, arch_args={"width": 8}, progress=False)
    else:
        ds = data.load(name)
        subset = np.arange(len(ds.train))
        model = bank.get(ds, "mlp", None, seed=0, progress=False)
    forget_idx = np.sort(np.random.default_rng(1).choice(subset, size=min(200, len(subset) // 10), replace=False))
    retain_idx = np.setdiff1d(subset, forget_idx)
    return model, ds.train.subset(forget_idx), ds.train.subset(retain_idx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar", type=Path, default=None, help="CIFAR-10 copy, for the CIFAR-10 protocols")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = []
    for path in sorted(CONFIGS.glob("*.yaml")):
        config = load_config(path)
        for name, hparams in config.methods.items():
            if name in ("amun", "amun-salun"):
                runs.append((path.name, config.dataset, name, dict(hparams or {})))
    runs += [("(mnist1d, defaults)", "mnist1d", name, {}) for name in ("amun", "amun-salun")]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        bank = ModelBank(tmp)
        for source, dataset, name, hparams in runs:
            if dataset == "cifar10" and args.cifar is None:
                print(f"{source} {name}: skipped (no --cifar)")
                continue
            model, forget, retain = setup(dataset, args.cifar, bank)
            for label, subject in (("model", model), ("over-trained", saturated(model, forget))):
                for kept in (retain, None):
                    method = methods.get(name, **{**hparams, "epochs": args.epochs})
                    start = time.perf_counter()
                    try:
                        method.unlearn(subject, forget, kept, seed=0)
                    except Exception as error:  # report every failure, then exit non-zero
                        failures += 1
                        print(f"{source} {name} {label} {'with' if kept is not None else 'w/o'} D_R: FAILED {error}")
                        continue
                    adv = method.stats_["adversarial"]
                    print(f"{source} {name} on {dataset} {label} {'with' if kept is not None else 'w/o'} D_R: "
                          f"{adv['n_found']}/{adv['n']} examples, calibration rate {adv['calibration_rate']:.0f}%, "
                          f"ε_init {adv['epsilon_init']:.3g}, {time.perf_counter() - start:.1f} s", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
