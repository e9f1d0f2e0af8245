"""Audit benchmarks: strength of the attacks, cost vs number of reference models, reuse from the bank.

    python benchmarks/bench_audit.py strength           # mnist1d: AUC / TPR@1%FPR of the original model for loss MIA,
                                                        # RMIA (earlier vs new settings, ablations), LiRA on/offline,
                                                        # vs the number of reference models; Retrain over seeds
    python benchmarks/bench_audit.py strength --cifar   # the same on a 1,000-image CIFAR-10 subset (MLP, flips)
    python benchmarks/bench_audit.py method --subset 1000   # U-LiRA and ε score of Retrain, FT and a do-nothing
                                                        # unlearner on mnist1d (stratified training subset), with cost
    python benchmarks/bench_audit.py runtime            # wall time of the default audit with a warm bank (run it with
                                                        # PYTHONPATH of two source trees to compare them)
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
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from unlearn import audit, data, models, training
from unlearn.bank import ModelBank
from unlearn.data import Dataset

CIFAR = Path(os.environ.get("UNLEARN_CIFAR10", Path(__file__).resolve().parents[2] / "shared" / "data"
                            / "cifar10-jpg.tar.gz"))
MIAS = ("loss", "rmia", "rmia-offline", "lira", "lira-offline")


def _rate(percent) -> str:
    """A TPR the audit reports as None when D_T has too few non-members for its FPR."""
    return "n/a" if percent is None else f"{percent:.1f}"


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
                  + f" | {_rate(r['rmia']['tpr_at_1pct_fpr'])} | {r['mis']['mis']:.1f} | {trained:.0f} | "
                  f"{audit_seconds:.0f} |", flush=True)


def strength_dataset(use_cifar: bool) -> tuple[Dataset, str, dict, object]:
    """(dataset, arch, arch args, recipe) of the strength table."""
    if use_cifar:
        if not CIFAR.exists():
            raise SystemExit(f"CIFAR-10 copy not found at {CIFAR}")
        # An MLP overfits 1,000 images in seconds; trained with flips, so RMIA queries flipped views too.
        return cifar_subset(100, 50), "mlp", {}, training.get_recipe("digits").with_(flip=True)
    ds = data.load("mnist1d")
    return ds, "mlp", None, training.get_recipe(training.default_recipe(ds.name))


def attack_rows(target, labels, refs, is_forget, count: int, variants: dict) -> list[tuple[str, dict]]:
    """Every attack of the table on the first `count` reference models."""
    from unlearn.audit.references import References

    sub = References(refs.logits[:count], refs.members[:count], refs.points, 0)
    rows = []
    for name, (kind, settings) in variants.items():
        try:
            if kind.startswith("rmia"):
                out = audit.rmia(target, labels, sub, is_forget, settings=settings, offline=kind.endswith("offline"))
            else:
                out = audit.lira(target, labels, sub, is_forget, offline=kind.endswith("offline"),
                                 queries=settings.queries)
        except Exception as err:  # e.g. offline with too few OUT models: a cell, not a crash
            out = {"error": f"{type(err).__name__}"}
        rows.append((name, out))
    return rows


def strength(use_cifar: bool, counts: list[int], seeds: list[int], reference_seed: int) -> None:
    from unlearn.audit.queries import view_count
    from unlearn.audit.rmia import RMIASettings

    ds, arch, arch_args, recipe = strength_dataset(use_cifar)
    bank = ModelBank()
    new = RMIASettings()
    legacy = RMIASettings.legacy()
    authors = RMIASettings.authors(queries=5)

    def changed(**kw):
        return RMIASettings(**{**new.to_dict(), **kw})

    variants = {
        "RMIA earlier settings (softmax T=1, mean, 1 query, a=0.3)": ("rmia", legacy),
        "RMIA new defaults": ("rmia", new),
        "  authors' setting (taylor-sm T=2 m=0.6 4 terms, trim 0.2, 5 views)": ("rmia", authors),
        "  authors' signal only": ("rmia", changed(signal="taylor-soft-margin", temperature=2.0)),
        "  authors' signal, 5 terms (positive)": ("rmia", changed(signal="taylor-soft-margin", temperature=2.0,
                                                                  taylor_terms=5)),
        "  softmax T=2": ("rmia", changed(temperature=2.0)),
        "  trimmed mean 0.2": ("rmia", changed(trim=0.2)),
        "  5 views (shifts ±1, ±2)": ("rmia", changed(queries=5)),
        "  γ = 2": ("rmia", changed(gamma=2.0)),
        "RMIA offline, a fitted": ("rmia-offline", new),
        "RMIA offline, a = 0.3": ("rmia-offline", changed(offline_a=0.3)),
        "LiRA online": ("lira", new),
        "LiRA offline": ("lira-offline", new),
    }
    # `queries = 0` means the views the model's recipe trains on (`queries.view_count`), which the
    # audit resolves from the recipe; here every attack reads one set of target logits computed
    # with the most views any row asks for, so resolve it first, or 0 would read all of them.
    own_views = view_count(0, recipe.flip, recipe.crop_padding)
    variants = {name: (kind, dataclasses.replace(s, queries=s.queries or own_views))
                for name, (kind, s) in variants.items()}
    queries = max(v[1].queries for v in variants.values())
    _, evaluation = data.split_holdout(ds.test.y.numpy(), seed=0)
    print(f"{ds.name}: {len(ds.train)} train / {len(ds.test)} test, {arch}, recipe {recipe}, 10% random forget; "
          f"D_T = evaluation half of the test split ({len(evaluation)}); reference seed {reference_seed}; "
          f"torch threads {torch.get_num_threads()}; new RMIA defaults {new.to_dict()}")
    for seed in seeds:
        split = data.random_forget(len(ds.train), fraction=0.1, seed=seed)
        points = np.r_[split.forget, len(ds.train) + evaluation]
        is_forget = np.r_[np.ones(len(split.forget), bool), np.zeros(len(evaluation), bool)]
        start = time.perf_counter()
        original = bank.get(ds, arch, None, recipe, seed=seed, arch_args=arch_args, progress=False)
        retrained = bank.get(ds, arch, split.retain, recipe, seed=seed, arch_args=arch_args, progress=False)
        refs = audit.reference_logits(original, ds, points, bank=bank, n_reference=max(counts), seed=reference_seed,
                                      queries=queries, progress=False)
        print(f"\nseed {seed}: models ready in {time.perf_counter() - start:.0f} s ({bank.trained} trained so far); "
              f"original test acc {models.accuracy(original, ds.test):.1f}, "
              f"train acc {models.accuracy(original, ds.train):.1f}")
        pool = audit.population(ds).train.subset(points)
        test = ds.test.subset(evaluation)
        for name, model in (("original", original), ("retrained", retrained)):
            target = audit.query_logits(model, pool, recipe, queries)
            loss = audit.loss_mia(model, ds.train.subset(split.forget), test, seed=0)
            print(f"\n{name}, seed {seed}: loss MIA AUC {loss['auc']:.1f}")
            print("| attack | " + " | ".join(f"{c} refs AUC / TPR@1%" for c in counts) + " |")
            print("| --- " * (len(counts) + 1) + "|")
            table = {c: dict(attack_rows(target, pool.y, refs, is_forget, c, variants)) for c in counts}
            for row in variants:
                cells = []
                for c in counts:
                    out = table[c][row]
                    cells.append(out["error"] if "error" in out else
                                 f"{out['auc']:.1f} / {_rate(out['tpr_at_1pct_fpr'])}"
                                 + (f" (a={out['offline_a']:.1f})" if "offline_a" in out else ""))
                print(f"| {row} | " + " | ".join(cells) + " |", flush=True)


class DoNothing:
    """An unlearner that returns the model unchanged (the worst case)."""

    def unlearn(self, model, forget, retain=None, **_context):
        import copy

        return copy.deepcopy(model)


def method_audits(subset: int | None, n_shadow: int, n_models: int, with_ulira: bool = True) -> None:
    """U-LiRA balanced accuracy and the ε score of three unlearners, with the models each cost."""
    from unlearn import methods
    from unlearn.experiments.jobs import dataset_of

    ds = dataset_of("mnist1d", None, subset, 0)
    split = data.random_forget(len(ds.train), fraction=0.1, seed=0)
    bank = ModelBank()
    print(f"{ds.name}: {len(ds.train)} train / {len(ds.test)} test, mlp, recipe mnist1d, 10% random forget; "
          f"U-LiRA {n_shadow if with_ulira else 'skipped'} shadows x 64 targets, each forgetting "
          f"{len(split.forget)} points, ε score {n_models} + {n_models} models; torch threads "
          f"{torch.get_num_threads()}")
    print("| method | U-LiRA balanced acc | models trained | s | ε score | F | ε at the cap (% of D_F) | median ε | "
          "largest ε below the cap | models trained | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, method in (("retrain", methods.get("retrain")), ("ft", methods.get("ft")), ("do nothing", DoNothing())):
        before, start = bank.trained, time.perf_counter()
        ulira = "– | – | –"
        if with_ulira:
            u = audit.ulira(method, ds, "mlp", recipe="mnist1d", bank=bank, n_shadow=n_shadow,
                            forget_size=len(split.forget), progress=False)
            ulira = f"{u['accuracy']:.1f} | {bank.trained - before} | {time.perf_counter() - start:.0f}"
        before, start = bank.trained, time.perf_counter()
        e = audit.epsilon_score(method, ds, split, "mlp", "mnist1d", bank=bank, n_models=n_models, progress=False)
        print(f"| {name} | {ulira} | {e['score']:.1f} | {e['forgetting_quality']:.1f} | {e['separated']:.1f} | "
              f"{e['median_epsilon']:.2f} | {e['max_finite_epsilon']:.2f} | {bank.trained - before} | "
              f"{time.perf_counter() - start:.0f} |", flush=True)


def runtime(n_reference: int, repeats: int) -> None:
    """Wall time of `evaluate` with the default attacks on mnist1d, once the bank holds every model."""
    ds = data.load("mnist1d")
    split = data.random_forget(len(ds.train), fraction=0.1, seed=0)
    _, evaluation = data.split_holdout(ds.test.y.numpy(), seed=0)
    bank = ModelBank()
    model = bank.get(ds, "mlp", None, seed=0, progress=False)
    audit.evaluate(model, ds, split, bank=bank, n_reference=n_reference, evaluation=evaluation)  # warm the bank
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = audit.evaluate(model, ds, split, bank=bank, n_reference=n_reference, evaluation=evaluation)
        times.append(time.perf_counter() - start)
    print(f"default audit {audit.DEFAULT_ATTACKS}, {n_reference} references, warm bank: "
          f"median {np.median(times):.2f} s over {repeats} (min {min(times):.2f}); rmia.auc {result['rmia']['auc']:.1f}; "
          f"source {Path(audit.__file__).parents[2]}")


def main() -> None:
    torch.set_num_threads(1)  # one core: per-model cost is not distorted by thread contention
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["strength", "method", "runtime", "scaling", "leak"])
    parser.add_argument("--subset", type=int, default=None, help="'method': stratified training subset of mnist1d")
    parser.add_argument("--n-shadow", type=int, default=16, help="'method': U-LiRA shadow models")
    parser.add_argument("--n-models", type=int, default=8, help="'method': ε score models of each kind")
    parser.add_argument("--no-ulira", action="store_true", help="'method': the ε score only")
    parser.add_argument("--counts", default=None, help="reference-model counts ('scaling': 4,8,16; "
                                                       "'strength': 2,4,8,16,32)")
    parser.add_argument("--n-reference", type=int, default=8, help="reference models for 'leak'")
    parser.add_argument("--seeds", default="0", help="comma list of forget/original seeds for 'leak'")
    parser.add_argument("--cifar", action="store_true", help="'leak'/'strength' on a 1,000-image CIFAR-10 subset")
    parser.add_argument("--reference-seed", type=int, default=0, help="reference seed for 'strength'")
    parser.add_argument("--repeats", type=int, default=5, help="timed audits for 'runtime'")
    args = parser.parse_args()
    if args.part == "strength":
        strength(args.cifar, [int(c) for c in (args.counts or "2,4,8,16,32").split(",")], [int(s) for s in args.seeds.split(",")],
                 args.reference_seed)
    elif args.part == "method":
        method_audits(args.subset, args.n_shadow, args.n_models, not args.no_ulira)
    elif args.part == "runtime":
        runtime(args.n_reference, args.repeats)
    elif args.part == "scaling":
        scaling([int(c) for c in (args.counts or "4,8,16").split(",")], seed=0)
    else:
        leak(args.cifar, args.n_reference, [int(s) for s in args.seeds.split(",")])


if __name__ == "__main__":
    main()
