"""A record is a function of its key: the same cell gives the same numbers whatever ran it (issue: same
cell, same number) -- in-process with 2 threads, ``benchmark run`` under OMP_NUM_THREADS=1 or 2, and sweeps
with ``--jobs 1`` and ``--jobs 2`` -- and common random numbers hold across the OE variants."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from oefsmc import envinfo
from oefsmc.core import evaluate
from oefsmc.pipeline import resolve_config, run_config

REPO = Path(__file__).resolve().parents[2]
_COMMON = {"dataset": "digits", "num": 20, "balanced": False, "imbalance_ratio": 100.0, "schedule": "demo",
           "overrides": {}, "device": "cpu"}
CELLS = [
    dict(_COMMON, arch="demo_resnet_s", method="mir", oe="full", seed=1),
    dict(_COMMON, arch="demo_vgg", method="cd", oe="ft-only", seed=0),
    dict(_COMMON, arch="demo_resnet_s", method="practise", oe="none", seed=0),
]
NUMBERS = ("top1", "top1_pruned", "top1_compressed", "per_class")


def _numbers(record: dict) -> dict:
    return {k: record["metrics"][k] for k in NUMBERS}


def _env(threads: int, tmp: Path) -> dict:
    return dict(os.environ, OMP_NUM_THREADS=str(threads), OEFSMC_COMPRESSED_CACHE="0",
                OEFSMC_CACHE=str(tmp / f"cache-{threads}"))


SWEEP = """
import json, sys
from benchmark.plugins import load_plugins
from benchmark.sweep import run_sweep
load_plugins()  # an entry point: it registers the methods (the workers do so themselves)
cells = json.loads(sys.argv[1])
plan, result = run_sweep(cells, profile="demo", results_dir=sys.argv[2], n_jobs=int(sys.argv[3]))
out = {}
for key, job in plan.jobs.items():
    rec = json.load(open(f"{sys.argv[2]}/demo/{key}.json"))
    assert rec["status"] == "ok", rec.get("error")
    out[str(job.cell["method"])] = {"key": key, "metrics": rec["metrics"]}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_run_and_sweeps_with_any_jobs_or_threads_agree_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.setenv("OEFSMC_COMPRESSED_CACHE", "0")
    torch.set_num_threads(2)  # the caller's thread count must not reach the cell
    in_process = {c["method"]: _numbers(run_config(resolve_config(c))) for c in CELLS}
    results = {}
    for jobs, threads in ((1, 2), (2, 1)):
        proc = subprocess.run([sys.executable, "-c", SWEEP, json.dumps(CELLS), str(tmp_path / f"r{jobs}"), str(jobs)],
                              cwd=REPO, env=_env(threads, tmp_path), capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        results[jobs] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {m: r["key"] for m, r in results[1].items()} == {m: r["key"] for m, r in results[2].items()}
    for method, numbers in in_process.items():
        assert _numbers(results[1][method]) == numbers == _numbers(results[2][method]), method
    cell = CELLS[0]
    args = ["run", "--dataset", cell["dataset"], "--arch", cell["arch"], "--num", str(cell["num"]), "--method",
            cell["method"], "--oe", cell["oe"], "--schedule", "demo", "--seed", str(cell["seed"]), "--device", "cpu",
            "--json"]
    for threads in (1, 2):
        proc = subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=REPO, env=_env(threads, tmp_path),
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert _numbers(json.loads(proc.stdout.strip().splitlines()[-1])) == in_process["mir"]


def test_common_random_numbers_across_variants(monkeypatch):
    """The method's own compression is bit-identical in none / ft-only / no-comp; OE compression in full /
    no-ft -- with the compressed-state cache off (each variant computes it) and on (it is shared)."""
    base = {"dataset": "digits", "arch": "demo_vgg", "num": 20, "method": "fskd", "schedule": "demo", "seed": 2,
            "device": "cpu"}
    for cache in ("0", "1"):
        monkeypatch.setenv("OEFSMC_COMPRESSED_CACHE", cache)
        rec = {v: run_config(resolve_config(dict(base, oe=v))) for v in ("none", "ft-only", "no-comp", "full", "no-ft")}
        own = rec["none"]["metrics"]["top1"]
        assert rec["ft-only"]["metrics"]["top1_compressed"] == own == rec["no-comp"]["metrics"]["top1_compressed"]
        assert rec["full"]["metrics"]["top1_compressed"] == rec["no-ft"]["metrics"]["top1_compressed"]
        keys = {v: r["compression"]["key"] for v, r in rec.items()}
        assert keys["none"] == keys["ft-only"] == keys["no-comp"] != keys["full"] == keys["no-ft"]
        if cache == "1":
            assert rec["ft-only"]["compression"]["reused"] and rec["no-ft"]["compression"]["reused"]


@pytest.mark.parametrize("cuda, native_bf16, device, precision", [
    (False, False, "cpu", "fp32"), (False, True, "cpu", "bf16"), (True, False, "cuda", "fp32"),
    (True, True, "cuda", "bf16")])
def test_resolved_config_names_device_threads_and_precision(monkeypatch, cuda, native_bf16, device, precision):
    """``device=auto`` and ``eval_precision=auto`` are resolved into the key: the device the machine has and
    bf16 only where that device computes it natively."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(evaluate, "NATIVE_BF16", {"cpu": lambda: native_bf16, "cuda": lambda: native_bf16})
    monkeypatch.setattr(envinfo, "_probe_cuda", lambda: {"name": "GPU-X", "bf16": native_bf16})
    r = resolve_config(dict(CELLS[0], device="auto", eval_precision="auto"))
    assert (r["device"], r["eval_precision"], r["threads"], r["schema_version"]) == (device, precision, 1, 2)
    assert resolve_config(dict(CELLS[0], device="auto", eval_precision="fp32"))["eval_precision"] == "fp32"
