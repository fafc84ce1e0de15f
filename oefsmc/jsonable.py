"""The suite's one JSON converter (imports neither torch nor numpy): what ``json.dumps(default=...)`` and records use.

- :func:`json_default` (strict): numpy arrays and scalars and torch tensors (``tolist()``), paths
  (``os.fspath``), sets (sorted); anything else is a ``TypeError``.  Result records and cache keys
  (:mod:`benchmark.cache`) use it: an unexpected object must fail loudly, never change a key silently.
- :func:`json_default_lenient`: the same conversions, then ``str(obj)`` for anything else.  Command-line
  JSON output, study outputs and the compressed-student key use it (they used ``default=str``; for every
  object they are given -- plain JSON types, paths -- the bytes are the same).
- :func:`to_jsonable`: a recursive copy in plain JSON types for a record's free-form parts (method
  statistics, schemes): non-finite floats become ``None`` (records are strict JSON), dict keys become
  strings, tuples lists, tensors/arrays lists, numpy integers/floats Python numbers, anything else
  ``str(obj)``.
"""
from __future__ import annotations

import math
import os
import sys
from typing import Any


def json_default(obj: Any) -> Any:
    """JSON for numpy scalars/arrays, tensors, paths and sets; anything else is an error."""
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def json_default_lenient(obj: Any) -> Any:
    """:func:`json_default`, falling back to ``str(obj)`` instead of raising."""
    try:
        return json_default(obj)
    except TypeError:
        return str(obj)


def _loaded(module: str):
    """The module if some code imported it (an array or tensor exists only then), else ``None``."""
    return sys.modules.get(module)


def _is_instance(obj: Any, module: str, *names: str) -> bool:
    mod = _loaded(module)
    return mod is not None and isinstance(obj, tuple(getattr(mod, n) for n in names))


def to_jsonable(obj: Any) -> Any:
    """A copy of ``obj`` in plain JSON types (see the module docstring)."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if _is_instance(obj, "torch", "Tensor") or _is_instance(obj, "numpy", "ndarray"):
        return to_jsonable(obj.tolist())
    if _is_instance(obj, "numpy", "integer"):
        return int(obj)
    if _is_instance(obj, "numpy", "floating"):
        return to_jsonable(float(obj))
    return str(obj)
