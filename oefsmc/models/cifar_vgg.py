"""CIFAR VGG-16 (and a small plain-chain demo stand-in).

One definition for every method (methods.md Sec. 6.1): 13 conv3x3 (bias=False) + BatchNorm + ReLU with
the standard cfg [64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512], four
max-pools (so the last map is 2x2), AvgPool2d(2), and a single Linear(512, K) head.
- BN after every conv follows CD's ``nets/vgg_cifar.py``; FSKD's no-BN net trains poorly without a
  tuned lr and OE-FSMC's fine-tuning relies on BN seeing few-sample and OOD images together.
- The single-linear head follows FSKD's ``models/vgg.py``; it makes MiR's "teacher head" one layer and
  the pre-GAP feature the 512x2x2 map (methods.md Sec. 3.4).
FSKD's 1x1 layer is placed between conv and BN so its merge stays exact (methods.md Sec. 2.6 pitfall 1).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import ARCHS, ArchSpec

VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
DEMO_VGG_CFG = [16, 16, "M", 32, 32, "M", 64, 64]


class PlainVGG(nn.Module):
    """conv-BN-ReLU chain; ``features`` holds (Conv2d, BatchNorm2d, ReLU, MaxPool2d) modules."""

    def __init__(self, cfg: list, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, 1, 1, bias=False), nn.BatchNorm2d(v), nn.ReLU(inplace=False)]
                c = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.adaptive_avg_pool2d(fmap, 1).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def head_names(self) -> list[str]:
        return ["classifier."]

    def conv_names(self) -> list[str]:
        """Module paths of the convs in forward order (conv1 ... conv13 for VGG-16)."""
        return [f"features.{i}" for i, m in enumerate(self.features) if isinstance(m, nn.Conv2d)]


ARCHS.add("vgg16", ArchSpec(
    "vgg16", "vgg", lambda k, c: PlainVGG(VGG16_CFG, k, c),
    "CIFAR VGG-16 with BN, AvgPool2d(2) and Linear(512, K)",
    "CD nets/vgg_cifar.py (BN) + FSKD models/vgg.py (single-linear head); methods.md Sec. 6.1"))
ARCHS.add("demo_vgg", ArchSpec(
    "demo_vgg", "vgg", lambda k, c: PlainVGG(DEMO_VGG_CFG, k, c),
    "demo stand-in for VGG-16: 6 conv-BN-ReLU layers [16,16,M,32,32,M,64,64], no residual blocks",
    "ours (demo profile)"))
