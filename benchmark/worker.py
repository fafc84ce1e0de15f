"""What runs inside a worker process: claim a cell through its lock, re-check the cache, compute it and
write its record (ok or failed).

:func:`compute_cell` is what every launcher ships (:mod:`benchmark.launchers`): loky's or dask's workers
call it once per cell; a task of a cluster job array calls :func:`claim_cells` over the whole list.  A
worker tries the per-cell lock without waiting; if another process holds it the outcome is ``locked`` and
the parent retries the cell later with a blocking lock, then finds the other process's record
(``cached``): processes sharing a results directory compute each cell once.  Before computing, a worker
loads the plug-ins (:func:`benchmark.hooks.prepare_runner`).
"""
from __future__ import annotations

import json
import os
import pickle
import socket
import sys
import time
import traceback
from datetime import datetime, timezone
from typing import Optional, Union

from oefsmc.jsonable import json_default

from .cache import RESULTS_SCHEMA_VERSION, CacheEntry, ResultCache
from .hooks import load_callable, prepare_runner

_THREADS_LIMITED = False


def _single_thread(task: dict) -> None:
    """One intra-op thread per worker when several workers share the cores (torch, if loaded); a worker
    running CUDA cells gets its share of the cores instead (:func:`benchmark.workers.worker_threads`)."""
    global _THREADS_LIMITED
    torch = sys.modules.get("torch")
    if torch is not None and not _THREADS_LIMITED:
        from .workers import worker_threads
        torch.set_num_threads(worker_threads(task["resolved"].get("device", "auto"), task.get("n_jobs", 2)))
        _THREADS_LIMITED = True


def _now() -> tuple[str, float]:
    t = time.time()
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds"), t


def _ok_record(raw: dict, task: dict, run_info: dict) -> dict:
    rec = {"schema_version": RESULTS_SCHEMA_VERSION, "key": task["key"], "status": "ok",
           "profile": task["profile_info"], "cell": task["cell"]}
    rec.update({k: v for k, v in raw.items() if k not in rec})
    rec.setdefault("config", task["resolved"])
    rec["run"] = run_info
    return json.loads(json.dumps(rec, default=json_default))  # plain JSON types (numpy scalars etc.)


def _failed_record(task: dict, exc: BaseException, run_info: dict) -> dict:
    return {
        "schema_version": RESULTS_SCHEMA_VERSION, "key": task["key"], "status": "failed",
        "profile": task["profile_info"], "cell": task["cell"], "config": task["resolved"],
        "error": {"type": type(exc).__name__, "message": str(exc).strip().splitlines()[0] if str(exc).strip()
                  else type(exc).__name__,
                  "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))},
        "run": run_info,
    }


def _reusable(entry: CacheEntry, force: bool, sweep_start: float) -> Optional[str]:
    """Inside the lock: "cached" / "failed" when the record must not be recomputed, else ``None``.

    An ok record is reused unless ``force`` (then only one written during this sweep, by a concurrent
    sweep, is reused).  A failed record is recomputed unless a concurrent sweep wrote it just now.
    """
    fresh = entry.finished_unix >= sweep_start
    if entry.state == "ok" and (not force or fresh):
        return "cached"
    if entry.state == "failed" and fresh:
        return "failed"
    return None


def _run_info(started: str, t0: float) -> dict:
    finished, t1 = _now()
    return {"started_at": started, "finished_at": finished, "finished_unix": t1, "wall_s": round(t1 - t0, 3),
            "host": socket.gethostname(), "pid": os.getpid()}



def _compute(task: dict, cache: ResultCache) -> dict:
    """Run the cell and write its record (ok or failed).  Returns the outcome."""
    started, t0 = _now()
    try:
        prepare_runner(task["runner"])
        runner = load_callable(task["runner"]) if isinstance(task["runner"], str) else task["runner"]
        if task["single_thread"]:
            _single_thread(task)
        raw = runner(dict(task["resolved"]))
        if not isinstance(raw, dict):
            raise TypeError(f"run_config returned {type(raw).__name__}, expected a dict record")
        run_info = _run_info(started, t0)
        record = _ok_record(raw, task, run_info)
        cache.write(record)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a failed cell is recorded and does not stop the sweep
        run_info = _run_info(started, t0)
        record = _failed_record(task, exc, run_info)
        cache.write(record)
        return {"key": task["key"], "status": "failed", "error": record["error"]["message"],
                "error_type": record["error"]["type"], "wall_s": run_info["wall_s"]}
    return {"key": task["key"], "status": "done", "wall_s": run_info["wall_s"]}


def compute_cell(task: dict) -> dict:
    """Worker entry point: lock the cell, re-check the cache, compute if still needed.

    Returns ``{"key", "status"}`` with status ``done`` / ``cached`` / ``failed`` / ``locked`` (another
    process holds the cell and ``task["blocking"]`` is false).
    """
    return _claim(task)[0]


def _claim(task: dict) -> tuple[dict, bool]:
    """:func:`compute_cell`'s outcome, and whether this process computed the cell."""
    from filelock import Timeout

    cache = ResultCache(task["results_dir"], task["profile"])
    lock = cache.lock(task["key"])
    try:
        lock.acquire(timeout=-1 if task["blocking"] else 0)
    except Timeout:
        return {"key": task["key"], "status": "locked"}, False
    try:
        entry = cache.check(task["key"])
        reuse = _reusable(entry, task["force"], task["sweep_start"])
        if reuse == "cached":
            return {"key": task["key"], "status": "cached"}, False
        if reuse == "failed":
            err = (entry.record or {}).get("error", {})
            return {"key": task["key"], "status": "failed", "error": err.get("message", ""),
                    "error_type": err.get("type", "")}, False
        if entry.state == "corrupt":
            cache.set_aside(task["key"])  # announced by the parent (execute); kept for inspection
        return _compute(task, cache), True
    finally:
        cache.release(lock)


def claim_cells(tasks: Union[list[dict], str]) -> list[tuple[dict, bool]]:
    """One task of a cluster job array (:mod:`benchmark.launchers`): walk ``tasks`` (or the pickled list in
    the file named ``tasks``) in order and compute every cell whose lock this process gets.

    Every task of the array walks the same list, so each takes the next cell that no other task holds; a
    cell that a sibling has finished is then found ``cached`` under its lock, and no cell is computed twice
    (nor by another sweep sharing the results directory).  Returns ``(outcome, computed here)`` per task.
    """
    if isinstance(tasks, str):
        with open(tasks, "rb") as f:
            tasks = pickle.load(f)
    return [_claim(t) for t in tasks]
