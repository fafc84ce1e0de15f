"""The result cache: keys, atomic writes, validation, and recomputation of bad records."""
from __future__ import annotations

import json
import os
import stat

import pytest

from benchmark import cache as cache_mod
from benchmark.cache import ResultCache, canonical_json, cell_key, validate_record
from benchmark.grids import build_grid
from benchmark.profiles import get_profile
from benchmark.sweep import run_sweep

import test_sweep_fakes as fake

RESOLVED = {
    "dataset": "cifar10", "arch": "resnet32", "num": 50, "method": "mir", "oe": "full", "seed": 0,
    "hp": {"mir": {"iters": 100}, "oe": {"lambda": 0.5}}, "data_root": "/a/data",
    "data": {"train": {"source": "npz:/a/data/cifar10/train.npz", "fingerprint": "f1"},
             "test": {"source": "npz:/a/data/cifar10/test.npz", "fingerprint": "f2"}},
    "teacher": {"kind": "file", "path": "/a/t.th", "sha256": "abc"}, "ood": {"identity": "cifar100:f3"},
}


def _with(obj, path, value):
    obj = json.loads(json.dumps(obj))
    node = obj
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return obj


def test_key_is_a_hash_of_identities_not_locations():
    k = cell_key(RESOLVED)
    assert len(k) == 20 and int(k, 16) >= 0
    assert cell_key(json.loads(json.dumps(RESOLVED))) == k                     # deterministic
    assert cell_key(dict(reversed(list(RESOLVED.items())))) == k              # order-free
    # locations may move: same key
    assert cell_key(_with(RESOLVED, ["data_root"], "/b")) == k
    assert cell_key(_with(RESOLVED, ["teacher", "path"], "/b/t.th")) == k
    assert cell_key(_with(RESOLVED, ["data", "train", "source"], "torchvision:/b")) == k
    # identities and hyperparameters may not
    assert cell_key(_with(RESOLVED, ["teacher", "sha256"], "abd")) != k
    assert cell_key(_with(RESOLVED, ["data", "train", "fingerprint"], "g")) != k
    assert cell_key(_with(RESOLVED, ["ood", "identity"], "svhn")) != k
    assert cell_key(_with(RESOLVED, ["hp", "oe", "lambda"], 0.4)) != k
    assert cell_key(_with(RESOLVED, ["seed"], 1)) != k


def test_an_ood_file_at_another_path_keeps_the_key_its_kind_and_content_do_not():
    spec = _with(_with(RESOLVED, ["hp", "oe", "ood"], "random300k:/a/300K.npy"),
                 ["ood"], {"source": "random300k:/a/300K.npy", "identity": "random300k:sha256-1"})
    k = cell_key(spec)
    moved = _with(_with(spec, ["hp", "oe", "ood"], "random300k:/b/x.npy"), ["ood", "source"], "random300k:/b/x.npy")
    assert cell_key(moved) == k
    assert cell_key(_with(spec, ["ood", "identity"], "random300k:sha256-2")) != k         # other content
    assert cell_key(_with(spec, ["hp", "oe", "ood"], "npz:/a/300K.npy")) != k             # other kind
    plain = _with(RESOLVED, ["hp", "oe", "ood"], "cifar100")                             # no path: as it was
    assert cache_mod.key_material(plain)["config"]["hp"]["oe"]["ood"] == "cifar100"


def test_key_includes_the_schema_version(monkeypatch):
    k = cell_key(RESOLVED)
    monkeypatch.setattr(cache_mod, "RESULTS_SCHEMA_VERSION", cache_mod.RESULTS_SCHEMA_VERSION + 1)
    assert cell_key(RESOLVED) != k


def test_canonical_json_handles_numpy():
    np = pytest.importorskip("numpy")
    assert canonical_json({"b": np.float32(0.5), "a": np.arange(2)}) == '{"a":[0,1],"b":0.5}'


def _record(key, **kw):
    rec = {"schema_version": cache_mod.RESULTS_SCHEMA_VERSION, "key": key, "status": "ok",
           "metrics": {"top1": 71.5}, "config": {}}
    rec.update(kw)
    return rec


def test_write_is_atomic_and_roundtrips(tmp_path):
    c = ResultCache(tmp_path, "demo")
    path = c.write(_record("k1"))
    assert path == tmp_path / "demo" / "k1.json"
    assert [p.name for p in (tmp_path / "demo").iterdir()] == ["k1.json"]      # no temp file left behind
    entry = c.check("k1")
    assert entry.state == "ok" and entry.record["metrics"]["top1"] == 71.5
    assert c.check("k2").state == "missing"
    with pytest.raises(ValueError):
        c.write(_record("k3", metrics={}))                                     # never writes a bad record


def test_records_get_plain_file_permissions(tmp_path):
    """Not mkstemp's 0600: workers of other users sharing results/ must be able to read a record."""
    old = os.umask(0o022)
    try:
        path = ResultCache(tmp_path, "demo").write(_record("k1"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize("text,problem", [
    ("", "empty file"),
    ('{"schema_version": 1, "key": "k1", "sta', "truncated or invalid JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps(_record("k1", schema_version=0)), "schema version 0"),
    (json.dumps(_record("other")), "does not match"),
    (json.dumps(_record("k1", status="running")), "unknown status"),
    (json.dumps(_record("k1", metrics={"top1": None})), "without a numeric metrics.top1"),
    (b"\xff\xfe\x00garbage", "not UTF-8 text (binary garbage? byte 0xff at offset 0)"),
    (b"\x00" * 64, "truncated or invalid JSON"),
    ("[" * 100_000, "truncated or invalid JSON"),                              # RecursionError in json
    ("   \n", "empty file"),
])
def test_bad_records_are_corrupt(tmp_path, text, problem):
    c = ResultCache(tmp_path, "demo")
    c.dir.mkdir(parents=True)
    c.path("k1").write_bytes(text if isinstance(text, bytes) else text.encode())
    entry = c.check("k1")
    assert entry.state == "corrupt" and problem in entry.problem and entry.record is None
    assert "\n" not in entry.problem


def test_a_record_that_is_a_directory_is_corrupt_and_can_be_set_aside(tmp_path):
    c = ResultCache(tmp_path, "demo")
    c.path("k1").mkdir(parents=True)
    assert c.check("k1").state == "corrupt"
    assert c.set_aside("k1") == c.dir / "k1.json.corrupt" and c.check("k1").state == "missing"
    assert c.set_aside("k1") is None


def test_failed_records_validate():
    rec = _record("k", status="failed", error={"type": "RuntimeError", "message": "x", "traceback": "..."})
    del rec["metrics"]
    assert validate_record(rec, "k") is None


# ---------------------------------------------------------------------------- (b) truncated -> recomputed
def _demo_cells(seeds=1):
    return build_grid(["table1"], get_profile("demo"), range(seeds))[:8]


def test_truncated_record_is_detected_and_recomputed(tmp_path, capsys):
    cells = _demo_cells()
    plan, res = run_sweep(cells, results_dir=tmp_path, runner=fake.run_config, resolver=fake.resolve_config)
    assert res.counts()["done"] == 8
    c = ResultCache(tmp_path, "demo")
    victim, schema, binary, other = list(plan.jobs)[:4]
    good = json.loads(c.path(victim).read_text())
    text = c.path(victim).read_text()
    c.path(victim).write_text(text[: len(text) // 2])                              # truncated
    c.path(schema).write_text(json.dumps(dict(json.loads(c.path(schema).read_text()), schema_version=-1)))
    c.path(binary).write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(64))             # binary garbage
    c.path(other).write_text(c.path(list(plan.jobs)[4]).read_text())              # another cell's record
    capsys.readouterr()
    plan2, res2 = run_sweep(cells, results_dir=tmp_path, runner=fake.run_config, resolver=fake.resolve_config)
    err = capsys.readouterr().err
    assert f"{victim}.json: truncated or invalid JSON" in err and f"{schema}.json: schema version -1" in err
    assert f"{binary}.json: not UTF-8 text" in err and f"{other}.json: key " in err
    assert err.count("set aside as") == 4 and len(err.strip().splitlines()) == 4   # one line each
    assert {k: o["status"] for k, o in res2.outcomes.items()} == {k: "done" for k in (victim, schema, binary, other)}
    assert res2.counts() == {"done": 4, "cached": 4}
    again = json.loads(c.path(victim).read_text())
    assert c.check(victim).state == "ok" and again["metrics"] == good["metrics"]
    assert sorted(p.name for p in c.dir.glob("*.corrupt")) == sorted(f"{k}.json.corrupt" for k in
                                                                        (victim, schema, binary, other))
    assert c.path(binary).with_name(f"{binary}.json.corrupt").read_bytes().startswith(b"\xff\xd8")


def test_stale_temp_files_are_removed(tmp_path):
    """A temp file is stale when no live process holds its cell's lock (writers hold it) or it is old."""
    import time
    c = ResultCache(tmp_path, "demo")
    c.write(_record("k1"))
    old, dead, live = c.dir / ".k2.json.abc.tmp", c.dir / ".k3.json.def.tmp", c.dir / ".k4.json.ghi.tmp"
    for p in (old, dead, live):
        p.write_text("{")
    os.utime(old, (time.time() - 7200,) * 2)
    holder = c.lock("k4")
    holder.acquire()                 # k4's writer is still writing (filelock: held per lock object)
    try:
        assert _in_other_process(c.remove_stale_temp) == 2
    finally:
        c.release(holder)
    assert not old.exists() and not dead.exists() and live.exists()
    assert sorted(p.name for p in c.locks_dir.iterdir()) == []           # no lock file left behind


def test_stale_lock_files_are_removed_and_held_ones_kept(tmp_path):
    c = ResultCache(tmp_path, "demo")
    for key in ("a", "b"):
        (c.locks_dir / f"{key}.lock").parent.mkdir(parents=True, exist_ok=True)
        (c.locks_dir / f"{key}.lock").touch()                            # left by a killed worker
    held = c.lock("c")
    held.acquire()
    try:
        assert _in_other_process(c.remove_stale_locks) == 2
        assert [p.name for p in c.locks_dir.iterdir()] == ["c.lock"]
    finally:
        c.release(held)
    assert list(c.locks_dir.iterdir()) == []


def _in_other_process(fn):
    """Run ``fn`` in a forked child (flock locks are per open file, so a child sees this process's locks)."""
    import multiprocessing
    with multiprocessing.get_context("fork").Pool(1) as pool:
        return pool.apply(fn)
