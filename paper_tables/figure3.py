"""Figure 3 of the paper (Sec. 5.4-5.5), re-drawn from reproduced runs.

Panels: (a) ablation of the OE-FSMC components, (b) size of the auxiliary
(OOD) set, (c) lambda of Eq. 7, (d) eta of the regularizer. The paper's plotted
values are NOT in its text -- only its stated findings are
(:func:`paper_tables.reported.load_figure3_findings`), so each panel is
annotated with that statement and, for (c)/(d), the stated optimum is drawn as
a dashed vertical line.

Input frame columns: ``panel`` (a-d), ``method``, ``num``, ``variant``,
``param_name``, ``param_value``, ``seed``, ``top1`` (percent). Error bars are
mean ± sample std over seeds. Figures are built with the object-oriented
matplotlib API on the Agg canvas (no global pyplot state is touched).
"""
from __future__ import annotations

import io
import sys
import textwrap
from pathlib import Path
from typing import Mapping, Optional

import matplotlib

if "matplotlib.pyplot" not in sys.modules:  # headless by default; never switch a live GUI backend
    matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from oefsmc.atomic import atomic_write_bytes  # noqa: E402
from oefsmc.axes import (  # noqa: E402
    FIG3A_VARIANTS,
    VARIANT_AXIS,
    method_label,
    variant_figure_label,
    variant_order,
)

from .reported import load_figure3_findings  # noqa: E402

__all__ = ["VARIANT_ORDER", "VARIANT_LABELS", "save_figure", "render_figure3", "render_figure3_panels"]

#: Panel (a) bar order: OE-FSMC_{w/o all}, w/o Comp., w/o FT, full; then our FT-only control; and the bar
#: labels (both from :mod:`oefsmc.axes`; another variant is drawn after them, labelled by its name).
VARIANT_ORDER = FIG3A_VARIANTS
VARIANT_LABELS = {v: variant_figure_label(v) for v in VARIANT_ORDER}
_PARAM_SYMBOL = {"lambda": "λ", "eta": "η"}
_RATIO_PARAMS = ("aux_ratio", "aux_size_ratio")


def _group_labels(df: pd.DataFrame) -> pd.Series:
    """"<METHOD> Num=<num>" per row (used as hue when several configs are plotted)."""
    return df["method"].map(method_label) + " Num=" + df["num"].astype(int).astype(str)


def save_figure(fig: Figure, path: Path, fmt: str) -> None:
    """Save ``fig`` as ``fmt`` to ``path`` atomically (:func:`oefsmc.atomic.atomic_write_bytes`), without the
    creation date / software metadata, so re-rendering the same data gives the same file."""
    buf = io.BytesIO()
    metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
    fig.savefig(buf, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
    atomic_write_bytes(path, buf.getvalue())


def _panel_a(ax, d: pd.DataFrame) -> None:
    present = variant_order(d["variant"])
    order = [variant_figure_label(v) for v in present]
    d = d.assign(_x=d["variant"].map(variant_figure_label), _g=_group_labels(d))
    hue = "_g" if d["_g"].nunique() > 1 else None
    sns.barplot(data=d, x="_x", y="top1", hue=hue, order=order, errorbar="sd", capsize=0.15, ax=ax)
    for idx, v in enumerate(present):  # hatch our control so it is not mistaken for a paper variant
        if v in VARIANT_AXIS and not VARIANT_AXIS.entry(v).in_paper:
            for patch in ax.patches:
                if abs(patch.get_x() + patch.get_width() / 2 - idx) < 0.5:
                    patch.set_hatch("//")
    lo, hi = d["top1"].min(), d["top1"].max()
    ax.set_ylim(max(0.0, lo - 5), min(100.0, hi + 3))
    ax.set_xlabel("")
    if hue:
        ax.legend(title=None, fontsize=7)


def _panel_line(ax, d: pd.DataFrame, hue_col: str, palette: Mapping[str, tuple]) -> None:
    hue = hue_col if d[hue_col].nunique() > 1 else None
    sns.lineplot(
        data=d, x="param_value", y="top1", hue=hue, palette=palette if hue else None,
        errorbar="sd", err_style="bars", marker="o", ax=ax,
    )


def render_figure3(panel: str, df: pd.DataFrame, out_dir, caption: Optional[str] = None) -> dict[str, Path]:
    """Draw Figure 3 panel ``panel`` ("a".."d") from ``df`` and save
    ``fig3<panel>.png`` and ``fig3<panel>.pdf`` atomically in ``out_dir``.

    (a) bars of the OE variants (none / no-comp / no-ft / full, plus our
    ft-only control, hatched); (b) top1 vs. auxiliary-set size, one line per
    few-sample Num, dotted lines at aux size = Num (or at ratio 1 when
    ``param_name`` is ``aux_ratio``); (c) top1 vs. lambda with a dashed line at
    the paper's stated optimum 0.5; (d) top1 vs. eta with a line at 2.5.
    A panel without rows is still written, with a "no reproduced runs" notice.
    Returns ``{"png": path, "pdf": path}``.
    """
    if panel not in ("a", "b", "c", "d"):
        raise ValueError(f"panel must be one of a-d, got {panel!r}")
    finding = load_figure3_findings().set_index("panel").loc[panel]
    d = df[df["panel"] == panel].dropna(subset=["top1"]).copy() if len(df) else df.iloc[0:0]
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot(1, 1, 1)
    if d.empty:
        ax.text(0.5, 0.5, f"no reproduced runs for panel ({panel})", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
    elif panel == "a":
        _panel_a(ax, d)
    else:
        d["param_value"] = d["param_value"].astype(float)
        if panel == "b":
            d["_h"] = "Num=" + d["num"].astype(int).astype(str)
            levels = sorted(d["_h"].unique(), key=lambda s: int(s.split("=")[1]))
            palette = dict(zip(levels, sns.color_palette(n_colors=len(levels))))
            _panel_line(ax, d, "_h", palette)
            ratio = str(d["param_name"].iloc[0]) in _RATIO_PARAMS
            if ratio:
                ax.axvline(1.0, ls=":", color="k", lw=1)
            else:
                for level in levels:
                    ax.axvline(int(level.split("=")[1]), ls=":", lw=1, color=palette[level])
            ax.plot([], [], ls=":", color="k", lw=1, label="aux size = Num (paper: best here)")
            ax.legend(title="few-sample Num", fontsize=7)
            if d["param_value"].max() / max(d["param_value"].min(), 1e-12) > 20:
                ax.set_xscale("log")
            ax.set_xlabel("auxiliary set size / Num" if ratio else "auxiliary (OOD) set size")
        else:
            d["_g"] = _group_labels(d)
            _panel_line(ax, d, "_g", dict(zip(sorted(d["_g"].unique()), sns.color_palette())))
            best = float(finding["best_value_num"])
            sym = _PARAM_SYMBOL[finding["parameter"]]
            ax.axvline(best, ls="--", color="k", lw=1, label=f"paper's stated optimum {sym}={best:g}")
            ax.set_xlabel(sym)
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if not d.empty:
        ax.set_ylabel("top-1 accuracy (%)")
    if caption:
        ax.set_title(textwrap.fill(caption, 70), fontsize=9)
    note = ("The paper's plotted values are not given in its text; only its stated finding is: "
            + finding["statement"])
    fig.text(0.01, -0.02, textwrap.fill(note, 110), fontsize=6, va="top", ha="left")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {fmt: out_dir / f"fig3{panel}.{fmt}" for fmt in ("png", "pdf")}
    for fmt, path in paths.items():
        save_figure(fig, path, fmt)
    return paths


def render_figure3_panels(df: pd.DataFrame, out_dir, captions: Optional[Mapping[str, str]] = None
                          ) -> dict[str, dict[str, Path]]:
    """Render all four panels; ``captions`` maps panel -> caption."""
    captions = captions or {}
    return {p: render_figure3(p, df, out_dir, captions.get(p)) for p in ("a", "b", "c", "d")}
