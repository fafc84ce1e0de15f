"""FSKD: Few Sample Knowledge Distillation (Li, Li, Liu, Zhang, CVPR 2020; official code ``LTH14/FSKD``).

A 1x1 convolution Q_l is added after every aligned conv of a pruned student and estimated by closed-form
least squares so that the student's conv output matches the teacher's on the teacher's kept channels
(paper Sec. 3, Eq. 2; Algorithm 1 "FSKD-BCD" with one sweep; code ``vggprune_pruning.py:
recover_one_layer``).  Q is then merged into the conv, W' = Q W (code ``models/vgg.py: absorb_pwconv``),
so the student keeps the pruned net's size.

What this file implements and every decision where the official code does not speak
(methods.md Sec. 2):

- **Student** (``build_student``): ``schemes.fskd_pruned_a``: VGG-16 "pruned-A" by L1 norm (official; the
  demo VGG transfers it by position), ResNets 50% L1 of every block's conv1 outputs (ours, no official
  ResNet code).
- **Placement of Q**: between each aligned conv and its BN (the official code has no BN; its BN branch puts
  Q after BN, which does not merge exactly, methods.md Sec. 2.6 pitfall 1).  The merge W' = Q W is then
  exact, and BN keeps the teacher's parameters of the kept channels.
- **Aligned convs**: VGG: all convs, including the unpruned ones (official: all 13 get a Q).  ResNets: conv1
  and conv2 of every residual block in forward order; not the stem and not the 1x1 downsample convs (ours:
  a Q after the residual addition cannot be merged, Sec. 2.4).
- **Target**: the teacher's pre-BN conv output restricted to the teacher channels the student keeps
  (``Student.kept``, all channels for an unpruned conv); **feature**: the student's pre-BN conv output
  computed with its earlier layers already corrected (one sequential block-coordinate sweep, forward order).
  The official code fits pre-ReLU outputs of a no-BN net, i.e. the same conv outputs.
- **Solver**: normal equations A = sum_r w_r y_r y_r^T, B = sum_r w_r t_r y_r^T accumulated in float64 over
  batches of ``batch_size`` images (memory for A, B is O(C^2) for any N; the official code stacks all N*H*W
  rows, pitfall 2), Q = B A^{-1}.  No ridge by default (official ``numpy.linalg.lstsq``, no regularisation);
  ``ridge`` adds ridge * mean(diag A) * I.  If A is numerically singular (its smallest eigenvalue below
  C * eps * its largest, e.g. fewer rows than channels), Q = B pinv(A): the minimum-norm least-squares
  solution, which is what ``numpy.linalg.lstsq`` returns.
- **Efficiency**: the student and the teacher are run once, layer by layer, by :func:`conv_stream` (each
  forward pass pauses at every conv's input; the paused activations of all batches are the cache, so memory
  is O(N x one layer's activations)).  The conv outputs computed for the least squares are handed back to
  the streams: the teacher's as they are, the student's with Q applied as an explicit 1x1 layer (as the
  official code does until ``absorb_pwconv``; equal to the merged conv up to float round-off), so no conv
  is computed twice.
- **BN mode**: both nets in eval mode (official).
- **OE-FSMC** (Eq. 7): the joint objective lam * mean_few + (1 - lam) * mean_aux becomes weighted normal
  equations, row weights w_few / (H W) for few-sample rows and w_aux / (H W) for auxiliary rows with
  ``(w_few, w_aux) = data.source_weights()``; without aux this is the official ordinary least squares.
- ``data_driven_selection = False``: FSKD's channels are chosen by the L1 norm of the teacher's filters,
  which never looks at data, so OE-FSMC's class-aware importance weights (Eqs. 5-6) cannot act on the
  structure; OE acts only through the weighted least squares.
- Sample choice, labels: label-free; the suite's shared few-sample set replaces the official "first N
  training images" (methods.md Sec. 6.2).
"""
from __future__ import annotations

import copy
import time
from typing import Iterator, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from oefsmc.core.method import METHODS, Method
from oefsmc.core.params import Param, between
from oefsmc.core.precision import full_fp32
from oefsmc.core.stage_data import StageData
from oefsmc.core.student import Student

from .schemes import fskd_pruned_a, residual_blocks

# ----------------------------------------------------------------------------- layer-by-layer forward


def _shortcut(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    sc = getattr(block, "shortcut", None)
    if sc is not None:
        return sc(x)
    down = getattr(block, "downsample", None)
    return x if down is None else down(x)


def conv_stream(model: nn.Module, x: torch.Tensor) -> Iterator[tuple[Optional[str], torch.Tensor]]:
    """The forward pass of ``model`` as a generator that pauses at the input of every conv.

    Yields ``(conv_path, conv_input)`` in forward order for VGG convs, the ResNet stem and every residual
    block's conv1 / conv2 (the 1x1 shortcut convs run inside their block), then ``(None,
    forward_features(x))``.  The conv is applied only when the generator resumes, with the weights it has
    *then*, so a caller may rewrite the conv while paused (layer-wise methods).  ``gen.send(y)`` hands in
    the conv's output instead (when the caller has already computed it).  The result equals
    ``model.forward_features(x)`` (tested), in the model's current train/eval mode.
    """
    family = model.arch_family
    if family == "vgg":
        for i, m in enumerate(model.features):
            if isinstance(m, nn.Conv2d):
                y = yield f"features.{i}", x
                x = m(x) if y is None else y
            else:
                x = m(x)
    elif family in ("cifar_resnet", "imagenet_resnet"):
        y = yield "conv1", x
        x = F.relu(model.bn1(model.conv1(x) if y is None else y))
        if family == "imagenet_resnet":
            x = model.maxpool(x)
        for s, stage in enumerate(model.stages(), start=1):
            for i, block in enumerate(stage):
                if isinstance(block, nn.Identity):  # a dropped block
                    continue
                path = f"layer{s}.{i}"
                y = yield f"{path}.conv1", x
                h = F.relu(block.bn1(block.conv1(x) if y is None else y))
                y = yield f"{path}.conv2", h
                out = block.bn2(block.conv2(h) if y is None else y)
                x = F.relu(out + _shortcut(block, x))
    else:
        raise ValueError(f"conv_stream: unsupported architecture family {family!r}")
    yield None, x


class PairedStreams:
    """Student and teacher :func:`conv_stream` run in lockstep over several input chunks.

    ``name, pairs = ps.current()`` gives the conv path where all streams are paused and one
    ``(x_student, x_teacher)`` pair per chunk; ``ps.advance(student_outputs, teacher_outputs)`` resumes all
    streams, using the given conv outputs where not None (else each conv with its current weights).
    ``name`` is None once the forward passes are complete; the pairs then hold the final feature maps.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, chunks: list[torch.Tensor]):
        self.streams = [(conv_stream(student, x), conv_stream(teacher, x)) for x in chunks]
        self._cur = [(next(s), next(t)) for s, t in self.streams]

    def current(self) -> tuple[Optional[str], list[tuple[torch.Tensor, torch.Tensor]]]:
        names = {(s[0], t[0]) for s, t in self._cur}
        name = self._cur[0][0][0]
        if names != {(name, name)}:
            raise RuntimeError(f"student and teacher forward passes diverged: {sorted(names, key=str)}")
        return name, [(s[1], t[1]) for s, t in self._cur]

    def advance(self, student_outputs: Optional[list] = None, teacher_outputs: Optional[list] = None) -> None:
        none = [None] * len(self.streams)
        self._cur = [(s.send(os), t.send(ot)) for (s, t), os, ot in
                     zip(self.streams, student_outputs or none, teacher_outputs or none)]


# ----------------------------------------------------------------------------- least squares and merge


def _cols(y: torch.Tensor) -> torch.Tensor:
    """N x C x H x W -> C x (N*H*W) in float64 (one column per pixel row of the least squares)."""
    return y.transpose(0, 1).reshape(y.shape[1], -1).to(torch.float64)


class NormalEquations:
    """Weighted least squares min_Q sum_r w_r ||Q y_r - t_r||^2 accumulated over batches (float64).

    A = sum w y y^T (C_s x C_s), B = sum w t y^T (C_t x C_s), c = sum w ||t||^2; the optimum is Q = B A^{-1}
    and the objective at any Q is tr(Q A Q^T) - 2 tr(Q B^T) + c.
    """

    def __init__(self, c_student: int, c_target: int, device=None):
        self.a = torch.zeros(c_student, c_student, dtype=torch.float64, device=device)
        self.b = torch.zeros(c_target, c_student, dtype=torch.float64, device=device)
        self.c = torch.zeros((), dtype=torch.float64, device=device)
        self.rows = 0

    def add(self, y: torch.Tensor, t: torch.Tensor, row_weight: float) -> None:
        """Add the pixels of conv outputs ``y`` (student) and ``t`` (target), each row weighted ``row_weight``."""
        ys, ts = _cols(y), _cols(t)
        self.a += row_weight * (ys @ ys.T)
        self.b += row_weight * (ts @ ys.T)
        self.c += row_weight * ts.pow(2).sum()
        self.rows += ys.shape[1]

    def objective(self, q: torch.Tensor) -> float:
        return float(torch.trace(q @ self.a @ q.T) - 2 * torch.trace(q @ self.b.T) + self.c)

    def solve(self, ridge: float = 0.0) -> tuple[torch.Tensor, str]:
        """Q (float64) and how it was obtained ("solve" or "pinv")."""
        a = self.a
        if ridge > 0:
            a = a + ridge * a.diagonal().mean() * torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
        evals = torch.linalg.eigvalsh(a)
        tol = a.shape[0] * torch.finfo(a.dtype).eps * evals[-1].clamp(min=0)
        if evals[0] > tol and self.rows >= a.shape[0]:
            q = torch.linalg.solve(a, self.b.T).T  # a is symmetric: (B A^-1)^T = A^-1 B^T
            if torch.isfinite(q).all():
                return q, "solve"
        return self.b @ torch.linalg.pinv(a, hermitian=True), "pinv"


@torch.no_grad()
def merge_q(conv: nn.Conv2d, q: torch.Tensor) -> None:
    """Absorb a bias-free 1x1 conv ``q`` (C_out x C_out) applied after ``conv``: W' = Q W (exact), b' = Q b."""
    w = conv.weight
    merged = q.to(torch.float64) @ w.reshape(w.shape[0], -1).to(torch.float64)
    w.copy_(merged.reshape_as(w).to(w.dtype))
    if conv.bias is not None:
        conv.bias.copy_((q.to(torch.float64) @ conv.bias.to(torch.float64)).to(conv.bias.dtype))


def fskd_aligned_convs(model: nn.Module) -> list[str]:
    """Convs that get a Q: every VGG conv; conv1 and conv2 of every residual block (not the stem)."""
    if model.arch_family == "vgg":
        return list(model.conv_names())
    return [f"{b}.{c}" for b in residual_blocks(model) for c in ("conv1", "conv2")]


def _chunks(data: StageData, batch_size: int) -> tuple[list[torch.Tensor], list[float]]:
    """Few-sample then auxiliary images in batches, with each batch's per-sample weight (source_weights)."""
    w_few, w_aux = data.source_weights()
    xs, ws = [], []
    sources = [(data.few_x, w_few)] + ([(data.aux_x, w_aux)] if data.has_aux else [])
    for x, w in sources:
        for s in range(0, len(x), batch_size):
            xs.append(x[s:s + batch_size])
            ws.append(w)
    return xs, ws


@torch.no_grad()
def fskd_sweep(student: nn.Module, teacher: nn.Module, chunks: list[torch.Tensor], sample_weights: list[float],
               aligned: list[str], kept: dict[str, torch.Tensor], ridge: float = 0.0,
               ) -> tuple[dict[str, torch.Tensor], list[dict], dict]:
    """One block-coordinate sweep of FSKD, in place on ``student`` (both nets should be in eval mode).

    ``sample_weights[k]`` is the weight of each image of chunk k (OE-FSMC Eq. 7 via source_weights); a
    pixel row gets weight / (H * W).  Returns the fitted Q's (float64, before merging), per-layer stats and
    the agreement of the final logits (weighted MSE, arg-max agreement).
    """
    aligned_set = set(aligned)
    streams = PairedStreams(student, teacher, chunks)
    qs: dict[str, torch.Tensor] = {}
    layers: list[dict] = []
    while True:
        name, pairs = streams.current()
        if name is None:
            break
        student_out: list[Optional[torch.Tensor]] = [None] * len(pairs)
        teacher_out: list[Optional[torch.Tensor]] = [None] * len(pairs)
        if name in aligned_set:
            conv_s, conv_t = student.get_submodule(name), teacher.get_submodule(name)
            idx = kept.get(name)
            ne = None
            for k, (xs, xt) in enumerate(pairs):
                ys, yt = conv_s(xs), conv_t(xt)
                student_out[k], teacher_out[k] = ys, yt
                target = yt if idx is None else yt[:, idx.to(yt.device)]
                if ne is None:
                    ne = NormalEquations(ys.shape[1], target.shape[1], ys.device)
                ne.add(ys, target, sample_weights[k] / (ys.shape[2] * ys.shape[3]))
            q, how = ne.solve(ridge)
            eye = torch.eye(q.shape[0], q.shape[1], dtype=q.dtype, device=q.device)
            before = max(ne.objective(eye), 0.0) / q.shape[0]  # clamp: round-off of the expanded form
            after = max(ne.objective(q), 0.0) / q.shape[0]
            merge_q(conv_s, q)
            qs[name] = q
            # the student continues with Q applied to its conv output (the official code's explicit 1x1
            # layer; equal to the merged conv up to float round-off, and 1/k^2 of the conv's cost)
            q32 = q.to(student_out[0].dtype)[:, :, None, None]
            student_out = [F.conv2d(ys, q32) for ys in student_out]
            layers.append({"layer": name, "channels": int(q.shape[0]), "rows": ne.rows, "solver": how,
                           "mse_before": before, "mse_after": after,
                           "target_power": float(ne.c) / q.shape[0]})
        streams.advance(student_out, teacher_out)
    logits = [(student.forward_head(fs), teacher.forward_head(ft)) for fs, ft in pairs]
    lmse = sum(w * (ls - lt).pow(2).mean(1).sum() for (ls, lt), w in zip(logits, sample_weights))
    agree = sum(int((ls.argmax(1) == lt.argmax(1)).sum()) for ls, lt in logits)
    n = sum(len(ls) for ls, _ in logits)
    return qs, layers, {"final_logit_mse": float(lmse), "final_argmax_agreement": agree / max(n, 1)}


# ----------------------------------------------------------------------------- the method


@METHODS.register("fskd")
class FSKD(Method):
    name = "fskd"
    label = "FSKD"
    paper_order = 1
    citation = ("Li, Li, Liu, Zhang. Few Sample Knowledge Distillation for Efficient Network Compression. "
                "CVPR 2020 (official code LTH14/FSKD)")
    data_driven_selection = False  # L1 filter norms are data-free: OE class weights cannot act on selection
    params = {
        "batch_size": Param(256, "images per batch when accumulating the normal equations (memory only; "
                                 "the solution does not depend on it)",
                           range=between(1, 65536)),
        "ridge": Param(0.0, "ridge added to the normal equations, times mean(diag A) (official: none)",
                       range=between(0, 1e6)),
    }

    def build_student(self, teacher: nn.Module, data: StageData) -> Student:
        return fskd_pruned_a(teacher, data.few_x[:1])

    def compress(self, teacher: nn.Module, student: Student, data: StageData) -> tuple[Student, dict]:
        t0 = time.perf_counter()
        model = copy.deepcopy(student.model).to(self.device).eval()
        if teacher.training:  # never change the shared teacher's mode; FSKD runs it in eval mode
            teacher = copy.deepcopy(teacher).eval()
        aligned = fskd_aligned_convs(model)
        chunks, weights = _chunks(data, int(self.hp["batch_size"]))
        with full_fp32():  # features for the normal equations without TF32 (oefsmc/core/precision.py)
            _, layers, final = fskd_sweep(model, teacher, chunks, weights, aligned, student.kept,
                                          float(self.hp["ridge"]))
        out = Student(model, dict(student.kept), list(student.dropped_blocks), dict(student.scheme))
        stats = {
            "aligned_layers": aligned,
            "layers": layers,
            "mse_before_mean": sum(r["mse_before"] for r in layers) / max(len(layers), 1),
            "mse_after_mean": sum(r["mse_after"] for r in layers) / max(len(layers), 1),
            "solver_fallbacks": sum(r["solver"] != "solve" for r in layers),
            **final,
            "samples": data.num_few + data.num_aux,
            "seconds": time.perf_counter() - t0,
        }
        return out, stats
