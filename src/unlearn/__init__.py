"""unlearn: machine unlearning of trained classifiers, and audits that check it.

Layers (each imports only those before it): data, models, training, bank, attacks, methods,
audit, experiments, cli. See docs/ for the methods, audits and benchmarks.

    import unlearn
    ds = unlearn.data.load("mnist1d")
    new_model = unlearn.methods.get("amun", lr=0.05).unlearn(model, forget, retain)

`data`, `models` and `training` load with the package; the other layers load on first use
(`unlearn.methods`, `unlearn.audit`, ...), so `import unlearn` stays fast.
"""

import importlib

from unlearn import data, models, training  # noqa: F401
from unlearn.errors import DivergenceError, UnlearnInputError  # noqa: F401

__version__ = "0.1.0"

_LAZY = ("bank", "attacks", "methods", "audit", "experiments", "requests", "cli")


def __getattr__(name: str):
    if name in _LAZY:
        try:
            return importlib.import_module(f"unlearn.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"unlearn.{name}":
                raise
    raise AttributeError(f"module 'unlearn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
