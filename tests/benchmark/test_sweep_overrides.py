"""``sweep --set`` (validated once, scoped per cell) and ``sweep --only`` (a slice of the grid)."""
from __future__ import annotations

import argparse

import pytest

from benchmark.grids import build_grid, make_cell
from benchmark.overrides import parse_sweep_overrides, scoped_overrides, with_overrides
from benchmark.profiles import get_profile
from benchmark.selection import parse_selection, select_entries
from benchmark.sweep import add_sweep_arguments
from oefsmc.errors import UserError

SWEEP = {"mir.iters": "5", "fskd.ridge": "0.1", "oe.eta": "1.5", "finetune.max_iters": "7", "teacher.epochs": "2"}


def test_every_namespace_is_checked_once():
    assert parse_sweep_overrides([f"{k}={v}" for k, v in SWEEP.items()]) == SWEEP
    for bad, msg in (("mir.iterz=3", "unknown parameter 'mir.iterz'"), ("teacher.epochs=x", "expected an integer"),
                     ("teacher.depth=3", "unknown teacher setting"), ("oe.ood=nowhere:x", "unknown OOD source"),
                     ("bogus.x=1", "expected NAMESPACE.NAME"), ("iters=3", "expected NAMESPACE.NAME"),
                     ("mir.iters", "expected NAME=VALUE")):
        with pytest.raises(UserError, match=msg):
            parse_sweep_overrides([bad])


@pytest.mark.parametrize("method,oe,teacher,expected", [
    ("mir", "none", None, {"mir.iters", "teacher.epochs"}),
    ("mir", "full", None, {"mir.iters", "oe.eta", "finetune.max_iters", "teacher.epochs"}),
    ("fskd", "ft-only", "/t.pt", {"fskd.ridge", "finetune.max_iters"}),
    ("cd", "no-ft", None, {"oe.eta", "finetune.max_iters", "teacher.epochs"}),
])
def test_an_override_reaches_only_the_cells_it_acts_on(method, oe, teacher, expected):
    cell = {"method": method, "oe": oe, "teacher": teacher}
    assert set(scoped_overrides(SWEEP, cell)) == expected


def test_cells_carry_the_sweep_overrides_and_their_own_win():
    profile = with_overrides(get_profile("demo"), {"oe.lambda": "0.3", "mir.iters": "5"})
    assert "--set mir.iters=5" in profile.shortens and "--set oe.lambda=0.3" in profile.shortens
    cell = make_cell(profile, "cifar10", 50, balanced=False, method="mir", oe="full", seed=0,
                     overrides={"oe.lambda": "0.8"})
    assert cell["overrides"] == {"oe.lambda": "0.8", "mir.iters": "5"}
    fig3c = [e for e in build_grid(["fig3c"], profile, [0])]
    assert sorted(e.cell["overrides"]["oe.lambda"] for e in fig3c) == ["0", "0.2", "0.4", "0.5", "0.6", "0.8", "1"]
    none = make_cell(profile, "cifar10", 50, balanced=False, method="fskd", oe="none", seed=0)
    assert none["overrides"] == {}


def test_only_selects_any_of_its_conditions():
    entries = build_grid(["table2"], get_profile("demo"), [0, 1])
    conds = parse_selection(["paper_dataset=cifar10,paper_num=10,method=cd|fskd,variant=full",
                             "paper_dataset=imagenet,method=mir,variant=none,seed=1"])
    chosen = select_entries(entries, conds)
    got = sorted((e.tag["paper_dataset"], e.tag["method"], e.tag["paper_num"], e.cell["seed"]) for e in chosen)
    assert got == [("cifar10", "cd", 10, 0), ("cifar10", "cd", 10, 1), ("cifar10", "fskd", 10, 0),
                   ("cifar10", "fskd", 10, 1), ("imagenet", "mir", 1000, 1), ("imagenet", "mir", 2000, 1),
                   ("imagenet", "mir", 3000, 1)]
    assert select_entries(entries, []) == entries
    with pytest.raises(UserError, match="selects no cell"):
        select_entries(entries, parse_selection(["method=nope"]))
    for bad in ("colour=red", "method", "method="):
        with pytest.raises(UserError):
            parse_selection([bad])


def test_the_sweep_command_line_has_set_and_only():
    args = add_sweep_arguments(argparse.ArgumentParser()).parse_args(
        ["--table", "2", "--set", "mir.iters=5", "--only", "method=mir"])
    assert args.overrides == ["mir.iters=5"] and args.only == ["method=mir"]
