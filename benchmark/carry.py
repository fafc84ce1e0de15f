"""Data for a lent device machine, carried in pieces of at most 64 MiB per call.

The device tool carries at most 64 MiB of ignored files per call, and files carried by one call stay on
the machine for the next while it is warm.  ``../shared/data``'s ``cifar100/train.npz`` (the complete
CIFAR-100 training set) is 133 MiB and ``cifar10/train.npz`` (the 20,000-image CIFAR-10 pool) 54 MiB, so
:func:`split_file` cuts an array file into byte parts (``<file>.partNN`` plus ``<file>.parts.json`` with
the whole file's size and sha256), and :func:`join_parts` -- run by ``gpu-runbook`` at the start of every
call -- reassembles each file whose parts have all arrived (verified, written atomically), so the loaders
see ordinary ``<dataset>/<split>.npz`` files.  ``gpu-runbook --pack-data DIR`` writes the parts of a data
root and prints which paths to carry in which call.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from oefsmc.atomic import atomic_write, atomic_write_bytes
from oefsmc.errors import UserError
from oefsmc.filehash import sha256_file

PART_MIB = 60  # below the 64 MiB a call carries, leaving room for the working tree
ARRAY_FILES = ("cifar10/train.npz", "cifar10/test.npz", "cifar100/train.npz", "cifar100/test.npz")


def split_file(src: Path, dest: Path, part_mib: int = PART_MIB) -> list[Path]:
    """``src`` -> ``dest`` itself when it fits one part, else ``dest.partNN`` + ``dest.parts.json``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    size, limit = src.stat().st_size, part_mib << 20
    if size <= limit:
        shutil.copyfile(src, dest)
        return [dest]
    parts = []
    with open(src, "rb") as f:
        for i, chunk in enumerate(iter(lambda: f.read(limit), b"")):
            parts.append(atomic_write_bytes(Path(f"{dest}.part{i:02d}"), chunk))
    manifest = Path(f"{dest}.parts.json")
    atomic_write(manifest, json.dumps({"parts": len(parts), "size": size, "sha256": sha256_file(src)}) + "\n")
    return parts + [manifest]


def join_parts(root: Path) -> list[str]:
    """Reassemble every ``*.parts.json`` under ``root`` whose parts are all present; returns what it wrote."""
    written = []
    for manifest in sorted(Path(root).rglob("*.parts.json")):
        target = Path(str(manifest)[: -len(".parts.json")])
        meta = json.loads(manifest.read_text())
        parts = [Path(f"{target}.part{i:02d}") for i in range(meta["parts"])]
        if target.is_file() or not all(p.is_file() for p in parts):
            continue
        data = b"".join(p.read_bytes() for p in parts)
        if len(data) != meta["size"] or hashlib.sha256(data).hexdigest() != meta["sha256"]:
            raise UserError(f"the parts of {target} do not reassemble to the packed file (size or sha256 differ): "
                            "carry them again")
        atomic_write_bytes(target, data)
        written.append(str(target))
    return written


def carry_plan(paths: list[Path], base: Path, limit_mib: int = PART_MIB) -> list[list[str]]:
    """Group files (in order) into calls of at most ``limit_mib`` MiB each, paths relative to ``base`` (the
    repository root: what the device tool's ``carry`` names)."""
    calls: list[list[str]] = [[]]
    used = 0
    for p in paths:
        size = p.stat().st_size
        if calls[-1] and used + size > limit_mib << 20:
            calls.append([])
            used = 0
        calls[-1].append(os.path.relpath(p, base))
        used += size
    return calls


def pack_data(src_root: Path, dest_root: Path, part_mib: int = PART_MIB) -> list[list[str]]:
    """Split the array files of ``src_root`` into ``dest_root`` and return the carry plan."""
    missing = [f for f in ARRAY_FILES if not (src_root / f).is_file()]
    if len(missing) == len(ARRAY_FILES):
        raise UserError(f"no CIFAR arrays under {src_root}: pass --data-root with <dataset>/<split>.npz")
    out = []
    for name in ARRAY_FILES:
        if (src_root / name).is_file():
            out += split_file(src_root / name, dest_root / name, part_mib)
    return carry_plan(out, Path.cwd(), part_mib)
