"""SG on digits: its cost (per epoch and against retraining), and what the auditor term buys.

    .venv/bin/python benchmarks/bench_sg.py cost            # seconds per epoch by phase, fraction of retraining
    .venv/bin/python benchmarks/bench_sg.py cost --cifar ../shared/data/cifar10-jpg.tar.gz   # + CIFAR-10 CNN
    .venv/bin/python benchmarks/bench_sg.py mia --seeds 3   # MIA accuracy on D_F vs held-out data, α = 0 vs α > 0
    .venv/bin/python benchmarks/bench_sg.py gap --seeds 3   # Avg. Gap to Retrain beside FT, RL, AMUN (lr tuned)
    .venv/bin/python benchmarks/bench_sg.py auditors        # U_a over the epochs: logistic vs squared-hinge auditor
    .venv/bin/python benchmarks/bench_sg.py gradients       # dU_a/dS: torch vs cvxpylayers, and vs the paper's SVM

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


def setting(seed: int, bank: ModelBank, forget_seed: int | None = None):
    ds = data.load("digits")
    split = data.random_forget(len(ds.train), fraction=0.1, seed=seed if forget_seed is None else forget_seed)
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
    # The first optimiser of a process imports torch._dynamo (seconds): pay it before any clock starts.
    torch.optim.SGD(s["original"].parameters(), lr=0.1)
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
    if args.cifar:
        cost_cifar(args, bank)


def cost_cifar(args, bank):
    """SG's cost per epoch on CIFAR-10 (BENCHMARKS.md cifar10-cpu scale, reduced): CNN width 16 on a
    5,000-image subset, 500 of them forgotten, against retraining that CNN on the other 4,500."""
    import numpy as np

    from unlearn.training import get_recipe

    ds = data.load("cifar10", root=args.cifar, progress=False)
    subset = np.sort(np.random.default_rng(0).permutation(len(ds.train))[:5000])
    forget_idx = np.sort(np.random.default_rng(1).choice(subset, size=500, replace=False))
    retain_idx = np.setdiff1d(subset, forget_idx)
    recipe = get_recipe("cifar10-cpu").with_(epochs=args.cifar_epochs)
    arch = {"width": 16}
    original = bank.get(ds, "cnn", subset, recipe=recipe, seed=args.seed, arch_args=arch, progress=False)
    validation, evaluation = data.split_holdout(ds.test.y.numpy(), seed=0)
    forget, retain = ds.train.subset(forget_idx), ds.train.subset(retain_idx)
    start = time.perf_counter()
    train("cnn", ds, retain_idx, recipe, seed=args.seed, arch_args=arch, progress=False)
    retrain_seconds = time.perf_counter() - start
    print(f"\nCIFAR-10: retraining (cnn width 16, cifar10-cpu recipe, {args.cifar_epochs} epochs, "
          f"{len(retain_idx)} images): {retrain_seconds:.1f} s")
    print("| SG setting | epochs timed | s/epoch | base s/epoch | attacker s/epoch | selection s/epoch "
          "| 30 epochs as a fraction of retraining |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, hp in (("α=0", {"alpha": 0.0}), ("α=1 per-class logistic", {"alpha": 1.0})):
        sg = methods.get("sg", epochs=args.cifar_sg_epochs, **hp)
        start = time.perf_counter()
        sg.unlearn(original, forget, retain, seed=args.seed, holdout=ds.test.subset(validation))
        per_epoch = (time.perf_counter() - start) / args.cifar_sg_epochs
        phase = {k: statistics.mean(h["seconds"][k] for h in sg.stats_["history"]) for k in ("base", "attack", "selection")}
        print(f"| {label} | {args.cifar_sg_epochs} | {per_epoch:.2f} | {phase['base']:.2f} | {phase['attack']:.2f} | "
              f"{phase['selection']:.2f} | {30 * per_epoch / retrain_seconds:.2f} |")


def part_mia(args, bank):
    alphas = [float(a) for a in args.alphas.split(",")]
    rows = {}
    for seed in range(args.seeds):
        s = setting(seed, bank)
        for name, model in (("original", s["original"]), ("retrain", s["retrained"])):
            rows.setdefault((name, "", ""), []).append((model, s))
        for grouping in args.groupings.split(","):
            for alpha in alphas:
                sg = methods.get("sg", alpha=alpha, epochs=args.epochs, grouping=grouping, selection=args.selection)
                new = sg.unlearn(s["original"], s["forget"], s["retain"], seed=seed, holdout=s["holdout"])
                rows.setdefault(("sg", grouping, alpha), []).append((new, s))
    print(f"digits, 10% random forget, {args.seeds} seeds (mean ± std), SG {args.epochs} epochs, selection "
          f"{args.selection!r}. MIA accuracy (%) "
          "of auditors on logits ⊕ loss (one class-balanced auditor, or one per class; logistic or squared-hinge), "
          "D_F vs the evaluation half of the test split")
    columns = [(False, "logistic"), (True, "logistic"), (False, "sqhinge"), (True, "sqhinge")]
    mias = {key: [[auditor_mia(m, s["forget"], s["evaluation_set"], per_class=p, kind=k) for m, s in runs]
                  for p, k in columns] for key, runs in rows.items()}
    print("| model | grouping | α | " + " | ".join(f"MIA {'per-class' if p else 'single'} {k}" for p, k in columns)
          + " | Δ MIA single logistic vs α=0, same split | seeds lower | forget acc | retain acc | test acc (eval half) |")
    print("| --- " * (len(columns) + 8) + "|")
    for (name, grouping, alpha), runs in rows.items():
        delta, lower = "", ""
        if name == "sg":  # paired by seed: the same original model, forget set and holdout
            diffs = [a - b for a, b in zip(mias[(name, grouping, alpha)][0], mias[(name, grouping, 0.0)][0])]
            delta, lower = mean_std(diffs), f"{sum(d < 0 for d in diffs)}/{len(diffs)}"
        fa = [accuracy(m, s["forget"]) for m, s in runs]
        ra = [accuracy(m, s["retain"]) for m, s in runs]
        ta = [accuracy(m, s["evaluation_set"]) for m, s in runs]
        print(f"| {name} | {grouping} | {alpha} | " + " | ".join(mean_std(v) for v in mias[(name, grouping, alpha)])
              + f" | {delta} | {lower} | {mean_std(fa)} | {mean_std(ra)} | {mean_std(ta)} |")


def part_auditors(args, bank):
    """Why the default auditor is logistic: U_a over the epochs with each torch auditor (α = 1)."""
    s = setting(args.seed, bank)
    print(f"digits seed {args.seed}, SG α=1, {args.epochs} epochs, per-class auditors")
    print("| auditor | min U_a over epochs | final U_a | selected epoch | forget acc | test acc (eval half) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kind in ("logistic", "sqhinge"):
        sg = methods.get("sg", alpha=1.0, epochs=args.epochs, auditor=kind)
        model = sg.unlearn(s["original"], s["forget"], s["retain"], seed=args.seed, holdout=s["holdout"])
        utilities = [h["utility"] for h in sg.stats_["history"]]
        print(f"| {kind} | {min(utilities):.4g} | {utilities[-1]:.4g} | {sg.stats_['selected_epoch']} | "
              f"{accuracy(model, s['forget']):.2f} | {accuracy(model, s['evaluation_set']):.2f} |")


def part_gradients(args, bank):
    """dU_a/dS of one per-class auditor problem (class 3, one split) from each solver and loss."""
    from unlearn.methods.sg_auditor import feature_scale

    s = setting(args.seed, bank)
    with torch.no_grad():
        member = auditor_features(logits(s["original"], s["forget"]), s["forget"].y).double()
        nonmember = auditor_features(logits(s["original"], s["holdout"]), s["holdout"].y).double()
    tasks = [t for t in audit_tasks(s["forget"].y.numpy(), s["holdout"].y.numpy(), per_class=True, n_splits=1,
                                    seed=args.seed) if t.group == 3]
    scale = feature_scale(member, nonmember, tasks)

    def utility_gradient(kind, solver):
        m, n = member.clone().requires_grad_(True), nonmember.clone().requires_grad_(True)
        utility = audit(m, n, tasks, kind=kind, scale=scale, solver=solver, tol=1e-12).utility
        return float(utility.detach()), torch.cat([g.flatten() for g in torch.autograd.grad(utility, [m, n])])

    runs = {"torch sqhinge": utility_gradient("sqhinge", "torch"),
            "cvxpylayers sqhinge": utility_gradient("sqhinge", "cvxpylayers"),
            "torch logistic": utility_gradient("logistic", "torch"),
            "cvxpylayers svm (paper)": utility_gradient("svm", "cvxpylayers")}
    print(f"digits seed {args.seed}, auditor of class 3: {len(tasks[0].train)} training rows, "
          f"{len(tasks[0].test)} held-out rows; cosine similarity of dU_a/dS")
    names = list(runs)
    print("| | U_a | " + " | ".join(names) + " |")
    print("| --- " * (len(names) + 2) + "|")
    for a in names:
        cells = [f"{float(torch.nn.functional.cosine_similarity(runs[a][1], runs[b][1], dim=0)):.4f}" for b in names]
        print(f"| {a} | {runs[a][0]:.6f} | " + " | ".join(cells) + " |")


LRS = [1e-1, 5e-2, 1e-2, 5e-3, 1e-3, 1e-4, 1e-5]  # the grid bench_amun.py tunes every method on
ALPHAS = [0.0, 0.5, 1.0, 2.0, 5.0]
GAP_KEYS = ("acc.forget", "acc.retain", "acc.test", "mis.mis")
RMIA_GAP_KEYS = ("acc.forget", "acc.retain", "acc.test", "rmia.auc")
# (row label, method, fixed hyperparameters, grid): every method with D_R, lr (and its own knob) tuned.
GRID = [
    ("ft", "ft", {}, [{"lr": lr} for lr in LRS]),
    ("rl", "rl", {}, [{"lr": lr} for lr in LRS]),
    ("amun", "amun", {}, [{"lr": lr, "step_size": k} for lr in LRS for k in (1, 5, 10)]),
    ("sg (base ft)", "sg", {"base": "ft"}, [{"lr": lr, "alpha": a} for lr in LRS for a in ALPHAS]),
    ("sg (base rl)", "sg", {"base": "rl"}, [{"lr": lr, "alpha": a} for lr in LRS for a in ALPHAS]),
]


def audit_flat(audit_layer, model, s, reference, bank, seed, attacks, n_reference) -> dict:
    metrics = audit_layer.evaluate(model, s["dataset"], s["split"], attacks=attacks, bank=bank, seed=seed,
                                   n_reference=n_reference, evaluation=s["evaluation"])
    flat = audit_layer.flatten(metrics)
    if reference is not None:
        flat["gap"] = audit_layer.avg_gap(metrics, reference, GAP_KEYS)["avg_gap"]
        if "rmia" in attacks:
            flat["gap_rmia"] = audit_layer.avg_gap(metrics, reference, RMIA_GAP_KEYS)["avg_gap"]
    return flat


def part_gap(args, bank):
    """Avg. Gap to Retrain of SG beside FT, RL and AMUN, bench_amun.py's protocol with SG's holdout.

    Each method's grid point is chosen by Avg. Gap (accuracies + MIS) on a separate forget set
    (original seed 0, forget-set seed 1000); the chosen settings then run on seeds 0..n-1. The
    test side of every audit is the evaluation half of the test split, for all methods alike,
    since SG's auditor has seen the validation half.
    """
    from unlearn import audit as audit_layer  # the audit engineer's API (cross-team contract 1)

    tuning = setting(0, bank, forget_seed=1000)
    reference = audit_layer.evaluate(tuning["retrained"], tuning["dataset"], tuning["split"], attacks=("acc", "mis"),
                                     bank=bank, seed=0, evaluation=tuning["evaluation"])
    chosen = {}
    for label, name, fixed, grid in GRID:
        scored = []
        for point in grid:
            try:
                model = methods.get(name, **fixed, **point).unlearn(
                    tuning["original"], tuning["forget"], tuning["retain"], seed=0, holdout=tuning["holdout"])
                gap = audit_flat(audit_layer, model, tuning, reference, bank, 0, ("acc", "mis"), 0)["gap"]
            except Exception as err:  # noqa: BLE001  a diverging grid point is just a bad one
                print(f"tuning {label}: {point} failed ({err})")
                gap = float("inf")
            scored.append((gap, point))
        gap, best = min(scored, key=lambda item: item[0])
        chosen[label] = (name, {**fixed, **best})
        print(f"tuned {label}: {best} (tuning-set Avg. Gap {gap:.2f})", flush=True)

    attacks = ("acc", "mis", "loss") + (("rmia",) if args.n_reference else ())
    rows: dict[str, list[dict]] = {}
    for seed in range(args.seeds):
        s = setting(seed, bank)
        start = time.perf_counter()
        retrained = methods.get("retrain").unlearn(s["original"], s["forget"], s["retain"], seed=seed)
        retrain_seconds = time.perf_counter() - start  # trained here, so every ratio is from this run
        reference = audit_layer.evaluate(retrained, s["dataset"], s["split"], attacks=attacks, bank=bank,
                                         seed=seed, n_reference=args.n_reference, evaluation=s["evaluation"])
        rows.setdefault("retrain", []).append(
            audit_flat(audit_layer, retrained, s, reference, bank, seed, attacks, args.n_reference)
            | {"seconds": retrain_seconds, "fraction": 1.0})
        for label, (name, params) in chosen.items():
            method = methods.get(name, **params)
            start = time.perf_counter()
            model = method.unlearn(s["original"], s["forget"], s["retain"], seed=seed, holdout=s["holdout"])
            seconds = time.perf_counter() - start
            rows.setdefault(label, []).append(
                audit_flat(audit_layer, model, s, reference, bank, seed, attacks, args.n_reference)
                | {"seconds": seconds, "fraction": seconds / retrain_seconds})
            print(f"seed {seed}: {label} {seconds:.2f} s, Avg. Gap {rows[label][-1]['gap']:.2f}", flush=True)

    keys = ["acc.forget", "acc.retain", "acc.test", "mis.mis", "loss.accuracy"]
    keys += ["rmia.auc", "gap", "gap_rmia"] if args.n_reference else ["gap"]
    keys += ["seconds", "fraction"]
    print(f"\ndigits, MLP, 10% random forget, with D_R, {args.seeds} seeds (mean ± std); test side = evaluation "
          f"half of the test split; gap = Avg. Gap over {', '.join(GAP_KEYS)}"
          + (f"; gap_rmia over {', '.join(RMIA_GAP_KEYS)} ({args.n_reference} reference models)"
             if args.n_reference else ""))
    print("chosen: " + "; ".join(f"{label} {params}" for label, (_, params) in chosen.items()))
    print("| method | " + " | ".join(keys) + " |")
    print("| --- " * (len(keys) + 1) + "|")
    for label, runs in rows.items():
        print(f"| {label} | " + " | ".join(mean_std(r.get(k, float("nan")) for r in runs) for k in keys) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["cost", "mia", "gap", "auditors", "gradients"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="cost: the seed of the one setting timed")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--alphas", default="0,0.5,1,2,5", help="mia: must include 0 (the paired baseline)")
    parser.add_argument("--groupings", default="per-class,single")
    parser.add_argument("--selection", default="two-sided", help="mia: SG's checkpoint rule (two-sided, paper, last)")
    parser.add_argument("--svm", action="store_true", help="cost: also time the cvxpylayers SVM auditor")
    parser.add_argument("--n-reference", type=int, default=8, help="gap: RMIA reference models (0: no RMIA)")
    parser.add_argument("--cifar", default=None, help="cost: also time SG on CIFAR-10 (folder or .tar.gz)")
    parser.add_argument("--cifar-epochs", type=int, default=20, help="cost --cifar: the CNN's training epochs")
    parser.add_argument("--cifar-sg-epochs", type=int, default=2, help="cost --cifar: SG epochs timed")
    parser.add_argument("--bank", default=None, help="model bank folder (default: the user's bank)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bank = ModelBank(args.bank)
    parts = {"cost": part_cost, "mia": part_mia, "gap": part_gap, "auditors": part_auditors, "gradients": part_gradients}
    parts[args.part](args, bank)


if __name__ == "__main__":
    main()
