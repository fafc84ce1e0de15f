"""Lay a cells frame out like the paper and write it: Markdown, LaTeX and CSV.

:func:`display_frame` expands each paper row into its ``paper`` / ``reproduced`` / ``Δ`` sub-rows;
:func:`to_markdown`, :func:`to_latex` and :func:`cells_csv` format it; :func:`write_table` writes all three
atomically.  The frames come from :mod:`paper_tables.tables`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import pandas as pd
from tabulate import tabulate

from oefsmc.atomic import atomic_write

from .cells import (
    CONTEXT,
    CONTEXT_ONLY,
    FLAG_MARK,
    ROW_DIFF,
    ROW_PAPER,
    ROW_REPRO,
    TARGET,
)

__all__ = [
    "CSV_COLUMNS",
    "atomic_write_text",
    "cells_csv",
    "display_frame",
    "footnotes",
    "to_latex",
    "to_markdown",
    "write_table",
]

#: Columns of the machine-readable CSV (one row per cell).
CSV_COLUMNS = [
    "artifact", "row", "col", "dataset", "arch", "num", "setting", "method", "variant",
    "reported", "printed_drop", "reproduced_mean", "reproduced_std", "n", "diff",
    "reproduced_drop", "flag", "comparison", "status", "note", "standin",
]


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
