"""Launchers: where a sweep's workers run, picked by ``--backend`` from :data:`LAUNCHERS`.

==========================  ========================================================================
``loky`` (default)          ``--jobs N`` long-lived local worker processes (joblib); they keep datasets
                            and teachers in memory from cell to cell
``dask://HOST:PORT``        the workers of an existing dask.distributed scheduler (joblib's dask
                            backend); ``tcp://``, ``tls://`` and ``inproc://`` addresses pass as they are
==========================  ========================================================================

Every launcher runs :func:`benchmark.worker.compute_cell` on the tasks of :func:`benchmark.sweep.execute`
and yields the outcomes as they come, at most one per cell.  The records must be written where the
submitting machine reads them: a results directory on a shared file system.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator, Mapping, Optional

from oefsmc.errors import UserError

from .worker import compute_cell

#: The forms ``--backend`` accepts, as the one-line errors name them.
BACKEND_FORMS = ("loky", "dask://HOST:PORT")
CLUSTER_EXTRA = "pip install 'oefsmc-repro[cluster]'"


def _log(msg: str) -> None:
    print(f"[sweep] {msg}", file=sys.stderr, flush=True)


def unknown_backend(backend: str) -> UserError:
    return UserError(f"unknown --backend {backend!r}; use {' or '.join(BACKEND_FORMS)}")


class Launcher:
    """Runs the workers.  ``session()`` holds what the sweep needs open (a connection, a folder);
    ``run(tasks, n_jobs)`` yields :func:`~benchmark.worker.compute_cell` outcomes, at most one per key."""

    name = ""
    #: True when the workers are elsewhere (``--jobs`` then defaults to "as many as there are").
    remote = False

    def __init__(self, backend: str, options: Mapping[str, str]):
        self.backend = backend
        if options:
            raise UserError(f"--backend {backend} takes no options")

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


#: backend name -> launcher class; :func:`get_launcher` reads ``--backend`` into one.
LAUNCHERS: dict[str, type[Launcher]] = {"loky": LokyLauncher, "dask": DaskLauncher}


def backend_name(backend: str) -> str:
    """The registry name of a ``--backend`` value (one-line :class:`UserError` for an unknown one)."""
    if backend in LAUNCHERS and backend != "dask":
        return backend
    _dask_address(backend)  # raises for anything that is not an address
    return "dask"


def get_launcher(backend: str, options: Optional[Mapping[str, str]] = None) -> Launcher:
    """The launcher of a ``--backend`` value with its ``--backend-opt`` options."""
    return LAUNCHERS[backend_name(backend)](backend, dict(options or {}))
