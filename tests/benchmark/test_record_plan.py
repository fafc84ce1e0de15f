"""--render-only plans from the records alone (benchmark/record_plan.py): no data opened, no teacher hashed."""
from __future__ import annotations

import pytest

import oefsmc.data.sources as sources
import oefsmc.pipeline as pipeline
import oefsmc.teacher_store as teacher_store
from benchmark.cache import RESULTS_SCHEMA_VERSION, ResultCache
from benchmark.grids import build_grid
from benchmark.profiles import get_profile
from benchmark.record_plan import param_spaces, cell_identity, plan_from_records


def _record(key: str, cell: dict, top1: float, finished: float) -> dict:
    return {"schema_version": RESULTS_SCHEMA_VERSION, "key": key, "status": "ok", "cell": cell,
            "config": {"dataset": cell["dataset"]}, "metrics": {"top1": top1}, "run": {"finished_unix": finished}}


def test_identity_ignores_locations_and_overrides_equal_to_defaults():
    spaces = param_spaces()
    cell = {"dataset": "cifar10", "arch": "resnet32", "num": 50, "balanced": False, "imbalance_ratio": 100.0,
            "method": "mir", "oe": "full", "seed": 0, "schedule": "cpu", "overrides": {"oe.lambda": "0.5"},
            "data_root": "/a", "teacher": "/t.th", "ood": "cifar100", "device": "auto"}
    moved = dict(cell, data_root="/elsewhere", teacher="/other/t.th", device="cpu", overrides={})
    assert cell_identity(cell, spaces) == cell_identity(moved, spaces)
    assert cell_identity(cell, spaces) != cell_identity(dict(cell, overrides={"oe.lambda": "0.2"}), spaces)
    assert cell_identity(cell, spaces) != cell_identity(dict(cell, seed=1), spaces)
    # auto precision is the machine's choice; a pinned one (the real-data profiles) is the experiment's
    assert cell_identity(cell, spaces) == cell_identity(dict(cell, eval_precision="auto"), spaces)
    assert cell_identity(cell, spaces) != cell_identity(dict(cell, eval_precision="fp32"), spaces)


def test_the_real_data_profiles_pin_fp32_evaluation_in_every_cell():
    for name in ("cifar10-real", "cifar100-real"):
        entries = build_grid(["table2"], get_profile(name), [0])
        assert entries and {e.cell["eval_precision"] for e in entries} == {"fp32"}
    assert all("eval_precision" not in e.cell for e in build_grid(["table2"], get_profile("demo"), [0]))


def test_plan_matches_entries_to_records_without_opening_data(tmp_path, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("rendering must not open a data file")
    monkeypatch.setattr(sources, "load_split", no_data)
    monkeypatch.setattr(teacher_store, "data_identity", no_data)
    monkeypatch.setattr(teacher_store, "teacher_identity", no_data)
    monkeypatch.setattr(pipeline, "resolve_config", no_data)
    profile = get_profile("cifar10-real", data_root=str(tmp_path / "absent"))
    entries = build_grid(["table2"], profile, [0])
    cache = ResultCache(tmp_path, profile.name)
    first = next(e for e in entries if e.cell["oe"] == "full")
    cache.write(_record("a" * 20, dict(first.cell, data_root="/other/root"), 61.0, 1.0))
    cache.write(_record("b" * 20, dict(first.cell, teacher="/another.th"), 62.0, 2.0))  # newer: used
    logged = []
    plan = plan_from_records(entries, profile, cache, ["table2"], [0], logged.append)
    i = entries.index(first)
    assert plan.entry_keys[i] == "b" * 20 and plan.entry_kinds[i] == "job"
    assert logged and "rendering the newest" in logged[0]
    others = [k for j, k in enumerate(plan.entry_keys) if j != i]
    assert all(k.startswith("none-") for k in others)
    assert all(cache.check(k).state == "missing" for k in others)


@pytest.mark.parametrize("bad", ["schema", "key"])
def test_records_that_do_not_validate_are_not_rendered(tmp_path, bad):
    profile = get_profile("demo")
    entries = build_grid(["table2"], profile, [0])
    cache = ResultCache(tmp_path, profile.name)
    rec = _record("c" * 20, entries[0].cell, 50.0, 1.0)
    rec.update({"schema_version": 1} if bad == "schema" else {"key": "d" * 20})
    cache.dir.mkdir(parents=True)
    (cache.dir / ("c" * 20 + ".json")).write_text(__import__("json").dumps(rec))
    plan = plan_from_records(entries, profile, cache, ["table2"], [0])
    assert plan.entry_keys[0].startswith("none-")


def test_records_made_under_other_defaults_are_not_rendered(tmp_path):
    """A record whose hp differs from today's default on a parameter its cell does not override (here
    finetune.params, whose default changed from all to head) would be recomputed by a sweep: it must not
    fill today's cell; one overriding that parameter explicitly still matches its own entry."""
    from benchmark.plugins import load_plugins
    load_plugins()
    profile = get_profile("demo")
    entries = build_grid(["table2"], profile, [0])
    e = next(x for x in entries if x.cell["oe"] == "ft-only")
    resolved = pipeline.resolve_config(e.cell)
    cache = ResultCache(tmp_path, profile.name)
    current = _record("e" * 20, e.cell, 70.0, 1.0)
    current["config"] = {"dataset": e.cell["dataset"], "hp": resolved["hp"]}
    old_hp = {**resolved["hp"], "finetune": {**resolved["hp"]["finetune"], "params": "all"}}
    old = _record("f" * 20, e.cell, 71.0, 2.0)  # newer, but made under the old default
    old["config"] = {"dataset": e.cell["dataset"], "hp": old_hp}
    cache.write(current), cache.write(old)
    logged = []
    plan = plan_from_records(entries, profile, cache, ["table2"], [0], logged.append)
    assert plan.entry_keys[entries.index(e)] == "e" * 20
    assert any("1 record made under other defaults (finetune.params)" in line for line in logged)
    spaces = param_spaces()
    from benchmark.record_plan import stale_defaults
    assert stale_defaults(old, spaces) == ["finetune.params"] and stale_defaults(current, spaces) == []
    explicit = dict(old, cell=dict(e.cell, overrides={"finetune.params": "all"}))
    assert stale_defaults(explicit, spaces) == []
    assert stale_defaults({"cell": e.cell, "config": {"hp": {"fake": 1, "finetune": None}}}, spaces) == []


def test_oe_defaults_that_follow_the_cell_are_not_stale():
    """A ``full`` record stores m = Num, n = max(500, m) and the profile's OOD source, resolved from their
    cell-dependent defaults (0, 0, empty): today's defaults, not other ones.  (A false "other defaults" hid every
    ``full`` record of cifar10-real from --render-only.)  An m the cell does not explain is stale."""
    from benchmark.plugins import load_plugins
    from benchmark.record_plan import stale_defaults
    load_plugins()
    profile = get_profile("demo")
    e = next(x for x in build_grid(["table2"], profile, [0]) if x.cell["oe"] == "full")
    resolved = pipeline.resolve_config(e.cell)
    assert resolved["hp"]["oe"]["aux_size"] == e.cell["num"] > 0  # the derived value is what a record stores
    spaces = param_spaces()
    rec = {"cell": e.cell, "config": {"hp": resolved["hp"]}}
    assert stale_defaults(rec, spaces) == []
    other = {**resolved["hp"], "oe": {**resolved["hp"]["oe"], "aux_size": e.cell["num"] + 1}}
    assert stale_defaults({"cell": e.cell, "config": {"hp": other}}, spaces) == ["oe.aux_size"]


def test_sweep_names_records_of_the_same_experiment_made_under_another_machine_choice(tmp_path):
    """A sweep recomputes a cell whose only record was evaluated in another precision (its key differs), and
    says so in one line naming the field; a cell without any record, or with its own, is not counted."""
    from benchmark.plan import Job, Plan
    from benchmark.record_plan import records_under_other_choices
    profile = get_profile("demo")
    entries = build_grid(["table2"], profile, [0])[:3]
    cache = ResultCache(tmp_path, profile.name)
    here = {"eval_precision": "fp32", "device": "cpu", "threads": 1}
    jobs = {f"{i}" * 20: Job(f"{i}" * 20, e.cell, dict(here), [e]) for i, e in enumerate(entries)}
    plan = Plan(profile, ["table2"], [0], entries, list(jobs), [None] * 3, ["job"] * 3, jobs)
    assert records_under_other_choices(plan, cache) is None
    elsewhere = _record("e" * 20, entries[0].cell, 70.0, 1.0)
    elsewhere["config"].update(here, eval_precision="bf16")
    cache.write(elsewhere)
    own = _record("1" * 20, entries[1].cell, 71.0, 1.0)
    own["config"].update(here)
    cache.write(own)
    line = records_under_other_choices(plan, cache)
    assert line.startswith("1 cell to compute already has a record of the same experiment under another key")
    assert "eval_precision: bf16 there, fp32 here" in line and "--render-only" in line


def test_records_from_another_stack_are_named_once_in_one_line(tmp_path):
    from types import SimpleNamespace

    from benchmark.record_plan import records_from_other_stacks
    cache = ResultCache(tmp_path, "demo")
    envs = {"a" * 20: ("2.14.1", "AVX2", "cpu"), "b" * 20: ("2.14.1", "AVX512", "cpu"),
            "c" * 20: ("2.9.0", "AVX2", "cpu"), "d" * 20: ("2.14.1", "AVX512", "cuda")}
    for key, (torch_version, isa, device) in envs.items():
        rec = _record(key, {"method": "cd", "dataset": "digits"}, 50.0, 1.0)
        rec.update(config={"device": device}, env={"packages": {"torch": torch_version}, "cpu_capability": isa})
        cache.write(rec)
    plan = SimpleNamespace(jobs={k: SimpleNamespace(key=k) for k in list(envs) + ["e" * 20]})   # e: no record
    line = records_from_other_stacks(plan, cache, here={"torch": "2.14.1", "cpu_capability": "AVX2"})
    assert line.startswith("2 cached records reused here were computed on another stack")  # b (ISA) and c (torch)
    assert "cpu_capability: AVX512 there, AVX2 here" in line and "torch: 2.9.0 there, 2.14.1 here" in line
    assert records_from_other_stacks(SimpleNamespace(jobs={"a" * 20: SimpleNamespace(key="a" * 20)}), cache,
                                     here={"torch": "2.14.1", "cpu_capability": "AVX2"}) is None
