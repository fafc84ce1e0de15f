"""The paper's two tables as long *cells* frames: one row per paper cell, reported beside reproduced.

:func:`render_table1` (Sec. 5.2: rows = methods; columns = Num x {Balance, Imbalance}) and
:func:`render_table2` (Sec. 5.3: rows = method / "+ Ours" / "<method> + FT only (not in paper)"; columns =
dataset x Num).  Methods are the suite's (:data:`oefsmc.axes.METHOD_NAMES`, in the paper's order) and any other
method that has runs or paper numbers, after them by name and labelled by its name; the cell statistics
and texts are :mod:`paper_tables.cells`', the column headers :mod:`paper_tables.columns`'.  Layout and
writing: :mod:`paper_tables.formats`.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional

import pandas as pd

from oefsmc.axes import (
    DATASET_AXIS,
    METHOD_AXIS,
    METHOD_NAMES,
    TABLE1_ARCH,
    TABLE1_DATASET,
    TABLE2_VARIANTS,
    method_label,
    method_order,
    table2_row_label,
)

from .cells import (
    NaMapping,
    cell_stats,
    finish_cells,
    match_na,
    normalize_reproduced,
    select_rows,
)
from .columns import ColumnInfo, RunsAs, column_info

__all__ = ["SETTING_LABELS", "TABLE1_ARCH", "TABLE1_DATASET", "TABLE2_VARIANTS", "render_table1", "render_table2"]

SETTING_LABELS = {"balanced": "Balance", "imbalanced": "Imbalance"}


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
    ``columns``: what ran for each paper column (see :mod:`paper_tables.render`);
    here only ``"cifar10"`` is read.

    Returns one row per cell with stats (``reproduced_mean``, ``reproduced_std``,
    ``n``, ``diff``, ``flag``, ``status``, ``reproduced_drop`` on imbalanced
    cells = balanced mean − imbalanced mean), ``target``/``comparison`` and
    display texts; ``col`` names what ran.
    """
    runs = normalize_reproduced(reproduced)
    runs = runs[(runs["artifact"] == "table1") & (runs["variant"].isna() | (runs["variant"] == "none"))]
    nums = sorted(int(n) for n in reported["num"].unique())
    morder = METHOD_AXIS.ranks([*reported["method"], *runs["method"]])
    lookup = {(r.method, int(r.num), r.setting): r for r in reported.itertuples(index=False)}
    # a method without paper numbers (not in the paper) gets the paper's Nums and settings
    keys = list(lookup) + [(m, n, s) for m in morder if m not in set(reported["method"])
                           for n in nums for s in SETTING_LABELS]
    keys.sort(key=lambda k: (morder[k[0]], k[1], k[2]))
    cells, by_key = [], {}
    for key in keys:
        method, num, setting = key
        r = lookup.get(key)
        col = column_info(TABLE1_DATASET, TABLE1_ARCH, num, runs, columns)
        c = cell_stats(
            select_rows(runs, method=method, paper_num=num, setting=setting),
            r.reported if r is not None else None, match_na(na, key), flag_2std,
            ColumnInfo(f"{col.label} {SETTING_LABELS[setting]}", col.target),
        )
        c.update(
            artifact="table1", row=method_label(method), row_order=morder[method],
            col_order=2 * nums.index(num) + (setting == "imbalanced"),
            dataset=TABLE1_DATASET, arch=TABLE1_ARCH, num=num, setting=setting,
            method=method, variant="none", reported=r.reported if r is not None else math.nan,
            reported_str=r.reported_str if r is not None else "",
            printed_drop_str=r.printed_drop_str if r is not None else "", note=r.note if r is not None else "",
            reproduced_drop=math.nan,
        )
        by_key[key] = c
        cells.append(c)
    for (method, num, setting), c in by_key.items():
        bal = by_key.get((method, num, "balanced"))
        if setting == "imbalanced" and bal is not None and c["n"] and bal["n"]:
            c["reproduced_drop"] = bal["reproduced_mean"] - c["reproduced_mean"]
    return finish_cells(cells)


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
    ``columns``: what ran for each paper column (see :mod:`paper_tables.render`).
    """
    runs = normalize_reproduced(reproduced)
    runs = runs[(runs["artifact"] == "table2") & (runs["setting"].isna() | (runs["setting"] == "imbalanced"))]
    # the paper's columns, then any column with runs only (a dataset or Num the paper does not have)
    ran = runs[["paper_dataset", "paper_arch", "paper_num"]].set_axis(["dataset", "arch", "num"], axis=1)
    paper_columns = (
        pd.concat([reported[["dataset", "arch", "num"]], ran.astype({"num": int})], ignore_index=True)
        .drop_duplicates(["dataset", "num"])
        .assign(_d=lambda f: f["dataset"].map(DATASET_AXIS.ranks(f["dataset"])))
        .sort_values(["_d", "num"], kind="stable")
    )
    infos = [column_info(col.dataset, col.arch, int(col.num), runs, columns)
             for col in paper_columns.itertuples(index=False)]
    variants = TABLE2_VARIANTS if include_ft_only else TABLE2_VARIANTS[:2]
    lookup = {(r.dataset, int(r.num), r.method, r.variant): r for r in reported.itertuples(index=False)}
    cells = []
    # the suite's methods, then any other method with runs or paper numbers (after them, by name)
    for mi, method in enumerate(method_order([*METHOD_NAMES, *reported["method"], *runs["method"]])):
        for vi, variant in enumerate(variants):
            for ci, (col, info) in enumerate(zip(paper_columns.itertuples(index=False), infos)):
                key = (col.dataset, int(col.num), method, variant)
                rep = lookup.get(key)
                c = cell_stats(
                    select_rows(runs, paper_dataset=col.dataset, paper_num=int(col.num), method=method,
                            variant=variant),
                    rep.reported if rep is not None else None, match_na(na, key), flag_2std, info,
                )
                c.update(
                    artifact="table2", row=table2_row_label(method, variant),
                    row_order=mi * len(variants) + vi, col_order=ci, dataset=col.dataset,
                    arch=col.arch, num=int(col.num), setting="imbalanced", method=method,
                    variant=variant, reported=rep.reported if rep is not None else math.nan,
                    reported_str=rep.reported_str if rep is not None else "",
                    printed_drop_str="", note=rep.note if rep is not None else "",
                    reproduced_drop=math.nan,
                )
                cells.append(c)
    return finish_cells(cells)
