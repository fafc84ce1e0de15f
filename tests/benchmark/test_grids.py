"""Grids and profiles: cell counts per artifact and profile, column mappings, and the merging of cells
that are the same experiment (Table 1 imbalanced = Table 2 CIFAR-10 baseline; default-valued overrides)."""
from __future__ import annotations

from collections import Counter

import pytest

import baselines  # noqa: F401  (registers the methods)
from benchmark import grids
from benchmark.cache import cell_key
from benchmark.grids import build_grid
from benchmark.profiles import PAPER_COLUMNS, get_profile, parse_teachers
from benchmark.sweep import Hooks, normalise_cell, plan_sweep
from oefsmc.core.method import METHODS
from oefsmc.errors import UserError

import test_sweep_fakes as fake

ALL = ["table1", "table2", "fig3a", "fig3b", "fig3c", "fig3d"]


def _grid(artifact, profile="demo", seeds=None, **kw):
    prof = get_profile(profile, **kw)
    return build_grid([artifact], prof, range(prof.n_seeds if seeds is None else seeds))


#: Cells per method of Tables 1-2 (the four paper methods: demo 96 and 324, paper 160 and 540, cifar10-real 80
#: and 120), and cells of Figure 3 (one method).
@pytest.mark.parametrize("profile,per_method,figure", [
    ("demo", {"table1": 24, "table2": 81}, {"fig3a": 15, "fig3b": 45, "fig3c": 21, "fig3d": 18}),
    ("paper", {"table1": 40, "table2": 135}, {"fig3a": 25, "fig3b": 75, "fig3c": 35, "fig3d": 30}),
    ("cifar10-real", {"table1": 20, "table2": 30}, {"fig3a": 25, "fig3b": 75, "fig3c": 35, "fig3d": 30}),
])
def test_cell_counts(profile, per_method, figure):
    n_methods = len(METHODS.names())
    assert n_methods == len(grids.METHODS)
    expected = {**{a: n * n_methods for a, n in per_method.items()}, **figure}
    assert {a: len(_grid(a, profile)) for a in ALL} == expected


def test_seeds_are_the_first_k():
    assert sorted({e.cell["seed"] for e in _grid("table1", seeds=2)}) == [0, 1]
    assert len(_grid("table2", seeds=1)) == 27 * len(grids.METHODS)


def test_demo_column_mapping():
    cols = Counter((e.tag["paper_dataset"], e.tag["paper_num"], e.cell["dataset"], e.cell["arch"],
                    e.cell["num"]) for e in _grid("table2"))
    assert set(cols) == {
        ("cifar10", 10, "digits", "demo_vgg", 10), ("cifar10", 20, "digits", "demo_vgg", 20),
        ("cifar10", 50, "digits", "demo_vgg", 50),
        ("cifar100", 100, "digits", "demo_resnet_s", 10), ("cifar100", 200, "digits", "demo_resnet_s", 20),
        ("cifar100", 500, "digits", "demo_resnet_s", 50),
        ("imagenet", 1000, "digits", "demo_resnet_m", 100),
        ("imagenet", 2000, "digits", "demo_resnet_m", 200),
        ("imagenet", 3000, "digits", "demo_resnet_m", 300),
    }
    cell = _grid("table2")[0].cell
    assert (cell["schedule"], cell["device"], cell["ood"], cell["balanced"], cell["imbalance_ratio"]) == \
        ("demo", "cpu", "demo-patches", False, 100.0)
    lines = get_profile("demo").mapping_lines()
    assert all("digits/demo_vgg" in line or "demo_resnet" in line for line in lines)


def test_table_axes():
    t1 = _grid("table1", seeds=1)
    n_methods = len(METHODS.names())
    settings = Counter((e.cell["balanced"], e.cell["imbalance_ratio"]) for e in t1)
    assert settings == {(True, 1.0): 4 * n_methods, (False, 100.0): 4 * n_methods}
    assert {e.cell["oe"] for e in t1} == {"none"}
    assert {e.cell["method"] for e in t1} == set(METHODS.names())    # every registered method, no other
    assert [m for m in dict.fromkeys(e.cell["method"] for e in t1)] == list(grids.METHODS)  # in paper order
    t2 = _grid("table2", seeds=1)
    assert Counter(e.cell["oe"] for e in t2) == {v: 9 * n_methods for v in grids.TABLE2_VARIANTS}
    assert not any(e.cell["balanced"] for e in t2)


@pytest.mark.parametrize("method", METHODS.names())
def test_every_registered_method_runs_in_every_table_cell(method):
    t1 = [e for e in _grid("table1", seeds=1) if e.cell["method"] == method]
    assert {(e.tag["paper_num"], e.tag["setting"]) for e in t1} == \
        {(n, s) for n in grids.TABLE1_NUMS for s in ("balanced", "imbalanced")}
    t2 = [e for e in _grid("table2", seeds=1) if e.cell["method"] == method]
    assert {(e.tag["paper_dataset"], e.tag["paper_num"], e.tag["variant"]) for e in t2} == \
        {(d, n, v) for d, (_, nums) in PAPER_COLUMNS.items() for n in nums for v in grids.TABLE2_VARIANTS}


def test_paper_profile_runs_only_the_papers_setting(tmp_path):
    prof = get_profile("paper", data_root=str(tmp_path))
    entries = build_grid(ALL, prof, range(5))
    for e in entries:
        c, t = e.cell, e.tag
        assert (c["dataset"], c["arch"], c["num"]) == (t["paper_dataset"], t["paper_arch"], t["paper_num"])
        assert (c["schedule"], c["device"]) == ("official", "auto")
    assert prof.flag_2std and prof.skip_missing and prof.shortens == ()
    assert prof.ood["cifar10"] == f"random300k:{tmp_path / '300K_random_images.npy'}"
    assert prof.ood["imagenet"] == f"folder:{tmp_path / 'places365'}"


def test_cifar10_real_profile(tmp_path):
    teacher = tmp_path / "t.th"
    prof = get_profile("cifar10-real", data_root=str(tmp_path), teachers=[str(teacher)])
    t2 = build_grid(["table2"], prof, range(3))
    assert {(e.cell["dataset"], e.cell["arch"], e.cell["num"]) for e in t2} == \
        {("cifar10", "resnet32", 10), ("cifar10", "resnet32", 50)}
    assert {e.cell["teacher"] for e in t2} == {str(teacher)}
    assert {e.cell["ood"] for e in t2} == {"cifar100"}
    assert {e.cell["schedule"] for e in t2} == {"cpu"}
    t1 = build_grid(["table1"], prof, range(3))
    assert {e.tag["paper_num"] for e in t1} == {10, 50}
    assert any("schedule: cpu" in s for s in prof.shortens)
    assert prof.record_info()["shortens"] == list(prof.shortens)
    assert prof.not_run_reason("table2", "cifar100", 100, (100, 200, 500))
    assert prof.not_run_reason("table1", "cifar10", 20, grids.TABLE1_NUMS)
    assert prof.not_run_reason("table1", "cifar10", 50, grids.TABLE1_NUMS) is None


def test_teacher_option_parsing(tmp_path):
    assert parse_teachers([f"cifar10={tmp_path}/a.th", f"{tmp_path}/b.th"]) == {
        "cifar10": str(tmp_path / "a.th"), "*": str(tmp_path / "b.th")}
    prof = get_profile("paper", data_root=str(tmp_path),
                       teachers=[f"{tmp_path}/b.th", f"cifar100={tmp_path}/c.th"])
    assert prof.teachers == {"cifar10": str(tmp_path / "b.th"), "cifar100": str(tmp_path / "c.th"),
                             "imagenet": str(tmp_path / "b.th")}
    with pytest.raises(UserError):
        get_profile("nope")


def test_figure_grids():
    a = _grid("fig3a", seeds=1)
    assert [e.cell["oe"] for e in a] == ["none", "no-comp", "no-ft", "full", "ft-only"]
    assert {(e.cell["method"], e.cell["num"], e.cell["arch"]) for e in a} == {("mir", 50, "demo_vgg")}
    b = _grid("fig3b", seeds=1)
    sizes = {n: [e.tag["param_value"] for e in b if e.cell["num"] == n] for n in (10, 20, 50)}
    assert sizes == {10: [3, 5, 10, 20, 40], 20: [5, 10, 20, 40, 80], 50: [13, 25, 50, 100, 200]}
    assert [e.cell["overrides"] for e in b if e.cell["num"] == 10][2] == {}   # ratio 1 = the default
    c = _grid("fig3c", seeds=1)
    assert [e.cell["overrides"]["oe.lambda"] for e in c] == ["0", "0.2", "0.4", "0.5", "0.6", "0.8", "1"]
    d = _grid("fig3d", seeds=1)
    assert [e.cell["overrides"]["oe.eta"] for e in d] == ["0.1", "0.5", "1.5", "2.5", "3.5", "5"]
    assert all(e.cell["oe"] == "full" for e in b + c + d)


def test_artifact_selection():
    assert grids.artifacts_for(["2"], None) == ["table2"]
    assert grids.artifacts_for(["1"], ["all", "3b"]) == ALL[:1] + ALL[2:]
    with pytest.raises(UserError):
        grids.artifacts_for(None, None)


# ---------------------------------------------------------------------------- (d) one experiment, one key
def _plan(artifacts, seeds=3):
    prof = get_profile("demo")
    hooks = Hooks(resolve=fake.resolve_config, run=fake.run_config)
    return plan_sweep(build_grid(artifacts, prof, range(seeds)), prof, hooks, artifacts, list(range(seeds)))


def _keys(plan, **tag):
    return {k for e, k in zip(plan.entries, plan.entry_keys)
            if all(e.tag.get(a) == v for a, v in tag.items())}


def test_table1_imbalanced_cells_are_table2_cifar10_baselines():
    plan = _plan(["table1", "table2"])
    t1_imb = {k for e, k in zip(plan.entries, plan.entry_keys) if e.tag["artifact"] == "table1"
              and e.tag["setting"] == "imbalanced" and e.tag["paper_num"] <= 50}
    t2_none = _keys(plan, artifact="table2", paper_dataset="cifar10", variant="none")
    m = len(grids.METHODS)
    assert len(t1_imb) == 9 * m and t1_imb == t2_none                  # 4 methods: 36, 96 + 324 - 36 jobs
    assert len(plan.jobs) == (24 + 81 - 9) * m
    shared = next(iter(t1_imb))
    assert {e.tag["artifact"] for e in plan.jobs[shared].entries} == {"table1", "table2"}


def test_default_valued_overrides_hash_like_no_override():
    plan = _plan(["table2", "fig3a", "fig3b", "fig3c", "fig3d"])
    full50 = _keys(plan, artifact="table2", paper_dataset="cifar10", paper_num=50, method="mir",
                   variant="full")
    assert len(full50) == 3
    assert _keys(plan, artifact="fig3c", param_value=0.5) == full50
    assert _keys(plan, artifact="fig3d", param_value=2.5) == full50
    assert _keys(plan, artifact="fig3a", variant="full") == full50
    assert _keys(plan, artifact="fig3b", paper_num=50, param_value=50) == full50
    assert not _keys(plan, artifact="fig3c", param_value=0.2) & full50
    # the merged job keeps the normalised cell (no override left)
    assert all(plan.jobs[k].cell["overrides"] == {} for k in full50)
    assert len(plan.jobs) == 81 * len(grids.METHODS) + 75              # 4 methods: 324 + 75


def test_normalise_cell_keeps_effective_overrides():
    cell = _grid("fig3c", seeds=1)[1].cell     # lambda 0.2
    both = dict(cell, overrides={"oe.lambda": "0.2", "oe.eta": "2.5"})
    norm, resolved = normalise_cell(both, fake.resolve_config)
    assert norm["overrides"] == {"oe.lambda": "0.2"}
    assert cell_key(resolved) == cell_key(fake.resolve_config(cell))


def test_real_pipeline_default_valued_overrides_share_the_key():
    """The same property through oefsmc.pipeline.resolve_config itself (integration with the pipeline)."""
    pipeline = pytest.importorskip("oefsmc.pipeline")
    cells = {e.tag["param_value"]: e.cell for e in _grid("fig3c", seeds=1)}
    base = dict(cells[0.5], overrides={})
    keys = {v: cell_key(normalise_cell(cells[v], pipeline.resolve_config)[1]) for v in (0.2, 0.5)}
    assert keys[0.5] == cell_key(pipeline.resolve_config(base))
    assert keys[0.2] != keys[0.5]
