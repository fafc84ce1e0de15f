"""Shared fixtures.  Tests that need ``../shared/data`` skip with a reason when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("OEFSMC_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_configure(config):
    torch.set_num_threads(min(2, torch.get_num_threads()))


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
