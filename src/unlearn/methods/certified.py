"""Certified removal: one Newton step per deletion, with a certificate that it is close to retraining.

Guo, Goldstein, Hannun, van der Maaten (ICML 2020). For an L2-regularised logistic loss
    L_b(w; D) = Σ_i ℓ(wᵀx_i, y_i) + λn/2 ‖w‖² + bᵀw,   b ~ N(0, σ²I)   (Algorithm 1)
the minimiser w* on D is moved towards the minimiser on D' = D \\ D_F by one Newton step
    w⁻ = w* + H⁻¹Δ,   Δ = Σ_{i∈D_F} ∇ℓ(w*ᵀx_i, y_i) + λ|D_F| w*,   H = ∇²L(w*; D')
and the gradient residual it leaves is bounded by data alone (the paper's data-dependent bound)
    ‖∇L_b(w⁻; D')‖ ≤ γ ‖X'‖₂ ‖H⁻¹Δ‖ ‖X' H⁻¹Δ‖,   γ = 1/4 for the logistic loss (as in the paper
and its code; the tight Lipschitz constant of ℓ'' is 1/(6√3)), valid when every ‖x_i‖ ≤ 1.
The loss perturbation b hides a residual up to σε/c, c = √(2 log(1.5/δ)): while the bound
accumulated over successive removals stays within that budget, the model is (ε, δ)-certified
removal: indistinguishable, up to e^ε and δ, from one trained by Algorithm 1 on D' alone. When a
removal would exceed the budget, the model is retrained from scratch on D' with a fresh b and the
account starts again (Algorithm 2). Multi-class: one-vs-rest, one binary model per class with
its own b, as in the paper's code; the residuals of the K models are added, which bounds the
norm of the joint residual, so the guarantee covers all K at once.

How it fits the `Method` interface: the method acts on the model's last `nn.Linear` over the
frozen features that feed it (for a linear model, the normalised inputs: then the guarantee
covers the whole model; for a network, **the last layer only**, the feature extractor having
seen D_F). The certificate needs a head trained with the perturbed objective, so:
- the first call on a model without a certified-removal record fits the head by Algorithm 1 on
  D = D_R ∪ D_F (LBFGS in float64), then removes D_F. In a one-off benchmark this costs a
  last-layer retrain; its purpose is the record it leaves;
- the returned model carries the record (ε, δ, σ, λ, the feature scale, the number of samples
  the head now stands for, the bound spent), in `spec["training"]["certified_removal"]`, saved
  with the model. A later call with the next request's D_F and the remaining D_R takes only the
  Newton step, and retrains automatically when the budget runs out. `certified_fit` prepares
  a model ahead of any request.

The paper assumes exact arithmetic; here the residual the fit leaves and the float32 rounding of
the stored head are added to the bound (float64 round-off in the solves, ~1e-16 relative, is not),
and the decision to retrain counts them: a removal is retrained whenever the bound it would leave,
rounding included, exceeds the budget.

    new = unlearn.methods.get("certified", epsilon=1, delta=1e-4).unlearn(model, forget, retain)
    new.spec["training"]["certified_removal"]   # the certificate's figures

Deviations: the paper normalises every feature vector to unit norm; a per-sample normalisation
cannot be folded into an `nn.Linear`, so the features are divided by one constant (their largest
norm on D when the head is fitted, bias feature included), which keeps ‖x_i‖ ≤ 1 on D and every
subset of it. That constant, like the extractor, is not covered by the guarantee. The bias is a
constant feature and is regularised with the weights. Every draw of b (the first fit, and each
retrain) has its own seed, derived from the call's seed and the number of earlier draws and never
one used before, so a retrain's b is fresh as Algorithm 2 requires even when every call is given
the same seed; the seeds are recorded (`noise_seeds`). For a real guarantee b must stay secret:
use an unpredictable seed, and keep the model file, whose record names the draws, as private as b.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from unlearn.data import ArrayDataset, as_float
from unlearn.errors import UnlearnInputError
from unlearn.methods.base import Method, register
from unlearn.methods.shared import check_number, last_linear, union

# Lipschitz constant of the logistic loss's second derivative, as the paper and its code use it.
LOGISTIC_GAMMA = 0.25
RECORD_KEY = "certified_removal"


def removal_budget(epsilon: float, delta: float, sigma: float) -> float:
    """The largest accumulated gradient residual b ~ N(0, σ²I) hides at (ε, δ): σε/c, c = √(2 log(1.5/δ))."""
    return sigma * epsilon / math.sqrt(2 * math.log(1.5 / delta))


def one_vs_rest(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """±1 targets, one column per class."""
    targets = -torch.ones(len(labels), num_classes, dtype=torch.float64)
    targets[torch.arange(len(labels)), labels] = 1.0
    return targets


def gradient(W: torch.Tensor, X: torch.Tensor, Y: torch.Tensor, lam: float, b: torch.Tensor | None = None):
    """∇ of Σ_i ℓ + λn/2‖w‖² (+ bᵀw) for every class column of W at once, shape (d, K)."""
    margins = Y * (X @ W)
    grad = X.T @ (-Y * torch.sigmoid(-margins)) + lam * len(X) * W
    return grad if b is None else grad + b


def fit_perturbed(X: torch.Tensor, Y: torch.Tensor, lam: float, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 1: argmin of L_b per class; returns W (d, K) and each class's gradient residual norm.

    LBFGS (float64) gets close, then Newton steps with the exact Hessian polish the optimum to
    round-off: the residual left here is added to the certificate's bound, so it should be tiny.
    """
    n = len(X)
    W = torch.zeros(X.shape[1], Y.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([W], lr=1, max_iter=300, tolerance_grad=1e-7, tolerance_change=0,
                                  history_size=20, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        objective = (F.softplus(-Y * (X @ W)).sum() + lam * n / 2 * (W**2).sum() + (b * W).sum()) / n
        objective.backward()
        return objective

    optimizer.step(closure)
    W = W.detach()
    for _ in range(5):
        grad = gradient(W, X, Y, lam, b)
        if grad.norm(dim=0).max() < 1e-11 * n:
            break
        W = W - solve_spd(hessians(W, X, lam), grad)
    return W, gradient(W, X, Y, lam, b).norm(dim=0)


def hessians(W: torch.Tensor, X: torch.Tensor, lam: float) -> torch.Tensor:
    """∇²(Σ ℓ + λn/2‖w‖²) of every class model at its column of W, shape (K, d, d)."""
    curvature = torch.sigmoid(X @ W)
    curvature = curvature * (1 - curvature)  # ℓ''(wᵀx) for every sample and class
    eye = lam * len(X) * torch.eye(W.shape[0], dtype=torch.float64)
    return torch.stack([X.T @ (X * curvature[:, k:k + 1]) + eye for k in range(W.shape[1])])


def solve_spd(hessians_: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """H_k⁻¹ r_k for every class k: `hessians_` (K, d, d), `rhs` and the result (d, K).

    The Hessians are symmetric positive definite (λn I plus a Gram matrix), so Cholesky, which is
    also what the problem calls for: the batched LU solve (`torch.linalg.solve`) of torch 2.13's CPU
    build returned invalid pivots with 2 threads on a CIFAR-10 head (d = 257) and raised."""
    factor = torch.linalg.cholesky(hessians_)
    return torch.cholesky_solve(rhs.T.unsqueeze(-1), factor).squeeze(-1).T


def spectral_norm(X: torch.Tensor) -> float:
    """‖X‖₂, from the largest eigenvalue of XᵀX (d × d, cheap for a classifier head)."""
    return float(torch.linalg.eigvalsh(X.T @ X)[-1].clamp(min=0).sqrt())


def newton_removal(W: torch.Tensor, X_keep: torch.Tensor, Y_keep: torch.Tensor, X_gone: torch.Tensor,
                   Y_gone: torch.Tensor, lam: float, keep_norm: float | None = None):
    """One Newton step removing (X_gone, Y_gone) from every class model; returns W⁻ and the
    data-dependent bound on each class's gradient residual on the kept data."""
    keep_norm = spectral_norm(X_keep) if keep_norm is None else keep_norm
    delta = gradient(W, X_gone, Y_gone, lam)  # Σ ∇ℓ over the removed points + λ m w
    steps = solve_spd(hessians(W, X_keep, lam), delta)
    bounds = LOGISTIC_GAMMA * keep_norm * steps.norm(dim=0) * (X_keep @ steps).norm(dim=0)
    return W + steps, bounds


def head_inputs(model: nn.Module, data: ArrayDataset, device: torch.device, batch_size: int = 1024) -> torch.Tensor:
    """The features the last `nn.Linear` sees for every sample (eval mode), as float64 on the CPU.

    Refuses a model whose output is not that layer's output (a layer after the head would leave
    the logits outside the linear model the certificate is about).
    """
    head = last_linear(model)
    captured: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda module, args: captured.append(args[0].detach()))
    model.eval()
    features = []
    try:
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                captured.clear()
                logits = model(as_float(data.x[start:start + batch_size].to(device)))
                if len(captured) != 1 or not torch.allclose(head(captured[0]), logits, rtol=1e-5, atol=1e-5):
                    raise UnlearnInputError("certified: the model's output is not the output of its last nn.Linear "
                                            "layer; certified removal needs a linear classifier head")
                features.append(captured[0].flatten(1).double().cpu())
    finally:
        hook.remove()
    return torch.cat(features)


def read_head(head: nn.Linear, scale: float) -> torch.Tensor:
    """The head as the (d, K) float64 matrix of the linear model on features / scale."""
    W = head.weight.detach().double().cpu().T * scale
    if head.bias is not None:
        W = torch.cat([W, head.bias.detach().double().cpu()[None, :] * scale])
    return W


def rounded(head: nn.Linear, W: torch.Tensor, scale: float) -> torch.Tensor:
    """W as it will be after `store_head`: each entry rounded to the head's dtype, read back in float64."""
    d = head.in_features
    W_stored = torch.cat([(W[:d] / scale).to(head.weight.dtype).double(),
                          (W[d:] / scale).to(head.weight.dtype).double()]) * scale
    return W_stored if head.bias is not None else W_stored[:d]


def rounding_bound(head: nn.Linear, W: torch.Tensor, scale: float, n: int, lam: float, x_norm: float) -> float:
    """How much storing W in the head's dtype can add to the gradient residual on n samples with
    ‖X‖₂ = x_norm: ‖∇L(W̃) − ∇L(W)‖ ≤ (‖X‖₂²/4 + λn)·‖W̃ − W‖ per class (ℓ'' ≤ 1/4), summed over classes."""
    return (x_norm**2 / 4 + lam * n) * float((rounded(head, W, scale) - W).norm(dim=0).sum())


def store_head(head: nn.Linear, W: torch.Tensor, scale: float) -> None:
    """Write W / scale into the head (in its dtype; `rounding_bound` says what that costs)."""
    with torch.no_grad():
        d = head.in_features
        head.weight.copy_((W[:d].T / scale).to(head.weight.dtype))
        if head.bias is not None:
            head.bias.copy_((W[d] / scale).to(head.bias.dtype))


def perturbation(shape, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """b ~ N(0, σ²I), one column per class."""
    return sigma * torch.randn(shape, generator=generator, dtype=torch.float64)


def noise_seed(seed: int, earlier: list[int]) -> int:
    """The seed of the next draw of b: derived from the call's seed and the number of earlier draws,
    and never one already used, so a retrain never redraws the b of an earlier fit."""
    import numpy as np

    draw = len(earlier)
    while True:  # the first draw uses the seed itself (as before draws were counted), later ones derive theirs
        candidate = int(seed) if draw == 0 else int(
            np.random.SeedSequence([int(seed), draw]).generate_state(1, np.uint64)[0] >> 1)
        if candidate not in earlier:
            return candidate
        draw += 1


def draw_perturbation(shape, sigma: float, seed: int, earlier: list[int]) -> tuple[torch.Tensor, int]:
    """A fresh b ~ N(0, σ²I) and the seed it was drawn with (to be recorded)."""
    chosen = noise_seed(seed, earlier)
    return perturbation(shape, sigma, torch.Generator().manual_seed(chosen)), chosen


def head_features(model: nn.Module, data: ArrayDataset, device) -> tuple[nn.Linear, torch.Tensor]:
    """The head and its input features for `data`, with the constant bias feature appended."""
    head = last_linear(model)
    features = head_inputs(model, data, torch.device(device))
    if head.bias is not None:
        features = torch.cat([features, torch.ones(len(features), 1, dtype=features.dtype)], dim=1)
    return head, features


def get_record(model: nn.Module) -> dict | None:
    if hasattr(model, "spec"):
        return model.spec.get("training", {}).get(RECORD_KEY)
    return getattr(model, RECORD_KEY, None)


def set_record(model: nn.Module, record: dict) -> None:
    if hasattr(model, "spec"):
        model.spec.setdefault("training", {})[RECORD_KEY] = record
    else:
        setattr(model, RECORD_KEY, record)


@register
class CertifiedRemoval(Method):
    """Certified removal by a Newton step with loss perturbation (Guo et al. 2020).

    Parameters
    ----------
    epsilon, delta : the (ε, δ) of the certificate (defaults 1 and 1e-4; the public code takes
        σ and λ only and leaves ε, δ to the reader).
    sigma : standard deviation σ of the loss perturbation b (public code: 10).
    lam : L2 regularisation λ of the mean loss, i.e. λn/2‖w‖² on the sum (public code's MNIST
        3-vs-8 command: 1e-3).

    After `unlearn`, `stats_` holds ε, δ, σ, λ, the budget σε/c, the bound this removal added,
    the bound the Newton step would leave (rounding of the stored head included: it decides the
    retrain), the accumulated bound, the certified distance ‖W⁻ − W*(D')‖ (bound / λn'), whether the head was
    fitted at the start and whether a retrain fired, and what the guarantee covers.

    References
    ----------
    Guo, Goldstein, Hannun, van der Maaten, "Certified Data Removal from Machine Learning Models",
    ICML 2020 (code: github.com/facebookresearch/certified-removal).
    """

    name = "certified"
    requires_retain = True

    def __init__(self, epsilon: float = 1.0, delta: float = 1e-4, sigma: float = 10.0, lam: float = 1e-3):
        self.epsilon, self.delta, self.sigma, self.lam = epsilon, delta, sigma, lam

    def _checked(self) -> dict:
        return {"epsilon": check_number(self.name, "epsilon", self.epsilon),
                "delta": check_number(self.name, "delta", self.delta, high=1.0),
                "sigma": check_number(self.name, "sigma", self.sigma),
                "lam": check_number(self.name, "lam", self.lam)}

    def _unlearn(self, model, forget, retain, *, seed, device, **context):
        params = self._checked()
        lam, sigma = params["lam"], params["sigma"]
        budget = removal_budget(params["epsilon"], params["delta"], sigma)
        head, every = head_features(model, union(retain, forget), device)
        Y = one_vs_rest(torch.cat([retain.y, forget.y]), head.out_features)
        record = get_record(model)
        seeds = list((record or {}).get("noise_seeds", []))
        fitted_at_start = record is None
        if fitted_at_start:  # Algorithm 1 on D, so that the removal below is certified
            scale = float(every.norm(dim=1).max().clamp(min=1e-12))
            X = every / scale
            b, drawn = draw_perturbation((X.shape[1], Y.shape[1]), sigma, seed, seeds)
            seeds.append(drawn)
            W, residual = fit_perturbed(X, Y, lam, b)
            spent = float(residual.sum())
        else:
            self._check_record(record, params, len(every))
            scale = record["feature_scale"]
            X = every / scale
            W, spent = read_head(head, scale), record["bound"]
        n_keep = len(retain)
        X_keep, Y_keep = X[:n_keep], Y[:n_keep]
        keep_norm = spectral_norm(X_keep)
        W_new, removal_bounds = newton_removal(W, X_keep, Y_keep, X[n_keep:], Y[n_keep:], lam, keep_norm)
        added = float(removal_bounds.sum())
        # Every term of the bound the stored head will carry decides, the rounding of storing it included.
        newton_rounding = rounding = rounding_bound(head, W_new, scale, n_keep, lam, keep_norm)
        newton_bound = spent + added + newton_rounding
        retrained = newton_bound > budget
        if retrained:  # Algorithm 2: the budget would be exceeded; retrain on D' with a fresh b
            b, drawn = draw_perturbation(W.shape, sigma, seed, seeds)
            seeds.append(drawn)
            W_new, residual = fit_perturbed(X_keep, Y_keep, lam, b)
            rounding = rounding_bound(head, W_new, scale, n_keep, lam, keep_norm)
            bound = float(residual.sum()) + rounding
        else:
            bound = newton_bound
        store_head(head, W_new, scale)
        previous = record or {"removals": 0, "retrains": 0}
        set_record(model, {**params, "budget": budget, "feature_scale": scale, "n_fitted": n_keep, "bound": bound,
                           "removals": previous["removals"] + 1, "retrains": previous["retrains"] + int(retrained),
                           "noise_seeds": seeds})
        covers_all = all(p is head.weight or p is head.bias for p in model.parameters())
        self.stats_ = {**params, "budget": budget, "bound_added": added, "newton_rounding": newton_rounding,
                       "newton_bound": newton_bound, "rounding": rounding, "bound": bound,
                       "certified_distance": bound / (lam * n_keep), "fitted_at_start": fitted_at_start,
                       "retrained": retrained, "certified": bound <= budget,
                       "guarantee": "whole model" if covers_all else "last layer only"}
        return model

    def _check_record(self, record: dict, params: dict, n: int) -> None:
        for key, value in params.items():
            if record.get(key) != value:
                raise UnlearnInputError(f"certified: the model's head was fitted with {key}={record.get(key)!r}, "
                                        f"not {value!r}; use the same {key} for every removal")
        if record.get("n_fitted") != n:
            raise UnlearnInputError(f"certified: the model's head stands for {record.get('n_fitted')} samples but "
                                    f"retain + forget hold {n}; give the data it was fitted on")


def certified_fit(model: nn.Module, data: ArrayDataset, *, epsilon: float = 1.0, delta: float = 1e-4,
                  sigma: float = 10.0, lam: float = 1e-3, seed: int = 0,
                  device: str | torch.device = "cpu") -> nn.Module:
    """A copy of `model` whose last layer is fitted by Algorithm 1 on `data`, ready for removals."""
    params = CertifiedRemoval(epsilon, delta, sigma, lam)._checked()
    model = copy.deepcopy(model).to(device)
    head, every = head_features(model, data, device)
    scale = float(every.norm(dim=1).max().clamp(min=1e-12))
    X, Y = every / scale, one_vs_rest(data.y, head.out_features)
    b, drawn = draw_perturbation((X.shape[1], Y.shape[1]), params["sigma"], seed, [])
    W, residual = fit_perturbed(X, Y, params["lam"], b)
    bound = float(residual.sum()) + rounding_bound(head, W, scale, len(X), params["lam"], spectral_norm(X))
    store_head(head, W, scale)
    set_record(model, {**params, "budget": removal_budget(epsilon, delta, sigma), "feature_scale": scale,
                       "n_fitted": len(X), "bound": bound, "removals": 0, "retrains": 0, "noise_seeds": [drawn]})
    return model.eval()
