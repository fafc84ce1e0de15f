"""One cell, end to end: data -> teacher -> auxiliary -> compress -> (fine-tune) -> evaluate -> measure -> record.

The sweep (``benchmark.hooks``) calls two functions:
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from . import data as _data  # noqa: F401  (registers datasets)
from .config import Cell, ResolvedConfig
from .core import finetune as ft
from .core.evaluate import resolve_precision
from .core.method import METHODS
from .core.params import check_all_used, resolve
from .data.fewshot import class_counts
from .data.ood import parse_source, path_source_identity
from .data.sources import DATASETS
from .envinfo import cuda_facts
from .errors import UserError
from .models import ARCHS
from .oe.params import OE_PARAMS, with_derived_defaults
from .oe.variants import VARIANTS
from .schema import RESULTS_SCHEMA_VERSION
from .stages import STAGES, RunState, Stage, holdout_split, method_class, record  # noqa: F401  (re-exported)
from .teacher_store import data_identity, get_teacher, pick_device, resolve_teacher, teacher_accuracy  # noqa: F401

#: Intra-op threads of one cell, on every path (run, sweep --jobs 1 or N): results must not depend on how
#: a cell was scheduled (thread count changes CPU reductions); use --jobs to fill the cores.
CELL_THREADS = 1


class NotApplicable(UserError):
    """The method does not apply to this architecture (e.g. a block-dropping method on a net without blocks)."""


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
        oe = with_derived_defaults(resolve("oe", OE_PARAMS, schedule, overrides), num, cell.ood, cell.dataset)
        parse_source(oe["ood"])
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
                                   cell.teacher_normalization, _teacher_overrides(cell, overrides),
                                   device=cell.device),
        "ood": ood_info, "device": device.type,
        # CUDA kernels differ between GPU models (TF32, cuDNN algorithms): the GPU is part of the key
        **({"gpu": cuda_facts().get("name", "unknown")} if device.type == "cuda" else {}),
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
    if arg:  # identity = the content, not the location, so records stay valid at another path
        return path_source_identity(kind, arg)
    if kind in ("cifar10", "cifar100") and root:
        return f"{kind}:" + data_identity(kind, str(Path(root).resolve()))["train"]["fingerprint"]
    return kind


# ------------------------------------------------------------------------------------------------- run
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
    cudnn_before = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if cfg["device"] == "cuda":  # the same cuDNN algorithms every run, whatever else shares the GPU
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        state = RunState(cfg, log, finetune_probe, evaluate_final)
        t_start = time.perf_counter()
        for stage in STAGES:
            t0 = time.perf_counter()
            state = stage.run(state)
            state.stage_seconds[stage.name] = time.perf_counter() - t0
        state.timings["total_s"] = time.perf_counter() - t_start
        state.timings["stages"] = dict(state.stage_seconds)
        return record(state)
    finally:
        torch.set_num_threads(threads_before)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_before
