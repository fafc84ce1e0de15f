"""CIFAR ResNets with option-A shortcuts (He et al. 2016, Sec. 4.2).

Key names follow akamaster/pytorch_resnet_cifar10 (conv1, bn1, layer{1,2,3}.{i}.{conv1,bn1,conv2,bn2},
linear) so that the published CIFAR-10 checkpoints in ``../shared/data/teachers`` load unchanged; the same
definition is used by CD (``nets/resnet_20s.py``) and Open-Sampling (``model/resnet_cifar.py``).
The option-A shortcut is a parameter-free module (``x[:, :, ::2, ::2]`` zero-padded with planes/4 channels
on each side), not a lambda, so models deep-copy and pickle.

Blocks can be dropped (PRACTISE) by replacing a non-first block with ``nn.Identity``; the remaining blocks
keep their module paths, so kept-channel maps and feature taps stay aligned with the teacher.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import ARCHS, ArchSpec


class ShortcutA(nn.Module):
    """Option A: stride-2 subsampling plus zero channel padding (no parameters)."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0.0)


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = ShortcutA((planes - in_planes) // 2 if stride == 1 else planes // 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, blocks_per_stage: int, num_classes: int = 10, in_channels: int = 3,
                 widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        self.widths = widths
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        in_planes = widths[0]
        for s, (w, stride) in enumerate(zip(widths, (1, 2, 2)), start=1):
            layers = []
            for i in range(blocks_per_stage):
                layers.append(BasicBlock(in_planes, w, stride if i == 0 else 1))
                in_planes = w
            setattr(self, f"layer{s}", nn.Sequential(*layers))
        self.linear = nn.Linear(widths[2], num_classes)
        for m in self.modules():  # akamaster's _weights_init
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(out)))

    def forward_head(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.linear(F.adaptive_avg_pool2d(fmap, 1).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def head_names(self) -> list[str]:
        return ["linear."]

    def stages(self) -> list[nn.Sequential]:
        return [self.layer1, self.layer2, self.layer3]


def _register(name: str, n: int, widths=(16, 32, 64), desc: str = ""):
    ARCHS.add(name, ArchSpec(
        name=name, family="cifar_resnet",
        build=lambda k, c, n=n, widths=widths: CifarResNet(n, k, c, widths),
        description=desc or f"CIFAR ResNet-{6 * n + 2}, option-A shortcuts, widths {widths}",
        source="He et al. 2016 Sec. 4.2; akamaster/pytorch_resnet_cifar10 key names"))


_register("resnet20", 3)
_register("resnet32", 5)
_register("resnet56", 9)
# Demo stand-ins (8x8 digits): the same residual structure, narrower and shallower.
_register("demo_resnet_s", 2, (8, 16, 32), "demo stand-in: option-A ResNet-14, widths 8/16/32 (2 blocks/stage)")
_register("demo_resnet_m", 3, (8, 16, 32), "demo stand-in: option-A ResNet-20, widths 8/16/32 (3 blocks/stage)")
