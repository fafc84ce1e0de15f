"""``python -m benchmark finetune-study``: how the shared fine-tuning stage behaves over its iterations.

A developer study, not a cell: it runs a cell once per OE variant with a probe that scores the student,
at every monitor evaluation, on a *validation split drawn from the training pool* (labelled images outside
the few-sample set, balanced over classes) -- never on the test set.  It prints, per variant, the
early-stopping monitor and the validation accuracy over the iterations, so a reviewer can see whether the
monitor stops where held-out accuracy peaks.  The validation split is extra labelled data that a
few-sample user would not have: it informs the suite's defaults once (docs/REPRODUCTION_NOTES.md,
"Fine-tuning stage") and is never used by a cell's model selection.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from oefsmc.core.finetune import FINETUNE_PARAMS, HOLDOUT_MONITORS, MONITORS, EarlyStopping
from oefsmc.jsonable import json_default_lenient

from .cli import command, emit_json
from .commands import _cell_args, _log, cell_from_args
from .plugins import load_plugins

#: the monitors a curve without held-out images carries
SIMULATED = [m for m in MONITORS if m not in HOLDOUT_MONITORS]


def validation_split(labels: np.ndarray, exclude: np.ndarray, per_class: int, num_classes: int,
                     seed: int) -> np.ndarray:
    """``per_class`` pool indices of every class, none of them in ``exclude`` (the few-sample set)."""
    rng = np.random.default_rng(seed)
    banned = np.zeros(len(labels), dtype=bool)
    banned[np.asarray(exclude, dtype=np.int64)] = True
    out = []
    for c in range(num_classes):
        idx = np.flatnonzero((labels == c) & ~banned)
        if len(idx) < per_class:
            raise ValueError(f"class {c} has only {len(idx)} pool images outside the few-sample set")
        out.append(rng.choice(idx, per_class, replace=False))
    return np.sort(np.concatenate(out))


def study_variant(cell: dict, val_per_class: int) -> dict:
    """Run ``cell`` with a validation probe on its fine-tuning stage; returns the validation curve, the
    values of every registered monitor along it, and where each monitor's early stopping would land.
    Run it with a large ``finetune.patience`` so the curve covers all ``finetune.max_iters``."""
    from oefsmc.core.evaluate import evaluate, resolve_precision
    from oefsmc.data.fewshot import sample_fewshot
    from oefsmc.data.sources import DATASETS, load_split
    from oefsmc.models.teacher import Normalizer
    from oefsmc.pipeline import pick_device, resolve_config, run_config

    load_plugins()
    resolved = resolve_config(cell)
    spec = DATASETS.get(resolved["dataset"])
    train = load_split(resolved["dataset"], resolved["data_root"], "train")
    few = sample_fewshot(train.labels.numpy(), spec.num_classes, resolved["dataset"], resolved["num"],
                         resolved["balanced"], resolved["imbalance_ratio"], resolved["seed"])
    val_idx = torch.as_tensor(validation_split(train.labels.numpy(), few.indices, val_per_class,
                                               spec.num_classes, 12345 + resolved["seed"]))
    device = pick_device(resolved["device"])
    norm = Normalizer(resolved["teacher"]["normalization"], device)
    precision = resolve_precision(resolved.get("eval_precision", "fp32"), device)
    val_x, val_y = train.images[val_idx], train.labels[val_idx]
    curve: list[dict] = []

    def probe(model, iteration: int, monitors: dict) -> None:
        acc = evaluate(model, val_x, val_y, spec.num_classes, 1000, norm, precision)
        curve.append({"iter": iteration, "monitors": monitors, "val_top1": acc["top1"], "val_tail": acc["tail"]})
        shown = "  ".join(f"{k} {v[0]:9.5f}" for k, v in monitors.items())
        _log(f"  {cell['oe']:<8} iter {iteration:>4}  {shown}  val top-1 {acc['top1']:6.2f}")

    record = run_config(resolved, log=_log, finetune_probe=probe)
    hp = resolved["hp"]["finetune"]
    patience = FINETUNE_PARAMS["patience"].value_for(resolved["schedule"])  # the rule cells use, not the study's
    stops = {name: simulate_early_stopping(curve, name, patience, hp["eval_every"], hp["rel_tol"])
             for name in curve[0]["monitors"]}
    return {"variant": cell["oe"], "finetune_hp": hp, "simulated_patience": patience, "curve": curve,
            "early_stopping": stops,
            "val_at_start": curve[0]["val_top1"], "val_at_end": curve[-1]["val_top1"],
            "val_best": max(curve, key=lambda r: r["val_top1"]), "test_top1": record["metrics"]["top1"],
            "test_top1_compressed": record["metrics"]["top1_compressed"]}


def simulate_early_stopping(curve: list[dict], monitor: str, patience: int, every: int,
                            rel_tol: float = 0.0) -> dict:
    """Where :func:`oefsmc.core.finetune.finetune`'s rule (:class:`EarlyStopping`) would stop and which
    point it would restore, had ``monitor`` been the monitor."""
    stopping = EarlyStopping(curve[0]["monitors"][monitor], patience, every, rel_tol)
    stop = curve[0]
    for point in curve[1:]:
        stop = point
        stopping.update(point["monitors"][monitor], point["iter"])
        if stopping.should_stop:
            break
    restored = next(p for p in curve if p["iter"] == stopping.best_iter)
    return {"stopped_at": stop["iter"], "restored_iter": restored["iter"], "val_top1": restored["val_top1"]}


def _add(p: argparse.ArgumentParser) -> None:
    _cell_args(p)
    p.add_argument("--variants", nargs="+", default=["ft-only", "full"],
                   help="OE variants to study (each must have a fine-tuning stage)")
    p.add_argument("--val-per-class", type=int, default=200, help="validation images per class from the pool")
    p.add_argument("--out", default=None, help="write the curves as JSON here")


def _run(args) -> int:
    from oefsmc.errors import UserError
    from oefsmc.oe.variants import VARIANTS
    for v in args.variants:
        if VARIANTS.get(v).finetune is None:
            raise UserError(f"--variants {v}: that variant has no fine-tuning stage; use ft-only, full, "
                            f"no-comp or no-ft")
    results = []
    for v in args.variants:
        args.oe = v
        results.append(study_variant(cell_from_args(args), args.val_per_class))
    print(f"{'variant':<8} {'val@0':>7} {'val@end':>8} {'best val (iter)':>16}  "
          + "  ".join(f"{m + ' (kept)':>18}" for m in SIMULATED))
    for r in results:
        best = r["val_best"]
        kept = [r["early_stopping"][m] for m in SIMULATED]
        stops = "  ".join(f"{k['val_top1']:11.2f} ({k['restored_iter']:>4})" for k in kept)
        print(f"{r['variant']:<8} {r['val_at_start']:7.2f} {r['val_at_end']:8.2f} {best['val_top1']:9.2f} "
              f"({best['iter']:>4})  {stops}")
    from oefsmc.envinfo import environment
    from oefsmc.pipeline import pick_device
    out = {"argv": sys.argv[1:], "environment": environment(pick_device(args.device)), "results": results}
    if args.out:
        from oefsmc.atomic import atomic_write
        atomic_write(Path(args.out), json.dumps(out, indent=1, default=json_default_lenient))
    if args.json:
        emit_json(out)
    return 0


command("finetune-study", "developer study: fine-tuning monitor vs accuracy on a validation split of the "
                          "training pool (never the test set)")((_add, _run))
