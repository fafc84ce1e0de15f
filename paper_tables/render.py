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

Labels and orders (methods, variants, datasets, architectures) come from :mod:`oefsmc.axes`; a method the
paper does not have is shown after the paper's four, labelled by its name.  This module is the public face;
the work is split by job:

* :mod:`paper_tables.columns` -- what ran for a column, its header, whether it is the paper's configuration
* :mod:`paper_tables.cells`   -- one cell's statistics, status and sub-row texts (paper, reproduced, Δ)
* :mod:`paper_tables.tables`  -- :func:`render_table1` / :func:`render_table2` (the cells frames)
* :mod:`paper_tables.formats` -- the paper-shaped layout, Markdown / LaTeX / CSV, atomic writing
"""
from __future__ import annotations

from oefsmc.axes import (
    ARCH_AXIS,
    METHOD_NAMES,
    PAPER_DATASETS,
    TABLE2_VARIANTS,
    arch_label,
    dataset_label,
    method_label,
)

from .cells import (
    CONTEXT,
    CONTEXT_ONLY,
    FLAG_MARK,
    MISSING,
    NOTE_MARKS,
    ROW_DIFF,
    ROW_PAPER,
    ROW_REPRO,
    TARGET,
    NaMapping,
    normalize_reproduced,
)
from .columns import (
    ColumnInfo,
    ColumnMap,
    ColumnRun,
    RunsAs,
    column_info,
    column_label,
    is_paper_config,
)
from .figure3 import render_figure3, render_figure3_panels
from .formats import (
    CSV_COLUMNS,
    atomic_write_text,
    cells_csv,
    display_frame,
    footnotes,
    to_latex,
    to_markdown,
    write_table,
)
from .tables import (
    SETTING_LABELS,
    TABLE1_ARCH,
    TABLE1_DATASET,
    render_table1,
    render_table2,
)

#: Every name here stays importable from this module (``from paper_tables.render import X``).
__all__ = [
    "ARCH_LABELS", "CONTEXT", "CONTEXT_ONLY", "CSV_COLUMNS", "DATASET_LABELS", "DATASET_ORDER", "FLAG_MARK",
    "METHODS", "METHOD_LABELS", "MISSING", "NOTE_MARKS", "ROW_DIFF", "ROW_PAPER", "ROW_REPRO", "SETTING_LABELS",
    "TABLE1_ARCH", "TABLE1_DATASET", "TABLE2_VARIANTS", "TARGET", "ColumnInfo", "ColumnMap", "ColumnRun",
    "NaMapping", "RunsAs", "atomic_write_text", "cells_csv", "column_info", "column_label", "display_frame",
    "footnotes", "is_paper_config", "normalize_reproduced", "render_figure3", "render_figure3_panels",
    "render_table1", "render_table2", "to_latex", "to_markdown", "write_table",
]

# The paper's axes as the mappings this module has always exported (the one source is oefsmc.axes).
METHODS = METHOD_NAMES
METHOD_LABELS = {m: method_label(m) for m in METHOD_NAMES}
DATASET_LABELS = {d: dataset_label(d) for d in PAPER_DATASETS}
DATASET_ORDER = PAPER_DATASETS
ARCH_LABELS = {a: arch_label(a) for a in ARCH_AXIS.names()}
