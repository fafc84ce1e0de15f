"""Executing a plan: check the cache, hand the cells to compute to a launcher, collect the outcomes.

:func:`execute` reuses the ok records, announces the corrupt ones, builds one task per cell to compute (in
:func:`benchmark.plan.order`) and runs them on the launcher that ``backend`` names
(:mod:`benchmark.launchers`), with a progress bar on stderr.  Three passes at most: the first tries each
cell's lock without waiting; the second waits for the cells another sweep holds (and then finds their
records); the third follows a crashed worker.  A cell still without an outcome is a ``WorkerCrash``.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

from oefsmc.errors import UserError

from .cache import CORRUPT_SUFFIX, ResultCache
from .hooks import Runner
from .launchers import Launcher, get_launcher
from .plan import Plan, log, order


@dataclass
class SweepResult:
    """Outcome of :func:`execute`: per key, the final status (done / cached / failed)."""

    outcomes: dict[str, dict] = field(default_factory=dict)
    precached: int = 0
    corrupt: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def counts(self) -> Counter:
        c = Counter(o["status"] for o in self.outcomes.values())
        c["cached"] += self.precached
        return +c  # without zero counts (a missing status still reads as 0)


def execute(plan: Plan, cache: ResultCache, runner: Runner, *, n_jobs: int = 1,
            backend: Union[str, Launcher] = "loky", force: bool = False, progress: bool = False,
            backend_options: Optional[Mapping[str, str]] = None) -> SweepResult:
    """Compute the plan's missing / failed / corrupt jobs (all with ``force``); reuse the rest.

    ``backend``: a ``--backend`` value (``loky``, ``dask://HOST:PORT``, ``slurm[:PARTITION]``) with its
    ``backend_options`` (``--backend-opt``), or a :class:`~benchmark.launchers.Launcher`.
    """
    launcher = backend if isinstance(backend, Launcher) else get_launcher(backend, backend_options)
    t_start = time.time()
    sweep_start = t_start - 1e-3
    result = SweepResult()
    cache.remove_stale_temp()
    todo = []
    for job in plan.jobs.values():
        entry = cache.check(job.key)
        if entry.state == "corrupt":
            result.corrupt.append(job.key)
            log(f"{entry.path}: {entry.problem}; set aside as {entry.path.name}{CORRUPT_SUFFIX}, recomputing")
        if entry.state == "ok" and not force:
            result.precached += 1
        else:
            todo.append(job)
    single = n_jobs != 1 or launcher.name != "loky"
    tasks = [{
        "key": j.key, "cell": j.cell, "resolved": j.resolved, "results_dir": str(cache.results_dir),
        "profile": cache.profile, "profile_info": plan.profile.record_info(), "runner": runner,
        "force": force, "sweep_start": sweep_start, "blocking": False, "single_thread": single,
        "n_jobs": n_jobs,
    } for j in order(todo)]
    if tasks:
        with launcher.session():
            _run_tasks(tasks, result, min(n_jobs, len(tasks)) if n_jobs > 0 else n_jobs, launcher, progress,
                       plan.profile.name)
    cache.remove_stale_temp()
    cache.remove_stale_locks()
    result.wall_s = time.time() - t_start
    return result


def _run_tasks(tasks: list[dict], result: SweepResult, n_jobs: int, launcher: Launcher, progress: bool,
               desc: str) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc=desc, unit="cell", file=sys.stderr, disable=not progress,
               dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 10.0)
    failed = 0
    try:
        pending = list(tasks)
        for attempt in range(3):  # 0: try-locks; 1: wait for cells another sweep holds; 2: after a crash
            locked, crashed = [], None
            try:
                for out in launcher.run(pending, n_jobs):
                    if out["status"] == "locked":
                        locked.append(out["key"])
                        continue
                    result.outcomes[out["key"]] = out
                    failed += out["status"] == "failed"
                    bar.set_postfix(failed=failed, refresh=False)
                    bar.update(1)
            except (KeyboardInterrupt, UserError):
                raise
            except Exception as exc:  # a worker process died (e.g. killed for memory)
                crashed = exc
                log(f"a worker process died ({type(exc).__name__}: {exc}); retrying the unfinished cells")
            pending = [dict(t, blocking=True) for t in tasks if t["key"] not in result.outcomes]
            if not pending:
                break
            if locked and crashed is None:
                bar.set_description(f"{desc} (waiting for another sweep)")
        for t in tasks:
            if t["key"] not in result.outcomes:
                result.outcomes[t["key"]] = {"key": t["key"], "status": "failed", "error": "worker crashed",
                                             "error_type": "WorkerCrash"}
    finally:
        bar.close()
