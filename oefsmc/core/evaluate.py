"""Evaluation: eval mode, batched, no gradients; top-1, per-class and head/medium/tail accuracy."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn


def class_groups(num_classes: int) -> dict[str, list[int]]:
    """Head / medium / tail = ``numpy.array_split(range(K), 3)`` in natural (long-tail) order (4/3/3 for K=10)."""
    head, medium, tail = np.array_split(np.arange(num_classes), 3)
    return {"head": head.tolist(), "medium": medium.tolist(), "tail": tail.tolist()}


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000, transform=None) -> torch.Tensor:
    """Arg-max predictions; ``transform`` (e.g. uint8 NHWC -> normalised float NCHW) is applied per batch."""
    was_training = model.training
    model.eval()
    tf = transform or (lambda t: t)
    preds = [model(tf(x[i:i + batch_size])).argmax(1) for i in range(0, len(x), batch_size)]
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
             transform=None) -> dict:
    return accuracy_report(predict(model, x, batch_size, transform), y, num_classes)
