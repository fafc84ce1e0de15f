"""``python -m benchmark sweep``: run the grid of a paper artifact, cache every cell, render the outputs.

The command line of the sweep: its options (:func:`add_sweep_arguments`), the plan they ask for after every
check that can be made before any work (:func:`plan_from_args`), then a dry run (:func:`print_dry_run`), a
render of the records present (``--render-only``), or :func:`benchmark.execution.execute` and a render; the
summary line and the exit code (:func:`run_sweep_command`).  ``python -m benchmark.sweep_cli`` (and
``python -m benchmark.sweep``) is the same as ``python -m benchmark sweep``.

Architecture (grid -> cell -> record -> table)::

    grids.build_grid(artifacts, profile, seeds)      GridEntry(cell, tag) per (paper cell, seed)
      -> plan.plan_sweep: resolve each cell (cheap), drop overrides equal to the defaults, key it,
         merge entries with the same key into one Job (the same experiment is computed once)
      -> ResultCache.check: ok records are reused; missing / failed / corrupt ones are (re)computed
      -> execution.execute on a launcher (loky, long-lived worker processes; an existing dask cluster;
         a SLURM job array); each worker takes the cell's lock, re-checks the cache, runs
         ``oefsmc.pipeline.run_config`` and writes the record atomically (worker.compute_cell); a failure
         is recorded with its error and the sweep goes on
      -> render_outputs: records + tags -> paper_tables renderers -> paper_tables/out/<profile>/
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from oefsmc.errors import UserError

from .cache import CORRUPT_SUFFIX, ResultCache
from .execution import execute
from .grids import FIGURE_CHOICES, STUDIES, TABLE_NUMBERS, artifacts_for, build_grid
from .hooks import default_hooks
from .launchers import get_launcher, parse_backend_options
from .overrides import parse_sweep_overrides, with_overrides
from .plan import Plan, log, order, plan_sweep, report_skipped
from .profiles import DEFAULT_PROFILE, PROFILES, get_profile
from .selection import parse_selection, select_entries


def add_sweep_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand's options to ``parser``."""
    from .cli import bounded
    parser.add_argument("--table", action="append", choices=list(TABLE_NUMBERS), help="Table 1 or 2 (repeatable)")
    parser.add_argument("--figure", action="append", choices=list(FIGURE_CHOICES),
                        help="a Figure 3 panel, or all four (repeatable)")
    parser.add_argument("--study", action="append", choices=list(STUDIES),
                        help="protocols: Table 2 under each fine-tuning protocol (claim2_protocols.md); "
                             "selection-bias: the oracle-test DIAGNOSTIC (selection_bias.md; never in a table)")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=list(PROFILES),
                        help="demo (default: offline, CPU, minutes) | cifar10-real | cifar100-real | paper")
    parser.add_argument("--jobs", type=bounded(int, 1, MAX_JOBS), default=None, metavar="N",
                        help="parallel worker processes (default: the number of CPU cores; with dask, every "
                             "worker of the cluster; with slurm, one array task per cell); never more than the "
                             "cells to compute")
    parser.add_argument("--seeds", type=bounded(int, 1, MAX_SEEDS, " (the paper uses 5)"), default=None, metavar="K",
                        help="run seeds 0..K-1 (default: the profile's, demo 3 / paper 5)")
    parser.add_argument("--backend", default="loky", metavar="loky|dask://HOST:PORT|slurm[:PARTITION]",
                        help="loky (local processes, default), an existing dask.distributed scheduler, or one "
                             "SLURM job array (dask and slurm need the 'cluster' extra and a results directory "
                             "every worker can reach; benchmark/launchers.py)")
    parser.add_argument("--backend-opt", dest="backend_opt", action="append", default=None, metavar="KEY=VALUE",
                        help="an option of the slurm backend (repeatable), e.g. --backend-opt timeout_min=60 "
                             "--backend-opt cpus_per_task=2 --backend-opt mem_gb=8 --backend-opt folder=.slurm")
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
    for job in order(plan.jobs.values()):
        entry = cache.check(job.key)
        states[entry.state] += 1
        if entry.state == "corrupt":
            log(f"{entry.path}: {entry.problem}; a real run sets it aside as {entry.path.name}{CORRUPT_SUFFIX} "
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
    launcher = get_launcher(args.backend, parse_backend_options(getattr(args, "backend_opt", None)))
    n_jobs = args.jobs if args.jobs is not None else (-1 if launcher.remote else _default_jobs())
    seeds = list(range(profile.n_seeds if args.seeds is None else args.seeds))
    entries = select_entries(build_grid(artifacts, profile, seeds), only)
    cache = ResultCache(args.results_dir, profile.name)
    if getattr(args, "render_only", False):
        # rendering reads the records only: no data file is opened, no teacher checked or hashed
        from .record_plan import plan_from_records
        return plan_from_records(entries, profile, cache, artifacts, seeds, log), cache, n_jobs
    hooks = default_hooks()
    check_teachers((e.cell for e in entries), hooks.check_teacher, profile.teacher_hints)
    plan = plan_sweep(entries, profile, hooks, artifacts, seeds)
    return plan, cache, n_jobs


def _plan_summary(plan: Plan, cache: ResultCache, dry_run: bool) -> dict[str, Any]:
    from .record_plan import records_from_other_stacks, records_under_other_choices
    skip_lines = report_skipped(plan)
    for line in skip_lines + report_skipped(plan, "error"):
        log(line)
    for note in (records_under_other_choices, records_from_other_stacks):
        line = note(plan, cache) if plan.jobs else None
        if line:
            log(line)
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
                     progress=not args.no_progress,
                     backend_options=parse_backend_options(getattr(args, "backend_opt", None)))
    counts = result.counts()
    summary.update(computed=counts["done"], cached=counts["cached"],
                   failed=counts["failed"] + summary["resolve_errors"],
                   corrupt_recomputed=len(result.corrupt), jobs=n_jobs, backend=args.backend)
    failures = [o for o in result.outcomes.values() if o["status"] == "failed"]
    for o in failures[:10]:
        log(f"failed {o['key']}: {o.get('error_type', '')}: {o.get('error', '')}")
    if len(failures) > 10:
        log(f"... and {len(failures) - 10} more failed cells (see their records)")
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
        outputs = render_all(plan, cache, out_dir, log=log)
    except OSError as exc:
        raise UserError(f"cannot write the outputs to {out_dir} ({exc.strerror or exc}): pass a writable --out-dir "
                        "DIR and rerun with --render-only") from None
    summary["outputs"] = {k: [str(p) for p in v] for k, v in outputs.items()}
    for name, paths in summary["outputs"].items():
        log(f"wrote {name}: {', '.join(paths)}")


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
    """Stand-alone entry (``python -m benchmark.sweep_cli``, or ``python -m benchmark.sweep``), the same as
    ``python -m benchmark sweep``."""
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
