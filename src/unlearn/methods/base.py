"""The one interface of every unlearning method, and the registry that finds them by name.

A method is a small class: hyperparameters are constructor arguments with the paper's defaults,
stored as attributes of the same name (scikit-learn's contract), and `unlearn(model, forget,
retain=None, ...)` returns a *new* model; the model it is given is never modified.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, ClassVar

import torch
from torch import nn

from unlearn.data import ArrayDataset
from unlearn.errors import UnlearnInputError

_METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    _METHODS[cls.name] = cls
    return cls


def available() -> list[str]:
    return sorted(_METHODS)


def get_class(name: str) -> type[Method]:
    if name not in _METHODS:
        raise UnlearnInputError(f"unknown method {name!r}; known: {', '.join(available())}")
    return _METHODS[name]


def get(name: str, **hparams) -> Method:
    """A method by name with hyperparameters, e.g. `get("amun", lr=0.01)`; unknown keys are refused.

    Strings given for numeric or boolean hyperparameters are converted to the type of the
    constructor's default (or of its annotation when the default is None): YAML reads `1e-3`
    without a dot as a string, and `--set` values arrive the same way. A string that does not
    convert is refused with an input error naming the key.
    """
    cls = get_class(name)
    known = cls.hyperparameters()
    unknown = set(hparams) - set(known)
    if unknown:
        raise UnlearnInputError(f"method {name!r} has no hyperparameter(s) {sorted(unknown)}; it takes {sorted(known)}")
    kinds = _numeric_kinds(cls)
    converted = {k: _convert(name, k, v, kinds.get(k)) if isinstance(v, str) else v for k, v in hparams.items()}
    return cls(**converted)


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _numeric_kinds(cls) -> dict[str, type]:
    """bool, int or float per hyperparameter whose default (or, for None, annotation) says so."""
    kinds = {}
    annotations = {k: str(p.annotation) for k, p in inspect.signature(cls.__init__).parameters.items()}
    for key, default in cls.hyperparameters().items():
        if isinstance(default, (bool, int, float)):
            kinds[key] = type(default)
        elif default is None:
            words = annotations.get(key, "").replace("|", " ").replace(",", " ").split()
            for kind in (float, int, bool):
                if kind.__name__ in words:
                    kinds[key] = kind
                    break
    return kinds


def _convert(method: str, key: str, value: str, kind: type | None):
    if kind is None:
        return value
    text = value.strip()
    try:
        if kind is bool:
            if text.lower() not in _TRUE | _FALSE:
                raise ValueError
            return text.lower() in _TRUE
        number = float(text)
        if kind is int:
            if not number.is_integer():
                raise ValueError
            return int(number)
        return number
    except (ValueError, OverflowError):
        article = "an" if kind is int else "a"
        raise UnlearnInputError(f"{method}: {key} must be {article} {kind.__name__}, got {value!r}") from None


class Method:
    """Base class. Subclasses set `name`, optionally `requires_retain`, and implement `_unlearn`."""

    name: ClassVar[str] = "method"
    requires_retain: ClassVar[bool] = False
    # Whether the method uses D_R when given it; False for methods defined on D_F alone (e.g. GA).
    uses_retain: ClassVar[bool] = True

    @classmethod
    def hyperparameters(cls) -> dict[str, Any]:
        """Constructor arguments and their defaults."""
        params = inspect.signature(cls.__init__).parameters
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return {k: p.default for k, p in params.items() if k != "self" and p.kind in kinds}

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
