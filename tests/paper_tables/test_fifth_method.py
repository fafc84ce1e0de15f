"""A method, a variant, a dataset the paper does not have: every renderer shows it after the paper's own ones,
labelled by its name, and none crashes (the axes live in ``oefsmc.axes``)."""
from __future__ import annotations

import pandas as pd
import pytest

from oefsmc.axes import METHOD_NAMES, PAPER_METHODS, method_label
from paper_tables.claims import (
    claim1_frame,
    claim2_frame,
    claims_markdown,
    write_claims,
)
from paper_tables.figure3 import render_figure3
from paper_tables.perclass import perclass_frame, render_perclass
from paper_tables.protocols import (
    claim2_protocols_frame,
    protocols_markdown,
    selection_bias_frame,
    selection_bias_markdown,
)
from paper_tables.render import (
    display_frame,
    render_table1,
    render_table2,
    to_latex,
    to_markdown,
    write_table,
)
from paper_tables.reported import load_reported_table1, load_reported_table2

METHODS_5 = (*PAPER_METHODS, "x5")
LABELS_5 = ["CD", "FSKD", "MiR", "PRACTISE", "x5"]


def _row(artifact, method, num, setting, variant, seed, top1, dataset="cifar10", arch="vgg16", **extra):
    return dict(artifact=artifact, dataset=dataset, arch=arch, num=num, setting=setting, method=method,
                variant=variant, seed=seed, top1=top1, top1_compressed=top1 - 1.0, **extra)


@pytest.fixture(scope="module")
def runs():
    rows = []
    for mi, method in enumerate(("x5", *PAPER_METHODS)):           # the fifth method first on purpose
        for seed in range(3):
            for setting in ("balanced", "imbalanced"):
                rows.append(_row("table1", method, 10, setting, "none", seed, 70.0 + mi + seed
                                 - 5 * (setting == "imbalanced")))
            for vi, variant in enumerate(("none", "full", "ft-only")):
                rows.append(_row("table2", method, 10, "imbalanced", variant, seed, 60.0 + mi + vi + seed,
                                 per_class=[50.0 + vi] * 10))
    return pd.DataFrame(rows)


def _row_labels(cells):
    return cells.drop_duplicates("row_order").sort_values("row_order")["row"].tolist()


def test_table1_shows_the_fifth_method_after_the_paper_four(runs):
    cells = render_table1(load_reported_table1(), runs)
    assert list(dict.fromkeys(cells.sort_values("row_order")["method"])) == list(METHODS_5)
    assert _row_labels(cells) == LABELS_5
    x5 = cells[cells["method"] == "x5"]
    assert (x5["reported_str"] == "").all() and set(x5.loc[x5["num"] == 10, "status"]) == {"ok"}
    assert set(x5.loc[x5["num"] != 10, "status"]) == {"missing"}
    frame = display_frame(cells)
    assert frame[frame["Method"] == "x5"]["Row"].tolist() == ["reproduced"]    # no paper number, no Δ row
    assert frame["Method"][frame["Method"] != ""].tolist() == LABELS_5
    to_markdown(cells), to_latex(cells)


def test_table2_shows_the_fifth_method_after_practise(runs, tmp_path):
    cells = render_table2(load_reported_table2(), runs)
    labels = _row_labels(cells)
    assert labels[-3:] == ["x5", "+ Ours", "x5 + FT only (not in paper)"]
    assert labels[-6:-3] == [method_label(METHOD_NAMES[-1]), "+ Ours",       # PRACTISE, the last of the axes
                             f"{method_label(METHOD_NAMES[-1])} + FT only (not in paper)"]
    assert list(cells.drop_duplicates("row_order")["method"][::3]) == [*METHOD_NAMES, "x5"]
    x5 = cells[cells["method"] == "x5"]
    assert (x5["reported_str"] == "").all()
    assert set(x5.loc[(x5["dataset"] == "cifar10") & (x5["num"] == 10), "status"]) == {"ok"}
    md = to_markdown(cells)
    assert md.index("| x5 ") > md.index("| PRACTISE ")
    paths = write_table(cells, tmp_path, "table2")
    assert "x5" in paths["csv"].read_text()


def test_table2_without_the_fifth_method_is_unchanged(runs):
    known = runs[runs["method"] != "x5"]
    cells = render_table2(load_reported_table2(), known)
    assert _row_labels(cells)[0::3] == [method_label(m) for m in METHOD_NAMES]    # CD, FSKD, MiR, PRACTISE
    assert len(cells) == len(METHOD_NAMES) * 3 * 9


def test_claims_show_the_fifth_method_after_practise(runs, tmp_path):
    c1 = claim1_frame(runs, load_reported_table1())
    c2 = claim2_frame(runs, load_reported_table2())
    assert list(c1["method"]) == list(METHODS_5) and list(c2["method"]) == list(METHODS_5)
    x5 = c1[c1["method"] == "x5"].iloc[0]
    assert pd.isna(x5["paper_drop"]) and x5["drop_mean"] == pytest.approx(5.0)
    assert pd.isna(c2[c2["method"] == "x5"].iloc[0]["paper_gain"])
    md = claims_markdown(c1, c2)
    sections = [section for section in md.split("###") if "| CD " in section]
    assert len(sections) >= 2                                     # claim 1's and claim 2's tables at least
    for section in sections:
        assert section.index("| x5 ") > section.index("| PRACTISE ")
    paths = write_claims(tmp_path, "claims", c1, c2)
    assert "x5" in paths["csv"].read_text()


def test_protocols_and_selection_bias_label_the_fifth_method(runs):
    both = pd.concat([runs.assign(protocol="default"), runs.assign(protocol="head only")], ignore_index=True)
    frame = claim2_protocols_frame(both, load_reported_table2(), ["default", "head only"])
    assert "| x5 " in protocols_markdown(frame)
    sel = selection_bias_frame(runs[runs["artifact"] == "table2"].assign(
        oracle_top1=lambda f: f["top1"] + 1, paper_dataset="cifar10", paper_num=10))
    assert "| x5 " in selection_bias_markdown(sel)


def test_perclass_draws_the_fifth_method_last(runs, tmp_path):
    frame = perclass_frame(runs, "cifar10", 10)
    assert list(dict.fromkeys(frame["method"])) == list(METHODS_5)
    paths = render_perclass(frame, tmp_path, "perclass")
    assert paths["png"].exists()


def test_figure3a_draws_a_fifth_method_and_an_unknown_variant(tmp_path, monkeypatch):
    import paper_tables.figure3 as figure3
    seen = {}

    def capture(fig, path, fmt):
        ax = fig.axes[0]
        seen[fmt] = ([t.get_text() for t in ax.get_legend().get_texts()],
                     [t.get_text() for t in ax.get_xticklabels()])

    monkeypatch.setattr(figure3, "save_figure", capture)
    rows = [{"panel": "a", "method": m, "num": 50, "variant": v, "param_name": "variant", "param_value": None,
             "seed": s, "top1": 60.0 + s}
            for m in ("x5", "mir") for v in ("none", "full", "ft-only", "zz") for s in range(2)]
    render_figure3("a", pd.DataFrame(rows), tmp_path)
    legend, ticks = seen["png"]
    assert legend == ["x5 Num=50", "MiR Num=50"]                   # the fifth method is drawn, with its name
    assert len(ticks) == 4 and ticks[-1] == "zz" and "FT only" in ticks[2]      # the unknown variant, last


def test_an_unknown_dataset_column_sorts_after_the_known_ones():
    reported = load_reported_table2()
    extra = reported[(reported["dataset"] == "cifar10") & (reported["num"] == 10)].assign(
        dataset="svhn", arch="resnet20")
    reported = pd.concat([extra, reported], ignore_index=True)          # the unknown column first on purpose
    cells = render_table2(reported, None)
    columns = list(dict.fromkeys(cells.sort_values("col_order")["col"]))
    assert columns[0] == "CIFAR-10 / VGG-16 Num=10" and columns[-1] == "svhn / ResNet-20 Num=10"
    runs = pd.DataFrame([_row("table2", "cd", 10, "imbalanced", v, s, 50.0 + s, dataset=d)
                         for d in ("svhn", "imagenet", "cifar10") for v in ("none", "full") for s in range(2)])
    c2 = claim2_frame(runs, reported)
    assert list(c2["dataset"]) == ["cifar10", "imagenet", "svhn"]
    assert claims_markdown(None, c2).index("svhn Num=10") > claims_markdown(None, c2).index("ILSVRC-2012 Num=10")


def test_a_column_with_runs_only_is_shown_after_the_paper_columns():
    runs = pd.DataFrame([_row("table2", m, 10, "imbalanced", v, s, 50.0 + s, dataset="svhn", arch="resnet20")
                         for m in ("cd", "x5") for v in ("none", "full", "ft-only") for s in range(2)])
    cells = render_table2(load_reported_table2(), runs)
    columns = list(dict.fromkeys(cells.sort_values("col_order")["col"]))
    assert columns[-1] == "svhn / ResNet-20 Num=10" and len(columns) == 10
    svhn = cells[cells["dataset"] == "svhn"]
    assert (svhn["reported_str"] == "").all()
    assert set(svhn.loc[svhn["method"].isin(["cd", "x5"]), "status"]) == {"ok"}
    assert "svhn / ResNet-20 Num=10" in to_markdown(cells)
