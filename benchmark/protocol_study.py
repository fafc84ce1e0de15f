"""``python -m benchmark protocol-study``: choose the fine-tuning protocol once, on validation data.

The paper does not state how it fine-tunes (Sec. 5.1: batch 128, lr 5e-4; Sec. 4.3: "early stopping"),
and BatchNorm handling, what is trained, the optimizer and when to stop move the numbers more than the
effect the paper claims.  This study fine-tunes every (method, Num, seed) of the ``cifar10-real`` Table 2
grid under a grid of protocols and scores the student on a *validation split of the training pool*
(labelled images outside the few-sample set; never the test set):

- phase 1: ``finetune.bn`` {train, eval, recal} x ``finetune.optimizer`` {sgd, adam} x ``finetune.params``
  {all, head}, for ``ft-only`` and ``full``;
- phase 2 (``full`` only, around phase 1's best): ``oe.labels`` {fixed, per-batch} x ``oe.eta`` {1, 2.5};
- monitors are simulated on every curve (the run's own early stopping is off; the run ends once every
  simulated monitor has stopped): ``few_loss``, ``train_loss``, ``few_acc`` x relative tolerance
  {0 (absolute 1e-6), 0.01, 0.05}, patience as in the cells.

Every fine-tuning run starts from the one compressed student of its (method, OE compression, Num, seed)
(:mod:`oefsmc.compressed_cache`), so the protocols differ only in fine-tuning.  Each run is one JSON file
under ``--out-dir`` (resumable: existing files are skipped); ``--summarize`` aggregates them into
``summary.md`` / ``summary.csv`` and names the protocol with the best mean validation accuracy over
methods, variants, Num and seeds -- the criterion fixed before the study ran.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path
from typing import Iterator

from oefsmc.axes import METHOD_NAMES
from oefsmc.jsonable import json_default_lenient

from .cli import command, emit_json
from .plugins import load_plugins

PHASE1 = {"finetune.bn": ("train", "eval", "recal"), "finetune.optimizer": ("sgd", "adam"),
          "finetune.params": ("all", "head")}
PHASE1_VARIANTS = ("ft-only", "full")
PHASE2 = {"oe.labels": ("fixed", "per-batch"), "oe.eta": ("1", "2.5")}
SIM_MONITORS = ("few_loss", "train_loss", "few_acc")
SIM_TOLERANCES = (0.0, 0.01, 0.05)


def _log(msg: str) -> None:
    print(f"[protocol-study] {msg}", file=sys.stderr, flush=True)


def protocols(grid: dict) -> list[dict]:
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]


def protocol_id(protocol: dict) -> str:
    return ",".join(f"{k.split('.', 1)[1]}={v}" for k, v in sorted(protocol.items()))


def run_name(method: str, variant: str, num: int, seed: int, protocol: dict) -> str:
    return f"{method}-{variant}-n{num}-s{seed}-{protocol_id(protocol)}".replace("=", "_").replace(",", "-")


class MonitorSimulator:
    """Every (monitor, relative tolerance) early-stopping rule followed along one curve at once."""

    def __init__(self, patience: int, every: int):
        from oefsmc.core.finetune import EarlyStopping
        self._make = lambda first, tol: EarlyStopping(first, patience, every, tol)
        self.rules: dict[tuple[str, float], object] = {}
        self.stopped: dict[tuple[str, float], int] = {}

    def update(self, iteration: int, monitors: dict) -> bool:
        """Feed one evaluation point; True once every rule has stopped."""
        for name in SIM_MONITORS:
            for tol in SIM_TOLERANCES:
                rule_key = (name, tol)
                if rule_key not in self.rules:
                    self.rules[rule_key] = self._make(tuple(monitors[name]), tol)
                    continue
                if rule_key in self.stopped:
                    continue
                rule = self.rules[rule_key]
                rule.update(tuple(monitors[name]), iteration)
                if rule.should_stop:
                    self.stopped[rule_key] = iteration
        return len(self.stopped) == len(SIM_MONITORS) * len(SIM_TOLERANCES)

    def outcome(self, curve: list[dict]) -> dict:
        by_iter = {p["iter"]: p for p in curve}
        out = {}
        for (name, tol), rule in self.rules.items():
            restored = by_iter[rule.best_iter]
            out[f"{name}@{tol:g}"] = {"stopped_at": self.stopped.get((name, tol), curve[-1]["iter"]),
                                      "restored_iter": rule.best_iter, "val_top1": restored["val_top1"],
                                      "val_tail": restored["val_tail"]}
        return out


def study_run(cell: dict, val_per_class: int, max_iters: int) -> dict:
    """Fine-tune one cell with the simulated monitors; returns its validation curve and outcomes."""
    import torch
    from oefsmc.core.evaluate import evaluate
    from oefsmc.data.fewshot import sample_fewshot
    from oefsmc.data.sources import DATASETS, load_split
    from oefsmc.models.teacher import Normalizer
    from oefsmc.pipeline import pick_device, resolve_config, run_config

    from .finetune_study import validation_split
    load_plugins()
    cell = dict(cell, overrides={**cell["overrides"], "finetune.patience": str(max_iters),
                                 "finetune.max_iters": str(max_iters)})
    resolved = resolve_config(cell)
    spec = DATASETS.get(resolved["dataset"])
    train = load_split(resolved["dataset"], resolved["data_root"], "train")
    few = sample_fewshot(train.labels.numpy(), spec.num_classes, resolved["dataset"], resolved["num"],
                         resolved["balanced"], resolved["imbalance_ratio"], resolved["seed"])
    val_idx = torch.as_tensor(validation_split(train.labels.numpy(), few.indices, val_per_class, spec.num_classes,
                                               12345 + resolved["seed"]))
    device = pick_device(resolved["device"])
    norm = Normalizer(resolved["teacher"]["normalization"], device)
    val_x, val_y = train.images[val_idx], train.labels[val_idx]
    from oefsmc.core.finetune import FINETUNE_PARAMS
    sim = MonitorSimulator(FINETUNE_PARAMS["patience"].value_for(resolved["schedule"]),
                           resolved["hp"]["finetune"]["eval_every"])
    curve: list[dict] = []

    def probe(model, iteration: int, monitors: dict) -> bool:
        acc = evaluate(model, val_x, val_y, spec.num_classes, 1000, norm, resolved["eval_precision"])
        curve.append({"iter": iteration, "val_top1": acc["top1"], "val_tail": acc["tail"],
                      "monitors": {k: list(v) for k, v in monitors.items() if k in SIM_MONITORS}})
        return sim.update(iteration, monitors)

    t0 = time.perf_counter()
    record = run_config(resolved, finetune_probe=probe, evaluate_final=False)
    return {"cell": {k: v for k, v in cell.items() if k not in ("data_root", "teacher")},
            "finetune_hp": resolved["hp"]["finetune"], "oe_hp": resolved["hp"].get("oe"),
            "val_per_class": val_per_class, "curve": curve, "outcomes": sim.outcome(curve),
            "val_at_start": curve[0]["val_top1"], "compression": record["compression"],
            "iters": record["stats"]["finetune"]["iters"], "seconds": round(time.perf_counter() - t0, 2)}


def planned_runs(args) -> Iterator[tuple[str, dict]]:
    """(file name, cell) of every run of the phase, seeds outermost (partial studies cover every protocol)."""
    from .grids import make_cell
    from .profiles import get_profile
    profile = get_profile(args.profile, args.data_root, args.teacher)
    if args.phase == 1:
        grid, variants = protocols(PHASE1), PHASE1_VARIANTS
    else:
        best = json.loads(args.base_protocol) if args.base_protocol else chosen_protocol(Path(args.out_dir))
        grid, variants = [dict(best, **p) for p in protocols(PHASE2)], ("full",)
    for seed in args.seeds:
        for num in args.nums:
            for method in args.methods:
                for variant in variants:
                    for protocol in grid:
                        cell = make_cell(profile, "cifar10", num, balanced=False, method=method, oe=variant,
                                         seed=seed, overrides=protocol)
                        yield run_name(method, variant, num, seed, protocol) + ".json", cell


def chosen_protocol(out_dir: Path) -> dict:
    """Phase 1's protocol (bn, optimizer, params) with the best mean validation accuracy under the default
    monitor rule (few_loss at relative tolerance 0.01)."""
    table = summarize(out_dir)
    rows = [r for r in table if r["phase"] == 1 and r["monitor"] == "few_loss@0.01"]
    if not rows:
        raise SystemExit("no phase-1 runs yet: run phase 1 first")
    best = max(rows, key=lambda r: r["val_mean"])
    return {k: best[k] for k in ("finetune.bn", "finetune.optimizer", "finetune.params")}


def summarize(out_dir: Path) -> list[dict]:
    """Mean validation top-1 per (phase, protocol, simulated monitor) over every run present."""
    groups: dict[tuple, list[float]] = {}
    meta: dict[tuple, dict] = {}
    for f in sorted(out_dir.glob("*.json")):
        if f.name.startswith("summary"):
            continue
        run = json.loads(f.read_text())
        over = run["cell"]["overrides"]
        protocol = {k: v for k, v in over.items() if k in PHASE1 or k in PHASE2}
        phase = 2 if any(k in PHASE2 for k in protocol) else 1
        for monitor, res in run["outcomes"].items():
            key = (phase, protocol_id(protocol), monitor)
            groups.setdefault(key, []).append(res["val_top1"])
            meta.setdefault(key, {**protocol, "runs": 0})
            meta[key]["runs"] += 1
    rows = []
    for (phase, pid, monitor), vals in sorted(groups.items()):
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else math.nan
        rows.append({"phase": phase, "protocol": pid, "monitor": monitor, "val_mean": mean, "val_std": std,
                     **meta[(phase, pid, monitor)]})
    return rows


def _write_summary(out_dir: Path, rows: list[dict]) -> None:
    import pandas as pd
    from tabulate import tabulate

    from oefsmc.atomic import atomic_write
    frame = pd.DataFrame(rows).sort_values(["phase", "val_mean"], ascending=[True, False])
    atomic_write(out_dir / "summary.csv", frame.to_csv(index=False, float_format="%.3f", lineterminator="\n"))
    text = ("# Fine-tuning protocol study (validation split of the training pool; never the test set)\n\n"
            "Mean validation top-1 over every (method, variant, Num, seed) run present; `runs` counts them. "
            "Criterion fixed in advance: the highest mean under the default monitor rule.\n\n"
            + ("**PARTIAL: the protocols have different numbers of runs, so their means are not comparable yet "
               "(the study is resumable: `python -m benchmark protocol-study --phase 1`).**\n\n"
               if frame.groupby("phase")["runs"].nunique().max() > 1 else "")
            + tabulate(frame, headers="keys", tablefmt="github", showindex=False, floatfmt=".2f") + "\n")
    atomic_write(out_dir / "summary.md", text)


def _add(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="cifar10-real", help="the profile whose data, teacher and schedule run")
    p.add_argument("--data-root", default=None, metavar="DIR", help="dataset root (default: the profile's)")
    p.add_argument("--teacher", action="append", default=None, metavar="[DATASET=]PATH", help="teacher checkpoint")
    p.add_argument("--phase", type=int, choices=(1, 2), default=1, help="1: bn x optimizer x params; 2: labels x eta")
    p.add_argument("--base-protocol", default=None, metavar="JSON",
                   help="phase 2: the phase-1 protocol to vary around (default: phase 1's best so far)")
    p.add_argument("--methods", nargs="+", default=list(METHOD_NAMES), help="methods to study")
    p.add_argument("--nums", nargs="+", type=int, default=[10, 50], help="paper Nums of the CIFAR-10 column")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="seeds")
    p.add_argument("--val-per-class", type=int, default=50, help="validation images per class from the pool")
    p.add_argument("--max-iters", type=int, default=300, help="longest curve (the cells' finetune.max_iters)")
    p.add_argument("--out-dir", default="results/studies/protocol", help="one JSON file per run, and the summary")
    p.add_argument("--limit", type=int, default=None, help="run at most this many missing runs, then stop")
    p.add_argument("--summarize", action="store_true", help="only aggregate the runs present")
    p.add_argument("--json", action="store_true", help="print the summary as the last line of stdout")


def _run(args) -> int:
    from oefsmc.atomic import atomic_write
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not args.summarize:
        todo = [(name, cell) for name, cell in planned_runs(args) if not (out_dir / name).is_file()]
        todo = todo[:args.limit] if args.limit else todo
        _log(f"phase {args.phase}: {len(todo)} runs to do in {out_dir}")
        for i, (name, cell) in enumerate(todo, 1):
            result = study_run(cell, args.val_per_class, args.max_iters)
            atomic_write(out_dir / name, json.dumps(result, indent=1, default=json_default_lenient) + "\n")
            _log(f"{i}/{len(todo)} {name}: val {result['val_at_start']:.2f} -> "
                 f"{result['outcomes']['few_loss@0.01']['val_top1']:.2f} ({result['seconds']:.0f} s)")
    rows = summarize(out_dir)
    if rows:
        _write_summary(out_dir, rows)
    if args.json:  # JSON has no NaN: a protocol with one run has no std
        emit_json({"rows": [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                            for r in rows]})
    return 0


command("protocol-study", "developer study: the fine-tuning protocol grid on a validation split of the training "
                          "pool (never the test set)")((_add, _run))
