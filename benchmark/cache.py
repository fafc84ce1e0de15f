"""The result cache: one JSON record per experiment under ``<results-dir>/<profile>/<key>.json``.

Key
    ``sha256(canonical JSON of {"schema_version": RESULTS_SCHEMA_VERSION, "config": resolved})``, first
    20 hex digits, where ``resolved`` is :func:`oefsmc.pipeline.resolve_config`'s fully resolved config
    (every hyperparameter, the teacher's identity, the data and OOD source identities) minus
    :data:`KEY_LOCATION_FIELDS`.  Those are *locations* (the ``--data-root`` directory, the teacher
    checkpoint's path, the files the data was read from), not identities: the same checkpoint (same
    sha256) or dataset (same fingerprint) at another path is the same experiment, so committed records
    stay valid on a reviewer's machine.  The resolved config carries the identities next to them.
Writing
    Atomic: a temp file in the same directory, ``fsync``, ``os.replace``, then an ``fsync`` of the
    directory.  A process killed mid-write leaves at most a ``.<key>.json.*.tmp`` file, never a
    half-written record.
Reading
    A record is used only when it parses as JSON, carries this schema version and its own key, and has
    a known status (``ok`` with ``metrics.top1``, or ``failed``).  Anything else is reported as
    ``corrupt`` (one line, by the sweep) and recomputed, never used.
Locks
    ``<results-dir>/<profile>/.locks/<key>.lock`` (:mod:`filelock`, an OS lock the kernel releases
    when the holder dies, even by SIGKILL): held while a cell is computed, so two sweeps sharing one
    results directory compute each cell once.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from filelock import FileLock

from oefsmc.atomic import atomic_write  # noqa: F401  (re-exported: the cache writes records with it)
from oefsmc.schema import RESULTS_SCHEMA_VERSION  # noqa: F401  (re-exported)

#: Dotted paths in the resolved config left out of the key: locations, each next to an identity
#: (``teacher.sha256``, ``data.*.fingerprint``) that stays in.  Absent paths are ignored.
KEY_LOCATION_FIELDS = ("data_root", "teacher.path", "data.train.source", "data.test.source")
KEY_HEX = 20
STATUSES = ("ok", "failed")


def _json_default(obj: Any) -> Any:
    """JSON for numpy scalars/arrays, tensors, paths, sets and tuples; anything else is an error."""
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, ASCII, numpy/paths converted."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_json_default)


def _drop_path(obj: Any, parts: list[str]) -> Any:
    """A copy of ``obj`` without the nested field ``parts`` (unchanged when it is absent)."""
    if not isinstance(obj, dict) or parts[0] not in obj:
        return obj
    out = dict(obj)
    if len(parts) == 1:
        del out[parts[0]]
    else:
        out[parts[0]] = _drop_path(out[parts[0]], parts[1:])
    return out


def key_material(resolved: dict) -> dict:
    """What the key hashes: the schema version and the resolved config without locations."""
    config = resolved
    for dotted in KEY_LOCATION_FIELDS:
        config = _drop_path(config, dotted.split("."))
    return {"schema_version": RESULTS_SCHEMA_VERSION, "config": config}


def cell_key(resolved: dict) -> str:
    """The cache key of a resolved config (20 hex digits of a sha256)."""
    return hashlib.sha256(canonical_json(key_material(resolved)).encode("ascii")).hexdigest()[:KEY_HEX]


def validate_record(record: Any, key: str) -> Optional[str]:
    """``None`` when ``record`` is usable as the record of ``key``, else the one-line problem."""
    if not isinstance(record, dict):
        return "not a JSON object"
    version = record.get("schema_version")
    if version != RESULTS_SCHEMA_VERSION:
        return f"schema version {version!r}, expected {RESULTS_SCHEMA_VERSION}"
    if record.get("key") != key:
        return f"key {record.get('key')!r} does not match the file name"
    status = record.get("status")
    if status not in STATUSES:
        return f"unknown status {status!r}"
    if status == "ok":
        top1 = (record.get("metrics") or {}).get("top1") if isinstance(record.get("metrics"), dict) else None
        if not isinstance(top1, (int, float)) or isinstance(top1, bool) or math.isnan(top1):
            return "status ok without a numeric metrics.top1"
    return None


@dataclass
class CacheEntry:
    """What the cache holds for a key: ``state`` is ok / failed / missing / corrupt."""

    key: str
    state: str
    record: Optional[dict] = None
    problem: str = ""
    path: Optional[Path] = None

    @property
    def finished_unix(self) -> float:
        """When the record was written (0 when unknown)."""
        run = (self.record or {}).get("run") or {}
        value = run.get("finished_unix", 0.0) if isinstance(run, dict) else 0.0
        return float(value) if isinstance(value, (int, float)) else 0.0


class ResultCache:
    """Records of one profile: ``<results_dir>/<profile>/<key>.json`` plus ``.locks/``."""

    def __init__(self, results_dir, profile: str):
        self.results_dir = Path(results_dir)
        self.profile = profile
        self.dir = self.results_dir / profile

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def lock(self, key: str) -> FileLock:
        """The per-cell lock (not acquired).  ``acquire(timeout=0)`` tries without waiting."""
        locks = self.dir / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        return FileLock(str(locks / f"{key}.lock"))

    def check(self, key: str) -> CacheEntry:
        """Load and validate the record of ``key``."""
        path = self.path(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return CacheEntry(key, "missing", path=path)
        except OSError as exc:
            return CacheEntry(key, "corrupt", problem=f"unreadable ({exc.strerror})", path=path)
        try:
            record = json.loads(text)
        except ValueError as exc:
            kind = "empty file" if not text.strip() else f"truncated or invalid JSON ({exc})"
            return CacheEntry(key, "corrupt", problem=kind, path=path)
        problem = validate_record(record, key)
        if problem:
            return CacheEntry(key, "corrupt", record=None, problem=problem, path=path)
        return CacheEntry(key, record["status"], record=record, path=path)

    def write(self, record: dict) -> Path:
        """Write ``record`` (which must validate) atomically under its key."""
        key = record["key"]
        problem = validate_record(record, key)
        if problem:
            raise ValueError(f"refusing to write an invalid record {key}: {problem}")
        text = json.dumps(record, indent=1, ensure_ascii=False, default=_json_default) + "\n"
        return atomic_write(self.path(key), text)

    def remove_stale_temp(self, max_age_s: float = 3600.0) -> int:
        """Delete temp files of writers killed mid-write (older than ``max_age_s``); returns how many."""
        if not self.dir.is_dir():
            return 0
        removed, now = 0, time.time()
        for p in self.dir.glob(".*.json.*.tmp"):
            try:
                if now - p.stat().st_mtime > max_age_s:
                    p.unlink()
                    removed += 1
            except OSError:
                pass
        return removed

    def keys(self) -> list[str]:
        """Keys of every ``*.json`` file in the profile directory (valid or not)."""
        return sorted(p.stem for p in self.dir.glob("*.json")) if self.dir.is_dir() else []


