"""A student network together with how it maps onto the teacher."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn


@dataclass
class Student:
    model: nn.Module
    # conv module path -> indices (in the teacher's numbering) of the output channels the student keeps;
    # layers absent from the map keep all channels.  Needed to align student features with the teacher's.
    kept: dict[str, torch.Tensor] = field(default_factory=dict)
    dropped_blocks: list[str] = field(default_factory=list)
    # how the structure was chosen: {"criterion": ..., "ratios": ..., "provenance": "official|third-party|ours"}
    scheme: dict = field(default_factory=dict)
