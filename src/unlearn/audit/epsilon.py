"""The NeurIPS 2023 Machine Unlearning challenge's score (Triantafillou et al. 2024, "Are we making
progress in unlearning? Findings from the first NeurIPS unlearning competition", Sec. 3).

An unlearning algorithm U is (ε, δ)-unlearning when, for every forget example, no test tells
"model from U" from "model retrained without D_F" with FPR and FNR better than the (ε, δ)
trade-off allows. The challenge estimates ε per forget example from many models of each kind:

1. N unlearned models U_1..U_N and N retrained models R_1..R_N; for each forget example x, the
   signal of each model on x (here the true-label cross-entropy loss, as the challenge kit's attack).
2. Attacks: every threshold on the signal, in both directions ("U if loss > t" and "U if loss ≤ t"),
   each with its FPR (a retrained model called unlearned) and FNR (an unlearned one called retrained).
3. ε(x) = max over attacks of max{ln(1 − δ − FPR) − ln FNR, ln(1 − δ − FNR) − ln FPR}, δ = 1e-5;
   an attack with FPR = FNR = 0 separates perfectly (ε = ∞); one with exactly one of them 0 is
   discarded, as in the kit (its ε is unbounded by an artefact of N).
4. Points per example by ε bucket of width 0.5: 1 for ε < 0.5, ½ for ε < 1, ¼ for ε < 1.5, …
   (2 / 2^bucket, 13 buckets; ε = ∞ gets the last); F = mean points over D_F.
5. Score = F × (RA_U / RA_R) × (TA_U / TA_R): retain and test accuracy of the unlearned models
   over those of the retrained ones (means over the N models).

Higher is better; Retrain itself scores near the top attainable with N models (with few models
even two retrained sets look a little apart by chance), an unlearner that does nothing near 0.

Where the N models come from (`epsilon_score`): the i-th unlearned model is the method applied to
the i-th original model (trained on D with seed i) with run seed i, and R_i is trained on D_R with
seed 1,000 + i. The challenge unlearned one fixed original N times; sampling the original too
follows the (ε, δ) definition, which is over the randomness of training and unlearning, and lets a
deterministic method (Retrain, which reuses its original's seed) be measured at all. Every model
comes from the bank, so originals and retrained models are shared by every method.
"""

from __future__ import annotations

import numpy as np

from unlearn.data import Dataset, ForgetSplit
from unlearn.errors import UnlearnInputError
from unlearn.models import accuracy, per_sample_loss

DELTA = 1e-5
BUCKET_WIDTH = 0.5
BUCKETS = 13
RETRAINED_SEED = 1_000


def example_epsilons(unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA) -> np.ndarray:
    """ε per example from signals (N, S) of N unlearned and N retrained models on S forget examples."""
    unlearned, retrained = np.asarray(unlearned, np.float64), np.asarray(retrained, np.float64)
    if unlearned.shape != retrained.shape or unlearned.ndim != 2 or unlearned.shape[0] < 2:
        raise UnlearnInputError(f"ε score: need signals (N ≥ 2, S) of equal shape, got {unlearned.shape} "
                                f"and {retrained.shape}")
    thresholds = np.concatenate([unlearned, retrained])              # (2N, S): every observed value
    # "U if signal > t": FPR = retrained above t, FNR = unlearned at or below t.
    above_r = (retrained[None] > thresholds[:, None]).mean(1)        # (2N, S)
    above_u = (unlearned[None] > thresholds[:, None]).mean(1)
    rates = [(above_r, 1 - above_u), (1 - above_r, above_u)]         # both directions of the threshold
    epsilon = np.zeros(unlearned.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        for fpr, fnr in rates:
            both = np.fmax(np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr))
            both = np.where((fpr == 0) & (fnr == 0), np.inf, both)
            both = np.where((fpr == 0) ^ (fnr == 0), -np.inf, both)  # discarded, as in the kit
            epsilon = np.fmax(epsilon, np.nan_to_num(both, nan=-np.inf, posinf=np.inf).max(0))
    return epsilon


def forgetting_quality(epsilons: np.ndarray) -> float:
    """F = mean over examples of 2 / 2^bucket(ε), buckets [0, 0.5), [0.5, 1), … (1, ½, ¼, …)."""
    buckets = np.digitize(np.asarray(epsilons, np.float64), np.arange(BUCKETS) * BUCKET_WIDTH)
    return float(np.mean(2.0 / 2.0 ** buckets))


def epsilon_summary(unlearned_loss, retrained_loss, accuracies_unlearned, accuracies_retrained,
                    delta: float = DELTA) -> dict:
    """The challenge's figures from losses (N, S) and per-model {"retain", "test"} accuracies."""
    eps = example_epsilons(unlearned_loss, retrained_loss, delta)
    quality = forgetting_quality(eps)
    ra = np.mean([a["retain"] for a in accuracies_unlearned]) / np.mean([a["retain"] for a in accuracies_retrained])
    ta = np.mean([a["test"] for a in accuracies_unlearned]) / np.mean([a["test"] for a in accuracies_retrained])
    finite = eps[np.isfinite(eps)]
    return {"score": 100 * quality * ra * ta, "forgetting_quality": 100 * quality,
            "ra_ratio": float(ra), "ta_ratio": float(ta),
            # None: more than half of D_F perfectly separated (ε = ∞; JSON has no infinity)
            "median_epsilon": float(np.median(eps)) if np.isfinite(np.median(eps)) else None,
            "separated": 100 * float(np.mean(~np.isfinite(eps))),
            "max_finite_epsilon": float(finite.max()) if finite.size else 0.0, "n_models": len(unlearned_loss)}


def epsilon_score(method, dataset: Dataset, split: ForgetSplit, arch: str, recipe, *, arch_args: dict | None = None,
                  bank=None, n_models: int = 8, with_retain: bool = True, test=None, device="cpu",
                  progress: bool | None = None, **context) -> dict:
    """The challenge's score of `method` on `split`, from `n_models` unlearned and retrained models.

    All figures in percent except the ratios and ε. `test` is the test side for TA (default: the test split).
    """
    from unlearn.bank import ModelBank
    from unlearn.progress import progress_bar
    from unlearn.training import get_recipe

    if n_models < 2:
        raise UnlearnInputError(f"the ε score needs at least 2 models of each kind, got n_models={n_models}")
    bank = bank if bank is not None else ModelBank()
    recipe = get_recipe(recipe)
    forget, retain = dataset.train.subset(split.forget), dataset.train.subset(split.retain)
    test = dataset.test if test is None else test
    losses = {"unlearned": [], "retrained": []}
    accs = {"unlearned": [], "retrained": []}
    with progress_bar(progress) as bar:
        task = bar.add_task(f"ε score: {n_models} unlearned + {n_models} retrained models", total=n_models)
        for i in range(n_models):
            original = bank.get(dataset, arch, None, recipe, seed=i, device=device, arch_args=arch_args,
                                progress=False, name=f"original {i + 1}/{n_models}")
            unlearned = method.unlearn(original, forget, retain if with_retain else None, seed=i, device=device,
                                       bank=bank, dataset=dataset, split=split, **context)
            retrained = bank.get(dataset, arch, split.retain, recipe, seed=RETRAINED_SEED + i, device=device,
                                 arch_args=arch_args, progress=False, name=f"retrained {i + 1}/{n_models}")
            for kind, model in (("unlearned", unlearned), ("retrained", retrained)):
                losses[kind].append(per_sample_loss(model, forget).numpy())
                accs[kind].append({"retain": accuracy(model, retain), "test": accuracy(model, test)})
            bar.advance(task)
    return epsilon_summary(np.stack(losses["unlearned"]), np.stack(losses["retrained"]), accs["unlearned"],
                           accs["retrained"])
