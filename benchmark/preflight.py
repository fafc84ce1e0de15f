"""What ``python -m benchmark sweep`` checks before any work (and a dry run checks the same, so that the
two agree on the exit code).  Each check raises a one-line :class:`~oefsmc.errors.UserError` that names
the fix; nothing here writes a file.

In order (:data:`CHECKS`, then :func:`check_teachers` once the grid is known):

* flags that contradict each other (``--render-only`` with ``--dry-run`` / ``--force`` / ``--no-render``);
* ``--data-root``: an existing directory;
* ``--results-dir``: ``<DIR>/<profile>`` is, or can be created as, a writable directory (unless
  ``--render-only``, which only reads);
* ``--out-dir``: the same for ``<DIR>/<profile>`` (unless ``--no-render``);
* ``--jobs`` above the number of CPU cores: a warning, not an error (workers are capped at the number
  of cells anyway);
* every teacher checkpoint a cell of the grid would load: exists, loads as plain tensors, fits its
  architecture and dataset (the pipeline's ``check_teacher``), once per (dataset, arch, checkpoint).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional

from oefsmc.errors import UserError

from .profiles import Profile


def _log(msg: str) -> None:
    print(f"[sweep] {msg}", file=sys.stderr, flush=True)


def _existing_ancestor(path: Path) -> Path:
    """``path`` itself when something is there, else its nearest existing parent."""
    probe = path
    while not os.path.lexists(probe) and probe.parent != probe:
        probe = probe.parent
    return probe


def check_writable_dir(path: Path, flag: str) -> None:
    """``path`` is a writable directory, or can be created as one (checked with a probe file in its
    nearest existing parent, removed at once: permissions, read-only mounts and immutable directories
    all show).  Creates nothing."""
    probe = _existing_ancestor(Path(path).absolute())
    if not probe.is_dir():
        kind = "a file" if probe.is_file() else "not a directory"
        raise UserError(f"{flag}: {probe} is {kind}, so {path} cannot be a directory: pass another {flag} DIR")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".oefsmc-write-probe-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise UserError(f"{flag}: cannot write in {probe} ({exc.strerror or exc}): pass a writable {flag} DIR "
                        "or fix its permissions") from None


def check_modes(args: argparse.Namespace, profile: Profile) -> None:
    """``--render-only`` computes nothing and renders: it contradicts --dry-run, --force and --no-render."""
    if not getattr(args, "render_only", False):
        return
    for flag, given in (("--dry-run", args.dry_run), ("--force", args.force), ("--no-render", args.no_render)):
        if given:
            raise UserError(f"--render-only and {flag} contradict each other (--render-only computes nothing and "
                            f"renders): drop one of them")


def check_data_root(args: argparse.Namespace, profile: Profile) -> None:
    if args.data_root is None:
        return
    root = Path(args.data_root).expanduser()
    if not root.exists():
        raise UserError(f"--data-root {args.data_root} does not exist: pass the directory holding the data")
    if not root.is_dir():
        raise UserError(f"--data-root {args.data_root} is a file, not a directory: pass the directory holding "
                        "the data")


def check_results_dir(args: argparse.Namespace, profile: Profile) -> None:
    if not getattr(args, "render_only", False):
        check_writable_dir(Path(args.results_dir) / profile.name, "--results-dir")


def check_out_dir(args: argparse.Namespace, profile: Profile) -> None:
    if not args.no_render:
        check_writable_dir(Path(args.out_dir) / profile.name, "--out-dir")


def cpu_cores() -> int:
    return os.cpu_count() or 1


def warn_jobs(args: argparse.Namespace, profile: Profile) -> None:
    cores = cpu_cores()
    if args.jobs is not None and args.jobs > cores and args.backend == "loky":
        _log(f"warning: --jobs {args.jobs} is more than the {cores} CPU cores here: the cells will compete for them "
             "(at most one worker per cell to compute is started)")


#: The checks of the command line, in order (each ``(args, profile) -> None``).
CHECKS: tuple[Callable[[argparse.Namespace, Profile], None], ...] = (
    check_modes, check_data_root, check_results_dir, check_out_dir, warn_jobs)


def check_arguments(args: argparse.Namespace, profile: Profile) -> None:
    for check in CHECKS:
        check(args, profile)


def check_teachers(cells: Iterable[dict], check_teacher: Callable[[str, str, str], None],
                   hints: Optional[Mapping[str, str]] = None) -> int:
    """Check every distinct (dataset, arch, teacher checkpoint) of ``cells`` once; returns how many.  A
    failing check of a path with a hint (``Profile.teacher_hints``: a profile's default teacher) says how to
    obtain it."""
    seen: set[tuple[str, str, str]] = set()
    for cell in cells:
        teacher = cell.get("teacher")
        key = (cell["dataset"], cell["arch"], teacher)
        if teacher and key not in seen:
            seen.add(key)
            try:
                check_teacher(*key)
            except UserError as err:
                hint = (hints or {}).get(str(teacher))
                if hint is None:
                    raise
                raise UserError(f"{err}; {hint}") from err
    return len(seen)
