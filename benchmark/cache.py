"""The result cache: one JSON record per experiment under ``<results-dir>/<profile>/<key>.json``.

Key
    ``sha256(canonical JSON of {"schema_version": RESULTS_SCHEMA_VERSION, "config": resolved})``, first
    20 hex digits, where ``resolved`` is :func:`oefsmc.pipeline.resolve_config`'s fully resolved config
    (every hyperparameter, the teacher's identity, the data and OOD source identities) minus
    :data:`KEY_LOCATION_FIELDS`, and the path part of the OOD source specs (:data:`KEY_SOURCE_FIELDS`).
    Those are *locations* (the ``--data-root`` directory, the teacher
    checkpoint's path, the files the data was read from), not identities: the same checkpoint (same
    sha256) or dataset (same fingerprint) at another path is the same experiment, so committed records
    stay valid on a reviewer's machine.  The resolved config carries the identities next to them.
Writing
    Atomic: a temp file in the same directory, ``fsync``, ``os.replace``, then an ``fsync`` of the
    directory.  A process killed mid-write leaves at most a ``.<key>.json.*.tmp`` file, never a
    half-written record.
Reading
    A record is used only when it is UTF-8 text that parses as JSON, carries this schema version and its
    own key, and has a known status (``ok`` with ``metrics.top1``, or ``failed``).  Anything else
    (truncated, binary garbage, another schema, another cell's record) is ``corrupt``: the sweep says so
    in one line, sets the file aside as ``<key>.json.corrupt`` (inside the cell's lock) and recomputes
    it; a corrupt record is never used and never stops a sweep.
Locks
    ``<results-dir>/<profile>/.locks/<key>.lock`` (:mod:`filelock`, an OS lock the kernel releases
    when the holder dies, even by SIGKILL): held while a cell is computed, so two sweeps sharing one
    results directory compute each cell once.  The holder removes the lock file before releasing it,
    after the record is written (a process that then locks the old file re-checks the cache and finds
    the record); files left by killed processes are removed by the next sweep
    (:meth:`ResultCache.remove_stale_locks`), as are their temp files (:meth:`ResultCache.remove_stale_temp`).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from filelock import FileLock, Timeout

from oefsmc.atomic import atomic_write  # noqa: F401  (re-exported: the cache writes records with it)
from oefsmc.jsonable import json_default
from oefsmc.schema import RESULTS_SCHEMA_VERSION  # noqa: F401  (re-exported)

#: Dotted paths in the resolved config left out of the key: locations, each next to an identity
#: (``teacher.sha256``, ``data.*.fingerprint``) that stays in.  Absent paths are ignored.
KEY_LOCATION_FIELDS = ("data_root", "teacher.path", "data.train.source", "data.test.source")
#: OOD source specs whose path part is a location too (``ood.identity`` carries the content's identity).
KEY_SOURCE_FIELDS = ("hp.oe.ood", "ood.source")
KEY_HEX = 20
STATUSES = ("ok", "failed")
#: Suffix of a record set aside because it could not be used (``<key>.json.corrupt``).
CORRUPT_SUFFIX = ".corrupt"


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, ASCII, numpy/paths converted."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=json_default)


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


def _source_kind(obj: Any, parts: list[str]) -> Any:
    """A copy of ``obj`` whose nested OOD source spec ``parts`` keeps its kind only (``random300k:PATH`` ->
    ``random300k``); a spec without a path (``cifar100``) and an absent field are left as they are."""
    if not isinstance(obj, dict) or parts[0] not in obj:
        return obj
    out = dict(obj)
    if len(parts) == 1:
        if isinstance(out[parts[0]], str):
            out[parts[0]] = out[parts[0]].partition(":")[0]
    else:
        out[parts[0]] = _source_kind(out[parts[0]], parts[1:])
    return out


def key_material(resolved: dict) -> dict:
    """What the key hashes: the schema version and the resolved config without locations."""
    config = resolved
    for dotted in KEY_LOCATION_FIELDS:
        config = _drop_path(config, dotted.split("."))
    for dotted in KEY_SOURCE_FIELDS:
        config = _source_kind(config, dotted.split("."))
    return {"schema_version": RESULTS_SCHEMA_VERSION, "config": config}


def cell_key(resolved: dict) -> str:
    """The cache key of a resolved config (20 hex digits of a sha256)."""
    return hashlib.sha256(canonical_json(key_material(resolved)).encode("ascii")).hexdigest()[:KEY_HEX]


def _decode(data: bytes) -> tuple[Any, Optional[str]]:
    """(record, None), or (None, the one-line problem) for bytes that are not a JSON document."""
    if not data.strip():
        return None, "empty file"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (binary garbage? byte 0x{data[exc.start]:02x} at offset {exc.start})"
    try:
        return json.loads(text), None
    except (ValueError, RecursionError) as exc:
        return None, f"truncated or invalid JSON ({str(exc).splitlines()[0][:80]})"


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

    @property
    def locks_dir(self) -> Path:
        return self.dir / ".locks"

    def lock(self, key: str) -> FileLock:
        """The per-cell lock (not acquired).  ``acquire(timeout=0)`` tries without waiting; release it with
        :meth:`release` so that its file goes too."""
        self.locks_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.locks_dir / f"{key}.lock"))

    @staticmethod
    def release(lock: FileLock) -> None:
        """Remove the lock's file, then release it (the holder only; see the module docstring)."""
        try:
            os.unlink(lock.lock_file)
        except OSError:
            pass
        lock.release()

    @contextmanager
    def unheld(self, key: str) -> Iterator[bool]:
        """Try the lock of ``key`` without waiting: yields True (held here, released and removed on exit)
        when no live process holds it, else False."""
        lock = self.lock(key)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            self.release(lock)

    def remove_stale_locks(self) -> int:
        """Remove the lock files no live process holds (left by killed workers); returns how many."""
        if not self.locks_dir.is_dir():
            return 0
        removed = 0
        for p in self.locks_dir.glob("*.lock"):
            try:
                with self.unheld(p.stem) as free:
                    removed += free
            except OSError:
                pass
        return removed

    def check(self, key: str) -> CacheEntry:
        """Load and validate the record of ``key`` (never raises for a bad file: it is ``corrupt``)."""
        path = self.path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return CacheEntry(key, "missing", path=path)
        except OSError as exc:
            return CacheEntry(key, "corrupt", problem=f"unreadable ({exc.strerror or exc})", path=path)
        record, problem = _decode(data)
        problem = problem or validate_record(record, key)
        if problem:
            return CacheEntry(key, "corrupt", record=None, problem=problem, path=path)
        return CacheEntry(key, record["status"], record=record, path=path)

    def set_aside(self, key: str) -> Optional[Path]:
        """Rename an unusable record to ``<key>.json.corrupt`` (replacing an older one); returns the new
        path, or ``None`` when there was nothing to move."""
        path = self.path(key)
        if not os.path.lexists(path):
            return None
        target = path.with_name(path.name + CORRUPT_SUFFIX)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif os.path.lexists(target):
            target.unlink()
        os.replace(path, target)
        return target

    def write(self, record: dict) -> Path:
        """Write ``record`` (which must validate) atomically under its key."""
        key = record["key"]
        problem = validate_record(record, key)
        if problem:
            raise ValueError(f"refusing to write an invalid record {key}: {problem}")
        text = json.dumps(record, indent=1, ensure_ascii=False, default=json_default) + "\n"
        return atomic_write(self.path(key), text)

    def remove_stale_temp(self, max_age_s: float = 3600.0) -> int:
        """Delete temp files of writers killed mid-write; returns how many.  A writer holds its cell's lock,
        so a temp file whose lock no live process holds is stale; any older than ``max_age_s`` is too."""
        if not self.dir.is_dir():
            return 0
        removed, now = 0, time.time()
        for p in self.dir.glob(".*.json.*.tmp"):
            key = p.name[1:].split(".json.", 1)[0]
            try:
                if now - p.stat().st_mtime > max_age_s:
                    p.unlink()
                    removed += 1
                    continue
                with self.unheld(key) as free:
                    if free:
                        p.unlink()
                        removed += 1
            except OSError:
                pass
        return removed

    def keys(self) -> list[str]:
        """Keys of every ``*.json`` file in the profile directory (valid or not)."""
        return sorted(p.stem for p in self.dir.glob("*.json")) if self.dir.is_dir() else []


