"""Per-sample losses (reduced by ``StageData.combine``) and the OE-weighted cross-entropy."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def feature_mse_per_sample(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all non-batch elements, one value per sample.

    The mean of this vector equals ``torch.nn.MSELoss(reduction="mean")`` (MiR's loss) on the batch.
    """
    return (student - teacher).pow(2).flatten(1).mean(1)


def weighted_ce(logits: torch.Tensor, labels: torch.Tensor, class_weights: Optional[torch.Tensor]) -> torch.Tensor:
    """PyTorch's weighted mean sum_i gamma_{y_i} l_i / sum_i gamma_{y_i} (OE-FSMC Eq. 8, as Open-Sampling).

    Dividing by the batch size instead would silently rescale eta (methods.md Sec. 5.2).
    """
    return F.cross_entropy(logits, labels, weight=class_weights, reduction="mean")
