"""A fake pipeline for the sweep tests (resolve_config / run_config), plus tests of the fake itself.

The sweep subprocesses import this module through the test-only hook ``OEFSMC_FAKE_PIPELINE`` (with
``tests/benchmark`` on PYTHONPATH).  Knobs, read from the environment at call time:

* ``OEFSMC_FAKE_DELAY``    seconds each run sleeps (default 0)
* ``OEFSMC_FAKE_MARKERS``  directory: every run start writes a marker file named by the config hash
* ``OEFSMC_FAKE_MISSING``  comma-separated run datasets whose "data is missing" (resolve raises UserError)
* ``OEFSMC_FAKE_FAIL``     comma-separated methods whose runs raise
* ``OEFSMC_FAKE_GATE``     a path: every run (after writing its marker) waits until it exists (at most 120 s),
  so a test can hold cells in flight and release them when it likes
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import uuid

from oefsmc.errors import UserError

DEFAULTS = {"oe.lambda": 0.5, "oe.eta": 2.5}
EXPERIMENT_FIELDS = ("dataset", "arch", "num", "balanced", "imbalance_ratio", "method", "oe", "seed",
                     "schedule", "hp", "ood")


def _env_list(name: str) -> list[str]:
    return [x for x in os.environ.get(name, "").split(",") if x]


def config_hash(resolved: dict) -> str:
    core = {k: resolved[k] for k in EXPERIMENT_FIELDS}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:16]


class NotApplicable(UserError):
    """Like the pipeline's: the method does not apply to the architecture."""


def resolve_config(cell: dict) -> dict:
    """Like the pipeline's: the cell plus resolved hyperparameters and identities; UserError on bad input."""
    if cell["method"] == "nope2":
        raise NotApplicable("nope2 does not apply to this architecture")
    if cell["dataset"] in _env_list("OEFSMC_FAKE_MISSING"):
        raise UserError(f"no {cell['dataset']} data under --data-root; pass --data-root DIR")
    hp = dict(DEFAULTS, **{"oe.aux_size": cell["num"]})
    for name, raw in cell.get("overrides", {}).items():
        if name not in hp:
            raise UserError(f"unknown parameter {name!r}")
        hp[name] = int(raw) if name == "oe.aux_size" else float(raw)
    return dict(cell, hp=hp, teacher_identity=f"fake-teacher:{cell['dataset']}/{cell['arch']}",
                data_identity=f"fake:{cell['dataset']}", ood_identity=f"fake:{cell['ood']}")


def run_config(resolved: dict) -> dict:
    """Deterministic metrics from the config (not from time or process), after an optional delay."""
    h = config_hash(resolved)
    markers = os.environ.get("OEFSMC_FAKE_MARKERS")
    if markers:
        os.makedirs(markers, exist_ok=True)
        open(os.path.join(markers, f"{h}.{os.getpid()}.{uuid.uuid4().hex[:8]}"), "w").close()
    t0 = time.time()
    gate = os.environ.get("OEFSMC_FAKE_GATE")
    while gate and not os.path.exists(gate) and time.time() - t0 < 120:
        time.sleep(0.02)
    time.sleep(float(os.environ.get("OEFSMC_FAKE_DELAY", "0")))
    if resolved["method"] in _env_list("OEFSMC_FAKE_FAIL"):
        raise RuntimeError(f"fake failure of {resolved['method']}")
    top1 = 40.0 + int(h[:6], 16) % 5000 / 100.0
    return {
        "config": resolved, "seed": resolved["seed"],
        "metrics": {"top1": top1, "top1_pruned": top1 - 10.0, "teacher_top1": 95.0,
                    "per_class": [top1] * 10, "head": top1 + 1, "medium": top1, "tail": top1 - 1},
        "model": {"params": 1000 + int(h[6:9], 16), "macs": 20000},
        "timings": {"total_s": time.time() - t0},
        "stats": {"hash": h},
        "env": {"pid": os.getpid(), "device": "cpu"},
    }


def check_teacher(dataset: str, arch: str, path: str) -> None:
    """Like the pipeline's: the checkpoint must exist; one whose bytes start with b"garbage" is unreadable."""
    if not os.path.isfile(path):
        raise UserError(f"--teacher {path} does not exist: pass the path of a teacher checkpoint")
    with open(path, "rb") as fh:
        if fh.read(7) == b"garbage":
            raise UserError(f"--teacher {path} is not a readable torch checkpoint (fake)")


def not_applicable_reason(cell: dict):
    """Everything applies, except the test-only method ``nope``."""
    return "nope does not apply here" if cell["method"] == "nope" else None


# ---------------------------------------------------------------------------- tests of the fake
def test_fake_is_deterministic_and_uses_overrides():
    cell = {"dataset": "digits", "arch": "demo_vgg", "num": 10, "balanced": False, "imbalance_ratio": 100.0,
            "method": "mir", "oe": "full", "seed": 0, "schedule": "demo", "overrides": {}, "data_root": None,
            "teacher": None, "ood": "demo-patches", "device": "cpu"}
    a = run_config(resolve_config(cell))["metrics"]["top1"]
    assert a == run_config(resolve_config(dict(cell)))["metrics"]["top1"]
    b = run_config(resolve_config(dict(cell, overrides={"oe.lambda": "0.2"})))["metrics"]["top1"]
    assert a != b
    assert resolve_config(dict(cell, overrides={"oe.lambda": "0.5"}))["hp"] == resolve_config(cell)["hp"]
