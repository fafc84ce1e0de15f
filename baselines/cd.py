"""CD: Cross Distillation (Bai, Wu, King, Lyu, AAAI 2020; official code ``haolibai/Cross-Distillation``).

Structured channel pruning in which the channels are chosen *inside* a layer-wise solve that interweaves
the teacher's and the student's hidden layers (methods.md Sec. 1.3, ``learners/chnl_learner.py``):

Stage A (``__layerwise_prune`` / ``__solve_lst_pgd``), for every aligned conv l in forward order, with
X_S / X_T the student's / teacher's input of layer l (the student's earlier layers already solved):

    L_c = ||W_S * X_T - W_T * X_T||^2 / (N C H W)      (teacher -> student cross connection)
    L_i = ||W_T * X_S - W_S * X_S||^2 / (N C H W)      (student -> teacher cross connection)
    L   = mu L_c + (1 - mu) L_i                          (``--use_cvx``, used by every script)

minimised by Adam on W_S (lr ``pgd_lr``, ``pgd_iters`` iterations) with a projection onto a group-sparsity
constraint on the input channels of W_S: for i <= T/3 the number of kept groups shrinks as
c_i = int((C_in - c) (T/3 - i) / (T/3)) + c, groups with the smallest L2 norm are zeroed, and the gradient
*and* Adam's moments are masked so zeroed groups stay zero; after T/3 the lr is 0.1 pgd_lr.
Stage B (``__remove_rest_params``): the previous layer's filters of dropped input channels are removed;
here that is a physical pruning with Torch-Pruning (``prune_output_channels``), exactly equivalent.
Stage C (``finetune``): cross-entropy with labels on the few-sample set, SGD lr 1e-5, momentum 0.9,
wd 5e-4, MultiStepLR at 50% / 75%, one step per "epoch" (40 for VGG, 100 for ResNet-56), train mode.

Implementation notes and decisions (for the reproduction notes):

- **Exact fast solve.** Both terms depend on W_S only through D = W_S - W_T:
  L = tr(D G D^T) with G = sum_i w_i (mu P_T,i^T P_T,i + (1 - mu) P_S,i^T P_S,i) / (C_out H W), P the
  im2col patches of sample i.  G (K x K, K = C_in k^2) is accumulated once per layer (in batches of images,
  float64), after which every Adam iteration costs one C_out x K x K product instead of four convolutions
  over the whole set; when the patch rows are fewer than K/4 the rows are kept instead (cheaper).  Loss
  and gradient equal the official autograd ones (tested), so the Adam iterates are the official ones.
- **Per-sample weights / OE-FSMC.** Per-sample losses are reduced with ``data.combine(loss_few, loss_aux,
  y_few, y_aux)`` (Eq. 7 with the class-aware importance of Eqs. 5-6, because CD's channel selection is
  data-driven); the weights w_i are read off ``combine`` (it is linear in the losses) by autograd.
- **Pitfall 3b (N > batch).** The whole few-sample set (and the whole auxiliary set) is used at every
  iteration, i.e. full-batch as the official code when N <= 128, and never the official "first 128 images
  only" behaviour for N > 128.
- **BN modes (Sec. 6.4).** VGG: Stage A in train mode (features use batch statistics; the official code
  also updates the *teacher's* running statistics, which has no effect on CD because train-mode BN never
  reads them; we run a deep copy of the teacher in train mode and never mutate the shared teacher).
  ResNets: eval mode.  The few-sample and the auxiliary sets are forwarded as separate batches, so the
  few-sample features are those of the plain run.  The student is propagated layer by layer
  (``baselines.fskd.conv_stream``) instead of re-running the whole net per layer, so in train mode each BN's
  running statistics are updated once per source during Stage A (the official code updates every BN once
  per aligned layer); Stage C's 40-100 train-mode steps (momentum 0.1) re-estimate them anyway.
- **Aligned layers**: every 3x3 conv except the first (the stem for ResNets); 1x1 convs skipped.  The
  official code also "refits" layers whose budget equals C_in, but their Adam run starts at W_S = W_T,
  where the CD loss and its gradient are exactly zero (both terms are quadratic in W_S - W_T), so they
  never move; we skip them (identical result; listed as ``unchanged_layers`` in the stats).
- **Budgets** (input channels kept by each aligned conv; methods.md Sec. 1.4):
  VGG (``cfg_same``): int(ratio C_in) for every conv except the first (so every conv's outputs but the
  last are cut; the demo VGG uses the same rule).  CIFAR ResNets: the ResNet-56 rule, only conv2's input
  (= conv1's outputs) pruned, kept = min(C, int(ratio C) + 1) (the min avoids the official crash at ratio 1,
  pitfall 2), skip list [stem, layer1.7, layer2.0, layer3.0, layer3.8] transferred by stage position to
  n blocks per stage as [layer1.(n-2), layer2.0, layer3.0, layer3.(n-1)] (ours; identical for ResNet-56,
  tested).  ResNet-34: the official structured ``resnet_34`` rule (3x3 conv ids, skip [0, 6, 12, 14, 24],
  stage ratios [r, r, r, 1]): conv1 outputs of layer1.0-1.1, layer2.0-2.1, layer3.0-3.3 cut to int(r C).
- **Selection.** ``selection=cd`` (official): channels chosen by the projection; ties broken toward the
  lower index, and a final projection guarantees exactly the budget for any T (the official schedule can
  leave a few extra channels when T is not a multiple of 3).  ``selection=fixed-l1`` (methods.md Sec. 1.8
  pitfall 11): the L1-chosen channels of ``build_student`` are masked from the start and the CD loss is
  minimised without projection (same lr schedule).  ``build_student`` returns the L1 student of the same
  budgets (what ``top1_pruned`` reports); ``compress`` starts from a full-width copy of the teacher and
  returns the physically pruned student whose ``kept`` are the selected channels.
- **Stage C** uses the few-sample set only (as the official code; the auxiliary set enters CD through
  Stage A; the suite's shared fine-tuning stage follows).  Batches of min(``ft_batch_size``, N) drawn by
  ``data.minibatches``; no augmentation (CIFAR scripts pass no ``--data_aug``).  Pruned channels are
  physically gone, which is the official gradient masking.
- **None of the official bugs** (Sec. 1.8): full-norm zero tests (not position (0, 0)), one normalisation,
  torchvision ResNet-34, no index caches.
- Schedules: ``cpu`` keeps everything official (pgd_iters 3000: with the quadratic form Stage A takes
  about 40 s for ResNet-32 with 100 + 100 images on 2 cores, Stage C about 45 s; 300 iterations were
  measured 4.5 points worse after Stage A, 1000 iterations 2.5 points); ``demo``: pgd_iters 150 (a
  multiple of 3; 30 left the 6-layer demo VGG near 20% top-1, 150 reaches about 35-55%), Stage C 10 (VGG) /
  20 (ResNet) steps.  VGG-16 at 3000 iterations needs a GPU (its 512-channel layers cost ~5-20 GFLOP per
  iteration).
"""
from __future__ import annotations

import copy
import time
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from oefsmc.core.method import METHODS, Method
from oefsmc.core.params import Param, between, positive
from oefsmc.core.precision import full_fp32, loss_values
from oefsmc.core.prune import prune_output_channels, pruned_copy, top_k_by_l1
from oefsmc.core.stage_data import StageData
from oefsmc.core.student import Student

from .fskd import PairedStreams
from .schemes import residual_blocks

RESNET56_SKIP_IDS = [0, 16, 20, 38, 54]  # chnl_learner.__get_cfgs, resnet_56
RESNET34_SKIP_IDS = [0, 6, 12, 14, 24]   # chnl_learner.__get_cfgs, resnet_34 (structured)


# ----------------------------------------------------------------------------- structure


class CDPlan:
    """Aligned convs in forward order, their input-channel budgets, and each one's producer conv."""

    def __init__(self, aligned: list[str], budgets: dict[str, int], producers: dict[str, str]):
        self.aligned, self.budgets, self.producers = aligned, budgets, producers

    def pruned(self, model: nn.Module) -> list[str]:
        """Aligned convs whose budget is below their input width (their producer loses filters)."""
        return [n for n in self.aligned if self.budgets[n] < model.get_submodule(n).in_channels]


def _cifar_skip_blocks(model: nn.Module) -> set[str]:
    """ResNet-56's skip list [stem, layer1.7, layer2.0, layer3.0, layer3.8] transferred by stage position."""
    n1, _, n3 = (len(s) for s in model.stages())
    skip = {"layer2.0", "layer3.0", f"layer3.{n3 - 1}"}
    if n1 >= 2:
        skip.add(f"layer1.{n1 - 2}")
    return skip


def cd_plan(model: nn.Module, ratio: float) -> CDPlan:
    family = model.arch_family
    budgets: dict[str, int] = {}
    producers: dict[str, str] = {}
    if family == "vgg":
        names = list(model.conv_names())
        aligned = names[1:]
        for prev, name in zip(names, names[1:]):
            budgets[name] = max(1, int(model.get_submodule(name).in_channels * ratio))
            producers[name] = prev
        return CDPlan(aligned, budgets, producers)
    blocks = residual_blocks(model)
    aligned = [f"{b}.{c}" for b in blocks for c in ("conv1", "conv2")]
    for name in aligned:
        budgets[name] = model.get_submodule(name).in_channels
    for b in blocks:
        producers[f"{b}.conv2"] = f"{b}.conv1"
    if family == "cifar_resnet":
        skip = _cifar_skip_blocks(model)
        for b in blocks:
            if b not in skip:
                c = model.get_submodule(f"{b}.conv2").in_channels
                budgets[f"{b}.conv2"] = max(1, min(c, int(ratio * c) + 1))
    elif family == "imagenet_resnet":
        # official ids over the non-1x1 convs (stem = 0, then conv1/conv2 of each block)
        ratios = [ratio] * 3 + [1.0]
        ids = ["conv1"] + aligned
        for layer_id, name in enumerate(ids):
            if layer_id % 2 == 0 and layer_id not in RESNET34_SKIP_IDS:
                stage = 0 if layer_id <= 6 else 1 if layer_id <= 12 else 2 if layer_id <= 24 else 3
                c = model.get_submodule(name).in_channels
                budgets[name] = max(1, int(ratios[stage] * c))
    else:
        raise ValueError(f"CD: unsupported family {family!r}")
    return CDPlan(aligned, budgets, producers)


# ----------------------------------------------------------------------------- the layer loss


def combine_weights(data: StageData, y_few: torch.Tensor, y_aux: Optional[torch.Tensor]
                    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Per-sample weights w with data.combine(l_few, l_aux, y_few, y_aux) = sum_i w_i l_i (combine is linear)."""
    dev = data.few_x.device
    lf = torch.zeros(len(y_few), device=dev, requires_grad=True)
    la = torch.zeros(len(y_aux), device=dev, requires_grad=True) if y_aux is not None else None
    with torch.enable_grad():
        total = data.combine(lf, la, y_few, y_aux)
        grads = torch.autograd.grad(total, [lf] + ([la] if la is not None else []), allow_unused=True)
    out = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, [lf, la])]
    return out[0].detach(), (out[1].detach() if la is not None else None)


def cd_loss_direct(conv: nn.Conv2d, w_s: torch.Tensor, w_t: torch.Tensor, mu: float,
                   xs: list[torch.Tensor], xt: list[torch.Tensor], data: StageData,
                   labels: list[Optional[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The official per-layer loss computed with four convolutions (reference; used by tests and stats).

    ``xs`` / ``xt``: [few] or [few, aux] student / teacher inputs; returns (L, L_c, L_i), each reduced with
    ``data.combine`` over per-sample means over C_out * H * W.
    """
    def conv_with(w, x):
        return F.conv2d(x, w, None, conv.stride, conv.padding, conv.dilation, conv.groups)

    lc, li = [], []
    for x_s, x_t in zip(xs, xt):
        lc.append((conv_with(w_s, x_t) - conv_with(w_t, x_t)).pow(2).flatten(1).mean(1))
        li.append((conv_with(w_t, x_s) - conv_with(w_s, x_s)).pow(2).flatten(1).mean(1))

    def comb(parts):
        return data.combine(parts[0], parts[1] if len(parts) > 1 else None, labels[0],
                            labels[1] if len(labels) > 1 else None)

    per = [mu * a + (1 - mu) * b for a, b in zip(lc, li)]
    return comb(per), comb(lc), comb(li)


class QuadraticLoss:
    """CD's layer loss as a quadratic form in D = W_S - W_T (C_out x K): L = mu L_c + (1 - mu) L_i.

    Stores either the Gram matrices G_T, G_S (K x K) or, when the patch rows are fewer than K / 4, the
    weighted rows R_T, R_S themselves (L_c = ||D R_T^T||^2).  Built from per-sample weights w_i (summing
    the per-sample means over C_out * H * W).
    """

    def __init__(self, conv: nn.Conv2d, xs: list[torch.Tensor], xt: list[torch.Tensor],
                 weights: list[torch.Tensor], mu: float, images_per_batch: Optional[int] = None,
                 form: Optional[str] = None):
        self.mu = float(mu)
        c_in, (kh, kw) = conv.in_channels, conv.kernel_size
        self.k = c_in * kh * kw
        self.c_out = conv.out_channels
        self.unfold = nn.Unfold((kh, kw), conv.dilation, conv.padding, conv.stride)
        n_rows = 0
        for x in xs:
            n_rows += x.shape[0] * self._positions(x)
        # per-iteration cost: Gram 2 C_out K^2, rows 8 C_out K n_rows
        self.form = form or ("gram" if self.k <= 4 * n_rows else "rows")
        dev = xs[0].device
        if self.form == "gram":
            self.g_t = torch.zeros(self.k, self.k, dtype=torch.float64, device=dev)
            self.g_s = torch.zeros_like(self.g_t)
        else:
            self.r_t: list[torch.Tensor] = []
            self.r_s: list[torch.Tensor] = []
        for x_s, x_t, w in zip(xs, xt, weights):
            per = images_per_batch or max(1, (1 << 24) // max(1, self.k * self._positions(x_s)))
            for s in range(0, x_s.shape[0], per):
                scale = (w[s:s + per] / (self.c_out * self._positions(x_s))).clamp(min=0).sqrt()
                self._add(self._rows(x_t[s:s + per], scale), self._rows(x_s[s:s + per], scale))
        if self.form == "gram":
            self.g = (self.mu * self.g_t + (1 - self.mu) * self.g_s).to(torch.float32)
        else:
            self.r_t = torch.cat(self.r_t)
            self.r_s = torch.cat(self.r_s)

    def _positions(self, x: torch.Tensor) -> int:
        h, w = x.shape[2:]
        pad, dil, k, st = self.unfold.padding, self.unfold.dilation, self.unfold.kernel_size, self.unfold.stride
        ho = (h + 2 * pad[0] - dil[0] * (k[0] - 1) - 1) // st[0] + 1
        wo = (w + 2 * pad[1] - dil[1] * (k[1] - 1) - 1) // st[1] + 1
        return ho * wo

    def _rows(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        p = self.unfold(x) * scale[:, None, None]  # n x K x L
        return p.transpose(1, 2).reshape(-1, self.k)

    def _add(self, rt: torch.Tensor, rs: torch.Tensor) -> None:
        if self.form == "gram":
            self.g_t += (rt.T @ rt).to(torch.float64)
            self.g_s += (rs.T @ rs).to(torch.float64)
        else:
            self.r_t.append(rt)
            self.r_s.append(rs)

    def loss_and_grad(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(L, dL/dD) at D (C_out x K)."""
        if self.form == "gram":
            dg = d @ self.g
            return (d * dg).sum(), 2 * dg
        at, as_ = d @ self.r_t.T, d @ self.r_s.T
        loss = self.mu * at.pow(2).sum() + (1 - self.mu) * as_.pow(2).sum()
        return loss, 2 * (self.mu * at @ self.r_t + (1 - self.mu) * as_ @ self.r_s)

    def parts(self, d: torch.Tensor) -> tuple[float, float]:
        """(L_c, L_i) at D."""
        if self.form == "gram":
            d64 = d.to(torch.float64)
            return float((d64 * (d64 @ self.g_t)).sum()), float((d64 * (d64 @ self.g_s)).sum())
        return float((d @ self.r_t.T).pow(2).sum()), float((d @ self.r_s.T).pow(2).sum())


# ----------------------------------------------------------------------------- projected Adam


def group_norms(w: torch.Tensor) -> torch.Tensor:
    """L2 norm of every input-channel group W[:, c, :, :]."""
    return w.transpose(0, 1).reshape(w.shape[1], -1).norm(dim=1)


def project_groups(w: torch.Tensor, keep: int) -> None:
    """Zero every input-channel group but the ``keep`` largest in L2 norm (ties: lower index), in place."""
    order = torch.sort(-group_norms(w), stable=True).indices
    w[:, order[keep:]] = 0


def pgd_solve(w_t: torch.Tensor, loss: QuadraticLoss, budget: int, iters: int, lr: float,
              fixed_keep: Optional[torch.Tensor] = None, trace: bool = False) -> tuple[torch.Tensor, dict]:
    """``__solve_lst_pgd``: Adam on W_S from W_T with the shrinking group projection (or a fixed mask).

    Returns (W_S, info) with info = kept groups, loss values, and (``trace``) the kept set after every
    iteration.
    """
    c_out, c_in = w_t.shape[:2]
    weight = nn.Parameter(w_t.detach().clone())
    with torch.no_grad():
        if fixed_keep is not None:
            keep_mask = torch.zeros(c_in, dtype=torch.bool, device=w_t.device)
            keep_mask[fixed_keep.to(w_t.device)] = True
            weight[:, ~keep_mask] = 0
        mask = (group_norms(weight) > 0).to(weight.dtype)[None, :, None, None].expand_as(weight).contiguous()
    opt = torch.optim.Adam([weight], lr=lr)
    third = iters // 3
    left_prev = c_in
    history, kept_trace = [], []
    loss_val = torch.zeros(())
    for i in range(iters):
        with torch.no_grad():
            d = (weight - w_t).reshape(c_out, -1)
            loss_val, grad = loss.loss_and_grad(d)
            weight.grad = grad.reshape_as(weight) * mask  # mask_grad: gradient ...
            state = opt.state[weight]
            if state:
                state["exp_avg"].mul_(mask)                # ... and Adam's moments
                state["exp_avg_sq"].mul_(mask)
        opt.step()
        with torch.no_grad():
            if i <= third:
                if fixed_keep is None:
                    left = int((c_in - budget) * float((iters / 3 - i) / (iters / 3))) + budget
                    if left < left_prev:
                        project_groups(weight, left)
                        left_prev = left
                    mask = (group_norms(weight) > 0).to(weight.dtype)[None, :, None, None].expand_as(weight)
                    mask = mask.contiguous()
            else:
                for group in opt.param_groups:
                    group["lr"] = lr * 0.1
        if i in (0, third, iters - 1):
            history.append({"iter": i, "loss": float(loss_val)})
        if trace:
            kept_trace.append(torch.nonzero(group_norms(weight.detach()) > 0).flatten().tolist())
    with torch.no_grad():
        w = weight.detach()
        if int((group_norms(w) > 0).sum()) > budget:  # T < 3 or T not a multiple of 3
            project_groups(w, budget)
        norms = group_norms(w)
        kept = torch.sort(torch.sort(-norms, stable=True).indices[:budget]).values
        w[:, [c for c in range(c_in) if c not in set(kept.tolist())]] = 0
        final, _ = loss.loss_and_grad((w - w_t).reshape(c_out, -1))
    return w, {"kept": kept, "history": history, "final_loss": float(final), "trace": kept_trace}


# ----------------------------------------------------------------------------- stage C


def stage_c(model: nn.Module, data: StageData, steps: int, hp: dict, generator: torch.Generator) -> dict:
    """``ChannelLearner.finetune``: CE with labels on the few-sample set, SGD + MultiStepLR, train mode."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=hp["ft_lr"], momentum=hp["ft_momentum"],
                          weight_decay=hp["ft_weight_decay"])
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(steps * 0.5), int(steps * 0.75)], 0.1)
    batches = data.minibatches(min(int(hp["ft_batch_size"]), data.num_few), generator)
    losses = []  # on the device: no host synchronisation per step
    for _ in range(steps):
        few_idx, _aux = next(batches)
        loss = F.cross_entropy(model(data.few_x[few_idx]), data.few_y[few_idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.detach())
    losses = loss_values(losses)
    model.eval()
    return {"steps": steps, "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else None}


@torch.no_grad()
def _few_accuracy(model: nn.Module, data: StageData) -> float:
    was = model.training
    model.eval()
    acc = float((model(data.few_x).argmax(1) == data.few_y).float().mean())
    model.train(was)
    return acc


# ----------------------------------------------------------------------------- the method


@METHODS.register("cd")
class CD(Method):
    name = "cd"
    label = "CD"
    paper_order = 0
    citation = ("Bai, Wu, King, Lyu. Few Shot Network Compression via Cross Distillation. AAAI 2020 "
                "(official code haolibai/Cross-Distillation)")
    data_driven_selection = True  # channels are chosen by the CD solve on the (OE-weighted) data
    params = {
        "target_ratio": Param(0.5, "CD budget ratio (--target_ratio; scripts use 0.5)", range=positive(1)),
        "selection": Param("cd", "cd: channels chosen by the projection (official); fixed-l1: L1 masks of "
                                 "build_student, CD loss without projection (methods.md 1.8 pitfall 11)",
                           choices=("cd", "fixed-l1")),
        "pgd_iters": Param(3000, "Adam iterations per layer (--pgd_iters, scripts: 3000; cpu keeps 3000: "
                                 "about 40 s on ResNet-32 / 2 cores, and 300 loses ~4 points)",
                           {"demo": 150}, range=between(1, 1e7)),
        "pgd_lr_vgg": Param(5e-4, "Adam lr for VGG (--pgd_lr, start_chnl.sh)", range=positive(10)),
        "pgd_lr_resnet": Param(1e-3, "Adam lr for ResNets (--pgd_lr, ResNet-56 block of start_chnl.sh)",
                               range=positive(10)),
        "mu_vgg": Param(0.6, "mixing coefficient mu of L_c for VGG (--mu)", range=between(0, 1)),
        "mu_resnet": Param(0.9, "mixing coefficient mu of L_c for ResNets (--mu)", range=between(0, 1)),
        "ft_steps_vgg": Param(40, "Stage C SGD steps for VGG ('40 epochs' = 40 steps, pitfall 3a)",
                              {"demo": 10}, range=between(0, 1e7)),
        "ft_steps_resnet": Param(100, "Stage C SGD steps for ResNets ('100 epochs' = 100 steps)",
                                 {"demo": 20}, range=between(0, 1e7)),
        "ft_lr": Param(1e-5, "Stage C SGD lr (--lr)", range=between(0, 10)),
        "ft_momentum": Param(0.9, "Stage C SGD momentum", range=between(0, 0.999)),
        "ft_weight_decay": Param(5e-4, "Stage C SGD weight decay", range=between(0, 1)),
        "ft_batch_size": Param(128, "Stage C batch size (min(this, N))", range=between(1, 65536)),
    }

    # -- helpers
    def _family_hp(self, family: str) -> tuple[float, float, int]:
        key = "vgg" if family == "vgg" else "resnet"
        return (float(self.hp[f"mu_{key}"]), float(self.hp[f"pgd_lr_{key}"]), int(self.hp[f"ft_steps_{key}"]))

    def _l1_kept(self, teacher: nn.Module, plan: CDPlan) -> dict[str, torch.Tensor]:
        return {plan.producers[n]: top_k_by_l1(teacher.get_submodule(plan.producers[n]), plan.budgets[n])
                for n in plan.pruned(teacher)}

    # -- interface
    def build_student(self, teacher: nn.Module, data: StageData) -> Student:
        plan = cd_plan(teacher, float(self.hp["target_ratio"]))
        kept = self._l1_kept(teacher, plan)
        model = pruned_copy(teacher, kept, data.few_x[:1])
        return Student(model, kept, [], {
            "criterion": "l1", "budgets": {n: plan.budgets[n] for n in plan.pruned(teacher)},
            "ratio": float(self.hp["target_ratio"]),
            "provenance": "official budgets (CD chnl_learner cfgs; ResNet skip list transferred by position: "
                          "ours); L1 selection for the just-pruned student (ours)",
            "description": "CD budgets with the top-L1 filters; compress() re-selects channels by the CD solve"})

    def compress(self, teacher: nn.Module, student: Student, data: StageData) -> tuple[Student, dict]:
        t0 = time.perf_counter()
        family = teacher.arch_family
        mu, lr, ft_steps = self._family_hp(family)
        plan = cd_plan(teacher, float(self.hp["target_ratio"]))
        pruned_layers = set(plan.pruned(teacher))
        fixed = self.hp["selection"] == "fixed-l1"
        l1_kept = {**self._l1_kept(teacher, plan), **student.kept} if fixed else {}
        bn_train = family == "vgg"  # methods.md 6.4: VGG train mode, ResNets eval mode in Stage A
        model = copy.deepcopy(teacher).train(bn_train)  # full width, masked (official)
        ref = copy.deepcopy(teacher).train() if bn_train else teacher  # never mutate the shared teacher
        w_few, w_aux = combine_weights(data, data.few_y, data.aux_y if data.has_aux else None)
        chunks = [data.few_x] + ([data.aux_x] if data.has_aux else [])
        weights = [w_few] + ([w_aux] if data.has_aux else [])
        iters = int(self.hp["pgd_iters"])
        # An aligned layer with nothing to prune starts at W_S = W_T, where the CD loss and its gradient are
        # exactly zero, so the official refit leaves it unchanged: skip it (identical result).
        solve_layers = pruned_layers | {n for n in plan.aligned if fixed and plan.producers.get(n) in l1_kept}
        layers, kept = [], {}
        with torch.no_grad(), full_fp32():  # the layer-wise solve without TF32 (oefsmc/core/precision.py)
            streams = PairedStreams(model, ref, chunks)
            while True:
                name, pairs = streams.current()
                if name is None:
                    break
                if name in plan.budgets and name in solve_layers:
                    conv = model.get_submodule(name)
                    w_t = teacher.get_submodule(name).weight.detach()
                    quad = QuadraticLoss(conv, [p[0] for p in pairs], [p[1] for p in pairs], weights, mu)
                    fixed_keep = l1_kept.get(plan.producers.get(name, ""), None) if fixed else None
                    budget = plan.budgets[name] if fixed_keep is None else len(fixed_keep)
                    w_new, info = pgd_solve(w_t, quad, budget, iters, lr, fixed_keep)
                    conv.weight.copy_(w_new)
                    lc, li = quad.parts((w_new - w_t).reshape(w_t.shape[0], -1))
                    if name in pruned_layers or fixed_keep is not None:
                        kept[plan.producers[name]] = info["kept"]
                    layers.append({"layer": name, "c_in": int(w_t.shape[1]), "budget": budget,
                                   "kept": info["kept"].tolist(),
                                   "form": quad.form, "history": info["history"],
                                   "final_loss": info["final_loss"], "final_lc": lc, "final_li": li})
                streams.advance()
        model.eval()
        with torch.no_grad():
            logits_masked = model(data.few_x)
            prune_output_channels(model, kept, data.few_x[:1])  # Stage B, physically
            logits_pruned = model(data.few_x)
        acc_masked = float((logits_masked.argmax(1) == data.few_y).float().mean())
        acc_pruned = float((logits_pruned.argmax(1) == data.few_y).float().mean())
        stage_a_seconds = time.perf_counter() - t0
        ft = stage_c(model, data, ft_steps, self.hp, self.generator)
        out = Student(model, kept, [], {
            "criterion": "cd-projection" if not fixed else "l1 (fixed masks)",
            "budgets": {n: plan.budgets[n] for n in pruned_layers}, "ratio": float(self.hp["target_ratio"]),
            "provenance": "official CD selection" if not fixed else "fixed L1 masks (methods.md 1.8 pitfall 11)",
            "description": "channels selected inside the CD solve, then physically pruned"})
        stats = {
            "selection": self.hp["selection"], "mu": mu, "pgd_lr": lr, "pgd_iters": iters,
            "bn_mode_stage_a": "train" if bn_train else "eval", "layers": layers,
            "final_loss_mean": sum(r["final_loss"] for r in layers) / max(len(layers), 1),
            "few_acc_masked": acc_masked, "few_acc_just_pruned": acc_pruned,
            "physical_prune_max_logit_change": float((logits_masked - logits_pruned).abs().max()),
            "unchanged_layers": [n for n in plan.aligned if n not in solve_layers],
            "few_acc_after_stage_c": _few_accuracy(model, data), "stage_c": ft,
            "stage_a_seconds": stage_a_seconds, "seconds": time.perf_counter() - t0,
        }
        return out, stats
