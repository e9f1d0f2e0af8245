"""SSD: selective synaptic dampening, a retraining-free method that shrinks the weights D_F needs most.

Importance of every weight for a data set = its diagonal Fisher information, estimated as the
squared gradient of the mean cross-entropy of a batch, averaged over the batches (Foster, Schoepf,
Brintrup, AAAI 2024, Eq. 1, and their public code). With imp_F on D_F and imp_D on the full
training data D = D_R ∪ D_F, a weight is *selected* when imp_F > α·imp_D and then multiplied by
min(λ·imp_D / imp_F, 1); every other weight is left bit-identical. No fine-tuning, no optimiser.

    new = unlearn.methods.get("ssd", alpha=10, lam=1).unlearn(model, forget, retain)

Needs D_R, because imp_D is computed on the full training data. The paper's main setting is
class and sub-class forgetting; on random forgetting few weights pass the α test and the model
changes little, as the paper reports for its 100-sample random-forgetting runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unlearn.data import ArrayDataset, as_float
from unlearn.methods.base import Method, register
from unlearn.methods.shared import check_integer, check_number, union


def batch_fisher_importance(model: nn.Module, data: ArrayDataset, batch_size: int,
                            device: torch.device) -> dict[str, torch.Tensor]:
    """Per-weight importance: (∂ mean-batch CE / ∂θ)², averaged over the batches (SSD's estimator).

    The model is scored in eval mode (the public code calls `model.eval()` first), so BatchNorm
    uses its running statistics and the importances do not depend on batch composition through it.
    """
    model.eval()
    params = dict(model.named_parameters())
    importance = {name: torch.zeros_like(p) for name, p in params.items()}
    batches = 0
    for start in range(0, len(data), batch_size):
        x = as_float(data.x[start:start + batch_size].to(device))
        y = data.y[start:start + batch_size].to(device)
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(params.values()), allow_unused=True)
        for name, g in zip(params, grads):
            if g is not None:
                importance[name] += g.detach() ** 2
        batches += 1
    return {name: imp / batches for name, imp in importance.items()}


@register
class SSD(Method):
    """Selective Synaptic Dampening (Foster et al. 2024).

    Parameters
    ----------
    alpha : selection threshold α: a weight is dampened when imp_F > α·imp_D (paper: 10).
    lam : dampening constant λ: a selected weight is multiplied by min(λ·imp_D / imp_F, 1)
        (paper: 1). The cap at 1 keeps weights from growing, as in the public code.
    batch_size : batch of both importance passes (public code: 128 for D_F and for D).

    After `unlearn`, `stats_` records the fraction of weights dampened and their mean factor.

    References
    ----------
    Foster, Schoepf, Brintrup, "Fast Machine Unlearning Without Retraining Through Selective
    Synaptic Dampening", AAAI 2024 (code: github.com/if-loops/selective-synaptic-dampening).
    """

    name = "ssd"
    requires_retain = True

    def __init__(self, alpha: float = 10.0, lam: float = 1.0, batch_size: int = 128):
        self.alpha, self.lam, self.batch_size = alpha, lam, batch_size

    def _unlearn(self, model, forget, retain, *, seed, device, **context):
        alpha = check_number(self.name, "alpha", self.alpha, inclusive=True)
        lam = check_number(self.name, "lam", self.lam, inclusive=True)
        check_integer(self.name, "batch_size", self.batch_size, least=1)
        for p in model.parameters():
            p.requires_grad_(True)
        forget_importance = batch_fisher_importance(model, forget, self.batch_size, device)
        full_importance = batch_fisher_importance(model, union(retain, forget), self.batch_size, device)
        dampened, total, factors = 0, 0, []
        with torch.no_grad():
            for name, param in model.named_parameters():
                imp_f, imp_d = forget_importance[name], full_importance[name]
                selected = imp_f > alpha * imp_d
                factor = (lam * imp_d / imp_f).clamp(max=1.0)
                # torch.where keeps every unselected weight bit-identical (no multiply by 1.0).
                param.copy_(torch.where(selected, param * factor, param))
                dampened += int(selected.sum())
                total += param.numel()
                factors.append(factor[selected])
        chosen = torch.cat(factors)
        self.stats_ = {"dampened_fraction": dampened / total,
                       "mean_factor": float(chosen.mean()) if chosen.numel() else 1.0}
        return model
