"""AMUN on `digits`: adversarial-set cost, time against retraining, the Fig. 2 observation, Avg. Gap.

Four measurements in one process (1 torch thread; the machine is shared):
1. **Adversarial-set throughput**: `closest_adversarial` (L2, 50 steps, early exit, ε doubling,
   ε_init calibrated on 100 samples) on the forget set and on the whole training set: samples/s,
   success rate, cost in PGD passes (search alone and with calibration), and how close x_adv is
   compared with the nearest training sample of another class.
2. **Fig. 2** (the paper's motivating observation): fine-tune θ_o on D_F ∪ D_A labelled y_adv, and
   on the same inputs with random wrong labels instead; test accuracy after each.
3. **Avg. Gap to Retrain** over seeds (BENCHMARKS.md scale 1: MLP, recipe "digits", 10% random
   forget): FT, RL, GA and AMUN (paper mix D_R ∪ D_F ∪ D_A; and its option without D_F), with and
   without D_R. As in the paper, each method's lr (and AMUN's decay period k) is tuned first on a
   *separate* forget set (original seed 0, forget-set seed 1000) by Avg. Gap over forget / retain /
   test accuracy and MIS; the chosen settings are then run on the evaluation seeds, where each
   seed s has its own original model, forget set and retrained model (trained in this run, so every
   method's wall time is divided by a retraining time measured in the same run). Audits:
   `unlearn.audit.evaluate` (accuracies, MIS, RMIA with `--n-reference` reference models).
4. **AMUN + SalUn** and the successive-request variants (AMUN-A vs reusing θ_o's examples) at
   the tuned AMUN settings, on the same seeds.
6. With `--sweep`: why AMUN does (not) beat the baselines here: AMUN with D_R over lr × epochs ×
   ε_init on the evaluation seeds (accuracies + MIS), with the mean true-class confidence on D_F
   next to the retrained model's. A diagnostic, not a selection: selection is part 3's tuning.
5. With `--cifar PATH` (optional, a few minutes): CIFAR-10 (JPEG q75 copy), small CNN (width 16)
   on a 5,000-image training subset, 10% of it forgotten: the adversarial search's figures, and
   FT / RL / GA / AMUN, each at the same two learning rates (no tuning split: CPU time; flip
   augmentation as in training), against Retrain on accuracies and MIS over the seeds,
   D_T = 4,500 random test images (as many as D_R) (no RMIA: its reference models would each
   train on half of the 60,000-image pool).

    .venv/bin/python benchmarks/bench_amun.py                    # 3 seeds, about 10 minutes here
    .venv/bin/python benchmarks/bench_amun.py --seeds 0 --n-reference 4 --skip-tuning
    .venv/bin/python benchmarks/bench_amun.py --cifar ../shared/data/cifar10-jpg.tar.gz --only-cifar
7. With `--closest DATASET` (`cifar10` with `--cifar PATH`, or `mnist1d`, `digits`): the closest-
   example search alone, on one model and the same 500 training images: the public code's
   setting (ε_init fixed at 0.04, no refinement), the paper's calibrated ε_init, and either of
   them followed by the bisection refinement (the default). Mean / median ‖δ‖₂, success rate and
   wall time, each configuration timed `--repeats` times interleaved (the minimum is reported).

    .venv/bin/python benchmarks/bench_amun.py --closest cifar10 --cifar ../shared/data/cifar10-jpg.tar.gz
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from unlearn import audit, data, methods, models
from unlearn.attacks import closest_adversarial
from unlearn.bank import ModelBank
from unlearn.methods.amun import unlearn_successively
from unlearn.methods.shared import finetune, finetune_recipe, random_wrong_labels
from unlearn.training import Source

LRS = [1e-1, 5e-2, 1e-2, 5e-3, 1e-3, 1e-4, 1e-5]  # the paper's grid, for every method alike
# (row label, method, fixed hyperparameters, with D_R, grid of tuned hyperparameters)
GRID = [
    ("ft", "ft", {}, True, [{"lr": lr} for lr in LRS]),
    ("rl", "rl", {}, True, [{"lr": lr} for lr in LRS]),
    ("amun", "amun", {}, True, [{"lr": lr, "step_size": k} for lr in LRS for k in (1, 5, 10)]),
    ("amun w/o D_F", "amun", {"with_forget": False}, True,
     [{"lr": lr, "step_size": k} for lr in LRS for k in (1, 5, 10)]),
    ("rl", "rl", {}, False, [{"lr": lr} for lr in LRS]),
    ("ga", "ga", {}, False, [{"lr": lr} for lr in LRS]),
    ("amun", "amun", {}, False, [{"lr": lr, "step_size": k} for lr in LRS for k in (1, 5, 10)]),
    ("amun w/o D_F", "amun", {"with_forget": False}, False,
     [{"lr": lr, "step_size": k} for lr in LRS for k in (1, 5, 10)]),
]
GAP_KEYS = ("acc.forget", "acc.retain", "acc.test", "mis.mis")
RMIA_GAP_KEYS = ("acc.forget", "acc.retain", "acc.test", "rmia.auc")  # the paper's Avg. Gap
COLUMNS = ["acc.forget", "acc.retain", "acc.test", "mis.mis", "rmia.auc", "gap", "gap_rmia"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def mean_std(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.2f} ± {v.std():.2f}"


def throughput(ds, bank) -> list[str]:
    original = bank.get(ds, "mlp", None, seed=0, progress=False)
    split = data.random_forget(len(ds.train), fraction=0.1, seed=0)
    lines = ["| set | n | ε_init | success % | median ‖δ‖₂ | ‖δ‖₂ / nearest other-class sample | "
             "samples/s | PGD passes (search) | PGD passes (with calibration) |", "|" + " --- |" * 9]
    train_x = ds.train.inputs().flatten(1)
    for name, index in (("D_F (10%)", split.forget), ("all of D", np.arange(len(ds.train)))):
        subset = ds.train.subset(index)
        start = time.perf_counter()
        adv = closest_adversarial(original, subset.x, subset.y)
        seconds = time.perf_counter() - start
        dist = torch.cdist(subset.inputs().flatten(1), train_x)
        dist[ds.train.y[None, :] == subset.y[:, None]] = float("inf")
        ratio = (adv.distance / dist.min(1).values)[adv.success].median()
        search = (adv.sample_steps - adv.calibration_steps) / (len(adv) * adv.steps)
        lines.append(f"| {name} | {len(adv)} | {adv.epsilon_init:.3f} | {100 * adv.success_rate:.1f} | "
                     f"{adv.distance[adv.success].median():.3f} | {ratio:.2f} | {len(adv) / seconds:.0f} | "
                     f"{search:.2f} | {adv.pgd_passes:.2f} |")
        assert bool((adv.y_adv[adv.success] != subset.y[adv.success]).all())
        assert bool((adv.distance <= adv.epsilon * (1 + 1e-5)).all())
    return lines


def figure2(ds, bank, seeds) -> list[str]:
    lines = ["| lr | θ_o test acc | D_F ∪ D_A, y_adv | D_F ∪ D_A, random wrong labels | D_F, random labels (RL w/o D_R) |",
             "|" + " --- |" * 5]
    results: dict[float, list] = {}
    for seed in seeds:
        original = bank.get(ds, "mlp", None, seed=seed, progress=False)
        split = data.random_forget(len(ds.train), fraction=0.1, seed=seed)
        forget = ds.train.subset(split.forget)
        d_a = closest_adversarial(original, forget.x, forget.y, seed=seed).dataset()
        base = models.accuracy(original, ds.test)
        wrong = random_wrong_labels(ds.num_classes)
        for lr in (0.01, 0.05, 0.1):
            recipe = finetune_recipe(lr, epochs=10)
            mixes = [[Source(forget), Source(d_a, augment=False)],
                     [Source(forget), Source(d_a, augment=False, relabel=wrong)],
                     [Source(forget, relabel=wrong)]]
            accs = [models.accuracy(finetune(copy.deepcopy(original), mix, recipe, seed=seed, device="cpu",
                                             name="fig2"), ds.test) for mix in mixes]
            results.setdefault(lr, []).append([base] + accs)
    for lr, rows in results.items():
        cols = np.array(rows).T
        lines.append(f"| {lr} | " + " | ".join(mean_std(c) for c in cols) + " |")
    return lines


def evaluate(model, ds, split, reference, bank, seed, n_reference, attacks, evaluation=None) -> dict:
    """Flat audit figures plus the Avg. Gap over accuracies + MIS ("gap") and + RMIA AUC ("gap_rmia")."""
    metrics = audit.evaluate(model, ds, split, attacks=attacks, bank=bank, n_reference=n_reference, seed=seed,
                             evaluation=evaluation)
    flat = audit.flatten(metrics)
    flat["gap"] = audit.avg_gap(metrics, reference, GAP_KEYS)["avg_gap"]
    if "rmia" in attacks:
        flat["gap_rmia"] = audit.avg_gap(metrics, reference, RMIA_GAP_KEYS)["avg_gap"]
    return flat


def tune(ds, bank) -> dict[tuple[str, bool], dict]:
    """Each method's best grid point by Avg. Gap (accuracies + MIS) on a separate forget set."""
    original = bank.get(ds, "mlp", None, seed=0, progress=False)
    split = data.random_forget(len(ds.train), fraction=0.1, seed=1000)
    forget, retain = ds.train.subset(split.forget), ds.train.subset(split.retain)
    retrained = bank.get(ds, "mlp", split.retain, seed=0, progress=False)
    reference = audit.evaluate(retrained, ds, split, attacks=("acc", "mis"), bank=bank, seed=0)
    chosen = {}
    for label, name, fixed, with_retain, grid in GRID:
        scored = []
        for point in grid:
            try:
                model = methods.get(name, **fixed, **point).unlearn(original, forget, retain if with_retain else None,
                                                                     seed=0)
                gap = evaluate(model, ds, split, reference, bank, 0, 0, ("acc", "mis"))["gap"]
            except Exception as err:  # noqa: BLE001  a diverging grid point is just a bad one
                log(f"tuning {label}: {point} failed ({err})")
                gap = float("inf")
            scored.append((gap, point))
        gap, best = min(scored, key=lambda s: s[0])
        chosen[(label, with_retain)] = {"method": name, **fixed, **best}
        log(f"tuned {label:13s} {'with' if with_retain else 'w/o '} D_R: {best} (tuning-set gap {gap:.2f})")
    return chosen


def run_seed(seed, ds, bank, chosen, n_reference) -> list[dict]:
    attacks = ("acc", "mis", "rmia")
    split = data.random_forget(len(ds.train), fraction=0.1, seed=seed)
    forget, retain = ds.train.subset(split.forget), ds.train.subset(split.retain)
    original = bank.get(ds, "mlp", None, seed=seed, progress=False)
    start = time.perf_counter()
    retrained = methods.get("retrain").unlearn(original, forget, retain, seed=seed)  # trained here, timed
    retrain_seconds = time.perf_counter() - start
    reference = audit.evaluate(retrained, ds, split, attacks=attacks, bank=bank, n_reference=n_reference, seed=seed)
    rows = [{"label": "retrain", "retain": True, "seed": seed, "seconds": retrain_seconds, "fraction": 1.0,
             **evaluate(retrained, ds, split, reference, bank, seed, n_reference, attacks)},
            {"label": "original", "retain": True, "seed": seed, "seconds": 0.0, "fraction": 0.0,
             **evaluate(original, ds, split, reference, bank, seed, n_reference, attacks)}]
    jobs = list(chosen.items())
    amun_r = {k: v for k, v in chosen[("amun", True)].items() if k != "method"}
    jobs.append((("amun-salun", True), {"method": "amun-salun", **amun_r}))
    for (label, with_retain), params in jobs:
        params = dict(params)
        method = methods.get(params.pop("method"), **params)
        start = time.perf_counter()
        model = method.unlearn(original, forget, retain if with_retain else None, seed=seed)
        seconds = time.perf_counter() - start
        row = {"label": label, "retain": with_retain, "seed": seed, "seconds": seconds,
               "fraction": seconds / retrain_seconds, "params": params,
               **evaluate(model, ds, split, reference, bank, seed, n_reference, attacks)}
        if hasattr(method, "stats_"):
            row["adversarial"] = method.stats_["adversarial"]
        rows.append(row)
        log(f"seed {seed}: {label:13s} {'with' if with_retain else 'w/o '} D_R {seconds:5.2f} s "
            f"gap {row['gap']:.2f} gap(RMIA) {row.get('gap_rmia', float('nan')):.2f}")
    return rows


def successive(ds, bank, chosen, seeds, requests: int = 5) -> list[str]:
    """5 requests of 2% each (the paper's continual setting, scaled): AMUN-A vs θ_o's examples."""
    params = {k: v for k, v in chosen[("amun", True)].items() if k != "method"}
    lines = ["| variant | forget acc (all deleted) | test acc | MIS | Avg. Gap (acc + MIS) after the last request |",
             "|" + " --- |" * 5]
    results: dict[str, list] = {}
    for seed in seeds:
        original = bank.get(ds, "mlp", None, seed=seed, progress=False)
        order = np.random.default_rng(seed).permutation(len(ds.train))
        size = int(0.02 * len(ds.train))
        batches = [order[k * size:(k + 1) * size] for k in range(requests)]
        deleted = np.concatenate(batches)
        split = data.ForgetSplit.from_forget(deleted, len(ds.train))
        retrained = bank.get(ds, "mlp", split.retain, seed=seed, progress=False)
        reference = audit.evaluate(retrained, ds, split, attacks=("acc", "mis"), bank=bank, seed=seed)
        for variant, adaptive in (("AMUN-A (D_A on the current model)", True), ("AMUN (D_A on θ_o)", False)):
            final = unlearn_successively(methods.get("amun", **params, adaptive=adaptive), original, ds.train,
                                         batches, seed=seed)[-1][0]
            m = evaluate(final, ds, split, reference, bank, seed, 0, ("acc", "mis"))
            results.setdefault(variant, []).append([m["acc.forget"], m["acc.test"], m["mis.mis"], m["gap"]])
    for variant, rows in results.items():
        lines.append(f"| {variant} | " + " | ".join(mean_std(c) for c in np.array(rows).T) + " |")
    return lines


CIFAR_JOBS = [  # (label, method, hyperparameters, with D_R): the same two learning rates for every method
    *[(f"{name} lr {lr}", name, {"lr": lr}, True) for name in ("ft", "rl", "amun") for lr in (0.01, 0.05)],
    *[(f"amun w/o D_F lr {lr}", "amun", {"lr": lr, "with_forget": False}, True) for lr in (0.01, 0.05)],
    *[(f"rl lr {lr}", "rl", {"lr": lr}, False) for lr in (0.001, 0.01)],
    *[(f"ga lr {lr}", "ga", {"lr": lr}, False) for lr in (1e-4, 1e-3)],
    *[(f"amun lr {lr}", "amun", {"lr": lr}, False) for lr in (0.01, 0.05)],
    *[(f"amun w/o D_F lr {lr}", "amun", {"lr": lr, "with_forget": False}, False) for lr in (0.01, 0.05)],
]


def cifar(path: Path, bank, epochs: int, seeds) -> list[str]:
    ds = data.load("cifar10", root=path, progress=False)
    subset = np.sort(np.random.default_rng(0).permutation(len(ds.train))[:5000])
    recipe = {"lr": 0.05, "epochs": epochs, "batch_size": 128, "schedule": "onecycle", "weight_decay": 5e-4,
              "flip": True}
    arch = {"width": 16}
    # D_T: 4,500 random test images, as many as D_R, so that MIS's SVC sees balanced classes.
    evaluation = np.sort(np.random.default_rng(2).permutation(len(ds.test))[:4500])
    attack_rows, rows = [], []
    for seed in seeds:
        forget_idx = np.sort(np.random.default_rng(1 + seed).choice(subset, size=500, replace=False))
        retain_idx = np.setdiff1d(subset, forget_idx)
        split = data.ForgetSplit(forget_idx, retain_idx)
        forget, retain = ds.train.subset(forget_idx), ds.train.subset(retain_idx)
        original = bank.get(ds, "cnn", subset, recipe=recipe, seed=seed, arch_args=arch, progress=False)
        # Seconds the retrained model took to train: in this run with a fresh bank (the default).
        retrained, retrain_seconds = bank.get_with_time(ds, "cnn", retain_idx, recipe=recipe, seed=seed,
                                                        arch_args=arch, progress=False)
        start = time.perf_counter()
        adv = closest_adversarial(original, forget.x, forget.y, seed=seed)
        seconds = time.perf_counter() - start
        ok = adv.success
        attack_rows.append([adv.epsilon_init, 100 * adv.success_rate, float(adv.distance[ok].median()),
                            len(adv) / seconds, (adv.sample_steps - adv.calibration_steps) / (len(adv) * adv.steps),
                            adv.pgd_passes])
        assert bool((adv.y_adv[ok] != forget.y[ok]).all()) and bool((adv.distance <= adv.epsilon * (1 + 1e-5)).all())
        reference = audit.evaluate(retrained, ds, split, attacks=("acc", "mis"), seed=seed, evaluation=evaluation)
        jobs = [("retrain", True, retrained, retrain_seconds), ("original", True, original, 0.0)]
        # Every method fine-tunes with the original recipe's augmentation (flips) on D_R and D_F.
        for label, name, params, with_retain in CIFAR_JOBS:
            start = time.perf_counter()
            model = methods.get(name, **params, **({} if name == "ga" else {"flip": True})).unlearn(
                original, forget, retain if with_retain else None, seed=seed)
            jobs.append((label, with_retain, model, time.perf_counter() - start))
            log(f"cifar seed {seed}: {label} {'with' if with_retain else 'w/o'} D_R {jobs[-1][3]:.0f} s")
        for label, with_retain, model, seconds in jobs:
            m = evaluate(model, ds, split, reference, bank, seed, 0, ("acc", "mis"), evaluation)
            rows.append({"label": label, "retain": with_retain, "seed": seed, "seconds": seconds,
                         "fraction": seconds / retrain_seconds, **m})
    a = np.array(attack_rows)
    lines = [f"CNN width 16, recipe {recipe}, trained on a fixed 5,000-image subset (one model per seed); "
             f"forget 500 of them (drawn per seed), retain 4,500; seeds {list(seeds)}.", "",
             "| ε_init | success % | every y_adv ≠ y, every ‖δ‖₂ ≤ ε | median ‖δ‖₂ | samples/s | "
             "PGD passes (search) | PGD passes (with calibration) |", "|" + " --- |" * 7,
             f"| {mean_std(a[:, 0])} | {mean_std(a[:, 1])} | yes (asserted) | {mean_std(a[:, 2])} | "
             f"{mean_std(a[:, 3])} | {mean_std(a[:, 4])} | {mean_std(a[:, 5])} |", "",
             "| method | D_R | forget acc | retain acc | test acc | MIS | Avg. Gap (acc + MIS) | time (s) | "
             "time / retrain |", "|" + " --- |" * 9]
    order = []
    for r in rows:
        if (r["label"], r["retain"]) not in order:
            order.append((r["label"], r["retain"]))
    for label, with_retain in order:
        group = [r for r in rows if r["label"] == label and r["retain"] == with_retain]
        cells = [mean_std([r[c] for r in group]) for c in ("acc.forget", "acc.retain", "acc.test", "mis.mis", "gap",
                                                            "seconds")]
        lines.append(f"| {label} | {'yes' if with_retain else 'no'} | " + " | ".join(cells)
                     + f" | {np.mean([r['fraction'] for r in group]):.3f} |")
    return lines


CLOSEST_CONFIGS = [  # (label, epsilon, refine_steps)
    ("ε_init = 0.04 fixed (public code)", 0.04, 0),
    ("ε_init = 0.04 fixed + refinement", 0.04, 10),
    ("ε_init calibrated (paper)", None, 0),
    ("ε_init calibrated + refinement (default)", None, 10),
]


def closest(name: str, path: Path | None, bank, epochs: int, repeats: int) -> list[str]:
    """Part 7: the search settings on the same model and the same 500 training images."""
    if name == "cifar10":
        ds = data.load("cifar10", root=path, progress=False)
        subset = np.sort(np.random.default_rng(0).permutation(len(ds.train))[:5000])
        recipe = {"lr": 0.05, "epochs": epochs, "batch_size": 128, "schedule": "onecycle", "weight_decay": 5e-4,
                  "flip": True}
        arch, kind = {"width": 16}, "cnn"
        model = bank.get(ds, kind, subset, recipe=recipe, seed=0, arch_args=arch, progress=False)
        described = f"CNN width 16 trained {epochs} epochs on a fixed 5,000-image subset"
    else:
        ds = data.load(name)
        subset, kind = np.arange(len(ds.train)), None
        model = bank.get(ds, "mlp", None, seed=0, progress=False)
        described = "MLP (the data set's default recipe) trained on the whole training split"
    sample = ds.train.subset(np.sort(np.random.default_rng(1).choice(subset, size=min(500, len(subset)),
                                                                      replace=False)))
    train_acc, test_acc = models.accuracy(model, ds.train.subset(subset)), models.accuracy(model, ds.test)
    results: dict[str, list] = {label: [] for label, _, _ in CLOSEST_CONFIGS}
    for _ in range(repeats):
        for label, epsilon, refine_steps in CLOSEST_CONFIGS:
            start = time.perf_counter()
            adv = closest_adversarial(model, sample.x, sample.y, epsilon=epsilon, refine_steps=refine_steps)
            results[label].append((time.perf_counter() - start, adv))
            log(f"closest {name}: {label} {results[label][-1][0]:.1f} s")
    base = min(t for t, _ in results[CLOSEST_CONFIGS[0][0]])
    lines = [f"{name}: {described} (train {train_acc:.1f}% / test {test_acc:.1f}%); {len(sample)} training "
             f"images; L2, 50 steps, α = ε/10; time = min over {repeats} interleaved runs, 1 thread.", "",
             "| search | ε_init | success % | mean ‖δ‖₂ | median ‖δ‖₂ | time (s) | time / public code's |",
             "|" + " --- |" * 7]
    for label, _, _ in CLOSEST_CONFIGS:
        seconds = min(t for t, _ in results[label])
        adv = results[label][0][1]
        ok = adv.success
        assert bool((adv.y_adv[ok] != sample.y[ok]).all())
        assert torch.equal(models.logits(model, adv.x_adv[ok]).argmax(1), adv.y_adv[ok])
        lines.append(f"| {label} | {adv.epsilon_init:.3f} | {100 * adv.success_rate:.1f} | "
                     f"{adv.distance[ok].mean():.3f} | {adv.distance[ok].median():.3f} | {seconds:.1f} | "
                     f"{seconds / base:.2f} |")
    return lines


def sweep(ds, bank, seeds) -> list[str]:
    lines = ["| lr | epochs | ε_init | forget acc | test acc | MIS | D_F confidence (retrain) | Avg. Gap (acc + MIS) |",
             "|" + " --- |" * 8]
    cells: dict[tuple, list] = {}
    for seed in seeds:
        split = data.random_forget(len(ds.train), fraction=0.1, seed=seed)
        forget, retain = ds.train.subset(split.forget), ds.train.subset(split.retain)
        original = bank.get(ds, "mlp", None, seed=seed, progress=False)
        retrained = bank.get(ds, "mlp", split.retain, seed=seed, progress=False)
        reference = audit.evaluate(retrained, ds, split, attacks=("acc", "mis"), bank=bank, seed=seed)
        target = float(models.true_class_confidence(retrained, forget).mean())
        for lr in (0.01, 0.05, 0.1):
            for epochs in (5, 10, 20):
                for eps in (None, 0.2, 3.2):  # calibrated (≈ 0.8 here), 4x smaller, 4x larger
                    model = methods.get("amun", lr=lr, epochs=epochs, epsilon=eps, step_size=epochs).unlearn(
                        original, forget, retain, seed=seed)
                    m = evaluate(model, ds, split, reference, bank, seed, 0, ("acc", "mis"))
                    conf = float(models.true_class_confidence(model, forget).mean())
                    cells.setdefault((lr, epochs, eps or "calibrated"), []).append(
                        [m["acc.forget"], m["acc.test"], m["mis.mis"], conf, target, m["gap"]])
    for (lr, epochs, eps), rows in cells.items():
        v = np.array(rows)
        lines.append(f"| {lr} | {epochs} | {eps} | {mean_std(v[:, 0])} | {mean_std(v[:, 1])} | {mean_std(v[:, 2])} | "
                     f"{v[:, 3].mean():.3f} ({v[:, 4].mean():.3f}) | {mean_std(v[:, 5])} |")
    return lines


def summarise(rows: list[dict]) -> list[str]:
    order = []
    for r in rows:
        if (r["label"], r["retain"]) not in order:
            order.append((r["label"], r["retain"]))
    lines = ["| method | D_R | forget acc | retain acc | test acc | MIS | RMIA AUC | Avg. Gap (MIS) | "
             "Avg. Gap (RMIA) | time (s) | time / retrain |", "|" + " --- |" * 11]
    for label, with_retain in order:
        group = [r for r in rows if r["label"] == label and r["retain"] == with_retain]
        cells = [mean_std([r.get(c, np.nan) for r in group]) for c in COLUMNS]
        cells += [mean_std([r["seconds"] for r in group]),
                  f"{np.mean([r['fraction'] for r in group]):.3f}"]
        lines.append(f"| {label} | {'yes' if with_retain else 'no'} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-reference", type=int, default=8, help="RMIA reference models")
    parser.add_argument("--bank", type=Path, default=None, help="model bank (default: a fresh temporary one)")
    parser.add_argument("--skip-tuning", action="store_true", help="use each method's defaults instead of tuning")
    parser.add_argument("--json", type=Path, default=None, help="also write every row here")
    parser.add_argument("--cifar", type=Path, default=None, help="CIFAR-10 copy (folder or .tar.gz): add part 5")
    parser.add_argument("--cifar-epochs", type=int, default=20)
    parser.add_argument("--only-cifar", action="store_true", help="run part 5 alone")
    parser.add_argument("--sweep", action="store_true", help="add part 6 (AMUN over lr x epochs x epsilon)")
    parser.add_argument("--only-sweep", action="store_true", help="run part 6 alone")
    parser.add_argument("--closest", default=None, help="run part 7 alone on this data set (cifar10, mnist1d, digits)")
    parser.add_argument("--repeats", type=int, default=2, help="part 7: interleaved timing runs per configuration")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ds = data.load("digits")
    with tempfile.TemporaryDirectory() as tmp:
        bank = ModelBank(args.bank or tmp)
        if args.only_cifar:
            print("\n".join(["## 5. CIFAR-10 (JPEG q75 copy)"] + cifar(args.cifar, bank, args.cifar_epochs,
                                                                           args.seeds)))
            return
        if args.closest:
            print("\n".join([f"## 7. Closest-example search settings ({args.closest})"]
                             + closest(args.closest, args.cifar, bank, args.cifar_epochs, args.repeats)))
            return
        if args.only_sweep:
            print("\n".join(["## 6. AMUN with D_R over lr × epochs × ε_init (constant lr)"]
                             + sweep(ds, bank, args.seeds)))
            return
        start = time.perf_counter()
        out = [f"digits, MLP 256-256 (recipe 'digits'), 10% random forget; torch {torch.__version__}, "
               f"{platform.machine()}, 1 thread; mean ± std over seeds {args.seeds}; figures in percent.", "",
               "## 1. Closest adversarial examples on θ_o (seed 0)"]
        out += throughput(ds, bank)
        out += ["", "## 2. Fig. 2: test accuracy after 10 epochs of fine-tuning (no D_R)"]
        out += figure2(ds, bank, args.seeds)
        if args.skip_tuning:
            chosen = {(label, r): {"method": name, **fixed} for label, name, fixed, r, _ in GRID}
        else:
            chosen = tune(ds, bank)
        rows = [row for seed in args.seeds for row in run_seed(seed, ds, bank, chosen, args.n_reference)]
        out += ["", f"## 3. Avg. Gap to Retrain ({args.n_reference} RMIA reference models; "
                    "settings tuned on a separate forget set)" if not args.skip_tuning else
                f"## 3. Avg. Gap to Retrain ({args.n_reference} RMIA reference models; defaults)"]
        out += summarise(rows)
        out += ["", "Settings: " + "; ".join(f"{label} {'with' if r else 'w/o'} D_R: {p}"
                                              for (label, r), p in chosen.items())]
        out += ["", "## 4. Successive requests (5 × 2% of D, with D_R)"]
        out += successive(ds, bank, chosen, args.seeds)
        if args.sweep:
            out += ["", "## 6. AMUN with D_R over lr × epochs × ε_init (constant lr)"] + sweep(ds, bank, args.seeds)
        if args.cifar:
            out += ["", "## 5. CIFAR-10 (JPEG q75 copy)"] + cifar(args.cifar, bank, args.cifar_epochs, args.seeds)
        out += ["", f"total {time.perf_counter() - start:.0f} s"]
    print("\n".join(out))
    if args.json:
        args.json.write_text(json.dumps({"seeds": args.seeds, "chosen": {f"{k[0]}|{k[1]}": v for k, v in chosen.items()},
                                         "rows": rows}, indent=1, default=float))


if __name__ == "__main__":
    main()
