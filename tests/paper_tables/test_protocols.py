"""Claim 2 per fine-tuning protocol and the oracle-test diagnostic (paper_tables/protocols.py), and their grids."""
import pandas as pd

from benchmark.grids import PROTOCOLS, selection_bias, table2_protocols
from benchmark.profiles import get_profile
from paper_tables.protocols import (DIAGNOSTIC_LABEL, claim2_protocols_frame, protocol_independent,
                                    protocols_markdown, selection_bias_frame, selection_bias_markdown)
from paper_tables.reported import load_reported_table2


def _runs():
    rows = []
    for protocol, full_gain in (("default", 2.0), ("bn-train-all (session 3)", -1.0)):
        for seed in (0, 1, 2):
            for variant, top1 in (("none", 70.0 + seed), ("ft-only", 71.0 + seed), ("full", 70.0 + seed + full_gain)):
                rows.append({"artifact": "table2-protocols", "dataset": "cifar10", "arch": "resnet32", "num": 10,
                             "setting": "imbalanced", "method": "mir", "variant": variant, "seed": seed,
                             "top1": top1, "top1_compressed": top1, "paper_dataset": "cifar10",
                             "paper_arch": "vgg16", "paper_num": 10, "protocol": protocol})
    return pd.DataFrame(rows)


def test_claim2_per_protocol_and_protocol_independent_verdicts():
    frame = claim2_protocols_frame(_runs(), load_reported_table2(), ["default", "bn-train-all (session 3)"])
    assert list(frame["protocol"]) == ["default", "bn-train-all (session 3)"]
    assert frame["oe_gain_mean"].round(6).tolist() == [2.0, -1.0]
    assert frame["ft_only_gain_mean"].round(6).tolist() == [1.0, 1.0]
    assert protocol_independent(frame) == []  # the OE gain flips with the protocol
    assert protocol_independent(frame, "ft_only_gain") == ["CIFAR-10 Num=10 MiR: "
                                                           + frame["ft_only_gain_verdict"].iloc[0]]
    md = protocols_markdown(frame)
    assert "bn-train-all (session 3)" in md and "do not depend on the protocol:** none" in md


def test_selection_bias_compares_monitor_and_oracle_and_is_labelled():
    runs = _runs()
    runs = runs[runs["variant"] != "none"].assign(oracle_top1=lambda f: f["top1"] + 0.5)
    frame = selection_bias_frame(runs)
    assert set(frame["variant"]) == {"ft-only", "full"} and (frame["oracle_gain_mean"].round(6) == 0.5).all()
    assert selection_bias_markdown(frame).startswith(f"**{DIAGNOSTIC_LABEL}.**")


def test_study_columns_are_named_by_what_ran():
    """With the profile's column map, both studies name a stand-in column as the tables do (issue 17)."""
    columns = get_profile("cifar10-real").columns
    frame = claim2_protocols_frame(_runs(), load_reported_table2(), ["default", "bn-train-all (session 3)"])
    label = "CIFAR-10 / ResNet-32 (paper: VGG-16) Num=10"
    md = protocols_markdown(frame, columns=columns)
    assert f"| {label}" in md and "| CIFAR-10 Num=10" not in md
    assert protocol_independent(frame, "ft_only_gain", columns)[0].startswith(label + " MiR: ")
    runs = _runs().assign(oracle_top1=lambda f: f["top1"] + 0.5)
    sel = selection_bias_markdown(selection_bias_frame(runs), columns=columns)
    assert f"| {label}" in sel and "| CIFAR-10 Num=10" not in sel


def test_protocol_and_selection_grids():
    profile = get_profile("cifar10-real")
    entries = table2_protocols(profile, [0])
    assert {e.tag["protocol"] for e in entries} == set(PROTOCOLS)
    for e in entries:
        if e.cell["oe"] == "none":
            assert e.cell["overrides"] == {}  # no fine-tuning stage: shared by every protocol
        else:
            assert e.cell["overrides"] == PROTOCOLS[e.tag["protocol"]]
    diag = selection_bias(profile, [0])
    assert diag and all(e.cell["overrides"]["finetune.select"] == "oracle-test" and e.cell["oe"] != "none"
                        for e in diag)
    assert all(e.tag["artifact"] == "selection-bias" for e in diag)
