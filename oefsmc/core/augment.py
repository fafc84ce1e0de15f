"""Batched, tensor-level training augmentation (no per-sample Python loops).

``random_crop_flip``: pad-and-random-crop plus horizontal flip, the standard CIFAR training augmentation
(used by FSKD's teacher, Open-Sampling, and MiR's "dataset's standard training augmentation").

The random offsets come from a CPU ``torch.Generator`` (so a run draws the same numbers on every device);
on CUDA they reach the device through pinned memory without blocking (:func:`to_device`), so the host
never waits for the GPU inside a training step.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small CPU tensor (random indices) on ``device``: an asynchronous copy from pinned memory on CUDA
    (a plain pageable copy would wait for the GPU's queue every step); unchanged elsewhere."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4, flip: bool = True) -> torch.Tensor:
    n, c, h, w = x.shape
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        rows = to_device(dy[:, None] + torch.arange(h)[None, :], x.device)  # n x h
        cols = to_device(dx[:, None] + torch.arange(w)[None, :], x.device)  # n x w
        idx_n = torch.arange(n, device=x.device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        mask = to_device(torch.rand(n, generator=generator) < 0.5, x.device)
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x.contiguous()
