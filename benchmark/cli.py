"""``python -m benchmark``: the OE-FSMC reproduction suite's command line, one subcommand per job.

Every data-producing subcommand accepts ``--json`` and then prints one JSON object as the last line of
stdout.  Errors a user can fix are one line on stderr (``error: ...``, or argparse's ``<prog>: error:
...``) with exit code 2 and no traceback (:class:`oefsmc.errors.UserError`).  Anything else is a bug:
one line naming the log file that holds its traceback, exit code 1 (2 for an OS error about a named file:
a full disk, a vanished path); the hidden ``--debug`` flag (or ``OEFSMC_DEBUG=1``) lets the traceback
through instead.  Output cut short by a closed pipe (``... | head``) ends quietly with exit code 141, as
a program killed by SIGPIPE.

Only the subcommand being run is imported (:data:`SUBCOMMANDS`): ``--help`` never imports torch.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Optional

from oefsmc.errors import UserError
from oefsmc.jsonable import json_default_lenient

DESCRIPTION = ("Regenerate the tables and figures of the OE-FSMC paper and run its pieces one by one. "
               "Every data-producing subcommand prints one JSON object as the last line of stdout with --json.")
#: The name the user typed for the subcommand being run (run_all.sh sets it to ./run_all.sh), for usage
#: lines and errors.
PROG_ENV = "OEFSMC_PROG"
DEBUG_ENV = "OEFSMC_DEBUG"
#: Where the traceback of a bug is written (default: the system's temp directory).
LOG_DIR_ENV = "OEFSMC_LOG_DIR"
EXIT_USER_ERROR, EXIT_BUG, EXIT_BROKEN_PIPE = 2, 1, 141

#: name -> (module that registers it with :func:`command`, one-line help), listed by ``--help`` without
#: importing any of them.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "fewshot": ("benchmark.commands", "draw a few-sample set and print its class counts and indices"),
    "run": ("benchmark.commands", "run one cell (method x OE variant x seed) and print its record"),
    "teacher": ("benchmark.commands", "train (resumable, cached) or evaluate a teacher"),
    "params": ("benchmark.commands", "list every hyperparameter name, default, schedule value and range"),
    "sweep": ("benchmark.commands", "run a paper artifact's grid (cached, resumable) and render it"),
    "finetune-study": ("benchmark.finetune_study", "developer study: fine-tuning monitor vs accuracy on a "
                                                   "validation split of the training pool (never the test set)"),
    "protocol-study": ("benchmark.protocol_study", "developer study: the fine-tuning protocol grid on a "
                                                   "validation split of the training pool (never the test set)"),
    "records": ("benchmark.records_cli", "list (and --delete) the records of a profile that no grid uses any more"),
    "perf": ("benchmark.perf", "measure evaluation throughput, FSKD speed, per-cell cost and the demo sweep"),
    "gpu-runbook": ("benchmark.gpu_runbook", "on a lent GPU: teachers, then a slice of the paper's cells, with "
                                             "per-cell timings, within a time budget (resumable)"),
    "gpu-cost": ("benchmark.gpu_cost", "PROJECTION of the GPU-hours of each paper artifact from a gpu-runbook's "
                                       "timings"),
}

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]] = {}


def command(name: str, help: str):
    """Register a subcommand's (add_arguments, run) pair; ``name`` must be listed in :data:`SUBCOMMANDS`."""
    def deco(pair):
        COMMANDS[name] = (pair[0], pair[1], help)
        return pair
    return deco


def emit_json(obj: dict) -> None:
    """Print one JSON object as the last line of stdout."""
    sys.stdout.flush()
    print(json.dumps(obj, sort_keys=True, allow_nan=False, default=json_default_lenient))


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors naming the help to read."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def add_debug_flag(p: argparse.ArgumentParser, top: bool = False) -> None:
    """The hidden ``--debug``: let a bug's traceback through (top level, or after the subcommand)."""
    p.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                   help=argparse.SUPPRESS)


def add_data_args(p: argparse.ArgumentParser, dataset_required: bool = True) -> None:
    p.add_argument("--dataset", required=dataset_required, help="cifar10 | cifar100 | imagenet | digits (demo)")
    p.add_argument("--data-root", default=None, help="directory holding <dataset>/{train,test}.npz, torchvision's "
                                                     "files, or imagenet/{train,val}")
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR/SVHN (needs internet)")


def bounded(kind: type, low, high, what: str = "") -> Callable[[str], object]:
    """An argparse ``type``: ``kind(text)`` within ``[low, high]`` (finite), else a one-line error."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}")
        if not (low <= value <= high):  # also rejects nan
            raise argparse.ArgumentTypeError(f"{text} is out of range: use {_fmt(low)}..{_fmt(high)}{what}")
        return value
    parse.__name__ = kind.__name__
    return parse


def _fmt(x) -> str:
    """1e6 -> "1000000", 0.5 -> "0.5"."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


MAX_NUM = 10_000_000
MAX_SEED = 2 ** 31 - 1


def add_fewshot_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num", type=bounded(int, 1, MAX_NUM), required=True,
                   help="TOTAL size of the few-sample set (not per class)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--balanced", action="store_true", help="Num // K per class")
    g.add_argument("--imbalance-ratio", type=bounded(float, 1.0, 1e6, " (1 means balanced)"), default=100.0,
                   help="long-tailed ratio rho (default 100)")
    p.add_argument("--seed", type=bounded(int, 0, MAX_SEED), default=0,
                   help="seed of the few-sample draw (and of the cell's training; default 0)")


def _command_in(argv: list[str]) -> Optional[str]:
    """The subcommand named on the command line (the first argument that is not an option), if any."""
    for a in argv:
        if not a.startswith("-"):
            return a if a in SUBCOMMANDS else None
    return None


def load_command(name: str):
    """Import the module of subcommand ``name`` (it registers itself) and return its entry."""
    module, _ = SUBCOMMANDS[name]
    importlib.import_module(module)
    return COMMANDS[name]


def build_parser(name: Optional[str] = None) -> Parser:
    """The top-level parser; only subcommand ``name`` (if any) gets its options, the others are listed."""
    parser = Parser(prog="python -m benchmark", description=DESCRIPTION)
    add_debug_flag(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for cmd, (_module, help_text) in SUBCOMMANDS.items():
        if cmd != name:
            sub.add_parser(cmd, help=help_text, add_help=False)
            continue
        add, _run, long_help = load_command(cmd)
        prog = os.environ.get(PROG_ENV) or f"python -m benchmark {cmd}"
        sp = sub.add_parser(cmd, help=help_text, description=long_help, prog=prog)
        add(sp)
        add_debug_flag(sp)
    return parser


def one_line(message: object) -> str:
    """A message on one line (newlines and runs of spaces collapsed)."""
    return " ".join(str(message).split())


def _debug_wanted(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _log_traceback(exc: BaseException) -> Path:
    """Write the traceback of a bug to a log file; returns its path."""
    folder = Path(os.environ.get(LOG_DIR_ENV) or tempfile.gettempdir())
    path = folder / f"oefsmc-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(f"argv: {sys.argv}\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    except OSError:
        return Path("(no log: cannot write one)")
    return path


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so that the interpreter's final flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def guarded(fn: Callable[[], int], debug: bool = False) -> int:
    """Run ``fn`` and turn what it raises into an exit code and at most one line on stderr."""
    try:
        code = fn()
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's final flush
        return code
    except UserError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # noqa: BLE001  (one line, the traceback in a log file)
        if debug:
            raise
        log = _log_traceback(exc)
        print(_failure_line(exc, log), file=sys.stderr)
        return EXIT_USER_ERROR if _environmental(exc) else EXIT_BUG


def _environmental(exc: BaseException) -> bool:
    """An OS error about a named file (a full disk, a path that vanished): the environment, not a bug."""
    return isinstance(exc, OSError) and exc.filename is not None


def _failure_line(exc: BaseException, log: Path) -> str:
    if _environmental(exc):
        return (f"error: {exc.strerror or type(exc).__name__}: {exc.filename} (check the path, its permissions and "
                f"the free space; traceback in {log})")
    return (f"error: internal error ({type(exc).__name__}: {one_line(exc)[:200]}); this is a bug, please report it "
            f"with the traceback in {log} (or rerun with --debug)")


def _run(argv: list[str]) -> int:
    parser = build_parser(_command_in(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a one-line command-line error (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USER_ERROR
    if not args.command:
        parser.print_help()
        return EXIT_USER_ERROR
    return COMMANDS[args.command][1](args)


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m benchmark ARGV``: the exit code (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return guarded(lambda: _run(argv), _debug_wanted(argv))
