"""What a record says about the code that computed it (oefsmc/envinfo.py)."""
import subprocess

import pytest
import torch

from oefsmc import envinfo


def _git(repo, *args):
    subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    (tmp_path / "results" / "teachers").mkdir(parents=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "teachers" / "t.ckpt").write_text("epoch 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "init")
    monkeypatch.setattr(envinfo, "REPO", tmp_path)
    return tmp_path


def test_an_output_written_during_a_sweep_does_not_make_the_code_dirty(repo):
    (repo / "results" / "teachers" / "t.ckpt").write_text("epoch 2\n")  # a teacher checkpoint moving on
    state = envinfo.git_state.__wrapped__()
    assert state["dirty"] is False and len(state["commit"]) == 40


def test_a_changed_source_file_makes_the_code_dirty(repo):
    (repo / "code.py").write_text("x = 2\n")
    assert envinfo.git_state.__wrapped__()["dirty"] is True


def test_the_environment_names_the_cpu_capability(monkeypatch):
    assert envinfo.environment(torch.device("cpu"))["cpu_capability"]  # this machine's, e.g. AVX2
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "SENTINEL_ISA")
    assert envinfo.environment(torch.device("cpu"))["cpu_capability"] == "SENTINEL_ISA"
