"""``sweep --only``: run a slice of an artifact's grid (a few cells of Table 2, one column ...).

Each ``--only`` is a comma-separated list of ``KEY=VALUE`` conditions that must all hold; ``VALUE`` may
list alternatives separated by ``|``.  Several ``--only`` are alternatives: an entry runs when any of
them matches.  Keys are the paper cell's tag (:data:`TAG_KEYS`: what the tables are indexed by) or the
run cell's fields (:data:`CELL_KEYS`).  Example, one Table 2 cell per column::

    --only paper_dataset=cifar10,paper_num=10,method=fskd,variant=full
    --only paper_dataset=imagenet,paper_num=1000,method=mir,variant=none

The rendered tables still show every paper cell; the ones left out show as not computed.
"""
from __future__ import annotations

from typing import Iterable, Optional

from oefsmc.errors import UserError

from .grids import GridEntry

TAG_KEYS = ("artifact", "paper_dataset", "paper_arch", "paper_num", "setting", "method", "variant", "panel",
            "param_name", "param_value")
CELL_KEYS = ("dataset", "arch", "num", "balanced", "oe", "seed")

Condition = dict[str, frozenset[str]]


def _value(entry: GridEntry, key: str) -> str:
    raw = entry.tag.get(key) if key in TAG_KEYS else entry.cell.get(key)
    return str(raw).lower() if isinstance(raw, bool) else str(raw)


def parse_selection(items: Optional[list[str]]) -> list[Condition]:
    """``["method=fskd|cd,paper_num=10"]`` -> ``[{"method": {"fskd", "cd"}, "paper_num": {"10"}}]``."""
    out = []
    for item in items or []:
        cond: Condition = {}
        for part in filter(None, (p.strip() for p in item.split(","))):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or not value.strip():
                raise UserError(f"--only {item!r}: expected KEY=VALUE[,KEY=VALUE...], e.g. --only method=mir,"
                                "paper_num=10")
            if key not in TAG_KEYS + CELL_KEYS:
                raise UserError(f"--only {key}=...: unknown key; use one of {', '.join(TAG_KEYS + CELL_KEYS)}")
            cond[key] = frozenset(v.strip() for v in value.split("|"))
        if cond:
            out.append(cond)
    return out


def _matches(entry: GridEntry, cond: Condition) -> bool:
    return all(_value(entry, key) in values for key, values in cond.items())


def select_entries(entries: Iterable[GridEntry], conditions: list[Condition]) -> list[GridEntry]:
    """The entries matching any condition (all of them without conditions); none matching is an error."""
    entries = list(entries)
    if not conditions:
        return entries
    chosen = [e for e in entries if any(_matches(e, c) for c in conditions)]
    if not chosen:
        raise UserError("--only selects no cell of the requested artifacts: check the keys and values "
                        "(python -m benchmark sweep --dry-run lists the cells)")
    return chosen
