"""Every hyperparameter declares what it accepts; an override outside it is a one-line error."""
from __future__ import annotations

import pytest

from benchmark.plugins import load_plugins
from oefsmc.core.finetune import FINETUNE_PARAMS
from oefsmc.core.method import METHODS
from oefsmc.core.params import SCHEDULES, Range, parse_param, resolve
from oefsmc.errors import UserError
from oefsmc.oe.params import OE_PARAMS

#: free text validated where it is used (oe.ood: by the OOD source registry in resolve_config)
FREE_TEXT = {"oe.ood"}


def _spaces() -> dict:
    load_plugins()
    spaces = {name: METHODS.get(name).params for name in METHODS.names()}
    return {**spaces, "finetune": FINETUNE_PARAMS, "oe": OE_PARAMS}


def _all_params():
    return [(f"{ns}.{n}", p) for ns, ps in _spaces().items() for n, p in ps.items()]


@pytest.mark.parametrize("full,param", _all_params(), ids=[f for f, _ in _all_params()])
def test_every_param_declares_its_range_and_its_values_are_in_it(full, param):
    if isinstance(param.default, bool):
        assert param.range is None and not param.choices
    elif isinstance(param.default, (int, float)):
        assert isinstance(param.range, Range), f"{full} declares no range"
    else:
        assert param.choices or full in FREE_TEXT, f"{full} declares no choices"
    for schedule in SCHEDULES:
        assert param.problem(param.value_for(schedule)) is None, (full, schedule)


@pytest.mark.parametrize("override,needle", [
    ("fskd.batch_size=0", "fskd.batch_size=0: must be in [1, 65536]"),
    ("oe.lambda=-1", "oe.lambda=-1: must be in [0, 1]"),
    ("oe.eta=-100", "oe.eta=-100: must be in [0, 1000]"),
    ("cd.target_ratio=5", "cd.target_ratio=5: must be in (0, 1]"),
    ("cd.target_ratio=0", "must be in (0, 1]"),
    ("mir.lr=nan", "mir.lr=nan: expected a finite number"),
    ("mir.iters=1e12", "expected an integer"),
    ("finetune.eval_every=0", "must be in [1, 10000000]"),
    ("oe.labels=sometimes", "choose one of fixed, per-batch"),
])
def test_out_of_range_override_is_one_line_naming_it(override, needle):
    full, raw = override.split("=")
    ns, name = full.split(".")
    with pytest.raises(UserError) as err:
        parse_param(full, _spaces()[ns][name], raw)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_in_range_overrides_resolve():
    hp = resolve("oe", OE_PARAMS, "demo", {"oe.lambda": "0", "oe.eta": "0.1", "oe.aux_size": "25"})
    assert (hp["lambda"], hp["eta"], hp["aux_size"]) == (0.0, 0.1, 25)


def test_range_text():
    assert str(Range(0, 1)) == "[0, 1]" and str(Range(0, 10, low_open=True)) == "(0, 10]"
    assert str(Range(1, None)) == "[1, inf)" and not Range(0, 1).contains(float("inf"))
