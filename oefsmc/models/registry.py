"""Architecture registry: name -> :class:`ArchSpec`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from ..registry import Registry


@dataclass(frozen=True)
class ArchSpec:
    name: str
    family: str  # "vgg" (plain chain, no residual blocks) | "cifar_resnet" | "imagenet_resnet"
    build: Callable[[int, int], nn.Module]  # (num_classes, in_channels) -> model
    description: str
    source: str  # citation of the definition


ARCHS: Registry[ArchSpec] = Registry("architecture")


def build_model(arch: str, num_classes: int, in_channels: int = 3) -> nn.Module:
    spec = ARCHS.get(arch)
    model = spec.build(num_classes, in_channels)
    model.arch_name = arch
    model.arch_family = spec.family
    return model
