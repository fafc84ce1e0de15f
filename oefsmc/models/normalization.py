"""Input normalisation of a teacher: uint8 NHWC images -> the float NCHW tensors the network was trained on.

It lives apart from :mod:`oefsmc.models.teacher` (loading, recipes) and :mod:`oefsmc.models.teacher_training`
(the trainer) so that both import it and neither imports the other (``oefsmc.models.teacher`` re-exports
:class:`Normalizer`).
"""
from __future__ import annotations

import torch

from ..errors import UserError

NORMALISATIONS = {
    # ToTensor then Normalize(mean, std)
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # akamaster teachers, torchvision ResNet-34
    "cifar": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),  # FSKD, CD (default branch), Open-Sampling
    "digits": ((0.5,), (0.5,)),  # the demo
}


class Normalizer:
    """uint8 N x H x W x C -> float32 N x C x H x W, ``(x / 255 - mean) / std``."""

    def __init__(self, name: str, device: torch.device | str = "cpu"):
        if name not in NORMALISATIONS:
            raise UserError(f"unknown normalisation {name!r}; choose one of: {', '.join(NORMALISATIONS)}")
        mean, std = NORMALISATIONS[name]
        self.name = name
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.mean.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        return ((x - self.mean) / self.std).contiguous()
