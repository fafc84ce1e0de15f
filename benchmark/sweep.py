"""``python -m benchmark sweep``: run the grid of a paper artifact, cache every cell, render the outputs.

Architecture (grid -> cell -> record -> table)::

    grids.build_grid(artifacts, profile, seeds)      GridEntry(cell, tag) per (paper cell, seed)
      -> plan_sweep: resolve each cell (cheap), drop overrides equal to the defaults, key it,
         merge entries with the same key into one Job (the same experiment is computed once)
      -> ResultCache.check: ok records are reused; missing / failed / corrupt ones are (re)computed
      -> execute: joblib (loky, long-lived worker processes; or an existing dask cluster); each worker
         takes the cell's lock, re-checks the cache, runs ``oefsmc.pipeline.run_config`` and writes the
         record atomically; a failure is recorded with its error and the sweep goes on
      -> render_outputs: records + tags -> paper_tables renderers -> paper_tables/out/<profile>/

Concurrency: a worker tries the per-cell lock without waiting; if another sweep holds it, the cell is
retried after the first pass with a blocking lock, and the other sweep's record is then reused
(``cached``), so two sweeps sharing a results directory compute each cell once.  A sweep killed at
any point (even SIGKILL) leaves only complete records: the rerun computes the rest.

Test-only hook: ``OEFSMC_FAKE_PIPELINE=<module>`` makes the sweep use ``<module>.resolve_config`` /
``<module>.run_config`` (and ``<module>.not_applicable_reason`` / ``<module>.check_teacher`` if defined)
instead of :mod:`oefsmc.pipeline`.  The tests use it to run sweeps in subprocesses with a fake, fast
runner.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import socket
import sys
import time
import traceback
from collections import Counter, defaultdict
from itertools import zip_longest
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Union

from oefsmc.errors import InputError, UserError

from .cache import (CORRUPT_SUFFIX, RESULTS_SCHEMA_VERSION, CacheEntry, ResultCache, _json_default, canonical_json,
                    cell_key)
from .grids import GridEntry, artifacts_for, build_grid
from .overrides import parse_sweep_overrides, with_overrides
from .profiles import (DEFAULT_PROFILE, PAPER_ARCH_LABELS, PAPER_COLUMNS, PAPER_DATASET_LABELS, PROFILES,
                       Profile, get_profile)
from .selection import parse_selection, select_entries

DEFAULT_PIPELINE = "oefsmc.pipeline"
#: Hooks of the default pipeline that live beside it rather than in it.
DEFAULT_EXTRAS = {"check_teacher": "oefsmc.teacher_store:check_teacher"}
#: Test-only: a module providing resolve_config / run_config (/ not_applicable_reason) to use instead.
FAKE_PIPELINE_ENV = "OEFSMC_FAKE_PIPELINE"

Runner = Union[str, Callable[[dict], dict]]


def _log(msg: str) -> None:
    print(f"[sweep] {msg}", file=sys.stderr, flush=True)


# ============================================================================ pipeline hooks
_CALLABLES: dict[str, Callable] = {}


def load_callable(spec: str) -> Callable:
    """``"package.module:function"`` -> the function (memoised per process)."""
    if spec not in _CALLABLES:
        module, _, name = spec.partition(":")
        _CALLABLES[spec] = getattr(importlib.import_module(module), name)
    return _CALLABLES[spec]


def _import_pipeline(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name in (module, module.rpartition(".")[0]):
            raise UserError(f"the experiment pipeline ({module}) is not available in this checkout") from None
        raise


@dataclass
class Hooks:
    """What the sweep calls: ``resolve(cell) -> resolved`` (cheap, in the parent), ``run`` (a
    ``"module:function"`` spec or a callable, in the workers) and ``not_applicable(cell) -> reason``.

    A method that does not apply to an architecture is reported either by ``not_applicable`` or by
    ``resolve`` raising a :class:`UserError` subclass named ``NotApplicable`` (the pipeline's way).
    ``check_teacher(dataset, arch, path)`` raises a one-line :class:`UserError` for a checkpoint that
    cannot serve as the teacher of (dataset, arch); the sweep calls it once per teacher, before planning.
    """

    resolve: Callable[[dict], dict]
    run: Runner
    not_applicable: Callable[[dict], Optional[str]] = lambda cell: None
    check_teacher: Callable[[str, str, str], None] = lambda dataset, arch, path: None


def default_hooks() -> Hooks:
    """Hooks into :mod:`oefsmc.pipeline` (or the test-only module named by ``OEFSMC_FAKE_PIPELINE``),
    imported lazily so that a dry run or ``--help`` works before the pipeline is importable."""
    module = os.environ.get(FAKE_PIPELINE_ENV) or DEFAULT_PIPELINE

    def resolve(cell: dict) -> dict:
        return _import_pipeline(module).resolve_config(cell)

    def not_applicable(cell: dict) -> Optional[str]:
        fn = getattr(_import_pipeline(module), "not_applicable_reason", None)
        return fn(cell) if fn else None

    def check_teacher(dataset: str, arch: str, path: str) -> None:
        fn = getattr(_import_pipeline(module), "check_teacher", None)
        if fn is None and module == DEFAULT_PIPELINE:
            fn = load_callable(DEFAULT_EXTRAS["check_teacher"])
        if fn is not None:
            fn(dataset, arch, path)

    return Hooks(resolve=resolve, run=f"{module}:run_config", not_applicable=not_applicable,
                 check_teacher=check_teacher)


# ============================================================================ planning
@dataclass
class Job:
    """One unique experiment: the normalised cell, its resolved config and every entry it stands for."""

    key: str
    cell: dict
    resolved: dict
    entries: list[GridEntry] = field(default_factory=list)

    def label(self) -> str:
        c = self.cell
        setting = "bal" if c["balanced"] else f"imb{c['imbalance_ratio']:g}"
        over = " ".join(f"{k}={v}" for k, v in sorted(c["overrides"].items()))
        return (f"{c['dataset']}/{c['arch']} Num={c['num']} {setting} {c['method']} oe={c['oe']} "
                f"seed={c['seed']}" + (f" {over}" if over else ""))


@dataclass
class Plan:
    """The grid entries of a sweep, resolved and merged into unique jobs."""

    profile: Profile
    artifacts: list[str]
    seeds: list[int]
    entries: list[GridEntry]
    entry_keys: list[Optional[str]]           # per entry: its job key (None when skipped / n/a)
    entry_reasons: list[Optional[str]]        # per entry: why it has no job
    entry_kinds: list[str]                    # per entry: "job" | "skipped" | "na" | "error"
    jobs: dict[str, Job]

    def count(self, kind: str) -> int:
        """Unique cells (by canonical cell) of entries of ``kind``."""
        return len({canonical_json(e.cell) for e, k in zip(self.entries, self.entry_kinds) if k == kind})


def _without_overrides(resolved: dict) -> str:
    return canonical_json({k: v for k, v in resolved.items() if k != "overrides"})


def normalise_cell(cell: dict, resolve: Callable[[dict], dict]) -> tuple[dict, dict]:
    """Drop the overrides that do not change the resolved config (e.g. ``oe.lambda=0.5`` when 0.5 is
    the default), so such a cell hashes exactly like the cell without them.  Returns (cell, resolved)."""
    resolved = resolve(cell)
    overrides = cell.get("overrides") or {}
    if not overrides:
        return cell, resolved
    base = _without_overrides(resolved)
    keep = {}
    for name, value in overrides.items():
        trial = dict(cell, overrides={k: v for k, v in overrides.items() if k != name})
        if _without_overrides(resolve(trial)) != base:
            keep[name] = value
    if keep == overrides:
        return cell, resolved
    cell = dict(cell, overrides=keep)
    return cell, resolve(cell)


def _memo(fn: Callable[[dict], Any]) -> Callable[[dict], Any]:
    """Memoise a function of a cell by the cell's canonical JSON (exceptions are memoised too)."""
    seen: dict[str, tuple[bool, Any]] = {}

    def wrapped(cell: dict):
        k = canonical_json(cell)
        if k not in seen:
            try:
                seen[k] = (True, fn(cell))
            except Exception as exc:  # noqa: BLE001  (memoised and re-raised below)
                seen[k] = (False, exc)
        ok, value = seen[k]
        if not ok:
            raise value
        return value
    return wrapped


def plan_sweep(entries: Iterable[GridEntry], profile: Profile, hooks: Hooks,
               artifacts: Optional[list[str]] = None, seeds: Optional[list[int]] = None) -> Plan:
    """Resolve every entry and merge entries that are the same experiment into one :class:`Job`.

    A cell whose method does not apply to its architecture is ``na`` (``hooks.not_applicable`` or a
    ``NotApplicable`` error from ``resolve``); a cell that ``resolve`` rejects with any other
    :class:`UserError` (bad input, missing data or teacher) is ``skipped`` with that message; any other
    exception from ``resolve`` (a bug) makes the cell an ``error`` (counted as failed), logged once.
    An :class:`InputError` (e.g. a corrupt data file) stops the planning: no cell can run with it.
    """
    entries = list(entries)
    resolve = _memo(hooks.resolve)
    na_memo: dict[tuple, Optional[str]] = {}
    keys, reasons, kinds, jobs = [], [], [], {}
    for e in entries:
        na_key = (e.cell["method"], e.cell["arch"])
        if na_key not in na_memo:
            na_memo[na_key] = hooks.not_applicable(e.cell)
        if na_memo[na_key]:
            keys.append(None), reasons.append(na_memo[na_key]), kinds.append("na")
            continue
        try:
            cell, resolved = normalise_cell(e.cell, resolve)
        except InputError:
            raise
        except UserError as exc:
            kind = "na" if type(exc).__name__ == "NotApplicable" else "skipped"
            keys.append(None), reasons.append(str(exc)), kinds.append(kind)
            continue
        except Exception as exc:  # noqa: BLE001  (a bug in resolve must not hide the other cells)
            reason = f"resolve_config raised {type(exc).__name__}: {exc}"
            if reason not in reasons:
                _log("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip())
            keys.append(None), reasons.append(reason), kinds.append("error")
            continue
        key = cell_key(resolved)
        jobs.setdefault(key, Job(key, cell, resolved)).entries.append(e)
        keys.append(key), reasons.append(None), kinds.append("job")
    return Plan(profile, list(artifacts or []), list(seeds or []), entries, keys, reasons, kinds, jobs)


def _column_label(paper_dataset: str) -> str:
    """"CIFAR-100/ResNet-32" for a paper dataset (run datasets pass through)."""
    arch = PAPER_COLUMNS.get(paper_dataset, ("",))[0]
    return f"{PAPER_DATASET_LABELS.get(paper_dataset, paper_dataset)}/{PAPER_ARCH_LABELS.get(arch, '?')}"


def report_skipped(plan: Plan, kind_wanted: str = "skipped") -> list[str]:
    """One line per distinct skip (or ``error``) reason, naming the paper columns it affects."""
    by_reason: dict[str, set] = defaultdict(set)
    for e, kind, reason in zip(plan.entries, plan.entry_kinds, plan.entry_reasons):
        if kind == kind_wanted:
            ds, num = e.tag.get("paper_dataset", e.cell["dataset"]), e.tag.get("paper_num", e.cell["num"])
            by_reason[reason].add((ds, num))
    lines = []
    for reason, cols in by_reason.items():
        per_ds: dict[str, list[int]] = defaultdict(list)
        for ds, num in sorted(cols):
            per_ds[ds].append(num)
        where = "; ".join(f"{_column_label(ds)} Num {', '.join(map(str, nums))}"
                          for ds, nums in per_ds.items())
        lines.append(f"{kind_wanted} {where}: {reason}")
    return lines


# ============================================================================ workers
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
    return json.loads(json.dumps(rec, default=_json_default))  # plain JSON types (numpy scalars etc.)


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
    from filelock import Timeout

    cache = ResultCache(task["results_dir"], task["profile"])
    lock = cache.lock(task["key"])
    try:
        lock.acquire(timeout=-1 if task["blocking"] else 0)
    except Timeout:
        return {"key": task["key"], "status": "locked"}
    try:
        entry = cache.check(task["key"])
        reuse = _reusable(entry, task["force"], task["sweep_start"])
        if reuse == "cached":
            return {"key": task["key"], "status": "cached"}
        if reuse == "failed":
            err = (entry.record or {}).get("error", {})
            return {"key": task["key"], "status": "failed", "error": err.get("message", ""),
                    "error_type": err.get("type", "")}
        if entry.state == "corrupt":
            cache.set_aside(task["key"])  # announced by the parent (execute); kept for inspection
        return _compute(task, cache)
    finally:
        cache.release(lock)


# ============================================================================ execution
def _dask_client(address: str):
    try:
        from dask.distributed import Client
    except ImportError:
        raise UserError("--backend dask://HOST:PORT needs dask.distributed: "
                        "pip install -e '.[cluster]'") from None
    try:
        return Client(address, timeout="20s")
    except OSError as exc:
        raise UserError(f"cannot reach the dask scheduler at {address}: {exc}") from None


def _dask_address(backend: str) -> Optional[str]:
    """``dask://HOST:PORT`` -> ``tcp://HOST:PORT`` (``dask://tls://...`` or ``tcp://...`` are passed on
    as they are); ``loky`` -> ``None``."""
    if backend == "loky":
        return None
    rest = backend[len("dask://"):] if backend.startswith("dask://") else backend
    if "://" in rest and rest.split("://", 1)[1]:
        return rest
    if rest and rest != backend and "/" not in rest:
        return "tcp://" + rest
    raise UserError(f"unknown --backend {backend!r}; use loky or dask://HOST:PORT")


@contextmanager
def _backend(backend: str) -> Iterator[Optional[str]]:
    """Connect to the dask scheduler (if any) and make joblib's dask backend the default inside."""
    address = _dask_address(backend)
    if address is None:
        yield None
        return
    from joblib import parallel_config
    client = _dask_client(address)
    try:
        with parallel_config(backend="dask"):
            yield address
    finally:
        client.close()


def _parallel(tasks: list[dict], n_jobs: int, dask: bool) -> Iterator[dict]:
    """Outcomes of ``compute_cell`` over ``tasks`` as they complete (joblib, unordered).

    With loky the worker processes are reused across calls (and sweeps in one process), so the
    pipeline's per-process caches (datasets, teachers) survive from cell to cell.
    """
    from joblib import Parallel, delayed

    calls = (delayed(compute_cell)(t) for t in tasks)
    kwargs = {} if dask else {"backend": "loky"}
    yield from Parallel(n_jobs=n_jobs, return_as="generator_unordered", batch_size=1, **kwargs)(calls)


def _order(jobs: Iterable[Job]) -> list[Job]:
    """Dispatch order: the (dataset, arch) groups interleaved, so that the first cells of a sweep need
    different teachers and workers train them side by side instead of waiting on one another; inside a
    group the largest Num first (long cells early, short ones fill the tail)."""
    groups: dict[tuple, list[Job]] = defaultdict(list)
    for j in sorted(jobs, key=lambda j: (-j.cell["num"], j.cell["seed"], j.cell["balanced"],
                                          j.cell["method"], j.cell["oe"], j.key)):
        groups[(j.cell["dataset"], j.cell["arch"])].append(j)
    lanes = [groups[g] for g in sorted(groups)]
    return [j for batch in zip_longest(*lanes) for j in batch if j is not None]


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


def execute(plan: Plan, cache: ResultCache, runner: Runner, *, n_jobs: int = 1, backend: str = "loky",
            force: bool = False, progress: bool = False) -> SweepResult:
    """Compute the plan's missing / failed / corrupt jobs (all with ``force``); reuse the rest."""
    t_start = time.time()
    sweep_start = t_start - 1e-3
    result = SweepResult()
    cache.remove_stale_temp()
    todo = []
    for job in plan.jobs.values():
        entry = cache.check(job.key)
        if entry.state == "corrupt":
            result.corrupt.append(job.key)
            _log(f"{entry.path}: {entry.problem}; set aside as {entry.path.name}{CORRUPT_SUFFIX}, recomputing")
        if entry.state == "ok" and not force:
            result.precached += 1
        else:
            todo.append(job)
    single = n_jobs != 1 or backend != "loky"
    tasks = [{
        "key": j.key, "cell": j.cell, "resolved": j.resolved, "results_dir": str(cache.results_dir),
        "profile": cache.profile, "profile_info": plan.profile.record_info(), "runner": runner,
        "force": force, "sweep_start": sweep_start, "blocking": False, "single_thread": single,
        "n_jobs": n_jobs,
    } for j in _order(todo)]
    if tasks:
        with _backend(backend) as address:
            _run_tasks(tasks, result, min(n_jobs, len(tasks)) if n_jobs > 0 else n_jobs, address is not None,
                       progress, plan.profile.name)
    cache.remove_stale_temp()
    cache.remove_stale_locks()
    result.wall_s = time.time() - t_start
    return result


def _run_tasks(tasks: list[dict], result: SweepResult, n_jobs: int, dask: bool, progress: bool,
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
                for out in _parallel(pending, n_jobs, dask):
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
                _log(f"a worker process died ({type(exc).__name__}: {exc}); retrying the unfinished cells")
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


# ============================================================================ the Python API
def _as_entries(cells: Iterable[Union[GridEntry, dict]]) -> list[GridEntry]:
    return [c if isinstance(c, GridEntry) else GridEntry(dict(c), {}) for c in cells]


def run_sweep(cells: Iterable[Union[GridEntry, dict]], *, profile: Union[Profile, str] = DEFAULT_PROFILE,
              results_dir="results", runner: Optional[Runner] = None,
              resolver: Optional[Callable[[dict], dict]] = None,
              not_applicable: Optional[Callable[[dict], Optional[str]]] = None, n_jobs: int = 1,
              backend: str = "loky", force: bool = False, progress: bool = False) -> tuple[Plan, SweepResult]:
    """Plan and execute a sweep over ``cells`` (grid entries or plain cell dicts).

    ``runner`` / ``resolver`` / ``not_applicable`` replace the pipeline's functions (tests inject fakes;
    a runner given as a callable is pickled to the workers, a ``"module:function"`` string is imported
    there).  Returns the plan and the result; records are under ``<results_dir>/<profile>/``.
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    hooks = default_hooks()
    hooks = Hooks(resolve=resolver or hooks.resolve, run=runner or hooks.run,
                  not_applicable=not_applicable or (hooks.not_applicable if resolver is None
                                                    else (lambda cell: None)))
    plan = plan_sweep(_as_entries(cells), prof, hooks)
    cache = ResultCache(results_dir, prof.name)
    return plan, execute(plan, cache, hooks.run, n_jobs=n_jobs, backend=backend, force=force,
                         progress=progress)


# ============================================================================ the command line
def add_sweep_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand's options to ``parser``."""
    from .cli import bounded
    parser.add_argument("--table", action="append", choices=["1", "2"], help="Table 1 or 2 (repeatable)")
    parser.add_argument("--figure", action="append", choices=["3a", "3b", "3c", "3d", "all"],
                        help="a Figure 3 panel, or all four (repeatable)")
    parser.add_argument("--study", action="append", choices=["protocols", "selection-bias"],
                        help="protocols: Table 2 under each fine-tuning protocol (claim2_protocols.md); "
                             "selection-bias: the oracle-test DIAGNOSTIC (selection_bias.md; never in a table)")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=list(PROFILES),
                        help="demo (default: offline, CPU, minutes) | cifar10-real | paper")
    parser.add_argument("--jobs", type=bounded(int, 1, MAX_JOBS), default=None, metavar="N",
                        help="parallel worker processes (default: the number of CPU cores; with dask, every "
                             "worker of the cluster); never more than the cells to compute")
    parser.add_argument("--seeds", type=bounded(int, 1, MAX_SEEDS, " (the paper uses 5)"), default=None, metavar="K",
                        help="run seeds 0..K-1 (default: the profile's, demo 3 / paper 5)")
    parser.add_argument("--backend", default="loky", metavar="loky|dask://HOST:PORT",
                        help="loky (local processes, default) or an existing dask.distributed scheduler "
                             "(needs the 'cluster' extra and a results directory every worker can reach)")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="dataset root (cifar10-real default: ../shared/data; paper default: ./data)")
    parser.add_argument("--teacher", action="append", default=None, metavar="[DATASET=]PATH",
                        help="teacher checkpoint, checked before any work; a bare PATH applies to every dataset "
                             "of the profile, DATASET=PATH to one it runs (repeatable)")
    parser.add_argument("--set", dest="overrides", action="append", default=None, metavar="NAME=VALUE",
                        help="override a hyperparameter in every cell it acts on, e.g. --set teacher.epochs=1 "
                             "--set mir.iters=50 (python -m benchmark params; benchmark/overrides.py)")
    parser.add_argument("--only", action="append", default=None, metavar="KEY=VALUE[,KEY=VALUE...]",
                        help="run only the grid entries matching (repeatable: any), e.g. --only "
                             "paper_dataset=cifar10,paper_num=10,method=fskd|cd (benchmark/selection.py)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the cells and what is cached; compute nothing (same checks and exit code as "
                             "the real run, as far as they are known before computing)")
    parser.add_argument("--force", action="store_true", help="recompute every cell, cached or not")
    parser.add_argument("--results-dir", default="results", metavar="DIR",
                        help="records go to DIR/<profile>/<key>.json (default: results)")
    parser.add_argument("--out-dir", default=str(Path("paper_tables") / "out"), metavar="DIR",
                        help="tables and figures go to DIR/<profile>/ (default: paper_tables/out); a table is "
                             "never replaced by one that fewer runs support")
    parser.add_argument("--no-render", action="store_true", help="do not render tables / figures")
    parser.add_argument("--render-only", action="store_true",
                        help="compute nothing: render the tables / figures from the records already cached")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")
    return parser


#: Upper bounds of --seeds / --jobs (memory and processes follow from them).
MAX_SEEDS = 1000
MAX_JOBS = 1024


def _default_jobs() -> int:
    from joblib import cpu_count
    return max(1, cpu_count())


def print_dry_run(plan: Plan, cache: ResultCache) -> Counter:
    """The cells of the plan with their cache state; returns the state counts."""
    states: Counter = Counter()
    print(f"{'key':<20}  {'state':<8}  cell  [artifacts]")
    for job in _order(plan.jobs.values()):
        entry = cache.check(job.key)
        states[entry.state] += 1
        if entry.state == "corrupt":
            _log(f"{entry.path}: {entry.problem}; a real run sets it aside as {entry.path.name}{CORRUPT_SUFFIX} "
                 "and recomputes it")
        arts = ",".join(sorted({e.tag.get("artifact", "?") for e in job.entries}))
        print(f"{job.key:<20}  {entry.state:<8}  {job.label()}  [{arts}]")
    na = {(e.cell["method"], e.cell["arch"], r) for e, k, r in zip(plan.entries, plan.entry_kinds,
                                                                     plan.entry_reasons) if k == "na"}
    for method, arch, reason in sorted(na):
        print(f"{'-':<20}  {'n/a':<8}  {method} on {arch}: {reason}")
    return states


def plan_from_args(args: argparse.Namespace) -> tuple[Plan, ResultCache, int]:
    """The plan, the cache and the number of jobs that the command line asks for, after every check that
    can be made before any work (:mod:`benchmark.preflight`; the teachers once, before planning)."""
    from .preflight import check_arguments, check_teachers
    artifacts = artifacts_for(args.table, args.figure, getattr(args, "study", None))
    profile = get_profile(args.profile, args.data_root, args.teacher)
    check_arguments(args, profile)
    profile = with_overrides(profile, parse_sweep_overrides(getattr(args, "overrides", None)))
    only = parse_selection(getattr(args, "only", None))
    dask = _dask_address(args.backend) is not None
    n_jobs = args.jobs if args.jobs is not None else (-1 if dask else _default_jobs())
    seeds = list(range(profile.n_seeds if args.seeds is None else args.seeds))
    entries = select_entries(build_grid(artifacts, profile, seeds), only)
    cache = ResultCache(args.results_dir, profile.name)
    if getattr(args, "render_only", False):
        # rendering reads the records only: no data file is opened, no teacher checked or hashed
        from .record_plan import plan_from_records
        return plan_from_records(entries, profile, cache, artifacts, seeds, _log), cache, n_jobs
    hooks = default_hooks()
    check_teachers((e.cell for e in entries), hooks.check_teacher)
    plan = plan_sweep(entries, profile, hooks, artifacts, seeds)
    return plan, cache, n_jobs


def _plan_summary(plan: Plan, cache: ResultCache, dry_run: bool) -> dict[str, Any]:
    skip_lines = report_skipped(plan)
    for line in skip_lines + report_skipped(plan, "error"):
        _log(line)
    return {
        "command": "sweep", "profile": plan.profile.name, "artifacts": plan.artifacts,
        "seeds": len(plan.seeds),
        "grid_cells": len(plan.entries), "unique_cells": len(plan.jobs), "skipped": plan.count("skipped"),
        "not_applicable": plan.count("na"), "skip_reasons": skip_lines, "resolve_errors": plan.count("error"),
        "results_dir": str(cache.dir), "dry_run": dry_run,
    }


def plan_exit_code(plan: Plan, summary: dict) -> int:
    """The exit code that the plan alone decides, the same for a dry run and a real run: 1 when a cell
    could not be resolved (a bug), when nothing can run, or when a cell is skipped outside a profile
    that expects skips (``paper``: a column without data or teacher); else 0."""
    bad_skip = summary["skipped"] and (not plan.profile.skip_missing or not plan.jobs)
    return 1 if summary["resolve_errors"] or bad_skip or not plan.jobs else 0


def _dry_run(plan: Plan, cache: ResultCache, force: bool, summary: dict) -> int:
    states = print_dry_run(plan, cache)
    summary.update(cached=states["ok"], failed=states["failed"], corrupt=states["corrupt"],
                   to_compute=len(plan.jobs) - (0 if force else states["ok"]), computed=0)
    print(f"{len(plan.jobs)} unique cells ({len(plan.entries)} grid entries): {states['ok']} cached, "
          f"{states['failed']} failed, {states['corrupt']} corrupt, {states['missing']} missing; "
          f"{summary['to_compute']} would be computed; {summary['skipped']} skipped, "
          f"{summary['not_applicable']} not applicable")
    return plan_exit_code(plan, summary)


def _supported(plan: Plan, cache: ResultCache) -> int:
    """How many of the plan's cells have an ok record (what a render could show)."""
    return sum(1 for key in plan.jobs if cache.check(key).state == "ok")


def _run_and_render(plan: Plan, cache: ResultCache, n_jobs: int, args: argparse.Namespace,
                    summary: dict) -> int:
    result = execute(plan, cache, default_hooks().run, n_jobs=n_jobs, backend=args.backend, force=args.force,
                     progress=not args.no_progress)
    counts = result.counts()
    summary.update(computed=counts["done"], cached=counts["cached"],
                   failed=counts["failed"] + summary["resolve_errors"],
                   corrupt_recomputed=len(result.corrupt), jobs=n_jobs, backend=args.backend)
    failures = [o for o in result.outcomes.values() if o["status"] == "failed"]
    for o in failures[:10]:
        _log(f"failed {o['key']}: {o.get('error_type', '')}: {o.get('error', '')}")
    if len(failures) > 10:
        _log(f"... and {len(failures) - 10} more failed cells (see their records)")
    rendered = ""
    if not args.no_render:
        rendered = _render_if_supported(plan, cache, args, summary, counts["done"] + counts["cached"])
    print(f"{plan.profile.name}: {len(plan.jobs)} unique cells: {counts['done']} computed, "
          f"{counts['cached']} cached, {summary['failed']} failed, {summary['skipped']} skipped, "
          f"{summary['not_applicable']} not applicable ({result.wall_s:.1f} s){rendered}")
    return max(plan_exit_code(plan, summary), 1 if summary["failed"] else 0)


def _render_if_supported(plan: Plan, cache: ResultCache, args: argparse.Namespace, summary: dict,
                         supported: int) -> str:
    """Render unless no cell of the plan has a record (then the outputs are left as they were); returns
    a note for the summary line."""
    if not supported:
        summary["outputs"] = {}
        return f"; nothing rendered (no cell has a record), {Path(args.out_dir) / plan.profile.name} left as it was"
    _render(plan, cache, args, summary)
    return ""


def _render(plan: Plan, cache: ResultCache, args: argparse.Namespace, summary: dict) -> None:
    from .render_outputs import render_all
    out_dir = Path(args.out_dir) / plan.profile.name
    try:
        outputs = render_all(plan, cache, out_dir, log=_log)
    except OSError as exc:
        raise UserError(f"cannot write the outputs to {out_dir} ({exc.strerror or exc}): pass a writable --out-dir "
                        "DIR and rerun with --render-only") from None
    summary["outputs"] = {k: [str(p) for p in v] for k, v in outputs.items()}
    for name, paths in summary["outputs"].items():
        _log(f"wrote {name}: {', '.join(paths)}")


def _render_only(plan: Plan, cache: ResultCache, args: argparse.Namespace, summary: dict) -> int:
    """Render from the cached records; cells without a record show as missing (for long, partial sweeps)."""
    present = _supported(plan, cache)
    note = _render_if_supported(plan, cache, args, summary, present)
    print(f"{plan.profile.name}: {len(plan.jobs)} unique cells, {present} with a record; rendered without "
          f"computing{note}")
    return 0 if present else 1


def run_sweep_command(args: argparse.Namespace) -> int:
    """``python -m benchmark sweep``: check, plan, then dry-run or execute + render, then summarise.

    Exit code 2 for bad input found before any work (one line); 1 when a cell failed or nothing could
    run, or, outside the ``paper`` profile (where a column without data or teacher is expected to be
    skipped, as long as something runs), a cell was skipped; 0 otherwise.  A dry run returns what the
    real run would, failures of cells aside.  Human-readable lines go to stdout, progress and
    diagnostics to stderr; with ``--json`` the last stdout line is the summary.
    """
    t0 = time.time()
    plan, cache, n_jobs = plan_from_args(args)
    summary = _plan_summary(plan, cache, bool(args.dry_run))
    if args.dry_run:
        code = _dry_run(plan, cache, args.force, summary)
    elif getattr(args, "render_only", False):
        code = _render_only(plan, cache, args, summary)
    else:
        code = _run_and_render(plan, cache, n_jobs, args, summary)
    summary["wall_s"] = round(time.time() - t0, 3)
    summary["exit_code"] = code
    if args.json:
        from .cli import emit_json
        emit_json(summary)
    return code


def main(argv: Optional[list[str]] = None) -> int:
    """Stand-alone entry (``python -m benchmark.sweep``), the same as ``python -m benchmark sweep``."""
    from .cli import PROG_ENV, Parser, _debug_wanted, add_debug_flag, guarded
    argv = list(sys.argv[1:] if argv is None else argv)

    def run() -> int:
        parser = Parser(prog=os.environ.get(PROG_ENV) or "python -m benchmark sweep",
                        description=__doc__.split("\n")[0])
        add_debug_flag(add_sweep_arguments(parser), top=True)
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help (0) or a one-line command-line error (2), already printed
            return exc.code if isinstance(exc.code, int) else 2
        return run_sweep_command(args)
    return guarded(run, _debug_wanted(argv))


if __name__ == "__main__":
    sys.exit(main())
