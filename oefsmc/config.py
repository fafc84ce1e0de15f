"""Typed cells and resolved configs (torch-free): what a user asks for, and what the cache key hashes.

- :class:`Cell`: one experiment as the user (a grid, ``python -m benchmark run``) states it -- dataset,
  architecture, Num, balance, method, OE variant, seed, schedule, ``--set`` overrides and the machine
  choices (data root, teacher file, OOD source, device).  :meth:`Cell.from_dict` / :meth:`Cell.to_dict`
  convert from and to the plain cell dict of :mod:`benchmark.grids` (same keys, same order).
- :class:`ResolvedConfig`: the cell plus every resolved hyperparameter and the identities of the data,
  the teacher and the OOD source (:func:`oefsmc.pipeline.resolve_cell`).  It is backed by a deep-frozen
  mapping of exactly the dict :func:`oefsmc.pipeline.resolve_config` returns, so :meth:`ResolvedConfig.to_dict`
  gives that dict back -- same keys, same values, same order -- and cache keys and records stay
  byte-identical.  Fields read as typed attributes (``cfg.method``, ``cfg.hp``); nested values come back
  as plain copies, so nothing handed out can change the config.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from .errors import UserError


class FrozenDict(Mapping):
    """A read-only, hashable, picklable mapping (insertion order kept)."""

    __slots__ = ("_items",)

    def __init__(self, items: Any = ()):
        object.__setattr__(self, "_items", dict(items))

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenDict is read-only")

    def __reduce__(self):
        return (FrozenDict, (self._items,))

    def __repr__(self) -> str:
        return f"FrozenDict({self._items!r})"


class _FrozenList(tuple):
    """A frozen ``list`` (thawed back to a list, where a frozen ``tuple`` stays a tuple)."""

    __slots__ = ()


def freeze(obj: Any) -> Any:
    """A deep read-only copy: dicts -> :class:`FrozenDict`, lists -> tuples (remembered as lists)."""
    if isinstance(obj, Mapping):
        return FrozenDict((k, freeze(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return _FrozenList(freeze(v) for v in obj)
    if isinstance(obj, tuple) and not isinstance(obj, _FrozenList):
        return tuple(freeze(v) for v in obj)
    return obj


def thaw(obj: Any) -> Any:
    """The plain (mutable) copy of a :func:`freeze` result: the original dicts, lists and tuples."""
    if isinstance(obj, FrozenDict):
        return {k: thaw(v) for k, v in obj.items()}
    if isinstance(obj, _FrozenList):
        return [thaw(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(thaw(v) for v in obj)
    return obj


# ------------------------------------------------------------------------------------------------ cell
#: The keys every grid cell carries (benchmark.grids.make_cell), in order; ``to_dict`` always writes them.
CELL_KEYS = ("dataset", "arch", "num", "balanced", "imbalance_ratio", "method", "oe", "seed", "schedule",
             "overrides", "data_root", "teacher", "ood", "device")
#: Optional machine choices: written by ``to_dict`` only when they differ from the default.
CELL_EXTRAS = ("teacher_normalization", "eval_precision")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One experiment as the user states it (the plain cell dict of :mod:`benchmark.grids`, typed).

    Values are kept as given (``resolve_cell`` converts and checks them), so a cell read from a dict
    resolves exactly like that dict."""

    dataset: str
    arch: str
    num: int
    method: str
    oe: str = "none"
    seed: int = 0
    balanced: bool = False
    imbalance_ratio: float = 100.0
    schedule: str = "official"
    overrides: Mapping[str, str] = dataclasses.field(default_factory=FrozenDict)
    data_root: str | None = None
    teacher: str | None = None
    ood: str | None = None
    device: str = "auto"
    teacher_normalization: str = "auto"
    eval_precision: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", FrozenDict(self.overrides or {}))

    @classmethod
    def from_dict(cls, cell: Mapping[str, Any], strict: bool = True) -> Cell:
        """The typed cell of a plain cell dict.  Missing optional keys take the pipeline's defaults; an
        unknown key is a :class:`UserError` (a typo would otherwise go unnoticed), or ignored with
        ``strict=False`` (what :func:`oefsmc.pipeline.resolve_config` has always done with a dict)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cell) - names)
        if unknown and strict:
            raise UserError(f"unknown cell field(s) {', '.join(unknown)}; a cell has: {', '.join(sorted(names))}")
        cell = {k: v for k, v in cell.items() if k in names}
        missing = [k for k in ("dataset", "arch", "num", "method") if k not in cell]
        if missing:
            raise UserError(f"cell without {', '.join(missing)}")
        given = {k: v for k, v in cell.items() if not (k == "overrides" and v is None)}
        return cls(**given)

    def to_dict(self) -> dict[str, Any]:
        """The plain cell dict: :data:`CELL_KEYS` in order, then the :data:`CELL_EXTRAS` that are set."""
        out = {k: getattr(self, k) for k in CELL_KEYS}
        out["overrides"] = dict(self.overrides)
        out.update({k: getattr(self, k) for k in CELL_EXTRAS if getattr(self, k) != "auto"})
        return out

    def replace(self, **changes: Any) -> Cell:
        """A copy with ``changes`` (``cell.replace(seed=1)``)."""
        return dataclasses.replace(self, **changes)


# ------------------------------------------------------------------------------------- resolved config
def _field(name: str, doc: str) -> property:
    def get(self: ResolvedConfig) -> Any:
        return thaw(self._data[name])
    return property(get, doc=doc)


@dataclasses.dataclass(frozen=True, eq=False)
class ResolvedConfig(Mapping):
    """The resolved config of a cell (what the cache key hashes and a record's ``config`` holds).

    A read-only :class:`~collections.abc.Mapping` over the resolved dict (``cfg["hp"]`` still works, so
    code written for the dict keeps working) with typed attributes for its fields.  Reads return plain
    copies; :meth:`to_dict` returns the resolved dict itself, key for key and in the same order."""

    _data: FrozenDict

    @classmethod
    def from_dict(cls, resolved: Mapping[str, Any]) -> ResolvedConfig:
        """Wrap a resolved dict (from :func:`oefsmc.pipeline.resolve_config`, a record or a sweep task)."""
        if isinstance(resolved, ResolvedConfig):
            return resolved
        return cls(freeze(resolved))

    def to_dict(self) -> dict[str, Any]:
        """The resolved dict (a fresh plain copy): identical to ``resolve_config``'s."""
        return thaw(self._data)

    def __getitem__(self, key: str) -> Any:
        return thaw(self._data[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResolvedConfig):
            return self._data == other._data
        return isinstance(other, Mapping) and self.to_dict() == dict(other)

    def __hash__(self) -> int:
        return hash(self._data)

    schema_version = _field("schema_version", "results-schema version the config was resolved under")
    dataset = _field("dataset", "dataset name (registry key)")
    arch = _field("arch", "architecture name (registry key)")
    arch_family = _field("arch_family", "vgg | cifar_resnet | imagenet_resnet | ...")
    num = _field("num", "few-sample set size Num")
    balanced = _field("balanced", "balanced few-sample set?")
    imbalance_ratio = _field("imbalance_ratio", "head/tail ratio (1.0 when balanced)")
    class_counts = _field("class_counts", "images per class in the few-sample set")
    method = _field("method", "compression method name")
    oe = _field("oe", "OE variant name")
    seed = _field("seed", "the cell's seed")
    schedule = _field("schedule", "hyperparameter schedule (official | cpu | demo)")
    overrides = _field("overrides", "the --set overrides, sorted by name")
    hp = _field("hp", "resolved hyperparameters: {method, finetune, [oe]}")
    data = _field("data", "identities (fingerprint, size, source) of the train and test splits")
    data_root = _field("data_root", "resolved --data-root (a location, not in the key) or None")
    teacher = _field("teacher", "the teacher's identity (kind, sha256 / weights / key, normalization)")
    ood = _field("ood", "OOD source and identity, or None")
    device = _field("device", "cpu | cuda")
    eval_precision = _field("eval_precision", "fp32 | bf16")
    threads = _field("threads", "intra-op threads the cell runs on")

    @property
    def diagnostic(self) -> str | None:
        """The diagnostic note of a config whose results are not a protocol result, else None."""
        return thaw(self._data.get("diagnostic"))
