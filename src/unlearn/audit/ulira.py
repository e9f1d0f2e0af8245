"""U-LiRA: LiRA against unlearning (Hayes et al., SaTML 2025, "Inexact Unlearning Needs More
Careful Evaluations to Avoid a False Sense of Privacy").

The question is about the *method*, not one model: can an attacker tell a model that was trained
with x and then unlearned x by the method from a model that never saw x? Shadow models come in
pairs over a fixed set of target points T (random pool points):

- base model s: trained on all of T plus random other pool points, n_train in all (the size of the
  dataset's training split, so that shadows are exchangeable with the audited model, as the RMIA
  reference models are);
- forget set F_s: a random half of T (shadow s+1 of a pair forgets the complementary half, so
  every target is forgotten in exactly half of the shadows), plus random non-target points of the
  base's training set up to `forget_size` points in all: the request has the size of the audited
  one (`evaluate` passes |D_F|), since how well a method forgets depends on how much it is asked
  to forget. Only the targets are scored. (`forget_size=None`: the half of T alone, 32 points with
  the default 64 targets, this module's earlier request whatever |D_F| was.);
- "unlearned" U_s = method.unlearn(base_s, F_s, rest of the base's training set);
- "retrained" R_s = trained from scratch without F_s (another seed than the base).

For each target x and each shadow s that forgot it, φ(x) under U_s and R_s are the two samples.
Held-out shadow by held-out shadow, Gaussians of φ(x) for "unlearned" and "retrained" are fitted on
the other shadows (variance pooled over targets, as LiRA does with few models) and each of the
held-out pair's two models is classified by the likelihood ratio. The reported figure is the
balanced accuracy of these decisions, in percent: 50 means the method is indistinguishable from
retraining (exact unlearning gives ≈ 50), higher means the unlearning leaves a trace.

Per-target means need samples: with S shadows each target is forgotten by S/2 of them, so each
leave-one-out fit rests on S/2 − 1 samples per hypothesis (3 with 8 shadows, 7 with the protocol
default of 16). The cost is S/2 base models, S retrained models and S unlearning runs, whatever
`forget_size` (an unlearning run over a larger D_F costs more for methods that pass over D_F); on
mnist1d (MLP, 60 epochs, one core) that is about 24 trainings of 7 s for S = 16 (docs/audits.md).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from unlearn.audit.references import population
from unlearn.audit.scores import logit_confidence
from unlearn.data import Dataset
from unlearn.errors import UnlearnInputError
from unlearn.models import logits as model_logits
from unlearn.progress import progress_bar
from unlearn.training import Recipe, get_recipe


def ulira(method, dataset: Dataset, arch: str, *, arch_args: dict | None = None, recipe: str | Recipe | dict,
          bank=None, n_shadow: int = 16, n_targets: int = 64, forget_size: int | None = None, seed: int = 0,
          device="cpu", progress: bool | None = None, **context) -> dict[str, float]:
    """U-LiRA balanced accuracy of `method` (any object with `.unlearn(model, forget, retain, seed=)`).

    `forget_size`: points each shadow is asked to forget (its half of the targets and random others).
    """
    from unlearn.bank import ModelBank

    if n_shadow < 4 or n_shadow % 2:
        raise UnlearnInputError(f"U-LiRA needs an even number of at least 4 shadow models, got {n_shadow}")
    bank = bank if bank is not None else ModelBank()
    recipe = get_recipe(recipe)
    pool = population(dataset)
    n_pool, n_train = len(pool.train), len(dataset.train)
    if not 2 <= n_targets <= min(n_pool // 4, n_train // 2):
        raise UnlearnInputError(f"U-LiRA n_targets must lie in [2, {min(n_pool // 4, n_train // 2)}], got {n_targets}")
    half_targets = (n_targets + 1) // 2
    if forget_size is not None and not half_targets <= forget_size <= n_train - n_targets + n_targets // 2:
        raise UnlearnInputError(f"U-LiRA forget_size must lie in [{half_targets}, {n_train - n_targets + n_targets // 2}]"
                                f" (half of the {n_targets} targets, plus other points of a shadow's {n_train}), "
                                f"got {forget_size}")
    rng = np.random.default_rng([seed, 7])
    targets = np.sort(rng.choice(n_pool, n_targets, replace=False))
    others = np.setdiff1d(np.arange(n_pool), targets)
    target_set = pool.train.subset(targets)
    phi_unlearned, phi_retrained, forgotten = [], [], []
    with progress_bar(progress) as bar:
        task = bar.add_task("U-LiRA shadow models", total=n_shadow)
        for pair in range(n_shadow // 2):
            pair_rng = np.random.default_rng([seed, 8, pair])
            base_idx = np.sort(np.r_[pair_rng.choice(others, n_train - n_targets, replace=False), targets])
            halves = np.array_split(pair_rng.permutation(n_targets), 2)
            base_seed = 20_000 + 10_000 * seed + pair
            base = bank.get(pool, arch, base_idx, recipe, seed=base_seed, device=device, arch_args=arch_args,
                            progress=False, name="U-LiRA base model")
            for side, half in enumerate(halves):
                forget_mask = np.zeros(n_targets, dtype=bool)
                forget_mask[half] = True
                forget_idx = targets[forget_mask]
                if forget_size is not None and forget_size > forget_idx.size:
                    others_in_base = np.setdiff1d(base_idx, targets)
                    extra = pair_rng.choice(others_in_base, forget_size - forget_idx.size, replace=False)
                    forget_idx = np.sort(np.r_[forget_idx, extra])
                retain_idx = np.setdiff1d(base_idx, forget_idx)
                unlearned = method.unlearn(base, pool.train.subset(forget_idx), pool.train.subset(retain_idx),
                                           seed=base_seed, device=device, bank=bank, dataset=pool,
                                           retain_indices=retain_idx, **context)
                retrained = bank.get(pool, arch, retain_idx, recipe, seed=base_seed + 5_000 + side, device=device,
                                     arch_args=arch_args, progress=False, name="U-LiRA retrained model")
                phi_unlearned.append(logit_confidence(model_logits(unlearned, target_set), target_set.y).numpy())
                phi_retrained.append(logit_confidence(model_logits(retrained, target_set), target_set.y).numpy())
                forgotten.append(forget_mask)
                bar.advance(task)
    return {"accuracy": balanced_accuracy(np.stack(phi_unlearned), np.stack(phi_retrained), np.stack(forgotten)),
            "n_shadow": n_shadow, "n_targets": n_targets,
            "forget_size": int(forget_idx.size) if forget_size is None else forget_size}


def balanced_accuracy(phi_unlearned: np.ndarray, phi_retrained: np.ndarray, forgotten: np.ndarray) -> float:
    """Leave-one-shadow-out balanced accuracy (percent) of the per-target likelihood-ratio test.

    Arrays are (shadows, targets); `forgotten[s, t]` says target t was forgotten by shadow s, which
    is when both φ values of (s, t) are samples of the two hypotheses.
    """
    n_shadow = forgotten.shape[0]
    true_positive, true_negative, count = 0, 0, 0
    for held in range(n_shadow):
        rest = np.arange(n_shadow) != held
        mask = forgotten[rest]
        if (mask.sum(0)[forgotten[held]] == 0).any():
            raise UnlearnInputError("U-LiRA: a target was forgotten by only one shadow model; use more shadows")
        fits = []
        for phi in (phi_unlearned[rest], phi_retrained[rest]):
            mean = np.where(mask, phi, 0.0).sum(0) / np.maximum(1, mask.sum(0))
            resid = np.where(mask, phi - mean, 0.0)
            std = max(np.sqrt((resid**2).sum() / max(1, mask.sum() - mask.any(0).sum())), 1e-6)
            fits.append((mean, std))
        (mu_u, sd_u), (mu_r, sd_r) = fits
        cols = forgotten[held]
        # Likelihood ratio > 0: "this model unlearned x" rather than "this model never saw x".
        verdict = {name: norm.logpdf(phi[held, cols], mu_u[cols], sd_u) > norm.logpdf(phi[held, cols], mu_r[cols], sd_r)
                   for name, phi in (("unlearned", phi_unlearned), ("retrained", phi_retrained))}
        true_positive += int(verdict["unlearned"].sum())
        true_negative += int((~verdict["retrained"]).sum())
        count += int(cols.sum())
    return 100.0 * (true_positive / count + true_negative / count) / 2


