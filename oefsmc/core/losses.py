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


def kd_kl_per_sample(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0
                     ) -> torch.Tensor:
    """Hinton et al. (2015) KL(P_T || P_S) at temperature T, times T^2 (OE-FSMC Eq. 2), per sample."""
    t = temperature
    log_ps = F.log_softmax(student_logits / t, dim=1)
    log_pt = F.log_softmax(teacher_logits / t, dim=1)
    return (log_pt.exp() * (log_pt - log_ps)).sum(1) * t * t


def ce_per_sample(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels, reduction="none")


def weighted_ce(logits: torch.Tensor, labels: torch.Tensor, class_weights: Optional[torch.Tensor]) -> torch.Tensor:
    """PyTorch's weighted mean sum_i gamma_{y_i} l_i / sum_i gamma_{y_i} (OE-FSMC Eq. 8, as Open-Sampling).

    Dividing by the batch size instead would silently rescale eta (methods.md Sec. 5.2).
    """
    return F.cross_entropy(logits, labels, weight=class_weights, reduction="mean")
