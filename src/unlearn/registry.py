"""Finding a method by name and building it from hyperparameters: shared by both method families.

The classifier methods (`unlearn.methods`) and the language-model methods
(`unlearn.lm.methods`) keep separate registries, so a protocol cannot hand an LM method to a
classifier or the reverse, but they build a method the same way: hyperparameters are
constructor arguments with defaults (scikit-learn's contract), an unknown key is refused by
name, and a string given for a numeric or boolean hyperparameter (YAML reads `1e-3` without a
dot as a string; `--set` values arrive as strings) is converted to the type of its default, or
refused with an input error naming the key.
"""

from __future__ import annotations

import inspect
from typing import Any

from unlearn.errors import UnlearnInputError

_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def constructor_parameters(cls) -> dict[str, inspect.Parameter]:
    """The named constructor arguments of `cls`, own first.

    A constructor that passes `**kwargs` on to its parent's takes the parent's named arguments
    too (an LM method lists its own loss weights and inherits the fine-tuning loop's).
    """
    found: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters
        for key, param in params.items():
            if key != "self" and param.kind in _KINDS:
                found.setdefault(key, param)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            break
    return found


def hyperparameters(cls) -> dict[str, Any]:
    """Constructor arguments and their defaults."""
    return {k: p.default for k, p in constructor_parameters(cls).items()}


class Registry:
    """Methods of one family by name; `kind` names the family in error messages."""

    def __init__(self, kind: str):
        self.kind = kind
        self.classes: dict[str, type] = {}

    def register(self, cls: type) -> type:
        self.classes[cls.name] = cls
        return cls

    def available(self) -> list[str]:
        return sorted(self.classes)

    def get_class(self, name: str) -> type:
        if name not in self.classes:
            raise UnlearnInputError(f"unknown {self.kind} {name!r}; known: {', '.join(self.available())}")
        return self.classes[name]

    def get(self, name: str, **hparams):
        """A method by name with hyperparameters; unknown keys refused, strings converted."""
        cls = self.get_class(name)
        known = cls.hyperparameters()
        unknown = set(hparams) - set(known)
        if unknown:
            raise UnlearnInputError(f"{self.kind} {name!r} has no hyperparameter(s) {sorted(unknown)}; "
                                    f"it takes {sorted(known)}")
        kinds = _numeric_kinds(cls)
        return cls(**{k: _convert(name, k, v, kinds.get(k)) if isinstance(v, str) else v for k, v in hparams.items()})


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _numeric_kinds(cls) -> dict[str, type]:
    """bool, int or float per hyperparameter whose default (or, for None, annotation) says so."""
    kinds = {}
    for key, param in constructor_parameters(cls).items():
        default = param.default
        if isinstance(default, (bool, int, float)):
            kinds[key] = type(default)
        elif default is None:
            words = str(param.annotation).replace("|", " ").replace(",", " ").split()
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
