"""The paper's two claims, checked seed by seed on the reproduced runs.

Tables 1 and 2 show means; a claim about a *difference* between two rows is better judged on
differences of runs that saw the same images.  Every cell of a column draws the same few-sample set and
auxiliary set for a given seed (``shared/seeds/README.md``), so two rows of one column are paired by seed.

* **Claim 1** (Sec. 5.2, Table 1): "when the dataset suffers from class imbalance, the performance of
  existing few-sample model compression methods significantly decreases".  Per (method, Num): the drop
  balanced - imbalanced for each seed present in both settings.
* **Claim 2** (Sec. 5.3, Table 2): "after incorporating the OE-FSMC method, the accuracy of each
  few-sample model compression strategy improved significantly" (variant ``full``, "+ Ours").  Per
  (column, Num, method): the gain ``full - none`` per seed, our control's gain ``ft-only - none``, and
  ``full - ft-only`` (how much of OE's gain is more than an extra fine-tuning stage).  The gain of ``full``
  is split into its compression stage (``top1_compressed`` of ``full`` - ``none``) and its fine-tuning
  stage (``top1`` - ``top1_compressed`` of ``full``).

Verdicts, per row, on the paired differences d: ``holds`` (every d > 0), ``mixed`` (mean d > 0 but
some d <= 0), ``fails`` (mean d <= 0), ``—`` (no pair).  The paper's own difference (from its printed
numbers) sits beside each reproduced one.

Pure functions of the tidy reproduced frame (:func:`paper_tables.render.normalize_reproduced`; an optional
``top1_compressed`` column, defaulting to ``top1``) and the reported frames; :func:`write_claims` writes
Markdown and CSV atomically.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd
from tabulate import tabulate

from .render import DATASET_LABELS, METHOD_LABELS, METHODS, MISSING, atomic_write_text, normalize_reproduced

__all__ = ["paired", "verdict", "claim1_frame", "claim2_frame", "claims_markdown", "write_claims"]

HOLDS, MIXED, FAILS = "holds", "mixed", "fails"


def verdict(diffs: Sequence[float]) -> str:
    """``holds`` if every paired difference is > 0, ``mixed`` if only their mean is, else ``fails``."""
    if not len(diffs):
        return MISSING
    if all(d > 0 for d in diffs):
        return HOLDS
    return MIXED if sum(diffs) / len(diffs) > 0 else FAILS


def paired(runs: pd.DataFrame, keys: list[str], pivot: str, value: str = "top1") -> pd.DataFrame:
    """One row per (``keys``, seed), one column per value of ``pivot`` (NaN where that run is absent)."""
    if runs.empty:
        return pd.DataFrame(columns=keys + ["seed"])
    wide = runs.pivot_table(index=keys + ["seed"], columns=pivot, values=value, aggfunc="mean")
    wide.columns = [str(c) for c in wide.columns]
    return wide.reset_index()


def _stats(values: pd.Series) -> dict:
    v = values.dropna()
    return {"mean": float(v.mean()) if len(v) else math.nan,
            "std": float(v.std(ddof=1)) if len(v) > 1 else math.nan, "n": int(len(v))}


def _diff_stats(prefix: str, a: pd.Series, b: pd.Series) -> dict:
    """Paired a - b over the seeds where both exist: mean, std, n, the per-seed list and the verdict."""
    d = (a - b).dropna()
    s = _stats(d)
    return {f"{prefix}_mean": s["mean"], f"{prefix}_std": s["std"], f"{prefix}_n": s["n"],
            f"{prefix}_per_seed": [round(float(x), 2) for x in d], f"{prefix}_verdict": verdict(list(d))}


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series(math.nan, index=frame.index)


def claim1_frame(reproduced: Optional[pd.DataFrame], reported: pd.DataFrame) -> pd.DataFrame:
    """Claim 1 per (method, Num) with some run: balanced / imbalanced stats and the paired drop
    (balanced - imbalanced).

    ``reported``: :func:`paper_tables.reported.load_reported_table1` (its printed drop is ``paper_drop``).
    """
    runs = normalize_reproduced(reproduced)
    runs = runs[(runs["artifact"] == "table1") & (runs["variant"].isna() | (runs["variant"] == "none"))]
    wide = paired(runs, ["method", "paper_num"], "setting")
    rows = []
    drops = reported[reported["setting"] == "imbalanced"]
    for r in drops.sort_values(["method", "num"], key=_method_order).itertuples(index=False):
        sel = wide[(wide["method"] == r.method) & (wide["paper_num"] == r.num)] if len(wide) else wide
        bal, imb = _column(sel, "balanced"), _column(sel, "imbalanced")
        row = {"method": r.method, "num": int(r.num), "paper_drop": float(r.printed_drop)}
        row.update({f"balanced_{k}": v for k, v in _stats(bal).items()})
        row.update({f"imbalanced_{k}": v for k, v in _stats(imb).items()})
        row.update(_diff_stats("drop", bal, imb))
        if row["balanced_n"] or row["imbalanced_n"]:
            rows.append(row)
    return pd.DataFrame(rows)


def claim2_frame(reproduced: Optional[pd.DataFrame], reported: pd.DataFrame) -> pd.DataFrame:
    """Claim 2 per (dataset, Num, method) of the paper's Table 2, where some run exists.

    ``reported``: :func:`paper_tables.reported.load_reported_table2` (``paper_gain`` = its "+ Ours" number
    minus its baseline number).
    """
    runs = normalize_reproduced(reproduced)
    runs = runs[(runs["artifact"] == "table2") & (runs["setting"].isna() | (runs["setting"] == "imbalanced"))]
    if "top1_compressed" not in runs:
        runs = runs.assign(top1_compressed=runs["top1"])
    runs = runs.assign(top1_compressed=runs["top1_compressed"].fillna(runs["top1"]))
    keys = ["paper_dataset", "paper_num", "method"]
    wide = paired(runs, keys, "variant")
    comp = paired(runs[runs["variant"] == "full"], keys, "variant", "top1_compressed")
    if len(comp):
        wide = wide.merge(comp.rename(columns={"full": "full_compressed"}), on=keys + ["seed"], how="left")
    rep = reported.set_index(["dataset", "num", "method", "variant"])["reported"]
    rows = []
    groups = wide.groupby(keys, sort=False) if len(wide) else []
    for (dataset, num, method), sel in groups:
        none, full, ft = _column(sel, "none"), _column(sel, "full"), _column(sel, "ft-only")
        full_c = _column(sel, "full_compressed")
        row = {"dataset": dataset, "num": int(num), "method": method,
               "paper_gain": float(rep.get((dataset, num, method, "full"), math.nan)
                                   - rep.get((dataset, num, method, "none"), math.nan))}
        for name, col in (("none", none), ("ft_only", ft), ("full", full), ("full_compressed", full_c)):
            row.update({f"{name}_{k}": v for k, v in _stats(col).items()})
        row.update(_diff_stats("oe_gain", full, none))
        row.update(_diff_stats("ft_only_gain", ft, none))
        row.update(_diff_stats("oe_over_ft_only", full, ft))
        row.update(_diff_stats("oe_compress_stage", full_c, none))
        row.update(_diff_stats("oe_finetune_stage", full, full_c))
        rows.append(row)
    out = pd.DataFrame(rows)
    if len(out):
        order = {d: i for i, d in enumerate(DATASET_LABELS)}
        out = out.assign(_d=out["dataset"].map(order), _m=out["method"].map(METHODS.index))
        out = out.sort_values(["_d", "num", "_m"]).drop(columns=["_d", "_m"]).reset_index(drop=True)
    return out


def _method_order(col: pd.Series) -> pd.Series:
    return col.map(METHODS.index) if col.name == "method" else col


# ------------------------------------------------------------------------------------------ text
def _ms(row, prefix: str) -> str:
    mean, std, n = row[f"{prefix}_mean"], row[f"{prefix}_std"], row[f"{prefix}_n"]
    if not n:
        return MISSING
    return f"{mean:.2f}" + ("" if math.isnan(std) else f" ± {std:.2f}") + f" (n={n})"


def _diff(row, prefix: str, with_seeds: bool = True) -> str:
    if not row[f"{prefix}_n"]:
        return MISSING
    mean, std = row[f"{prefix}_mean"], row[f"{prefix}_std"]
    text = f"{mean:+.2f}" + ("" if math.isnan(std) else f" ± {std:.2f}")
    if with_seeds:
        text += " [" + ", ".join(f"{d:+.2f}" for d in row[f"{prefix}_per_seed"]) + "]"
    return text


def _stage(row, prefix: str) -> str:
    """A stage's paired change without the per-seed list (the OE gain column has it), with its verdict."""
    text = _diff(row, prefix, with_seeds=False)
    return text if text == MISSING else f"{text} ({row[f'{prefix}_verdict']})"


def _paper(x: float) -> str:
    return MISSING if math.isnan(x) else f"{x:+.2f}"


CLAIM1_INTRO = (
    "**Claim 1** (paper Sec. 5.2, Table 1): imbalance lowers every method's accuracy at equal Num. "
    "Drop = balanced − imbalanced top-1, paired by seed (same seed, same Num); mean ± std over the pairs, "
    "per-seed drops in brackets (in seed order). The paper's drop is its printed one. Verdict: holds = every "
    "paired drop > 0; mixed = the mean drop > 0 but not every seed's; fails = mean drop ≤ 0.")
CLAIM2_INTRO = (
    "**Claim 2** (paper Sec. 5.3, Table 2): OE-FSMC (\"+ Ours\", `full`) raises every method. "
    "Differences are paired by seed (same few-sample and auxiliary sets); mean ± std, per-seed values "
    "in brackets (in seed order). OE gain = full − none; FT-only gain = ft-only − none (our control: the "
    "method, then plain CE fine-tuning); OE − FT only = full − ft-only. OE's gain splits into its compression "
    "stage (full before its fine-tuning − none) and its fine-tuning stage (full − full before "
    "fine-tuning). The paper's gain is its \"+ Ours\" minus its baseline number. Verdict as for claim 1.")


def claims_markdown(claim1: Optional[pd.DataFrame], claim2: Optional[pd.DataFrame],
                    caption: str = "") -> str:
    """Markdown: a caption, then a section per claim frame given."""
    parts = [caption] if caption else []
    if claim1 is not None:
        lines = [{"Method": METHOD_LABELS[r["method"]], "Num": r["num"], "balanced": _ms(r, "balanced"),
                  "imbalanced": _ms(r, "imbalanced"), "drop (paired)": _diff(r, "drop"),
                  "paper drop": _paper(r["paper_drop"]), "verdict": r["drop_verdict"]}
                 for _, r in claim1.iterrows()]
        parts += ["## Claim 1: imbalance lowers accuracy", CLAIM1_INTRO,
                  _table(lines) if lines else "No Table 1 run yet."]
    if claim2 is not None:
        lines = [{"Column": f"{DATASET_LABELS.get(r['dataset'], r['dataset'])} Num={r['num']}",
                  "Method": METHOD_LABELS[r["method"]], "none": _ms(r, "none"), "FT only": _ms(r, "ft_only"),
                  "+ Ours": _ms(r, "full"), "OE gain": _diff(r, "oe_gain"), "paper gain": _paper(r["paper_gain"]),
                  "OE gain verdict": r["oe_gain_verdict"], "FT-only gain": _diff(r, "ft_only_gain"),
                  "OE − FT only": _diff(r, "oe_over_ft_only"), "OE − FT only verdict": r["oe_over_ft_only_verdict"],
                  "OE compression stage": _stage(r, "oe_compress_stage"),
                  "OE fine-tuning stage": _stage(r, "oe_finetune_stage")}
                 for _, r in claim2.iterrows()]
        parts += ["## Claim 2: OE-FSMC raises every method", CLAIM2_INTRO,
                  _table(lines) if lines else "No Table 2 run yet."]
    return "\n\n".join(parts) + "\n"


def _table(lines: list[dict]) -> str:
    return tabulate(pd.DataFrame(lines), headers="keys", tablefmt="github", showindex=False, disable_numparse=True)


def _csv(frame: pd.DataFrame) -> str:
    out = frame.copy()
    for col in out.columns:
        if col.endswith("_per_seed"):
            out[col] = [";".join(f"{d:.2f}" for d in v) if isinstance(v, list) else "" for v in out[col]]
    return out.to_csv(index=False, float_format="%.4f", lineterminator="\n")


def write_claims(out_dir, name: str, claim1: Optional[pd.DataFrame] = None,
                 claim2: Optional[pd.DataFrame] = None, caption: str = "") -> dict[str, Path]:
    """Write ``<name>.md`` (both sections given) and ``<name>.csv`` (one row per claim row, a ``claim``
    column saying which) atomically; returns ``{"md": path, "csv": path}``."""
    out_dir = Path(out_dir)
    paths = {"md": out_dir / f"{name}.md", "csv": out_dir / f"{name}.csv"}
    frames = [f.assign(claim=i) for i, f in ((1, claim1), (2, claim2)) if f is not None and len(f)]
    atomic_write_text(paths["md"], claims_markdown(claim1, claim2, caption))
    atomic_write_text(paths["csv"], _csv(pd.concat(frames, ignore_index=True)) if frames else "claim\n")
    return paths
