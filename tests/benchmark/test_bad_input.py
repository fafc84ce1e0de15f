"""The bad-input matrix (issues 15 and 16): every case is one line on stderr without a traceback, the
expected exit code, and nothing lost.

Each case runs the command line in this process (``benchmark.cli.main``) against temporary copies:
``--results-dir`` holds the committed ``results/cifar10-real`` records plus 32 fake demo records, and
``--out-dir`` the committed ``paper_tables/out/{demo,cifar10-real}`` tables and figures.  Before and
after, both copies and the repository's own ``results/`` and ``paper_tables/out/`` are hashed: they must
be byte-identical (a case that recomputes a corrupt record may change only that record and its
``.corrupt``).  Sweep cases use the fake pipeline (``test_sweep_fakes``) unless they test the real
pipeline's checks (teachers, data files), which all fail before any work.  A few process-level cases
(broken pipe, --help imports, run_all.sh, bugs) run in subprocesses.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
import torch

from benchmark import sweep
from benchmark.cli import main
from benchmark.grids import build_grid
from benchmark.profiles import get_profile
from benchmark.sweep import run_sweep
from oefsmc.models import build_model

import test_sweep_fakes as fake

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
REPO_TREES = (REPO / "results", REPO / "paper_tables" / "out")


# ============================================================================ trees and hashes
#: Trees under results/ that long-running developer jobs (a teacher in training, a protocol study) write
#: while tests run; no sweep writes there.
BACKGROUND_WRITERS = ("studies", "teachers")


def tree_hash(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file (and "dir" for every directory) under ``root``."""
    out = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if root.name == "results" and rel.split("/")[0] in BACKGROUND_WRITERS:
            continue
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@contextmanager
def read_only(path: Path):
    """``path`` unwritable for this process, even as root (``chattr +i``); skips where impossible."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)],
                                                        capture_output=True).returncode != 0:
        pytest.skip("running as root without chattr +i: cannot make a directory read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


# ============================================================================ the world a case runs in
@dataclass
class World:
    tmp: Path
    results: Path
    out: Path
    files: dict[str, Path]                        # name -> prepared input (teachers, data roots)
    allowed: set[str] = field(default_factory=set)  # "results/<rel>" paths a case may change
    env: dict[str, str] = field(default_factory=dict)

    def fmt(self, argv: list[str]) -> list[str]:
        subs = {"tmp": str(self.tmp), "results": str(self.results), "out": str(self.out),
                **{k: str(v) for k, v in self.files.items()}}
        return [a.format(**subs) for a in argv]

    def demo_records(self) -> list[Path]:
        return sorted((self.results / "demo").glob("*.json"))


def _save(model: torch.nn.Module, path: Path) -> Path:
    torch.save(model.state_dict(), path)
    return path


class _Evil:
    def __reduce__(self):
        return (print, ("executed!",))


def _inputs(d: Path) -> dict[str, Path]:
    """Teachers and data roots, good and bad."""
    d.mkdir()
    files = {"teacher_ok": _save(build_model("resnet32", 10, 3), d / "resnet32-cifar10.th"),
             "teacher_vgg": _save(build_model("demo_vgg", 10, 1), d / "demo_vgg-digits.th"),
             "teacher_c100": _save(build_model("resnet32", 100, 3), d / "resnet32-cifar100.th"),
             "teacher_garbage": d / "garbage.th", "teacher_evil": d / "evil.pt", "teacher_dir": d}
    files["teacher_garbage"].write_bytes(b"\xff" + os.urandom(4000))
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": _Evil()}, files["teacher_evil"])
    images = np.zeros((20, 32, 32, 3), np.uint8)
    for name, write in (("data_truncated", lambda p: p.write_bytes(_npz_bytes(images)[:300])),
                        ("data_garbage", lambda p: p.write_bytes(os.urandom(3000))),
                        ("data_no_labels", lambda p: np.savez(p, images=images))):
        root = d / name
        (root / "cifar10").mkdir(parents=True)
        write(root / "cifar10" / "train.npz")
        (root / "cifar10" / "test.npz").write_bytes(_npz_bytes(images))
        files[name] = root
    files["a_file"] = d / "a-file"
    files["a_file"].write_text("not a directory\n")
    return files


def _npz_bytes(images: np.ndarray) -> bytes:
    import io
    buf = io.BytesIO()
    np.savez(buf, images=images, labels=np.zeros(len(images), np.int64), classes=np.array(["c"] * 10))
    return buf.getvalue()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """results/ (committed cifar10-real records + 32 fake demo records) and out/ (the committed outputs)."""
    root = tmp_path_factory.mktemp("template")
    if (REPO / "results" / "cifar10-real").is_dir():  # whatever records are committed at the time
        shutil.copytree(REPO / "results" / "cifar10-real", root / "results" / "cifar10-real")
    run_sweep(build_grid(["table1"], get_profile("demo"), range(1)), results_dir=root / "results",
              runner=fake.run_config, resolver=fake.resolve_config)
    for profile in ("demo", "cifar10-real"):
        if (REPO / "paper_tables" / "out" / profile).is_dir():
            shutil.copytree(REPO / "paper_tables" / "out" / profile, root / "out" / profile)
    assert any((root / "out").rglob("*.md")), "the template needs some committed tables to protect"
    return root


@pytest.fixture
def world(template, tmp_path, monkeypatch) -> World:
    shutil.copytree(template, tmp_path / "w")
    monkeypatch.chdir(tmp_path)      # anything written to a default (relative) path lands here
    for var in ("OEFSMC_FAKE_FAIL", "OEFSMC_FAKE_MISSING", "OEFSMC_FAKE_DELAY", "OEFSMC_FAKE_MARKERS",
                "OEFSMC_PROG", "OEFSMC_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    return World(tmp_path, tmp_path / "w" / "results", tmp_path / "w" / "out", _inputs(tmp_path / "in"))


# ============================================================================ case setups
def _victim(w: World) -> Path:
    rec = w.demo_records()[3]
    w.allowed |= {f"demo/{rec.name}", f"demo/{rec.name}.corrupt"}
    return rec


def truncate_record(w: World) -> None:
    rec = _victim(w)
    rec.write_text(rec.read_text()[:100])


def binary_record(w: World) -> None:
    _victim(w).write_bytes(b"\xff\xfe\x00\x01" + os.urandom(200))


def other_cells_record(w: World) -> None:
    _victim(w).write_text(w.demo_records()[0].read_text())


def other_schema_record(w: World) -> None:
    rec = _victim(w)
    rec.write_text(json.dumps(dict(json.loads(rec.read_text()), schema_version=99)))


def binary_record_dry(w: World) -> None:
    w.demo_records()[3].write_bytes(b"\xff" + os.urandom(100))


def all_missing(w: World) -> None:
    w.env["OEFSMC_FAKE_MISSING"] = "digits"


# ============================================================================ the matrix
@dataclass
class Case:
    id: str
    argv: list[str]
    code: int
    needle: str
    setup: Optional[Callable[[World], None]] = None
    fake: bool = True                       # the fake pipeline (else the real one)
    read_only: Optional[str] = None         # "results" or "out": <dir>/demo made unwritable
    sweep: bool = True                      # prefix: sweep --results-dir --out-dir --no-progress


DEMO1 = ["--table", "1", "--seeds", "1"]
REAL1 = ["--profile", "cifar10-real", "--table", "1", "--seeds", "1"]
RUN = ["run", "--dataset", "digits", "--arch", "demo_vgg", "--num", "10", "--schedule", "demo"]
CASES = [
    # --- issue 15's table
    Case("seeds-huge", ["--table", "1", "--seeds", "10000000000"], 2, "--seeds: 10000000000 is out of range"),
    Case("record-binary-garbage", DEMO1 + ["--jobs", "1", "--no-render"], 0, "not UTF-8 text", binary_record),
    Case("record-binary-garbage-dry-run", DEMO1 + ["--dry-run"], 0, "a real run sets it aside", binary_record_dry),
    Case("data-truncated", REAL1 + ["--data-root", "{data_truncated}", "--teacher", "{teacher_ok}", "--dry-run"], 2,
         "corrupt data file", fake=False),
    Case("data-truncated-real-run", REAL1 + ["--data-root", "{data_truncated}", "--teacher", "{teacher_ok}"], 2,
         "re-download with --download", fake=False),
    Case("data-garbage", REAL1 + ["--data-root", "{data_garbage}", "--teacher", "{teacher_ok}"], 2,
         "check its md5 against the data README", fake=False),
    Case("data-without-labels", REAL1 + ["--data-root", "{data_no_labels}", "--teacher", "{teacher_ok}"], 2,
         "it has no labels / classes array", fake=False),
    Case("out-dir-read-only", DEMO1, 2, "--out-dir: cannot write in", read_only="out"),
    Case("out-dir-is-a-file", DEMO1 + ["--out-dir", "{a_file}"], 2, "is a file"),
    Case("results-dir-read-only", DEMO1, 2, "--results-dir: cannot write in", read_only="results"),
    Case("results-dir-read-only-dry-run", DEMO1 + ["--dry-run"], 2, "--results-dir: cannot write in",
         read_only="results"),
    Case("results-dir-is-a-file", DEMO1 + ["--results-dir", "{a_file}"], 2, "is a file"),
    # --- what already worked
    Case("unknown-flag", DEMO1 + ["--bogus"], 2, "unrecognized arguments: --bogus"),
    Case("unknown-table", ["--table", "3"], 2, "invalid choice: '3'"),
    Case("unknown-figure", ["--figure", "3e"], 2, "invalid choice: '3e'"),
    Case("unknown-profile", DEMO1 + ["--profile", "huge"], 2, "invalid choice: 'huge'"),
    Case("unknown-backend", DEMO1 + ["--backend", "ray", "--dry-run"], 2, "unknown --backend 'ray'"),
    Case("no-artifact", ["--seeds", "1"], 2, "nothing to run"),
    Case("seeds-zero", ["--table", "1", "--seeds", "0"], 2, "--seeds: 0 is out of range"),
    Case("seeds-negative", ["--table", "1", "--seeds", "-2"], 2, "--seeds: -2 is out of range"),
    Case("jobs-zero", DEMO1 + ["--jobs", "0"], 2, "--jobs: 0 is out of range"),
    Case("jobs-negative", DEMO1 + ["--jobs", "-4"], 2, "--jobs: -4 is out of range"),
    Case("jobs-not-a-number", DEMO1 + ["--jobs", "many"], 2, "'many' is not an integer"),
    Case("teacher-missing", REAL1 + ["--teacher", "/nonexistent/t.th"], 2, "/nonexistent/t.th does not exist",
         fake=False),
    Case("data-root-missing", DEMO1 + ["--data-root", "{tmp}/nope", "--dry-run"], 2, "does not exist"),
    Case("record-truncated", DEMO1 + ["--jobs", "1", "--no-render"], 0, "truncated or invalid JSON", truncate_record),
    Case("record-of-another-cell", DEMO1 + ["--jobs", "1", "--no-render"], 0, "does not match the file name",
         other_cells_record),
    Case("record-of-another-schema", DEMO1 + ["--jobs", "1", "--no-render"], 0, "schema version 99",
         other_schema_record),
    # --- issue 16
    Case("teacher-garbage", REAL1 + ["--teacher", "{teacher_garbage}"], 2, "not a readable torch checkpoint",
         fake=False),
    Case("teacher-pickled-code", REAL1 + ["--teacher", "{teacher_evil}", "--dry-run"], 2, "refusing to load",
         fake=False),
    Case("teacher-of-another-arch", REAL1 + ["--teacher", "{teacher_vgg}"], 2, "does not fit --arch resnet32",
         fake=False),
    Case("teacher-of-another-dataset", REAL1 + ["--teacher", "{teacher_c100}", "--dry-run"], 2, "size mismatch",
         fake=False),
    Case("teacher-is-a-directory", REAL1 + ["--teacher", "{teacher_dir}"], 2, "is a directory, not a checkpoint",
         fake=False),
    Case("teacher-for-a-dataset-not-run", REAL1 + ["--teacher", "svhn={teacher_ok}", "--dry-run"], 2,
         "runs no svhn cells"),
    Case("render-only-and-dry-run", DEMO1 + ["--render-only", "--dry-run"], 2, "--render-only and --dry-run"),
    Case("render-only-and-force", DEMO1 + ["--render-only", "--force"], 2, "--render-only and --force"),
    Case("jobs-above-the-cores", DEMO1 + ["--jobs", "999", "--dry-run"], 0, "warning: --jobs 999 is more than"),
    Case("all-skipped-dry-run", DEMO1 + ["--dry-run"], 1, "skipped CIFAR-10/VGG-16 Num 10", all_missing),
    Case("all-skipped-real-run", DEMO1, 1, "skipped CIFAR-10/VGG-16 Num 10", all_missing),
    Case("poorer-table-kept", DEMO1 + ["--jobs", "1"], 0, "table1.md: 96 runs support it, these records only 32"),
    # --- the other entry points
    Case("run-set-fskd-batch-size-0", RUN + ["--method", "fskd", "--set", "fskd.batch_size=0"], 2,
         "fskd.batch_size=0: must be in [1, 65536]", fake=False, sweep=False),
    Case("run-set-oe-lambda-negative", RUN + ["--method", "mir", "--oe", "full", "--set", "oe.lambda=-1"], 2,
         "oe.lambda=-1: must be in [0, 1]", fake=False, sweep=False),
    Case("run-set-oe-eta-negative", RUN + ["--method", "mir", "--oe", "full", "--set", "oe.eta=-100"], 2,
         "oe.eta=-100: must be in [0, 1000]", fake=False, sweep=False),
    Case("run-set-cd-target-ratio-5", RUN + ["--method", "cd", "--set", "cd.target_ratio=5"], 2,
         "cd.target_ratio=5: must be in (0, 1]", fake=False, sweep=False),
    Case("run-seed-negative", RUN + ["--method", "cd", "--seed", "-1"], 2, "--seed: -1 is out of range",
         fake=False, sweep=False),
    Case("fewshot-num-zero", ["fewshot", "--dataset", "digits", "--num", "0"], 2, "--num: 0 is out of range",
         fake=False, sweep=False),
    Case("fewshot-ratio-nan", ["fewshot", "--dataset", "digits", "--num", "10", "--imbalance-ratio", "nan"], 2,
         "--imbalance-ratio: nan is out of range", fake=False, sweep=False),
    Case("fewshot-corrupt-data", ["fewshot", "--dataset", "cifar10", "--num", "10", "--data-root", "{data_garbage}"],
         2, "corrupt data file", fake=False, sweep=False),
    Case("teacher-eval-directory", ["teacher", "eval", "--dataset", "digits", "--arch", "demo_vgg", "--teacher",
                                    "{teacher_dir}"], 2, "is a directory", fake=False, sweep=False),
    Case("teacher-train-zero-epochs", ["teacher", "train", "--dataset", "digits", "--arch", "demo_vgg",
                                       "--max-epochs", "0"], 2, "--max-epochs 0: must be at least 1",
         fake=False, sweep=False),
    Case("teacher-train-out-is-a-directory", ["teacher", "train", "--dataset", "digits", "--arch", "demo_vgg",
                                              "--out", "{teacher_dir}"], 2, "is a directory", fake=False, sweep=False),
    Case("teacher-train-out-under-a-file", ["teacher", "train", "--dataset", "digits", "--arch", "demo_vgg",
                                            "--out", "{a_file}/t.pt"], 2, "--out: ", fake=False, sweep=False),
    Case("unknown-command", ["bogus"], 2, "invalid choice: 'bogus'", fake=False, sweep=False),
]


def _argv(case: Case, w: World) -> list[str]:
    prefix = ["sweep", "--results-dir", "{results}", "--out-dir", "{out}", "--no-progress"] if case.sweep else []
    argv = prefix + case.argv
    for flag in ("--results-dir", "--out-dir"):     # a case's own --results-dir / --out-dir wins
        if argv.count(flag) > 1:
            i = argv.index(flag)
            del argv[i:i + 2]
    return w.fmt(argv)


def _run_case(case: Case, w: World, monkeypatch, capsys) -> tuple[int, str]:
    if case.fake:
        monkeypatch.setenv(sweep.FAKE_PIPELINE_ENV, "test_sweep_fakes")
    else:
        monkeypatch.delenv(sweep.FAKE_PIPELINE_ENV, raising=False)
    for k, v in w.env.items():
        monkeypatch.setenv(k, v)
    capsys.readouterr()
    if case.read_only:
        with read_only((w.results if case.read_only == "results" else w.out) / "demo"):
            code = main(_argv(case, w))
    else:
        code = main(_argv(case, w))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, world, monkeypatch, capsys):
    if case.setup:
        case.setup(world)
    repo_before = [tree_hash(t) for t in REPO_TREES]
    results_before, out_before = tree_hash(world.results), tree_hash(world.out)
    code, err = _run_case(case, world, monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == case.code, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert case.needle in lines[0], err
    assert [tree_hash(t) for t in REPO_TREES] == repo_before                  # the repository: untouched
    assert tree_hash(world.out) == out_before                                 # no table or figure replaced
    results_after = tree_hash(world.results)
    changed = {k for k in set(results_before) | set(results_after) if results_before.get(k) != results_after.get(k)}
    assert changed <= world.allowed, sorted(changed - world.allowed)
    for rel in world.allowed:                                                  # a corrupt record: recomputed,
        if rel.endswith(".json"):                                              # the bad one set aside
            rec = json.loads((world.results / rel).read_text())
            assert rec["status"] == "ok" and (world.results / (rel + ".corrupt")).is_file()


# ============================================================================ not one line: a failed sweep
def test_a_sweep_whose_cells_all_fail_leaves_the_tables_byte_identical(world, monkeypatch, capsys):
    monkeypatch.setenv(sweep.FAKE_PIPELINE_ENV, "test_sweep_fakes")
    monkeypatch.setenv("OEFSMC_FAKE_FAIL", "cd,fskd,mir,practise")
    out_before = tree_hash(world.out)
    code = main(_argv(Case("x", DEMO1 + ["--jobs", "1", "--force"], 1, ""), world))
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    assert "nothing rendered" in captured.out and "failed" in captured.err
    assert tree_hash(world.out) == out_before


def test_dry_run_and_real_run_agree_on_the_exit_code(world, monkeypatch, capsys):
    monkeypatch.setenv(sweep.FAKE_PIPELINE_ENV, "test_sweep_fakes")
    situations = {"ok": ({}, 0), "all skipped": ({"OEFSMC_FAKE_MISSING": "digits"}, 1)}
    for name, (env, expected) in situations.items():
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        args = _argv(Case("x", DEMO1 + ["--jobs", "1", "--no-render"], 0, ""), world)
        assert (main(args + ["--dry-run"]), main(args)) == (expected, expected), name
        for k in env:
            monkeypatch.delenv(k)


def test_a_bug_is_one_line_naming_its_log_and_debug_shows_the_traceback(world, monkeypatch, capsys, tmp_path):
    (tmp_path / "buggy_pipeline.py").write_text(
        "from test_sweep_fakes import resolve_config, run_config\n"
        "def check_teacher(dataset, arch, path):\n    raise ZeroDivisionError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(sweep.FAKE_PIPELINE_ENV, "buggy_pipeline")
    monkeypatch.setenv("OEFSMC_LOG_DIR", str(tmp_path / "logs"))
    args = _argv(Case("x", REAL1 + ["--teacher", "{teacher_ok}", "--dry-run"], 1, ""), world)
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error (ZeroDivisionError: boom)" in err[0] and "--debug" in err[0]
    log = next((tmp_path / "logs").iterdir())
    assert log.name in err[0] and "Traceback" in log.read_text()
    with pytest.raises(ZeroDivisionError):
        main(args + ["--debug"])


def test_an_os_error_about_a_file_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    from benchmark.cli import guarded
    monkeypatch.setenv("OEFSMC_LOG_DIR", str(tmp_path))

    def disk_full() -> int:
        raise OSError(28, "No space left on device", str(tmp_path / "x.json"))
    assert guarded(disk_full) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: No space left on device: ") and "Traceback" not in err[0]


# ============================================================================ processes
def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", **extra)
    env.pop("OEFSMC_PROG", None)
    return env


def test_dry_run_into_a_closed_pipe_ends_quietly(tmp_path):
    # 20 seeds: about 210 KB of listing, more than a pipe holds (64 KiB on Linux) plus what readline takes,
    # so the child is still writing when the read end closes and always meets the broken pipe (with the
    # default 3 seeds, 32 KB could fit in the pipe before the close, and the child then exited 0)
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", "sweep", "--table", "2", "--dry-run",
                             "--seeds", "20",
                             "--results-dir", str(tmp_path / "r"), "--out-dir", str(tmp_path / "o")],
                            cwd=tmp_path, env=_env(OEFSMC_FAKE_PIPELINE="test_sweep_fakes"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"key")
    proc.stdout.close()                                                       # like `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == "", err


@pytest.mark.parametrize("argv", [["--help"], ["sweep", "--help"], ["run", "--help"], ["fewshot", "--help"],
                                  ["params", "--help"], ["teacher", "--help"], ["perf", "--help"]])
def test_help_imports_no_torch(argv, tmp_path):
    code = ("import sys\nfrom benchmark.cli import main\ncode = main(sys.argv[1:])\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', code)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "NO-TORCH 0", proc.stdout + proc.stderr
    assert "usage:" in proc.stdout and proc.stderr == ""


def test_every_flag_has_help_and_every_subcommand_its_listed_help():
    import argparse
    from benchmark.cli import COMMANDS, SUBCOMMANDS, build_parser
    for name, (_module, listed) in SUBCOMMANDS.items():
        parser = build_parser(name)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        assert COMMANDS[name][2] == listed, name
        assert [a.dest for a in sub._actions if a.help is None] == [], name


@pytest.fixture
def run_all_copy(tmp_path) -> Path:
    """run_all.sh beside a stand-in .venv whose python is this interpreter, installed stamp in place."""
    if shutil.which("bash") is None or shutil.which("sha256sum") is None:
        pytest.skip("needs bash and sha256sum")
    for name in ("run_all.sh", "setup.cfg", "pyproject.toml", "constraints.txt"):
        shutil.copy(REPO / name, tmp_path / name)
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} \"$@\"\n")
    (venv / "python").chmod(0o755)
    stamp = subprocess.run("cat setup.cfg pyproject.toml constraints.txt | sha256sum | cut -c1-16", shell=True,
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / ".venv" / ".oefsmc-installed-base").write_text(stamp + "\n")
    return tmp_path / "run_all.sh"


def test_run_all_help_lists_test_and_setup_only_and_errors_name_run_all(run_all_copy):
    env = _env()
    helped = subprocess.run([str(run_all_copy), "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert helped.returncode == 0 and "--test" in helped.stdout and "--setup-only" in helped.stdout
    assert "usage: ./run_all.sh [-h] [--table" in helped.stdout and "--render-only" in helped.stdout
    bad = subprocess.run([str(run_all_copy), "--table", "3"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("./run_all.sh: error: argument --table")
    assert len(bad.stderr.strip().splitlines()) == 1 and "python -m benchmark" not in bad.stderr


def test_a_missing_default_teacher_says_how_to_obtain_it(tmp_path):
    """The profile's hint is added for its own default path only: a path the user gave gets no hint that
    would name another file."""
    from benchmark.preflight import check_teachers
    from oefsmc.errors import UserError
    from oefsmc.models.teacher import check_checkpoint_path
    default, given = tmp_path / "default.pt", tmp_path / "given.pt"
    hints = {str(default): "train it with `teacher train`"}
    check = lambda dataset, arch, path: check_checkpoint_path(Path(path))  # noqa: E731
    with pytest.raises(UserError, match=r"default\.pt does not exist: .*; train it with `teacher train`$"):
        check_teachers([{"dataset": "cifar100", "arch": "resnet32", "teacher": str(default)}], check, hints)
    with pytest.raises(UserError) as err:
        check_teachers([{"dataset": "cifar100", "arch": "resnet32", "teacher": str(given)}], check, hints)
    assert "teacher train" not in str(err.value)
    profile = get_profile("cifar100-real")
    assert "teacher train" in profile.teacher_hints[profile.teachers["cifar100"]]
