"""Typed cells and resolved configs (oefsmc/config.py), the pipeline's named stages, the plug-in boundary
(the core never imports ``baselines``), and the shared helpers (one JSON converter, atomic streamed writes)."""
from __future__ import annotations

import ast
import dataclasses
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.cache import canonical_json, cell_key
from benchmark.grids import build_grid
from benchmark.profiles import get_profile
from oefsmc.atomic import atomic_write_stream
from oefsmc.config import CELL_KEYS, Cell, FrozenDict, ResolvedConfig
from oefsmc.errors import UserError
from oefsmc.jsonable import json_default, json_default_lenient, to_jsonable
from oefsmc.pipeline import STAGES, resolve_cell, resolve_config, run_config

REPO = Path(__file__).resolve().parents[2]
CELL = {"dataset": "digits", "arch": "demo_vgg", "num": 20, "balanced": False, "imbalance_ratio": 100.0,
        "method": "fskd", "oe": "full", "seed": 1, "schedule": "demo", "device": "cpu",
        "overrides": {"finetune.max_iters": "10", "finetune.patience": "10"}}
STAGE_NAMES = ("data", "teacher", "auxiliary", "compress", "finetune", "evaluate", "measure")


def _demo_cells(n_per_artifact: int = 6) -> list[dict]:
    """A spread of the demo profile's grid cells (every artifact, every variant and method)."""
    profile = get_profile("demo")
    out = []
    for artifact in ("table1", "table2", "fig3a", "fig3b", "fig3c", "fig3d"):
        entries = build_grid([artifact], profile, [0, 1])
        step = max(1, len(entries) // n_per_artifact)
        out += [e.cell for e in entries[::step]]
    return out


# ----------------------------------------------------------------------------------------------- Cell
def test_cell_round_trip_keeps_grid_cells_key_for_key_in_order():
    for cell in _demo_cells():
        typed = Cell.from_dict(cell)
        assert typed.to_dict() == cell and list(typed.to_dict()) == list(cell) == list(CELL_KEYS)
        assert Cell.from_dict(typed.to_dict()) == typed
        assert pickle.loads(pickle.dumps(typed)) == typed and hash(typed) == hash(Cell.from_dict(cell))


def test_cell_defaults_extras_and_unknown_keys():
    typed = Cell.from_dict({"dataset": "digits", "arch": "demo_vgg", "num": 20, "method": "cd"})
    assert (typed.oe, typed.seed, typed.schedule, typed.device, dict(typed.overrides)) == ("none", 0, "official",
                                                                                          "auto", {})
    assert "eval_precision" not in typed.to_dict()
    assert typed.replace(eval_precision="fp32").to_dict()["eval_precision"] == "fp32"
    with pytest.raises(UserError, match="unknown cell field"):
        Cell.from_dict(dict(CELL, sede=3))
    assert Cell.from_dict(dict(CELL, sede=3), strict=False) == Cell.from_dict(CELL)
    assert resolve_config(dict(CELL, sede=3)) == resolve_config(CELL)  # the dict path ignores them, as before
    with pytest.raises(UserError, match="without num"):
        Cell.from_dict({"dataset": "digits", "arch": "demo_vgg", "method": "cd"})


def test_cell_and_resolved_config_are_frozen():
    typed = Cell.from_dict(CELL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        typed.seed = 2
    with pytest.raises(TypeError):
        typed.overrides["mir.iters"] = "5"
    cfg = resolve_cell(typed)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 2
    with pytest.raises(TypeError):
        cfg["seed"] = 2
    hp = cfg.hp
    hp["fskd"]["anything"] = 1  # reads are plain copies: changing one cannot change the config
    cfg.to_dict()["hp"].clear()
    assert "anything" not in cfg.hp["fskd"] and cfg.hp and cfg == resolve_config(CELL)
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    with pytest.raises(AttributeError):
        FrozenDict({"a": 1})._items = {}


# -------------------------------------------------------------------------------------- ResolvedConfig
def test_resolved_config_to_dict_is_resolve_config_byte_for_byte():
    cells = _demo_cells()
    assert len({c["oe"] for c in cells}) >= 4 and len({c["method"] for c in cells}) == 4
    for cell in cells:
        plain = resolve_config(cell)
        cfg = resolve_cell(Cell.from_dict(cell))
        assert cfg.to_dict() == plain and list(cfg.to_dict()) == list(plain)
        assert json.dumps(cfg.to_dict()) == json.dumps(plain)  # same order, same types (lists stay lists)
        assert canonical_json(cfg.to_dict()) == canonical_json(plain) and cell_key(cfg.to_dict()) == cell_key(plain)
        assert ResolvedConfig.from_dict(plain) == cfg and ResolvedConfig.from_dict(cfg) is cfg
        assert (cfg.method, cfg.oe, cfg.num, cfg.seed, cfg.hp, cfg.teacher) == (
            plain["method"], plain["oe"], plain["num"], plain["seed"], plain["hp"], plain["teacher"])
        assert cfg["hp"] == plain["hp"] and dict(cfg) == plain  # still reads like the dict


def test_resolved_config_keeps_tuples_and_lists_apart():
    cfg = ResolvedConfig.from_dict({"a": [1, (2, 3)], "b": {"c": (4,)}})
    assert cfg.to_dict() == {"a": [1, (2, 3)], "b": {"c": (4,)}}
    assert type(cfg.to_dict()["a"]) is list and type(cfg.to_dict()["a"][1]) is tuple


# --------------------------------------------------------------------------------------------- stages
def _numbers(record: dict):
    """A record without its clocks and machine description: every number that must not change."""
    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if not k.endswith(("seconds", "_s"))}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj
    return strip({k: v for k, v in record.items() if k not in ("timings", "env")})


def test_stages_are_named_timed_and_the_numbers_do_not_depend_on_the_config_form(monkeypatch):
    monkeypatch.setenv("OEFSMC_COMPRESSED_CACHE", "0")  # both runs compute (no reuse flag difference)
    assert tuple(s.name for s in STAGES) == STAGE_NAMES
    plain = run_config(resolve_config(CELL))
    typed = run_config(resolve_cell(Cell.from_dict(CELL)))
    assert _numbers(plain) == _numbers(typed)
    assert plain["config"] == resolve_config(CELL) and type(plain["config"]) is dict
    json.dumps(typed, allow_nan=False, default=json_default)  # the record is plain JSON
    timings = typed["timings"]
    assert tuple(timings["stages"]) == STAGE_NAMES and all(v >= 0 for v in timings["stages"].values())
    assert list(timings)[:2] == ["data_teacher_s", "compression_stage_s"] and list(timings)[-2:] == ["total_s",
                                                                                                    "stages"]
    assert {"prune_s", "compress_s", "finetune_s", "eval_s"} <= set(timings)
    assert sum(timings["stages"].values()) <= timings["total_s"] + 1e-6


def test_stage_timings_are_not_in_the_key():
    from benchmark.cache import key_material
    assert "timings" not in json.dumps(key_material(resolve_config(CELL)))


def test_load_teacher_needs_no_cell():
    from oefsmc.teacher_store import get_teacher, load_teacher, resolve_teacher
    ident = resolve_teacher("digits", "demo_vgg", None)
    assert ident == resolve_config(CELL)["teacher"]
    teacher = load_teacher(ident, "digits", "demo_vgg", None, torch.device("cpu"))
    assert teacher is get_teacher(resolve_config(CELL), torch.device("cpu"))


def _teacher_file(tmp_path) -> Path:
    from oefsmc.teacher_store import get_teacher
    path = tmp_path / "teacher.pt"
    torch.save({"state_dict": get_teacher(resolve_config(CELL), torch.device("cpu")).model.state_dict()}, path)
    return path


def test_a_teacher_file_replaced_after_planning_is_refused(tmp_path):
    path = _teacher_file(tmp_path)
    resolved = resolve_config(dict(CELL, teacher=str(path)))
    state = torch.load(path, weights_only=True)
    state["state_dict"] = {k: v + 1 if v.is_floating_point() else v for k, v in state["state_dict"].items()}
    torch.save(state, path)                                        # e.g. a teacher still training, rewritten
    with pytest.raises(UserError, match="teacher.pt is not what the sweep was planned with"):
        run_config(resolved)


def test_data_changed_after_planning_is_refused():
    resolved = resolve_config(CELL)
    resolved["data"]["test"]["fingerprint"] = "0" * 16
    with pytest.raises(UserError, match="digits test data is not what the sweep was planned with"):
        run_config(resolved)
    assert resolve_config(CELL)["data"]["test"]["fingerprint"] != "0" * 16   # the edit did not reach the cache


def test_the_teacher_cache_of_a_process_keeps_normalisations_apart(tmp_path):
    from oefsmc.teacher_store import load_teacher, resolve_teacher
    path = _teacher_file(tmp_path)
    loaded = {norm: load_teacher(resolve_teacher("digits", "demo_vgg", None, str(path), norm), "digits", "demo_vgg",
                                 None, torch.device("cpu")) for norm in ("none", "imagenet")}
    assert {norm: t.normalization for norm, t in loaded.items()} == {"none": "none", "imagenet": "imagenet"}


# ------------------------------------------------------------------------------------------- plug-ins
def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            names.add(str(node.args[0].value))
    return names


def test_the_core_never_imports_its_plug_ins_or_entry_points():
    files = sorted((REPO / "oefsmc").rglob("*.py"))
    assert len(files) > 20
    for path in files:
        upward = {n for n in _imports(path) if n.split(".")[0] in ("baselines", "benchmark", "paper_tables")}
        assert not upward, f"{path.relative_to(REPO)} imports {sorted(upward)}"


def test_pipeline_alone_registers_no_methods_and_says_how_to():
    code = ("import sys, oefsmc.pipeline as p\n"
            "assert 'baselines' not in sys.modules\n"
            "try:\n    p.resolve_config({'dataset': 'digits', 'arch': 'demo_vgg', 'num': 20, 'method': 'cd'})\n"
            "except p.UserError as e:\n    print(e)\n"
            "from benchmark.plugins import load_plugins\nload_plugins(); load_plugins()\n"
            "print(sorted(p.METHODS.names()))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False, env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    first, second = proc.stdout.strip().splitlines()
    assert first == "no methods registered: call benchmark.plugins.load_plugins() (or import baselines)"
    assert second == str(["cd", "fskd", "mir", "practise"])


# ---------------------------------------------------------------------------------------------- helpers
def test_one_json_converter():
    obj = {"a": np.float32(0.5), "b": np.arange(3), "p": Path("/x/y"), "s": {3, 1}, "t": (1, 2),
           "g": torch.tensor([1.5])}
    assert json.dumps(obj, default=json_default) == '{"a": 0.5, "b": [0, 1, 2], "p": "/x/y", "s": [1, 3], ' \
                                                    '"t": [1, 2], "g": [1.5]}'
    with pytest.raises(TypeError, match="not JSON serialisable"):
        json.dumps({"o": object()}, default=json_default)
    assert json.dumps({"o": 1j, "p": Path("/x")}, default=json_default_lenient) == '{"o": "1j", "p": "/x"}'
    assert to_jsonable({1: float("nan"), "t": (np.int64(2), torch.tensor([np.inf])), "b": np.bool_(True),
                        "f": np.float64(0.25)}) == {"1": None, "t": [2, [None]], "b": "True", "f": 0.25}


def test_atomic_write_stream(tmp_path):
    target = tmp_path / "sub" / "arrays.npz"
    with atomic_write_stream(target) as fh:
        np.savez(fh, x=np.arange(4))
    with np.load(target) as z:
        assert z["x"].tolist() == [0, 1, 2, 3]
    with pytest.raises(RuntimeError), atomic_write_stream(target) as fh:
        fh.write(b"half")
        raise RuntimeError("killed mid-write")
    with np.load(target) as z:  # the old file is untouched, and no temp file is left behind
        assert z["x"].tolist() == [0, 1, 2, 3]
    assert sorted(p.name for p in target.parent.iterdir()) == ["arrays.npz"]
