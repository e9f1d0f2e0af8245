"""SG: Stackelberg-game unlearning against a differentiable MIA auditor.

Di, Yu, Vorobeychik, Liu, "Adversarial Machine Unlearning", ICLR 2025 (docs/methods.md, "sg").
The unlearner (leader) minimises

    C_u(θ_u) = L(D_R; θ_u) + α · U_a(θ_a*(θ_u)),

where the auditor (follower, `sg_auditor`) is re-fitted to the current model's outputs on D_F
(members) and on known non-members (the validation half of the test split, passed as `holdout`),
and U_a is its held-out utility, differentiated through its optimum θ_a* by implicit
differentiation. Each epoch: one SGD pass of the base objective (FT: cross-entropy on D_R; RL:
D_R plus D_F with random wrong labels, `methods.shared`), then one step on α·U_a accumulated
over all forget / non-member samples; the checkpoint kept is the epoch with the best trade of
validation accuracy against MIA accuracy (`selection`, below).

Every epoch draws the auditors' balanced subsample and train/test splits anew (the public code
reshuffles its auditor batches), and the MIA accuracy that selects the checkpoint comes from a
second, independent draw: auditors the unlearner has not just been trained against, whose
figure is not flattered by that step. Under class forgetting the validation accuracy counts the
retained classes only (a forgotten class's held-out samples are supposed to be misclassified,
and counting them would favour epochs that forgot less), and the single auditor uses all of D_F
as members, weighting classes and membership instead of cutting members to the non-member
count (`sg_auditor.audit_tasks`).

    sg = unlearn.methods.get("sg", alpha=1.0, epochs=30)
    new = sg.unlearn(model, forget, retain, holdout=dataset.test.subset(validation_indices))

Defects of the public code avoided here (docs/methods.md): the model is in eval mode (BatchNorm uses
running statistics, dropout off) while the auditor's batches are scored; the auditor carries a
ridge term (`l2`); the attacker step has its own SGD optimiser and momentum buffer; the cosine
schedule runs once over all epochs, set per epoch and never restarted.
Deviations: the default auditor is L2-regularised logistic regression solved in torch, not the
paper's hinge SVM (`auditor="svm"`, through cvxpylayers, an optional extra): it is smooth, so
the implicit gradient is exact (`sg_auditor`), and its loss grows only linearly in the margin,
so dU_a/dS stays bounded. With the squared-hinge auditor the leader learns to push a few
held-out rows ever further out (`benchmarks/bench_sg.py auditors`, digits seed 0, α = 1, 30
epochs: U_a reached -73 with the squared hinge, -1.1 with the logistic auditor; -1.6e4 and
-3.5 when the auditors' splits were fixed for the whole run instead of redrawn). The attacker
step's learning rate follows the same cosine schedule as the base step. Model selection is
two-sided by default: maximising the auditor's held-out loss drives its accuracy *below* 50%,
which the paper's (validation accuracy − MIA accuracy) rewards although such an auditor, inverted,
separates members as well (the Avg. Gap is two-sided for the same reason, docs/methods.md). Measured
on digits seed 2 (α = 5, lr 0.05, auditors redrawn per epoch): the paper's rule kept epoch 4
(validation 93.0%, MIA 39.9%), the two-sided rule epoch 3 (97.8%, 50.0%); `selection="paper"`
restores the paper's rule.
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
from torch import nn

from unlearn.data import ArrayDataset, as_float
from unlearn.errors import UnlearnInputError
from unlearn.methods.base import Method, register
from unlearn.methods.sg_auditor import (
    AUDITORS,
    FEATURES,
    audit,
    audit_tasks,
    auditor_features,
    compact_tasks,
    feature_scale,
)
from unlearn.methods.shared import finetune_recipe, num_classes_of, random_wrong_labels
from unlearn.models import accuracy, logits
from unlearn.training import Source, fit, make_optimizer


def is_class_forgetting(forget: ArrayDataset, retain: ArrayDataset | None) -> bool:
    """True when no retained sample shares a class with the forget set (whole classes are forgotten)."""
    if retain is None or len(retain) == 0:
        return False
    return not bool(np.isin(forget.y.numpy(), retain.y.numpy()).any())


@register
class SG(Method):
    """Stackelberg-game unlearning (Di et al., ICLR 2025).

    Parameters
    ----------
    alpha : weight of the auditor's utility; 0 switches the auditor off (paper grid
        {0, 0.05, 0.1, 0.25, 0.5, 1, 2, 5}).
    base : "ft" (cross-entropy on D_R) or "rl" (D_R plus D_F with random wrong labels).
    lr, epochs, batch_size, momentum, weight_decay : the base step's SGD (paper: 0.01, 30, 128,
        0.9, 5e-4), with a cosine schedule over the epochs.
    attack_lr : learning rate of the attacker step (default: `lr`), on its own SGD optimiser.
    auditor : "logistic" or "sqhinge" (torch, exact implicit gradient), or "svm" (the paper's
        hinge SVM, cvxpylayers; about 20x slower per epoch on digits).
    features : "logits+loss" (paper) or "loss".
    l2 : the auditor's ridge term.
    n_splits, train_fraction : auditor fits per group, and the share of rows each is fitted on
        (paper: 3 splits of 70/30).
    grouping : "per-class" (one auditor per class, the paper's choice for random forgetting),
        "single" (one auditor; class forgetting) or "auto" (single when D_F holds whole classes).
    selection : checkpoint kept: "two-sided" (max validation accuracy − |MIA accuracy − 50|,
        default), "paper" (max validation accuracy − MIA accuracy) or "last" (the final epoch).

    Context: `holdout`, an `ArrayDataset` of known non-members (the validation half of the test
    split, `unlearn.data.split_holdout`); SG refuses to run without it. After `unlearn`,
    `stats_` holds the per-epoch history and the selected epoch.
    """

    name = "sg"
    requires_retain = True

    def __init__(self, alpha: float = 1.0, base: str = "ft", lr: float = 0.01, epochs: int = 30,
                 batch_size: int = 128, momentum: float = 0.9, weight_decay: float = 5e-4,
                 attack_lr: float | None = None, auditor: str = "logistic", features: str = "logits+loss",
                 l2: float = 1e-2, n_splits: int = 3, train_fraction: float = 0.7, grouping: str = "auto",
                 selection: str = "two-sided"):
        self.alpha = alpha
        self.base = base
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.attack_lr = attack_lr
        self.auditor = auditor
        self.features = features
        self.l2 = l2
        self.n_splits = n_splits
        self.train_fraction = train_fraction
        self.grouping = grouping
        self.selection = selection

    def _check(self) -> None:
        def number(value) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

        if not (number(self.alpha) and self.alpha >= 0):
            raise UnlearnInputError(f"sg: alpha must be a finite number >= 0, got {self.alpha!r}")
        if self.base not in ("ft", "rl"):
            raise UnlearnInputError(f"sg: base must be 'ft' or 'rl', got {self.base!r}")
        for key in ("lr", "l2") + (("attack_lr",) if self.attack_lr is not None else ()):
            if not (number(getattr(self, key)) and getattr(self, key) > 0):
                raise UnlearnInputError(f"sg: {key} must be a positive number, got {getattr(self, key)!r}")
        for key, low in (("epochs", 1), ("batch_size", 1), ("n_splits", 1)):
            if not (isinstance(getattr(self, key), int) and getattr(self, key) >= low):
                raise UnlearnInputError(f"sg: {key} must be an integer >= {low}, got {getattr(self, key)!r}")
        if not (number(self.train_fraction) and 0 < self.train_fraction < 1):
            raise UnlearnInputError(f"sg: train_fraction must lie in (0, 1), got {self.train_fraction!r}")
        if self.auditor not in AUDITORS:
            raise UnlearnInputError(f"sg: auditor must be one of {AUDITORS}, got {self.auditor!r}")
        if self.features not in FEATURES:
            raise UnlearnInputError(f"sg: features must be one of {FEATURES}, got {self.features!r}")
        if self.selection not in ("two-sided", "paper", "last"):
            raise UnlearnInputError(f"sg: selection must be 'two-sided', 'paper' or 'last', got {self.selection!r}")
        if self.grouping not in ("auto", "per-class", "single"):
            raise UnlearnInputError(f"sg: grouping must be 'auto', 'per-class' or 'single', got {self.grouping!r}")

    def _unlearn(self, model: nn.Module, forget: ArrayDataset, retain: ArrayDataset | None, *,
                 seed: int, device: torch.device, holdout: ArrayDataset | None = None, **context) -> nn.Module:
        self._check()
        if holdout is None or not isinstance(holdout, ArrayDataset) or len(holdout) == 0:
            raise UnlearnInputError(
                "sg needs `holdout`: known non-members, the validation half of the test split "
                "(unlearn.data.split_holdout); it refuses to run without them"
            )
        if tuple(holdout.x.shape[1:]) != tuple(forget.x.shape[1:]):
            raise UnlearnInputError(f"sg: holdout inputs have shape {tuple(holdout.x.shape[1:])}, "
                                    f"the forget set {tuple(forget.x.shape[1:])}")
        per_class = {"per-class": True, "single": False}.get(self.grouping, not is_class_forgetting(forget, retain))
        draw_seeds = np.random.default_rng(seed).integers(2**31 - 1, size=(self.epochs, 2))

        def draw(draw_seed: int):
            """Fresh auditor tasks, and the non-members they use (all of holdout scores accuracy)."""
            tasks = audit_tasks(forget.y.numpy(), holdout.y.numpy(), per_class=per_class, n_splits=self.n_splits,
                                train_fraction=self.train_fraction, seed=int(draw_seed))
            tasks, audited_rows = compact_tasks(tasks)
            return tasks, holdout.subset(audited_rows)

        # Under class forgetting, validation accuracy on the retained classes only.
        forgotten = np.setdiff1d(forget.y.numpy(), retain.y.numpy())
        kept_rows = np.flatnonzero(~np.isin(holdout.y.numpy(), forgotten))
        validation = holdout.subset(kept_rows) if len(kept_rows) < len(holdout) else holdout
        if len(validation) == 0:
            raise UnlearnInputError("sg: the holdout has no sample of a retained class to validate on")
        sources = [Source(retain)]
        if self.base == "rl":
            sources.append(Source(forget, relabel=random_wrong_labels(num_classes_of(model))))
        recipe = finetune_recipe(self.lr, 1, self.batch_size, self.momentum, self.weight_decay)
        base_optimizer = make_optimizer(model.parameters(), recipe)
        # Its own optimiser: the attacker step must not share momentum with the base step.
        attack_optimizer = torch.optim.SGD(model.parameters(), lr=self.attack_lr or self.lr, momentum=self.momentum)
        # The auditors' feature scaling is fixed once, from the original model's outputs.
        first_tasks, first_audited = draw(draw_seeds[0, 0])
        scale = feature_scale(*self._features(model, forget, first_audited, device), first_tasks)
        epoch_seeds = torch.randint(2**31 - 1, (self.epochs,), generator=torch.Generator().manual_seed(seed))

        history, best_score, best_state = [], -math.inf, None
        for epoch in range(self.epochs):
            # Cosine over the whole run, set here once per epoch: `fit` keeps a constant rate within it.
            factor = 0.5 * (1 + math.cos(math.pi * epoch / self.epochs))
            for group in base_optimizer.param_groups:
                group["lr"] = group["initial_lr"] = self.lr * factor
            started = time.perf_counter()
            fit(model, sources, recipe, seed=int(epoch_seeds[epoch]), device=device, optimizer=base_optimizer,
                name=f"sg epoch {epoch + 1}", progress=False)
            base_done = time.perf_counter()
            utility = None  # the auditor is off (α = 0); None keeps stats_ valid JSON
            if self.alpha > 0:
                for group in attack_optimizer.param_groups:
                    group["lr"] = (self.attack_lr or self.lr) * factor
                tasks, audited = (first_tasks, first_audited) if epoch == 0 else draw(draw_seeds[epoch, 0])
                utility = self._attack_step(model, forget, audited, tasks, scale, attack_optimizer, device)
            attack_done = time.perf_counter()
            validation_accuracy = accuracy(model, validation, device=device)
            # Selection's auditors: fitted on a fresh draw, not on the splits the step just trained against.
            fresh_tasks, fresh_audited = draw(draw_seeds[epoch, 1])
            mia_accuracy = self._audit(model, forget, fresh_audited, fresh_tasks, scale, device).accuracy
            # Two-sided by default: an auditor pushed below chance still tells members apart (see notes).
            leak = mia_accuracy if self.selection == "paper" else 50.0 + abs(mia_accuracy - 50.0)
            score = validation_accuracy - leak
            history.append({"epoch": epoch + 1, "lr": self.lr * factor, "validation_accuracy": validation_accuracy,
                            "mia_accuracy": mia_accuracy, "utility": utility, "score": score,
                            "auditor_seeds": {"attack": int(draw_seeds[epoch, 0]),
                                              "selection": int(draw_seeds[epoch, 1])},
                            "seconds": {"base": base_done - started, "attack": attack_done - base_done,
                                        "selection": time.perf_counter() - attack_done}})
            if score > best_score or self.selection == "last":
                best_score, best_state = score, copy.deepcopy(model.state_dict())
        model.load_state_dict(best_state)
        selected = history[-1] if self.selection == "last" else max(history, key=lambda h: h["score"])
        self.stats_ = {"selected_epoch": selected["epoch"], "validation_accuracy": selected["validation_accuracy"],
                       "mia_accuracy": selected["mia_accuracy"], "n_auditors": len(first_tasks),
                       "per_class_auditors": per_class, "validation_samples": len(validation),
                       "forgotten_classes": forgotten.tolist(), "history": history}
        return model

    def _features(self, model: nn.Module, forget: ArrayDataset, holdout: ArrayDataset, device):
        """Auditor features of D_F and of the holdout, in eval mode, without a graph."""
        return (auditor_features(logits(model, forget, device=device), forget.y, self.features),
                auditor_features(logits(model, holdout, device=device), holdout.y, self.features))

    def _audit(self, model: nn.Module, forget: ArrayDataset, holdout: ArrayDataset, tasks, scale, device):
        with torch.no_grad():
            return audit(*self._features(model, forget, holdout, device), tasks, kind=self.auditor, l2=self.l2,
                         scale=scale)

    def _attack_step(self, model: nn.Module, forget: ArrayDataset, holdout: ArrayDataset, tasks, scale,
                     optimizer: torch.optim.Optimizer, device: torch.device, batch_size: int = 512) -> float:
        """One step on α·U_a: dU_a/dfeatures through the auditor's optimum, then into the weights.

        The auditor needs every row's features at once, the model's graph need not: first the
        features (no graph) and dU_a/dS; then, batch by batch, the features again with a graph and
        backward of ⟨S_batch, dU_a/dS_batch⟩, which accumulates exactly ∂(α·U_a)/∂θ_u.
        """
        model.eval()  # score the auditor's batches with BatchNorm's running statistics (see module notes)
        member, nonmember = self._features(model, forget, holdout, device)
        member.requires_grad_(True)
        nonmember.requires_grad_(True)
        outcome = audit(member, nonmember, tasks, kind=self.auditor, l2=self.l2, scale=scale)
        grads = torch.autograd.grad(self.alpha * outcome.utility, [member, nonmember])
        optimizer.zero_grad(set_to_none=True)
        for data, grad in ((forget, grads[0]), (holdout, grads[1])):
            used = torch.nonzero(grad.abs().sum(1) > 0).squeeze(1)  # rows outside every auditor get no gradient
            for start in range(0, len(used), batch_size):
                rows = used[start:start + batch_size]
                out = model(as_float(data.x[rows].to(device)))
                feats = auditor_features(out, data.y[rows].to(device), self.features)
                (feats * grad[rows].to(device=device, dtype=feats.dtype)).sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(outcome.utility.detach())
