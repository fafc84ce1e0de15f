"""``gpu-runbook`` at tiny scale on CPU (two resumable calls), the carry helpers and the GPU-cost projection."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import paper_data
from benchmark import carry, gpu_cost

REPO = Path(__file__).resolve().parents[2]
TINY = ("teacher.epochs=2", "teacher.batch_size=32", "mir.iters=2", "mir.batch_size=8", "finetune.max_iters=2",
        "finetune.eval_every=2", "oe.pool_size=20", "oe.aux_size=10")
ONLY = ("paper_dataset=cifar10,paper_num=10,method=fskd,variant=none|full,setting=imbalanced",
        "paper_dataset=cifar10,paper_num=10,method=mir,variant=none,setting=imbalanced",
        "paper_dataset=cifar100,paper_num=100,method=fskd,variant=none")


def _runbook(tmp: Path, *extra: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OEFSMC_CACHE=str(tmp / "cache"),
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "benchmark", "gpu-runbook", "--out", str(tmp / "out"), "--data-root",
           str(tmp / "data"), "--device", "cpu", "--min-cell-seconds", "1", "--json",
           *[a for s in TINY for a in ("--set", s)], *[a for o in ONLY for a in ("--only", o)], *extra]
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_runbook_trains_resumes_and_times_cells(tmp_path):
    paper_data.write_cifar_arrays(tmp_path / "data", "cifar10", 10, 5)
    paper_data.write_cifar_arrays(tmp_path / "data", "cifar100", 5, 1)
    out = tmp_path / "out"

    first = _runbook(tmp_path, "--budget-minutes", "5", "--max-epochs", "1")
    assert {t["epochs_done"] for t in first["teachers"].values()} == {1}
    assert not any(t["complete"] for t in first["teachers"].values())
    assert (out / "teachers" / "cifar10_vgg16.pt.ckpt").is_file()
    assert not (out / "teachers" / "cifar10_vgg16.pt").exists()
    assert first["cells"]["gpu-runbook-provisional"]["computed"] == 4          # timing runs, provisional teachers

    second = _runbook(tmp_path, "--budget-minutes", "5", "--export", str(tmp_path / "export"))
    assert all(t["complete"] and t["epochs_this_call"] == 1 for t in second["teachers"].values())  # resumed
    assert (out / "teachers" / "cifar100_resnet32.pt.json").is_file()
    assert not (out / "teachers" / "cifar100_resnet32.pt.ckpt").exists()
    assert second["cells"]["gpu-runbook"] == {"cells": 4, "computed": 4, "failed": 0, "left_for_time": 0,
                                               "skipped": 0}
    rows = json.loads((out / "timings.json").read_text())
    assert len(rows) == 8 and {r["teacher"] for r in rows} == {"provisional", "final"}
    assert all(r["wall_s"] > 0 and r["device"].startswith("cpu") for r in rows)
    assert all(r["official"] == (r["overrides"] == "") for r in rows)            # FSKD w/o OE: nothing to shorten
    assert not any(r["official"] for r in rows if r["method"] == "mir" or r["oe"] == "full")
    assert len(json.loads((out / "runbook.json").read_text())["calls"]) == 2
    projection = (out / "projection.md").read_text()
    assert "PROJECTION" in projection and "| cifar10_vgg16 | cd-vgg16[" in projection
    exported = {str(p.relative_to(tmp_path / "export")) for p in (tmp_path / "export").rglob("*") if p.is_file()}
    assert {"timings.csv", "projection.md", "runbook.json", "teachers/cifar10_vgg16.pt"} <= exported
    assert not any(p.endswith(".ckpt") or ".provisional." in p for p in exported)

    third = _runbook(tmp_path, "--budget-minutes", "0.01", "--only", "paper_dataset=cifar10,method=cd,paper_num=10")
    assert third["cells"] == {} or third["cells"]["gpu-runbook"]["computed"] == 0   # nothing starts out of time


def test_carry_parts_reassemble_exactly(tmp_path):
    src = tmp_path / "src" / "cifar100" / "train.npz"
    src.parent.mkdir(parents=True)
    src.write_bytes(os.urandom(3 * (1 << 20) + 123))
    paths = carry.split_file(src, tmp_path / "dst" / "cifar100" / "train.npz", part_mib=1)
    assert len(paths) == 5 and paths[-1].name == "train.npz.parts.json"
    plan = carry.carry_plan(paths, tmp_path, limit_mib=2)
    part = "dst/cifar100/train.npz.part"
    assert plan == [[part + "00", part + "01"], [part + "02", part + "03", "dst/cifar100/train.npz.parts.json"]]
    assert carry.join_parts(tmp_path / "dst") == [str(tmp_path / "dst" / "cifar100" / "train.npz")]
    assert (tmp_path / "dst" / "cifar100" / "train.npz").read_bytes() == src.read_bytes()
    assert carry.join_parts(tmp_path / "dst") == []                                 # once


def _timing(method, oe, num, wall, concurrency=1, dataset="cifar10", arch="vgg16"):
    return {"dataset": dataset, "arch": arch, "method": method, "oe": oe, "num": num, "balanced": False,
            "wall_s": wall, "concurrency": concurrency, "device": "NVIDIA H200", "official": True, "teacher": "final"}


def test_projection_counts_each_artifacts_cells_and_labels_itself():
    timings = [_timing(m, v, 10, 60.0) for m in ("cd", "fskd", "mir", "practise") for v in ("none", "full")]
    timings.append(_timing("mir", "none", 10, 120.0, concurrency=4))               # 4 at once: 2x slower each
    rows = {r["artifact"]: r for r in gpu_cost.project(timings, (1, 4))}
    t1 = rows["Table 1"]
    assert t1["cells"] == 160 and t1["estimated_cells"] == 160
    assert t1["gpu_hours_1"] == pytest.approx(160 * 60 / 3600, abs=1e-3)
    assert t1["speedup_4"] == "2.00" and t1["gpu_hours_4"] == pytest.approx(t1["gpu_hours_1"] / 2, abs=1e-3)
    assert rows["Table 2 ILSVRC-2012/resnet34"]["gpu_hours_1"] is None
    assert rows["Table 2 CIFAR-10/vgg16"]["cells"] == 180 and rows["Figure 3c"]["cells"] == 35
    assert rows["all artifacts"]["cells"] < sum(r["cells"] for k, r in rows.items() if k != "all artifacts")
    text = gpu_cost.render(list(rows.values()), timings, (1, 4))
    assert text.startswith("# GPU cost: PROJECTION") and "not projected" in text
    assert gpu_cost.speedup(timings, 8) == (8.0, False)
