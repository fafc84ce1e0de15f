"""One cell of a rendered table: its statistics over seeds, its status and the texts of its sub-rows.

Conventions (the tables of :mod:`paper_tables.tables`): std is the sample std (ddof=1) over seeds; a cell
without runs is ``missing`` ("—"); a cell listed in the ``na`` mapping (and without runs) is ``na``
("n/a (<reason>)"); Δ = reproduced mean − reported is a *target* only in a column that is the paper's
configuration (:func:`paper_tables.columns.is_paper_config`), elsewhere *context* ("context only" in the Δ
row); with ``flag_2std`` a target Δ with |Δ| > 2·std gets :data:`FLAG_MARK`.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional

import pandas as pd

from .columns import ColumnInfo

FLAG_MARK = " ⚠"
MISSING = "—"
#: The Δ-row text of a stand-in column in a row that also has paper-configuration columns.
CONTEXT_ONLY = "context only"
#: ``comparison`` values of the CSV: what the ``diff`` of a cell with a paper number is.
TARGET, CONTEXT = "target", "context"
NOTE_MARKS = ("†", "‡", "§", "¶", "‖", "#")
ROW_PAPER, ROW_REPRO, ROW_DIFF = "paper", "reproduced", "Δ (repro − paper)"

NaMapping = Optional[Mapping[tuple, str]]


def normalize_reproduced(reproduced: Optional[pd.DataFrame]) -> pd.DataFrame:
    """Copy of the tidy reproduced frame with ``paper_*`` columns filled in.

    Missing ``paper_dataset``/``paper_arch``/``paper_num`` columns (or NaN
    entries) default to ``dataset``/``arch``/``num``; rows with NaN ``top1``
    (failed runs) are dropped; ``num``/``paper_num`` become ints.
    """
    cols = ["artifact", "dataset", "arch", "num", "setting", "method", "variant", "seed", "top1"]
    if reproduced is None or len(reproduced) == 0:
        return pd.DataFrame(columns=cols + ["paper_dataset", "paper_arch", "paper_num"])
    df = reproduced.copy()
    for col in ("setting", "variant"):
        if col not in df:
            df[col] = pd.NA
    for own in ("dataset", "arch", "num"):
        paper = f"paper_{own}"
        df[paper] = df[paper].fillna(df[own]) if paper in df else df[own]
    df = df[df["top1"].notna()].copy()
    df["top1"] = df["top1"].astype(float)
    df["num"] = df["num"].astype(int)
    df["paper_num"] = df["paper_num"].astype(int)
    return df


def match_na(na: NaMapping, key: tuple) -> Optional[str]:
    """Reason for a not-applicable cell: first mapping key equal to ``key``,
    where ``None`` in a mapping key is a wildcard."""
    for pattern, reason in (na or {}).items():
        if len(pattern) != len(key):
            raise ValueError(f"na key {pattern!r} must have {len(key)} fields like {key!r}")
        if all(p is None or p == k for p, k in zip(pattern, key)):
            return reason
    return None


def _fmt_num(x: float) -> str:
    return f"{x:.2f}"


def _fmt_signed(x: float) -> str:
    return f"{x:+.2f}"


def _fmt_drop(drop: float) -> str:
    """Accuracy change balanced − imbalanced, written like the paper's "(3.55↓)"."""
    return f"({abs(drop):.2f}{'↓' if drop >= 0 else '↑'})"


def _standin(runs: pd.DataFrame) -> str:
    """Reproduced configs that differ from the paper cell they stand in for."""
    if runs.empty:
        return ""
    diff = runs[
        (runs["dataset"] != runs["paper_dataset"])
        | (runs["arch"] != runs["paper_arch"])
        | (runs["num"] != runs["paper_num"])
    ]
    labels = sorted({f"{d}/{a}/Num={n}" for d, a, n in zip(diff["dataset"], diff["arch"], diff["num"])})
    return "; ".join(labels)


def cell_stats(runs: pd.DataFrame, reported: Optional[float], na_reason: Optional[str], flag_2std: bool,
          column: ColumnInfo) -> dict:
    """Statistics and status of one cell (before text formatting); the 2·std flag only in a column that is
    the paper's configuration, where Δ is a target."""
    top1 = runs["top1"]
    n = int(top1.count())
    mean = float(top1.mean()) if n else math.nan
    std = float(top1.std(ddof=1)) if n > 1 else math.nan
    has_reported = reported is not None and not math.isnan(reported)
    diff = mean - reported if (n and has_reported) else math.nan
    flag = bool(flag_2std and column.target and n > 1 and not math.isnan(diff) and abs(diff) > 2 * std)
    if n:
        status = "ok"
    elif na_reason is not None:
        status = "na"
    else:
        status = "missing"
    return {
        "reproduced_mean": mean, "reproduced_std": std, "n": n, "diff": diff, "flag": flag,
        "status": status, "na_reason": na_reason if status == "na" else "", "standin": _standin(runs),
        "col": column.label, "target": column.target,
        "comparison": (TARGET if column.target else CONTEXT) if has_reported else "",
    }


def _repro_text(c: Mapping) -> str:
    if c["status"] == "na":
        return f"n/a ({c['na_reason']})"
    if c["status"] == "missing":
        return MISSING
    std = "" if math.isnan(c["reproduced_std"]) else f" ± {_fmt_num(c['reproduced_std'])}"
    text = f"{_fmt_num(c['reproduced_mean'])}{std} (n={c['n']})"
    drop = c.get("reproduced_drop", math.nan)
    if drop is not None and not math.isnan(drop):
        text += f" {_fmt_drop(drop)}"
    return text


def _diff_text(c: Mapping) -> str:
    if not c["target"]:
        return CONTEXT_ONLY
    if c["status"] == "na":
        return "n/a"
    if math.isnan(c["diff"]):
        return MISSING
    return _fmt_signed(c["diff"]) + (FLAG_MARK if c["flag"] else "")


def finish_cells(cells: list[dict]) -> pd.DataFrame:
    """Assign footnote marks to paper notes and format the sub-row texts (paper, reproduced, Δ)."""
    marks: dict[str, str] = {}
    for c in cells:
        if c["note"] and c["note"] not in marks:
            marks[c["note"]] = NOTE_MARKS[len(marks) % len(NOTE_MARKS)] * (1 + len(marks) // len(NOTE_MARKS))
        c["note_mark"] = marks.get(c["note"], "")
        if c["reported_str"]:
            paper = c["reported_str"]
            if c.get("printed_drop_str"):
                paper += f" ({c['printed_drop_str']}↓)"
            c["text_paper"] = paper + (f" {c['note_mark']}" if c["note_mark"] else "")
        else:
            c["text_paper"] = ""
        c["text_reproduced"] = _repro_text(c)
        c["text_diff"] = _diff_text(c) if c["reported_str"] else ""
    return pd.DataFrame(cells)


def select_rows(df: pd.DataFrame, **eq) -> pd.DataFrame:
    mask = pd.Series(True, index=df.index)
    for col, val in eq.items():
        mask &= df[col] == val
    return df[mask]
