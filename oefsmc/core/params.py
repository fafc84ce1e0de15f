"""Named hyperparameters with per-schedule values and ``--set name=value`` overrides.

Every tunable number of a method, of the shared fine-tuning stage and of the OE add-on is a
:class:`Param` in a namespace (``mir.iters``, ``finetune.lr``, ``oe.lambda`` ...).  A *schedule* names a
set of shortened values: ``official`` (the default; each method's official code), ``cpu`` (for the
``cifar10-real`` profile on 2 CPU cores) and ``demo`` (the embedded demo's tiny nets).  The resolved dict
is stored in every record, so a record always says exactly what ran.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import UserError

SCHEDULES = ("official", "cpu", "demo")


@dataclass(frozen=True)
class Param:
    default: Any
    doc: str
    schedules: Mapping[str, Any] = field(default_factory=dict)  # schedule -> value (absent: default)
    choices: tuple = ()

    def value_for(self, schedule: str) -> Any:
        return self.schedules.get(schedule, self.default)


def parse_value(raw: str, like: Any, name: str, choices: tuple = ()) -> Any:
    """Parse a command-line string into the type of the default ``like``."""
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
        elif isinstance(like, (list, tuple)):
            value = [type(like[0])(v) if like else v for v in raw.split(",") if v != ""]
        elif like is None:
            value = None if raw.lower() in ("none", "") else raw
        else:
            value = raw
    except ValueError:
        raise UserError(f"--set {name}={raw}: expected a {type(like).__name__}") from None
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
        out[name] = parse_value(str(raw), params[name].default, full, params[name].choices)
    return out


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
        lines.append(f"{namespace}.{name} = {p.default!r}" + (f"  [{sched}]" if sched else "") + f"  {p.doc}")
    return lines
