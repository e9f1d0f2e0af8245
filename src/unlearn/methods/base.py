"""The one interface of every unlearning method, and the registry that finds them by name.

A method is a small class: hyperparameters are constructor arguments with the paper's defaults,
stored as attributes of the same name (scikit-learn's contract), and `unlearn(model, forget,
retain=None, ...)` returns a *new* model; the model it is given is never modified. Finding a
method by name and building it from (possibly string) hyperparameters is `unlearn.registry`'s.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
from torch import nn

from unlearn.data import ArrayDataset
from unlearn.errors import UnlearnInputError
from unlearn.registry import Registry, hyperparameters

# The classifier family's registry; `unlearn.lm.methods` keeps its own, built the same way.
_REGISTRY = Registry("method")
_METHODS: dict[str, type[Method]] = _REGISTRY.classes
register = _REGISTRY.register
available = _REGISTRY.available
get_class = _REGISTRY.get_class
get = _REGISTRY.get


class Method:
    """Base class. Subclasses set `name`, optionally `requires_retain`, and implement `_unlearn`."""

    name: ClassVar[str] = "method"
    requires_retain: ClassVar[bool] = False
    # Whether the method uses D_R when given it; False for methods defined on D_F alone (e.g. GA).
    uses_retain: ClassVar[bool] = True

    @classmethod
    def hyperparameters(cls) -> dict[str, Any]:
        """Constructor arguments and their defaults."""
        return hyperparameters(cls)

    @classmethod
    def setting_hyperparameters(cls, with_retain: bool) -> dict[str, Any]:
        """The defaults as they apply in one setting: `hyperparameters()`, with any default of None
        that the method resolves by setting filled in (tuning starts its studies there)."""
        return cls.hyperparameters()

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.hyperparameters()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def unlearn(self, model: nn.Module, forget: ArrayDataset, retain: ArrayDataset | None = None, *,
                seed: int = 0, device: str | torch.device = "cpu", **context) -> nn.Module:
        """Return a copy of `model` that has unlearned `forget` (using `retain` when given)."""
        if len(forget) == 0:
            raise UnlearnInputError(f"{self.name}: the forget set is empty")
        if self.requires_retain and (retain is None or len(retain) == 0):
            raise UnlearnInputError(f"{self.name} needs the retain set; it cannot run without D_R")
        student = copy.deepcopy(model).to(device)
        out = self._unlearn(student, forget, retain, seed=seed, device=torch.device(device), **context)
        return out.eval()

    def _unlearn(self, model: nn.Module, forget: ArrayDataset, retain: ArrayDataset | None, *,
                 seed: int, device: torch.device, **context) -> nn.Module:
        raise NotImplementedError
