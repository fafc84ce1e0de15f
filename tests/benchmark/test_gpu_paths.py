"""The CUDA code paths, checked on CPU where they can be: precision per stage, evaluation batches, worker
threads, a parent that never touches CUDA, and the same records with ``--jobs 1`` and ``--jobs 2``."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmark import workers
from benchmark.sweep import add_sweep_arguments, plan_from_args
from oefsmc import envinfo
from oefsmc.core import augment, evaluate
from oefsmc.core.augment import random_crop_flip, to_device
from oefsmc.config import Cell
from oefsmc.core.precision import full_fp32, loss_values
from oefsmc.pipeline import resolve_config

REPO = Path(__file__).resolve().parents[2]
VOLATILE = {"run", "timings", "original_timings", "reused", "env", "seconds", "wall_s"}


def test_full_fp32_switches_tf32_off_and_restores_it():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = True, True
    try:
        with full_fp32():
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_losses_kept_on_the_device_give_the_same_floats():
    vals = [torch.tensor(v, dtype=torch.float32) for v in (0.1, 2.5, 1e-7)]
    assert loss_values(vals) == [float(v) for v in vals] and loss_values([]) == []


def test_augmentation_draws_on_the_cpu_and_sends_its_indices_through_to_device(monkeypatch):
    """Offsets and flips come from the CPU generator (the same numbers on every device) and every index
    tensor reaches the images' device through ``to_device`` (pinned, non-blocking on CUDA); the crop equals
    one computed by hand from the same draws."""
    x = torch.arange(4 * 3 * 8 * 8, dtype=torch.float32).reshape(4, 3, 8, 8)
    sent = []

    def recording_to_device(t, device):
        sent.append((t.device.type, tuple(t.shape)))
        return to_device(t, device)

    monkeypatch.setattr(augment, "to_device", recording_to_device)
    out = random_crop_flip(x, torch.Generator().manual_seed(3), 2)
    assert sent == [("cpu", (4, 8)), ("cpu", (4, 8)), ("cpu", (4,))]
    g = torch.Generator().manual_seed(3)
    dy, dx = torch.randint(0, 5, (4,), generator=g), torch.randint(0, 5, (4,), generator=g)
    flips = torch.rand(4, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    expected = torch.stack([padded[i, :, dy[i]:dy[i] + 8, dx[i]:dx[i] + 8] for i in range(4)])
    expected = torch.where(flips[:, None, None, None], expected.flip(3), expected)
    assert torch.equal(out, expected) and not torch.equal(out, x)


@pytest.mark.parametrize("device,shape,expected", [
    ("cpu", (5, 32, 32, 3), 128), ("cpu", (5, 224, 224, 3), 2), ("cpu", (5, 8, 8, 1), 1000),
    ("cuda", (5, 32, 32, 3), 32768), ("cuda", (5, 224, 224, 3), 668), ("cpu", (5, 5000, 5000, 3), 1),
])
def test_evaluation_batches_follow_the_device(device, shape, expected):
    x = torch.zeros(shape, dtype=torch.uint8)
    assert evaluate.device_batch_size(1000, evaluate.image_pixels(x), device) == expected
    assert evaluate.image_pixels(torch.zeros((2, 3, 224, 224))) == 224 * 224  # float: N x C x H x W


def test_auto_precision_is_bf16_where_the_device_has_it(monkeypatch):
    monkeypatch.setitem(evaluate.NATIVE_BF16, "cuda", lambda: True)
    assert evaluate.resolve_precision("auto", "cuda") == "bf16"
    monkeypatch.setitem(evaluate.NATIVE_BF16, "cuda", lambda: False)
    assert evaluate.resolve_precision("auto", "cuda") == "fp32"
    assert evaluate.resolve_precision("fp32", "cuda") == "fp32"
    assert evaluate.resolve_precision("auto", "meta") == "fp32"


def test_cpu_workers_get_one_thread_cuda_workers_their_share(monkeypatch):
    assert workers.worker_threads("cpu", 4, cores=16) == 1
    assert workers.worker_threads("auto", 4, cores=16) == (4 if torch.cuda.is_available() else 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert workers.worker_threads("auto", 4, cores=16) == 4
    assert workers.worker_threads("cuda", 32, cores=16) == 1 and workers.worker_threads("cpu", 4, cores=16) == 1


def test_planning_a_sweep_never_initialises_cuda(monkeypatch, tmp_path):
    """On a GPU machine planning resolves ``device=auto`` and ``eval_precision=auto`` for every cell; none of
    it may create a CUDA context in the parent (benchmark/workers.py).  CUDA is made to look available and
    initialising it raises."""
    def refuse(*_a, **_k):
        raise AssertionError("the sweep's parent process initialised CUDA")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "_lazy_init", refuse)
    monkeypatch.setattr(torch.cuda, "init", refuse)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", refuse)
    monkeypatch.setattr(torch.cuda, "get_device_name", refuse)
    monkeypatch.setattr(envinfo, "_probe_cuda", lambda: {"name": "GPU-X", "bf16": True})  # a child's answer
    args = add_sweep_arguments(argparse.ArgumentParser()).parse_args(
        ["--table", "2", "--seeds", "1", "--jobs", "4", "--results-dir", str(tmp_path), "--only", "method=mir"])
    plan, _, n_jobs = plan_from_args(args)
    assert n_jobs == 4 and len(plan.jobs) == 27
    planned = Cell.from_dict(next(iter(plan.jobs.values())).cell)
    auto = dataclasses.replace(planned, device="auto", eval_precision="auto")
    config = resolve_config(auto)
    assert (config["device"], config["gpu"], config["eval_precision"]) == ("cuda", "GPU-X", "bf16")
    assert "gpu" not in resolve_config(planned)                     # a CPU cell's key is as it was


def test_cuda_is_asked_in_process_only_once_cuda_is_initialised(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda _i=0: "GPU-here")
    monkeypatch.setattr(envinfo, "_probe_cuda", lambda: {"name": "GPU-child", "bf16": False})
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert envinfo.cuda_facts()["name"] == "GPU-child" and evaluate._cuda_has_bf16() is False
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)   # a worker that has its context asks itself
    assert envinfo.cuda_facts() == {"name": "GPU-here", "bf16": True} and evaluate._cuda_has_bf16() is True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert envinfo.cuda_facts() == {} and evaluate._cuda_has_bf16() is False


def test_cuda_probe_runs_in_a_child_process():
    """The child's answer is this process's (``{}`` on a machine without CUDA)."""
    expected = ({"name": torch.cuda.get_device_name(0), "bf16": bool(torch.cuda.is_bf16_supported())}
                if torch.cuda.is_available() else {})
    envinfo._probe_cuda.cache_clear()
    try:
        assert envinfo._probe_cuda() == expected
    finally:
        envinfo._probe_cuda.cache_clear()


def test_cuda_cells_run_with_deterministic_cudnn_and_restore_it(monkeypatch):
    """run_config pins cuDNN's algorithms for a CUDA cell (checked on CPU by faking a CUDA config up to the
    first stage) and leaves the process's settings as they were."""
    from oefsmc import pipeline
    seen = {}

    def first_stage(state):
        seen["flags"] = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
        raise RuntimeError("stop")

    monkeypatch.setattr(pipeline, "STAGES", [pipeline.Stage("data", first_stage)])
    before = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    for device, flags in (("cuda", (True, False)), ("cpu", before)):
        with pytest.raises(RuntimeError, match="stop"):
            pipeline.run_config({"device": device, "threads": 1})
        assert seen["flags"] == flags
        assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == before


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _demo_sweep(tmp: Path, jobs: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OEFSMC_CACHE=str(tmp / f"cache{jobs}"),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("OEFSMC_FAKE_PIPELINE", None)
    results = tmp / f"results{jobs}"
    cmd = [sys.executable, "-m", "benchmark", "sweep", "--table", "2", "--seeds", "1", "--jobs", str(jobs),
           "--no-render", "--no-progress", "--results-dir", str(results),
           "--only", "paper_dataset=cifar10,paper_num=10,method=fskd|mir,variant=none|full",
           "--set", "mir.iters=20", "--set", "finetune.max_iters=20"]
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {p.stem: _strip(json.loads(p.read_text())) for p in sorted((results / "demo").glob("*.json"))}


@pytest.mark.slow
def test_the_same_records_with_one_and_two_workers(tmp_path):
    one, two = _demo_sweep(tmp_path, 1), _demo_sweep(tmp_path, 2)
    assert len(one) == 4 and one.keys() == two.keys()
    for key in one:
        assert one[key] == two[key], key
