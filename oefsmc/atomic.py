"""Atomic file writes: a temp file in the same directory, fsync, ``os.replace``, then a directory fsync.

A process killed mid-write leaves at most a ``.<name>.*.tmp`` file, never a half-written file.
The file gets the permissions a plain ``open(path, "w")`` would give (0666 minus the umask), not
``mkstemp``'s private 0600, so a results directory shared by several users' workers stays readable.
Used for result records, rendered tables and cached artifacts; :func:`atomic_write_stream` for data a
writer streams into a file handle (``np.savez``, ``torch.save``, downloads).
"""
from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def _plain_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: Path | str, text: str, newline: str | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (``newline`` as in :func:`open`)."""
    with atomic_write_stream(path) as fh:
        text_fh = io.TextIOWrapper(fh, encoding="utf-8", newline=newline)
        text_fh.write(text)
        text_fh.flush()
        text_fh.detach()  # leave the binary handle open for atomic_write_stream to fsync and close
    return Path(path)


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (checkpoints, cached tensors)."""
    with atomic_write_stream(path) as fh:
        fh.write(data)
    return Path(path)


@contextmanager
def atomic_write_stream(path: Path | str) -> Iterator[BinaryIO]:
    """Yield a binary file handle whose contents replace ``path`` atomically when the block exits normally.

    An exception inside the block removes the temp file and leaves ``path`` untouched::

        with atomic_write_stream(cached) as fh:
            np.savez(fh, images=images, labels=labels)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _plain_file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # some filesystems do not support fsync on directories
        pass
