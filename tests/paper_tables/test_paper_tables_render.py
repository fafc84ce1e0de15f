"""Renderer tests: statistics, flags, missing / n/a cells, target vs. context columns, golden outputs,
atomic writes.

Goldens live in tests/paper_tables/golden/; regenerate with
``UPDATE_GOLDEN=1 python -m pytest tests/paper_tables`` and review the diff.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from oefsmc.axes import METHOD_NAMES, PAPER_COLUMNS, PAPER_METHODS
from paper_tables import render
from paper_tables.reported import load_reported_table1, load_reported_table2
from benchmark.profiles import ColumnMap, get_profile
from benchmark.render_outputs import profile_note, table1_caption, table2_caption, target_columns
from paper_tables.render import (
    CONTEXT_ONLY,
    FLAG_MARK,
    MISSING,
    ROW_DIFF,
    ColumnRun,
    cells_csv,
    column_label,
    display_frame,
    render_table1,
    render_table2,
    to_latex,
    to_markdown,
    write_table,
)

GOLDEN = Path(__file__).resolve().parent / "golden"


def _runs(artifact, method, num, setting, variant, values, **extra):
    return [
        dict(artifact=artifact, dataset=extra.get("dataset", "cifar10"), arch=extra.get("arch", "vgg16"),
             num=num, setting=setting, method=method, variant=variant, seed=s, top1=v,
             **{k: v2 for k, v2 in extra.items() if k.startswith("paper_")})
        for s, v in enumerate(values)
    ]


def _cell(cells, **eq):
    sel = cells
    for k, v in eq.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, eq
    return sel.iloc[0]


@pytest.fixture
def t1_runs():
    rows = []
    rows += _runs("table1", "cd", 10, "balanced", "none", [74.0, 75.0, 76.0])      # mean 75, std 1
    rows += _runs("table1", "cd", 10, "imbalanced", "none", [60.0, 60.5, 61.0])    # mean 60.5, std .5
    rows += _runs("table1", "fskd", 20, "balanced", "none", [80.0])                # n=1
    rows += _runs("table1", "cd", 10, "balanced", "full", [99.0, 99.0])            # not a Table 1 variant
    rows += _runs("table2", "cd", 10, "balanced", "none", [11.0])                  # other artifact
    return pd.DataFrame(rows)


@pytest.fixture
def t2_runs():
    rows = []
    # demo profile: cifar10/resnet20 Num=5 stands in for the paper's CIFAR-10 (VGG-16) Num=10
    demo = dict(dataset="cifar10", arch="resnet20", paper_dataset="cifar10", paper_arch="vgg16", paper_num=10)
    rows += _runs("table2", "fskd", 5, "imbalanced", "none", [70.0, 72.0], **demo)
    rows += _runs("table2", "fskd", 5, "imbalanced", "full", [74.0, 76.0, 78.0], **demo)
    rows += _runs("table2", "fskd", 5, "imbalanced", "ft-only", [73.0, 73.5], **demo)
    rows += _runs("table2", "practise", 100, "imbalanced", "full", [59.0, 60.0, 61.0],
                  dataset="cifar100", arch="resnet32")
    rows += _runs("table2", "mir", 5, "imbalanced", "no-ft", [1.0, 2.0], **demo)   # figure-only variant
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- statistics
def test_table1_mean_std_diff_drop(t1_runs):
    cells = render_table1(load_reported_table1(), t1_runs, flag_2std=True)
    bal = _cell(cells, method="cd", num=10, setting="balanced")
    assert (bal.n, bal.reproduced_mean, bal.reproduced_std) == (3, 75.0, 1.0)
    assert bal["diff"] == pytest.approx(75.0 - 73.89)
    assert bal.text_reproduced == "75.00 ± 1.00 (n=3)"
    assert bal.text_diff == "+1.11" and not bal.flag          # |1.11| <= 2*1.0
    imb = _cell(cells, method="cd", num=10, setting="imbalanced")
    assert imb.reproduced_std == pytest.approx(0.5)
    assert imb["diff"] == pytest.approx(60.5 - 70.34)
    assert imb.flag and imb.text_diff == "-9.84" + FLAG_MARK   # |-9.84| > 2*0.5
    assert imb.reproduced_drop == pytest.approx(14.5)
    assert imb.text_reproduced == "60.50 ± 0.50 (n=3) (14.50↓)"
    assert imb.text_paper == "70.34 (3.55↓)"
    single = _cell(cells, method="fskd", num=20, setting="balanced")
    assert single.text_reproduced == "80.00 (n=1)" and not single.flag   # no std -> never flagged
    assert single.text_diff == "-4.20"


def test_table1_ignores_other_variants_and_artifacts(t1_runs):
    cells = render_table1(load_reported_table1(), t1_runs)
    assert _cell(cells, method="cd", num=10, setting="balanced").n == 3
    assert cells.n.sum() == 7


@pytest.mark.parametrize("offset,flagged", [(1.9, False), (2.1, True), (-2.1, True), (-1.9, False)])
def test_flag_threshold_is_two_std(offset, flagged):
    reported = 73.89
    runs = pd.DataFrame(_runs("table1", "cd", 10, "balanced", "none",
                              [reported + offset - 1, reported + offset, reported + offset + 1]))
    cells = render_table1(load_reported_table1(), runs, flag_2std=True)
    c = _cell(cells, method="cd", num=10, setting="balanced")
    assert c.reproduced_std == pytest.approx(1.0)
    assert bool(c.flag) == flagged
    assert c.text_diff.endswith(FLAG_MARK) == flagged


def test_flag_only_with_flag_2std(t1_runs):
    for cells in (render_table1(load_reported_table1(), t1_runs),
                  render_table1(load_reported_table1(), t1_runs, flag_2std=False)):
        assert not cells.flag.any()
        assert FLAG_MARK.strip() not in to_markdown(cells)
    cells = render_table1(load_reported_table1(), t1_runs, flag_2std=True)
    flagged = cells[cells.flag]
    assert list(zip(flagged.method, flagged.num, flagged.setting)) == [("cd", 10, "imbalanced")]
    assert to_markdown(cells).count(FLAG_MARK.strip()) == 2  # the cell + the legend line


def test_missing_and_not_applicable_cells(t1_runs):
    na = {(None, 100, None): "Num=100 not run", ("mir", 50, "balanced"): "no MiR here",
          ("cd", 10, None): "ignored: runs exist"}
    cells = render_table1(load_reported_table1(), t1_runs, na=na)
    missing = _cell(cells, method="practise", num=20, setting="imbalanced")
    assert missing.status == "missing" and missing.n == 0
    assert missing.text_reproduced == MISSING and missing.text_diff == MISSING
    na_cell = _cell(cells, method="fskd", num=100, setting="balanced")
    assert na_cell.status == "na" and na_cell.text_reproduced == "n/a (Num=100 not run)"
    assert na_cell.text_diff == "n/a"
    assert _cell(cells, method="mir", num=50, setting="balanced").text_reproduced == "n/a (no MiR here)"
    assert _cell(cells, method="mir", num=50, setting="imbalanced").text_reproduced == MISSING
    assert _cell(cells, method="cd", num=10, setting="balanced").status == "ok"  # runs win over n/a
    with pytest.raises(ValueError):
        render_table1(load_reported_table1(), t1_runs, na={("cd", 10): "wrong arity"})


def test_table2_paper_mapping_variants_and_ft_only(t2_runs):
    cells = render_table2(load_reported_table2(), t2_runs, flag_2std=True)
    base = _cell(cells, method="fskd", variant="none", dataset="cifar10", num=10)
    assert base.n == 2 and base.reproduced_mean == 71.0
    assert base.standin == "cifar10/resnet20/Num=5"
    full = _cell(cells, method="fskd", variant="full", dataset="cifar10", num=10)
    assert full.text_reproduced == "76.00 ± 2.00 (n=3)"
    # a stand-in column (ResNet-20, Num 5 for the paper's VGG-16, Num 10): Δ is context only
    assert full.text_diff == CONTEXT_ONLY and full["diff"] == pytest.approx(0.07)
    assert (full.target, full.comparison) == (False, "context")
    assert full.col == "CIFAR-10 / ResNet-20 Num=5 (paper: CIFAR-10 / VGG-16 Num=10)"
    ft = _cell(cells, method="fskd", variant="ft-only", dataset="cifar10", num=10)
    assert ft.row == "FSKD + FT only (not in paper)"
    assert ft.reported_str == "" and pd.isna(ft.reported) and pd.isna(ft["diff"])
    assert ft.text_paper == "" and ft.text_reproduced == "73.25 ± 0.35 (n=2)"
    typo = _cell(cells, method="practise", variant="full", dataset="cifar100", num=100)
    assert typo.text_paper == "69.57 †" and typo["diff"] == pytest.approx(60.0 - 69.57) and typo.flag
    assert (typo.target, typo.comparison, typo.col) == (True, "target", "CIFAR-100 / ResNet-32 Num=100")
    assert "no-ft" not in set(cells.variant)
    assert cells.n.sum() == 10
    # ft-only rows have just a "reproduced" sub-row
    frame = display_frame(cells)
    ft_rows = frame[frame.Method.str.contains("FT only")]
    assert len(ft_rows) == len(METHOD_NAMES) and set(ft_rows.Row) == {"reproduced"}
    # mixed rows: a Δ row, "context only" in the stand-in column; a method without paper numbers: 3 rows
    assert len(frame) == len(PAPER_METHODS) * (3 + 3 + 1) + (len(METHOD_NAMES) - len(PAPER_METHODS)) * 3
    assert set(frame[frame.Row == ROW_DIFF][full.col]) == {CONTEXT_ONLY}
    assert list(frame.columns[2:]) == [full.col] + [f"{d} Num={n}" for d, n in [
        ("CIFAR-10 / VGG-16", 20), ("CIFAR-10 / VGG-16", 50), ("CIFAR-100 / ResNet-32", 100),
        ("CIFAR-100 / ResNet-32", 200), ("CIFAR-100 / ResNet-32", 500), ("ILSVRC-2012 / ResNet-34", 1000),
        ("ILSVRC-2012 / ResNet-34", 2000), ("ILSVRC-2012 / ResNet-34", 3000)]]
    no_ft = render_table2(load_reported_table2(), t2_runs, include_ft_only=False)
    assert not no_ft.variant.eq("ft-only").any()


def test_empty_reproduced_frame_renders_all_missing():
    for cells in (render_table1(load_reported_table1(), None),
                  render_table2(load_reported_table2(), pd.DataFrame())):
        assert (cells.status[cells.reported_str != ""] == "missing").all()
        assert set(cells.text_reproduced) == {MISSING}


# --------------------------------------------------------------------------- target vs. context columns
@pytest.mark.parametrize("run, label", [
    (None, "CIFAR-10 / VGG-16 Num=10"),
    (ColumnRun("cifar10", "vgg16"), "CIFAR-10 / VGG-16 Num=10"),
    (ColumnRun("cifar10", "resnet32"), "CIFAR-10 / ResNet-32 (paper: VGG-16) Num=10"),
    (ColumnRun("digits", "demo_vgg"), "digits / demo_vgg Num=10 (paper: CIFAR-10 / VGG-16 Num=10)"),
])
def test_column_label_names_what_ran(run, label):
    assert column_label("cifar10", "vgg16", 10, run) == label


def test_column_label_demo_scaled_num():
    assert (column_label("cifar100", "resnet32", 100, get_profile("demo").column("cifar100"))
            == "digits / demo_resnet_s Num=10 (paper: CIFAR-100 / ResNet-32 Num=100)")


def _big_gap_runs():
    """Every Table 2 CIFAR-10 Num=10 FSKD baseline: 50 ± 1, far (> 2 std) from the paper's 73.51."""
    return pd.DataFrame(_runs("table2", "fskd", 10, "imbalanced", "none", [49.0, 50.0, 51.0]))


@pytest.mark.parametrize("profile, target", [("paper", True), ("cifar10-real", False), ("demo", False)])
def test_delta_only_where_the_column_is_the_papers_configuration(profile, target):
    """Decided from the profile's column mapping (ColumnMap: dataset, arch, Num unchanged), not its name."""
    columns = get_profile(profile).columns
    runs = _big_gap_runs()
    m = columns["cifar10"]
    runs = runs.assign(dataset=m.dataset, arch=m.arch, num=m.num(10), paper_dataset="cifar10",
                       paper_arch="vgg16", paper_num=10)
    cells = render_table2(load_reported_table2(), runs, flag_2std=True, columns=columns)
    c = _cell(cells, method="fskd", variant="none", dataset="cifar10", num=10)
    assert c.n == 3 and c["diff"] == pytest.approx(50.0 - 73.51)       # the CSV keeps the number either way
    assert bool(c.target) == target and c.comparison == ("target" if target else "context")
    assert bool(c.flag) == target                                       # the 2·std flag only on a target
    frame = display_frame(cells)
    assert (ROW_DIFF in set(frame.Row)) == target                      # no Δ row at all in a stand-in table
    md = to_markdown(cells)
    assert ("Δ (repro − paper)" in md.split("\n\n")[0]) == target       # the table itself, not the footnote
    assert ("no Δ row is printed" in md) == (not target)
    assert ("-23.51" in md) == target


def test_mixed_columns_from_an_explicit_mapping():
    """A profile running CIFAR-100 / ResNet-32 as in the paper and a CIFAR-10 stand-in: Δ in one column only."""
    columns = {"cifar10": ColumnRun("cifar10", "resnet32"), "cifar100": ColumnRun("cifar100", "resnet32")}
    runs = pd.DataFrame(
        _runs("table2", "cd", 10, "imbalanced", "none", [60.0, 61.0], arch="resnet32", paper_dataset="cifar10",
              paper_arch="vgg16", paper_num=10)
        + _runs("table2", "cd", 100, "imbalanced", "none", [50.0, 52.0], dataset="cifar100", arch="resnet32"))
    cells = render_table2(load_reported_table2(), runs, flag_2std=True, columns=columns)
    standin = _cell(cells, method="cd", variant="none", dataset="cifar10", num=10)
    paper = _cell(cells, method="cd", variant="none", dataset="cifar100", num=100)
    assert standin.col == "CIFAR-10 / ResNet-32 (paper: VGG-16) Num=10" and standin.text_diff == CONTEXT_ONLY
    assert paper.col == "CIFAR-100 / ResNet-32 Num=100" and paper.text_diff == f"{51.0 - 53.38:+.2f}"
    assert _cell(cells, method="cd", variant="none", dataset="imagenet", num=1000).text_diff == CONTEXT_ONLY
    assert '"context only" in the Δ row' in to_markdown(cells)


def test_table1_columns_name_what_ran():
    runs = pd.DataFrame(_runs("table1", "cd", 10, "balanced", "none", [70.0, 71.0], arch="resnet32"))
    cells = render_table1(load_reported_table1(), runs, flag_2std=True,
                          columns={"cifar10": ColumnRun("cifar10", "resnet32")})
    c = _cell(cells, method="cd", num=10, setting="balanced")
    assert c.col == "CIFAR-10 / ResNet-32 (paper: VGG-16) Num=10 Balance"
    assert c.text_diff == CONTEXT_ONLY and not cells.target.any()
    assert ROW_DIFF not in set(display_frame(cells).Row)


# --------------------------------------------------------------------------- captions (benchmark.render_outputs)
def _plan(profile):
    return SimpleNamespace(profile=profile, seeds=[0, 1, 2])


def test_captions_name_what_ran_and_say_whether_delta_is_a_target():
    real = _plan(get_profile("cifar10-real"))
    t1 = table1_caption(real, 0)
    assert "of ResNet-32 on CIFAR-10 (paper: VGG-16 on CIFAR-10)" in t1 and "of VGG-16 on CIFAR-10 compressed" not in t1
    assert "no Δ row is printed" in t1 and "Δ = reproduced − paper where" not in t1
    t2 = table2_caption(real, 0)
    assert "ResNet-32 on CIFAR-10 (paper: VGG-16 on CIFAR-10); ResNet-32 on CIFAR-100 (not run here)" in t2
    paper = _plan(get_profile("paper"))
    assert "Profile paper: the paper's setting" in table1_caption(paper, 0)
    assert "Every column runs the paper's configuration" in table2_caption(paper, 0)
    assert "of VGG-16 on CIFAR-10 compressed" in table1_caption(paper, 0)


def test_target_columns_come_from_the_mapping_not_the_name():
    assert target_columns(get_profile("paper")) == (list(PAPER_COLUMNS), [])     # every paper column
    assert target_columns(get_profile("cifar10-real")) == ([], ["cifar10"])
    assert target_columns(get_profile("demo")) == ([], ["cifar10", "cifar100", "imagenet"])
    # a future real CIFAR-100 / ResNet-32 profile: its column is the paper's, whatever the profile is called
    future = replace(get_profile("cifar10-real"), name="cifar100-real",
                     columns={"cifar100": ColumnMap("cifar100", "resnet32")})
    assert target_columns(future) == (["cifar100"], [])
    assert "Every column runs the paper's configuration" in profile_note(future, 3, ["cifar100"])
    renamed = replace(get_profile("paper"), name="not-paper")
    assert target_columns(renamed)[1] == [] and "no Δ row" not in table2_caption(_plan(renamed), 0)
    mixed = replace(future, columns={"cifar100": ColumnMap("cifar100", "resnet32"),
                                     "cifar10": ColumnMap("cifar10", "resnet32")})
    note = profile_note(mixed, 3)
    assert "target only in the columns run as in the paper (CIFAR-100" in note and "(CIFAR-10) the paper's" in note


# --------------------------------------------------------------------------- goldens
def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden {path}; run with UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


def test_golden_table1(t1_runs):
    cells = render_table1(load_reported_table1(), t1_runs, flag_2std=True, na={(None, 100, None): "not run"})
    _golden("table1.md", to_markdown(cells, "Table 1: VGG-16 on CIFAR-10, balanced vs. imbalanced."))
    _golden("table1.csv", cells_csv(cells))


def test_golden_table2(t2_runs):
    cells = render_table2(load_reported_table2(), t2_runs, flag_2std=False,
                          na={("imagenet", None, None, None): "ILSVRC-2012 not available"})
    _golden("table2.md", to_markdown(cells, "Table 2: with and without OE-FSMC."))
    _golden("table2.csv", cells_csv(cells))


def test_latex_output(t2_runs):
    cells = render_table2(load_reported_table2(), t2_runs, flag_2std=True)
    tex = to_latex(cells, "Table 2: 50% of_it", label="tab:t2")
    assert tex.startswith("\\begin{table}") and tex.rstrip().endswith("\\end{table}")
    assert "\\caption{Table 2: 50\\% of\\_it}" in tex and "\\label{tab:t2}" in tex
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "76.00 $\\pm$ 2.00 (n=3)" in tex and "69.57 $^{\\dagger}$" in tex
    assert not any(ch in tex for ch in "±↓Δ—†⚠−←·…")


# --------------------------------------------------------------------------- writers
def test_write_table_outputs(tmp_path, t2_runs):
    cells = render_table2(load_reported_table2(), t2_runs)
    paths = write_table(cells, tmp_path / "out", "table2", "Caption here.")
    assert {p.name for p in paths.values()} == {"table2.md", "table2.tex", "table2.csv"}
    assert paths["md"].read_text(encoding="utf-8") == to_markdown(cells, "Caption here.")
    assert paths["md"].read_text(encoding="utf-8").startswith("Caption here.\n\n| Method")
    assert "\\caption{Caption here.}" in paths["tex"].read_text(encoding="utf-8")
    csv = pd.read_csv(paths["csv"], dtype=str, keep_default_na=False)
    assert len(csv) == len(cells) and list(csv.columns) == render.CSV_COLUMNS
    row = csv[(csv.method == "fskd") & (csv.variant == "full") & (csv.num == "10")
              & (csv.dataset == "cifar10")].iloc[0]
    assert (row.reported, row.reproduced_mean, row.reproduced_std, row.n, row["diff"], row.comparison) == (
        "75.93", "76.0000", "2.0000", "3", "0.0700", "context")      # the CSV keeps the number, says what it is
    assert row["col"] == "CIFAR-10 / ResNet-20 Num=5 (paper: CIFAR-10 / VGG-16 Num=10)"
    assert set(csv[csv.variant == "ft-only"].comparison) == {""}       # no paper number, no comparison
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["table2.csv", "table2.md", "table2.tex"]


def test_write_is_atomic(tmp_path, t2_runs, monkeypatch):
    cells = render_table2(load_reported_table2(), t2_runs)
    target = tmp_path / "table2.md"
    target.write_text("old", encoding="utf-8")

    def boom(src, dst):
        raise OSError("simulated crash")

    import oefsmc.atomic
    monkeypatch.setattr(oefsmc.atomic.os, "replace", boom)
    with pytest.raises(OSError):
        write_table(cells, tmp_path, "table2", "cap")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table2.md"]  # no temp files left behind
