"""What the sweep calls of the experiment pipeline: ``resolve_config`` (planning, in the parent) and
``run_config`` (in the workers), found by name so that a dry run or ``--help`` works before the pipeline
is importable.

The plug-ins (:mod:`benchmark.plugins`: the methods of ``baselines``) fill the registries of the core
(``oefsmc``); whatever imports a function of the core through these hooks loads them first, in the
planner and in every worker process.  A test's fake pipeline (``OEFSMC_FAKE_PIPELINE``) reads no registry,
so it is imported without them.

Test-only hook: ``OEFSMC_FAKE_PIPELINE=<module>`` makes the sweep use ``<module>.resolve_config`` /
``<module>.run_config`` (and ``<module>.not_applicable_reason`` / ``<module>.check_teacher`` if defined)
instead of :mod:`oefsmc.pipeline`.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Callable, Optional, Union

from oefsmc.errors import UserError

from .plugins import load_plugins

DEFAULT_PIPELINE = "oefsmc.pipeline"
#: Hooks of the default pipeline that live beside it rather than in it.
DEFAULT_EXTRAS = {"check_teacher": "oefsmc.teacher_store:check_teacher"}
#: Test-only: a module providing resolve_config / run_config (/ not_applicable_reason) to use instead.
FAKE_PIPELINE_ENV = "OEFSMC_FAKE_PIPELINE"
#: The packages whose functions read the registries that the plug-ins fill.
CORE_PACKAGES = ("oefsmc",)

Runner = Union[str, Callable[[dict], dict]]

_CALLABLES: dict[str, Callable] = {}


def needs_plugins(module: str) -> bool:
    """Does a function of ``module`` read the core's registries (so the plug-ins must be loaded first)?"""
    return module.split(".")[0] in CORE_PACKAGES


def prepare_runner(runner: Runner) -> None:
    """Load the plug-ins unless ``runner`` names a function outside the core (a test's fake pipeline); a
    callable may wrap the core's ``run_config``, so it gets them too."""
    if not isinstance(runner, str) or needs_plugins(runner.partition(":")[0]):
        load_plugins()


def load_callable(spec: str) -> Callable:
    """``"package.module:function"`` -> the function (memoised per process; the plug-ins loaded first
    for a function of the core)."""
    if spec not in _CALLABLES:
        module, _, name = spec.partition(":")
        if needs_plugins(module):
            load_plugins()
        _CALLABLES[spec] = getattr(importlib.import_module(module), name)
    return _CALLABLES[spec]


def _import_pipeline(module: str):
    try:
        if needs_plugins(module):
            load_plugins()
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name in (module, module.rpartition(".")[0]):
            raise UserError(f"the experiment pipeline ({module}) is not available in this checkout") from None
        raise


@dataclass
class Hooks:
    """What the sweep calls: ``resolve(cell) -> resolved`` (cheap, in the parent), ``run`` (a
    ``"module:function"`` spec or a callable, in the workers) and ``not_applicable(cell) -> reason``.

    A method that does not apply to an architecture is reported either by ``not_applicable`` or by
    ``resolve`` raising a :class:`UserError` subclass named ``NotApplicable`` (the pipeline's way).
    ``check_teacher(dataset, arch, path)`` raises a one-line :class:`UserError` for a checkpoint that
    cannot serve as the teacher of (dataset, arch); the sweep calls it once per teacher, before planning.
    """

    resolve: Callable[[dict], dict]
    run: Runner
    not_applicable: Callable[[dict], Optional[str]] = lambda cell: None
    check_teacher: Callable[[str, str, str], None] = lambda dataset, arch, path: None


def default_hooks() -> Hooks:
    """Hooks into :mod:`oefsmc.pipeline` (or the test-only module named by ``OEFSMC_FAKE_PIPELINE``),
    imported lazily so that a dry run or ``--help`` works before the pipeline is importable."""
    module = os.environ.get(FAKE_PIPELINE_ENV) or DEFAULT_PIPELINE

    def resolve(cell: dict) -> dict:
        return _import_pipeline(module).resolve_config(cell)

    def not_applicable(cell: dict) -> Optional[str]:
        fn = getattr(_import_pipeline(module), "not_applicable_reason", None)
        return fn(cell) if fn else None

    def check_teacher(dataset: str, arch: str, path: str) -> None:
        fn = getattr(_import_pipeline(module), "check_teacher", None)
        if fn is None and module == DEFAULT_PIPELINE:
            fn = load_callable(DEFAULT_EXTRAS["check_teacher"])
        if fn is not None:
            fn(dataset, arch, path)

    return Hooks(resolve=resolve, run=f"{module}:run_config", not_applicable=not_applicable,
                 check_teacher=check_teacher)
