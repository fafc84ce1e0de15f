"""Evaluation: eval mode, batched, no gradients; top-1, per-class and head/medium/tail accuracy.

Precision (``python -m benchmark perf`` measures it): on CPUs, bf16 autocast with channels_last memory is
3-4x faster than the eager fp32 loop and moves the published CIFAR-10 teachers' top-1 by at most 0.07
points (ResNet-20 91.73 -> 91.75, ResNet-32 92.63 -> 92.62, ResNet-56 93.39 -> 93.46), inside the 0.1-point
tolerance, so ``auto`` uses it where bf16 is native: CPUs with native bf16 and CUDA devices that support it
(evaluation only yields arg-max predictions, the least sensitive output; oefsmc/core/precision.py lists the
precision of every stage), fp32 elsewhere.  ``fp32`` is exact; ``teacher eval`` uses it to reproduce
published numbers to the digit.  Every record names the precision used (``metrics.eval_precision``).

Batch size (:func:`device_batch_size`, a pixel budget per device): on CUDA evaluation runs in large
batches (32,768 CIFAR images, i.e. a whole test set, or 668 at 224 x 224); on CPU the caller's batch
(1000) is kept unless it would hold more pixels than 128 CIFAR images (so 128 at 32 x 32, 2 at 224 x 224).
Small CPU batches keep the activations in cache: measured on one AVX2 core (session 7), fp32 ResNet-32
evaluates 178 img/s in batches of 1000 and 445 img/s in batches of 128, with bit-identical logits
(predictions do not depend on the batch in eval mode; ``tests/foundation/test_evaluate_batch.py``).
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn as nn

from ..envinfo import cuda_facts


def class_groups(num_classes: int) -> dict[str, list[int]]:
    """Head / medium / tail = ``numpy.array_split(range(K), 3)`` in natural (long-tail) order (4/3/3 for K=10)."""
    head, medium, tail = np.array_split(np.arange(num_classes), 3)
    return {"head": head.tolist(), "medium": medium.tolist(), "tail": tail.tolist()}


PRECISIONS = ("auto", "fp32", "bf16")


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _cuda_has_bf16() -> bool:
    """Does the CUDA device support bf16?  Asked without creating a CUDA context in this process
    (:func:`oefsmc.envinfo.cuda_facts`)."""
    return bool(torch.cuda.is_available() and cuda_facts()["bf16"])


#: device type -> does it run bf16 natively (``auto`` precision)?
NATIVE_BF16 = {"cpu": cpu_has_bf16, "cuda": _cuda_has_bf16}


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``auto`` -> ``bf16`` on devices with native bf16 (:data:`NATIVE_BF16`), else ``fp32``."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown evaluation precision {precision!r}")
    if precision != "auto":
        return precision
    native = NATIVE_BF16.get(torch.device(device).type)
    return "bf16" if native is not None and native() else "fp32"


#: device type -> pixels (images x height x width) per evaluation batch
PIXEL_BUDGET = {"cpu": 128 * 32 * 32, "cuda": 32 * 1024 * 32 * 32}


def image_pixels(x: torch.Tensor) -> int:
    """H x W of a batch: uint8 images are N x H x W x C (the datasets' layout), float ones N x C x H x W."""
    h, w = (x.shape[1], x.shape[2]) if x.dtype == torch.uint8 else (x.shape[-2], x.shape[-1])
    return max(1, int(h) * int(w))


def device_batch_size(requested: int, pixels: int, device: torch.device | str) -> int:
    """The evaluation batch for images of ``pixels`` (H x W) on ``device``: on CUDA the pixel budget (large
    batches, bounded memory), elsewhere ``requested`` shrunk to the budget; always at least 1."""
    kind = torch.device(device).type
    fit = max(1, PIXEL_BUDGET.get(kind, PIXEL_BUDGET["cpu"]) // pixels)
    return fit if kind == "cuda" else min(requested, fit)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000, transform=None,
            precision: str = "fp32") -> torch.Tensor:
    """Arg-max predictions; ``transform`` (e.g. uint8 NHWC -> normalised float NCHW) is applied per batch."""
    was_training = model.training
    model.eval()
    tf = transform or (lambda t: t)
    device = next(model.parameters()).device
    batch_size = device_batch_size(batch_size, image_pixels(x), device) if x.ndim == 4 else batch_size
    fast = resolve_precision(precision, device) == "bf16"
    fmt = torch.channels_last if fast else torch.contiguous_format
    if fast:
        model.to(memory_format=torch.channels_last)
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
            preds = [model(tf(x[i:i + batch_size]).contiguous(memory_format=fmt)).argmax(1)
                     for i in range(0, len(x), batch_size)]
    finally:
        if fast:
            model.to(memory_format=torch.contiguous_format)
        model.train(was_training)
    return torch.cat(preds)


def accuracy_report(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict:
    pred, labels = pred.cpu(), labels.cpu()
    correct = (pred == labels).to(torch.float64)
    per_class = []
    for c in range(num_classes):
        mask = labels == c
        per_class.append(float(correct[mask].mean() * 100) if mask.any() else float("nan"))
    groups = class_groups(num_classes)
    report = {"top1": float(correct.mean() * 100), "per_class": per_class}
    for g, idx in groups.items():
        vals = [per_class[i] for i in idx if not np.isnan(per_class[i])]
        report[g] = float(np.mean(vals)) if vals else float("nan")
    return report


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, batch_size: int = 1000,
             transform=None, precision: str = "fp32") -> dict:
    return accuracy_report(predict(model, x, batch_size, transform, precision), y, num_classes)
