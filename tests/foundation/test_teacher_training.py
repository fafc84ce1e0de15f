"""The resumable teacher trainer: same weights after an interruption or a SIGKILL, recipe overrides, errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from oefsmc.data import load_split
from oefsmc.errors import UserError
from oefsmc.models import build_model
from oefsmc.models.teacher import RECIPES
from oefsmc.models.teacher_training import apply_recipe_overrides, lr_at, train_teacher

REPO = Path(__file__).resolve().parents[2]


def _tiny(epochs=4):
    return apply_recipe_overrides(RECIPES.get("demo"), {"teacher.epochs": str(epochs), "teacher.batch_size": "128"})


def _train(ckpt, max_epochs=None, epochs=4, precision="fp32", switch=False):
    data = load_split("digits", None, "train")
    torch.manual_seed(123)  # a different global state must not matter: the trainer seeds itself
    model = build_model("demo_vgg", 10, 1)
    stats = train_teacher(model, data.images, data.labels, _tiny(epochs), 0, torch.device("cpu"),
                          precision=precision, checkpoint=ckpt, data_fingerprint=data.fingerprint,
                          max_epochs_this_run=max_epochs, allow_precision_change=switch)
    return model, stats


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_interrupted_training_resumes_to_identical_weights(tmp_path):
    straight, stats = _train(None)
    assert stats["complete"] and stats["epochs_done"] == 4
    part, s1 = _train(tmp_path / "t.ckpt", max_epochs=1)
    assert not s1["complete"] and s1["epochs_done"] == 1 and (tmp_path / "t.ckpt").is_file()
    again, s2 = _train(tmp_path / "t.ckpt", max_epochs=2)
    assert s2["epochs_done"] == 3
    resumed, s3 = _train(tmp_path / "t.ckpt")
    assert s3["complete"] and [h["epoch"] for h in s3["history"]] == [1, 2, 3, 4]
    assert _same_weights(straight.state_dict(), resumed.state_dict())
    assert not _same_weights(part.state_dict(), resumed.state_dict())


def test_checkpoint_of_another_run_is_refused(tmp_path):
    _train(tmp_path / "t.ckpt", max_epochs=1)
    with pytest.raises(UserError, match="another run"):
        _train(tmp_path / "t.ckpt", max_epochs=1, epochs=5)
    (tmp_path / "bad.ckpt").write_bytes(b"\xff garbage")
    with pytest.raises(UserError, match="delete it"):
        _train(tmp_path / "bad.ckpt", max_epochs=1)


def test_precision_change_at_resume_is_refused_unless_asked_and_recorded_per_epoch(tmp_path):
    ckpt = tmp_path / "t.ckpt"
    _train(ckpt, max_epochs=1, epochs=3, precision="bf16")
    with pytest.raises(UserError, match="trained in bf16 up to epoch 1: pass --precision bf16 .* --switch-precision"):
        _train(ckpt, epochs=3, precision="fp32")
    model, stats = _train(ckpt, epochs=3, precision="fp32", switch=True)
    assert stats["complete"] and stats["precision"] == "mixed"
    assert [h["precision"] for h in stats["history"]] == ["bf16", "fp32", "fp32"]
    assert stats["precision_by_epoch"] == [{"precision": "bf16", "epochs": [1, 1]},
                                           {"precision": "fp32", "epochs": [2, 3]}]
    # the switched run is the same recipe: same data order, so it ends near (not at) the fp32-only run
    straight, _ = _train(None, epochs=3)
    assert not _same_weights(straight.state_dict(), model.state_dict())


def test_resume_in_one_precision_still_names_it_and_checkpoints_without_it_are_read(tmp_path):
    ckpt = tmp_path / "t.ckpt"
    _train(ckpt, max_epochs=1, epochs=2)
    state = torch.load(ckpt, weights_only=True)
    for entry in state["history"]:
        del entry["precision"]  # as written by the trainer before it recorded the precision per epoch
    torch.save(state, ckpt)
    _, stats = _train(ckpt, epochs=2)
    assert stats["precision"] == "fp32" and [h["precision"] for h in stats["history"]] == ["fp32", "fp32"]


def test_bf16_training_runs_and_differs_from_fp32():
    fp32, _ = _train(None, epochs=1)
    bf16, stats = _train(None, epochs=1, precision="bf16")
    assert stats["precision"] == "bf16"
    assert all(torch.isfinite(v).all() for v in bf16.state_dict().values() if v.is_floating_point())
    assert not _same_weights(fp32.state_dict(), bf16.state_dict())


def test_lr_schedule_matches_multistep_and_cosine():
    step_recipe = apply_recipe_overrides(RECIPES.get("akamaster-resnet"), {"teacher.epochs": "4",
                                                                           "teacher.milestones": "2,3"})
    assert [lr_at(step_recipe, s, 10) for s in (0, 19, 20, 29, 30, 39)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    cos = _tiny(2)
    assert lr_at(cos, 0, 10) == pytest.approx(cos.lr) and lr_at(cos, 10, 10) == pytest.approx(cos.lr / 2)


@pytest.mark.parametrize("overrides,needle", [
    ({"teacher.epochs": "0"}, "at least 1"),
    ({"teacher.lr": "-1"}, "> 0"),
    ({"teacher.bogus": "1"}, "unknown teacher setting"),
    ({"teacher.epochs": "two"}, "expected an integer"),
])
def test_bad_recipe_overrides(overrides, needle):
    with pytest.raises(UserError, match=needle):
        apply_recipe_overrides(RECIPES.get("demo"), overrides)


def _cli(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return [sys.executable, "-m", "benchmark", "teacher", *args], env


@pytest.mark.slow
def test_sigkill_then_resume_reaches_the_uninterrupted_weights(tmp_path):
    common = ["train", "--dataset", "digits", "--arch", "demo_vgg", "--set", "teacher.epochs=8",
              "--no-progress", "--json"]
    cmd, env = _cli(*common, "--out", str(tmp_path / "straight.pt"))
    subprocess.run(cmd, env=env, cwd=REPO, check=True, capture_output=True, timeout=300)
    cmd, env = _cli(*common, "--out", str(tmp_path / "killed.pt"))
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    ckpt = tmp_path / "killed.pt.ckpt"
    deadline = time.time() + 240
    while not ckpt.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "killed.pt").exists()
    out = subprocess.run(cmd, env=env, cwd=REPO, check=True, capture_output=True, text=True, timeout=300)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["complete"] and "resuming from" in out.stderr
    straight = torch.load(tmp_path / "straight.pt", weights_only=True)
    resumed = torch.load(tmp_path / "killed.pt", weights_only=True)
    assert _same_weights(straight, resumed)
    side = json.loads((tmp_path / "killed.pt.json").read_text())
    assert side["top1"] == json.loads((tmp_path / "straight.pt.json").read_text())["top1"]
    assert not ckpt.exists()
    # teacher eval reproduces the sidecar's accuracy exactly
    cmd, env = _cli("eval", "--dataset", "digits", "--arch", "demo_vgg", "--teacher", str(tmp_path / "killed.pt"),
                    "--json")
    ev = json.loads(subprocess.run(cmd, env=env, cwd=REPO, check=True, capture_output=True, text=True,
                                   timeout=300).stdout.strip().splitlines()[-1])
    assert ev["top1"] == round(side["top1"], 4)


def test_teacher_train_into_the_cache_writes_the_teacher_a_cell_trains(tmp_path, monkeypatch):
    """Without ``--out`` the command writes under the key cells look up, so it trains as a cell does (one
    thread, whatever ``OMP_NUM_THREADS`` says): the file is the one a cell would have trained itself."""
    from oefsmc.filehash import sha256_file
    from oefsmc.teacher_store import get_teacher, resolve_teacher, trained_teacher_path
    cell_cache, cli_cache = tmp_path / "cell", tmp_path / "cli"
    monkeypatch.setenv("OEFSMC_CACHE", str(cell_cache))
    ident = resolve_teacher("digits", "demo_vgg", None, device="cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        get_teacher({"teacher": ident, "dataset": "digits", "arch": "demo_vgg", "data_root": None},
                    torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    env = dict(os.environ, OEFSMC_CACHE=str(cli_cache), OMP_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "-m", "benchmark", "teacher", "train", "--dataset", "digits", "--arch",
                           "demo_vgg", "--device", "cpu", "--no-progress"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1 thread, as a cell trains it" in proc.stderr
    cell_file = trained_teacher_path(ident["key"])
    cli_file = cli_cache / cell_file.relative_to(cell_cache)
    assert sha256_file(cli_file) == sha256_file(cell_file)
