"""Where OE-FSMC helps and hurts, in numbers: each Table 2 column's head / medium / tail accuracy, paired by seed.

The per-class figures (:mod:`paper_tables.perclass`) show every class; this table states the paper's
minority-class story (Sec. 5.3: the class-aware weights of Eqs. 5-6 and the OOD regulariser of Eqs. 8-9 are
meant to lift the tail) as paired differences a reviewer can check.  Per (column, method, group):

* the group accuracy of one run = the mean of its classes' test accuracies (the records' ``head`` /
  ``medium`` / ``tail``: ``numpy.array_split`` of the class indices, head -> tail, 4/3/3 for 10 classes;
  the test set is class-balanced, so this is also the group's image accuracy);
* for each difference of :data:`GROUP_DIFFS` (``full - none``: the claim; ``ft-only - none``: our control;
  ``full - ft-only``: OE beyond an extra fine-tuning), the seed-paired statistics of the claim checks
  (:func:`paper_tables.claims.paired_stats`: mean ± std, per-seed values, 95% t interval, sign count, verdict).

Input: the tidy runs frame with ``per_class`` (and optionally ``class_counts``), as the figure takes.
:func:`write_group_gains` writes ``perclass_groups.md`` and ``.csv`` atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from oefsmc.axes import METHOD_AXIS, method_label

from .claims import claims_csv, markdown_table, paired_cells, paired_stats
from .formats import atomic_write_text
from .perclass import GROUPS, class_counts, group_indices, perclass_runs

__all__ = ["GROUPS", "GROUP_DIFFS", "group_gains", "group_gains_markdown", "write_group_gains"]

#: (prefix, minuend, subtrahend, Markdown title) of each paired difference, claim first.
GROUP_DIFFS = (("oe_gain", "full", "none", "full − none"),
               ("ft_only_gain", "ft-only", "none", "ft-only − none"),
               ("oe_over_ft_only", "full", "ft-only", "full − ft-only"))
#: The differences the Markdown shows (the CSV has all of :data:`GROUP_DIFFS`).
MARKDOWN_DIFFS = ("oe_gain", "oe_over_ft_only")


def _classes_text(idx: Sequence[int], counts: Optional[list[int]]) -> str:
    span = f"{idx[0]}-{idx[-1]}" if len(idx) > 1 else str(idx[0])
    if counts is None:
        return span
    images = sum(counts[i] for i in idx)
    return f"{span} ({images} image{'s' * (images != 1)})"


def _variant(wide: pd.DataFrame, variant: str) -> pd.Series:
    """One variant's group accuracy per seed (NaN where that variant has no record)."""
    return wide[variant] if variant in wide else pd.Series(np.nan, index=wide.index)


def group_gains(runs: Optional[pd.DataFrame], paper_dataset: str, paper_num: int) -> pd.DataFrame:
    """One row per (method, group) of the column: ``classes`` (indices and few-sample images), the mean
    group accuracy of ``none`` / ``ft-only`` / ``full`` over their seeds, and every difference of
    :data:`GROUP_DIFFS` paired by seed (columns ``<prefix>_mean``, ``_std``, ``_n``, ``_per_seed``,
    ``_ci_low``, ``_ci_high``, ``_n_pos``, ``_verdict``).  Empty without per-class records."""
    long = perclass_runs(runs, paper_dataset, paper_num)
    if long.empty:
        return pd.DataFrame(columns=["dataset", "num", "method", "group", "classes"])
    idx_of = group_indices(int(long["class_index"].max()) + 1)
    long = long.assign(group=long["class_index"].map({int(k): g for g, idx in idx_of.items() for k in idx}))
    acc = long.groupby(["method", "group", "variant", "seed"])["accuracy"].mean().reset_index()
    wide = acc.pivot_table(index=["method", "group", "seed"], columns="variant", values="accuracy").reset_index()
    counts = class_counts(runs, paper_dataset, paper_num)
    rows = []
    for method in METHOD_AXIS.order(wide["method"].unique()):
        for group in GROUPS:
            sel = wide[(wide["method"] == method) & (wide["group"] == group)]
            if sel.empty:
                continue
            row = {"dataset": paper_dataset, "num": paper_num, "method": method, "group": group,
                   "classes": _classes_text(idx_of[group], counts)}
            for v in ("none", "ft-only", "full"):
                row[f"{v}_mean"] = float(_variant(sel, v).mean())
            for prefix, a, b, _ in GROUP_DIFFS:
                row.update(paired_stats(prefix, _variant(sel, a), _variant(sel, b)))
            rows.append(row)
    return pd.DataFrame(rows)


def _compact(row, prefix: str) -> str:
    """``+20.40 [+9.44, +31.36] 3/3 holds``: one cell per paired difference (per-seed values: the CSV)."""
    if not row[f"{prefix}_n"]:
        return "—"
    cells = paired_cells(row, prefix, "d")
    return f"{row[f'{prefix}_mean']:+.2f} {cells['95% CI (t)']} {cells['seeds > 0']} {cells['verdict']}"


def group_gains_markdown(frames: dict[str, pd.DataFrame], caption: str = "") -> str:
    """One section per column name in ``frames`` (column name -> :func:`group_gains` frame)."""
    titles = {p: t for p, _, _, t in GROUP_DIFFS}
    parts = [caption] if caption else []
    for name, frame in frames.items():
        parts.append(f"## {name}")
        if frame.empty:
            parts.append("No per-class record yet.")
            continue
        lines = []
        for _, r in frame.iterrows():
            line = {"Method": method_label(r["method"]), "Group": r["group"], "Classes": r["classes"],
                    **{f"{v} (mean)": f"{r[f'{v}_mean']:.2f}" if not np.isnan(r[f"{v}_mean"]) else "—"
                       for v in ("none", "ft-only", "full")}}
            line.update({f"{titles[p]}: mean, 95% CI (t), seeds > 0, verdict": _compact(r, p) for p in MARKDOWN_DIFFS})
            lines.append(line)
        parts.append(markdown_table(lines))
    return "\n\n".join(parts) + "\n"


def write_group_gains(out_dir, frames: dict[str, pd.DataFrame], caption: str = "",
                      name: str = "perclass_groups") -> dict[str, Path]:
    """Write ``<name>.md`` and ``<name>.csv`` (every column's rows, a ``column`` field naming it)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / f"{name}.md", "csv": out_dir / f"{name}.csv"}
    tables = [f.assign(column=c) for c, f in frames.items() if len(f)]
    atomic_write_text(paths["md"], group_gains_markdown(frames, caption))
    atomic_write_text(paths["csv"], claims_csv(pd.concat(tables, ignore_index=True)) if tables else "column\n")
    return paths
