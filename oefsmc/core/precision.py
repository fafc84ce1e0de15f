"""Numerical precision per stage, on CPU and CUDA (docs/REPRODUCTION_NOTES.md, section 10, "On a GPU").

Which stage may run in reduced precision, and why:

- evaluation (:mod:`oefsmc.core.evaluate`): bf16 autocast + channels_last where bf16 is native (CUDA
  devices with bf16, CPUs with AMX / AVX-512-BF16).  Only arg-max predictions leave it; measured on CPU,
  top-1 moves by at most 0.07 points.  Every record names the precision used.
- teacher training (:mod:`oefsmc.models.teacher_training`): ``--precision auto`` by default, i.e. bf16
  autocast (fp32 master weights and optimizer) where bf16 is native and fp32 elsewhere; ``fp32`` /
  ``bf16`` on request; one trainer on both devices.
- MiR mimicking, PRACTISE adaptors and recovery, CD stage C, the shared fine-tuning: fp32 weights,
  optimizer and losses; on CUDA, cuDNN may run the convolutions in TF32 (PyTorch's default).  No bf16
  autocast: it would be a recorded hyperparameter (changing every cache key) and was not measured.
- FSKD's normal equations and CD's layer-wise solve (Gram matrices, PGD): inside :func:`full_fp32`, so
  their features are full fp32 (no TF32 convolutions or matmuls) and the sums are accumulated in fp64;
  features with a 10-bit mantissa would bias the least squares.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """Inside: no TF32 for cuDNN convolutions or CUDA matmuls (restored on exit).

    On Ampere and later GPUs PyTorch lets cuDNN run fp32 convolutions in TF32 (``cudnn.allow_tf32`` is
    True by default).  Setting the flags touches no device (no CUDA initialisation); on CPU it changes
    nothing."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def loss_values(losses: list[torch.Tensor]) -> list[float]:
    """Python floats of per-iteration losses kept on the device (one transfer at the end instead of a
    device-to-host synchronisation every iteration; the values are the same)."""
    return torch.stack(losses).tolist() if losses else []
