"""Named hyperparameters with per-schedule values and ``--set name=value`` overrides.

Every tunable number of a method, of the shared fine-tuning stage and of the OE add-on is a
:class:`Param` in a namespace (``mir.iters``, ``finetune.lr``, ``oe.lambda`` ...).  A *schedule* names a
set of shortened values: ``official`` (the default; each method's official code), ``cpu`` (for the
``cifar10-real`` profile on 2 CPU cores) and ``demo`` (the embedded demo's tiny nets).  The resolved dict
is stored in every record, so a record always says exactly what ran.

Every numeric :class:`Param` declares its :class:`Range` (``between(0, 1)``, ``positive(10)`` ...), every
string one its ``choices`` (free text such as ``oe.ood`` is validated where it is used): an override
outside them is a one-line :class:`~oefsmc.errors.UserError` naming the parameter and its range, before
any work.  Upper bounds are generous (far above any published setting) and exist where memory or time
follows from the number.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ..errors import UserError

SCHEDULES = ("official", "cpu", "demo")


@dataclass(frozen=True)
class Range:
    """A numeric interval ``low .. high`` (``None``: unbounded on that side; ``*_open``: excluded)."""

    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def __str__(self) -> str:
        left = "(-inf" if self.low is None else ("(" if self.low_open else "[") + _num(self.low)
        right = "inf)" if self.high is None else _num(self.high) + (")" if self.high_open else "]")
        return f"{left}, {right}"


def _num(x: float) -> str:
    """1e7 -> "10000000", 0.5 -> "0.5"."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def between(low: float, high: float) -> Range:
    """``[low, high]``."""
    return Range(low, high)


def positive(high: float) -> Range:
    """``(0, high]``: learning rates, ratios that must not vanish."""
    return Range(0, high, low_open=True)


@dataclass(frozen=True)
class Param:
    """One hyperparameter: default, doc, per-schedule values, and what values it accepts: ``choices``
    (strings) or ``range`` (numbers); booleans accept true/false."""

    default: Any
    doc: str
    schedules: Mapping[str, Any] = field(default_factory=dict)  # schedule -> value (absent: default)
    choices: tuple = ()
    range: Optional[Range] = None

    def value_for(self, schedule: str) -> Any:
        return self.schedules.get(schedule, self.default)

    def accepts(self) -> str:
        """What values it accepts, for ``params`` and error messages ("" when anything of its type)."""
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        return f"in {self.range}" if self.range is not None else ""

    def problem(self, value: Any) -> Optional[str]:
        """``None`` when ``value`` is acceptable, else what is wrong with it."""
        if self.choices and value not in self.choices:
            return f"choose one of {', '.join(map(str, self.choices))}"
        if self.range is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not self.range.contains(value):
                return f"must be in {self.range}"
        return None


_KINDS = {bool: "true or false", int: "an integer", float: "a finite number", list: "a comma-separated list",
          tuple: "a comma-separated list"}


def parse_value(raw: str, like: Any, name: str, choices: tuple = ()) -> Any:
    """Parse a command-line string into the type of the default ``like`` (numbers must be finite)."""
    try:
        if isinstance(like, bool):
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(like, int) and not isinstance(like, bool):
            value: Any = int(raw)
        elif isinstance(like, float):
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
        elif isinstance(like, (list, tuple)):
            value = [type(like[0])(v) if like else v for v in raw.split(",") if v != ""]
        elif like is None:
            value = None if raw.lower() in ("none", "") else raw
        else:
            value = raw
    except ValueError:
        raise UserError(f"--set {name}={raw}: expected {_KINDS.get(type(like), 'a ' + type(like).__name__)}") from None
    if choices and value not in choices:
        raise UserError(f"--set {name}={raw}: choose one of {', '.join(map(str, choices))}")
    return value


def resolve(namespace: str, params: Mapping[str, Param], schedule: str,
            overrides: Mapping[str, str]) -> dict[str, Any]:
    """Resolve ``params`` for ``schedule`` and apply the overrides of this namespace.

    ``overrides`` holds full names (``"mir.iters": "500"``); names of other namespaces are ignored here
    (the caller checks that every override was used by someone, see :func:`check_all_used`).
    """
    if schedule not in SCHEDULES:
        raise UserError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    out = {name: p.value_for(schedule) for name, p in params.items()}
    prefix = namespace + "."
    for full, raw in overrides.items():
        if not full.startswith(prefix):
            continue
        name = full[len(prefix):]
        if name not in params:
            raise UserError(f"unknown parameter {full!r}; {namespace} has: "
                            f"{', '.join(prefix + n for n in sorted(params))}")
        out[name] = parse_param(full, params[name], str(raw))
    return out


def parse_param(full: str, param: Param, raw: str) -> Any:
    """``--set full=raw`` parsed and checked against the parameter's choices / range (one-line error)."""
    value = parse_value(raw, param.default, full, param.choices)
    problem = param.problem(value)
    if problem:
        raise UserError(f"--set {full}={raw}: {problem}")
    return value


def check_all_used(overrides: Mapping[str, str], namespaces: list[str]) -> None:
    for full in overrides:
        if full.split(".", 1)[0] not in namespaces:
            raise UserError(f"--set {full}: unknown namespace; use one of: {', '.join(sorted(namespaces))}")


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """``["mir.iters=500", "oe.lambda=0.5"]`` -> dict; a malformed item is a one-line error."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item or item.startswith("="):
            raise UserError(f"--set {item!r}: expected NAME=VALUE, e.g. --set oe.lambda=0.5")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def describe(namespace: str, params: Mapping[str, Param]) -> list[str]:
    lines = []
    for name, p in params.items():
        sched = ", ".join(f"{k}={v}" for k, v in p.schedules.items())
        accepts = f"  ({p.accepts()})" if p.accepts() else ""
        lines.append(f"{namespace}.{name} = {p.default!r}" + (f"  [{sched}]" if sched else "") + accepts
                     + f"  {p.doc}")
    return lines
