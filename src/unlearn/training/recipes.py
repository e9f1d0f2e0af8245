"""Named training recipes: optimiser, schedule, epochs, batch size, augmentation.

A recipe is a frozen dataclass, so it hashes into the model bank's key and prints into reports.
Figures in the comments were measured on this project's CI machine kind (2 CPU cores, torch 2.13).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from unlearn.errors import UnlearnInputError


@dataclass(frozen=True)
class Recipe:
    optimizer: str = "sgd"          # "sgd" or "adam"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    epochs: int = 10
    batch_size: int = 128
    schedule: str = "constant"      # "constant", "step" (x gamma every step_size epochs), "cosine", "onecycle"
    step_size: int = 1
    gamma: float = 0.1
    crop_padding: int = 0           # random crop with this much zero padding (0: off)
    flip: bool = False              # random horizontal flip

    def with_(self, **changes) -> Recipe:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise UnlearnInputError(f"unknown recipe keys {sorted(unknown)}; known: {sorted(known)}")
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


RECIPES: dict[str, Recipe] = {
    # digits, MLP 256-256: reaches 100% train / ~97% test accuracy in about 3 s on 2 cores, and
    # fits the training set tightly enough that membership leaks (what the audits must detect).
    "digits": Recipe(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=0.0, epochs=40, batch_size=64,
                     schedule="onecycle"),
    # CIFAR-10 on a CPU (BENCHMARKS.md "cifar10-cpu"): small CNN, one-cycle SGD, flips only.
    "cifar10-cpu": Recipe(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, epochs=30, batch_size=128,
                          schedule="onecycle", flip=True),
    # The papers' GPU setting (METHODS.md): 200 epochs, lr 0.1 x0.1 every 40 epochs, crop + flip.
    "cifar10-paper": Recipe(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, epochs=200, batch_size=128,
                            schedule="step", step_size=40, gamma=0.1, crop_padding=4, flip=True),
}

DEFAULT_ARCH = {"digits": ("mlp", {}), "cifar10": ("cnn", {"width": 32})}


def default_arch_args(dataset_name: str, arch: str, arch_args: dict | None) -> dict:
    """Explicit arguments win; otherwise the dataset's default arguments for its default architecture."""
    if arch_args is not None:
        return dict(arch_args)
    default_arch, default_args = DEFAULT_ARCH.get(dataset_name, (arch, {}))
    return dict(default_args) if default_arch == arch else {}


def get_recipe(recipe: str | Recipe | dict) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return Recipe().with_(**recipe)
    if recipe not in RECIPES:
        raise UnlearnInputError(f"unknown recipe {recipe!r}; known: {', '.join(sorted(RECIPES))}")
    return RECIPES[recipe]


def default_recipe(dataset_name: str) -> str:
    return dataset_name if dataset_name in RECIPES else ("cifar10-cpu" if "cifar" in dataset_name else "digits")
