"""``python -m benchmark records``: which records no grid uses any more, and why (benchmark/records_cli.py)."""
import json

from benchmark.cache import RESULTS_SCHEMA_VERSION, ResultCache
from benchmark.grids import build_grid
from benchmark.plan import Job, Plan
from benchmark.profiles import get_profile
from benchmark.record_plan import param_spaces
from benchmark.records_cli import NOT_IN_GRID, OTHER_KEY, unused_records


def _write(cache, key, cell, schema=RESULTS_SCHEMA_VERSION, precision="fp32"):
    cache.dir.mkdir(parents=True, exist_ok=True)
    (cache.dir / f"{key}.json").write_text(json.dumps({"schema_version": schema, "key": key, "cell": cell,
                                                       "config": {"eval_precision": precision}}))


def test_each_unused_record_gets_the_reason_its_key_is_not_planned(tmp_path):
    profile = get_profile("cifar10-real")
    entries = build_grid(["table2"], profile, [0])[:2]
    keys = ["a" * 20, "b" * 20]
    jobs = {k: Job(k, e.cell, {}, [e]) for k, e in zip(keys, entries)}
    plan = Plan(profile, ["table2"], [0], entries, keys, [None] * 2, ["job"] * 2, jobs)
    cache = ResultCache(tmp_path, profile.name)
    cell = entries[0].cell
    _write(cache, keys[0], cell)                                        # used
    _write(cache, "c" * 20, cell, schema=RESULTS_SCHEMA_VERSION - 1)    # an older schema
    _write(cache, "d" * 20, cell)                                       # same experiment, another key
    bf16 = {k: v for k, v in cell.items() if k != "eval_precision"}     # made under `auto`, in bf16
    _write(cache, "e" * 20, bf16, precision="bf16")
    _write(cache, "f" * 20, dict(cell, seed=7))                         # a seed no grid holds
    (cache.dir / ("0" * 20 + ".json")).write_text("{trunc")
    got = {u["key"][0]: u["reason"] for u in unused_records(plan, cache, param_spaces())}
    assert got == {"c": f"results schema {RESULTS_SCHEMA_VERSION - 1} (current {RESULTS_SCHEMA_VERSION})",
                   "d": OTHER_KEY, "e": "evaluated in bf16; the profile pins fp32", "f": NOT_IN_GRID,
                   "0": got["0"]}
    assert got["0"].startswith("unreadable")


def test_delete_removes_only_the_unused_records(tmp_path, capsys):
    """End to end on the demo profile: a record under a planned key stays, an unused one goes."""
    from benchmark.cli import main
    from benchmark.grids import ARTIFACTS
    from benchmark.hooks import default_hooks
    from benchmark.plan import plan_sweep
    profile = get_profile("demo")
    entries = build_grid(list(ARTIFACTS), profile, [0])
    plan = plan_sweep(entries[:1], profile, default_hooks(), list(ARTIFACTS), [0])
    cache = ResultCache(tmp_path, "demo")
    used = plan.entry_keys[0]
    _write(cache, used, entries[0].cell)
    _write(cache, "9" * 20, dict(entries[0].cell, seed=11))
    assert main(["records", "--profile", "demo", "--seeds", "1", "--results-dir", str(tmp_path)]) == 0
    assert "2 records, 1 used by the grids" in capsys.readouterr().out
    assert (cache.dir / f"{used}.json").is_file() and (cache.dir / f"{'9' * 20}.json").is_file()  # listing only
    assert main(["records", "--profile", "demo", "--seeds", "1", "--results-dir", str(tmp_path), "--delete"]) == 0
    assert "deleted 1 unused records" in capsys.readouterr().out
    assert sorted(p.name for p in cache.dir.glob("*.json")) == [f"{used}.json"]
