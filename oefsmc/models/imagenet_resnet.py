"""ImageNet ResNet-34: standard torchvision ResNet-34 (methods.md Sec. 6.1).

CD's ``nets/resnet_18s.py`` omits the ReLU after the residual addition (methods.md Sec. 1.8 pitfall 1);
the torchvision definition is correct and is what MiR and PRACTISE load.  Published weights
(``IMAGENET1K_V1``, ``resnet34-333f7ec4.pth``, top-1 73.314) are fetched by torchvision from its hub, which
needs the network: offline, :func:`load_torchvision_weights` raises a one-line error naming ``--teacher``.
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError
from .registry import ARCHS, ArchSpec


@functools.lru_cache(maxsize=1)
def _tv_resnet_class() -> type:
    """torchvision's ResNet with the suite's feature/head interface (torchvision imported lazily: ~2 s)."""
    import torchvision

    class TVResNet(torchvision.models.ResNet):
        def forward_features(self, x: torch.Tensor) -> torch.Tensor:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            return self.layer4(self.layer3(self.layer2(self.layer1(x))))

        def forward_head(self, fmap: torch.Tensor) -> torch.Tensor:
            return self.fc(F.adaptive_avg_pool2d(fmap, 1).flatten(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.forward_head(self.forward_features(x))

        def head_names(self) -> list[str]:
            return ["fc."]

        def stages(self) -> list[nn.Sequential]:
            return [self.layer1, self.layer2, self.layer3, self.layer4]

    TVResNet.__module__ = __name__
    TVResNet.__qualname__ = "TVResNet"
    return TVResNet


def __getattr__(name: str):
    """``TVResNet`` is built lazily (torchvision imports in ~2 s); this makes it importable by name, so a
    pickled student (the compressed-state cache) finds its class (PEP 562)."""
    if name == "TVResNet":
        return _tv_resnet_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resnet34(num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
    import torchvision
    model = _tv_resnet_class()(torchvision.models.resnet.BasicBlock, [3, 4, 6, 3], num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    return model


def load_torchvision_weights(model: nn.Module) -> str:
    """Load torchvision's IMAGENET1K_V1 ResNet-34 weights into ``model``; returns the weights' name."""
    import torchvision
    weights = torchvision.models.ResNet34_Weights.IMAGENET1K_V1
    try:
        state = weights.get_state_dict(progress=False)
    except Exception as exc:  # URLError, HTTPError, socket errors ... all mean "no network"
        raise UserError(
            f"could not fetch torchvision ResNet-34 weights ({type(exc).__name__}): connect to the internet "
            "once so torchvision caches them, or pass a ResNet-34 state_dict with --teacher imagenet=PATH "
            "(sweep) / --teacher PATH (run)") from None
    model.load_state_dict(state)
    return str(weights)


ARCHS.add("resnet34", ArchSpec(
    "resnet34", "imagenet_resnet", lambda k, c: resnet34(k, c),
    "torchvision ResNet-34", "He et al. 2016; torchvision.models.resnet34"))
