"""The auxiliary set: m images of the fixed OOD pool with labels drawn from Gamma (Sec. 4.3).

Sets of different sizes for one seed are nested (prefixes of one seeded order of the pool), and so are
their labels (one seeded uniform draw per position, mapped through Gamma's inverse CDF), so Figure 3b varies
only the size.  Images depend on (dataset, OOD source, pool size, seed); labels also on the few-sample set
(through Gamma); neither depends on the method or the variant.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.fewshot import seed_from
from ..data.ood import OODPool
from ..errors import UserError


@dataclass
class AuxiliarySet:
    images: torch.Tensor  # uint8 m x H x W x C
    labels: np.ndarray  # assigned labels (int64, m)
    pool_positions: np.ndarray


def draw_labels(gamma_dist: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(gamma_dist)
    cdf[-1] = 1.0
    return np.searchsorted(cdf, uniforms, side="right").astype(np.int64).clip(0, len(gamma_dist) - 1)


def auxiliary_set(pool: OODPool, m: int, gamma_dist: np.ndarray, fewshot_key: str) -> AuxiliarySet:
    if m <= 0:
        raise UserError(f"--set oe.aux_size={m}: the auxiliary set needs at least one image")
    if m > len(pool.images):
        raise UserError(f"--set oe.aux_size={m} exceeds the OOD pool ({len(pool.images)}): raise oe.pool_size")
    order = np.random.default_rng(seed_from("aux-order", pool.key)).permutation(len(pool.images))[:m]
    uniforms = np.random.default_rng(seed_from("aux-labels", pool.key, fewshot_key)).random(len(pool.images))[:m]
    return AuxiliarySet(pool.images[torch.as_tensor(order)], draw_labels(gamma_dist, uniforms), order)
