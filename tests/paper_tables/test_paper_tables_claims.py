"""The claim checks: seed pairing, t intervals, sign counts, verdicts, the stage split of OE's gain, the paper's
differences, output."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from scipy import stats

from paper_tables.claims import (claim1_frame, claim2_frame, claims_markdown, sign_count, t_interval, verdict,
                                 write_claims)
from paper_tables.render import ColumnRun
from paper_tables.reported import load_reported_table1, load_reported_table2

#: Two-sided 95% Student-t quantiles t(0.975, df), from a table (not from scipy: the code under test uses it).
T975 = {1: 12.706204736, 2: 4.302652730, 4: 2.776445105}


def _run(artifact, method, num, setting, variant, seed, top1, top1_compressed=None):
    row = dict(artifact=artifact, dataset="cifar10", arch="vgg16", num=num, setting=setting, method=method,
               variant=variant, seed=seed, top1=top1)
    if top1_compressed is not None:
        row["top1_compressed"] = top1_compressed
    return row


def _hand_ci(diffs):
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = T975[n - 1] * sd / math.sqrt(n)
    return mean - half, mean + half


@pytest.mark.parametrize("diffs", [[1.0, 2.0, 6.0], [10.0, -2.0], [0.3, -0.1, 0.7, 1.9, 0.4]])
def test_t_interval_matches_a_hand_computation(diffs):
    low, high = t_interval(diffs)
    assert (low, high) == pytest.approx(_hand_ci(diffs), rel=1e-8)
    assert T975[len(diffs) - 1] == pytest.approx(stats.t.ppf(0.975, len(diffs) - 1), rel=1e-9)


def test_t_interval_by_hand_for_three_seeds():
    # mean 3, s = sqrt(7), half width 4.302653 * sqrt(7) / sqrt(3) = 6.572411
    assert t_interval([1.0, 2.0, 6.0]) == pytest.approx((3 - 6.572411, 3 + 6.572411), abs=1e-5)


def test_t_interval_needs_two_seeds():
    assert all(math.isnan(x) for x in t_interval([5.0]) + t_interval([]))


@pytest.mark.parametrize("diffs, expected", [([1.0, 0.0, -1.0, 2.0], (2, 4)), ([], (0, 0)), ([-0.5], (0, 1))])
def test_sign_count(diffs, expected):
    assert sign_count(diffs) == expected        # a zero difference is not a rise


@pytest.mark.parametrize("diffs, expected", [
    ([1.0, 1.1, 0.9], "holds"),              # interval [0.75, 1.25] above 0
    ([-1.0, -1.1, -0.9], "fails"),           # interval below 0: the opposite holds
    ([1.0, 0.5, 2.0], "inconclusive"),       # 3/3 seeds positive, but the interval [-0.73, 3.06] contains 0
    ([3.0, -1.0, 0.5], "inconclusive"),
    ([5.0], "inconclusive"),                 # n = 1: no interval
    ([], "—"),
])
def test_verdict_is_defined_on_the_interval(diffs, expected):
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
    # n = 2: 4 ± 12.706 * sqrt(72) / sqrt(2) = 4 ± 76.24
    assert (row["drop_ci_low"], row["drop_ci_high"]) == pytest.approx((4 - 76.237228, 4 + 76.237228), abs=1e-4)
    assert row["drop_n_pos"] == 1 and row["drop_verdict"] == "inconclusive"
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
    assert row["oe_gain_per_seed"] == [1.0, 5.0] and row["oe_gain_n_pos"] == 2
    assert row["oe_gain_verdict"] == "inconclusive"                    # 2/2 up, but 3 ± 25.4 contains 0
    assert (row["oe_gain_ci_low"], row["oe_gain_ci_high"]) == pytest.approx(_hand_ci([1.0, 5.0]))
    assert row["ft_only_gain_per_seed"] == [2.0, 1.0]
    assert row["oe_over_ft_only_per_seed"] == [-1.0, 4.0] and row["oe_over_ft_only_verdict"] == "inconclusive"
    assert row["oe_over_ft_only_n_pos"] == 1
    assert row["oe_compress_stage_per_seed"] == [5.0, 2.0]
    assert row["oe_finetune_stage_per_seed"] == [-4.0, 3.0]
    # the two stages add up to OE's gain, seed by seed
    for total, comp, ft in zip(row["oe_gain_per_seed"], row["oe_compress_stage_per_seed"],
                               row["oe_finetune_stage_per_seed"]):
        assert comp + ft == pytest.approx(total)
    assert row["paper_gain"] == pytest.approx(75.25 - 72.84)          # Table 2, CIFAR-10 Num 10, MiR
    assert row["full_compressed_mean"] == pytest.approx(68.5)


def test_claim2_counts_common_random_number_pairs_and_names_the_rows_that_break_them():
    """ft-only shares none's compression stage (schema 2), so its accuracy before fine-tuning must equal
    none's top-1 exactly; the check counts the pairs and names a row where one differs."""
    runs = pd.DataFrame([
        _run("table2", "mir", 10, "imbalanced", "none", 0, 70.0),
        _run("table2", "mir", 10, "imbalanced", "ft-only", 0, 72.0, 70.0),           # equal: holds
        _run("table2", "mir", 10, "imbalanced", "none", 1, 60.0),
        _run("table2", "mir", 10, "imbalanced", "ft-only", 1, 61.0, 60.01),          # off by 0.01: broken
        _run("table2", "cd", 10, "imbalanced", "none", 0, 50.0),
        _run("table2", "cd", 10, "imbalanced", "ft-only", 0, 55.0, 50.0),
        _run("table2", "cd", 10, "imbalanced", "ft-only", 1, 55.0, 50.0),            # no none: not a pair
    ])
    frame = claim2_frame(runs, load_reported_table2()).set_index("method")
    assert (frame.loc["mir", "crn_pairs"], frame.loc["mir", "crn_equal"]) == (2, 1)
    assert (frame.loc["cd", "crn_pairs"], frame.loc["cd", "crn_equal"]) == (1, 1)
    md = claims_markdown(None, claim2_frame(runs, load_reported_table2()))
    assert "equals `none`'s top-1 exactly in 2 of 3 (column, method, seed) pairs" in md
    assert "differing: CIFAR-10 Num=10 MiR (1)." in md
    same = runs.assign(top1_compressed=runs["top1_compressed"].where(runs["top1_compressed"] != 60.01, 60.0))
    assert "exactly in 3 of 3 (column, method, seed) pairs (they share one compression stage)." in \
        claims_markdown(None, claim2_frame(same, load_reported_table2()))


def test_claim2_without_top1_compressed_uses_top1():
    runs = pd.DataFrame([_run("table2", "cd", 50, "imbalanced", "none", 0, 70.0),
                         _run("table2", "cd", 50, "imbalanced", "full", 0, 69.0)])
    row = claim2_frame(runs, load_reported_table2()).iloc[0]
    assert row["oe_gain_per_seed"] == [-1.0] and row["oe_gain_verdict"] == "inconclusive"     # n = 1
    assert math.isnan(row["oe_gain_ci_low"]) and math.isnan(row["oe_gain_ci_high"])
    assert row["oe_finetune_stage_per_seed"] == [0.0]
    assert row["ft_only_n"] == 0 and row["ft_only_gain_verdict"] == "—"
    md = claims_markdown(None, claim2_frame(runs, load_reported_table2()))
    line = next(x for x in md.splitlines() if x.startswith("| CIFAR-10 Num=50") and "-1.00 [-1.00]" in x)
    assert "none (n=1)" in line and "0/1" in line and "inconclusive (n=1, no CI; mean < 0)" in line
    assert "Common random numbers: no `ft-only` record states its accuracy before fine-tuning." in md


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
    assert "| FSKD     | 50    |" in md and "+10.00 [+10.00]" in md and "inconclusive (n=1, no CI; mean > 0)" in md
    assert "+2.50 [+2.50]" in md                                       # OE gain of the Table 2 row
    csv = pd.read_csv(paths["csv"], dtype=str)
    assert list(csv["claim"]) == ["1", "2"]
    assert csv.loc[1, "oe_gain_per_seed"] == "2.50"
    assert not list(tmp_path.glob("*.tmp"))


def _three_seed_runs():
    """Table 2 MiR CIFAR-10 Num 10 over 3 seeds: OE gains [1, 1.2, 0.8] (CI above 0), FT-only gains
    [-1, -1.2, -0.8] (CI below 0), and Table 1 drops [5, 1, -3] (CI contains 0)."""
    rows = []
    for seed, (none, gain) in enumerate([(70.0, 1.0), (60.0, 1.2), (65.0, 0.8)]):
        rows += [_run("table2", "mir", 10, "imbalanced", "none", seed, none),
                 _run("table2", "mir", 10, "imbalanced", "full", seed, none + gain, none + 2 * gain),
                 _run("table2", "mir", 10, "imbalanced", "ft-only", seed, none - gain)]
    for seed, drop in enumerate([5.0, 1.0, -3.0]):
        rows += [_run("table1", "mir", 10, "balanced", "none", seed, 70.0 + drop),
                 _run("table1", "mir", 10, "imbalanced", "none", seed, 70.0)]
    return pd.DataFrame(rows)


def test_markdown_states_the_rule_and_shows_intervals_signs_and_verdicts():
    runs = _three_seed_runs()
    c1, c2 = claim1_frame(runs, load_reported_table1()), claim2_frame(runs, load_reported_table2())
    row = c2.iloc[0]
    assert (row["oe_gain_verdict"], row["ft_only_gain_verdict"]) == ("holds", "fails")
    assert c1.iloc[0]["drop_verdict"] == "inconclusive" and c1.iloc[0]["drop_n_pos"] == 2
    md = claims_markdown(c1, c2)
    for text in ("Student-t confidence interval", "holds = the interval lies above 0 (lower bound > 0)",
                 "fails = it lies below 0 (upper bound < 0: the opposite holds)", "| 95% CI (t)", "| seeds > 0"):
        assert text in md
    low, high = _hand_ci([1.0, 1.2, 0.8])
    oe = md[md.index("### OE gain"):md.index("### FT-only gain")]
    assert f"[{low:+.2f}, {high:+.2f}]" in oe and "| 3/3 " in oe and "| holds " in oe
    assert "+2.41" in oe                                             # the paper's gain, beside it
    assert "Verdicts: holds 1, fails 0, inconclusive 0 (of 1 rows)." in oe
    ft = md[md.index("### FT-only gain"):md.index("### OE − FT only")]
    assert "| 0/3 " in ft and "| fails " in ft
    low, high = _hand_ci([5.0, 1.0, -3.0])
    claim1 = md[md.index("## Claim 1"):md.index("## Claim 2")]
    assert f"[{low:+.2f}, {high:+.2f}]" in claim1 and "| 2/3 " in claim1 and "inconclusive (mean > 0)" in claim1


def test_claim2_columns_named_by_what_ran():
    runs = _three_seed_runs()
    md = claims_markdown(None, claim2_frame(runs, load_reported_table2()),
                         columns={"cifar10": ColumnRun("cifar10", "resnet32")})
    assert "| CIFAR-10 / ResNet-32 (paper: VGG-16) Num=10 | MiR" in md


def test_csv_has_the_interval_and_sign_columns(tmp_path):
    paths = write_claims(tmp_path, "claim2", claim2=claim2_frame(_three_seed_runs(), load_reported_table2()))
    csv = pd.read_csv(paths["csv"])
    low, high = _hand_ci([1.0, 1.2, 0.8])
    assert csv.loc[0, "oe_gain_ci_low"] == pytest.approx(low, abs=1e-4)
    assert csv.loc[0, "oe_gain_ci_high"] == pytest.approx(high, abs=1e-4)
    assert csv.loc[0, "oe_gain_n_pos"] == 3 and csv.loc[0, "oe_gain_verdict"] == "holds"
