"""Per-class accuracy of each Table 2 column (paper Sec. 5.3), head -> tail.

The paper's story is about minority classes: OE-FSMC's class-aware weights (Eqs. 5-6) and its OOD
regulariser (Eqs. 8-9) are meant to lift the tail.  Table 2 only shows top-1, so for every Table 2 column
this figure shows the test accuracy of each class for ``none`` (the baseline), ``ft-only`` (our control)
and ``full`` ("+ Ours"), mean over seeds, one panel per method.  Class index order is head -> tail in this
suite (the imbalanced few-sample set has class 0 as its largest class), so the x axis runs head -> tail;
the bands mark the head / medium / tail thirds that the records' ``head``/``medium``/``tail`` use
(``numpy.array_split`` of the class indices, :func:`oefsmc.core.evaluate.class_groups`).

Input: the tidy runs frame (``benchmark.render_outputs.tidy_runs``) with a ``per_class`` column (a list of
per-class accuracies in percent, from the records' ``metrics.per_class``) and optionally ``class_counts``
(the few-sample images per class, written under the class index).
"""
from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from oefsmc.axes import (
    METHOD_AXIS,
    METHOD_NAMES,
    PERCLASS_VARIANTS,
    VARIANT_AXIS,
    method_label,
    method_order,
    variant_legend_label,
)

from .cells import normalize_reproduced
from .figure3 import save_figure

__all__ = ["PERCLASS_VARIANTS", "VARIANT_STYLES", "GROUPS", "group_indices", "perclass_runs", "perclass_frame",
           "figure_name", "render_perclass"]

#: Legend label and line style per variant of :data:`PERCLASS_VARIANTS` (the Table 2 variants, in legend
#: order; from :mod:`oefsmc.axes`): a variant that is not in the paper (our control) is dashed.
VARIANT_STYLES = {v: (variant_legend_label(v), "-" if VARIANT_AXIS.entry(v).in_paper else "--")
                  for v in PERCLASS_VARIANTS}
#: Columns of :func:`perclass_frame`.
FRAME_COLUMNS = ["method", "variant", "class_index", "mean", "std", "n"]


def perclass_runs(runs: Optional[pd.DataFrame], paper_dataset: str, paper_num: int) -> pd.DataFrame:
    """Long per-seed frame of one Table 2 column: ``method``, ``variant``, ``seed``, ``class_index``,
    ``accuracy`` (percent), for the variants of :data:`PERCLASS_VARIANTS` with a ``per_class`` list."""
    cols = ["method", "variant", "seed", "class_index", "accuracy"]
    df = normalize_reproduced(runs)
    if "per_class" not in df or df.empty:
        return pd.DataFrame(columns=cols)
    df = df[(df["artifact"] == "table2") & (df["paper_dataset"] == paper_dataset) & (df["paper_num"] == paper_num)
            & df["variant"].isin(PERCLASS_VARIANTS) & df["per_class"].map(lambda v: isinstance(v, (list, tuple)))]
    df = df[["method", "variant", "seed", "per_class"]].explode("per_class")
    if df.empty:
        return pd.DataFrame(columns=cols)
    df["class_index"] = df.groupby(["method", "variant", "seed"]).cumcount()
    df["accuracy"] = df.pop("per_class").astype(float)
    return df[cols].reset_index(drop=True)


def perclass_frame(runs: Optional[pd.DataFrame], paper_dataset: str, paper_num: int) -> pd.DataFrame:
    """Mean (and std, n) over seeds of each class's accuracy: one row per (method, variant, class_index),
    methods and variants in display order (columns :data:`FRAME_COLUMNS`)."""
    long = perclass_runs(runs, paper_dataset, paper_num)
    if long.empty:
        return pd.DataFrame(columns=FRAME_COLUMNS)
    out = (long.groupby(["method", "variant", "class_index"])["accuracy"]
           .agg(mean="mean", std=lambda v: v.std(ddof=1), n="count").reset_index())
    out = out.assign(_m=out["method"].map(METHOD_AXIS.ranks(out["method"])),
                     _v=out["variant"].map({v: i for i, v in enumerate(PERCLASS_VARIANTS)}))
    return out.sort_values(["_m", "_v", "class_index"]).drop(columns=["_m", "_v"]).reset_index(drop=True)


def class_counts(runs: Optional[pd.DataFrame], paper_dataset: str, paper_num: int) -> Optional[list[int]]:
    """The few-sample images per class of the column's imbalanced draw, when every run agrees on them."""
    df = normalize_reproduced(runs)
    if "class_counts" not in df or df.empty:
        return None
    sel = df[(df["artifact"] == "table2") & (df["paper_dataset"] == paper_dataset) & (df["paper_num"] == paper_num)]
    counts = {tuple(c) for c in sel["class_counts"] if isinstance(c, (list, tuple))}
    return list(counts.pop()) if len(counts) == 1 else None


def figure_name(paper_dataset: str, paper_num: int) -> str:
    """``perclass_<column>``, e.g. ``perclass_cifar10_num10`` (the paper's column, stable across profiles)."""
    return f"perclass_{paper_dataset}_num{int(paper_num)}"


#: The class groups, head -> tail.
GROUPS = ("head", "medium", "tail")


def group_indices(n_classes: int) -> dict[str, np.ndarray]:
    """Head / medium / tail class indices: ``numpy.array_split`` of ``range(n_classes)`` in thirds, as the
    records' ``head``/``medium``/``tail`` (:func:`oefsmc.core.evaluate.class_groups`, torch-free here)."""
    return dict(zip(GROUPS, np.array_split(np.arange(n_classes), 3)))


def _bands(ax, n_classes: int) -> None:
    """Shade the head / medium / tail thirds (:func:`group_indices`)."""
    for i, (name, idx) in enumerate(group_indices(n_classes).items()):
        if len(idx):
            ax.axvspan(idx[0] - 0.5, idx[-1] + 0.5, color="0.5", alpha=0.08 * (i % 2 == 0), lw=0)
            ax.text((idx[0] + idx[-1]) / 2, 0.02, name, transform=ax.get_xaxis_transform(), ha="center",
                    va="bottom", fontsize=7, color="0.35")


def _panel(ax, d: pd.DataFrame, n_classes: int, counts: Optional[list[int]]) -> None:
    palette = dict(zip(PERCLASS_VARIANTS, sns.color_palette(n_colors=len(PERCLASS_VARIANTS))))
    for variant in PERCLASS_VARIANTS:
        v = d[d["variant"] == variant]
        if v.empty:
            continue
        label, ls = VARIANT_STYLES[variant]
        ax.errorbar(v["class_index"], v["mean"], yerr=v["std"].fillna(0.0), ls=ls, marker="o", ms=3, lw=1.2,
                    capsize=2, elinewidth=0.6, color=palette[variant], label=label)
    _bands(ax, n_classes)
    ticks = list(range(n_classes))
    ax.set_xticks(ticks)
    if counts is not None and len(counts) == n_classes:
        ax.set_xticklabels([f"{i}\n({c})" for i, c in zip(ticks, counts)], fontsize=7)
    else:
        ax.tick_params(axis="x", labelsize=7)
    ax.set_xlim(-0.5, n_classes - 0.5)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)


def render_perclass(frame: pd.DataFrame, out_dir, name: str, caption: Optional[str] = None,
                    counts: Optional[list[int]] = None) -> dict[str, Path]:
    """Draw :func:`perclass_frame`'s ``frame`` (one panel per method, head -> tail on x, accuracy on y,
    a line per variant, error bars = std over seeds) and save ``<name>.png`` and ``<name>.pdf`` atomically.

    ``counts``: few-sample images per class, printed under the class index.  A frame without rows still
    gives a figure, with a "no reproduced runs" notice; variants without runs are named under the legend.
    Returns ``{"png": path, "pdf": path}``.
    """
    methods = method_order(frame["method"]) or list(METHOD_NAMES)
    cols = min(len(methods), 2)
    rows = math.ceil(len(methods) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows + 0.8), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
    n_classes = int(frame["class_index"].max()) + 1 if len(frame) else 0
    for ax, method in zip(axes.flat, methods):
        d = frame[frame["method"] == method]
        ax.set_title(method_label(method), fontsize=9)
        if d.empty:
            ax.text(0.5, 0.5, "no reproduced runs", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        _panel(ax, d, n_classes, counts)
    for ax in list(axes.flat)[len(methods):]:
        ax.set_axis_off()
    for ax in axes[:, 0]:
        ax.set_ylabel("class accuracy (%)")
    xlabel = "class index, head → tail" + (" (few-sample images per class)" if counts is not None else "")
    for ax in axes[-1, :]:
        ax.set_xlabel(xlabel, fontsize=8)
    handles, labels = next(((h, lab) for h, lab in (ax.get_legend_handles_labels() for ax in axes.flat) if h),
                           ([], []))
    absent = [VARIANT_STYLES[v][0] for v in PERCLASS_VARIANTS if v not in set(frame["variant"])]
    if absent and len(frame):
        handles, labels = handles + [Line2D([], [], ls="none")], labels + [f"no runs: {', '.join(absent)}"]
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), fontsize=7, frameon=False)
    if caption:
        fig.suptitle(textwrap.fill(caption, 110), fontsize=8)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {fmt: out_dir / f"{name}.{fmt}" for fmt in ("png", "pdf")}
    for fmt, path in paths.items():
        save_figure(fig, path, fmt)
    return paths
