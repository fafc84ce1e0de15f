"""What every compression stage sees: the few-sample set plus the optional OE-FSMC auxiliary set.

``StageData`` is the one door through which the OE add-on (:mod:`oefsmc.oe`) enters a method; methods
never test for OE themselves.  They compute their losses *per sample* and reduce them with
:meth:`StageData.combine`, which is Eq. 7 of OE-FSMC,

    L = lambda * mean(L_few) + (1 - lambda) * mean(L_aux),

or the plain few-sample mean when there is no auxiliary set.  Closed-form methods (FSKD) use
:meth:`StageData.source_weights` to build the same weighting into their normal equations, and data-driven
importance criteria use :meth:`StageData.importance_weights` (Eqs. 5-6, class-aware importance).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import torch

from .augment import to_device


@dataclass
class StageData:
    few_x: torch.Tensor  # float32 N x C x H x W, normalised with the teacher's normalisation
    few_y: torch.Tensor  # int64 N
    num_classes: int
    aux_x: Optional[torch.Tensor] = None  # auxiliary (OOD) images, same format
    aux_y: Optional[torch.Tensor] = None  # their assigned labels (drawn once, Eq. 4)
    lam: float = 1.0  # lambda of Eq. 7 (weight of the few-sample term); only used with an auxiliary set
    class_weights: Optional[torch.Tensor] = None  # w_j of Eq. 6 (sum 1) for data-driven importance
    class_weight_mode: str = "none"  # "none" (prior m_j / M, Eq. 3) | "rebalanced" | "inverse"

    # ----------------------------------------------------------------- basics
    @property
    def has_aux(self) -> bool:
        return self.aux_x is not None and len(self.aux_x) > 0

    @property
    def num_few(self) -> int:
        return int(self.few_x.shape[0])

    @property
    def num_aux(self) -> int:
        return int(self.aux_x.shape[0]) if self.has_aux else 0

    def all_x(self) -> torch.Tensor:
        """Few-sample images followed by auxiliary images (one tensor)."""
        return torch.cat([self.few_x, self.aux_x]) if self.has_aux else self.few_x

    def all_y(self) -> torch.Tensor:
        return torch.cat([self.few_y, self.aux_y]) if self.has_aux else self.few_y

    # ------------------------------------------------------------ Eq. 7 joint loss
    def combine(self, loss_few: torch.Tensor, loss_aux: Optional[torch.Tensor] = None,
                y_few: Optional[torch.Tensor] = None, y_aux: Optional[torch.Tensor] = None) -> torch.Tensor:
        """lambda * mean(loss_few) + (1 - lambda) * mean(loss_aux); the few-sample mean alone without aux.

        Both loss arguments are per-sample vectors.  A method whose channel/block *selection* is driven by
        this loss (CD's solve, PRACTISE's recoverability) passes the batch labels ``y_few`` / ``y_aux``:
        each source's mean then becomes the class-aware mean of Eqs. 5-6 (:meth:`importance_weights`),
        which is the plain mean when no class weights are set.  Passing ``loss_aux`` when the stage has no
        auxiliary set is a programming error (the caller would be training on data that does not exist).
        """
        def mean(loss: torch.Tensor, labels: Optional[torch.Tensor]) -> torch.Tensor:
            if labels is None or self.class_weights is None:
                return loss.mean()
            return (self.importance_weights(labels).to(loss.dtype) * loss).sum()

        if not self.has_aux:
            if loss_aux is not None and loss_aux.numel() > 0:
                raise ValueError("combine() got an auxiliary loss but this stage has no auxiliary set")
            return mean(loss_few, y_few)
        if loss_aux is None or loss_aux.numel() == 0:
            raise ValueError("combine() needs the auxiliary loss: this stage has an auxiliary set")
        return self.lam * mean(loss_few, y_few) + (1.0 - self.lam) * mean(loss_aux, y_aux)

    def source_weights(self) -> tuple[float, float]:
        """Per-sample weights (few, aux) that make a *sum* over all samples equal :meth:`combine`.

        For closed-form solvers (FSKD's weighted normal equations): sum_i w_few * l_i + sum_j w_aux * l_j.
        """
        if not self.has_aux:
            return 1.0 / self.num_few, 0.0
        return self.lam / self.num_few, (1.0 - self.lam) / self.num_aux

    # ----------------------------------------------------- Eqs. 5-6 importance
    def importance_weights(self, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per-sample weights (sum 1) for a data-driven importance score over ``labels`` (default all_y()).

        Eq. 5: s_k = sum_j w_j s_{k,j}, with s_{k,j} the mean score of class j's samples.  Writing it per
        sample gives weight w_{y_i} / n_{y_i}.  Without class weights this is Eq. 3's prior weighting
        m_j / M, i.e. the plain mean (each sample 1/N).
        """
        y = self.all_y() if labels is None else labels
        if self.class_weights is None:
            return torch.full((len(y),), 1.0 / len(y), device=y.device)
        counts = torch.bincount(y, minlength=self.num_classes).to(torch.float64)
        w = self.class_weights.to(device=y.device, dtype=torch.float64)
        per = torch.where(counts > 0, w / counts.clamp(min=1), torch.zeros_like(w))
        out = per[y]
        return (out / out.sum()).to(torch.float32)

    # ---------------------------------------------------------------- batching
    def minibatches(self, batch_size: int, generator: torch.Generator,
                    ) -> Iterator[tuple[torch.Tensor, Optional[torch.Tensor]]]:
        """Endless shuffled index batches (few_idx, aux_idx); the aux batch has the same size rule.

        Each source is reshuffled every pass; a source smaller than the batch is used whole every step
        (MiR's loader with ``drop_last`` when the set holds at least one batch).
        """
        def stream(n: int) -> Iterator[torch.Tensor]:
            dev = self.few_x.device
            while True:
                perm = to_device(torch.randperm(n, generator=generator), dev)  # async on CUDA
                if n <= batch_size:
                    yield perm
                    continue
                for s in range(0, n - batch_size + 1, batch_size):
                    yield perm[s:s + batch_size]

        few = stream(self.num_few)
        aux = stream(self.num_aux) if self.has_aux else None
        while True:
            yield next(few), (next(aux) if aux is not None else None)
