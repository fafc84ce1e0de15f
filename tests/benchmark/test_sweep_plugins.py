"""The sweep loads the plug-ins (benchmark/plugins.py) wherever it reaches into the core: planning through
the real pipeline, workers running the real ``run_config``, and ``--render-only``'s record plan; a test's
fake pipeline is imported without them.  And the split sweep's entry points all still answer."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark import hooks, plugins, record_plan, worker

REPO = Path(__file__).resolve().parents[2]


def test_the_plugin_module_names_baselines():
    """In a fresh interpreter (this one has the plug-ins already: tests/conftest.py) the core registers no
    baseline until ``load_plugins`` imports them."""
    assert plugins.PLUGIN_PACKAGES == ("baselines",)
    probe = ("import sys; from benchmark import plugins; from oefsmc.core.method import METHODS; "
             "before = ('baselines' in sys.modules, 'mir' in METHODS); plugins.load_plugins(); "
             "print(before, ('baselines' in sys.modules, 'mir' in METHODS))")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env,
                         cwd=REPO, timeout=120)
    assert out.stdout.split() == ["(False,", "False)", "(True,", "True)"]


@pytest.fixture
def loads(monkeypatch):
    calls = []
    monkeypatch.setattr(hooks, "load_plugins", lambda: calls.append(1))
    monkeypatch.setattr(hooks, "_CALLABLES", {})
    return calls


def test_a_function_of_the_core_is_imported_after_the_plugins(loads):
    hooks.load_callable("oefsmc.errors:UserError")
    assert loads == [1]
    hooks._import_pipeline("oefsmc.errors")
    assert loads == [1, 1]
    hooks.load_callable("test_sweep_fakes:run_config")   # the test-only fake reads no registry
    hooks._import_pipeline("test_sweep_fakes")
    assert loads == [1, 1]


def test_a_worker_loads_the_plugins_before_it_runs_the_core(loads):
    hooks.prepare_runner("oefsmc.pipeline:run_config")
    hooks.prepare_runner(lambda resolved: {})              # a callable may wrap the core's run_config
    assert loads == [1, 1]
    hooks.prepare_runner("test_sweep_fakes:run_config")
    assert loads == [1, 1]
    assert worker.prepare_runner is hooks.prepare_runner


def test_the_default_hooks_resolve_through_the_plugins(loads, monkeypatch):
    monkeypatch.delenv(hooks.FAKE_PIPELINE_ENV, raising=False)
    monkeypatch.setattr(hooks, "DEFAULT_PIPELINE", "oefsmc.errors")
    h = hooks.default_hooks()
    assert h.run == "oefsmc.errors:run_config" and h.not_applicable({"method": "cd"}) is None
    assert loads


def test_the_record_plan_loads_the_plugins(monkeypatch):
    calls = []
    real = plugins.load_plugins
    monkeypatch.setattr(plugins, "load_plugins", lambda: calls.append(1) or real())
    spaces = record_plan.param_spaces()
    assert calls == [1] and {"cd", "fskd", "mir", "practise", "finetune", "oe"} <= set(spaces)


@pytest.mark.parametrize("module", ["benchmark.sweep_cli", "benchmark.sweep"])
def test_each_entry_point_of_the_sweep_answers(module):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("OEFSMC_PROG", None)
    proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.startswith("usage: python -m benchmark sweep") and "--backend-opt KEY=VALUE" in proc.stdout
