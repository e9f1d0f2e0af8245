"""What unlearning methods share, written once.

- `finetune`: the training loop of `unlearn.training` over a mix of sources (D_R, D_F, D_A, ...)
  with each source's own augmentation and relabelling; methods differ in the mix, not the loop.
- `random_wrong_labels`: RL's relabelling, drawn anew on every batch.
- `saliency_mask` / `MaskedUpdate`: SalUn's weight saliency, shared by SalUn and AMUN + SalUn.
  The mask is enforced after every optimiser step by restoring the unmasked weights, so weight
  decay and momentum cannot move them (a defect of the public SalUn code).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from unlearn.data import ArrayDataset, as_float
from unlearn.training import Recipe, Source, fit


def finetune_recipe(lr: float, epochs: int, batch_size: int = 128, momentum: float = 0.9,
                    weight_decay: float = 5e-4, schedule: str = "constant", step_size: int = 1,
                    gamma: float = 0.1, crop_padding: int = 0, flip: bool = False) -> Recipe:
    """The SGD recipe of the fine-tuning methods (the papers' defaults: momentum 0.9, wd 5e-4, batch 128)."""
    return Recipe(optimizer="sgd", lr=lr, momentum=momentum, weight_decay=weight_decay, epochs=epochs,
                  batch_size=batch_size, schedule=schedule, step_size=step_size, gamma=gamma,
                  crop_padding=crop_padding, flip=flip)


def random_wrong_labels(num_classes: int):
    """Relabelling that gives every sample a uniformly random label other than its own."""

    def relabel(y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        shift = torch.randint(1, num_classes, y.shape, generator=gen)
        return (y + shift) % num_classes

    return relabel


def num_classes_of(model: nn.Module) -> int:
    return int(model.spec["num_classes"]) if hasattr(model, "spec") else int(list(model.parameters())[-1].shape[0])


def saliency_mask(model: nn.Module, forget: ArrayDataset, ratio: float = 0.5, batch_size: int = 256,
                  device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """SalUn's mask: True for the weights whose |grad of CE on D_F| is in the top `ratio` fraction.

    The threshold is global over all parameters (as in SalUn), so layers compete for the budget.
    """
    model = model.to(device)
    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    for start in range(0, len(forget), batch_size):
        x = as_float(forget.x[start:start + batch_size].to(device))
        y = forget.y[start:start + batch_size].to(device)
        F.cross_entropy(model(x), y, reduction="sum").backward()
    named = [(n, p) for n, p in model.named_parameters() if p.grad is not None]
    magnitudes = torch.cat([p.grad.abs().flatten() for _, p in named])
    k = max(1, int(round(ratio * magnitudes.numel())))
    threshold = torch.topk(magnitudes, k, sorted=True).values[-1]
    mask = {n: (p.grad.abs() >= threshold).detach().clone() for n, p in named}
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return mask


class MaskedUpdate:
    """After-step hook: put every weight outside `mask` back to its value before unlearning."""

    def __init__(self, model: nn.Module, mask: dict[str, torch.Tensor]):
        self.params = dict(model.named_parameters())
        self.mask = {n: m.to(self.params[n].device) for n, m in mask.items()}
        self.frozen = {n: p.detach().clone() for n, p in self.params.items()}

    @torch.no_grad()
    def __call__(self) -> None:
        for name, param in self.params.items():
            keep = self.mask.get(name)
            if keep is None:
                param.copy_(self.frozen[name])
            else:
                param.copy_(torch.where(keep, param, self.frozen[name]))


def finetune(model: nn.Module, sources: Sequence[Source], recipe: Recipe, *, seed: int, device, name: str,
             mask: dict[str, torch.Tensor] | None = None, loss_fn=None) -> nn.Module:
    """Fine-tune `model` in place on the union of `sources`, optionally only inside `mask`."""
    after_step = MaskedUpdate(model, mask) if mask is not None else None
    return fit(model, sources, recipe, seed=seed, device=device, name=name, loss_fn=loss_fn, after_step=after_step)


def check_finetune_hparams(method: str, lr, epochs, batch_size) -> None:
    """Refuse learning rates, epochs and batch sizes a fine-tuning method cannot use, naming which.

    `methods.get` converts strings (YAML reads `1e-3` without a dot as one); this catches what
    reaches a constructor directly, which would otherwise fail deep inside the optimiser.
    """
    from unlearn.errors import UnlearnInputError

    numeric = isinstance(lr, (int, float)) and not isinstance(lr, bool)
    if not numeric or not lr > 0:
        raise UnlearnInputError(f"{method}: lr must be a positive number, got {lr!r}")
    check_integer(method, "epochs", epochs, least=0)
    check_integer(method, "batch_size", batch_size, least=1)


def check_integer(method: str, key: str, value, *, least: int) -> int:
    """Refuse a hyperparameter that is not an integer >= `least`, naming it."""
    from unlearn.errors import UnlearnInputError

    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise UnlearnInputError(f"{method}: {key} must be an integer >= {least}, got {value!r}")
    return value


def method_recipe(method, **schedule) -> Recipe:
    """The fine-tuning recipe of a method object, from its `lr`, `epochs`, `batch_size` and (when it
    has them) `crop_padding` / `flip` attributes, after checking them; `schedule` adds e.g. a StepLR."""
    check_finetune_hparams(method.name, method.lr, method.epochs, method.batch_size)
    return finetune_recipe(method.lr, method.epochs, method.batch_size, crop_padding=getattr(method, "crop_padding", 0),
                           flip=getattr(method, "flip", False), **schedule)


def check_number(method: str, key: str, value, *, low: float = 0.0, inclusive: bool = False,
                 high: float | None = None) -> float:
    """Refuse a hyperparameter that is not a number above `low` (or at it, if `inclusive`), naming it.

    As in `check_finetune_hparams`, YAML hands `1e-3` over as a string; refusing it here beats a
    TypeError deep inside a tensor operation.
    """
    from unlearn.errors import UnlearnInputError

    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    above = numeric and (value >= low if inclusive else value > low) and (high is None or value <= high)
    if not above or value != value:  # value != value: NaN
        bounds = f"{'>=' if inclusive else '>'} {low}" + (f" and <= {high}" if high is not None else "")
        raise UnlearnInputError(f"{method}: {key} must be a number {bounds}, got {value!r}")
    return float(value)


def union(retain: ArrayDataset, forget: ArrayDataset) -> ArrayDataset:
    """D = D_R ∪ D_F, retain samples first (the order the SSD and certified-removal papers' code use)."""
    x = torch.cat([retain.x, forget.x.to(retain.x.dtype)])
    return ArrayDataset(x, torch.cat([retain.y, forget.y]))


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's last `nn.Linear` (the classifier head), refused if there is none."""
    from unlearn.errors import UnlearnInputError

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UnlearnInputError(f"{type(model).__name__} has no nn.Linear layer to act on")
    return linears[-1]
