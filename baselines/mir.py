"""MiR: "Compressing Models with Few Samples: Mimicking then Replacing" (Wang et al., CVPR 2022).

The only MiR implementation from the authors' group is ``DoctorKey/Practise: finetune.py:
end_to_end_finetune`` run with ``--FT MiR`` (methods.md Sec. 3.2-3.3); this file follows it:

- **Mimicking.** The student's pre-GAP feature map (``forward_features``) is regressed onto the teacher's
  with ``MSELoss(reduction="mean")``, i.e. the mean over C*H*W per sample averaged over the batch.  Here
  the loss is computed per sample (:func:`oefsmc.core.losses.feature_mse_per_sample`) and reduced with
  :meth:`StageData.combine` (OE-FSMC Eq. 7), which is exactly the official batch mean without an
  auxiliary set.  No labels enter the loss, so the class-aware weights of Eqs. 5-6 cannot act here (MiR's
  student structure comes from a data-free L1 criterion as well); ``combine`` is called without labels.
- **Replacing.** The student keeps the teacher's head.  The official code never touches the fc because the
  loss does not depend on the logits (its grad stays ``None`` and SGD skips it, so not even weight decay
  reaches it); here the head's parameters are left out of the optimiser, which leaves them bit-identical.
- **BN.** Student in ``train()`` (batch statistics, running statistics re-estimated on the few-shot
  batches, momentum 0.1), teacher in ``eval()`` (methods.md Sec. 3.3 item 5, Sec. 6.4).
- **Optimiser.** SGD lr 0.02, momentum 0.9, weight decay 1e-4, batch 64, ``StepLR(int(0.4 N), 0.1)``
  stepped per *iteration*, N = 2000 iterations (``--epoch`` counts iterations), i.e. lr x0.1 at 40% and 80%.
- **Batches.** :meth:`StageData.minibatches`: the few-sample batch (whole set every step when it holds
  fewer than 64 images, like the official loader) and, with OE-FSMC, an auxiliary batch of the same size
  rule.  Both go through the student in ONE forward pass (so BN sees both sources, as in Open-Sampling's
  joint pass); the per-sample losses are split back into few/aux vectors for ``combine``.
- **Augmentation** (``augment``; ours for CIFAR): the dataset's standard training augmentation, pad-4
  random crop + horizontal flip (:func:`oefsmc.core.augment.random_crop_flip`) in place of the official
  ImageNet ``RandomResizedCrop + flip``; the teacher target is computed on the same augmented batch under
  ``no_grad``.  Without augmentation (the ``demo`` schedule: 8x8 digits) the teacher's features are
  computed once and cached.

Student structure (``build_student``): MiR publishes no pruning scheme (methods.md Sec. 3.4, 6.3), so the
suite uses :func:`baselines.schemes.fskd_pruned_a` (FSKD's VGG-16 pruned-A, and 50% L1 of every residual
block's inner channels for ResNets) -- a reproduction choice, recorded in ``Student.scheme``.  When that
scheme prunes the last conv (VGG pruned-A prunes conv13 by 50%), the student's pre-GAP map has fewer
channels than the teacher's: the student then mimics the teacher's map restricted to the kept channels
(``Student.kept`` of the last conv), and its head is the teacher's head with the matching input columns
(Torch-Pruning's surgery), still frozen.

:func:`mimic` is the reusable loop; PRACTISE (``baselines/practise.py``) calls it for its recovery.
"""
from __future__ import annotations

import time
from typing import Any, Optional

import torch
import torch.nn as nn

from oefsmc.core.augment import random_crop_flip
from oefsmc.core.losses import feature_mse_per_sample
from oefsmc.core.method import METHODS, Method
from oefsmc.core.params import Param, between, positive
from oefsmc.core.precision import loss_values
from oefsmc.core.stage_data import StageData
from oefsmc.core.student import Student

from . import schemes

MIR_PARAMS: dict[str, Param] = {
    "iters": Param(2000, "mimicking iterations (DoctorKey/Practise main.py --epoch, which counts iterations)",
                   {"cpu": 300, "demo": 60}, range=between(1, 1e7)),
    "lr": Param(0.02, "SGD learning rate (DoctorKey/Practise main.py --lr)", range=positive(10)),
    "momentum": Param(0.9, "SGD momentum (official)", range=between(0, 0.999)),
    "weight_decay": Param(1e-4, "SGD weight decay (official); never reaches the frozen head", range=between(0, 1)),
    "batch_size": Param(64, "few-sample batch size (official); the auxiliary batch has the same size rule",
                        range=between(1, 65536)),
    "lr_step": Param(0.4, "StepLR step as a fraction of iters (official int(0.4*N)), stepped per iteration",
                     range=positive(1)),
    "lr_gamma": Param(0.1, "StepLR gamma (official)", range=positive(1)),
    "augment": Param(True, "random crop + horizontal flip on training batches (the dataset's standard "
                     "augmentation; ours for CIFAR, official ImageNet uses RandomResizedCrop + flip); "
                     "off: the teacher's features are cached", {"demo": False}),
    "pad": Param(4, "padding of the random crop (CIFAR standard 4)", range=between(0, 64)),
}


def mir_hp(hp: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The :data:`MIR_PARAMS` values of a resolved dict whose keys carry ``prefix`` (PRACTISE: ``mir_``)."""
    return {k: hp[prefix + k] for k in MIR_PARAMS}


def feature_channels(teacher: nn.Module, student: Student) -> Optional[torch.Tensor]:
    """Teacher channels of the pre-GAP map that the student still has (None = all).

    Only a plain chain can lose channels of its last map (VGG pruned-A prunes the last conv); our ResNet
    schemes never prune the residual stream, and dropped blocks keep it intact.
    """
    if getattr(teacher, "arch_family", "") == "vgg":
        return student.kept.get(teacher.conv_names()[-1])
    return None


@torch.no_grad()
def batched_features(model: nn.Module, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """``model.forward_features`` over ``x`` in chunks (no grad, the model's current mode)."""
    return torch.cat([model.forward_features(x[i:i + batch]) for i in range(0, len(x), batch)])


def head_parameter_names(model: nn.Module) -> list[str]:
    prefixes = tuple(model.head_names())
    return [n for n, _ in model.named_parameters() if n.startswith(prefixes)]


def mimic(teacher: nn.Module, model: nn.Module, data: StageData, hp: dict[str, Any],
          generator: torch.Generator, channels: Optional[torch.Tensor] = None) -> dict:
    """MiR's mimicking loop: train ``model`` (in place) so its pre-GAP map matches the teacher's.

    ``hp`` holds the keys of :data:`MIR_PARAMS`; ``channels`` selects the teacher channels the student's
    map corresponds to (None: all).  The head (``model.head_names()``) is excluded from the optimiser and
    stays bit-identical.  Returns JSON-serialisable stats; ``model`` is left in ``eval()`` mode.
    """
    t0 = time.perf_counter()
    iters = int(hp["iters"])
    head = set(head_parameter_names(model))
    params = [p for n, p in model.named_parameters() if n not in head and p.requires_grad]
    opt = torch.optim.SGD(params, lr=hp["lr"], momentum=hp["momentum"], weight_decay=hp["weight_decay"])
    step = max(1, int(hp["lr_step"] * iters))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step, gamma=hp["lr_gamma"])

    teacher.eval()
    augment = bool(hp["augment"])
    if channels is not None:  # once, not every step
        channels = channels.to(data.few_x.device)

    def target(x: torch.Tensor) -> torch.Tensor:
        t = batched_features(teacher, x)
        return t if channels is None else t[:, channels.to(t.device)]

    cache_few = cache_aux = None
    if not augment:  # the targets never change: compute them once
        cache_few = target(data.few_x)
        cache_aux = target(data.aux_x) if data.has_aux else None

    batches = data.minibatches(int(hp["batch_size"]), generator)
    losses: list[torch.Tensor] = []  # on the device: no host synchronisation per iteration
    model.train()
    for _ in range(iters):
        few_idx, aux_idx = next(batches)
        xs = [data.few_x[few_idx]] + ([data.aux_x[aux_idx]] if aux_idx is not None else [])
        x = torch.cat(xs) if len(xs) > 1 else xs[0]
        if augment:
            x = random_crop_flip(x, generator, pad=int(hp["pad"]))
            t = target(x)
        else:
            ts = [cache_few[few_idx]] + ([cache_aux[aux_idx]] if aux_idx is not None else [])
            t = torch.cat(ts) if len(ts) > 1 else ts[0]
        s = model.forward_features(x)
        if s.shape != t.shape:
            raise RuntimeError(f"student pre-GAP map {tuple(s.shape)} does not match the teacher's "
                               f"{tuple(t.shape)} (kept channels of the last conv missing?)")
        per = feature_mse_per_sample(s, t)
        nf = len(few_idx)
        loss = data.combine(per[:nf], per[nf:] if aux_idx is not None else None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.detach())
    losses = loss_values(losses)
    model.eval()
    every = max(1, iters // 20)
    marks = sorted(set(range(0, iters, every)) | ({iters - 1} if iters else set()))
    return {
        "iters": iters, "batch_size": int(hp["batch_size"]), "lr_step_iters": step,
        "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
        "loss_history": [[i + 1, losses[i]] for i in marks],
        "lr_final": float(opt.param_groups[0]["lr"]), "augment": augment,
        "teacher_features_cached": not augment, "frozen_head": sorted(head),
        "mimicked_channels": "all" if channels is None else int(len(channels)),
        "seconds": time.perf_counter() - t0,
    }


@METHODS.register("mir")
class MiR(Method):
    name = "mir"
    label = "MiR"
    paper_order = 2
    citation = ("Wang, Liu, Ma, Yong, Chai, Wu. Compressing Models with Few Samples: Mimicking then "
                "Replacing. CVPR 2022 (code: DoctorKey/Practise --FT MiR)")
    params = MIR_PARAMS
    data_driven_selection = False  # the student comes from a data-free L1 criterion

    def build_student(self, teacher: nn.Module, data: StageData) -> Student:
        student = schemes.fskd_pruned_a(teacher, data.few_x[:1])
        student.scheme = dict(student.scheme, note="MiR publishes no pruning scheme; the suite uses the "
                              "FSKD / MiR shared student (methods.md Sec. 3.4, 6.3)")
        return student

    def compress(self, teacher: nn.Module, student: Student, data: StageData) -> tuple[Student, dict]:
        stats = mimic(teacher, student.model, data, mir_hp(self.hp), self.generator,
                      feature_channels(teacher, student))
        return student, stats
