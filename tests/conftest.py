"""Shared fixtures.  Tests that need ``../shared/data`` skip with a reason when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from benchmark.plugins import load_plugins

#: The methods' registry is filled by the plug-ins (``baselines``), as every entry point does: here at
#: import, before any test module is collected (some parametrise over the registered methods).
load_plugins()

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("OEFSMC_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny nets run on one thread: two OpenMP threads on a busy 2-core machine slow small ops ~100x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    """Give every BatchNorm random affine parameters and running statistics (a non-trivial teacher)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
    return model.eval()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "cifar10" / "test.npz").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA} (../shared/data); set OEFSMC_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Suite caches (trained teachers, decoded images) go to one temporary dir per test session."""
    monkeypatch.setenv("OEFSMC_CACHE", str(_session_cache(tmp_path_factory)))


_CACHE: list[Path] = []


def _session_cache(factory) -> Path:
    if not _CACHE:
        _CACHE.append(factory.mktemp("oefsmc-cache"))
    return _CACHE[0]
