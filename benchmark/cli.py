"""``python -m benchmark``: one subcommand per job; every data-producing one accepts ``--json`` and then
prints one JSON object as the last line of stdout.  Errors a user can fix are one line on stderr with a
non-zero exit and no traceback (``oefsmc.errors.UserError``)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

from oefsmc.errors import UserError

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]] = {}


def command(name: str, help: str):
    def deco(pair):
        COMMANDS[name] = (pair[0], pair[1], help)
        return pair
    return deco


def emit_json(obj: dict) -> None:
    """Print one JSON object as the last line of stdout."""
    sys.stdout.flush()
    print(json.dumps(obj, sort_keys=True, allow_nan=False, default=str))


def add_data_args(p: argparse.ArgumentParser, dataset_required: bool = True) -> None:
    p.add_argument("--dataset", required=dataset_required, help="cifar10 | cifar100 | imagenet | digits (demo)")
    p.add_argument("--data-root", default=None, help="directory holding <dataset>/{train,test}.npz, torchvision's "
                                                     "files, or imagenet/{train,val}")
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR/SVHN (needs internet)")


def add_fewshot_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num", type=int, required=True, help="TOTAL size of the few-sample set (not per class)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--balanced", action="store_true", help="Num // K per class")
    g.add_argument("--imbalance-ratio", type=float, default=100.0, help="long-tailed ratio rho (default 100)")
    p.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    from . import commands, finetune_study, gpu_cost, gpu_runbook, perf  # noqa: F401  (registers the subcommands)
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (add, _run, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        add(sp)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command][1](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
