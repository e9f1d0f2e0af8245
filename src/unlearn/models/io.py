"""The model wrapper every layer passes around, and its safetensors file format.

`Classifier` = per-channel normalisation + an architecture from the registry, plus a `spec`
(architecture, arguments, classes, input shape, normalisation, training record). A saved model is
a safetensors file: the tensors, and the spec as JSON metadata. Loading never unpickles anything,
checks the file against the dataset it will be used with, and refuses mismatches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from unlearn.errors import UnlearnInputError
from unlearn.files import atomic_path
from unlearn.models.architectures import build

FORMAT = "unlearn.classifier/1"


class Classifier(nn.Module):
    """Pixel-space classifier: `forward(x in [0, 1]) -> logits`."""

    def __init__(self, arch: str, num_classes: int, input_shape, mean=(), std=(), classes=(),
                 arch_args: dict | None = None, training: dict | None = None):
        super().__init__()
        self.spec: dict[str, Any] = {
            "arch": arch, "arch_args": dict(arch_args or {}), "num_classes": int(num_classes),
            "input_shape": [int(s) for s in input_shape], "classes": [str(c) for c in classes],
            "mean": [float(m) for m in mean], "std": [float(s) for s in std], "training": dict(training or {}),
        }
        shape = [1, -1] + [1] * (len(input_shape) - 1)
        mean_t = torch.tensor(mean or [0.0], dtype=torch.float32)
        std_t = torch.tensor(std or [1.0], dtype=torch.float32)
        self.register_buffer("mean", mean_t.view(shape) if len(input_shape) > 1 else mean_t, persistent=False)
        self.register_buffer("std", std_t.view(shape) if len(input_shape) > 1 else std_t, persistent=False)
        self.net = build(arch, num_classes, tuple(input_shape), **self.spec["arch_args"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def create(arch: str, dataset, **arch_args) -> Classifier:
    """A fresh classifier for `dataset` (an `unlearn.data.Dataset`)."""
    return Classifier(arch, dataset.num_classes, dataset.input_shape, dataset.mean, dataset.std,
                      dataset.classes, arch_args)


def save_model(model: Classifier, path, extra: dict | None = None, atomic: bool = True) -> Path:
    """Write `model` as safetensors with its spec in the metadata; atomic (temp file + rename).

    `extra` is merged into the spec's training record; `atomic=False` writes `path` in place (a
    staged temporary file that its caller moves into place, as the request ledger does).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = dict(model.spec)
    if extra:
        spec["training"] = {**spec.get("training", {}), **extra}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "spec": json.dumps(spec)}
    if not atomic:
        save_file(tensors, str(path), metadata=metadata)
        return path
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


# The parts of a spec that decide what the model computes; the rest ("training") is its history.
BEHAVIOUR_KEYS = ("arch", "arch_args", "num_classes", "input_shape", "classes", "mean", "std")


def read_spec(path) -> dict:
    """A model file's spec (architecture, classes, input shape, training record) without its weights."""
    path = Path(path)
    if not path.is_file():
        raise UnlearnInputError(f"model file {str(path)!r} does not exist")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise UnlearnInputError(f"{path}: not a readable safetensors model file ({err})") from err
    if meta.get("format") != FORMAT or "spec" not in meta:
        raise UnlearnInputError(f"{path}: safetensors file without unlearn model metadata")
    return json.loads(meta["spec"])


def load_model(path, dataset=None, device: str | torch.device = "cpu") -> Classifier:
    """Load a classifier; with `dataset`, refuse a file made for other classes or input shapes."""
    path = Path(path)
    spec = read_spec(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise UnlearnInputError(f"{path}: not a readable safetensors model file ({err})") from err
    if dataset is not None:
        check_compatible(spec, dataset, source=str(path))
    model = Classifier(spec["arch"], spec["num_classes"], spec["input_shape"], spec["mean"], spec["std"],
                       spec["classes"], spec["arch_args"], spec.get("training"))
    try:
        model.load_state_dict(tensors)
    except RuntimeError as err:
        raise UnlearnInputError(f"{path}: weights do not fit architecture {spec['arch']} ({err})") from err
    return model.to(device)


def check_compatible(spec: dict, dataset, source: str = "model") -> None:
    if spec["num_classes"] != dataset.num_classes:
        raise UnlearnInputError(
            f"{source} was made for {spec['num_classes']} classes, dataset {dataset.name} has {dataset.num_classes}"
        )
    if list(spec["input_shape"]) != list(dataset.input_shape):
        raise UnlearnInputError(
            f"{source} expects inputs of shape {spec['input_shape']}, dataset {dataset.name} has {list(dataset.input_shape)}"
        )
    if spec.get("classes") and list(spec["classes"]) != list(dataset.classes):
        raise UnlearnInputError(f"{source} was made for classes {spec['classes'][:4]}..., not those of {dataset.name}")
