"""``python -m benchmark gpu-cost --runbook DIR``: a PROJECTION of the GPU-hours of each paper artifact.

Inputs: the per-cell timings a ``gpu-runbook`` call measured (``DIR/timings.json``: wall seconds of each
cell, its device, whether the schedule was official, and how many cells shared the device).  Method:

1. The paper profile's grids (:func:`benchmark.grids.build_grid`, 5 seeds) give each artifact's unique
   cells: Table 1, each Table 2 column, each Figure 3 panel, and all of them together (shared cells counted
   once, as the sweep computes them once).
2. Each cell's seconds are estimated from the timings (:func:`estimate`): a measured cell of the same
   (dataset, arch, method, OE variant, Num, balanced) if there is one, else the same kind at the nearest
   measured Num, else a proxy variant (:data:`VARIANT_PROXY`: the Figure 3 ablations and ``ft-only`` run
   the same stages as ``full``, with or without the OOD data; Figure 3's lambda / eta / auxiliary-size
   settings are costed as ``full``).  The seed does
   not change the cost.  A cell with no estimate is counted as unmeasured and its artifact is partial.
3. GPU-hours at 1 cell at a time = the sum of the estimates / 3600.  At N concurrent cells on one GPU =
   that / speedup(N), where speedup(N) = N x (median one-at-a-time wall) / (median wall of cells measured
   while N ran at once), over the kinds measured both ways; without such a measurement, the ideal
   speedup N is assumed and the row says so.
4. Teacher training, a one-off cost, is listed apart: seconds per epoch measured x the recipe's epochs.
5. The basis of every row is printed: device, official schedule or not, provisional teachers (teacher
   quality does not change the cost).  ILSVRC-2012 cannot be carried to a device: without timings of
   ImageNet cells its column reads "not projected".
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Optional

from oefsmc.atomic import atomic_write
from oefsmc.errors import UserError

from .cli import command, emit_json

VARIANT_PROXY = {"no-comp": "full", "no-ft": "full", "ft-only": "full"}
DEFAULT_CONCURRENCY = (1, 4, 8)
LABEL = "PROJECTION (estimated from measured per-cell timings; not a measurement of the artifact)"


def artifact_cells(n_seeds: int = 5) -> dict[str, list[dict]]:
    """Paper artifact -> its unique cells in the paper profile (shared cells appear in every artifact)."""
    from .grids import build_grid
    from .profiles import PAPER_DATASET_LABELS, PAPER_COLUMNS, get_profile
    profile = get_profile("paper")
    groups: dict[str, list] = {"Table 1": build_grid(["table1"], profile, range(n_seeds))}
    table2 = build_grid(["table2"], profile, range(n_seeds))
    for ds, (arch, _) in PAPER_COLUMNS.items():
        groups[f"Table 2 {PAPER_DATASET_LABELS[ds]}/{arch}"] = [e for e in table2 if e.tag["paper_dataset"] == ds]
    for panel in ("3a", "3b", "3c", "3d"):
        groups[f"Figure {panel}"] = build_grid([f"fig{panel}"], profile, range(n_seeds))
    groups["all artifacts"] = [e for entries in list(groups.values()) for e in entries]
    return {name: _unique([e.cell for e in entries]) for name, entries in groups.items()}


def _unique(cells: list[dict]) -> list[dict]:
    seen, out = set(), []
    for c in cells:
        sig = json.dumps({k: c[k] for k in ("dataset", "arch", "num", "balanced", "method", "oe", "seed",
                                            "overrides")}, sort_keys=True)
        if sig not in seen:
            seen.add(sig)
            out.append(c)
    return out


def _kind(row: dict, oe: Optional[str] = None) -> tuple:
    return row["dataset"], row["arch"], row["method"], oe or row["oe"]


def estimate(cell: dict, timings: list[dict]) -> tuple[Optional[float], str]:
    """(seconds, how) of one cell from one-at-a-time timings; ``(None, "unmeasured")`` without any."""
    for oe, how in ((cell["oe"], ""), (VARIANT_PROXY.get(cell["oe"]), f"proxy {VARIANT_PROXY.get(cell['oe'])}")):
        if oe is None:
            continue
        same = [t for t in timings if _kind(t) == _kind(cell, oe)]
        if not same:
            continue
        exact = [t["wall_s"] for t in same if t["num"] == cell["num"] and t["balanced"] == cell["balanced"]]
        if exact:
            return statistics.median(exact), how or "measured"
        nearest = min(same, key=lambda t: (abs(math.log(t["num"] / cell["num"])), t["balanced"] != cell["balanced"]))
        near = [t["wall_s"] for t in same if t["num"] == nearest["num"]]
        return statistics.median(near), (how + ", " if how else "") + f"Num {nearest['num']}"
    return None, "unmeasured"


def speedup(timings: list[dict], n: int) -> tuple[float, bool]:
    """(speedup of N concurrent cells over one at a time, measured?)."""
    if n == 1:
        return 1.0, True
    one, many = defaultdict(list), defaultdict(list)
    for t in timings:
        if t["concurrency"] in (1, n):
            (one if t["concurrency"] == 1 else many)[_kind(t)].append(t["wall_s"])
    both = [k for k in many if k in one]
    if not both:
        return float(n), False
    ratios = [statistics.median(one[k]) / statistics.median(many[k]) for k in both]
    return n * statistics.median(ratios), True


def project(timings: list[dict], concurrency=DEFAULT_CONCURRENCY, n_seeds: int = 5) -> list[dict]:
    """One row per paper artifact: cells, measured cells, GPU-hours at each concurrency."""
    single = [t for t in timings if t["concurrency"] == 1]
    rows = []
    for name, cells in artifact_cells(n_seeds).items():
        est = [estimate(c, single) for c in cells]
        known = [s for s, _ in est if s is not None]
        row = {"artifact": name, "cells": len(cells), "estimated_cells": len(known),
               "from_measured_cells": sum(1 for _, how in est if how == "measured"),
               "seconds_1": round(sum(known), 1)}
        for n in concurrency:
            factor, measured = speedup(timings, n)
            row[f"gpu_hours_{n}"] = round(sum(known) / factor / 3600, 3) if known else None
            row[f"speedup_{n}"] = f"{factor:.2f}" + ("" if measured else " (ideal, not measured)")
        rows.append(row)
    return rows


def basis(timings: list[dict]) -> str:
    """What the timings are: devices, official schedule or not, teachers."""
    if not timings:
        return "no timings yet"
    devices = sorted({t["device"] for t in timings})
    official = sum(1 for t in timings if t["official"])
    provisional = sum(1 for t in timings if t["teacher"] == "provisional")
    return (f"{len(timings)} measured cells on {', '.join(devices)}; {official} at the official schedule"
            f"{'' if official == len(timings) else ' (the others shortened by --set: not the official cost)'}; "
            f"{provisional} with a provisional teacher")


def render(rows: list[dict], timings: list[dict], concurrency=DEFAULT_CONCURRENCY) -> str:
    """Markdown: the label, the basis, one row per artifact."""
    head = ["artifact", "cells", "estimated", "from measured", *[f"GPU-h @{n}" for n in concurrency],
            *[f"speedup @{n}" for n in concurrency if n > 1]]
    lines = [f"# GPU cost: {LABEL}", "", f"Basis: {basis(timings)}.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        hours = [("not projected" if r[f"gpu_hours_{n}"] is None else f"{r[f'gpu_hours_{n}']:.3f}")
                 + ("" if r["estimated_cells"] in (0, r["cells"]) else " (partial)") for n in concurrency]
        lines.append("| " + " | ".join([r["artifact"], str(r["cells"]), str(r["estimated_cells"]),
                                        str(r["from_measured_cells"]), *hours,
                                        *[r[f"speedup_{n}"] for n in concurrency if n > 1]]) + " |")
    return "\n".join(lines) + "\n"


def teacher_rows(state: dict) -> list[dict]:
    """One-off teacher training: the latest measured seconds per epoch x the recipe's epochs."""
    latest: dict[str, dict] = {}
    for call in state.get("calls", []):
        for name, t in call.get("teachers", {}).items():
            if t.get("epoch_s"):
                latest[name] = {"teacher": name, "recipe": t["recipe"], "epochs": t["epochs"],
                                "epoch_s": t["epoch_s"], "device": call.get("device", "?"),
                                "gpu_hours": round(t["epoch_s"] * t["epochs"] / 3600, 3)}
    return list(latest.values())


def render_teachers(rows: list[dict]) -> str:
    if not rows:
        return ""
    lines = ["", "One-off teacher training (seconds per epoch measured x the recipe's epochs; CIFAR-10 on the "
             "data it was trained on, e.g. the 20,000-image pool of ../shared/data, not the 50,000-image set):",
             "", "| teacher | recipe | device | s/epoch | epochs | GPU-h |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['teacher']} | {r['recipe']} | {r['device']} | {r['epoch_s']:.1f} | {r['epochs']} | "
              f"{r['gpu_hours']:.3f} |" for r in rows]
    return "\n".join(lines) + "\n"


def write_projection(out: Path, timings: list[dict], concurrency=DEFAULT_CONCURRENCY,
                     state: Optional[dict] = None) -> Path:
    rows, teachers = project(timings, concurrency), teacher_rows(state or {})
    atomic_write(out / "projection.json", json.dumps({"label": LABEL, "basis": basis(timings), "rows": rows,
                                                      "teachers": teachers}, indent=1, sort_keys=True) + "\n")
    return atomic_write(out / "projection.md", render(rows, timings, concurrency) + render_teachers(teachers))


def load_timings(runbook: Path) -> list[dict]:
    path = Path(runbook) / "timings.json"
    if not path.is_file():
        raise UserError(f"no {path}: run python -m benchmark gpu-runbook --out {runbook} first")
    return json.loads(path.read_text())


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runbook", type=Path, required=True, metavar="DIR", help="a gpu-runbook --out directory")
    p.add_argument("--concurrency", type=int, action="append", default=None, metavar="N",
                   help="concurrent cells per GPU to project (repeatable; default 1, 4, 8)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON on the last stdout line")


def _run(args) -> int:
    conc = tuple(sorted(set([1] + (args.concurrency or list(DEFAULT_CONCURRENCY)))))
    timings = load_timings(args.runbook)
    state_file = Path(args.runbook) / "runbook.json"
    teachers = teacher_rows(json.loads(state_file.read_text()) if state_file.is_file() else {})
    rows = project(timings, conc)
    print(render(rows, timings, conc) + render_teachers(teachers), end="")
    if args.json:
        emit_json({"label": LABEL, "basis": basis(timings), "rows": rows, "teachers": teachers})
    return 0


command("gpu-cost", "PROJECTION of the GPU-hours of each paper artifact from a gpu-runbook's timings")((_args, _run))
