"""Planning a sweep: grid entries -> unique jobs (resolved, normalised, keyed), and the report of what is skipped.

``plan_sweep`` resolves each cell (cheap: ``resolve_config`` reads no data beyond fingerprints), drops the
overrides equal to the defaults, keys it (:func:`benchmark.cache.cell_key`) and merges entries with the
same key into one :class:`Job`, so the same experiment is computed once.  :func:`order` is the dispatch
order of the jobs.  Nothing here starts a worker or renders a table (:mod:`benchmark.execution`,
:mod:`benchmark.launchers`, :mod:`benchmark.sweep_cli`).
"""
from __future__ import annotations

import sys
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any, Callable, Iterable, Optional

from oefsmc.errors import InputError, UserError

from .cache import canonical_json, cell_key
from .grids import GridEntry
from .hooks import Hooks
from .profiles import PAPER_ARCH_LABELS, PAPER_COLUMNS, PAPER_DATASET_LABELS, Profile


def log(msg: str) -> None:
    """A ``[sweep]`` line on stderr (progress and diagnostics; stdout is for results)."""
    print(f"[sweep] {msg}", file=sys.stderr, flush=True)


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


def memo(fn: Callable[[dict], Any]) -> Callable[[dict], Any]:
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
    resolve = memo(hooks.resolve)
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
                log("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip())
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


def order(jobs: Iterable[Job]) -> list[Job]:
    """Dispatch order: the (dataset, arch) groups interleaved, so that the first cells of a sweep need
    different teachers and workers train them side by side instead of waiting on one another; inside a
    group the largest Num first (long cells early, short ones fill the tail)."""
    groups: dict[tuple, list[Job]] = defaultdict(list)
    for j in sorted(jobs, key=lambda j: (-j.cell["num"], j.cell["seed"], j.cell["balanced"],
                                          j.cell["method"], j.cell["oe"], j.key)):
        groups[(j.cell["dataset"], j.cell["arch"])].append(j)
    lanes = [groups[g] for g in sorted(groups)]
    return [j for batch in zip_longest(*lanes) for j in batch if j is not None]


_memo, _order = memo, order  # the names of before the split
