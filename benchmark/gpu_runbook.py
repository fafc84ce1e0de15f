"""``python -m benchmark gpu-runbook``: in one call of at most N minutes on a lent GPU machine, as much of
the paper profile as fits -- teacher training first, then a slice of Table 1 / Table 2 cells -- with the
records, teachers and per-cell timings written under ``--out`` (and copied to ``--export``, e.g. the
device tool's ``$OUT``).  Every call resumes where the previous one stopped.

One call (``--budget-minutes``, default 9):

1. Reassemble data carried in parts (:func:`benchmark.carry.join_parts`).
2. Teachers, in :data:`TEACHERS` order, with the suite's resumable trainer and cited recipes
   (:func:`oefsmc.teacher_store.train_and_save`; one trainer on CPU and CUDA): VGG-16 on the CIFAR-10
   arrays of ``--data-root`` (``../shared/data/cifar10/train.npz`` is a 20,000-image pool, not the full
   50,000-image training set) and ResNet-32 on ``cifar100/train.npz`` (the complete set).  Training gets
   ``--teacher-share`` of the budget and stops at an epoch boundary; the checkpoint
   (``<out>/teachers/<dataset>_<arch>.pt.ckpt``, written after every epoch) carries it into the next call.
   ``--max-epochs`` caps the epochs of one call.
3. Cells at the official schedule (``--set`` may shorten them; the timings then say so): Table 2's smallest
   Num of each column with a teacher, the four methods without OE, then with OE, then the ``ft-only``
   control, then Table 1 and the larger Nums (``--only`` narrows the slice).  A column whose teacher is not
   finished runs with a *provisional* teacher (the checkpoint's weights) into ``<--out>/results/
   gpu-runbook-provisional/``: those records are timing runs, not results.  A cell starts only if the time left
   covers the longest cell of its kind measured so far.  ``--concurrency N`` then runs N cells at once
   (N worker processes sharing the GPU) to measure the slowdown of concurrent cells.
4. ``timings.csv`` / ``timings.json`` (seconds per cell and per stage, device, concurrency, teacher,
   whether the schedule was official), ``runbook.json`` (one entry per call) and ``projection.md``
   (:mod:`benchmark.gpu_cost`, labelled as a projection).

The paper's OOD source (300K Random Images, 921 MB) cannot be carried to the device: unless
``<data-root>/300K_random_images.npy`` exists, the OE cells use the other CIFAR's test arrays as OOD data
(disjoint classes; the pool is 500 images either way, so the cost is the same).  ILSVRC-2012 cannot be
carried at all: the ImageNet column is not run (and not projected).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from oefsmc.atomic import atomic_write, atomic_write_bytes
from oefsmc.errors import UserError

from .cli import command, emit_json
from .profiles import ColumnMap, Profile, get_profile

PROFILE = "gpu-runbook"
PROVISIONAL = "gpu-runbook-provisional"
STATE_FILE = "runbook.json"
TIMING_FIELDS = ("key", "profile", "dataset", "arch", "num", "balanced", "method", "oe", "seed",
                 "official", "overrides", "teacher", "device", "concurrency", "wall_s", "total_s",
                 "data_teacher_s", "prune_s", "compress_s", "finetune_s", "eval_s")


def _log(msg: str) -> None:
    print(f"[gpu-runbook] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class TeacherJob:
    """A teacher the runbook trains: paper column ``dataset`` with architecture ``arch``."""

    dataset: str
    arch: str

    @property
    def name(self) -> str:
        return f"{self.dataset}_{self.arch}"


#: teachers in training order (the paper's CIFAR columns; ILSVRC-2012 uses torchvision's weights)
TEACHERS = (TeacherJob("cifar10", "vgg16"), TeacherJob("cifar100", "resnet32"))
#: run dataset -> OOD sources to try, in order (the paper's first; see the module docstring)
OOD_CHOICES = {
    "cifar10": ("random300k:{root}/300K_random_images.npy", "npz:{root}/cifar100/test.npz"),
    "cifar100": ("random300k:{root}/300K_random_images.npy", "npz:{root}/cifar10/test.npz"),
}


class Deadline:
    """Seconds left of the call's budget, and of its teacher share."""

    def __init__(self, budget_s: float, teacher_share: float):
        self.t0 = time.monotonic()
        self.budget_s = budget_s
        self.teacher_s = budget_s * teacher_share

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.t0)

    def teacher_left(self) -> float:
        return self.teacher_s - (time.monotonic() - self.t0)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0


# ============================================================================ state
def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load_state(out: Path) -> dict:
    path = out / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {"calls": [], "concurrency": {}}


def save_state(out: Path, state: dict) -> None:
    atomic_write(out / STATE_FILE, json.dumps(state, indent=2, sort_keys=True) + "\n")


# ============================================================================ teachers
def teacher_path(out: Path, job: TeacherJob) -> Path:
    return out / "teachers" / f"{job.name}.pt"


def _has_train(root: Path, dataset: str) -> bool:
    return (root / dataset / "train.npz").is_file()


def _train_chunk(job: TeacherJob, args, recipe, device, epochs: int) -> dict:
    from oefsmc.teacher_store import train_and_save
    return train_and_save(job.dataset, job.arch, str(args.data_root), recipe, teacher_path(args.out, job), device,
                          args.precision, _log, progress=False, max_epochs_this_run=epochs)


def train_teacher_job(job: TeacherJob, args, overrides: dict, device, deadline: Deadline) -> dict:
    """Train ``job`` in chunks of whole epochs while the teacher share lasts; returns its status."""
    from oefsmc.teacher_store import trained_recipe
    out = teacher_path(args.out, job)
    if out.is_file():
        return {"complete": True, "epochs_this_call": 0, "seconds_this_call": 0.0}
    if not _has_train(args.data_root, job.dataset):
        return {"complete": False, "skipped": f"no {job.dataset}/train.npz under {args.data_root}"}
    recipe = trained_recipe(job.dataset, job.arch, {k: v for k, v in overrides.items() if k.startswith("teacher.")})
    t0, start, epoch_s, meta = time.monotonic(), _epochs_done(out), None, None
    done, cap = start, start + (args.max_epochs if args.max_epochs is not None else math.inf)
    while done < cap and deadline.teacher_left() > (epoch_s or 0):
        chunk = 1 if epoch_s is None else int(max(1, min(cap - done, deadline.teacher_left() // epoch_s)))
        meta = _train_chunk(job, args, recipe, device, chunk)
        new = meta["train"]["history"][done:]  # the epochs of this chunk
        epoch_s = max(h["seconds"] for h in new) if new else epoch_s
        done = meta["train"]["epochs_done"]
        if meta["complete"] or not new:
            break
    status = {"recipe": recipe.name, "epochs": recipe.epochs, "epochs_done": done, "epochs_this_call": done - start,
              "seconds_this_call": round(time.monotonic() - t0, 2), "epoch_s": epoch_s,
              "complete": bool(meta and meta["complete"])}
    return {**status, **({"top1": meta["top1"]} if status["complete"] else {})}


def _epochs_done(out: Path) -> int:
    ckpt = Path(str(out) + ".ckpt")
    if not ckpt.is_file():
        return 0
    import torch
    return int(torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"])


def provisional_teacher(job: TeacherJob, out_dir: Path) -> Optional[Path]:
    """The current checkpoint's weights as a teacher file (for timing runs), or ``None`` without one."""
    import torch
    from oefsmc.models.teacher import RECIPES, default_recipe
    ckpt = Path(str(teacher_path(out_dir, job)) + ".ckpt")
    if not ckpt.is_file():
        return None
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    path = out_dir / "teachers" / f"{job.name}.provisional.pt"
    buf = io.BytesIO()
    torch.save({k: v.contiguous() for k, v in state["model"].items()}, buf)
    atomic_write_bytes(path, buf.getvalue())
    meta = {"provisional": True, "epochs_done": int(state["epoch"]),
            "normalization": RECIPES.get(default_recipe(job.dataset, job.arch)).normalization}
    atomic_write(Path(str(path) + ".json"), json.dumps(meta, sort_keys=True) + "\n")
    return path


# ============================================================================ cells
def _ood(dataset: str, root: Path) -> str:
    for spec in OOD_CHOICES[dataset]:
        candidate = spec.format(root=root)
        if Path(candidate.split(":", 1)[1]).is_file():
            return candidate
    return OOD_CHOICES[dataset][-1].format(root=root)


def runbook_profile(name: str, args, teachers: dict[str, Path], overrides: dict) -> Profile:
    """The paper profile's CIFAR columns with the runbook's teachers, device and OOD sources."""
    from .overrides import with_overrides
    base = get_profile("paper", str(args.data_root))
    ood = {ds: _ood(ds, args.data_root) for ds in teachers}
    shortens = tuple(f"OOD for {ds}: {src} (the paper's 300K Random Images cannot be carried)"
                     for ds, src in ood.items() if not src.startswith("random300k:"))
    if "cifar10" in teachers:
        shortens += ("data: the CIFAR-10 arrays of --data-root (../shared/data: a 20,000-image pool)",)
    prof = dataclasses.replace(
        base, name=name, description="gpu-runbook: the paper profile's CIFAR columns on a lent GPU",
        device=args.device, columns={ds: ColumnMap(ds, base.columns[ds].arch) for ds in teachers},
        ood=ood, teachers={ds: str(p) for ds, p in teachers.items()}, shortens=shortens, skip_missing=False)
    return with_overrides(prof, {k: v for k, v in overrides.items() if not k.startswith("teacher.")})


VARIANT_ORDER = {"none": 0, "full": 1, "ft-only": 2}


def cell_slice(profile: Profile, only: list) -> list:
    """Table 2 then Table 1 entries (seed 0), cheapest-first: smallest Num, then variant, then method."""
    from .grids import build_grid
    from .selection import select_entries
    entries = select_entries(build_grid(["table2", "table1"], profile, [0]), only) if only else \
        build_grid(["table2", "table1"], profile, [0])
    return sorted(entries, key=lambda e: (e.cell["num"], e.tag["artifact"] != "table2",
                                          VARIANT_ORDER.get(e.cell["oe"], 3), not e.cell["balanced"],
                                          e.cell["method"], e.cell["dataset"]))


def _kind(job) -> tuple:
    return job.cell["dataset"], job.cell["method"], job.cell["oe"]


def _longest(cache, plan, kind: tuple) -> Optional[float]:
    walls = [cache.check(j.key).record["run"]["wall_s"] for j in plan.jobs.values()
             if _kind(j) == kind and cache.check(j.key).state == "ok"]
    return max(walls) if walls else None


def run_cells(profile: Profile, entries: list, args, deadline: Deadline, state: dict) -> dict:
    """Compute the slice's jobs one by one while they fit the budget; then ``--concurrency`` at once."""
    from .cache import ResultCache
    from .sweep import default_hooks, execute, plan_sweep
    hooks = default_hooks()
    plan = plan_sweep(entries, profile, hooks, ["table2", "table1"], [0])
    cache = ResultCache(args.out / "results", profile.name)
    todo = [j for j in plan.jobs.values() if cache.check(j.key).state != "ok"]
    counts = {"cells": len(plan.jobs), "computed": 0, "failed": 0, "left_for_time": 0,
              "skipped": plan.count("skipped") + plan.count("na")}
    for job in list(todo):
        longest = _longest(cache, plan, _kind(job))
        if deadline.left() < max(args.min_cell_seconds, longest or 0):
            continue
        result = execute(dataclasses.replace(plan, jobs={job.key: job}), cache, hooks.run, n_jobs=1)
        status = result.outcomes.get(job.key, {}).get("status")
        counts["failed" if status == "failed" else "computed"] += 1
        state["concurrency"][job.key] = 1
        todo.remove(job)
    if args.concurrency > 1 and len(todo) >= args.concurrency and deadline.left() > args.min_cell_seconds:
        batch = {j.key: j for j in todo[:args.concurrency]}
        result = execute(dataclasses.replace(plan, jobs=batch), cache, hooks.run, n_jobs=args.concurrency)
        for key, out in result.outcomes.items():
            counts["failed" if out["status"] == "failed" else "computed"] += 1
            state["concurrency"][key] = args.concurrency
            todo = [j for j in todo if j.key != key]
    counts["left_for_time"] = len(todo)
    return counts


# ============================================================================ timings
def _official(rec: dict) -> bool:
    """At the official schedule: no ``--set`` shortened this cell."""
    return not rec["config"].get("overrides")


STAGES = ("total_s", "data_teacher_s", "prune_s", "compress_s", "finetune_s", "eval_s")


def _timing_row(rec: dict, profile: str, state: dict) -> dict:
    c = rec["cell"]
    return {"key": rec["key"], "profile": profile, **{k: c[k] for k in ("dataset", "arch", "num", "balanced",
                                                                          "method", "oe", "seed")},
            "official": _official(rec), "overrides": ";".join(f"{k}={v}" for k, v in sorted(c["overrides"].items())),
            "teacher": "provisional" if profile == PROVISIONAL else "final", "device": rec["env"]["device"],
            "concurrency": state["concurrency"].get(rec["key"], 1), "wall_s": rec["run"]["wall_s"],
            **{k: round(rec["timings"].get(k, 0.0), 3) for k in STAGES}}


def timing_rows(out: Path, state: dict) -> list[dict]:
    """One row per ok record under ``out/results`` (final and provisional teachers)."""
    rows = []
    for profile in (PROFILE, PROVISIONAL):
        for path in sorted((out / "results" / profile).glob("*.json")):
            rec = json.loads(path.read_text())
            if rec.get("status") == "ok":
                rows.append(_timing_row(rec, profile, state))
    return rows


def write_timings(out: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TIMING_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out / "timings.csv", buf.getvalue())
    atomic_write(out / "timings.json", json.dumps(rows, indent=1, sort_keys=True) + "\n")


def export(out: Path, dest: Path, checkpoints: bool) -> list[str]:
    """Copy the outputs (records, timings, state, projection, finished teachers) to ``dest``."""
    copied = []
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        heavy = path.name.endswith(".ckpt") or ".provisional." in path.name or ".locks" in rel.parts
        if not path.is_file() or (heavy and not (checkpoints and path.name.endswith(".ckpt"))):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copied.append(str(rel))
    return copied


# ============================================================================ the command
def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("runbook"), metavar="DIR",
                   help="state and outputs (teachers, checkpoints, records, timings); reuse it to resume")
    p.add_argument("--export", type=Path, default=None, metavar="DIR",
                   help="copy records, timings, the projection and finished teachers here at the end (e.g. $OUT)")
    p.add_argument("--export-checkpoints", action="store_true", help="--export the training checkpoints too")
    p.add_argument("--budget-minutes", type=float, default=9.0, metavar="M", help="wall-clock budget of this call")
    p.add_argument("--teacher-share", type=float, default=0.6, metavar="F",
                   help="fraction of the budget for unfinished teachers (default 0.6)")
    p.add_argument("--max-epochs", type=int, default=None, metavar="N", help="at most N epochs per teacher per call")
    p.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                   help="CIFAR arrays <dataset>/{train,test}.npz (default ../shared/data beside the repository)")
    p.add_argument("--device", default="auto", help="auto | cuda | cpu")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="teacher training precision")
    p.add_argument("--concurrency", type=int, default=0, metavar="N",
                   help="after the one-by-one cells, run N cells at once to measure concurrent cells on one GPU")
    p.add_argument("--min-cell-seconds", type=float, default=90.0, metavar="S",
                   help="start a cell of an unmeasured kind only with at least S seconds left (default 90; "
                        "give the device tool a timeout a few minutes above the budget)")
    p.add_argument("--set", dest="overrides", action="append", default=None, metavar="NAME=VALUE",
                   help="shorten recipes / schedules (teacher.*, mir.iters ...); timings then say 'not official'")
    p.add_argument("--only", action="append", default=None, metavar="KEY=VALUE[,...]", help="narrow the cell slice")
    p.add_argument("--pack-data", type=Path, default=None, metavar="DIR",
                   help="only split --data-root's arrays into carry-sized parts under DIR and print the carry plan")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")


def _data_root(args) -> Path:
    from .profiles import _default_shared
    root = args.data_root or (Path(_default_shared()) if _default_shared() else None)
    if root is None or not root.is_dir():
        raise UserError("--data-root DIR with the CIFAR arrays is needed (../shared/data is not beside the repository)")
    return root.resolve()


def _teachers(args, overrides: dict, device, deadline: Deadline) -> tuple[dict, dict, dict]:
    """Train; returns (status per teacher, final teacher files, provisional teacher files)."""
    status, final, provisional = {}, {}, {}
    for job in TEACHERS:
        status[job.name] = train_teacher_job(job, args, overrides, device, deadline)
        _log(f"teacher {job.name}: {status[job.name]}")
        if status[job.name].get("complete"):
            final[job.dataset] = teacher_path(args.out, job)
        elif (path := provisional_teacher(job, args.out)) is not None:
            provisional[job.dataset] = path
    return status, final, provisional


def _cells(args, overrides: dict, only: list, final: dict, provisional: dict, deadline: Deadline,
           state: dict) -> dict:
    counts = {}
    for name, teachers in ((PROFILE, final), (PROVISIONAL, provisional)):
        if teachers and deadline.left() > args.min_cell_seconds:
            profile = runbook_profile(name, args, teachers, overrides)
            counts[name] = run_cells(profile, cell_slice(profile, only), args, deadline, state)
            _log(f"cells ({name}): {counts[name]}")
    return counts


def run_runbook(args) -> dict:
    from oefsmc.teacher_store import pick_device
    from .carry import join_parts
    from .overrides import parse_sweep_overrides
    from .selection import parse_selection
    if args.budget_minutes <= 0 or not 0 <= args.teacher_share <= 1:
        raise UserError("--budget-minutes must be > 0 and --teacher-share in [0, 1]")
    deadline = Deadline(args.budget_minutes * 60, args.teacher_share)
    args.data_root, args.out = _data_root(args), args.out.resolve()
    overrides, only = parse_sweep_overrides(args.overrides), parse_selection(args.only)
    device = pick_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    state = load_state(args.out)
    from oefsmc.envinfo import device_name
    call = {"started": _now(), "budget_s": deadline.budget_s, "device": device_name(device),
            "joined": join_parts(args.data_root), "overrides": overrides}
    try:
        call["teachers"], final, provisional = _teachers(args, overrides, device, deadline)
        call["cells"] = _cells(args, overrides, only, final, provisional, deadline, state)
    finally:  # what was done so far comes back even if a step failed
        _finish(args, state, call, deadline)
    return call


def _finish(args, state: dict, call: dict, deadline: Deadline) -> None:
    """Timings, state, projection and the export: the outputs of a call."""
    from .gpu_cost import write_projection
    rows = timing_rows(args.out, state)
    write_timings(args.out, rows)
    call["elapsed_s"] = round(deadline.elapsed(), 1)
    state["calls"].append(call)
    save_state(args.out, state)
    write_projection(args.out, rows, state=state)
    if args.export:
        call["exported"] = len(export(args.out, args.export, args.export_checkpoints))


def _run(args) -> int:
    if args.pack_data:
        from .carry import pack_data
        plan = pack_data(_data_root(args), args.pack_data.resolve())
        for i, paths in enumerate(plan, 1):
            print(f"call {i}: carry {' '.join(paths)}")
        if args.json:
            emit_json({"carry_calls": plan})
        return 0
    call = run_runbook(args)
    print(f"gpu-runbook: {call['elapsed_s']} s of {call['budget_s']:.0f}; teachers "
          f"{ {k: v.get('complete') for k, v in call['teachers'].items()} }; cells {call['cells']}; "
          f"outputs in {args.out}")
    if args.json:
        emit_json(call)
    return 0


command("gpu-runbook", "on a lent GPU: teachers, then a slice of the paper's cells, with per-cell timings, "
                       "within a time budget (resumable)")((_args, _run))
