"""The sweep's library API: :func:`run_sweep` (plan + execute over cells), and the names of the sweep's
modules under one roof, as they were before the sweep was split by job.

Architecture (grid -> cell -> record -> table), one module per step::

    benchmark/grids.py       build_grid(artifacts, profile, seeds): GridEntry(cell, tag) per (paper cell, seed)
    benchmark/plan.py        plan_sweep: resolve each cell (cheap), drop overrides equal to the defaults, key
                             it, merge entries with the same key into one Job (computed once)
    benchmark/hooks.py       what the sweep calls of the pipeline (resolve_config / run_config), plug-ins first
    benchmark/execution.py   execute: ok records are reused; missing / failed / corrupt ones go to a launcher
    benchmark/launchers.py   loky (long-lived local processes) | dask://HOST:PORT | slurm[:PARTITION]
    benchmark/worker.py      in a worker: take the cell's lock, re-check the cache, run
                             ``oefsmc.pipeline.run_config``, write the record atomically (ok or failed)
    benchmark/render_outputs.py   records + tags -> paper_tables renderers -> paper_tables/out/<profile>/
    benchmark/sweep_cli.py   ``python -m benchmark sweep``: options, checks, dry run, summary, exit code

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

import sys
from typing import Callable, Iterable, Optional, Union

from oefsmc.errors import InputError, UserError  # noqa: F401  (re-exported)

from .cache import ResultCache
from .execution import SweepResult, execute
from .grids import GridEntry
from .hooks import (DEFAULT_EXTRAS, DEFAULT_PIPELINE, FAKE_PIPELINE_ENV, Hooks, Runner,  # noqa: F401  (re-exported)
                    default_hooks, load_callable)
from .launchers import LAUNCHERS, _dask_address, get_launcher  # noqa: F401  (re-exported)
from .plan import Job, Plan, memo, normalise_cell, order, plan_sweep, report_skipped  # noqa: F401  (re-exported)
from .profiles import DEFAULT_PROFILE, Profile, get_profile
from .sweep_cli import (MAX_JOBS, MAX_SEEDS, add_sweep_arguments, main, plan_exit_code,  # noqa: F401  (re-exported)
                        plan_from_args, print_dry_run, run_sweep_command)
from .worker import claim_cells, compute_cell  # noqa: F401  (re-exported)


def _as_entries(cells: Iterable[Union[GridEntry, dict]]) -> list[GridEntry]:
    return [c if isinstance(c, GridEntry) else GridEntry(dict(c), {}) for c in cells]


def run_sweep(cells: Iterable[Union[GridEntry, dict]], *, profile: Union[Profile, str] = DEFAULT_PROFILE,
              results_dir="results", runner: Optional[Runner] = None,
              resolver: Optional[Callable[[dict], dict]] = None,
              not_applicable: Optional[Callable[[dict], Optional[str]]] = None, n_jobs: int = 1,
              backend: str = "loky", force: bool = False, progress: bool = False,
              backend_options: Optional[dict] = None) -> tuple[Plan, SweepResult]:
    """Plan and execute a sweep over ``cells`` (grid entries or plain cell dicts).

    ``runner`` / ``resolver`` / ``not_applicable`` replace the pipeline's functions (tests inject fakes;
    a runner given as a callable is pickled to the workers, a ``"module:function"`` string is imported
    there).  ``backend`` / ``backend_options``: as ``--backend`` / ``--backend-opt``
    (:mod:`benchmark.launchers`).  Returns the plan and the result; records are under
    ``<results_dir>/<profile>/``.
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    hooks = default_hooks()
    hooks = Hooks(resolve=resolver or hooks.resolve, run=runner or hooks.run,
                  not_applicable=not_applicable or (hooks.not_applicable if resolver is None
                                                    else (lambda cell: None)))
    plan = plan_sweep(_as_entries(cells), prof, hooks)
    cache = ResultCache(results_dir, prof.name)
    return plan, execute(plan, cache, hooks.run, n_jobs=n_jobs, backend=backend, force=force,
                         progress=progress, backend_options=backend_options)


if __name__ == "__main__":
    sys.exit(main())
