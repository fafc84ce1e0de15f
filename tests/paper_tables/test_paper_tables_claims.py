"""The claim checks: seed pairing, verdicts, the stage split of OE's gain, the paper's differences, output."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from paper_tables.claims import claim1_frame, claim2_frame, claims_markdown, verdict, write_claims
from paper_tables.reported import load_reported_table1, load_reported_table2


def _run(artifact, method, num, setting, variant, seed, top1, top1_compressed=None):
    row = dict(artifact=artifact, dataset="cifar10", arch="vgg16", num=num, setting=setting, method=method,
               variant=variant, seed=seed, top1=top1)
    if top1_compressed is not None:
        row["top1_compressed"] = top1_compressed
    return row


@pytest.mark.parametrize("diffs, expected", [
    ([1.0, 0.5, 2.0], "holds"),
    ([3.0, -1.0, 0.5], "mixed"),     # mean > 0, one seed the other way
    ([1.0, 0.0], "mixed"),           # a zero difference is not a rise
    ([-1.0, 0.5], "fails"),
    ([0.0], "fails"),
    ([], "—"),
])
def test_verdict(diffs, expected):
    assert verdict(diffs) == expected


def test_claim1_pairs_by_seed_and_ignores_unpaired_seeds():
    runs = pd.DataFrame([
        _run("table1", "cd", 10, "balanced", "none", 0, 80.0),
        _run("table1", "cd", 10, "imbalanced", "none", 0, 70.0),
        _run("table1", "cd", 10, "balanced", "none", 1, 60.0),
        _run("table1", "cd", 10, "imbalanced", "none", 1, 62.0),
        _run("table1", "cd", 10, "balanced", "none", 2, 99.0),        # no imbalanced seed 2: unpaired
        _run("table1", "cd", 10, "imbalanced", "full", 2, 1.0),       # not a Table 1 variant
        _run("table2", "cd", 10, "imbalanced", "none", 2, 1.0),       # another artifact
    ])
    frame = claim1_frame(runs, load_reported_table1())
    assert list(zip(frame["method"], frame["num"])) == [("cd", 10)]   # only rows with runs
    row = frame.iloc[0]
    assert row["balanced_n"] == 3 and row["balanced_mean"] == pytest.approx((80 + 60 + 99) / 3)
    assert row["imbalanced_n"] == 2 and row["imbalanced_mean"] == pytest.approx(66.0)
    assert row["drop_per_seed"] == [10.0, -2.0]
    assert row["drop_mean"] == pytest.approx(4.0) and row["drop_std"] == pytest.approx(math.sqrt(72))
    assert row["drop_verdict"] == "mixed"
    assert row["paper_drop"] == pytest.approx(3.55)                 # Table 1's printed CD Num 10 drop


def test_claim2_gains_stage_split_and_paper_gain():
    runs = pd.DataFrame([
        _run("table2", "mir", 10, "imbalanced", "none", 0, 70.0),
        _run("table2", "mir", 10, "imbalanced", "ft-only", 0, 72.0, 70.0),
        _run("table2", "mir", 10, "imbalanced", "full", 0, 71.0, 75.0),
        _run("table2", "mir", 10, "imbalanced", "none", 1, 60.0),
        _run("table2", "mir", 10, "imbalanced", "ft-only", 1, 61.0, 60.0),
        _run("table2", "mir", 10, "imbalanced", "full", 1, 65.0, 62.0),
        _run("table1", "mir", 10, "balanced", "none", 0, 99.0),
    ])
    frame = claim2_frame(runs, load_reported_table2())
    assert len(frame) == 1
    row = frame.iloc[0]
    assert (row["dataset"], row["num"], row["method"]) == ("cifar10", 10, "mir")
    assert row["oe_gain_per_seed"] == [1.0, 5.0] and row["oe_gain_verdict"] == "holds"
    assert row["ft_only_gain_per_seed"] == [2.0, 1.0]
    assert row["oe_over_ft_only_per_seed"] == [-1.0, 4.0] and row["oe_over_ft_only_verdict"] == "mixed"
    assert row["oe_compress_stage_per_seed"] == [5.0, 2.0]
    assert row["oe_finetune_stage_per_seed"] == [-4.0, 3.0]
    # the two stages add up to OE's gain, seed by seed
    for total, comp, ft in zip(row["oe_gain_per_seed"], row["oe_compress_stage_per_seed"],
                               row["oe_finetune_stage_per_seed"]):
        assert comp + ft == pytest.approx(total)
    assert row["paper_gain"] == pytest.approx(75.25 - 72.84)          # Table 2, CIFAR-10 Num 10, MiR
    assert row["full_compressed_mean"] == pytest.approx(68.5)


def test_claim2_without_top1_compressed_uses_top1():
    runs = pd.DataFrame([_run("table2", "cd", 50, "imbalanced", "none", 0, 70.0),
                         _run("table2", "cd", 50, "imbalanced", "full", 0, 69.0)])
    row = claim2_frame(runs, load_reported_table2()).iloc[0]
    assert row["oe_gain_per_seed"] == [-1.0] and row["oe_gain_verdict"] == "fails"
    assert row["oe_finetune_stage_per_seed"] == [0.0]
    assert row["ft_only_n"] == 0 and row["ft_only_gain_verdict"] == "—"


def test_no_runs_give_empty_frames_and_say_so(tmp_path):
    c1 = claim1_frame(None, load_reported_table1())
    c2 = claim2_frame(None, load_reported_table2())
    assert len(c1) == 0 and len(c2) == 0
    text = claims_markdown(c1, c2)
    assert "No Table 1 run yet." in text and "No Table 2 run yet." in text
    paths = write_claims(tmp_path, "claims", claim1=c1, claim2=c2)
    assert paths["csv"].read_text() == "claim\n"


def test_write_claims_markdown_and_csv(tmp_path):
    runs = pd.DataFrame([
        _run("table1", "fskd", 50, "balanced", "none", 0, 80.0),
        _run("table1", "fskd", 50, "imbalanced", "none", 0, 70.0),
        _run("table2", "fskd", 50, "imbalanced", "none", 0, 70.0),
        _run("table2", "fskd", 50, "imbalanced", "full", 0, 72.5, 71.0),
    ])
    c1 = claim1_frame(runs, load_reported_table1())
    c2 = claim2_frame(runs, load_reported_table2())
    paths = write_claims(tmp_path, "claims", claim1=c1, claim2=c2, caption="Caption.")
    md = paths["md"].read_text()
    assert md.startswith("Caption.")
    assert "| FSKD     | 50    |" in md and "+10.00 [+10.00]" in md and "holds" in md
    assert "+2.50 [+2.50]" in md                                       # OE gain of the Table 2 row
    csv = pd.read_csv(paths["csv"], dtype=str)
    assert list(csv["claim"]) == ["1", "2"]
    assert csv.loc[1, "oe_gain_per_seed"] == "2.50"
    assert not list(tmp_path.glob("*.tmp"))
