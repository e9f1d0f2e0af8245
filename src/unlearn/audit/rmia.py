"""RMIA: the relative membership-inference attack (Zarifzadeh et al., ICML 2024, "Low-Cost
High-Power Membership Inference Attacks"), as its authors run it, to audit unlearning.

For a point x the signal is p(x|θ), a probability the audited model gives the true label: the
softmax at a temperature, or the authors' soft-margin Taylor-softmax (`scores`). p̄(x) is its mean
over reference models, a trimmed mean as in the authors' code (a fraction `trim` of the models cut
at each end, per point): online over all of them, offline over the models x is OUT of, corrected
as p̄ = ((1 + a)·mean_OUT + (1 − a)) / 2 (paper Sec. 3). The likelihood ratio against a population
point z is LR(x, z) = (p(x|θ)/p̄(x)) / (p(z|θ)/p̄(z)), and score(x) = fraction of population points
z with LR(x, z) > γ. With augmented queries (`queries` views of every point, see `queries`), the
test LR > γ is decided per view and the views vote (majority; a tie counts as "no"), as the authors
do. The audit reports ROC AUC of D_F (positives) vs D_T and TPR at 1% and 0.1% FPR. For the
retrained model D_F is as unseen as D_T, so its AUC is ≈ 50.

The population Z is the test side D_T: points of the pool that the audited model never saw (the
paper draws Z from population data that are non-members of the target).

Offline `a`: ML Privacy Meter fits it by attacking one of its reference models with the others over
a grid a ∈ {0, 0.1, …, 1} and keeping the a of the highest AUC; `offline_a="fit"` does the same with
reference model 0 as the attacked model (its IN and OUT audited points as the two classes) and the
other models as its references. A number fixes a instead (0.3 was the authors' earlier default).

`RMIASettings.authors()` is the authors' CIFAR-10 setting (taylor-soft-margin at T = 2, m = 0.6,
4 terms, trim 0.2, augmented views, γ = 2); `RMIASettings.legacy()` this project's earlier one
(softmax at T = 1, plain mean, one query, γ = 2, a = 0.3); `RMIASettings()` the default chosen from
`benchmarks/bench_audit.py strength` (docs/audits.md): on mnist1d the plain signal is the stronger.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from unlearn.audit.references import References
from unlearn.audit.scores import roc_summary, soft_margin_taylor_probability, true_class_probability
from unlearn.errors import UnlearnInputError

SIGNALS = ("softmax", "taylor-soft-margin")
OFFLINE_A_GRID = np.round(np.arange(0, 1.01, 0.1), 2)


@dataclass(frozen=True)
class RMIASettings:
    """Everything RMIA's result depends on besides the models; recorded with every result."""

    # Defaults from `benchmarks/bench_audit.py strength` (docs/audits.md): the authors' soft-margin
    # Taylor signal and trimmed mean made RMIA weaker on the mnist1d MLP (AUC 43 / 84 vs 89 with 16
    # references), so they are options; views help when they are the model's own augmentation
    # (CIFAR subset trained with flips: 96.8 vs 95.6) and hurt otherwise (mnist1d shifts: 66 vs 89),
    # hence queries = 0, "the model's own"; γ = 1 (current ML Privacy Meter) matched γ = 2 in AUC
    # and raised TPR at 1% FPR (26.9 vs 16.9 with 8 references on mnist1d).
    signal: str = "softmax"              # or "taylor-soft-margin" (the authors' CIFAR-10 choice)
    temperature: float = 1.0             # authors: 2 with taylor-soft-margin
    margin: float = 0.6                  # soft margin subtracted from the true logit (taylor-soft-margin)
    taylor_terms: int = 4                # terms of the truncated exponential (the authors' taylor_n)
    trim: float = 0.0                    # fraction of reference models cut at each end (authors: 0.2)
    queries: int = 0                     # views per point; 0: the model's own augmentation (authors: 18)
    gamma: float = 1.0                   # authors' 2023 configs: 2; ML Privacy Meter today: 1
    offline_a: float | str = "fit"

    def __post_init__(self):
        problems = []
        if self.signal not in SIGNALS:
            problems.append(f"signal must be one of {', '.join(SIGNALS)}, got {self.signal!r}")
        if not self.temperature > 0:
            problems.append(f"temperature must be positive, got {self.temperature}")
        if self.taylor_terms < 2:
            problems.append(f"taylor_terms must be at least 2, got {self.taylor_terms}")
        if not 0 <= self.trim < 0.5:
            problems.append(f"trim must lie in [0, 0.5), got {self.trim}")
        if self.queries < 0:
            problems.append(f"queries must be 0 (the model's own augmentation) or a count, got {self.queries}")
        if not self.gamma > 0:
            problems.append(f"gamma must be positive, got {self.gamma}")
        if self.offline_a != "fit" and not (isinstance(self.offline_a, int | float) and 0 <= self.offline_a <= 1):
            problems.append(f"offline_a must be 'fit' or a number in [0, 1], got {self.offline_a!r}")
        if problems:
            raise UnlearnInputError("RMIA settings: " + "; ".join(problems))

    @classmethod
    def legacy(cls) -> RMIASettings:
        """The setting this project used before issue 14: plain softmax, plain mean, one query."""
        return cls(signal="softmax", temperature=1.0, margin=0.0, trim=0.0, queries=1, gamma=2.0, offline_a=0.3)

    @classmethod
    def authors(cls, queries: int = 18) -> RMIASettings:
        """The RMIA authors' CIFAR-10 setting (research/2023_rmia configs of ML Privacy Meter)."""
        return cls(signal="taylor-soft-margin", temperature=2.0, margin=0.6, taylor_terms=4, trim=0.2,
                   queries=queries, gamma=2.0, offline_a="fit")

    @classmethod
    def of(cls, value: RMIASettings | dict | None) -> RMIASettings:
        """Settings from themselves, a dict of some fields (the rest default) or None (the default)."""
        if value is None or isinstance(value, RMIASettings):
            return value or cls()
        unknown = set(value) - {f.name for f in fields(cls)}
        if unknown:
            raise UnlearnInputError(f"RMIA settings: unknown key(s) {sorted(unknown)}; known: "
                                    f"{', '.join(f.name for f in fields(cls))}")
        return cls(**value)

    def to_dict(self) -> dict:
        return asdict(self)

    def signal_of(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """p(x|θ) per point from logits (n, C)."""
        if self.signal == "softmax":
            return true_class_probability(logits, labels, self.temperature)
        return soft_margin_taylor_probability(logits, labels, self.temperature, self.margin, self.taylor_terms)


def trimmed_mean(values: np.ndarray, mask: np.ndarray | None = None, trim: float = 0.0) -> np.ndarray:
    """Mean over axis 0 of `values` (K, ...) where `mask` (K, ...) is True, after cutting ⌊trim·count⌋
    values at each end (scipy's `trim_mean`, per entry and over the masked models only)."""
    values = np.asarray(values, dtype=np.float64)
    mask = np.ones(values.shape, bool) if mask is None else np.broadcast_to(mask, values.shape)
    count = mask.sum(0)
    if (count == 0).any():
        raise UnlearnInputError("offline RMIA needs, for every point, at least one reference model it is OUT of")
    ordered = np.sort(np.where(mask, values, np.inf), axis=0)  # masked-out entries sort last
    cut = np.floor(trim * count).astype(int)
    rank = np.arange(values.shape[0]).reshape((-1,) + (1,) * (values.ndim - 1))
    keep = (rank >= cut) & (rank < count - cut)
    return np.where(keep, ordered, 0.0).sum(0) / keep.sum(0)


def mean_reference_probability(reference_p: np.ndarray, members: np.ndarray, offline: bool = False,
                               offline_a: float = 0.3, trim: float = 0.0) -> np.ndarray:
    """p̄(x) per point from reference probabilities (K, ..., n) and memberships (K, n)."""
    members = np.asarray(members, bool).reshape(members.shape[:1] + (1,) * (reference_p.ndim - 2) + members.shape[1:])
    if not offline:
        return trimmed_mean(reference_p, None, trim)
    mean_out = trimmed_mean(reference_p, ~members, trim)
    return ((1 + offline_a) * mean_out + (1 - offline_a)) / 2


def rmia_scores(target_p: np.ndarray, mean_p: np.ndarray, population: np.ndarray, gamma: float = 2.0) -> np.ndarray:
    """score(x) = fraction of population points z with LR(x, z) > γ, for every point x.

    `target_p` and `mean_p` are p(x|θ) and p̄(x) per point, shaped (n,) for one query or (Q, n) for Q
    augmented views; `population` selects the points z (a boolean mask or an index array). With one
    query, LR(x, z) = ratio(x) / ratio(z) > γ ⟺ ratio(z) < ratio(x) / γ for a positive ratio(z) (and
    > for a negative one: the authors' 4-term Taylor signal can be negative, and neither they nor we
    clip it), so one sort of the population ratios answers all points at once (O(n log n)); with Q
    views every (x, z) pair is a majority vote of the views' tests, done in blocks of points
    (O(Q·n·|Z|) time, bounded memory). Ratios divide by p̄ as it is, as the authors' code does.
    """
    if gamma <= 0:
        raise UnlearnInputError(f"RMIA's gamma must be positive, got {gamma}")
    with np.errstate(divide="ignore", invalid="ignore"):  # p̄ = 0: ±∞ or NaN, as in the authors' numpy
        ratio = np.asarray(target_p, dtype=np.float64) / np.asarray(mean_p, dtype=np.float64)
    if ratio.ndim == 1 or ratio.shape[0] == 1:
        ratio = ratio.reshape(-1)
        z_ratio = np.sort(ratio[population])
        if z_ratio.size == 0:
            raise UnlearnInputError("RMIA needs at least one population point")
        positive, negative = z_ratio[z_ratio > 0], z_ratio[z_ratio < 0]
        bound = ratio / gamma
        count = (np.searchsorted(positive, bound, side="left") + negative.size
                 - np.searchsorted(negative, bound, side="right") + (z_ratio == 0).sum() * (ratio > 0))
        return np.where(np.isnan(ratio), 0, count) / z_ratio.size
    z_ratio = ratio[:, population]
    if z_ratio.shape[1] == 0:
        raise UnlearnInputError("RMIA needs at least one population point")
    views = ratio.shape[0]
    scores = np.empty(ratio.shape[1])
    block = max(1, 4_000_000 // (views * z_ratio.shape[1]))
    for start in range(0, ratio.shape[1], block):
        x = ratio[:, start:start + block, None]
        votes = likelihood_ratio_exceeds(x, z_ratio[:, None, :], gamma).sum(0)  # views that say LR(x, z) > γ
        scores[start:start + block] = (2 * votes > views).mean(1)
    return scores


def likelihood_ratio_exceeds(ratio_x: np.ndarray, ratio_z: np.ndarray, gamma: float) -> np.ndarray:
    """LR(x, z) = ratio_x / ratio_z > γ, without dividing: by the sign of ratio_z (ratio_z = 0: LR is
    ±∞ by the sign of ratio_x; NaN never exceeds)."""
    return np.where(ratio_z > 0, ratio_x > gamma * ratio_z,
                    np.where(ratio_z < 0, ratio_x < gamma * ratio_z, (ratio_z == 0) & (ratio_x > 0)))


def fit_offline_a(reference_p: np.ndarray, members: np.ndarray, settings: RMIASettings) -> float:
    """The a of `OFFLINE_A_GRID` with the highest AUC when reference 0 is attacked offline by the others."""
    if reference_p.shape[0] < 2:
        raise UnlearnInputError("fitting RMIA's offline a needs at least 2 reference models")
    target, others, other_members = reference_p[0], reference_p[1:], members[1:]
    usable = (~other_members).any(0)  # points OUT of at least one of the other models
    is_member = members[0][usable]
    if is_member.all() or not is_member.any():
        return 0.3  # reference 0 saw all or none of the usable points: nothing to fit on
    best, best_auc = 0.3, -1.0
    for a in OFFLINE_A_GRID:
        mean_p = mean_reference_probability(others[..., usable], other_members[:, usable], True, a, settings.trim)
        scores = rmia_scores(target[..., usable], mean_p, ~is_member, settings.gamma)
        auc = roc_summary(scores[is_member], scores[~is_member])["auc"]
        if auc > best_auc:
            best, best_auc = float(a), auc
    return best


def rmia_point_scores(target_logits: torch.Tensor, labels: torch.Tensor, references: References,
                      population: np.ndarray, settings: RMIASettings | dict | None = None,
                      offline: bool = False) -> tuple[np.ndarray, float | None]:
    """RMIA score of every point of `references.points`, and the offline a used (None online).

    `target_logits` (Q, n, C) are the audited model's logits on the Q augmented views of the points,
    in the same order; `references.logits` is (K, Q, n, C); `population` marks the points z.
    """
    settings = RMIASettings.of(settings)
    views = min(settings.queries or target_logits.shape[0], target_logits.shape[0], references.logits.shape[1])
    target_p = np.stack([settings.signal_of(target_logits[q], labels).numpy() for q in range(views)])
    reference_p = np.stack([[settings.signal_of(lg[q], labels).numpy() for q in range(views)]
                            for lg in references.logits])
    offline_a = None
    if offline:
        offline_a = (fit_offline_a(reference_p, references.members, settings)
                     if settings.offline_a == "fit" else float(settings.offline_a))
    mean_p = mean_reference_probability(reference_p, references.members, offline,
                                        offline_a if offline_a is not None else 0.0, settings.trim)
    return rmia_scores(target_p, mean_p, population, settings.gamma), offline_a


def rmia(target_logits: torch.Tensor, labels: torch.Tensor, references: References, is_forget: np.ndarray, *,
         settings: RMIASettings | dict | None = None, offline: bool = False) -> dict:
    """RMIA of D_F (points with `is_forget`) vs D_T (the others, also the population Z); "scores" per point."""
    scores, offline_a = rmia_point_scores(target_logits, labels, references, ~is_forget, settings, offline)
    result = {} if offline_a is None else {"offline_a": offline_a}
    return {**result, **roc_summary(scores[is_forget], scores[~is_forget]), "scores": scores}
