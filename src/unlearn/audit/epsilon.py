"""The NeurIPS 2023 Machine Unlearning challenge's score (Triantafillou et al. 2024, "Are we making
progress in unlearning? Findings from the first NeurIPS unlearning competition", Sec. 3), computed
as the challenge's metric (google-deepmind/unlearning_evaluation, metric.py) computes it.

An unlearning algorithm U is (ε, δ)-unlearning when, for every forget example, no test tells
"model from U" from "model retrained without D_F" with FPR and FNR better than the (ε, δ)
trade-off allows. The challenge estimates ε per forget example from N models of each kind:

1. Signal: the logit-scaled confidence of each model on x, φ = log(p_y / (1 − p_y)) (LiRA's), computed
   exactly from the logits (`scores.logit_confidence`), so confident examples stay apart: the
   cross-entropy loss in float32 rounds to 0 beyond a logit margin of about 17 and would tie them.
2. Peakiness rule: if the narrower of the two samples (max − min over the N models) spans less than
   1% of the wider, ε = 50, the cap (a method whose models all give x one value is flagged).
3. Otherwise two families of attacks, each an (FPR, FNR) pair over the N + N models. "Positive" is
   the kind whose median is larger (ties: unlearned) for the single threshold, the narrower kind
   (ties: the other one) for the double threshold:
   - single threshold: "positive if φ ≥ t", t on a grid of 100 points per unit from min to max φ;
   - double threshold: "positive if l ≤ φ ≤ r", r on a grid of 100 per unit from
     min_P + w − 2 to max_P + 2 (P the narrower sample, w its width), and for each r 400 values of
     l evenly from r − w − 2 to r − w + 2 (windows about as wide as P, ± 2).
4. Per attack ε = max{ln(1 − δ − FPR) − ln FNR, ln(1 − δ − FNR) − ln FPR} clipped below at 0, δ = 1e-5;
   FPR = FNR = 0 (perfect separation) gives ∞; exactly one of them 0 discards the attack (taken
   as too few samples). ε(x) = the largest over the kept attacks, clipped to [0, 50]. (The
   challenge's code stops with an error when every attack is discarded, which happens only when
   both kinds give x one and the same value: ε = 0 here, nothing tells them apart.)
5. Points per example: 1 for ε < 0.5, ½ for ε < 1, ¼ for ε < 1.5, … over 2⌈ln(N − 1)⌉ buckets of
   width 0.5 (with N models no larger ε can be told from chance: the bound is ln(N − 1)); an ε at
   or above ⌈ln(N − 1)⌉, a peaky or separated example among them, gets 0. F = mean over D_F.
6. Score = F × (RA_U / RA_R) × (TA_U / TA_R): retain and test accuracy of the unlearned models
   over those of the retrained ones (means over the N models).

Higher is better. With N models even two sets of retrained models look apart on some examples
by chance (ε is a maximum over hundreds of thousands of noisy attacks), so Retrain itself scores
well below 100: compare methods at the same N (the challenge used N = 512).

Differences from the challenge's code, none of which changes a figure on continuous signals: rates
and logarithms in float64 (theirs: float32), and φ exact (theirs adds 1e-45 to both probabilities,
which caps |φ| at about 103.6).

Where the N models come from (`epsilon_score`): the i-th unlearned model is the method applied to
the i-th original model (trained on D with seed i) with run seed i, and R_i is trained on D_R with
seed 1,000 + i, so no retrained model is one of Retrain's own outputs. The challenge unlearned one
fixed original N times; sampling the original too follows the (ε, δ) definition, which is over the
randomness of training and unlearning, and lets a deterministic method (Retrain, which reuses its
original's seed) be measured at all. Every model comes from the bank, so originals and retrained
models are shared by every method.
"""

from __future__ import annotations

import math

import numpy as np

from unlearn.audit.scores import logit_confidence
from unlearn.data import Dataset, ForgetSplit
from unlearn.errors import UnlearnInputError
from unlearn.models import accuracy, logits

DELTA = 1e-5
EPSILON_CAP = 50.0     # ε of a peaky or perfectly separated example
PEAKY_RATIO = 0.01     # narrower width / wider width below which an example is peaky
STEPS_PER_UNIT = 100   # threshold grid points per unit of φ
WINDOW_SLACK = 2.0     # a double threshold's window: the narrower sample's width ± this
LEFT_STEPS = math.ceil(2 * WINDOW_SLACK * STEPS_PER_UNIT)  # values of l per r
BUCKET_WIDTH = 0.5
RETRAINED_SEED = 1_000


def bucket_count(n_models: int) -> int:
    """2⌈ln(N − 1)⌉: the ε buckets of width 0.5 that N models of each kind can resolve."""
    if n_models < 3:
        raise UnlearnInputError(f"the ε score needs at least 3 models of each kind (with N = {n_models}, "
                                f"2⌈ln(N − 1)⌉ = 0 buckets: every score would be 0)")
    return 2 * math.ceil(math.log(n_models - 1))


def attack_epsilons(n: int, delta: float = DELTA) -> np.ndarray:
    """ε of an attack with FPR = a/n and FNR = b/n, as a table [a, b]: ∞ for a perfect separation,
    −∞ for an attack the challenge discards (exactly one rate 0, or both 1)."""
    rate = np.arange(n + 1) / n
    fpr, fnr = rate[:, None], rate[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.fmax(np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr))
    eps = np.where(np.isnan(eps) | (fpr * fnr == 0), -np.inf, np.clip(eps, 0, None))
    eps[0, 0] = np.inf
    return eps


def _single_threshold_counts(positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positives, false negatives) of "positive if φ ≥ t" for every t of the grid (sorted inputs)."""
    low, high = min(positive[0], negative[0]), max(positive[-1], negative[-1])
    thresholds = np.linspace(low, high, math.ceil((high - low) * STEPS_PER_UNIT))
    false_pos = negative.size - np.searchsorted(negative, thresholds, "left")
    return false_pos, np.searchsorted(positive, thresholds, "left")


def _double_threshold_counts(narrow: np.ndarray, wide: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positives, false negatives) of "narrow if l ≤ φ ≤ r" for every window of the grid."""
    width = narrow[-1] - narrow[0]
    low, high = narrow[0] + width - WINDOW_SLACK, narrow[-1] + WINDOW_SLACK
    right = np.linspace(low, high, math.ceil((high - low) * STEPS_PER_UNIT))
    left = np.linspace(right - width - WINDOW_SLACK, right - width + WINDOW_SLACK, LEFT_STEPS, axis=1)

    def inside(sorted_values):  # how many values lie in [l, r], per window (none when l > r)
        at_most_right = np.searchsorted(sorted_values, right, "right")[:, None]
        return np.maximum(at_most_right - np.searchsorted(sorted_values, left, "left"), 0).ravel()

    return inside(wide), narrow.size - inside(narrow)


def example_epsilons(unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA) -> np.ndarray:
    """ε per example from signals φ (N, S) of N unlearned and N retrained models on S forget examples."""
    unlearned, retrained = np.asarray(unlearned, np.float64), np.asarray(retrained, np.float64)
    if unlearned.shape != retrained.shape or unlearned.ndim != 2 or unlearned.shape[0] < 2:
        raise UnlearnInputError(f"ε score: need signals (N ≥ 2, S) of equal shape, got {unlearned.shape} "
                                f"and {retrained.shape}")
    if not (np.isfinite(unlearned).all() and np.isfinite(retrained).all()):
        raise UnlearnInputError("ε score: the signals contain NaN or infinite values")
    table = attack_epsilons(unlearned.shape[0], delta)
    retrained_positive = np.median(retrained, 0) > np.median(unlearned, 0)
    epsilons = np.empty(unlearned.shape[1])
    for i in range(unlearned.shape[1]):
        u, r = np.sort(unlearned[:, i]), np.sort(retrained[:, i])
        positive, negative = (r, u) if retrained_positive[i] else (u, r)
        positive_width, negative_width = positive[-1] - positive[0], negative[-1] - negative[0]
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 when both kinds give one value
            peaky = min(positive_width, negative_width) / max(positive_width, negative_width) < PEAKY_RATIO
        if peaky:
            epsilons[i] = EPSILON_CAP
            continue
        narrow, wide = (negative, positive) if positive_width >= negative_width else (positive, negative)
        best = -np.inf
        for false_pos, false_neg in (_single_threshold_counts(positive, negative),
                                     _double_threshold_counts(narrow, wide)):
            if false_pos.size:
                best = max(best, table[false_pos, false_neg].max())
        epsilons[i] = min(max(best, 0.0), EPSILON_CAP)  # every attack discarded: nothing tells them apart
    return epsilons


def forgetting_quality(epsilons: np.ndarray, n_models: int) -> float:
    """F = mean over examples of 1, ½, ¼, … for ε in [0, 0.5), [0.5, 1), …, 0 past the last of
    2⌈ln(N − 1)⌉ buckets."""
    bucket = np.floor(np.asarray(epsilons, np.float64) / BUCKET_WIDTH)
    return float(np.mean(np.where(bucket < bucket_count(n_models), 0.5 ** bucket, 0.0)))


def epsilon_summary(unlearned_signal, retrained_signal, accuracies_unlearned, accuracies_retrained,
                    delta: float = DELTA) -> dict:
    """The challenge's figures from signals φ (N, S) and per-model {"retain", "test"} accuracies."""
    eps = example_epsilons(unlearned_signal, retrained_signal, delta)
    n_models = len(unlearned_signal)
    quality = forgetting_quality(eps, n_models)
    ra = np.mean([a["retain"] for a in accuracies_unlearned]) / np.mean([a["retain"] for a in accuracies_retrained])
    ta = np.mean([a["test"] for a in accuracies_unlearned]) / np.mean([a["test"] for a in accuracies_retrained])
    below_cap = eps[eps < EPSILON_CAP]
    return {"score": 100 * quality * ra * ta, "forgetting_quality": 100 * quality,
            "ra_ratio": float(ra), "ta_ratio": float(ta), "median_epsilon": float(np.median(eps)),
            # at the cap: perfectly separated or peaky, 0 points
            "separated": 100 * float(np.mean(eps >= EPSILON_CAP)),
            "max_finite_epsilon": float(below_cap.max()) if below_cap.size else 0.0,
            "buckets": bucket_count(n_models), "n_models": n_models}


def forget_signal(model, forget) -> np.ndarray:
    """φ = log(p_y / (1 − p_y)) of `model` on every forget example (the challenge's signal)."""
    return logit_confidence(logits(model, forget), forget.y).numpy()


def epsilon_score(method, dataset: Dataset, split: ForgetSplit, arch: str, recipe, *, arch_args: dict | None = None,
                  bank=None, n_models: int = 8, with_retain: bool = True, test=None, device="cpu",
                  progress: bool | None = None, **context) -> dict:
    """The challenge's score of `method` on `split`, from `n_models` unlearned and retrained models.

    All figures in percent except the ratios and ε. `test` is the test side for TA (default: the test split).
    """
    from unlearn.bank import ModelBank
    from unlearn.progress import progress_bar
    from unlearn.training import get_recipe

    bucket_count(n_models)  # refuses too few models before anything is trained
    bank = bank if bank is not None else ModelBank()
    recipe = get_recipe(recipe)
    forget, retain = dataset.train.subset(split.forget), dataset.train.subset(split.retain)
    test = dataset.test if test is None else test
    signals = {"unlearned": [], "retrained": []}
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
                signals[kind].append(forget_signal(model, forget))
                accs[kind].append({"retain": accuracy(model, retain), "test": accuracy(model, test)})
            bar.advance(task)
    return epsilon_summary(np.stack(signals["unlearned"]), np.stack(signals["retrained"]), accs["unlearned"],
                           accs["retrained"])
