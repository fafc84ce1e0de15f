"""The sweep in one process: records, failures, reruns, --force, --dry-run, skipped columns, rendering."""
from __future__ import annotations

import json
import os

import pytest

from benchmark import sweep
from benchmark.cache import RESULTS_SCHEMA_VERSION, ResultCache
from benchmark.grids import build_grid
from benchmark.profiles import get_profile
from benchmark.sweep import run_sweep

import test_sweep_fakes as fake

FAKE = dict(runner=fake.run_config, resolver=fake.resolve_config)


def _cells(artifact="table1", seeds=1, n=None):
    entries = build_grid([artifact], get_profile("demo"), range(seeds))
    return entries[:n] if n else entries


@pytest.fixture
def fake_env(monkeypatch, tmp_path):
    """The command line with the test-only fake pipeline; markers count computations."""
    monkeypatch.setenv(sweep.FAKE_PIPELINE_ENV, "test_sweep_fakes")
    monkeypatch.setenv("OEFSMC_FAKE_MARKERS", str(tmp_path / "markers"))
    for var in ("OEFSMC_FAKE_FAIL", "OEFSMC_FAKE_MISSING", "OEFSMC_FAKE_DELAY"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def _cli(tmp_path, *argv):
    return sweep.main(["--results-dir", str(tmp_path / "results"), "--out-dir", str(tmp_path / "out"),
                       "--no-progress", "--jobs", "1", "--json", *argv])


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_records_hold_what_the_issue_asks(tmp_path):
    plan, res = run_sweep(_cells(n=4), results_dir=tmp_path, **FAKE)
    assert res.counts() == {"done": 4}
    cache = ResultCache(tmp_path, "demo")
    for key, job in plan.jobs.items():
        rec = json.loads(cache.path(key).read_text())
        assert rec["schema_version"] == RESULTS_SCHEMA_VERSION and rec["key"] == key and rec["status"] == "ok"
        assert rec["cell"] == job.cell and rec["config"]["hp"] == job.resolved["hp"]
        assert rec["profile"]["name"] == "demo" and rec["profile"]["schedule"] == "demo"
        assert any("schedule" in s for s in rec["profile"]["shortens"])
        assert {"top1", "per_class"} <= set(rec["metrics"]) and {"params", "macs"} <= set(rec["model"])
        assert {"started_at", "finished_at", "wall_s", "host", "pid"} <= set(rec["run"])
        assert {"timings", "env", "seed", "stats"} <= set(rec)


def test_failed_cells_are_recorded_and_recomputed_on_rerun(tmp_path, monkeypatch):
    cells = _cells(n=8)                                    # cd, fskd, mir, practise x 2
    monkeypatch.setenv("OEFSMC_FAKE_FAIL", "mir")
    plan, res = run_sweep(cells, results_dir=tmp_path, **FAKE)
    assert res.counts() == {"done": 6, "failed": 2}
    cache = ResultCache(tmp_path, "demo")
    failed = [k for k, o in res.outcomes.items() if o["status"] == "failed"]
    rec = cache.check(failed[0]).record
    assert rec["status"] == "failed" and rec["error"]["type"] == "RuntimeError"
    assert rec["error"]["message"] == "fake failure of mir" and "Traceback" in rec["error"]["traceback"]
    monkeypatch.delenv("OEFSMC_FAKE_FAIL")
    _, res2 = run_sweep(cells, results_dir=tmp_path, **FAKE)
    assert {k for k, o in res2.outcomes.items() if o["status"] == "done"} == set(failed)
    assert res2.counts() == {"done": 2, "cached": 6}


def test_force_recomputes_everything(tmp_path):
    cells = _cells(n=4)
    run_sweep(cells, results_dir=tmp_path, **FAKE)
    before = {k: ResultCache(tmp_path, "demo").check(k).record["run"]["finished_unix"] for k in
              ResultCache(tmp_path, "demo").keys()}
    _, res = run_sweep(cells, results_dir=tmp_path, force=True, **FAKE)
    assert res.counts() == {"done": 4}
    after = {k: ResultCache(tmp_path, "demo").check(k).record["run"]["finished_unix"] for k in before}
    assert all(after[k] > before[k] for k in before)


def test_runner_returning_garbage_is_a_failed_cell(tmp_path):
    _, res = run_sweep(_cells(n=2), results_dir=tmp_path, runner=lambda r: {"metrics": {}},
                       resolver=fake.resolve_config)
    assert res.counts() == {"failed": 2}


def test_not_applicable_cells_are_not_run(tmp_path):
    cells = [dict(e.cell) for e in _cells(n=2)]
    cells += [dict(cells[0], method="nope"), dict(cells[0], method="nope2")]
    plan, res = run_sweep(cells, results_dir=tmp_path, not_applicable=fake.not_applicable_reason, **FAKE)
    assert plan.entry_kinds == ["job", "job", "na", "na"]
    assert plan.entry_reasons[2] == "nope does not apply here"
    assert plan.entry_reasons[3] == "nope2 does not apply to this architecture"   # NotApplicable from resolve
    assert res.counts() == {"done": 2}


def test_dry_run_computes_nothing(fake_env, capsys):
    assert _cli(fake_env, "--table", "1", "--seeds", "1") == 0        # computes 32 cells
    assert len(os.listdir(fake_env / "markers")) == 32
    capsys.readouterr()
    assert _cli(fake_env, "--table", "1", "--table", "2", "--dry-run") == 0
    out = _last_json(capsys)
    assert len(os.listdir(fake_env / "markers")) == 32                # nothing new computed
    assert len(list((fake_env / "results" / "demo").glob("*.json"))) == 32
    assert out["dry_run"] and out["unique_cells"] == 96 + 324 - 36 and out["cached"] == 32
    assert out["to_compute"] == 384 - 32 and out["computed"] == 0
    assert not (fake_env / "out" / "demo" / "table2.md").exists()     # a dry run renders nothing either


@pytest.mark.slow
def test_render_only_computes_nothing_and_renders(fake_env, capsys):
    assert _cli(fake_env, "--table", "1", "--seeds", "1", "--no-render") == 0       # 32 records
    capsys.readouterr()
    assert _cli(fake_env, "--table", "1", "--table", "2", "--render-only") == 0
    assert len(os.listdir(fake_env / "markers")) == 32                # nothing new computed
    table2 = (fake_env / "out" / "demo" / "table2.md").read_text()
    assert "—" in table2                                              # cells without a record say so
    assert "(n=1)" in (fake_env / "out" / "demo" / "table1.md").read_text()
    claim1 = (fake_env / "out" / "demo" / "claim1.md").read_text()     # the claim checks come with the tables
    assert "Claim 1" in claim1 and "(n=1)" in claim1
    claim2 = (fake_env / "out" / "demo" / "claim2.md").read_text()     # Table 1's imbalanced cells are
    assert "Claim 2" in claim2 and "(n=1)" in claim2                   # Table 2's baselines


def test_rerun_computes_nothing(fake_env, capsys):
    assert _cli(fake_env, "--table", "1", "--seeds", "1", "--no-render") == 0
    first = _last_json(capsys)
    assert _cli(fake_env, "--table", "1", "--seeds", "1", "--no-render") == 0
    second = _last_json(capsys)
    assert (first["computed"], first["cached"]) == (32, 0)
    assert (second["computed"], second["cached"]) == (0, 32)
    assert len(os.listdir(fake_env / "markers")) == 32


@pytest.mark.slow
def test_paper_profile_skips_a_missing_column_and_runs_the_rest(fake_env, capsys, monkeypatch):
    monkeypatch.setenv("OEFSMC_FAKE_MISSING", "imagenet")
    code = _cli(fake_env, "--table", "2", "--profile", "paper", "--seeds", "2", "--data-root", str(fake_env))
    out = _last_json(capsys)
    assert code == 0                                                   # expected in the paper profile
    assert out["skipped"] == 3 * 4 * 3 * 2 and out["computed"] == 6 * 4 * 3 * 2
    assert "ILSVRC-2012/ResNet-34 Num 1000, 2000, 3000: no imagenet data" in out["skip_reasons"][0]
    csv = (fake_env / "out" / "paper" / "table2.csv").read_text()
    assert csv.count("n/a: skipped: no imagenet data") == 3 * 4 * 3
    md = (fake_env / "out" / "paper" / "table2.md").read_text()
    assert "Profile paper: the paper's setting" in md and "context, not a target" not in md
    assert "| Δ (repro − paper) |" in md                               # the paper's configuration: Δ stays


@pytest.mark.slow
def test_columns_a_profile_never_runs_are_left_out_and_named(fake_env, capsys):
    assert _cli(fake_env, "--table", "2", "--profile", "cifar10-real", "--seeds", "1",
                "--data-root", str(fake_env)) == 0
    md = (fake_env / "out" / "cifar10-real" / "table2.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| Method"))
    assert [c.strip() for c in header.strip("|").split("|")][2:] == [
        "CIFAR-10 / ResNet-32 (paper: VGG-16) Num=10", "CIFAR-10 / ResNet-32 (paper: VGG-16) Num=50"]
    assert ("left out: CIFAR-10 / ResNet-32 (paper: VGG-16) Num=20, CIFAR-100 / ResNet-32 Num=100" in md
            and "ILSVRC-2012 / ResNet-34 Num=3000." in md)
    assert "Δ (repro − paper) |" not in md and "no Δ row is printed" in md     # a stand-in: context only
    assert "CIFAR-100" not in (fake_env / "out" / "cifar10-real" / "table2.csv").read_text()


def test_demo_profile_treats_missing_inputs_as_an_error(fake_env, capsys, monkeypatch):
    monkeypatch.setenv("OEFSMC_FAKE_MISSING", "digits")
    assert _cli(fake_env, "--table", "1", "--seeds", "1", "--no-render") == 1
    assert _last_json(capsys)["skipped"] == 32


@pytest.mark.slow
def test_tables_and_figures_are_rendered(fake_env, capsys):
    assert _cli(fake_env, "--table", "1", "--table", "2", "--figure", "all", "--seeds", "2") == 0
    out = _last_json(capsys)
    assert out["unique_cells"] == (96 + 324 - 36 + 75) * 2 // 3
    d = fake_env / "out" / "demo"
    tables = {f"table{t}.{e}" for t in (1, 2) for e in ("md", "tex", "csv")}
    claims = {f"claim{t}.{e}" for t in (1, 2) for e in ("md", "csv")}
    figures = {f"fig3{p}.{e}" for p in "abcd" for e in ("png", "pdf")}
    perclass = {f"perclass_{ds}_num{n}.{e}" for ds, nums in (("cifar10", (10, 20, 50)), ("cifar100", (100, 200, 500)),
                                                             ("imagenet", (1000, 2000, 3000)))
                for n in nums for e in ("png", "pdf")}                  # one per Table 2 column
    perclass |= {"perclass_groups.md", "perclass_groups.csv"}         # head / medium / tail, every column
    assert {p.name for p in d.iterdir()} == tables | claims | figures | perclass
    groups = (d / "perclass_groups.md").read_text()
    assert groups.count("\n## ") == 9 and "| Method " in groups          # a section per Table 2 column
    md = (d / "table2.md").read_text()
    assert "context, not a target" in md and "CIFAR-100/ResNet-32 -> digits/demo_resnet_s, Num/10" in md
    assert "Schedule: demo" in md
    import csv
    rows = list(csv.DictReader((d / "table2.csv").open()))
    assert len(rows) == 4 * 3 * 9 and all(r["status"] == "ok" and r["n"] == "2" for r in rows)
    assert all(r["reported"] for r in rows if r["variant"] != "ft-only")
    # Table 1 and Table 2 show the same numbers for the shared runs
    t1 = {(r["method"], r["num"]): r["reproduced_mean"] for r in csv.DictReader((d / "table1.csv").open())
          if r["setting"] == "imbalanced"}
    for r in rows:
        if r["dataset"] == "cifar10" and r["variant"] == "none":
            assert t1[(r["method"], r["num"])] == r["reproduced_mean"]


@pytest.mark.slow
def test_cifar10_real_renders_not_run_cells_with_a_reason(fake_env, capsys):
    (fake_env / "t.th").write_bytes(b"PK fake checkpoint")
    assert _cli(fake_env, "--table", "2", "--profile", "cifar10-real", "--seeds", "1",
                "--data-root", str(fake_env), "--teacher", str(fake_env / "t.th")) == 0
    assert _last_json(capsys)["computed"] == 2 * 4 * 3
    import csv
    rows = list(csv.DictReader((fake_env / "out" / "cifar10-real" / "table2.csv").open()))
    done = {(r["dataset"], r["num"]) for r in rows if r["status"] == "ok"}
    assert done == {("cifar10", "10"), ("cifar10", "50")}
    assert all("not run in the cifar10-real profile" in r["note"] for r in rows if r["status"] != "ok")


def test_command_line_errors(fake_env, capsys):
    assert _cli(fake_env, "--seeds", "1") == 2
    assert "nothing to run" in capsys.readouterr().err
    assert _cli(fake_env, "--table", "1", "--seeds", "0") == 2
    assert _cli(fake_env, "--table", "1", "--backend", "ray") == 2


def test_dask_backend_runs_cells_on_the_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as cluster:
        backend = "dask://" + cluster.scheduler_address       # inproc://... for an in-process cluster
        _, res = run_sweep(_cells(n=6), results_dir=tmp_path, runner="test_sweep_fakes:run_config",
                           resolver=fake.resolve_config, backend=backend, n_jobs=-1)
    assert res.counts() == {"done": 6}
    assert all(ResultCache(tmp_path, "demo").check(k).state == "ok" for k in res.outcomes)


def test_dask_backend_errors_are_one_line():
    with pytest.raises(sweep.UserError, match="unknown --backend"):
        sweep._dask_address("dask:/x")
    assert sweep._dask_address("dask://10.0.0.1:8786") == "tcp://10.0.0.1:8786"
    assert sweep._dask_address("dask://tls://h:1") == "tls://h:1"
    assert sweep._dask_address("loky") is None


def test_a_bug_in_resolve_fails_that_cell_only(tmp_path, capsys):
    def resolve(cell):
        if cell["method"] == "mir":
            raise KeyError("hp")
        return fake.resolve_config(cell)
    plan, res = run_sweep(_cells(n=8), results_dir=tmp_path, runner=fake.run_config, resolver=resolve)
    assert plan.entry_kinds.count("error") == 2 and res.counts() == {"done": 6}
    assert plan.entry_reasons[2] == "resolve_config raised KeyError: 'hp'"
    assert capsys.readouterr().err.count("Traceback") == 1          # logged once, not per cell
