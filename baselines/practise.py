"""PRACTISE: "Practical Network Acceleration with Tiny Sets" (Wang and Wu, CVPR 2023).

Follows the official code ``DoctorKey/Practise`` (``main.py``, ``practise.py``, ``models/AdaptorWarp.py``;
methods.md Sec. 4):

1. **Candidates** (``models/resnet.py: get_blocks_to_drop``): every residual block except block 0 of each
   stage (the blocks with identity shortcuts).
2. For each candidate b (``Practise_one_block``): build the student without b with the teacher's weights (no
   re-initialisation), insert bias-free 1x1 **adaptors initialised to identity** (``AdaptorWarp``, forward
   hooks), train ONLY the adaptors with the whole network in ``eval()`` (BN frozen): SGD lr 0.02, momentum
   0.9, wd 1e-4, batch 64, ``StepLR(int(0.4 N), 0.1)`` per iteration, N iterations (2000 in ``exp/*.sh``);
   loss = MSE of the pre-GAP maps against the teacher.  **Recoverability** = the mean pre-GAP MSE over the
   whole tiny set (test transform, ``eval()``) with the trained adaptors; adaptors are then discarded.
3. **Score** = recoverability / cost-reduction %, ascending; drop the k lowest.
4. **Recovery**: a fresh block-dropped student (adaptors not absorbed) trained with MiR (``--FT MiR``,
   :func:`baselines.mir.mimic`).

Adaptor positions for a dropped block ``layerX.i`` (``insert_one_block_adaptors_for_resnet``): after-conv
adaptors on ``layerX.0.downsample.0`` (if any) and on the last conv (``conv2``) of every earlier block of the
stage; pre-conv adaptors on ``conv1`` of every later block of the stage and on the next stage's
``layer(X+1).0.conv1`` and ``layer(X+1).0.downsample.0`` -- every conv that writes into or reads from the
stage's residual stream.  CIFAR ResNets have option-A (parameter-free) shortcuts, so the downsample slots
disappear (methods.md Sec. 4.6); the option-A shortcut of the next stage reads the stream unadapted.

OE-FSMC enters through :meth:`StageData.combine`: the adaptor loss and the recoverability are per-sample MSEs
reduced with ``combine(few, aux, y_few, y_aux)``; the labels are passed because recoverability *selects* the
structure, so the class-aware weights (Eqs. 5-6) act on it.  The recoverability is ``combine`` over the whole
few(+aux) set, i.e. lambda * class-aware mean(few) + (1 - lambda) * class-aware mean(aux) (the plain mean of
the official metric when there is neither an auxiliary set nor class weights).

Decisions of ours (no official counterpart), all recorded in ``Student.scheme`` / the stats:

- **Cost.** The official score divides by the measured GPU latency reduction (ms per batch of 64, eval
  mode).  Latency is device-dependent and not reproducible, so the suite's default ``cost=macs`` uses the
  deterministic MAC reduction ``100 (MACs_teacher - MACs_student) / MACs_teacher`` (Torch-Pruning counter,
  one input).  No latency option is implemented.
- **k** (``rm_blocks``; 0 = auto): the official ResNet-34 setting drops k=3 blocks (~22% latency,
  ``exp/r34_reduce_22_lat.sh``).  ``auto`` picks the k whose cumulative MAC reduction (over the candidates in
  ascending-score order) is closest to ``target_reduction`` = 22% (ties: the smaller k).  All non-first blocks
  of our ResNets cost (almost) the same, so auto gives k=3 for ResNet-34 (19.2%; = official) and ResNet-32
  (20.5%), k=6 for ResNet-56 (22.7%), k=1 for demo_resnet_s (16.5%), k=2 for demo_resnet_m (22.1%).
- **Where the selection runs.** The block choice IS the structure, so :meth:`Practise.build_student` runs the
  recoverability selection and returns the block-dropped student with the teacher's weights (the pipeline's
  ``top1_pruned``); :meth:`Practise.compress` runs the MiR recovery and returns the selection stats too.
- **Adaptor-training augmentation** (``adaptor_augment``): the official adaptor stage draws batches from the
  training loader (train transform); with it on, each batch is augmented (pad-4 crop + flip) and the teacher
  target / stage input are computed on it (no grad).  Off (``cpu``/``demo`` schedules) the input of the
  affected stage and the teacher's pre-GAP map are computed once and cached, so an adaptor step only runs the
  student from that stage on (the stages before the dropped block are unchanged).
- **VGG (plain chain; ours, not official -- methods.md Sec. 4.6 says PRACTISE does not apply):** the droppable
  units are conv-BN-ReLU layers whose input and output shapes are equal and which are not the first conv of
  a stage (first conv of the net or right after a max-pool): VGG-16 conv2, 4, 6, 7, 9, 10, 12, 13; demo_vgg
  conv2, 4, 6.  Dropping replaces the conv, BN and ReLU by identities (module paths stay aligned).  Adaptors:
  after-conv on the preceding conv, pre-conv on the next conv (when there is one).  Same recoverability,
  score, k rule and MiR recovery.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch
import torch.nn as nn

from oefsmc.core.augment import random_crop_flip
from oefsmc.core.losses import feature_mse_per_sample
from oefsmc.core.method import METHODS, Method
from oefsmc.core.params import Param, Range, between, positive
from oefsmc.core.precision import loss_values
from oefsmc.core.prune import count_params_macs, drop_blocks, set_module
from oefsmc.core.stage_data import StageData
from oefsmc.core.student import Student
from oefsmc.core.taps import run_until

from .mir import MIR_PARAMS, batched_features, mimic, mir_hp

_MIR_SCHEDULES = {"iters": {"cpu": 300, "demo": 60}}

PRACTISE_PARAMS: dict[str, Param] = {
    "adaptor_iters": Param(2000, "adaptor-training iterations per candidate (exp/*.sh --epoch 2000; "
                           "the README example uses 1000)", {"cpu": 40, "demo": 15}, range=between(1, 1e7)),
    "adaptor_lr": Param(0.02, "adaptor SGD learning rate (official --lr)", range=positive(10)),
    "adaptor_momentum": Param(0.9, "adaptor SGD momentum (official)", range=between(0, 0.999)),
    "adaptor_weight_decay": Param(1e-4, "adaptor SGD weight decay (official)", range=between(0, 1)),
    "adaptor_batch_size": Param(64, "adaptor batch size (official)", range=between(1, 65536)),
    "adaptor_lr_step": Param(0.4, "adaptor StepLR step as a fraction of adaptor_iters (official), "
                             "stepped per iteration", range=positive(1)),
    "adaptor_lr_gamma": Param(0.1, "adaptor StepLR gamma (official)", range=positive(1)),
    "adaptor_augment": Param(True, "augment adaptor-training batches (official: the training loader); "
                             "off: cache the affected stage's input and the teacher's features",
                             {"cpu": False, "demo": False}),
    "adaptor_pad": Param(4, "random-crop padding when adaptor_augment is on", range=between(0, 64)),
    "rm_blocks": Param(0, "number of blocks to drop; 0 = auto: the k whose MAC reduction is closest to "
                       "target_reduction (official ResNet-34: 3)", range=between(0, 1000)),
    "target_reduction": Param(22.0, "cost reduction (%) aimed at by rm_blocks=0 (official: ~22% latency)",
                              range=Range(0, 100, low_open=True, high_open=True)),
    "cost": Param("macs", "cost whose relative reduction divides the recoverability (official: GPU latency; "
                  "ours: deterministic MACs)", choices=("macs",)),
    **{"mir_" + k: replace(p, doc="MiR recovery: " + p.doc, schedules=_MIR_SCHEDULES.get(k, p.schedules))
       for k, p in MIR_PARAMS.items()},
}


# ------------------------------------------------------------------------------------------- structure
def candidates(model: nn.Module) -> list[str]:
    """Droppable units in forward order: non-first residual blocks, or (VGG, ours) equal-shape conv layers."""
    if model.arch_family == "vgg":
        return vgg_candidates(model)
    out = []
    for s, stage in enumerate(model.stages(), start=1):
        out += [f"layer{s}.{i}" for i, b in enumerate(stage) if i > 0 and not isinstance(b, nn.Identity)]
    return out


def vgg_candidates(model: nn.Module) -> list[str]:
    """Conv paths (``features.j``) with in == out channels that do not open a stage (ours)."""
    out, prev = [], None
    for j, m in enumerate(model.features):
        if isinstance(m, nn.Conv2d):
            opens_stage = prev is None or isinstance(prev, nn.MaxPool2d)
            if not opens_stage and m.in_channels == m.out_channels and m.stride == (1, 1):
                out.append(f"features.{j}")
        if not isinstance(m, (nn.BatchNorm2d, nn.ReLU, nn.Identity)):
            prev = m
    return out


def drop_units(model: nn.Module, units: list[str]) -> nn.Module:
    """Drop residual blocks (:func:`drop_blocks`) or VGG conv-BN-ReLU layers (all three -> Identity).

    In place; module paths of the remaining layers are unchanged.
    """
    if model.arch_family != "vgg":
        return drop_blocks(model, units)
    for path in units:
        j = int(path.split(".")[1])
        conv = model.features[j]
        if not (isinstance(conv, nn.Conv2d) and conv.in_channels == conv.out_channels):
            raise ValueError(f"{path} is not an equal-shape conv layer and cannot be dropped")
        for k in (j, j + 1, j + 2):
            set_module(model, f"features.{k}", nn.Identity())
    return model


def dropped_copy(teacher: nn.Module, units: list[str]) -> nn.Module:
    """A deep copy of the teacher (weights kept, no re-init) with ``units`` dropped."""
    return drop_units(copy.deepcopy(teacher), list(units))


@dataclass
class Sites:
    """Adaptor positions for one dropped unit, and where the affected part of the network starts."""
    after: list[str] = field(default_factory=list)  # conv paths whose OUTPUT goes through an adaptor
    pre: list[str] = field(default_factory=list)  # conv paths whose INPUT goes through an adaptor
    start: str = ""  # module path whose input is unchanged by the drop (cached); the tail runs from here


def adaptor_sites(model: nn.Module, unit: str) -> Sites:
    """The official positions (``insert_one_block_adaptors_for_resnet``), or the VGG adaptation (ours)."""
    if model.arch_family == "vgg":
        convs = model.conv_names()
        k = convs.index(unit)
        if k == 0:
            raise ValueError("the first conv cannot be dropped")
        return Sites(after=[convs[k - 1]], pre=convs[k + 1:k + 2], start=convs[k - 1])
    layer, i = unit.split(".")
    x, i = int(layer[len("layer"):]), int(i)
    stages = model.stages()
    stage = stages[x - 1]
    sites = Sites(start=layer)
    ds = getattr(stage[0], "downsample", None)
    if isinstance(ds, nn.Sequential):
        sites.after.append(f"{layer}.0.downsample.0")
    sites.after += [f"{layer}.{j}.conv2" for j in range(i) if not isinstance(stage[j], nn.Identity)]
    sites.pre += [f"{layer}.{j}.conv1" for j in range(i + 1, len(stage))
                  if not isinstance(stage[j], nn.Identity)]
    if x < len(stages):
        nxt = stages[x][0]
        sites.pre.append(f"layer{x + 1}.0.conv1")
        if isinstance(getattr(nxt, "downsample", None), nn.Sequential):
            sites.pre.append(f"layer{x + 1}.0.downsample.0")
    return sites


def tail_fn(model: nn.Module, start: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """``h -> pre-GAP map`` running ``model`` from module ``start`` (whose input is ``h``) to the end.

    ``forward_features`` of every registered family is stem -> stages in order (ResNets) or ``features``
    (VGG), so the tail is the remaining stages / the remaining slice of ``features``.
    """
    if model.arch_family == "vgg":
        return model.features[int(start.split(".")[1]):]
    stages = model.stages()[int(start[len("layer"):]) - 1:]

    def run(h: torch.Tensor) -> torch.Tensor:
        for stage in stages:
            h = stage(h)
        return h
    return run


class Adaptors(nn.Module):
    """Bias-free 1x1 convs initialised to the identity, attached by forward hooks (``AdaptorWarp``)."""

    def __init__(self, model: nn.Module, sites: Sites):
        super().__init__()
        self.after, self.pre = nn.ModuleDict(), nn.ModuleDict()
        self._handles: list = []
        for path in sites.after:  # ModuleDict keys may not contain "."
            conv = model.get_submodule(path)
            adaptor = self.after[path.replace(".", "/")] = self._identity(conv.out_channels, conv.weight)
            self._handles.append(conv.register_forward_hook(self._after_hook(adaptor)))
        for path in sites.pre:
            conv = model.get_submodule(path)
            adaptor = self.pre[path.replace(".", "/")] = self._identity(conv.in_channels, conv.weight)
            self._handles.append(conv.register_forward_pre_hook(self._pre_hook(adaptor)))

    @staticmethod
    def _identity(c: int, like: torch.Tensor) -> nn.Conv2d:
        conv = nn.Conv2d(c, c, 1, bias=False).to(device=like.device, dtype=like.dtype)
        with torch.no_grad():
            conv.weight.copy_(torch.eye(c, dtype=like.dtype, device=like.device).view(c, c, 1, 1))
        return conv

    @staticmethod
    def _after_hook(adaptor: nn.Conv2d):
        return lambda _m, _inp, out: adaptor(out)

    @staticmethod
    def _pre_hook(adaptor: nn.Conv2d):
        return lambda _m, inp: (adaptor(inp[0]),)

    def remove(self) -> None:
        """Detach the hooks (the official ``remove_all_preconv/afterconv``: discarded, not absorbed)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def names(self) -> dict[str, list[str]]:
        return {"after": [k.replace("/", ".") for k in self.after],
                "pre": [k.replace("/", ".") for k in self.pre]}


# ------------------------------------------------------------------------------------------ recoverability
class _Cache:
    """Teacher-side tensors over few(+aux) computed once: pre-GAP maps and the inputs of cut points."""

    def __init__(self, teacher: nn.Module, data: StageData):
        self.teacher, self.data = teacher, data
        self.x = data.all_x()
        self.feats = batched_features(teacher, self.x)
        self._inputs: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def stage_input(self, start: str) -> torch.Tensor:
        if start not in self._inputs:
            self._inputs[start] = torch.cat([
                run_until(self.teacher, start, self.x[i:i + 500], inputs=True)["in"]
                for i in range(0, len(self.x), 500)])
        return self._inputs[start]


def _split_loss(data: StageData, per: torch.Tensor, n_few: int, y: torch.Tensor) -> torch.Tensor:
    """``combine`` of a per-sample vector whose first ``n_few`` entries are few-sample ones (labels ``y``)."""
    aux = per[n_few:] if data.has_aux else None
    return data.combine(per[:n_few], aux, y[:n_few], y[n_few:] if data.has_aux else None)


def recoverability(tail: Callable, h: torch.Tensor, target: torch.Tensor, data: StageData,
                   batch: int = 500) -> float:
    """Class-aware ``combine`` of the per-sample pre-GAP MSE over the whole few(+aux) set (eval mode)."""
    with torch.no_grad():
        per = torch.cat([feature_mse_per_sample(tail(h[i:i + batch]), target[i:i + batch])
                         for i in range(0, len(h), batch)])
    return float(_split_loss(data, per, data.num_few, data.all_y()))


def train_adaptors(teacher: nn.Module, model: nn.Module, adaptors: Adaptors, start: str, cache: _Cache,
                   data: StageData, hp: dict[str, Any], generator: torch.Generator) -> dict:
    """Official ``Practise_recover``: only the adaptors learn; teacher and student in eval (BN frozen)."""
    iters = int(hp["adaptor_iters"])
    opt = torch.optim.SGD(adaptors.parameters(), lr=hp["adaptor_lr"], momentum=hp["adaptor_momentum"],
                          weight_decay=hp["adaptor_weight_decay"])
    step = max(1, int(hp["adaptor_lr_step"] * iters))
    sched = torch.optim.lr_scheduler.StepLR(opt, step, hp["adaptor_lr_gamma"])
    model.eval()
    tail = tail_fn(model, start)
    h_all = None if hp["adaptor_augment"] else cache.stage_input(start)
    y_all, n_few = data.all_y(), data.num_few
    batches = data.minibatches(int(hp["adaptor_batch_size"]), generator)
    losses: list[torch.Tensor] = []  # on the device: no host synchronisation per iteration
    for _ in range(iters):
        few_idx, aux_idx = next(batches)
        idx = few_idx if aux_idx is None else torch.cat([few_idx, aux_idx + n_few])
        if hp["adaptor_augment"]:
            x = random_crop_flip(cache.x[idx], generator, pad=int(hp["adaptor_pad"]))
            with torch.no_grad():
                h = run_until(teacher, start, x, inputs=True)["in"]
                t = teacher.forward_features(x)
        else:
            h, t = h_all[idx], cache.feats[idx]
        per = feature_mse_per_sample(tail(h), t)
        loss = _split_loss(data, per, len(few_idx), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.detach())
    losses = loss_values(losses)
    return {"loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None}


def macs_of(model: nn.Module, example: torch.Tensor) -> int:
    return count_params_macs(model, example)[1]


def score_candidate(teacher: nn.Module, unit: str, cache: _Cache, data: StageData, hp: dict[str, Any],
                    generator: torch.Generator, teacher_macs: int) -> dict:
    """``Practise_one_block``: cost reduction, adaptor training, recoverability and score of one unit."""
    t0 = time.perf_counter()
    model = dropped_copy(teacher, [unit]).eval()
    reduction = 100.0 * (teacher_macs - macs_of(model, cache.x[:1])) / teacher_macs
    for p in model.parameters():
        p.requires_grad_(False)
    sites = adaptor_sites(teacher, unit)  # positions in the (shared) module paths of the teacher
    adaptors = Adaptors(model, sites)
    h_all = cache.stage_input(sites.start)
    tail = tail_fn(model, sites.start)
    before = recoverability(tail, h_all, cache.feats, data)
    train = train_adaptors(teacher, model, adaptors, sites.start, cache, data, hp, generator)
    rec = recoverability(tail, h_all, cache.feats, data)
    adaptors.remove()
    return {"unit": unit, "recoverability": rec, "recoverability_before_adaptors": before,
            "cost_reduction": reduction, "score": rec / reduction if reduction > 0 else float("inf"),
            "adaptors": adaptors.names(), "adaptor_loss_first": train["loss_first"],
            "adaptor_loss_last": train["loss_last"], "seconds": time.perf_counter() - t0}


def choose_k(sorted_reductions: list[float], target: float) -> int:
    """The k (>= 1) whose cumulative reduction is closest to ``target`` (ties: smaller k)."""
    best_k, best_gap, total = 1, float("inf"), 0.0
    for k, r in enumerate(sorted_reductions, start=1):
        total += r
        if abs(total - target) < best_gap - 1e-9:
            best_k, best_gap = k, abs(total - target)
    return best_k


def select_units(teacher: nn.Module, data: StageData, hp: dict[str, Any], generator: torch.Generator) -> dict:
    """``Practise_all_blocks``: score every candidate, sort ascending, keep the k lowest."""
    t0 = time.perf_counter()
    teacher.eval()
    cache = _Cache(teacher, data)
    teacher_macs = macs_of(teacher, cache.x[:1])
    scored = [score_candidate(teacher, u, cache, data, hp, generator, teacher_macs)
              for u in candidates(teacher)]
    order = sorted(scored, key=lambda r: r["score"])
    k = int(hp["rm_blocks"]) or choose_k([r["cost_reduction"] for r in order], float(hp["target_reduction"]))
    k = min(k, len(order))
    return {"candidates": scored, "order": [r["unit"] for r in order], "k": k,
            "k_rule": "fixed rm_blocks" if int(hp["rm_blocks"]) else
            f"auto: cumulative {hp['cost']} reduction closest to {hp['target_reduction']}%",
            "dropped": [r["unit"] for r in order[:k]], "cost": hp["cost"], "teacher_macs": teacher_macs,
            "seconds": time.perf_counter() - t0}


@METHODS.register("practise")
class Practise(Method):
    name = "practise"
    label = "PRACTISE"
    paper_order = 3
    citation = ("Wang and Wu. Practical Network Acceleration with Tiny Sets. CVPR 2023 "
                "(code: DoctorKey/Practise)")
    params = PRACTISE_PARAMS
    data_driven_selection = True  # recoverability is measured on the data

    def build_student(self, teacher: nn.Module, data: StageData) -> Student:
        """Recoverability selection (the structure choice); the student keeps the teacher's weights."""
        sel = select_units(teacher, data, self.hp, self.generator)
        model = dropped_copy(teacher, sel["dropped"]).eval()
        macs = macs_of(model, data.few_x[:1])
        sel["student_macs"] = macs
        sel["macs_reduction"] = 100.0 * (sel["teacher_macs"] - macs) / sel["teacher_macs"]
        vgg = teacher.arch_family == "vgg"
        scheme = {
            "criterion": "practise recoverability / " + sel["cost"] + " reduction",
            "provenance": "ours (PRACTISE adapted to a plain chain: equal-shape conv layers)" if vgg else
            ("official (DoctorKey/Practise)" if teacher.arch_family == "imagenet_resnet" else
             "official procedure, ours for option-A adaptor positions (methods.md Sec. 4.6)"),
            "description": f"dropped {sel['dropped']} ({sel['macs_reduction']:.1f}% MACs)",
            "selection": sel,
        }
        return Student(model, {}, list(sel["dropped"]), scheme)

    def compress(self, teacher: nn.Module, student: Student, data: StageData) -> tuple[Student, dict]:
        """MiR recovery of the block-dropped student (official ``--FT MiR`` after ``--practise all``)."""
        stats = {"selection": student.scheme.get("selection"),
                 "recovery": mimic(teacher, student.model, data, mir_hp(self.hp, "mir_"), self.generator)}
        return student, stats
