"""One cell, end to end: data -> teacher -> student -> compress -> (fine-tune) -> evaluate -> record.

The sweep (``benchmark.sweep``) calls two functions:
- :func:`resolve_config` (cheap): the cell plus every resolved hyperparameter and the identities of the
  data, the teacher and the OOD source -- what the cache key hashes;
- :func:`run_config` (expensive): runs the stages and returns the record.
The OE-FSMC add-on enters only here and only through data: the compression stage's
:class:`~oefsmc.core.stage_data.StageData` carries the auxiliary set (Eq. 7 weighting, Eqs. 5-6 class
weights) when the variant says so, and the fine-tuning stage's loss is CE or CE + eta * weighted OOD CE
(Eqs. 8-9).  Methods never branch on OE.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from . import data as _data  # noqa: F401  (registers datasets)
from .core import finetune as ft
from .core.augment import random_crop_flip
from .core.evaluate import evaluate, resolve_precision
from .core.losses import weighted_ce
from .core.method import METHODS
from .core.params import check_all_used, resolve
from .core.prune import count_params_macs
from .core.stage_data import StageData
from .compressed_cache import (cached_compression, compression_identity, compression_key, compression_seed,
                               finetune_seed)
from .data.fewshot import sample_fewshot, seed_from, class_counts
from .data.ood import ood_pool, parse_source
from .data.sources import DATASETS, load_split
from .envinfo import environment
from .jsonable import to_jsonable
from .schema import RESULTS_SCHEMA_VERSION
from .errors import UserError
from .models import ARCHS
from .models.teacher import Normalizer
from .teacher_store import data_identity, get_teacher, pick_device, resolve_teacher, teacher_accuracy  # noqa: F401
from .oe.auxiliary import auxiliary_set, draw_labels
from .oe.complementary import complementary_distribution, importance_class_weights, ood_class_weights
from .oe.params import OE_PARAMS
from .oe.variants import VARIANTS

#: Intra-op threads of one cell, on every path (run, sweep --jobs 1 or N): results must not depend on how
#: a cell was scheduled (thread count changes CPU reductions); use --jobs to fill the cores.
CELL_THREADS = 1
DEFAULT_OOD = {"cifar10": "cifar100", "cifar100": "cifar10", "digits": "demo-patches", "imagenet": "svhn"}


class NotApplicable(UserError):
    """The method does not apply to this architecture (e.g. a block-dropping method on a net without blocks)."""


def _import_methods() -> None:
    import baselines  # noqa: F401  (registers cd, fskd, mir, practise)


# ------------------------------------------------------------------------------------------- resolution
def resolve_config(cell: dict) -> dict:
    """Fully resolved, JSON-serialisable config of a cell (no training; cheap)."""
    _import_methods()
    spec = DATASETS.get(cell["dataset"])
    arch = ARCHS.get(cell["arch"])
    method_cls = METHODS.get(cell["method"])
    variant = VARIANTS.get(cell.get("oe", "none"))
    schedule = cell.get("schedule", "official")
    if not method_cls.is_applicable(arch.family):
        raise NotApplicable(f"{cell['method']} does not apply to {cell['arch']}: {method_cls.not_applicable_reason}")
    num = int(cell["num"])
    balanced = bool(cell.get("balanced", False))
    ratio = 1.0 if balanced else float(cell.get("imbalance_ratio", 100.0))
    counts = class_counts(num, spec.num_classes, balanced, ratio)
    overrides = {k: str(v) for k, v in (cell.get("overrides") or {}).items()}
    check_all_used(overrides, METHODS.names() + ["finetune", "oe", "teacher"])
    for name in overrides:
        if name.split(".", 1)[0] in METHODS.names() and name.split(".", 1)[0] != cell["method"]:
            raise UserError(f"--set {name}: this cell runs method {cell['method']}, not {name.split('.')[0]}")
    hp: dict[str, Any] = {cell["method"]: resolve(cell["method"], method_cls.params, schedule, overrides)}
    ft_used = variant.finetune is not None
    hp["finetune"] = _finetune_hp(schedule, overrides) if ft_used else None
    if not ft_used and any(k.startswith("finetune.") for k in overrides):
        raise UserError(f"--set finetune.*: variant {variant.name} has no fine-tuning stage")
    ood_info = None
    if variant.uses_ood:
        oe = resolve("oe", OE_PARAMS, schedule, overrides)
        oe["ood"] = oe["ood"] or cell.get("ood") or DEFAULT_OOD.get(cell["dataset"], "")
        parse_source(oe["ood"])
        oe["aux_size"] = oe["aux_size"] or num
        oe["pool_size"] = oe["pool_size"] or max(500, oe["aux_size"])
        if not variant.compress_with_ood:  # lambda and the class weights act only in compression
            oe.pop("lambda"), oe.pop("class_weights")
        if variant.finetune != "ce+ood":  # eta and the label mode act only in fine-tuning
            oe.pop("eta"), oe.pop("labels")
        hp["oe"] = oe
        ood_info = {"source": oe["ood"], "identity": _ood_identity(oe["ood"], cell.get("data_root"))}
    elif any(k.startswith("oe.") for k in overrides):
        raise UserError(f"--set oe.*: variant {variant.name} uses no OOD data; use --oe full|no-comp|no-ft")
    data_root = cell.get("data_root")
    data_root = str(Path(data_root).resolve()) if data_root else None
    device = pick_device(cell.get("device", "auto"))
    diagnostic = (hp["finetune"] or {}).get("select") == "oracle-test"
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "dataset": cell["dataset"], "arch": cell["arch"], "arch_family": arch.family,
        "num": num, "balanced": balanced, "imbalance_ratio": ratio, "class_counts": counts,
        "method": cell["method"], "oe": variant.name, "seed": int(cell.get("seed", 0)), "schedule": schedule,
        "overrides": dict(sorted(overrides.items())), "hp": hp,
        "data": data_identity(cell["dataset"], data_root), "data_root": data_root,
        "teacher": resolve_teacher(cell["dataset"], cell["arch"], data_root, cell.get("teacher"),
                                   cell.get("teacher_normalization", "auto"), _teacher_overrides(cell, overrides)),
        "ood": ood_info, "device": device.type,
        "eval_precision": resolve_precision(cell.get("eval_precision", "auto"), device),
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


def _teacher_overrides(cell: dict, overrides: dict) -> dict:
    """``teacher.*`` overrides shorten the recipe of a suite-trained teacher; with ``--teacher PATH`` they
    cannot act and are an error."""
    mine = {k: v for k, v in overrides.items() if k.startswith("teacher.")}
    if mine and cell.get("teacher"):
        raise UserError(f"--set {next(iter(mine))}: this cell uses the teacher file {cell['teacher']}; "
                        "teacher.* settings apply only to teachers the suite trains")
    return mine


def _ood_identity(source: str, root: Optional[str]) -> str:
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
def run_config(resolved: dict, log=None, finetune_probe=None, evaluate_final: bool = True) -> dict:
    """Run one resolved cell and return its record (see README "Records").

    Stages (each timed): data and teacher -> auxiliary set (OE variants) -> compression (the method's
    ``build_student`` + ``compress``, with common random numbers and shared through
    :mod:`oefsmc.compressed_cache`) -> the optional shared fine-tuning stage -> evaluation.  The cell runs
    on ``resolved["threads"]`` intra-op threads whatever process runs it.  ``finetune_probe`` is passed to
    :func:`oefsmc.core.finetune.finetune` (observation only; used by ``python -m benchmark finetune-study``,
    never by the sweep), which also skips the final test evaluation (``evaluate_final=False``).
    """
    threads_before = torch.get_num_threads()
    torch.set_num_threads(int(resolved.get("threads", CELL_THREADS)))
    try:
        return _run_stages(resolved, log, finetune_probe, evaluate_final)
    finally:
        torch.set_num_threads(threads_before)


def _run_stages(resolved: dict, log, finetune_probe, evaluate_final: bool) -> dict:
    _import_methods()
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    device = pick_device(resolved["device"])
    spec = DATASETS.get(resolved["dataset"])
    variant = VARIANTS.get(resolved["oe"])
    method_name, seed = resolved["method"], resolved["seed"]
    precision = resolved["eval_precision"]

    # data: the few-sample set depends only on (dataset, Num, balanced, ratio, seed)
    t0 = time.perf_counter()
    train = load_split(resolved["dataset"], resolved["data_root"], "train")
    test = load_split(resolved["dataset"], resolved["data_root"], "test")
    few = sample_fewshot(train.labels.numpy(), spec.num_classes, resolved["dataset"], resolved["num"],
                         resolved["balanced"], resolved["imbalance_ratio"], seed)
    teacher = get_teacher(resolved, device, log)
    norm = Normalizer(teacher.normalization, device)
    few_x = norm(train.images[torch.as_tensor(few.indices)])
    few_y = train.labels[torch.as_tensor(few.indices)].to(device)
    timings["data_teacher_s"] = time.perf_counter() - t0

    def test_eval(model):
        return evaluate(model, test.images, test.labels, spec.num_classes, 1000, norm, precision)

    oe_record, aux = None, None
    if variant.uses_ood:
        aux, oe_record = _auxiliary(resolved, train, few, norm, device)

    compress_data = StageData(few_x, few_y, spec.num_classes)
    if variant.compress_with_ood:
        oe = resolved["hp"]["oe"]
        w = importance_class_weights(few.class_counts, aux["labels"].cpu().numpy(), oe["class_weights"])
        compress_data = StageData(few_x, few_y, spec.num_classes, aux["x"], aux["labels"], oe["lambda"],
                                  torch.tensor(w, dtype=torch.float32, device=device), oe["class_weights"])
        oe_record["importance_class_weights"] = w.tolist()
    if oe_record is not None:  # whether Eqs. 5-6 can act on this method's structure selection at all
        oe_record["class_weights_act_on_selection"] = bool(METHODS.get(method_name).data_driven_selection)

    def compress() -> dict:  # the method's own stages, on the (method, OE-in-compression, seed) stream
        gen = torch.Generator().manual_seed(compression_seed(method_name, variant.compress_with_ood, seed))
        torch.manual_seed(compression_seed(method_name, variant.compress_with_ood, seed) % (2 ** 31))
        method = METHODS.get(method_name)(resolved["hp"][method_name], device, gen)
        t = {}
        t0 = time.perf_counter()
        student = method.build_student(teacher.model.eval(), compress_data)
        t["prune_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        pruned = test_eval(student.model)
        t["eval_pruned_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        student, stats = method.compress(teacher.model.eval(), student, compress_data)
        t["compress_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        compressed = test_eval(student.model)
        t["eval_compressed_s"] = time.perf_counter() - t0
        return {"student": student, "stats": stats, "pruned_eval": pruned, "compressed_eval": compressed,
                "timings": t}

    t0 = time.perf_counter()
    identity = compression_identity(resolved, variant.compress_with_ood)
    comp, reused = cached_compression(identity, compress, device)
    timings["compression_stage_s"] = time.perf_counter() - t0
    timings.update({k: (0.0 if reused else v) for k, v in comp["timings"].items()})
    student = comp["student"]

    finetune_stats = None
    timings["finetune_s"] = 0.0
    if variant.finetune is not None:
        t0 = time.perf_counter()
        oracle = (lambda m: test_eval(m)["top1"]) if resolved["hp"]["finetune"]["select"] == "oracle-test" else None
        finetune_stats = _finetune(student.model, resolved, variant, few, few_x, few_y, aux, spec.num_classes,
                                   device, finetune_probe, oracle)
        timings["finetune_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    final = test_eval(student.model) if (variant.finetune is not None and evaluate_final) else comp["compressed_eval"]
    timings["eval_s"] = time.perf_counter() - t0
    teacher_eval = teacher_accuracy(resolved, teacher, device, precision)
    example = few_x[:1]
    params, macs = count_params_macs(student.model, example)
    t_params, t_macs = count_params_macs(teacher.model, example)
    timings["total_s"] = time.perf_counter() - t_start

    record = {
        "config": resolved,
        "seed": seed,
        "metrics": {"top1": final["top1"], "top1_pruned": comp["pruned_eval"]["top1"],
                    "top1_compressed": comp["compressed_eval"]["top1"], "teacher_top1": teacher_eval["top1"],
                    "per_class": final["per_class"], "head": final["head"], "medium": final["medium"],
                    "tail": final["tail"], "teacher_per_class": teacher_eval["per_class"],
                    "compressed_per_class": comp["compressed_eval"]["per_class"], "eval_precision": precision},
        "model": {"params": params, "macs": macs, "teacher_params": t_params, "teacher_macs": t_macs,
                  "params_reduction": 1 - params / t_params, "macs_reduction": 1 - macs / t_macs,
                  "scheme": to_jsonable(student.scheme), "dropped_blocks": list(student.dropped_blocks),
                  "kept_channels": {k: int(len(v)) for k, v in student.kept.items()}},
        "fewshot": {"class_counts": few.class_counts, "indices_sha256": _sha(few.indices), "seed_key": few.seed_key},
        "teacher": {**resolved["teacher"], "normalization": teacher.normalization},
        "oe": oe_record,
        "compression": {"key": compression_key(identity), "reused": reused,
                        "seed": compression_seed(method_name, variant.compress_with_ood, seed),
                        "original_timings": comp["timings"]},
        "stats": {"compress": to_jsonable(comp["stats"]), "finetune": to_jsonable(finetune_stats)},
        "timings": timings,
        "env": environment(device),
    }
    if finetune_stats and "diagnostic" in finetune_stats:
        record["diagnostic"] = finetune_stats["diagnostic"]
    if not evaluate_final and variant.finetune is not None:
        record["metrics"] = {k: v for k, v in record["metrics"].items() if k not in ("top1", "per_class", "head",
                                                                                    "medium", "tail")}
    return record


def _auxiliary(resolved: dict, train, few, norm: Normalizer, device) -> tuple[dict, dict]:
    """The auxiliary set with labels from Gamma (Eq. 4) -- independent of method and variant."""
    oe = resolved["hp"]["oe"]
    pool = ood_pool(resolved["dataset"], train, oe["ood"], oe["pool_size"], resolved["seed"],
                    resolved["data_root"])
    gamma_dist = complementary_distribution(few.class_counts)
    aux = auxiliary_set(pool, oe["aux_size"], gamma_dist, few.seed_key)
    gamma = ood_class_weights(gamma_dist)
    labels = torch.as_tensor(aux.labels, device=device)
    k = len(gamma_dist)
    record = {"settings": dict(oe), "variant": resolved["oe"],
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


def _finetune(model, resolved, variant, few, few_x, few_y, aux, num_classes, device, probe=None,
              oracle=None) -> dict:
    """The shared fine-tuning stage: CE, or CE + eta * weighted OOD CE (Eqs. 8-9), on its own stream."""
    hp = resolved["hp"]["finetune"]
    gen = torch.Generator().manual_seed(finetune_seed(resolved["method"], resolved["seed"]))
    torch.manual_seed(finetune_seed(resolved["method"], resolved["seed"]) % (2 ** 31))
    use_ood = variant.finetune == "ce+ood"
    holdout, held_out = None, 0
    if hp["monitor"] in ft.HOLDOUT_MONITORS:
        mask = torch.as_tensor(holdout_split(few.class_counts, few_y.cpu().numpy(), hp["holdout"], few.seed_key),
                               device=few_x.device)
        holdout, held_out = (few_x[mask], few_y[mask]), int(mask.sum())
        few_x, few_y = few_x[~mask], few_y[~mask]
    data = StageData(few_x, few_y, num_classes, aux["x"] if use_ood else None, aux["labels"] if use_ood else None)
    eta = resolved["hp"]["oe"]["eta"] if use_ood else 0.0
    gamma = aux["gamma"] if use_ood else None

    def loss_fn(logits_few, y_few, logits_aux, y_aux):
        ce = torch.nn.functional.cross_entropy(logits_few, y_few)
        if logits_aux is None:
            return ce, {"ce": ce.detach()}
        reg = weighted_ce(logits_aux, y_aux, gamma)
        return ce + eta * reg, {"ce": ce.detach(), "ood": reg.detach()}

    aux_labels_fn = None
    if use_ood and resolved["hp"]["oe"]["labels"] == "per-batch":  # Open-Sampling: redraw every batch
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

