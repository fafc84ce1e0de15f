"""Sweeps in real processes: SIGKILL and restart, and two concurrent sweeps on one results directory.

Each sweep is ``python -m benchmark.sweep`` with the test-only fake pipeline (``OEFSMC_FAKE_PIPELINE``)
and two loky workers; the fake runner sleeps a little so the sweep can be killed mid-way, and writes a
marker file per computation so computations can be counted.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from benchmark.cache import ResultCache
from benchmark.grids import build_grid
from benchmark.profiles import get_profile
from benchmark.sweep import run_sweep

import test_sweep_fakes as fake

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ARGS = ["--table", "1", "--seeds", "1", "--jobs", "2", "--no-render", "--no-progress", "--json"]
N_CELLS = 32
VOLATILE = ("run", "timings", "env")


def _env(tmp_path, delay: float) -> dict:
    env = dict(os.environ)
    env.update({
        "OEFSMC_FAKE_PIPELINE": "test_sweep_fakes", "OEFSMC_FAKE_DELAY": str(delay),
        "OEFSMC_FAKE_MARKERS": str(tmp_path / "markers"),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")]),
    })
    for var in ("OEFSMC_FAKE_FAIL", "OEFSMC_FAKE_MISSING"):
        env.pop(var, None)
    return env


def _start(tmp_path, results: Path, delay: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "benchmark.sweep", *ARGS, "--results-dir", str(results)],
                            cwd=tmp_path, env=_env(tmp_path, delay), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _summary(proc: subprocess.Popen, timeout: float = 60) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _records(results: Path) -> dict:
    """key -> record without the volatile parts (timings, env, run info)."""
    out = {}
    for p in sorted((results / "demo").glob("*.json")):
        rec = json.loads(p.read_text())
        out[p.stem] = {k: v for k, v in rec.items() if k not in VOLATILE}
    return out


def test_sigkilled_sweep_restarts_to_the_same_records(tmp_path):
    # reference: one uninterrupted sweep (in process; same grid, same fake runner)
    ref_dir = tmp_path / "ref"
    cells = build_grid(["table1"], get_profile("demo"), range(1))
    _, res = run_sweep(cells, results_dir=ref_dir, runner=fake.run_config, resolver=fake.resolve_config)
    assert res.counts() == {"done": N_CELLS}

    results = tmp_path / "results"
    proc = _start(tmp_path, results, delay=0.15)
    deadline = time.time() + 60
    while len(list((results / "demo").glob("*.json"))) < 6:
        assert proc.poll() is None and time.time() < deadline, "the sweep ended before it could be killed"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)                         # the sweep and its workers, mid-way
    proc.wait(timeout=10)
    partial = len(list((results / "demo").glob("*.json")))
    assert 6 <= partial < N_CELLS
    cache = ResultCache(results, "demo")
    assert all(cache.check(p.stem).state == "ok" for p in (results / "demo").glob("*.json"))

    summary = _summary(_start(tmp_path, results, delay=0.0))
    assert summary["cached"] >= partial and summary["computed"] + summary["cached"] == N_CELLS
    assert summary["failed"] == 0
    assert _records(results) == _records(ref_dir)


def test_two_concurrent_sweeps_compute_each_cell_once(tmp_path):
    results = tmp_path / "results"
    a, b = _start(tmp_path, results, delay=0.3), _start(tmp_path, results, delay=0.3)
    sa, sb = _summary(a), _summary(b)
    markers = Counter(name.split(".")[0] for name in os.listdir(tmp_path / "markers"))
    assert len(markers) == N_CELLS and set(markers.values()) == {1}      # every cell computed exactly once
    assert sa["computed"] + sb["computed"] == N_CELLS
    assert sa["computed"] > 0 and sb["computed"] > 0                      # both did work (they overlapped)
    for s in (sa, sb):
        assert s["computed"] + s["cached"] == N_CELLS and s["failed"] == 0
    assert len(_records(results)) == N_CELLS
