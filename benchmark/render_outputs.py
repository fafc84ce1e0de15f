"""Glue from a sweep's records to the :mod:`paper_tables` renderers.

Rendering is driven by the *plan* (grid entries with their tags), not by scanning the results
directory: each entry that has an ``ok`` record contributes one tidy row (the run's dataset / arch /
Num plus the paper cell it stands for).  A record shared by several entries (Table 1's imbalanced cells
and Table 2's CIFAR-10 baselines; Figure 3c's lambda = 0.5 and the "+ Ours" cell) feeds all of them.

Cells without runs say why: the method does not apply to the architecture family (``n/a (...)``), the
column was skipped because its data or teacher is missing, or the profile does not run that paper
column / Num.  Failed runs are left out of the statistics and counted in the caption.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pandas as pd

from paper_tables.claims import claim1_frame, claim2_frame, write_claims
from paper_tables.render import render_figure3, render_table1, render_table2, write_table
from paper_tables.reported import load_reported_table1, load_reported_table2

from .cache import ResultCache
from .grids import FIG3_COLUMN, IMBALANCE_RATIO, TABLE1_NUMS, figure_choice_text
from .profiles import PAPER_ARCH_LABELS, PAPER_COLUMNS, PAPER_DATASET_LABELS, Profile

FIG_COLUMNS = ["panel", "method", "num", "variant", "param_name", "param_value", "seed", "top1"]


def load_records(plan, cache: ResultCache) -> dict[str, dict]:
    """key -> record for every job of the plan whose record is valid (ok or failed)."""
    out = {}
    for key in plan.jobs:
        entry = cache.check(key)
        if entry.state in ("ok", "failed"):
            out[key] = entry.record
    return out


def tidy_runs(plan, records: dict[str, dict]) -> pd.DataFrame:
    """One row per grid entry with an ok record: the renderers' tidy frame (top1 in percent)."""
    rows = []
    for e, key in zip(plan.entries, plan.entry_keys):
        rec = records.get(key) if key else None
        if not rec or rec.get("status") != "ok":
            continue
        c, t = e.cell, e.tag
        rows.append({
            "artifact": t.get("artifact"), "dataset": c["dataset"], "arch": c["arch"], "num": c["num"],
            "setting": t.get("setting"), "method": c["method"], "variant": c["oe"], "seed": c["seed"],
            "top1": float(rec["metrics"]["top1"]),
            "top1_compressed": float(rec["metrics"].get("top1_compressed", rec["metrics"]["top1"])),
            "paper_dataset": t.get("paper_dataset"),
            "paper_arch": t.get("paper_arch"), "paper_num": t.get("paper_num"),
            "panel": t.get("panel"), "param_name": t.get("param_name"), "param_value": t.get("param_value"),
        })
    return pd.DataFrame(rows)


def failed_count(plan, records: dict[str, dict], artifact: str) -> int:
    """Unique cells of ``artifact`` whose record is a failure (or missing after the sweep)."""
    keys = {k for e, k in zip(plan.entries, plan.entry_keys) if k and e.tag.get("artifact") == artifact}
    return sum(1 for k in keys if (records.get(k) or {}).get("status") != "ok")


def _entry_reasons(plan, artifact: str) -> list[tuple[dict, str]]:
    """(tag, reason) of the entries of ``artifact`` that have no job (n/a or skipped)."""
    out = []
    for e, kind, reason in zip(plan.entries, plan.entry_kinds, plan.entry_reasons):
        if kind in ("na", "skipped", "error") and e.tag.get("artifact") == artifact:
            out.append((e.tag, reason if kind == "na" else f"{kind}: {reason}"))
    return out


def na_table1(plan) -> dict[tuple, str]:
    """``{(method, num, setting): reason}`` for Table 1 (``None`` = any)."""
    na: dict[tuple, str] = {}
    for tag, reason in _entry_reasons(plan, "table1"):
        na.setdefault((tag["method"], tag["paper_num"], tag["setting"]), reason)
    for num in TABLE1_NUMS:
        why = plan.profile.not_run_reason("table1", "cifar10", num, TABLE1_NUMS)
        if why:
            na.setdefault((None, num, None), why)
    return na


def na_table2(plan) -> dict[tuple, str]:
    """``{(dataset, num, method, variant): reason}`` for Table 2 (``None`` = any)."""
    na: dict[tuple, str] = {}
    for tag, reason in _entry_reasons(plan, "table2"):
        na.setdefault((tag["paper_dataset"], tag["paper_num"], tag["method"], tag["variant"]), reason)
    for ds, (_, nums) in PAPER_COLUMNS.items():
        for num in nums:
            why = plan.profile.not_run_reason("table2", ds, num, nums)
            if why:
                na.setdefault((ds, num, None, None), why)
    return na


def drop_unrun_columns(cells: pd.DataFrame, profile: Profile) -> tuple[pd.DataFrame, list[str]]:
    """Leave out the columns the profile never runs (every cell n/a for that reason, e.g. CIFAR-100 in
    ``cifar10-real``); returns the kept cells and the left-out column labels, for the caption.  Columns
    skipped for a missing dataset or teacher stay, with their reason."""
    unrun = (cells["status"] == "na") & cells["na_reason"].str.endswith(f"not run in the {profile.name} profile")
    all_unrun = unrun.groupby(cells["col"]).all()
    dropped = [c for c in cells.sort_values("col_order")["col"].unique() if all_unrun[c]]
    return cells[~cells["col"].isin(dropped)], dropped


def _dropped_note(dropped: list[str]) -> str:
    return f" Columns this profile does not run are left out: {', '.join(dropped)}." if dropped else ""


# ---------------------------------------------------------------------------- captions
def profile_note(profile: Profile, n_seeds: int, columns: Optional[list[str]] = None) -> str:
    """The profile part of every caption: target vs. context, the column mapping, the schedule."""
    if profile.name == "paper" and not profile.shortens:  # sweep-level --set overrides shorten it
        return (f"Profile paper: the paper's setting (schedule official, {n_seeds} seeds); "
                f"⚠ marks |Δ| > 2·std of the reproduced seeds.")
    mapping = profile.mapping_lines()
    if columns is not None:
        mapping = [m for m in mapping if any(m.startswith(PAPER_DATASET_LABELS[c] + "/") for c in columns)]
    return (f"Profile {profile.name}: NOT the paper's setting, so the reported number is context, not a "
            f"target. Column mapping: {'; '.join(mapping)}. Schedule: {profile.schedule}. "
            f"Seeds: {n_seeds}. Shortened: {'; '.join(profile.shortens)}.")


def _failed_note(n: int, profile: Profile) -> str:
    return (f" {n} cell(s) have no successful run (failed or not computed; see the records under "
            f"results/{profile.name}/)." if n else "")


def table1_caption(plan, n_failed: int) -> str:
    return ("Table 1 (paper Sec. 5.2): top-1 accuracy (%) of VGG-16 on CIFAR-10 compressed with Num few "
            f"samples, balanced vs. imbalanced (ratio {IMBALANCE_RATIO:g}), no OE; per method the paper's "
            "number, the reproduced mean ± std (n seeds) and Δ = reproduced − paper. "
            + profile_note(plan.profile, len(plan.seeds), ["cifar10"]) + _failed_note(n_failed, plan.profile))


def table2_caption(plan, n_failed: int) -> str:
    return ("Table 2 (paper Sec. 5.3): top-1 accuracy (%) of each baseline without and with OE-FSMC "
            f"(\"+ Ours\"), imbalanced few-sample sets (ratio {IMBALANCE_RATIO:g}); VGG-16/CIFAR-10, "
            "ResNet-32/CIFAR-100, ResNet-34/ILSVRC-2012. \"<method> + FT only\" is our control (the method's "
            "own compression, then plain cross-entropy fine-tuning on the few samples), not in the paper. "
            + profile_note(plan.profile, len(plan.seeds)) + _failed_note(n_failed, plan.profile))


def claims_caption(plan, columns: Optional[list[str]] = None) -> str:
    return ("The paper's claims checked seed by seed on the records of this profile "
            "(paper_tables/claims.py). " + profile_note(plan.profile, len(plan.seeds), columns))


FIG_TITLES = {
    "a": "Fig. 3a: OE-FSMC ablation (variants)",
    "b": "Fig. 3b: auxiliary (OOD) set size, OE full",
    "c": "Fig. 3c: λ of Eq. 7, OE full",
    "d": "Fig. 3d: η of the fine-tuning regulariser, OE full",
}


def figure_caption(plan, panel: str) -> str:
    """Short (it is the figure's title): setting, our choice, the mapping of the column, seeds."""
    p = plan.profile
    col = p.column(FIG3_COLUMN)
    paper = f"{PAPER_DATASET_LABELS[FIG3_COLUMN]}/{PAPER_ARCH_LABELS[PAPER_COLUMNS[FIG3_COLUMN][0]]}"
    run = "" if col is None or (col.dataset, col.arch) == (FIG3_COLUMN, PAPER_COLUMNS[FIG3_COLUMN][0]) \
        else f" (run as {col.dataset}/{col.arch})"
    choice = figure_choice_text(panel)
    target = ("paper setting" if p.name == "paper"
              else f"profile {p.name}, schedule {p.schedule}: not the paper's setting")
    n = len(plan.seeds)
    return f"{FIG_TITLES[panel]}. {choice}; {paper}{run}. {target}; mean ± std over {n} seed{'s' * (n != 1)}."


# ---------------------------------------------------------------------------- rendering
@dataclass(frozen=True)
class TableArtifact:
    """How one paper table is rendered: its reported numbers, renderer, n/a reasons, caption, and the
    claim check written beside it."""
    load_reported: Callable[[], pd.DataFrame]
    render: Callable[..., pd.DataFrame]
    na: Callable[..., dict]
    caption: Callable[..., str]
    claim: Callable[..., pd.DataFrame]
    claim_name: str
    columns: Optional[list[str]]     # paper columns its caption maps (None = all)


TABLES = {
    "table1": TableArtifact(load_reported_table1, render_table1, na_table1, table1_caption, claim1_frame,
                            "claim1", ["cifar10"]),
    "table2": TableArtifact(load_reported_table2, render_table2, na_table2, table2_caption, claim2_frame,
                            "claim2", None),
}


def render_all(plan, cache: ResultCache, out_dir) -> dict[str, list[Path]]:
    """Render every artifact of the plan into ``out_dir``; returns artifact -> written paths."""
    out_dir = Path(out_dir)
    records = load_records(plan, cache)
    runs = tidy_runs(plan, records)
    flag = plan.profile.flag_2std
    written: dict[str, list[Path]] = {}
    for name, table in TABLES.items():
        if name not in plan.artifacts:
            continue
        reported = table.load_reported()
        cells = table.render(reported, runs if len(runs) else None, flag_2std=flag, na=table.na(plan))
        cells, dropped = drop_unrun_columns(cells, plan.profile)
        caption = table.caption(plan, failed_count(plan, records, name)) + _dropped_note(dropped)
        written[name] = list(write_table(cells, out_dir, name, caption).values())
        claim = table.claim(runs if len(runs) else None, reported)
        written[table.claim_name] = list(write_claims(
            out_dir, table.claim_name, **{table.claim_name: claim},
            caption=claims_caption(plan, table.columns)).values())
    fig = runs[runs["panel"].notna()][FIG_COLUMNS] if len(runs) else pd.DataFrame(columns=FIG_COLUMNS)
    for panel in "abcd":
        if f"fig3{panel}" in plan.artifacts:
            paths = render_figure3(panel, fig, out_dir, figure_caption(plan, panel))
            written[f"fig3{panel}"] = list(paths.values())
    return written

