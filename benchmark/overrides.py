"""Sweep-level ``--set NAME=VALUE`` overrides: validated once, merged into every cell they apply to.

``python -m benchmark sweep --set teacher.epochs=1 --set mir.iters=50`` shortens a whole sweep through
the same documented names as ``python -m benchmark run --set`` (``python -m benchmark params`` lists
them; ``teacher.*`` are the recipe fields of :data:`oefsmc.models.teacher_training.RECIPE_OVERRIDABLE`).

- :func:`parse_sweep_overrides` checks every name and value once, before any cell is planned, so a typo
  is one error line instead of a sweep of skipped cells.
- :func:`scoped_overrides` (called by :func:`benchmark.grids.make_cell`) gives a cell only the overrides
  whose namespace acts on it, per :data:`SCOPES`: a method's names reach only that method's cells,
  ``oe.*`` only variants that use OOD data, ``finetune.*`` only variants with the fine-tuning stage,
  ``teacher.*`` only cells whose teacher the suite trains (not ``--teacher PATH``).  A cell's own
  overrides (a Figure 3 axis such as ``oe.lambda``) win over the sweep's.
- :func:`with_overrides` stores them on the profile and lists them in ``Profile.shortens``, so every
  record and caption says the run was shortened.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional

from oefsmc.errors import UserError

from .plugins import load_plugins
from .profiles import Profile


def _uses_ood(cell: dict) -> bool:
    from oefsmc.oe.variants import VARIANTS
    return VARIANTS.get(cell["oe"]).uses_ood


def _has_finetune(cell: dict) -> bool:
    from oefsmc.oe.variants import VARIANTS
    return VARIANTS.get(cell["oe"]).finetune is not None


#: namespace -> does an override of it act on this cell?  Method namespaces (absent here) act on the
#: cells of that method only.
SCOPES: dict[str, Callable[[dict], bool]] = {
    "oe": _uses_ood,
    "finetune": _has_finetune,
    "teacher": lambda cell: not cell.get("teacher"),
}


def _applies(name: str, cell: dict) -> bool:
    namespace = name.split(".", 1)[0]
    rule = SCOPES.get(namespace)
    return rule(cell) if rule else namespace == cell["method"]


def scoped_overrides(sweep: Mapping[str, str], cell: dict) -> dict[str, str]:
    """The sweep-level overrides that act on ``cell`` (see :data:`SCOPES`)."""
    return {k: v for k, v in sweep.items() if _applies(k, cell)}


# ---------------------------------------------------------------------------- validation
def _check_teacher(overrides: Mapping[str, str]) -> None:
    from oefsmc.models.teacher import RECIPES
    from oefsmc.models.teacher_training import apply_recipe_overrides
    apply_recipe_overrides(RECIPES.get("cd-vgg16"), overrides)  # names and values; every recipe has the fields


def _check_oe(overrides: Mapping[str, str]) -> None:
    from oefsmc.core.params import resolve
    from oefsmc.data.ood import parse_source
    from oefsmc.oe.params import OE_PARAMS
    oe = resolve("oe", OE_PARAMS, "official", overrides)
    if oe["ood"]:
        parse_source(oe["ood"])


def _check_finetune(overrides: Mapping[str, str]) -> None:
    from oefsmc.core.finetune import FINETUNE_PARAMS
    from oefsmc.core.params import resolve
    resolve("finetune", FINETUNE_PARAMS, "official", overrides)


#: namespace -> checker of its names and values (method namespaces: their Param spaces)
CHECKERS: dict[str, Callable[[Mapping[str, str]], None]] = {
    "teacher": _check_teacher, "oe": _check_oe, "finetune": _check_finetune,
}


def _check_method(namespace: str, overrides: Mapping[str, str]) -> None:
    from oefsmc.core.method import METHODS
    from oefsmc.core.params import resolve
    resolve(namespace, METHODS.get(namespace).params, "official", overrides)


def validate_overrides(overrides: Mapping[str, str]) -> None:
    """Every name must exist and every value parse (a one-line :class:`UserError` otherwise)."""
    if not overrides:
        return
    from oefsmc.core.method import METHODS
    load_plugins()
    namespaces = sorted(set(METHODS.names()) | set(CHECKERS))
    for name in overrides:
        namespace, dot, rest = name.partition(".")
        if not dot or not rest or namespace not in namespaces:
            raise UserError(f"--set {name}: expected NAMESPACE.NAME with a namespace of {', '.join(namespaces)} "
                            "(python -m benchmark params lists them)")
    for namespace in {n.partition(".")[0] for n in overrides}:
        mine = {k: v for k, v in overrides.items() if k.startswith(namespace + ".")}
        checker = CHECKERS.get(namespace)
        checker(mine) if checker else _check_method(namespace, mine)


def parse_sweep_overrides(items: Optional[list[str]]) -> dict[str, str]:
    """``["mir.iters=50", ...]`` -> a validated ``{name: value}``."""
    from oefsmc.core.params import parse_overrides
    overrides = parse_overrides(items)
    validate_overrides(overrides)
    return overrides


def with_overrides(profile: Profile, overrides: Mapping[str, str]) -> Profile:
    """``profile`` carrying the sweep-level overrides, each also listed in ``shortens`` (records, captions)."""
    if not overrides:
        return profile
    listed = tuple(f"--set {k}={v}" for k, v in sorted(overrides.items()))
    return dataclasses.replace(profile, overrides=dict(overrides), shortens=profile.shortens + listed)
