"""Loss matching: give D_F the losses of data the model never saw, and keep everything else.

Our method (issue 27; docs/methods.md, "loss-match"). A model retrained without D_F treats D_F
as it treats any unseen sample: on the leaky CPU-scale models of the protocols it gets D_F about
as right as the test split (some 60%, not 100%), with the same spread of losses. The audits
reward exactly that: forget accuracy at test level, and a membership attack (RMIA, the loss
attack) that cannot tell D_F's outputs from those of non-members. So instead of pushing D_F's
loss *up* by an amount a learning rate and an epoch count have to guess (GA, RL, NegGrad+, AMUN),
the objective names the level to reach: the distribution of losses on known non-members, the
validation half of the test split that the bench gives every method as `holdout` (SG's auditor
uses the same; the evaluation half is never seen).

    L(θ) = L_keep(θ) + λ · W₁( {ℓ(x, y; θ) : (x, y) ∈ B_F},  Q_H )

- W₁ is the 1-D Wasserstein distance between the forget batch's cross-entropy losses
  and the distribution Q_H of the *original* model's losses on the holdout: sort the batch's n
  losses and compare the k-th with Q_H's (k + ½)/n quantile (`matching_loss`). It is zero exactly
  when the batch's losses are distributed as the non-members' (a known answer the tests check),
  it keeps the current order of D_F's losses (an easier sample stays easier), and it pushes a
  sample's loss up *or down*, so a high learning rate cannot overshoot into "worse than unseen"
  as gradient ascent does. The original's holdout losses stand in for the retrained model's test
  losses: both models get the test split equally right (results.md, "The protocols").
- L_keep with D_R: cross-entropy on a D_R batch (FT's objective), which keeps D_R at its
  memorised level. Without D_R, distillation of the original on inputs that are not D_F:
  KL(f_o ‖ f_θ) on the holdout and on mixup blends of holdout pairs, which keeps the function
  around the data where the test split lives, as SCAR distils the original on surrogate
  out-of-distribution images to do without D_R (Bonato, Cotogni, Sabetta, "Is Retain Set All You
  Need in Machine Unlearning? Restoring Performance of Unlearned Models with Out-Of-Distribution
  Images", ECCV 2024, arXiv 2404.12922). Blends are new inputs each step, so 250-1,000 holdout
  samples give more than their number of distillation points.
- Each step draws one batch from every part (D_R or the holdout, and D_F) and passes them through
  the model together, so BatchNorm sees the mix; an epoch is one pass over the largest part.
  SGD with momentum 0.9 and weight decay 5e-4, constant learning rate (the fine-tuning methods'
  recipe, `methods.shared`).

Hyperparameters and their tuning space (`experiments.tune.DEFAULT_SPACES["loss-match"]`): lr and
epochs, as for every fine-tuning method, and the matching weight λ (`forget_weight`).

Measured under tuning procedure 5 (docs/methods.md, "loss-match"; 3 paired draws), gap-rmia with
D_R: mnist1d 2.27 at 10% and 5.76 at 50% (1.86 and 3.13 with `target="current"`), CIFAR-10 3.92
and 6.44, level with the best published methods; without D_R, CIFAR-10 11.95 and 13.57 (the best
of every method there, about 40% of the original's gap closed) but mnist1d 18.84 and 13.46 with
λ 0.3; with the per-setting weight (λ 1 without D_R, the default since) 8.61 and 7.35 at 10%, more
than half the original's gap closed on both data sets, and 13.15 and 14.86 at 50%. The issue's
targets are met in those two cells of eight, so it is no default method; it takes part in
cifar10-cpu under the same budget and rules as every method, so that its CIFAR-10 result is
measured.

    method = unlearn.methods.get("loss-match", lr=0.01, epochs=5)
    new = method.unlearn(model, forget, retain, holdout=dataset.test.subset(validation_indices))
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from unlearn.data import ArrayDataset, as_float, augment
from unlearn.errors import DivergenceError, UnlearnInputError
from unlearn.methods.base import Method, register
from unlearn.methods.distill import kl_to_teacher
from unlearn.methods.shared import (
    MaskedUpdate,
    check_integer,
    check_number,
    finetune_recipe,
    method_recipe,
    saliency_mask,
)
from unlearn.models import logits as eval_logits
from unlearn.training import make_optimizer


def quantile_targets(reference: torch.Tensor, n: int) -> torch.Tensor:
    """The (k + ½)/n quantiles of `reference`, k = 0..n-1 (linear interpolation), ascending."""
    levels = (torch.arange(n, dtype=reference.dtype, device=reference.device) + 0.5) / n
    return torch.quantile(reference, levels)


def matching_loss(losses: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """1-D Wasserstein-1 distance between the empirical distribution of `losses` and `reference`.

    The sorted losses are compared with `reference`'s quantiles at the same levels, so the result
    is 0 when `losses` are those quantiles (in any order) and |c| when every loss is c off them.
    W₁, not W₂²: an over-trained model's losses on unseen samples reach 10-30 nats, and the
    squared distance's gradient grows with them (W₂² diverged at lr 0.01-0.1 on mnist1d), while
    W₁'s is at most 1/n per sample.
    """
    return (torch.sort(losses).values - quantile_targets(reference, len(losses))).abs().mean()


def rank_targets(losses: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-sample target losses: the sample with the k-th smallest of `losses` gets `reference`'s
    (k + ½)/n quantile, so the targets are distributed as `reference` and ordered as `losses`."""
    ranks = torch.empty_like(losses, dtype=torch.long)
    ranks[torch.argsort(losses, stable=True)] = torch.arange(len(losses), device=losses.device)
    return quantile_targets(reference, len(losses))[ranks]


def _current_losses(model: nn.Module, batch: ArrayDataset, device: torch.device) -> torch.Tensor:
    """`batch`'s cross-entropy losses under `model` as it stands, in eval mode (BatchNorm's running
    statistics, no update of them) and without gradient; the model is left in train mode."""
    model.eval()
    with torch.no_grad():
        out = F.cross_entropy(model(as_float(batch.x.to(device))), batch.y.to(device), reduction="none")
    model.train()
    return out


class _Cycle:
    """Batches of one part of the mix, reshuffled whenever a pass over it ends."""

    def __init__(self, data: ArrayDataset, batch_size: int, generator: torch.Generator):
        self.data, self.batch_size, self.generator = data, min(batch_size, len(data)), generator
        self.order, self.at = torch.randperm(len(data), generator=generator), 0

    def next(self) -> tuple[torch.Tensor, ArrayDataset]:
        """The next batch's indices into the part, and the batch."""
        if self.at + self.batch_size > len(self.data):
            self.order, self.at = torch.randperm(len(self.data), generator=self.generator), 0
        idx = self.order[self.at:self.at + self.batch_size]
        self.at += self.batch_size
        return idx, self.data.subset(idx)


@register
class LossMatch(Method):
    """Loss matching to known non-members, with D_R kept by fine-tuning or, without it, by distillation.

    Parameters
    ----------
    lr : SGD learning rate (momentum 0.9, weight decay 5e-4, constant).
    epochs : passes over the largest part of the mix (D_R with the retain set, else D_F or the
        holdout).
    batch_size : samples of D_R (or of the holdout) per step (128).
    forget_batch_size : samples of D_F per step (128; 32 and 64 matched worse on mnist1d: a small
        batch's quantiles are a coarse target).
    forget_weight : λ, the weight of the matching term; None (default) resolves by setting: 0.3 with
        D_R, 1 without (the best of our probes on mnist1d in each setting; checked on CIFAR-10's
        tuning set without D_R, where λ 1 at lr 0.01 scored 6.98 against 13.96 for λ 0.3 at the
        tuned lr 0.1; docs/methods.md, row 9).
    temperature : distillation temperature without D_R (1: the original's own probabilities).
    crop_padding, flip : augmentation of D_R and D_F (off by default, see `FT`).
    assignment : "batch" (default: each batch re-sorted against the quantiles) or "global" (each
        D_F sample's target fixed once, from its rank among the original's D_F losses, with
        `rank_targets`); "global" did worse on mnist1d (docs/methods.md).
    mask_ratio : update only SalUn's salient weights for D_F (`methods.shared.saliency_mask`);
        1 (default) updates all. Tried without D_R on mnist1d; it did not stop the retain damage.
    target : whose holdout losses D_F is matched to: "original" (default: the input model's, fixed)
        or "current" (the model being trained: each step's holdout batch is scored in eval mode
        without gradient and replaces those samples' entries in the reference). A model retrained
        without a large D_F generalises worse than the original (mnist1d at 50%: test accuracy 54%
        against 62%), so its non-member losses are higher than the original's; "current" lets the
        target follow the model as it loses D_F's contribution. Measured (docs/methods.md, row 8):
        better on mnist1d and on CIFAR-10 at 10%, an overshoot on CIFAR-10 at 50%; not the default.
        With `assignment="global"` the targets are fixed once, so "current" is refused there.

    Context: `holdout`, an `ArrayDataset` of known non-members (the validation half of the test
    split); refused without it. After `unlearn`, `stats_` holds the matching term at the start and
    the end, and the reference's holdout loss quantiles at the end (10/50/90%; the original's unless
    `target="current"`).
    """

    name = "loss-match"
    WEIGHT_WITH_RETAIN, WEIGHT_WITHOUT_RETAIN = 0.3, 1.0

    @classmethod
    def setting_hyperparameters(cls, with_retain: bool) -> dict:
        defaults = cls.hyperparameters()
        return {**defaults, "forget_weight": cls._weight(defaults["forget_weight"], with_retain)}

    @classmethod
    def _weight(cls, forget_weight: float | None, with_retain: bool) -> float:
        """λ as given, or by setting when None."""
        if forget_weight is not None:
            return forget_weight
        return cls.WEIGHT_WITH_RETAIN if with_retain else cls.WEIGHT_WITHOUT_RETAIN

    def __init__(self, lr: float = 0.01, epochs: int = 10, batch_size: int = 128, forget_batch_size: int = 128,
                 forget_weight: float | None = None, temperature: float = 1.0, crop_padding: int = 0, flip: bool = False,
                 assignment: str = "batch", mask_ratio: float = 1.0, target: str = "original"):
        self.lr, self.epochs, self.batch_size, self.forget_batch_size = lr, epochs, batch_size, forget_batch_size
        self.forget_weight, self.temperature = forget_weight, temperature
        self.crop_padding, self.flip, self.assignment = crop_padding, flip, assignment
        self.mask_ratio, self.target = mask_ratio, target

    def _unlearn(self, model: nn.Module, forget: ArrayDataset, retain: ArrayDataset | None, *, seed: int,
                 device: torch.device, holdout: ArrayDataset | None = None, **context) -> nn.Module:
        recipe = method_recipe(self)
        weight = self._weight(self.forget_weight, retain is not None)
        check_number(self.name, "forget_weight", weight, inclusive=True)
        check_number(self.name, "temperature", self.temperature)
        if self.assignment not in ("batch", "global"):
            raise UnlearnInputError(f"{self.name}: assignment must be 'batch' or 'global', got {self.assignment!r}")
        if self.target not in ("original", "current"):
            raise UnlearnInputError(f"{self.name}: target must be 'original' or 'current', got {self.target!r}")
        if self.target == "current" and self.assignment == "global":
            raise UnlearnInputError(f"{self.name}: target='current' needs assignment='batch' (global targets are "
                                    "fixed once, from the original)")
        if holdout is None or not isinstance(holdout, ArrayDataset) or len(holdout) < 2:
            raise UnlearnInputError(f"{self.name} needs `holdout`: known non-members, the validation half of the "
                                    "test split (unlearn.data.split_holdout), at least 2 samples")
        if tuple(holdout.x.shape[1:]) != tuple(forget.x.shape[1:]):
            raise UnlearnInputError(f"{self.name}: holdout inputs have shape {tuple(holdout.x.shape[1:])}, "
                                    f"the forget set {tuple(forget.x.shape[1:])}")
        with torch.no_grad():
            reference = F.cross_entropy(eval_logits(model, holdout, device=device), holdout.y, reduction="none")
        reference = reference.to(device)
        targets = None
        if self.assignment == "global":
            targets = rank_targets(F.cross_entropy(eval_logits(model, forget, device=device), forget.y,
                                                   reduction="none").to(device), reference)
        teacher = None if retain is not None else copy.deepcopy(model).eval()
        keep = retain if retain is not None else holdout
        gen = torch.Generator().manual_seed(seed)
        keep_batches, forget_batches = _Cycle(keep, self.batch_size, gen), _Cycle(forget, check_integer(self.name, "forget_batch_size", self.forget_batch_size, least=2), gen)
        holdout_batches = _Cycle(holdout, self.batch_size, gen) if self.target == "current" else None
        steps = self.epochs * math.ceil(max(len(keep), len(forget)) / self.batch_size)
        optimizer = make_optimizer(model.parameters(), finetune_recipe(self.lr, 1, self.batch_size))
        check_number(self.name, "mask_ratio", self.mask_ratio, high=1.0)
        after_step = None if self.mask_ratio == 1 else \
            MaskedUpdate(model, saliency_mask(model, forget, self.mask_ratio, device=device))
        model.train()
        first = last = None
        for step in range(steps):
            (_, kb), (f_idx, fb) = keep_batches.next(), forget_batches.next()
            if holdout_batches is not None:
                h_idx, hb = holdout_batches.next()
                reference[h_idx.to(device)] = _current_losses(model, hb, device)
            x_keep, x_forget = as_float(kb.x.to(device)), as_float(fb.x.to(device))
            if teacher is None:
                x_keep = augment(x_keep, gen, recipe.crop_padding, recipe.flip)
            else:  # distil on the holdout batch and on mixup blends of its pairs
                share = torch.rand(len(x_keep), *[1] * (x_keep.dim() - 1), generator=gen).to(device)
                pair = torch.randperm(len(x_keep), generator=gen).to(device)
                x_keep = torch.cat([x_keep, share * x_keep + (1 - share) * x_keep[pair]])
            x_forget = augment(x_forget, gen, recipe.crop_padding, recipe.flip)
            out = model(torch.cat([x_keep, x_forget]))
            out_keep, out_forget = out[:len(x_keep)], out[len(x_keep):]
            if teacher is None:
                keep_loss = F.cross_entropy(out_keep, kb.y.to(device))
            else:
                with torch.no_grad():
                    target = teacher(x_keep)
                keep_loss = kl_to_teacher(out_keep, target, self.temperature)
            forget_losses = F.cross_entropy(out_forget, fb.y.to(device), reduction="none")
            if targets is None:
                match = matching_loss(forget_losses, reference)
            else:
                match = (forget_losses - targets[f_idx.to(device)]).abs().mean()
            loss = keep_loss + weight * match
            if not torch.isfinite(loss):
                raise DivergenceError(self.name, step, float(loss.detach()))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step()
            first = float(match.detach()) if first is None else first
            last = float(match.detach())
        levels = torch.tensor([0.1, 0.5, 0.9], device=reference.device)
        self.stats_ = {"matching_first": first, "matching_last": last, "steps": steps,
                       "holdout_loss_quantiles": [float(q) for q in torch.quantile(reference, levels)]}
        return model
