"""One cell, end to end: data -> teacher -> auxiliary -> compress -> (fine-tune) -> evaluate -> measure -> record.

The sweep (``benchmark.sweep``) calls two functions:
- :func:`resolve_config` (cheap): the cell plus every resolved hyperparameter and the identities of the
  data, the teacher and the OOD source -- what the cache key hashes (a plain dict; :func:`resolve_cell`
  gives the same as a typed, read-only :class:`~oefsmc.config.ResolvedConfig`);
- :func:`run_config` (expensive): runs the :data:`STAGES` (named, each timed) and returns the record.
The OE-FSMC add-on enters only here and only through data: the compression stage's
:class:`~oefsmc.core.stage_data.StageData` carries the auxiliary set (Eq. 7 weighting, Eqs. 5-6 class
weights) when the variant says so, and the fine-tuning stage's loss is CE or CE + eta * weighted OOD CE
(Eqs. 8-9).  Methods never branch on OE.  The methods themselves are plug-ins: this module looks them up
in :data:`~oefsmc.core.method.METHODS` and never imports ``baselines`` (entry points call
:func:`benchmark.plugins.load_plugins`).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from . import data as _data  # noqa: F401  (registers datasets)
from .compressed_cache import (
    cached_compression,
    compression_identity,
    compression_key,
    compression_seed,
    finetune_seed,
)
from .config import Cell, ResolvedConfig
from .core import finetune as ft
from .core.augment import random_crop_flip
from .core.evaluate import evaluate, resolve_precision
from .core.losses import weighted_ce
from .core.method import METHODS
from .core.params import check_all_used, resolve
from .core.prune import count_params_macs
from .core.stage_data import StageData
from .data.fewshot import class_counts, sample_fewshot, seed_from
from .data.ood import ood_pool, parse_source
from .data.sources import DATASETS, load_split
from .envinfo import environment
from .errors import UserError
from .jsonable import to_jsonable
from .models import ARCHS
from .models.teacher import Normalizer
from .oe.auxiliary import auxiliary_set, draw_labels
from .oe.complementary import (
    complementary_distribution,
    importance_class_weights,
    ood_class_weights,
)
from .oe.params import OE_PARAMS
from .oe.variants import VARIANTS
from .schema import RESULTS_SCHEMA_VERSION
from .teacher_store import (
    data_identity,
    get_teacher,
    pick_device,
    resolve_teacher,
    teacher_accuracy,
)

#: Intra-op threads of one cell, on every path (run, sweep --jobs 1 or N): results must not depend on how
#: a cell was scheduled (thread count changes CPU reductions); use --jobs to fill the cores.
CELL_THREADS = 1
DEFAULT_OOD = {"cifar10": "cifar100", "cifar100": "cifar10", "digits": "demo-patches", "imagenet": "svhn"}


class NotApplicable(UserError):
    """The method does not apply to this architecture (e.g. a block-dropping method on a net without blocks)."""


def method_class(name: str) -> type:
    """The registered method ``name``.  The core never imports the methods (``baselines``, a plug-in
    package): an entry point registers them first (:func:`benchmark.plugins.load_plugins`)."""
    if not METHODS.names():
        raise UserError("no methods registered: call benchmark.plugins.load_plugins() (or import baselines)")
    return METHODS.get(name)


# ------------------------------------------------------------------------------------------- resolution
def resolve_config(cell: Mapping[str, Any]) -> dict:
    """Fully resolved, JSON-serialisable config of a cell dict (no training; cheap).

    The plain dict the cache key hashes and a record's ``config`` holds; unknown cell keys are ignored,
    as they always were.  :func:`resolve_cell` is the typed form (``resolve_cell(c).to_dict()`` is this)."""
    return _resolve(cell if isinstance(cell, Cell) else Cell.from_dict(cell, strict=False))


def resolve_cell(cell: Cell | Mapping[str, Any]) -> ResolvedConfig:
    """The typed resolved config of a :class:`~oefsmc.config.Cell` (or a strict cell dict)."""
    return ResolvedConfig.from_dict(_resolve(cell if isinstance(cell, Cell) else Cell.from_dict(cell)))


def _resolve(cell: Cell) -> dict:
    spec = DATASETS.get(cell.dataset)
    arch = ARCHS.get(cell.arch)
    method_cls = method_class(cell.method)
    variant = VARIANTS.get(cell.oe)
    schedule = cell.schedule
    if not method_cls.is_applicable(arch.family):
        raise NotApplicable(f"{cell.method} does not apply to {cell.arch}: {method_cls.not_applicable_reason}")
    num = int(cell.num)
    balanced = bool(cell.balanced)
    ratio = 1.0 if balanced else float(cell.imbalance_ratio)
    counts = class_counts(num, spec.num_classes, balanced, ratio)
    overrides = {k: str(v) for k, v in cell.overrides.items()}
    check_all_used(overrides, METHODS.names() + ["finetune", "oe", "teacher"])
    for name in overrides:
        if name.split(".", 1)[0] in METHODS.names() and name.split(".", 1)[0] != cell.method:
            raise UserError(f"--set {name}: this cell runs method {cell.method}, not {name.split('.')[0]}")
    hp: dict[str, Any] = {cell.method: resolve(cell.method, method_cls.params, schedule, overrides)}
    ft_used = variant.finetune is not None
    hp["finetune"] = _finetune_hp(schedule, overrides) if ft_used else None
    if not ft_used and any(k.startswith("finetune.") for k in overrides):
        raise UserError(f"--set finetune.*: variant {variant.name} has no fine-tuning stage")
    ood_info = None
    if variant.uses_ood:
        oe = resolve("oe", OE_PARAMS, schedule, overrides)
        oe["ood"] = oe["ood"] or cell.ood or DEFAULT_OOD.get(cell.dataset, "")
        parse_source(oe["ood"])
        oe["aux_size"] = oe["aux_size"] or num
        oe["pool_size"] = oe["pool_size"] or max(500, oe["aux_size"])
        if not variant.compress_with_ood:  # lambda and the class weights act only in compression
            oe.pop("lambda"), oe.pop("class_weights")
        if variant.finetune != "ce+ood":  # eta and the label mode act only in fine-tuning
            oe.pop("eta"), oe.pop("labels")
        hp["oe"] = oe
        ood_info = {"source": oe["ood"], "identity": _ood_identity(oe["ood"], cell.data_root)}
    elif any(k.startswith("oe.") for k in overrides):
        raise UserError(f"--set oe.*: variant {variant.name} uses no OOD data; use --oe full|no-comp|no-ft")
    data_root = str(Path(cell.data_root).resolve()) if cell.data_root else None
    device = pick_device(cell.device)
    diagnostic = (hp["finetune"] or {}).get("select") == "oracle-test"
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "dataset": cell.dataset, "arch": cell.arch, "arch_family": arch.family,
        "num": num, "balanced": balanced, "imbalance_ratio": ratio, "class_counts": counts,
        "method": cell.method, "oe": variant.name, "seed": int(cell.seed), "schedule": schedule,
        "overrides": dict(sorted(overrides.items())), "hp": hp,
        "data": data_identity(cell.dataset, data_root), "data_root": data_root,
        "teacher": resolve_teacher(cell.dataset, cell.arch, data_root, cell.teacher,
                                   cell.teacher_normalization, _teacher_overrides(cell, overrides)),
        "ood": ood_info, "device": device.type,
        "eval_precision": resolve_precision(cell.eval_precision, device),
        "threads": CELL_THREADS,
        **({"diagnostic": ft.DIAGNOSTIC_TEST_SELECTION} if diagnostic else {}),
    }


def _finetune_hp(schedule: str, overrides: dict) -> dict:
    """The fine-tuning stage's settings; ``holdout`` only where the monitor uses it (so it cannot split keys)."""
    hp = resolve("finetune", ft.FINETUNE_PARAMS, schedule, overrides)
    if hp["monitor"] not in ft.HOLDOUT_MONITORS:
        if "finetune.holdout" in overrides:
            raise UserError("--set finetune.holdout: acts only with --set finetune.monitor=holdout_loss")
        hp.pop("holdout")
    elif not 0 < hp["holdout"] < 1:  # the Param's range admits 0 and 1; a held-out fraction cannot be either
        raise UserError(f"--set finetune.holdout={hp['holdout']}: must be a fraction strictly between 0 and 1")
    return hp


def _teacher_overrides(cell: Cell, overrides: dict) -> dict:
    """``teacher.*`` overrides shorten the recipe of a suite-trained teacher; with ``--teacher PATH`` they
    cannot act and are an error."""
    mine = {k: v for k, v in overrides.items() if k.startswith("teacher.")}
    if mine and cell.teacher:
        raise UserError(f"--set {next(iter(mine))}: this cell uses the teacher file {cell.teacher}; "
                        "teacher.* settings apply only to teachers the suite trains")
    return mine


def _ood_identity(source: str, root: str | None) -> str:
    kind, arg = parse_source(source)
    if arg:  # identity = name and size, not the location, so records stay valid at another path
        p = Path(arg)
        size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else (
            p.stat().st_size if p.exists() else -1)
        return f"{kind}:{p.name}|{size}"
    if kind in ("cifar10", "cifar100") and root:
        return f"{kind}:" + data_identity(kind, str(Path(root).resolve()))["train"]["fingerprint"]
    return kind


# ------------------------------------------------------------------------------------------------- run
@dataclass
class RunState:
    """What the stages of one run hand on: the resolved config, then each stage's products.

    :data:`STAGES` fill it in order (``data`` sets ``train``/``test``/``few``, ``teacher`` sets
    ``teacher``/``norm``/``few_x``/``few_y``, ...); :func:`_record` turns the final state into the record."""

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


def run_config(resolved: Mapping[str, Any], log=None, finetune_probe=None, evaluate_final: bool = True) -> dict:
    """Run one resolved cell (a :func:`resolve_config` dict or a :class:`~oefsmc.config.ResolvedConfig`)
    and return its record (see README "Records").

    The record is built by the :data:`STAGES` in order, each timed (``timings["stages"]``): data ->
    teacher -> auxiliary set (OE variants) -> compression (the method's ``build_student`` + ``compress``,
    with common random numbers and shared through :mod:`oefsmc.compressed_cache`) -> the optional shared
    fine-tuning stage -> evaluation -> measurement (teacher accuracy, parameters, MACs).  The cell runs on
    ``resolved["threads"]`` intra-op threads whatever process runs it.  ``finetune_probe`` is passed to
    :func:`oefsmc.core.finetune.finetune` (observation only; used by ``python -m benchmark finetune-study``,
    never by the sweep), which also skips the final test evaluation (``evaluate_final=False``).
    """
    cfg = ResolvedConfig.from_dict(resolved)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(int(cfg.get("threads", CELL_THREADS)))
    try:
        state = RunState(cfg, log, finetune_probe, evaluate_final)
        t_start = time.perf_counter()
        for stage in STAGES:
            t0 = time.perf_counter()
            state = stage.run(state)
            state.stage_seconds[stage.name] = time.perf_counter() - t0
        state.timings["total_s"] = time.perf_counter() - t_start
        state.timings["stages"] = dict(state.stage_seconds)
        return _record(state)
    finally:
        torch.set_num_threads(threads_before)


def _stage_data(s: RunState) -> RunState:
    """The splits and the few-sample set, which depends only on (dataset, Num, balanced, ratio, seed)."""
    cfg = s.cfg
    method_class(cfg.method)  # fail before any work when no methods are registered
    s.device = pick_device(cfg.device)
    s.spec = DATASETS.get(cfg.dataset)
    s.variant = VARIANTS.get(cfg.oe)
    s.train = load_split(cfg.dataset, cfg.data_root, "train")
    s.test = load_split(cfg.dataset, cfg.data_root, "test")
    s.few = sample_fewshot(s.train.labels.numpy(), s.spec.num_classes, cfg.dataset, cfg.num, cfg.balanced,
                           cfg.imbalance_ratio, cfg.seed)
    return s


def _stage_teacher(s: RunState) -> RunState:
    """Load (or train once and cache) the teacher; the few-sample images in its normalisation."""
    s.teacher = get_teacher(s.cfg, s.device, s.log)
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


def _record(s: RunState) -> dict:
    """The record of a finished run (README "Records")."""
    cfg, comp, final, size, student = s.cfg, s.comp, s.final, s.size, s.student
    precision = cfg.eval_precision
    seed = cfg.seed
    params, macs, t_params, t_macs = size["params"], size["macs"], size["teacher_params"], size["teacher_macs"]
    # the timings in their historical order (data_teacher_s first), then run_config's total and stages
    timings = {"data_teacher_s": s.stage_seconds["data"] + s.stage_seconds["teacher"], **s.timings}
    record = {
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
        record["diagnostic"] = s.finetune_stats["diagnostic"]
    if not s.evaluate_final and s.variant.finetune is not None:
        record["metrics"] = {k: v for k, v in record["metrics"].items() if k not in ("top1", "per_class", "head",
                                                                                    "medium", "tail")}
    return record


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

