"""The launchers (benchmark/launchers.py): the registry, one-line errors, and the same records from loky, a
dask cluster (``distributed.LocalCluster``) and a SLURM job array (submitit's local executor, the same code
path as ``sbatch`` up to the submission)."""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from benchmark import launchers, sweep_cli
from benchmark.cache import ResultCache
from benchmark.grids import build_grid
from benchmark.hooks import Hooks
from benchmark.launchers import (BACKEND_FORMS, LAUNCHERS, SlurmLauncher, backend_name, get_launcher,
                                 parse_backend_options)
from benchmark.plan import plan_sweep
from benchmark.profiles import get_profile
from benchmark.sweep import run_sweep
from oefsmc.errors import UserError

import test_sweep_fakes as fake

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parents[1]
VOLATILE = ("run", "env", "timings")  # when, where and how long: not the experiment


def _cells(n=6):
    return build_grid(["table1"], get_profile("demo"), range(1))[:n]


def _sweep(results, **kw):
    return run_sweep(_cells(), results_dir=results, runner="test_sweep_fakes:run_config",
                     resolver=fake.resolve_config, **kw)


def _records(results) -> dict:
    cache = ResultCache(results, "demo")
    out = {}
    for key in cache.keys():
        rec = json.loads(cache.path(key).read_text())
        out[key] = {k: v for k, v in rec.items() if k not in VOLATILE}
    return out


@pytest.fixture
def loky_records(tmp_path_factory):
    results = tmp_path_factory.mktemp("loky")
    _, res = _sweep(results, n_jobs=1)
    assert res.counts() == {"done": 6}
    return _records(results)


def test_the_registry_names_each_backend():
    assert set(LAUNCHERS) == {"loky", "dask", "slurm"}
    assert [backend_name(b) for b in ("loky", "dask://h:8786", "tcp://h:8786", "slurm", "slurm:gpu")] == \
        ["loky", "dask", "dask", "slurm", "slurm"]
    slurm = get_launcher("slurm:gpu", {"timeout_min": "60", "cpus_per_task": "2"})
    assert isinstance(slurm, SlurmLauncher) and slurm.partition == "gpu" and slurm.folder == Path(".slurm")
    assert slurm.parameters == {"timeout_min": 60, "cpus_per_task": 2, "slurm_partition": "gpu"}
    assert get_launcher("dask://10.0.0.1:8786").address == "tcp://10.0.0.1:8786"
    assert not get_launcher("loky").remote and get_launcher("slurm").remote


@pytest.mark.parametrize("backend", ["ray", "", "dask:/x", "slurm:", "slurm:a/b", "slurmx"])
def test_an_unknown_backend_is_one_line_naming_the_valid_ones(backend):
    with pytest.raises(UserError) as err:
        get_launcher(backend)
    msg = str(err.value)
    assert msg.startswith("unknown --backend") and "\n" not in msg
    assert all(form in msg for form in BACKEND_FORMS)


def test_backend_options_are_checked():
    assert parse_backend_options(["timeout_min=60", "folder = x", "timeout_min=90"]) == \
        {"timeout_min": "90", "folder": "x"}
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        parse_backend_options(["timeout_min"])
    with pytest.raises(UserError, match="applies to --backend slurm"):
        get_launcher("loky", {"mem_gb": "8"})
    with pytest.raises(UserError, match="poll_s"):
        get_launcher("slurm", {"poll_s": "often"})
    with pytest.raises(UserError, match="cpus_per_task=two: expected an integer"):
        get_launcher("slurm", {"cpus_per_task": "two"})      # before any work, without submitit
    with pytest.raises(UserError, match="cluster=pbs"):
        get_launcher("slurm", {"cluster": "pbs"})


def test_slurm_options_reach_submitit_or_fail_in_one_line(tmp_path):
    pytest.importorskip("submitit")
    base = {"cluster": "local", "folder": str(tmp_path / "s")}
    launcher = get_launcher("slurm", dict(base, timeout_min="60", mem_gb="2", slurm_array_parallelism="4"))
    executor = launcher._executor()
    assert executor.parameters["timeout_min"] == 60 and executor.parameters["mem_gb"] == 2
    for bad, match in (({"cpus_per_task": "two"}, "expected an integer"), ({"bogus": "1"}, "--backend-opt: "),
                       ({"cluster": "pbs"}, "cluster=pbs")):
        with pytest.raises(UserError, match=match) as err:
            get_launcher("slurm", dict(base, **bad))._executor()
        assert "\n" not in str(err.value)


def test_slurm_without_slurm_says_so(monkeypatch, tmp_path):
    submitit = pytest.importorskip("submitit")
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: -1))
    with pytest.raises(UserError, match="no SLURM here .*cluster=local"):
        get_launcher("slurm:gpu", {"folder": str(tmp_path)})._executor()


@pytest.mark.parametrize("backend,module", [("slurm", "submitit"), ("dask://h:1", "dask.distributed")])
def test_a_missing_package_names_the_cluster_extra(monkeypatch, backend, module):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(UserError) as err:
        with get_launcher(backend).session():
            pass
    assert "pip install 'oefsmc-repro[cluster]'" in str(err.value) and "\n" not in str(err.value)


def test_the_command_line_rejects_an_unknown_backend(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("OEFSMC_FAKE_PIPELINE", "test_sweep_fakes")
    argv = ["--table", "1", "--seeds", "1", "--results-dir", str(tmp_path / "r"), "--out-dir", str(tmp_path / "o")]
    assert sweep_cli.main(argv + ["--backend", "pbs"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "slurm[:PARTITION]" in err[0]
    assert sweep_cli.main(argv + ["--backend-opt", "mem_gb=8"]) == 2
    assert "applies to --backend slurm" in capsys.readouterr().err
    assert sweep_cli.main(argv + ["--backend", "slurm", "--backend-opt", "timeout_min=1h"]) == 2
    assert "timeout_min=1h: expected an integer" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_dask_gives_the_records_of_loky(tmp_path, loky_records):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        _, res = _sweep(tmp_path, backend="dask://" + cluster.scheduler_address, n_jobs=-1)
    assert res.counts() == {"done": 6}
    assert _records(tmp_path) == loky_records


def _release_when_two_tasks_run(markers: Path, gate: Path, stop: threading.Event) -> None:
    """Open the gate once two array tasks (two pids) each hold a cell in flight (at most 90 s)."""
    t0 = time.time()
    while not stop.is_set() and time.time() - t0 < 90:
        pids = {p.name.split(".")[1] for p in markers.glob("*")} if markers.is_dir() else set()
        if len(pids) >= 2:
            break
        time.sleep(0.05)
    gate.touch()


@pytest.mark.slow
def test_a_slurm_array_computes_each_cell_once_with_the_records_of_loky(tmp_path, monkeypatch, loky_records):
    pytest.importorskip("submitit")
    markers, gate = tmp_path / "markers", tmp_path / "gate"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("OEFSMC_FAKE_MARKERS", str(markers))
    monkeypatch.setenv("OEFSMC_FAKE_GATE", str(gate))
    stop = threading.Event()
    opener = threading.Thread(target=_release_when_two_tasks_run, args=(markers, gate, stop), daemon=True)
    opener.start()
    try:
        _, res = _sweep(tmp_path / "results", backend="slurm", n_jobs=2,
                        backend_options={"cluster": "local", "folder": str(tmp_path / ".slurm"), "poll_s": "0.2"})
    finally:
        stop.set()
        opener.join()
    assert res.counts() == {"done": 6}
    runs = sorted(p.name.split(".")[0] for p in markers.iterdir())
    assert len(runs) == 6 and len(set(runs)) == 6                        # each cell computed once
    assert len({p.name.split(".")[1] for p in markers.iterdir()}) == 2   # by the two array tasks
    assert _records(tmp_path / "results") == loky_records
    assert not list((tmp_path / ".slurm").glob("tasks-*.pkl"))             # the task list is removed


def _hold_lock(results: Path, key: str, others: list[str], held: threading.Event) -> None:
    """Hold ``key``'s lock (as another sweep would) until the ``others`` have records, then a second more."""
    cache = ResultCache(results, "demo")
    lock = cache.lock(key)
    lock.acquire()
    held.set()
    t0 = time.time()
    while time.time() - t0 < 90 and not all(cache.check(k).state == "ok" for k in others):
        time.sleep(0.05)
    time.sleep(1.0)
    cache.release(lock)


@pytest.mark.slow
def test_a_slurm_array_reuses_records_and_waits_for_a_held_cell(tmp_path, monkeypatch, loky_records):
    """Cells computed before (half the grid) are not resubmitted; a cell another process holds is skipped by
    the array's tasks, then waited for (a second array with blocking locks) and computed once."""
    pytest.importorskip("submitit")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")]))
    results = tmp_path / "results"
    run_sweep(_cells()[:3], results_dir=results, runner=fake.run_config, resolver=fake.resolve_config)
    keys = [k for k in plan_sweep(_cells(), get_profile("demo"), Hooks(fake.resolve_config, "-")).jobs
            if ResultCache(results, "demo").check(k).state != "ok"]
    held = threading.Event()
    holder = threading.Thread(target=_hold_lock, args=(results, keys[0], keys[1:], held), daemon=True)
    holder.start()
    assert held.wait(30)
    _, res = _sweep(results, backend="slurm", n_jobs=2,
                    backend_options={"cluster": "local", "folder": str(tmp_path / ".slurm"), "poll_s": "0.2"})
    holder.join()
    assert res.counts() == {"done": 3, "cached": 3}
    assert _records(results) == loky_records


def test_the_launcher_keeps_one_outcome_per_cell(monkeypatch, tmp_path):
    """What array tasks report is merged: a computed outcome wins, ``cached`` beats ``locked``, and a
    failed array task is raised after the outcomes the others gave (the sweep then retries the rest)."""
    submitit = pytest.importorskip("submitit")
    results = [
        [({"key": "a", "status": "done"}, True), ({"key": "b", "status": "locked"}, False),
         ({"key": "c", "status": "locked"}, False)],
        [({"key": "a", "status": "cached"}, False), ({"key": "b", "status": "cached"}, False),
         ({"key": "c", "status": "locked"}, False), ({"key": "d", "status": "done"}, True)],
        RuntimeError("task 2 was killed\nOUT OF MEMORY"),
    ]

    class Job:
        def __init__(self, i):
            self.i, self.job_id = i, f"77_{i}"

        def result(self):
            if isinstance(results[self.i], Exception):
                raise results[self.i]
            return results[self.i]

        def done(self):
            return True

    class Executor:
        def map_array(self, fn, args):
            assert len(args) == 3 and Path(args[0]).is_file()
            return [Job(i) for i in range(3)]

    monkeypatch.setattr(submitit.helpers, "as_completed", lambda jobs, poll_frequency: iter(jobs))
    launcher = get_launcher("slurm", {"folder": str(tmp_path)})
    launcher.executor = Executor()
    seen = []
    with pytest.raises(RuntimeError, match="1 of 3 array tasks failed .*OUT OF MEMORY"):
        for out in launcher.run([{"key": k} for k in "abcd"] + [{"key": "e"}, {"key": "f"}], 3):
            seen.append((out["key"], out["status"]))
    assert sorted(seen) == [("a", "done"), ("b", "cached"), ("c", "locked"), ("d", "done")]
    assert launchers.CLUSTER_EXTRA == "pip install 'oefsmc-repro[cluster]'"


def test_the_options_reach_the_sbatch_script(monkeypatch, tmp_path):
    """Without a cluster here: the sbatch script submitit would submit carries the partition and options."""
    submitit = pytest.importorskip("submitit")
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))
    launcher = get_launcher("slurm:gpu", {"folder": str(tmp_path), "timeout_min": "60", "cpus_per_task": "2",
                                          "mem_gb": "8", "slurm_account": "proj"})
    script = launcher._executor()._executor._make_submission_file_text("python -m x", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=60", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=8GB",
                 "#SBATCH --account=proj", "#SBATCH --job-name=oefsmc-sweep"):
        assert line in script, script
