"""Sweeps in real processes: SIGKILL and restart, and two concurrent sweeps on one results directory.

Each sweep is ``python -m benchmark.sweep`` with the test-only fake pipeline (``OEFSMC_FAKE_PIPELINE``)
and two loky workers; the fake runner sleeps a little so the sweep can be killed mid-way, and writes a
marker file per computation so computations can be counted.  Neither test depends on timing: the kills
wait for records to appear (then a random extra moment, so some land mid-write), and the concurrent
sweeps hold their first cells at a gate (``OEFSMC_FAKE_GATE``) until both are computing.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

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


def _env(tmp_path, delay: float, **extra) -> dict:
    env = dict(os.environ)
    env.update({
        "OEFSMC_FAKE_PIPELINE": "test_sweep_fakes", "OEFSMC_FAKE_DELAY": str(delay),
        "OEFSMC_FAKE_MARKERS": str(tmp_path / "markers"), "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")]), **extra,
    })
    for var in ("OEFSMC_FAKE_FAIL", "OEFSMC_FAKE_MISSING", "OEFSMC_PROG"):
        env.pop(var, None)
    if not extra.get("OEFSMC_FAKE_GATE"):
        env.pop("OEFSMC_FAKE_GATE", None)
    return env


def _start(tmp_path, results: Path, delay: float, **extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "benchmark.sweep", *ARGS, "--results-dir", str(results)],
                            cwd=tmp_path, env=_env(tmp_path, delay, **extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _summary(proc: subprocess.Popen, timeout: float = 180) -> dict:
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


def _leftovers(results: Path) -> list[str]:
    """Temp files, lock files and set-aside records anywhere under ``results``."""
    return sorted(str(p.relative_to(results)) for p in results.rglob("*")
                  if p.name.endswith((".tmp", ".lock", ".corrupt")))


def _wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, f"the sweep ended before {what}: {proc.communicate()[1]}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.mark.slow
def test_sigkill_at_three_random_points_then_resume_gives_the_uninterrupted_records(tmp_path):
    seed = int(os.environ.get("OEFSMC_TEST_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    # reference: one uninterrupted sweep (in process; same grid, same fake runner)
    ref_dir = tmp_path / "ref"
    cells = build_grid(["table1"], get_profile("demo"), range(1))
    _, res = run_sweep(cells, results_dir=ref_dir, runner=fake.run_config, resolver=fake.resolve_config)
    assert res.counts() == {"done": N_CELLS}

    results = tmp_path / "results"
    cache = ResultCache(results, "demo")

    def n_records() -> int:
        return len(list((results / "demo").glob("*.json")))
    for kill in range(3):                                       # three kills at random points, then resume
        target = n_records() + rng.randint(1, 5)
        proc = _start(tmp_path, results, delay=0.1)
        _wait_for(lambda: n_records() >= target, proc, f"kill {kill} (seed {seed})")
        time.sleep(rng.uniform(0.0, 0.1))                       # sometimes mid-write, sometimes between cells
        os.killpg(proc.pid, signal.SIGKILL)                     # the sweep and its workers
        proc.communicate(timeout=30)
        assert n_records() < N_CELLS, f"kill {kill} came too late (seed {seed})"
        assert all(cache.check(p.stem).state == "ok" for p in (results / "demo").glob("*.json")), seed
    partial, left = n_records(), _leftovers(results)     # lock (and temp) files of the killed workers

    summary = _summary(_start(tmp_path, results, delay=0.0))
    assert summary["cached"] >= partial and summary["computed"] + summary["cached"] == N_CELLS, seed
    assert summary["failed"] == 0 and summary["corrupt_recomputed"] == 0, seed
    assert _records(results) == _records(ref_dir), seed
    assert _leftovers(results) == [], (seed, left, _leftovers(results))


@pytest.mark.slow
def test_two_concurrent_sweeps_compute_each_cell_once(tmp_path):
    results, gate = tmp_path / "results", tmp_path / "gate"
    a = _start(tmp_path, results, delay=0.02, OEFSMC_FAKE_GATE=str(gate))
    b = _start(tmp_path, results, delay=0.02, OEFSMC_FAKE_GATE=str(gate))
    markers = tmp_path / "markers"

    def both_computing() -> bool:                               # 2 workers each: 4 cells in flight = both
        return markers.is_dir() and len(os.listdir(markers)) >= 4
    _wait_for(both_computing, a, "both sweeps computed")
    gate.touch()
    sa, sb = _summary(a), _summary(b)
    counts = Counter(name.split(".")[0] for name in os.listdir(markers))
    assert len(counts) == N_CELLS and set(counts.values()) == {1}       # every cell computed exactly once
    assert sa["computed"] + sb["computed"] == N_CELLS
    assert sa["computed"] > 0 and sb["computed"] > 0                     # both did work (they overlapped)
    for s in (sa, sb):
        assert s["computed"] + s["cached"] == N_CELLS and s["failed"] == 0
    assert len(_records(results)) == N_CELLS
    assert _leftovers(results) == []
