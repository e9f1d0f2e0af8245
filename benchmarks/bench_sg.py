"""SG on digits: its cost (per epoch and against retraining), and what the auditor term buys.

    .venv/bin/python benchmarks/bench_sg.py cost            # seconds per epoch by phase, fraction of retraining
    .venv/bin/python benchmarks/bench_sg.py mia --seeds 3   # MIA accuracy on D_F vs held-out data, α = 0 vs α > 0
    .venv/bin/python benchmarks/bench_sg.py gap --seeds 3   # Avg. Gap to Retrain beside FT, RL, AMUN (unlearn.audit)

Protocol (BENCHMARKS.md, `digits`): MLP with the "digits" recipe, 10% random forget set drawn
with the run's seed, original and retrained models from the model bank (trained once; `cost`
times a fresh retraining in the same process). Non-members for SG's auditor are the validation
half of the test split; every figure about held-out data uses the other (evaluation) half,
which no method sees. Everything runs on one torch thread so that figures from a shared
2-core machine stay comparable.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from unlearn import data, methods
from unlearn.bank import ModelBank
from unlearn.methods.sg_auditor import audit, audit_tasks, auditor_features
from unlearn.models import accuracy, logits
from unlearn.training import train


def setting(seed: int, bank: ModelBank):
    ds = data.load("digits")
    split = data.random_forget(len(ds.train), fraction=0.1, seed=seed)
    validation, evaluation = data.split_holdout(ds.test.y.numpy(), seed=0)
    return {
        "dataset": ds, "split": split, "evaluation": evaluation,
        "forget": ds.train.subset(split.forget), "retain": ds.train.subset(split.retain),
        "holdout": ds.test.subset(validation), "evaluation_set": ds.test.subset(evaluation),
        "original": bank.get(ds, "mlp", None, seed=seed, progress=False),
        "retrained": bank.get(ds, "mlp", split.retain, seed=seed, progress=False),
    }


def auditor_mia(model, forget, nonmembers, *, per_class: bool, kind: str = "logistic", seeds=range(5),
                n_splits: int = 10) -> float:
    """Held-out accuracy (%) of an SG-style auditor on logits ⊕ loss, D_F vs `nonmembers`.

    Averaged over several draws of the balanced subsets and splits, since a few hundred rows give
    noisy single fits.
    """
    with torch.no_grad():
        member = auditor_features(logits(model, forget), forget.y)
        nonmember = auditor_features(logits(model, nonmembers), nonmembers.y)
    return statistics.mean(
        audit(member, nonmember, audit_tasks(forget.y.numpy(), nonmembers.y.numpy(), per_class=per_class,
                                             n_splits=n_splits, seed=s), kind=kind).accuracy
        for s in seeds
    )


def mean_std(values) -> str:
    values = list(values)
    return f"{statistics.mean(values):6.2f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:5.2f}"


def part_cost(args, bank):
    s = setting(args.seed, bank)
    start = time.perf_counter()
    train("mlp", s["dataset"], s["split"].retain, "digits", seed=args.seed, progress=False)
    retrain_seconds = time.perf_counter() - start
    print(f"retraining (mlp, recipe digits, {len(s['retain'])} samples): {retrain_seconds:.2f} s")
    print("| SG setting | epochs | total s | s/epoch | base s/epoch | attacker s/epoch | selection s/epoch "
          "| fraction of retraining |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    grid = [("α=0 (FT + selection)", {"alpha": 0.0}), ("α=1 per-class sqhinge", {"alpha": 1.0}),
            ("α=1 single sqhinge", {"alpha": 1.0, "grouping": "single"}),
            ("α=1 per-class logistic", {"alpha": 1.0, "auditor": "logistic"})]
    if args.svm:
        grid.append(("α=1 per-class svm (cvxpylayers)", {"alpha": 1.0, "auditor": "svm"}))
    for label, hp in grid:
        sg = methods.get("sg", epochs=args.epochs, **hp)
        start = time.perf_counter()
        sg.unlearn(s["original"], s["forget"], s["retain"], seed=args.seed, holdout=s["holdout"])
        total = time.perf_counter() - start
        phase = {k: statistics.mean(h["seconds"][k] for h in sg.stats_["history"]) for k in ("base", "attack", "selection")}
        print(f"| {label} | {args.epochs} | {total:.2f} | {total / args.epochs:.3f} | {phase['base']:.3f} | "
              f"{phase['attack']:.3f} | {phase['selection']:.3f} | {total / retrain_seconds:.3f} |")


def part_mia(args, bank):
    alphas = [float(a) for a in args.alphas.split(",")]
    rows = {}
    for seed in range(args.seeds):
        s = setting(seed, bank)
        for name, model in (("original", s["original"]), ("retrain", s["retrained"])):
            rows.setdefault((name, "", ""), []).append((model, s))
        for grouping in args.groupings.split(","):
            for alpha in alphas:
                sg = methods.get("sg", alpha=alpha, epochs=args.epochs, grouping=grouping)
                new = sg.unlearn(s["original"], s["forget"], s["retain"], seed=seed, holdout=s["holdout"])
                rows.setdefault(("sg", grouping, alpha), []).append((new, s))
    print(f"digits, 10% random forget, {args.seeds} seeds (mean ± std), SG {args.epochs} epochs. MIA accuracy (%) "
          "of auditors on logits ⊕ loss (one class-balanced auditor, or one per class; logistic or squared-hinge), "
          "D_F vs the evaluation half of the test split")
    columns = [(False, "logistic"), (True, "logistic"), (False, "sqhinge"), (True, "sqhinge")]
    print("| model | grouping | α | " + " | ".join(f"MIA {'per-class' if p else 'single'} {k}" for p, k in columns)
          + " | forget acc | retain acc | test acc (eval half) |")
    print("| --- " * (len(columns) + 6) + "|")
    for (name, grouping, alpha), runs in rows.items():
        mias = [mean_std(auditor_mia(m, s["forget"], s["evaluation_set"], per_class=p, kind=k) for m, s in runs)
                for p, k in columns]
        fa = [accuracy(m, s["forget"]) for m, s in runs]
        ra = [accuracy(m, s["retain"]) for m, s in runs]
        ta = [accuracy(m, s["evaluation_set"]) for m, s in runs]
        print(f"| {name} | {grouping} | {alpha} | " + " | ".join(mias)
              + f" | {mean_std(fa)} | {mean_std(ra)} | {mean_std(ta)} |")


def part_gap(args, bank):
    from unlearn import audit as audit_layer  # the audit engineer's API (cross-team contract 1)

    candidates = {"ft": {}, "rl": {}, "amun": {}, "sg (α=0)": {"alpha": 0.0}}
    for alpha in (float(a) for a in args.alphas.split(",")):
        if alpha > 0:
            candidates[f"sg (α={alpha})"] = {"alpha": alpha}
    results: dict[str, list[dict]] = {}
    for seed in range(args.seeds):
        s = setting(seed, bank)
        common = {"attacks": ("acc", "mis", "loss"), "bank": bank, "seed": seed, "evaluation": s["evaluation"]}
        reference = audit_layer.evaluate(s["retrained"], s["dataset"], s["split"], **common)
        results.setdefault("retrain", []).append(audit_layer.flatten(reference) | {"seconds": float("nan")})
        for label, hp in candidates.items():
            name = label.split()[0]
            method = methods.get(name, **({"epochs": args.epochs} | hp if name == "sg" else hp))
            start = time.perf_counter()
            new = method.unlearn(s["original"], s["forget"], s["retain"], seed=seed, holdout=s["holdout"])
            seconds = time.perf_counter() - start
            metrics = audit_layer.evaluate(new, s["dataset"], s["split"], reference=reference, **common)
            results.setdefault(label, []).append(audit_layer.flatten(metrics) | {"seconds": seconds})
    keys = ["acc.forget", "acc.retain", "acc.test", "mis.mis", "loss.accuracy", "gap.avg_gap", "seconds"]
    print(f"digits, 10% random forget, with D_R, {args.seeds} seeds (mean ± std); test side = evaluation half")
    print("| method | " + " | ".join(keys) + " |")
    print("| --- " * (len(keys) + 1) + "|")
    for label, runs in results.items():
        cells = [mean_std(r.get(k, float("nan")) for r in runs) for k in keys]
        print(f"| {label} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["cost", "mia", "gap"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="cost: the seed of the one setting timed")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--alphas", default="0,0.5,1,2,5")
    parser.add_argument("--groupings", default="per-class,single")
    parser.add_argument("--svm", action="store_true", help="cost: also time the cvxpylayers SVM auditor")
    parser.add_argument("--bank", default=None, help="model bank folder (default: the user's bank)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bank = ModelBank(args.bank)
    {"cost": part_cost, "mia": part_mia, "gap": part_gap}[args.part](args, bank)


if __name__ == "__main__":
    main()
