"""The per-class figure of each Table 2 column (paper Sec. 5.3): its frame, its files, and the sweep's wiring."""
from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from benchmark.profiles import get_profile
from benchmark.render_outputs import perclass_columns, render_perclass_figures, tidy_runs
from paper_tables.perclass import (FRAME_COLUMNS, class_counts, figure_name, perclass_frame, perclass_runs,
                                   render_perclass)

K = 10
COUNTS = [4, 2, 2, 1, 1, 0, 0, 0, 0, 0]


def _row(method, variant, seed, per_class, artifact="table2", num=10, paper_num=10):
    return dict(artifact=artifact, dataset="cifar10", arch="resnet32", num=num, setting="imbalanced",
                method=method, variant=variant, seed=seed, top1=50.0, paper_dataset="cifar10",
                paper_arch="vgg16", paper_num=paper_num, per_class=per_class, class_counts=COUNTS)


def _acc(method_i, variant_i, seed, k):
    return 90.0 - 5 * k + 10 * variant_i + method_i + seed       # head -> tail falls; seed moves it by 1


@pytest.fixture
def runs():
    rows = []
    for mi, method in enumerate(("fskd", "cd")):                  # not in display order on purpose
        for vi, variant in enumerate(("none", "ft-only", "full")):
            for seed in range(3):
                rows.append(_row(method, variant, seed, [_acc(mi, vi, seed, k) for k in range(K)]))
    rows.append(_row("cd", "no-ft", 0, [1.0] * K))                                # a figure-3 variant
    rows.append(_row("cd", "none", 0, [1.0] * K, artifact="table1"))              # another artifact
    rows.append(_row("cd", "none", 5, [1.0] * K, num=50, paper_num=50))           # another column
    rows.append(_row("cd", "none", 7, None))                                      # a record without per_class
    return pd.DataFrame(rows)


def test_frame_shape_order_and_means(runs):
    frame = perclass_frame(runs, "cifar10", 10)
    assert list(frame.columns) == FRAME_COLUMNS
    assert frame.shape == (2 * 3 * K, len(FRAME_COLUMNS))          # methods x variants x classes
    assert list(frame.drop_duplicates("method")["method"]) == ["cd", "fskd"]       # METHODS order
    assert list(frame.drop_duplicates("variant")["variant"]) == ["none", "ft-only", "full"]
    assert list(frame["class_index"][:K]) == list(range(K))                          # head -> tail
    assert set(frame["n"]) == {3}
    cell = frame[(frame.method == "cd") & (frame.variant == "full") & (frame.class_index == 9)].iloc[0]
    assert cell["mean"] == pytest.approx(sum(_acc(1, 2, s, 9) for s in range(3)) / 3)
    assert cell["std"] == pytest.approx(1.0)                                          # seeds 0, 1, 2 -> +0, +1, +2
    assert len(perclass_runs(runs, "cifar10", 10)) == 2 * 3 * 3 * K


def test_other_column_and_missing_inputs(runs):
    assert perclass_frame(runs, "cifar10", 50).shape == (K, len(FRAME_COLUMNS))
    assert perclass_frame(runs, "cifar100", 100).empty
    assert perclass_frame(None, "cifar10", 10).empty
    assert perclass_frame(runs.drop(columns="per_class"), "cifar10", 10).empty
    assert class_counts(runs, "cifar10", 10) == COUNTS
    assert class_counts(runs.drop(columns="class_counts"), "cifar10", 10) is None


def _check(paths, tmp_path, name):
    assert paths == {"png": tmp_path / f"{name}.png", "pdf": tmp_path / f"{name}.pdf"}
    assert paths["png"].read_bytes().startswith(b"\x89PNG") and paths["pdf"].read_bytes().startswith(b"%PDF")


def test_figure_files(tmp_path, runs):
    name = figure_name("cifar10", 10)
    assert name == "perclass_cifar10_num10"
    paths = render_perclass(perclass_frame(runs, "cifar10", 10), tmp_path, name, "Caption.", COUNTS)
    _check(paths, tmp_path, name)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.pdf", f"{name}.png"]   # no temp files left
    empty = render_perclass(perclass_frame(None, "cifar10", 20), tmp_path, "perclass_empty")
    _check(empty, tmp_path, "perclass_empty")


def test_figure_names_variants_without_runs(tmp_path, runs, monkeypatch):
    import paper_tables.perclass as perclass
    seen = {}
    monkeypatch.setattr(perclass, "save_figure", lambda fig, path, fmt: seen.setdefault(
        "labels", [t.get_text() for lg in fig.legends for t in lg.get_texts()]))
    render_perclass(perclass_frame(runs[runs.variant != "full"], "cifar10", 10), tmp_path, "p")
    assert seen["labels"] == ["none (baseline)", "ft-only (our control, not in paper)", "no runs: full (+ Ours)"]


def test_tidy_runs_carries_per_class_and_class_counts():
    cell = dict(dataset="cifar10", arch="resnet32", num=10, method="mir", oe="full", seed=0)
    tag = dict(artifact="table2", setting="imbalanced", paper_dataset="cifar10", paper_arch="vgg16", paper_num=10)
    plan = SimpleNamespace(entries=[SimpleNamespace(cell=cell, tag=tag)] * 2, entry_keys=["k1", "k2"])
    records = {"k1": {"status": "ok", "metrics": {"top1": 70.0, "per_class": [float(k) for k in range(K)]},
                      "config": {"class_counts": COUNTS}},
               "k2": {"status": "ok", "metrics": {"top1": 71.0}}}
    frame = tidy_runs(plan, records)
    assert frame.loc[0, "per_class"] == [float(k) for k in range(K)] and frame.loc[0, "class_counts"] == COUNTS
    assert frame.loc[1, "per_class"] is None and frame.loc[1, "class_counts"] is None


def test_a_table2_render_writes_one_figure_per_column(tmp_path, runs):
    plan = SimpleNamespace(profile=get_profile("cifar10-real"), seeds=[0, 1, 2])
    assert perclass_columns(plan) == [("cifar10", 10), ("cifar10", 50)]
    written = render_perclass_figures(plan, runs, tmp_path)
    assert set(written) == {"perclass_cifar10_num10", "perclass_cifar10_num50", "perclass_groups"}
    groups = written.pop("perclass_groups")
    assert [p.name for p in groups] == ["perclass_groups.md", "perclass_groups.csv"]
    md = groups[0].read_text()
    assert "## CIFAR-10 / ResNet-32 (paper: VGG-16) Num=10" in md and "Num=50\n\n| Method" in md
    for name, paths in written.items():
        assert [p.name for p in paths] == [f"{name}.png", f"{name}.pdf"] and all(p.exists() for p in paths)
    demo = SimpleNamespace(profile=get_profile("demo"), seeds=[0])
    assert len(perclass_columns(demo)) == 9                                           # every Table 2 column


def test_caption_counts_the_seeds_each_line_averages(runs):
    """The title states the seeds a line averages: the plan's count when every line has them all, else the
    range present (a partly computed grid must not claim 5 seeds)."""
    from benchmark.render_outputs import perclass_caption
    full = perclass_frame(runs, "cifar10", 10)
    three = SimpleNamespace(profile=get_profile("cifar10-real"), seeds=[0, 1, 2])
    assert "mean ± std over 3 seeds;" in perclass_caption(three, "cifar10", 10, full)
    five = SimpleNamespace(profile=get_profile("cifar10-real"), seeds=list(range(5)))
    partial = full.assign(n=[3 if i % 2 else 2 for i in range(len(full))])
    assert "over the seeds with a record (2-3 of 5 per line)" in perclass_caption(five, "cifar10", 10, partial)
    assert "over the seeds with a record (3 of 5 per line)" in perclass_caption(five, "cifar10", 10, full)
    assert "mean ± std over 5 seeds;" in perclass_caption(five, "cifar10", 10, None)


# ---------------------------------------------------------------- head / medium / tail, paired by seed
def test_group_gains_pair_by_seed_and_split_head_medium_tail(runs):
    from paper_tables.perclass_groups import GROUPS, group_gains
    frame = group_gains(runs, "cifar10", 10)
    assert list(frame["method"].drop_duplicates()) == ["cd", "fskd"]          # display order
    assert list(frame["group"][:3]) == list(GROUPS)
    assert list(frame["classes"][:3]) == ["0-3 (9 images)", "4-6 (1 image)", "7-9 (0 images)"]
    cd_tail = frame[(frame.method == "cd") & (frame.group == "tail")].iloc[0]
    # group accuracy = mean over classes 7-9 of _acc(1, variant, seed, k); full - none = 10 * (2 - 0) every seed
    assert cd_tail["none_mean"] == pytest.approx(sum(_acc(1, 0, s, k) for s in range(3) for k in (7, 8, 9)) / 9)
    assert cd_tail["oe_gain_per_seed"] == [20.0, 20.0, 20.0] and cd_tail["oe_gain_n_pos"] == 3
    assert cd_tail["oe_gain_verdict"] == "holds"               # zero spread: the interval is the point +20
    assert cd_tail["oe_over_ft_only_mean"] == pytest.approx(10.0)
    assert cd_tail["ft_only_gain_n"] == 3


def test_group_gains_verdicts_follow_the_interval(runs):
    from paper_tables.perclass_groups import group_gains
    noisy = runs.copy()
    bump = {0: 1.0, 1: 3.0, 2: 2.0, 5: 0.0}                   # full gains 1 / 3 / 2 more per seed: CI above 0
    noisy["per_class"] = [[a + bump[s] * (v == "full") for a in pc] if isinstance(pc, list) else pc
                          for pc, v, s in zip(noisy["per_class"], noisy["variant"], noisy["seed"])]
    row = group_gains(noisy, "cifar10", 10).iloc[0]
    assert row["oe_gain_per_seed"] == [21.0, 23.0, 22.0] and row["oe_gain_verdict"] == "holds"
    drop = runs.copy()
    drop["per_class"] = [[a - 30 - s * (v == "full") for a in pc] if isinstance(pc, list) and v == "full" else pc
                         for pc, v, s in zip(drop["per_class"], drop["variant"], drop["seed"])]
    assert group_gains(drop, "cifar10", 10).iloc[0]["oe_gain_verdict"] == "fails"


def test_group_gains_files(tmp_path, runs):
    from paper_tables.perclass_groups import group_gains, write_group_gains
    frames = {"Col A": group_gains(runs, "cifar10", 10), "Col B": group_gains(None, "cifar10", 50)}
    paths = write_group_gains(tmp_path, frames, "Caption.")
    md = paths["md"].read_text()
    assert md.startswith("Caption.") and "## Col A" in md and "## Col B\n\nNo per-class record yet." in md
    assert "| CD       | tail    | 7-9 (0 images) |" in md and "+20.00" in md
    csv = pd.read_csv(paths["csv"])
    assert len(csv) == 2 * 3 and set(csv["column"]) == {"Col A"}
    assert csv.loc[0, "oe_gain_per_seed"] == "20.00;20.00;20.00"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["perclass_groups.csv", "perclass_groups.md"]
