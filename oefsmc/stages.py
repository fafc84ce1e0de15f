"""The stages of one run: what :func:`oefsmc.pipeline.run_config` does to a resolved config, step by step.

:data:`STAGES` is the run, in order: ``data`` (the splits and the few-sample set) -> ``teacher`` ->
``auxiliary`` (the OOD set, OE variants) -> ``compress`` (the method's ``build_student`` + ``compress``,
common random numbers, shared through :mod:`oefsmc.compressed_cache`) -> ``finetune`` (the shared stage,
variants with one) -> ``evaluate`` -> ``measure`` (teacher accuracy, parameters, MACs).  Each stage is a
small function ``RunState -> RunState``; :func:`record` turns the finished state into the record.  The
methods are plug-ins looked up in :data:`~oefsmc.core.method.METHODS` (:func:`method_class`); this
package never imports them.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch

from .compressed_cache import (
    cached_compression,
    compression_identity,
    compression_key,
    compression_seed,
    finetune_seed,
)
from .config import ResolvedConfig
from .core import finetune as ft
from .core.augment import random_crop_flip
from .core.evaluate import evaluate
from .core.losses import weighted_ce
from .core.method import METHODS
from .core.prune import count_params_macs
from .core.stage_data import StageData
from .data.fewshot import sample_fewshot, seed_from
from .data.ood import ood_pool
from .data.sources import DATASETS, load_split
from .envinfo import environment
from .errors import UserError
from .jsonable import to_jsonable
from .models.teacher import Normalizer
from .oe.auxiliary import auxiliary_set, draw_labels
from .oe.complementary import (
    complementary_distribution,
    importance_class_weights,
    ood_class_weights,
)
from .oe.variants import VARIANTS
from .teacher_store import get_teacher, pick_device, teacher_accuracy


def method_class(name: str) -> type:
    """The registered method ``name``.  The core never imports the methods (``baselines``, a plug-in
    package): an entry point registers them first (:func:`benchmark.plugins.load_plugins`)."""
    if not METHODS.names():
        raise UserError("no methods registered: call benchmark.plugins.load_plugins() (or import baselines)")
    return METHODS.get(name)


@dataclass
class RunState:
    """What the stages of one run hand on: the resolved config, then each stage's products.

    :data:`STAGES` fill it in order (``data`` sets ``train``/``test``/``few``, ``teacher`` sets
    ``teacher``/``norm``/``few_x``/``few_y``, ...); :func:`record` turns the final state into the record."""

    cfg: ResolvedConfig
    log: Callable[[str], None] | None = None
    finetune_probe: Callable | None = None
    evaluate_final: bool = True
    timings: dict[str, Any] = field(default_factory=dict)  # the stages' own clocks (compress_s, eval_s, ...)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    device: Any = None
    spec: Any = None
    variant: Any = None
    train: Any = None
    test: Any = None
    few: Any = None
    teacher: Any = None
    norm: Any = None
    few_x: Any = None
    few_y: Any = None
    aux: dict | None = None
    oe_record: dict | None = None
    identity: dict | None = None
    comp: dict | None = None
    reused: bool = False
    student: Any = None
    finetune_stats: dict | None = None
    final: dict | None = None
    teacher_eval: dict | None = None
    size: dict | None = None

    def test_eval(self, model) -> dict:
        """Top-1, per-class and head/medium/tail accuracy of ``model`` on the test split."""
        return evaluate(model, self.test.images, self.test.labels, self.spec.num_classes, 1000, self.norm,
                        self.cfg.eval_precision)


def _stage_data(s: RunState) -> RunState:
    """The splits and the few-sample set, which depends only on (dataset, Num, balanced, ratio, seed)."""
    cfg = s.cfg
    method_class(cfg.method)  # fail before any work when no methods are registered
    s.device = pick_device(cfg.device)
    s.spec = DATASETS.get(cfg.dataset)
    s.variant = VARIANTS.get(cfg.oe)
    s.train = load_split(cfg.dataset, cfg.data_root, "train")
    s.test = load_split(cfg.dataset, cfg.data_root, "test")
    for split, images in (("train", s.train), ("test", s.test)):
        _same_as_planned(f"the {cfg.dataset} {split} data", cfg["data"][split]["fingerprint"], images.fingerprint)
    if "gpu" in cfg:  # a node of another GPU model (a SLURM partition, a dask worker) computes other floats
        _same_as_planned("the GPU", cfg["gpu"], torch.cuda.get_device_name(s.device))
    s.few = sample_fewshot(s.train.labels.numpy(), s.spec.num_classes, cfg.dataset, cfg.num, cfg.balanced,
                           cfg.imbalance_ratio, cfg.seed)
    return s


def _same_as_planned(what: str, planned: Any, now: Any) -> None:
    """A record is a function of its key: the data and teacher a cell runs on must be the ones its key was
    computed from (a file replaced between planning and running, e.g. a teacher still training, would
    otherwise give a record under the old identity)."""
    if planned != now:
        raise UserError(f"{what} is not what the sweep was planned with ({str(planned)[:24]} planned, "
                        f"{str(now)[:24]} here; changed since, or another machine): rerun the sweep where its "
                        "cells run, so they are keyed on what they run on")


def _stage_teacher(s: RunState) -> RunState:
    """Load (or train once and cache) the teacher; the few-sample images in its normalisation."""
    s.teacher = get_teacher(s.cfg, s.device, s.log)
    if s.cfg["teacher"]["kind"] == "file":
        _same_as_planned(f"the teacher file {s.cfg['teacher']['path']}", s.cfg["teacher"]["sha256"],
                         s.teacher.identity["sha256"])
    s.norm = Normalizer(s.teacher.normalization, s.device)
    s.few_x = s.norm(s.train.images[torch.as_tensor(s.few.indices)])
    s.few_y = s.train.labels[torch.as_tensor(s.few.indices)].to(s.device)
    return s


def _stage_auxiliary(s: RunState) -> RunState:
    """The auxiliary (OOD) set with labels from Gamma (Eq. 4), for the variants that use OOD data."""
    if s.variant.uses_ood:
        s.aux, s.oe_record = _auxiliary(s.cfg, s.train, s.few, s.norm, s.device)
    return s


def _stage_compress(s: RunState) -> RunState:
    """The method's ``build_student`` + ``compress`` on the (method, OE-in-compression, seed) stream,
    computed once per compression identity and shared (:mod:`oefsmc.compressed_cache`)."""
    cfg, variant, device = s.cfg, s.variant, s.device
    num_classes = s.spec.num_classes
    compress_data = StageData(s.few_x, s.few_y, num_classes)
    if variant.compress_with_ood:
        oe = cfg.hp["oe"]
        w = importance_class_weights(s.few.class_counts, s.aux["labels"].cpu().numpy(), oe["class_weights"])
        compress_data = StageData(s.few_x, s.few_y, num_classes, s.aux["x"], s.aux["labels"], oe["lambda"],
                                  torch.tensor(w, dtype=torch.float32, device=device), oe["class_weights"])
        s.oe_record["importance_class_weights"] = w.tolist()
    if s.oe_record is not None:  # whether Eqs. 5-6 can act on this method's structure selection at all
        s.oe_record["class_weights_act_on_selection"] = bool(method_class(cfg.method).data_driven_selection)
    seed = compression_seed(cfg.method, variant.compress_with_ood, cfg.seed)
    teacher = s.teacher

    def compress() -> dict:
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed % (2 ** 31))
        method = method_class(cfg.method)(cfg.hp[cfg.method], device, gen)
        t = {}
        t0 = time.perf_counter()
        student = method.build_student(teacher.model.eval(), compress_data)
        t["prune_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        pruned = s.test_eval(student.model)
        t["eval_pruned_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        student, stats = method.compress(teacher.model.eval(), student, compress_data)
        t["compress_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        compressed = s.test_eval(student.model)
        t["eval_compressed_s"] = time.perf_counter() - t0
        return {"student": student, "stats": stats, "pruned_eval": pruned, "compressed_eval": compressed,
                "timings": t}

    t0 = time.perf_counter()
    s.identity = compression_identity(cfg.to_dict(), variant.compress_with_ood)
    s.comp, s.reused = cached_compression(s.identity, compress, device)
    s.timings["compression_stage_s"] = time.perf_counter() - t0
    s.timings.update({k: (0.0 if s.reused else v) for k, v in s.comp["timings"].items()})
    s.student = s.comp["student"]
    return s


def _stage_finetune(s: RunState) -> RunState:
    """The shared fine-tuning stage (variants with one): CE, or CE + eta * weighted OOD CE."""
    s.timings["finetune_s"] = 0.0
    if s.variant.finetune is not None:
        t0 = time.perf_counter()
        oracle = (lambda m: s.test_eval(m)["top1"]) if s.cfg.hp["finetune"]["select"] == "oracle-test" else None
        s.finetune_stats = _finetune(s.student.model, s.cfg, s.variant, s.few, s.few_x, s.few_y, s.aux,
                                     s.spec.num_classes, s.device, s.finetune_probe, oracle)
        s.timings["finetune_s"] = time.perf_counter() - t0
    return s


def _stage_evaluate(s: RunState) -> RunState:
    """The final student's test accuracy (the compressed student's when nothing was fine-tuned)."""
    t0 = time.perf_counter()
    fine_tuned = s.variant.finetune is not None
    s.final = s.test_eval(s.student.model) if (fine_tuned and s.evaluate_final) else s.comp["compressed_eval"]
    s.timings["eval_s"] = time.perf_counter() - t0
    return s


def _stage_measure(s: RunState) -> RunState:
    """The teacher's test accuracy and the parameters and MACs of student and teacher."""
    s.teacher_eval = teacher_accuracy(s.cfg, s.teacher, s.device, s.cfg.eval_precision)
    example = s.few_x[:1]
    params, macs = count_params_macs(s.student.model, example)
    t_params, t_macs = count_params_macs(s.teacher.model, example)
    s.size = {"params": params, "macs": macs, "teacher_params": t_params, "teacher_macs": t_macs}
    return s


class Stage(NamedTuple):
    """One named, timed step of :func:`run_config`: ``run(state) -> state``."""

    name: str
    run: Callable[[RunState], RunState]


#: The stages of a run, in order (their seconds: ``record["timings"]["stages"]``).
STAGES: tuple[Stage, ...] = (
    Stage("data", _stage_data), Stage("teacher", _stage_teacher), Stage("auxiliary", _stage_auxiliary),
    Stage("compress", _stage_compress), Stage("finetune", _stage_finetune), Stage("evaluate", _stage_evaluate),
    Stage("measure", _stage_measure),
)


def record(s: RunState) -> dict:
    """The record of a finished run (README "Records")."""
    cfg, comp, final, size, student = s.cfg, s.comp, s.final, s.size, s.student
    precision = cfg.eval_precision
    seed = cfg.seed
    params, macs, t_params, t_macs = size["params"], size["macs"], size["teacher_params"], size["teacher_macs"]
    # the timings in their historical order (data_teacher_s first), then run_config's total and stages
    timings = {"data_teacher_s": s.stage_seconds["data"] + s.stage_seconds["teacher"], **s.timings}
    rec = {
        "config": cfg.to_dict(),
        "seed": seed,
        "metrics": {"top1": final["top1"], "top1_pruned": comp["pruned_eval"]["top1"],
                    "top1_compressed": comp["compressed_eval"]["top1"], "teacher_top1": s.teacher_eval["top1"],
                    "per_class": final["per_class"], "head": final["head"], "medium": final["medium"],
                    "tail": final["tail"], "teacher_per_class": s.teacher_eval["per_class"],
                    "compressed_per_class": comp["compressed_eval"]["per_class"], "eval_precision": precision},
        "model": {"params": params, "macs": macs, "teacher_params": t_params, "teacher_macs": t_macs,
                  "params_reduction": 1 - params / t_params, "macs_reduction": 1 - macs / t_macs,
                  "scheme": to_jsonable(student.scheme), "dropped_blocks": list(student.dropped_blocks),
                  "kept_channels": {k: int(len(v)) for k, v in student.kept.items()}},
        "fewshot": {"class_counts": s.few.class_counts, "indices_sha256": _sha(s.few.indices),
                    "seed_key": s.few.seed_key},
        "teacher": {**cfg.teacher, "normalization": s.teacher.normalization},
        "oe": s.oe_record,
        "compression": {"key": compression_key(s.identity), "reused": s.reused,
                        "seed": compression_seed(cfg.method, s.variant.compress_with_ood, seed),
                        "original_timings": comp["timings"]},
        "stats": {"compress": to_jsonable(comp["stats"]), "finetune": to_jsonable(s.finetune_stats)},
        "timings": timings,
        "env": environment(s.device),
    }
    if s.finetune_stats and "diagnostic" in s.finetune_stats:
        rec["diagnostic"] = s.finetune_stats["diagnostic"]
    if not s.evaluate_final and s.variant.finetune is not None:
        rec["metrics"] = {k: v for k, v in rec["metrics"].items() if k not in ("top1", "per_class", "head",
                                                                                    "medium", "tail")}
    return rec


def _auxiliary(cfg: ResolvedConfig, train, few, norm: Normalizer, device) -> tuple[dict, dict]:
    """The auxiliary set with labels from Gamma (Eq. 4) -- independent of method and variant."""
    oe = cfg.hp["oe"]
    pool = ood_pool(cfg.dataset, train, oe["ood"], oe["pool_size"], cfg.seed, cfg.data_root)
    gamma_dist = complementary_distribution(few.class_counts)
    aux = auxiliary_set(pool, oe["aux_size"], gamma_dist, few.seed_key)
    gamma = ood_class_weights(gamma_dist)
    labels = torch.as_tensor(aux.labels, device=device)
    k = len(gamma_dist)
    record = {"settings": dict(oe), "variant": cfg.oe,
              "ood_label_distribution": gamma_dist.tolist(), "class_weights": gamma.tolist(),
              "aux_label_histogram": np.bincount(aux.labels, minlength=k).tolist(),
              "aux_size": int(len(aux.labels)), "pool_size": int(len(pool.images)),
              "pool_dropped_duplicates": int(pool.dropped_duplicates),
              "aux_labels_sha256": _sha(aux.labels), "pool_indices_sha256": _sha(pool.source_indices)}
    return {"x": norm(aux.images), "labels": labels, "gamma_dist": gamma_dist,
            "gamma": torch.tensor(gamma, dtype=torch.float32, device=device)}, record


def holdout_split(class_counts: list[int], labels: np.ndarray, fraction: float, seed_key: str) -> np.ndarray:
    """A boolean mask over the few-sample set: True = held out of fine-tuning (monitor ``holdout_loss``).

    Per class with n >= 2 samples, round(fraction * n) of them (at least 1, at most n - 1), drawn with a
    generator seeded by the few-sample set's key; a class with one sample keeps it for training."""
    rng = np.random.default_rng(seed_from("holdout", seed_key, fraction))
    mask = np.zeros(len(labels), dtype=bool)
    for c, n in enumerate(class_counts):
        if n < 2:
            continue
        idx = np.flatnonzero(labels == c)
        k = min(n - 1, max(1, int(round(fraction * n))))
        mask[rng.choice(idx, k, replace=False)] = True
    return mask


def _finetune(model, cfg: ResolvedConfig, variant, few, few_x, few_y, aux, num_classes, device, probe=None,
              oracle=None) -> dict:
    """The shared fine-tuning stage: CE, or CE + eta * weighted OOD CE (Eqs. 8-9), on its own stream."""
    hp = cfg.hp["finetune"]
    gen = torch.Generator().manual_seed(finetune_seed(cfg.method, cfg.seed))
    torch.manual_seed(finetune_seed(cfg.method, cfg.seed) % (2 ** 31))
    use_ood = variant.finetune == "ce+ood"
    holdout, held_out = None, 0
    if hp["monitor"] in ft.HOLDOUT_MONITORS:
        mask = torch.as_tensor(holdout_split(few.class_counts, few_y.cpu().numpy(), hp["holdout"], few.seed_key),
                               device=few_x.device)
        holdout, held_out = (few_x[mask], few_y[mask]), int(mask.sum())
        few_x, few_y = few_x[~mask], few_y[~mask]
    data = StageData(few_x, few_y, num_classes, aux["x"] if use_ood else None, aux["labels"] if use_ood else None)
    oe = cfg.hp.get("oe") or {}
    eta = oe["eta"] if use_ood else 0.0
    gamma = aux["gamma"] if use_ood else None

    def loss_fn(logits_few, y_few, logits_aux, y_aux):
        ce = torch.nn.functional.cross_entropy(logits_few, y_few)
        if logits_aux is None:
            return ce, {"ce": ce.detach()}
        reg = weighted_ce(logits_aux, y_aux, gamma)
        return ce + eta * reg, {"ce": ce.detach(), "ood": reg.detach()}

    aux_labels_fn = None
    if use_ood and oe["labels"] == "per-batch":  # Open-Sampling: redraw every batch
        def aux_labels_fn(idx):
            u = torch.rand(len(idx), generator=gen, dtype=torch.float64)
            return torch.as_tensor(draw_labels(aux["gamma_dist"], u.numpy()), device=device)
    pad = 4 if few_x.shape[-1] >= 32 else 1
    augment = (lambda x: random_crop_flip(x, gen, pad)) if hp["augment"] else None
    stats = ft.finetune(model, data, loss_fn, hp, gen, aux_labels_fn, augment, probe, holdout, oracle)
    stats["held_out_images"] = held_out
    return stats


def _sha(arr) -> str:
    import hashlib
    return hashlib.sha256(np.asarray(arr).astype(np.int64).tobytes()).hexdigest()[:16]

