"""Pruning schemes (which channels a student keeps), each with its provenance.

- ``fskd_pruned_a``: FSKD's official VGG-16 "pruned-A" (``LTH14/FSKD: vggprune_pruning.py``
  PRUNED_CHANNEL = [0.5, 0, 0, 0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], L1 norm, Li et al. 2017); for
  ResNets, 50% L1 of every block's inner channels (conv1 outputs) -- the CMa-FSMC / Li et al. CIFAR-ResNet
  recipe, ours for FSKD (methods.md Sec. 2.4, 3.4).  MiR uses the same students (no MiR scheme is published).
- The demo's plain stand-in (``demo_vgg``, 6 convs) transfers pruned-A by position: prune the first conv
  and the last half of the convs by 50%.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from oefsmc.core.prune import n_keep_for_ratio, pruned_copy, top_k_by_l1
from oefsmc.core.student import Student

VGG16_PRUNED_A = [0.5, 0, 0, 0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]


def conv_names(model: nn.Module) -> list[str]:
    """Conv module paths in forward (registration) order."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def vgg_ratios(model: nn.Module) -> dict[str, float]:
    names = model.conv_names()
    if len(names) == 13:
        ratios = VGG16_PRUNED_A
    else:  # transfer by position: first conv and the last half
        half = len(names) // 2
        ratios = [0.5] + [0.0] * (len(names) - 1 - half) + [0.5] * half
    return {n: r for n, r in zip(names, ratios) if r > 0}


def residual_blocks(model: nn.Module) -> list[str]:
    """Paths of the residual blocks in forward order (``layerX.i``)."""
    out = []
    for s, stage in enumerate(model.stages(), start=1):
        for i, block in enumerate(stage):
            if not isinstance(block, nn.Identity):
                out.append(f"layer{s}.{i}")
    return out


def inner_conv_ratios(model: nn.Module, ratio: float = 0.5) -> dict[str, float]:
    return {f"{b}.conv1": ratio for b in residual_blocks(model)}


def l1_student(teacher: nn.Module, ratios: dict[str, float], example_input: torch.Tensor,
               provenance: str, description: str) -> Student:
    """Keep the top-L1 filters of each named conv (C - int(C * ratio) of them) and build the student."""
    kept = {}
    for name, r in ratios.items():
        conv = teacher.get_submodule(name)
        kept[name] = top_k_by_l1(conv, n_keep_for_ratio(conv.out_channels, r))
    model = pruned_copy(teacher, kept, example_input)
    return Student(model, kept, [], {"criterion": "l1", "ratios": ratios, "provenance": provenance,
                                     "description": description})


def fskd_pruned_a(teacher: nn.Module, example_input: torch.Tensor) -> Student:
    """The FSKD / MiR student for any registered family (see module docstring)."""
    if teacher.arch_family == "vgg":
        return l1_student(teacher, vgg_ratios(teacher), example_input, "official (FSKD pruned-A)",
                          "50% of conv1 and conv8-13 by L1 norm")
    return l1_student(teacher, inner_conv_ratios(teacher, 0.5), example_input, "ours (Li et al. 2017 inner channels)",
                      "50% L1 of every residual block's conv1 outputs")
