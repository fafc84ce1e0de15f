"""``python -m benchmark records``: which committed records a profile's grids still use, and which none does.

A record is used when its key is the key of some entry of the profile's grids -- every artifact
(:data:`benchmark.grids.ARTIFACTS`: the tables, the four Figure 3 panels and both studies) over the profile's
seeds.  A record no grid uses is *unused*: made under an older results schema, an older default, another
evaluation precision or data file, or for a seed or cell the grids no longer hold.  Each is listed with the
reason its key is not planned; ``--delete`` removes the unused ones (issue 11: "delete records that no grid
uses any more"; commit the deletion with ``git add -A results/<profile>``).

Planning opens the data and hashes the teachers (the keys depend on them), as a sweep's planning does.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Optional

from .cli import command, emit_json

#: the reason of an unused record whose schema is current and whose experiment a grid holds
OTHER_KEY = ("the same experiment is planned under another key (a default, the data, the teacher or the "
             "precision changed)")
NOT_IN_GRID = "no grid entry of the profile is this experiment (another seed, cell or override)"


def _args(p: argparse.ArgumentParser) -> None:
    from .profiles import PROFILES
    p.add_argument("--profile", choices=sorted(PROFILES), required=True, help="the profile whose records to check")
    p.add_argument("--results-dir", default="results", metavar="DIR", help="records are in DIR/<profile>/")
    p.add_argument("--data-root", default=None, metavar="DIR", help="dataset root (as for sweep)")
    p.add_argument("--teacher", action="append", default=None, metavar="[DATASET=]PATH",
                   help="teacher checkpoint (as for sweep; repeatable)")
    p.add_argument("--seeds", type=int, default=None, metavar="K",
                   help="the grids' seeds 0..K-1 (default: the profile's)")
    p.add_argument("--delete", action="store_true", help="delete the unused records (nothing else is touched)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object, the last line of stdout")


def unused_records(plan, cache, spaces) -> list[dict]:
    """The records of ``cache`` no entry of ``plan`` uses, each with its key, file, cell and reason."""
    from .cache import RESULTS_SCHEMA_VERSION
    from .record_plan import cell_identity
    used = {k for k in plan.entry_keys if k}
    planned_ids = {cell_identity(e.cell, spaces) for e in plan.entries}
    loose = lambda c: cell_identity({k: v for k, v in c.items() if k != "eval_precision"}, spaces)  # noqa: E731
    planned_any_precision = {loose(e.cell) for e in plan.entries}
    out = []
    for path in sorted(Path(cache.dir).glob("*.json")):
        key = path.stem
        if key in used:
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            out.append({"key": key, "path": str(path), "cell": None, "reason": f"unreadable ({exc})"})
            continue
        cell = record.get("cell") or {}
        schema = record.get("schema_version")
        if schema != RESULTS_SCHEMA_VERSION:
            reason = f"results schema {schema} (current {RESULTS_SCHEMA_VERSION})"
        elif cell and cell_identity(cell, spaces) in planned_ids:
            reason = OTHER_KEY
        elif cell and loose(cell) in planned_any_precision:
            reason = (f"evaluated in {(record.get('config') or {}).get('eval_precision')}; the profile pins "
                      f"{plan.profile.eval_precision}")
        else:
            reason = NOT_IN_GRID
        out.append({"key": key, "path": str(path), "cell": cell, "reason": reason})
    return out


def _describe(cell: Optional[dict]) -> str:
    if not cell:
        return "?"
    over = " ".join(f"{k}={v}" for k, v in sorted((cell.get("overrides") or {}).items()))
    return (f"{cell.get('dataset')}/{cell.get('arch')} Num={cell.get('num')} {cell.get('method')} "
            f"oe={cell.get('oe')} seed={cell.get('seed')}" + (f" {over}" if over else ""))


def _run(args) -> int:
    from .cache import ResultCache
    from .grids import ARTIFACTS, build_grid
    from .hooks import default_hooks
    from .plan import plan_sweep
    from .preflight import check_teachers
    from .profiles import get_profile
    from .record_plan import param_spaces
    profile = get_profile(args.profile, args.data_root, args.teacher)
    seeds = list(range(profile.n_seeds if args.seeds is None else args.seeds))
    artifacts = list(ARTIFACTS)
    entries = build_grid(artifacts, profile, seeds)
    hooks = default_hooks()
    check_teachers((e.cell for e in entries), hooks.check_teacher, profile.teacher_hints)
    plan = plan_sweep(entries, profile, hooks, artifacts, seeds)
    cache = ResultCache(args.results_dir, profile.name)
    unused = unused_records(plan, cache, param_spaces())
    total = len(list(Path(cache.dir).glob("*.json")))
    reasons = Counter(u["reason"] for u in unused)
    if not args.json:
        for u in unused:
            print(f"{u['key']}  unused  {_describe(u['cell'])}  [{u['reason']}]")
        print(f"{profile.name}: {total} records, {total - len(unused)} used by the grids "
              f"({', '.join(artifacts)}; seeds 0-{seeds[-1]}), {len(unused)} unused"
              + "".join(f"; {n} {r}" for r, n in reasons.items()))
    if args.delete:
        for u in unused:
            Path(u["path"]).unlink(missing_ok=True)
        if not args.json:
            print(f"deleted {len(unused)} unused records from {cache.dir}")
    if args.json:
        emit_json({"profile": profile.name, "records": total, "unused": unused, "deleted": bool(args.delete)})
    return 0


command("records", "list (and --delete) the records of a profile that no grid uses any more")((_args, _run))
