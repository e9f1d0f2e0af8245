"""Architectures, found by name.

Every architecture is a plain `nn.Module` mapping normalised inputs to logits; `Classifier`
(in `unlearn.models.io`) puts the per-channel normalisation in front of it so callers always
feed pixel-space inputs in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from unlearn.errors import UnlearnInputError

_ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    def wrap(fn):
        _ARCHITECTURES[name] = fn
        return fn

    return wrap


def available() -> list[str]:
    return sorted(_ARCHITECTURES)


def build(name: str, num_classes: int, input_shape: tuple[int, ...], **kwargs) -> nn.Module:
    if name not in _ARCHITECTURES:
        raise UnlearnInputError(f"unknown model {name!r}; known: {', '.join(available())}")
    try:
        return _ARCHITECTURES[name](num_classes=num_classes, input_shape=tuple(input_shape), **kwargs)
    except TypeError as err:
        raise UnlearnInputError(f"model {name!r}: bad arguments {kwargs} ({err})") from err


@register("mlp")
def mlp(num_classes: int, input_shape, hidden: tuple[int, ...] | list[int] = (256, 256)) -> nn.Module:
    """Fully connected ReLU network on the flattened input."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


@register("cnn")
def small_cnn(num_classes: int, input_shape, width: int = 32, blocks: int = 3, hidden: int = 256) -> nn.Module:
    """Conv-BN-ReLU blocks of width w, 2w, 4w, ..., each followed by 2x2 max-pool, then an MLP head.

    With width 32 on a 10,000-image CIFAR-10 subset this fits the training set (BENCHMARKS.md).
    Pooling stops once the feature map is 1x1, so the same net serves 8x8 digits.
    """
    channels, size = input_shape[0], input_shape[-1]
    layers: list[nn.Module] = []
    for i in range(blocks):
        out = width * 2**i
        layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
        if size >= 2:
            layers.append(nn.MaxPool2d(2))
            size //= 2
        channels = out
    layers += [nn.Flatten(), nn.Linear(channels * size * size, hidden), nn.ReLU(inplace=True),
               nn.Linear(hidden, num_classes)]
    return nn.Sequential(*layers)


@register("cnn1d")
def cnn1d(num_classes: int, input_shape, width: int = 32, blocks: int = 3, hidden: int = 128) -> nn.Module:
    """1-D convolutions for signals (C, L), e.g. MNIST-1D (1, 40): Conv1d-BN-ReLU blocks of width w,
    2w, 4w, ..., each followed by max-pool by 2 while the signal is at least 2 long, then an MLP head.
    """
    if len(input_shape) != 2:
        raise UnlearnInputError(f"cnn1d takes signals shaped (channels, length), got input shape {tuple(input_shape)}")
    channels, length = input_shape
    layers: list[nn.Module] = []
    for i in range(blocks):
        out = width * 2**i
        layers += [nn.Conv1d(channels, out, 5, padding=2, bias=False), nn.BatchNorm1d(out), nn.ReLU(inplace=True)]
        if length >= 2:
            layers.append(nn.MaxPool1d(2))
            length //= 2
        channels = out
    layers += [nn.Flatten(), nn.Linear(channels * length, hidden), nn.ReLU(inplace=True),
               nn.Linear(hidden, num_classes)]
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet (He et al. 2016): 3x3 stem, no max-pool, four stages of basic blocks."""

    def __init__(self, num_classes: int, input_shape, width: int = 64, blocks=(2, 2, 2, 2)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        stages, cin = [], width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            for j in range(n):
                stages.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


@register("resnet18")
def resnet18(num_classes: int, input_shape, width: int = 64, depth: int = 18) -> nn.Module:
    """CIFAR ResNet-18 (width 64); `width` scales every stage, `depth` in {8, 10, 18, 34} sets blocks."""
    per_depth = {8: (1, 1, 1), 10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
    if depth not in per_depth:
        raise UnlearnInputError(f"resnet depth must be one of {sorted(per_depth)}, got {depth}")
    return ResNet(num_classes, input_shape, width, per_depth[depth])


_VGG = {11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
        19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
             512, 512, 512, 512, "M"]}


def _vgg(depth: int, num_classes: int, input_shape, width_scale: float = 1.0) -> nn.Module:
    layers: list[nn.Module] = []
    channels, size = input_shape[0], input_shape[-1]
    for v in _VGG[depth]:
        if v == "M":
            if size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            continue
        out = max(8, int(v * width_scale))
        layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)


@register("vgg11")
def vgg11(num_classes: int, input_shape, width_scale: float = 1.0) -> nn.Module:
    """VGG-11 with BatchNorm (the AMUN paper's Tiny ImageNet model family)."""
    return _vgg(11, num_classes, input_shape, width_scale)


@register("vgg19")
def vgg19(num_classes: int, input_shape, width_scale: float = 1.0) -> nn.Module:
    """VGG-19 with BatchNorm."""
    return _vgg(19, num_classes, input_shape, width_scale)
