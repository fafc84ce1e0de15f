"""Render the paper's tables side by side with reproduced results.

Pure functions (no I/O except :func:`write_table`) that turn

* a *reported* frame (:func:`paper_tables.reported.load_reported_table1` /
  :func:`~paper_tables.reported.load_reported_table2`) and
* a tidy frame of *reproduced* per-seed runs

into a long **cells** frame (one row per paper cell), which is then laid out
like the paper (:func:`display_frame`) and written as Markdown / LaTeX / CSV.

Reproduced tidy frame columns: ``artifact`` ("table1"/"table2"), ``dataset``,
``arch``, ``num``, ``setting`` (balanced/imbalanced), ``method``, ``variant``
(none/full/ft-only/no-comp/no-ft), ``seed``, ``top1`` (percent), and
optionally ``paper_dataset``, ``paper_arch``, ``paper_num`` -- the paper cell a
run stands in for (e.g. in a demo profile). Rendering keys on the paper
columns; when they are absent they equal ``dataset``/``arch``/``num``.

Layout (mirrors the paper):

* Table 1 (Sec. 5.2): rows = methods; columns = Num x {Balance, Imbalance}.
  Each method has the sub-rows ``paper`` (as printed, incl. the "(x.xx↓)"
  drop), ``reproduced`` (mean ± std over seeds, with the reproduced drop
  balanced − imbalanced appended to Imbalance cells) and, where a column runs
  the paper's configuration, ``Δ`` (reproduced mean − reported).
* Table 2 (Sec. 5.3): rows = method / "+ Ours" / "<method> + FT only (not in
  paper)"; columns = dataset x Num. The FT-only control has no paper number and
  only a ``reproduced`` sub-row.

Columns are named by what ran (:func:`column_label`), e.g. "CIFAR-10 / ResNet-32
(paper: VGG-16) Num=10". A column *is the paper's configuration* when its run
dataset, architecture and Num equal the paper's (:func:`is_paper_config`); only
there is Δ a target comparison and printed. In a stand-in column the paper's
number is context: no Δ row is printed when no column of a row is the paper's
configuration, and a mixed row shows :data:`CONTEXT_ONLY` in its stand-in
columns. The CSV keeps the numeric ``diff`` everywhere and says in
``comparison`` whether it is a ``target`` or ``context`` difference.

What ran comes from ``columns`` (``{paper dataset: run}``, any object with
``dataset``, ``arch`` and ``num(paper_num)`` such as
:class:`benchmark.profiles.ColumnMap` or :class:`ColumnRun`); without it, from
the runs themselves (their own dataset/arch/num beside the ``paper_*`` cell they
stand for; a column without runs is taken as run as in the paper).

Cell conventions: std is the sample std (ddof=1) over seeds; a cell without
runs shows "—"; a cell listed in the ``na`` mapping (and without runs) shows
"n/a (<reason>)"; with ``flag_2std=True`` a Δ in a paper-configuration column
with |Δ| > 2·std gets :data:`FLAG_MARK`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Protocol, Sequence

import pandas as pd
from tabulate import tabulate

from oefsmc.atomic import atomic_write

from .columns import ColumnMap

from .figure3 import render_figure3, render_figure3_panels  # noqa: F401  (re-export)

__all__ = [
    "METHOD_LABELS",
    "DATASET_LABELS",
    "ARCH_LABELS",
    "FLAG_MARK",
    "MISSING",
    "CONTEXT_ONLY",
    "ColumnRun",
    "is_paper_config",
    "column_label",
    "normalize_reproduced",
    "render_table1",
    "render_table2",
    "display_frame",
    "footnotes",
    "to_markdown",
    "to_latex",
    "cells_csv",
    "write_table",
    "render_figure3",
    "render_figure3_panels",
]

METHODS: Sequence[str] = ("cd", "fskd", "mir", "practise")
METHOD_LABELS = {"cd": "CD", "fskd": "FSKD", "mir": "MiR", "practise": "PRACTISE"}
DATASET_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenet": "ILSVRC-2012"}
DATASET_ORDER = ("cifar10", "cifar100", "imagenet")
#: Architecture names as printed (the paper's three, the suite's other CIFAR ResNets); others print as-is.
ARCH_LABELS = {"vgg16": "VGG-16", "resnet20": "ResNet-20", "resnet32": "ResNet-32", "resnet34": "ResNet-34",
               "resnet56": "ResNet-56"}
SETTING_LABELS = {"balanced": "Balance", "imbalanced": "Imbalance"}
#: The paper's Table 1 column (Sec. 5.2): VGG-16 on CIFAR-10.
TABLE1_DATASET, TABLE1_ARCH = "cifar10", "vgg16"
#: Table 2 row variants in display order.
TABLE2_VARIANTS = ("none", "full", "ft-only")

FLAG_MARK = " ⚠"
MISSING = "—"
#: The Δ-row text of a stand-in column in a row that also has paper-configuration columns.
CONTEXT_ONLY = "context only"
#: ``comparison`` values of the CSV: what the ``diff`` of a cell with a paper number is.
TARGET, CONTEXT = "target", "context"
NOTE_MARKS = ("†", "‡", "§", "¶", "‖", "#")
ROW_PAPER, ROW_REPRO, ROW_DIFF = "paper", "reproduced", "Δ (repro − paper)"

#: Columns of the machine-readable CSV (one row per cell).
CSV_COLUMNS = [
    "artifact", "row", "col", "dataset", "arch", "num", "setting", "method", "variant",
    "reported", "printed_drop", "reproduced_mean", "reproduced_std", "n", "diff",
    "reproduced_drop", "flag", "comparison", "status", "note", "standin",
]

NaMapping = Optional[Mapping[tuple, str]]


# --------------------------------------------------------------------------- columns: what ran
class RunsAs(Protocol):
    """What ran for a paper column (``benchmark.profiles.ColumnMap`` has this shape)."""

    dataset: str
    arch: str

    def num(self, paper_num: int) -> int: ...


#: What ran for one paper column (the profiles' own definition).
ColumnRun = ColumnMap


@dataclass(frozen=True)
class ColumnInfo:
    """A rendered column: its header and whether it is the paper's configuration (Δ is a target)."""

    label: str
    target: bool


def is_paper_config(run: Optional[RunsAs], paper_dataset: str, paper_arch: str, paper_num: int) -> bool:
    """True when the column runs the paper's own configuration: dataset, architecture and Num unchanged
    (then Δ = reproduced − paper is a target comparison; otherwise the paper's number is context)."""
    return run is not None and (run.dataset, run.arch, run.num(paper_num)) == (paper_dataset, paper_arch, paper_num)


def _ds_label(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)


def _arch_label(arch: str) -> str:
    return ARCH_LABELS.get(arch, arch)


def column_label(paper_dataset: str, paper_arch: str, paper_num: int, run: Optional[RunsAs] = None) -> str:
    """Header naming what ran, with the paper's configuration where it differs.

    "CIFAR-100 / ResNet-32 Num=100" (as in the paper, or ``run`` is ``None``), "CIFAR-10 / ResNet-32
    (paper: VGG-16) Num=10" (only the architecture differs), "digits / demo_resnet_s Num=10 (paper:
    CIFAR-100 / ResNet-32 Num=100)" (the dataset or Num differs).
    """
    paper = f"{_ds_label(paper_dataset)} / {_arch_label(paper_arch)}"
    if run is None or is_paper_config(run, paper_dataset, paper_arch, paper_num):
        return f"{paper} Num={paper_num}"
    num = run.num(paper_num)
    if (run.dataset, num) == (paper_dataset, paper_num):
        return f"{_ds_label(run.dataset)} / {_arch_label(run.arch)} (paper: {_arch_label(paper_arch)}) Num={num}"
    return f"{_ds_label(run.dataset)} / {_arch_label(run.arch)} Num={num} (paper: {paper} Num={paper_num})"


@dataclass(frozen=True)
class _ObservedRun:
    """What the runs of one paper cell column ran (inferred from the tidy frame)."""

    dataset: str
    arch: str
    run_num: int

    def num(self, paper_num: int) -> int:
        return self.run_num


def column_info(paper_dataset: str, paper_arch: str, paper_num: int, runs: pd.DataFrame,
                columns: Optional[Mapping[str, RunsAs]]) -> ColumnInfo:
    """Header and target flag of a paper column.

    From ``columns`` when given (a paper dataset absent from it is not run: the paper's label, not a
    target); else from the column's runs: none -> taken as run as in the paper; runs that disagree on
    what ran -> the paper's label, not a target (the stand-in footnote lists them).
    """
    if columns is not None:
        run = columns.get(paper_dataset)
        return ColumnInfo(column_label(paper_dataset, paper_arch, paper_num, run),
                          is_paper_config(run, paper_dataset, paper_arch, paper_num))
    sel = runs[(runs["paper_dataset"] == paper_dataset) & (runs["paper_num"] == paper_num)]
    configs = set(zip(sel["dataset"], sel["arch"], sel["num"]))
    if len(configs) != 1:
        return ColumnInfo(column_label(paper_dataset, paper_arch, paper_num), not configs)
    run = _ObservedRun(*configs.pop())
    return ColumnInfo(column_label(paper_dataset, paper_arch, paper_num, run),
                      is_paper_config(run, paper_dataset, paper_arch, paper_num))


# --------------------------------------------------------------------------- frames and cells
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


def _match_na(na: NaMapping, key: tuple) -> Optional[str]:
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


def _cell(runs: pd.DataFrame, reported: Optional[float], na_reason: Optional[str], flag_2std: bool,
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


def _finish(cells: list[dict]) -> pd.DataFrame:
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


def _select(df: pd.DataFrame, **eq) -> pd.DataFrame:
    mask = pd.Series(True, index=df.index)
    for col, val in eq.items():
        mask &= df[col] == val
    return df[mask]


# --------------------------------------------------------------------------- tables
def render_table1(
    reported: pd.DataFrame,
    reproduced: Optional[pd.DataFrame] = None,
    *,
    flag_2std: bool = False,
    na: NaMapping = None,
    columns: Optional[Mapping[str, RunsAs]] = None,
) -> pd.DataFrame:
    """Cells of Table 1 (the paper's VGG-16 on CIFAR-10, balanced vs. imbalanced; Sec. 5.2).

    ``reported``: :func:`~paper_tables.reported.load_reported_table1`.
    ``reproduced``: tidy runs; rows with ``artifact == "table1"`` and
    ``variant == "none"`` (or missing) are used, matched on
    (method, paper_num, setting).
    ``na``: ``{(method, num, setting): reason}``; ``None`` fields are wildcards.
    ``columns``: what ran for each paper column (see the module docstring);
    here only ``"cifar10"`` is read.

    Returns one row per cell with stats (``reproduced_mean``, ``reproduced_std``,
    ``n``, ``diff``, ``flag``, ``status``, ``reproduced_drop`` on imbalanced
    cells = balanced mean − imbalanced mean), ``target``/``comparison`` and
    display texts; ``col`` names what ran.
    """
    runs = normalize_reproduced(reproduced)
    runs = runs[(runs["artifact"] == "table1") & (runs["variant"].isna() | (runs["variant"] == "none"))]
    rep = reported.copy()
    rep["morder"] = rep["method"].map({m: i for i, m in enumerate(METHODS)})
    rep = rep.sort_values(["morder", "num", "setting"], kind="stable")
    nums = sorted(rep["num"].unique())
    cells, by_key = [], {}
    for r in rep.itertuples(index=False):
        key = (r.method, int(r.num), r.setting)
        col = column_info(TABLE1_DATASET, TABLE1_ARCH, int(r.num), runs, columns)
        c = _cell(
            _select(runs, method=r.method, paper_num=int(r.num), setting=r.setting),
            r.reported, _match_na(na, key), flag_2std, ColumnInfo(f"{col.label} {SETTING_LABELS[r.setting]}",
                                                                  col.target),
        )
        c.update(
            artifact="table1", row=METHOD_LABELS.get(r.method, r.method), row_order=int(r.morder),
            col_order=2 * nums.index(r.num) + (r.setting == "imbalanced"),
            dataset=TABLE1_DATASET, arch=TABLE1_ARCH, num=int(r.num), setting=r.setting,
            method=r.method, variant="none", reported=r.reported, reported_str=r.reported_str,
            printed_drop_str=r.printed_drop_str, note=r.note, reproduced_drop=math.nan,
        )
        by_key[key] = c
        cells.append(c)
    for (method, num, setting), c in by_key.items():
        bal = by_key.get((method, num, "balanced"))
        if setting == "imbalanced" and bal is not None and c["n"] and bal["n"]:
            c["reproduced_drop"] = bal["reproduced_mean"] - c["reproduced_mean"]
    return _finish(cells)


def render_table2(
    reported: pd.DataFrame,
    reproduced: Optional[pd.DataFrame] = None,
    *,
    flag_2std: bool = False,
    na: NaMapping = None,
    include_ft_only: bool = True,
    columns: Optional[Mapping[str, RunsAs]] = None,
) -> pd.DataFrame:
    """Cells of Table 2 (baselines with / without OE-FSMC; Sec. 5.3).

    ``reported``: :func:`~paper_tables.reported.load_reported_table2`.
    ``reproduced``: tidy runs; rows with ``artifact == "table2"``,
    ``variant`` in none/full/ft-only and ``setting`` imbalanced (or missing)
    are used, matched on (paper_dataset, paper_num, method, variant).
    ``na``: ``{(dataset, num, method, variant): reason}``; ``None`` = wildcard.
    ``include_ft_only``: add the "<method> + FT only (not in paper)" control row.
    ``columns``: what ran for each paper column (see the module docstring).
    """
    runs = normalize_reproduced(reproduced)
    runs = runs[(runs["artifact"] == "table2") & (runs["setting"].isna() | (runs["setting"] == "imbalanced"))]
    paper_columns = (
        reported[["dataset", "arch", "num"]].drop_duplicates()
        .assign(_d=lambda f: f["dataset"].map({d: i for i, d in enumerate(DATASET_ORDER)}))
        .sort_values(["_d", "num"], kind="stable")
    )
    infos = [column_info(col.dataset, col.arch, int(col.num), runs, columns)
             for col in paper_columns.itertuples(index=False)]
    variants = TABLE2_VARIANTS if include_ft_only else TABLE2_VARIANTS[:2]
    lookup = {(r.dataset, int(r.num), r.method, r.variant): r for r in reported.itertuples(index=False)}
    cells = []
    for mi, method in enumerate(METHODS):
        label = METHOD_LABELS[method]
        row_labels = {"none": label, "full": "+ Ours", "ft-only": f"{label} + FT only (not in paper)"}
        for vi, variant in enumerate(variants):
            for ci, (col, info) in enumerate(zip(paper_columns.itertuples(index=False), infos)):
                key = (col.dataset, int(col.num), method, variant)
                rep = lookup.get(key)
                c = _cell(
                    _select(runs, paper_dataset=col.dataset, paper_num=int(col.num), method=method,
                            variant=variant),
                    rep.reported if rep is not None else None, _match_na(na, key), flag_2std, info,
                )
                c.update(
                    artifact="table2", row=row_labels[variant],
                    row_order=mi * len(variants) + vi, col_order=ci, dataset=col.dataset,
                    arch=col.arch, num=int(col.num), setting="imbalanced", method=method,
                    variant=variant, reported=rep.reported if rep is not None else math.nan,
                    reported_str=rep.reported_str if rep is not None else "",
                    printed_drop_str="", note=rep.note if rep is not None else "",
                    reproduced_drop=math.nan,
                )
                cells.append(c)
    return _finish(cells)


# --------------------------------------------------------------------------- layout
def display_frame(cells: pd.DataFrame) -> pd.DataFrame:
    """Paper-shaped wide frame: ``Method``, ``Row`` + one column per paper column.

    Each paper row expands into sub-rows ``paper`` / ``reproduced`` / ``Δ``;
    the ``Δ`` sub-row only where some column of the row is the paper's
    configuration (a target); rows without a paper number (the FT-only
    control) only get ``reproduced``.
    """
    cols = cells.sort_values("col_order").drop_duplicates("col_order")["col"].tolist()
    out = []
    for _, group in cells.sort_values(["row_order", "col_order"]).groupby("row_order", sort=True):
        in_paper = group["reported_str"] != ""
        subrows = [(ROW_PAPER, "text_paper"), (ROW_REPRO, "text_reproduced")]
        if (in_paper & group["target"]).any():
            subrows.append((ROW_DIFF, "text_diff"))
        if not in_paper.any():
            subrows = [(ROW_REPRO, "text_reproduced")]
        for i, (name, field) in enumerate(subrows):
            line = {"Method": group["row"].iloc[0] if i == 0 else "", "Row": name}
            line.update(dict(zip(group["col"], group[field])))
            out.append(line)
    return pd.DataFrame(out, columns=["Method", "Row"] + cols)


def footnotes(cells: pd.DataFrame) -> list[str]:
    """Footnote lines: paper notes (by mark), the 2·std flag legend, what a stand-in column's paper number is."""
    lines = []
    notes = cells[cells["note"] != ""].drop_duplicates("note")
    lines += [f"{m} {n}" for m, n in zip(notes["note_mark"], notes["note"])]
    if cells["flag"].any():
        lines.append(f"{FLAG_MARK.strip()} |Δ| > 2·std of the reproduced seeds.")
    context = cells[cells["comparison"] == CONTEXT]
    if len(context):
        mixed = (cells["comparison"] == TARGET).any()
        where = f" (\"{CONTEXT_ONLY}\" in the Δ row)" if mixed else ", so no Δ row is printed"
        lines.append("Columns are named by what ran; \"(paper: ...)\" gives the paper's configuration where it "
                     "differs. Δ (repro − paper) is a target only where a column runs the paper's "
                     "configuration (dataset, architecture and Num unchanged); in a stand-in column the "
                     f"paper's number is context, not a target{where}.")
    return lines


def to_markdown(cells: pd.DataFrame, caption: Optional[str] = None) -> str:
    """GitHub-flavoured Markdown: caption paragraph, table, footnotes."""
    frame = display_frame(cells)
    table = tabulate(frame, headers="keys", tablefmt="github", showindex=False, disable_numparse=True)
    parts = ([caption] if caption else []) + [table] + footnotes(cells)
    return "\n\n".join(parts) + "\n"


_LATEX_UNICODE = {
    "±": r"$\pm$", "↓": r"$\downarrow$", "↑": r"$\uparrow$", "—": "---", "−": "$-$",
    "Δ": r"$\Delta$", "⚠": r"$^{(!)}$", "†": r"$^{\dagger}$", "‡": r"$^{\ddagger}$",
    "§": r"\S{}", "¶": r"\P{}", "‖": r"$\|$", "←": r"$\leftarrow$", "·": r"$\cdot$",
    "≈": r"$\approx$",
}
_LATEX_ESCAPE = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def _latex_unicode(text: str) -> str:
    for u, tex in _LATEX_UNICODE.items():
        text = text.replace(u, tex)
    return text


def _latex_escape(text: str) -> str:
    return _latex_unicode("".join(_LATEX_ESCAPE.get(ch, ch) for ch in text))


def to_latex(cells: pd.DataFrame, caption: Optional[str] = None, label: Optional[str] = None) -> str:
    """A ``table`` environment with ``\\caption`` around a booktabs tabular."""
    frame = display_frame(cells)
    body = tabulate(frame, headers="keys", tablefmt="latex_booktabs", showindex=False, disable_numparse=True)
    lines = [r"\begin{table}[t]", r"\centering", r"\small"]
    if caption:
        lines.append(rf"\caption{{{_latex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines.append(r"\resizebox{\textwidth}{!}{%")
    lines.append(_latex_unicode(body.rstrip("\n")) + "}")
    for note in footnotes(cells):
        lines.append(rf"\par\footnotesize {_latex_escape(note)}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _csv_float(x) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def cells_csv(cells: pd.DataFrame) -> str:
    """Machine-readable CSV text, one row per cell (columns :data:`CSV_COLUMNS`).

    ``reported``/``printed_drop`` are the printed strings; floats have 4 decimals; ``diff`` is kept in
    every cell with a paper number and ``comparison`` says what it is: ``target`` (the column is the paper's
    configuration) or ``context`` (a stand-in column); empty without a paper number.
    """
    df = cells.sort_values(["row_order", "col_order"]).copy()
    df["reported"] = df["reported_str"]
    df["printed_drop"] = df["printed_drop_str"]
    for col in ("reproduced_mean", "reproduced_std", "diff", "reproduced_drop"):
        df[col] = [_csv_float(x) for x in df[col]]
    df["flag"] = df["flag"].map({True: "true", False: "false"})
    df["note"] = ["; ".join(x for x in (n, f"n/a: {r}" if r else "") if x)
                  for n, r in zip(df["note"], df["na_reason"])]
    return df[CSV_COLUMNS].to_csv(index=False, lineterminator="\n")


# --------------------------------------------------------------------------- I/O
def atomic_write_text(path: Path, text: str) -> None:
    """Atomic write (see :mod:`oefsmc.atomic`); ``newline=""`` keeps the CSV writer's line endings."""
    atomic_write(path, text, newline="")


def write_table(cells: pd.DataFrame, out_dir, name: str, caption: Optional[str] = None) -> dict[str, Path]:
    """Write ``<name>.md``, ``<name>.tex`` and ``<name>.csv`` atomically.

    ``cells`` is the frame returned by :func:`render_table1` /
    :func:`render_table2`. Returns ``{"md": path, "tex": path, "csv": path}``.
    """
    out_dir = Path(out_dir)
    paths = {ext: out_dir / f"{name}.{ext}" for ext in ("md", "tex", "csv")}
    atomic_write_text(paths["md"], to_markdown(cells, caption))
    atomic_write_text(paths["tex"], to_latex(cells, caption, label=f"tab:{name}"))
    atomic_write_text(paths["csv"], cells_csv(cells))
    return paths
