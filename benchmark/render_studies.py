"""Glue from a sweep's records to the study renderers (:mod:`paper_tables.protocols`).

``table2-protocols`` -> ``claim2_protocols.md/.csv`` (claim 2 under every fine-tuning protocol) and
``selection-bias`` -> ``selection_bias.md/.csv`` (the oracle-test DIAGNOSTIC).  Like the tables, rows come
from the plan's grid entries that have an ``ok`` record; the oracle number is read from the record's
``diagnostic`` block, which only ``finetune.select=oracle-test`` cells carry.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from paper_tables.protocols import (claim2_protocols_frame, protocols_markdown,
                                    selection_bias_frame, selection_bias_markdown, write_markdown_csv)
from paper_tables.reported import load_reported_table2

from .grids import PROTOCOLS


def study_runs(plan, records: dict, artifact: str) -> pd.DataFrame:
    """One row per grid entry of ``artifact`` with an ok record (top1, top1_compressed, protocol, oracle)."""
    rows = []
    for e, key in zip(plan.entries, plan.entry_keys):
        rec = records.get(key) if key else None
        if e.tag.get("artifact") != artifact or not rec or rec.get("status") != "ok":
            continue
        c, t, m = e.cell, e.tag, rec["metrics"]
        rows.append({"artifact": artifact, "dataset": c["dataset"], "arch": c["arch"], "num": c["num"],
                     "setting": t.get("setting"), "method": c["method"], "variant": c["oe"], "seed": c["seed"],
                     "top1": float(m["top1"]), "top1_compressed": float(m.get("top1_compressed", m["top1"])),
                     "paper_dataset": t.get("paper_dataset"), "paper_arch": t.get("paper_arch"),
                     "paper_num": t.get("paper_num"), "protocol": t.get("protocol"),
                     "oracle_top1": (rec.get("diagnostic") or {}).get("oracle_top1")})
    return pd.DataFrame(rows)


def render_studies(plan, records: dict, out_dir: Path, caption: str, log=None) -> dict[str, list[Path]]:
    """Render the studies of the plan; a study no record supports is not written (nor overwritten)."""
    log = log or (lambda msg: None)
    written: dict[str, list[Path]] = {}
    runs = {a: study_runs(plan, records, a) for a in ("table2-protocols", "selection-bias") if a in plan.artifacts}
    for artifact, frame in runs.items():
        if not len(frame):
            log(f"not rendering {artifact}: no record supports it")
    if len(runs.get("table2-protocols", ())):
        frame = claim2_protocols_frame(runs["table2-protocols"], load_reported_table2(), list(PROTOCOLS))
        text = protocols_markdown(frame, caption + " Protocols: " + "; ".join(
            f"{name} = {over or 'the suite defaults'}" for name, over in PROTOCOLS.items()) + ".",
            plan.profile.columns)
        written["claim2_protocols"] = list(write_markdown_csv(out_dir, "claim2_protocols", text, frame).values())
    if len(runs.get("selection-bias", ())):
        frame = selection_bias_frame(runs["selection-bias"])
        text = selection_bias_markdown(frame, caption, plan.profile.columns)
        written["selection_bias"] = list(write_markdown_csv(out_dir, "selection_bias", text, frame).values())
    return written
