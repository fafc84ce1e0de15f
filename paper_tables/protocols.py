"""Claim 2 under each fine-tuning protocol, and the test-set-selection diagnostic.

The paper never states how it fine-tunes (Sec. 5.1 gives batch 128 and lr 5e-4; Sec. 4.3 says only
"early stopping"), so a verdict on claim 2 ("OE-FSMC raises every method", Sec. 5.3) is only as good as its
robustness to that choice:

* :func:`claim2_protocols_frame` -- :func:`paper_tables.claims.claim2_frame` once per protocol (the tidy
  runs carry a ``protocol`` column; see ``benchmark.grids.PROTOCOLS``), stacked; :func:`protocols_markdown`
  shows, per (column, Num, method), the OE gain and its verdict under every protocol, and lists the rows
  whose verdict does not depend on the protocol.
* :func:`selection_bias_frame` -- for every Table 2 row with a fine-tuning stage, the reproduced mean under
  the protocol's own early stopping next to the same cells' best *test* accuracy over the iterations the
  run evaluated (``finetune.select=oracle-test``), and the difference: how much choosing the best test epoch
  could add.  DIAGNOSTIC ONLY: it is written to ``selection_bias.md`` and never enters a table, a figure or a
  verdict.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

import pandas as pd
from tabulate import tabulate

from oefsmc.axes import method_label

from .cells import MISSING
from .claims import claim2_frame, claim_column_name, claims_csv
from .columns import RunsAs
from .formats import atomic_write_text

DIAGNOSTIC_LABEL = "DIAGNOSTIC: test-set selection (never in a table, a figure or a verdict)"


def claim2_protocols_frame(runs: Optional[pd.DataFrame], reported: pd.DataFrame,
                           order: Optional[list[str]] = None) -> pd.DataFrame:
    """Claim-2 rows per protocol: ``claim2_frame`` of each protocol's runs, with a ``protocol`` column."""
    if runs is None or not len(runs) or "protocol" not in runs:
        return pd.DataFrame()
    names = order or list(dict.fromkeys(runs["protocol"]))
    frames = []
    for name in names:
        sel = runs[runs["protocol"] == name].assign(artifact="table2")
        frame = claim2_frame(sel, reported)
        if len(frame):
            frames.append(frame.assign(protocol=name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _gain(row, prefix: str) -> str:
    if not row[f"{prefix}_n"]:
        return MISSING
    return f"{row[f'{prefix}_mean']:+.2f} ({row[f'{prefix}_verdict']}, n={row[f'{prefix}_n']})"


def protocol_independent(frame: pd.DataFrame, prefix: str = "oe_gain",
                         columns: Optional[Mapping[str, RunsAs]] = None) -> list[str]:
    """Rows (column, method) whose ``prefix`` verdict is the same under every protocol present."""
    if not len(frame):
        return []
    out = []
    for (_, _, method), sel in frame.groupby(["dataset", "num", "method"], sort=False):
        verdicts = set(sel[f"{prefix}_verdict"])
        if len(sel) > 1 and len(verdicts) == 1:
            out.append(f"{claim_column_name(sel.iloc[0], columns)} {method_label(method)}: {verdicts.pop()}")
    return out


def protocols_markdown(frame: pd.DataFrame, caption: str = "",
                       columns: Optional[Mapping[str, RunsAs]] = None) -> str:
    """One row per (column, method, protocol): OE gain, FT-only gain and OE − FT only, each with verdict.
    ``columns`` (what ran per paper dataset) names the columns by what ran, as the tables do."""
    parts = [caption] if caption else []
    parts.append("## Claim 2 under each fine-tuning protocol")
    if not len(frame):
        parts.append("No run yet.")
        return "\n\n".join(parts) + "\n"
    lines = [{"Column": claim_column_name(r, columns), "Method": method_label(r["method"]), "Protocol": r["protocol"],
              "OE gain (full − none)": _gain(r, "oe_gain"), "FT-only gain": _gain(r, "ft_only_gain"),
              "OE − FT only": _gain(r, "oe_over_ft_only")} for _, r in frame.iterrows()]
    parts.append(tabulate(pd.DataFrame(lines), headers="keys", tablefmt="github", showindex=False,
                          disable_numparse=True))
    same = protocol_independent(frame, columns=columns)
    same_ft = protocol_independent(frame, "oe_over_ft_only", columns)
    parts.append("**OE-gain verdicts that do not depend on the protocol:** "
                 + ("; ".join(same) if same else "none") + ".")
    parts.append("**OE − FT-only verdicts that do not depend on the protocol:** "
                 + ("; ".join(same_ft) if same_ft else "none") + ".")
    return "\n\n".join(parts) + "\n"


def selection_bias_frame(runs: Optional[pd.DataFrame]) -> pd.DataFrame:
    """Per (column, Num, method, variant): mean top-1 under the monitor vs mean oracle-test top-1."""
    cols = ["dataset", "arch", "num", "method", "variant", "n", "monitor_mean", "oracle_mean", "oracle_gain_mean",
            "oracle_gain_max"]
    if runs is None or not len(runs) or "oracle_top1" not in runs:
        return pd.DataFrame(columns=cols)
    df = runs.dropna(subset=["oracle_top1"]).assign(gain=lambda f: f["oracle_top1"] - f["top1"])
    if "paper_arch" not in df:  # then the column is named by the paper's dataset and Num alone
        df = df.assign(paper_arch=None)
    rows = []
    for (ds, arch, num, method, variant), sel in df.groupby(
            ["paper_dataset", "paper_arch", "paper_num", "method", "variant"], sort=False, dropna=False):
        rows.append({"dataset": ds, "arch": arch, "num": int(num), "method": method, "variant": variant, "n": len(sel),
                     "monitor_mean": sel["top1"].mean(), "oracle_mean": sel["oracle_top1"].mean(),
                     "oracle_gain_mean": sel["gain"].mean(), "oracle_gain_max": sel["gain"].max()})
    return pd.DataFrame(rows, columns=cols)


def selection_bias_markdown(frame: pd.DataFrame, caption: str = "",
                            columns: Optional[Mapping[str, RunsAs]] = None) -> str:
    parts = [f"**{DIAGNOSTIC_LABEL}.**"] + ([caption] if caption else [])
    parts.append("## Could the gain come from choosing the best test epoch?")
    parts.append("Monitor = the run's own early stopping (what every table reports); oracle-test = the best "
                 "test top-1 over the monitor's evaluation points of the same run. The difference bounds what "
                 "selecting the fine-tuning epoch on the test set could add to a row.")
    if not len(frame):
        parts.append("No run yet.")
        return "\n\n".join(parts) + "\n"
    lines = [{"Column": claim_column_name(r, columns), "Method": method_label(r["method"]), "Variant": r["variant"],
              "n": r["n"],
              "monitor": f"{r['monitor_mean']:.2f}", "oracle-test (diagnostic)": f"{r['oracle_mean']:.2f}",
              "difference": f"{r['oracle_gain_mean']:+.2f} (max {r['oracle_gain_max']:+.2f})"}
             for _, r in frame.iterrows()]
    parts.append(tabulate(pd.DataFrame(lines), headers="keys", tablefmt="github", showindex=False,
                          disable_numparse=True))
    return "\n\n".join(parts) + "\n"


def write_markdown_csv(out_dir, name: str, markdown: str, frame: pd.DataFrame) -> dict[str, Path]:
    out_dir = Path(out_dir)
    paths = {"md": out_dir / f"{name}.md", "csv": out_dir / f"{name}.csv"}
    atomic_write_text(paths["md"], markdown)
    atomic_write_text(paths["csv"], claims_csv(frame))
    return paths
