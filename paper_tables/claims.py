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
  stage (``top1`` - ``top1_compressed`` of ``full``).  The differences are listed in :data:`CLAIM2_DIFFS`.

Every paired difference d (n seeds) gets its mean ± std, the per-seed values, a 95% Student-t confidence
interval of its mean (:func:`t_interval`: mean ± t_{0.975, n-1} · s / sqrt(n); t rather than a bootstrap,
which cannot reach 95% coverage from 3-5 values) and a sign count (seeds with d > 0 out of n).  Verdict
(:func:`verdict`): ``holds`` when the interval lies above 0 (lower bound > 0), ``fails`` when it lies below
0 (upper bound < 0: the opposite holds), ``inconclusive`` otherwise, including n = 1 (no interval); the
Markdown adds the mean's direction to an inconclusive verdict.  ``—``: no pair.  The paper's own
difference (from its printed numbers) sits beside each reproduced one, as context.

Pure functions of the tidy reproduced frame (:func:`paper_tables.render.normalize_reproduced`; an optional
``top1_compressed`` column, defaulting to ``top1``) and the reported frames; :func:`write_claims` writes
Markdown and CSV atomically.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from tabulate import tabulate

from oefsmc.axes import DATASET_AXIS, METHOD_AXIS, column_name, method_label

from .cells import MISSING, normalize_reproduced
from .columns import RunsAs, column_label
from .formats import atomic_write_text

__all__ = ["CONFIDENCE", "CLAIM2_DIFFS", "t_interval", "sign_count", "verdict", "paired", "paired_stats",
           "paired_cells", "claim1_frame", "claim2_frame", "claims_markdown", "markdown_table", "claims_csv",
           "write_claims"]

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"
#: Coverage of the confidence interval of every paired difference.
CONFIDENCE = 0.95


# ------------------------------------------------------------------------------------------ statistics
def t_interval(diffs: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t confidence interval of the mean of seed-paired differences:
    mean ± t_{(1+confidence)/2, n-1} · s / sqrt(n) (s: sample std); ``(nan, nan)`` for n < 2."""
    d = np.asarray(diffs, dtype=float)
    if len(d) < 2:
        return math.nan, math.nan
    half = float(stats.t.ppf((1 + confidence) / 2, len(d) - 1)) * float(d.std(ddof=1)) / math.sqrt(len(d))
    mean = float(d.mean())
    return mean - half, mean + half


def sign_count(diffs: Sequence[float]) -> tuple[int, int]:
    """(seeds with a difference > 0, seeds): a zero difference is not a rise."""
    return sum(1 for d in diffs if d > 0), len(diffs)


def verdict(diffs: Sequence[float], confidence: float = CONFIDENCE) -> str:
    """``holds`` if the confidence interval of the mean difference is above 0, ``fails`` if it is below 0
    (the opposite holds), ``inconclusive`` if it contains 0 or cannot be formed (n = 1); ``—`` without pairs."""
    if not len(diffs):
        return MISSING
    low, high = t_interval(diffs, confidence)
    if low > 0:
        return HOLDS
    if high < 0:
        return FAILS
    return INCONCLUSIVE


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


def paired_stats(prefix: str, a: pd.Series, b: pd.Series) -> dict:
    """Paired a - b over the seeds where both exist: mean, std, n, the per-seed list, the 95% t interval,
    the number of seeds with a rise, and the verdict."""
    d = list((a - b).dropna())
    s = _stats(pd.Series(d, dtype=float))
    low, high = t_interval(d)
    return {f"{prefix}_mean": s["mean"], f"{prefix}_std": s["std"], f"{prefix}_n": s["n"],
            f"{prefix}_per_seed": [round(float(x), 2) for x in d], f"{prefix}_ci_low": low,
            f"{prefix}_ci_high": high, f"{prefix}_n_pos": sign_count(d)[0], f"{prefix}_verdict": verdict(d)}


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series(math.nan, index=frame.index)


# ------------------------------------------------------------------------------------------ frames
@dataclass(frozen=True)
class PairedDiff:
    """One paired difference of claim 2: ``minuend - subtrahend`` (wide-frame columns), how it is titled."""

    prefix: str
    minuend: str
    subtrahend: str
    title: str
    paper: Optional[str] = None      # the claim-frame column with the paper's own difference, if any


#: Claim 2's paired differences (paper Sec. 5.3), in display order: the claim, our control, the rest.
CLAIM2_DIFFS = (
    PairedDiff("oe_gain", "full", "none", "OE gain = full − none (the claim)", "paper_gain"),
    PairedDiff("ft_only_gain", "ft-only", "none",
               "FT-only gain = ft-only − none (our control: the method, then plain CE fine-tuning)"),
    PairedDiff("oe_over_ft_only", "full", "ft-only",
               "OE − FT only = full − ft-only (OE beyond an extra fine-tuning)"),
    PairedDiff("oe_compress_stage", "full_compressed", "none",
               "OE compression stage = full before its fine-tuning − none"),
    PairedDiff("oe_finetune_stage", "full", "full_compressed",
               "OE fine-tuning stage = full − full before its fine-tuning"),
)


def claim1_frame(reproduced: Optional[pd.DataFrame], reported: pd.DataFrame) -> pd.DataFrame:
    """Claim 1 per (method, Num) with some run: balanced / imbalanced stats and the paired drop
    (balanced - imbalanced) with its interval, sign count and verdict.

    ``reported``: :func:`paper_tables.reported.load_reported_table1` (its printed drop is ``paper_drop``).
    """
    runs = normalize_reproduced(reproduced)
    runs = runs[(runs["artifact"] == "table1") & (runs["variant"].isna() | (runs["variant"] == "none"))]
    wide = paired(runs, ["method", "paper_num"], "setting")
    rows = []
    drops = reported[reported["setting"] == "imbalanced"]
    printed = {(r.method, int(r.num)): float(r.printed_drop) for r in drops.itertuples(index=False)}
    # a method without paper numbers (not in the paper): the paper's Nums, no paper drop
    ran = [m for m in dict.fromkeys(wide["method"]) if m not in set(drops["method"])] if len(wide) else []
    keys = list(printed) + [(m, n) for m in ran for n in sorted({n for _, n in printed})]
    order = METHOD_AXIS.ranks(m for m, _ in keys)
    for method, num in sorted(keys, key=lambda k: (order[k[0]], k[1])):
        sel = wide[(wide["method"] == method) & (wide["paper_num"] == num)] if len(wide) else wide
        bal, imb = _column(sel, "balanced"), _column(sel, "imbalanced")
        row = {"method": method, "num": num, "paper_drop": printed.get((method, num), math.nan)}
        row.update({f"balanced_{k}": v for k, v in _stats(bal).items()})
        row.update({f"imbalanced_{k}": v for k, v in _stats(imb).items()})
        row.update(paired_stats("drop", bal, imb))
        if row["balanced_n"] or row["imbalanced_n"]:
            rows.append(row)
    return pd.DataFrame(rows)


def claim2_frame(reproduced: Optional[pd.DataFrame], reported: pd.DataFrame) -> pd.DataFrame:
    """Claim 2 per (dataset, Num, method) of the paper's Table 2, where some run exists: the means of
    ``none`` / ``ft-only`` / ``full`` / ``full`` before its fine-tuning and every :data:`CLAIM2_DIFFS`.

    ``reported``: :func:`paper_tables.reported.load_reported_table2` (``paper_gain`` = its "+ Ours" number
    minus its baseline number; ``arch`` = the paper's architecture of the column).
    """
    runs = normalize_reproduced(reproduced)
    runs = runs[(runs["artifact"] == "table2") & (runs["setting"].isna() | (runs["setting"] == "imbalanced"))]
    keys = ["paper_dataset", "paper_num", "method"]
    stated = runs[runs["variant"] == "ft-only"].dropna(subset=["top1_compressed"]) if "top1_compressed" in runs \
        else runs.iloc[:0]
    if "top1_compressed" not in runs:
        runs = runs.assign(top1_compressed=runs["top1"])
    runs = runs.assign(top1_compressed=runs["top1_compressed"].fillna(runs["top1"]))
    wide = paired(runs, keys, "variant")
    for variant, name, frame in (("full", "full_compressed", runs), ("ft-only", "ft_only_compressed", stated)):
        comp = paired(frame[frame["variant"] == variant], keys, "variant", "top1_compressed")
        if len(comp):
            wide = wide.merge(comp.rename(columns={variant: name}), on=keys + ["seed"], how="left")
    rep = reported.set_index(["dataset", "num", "method", "variant"])["reported"]
    arch = reported.drop_duplicates("dataset").set_index("dataset")["arch"]
    rows = []
    groups = wide.groupby(keys, sort=False) if len(wide) else []
    for (dataset, num, method), sel in groups:
        row = {"dataset": dataset, "arch": arch.get(dataset, ""), "num": int(num), "method": method,
               "paper_gain": float(rep.get((dataset, num, method, "full"), math.nan)
                                   - rep.get((dataset, num, method, "none"), math.nan))}
        for name, col in (("none", "none"), ("ft_only", "ft-only"), ("full", "full"),
                          ("full_compressed", "full_compressed")):
            row.update({f"{name}_{k}": v for k, v in _stats(_column(sel, col)).items()})
        for diff in CLAIM2_DIFFS:
            row.update(paired_stats(diff.prefix, _column(sel, diff.minuend), _column(sel, diff.subtrahend)))
        row.update(_crn(sel))
        rows.append(row)
    out = pd.DataFrame(rows)
    if len(out):
        out = out.assign(_d=out["dataset"].map(DATASET_AXIS.ranks(out["dataset"])),
                         _m=out["method"].map(METHOD_AXIS.ranks(out["method"])))
        out = out.sort_values(["_d", "num", "_m"]).drop(columns=["_d", "_m"]).reset_index(drop=True)
    return out


def _crn(sel: pd.DataFrame) -> dict:
    """Common random numbers (schema 2): ``ft-only`` shares ``none``'s compression stage, so its accuracy
    before its fine-tuning must equal ``none``'s top-1 exactly.  ``crn_pairs``: seeds where both are stated;
    ``crn_equal``: of those, the seeds where they are equal."""
    a, b = _column(sel, "ft_only_compressed"), _column(sel, "none")
    both = a.notna() & b.notna()
    return {"crn_pairs": int(both.sum()), "crn_equal": int((a[both] == b[both]).sum())}


def _crn_line(claim2: pd.DataFrame, names: list[str]) -> str:
    pairs = int(claim2["crn_pairs"].sum()) if "crn_pairs" in claim2 else 0
    if not pairs:
        return "Common random numbers: no `ft-only` record states its accuracy before fine-tuning."
    equal = int(claim2["crn_equal"].sum())
    off = [f"{c} {method_label(r['method'])} ({r['crn_pairs'] - r['crn_equal']})"
           for c, (_, r) in zip(names, claim2.iterrows()) if r["crn_equal"] < r["crn_pairs"]]
    return (f"Common random numbers: `ft-only`'s accuracy before its fine-tuning equals `none`'s top-1 exactly in "
            f"{equal} of {pairs} (column, method, seed) pairs (they share one compression stage)"
            + (f"; differing: {', '.join(off)}." if off else "."))


# ------------------------------------------------------------------------------------------ text
def _ms(row, prefix: str) -> str:
    mean, std, n = row[f"{prefix}_mean"], row[f"{prefix}_std"], row[f"{prefix}_n"]
    if not n:
        return MISSING
    return f"{mean:.2f}" + ("" if math.isnan(std) else f" ± {std:.2f}") + f" (n={n})"


def _diff(row, prefix: str) -> str:
    """Mean ± std of a paired difference, the per-seed values in brackets (seed order)."""
    if not row[f"{prefix}_n"]:
        return MISSING
    mean, std = row[f"{prefix}_mean"], row[f"{prefix}_std"]
    text = f"{mean:+.2f}" + ("" if math.isnan(std) else f" ± {std:.2f}")
    return text + " [" + ", ".join(f"{d:+.2f}" for d in row[f"{prefix}_per_seed"]) + "]"


def _ci(row, prefix: str) -> str:
    if not row[f"{prefix}_n"]:
        return MISSING
    low, high = row[f"{prefix}_ci_low"], row[f"{prefix}_ci_high"]
    return "none (n=1)" if math.isnan(low) else f"[{low:+.2f}, {high:+.2f}]"


def _signs(row, prefix: str) -> str:
    n = row[f"{prefix}_n"]
    return f"{row[f'{prefix}_n_pos']}/{n}" if n else MISSING


def _direction(mean: float) -> str:
    return "mean > 0" if mean > 0 else ("mean < 0" if mean < 0 else "mean = 0")


def _verdict(row, prefix: str) -> str:
    """The verdict; an inconclusive one says which way the mean points (and n = 1 that there is no CI)."""
    v = row[f"{prefix}_verdict"]
    if v != INCONCLUSIVE:
        return v
    n1 = "n=1, no CI; " if row[f"{prefix}_n"] == 1 else ""
    return f"{v} ({n1}{_direction(row[f'{prefix}_mean'])})"


def _paper(x: float) -> str:
    return MISSING if math.isnan(x) else f"{x:+.2f}"


def paired_cells(row, prefix: str, what: str) -> dict:
    """The four columns every paired difference gets in the Markdown."""
    return {what: _diff(row, prefix), "95% CI (t)": _ci(row, prefix), "seeds > 0": _signs(row, prefix),
            "verdict": _verdict(row, prefix)}


def _tally(frame: pd.DataFrame, prefix: str) -> str:
    """"Verdicts: holds 5, fails 1, inconclusive 2 (of 8 rows)." for one difference over the rows (rows
    without a pair are counted apart)."""
    counts = frame[f"{prefix}_verdict"].value_counts()
    parts = [f"{v} {int(counts.get(v, 0))}" for v in (HOLDS, FAILS, INCONCLUSIVE)]
    unpaired = int(counts.get(MISSING, 0))
    return (f"Verdicts: {', '.join(parts)} (of {len(frame)} rows"
            + (f"; {unpaired} without a seed pair" if unpaired else "") + ").")


RULE = (
    "Each paired difference d (one per seed; per-seed values in brackets, in seed order) gets its mean ± std, "
    f"a {CONFIDENCE:.0%} Student-t confidence interval of its mean (mean ± t(0.975, n−1) · std / √n; "
    "none for n = 1) and the number of seeds with d > 0. Verdict: holds = the interval lies above 0 "
    "(lower bound > 0); fails = it lies below 0 (upper bound < 0: the opposite holds); inconclusive = "
    "it contains 0 or n = 1, with the mean's direction in brackets.")
CLAIM1_INTRO = (
    "**Claim 1** (paper Sec. 5.2, Table 1): imbalance lowers every method's accuracy at equal Num. "
    "Drop = balanced − imbalanced top-1, paired by seed (same seed, same Num). " + RULE
    + " The paper's drop is its printed one (context).")
CLAIM2_INTRO = (
    "**Claim 2** (paper Sec. 5.3, Table 2): OE-FSMC (\"+ Ours\", `full`) raises every method. "
    "Differences are paired by seed (same few-sample and auxiliary sets). " + RULE
    + " OE's gain splits into its compression stage and its fine-tuning stage (the two add up, seed by seed). "
    "The paper's gain is its \"+ Ours\" minus its baseline number (context).")


def claim_column_name(row, columns: Optional[Mapping[str, RunsAs]] = None) -> str:
    """A claim row's column (``dataset``, ``arch``, ``num`` = the paper's) named by what ran, as the tables
    name it, when ``columns`` (what ran per paper dataset) is given; else by the paper's column."""
    if columns is None or not isinstance(row.get("arch"), str) or not row["arch"]:
        return column_name(row["dataset"], row["num"])
    return column_label(row["dataset"], row["arch"], int(row["num"]), columns.get(row["dataset"]))


def _claim1_section(claim1: pd.DataFrame) -> list[str]:
    lines = [{"Method": method_label(r["method"]), "Num": r["num"], "balanced": _ms(r, "balanced"),
              "imbalanced": _ms(r, "imbalanced"), **paired_cells(r, "drop", "drop (paired)"),
              "paper drop": _paper(r["paper_drop"])}
             for _, r in claim1.iterrows()]
    body = [markdown_table(lines), _tally(claim1, "drop")] if lines else ["No Table 1 run yet."]
    return ["## Claim 1: imbalance lowers accuracy", CLAIM1_INTRO] + body


def _claim2_section(claim2: pd.DataFrame, columns: Optional[Mapping[str, RunsAs]]) -> list[str]:
    parts = ["## Claim 2: OE-FSMC raises every method", CLAIM2_INTRO]
    if not len(claim2):
        return parts + ["No Table 2 run yet."]
    names = [claim_column_name(r, columns) for _, r in claim2.iterrows()]
    means = [{"Column": c, "Method": method_label(r["method"]), "none": _ms(r, "none"),
              "FT only": _ms(r, "ft_only"), "+ Ours": _ms(r, "full"),
              "+ Ours before its fine-tuning": _ms(r, "full_compressed")}
             for c, (_, r) in zip(names, claim2.iterrows())]
    parts += ["### Top-1 (%) per row", markdown_table(means), _crn_line(claim2, names)]
    for diff in CLAIM2_DIFFS:
        lines = []
        for c, (_, r) in zip(names, claim2.iterrows()):
            line = {"Column": c, "Method": method_label(r["method"]), **paired_cells(r, diff.prefix, "paired")}
            if diff.paper:
                line["paper"] = _paper(r[diff.paper])
            lines.append(line)
        parts += [f"### {diff.title}", markdown_table(lines), _tally(claim2, diff.prefix)]
    return parts


def claims_markdown(claim1: Optional[pd.DataFrame], claim2: Optional[pd.DataFrame], caption: str = "",
                    columns: Optional[Mapping[str, RunsAs]] = None) -> str:
    """Markdown: a caption, then a section per claim frame given (claim 2: the means, then one table per
    :data:`CLAIM2_DIFFS`).  ``columns``: what ran per paper column, to name claim 2's columns as the tables
    do (:func:`paper_tables.render.column_label`)."""
    parts = [caption] if caption else []
    if claim1 is not None:
        parts += _claim1_section(claim1)
    if claim2 is not None:
        parts += _claim2_section(claim2, columns)
    return "\n\n".join(parts) + "\n"


def markdown_table(lines: list[dict]) -> str:
    return tabulate(pd.DataFrame(lines), headers="keys", tablefmt="github", showindex=False, disable_numparse=True)


def claims_csv(frame: pd.DataFrame) -> str:
    out = frame.copy()
    for col in out.columns:
        if col.endswith("_per_seed"):
            out[col] = [";".join(f"{d:.2f}" for d in v) if isinstance(v, list) else "" for v in out[col]]
    return out.to_csv(index=False, float_format="%.4f", lineterminator="\n")


def write_claims(out_dir, name: str, claim1: Optional[pd.DataFrame] = None,
                 claim2: Optional[pd.DataFrame] = None, caption: str = "",
                 columns: Optional[Mapping[str, RunsAs]] = None) -> dict[str, Path]:
    """Write ``<name>.md`` (both sections given) and ``<name>.csv`` (one row per claim row, a ``claim``
    column saying which) atomically; returns ``{"md": path, "csv": path}``."""
    out_dir = Path(out_dir)
    paths = {"md": out_dir / f"{name}.md", "csv": out_dir / f"{name}.csv"}
    frames = [f.assign(claim=i) for i, f in ((1, claim1), (2, claim2)) if f is not None and len(f)]
    atomic_write_text(paths["md"], claims_markdown(claim1, claim2, caption, columns))
    atomic_write_text(paths["csv"], claims_csv(pd.concat(frames, ignore_index=True)) if frames else "claim\n")
    return paths
