"""Launchers: where a sweep's workers run, picked by ``--backend`` from :data:`LAUNCHERS`.

==========================  ========================================================================
``loky`` (default)          ``--jobs N`` long-lived local worker processes (joblib); they keep datasets
                            and teachers in memory from cell to cell
``dask://HOST:PORT``        the workers of an existing dask.distributed scheduler (joblib's dask
                            backend); ``tcp://``, ``tls://`` and ``inproc://`` addresses pass as they are
``slurm[:PARTITION]``       one SLURM job array per sweep (submitit), ``--jobs N`` array tasks (default:
                            one per cell to compute); ``--backend-opt KEY=VALUE`` sets its resources
==========================  ========================================================================

Every launcher runs :func:`benchmark.worker.compute_cell` on the tasks of :func:`benchmark.execution.execute`
and yields the outcomes as they come, at most one per cell.  A task of a SLURM array walks the whole list
(:func:`benchmark.worker.claim_cells`) and computes the cells whose per-cell lock it gets, so the array's
tasks, and other sweeps sharing the results directory, compute each cell once.  The records must be
written where the submitting machine reads them: a results directory on a shared file system.
"""
from __future__ import annotations

import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Optional

from oefsmc.errors import UserError

from .plan import log
from .worker import claim_cells, compute_cell

#: The forms ``--backend`` accepts, as the one-line errors name them.
BACKEND_FORMS = ("loky", "dask://HOST:PORT", "slurm[:PARTITION]")
CLUSTER_EXTRA = "pip install 'oefsmc-repro[cluster]'"


def unknown_backend(backend: str) -> UserError:
    return UserError(f"unknown --backend {backend!r}; use one of: {', '.join(BACKEND_FORMS)}")


class Launcher:
    """Runs the workers.  ``session()`` holds what the sweep needs open (a connection, a folder);
    ``run(tasks, n_jobs)`` yields :func:`~benchmark.worker.compute_cell` outcomes, at most one per key."""

    name = ""
    #: True when the workers are elsewhere (``--jobs`` then defaults to "as many as there are").
    remote = False

    def __init__(self, backend: str, options: Mapping[str, str]):
        self.backend = backend
        if options:
            raise UserError(f"--backend-opt applies to --backend slurm[:PARTITION] only, not to --backend {backend}: "
                            "drop it")

    @contextmanager
    def session(self) -> Iterator[None]:
        yield

    def run(self, tasks: list[dict], n_jobs: int) -> Iterator[dict]:
        raise NotImplementedError


def _joblib_map(tasks: list[dict], n_jobs: int, **kwargs) -> Iterator[dict]:
    """Outcomes of ``compute_cell`` over ``tasks`` as they complete (joblib, unordered)."""
    from joblib import Parallel, delayed

    calls = (delayed(compute_cell)(t) for t in tasks)
    yield from Parallel(n_jobs=n_jobs, return_as="generator_unordered", batch_size=1, **kwargs)(calls)


class LokyLauncher(Launcher):
    """Local worker processes, reused across calls (and sweeps in one process), so the pipeline's
    per-process caches (datasets, teachers) survive from cell to cell."""

    name = "loky"

    def run(self, tasks: list[dict], n_jobs: int) -> Iterator[dict]:
        yield from _joblib_map(tasks, n_jobs, backend="loky")


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
    raise unknown_backend(backend)


class DaskLauncher(Launcher):
    """The workers of an existing dask.distributed scheduler, through joblib's dask backend."""

    name = "dask"
    remote = True

    def __init__(self, backend: str, options: Mapping[str, str]):
        super().__init__(backend, options)
        self.address = _dask_address(backend)

    @contextmanager
    def session(self) -> Iterator[None]:
        try:
            from dask.distributed import Client
        except ImportError:
            raise UserError(f"--backend dask://HOST:PORT needs dask.distributed: {CLUSTER_EXTRA}") from None
        from joblib import parallel_config
        try:
            client = Client(self.address, timeout="20s")
        except OSError as exc:
            raise UserError(f"cannot reach the dask scheduler at {self.address}: {exc}") from None
        try:
            with parallel_config(backend="dask"):
                yield
        finally:
            client.close()

    def run(self, tasks: list[dict], n_jobs: int) -> Iterator[dict]:
        yield from _joblib_map(tasks, n_jobs)


#: ``--backend-opt`` keys of the slurm launcher itself (the others go to submitit's ``update_parameters``:
#: timeout_min, mem_gb, cpus_per_task, gpus_per_node, name, and any ``slurm_*`` sbatch option).
SLURM_OWN_OPTIONS = {"folder": ".slurm", "cluster": "slurm", "poll_s": "10"}
SLURM_DEFAULTS = {"timeout_min": "240", "cpus_per_task": "1"}
#: The types of submitit's shared parameters (``AutoExecutor._typed_parameters``), checked before any work.
SHARED_TYPES = {"timeout_min": int, "mem_gb": float, "cpus_per_task": int, "gpus_per_node": int, "nodes": int,
                "tasks_per_node": int, "name": str}


class SlurmLauncher(Launcher):
    """One SLURM job array per call (submitit); each array task runs :func:`~benchmark.worker.claim_cells`.

    ``--backend-opt``: ``timeout_min`` (default 240), ``cpus_per_task`` (1: a cell runs on one intra-op
    thread), ``mem_gb``, ``gpus_per_node``, ``slurm_<sbatch option>`` (e.g. ``slurm_account=ACCOUNT``,
    ``slurm_array_parallelism=32``), ``folder`` (submitit's scripts and logs, default ``.slurm/``),
    ``poll_s`` (how often the array's state is read, default 10) and ``cluster`` (``local`` runs the
    array's tasks as processes on this machine, through the same code: for tests).
    """

    name = "slurm"
    remote = True

    def __init__(self, backend: str, options: Mapping[str, str]):
        super().__init__(backend, {})
        _, _, self.partition = backend.partition(":")
        if backend != "slurm" and (not self.partition or "/" in self.partition):
            raise unknown_backend(backend)
        merged = {**SLURM_OWN_OPTIONS, **SLURM_DEFAULTS, **options}
        self.folder = Path(merged.pop("folder"))
        self.cluster = merged.pop("cluster")
        try:
            self.poll_s = float(merged.pop("poll_s"))
        except ValueError:
            raise UserError("--backend-opt poll_s: expected seconds, e.g. poll_s=10") from None
        if self.cluster not in ("slurm", "local"):
            raise UserError(f"--backend-opt cluster={self.cluster}: use slurm (the default) or local")
        if self.partition:
            merged["slurm_partition"] = self.partition
        self.parameters = {k: _typed(k, v, SHARED_TYPES.get(k)) for k, v in merged.items()}
        self.executor = None

    def _executor(self):
        try:
            import cloudpickle  # noqa: F401  (submitit's, and the task list's, pickler)
            import submitit
        except ImportError:
            raise UserError(f"--backend slurm needs submitit: {CLUSTER_EXTRA}") from None
        if self.cluster == "slurm" and submitit.SlurmExecutor.affinity() < 0:
            raise UserError("--backend slurm: no SLURM here (srun is not on PATH): submit from a login node of the "
                            "cluster, or pass --backend-opt cluster=local to run the array on this machine")
        executor = submitit.AutoExecutor(folder=str(self.folder), cluster=self.cluster)
        try:
            executor.update_parameters(**{"name": "oefsmc-sweep", **self.parameters})
        except (NameError, AssertionError, ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"--backend-opt: {first}") from None
        return executor

    @contextmanager
    def session(self) -> Iterator[None]:
        self.executor = self._executor()
        try:
            yield
        finally:
            self.executor = None

    def run(self, tasks: list[dict], n_jobs: int) -> Iterator[dict]:
        import cloudpickle
        from submitit.helpers import as_completed

        width = len(tasks) if n_jobs <= 0 else min(n_jobs, len(tasks))
        self.folder.mkdir(parents=True, exist_ok=True)
        task_file = (self.folder / f"tasks-{uuid.uuid4().hex[:12]}.pkl").absolute()
        task_file.write_bytes(cloudpickle.dumps([dict(t, n_jobs=1) for t in tasks]))
        jobs = self.executor.map_array(claim_cells, [str(task_file)] * width)
        where = self.cluster + (f":{self.partition}" if self.partition else "")
        log(f"submitted {width} array task{'s' if width != 1 else ''} ({where}, job {jobs[0].job_id.split('_')[0]}); "
             f"scripts and logs in {self.folder}")
        definitive: set[str] = set()
        held: dict[str, dict] = {}
        errors: list[str] = []
        try:
            for job in as_completed(jobs, poll_frequency=self.poll_s):
                try:
                    pairs = job.result()
                except Exception as exc:  # noqa: BLE001  (the array task died: timeout, memory, node)
                    errors.append(f"{job.job_id}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}")
                    continue
                for outcome, computed in pairs:
                    key = outcome["key"]
                    if key in definitive:
                        continue
                    if computed:
                        definitive.add(key)
                        held.pop(key, None)
                        yield outcome
                    elif key not in held or outcome["status"] != "locked":
                        held[key] = outcome
        finally:
            for job in jobs:
                if not job.done():
                    job.cancel(check=False)
            task_file.unlink(missing_ok=True)
        yield from held.values()  # cached / failed by another sweep, or locked: the caller retries those
        if errors:
            raise RuntimeError(f"{len(errors)} of {width} array tasks failed (logs in {self.folder}): {errors[0]}")


def _typed(name: str, value: str, kind) -> object:
    """A ``--backend-opt`` value as submitit wants it: its declared type, else an int when it is one."""
    if kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            raise UserError(f"--backend-opt {name}={value}: expected {'an integer' if kind is int else 'a number'}"
                            ) from None
    return int(value) if kind is None and value.isdigit() else value


#: backend name -> launcher class; :func:`get_launcher` reads ``--backend`` into one.
LAUNCHERS: dict[str, type[Launcher]] = {"loky": LokyLauncher, "dask": DaskLauncher, "slurm": SlurmLauncher}


def backend_name(backend: str) -> str:
    """The registry name of a ``--backend`` value (one-line :class:`UserError` for an unknown one)."""
    if backend in LAUNCHERS and backend != "dask":
        return backend
    if backend.startswith("slurm:"):
        return "slurm"
    _dask_address(backend)  # raises for anything that is not an address
    return "dask"


def parse_backend_options(items: Optional[list[str]]) -> dict[str, str]:
    """``["timeout_min=60", ...]`` (repeatable ``--backend-opt``) -> ``{"timeout_min": "60"}``."""
    out = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UserError(f"--backend-opt {item!r}: expected KEY=VALUE, e.g. --backend-opt timeout_min=60")
        out[key.strip()] = value.strip()
    return out


def get_launcher(backend: str, options: Optional[Mapping[str, str]] = None) -> Launcher:
    """The launcher of a ``--backend`` value with its ``--backend-opt`` options."""
    return LAUNCHERS[backend_name(backend)](backend, dict(options or {}))
