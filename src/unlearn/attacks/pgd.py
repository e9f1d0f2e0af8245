"""Closest adversarial examples by projected gradient descent: step 1 of AMUN.

PGD (Madry et al., ICLR 2018) maximises the cross-entropy of the true label inside an ε-ball
around x. AMUN (Ebrahimpour-Boroojeny et al., ICML 2025, Sec. 4 and App. B) wants the *closest*
adversarial example, so its search differs from plain PGD in two ways, both implemented here on
whole batches:
- **per-sample early exit**: every step starts with a forward pass; a sample that is already
  misclassified is frozen at that iterate (with that prediction as its adversarial label) and
  leaves the batch, so later steps compute gradients only for samples still classified right;
- **ε doubling**: samples still correct after all steps restart from x with ε ← 2ε, never past
  the diameter of the [0, 1] box (√d for L2, 1 for L∞), beyond which a larger ball adds nothing.
ε_init is the smallest ε at which ≥ 95% of about 100 forget samples find an adversarial example
(`calibrate_epsilon`), or given. PGD follows the paper: untargeted, no random start, step size
α = ε/10, the gradient normalised to unit L2 norm per sample (sign for the L∞ ball), projection
onto the ball, clamp to [0, 1]. Inputs are in pixel space, so ε and ‖δ‖ are pixel-space figures.

**Saturated models.** The ascent direction is that of the cross-entropy, computed so that it
survives a softmax that rounds to one-hot. CE = softplus(m) with the soft logit margin
m = logsumexp_{j≠y} z_j − z_y, so ∇ₓCE = σ(m)·∇ₓm: the same direction, scaled by σ(m) > 0.
When the true logit leads by more than about 17 (float32), p_y rounds to 1 and the CE gradient
loses its −∇z_y part; past about 88 it is exactly zero and PGD cannot move (an over-trained
model's forget samples are exactly those). We therefore ascend m itself. Because every step is
normalised per sample (unit L2 or sign), the steps are the paper's wherever float32 represents
the CE gradient, and still well defined where it does not. (The Carlini–Wagner hard margin
max_{j≠y} z_j − z_y would also survive, but changes the direction where the softmax is not
saturated; m is its smooth version with CE's direction.)

**Refinement** (an addition to the paper, on by default in `closest_adversarial`): the first
misclassified iterate overshoots the decision boundary by up to one step α = ε/10, so with a
large calibrated ε_init it is farther than need be. A per-sample bisection on the segment from
x to x_adv (forward passes only) moves it to the point nearest x on that segment, to within
2^-`refine_steps` of its length, at which the label is still wrong; the adversarial label is the
prediction there. It only ever shortens ‖δ‖ and keeps the example inside its ball and the box.

    adv = closest_adversarial(model, forget.x, forget.y)     # ε_init calibrated on 100 samples
    d_a = adv.dataset()                                       # (x_adv, y_adv) for fine-tuning
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from unlearn.data import ArrayDataset, as_float
from unlearn.errors import UnlearnInputError

NORMS = ("l2", "linf")


@dataclass
class AdversarialSet:
    """Result of an adversarial search, one row per input sample (all tensors on the CPU).

    `x_adv` float32 in [0, 1]; `y_adv` the model's prediction at `x_adv` (equal to `y` where the
    search failed); `epsilon` the ball radius at which the example was found (the last one tried
    where it failed); `distance` ‖x_adv − x‖₂; `success` whether f(x_adv) ≠ y; `pred` the
    prediction at x itself; `sample_steps` how many per-sample forward+backward passes it cost.
    `distance_search` is ‖δ‖₂ before the refinement (equal to `distance` without one), and
    `calibration_rate` the fraction of calibration samples fooled at ε_init (below the target
    when no radius inside the box reaches it).
    """

    x_adv: torch.Tensor
    y_adv: torch.Tensor
    y: torch.Tensor
    pred: torch.Tensor
    epsilon: torch.Tensor
    distance: torch.Tensor
    success: torch.Tensor
    norm: str
    steps: int
    sample_steps: int
    epsilon_init: float = float("nan")
    calibration_steps: int = 0  # the share of `sample_steps` spent calibrating ε_init
    calibration_rate: float = float("nan")
    refine_steps: int = 0
    refine_forwards: int = 0  # per-sample forward passes of the refinement (no backward)
    distance_search: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.y)

    @property
    def success_rate(self) -> float:
        return float(self.success.float().mean()) if len(self) else float("nan")

    @property
    def pgd_passes(self) -> float:
        """Cost in units of one full `steps`-step PGD pass over all samples (plain PGD costs 1)."""
        return self.sample_steps / max(1, len(self) * self.steps)

    def dataset(self) -> ArrayDataset:
        """D_A: the successful examples labelled with the model's (wrong) prediction."""
        return ArrayDataset(self.x_adv[self.success], self.y_adv[self.success])

    def summary(self) -> dict:
        """JSON-serialisable statistics: success rate, ε and ‖δ‖₂ distributions, cost."""

        def describe(values: torch.Tensor) -> dict:
            if values.numel() == 0:
                return {}
            v = values.double()
            return {"mean": float(v.mean()), "median": float(v.median()), "min": float(v.min()),
                    "max": float(v.max())}

        found = self.success
        searched = self.distance if self.distance_search is None else self.distance_search
        return {"n": len(self), "norm": self.norm, "steps": self.steps, "epsilon_init": self.epsilon_init,
                "calibration_rate": None if math.isnan(self.calibration_rate) else 100.0 * self.calibration_rate,
                "success_rate": 100.0 * self.success_rate, "n_found": int(found.sum()),
                "n_without_example": int((~found).sum()),
                "already_misclassified": int((self.pred != self.y).sum()),
                "epsilon": describe(self.epsilon[found]), "distance_l2": describe(self.distance[found]),
                "distance_l2_before_refinement": describe(searched[found]), "refine_steps": self.refine_steps,
                "sample_steps": int(self.sample_steps), "calibration_steps": int(self.calibration_steps),
                "refine_forwards": int(self.refine_forwards), "pgd_passes": self.pgd_passes}


def _check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str, steps: int, step_ratio: float) -> None:
    if norm not in NORMS:
        raise UnlearnInputError(f"unknown norm {norm!r}; use one of {', '.join(NORMS)}")
    if steps < 1:
        raise UnlearnInputError(f"PGD needs at least one step, got steps={steps}")
    if not step_ratio > 0:
        raise UnlearnInputError(f"the step size ratio must be positive, got {step_ratio}")
    if len(x) != len(y):
        raise UnlearnInputError(f"inputs and labels differ in length: {len(x)} vs {len(y)}")
    shape = getattr(model, "spec", {}).get("input_shape")
    if shape is not None and list(x.shape[1:]) != list(shape):
        raise UnlearnInputError(f"inputs have shape {list(x.shape[1:])}, the model expects {list(shape)}")
    classes = getattr(model, "spec", {}).get("num_classes")
    if classes is not None and len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
        raise UnlearnInputError(f"labels must lie in [0, {classes}), got [{int(y.min())}, {int(y.max())}]")


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1)


def _expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def box_diameter(x: torch.Tensor, norm: str) -> float:
    """The largest distance between two inputs in the [0, 1] box: √d for L2, 1 for L∞."""
    return math.sqrt(math.prod(x.shape[1:])) if norm == "l2" else 1.0


def soft_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """m = logsumexp_{j≠y} z_j − z_y per sample: CE = softplus(m), with CE's ascent direction.

    Its gradient is the CE gradient divided by σ(m), so it stays finite and keeps its direction
    where the softmax rounds to one-hot and the CE gradient vanishes in float32.
    """
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return torch.logsumexp(others, dim=1) - true


def _pgd_batch(model: nn.Module, x0: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, norm: str, steps: int,
               step_ratio: float, early_exit: bool):
    """PGD on one batch; returns (x_adv, y_adv, pred at x0, success, sample_steps)."""
    x = x0.clone()
    x_adv, y_adv = x0.clone(), y.clone()
    pred0 = torch.empty_like(y)
    success = torch.zeros(len(y), dtype=torch.bool, device=y.device)
    alpha = eps * step_ratio
    active = torch.arange(len(y), device=y.device)
    cost = 0
    for t in range(steps + 1):
        xa = x[active].requires_grad_(True)
        out = model(xa)
        cost += len(active)
        pred = out.argmax(1)
        if t == 0:
            pred0[active] = pred
        fooled = pred != y[active]
        last = t == steps
        if early_exit or last:
            # Freeze the iterate at the first step it is misclassified: the closest example found.
            record = fooled if not last else torch.ones_like(fooled)
            idx = active[record]
            x_adv[idx] = xa.detach()[record]
            y_adv[idx] = pred[record]
            success[idx] = fooled[record]
        if last:
            break
        keep = ~fooled if early_exit else torch.ones_like(fooled)
        still = active[keep]
        if len(still) == 0:
            break
        # Summed loss: each sample's input gradient is its own, independent of the batch. The soft
        # margin, not CE: same normalised step, but no vanishing gradient on saturated samples.
        loss = soft_margin(out[keep], y[still]).sum()
        (grad,) = torch.autograd.grad(loss, xa)
        grad = grad[keep]
        a = _expand(alpha[still], grad)
        e = _expand(eps[still], grad)
        if norm == "l2":
            step = a * grad / _expand(_flat_norm(grad).clamp_min(1e-12), grad)
            delta = x[still] + step - x0[still]
            delta = delta * _expand((eps[still] / _flat_norm(delta).clamp_min(1e-12)).clamp(max=1.0), grad)
        else:
            delta = torch.maximum(torch.minimum(x[still] + a * grad.sign() - x0[still], e), -e)
        # Clamping to [0, 1] only moves coordinates towards x0 (itself in [0, 1]): ‖δ‖ stays ≤ ε.
        x[still] = (x0[still] + delta).clamp(0.0, 1.0)
        active = still
    return x_adv, y_adv, pred0, success, cost


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float | torch.Tensor, *, norm: str = "l2",
        steps: int = 50, step_ratio: float = 0.1, early_exit: bool = True, batch_size: int = 512,
        device: str | torch.device | None = None) -> AdversarialSet:
    """Untargeted PGD with radius `epsilon` (a number or one per sample) and step α = step_ratio·ε.

    It ascends the soft logit margin (`soft_margin`), a monotone transform of the cross-entropy
    with the same normalised steps that does not saturate (module docstring).

    Parameters: `x` (N, ...) uint8 or float pixel-space inputs, `y` (N,) int64 true labels.
    With `early_exit` (AMUN's search), a sample stops at the first misclassified iterate;
    without it, this is plain PGD and the last iterate is returned. No random start.
    The model's train/eval mode and parameters' gradients are left as they were; `x` is not modified.
    """
    _check(model, x, y, norm, steps, step_ratio)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    eps = torch.as_tensor(epsilon, dtype=torch.float32).flatten()
    eps = eps.expand(len(y)).clone() if eps.numel() == 1 else eps
    if eps.numel() != len(y):
        raise UnlearnInputError(f"epsilon must be a number or one value per sample, got {eps.numel()} for {len(y)}")
    if not bool((eps > 0).all()) or not bool(torch.isfinite(eps).all()):
        raise UnlearnInputError("epsilon must be positive and finite")
    was_training = model.training
    model.eval()
    parts, cost = [], 0
    try:
        for start in range(0, len(y), batch_size):
            sl = slice(start, start + batch_size)
            x0 = as_float(x[sl].to(device))
            out = _pgd_batch(model, x0, y[sl].to(device), eps[sl].to(device), norm, steps, step_ratio, early_exit)
            parts.append([t.cpu() for t in out[:4]])
            cost += out[4]
    finally:
        model.train(was_training)
    if not parts:
        empty = as_float(x[:0])
        parts = [[empty, y[:0], y[:0], torch.zeros(0, dtype=torch.bool)]]
    x_adv, y_adv, pred0, success = (torch.cat(c) for c in zip(*parts))
    distance = _flat_norm(x_adv - as_float(x.cpu())) if len(y) else torch.zeros(0)
    return AdversarialSet(x_adv, y_adv, y.cpu().clone(), pred0, eps.clone(), distance, success, norm, steps, cost)


def calibrate_epsilon(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, norm: str = "l2", steps: int = 50,
                      step_ratio: float = 0.1, samples: int = 100, target_rate: float = 0.95,
                      epsilon_min: float = 1 / 255, epsilon_max: float | None = None,
                      resolution: float = 2 ** (1 / 8), seed: int = 0, batch_size: int = 512, device=None) -> float:
    """AMUN's ε_init: the smallest ε at which ≥ `target_rate` of `samples` random inputs are fooled.

    Bisection on the log scale between a very small ε (`epsilon_min`, one grey level) and the
    diameter of the input box (`epsilon_max`: √d for L2, 1 for L∞), until the bracket is narrower
    than the factor `resolution`; the upper end is returned. Each trial runs early-exit PGD only
    on the samples whose outcome is not yet implied by an earlier trial, assuming that a sample
    fooled at ε is fooled at every larger ε and vice versa: cheaper than the doubling ladder it
    replaces, whose rounds below the answer each cost a full PGD pass over all samples.
    If even the diameter fools fewer than `target_rate` of them, the target becomes the rate
    reached there (the smallest ε reaching it is returned): calibration never fails on a model
    that some inputs cannot be moved off; `closest_adversarial` reports the rate in its result.
    """
    return _calibrate(model, x, y, norm=norm, steps=steps, step_ratio=step_ratio, samples=samples,
                      target_rate=target_rate, epsilon_min=epsilon_min, epsilon_max=epsilon_max,
                      resolution=resolution, seed=seed, batch_size=batch_size, device=device)[0]


def _calibrate(model, x, y, *, norm, steps, step_ratio, samples, target_rate, epsilon_min=1 / 255,
               epsilon_max=None, resolution=2 ** (1 / 8), seed=0, batch_size=512,
               device=None) -> tuple[float, int, float]:
    """`calibrate_epsilon`, also returning its cost in per-sample PGD steps and the rate reached."""
    if not 0 < target_rate <= 1:
        raise UnlearnInputError(f"target_rate must lie in (0, 1], got {target_rate}")
    if len(y) == 0:
        raise UnlearnInputError("cannot calibrate epsilon on an empty set")
    if epsilon_max is None:
        epsilon_max = box_diameter(x, norm)
    if not 0 < epsilon_min < epsilon_max or not resolution > 1:
        raise UnlearnInputError(f"need 0 < epsilon_min < epsilon_max and resolution > 1, got {epsilon_min}, "
                                f"{epsilon_max}, {resolution}")
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(y), generator=gen)[:samples]
    xs, ys = x[pick], y[pick]
    # Per sample: the largest radius known to fail and the smallest known to succeed.
    fails = torch.full((len(ys),), float(epsilon_min), dtype=torch.float64)
    succeeds = torch.full((len(ys),), math.inf, dtype=torch.float64)
    cost = 0

    def rate(eps: float) -> float:
        nonlocal cost
        todo = torch.nonzero((fails < eps) & (succeeds > eps)).flatten()
        if len(todo):
            found = pgd(model, xs[todo], ys[todo], eps, norm=norm, steps=steps, step_ratio=step_ratio,
                        batch_size=batch_size, device=device)
            cost += found.sample_steps
            succeeds[todo[found.success]] = eps
            fails[todo[~found.success]] = eps
        return float((succeeds <= eps).double().mean())

    lo, hi = float(epsilon_min), float(epsilon_max)
    reached = rate(hi)
    if reached == 0.0:
        return hi, cost, reached  # nothing moves even across the box: search at its diameter
    goal = min(target_rate, reached)
    while hi / lo > resolution:
        mid = math.sqrt(lo * hi)
        if rate(mid) >= goal:
            hi = mid
        else:
            lo = mid
    return hi, cost, rate(hi)


def _refine_batch(model: nn.Module, x0: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                  y_adv: torch.Tensor, steps: int):
    """Bisection on the segment x0 → x_adv for the point nearest x0 still misclassified."""
    lo = torch.zeros(len(y), device=y.device)
    hi = torch.ones(len(y), device=y.device)
    best, label = x_adv.clone(), y_adv.clone()
    direction = x_adv - x0
    for _ in range(steps):
        mid = (lo + hi) / 2
        point = (x0 + _expand(mid, x0) * direction).clamp(0.0, 1.0)
        pred = model(point).argmax(1)
        wrong = pred != y
        hi = torch.where(wrong, mid, hi)
        lo = torch.where(wrong, lo, mid)
        best[wrong], label[wrong] = point[wrong], pred[wrong]
    return best, label


@torch.no_grad()
def refine(model: nn.Module, x: torch.Tensor, found: AdversarialSet, *, steps: int = 10, batch_size: int = 512,
           device=None) -> AdversarialSet:
    """Shorten every successful example of `found` by bisection on its segment from x (in place).

    `steps` forward passes per sample halve the bracket each time; the example stays
    misclassified (its label is the prediction at the new point), so `success` is unchanged and
    ‖δ‖ can only shrink. Samples already misclassified at x (‖δ‖ = 0) are left alone.
    """
    if steps < 0:
        raise UnlearnInputError(f"refine_steps must be >= 0, got {steps}")
    found.distance_search = found.distance.clone()
    found.refine_steps = steps
    todo = torch.nonzero(found.success & (found.distance > 0)).flatten()
    if steps == 0 or len(todo) == 0:
        return found
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(todo), batch_size):
            rows = todo[start:start + batch_size]
            x0 = as_float(x[rows].to(device))
            best, label = _refine_batch(model, x0, found.x_adv[rows].to(device), found.y[rows].to(device),
                                        found.y_adv[rows].to(device), steps)
            found.x_adv[rows], found.y_adv[rows] = best.cpu(), label.cpu()
    finally:
        model.train(was_training)
    found.refine_forwards += steps * len(todo)
    found.distance = _flat_norm(found.x_adv - as_float(x.cpu()))
    return found


def closest_adversarial(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epsilon: float | None = None,
                        norm: str = "l2", steps: int = 50, step_ratio: float = 0.1, max_doublings: int = 10,
                        calibration_samples: int = 100, target_rate: float = 0.95, refine_steps: int = 10,
                        seed: int = 0, batch_size: int = 512, device=None) -> AdversarialSet:
    """AMUN's closest adversarial example for every (x, y): PGD with early exit and ε doubling.

    Round r runs early-exit PGD at ε_init·2^r (at most the box's diameter, where the doubling
    stops) on the samples no earlier round fooled; a sample leaves at its first misclassified
    iterate, keeping it, its prediction and the ε of its round. Then `refine` shortens each
    example with `refine_steps` bisection steps (0: the paper's search alone). Samples no round
    fools keep `success` False and are left out of `dataset()`; nothing here fails for them.
    Returns an `AdversarialSet`; `sample_steps` includes the calibration's cost.
    """
    _check(model, x, y, norm, steps, step_ratio)
    if refine_steps < 0:
        raise UnlearnInputError(f"refine_steps must be >= 0, got {refine_steps}")
    calibration_cost, calibration_rate = 0, float("nan")
    if epsilon is None:
        epsilon, calibration_cost, calibration_rate = _calibrate(
            model, x, y, norm=norm, steps=steps, step_ratio=step_ratio, samples=calibration_samples,
            target_rate=target_rate, seed=seed, batch_size=batch_size, device=device)
    if not epsilon > 0 or not math.isfinite(epsilon):
        raise UnlearnInputError(f"epsilon must be positive and finite, got {epsilon}")
    result = pgd(model, x, y, epsilon, norm=norm, steps=steps, step_ratio=step_ratio, batch_size=batch_size,
                 device=device)
    cost = result.sample_steps + calibration_cost
    eps, diameter = float(epsilon), box_diameter(x, norm)
    for _ in range(max_doublings):
        todo = torch.nonzero(~result.success).flatten()
        if len(todo) == 0 or eps >= diameter:
            break
        eps = min(2.0 * eps, diameter)
        retry = pgd(model, x[todo], y[todo], eps, norm=norm, steps=steps, step_ratio=step_ratio,
                    batch_size=batch_size, device=device)
        cost += retry.sample_steps
        for name in ("x_adv", "y_adv", "epsilon", "distance", "success"):
            getattr(result, name)[todo] = getattr(retry, name)
    result.sample_steps = cost
    result.epsilon_init = float(epsilon)
    result.calibration_steps = calibration_cost
    result.calibration_rate = calibration_rate
    return refine(model, x, result, steps=refine_steps, batch_size=batch_size, device=device)
