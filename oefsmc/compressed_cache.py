"""The compressed student of a cell, cached on disk and shared by every cell with the same compression.

With common random numbers (:func:`compression_seed`), a method's compression stage is a function of
(method, its hyperparameters, the few-sample set, the teacher, OE in compression or not with the OE
compression settings, seed, device, threads): the rows ``none``, ``ft-only`` and ``no-comp`` of a seed
share one compressed student, ``full`` and ``no-ft`` (and every eta, every fine-tuning protocol) share
another.  This module stores it once, under ``<cache>/compressed/<key>.pt``, with the stage's statistics,
timings and its pruned / compressed test accuracy, so a fine-tuning variant costs only its fine-tuning.
A cell's numbers do not depend on whether its compression was reused (the stage is deterministic; the
record says ``reused``).  ``OEFSMC_COMPRESSED_CACHE=0`` turns it off.

The files hold a pickled :class:`~oefsmc.core.student.Student` (a pruned network is not a fixed
architecture), so they are read with ``weights_only=False``: only files the suite wrote into its own cache
directory are read, never a user-supplied path.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
from pathlib import Path
from typing import Callable, Optional

import torch

from .atomic import atomic_write_bytes
from .data.fewshot import seed_from
from .data.sources import cache_dir
from .jsonable import json_default_lenient

FORMAT = 1


def compression_seed(method: str, compress_with_ood: bool, seed: int) -> int:
    """The compression stage's random stream: (method, OE in compression or not, seed) -- not the variant."""
    return seed_from("compress", method, bool(compress_with_ood), seed)


def finetune_seed(method: str, seed: int) -> int:
    """The fine-tuning stage's own stream, shared by every variant of (method, seed)."""
    return seed_from("finetune", method, seed)


def compression_identity(resolved: dict, compress_with_ood: bool) -> dict:
    """What decides the compressed student (locations left out)."""
    teacher = {k: v for k, v in resolved["teacher"].items() if k != "path"}
    oe = resolved["hp"].get("oe") or {}
    oe_part = ({k: oe.get(k) for k in ("ood", "aux_size", "pool_size", "lambda", "class_weights")}
               if compress_with_ood else None)
    return {"format": FORMAT, "schema_version": resolved["schema_version"], "dataset": resolved["dataset"],
            "arch": resolved["arch"], "num": resolved["num"], "balanced": resolved["balanced"],
            "imbalance_ratio": resolved["imbalance_ratio"], "method": resolved["method"],
            "hp": resolved["hp"][resolved["method"]], "seed": resolved["seed"],
            "data": {s: resolved["data"][s]["fingerprint"] for s in ("train", "test")}, "teacher": teacher,
            "ood": (resolved.get("ood") or {}).get("identity") if compress_with_ood else None, "oe": oe_part,
            "device": resolved["device"], "threads": resolved["threads"], "eval_precision": resolved["eval_precision"]}


def compression_key(identity: dict) -> str:
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=json_default_lenient)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def enabled() -> bool:
    return os.environ.get("OEFSMC_COMPRESSED_CACHE", "1") != "0"


def cached_compression(identity: dict, compute: Callable[[], dict], device: torch.device) -> tuple[dict, bool]:
    """``compute()`` -> {"student", "stats", "pruned_eval", "compressed_eval", "timings"}, memoised on disk
    by ``identity``; returns (that dict, reused).  A lock makes concurrent workers compute it once."""
    if not enabled():
        return compute(), False
    from filelock import FileLock
    key = compression_key(identity)
    path = cache_dir() / "compressed" / f"{key}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        hit = _load(path, identity, device)
        if hit is not None:
            return hit, True
        out = compute()
        buf = io.BytesIO()
        try:
            torch.save({"identity": identity, **out}, buf)
        except (pickle.PicklingError, AttributeError, TypeError):  # a student that cannot be pickled: not cached
            return out, False
        atomic_write_bytes(path, buf.getvalue())
        return out, False


def _load(path: Path, identity: dict, device: torch.device) -> Optional[dict]:
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location=device, weights_only=False)  # the suite's own cache only
    except Exception:  # noqa: BLE001  (a truncated file from a killed writer: recompute)
        return None
    if not isinstance(blob, dict) or blob.get("identity") != identity:
        return None
    blob.pop("identity")
    return blob
