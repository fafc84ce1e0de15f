"""Glue from a sweep's records to the :mod:`paper_tables` renderers.

Rendering is driven by the *plan* (grid entries with their tags), not by scanning the results
directory: each entry that has an ``ok`` record contributes one tidy row (the run's dataset / arch /
Num plus the paper cell it stands for).  A record shared by several entries (Table 1's imbalanced cells
and Table 2's CIFAR-10 baselines; Figure 3c's lambda = 0.5 and the "+ Ours" cell) feeds all of them.

Cells without runs say why: the method does not apply to the architecture family (``n/a (...)``), the
column was skipped because its data or teacher is missing, or the profile does not run that paper
column / Num.  Failed runs are left out of the statistics and counted in the caption.

Columns are named by what ran (the profile's column mapping), and Δ against the paper is printed only in
columns that run the paper's configuration (dataset, architecture and Num unchanged:
:func:`paper_tables.render.is_paper_config`), with the 2·std flag; elsewhere the paper's number is context.
A Table 2 render also writes one per-class figure per Table 2 column (``perclass_<column>.png/.pdf``).

Only what the records support is rendered: a table or figure panel that no record supports is not
written, and a table already on disk is never replaced by one that fewer runs support (its CSV's ``n``
summed over the cells; e.g. a sweep whose cells failed, or ``--seeds 1`` beside a 3-seed table): it
is kept, with one line saying so.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pandas as pd

from paper_tables.claims import claim1_frame, claim2_frame, write_claims
from paper_tables.perclass import class_counts, figure_name, perclass_frame, render_perclass
from paper_tables.perclass_groups import group_gains, write_group_gains
from paper_tables.render import (ARCH_LABELS, DATASET_LABELS, column_label, is_paper_config, render_figure3,
                                 cells_csv, render_table1, render_table2, write_table)
from paper_tables.reported import load_reported_table1, load_reported_table2

from .cache import ResultCache
from oefsmc.axes import TABLE1_DATASET

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
    """One row per grid entry with an ok record: the renderers' tidy frame (top1 in percent).

    ``per_class`` is the record's per-class test accuracy list (percent, class index = head -> tail) and
    ``class_counts`` the few-sample images per class of the draw (``None`` where a record lacks them)."""
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
            "per_class": rec["metrics"].get("per_class"),
            "class_counts": (rec.get("config") or {}).get("class_counts"),
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
        why = plan.profile.not_run_reason("table1", TABLE1_DATASET, num, TABLE1_NUMS)
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
def _paper_columns(columns: Optional[list[str]]) -> list[str]:
    return list(PAPER_COLUMNS) if columns is None else list(columns)


def target_columns(profile: Profile, columns: Optional[list[str]] = None) -> tuple[list[str], list[str]]:
    """(run as in the paper, stand-in) among the paper columns ``columns`` (None = all) the profile runs.

    Data-driven from the profile's column mapping (:func:`paper_tables.render.is_paper_config`: dataset,
    architecture and Num unchanged for every paper Num), never from the profile's name."""
    run = [c for c in _paper_columns(columns) if profile.column(c) is not None]
    paper = [c for c in run if all(is_paper_config(profile.column(c), c, PAPER_COLUMNS[c][0], n)
                                   for n in PAPER_COLUMNS[c][1])]
    return paper, [c for c in run if c not in paper]


def _comparison_note(profile: Profile, columns: Optional[list[str]]) -> str:
    """Whether the paper's numbers are targets (paper Sec. 5.2-5.3 tables) or context, per column."""
    paper, standin = target_columns(profile, columns)
    if not standin:
        return ("Every column runs the paper's configuration, so Δ = reproduced − paper is a target; "
                "⚠ marks |Δ| > 2·std of the reproduced seeds.")
    names = ", ".join(PAPER_DATASET_LABELS[c] for c in standin)
    if not paper:
        return (f"No column runs the paper's configuration (stand-in columns: {names}; see the mapping), so "
                "the paper's number is context, not a target, and no Δ row is printed.")
    return (f"Δ = reproduced − paper is a target only in the columns run as in the paper "
            f"({', '.join(PAPER_DATASET_LABELS[c] for c in paper)}; ⚠ marks |Δ| > 2·std); in the stand-in "
            f"columns ({names}) the paper's number is context only.")


def profile_note(profile: Profile, n_seeds: int, columns: Optional[list[str]] = None) -> str:
    """The profile part of every caption: the column mapping, target vs. context, schedule, seeds, cuts."""
    mapping = profile.mapping_lines()
    if columns is not None:
        mapping = [m for m in mapping if any(m.startswith(PAPER_DATASET_LABELS[c] + "/") for c in columns)]
    shortened = f" Shortened: {'; '.join(profile.shortens)}." if profile.shortens else ""
    setting = ": the paper's setting" if not profile.shortens and not target_columns(profile, columns)[1] else ""
    return (f"Profile {profile.name}{setting}. Column mapping: {'; '.join(mapping)}. "
            f"{_comparison_note(profile, columns)} Schedule: {profile.schedule}. Seeds: {n_seeds}.{shortened}")


def _failed_note(n: int, profile: Profile) -> str:
    return (f" {n} cell(s) have no successful run (failed or not computed; see the records under "
            f"results/{profile.name}/)." if n else "")


def _ran_as(profile: Profile, paper_dataset: str) -> str:
    """"VGG-16 on CIFAR-10" as the paper ran it, and what this profile runs instead."""
    paper = f"{PAPER_ARCH_LABELS[PAPER_COLUMNS[paper_dataset][0]]} on {PAPER_DATASET_LABELS[paper_dataset]}"
    col = profile.column(paper_dataset)
    if col is None:
        return f"{paper} (not run here)"
    if (col.dataset, col.arch) == (paper_dataset, PAPER_COLUMNS[paper_dataset][0]):
        return paper
    return f"{ARCH_LABELS.get(col.arch, col.arch)} on {DATASET_LABELS.get(col.dataset, col.dataset)} (paper: {paper})"


def _delta_phrase(profile: Profile, columns: Optional[list[str]]) -> str:
    paper, _ = target_columns(profile, columns)
    return " and Δ = reproduced − paper where the column is the paper's configuration" if paper else ""


def table1_caption(plan, n_failed: int) -> str:
    return (f"Table 1 (paper Sec. 5.2): top-1 accuracy (%) of {_ran_as(plan.profile, TABLE1_DATASET)} compressed "
            f"with Num few samples, balanced vs. imbalanced (ratio {IMBALANCE_RATIO:g}), no OE; per method the "
            f"paper's number, the reproduced mean ± std (n seeds){_delta_phrase(plan.profile, [TABLE1_DATASET])}. "
            + profile_note(plan.profile, len(plan.seeds), [TABLE1_DATASET]) + _failed_note(n_failed, plan.profile))


def table2_caption(plan, n_failed: int) -> str:
    ran = "; ".join(_ran_as(plan.profile, c) for c in PAPER_COLUMNS)
    return ("Table 2 (paper Sec. 5.3): top-1 accuracy (%) of each baseline without and with OE-FSMC "
            f"(\"+ Ours\"), imbalanced few-sample sets (ratio {IMBALANCE_RATIO:g}); {ran}; the column headers "
            "name what ran. \"<method> + FT only\" is our control (the method's own compression, then plain "
            "cross-entropy fine-tuning on the few samples), not in the paper. "
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
    paper_cols, _ = target_columns(p, [FIG3_COLUMN])
    target = (f"profile {p.name}, schedule {p.schedule}: "
              + ("the paper's configuration" if paper_cols else "not the paper's setting"))
    n = len(plan.seeds)
    return f"{FIG_TITLES[panel]}. {choice}; {paper}{run}. {target}; mean ± std over {n} seed{'s' * (n != 1)}."


def perclass_caption(plan, paper_dataset: str, paper_num: int, frame: Optional[pd.DataFrame] = None) -> str:
    """Short (it is the figure's title): what ran for the column, the variants, the seeds each line averages
    (those with a record, of the plan's seeds), the profile."""
    p = plan.profile
    label = _column_title(plan, paper_dataset, paper_num)
    n = len(plan.seeds)
    present = sorted({int(k) for k in frame["n"]}) if frame is not None and len(frame) else []
    if present and present != [n]:
        span = str(present[0]) if len(present) == 1 else f"{present[0]}-{present[-1]}"
        seeds = f"mean ± std over the seeds with a record ({span} of {n} per line)"
    else:
        seeds = f"mean ± std over {n} seed{'s' * (n != 1)}"
    return (f"Per-class test accuracy, {label}, imbalanced few-sample set (ratio {IMBALANCE_RATIO:g}): none, "
            f"ft-only (our control) and full (+ Ours, paper Sec. 5.3); {seeds}; "
            f"profile {p.name}, schedule {p.schedule}.")


def perclass_columns(plan) -> list[tuple[str, int]]:
    """The Table 2 columns (paper dataset, paper Num) this profile runs: one per-class figure each."""
    return [(ds, num) for ds, (_, nums) in PAPER_COLUMNS.items() for num in plan.profile.paper_nums("table2", ds, nums)]


def render_perclass_figures(plan, runs: pd.DataFrame, out_dir: Path) -> dict[str, list[Path]]:
    """``perclass_<column>.png/.pdf`` for every Table 2 column of the profile (see :mod:`paper_tables.perclass`)
    and ``perclass_groups.md/.csv``: the head / medium / tail gains paired by seed
    (:mod:`paper_tables.perclass_groups`)."""
    written = {}
    for ds, num in perclass_columns(plan):
        frame = perclass_frame(runs if len(runs) else None, ds, num)
        paths = render_perclass(frame, out_dir, figure_name(ds, num), perclass_caption(plan, ds, num, frame),
                                class_counts(runs if len(runs) else None, ds, num))
        written[figure_name(ds, num)] = list(paths.values())
    frames = {_column_title(plan, ds, num): group_gains(runs if len(runs) else None, ds, num)
              for ds, num in perclass_columns(plan)}
    written["perclass_groups"] = list(write_group_gains(out_dir, frames, perclass_groups_caption(plan)).values())
    return written


def _column_title(plan, paper_dataset: str, paper_num: int) -> str:
    return column_label(paper_dataset, PAPER_COLUMNS[paper_dataset][0], paper_num, plan.profile.column(paper_dataset))


def perclass_groups_caption(plan) -> str:
    """What ``perclass_groups.md`` shows and the verdict rule (the claim checks' rule)."""
    p = plan.profile
    return (f"Head / medium / tail test accuracy of each Table 2 column (imbalanced few-sample sets, ratio "
            f"{IMBALANCE_RATIO:g}; paper Sec. 5.3), profile {p.name}, schedule {p.schedule}, seeds "
            f"{', '.join(map(str, plan.seeds))} where a record exists. A group's accuracy is the mean of its classes' "
            "accuracies (classes split head -> tail by numpy.array_split; the images are the few-sample "
            "images of the draw). Differences are paired by seed: mean, 95% Student-t interval, seeds > 0 and "
            "verdict (std and per-seed values in the CSV); holds = the interval lies above 0, fails = below 0, "
            "inconclusive otherwise. "
            "full = + Ours; ft-only = our control (the method, then plain CE fine-tuning). The per-class "
            "figures perclass_<column>.png show every class (paper_tables/perclass_groups.py).")


def _no_figures(plan, runs: pd.DataFrame, out_dir: Path) -> dict[str, list[Path]]:
    return {}


# ---------------------------------------------------------------------------- rendering
@dataclass(frozen=True)
class TableArtifact:
    """How one paper table is rendered: its reported numbers, renderer, n/a reasons, caption, the claim check
    written beside it, and the figures that come with it."""
    load_reported: Callable[[], pd.DataFrame]
    render: Callable[..., pd.DataFrame]
    na: Callable[..., dict]
    caption: Callable[..., str]
    claim: Callable[..., pd.DataFrame]
    claim_name: str
    columns: Optional[list[str]]     # paper columns its caption maps (None = all)
    figures: Callable[..., dict[str, list[Path]]] = _no_figures


TABLES = {
    "table1": TableArtifact(load_reported_table1, render_table1, na_table1, table1_caption, claim1_frame,
                            "claim1", [TABLE1_DATASET]),
    "table2": TableArtifact(load_reported_table2, render_table2, na_table2, table2_caption, claim2_frame,
                            "claim2", None, render_perclass_figures),
}


def csv_support(text: str) -> int:
    """Runs behind a rendered table: its CSV's ``n`` summed over the ``ok`` cells (0 when unreadable)."""
    try:
        return sum(int(float(r["n"] or 0)) for r in csv.DictReader(io.StringIO(text)) if r.get("status") == "ok")
    except (KeyError, ValueError, TypeError, csv.Error):
        return 0


def existing_support(out_dir: Path, name: str) -> int:
    """:func:`csv_support` of ``<out_dir>/<name>.csv`` (0 when there is none or it cannot be read)."""
    try:
        return csv_support((out_dir / f"{name}.csv").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return 0


def _skip_table(out_dir: Path, name: str, cells: pd.DataFrame, log: Callable[[str], None]) -> bool:
    """True (with one line) when the table must not be written: no run supports it, or the one on
    disk is supported by more runs."""
    new, old = csv_support(cells_csv(cells)), existing_support(out_dir, name)
    if new == 0:
        log(f"not rendering {name}: no record supports any of its cells" + (
            f" ({out_dir / (name + '.md')} kept)" if old else ""))
        return True
    if new < old:
        log(f"kept {out_dir / (name + '.md')}: {old} runs support it, these records only {new} (render elsewhere "
            "with --out-dir, or delete it to replace it)")
        return True
    return False


def render_all(plan, cache: ResultCache, out_dir, log: Optional[Callable[[str], None]] = None
               ) -> dict[str, list[Path]]:
    """Render every artifact of the plan into ``out_dir`` (only what the records support, see the module
    docstring); returns artifact -> written paths."""
    out_dir = Path(out_dir)
    log = log or (lambda msg: None)
    records = load_records(plan, cache)
    runs = tidy_runs(plan, records)
    written: dict[str, list[Path]] = {}
    for name, table in TABLES.items():
        if name not in plan.artifacts:
            continue
        reported = table.load_reported()
        # the 2·std flag wherever a column is the paper's configuration (the renderer decides per column)
        cells = table.render(reported, runs if len(runs) else None, flag_2std=True, na=table.na(plan),
                             columns=plan.profile.columns)
        cells, dropped = drop_unrun_columns(cells, plan.profile)
        if _skip_table(out_dir, name, cells, log):
            continue
        caption = table.caption(plan, failed_count(plan, records, name)) + _dropped_note(dropped)
        written[name] = list(write_table(cells, out_dir, name, caption).values())
        claim = table.claim(runs if len(runs) else None, reported)
        written[table.claim_name] = list(write_claims(
            out_dir, table.claim_name, **{table.claim_name: claim},
            caption=claims_caption(plan, table.columns), columns=plan.profile.columns).values())
        written.update(table.figures(plan, runs, out_dir))
    from .render_studies import render_studies
    written.update(render_studies(plan, records, out_dir, claims_caption(plan), log))
    fig = runs[runs["panel"].notna()][FIG_COLUMNS] if len(runs) else pd.DataFrame(columns=FIG_COLUMNS)
    for panel in "abcd":
        if f"fig3{panel}" not in plan.artifacts:
            continue
        if not (fig["panel"] == panel).any():
            log(f"not rendering fig3{panel}: no record supports it")
            continue
        paths = render_figure3(panel, fig, out_dir, figure_caption(plan, panel))
        written[f"fig3{panel}"] = list(paths.values())
    return written

