"""Atomic file writes: a temp file in the same directory, fsync, ``os.replace``, then a directory fsync.

A process killed mid-write leaves at most a ``.<name>.*.tmp`` file, never a half-written file.
The file gets the permissions a plain ``open(path, "w")`` would give (0666 minus the umask), not
``mkstemp``'s private 0600, so a results directory shared by several users' workers stays readable.
Used for result records, rendered tables and cached artifacts.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _plain_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: Path | str, text: str, newline: str | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return _atomic(path, lambda fd: _write_text(fd, text, newline))


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (checkpoints, cached tensors)."""
    return _atomic(path, lambda fd: _write_bytes(fd, data))


def _write_text(fd: int, text: str, newline: str | None) -> None:
    with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _write_bytes(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _atomic(path: Path | str, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        write(fd)
        os.chmod(tmp, _plain_file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # some filesystems do not support fsync on directories
        pass
    return path
