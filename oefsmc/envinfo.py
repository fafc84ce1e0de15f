"""What ran: git commit, package versions, device -- stored in every record."""
from __future__ import annotations

import functools
import importlib.metadata as md
import platform
import subprocess
from pathlib import Path

import torch

PACKAGES = ("torch", "torchvision", "torch-pruning", "numpy", "scikit-learn", "scikit-image", "pandas", "joblib")
REPO = Path(__file__).resolve().parents[1]


#: Tracked paths that hold outputs, not code: a record or a teacher checkpoint written while a sweep runs
#: does not make the code that computes the next cell differ from its commit.
OUTPUT_PATHS = ("results", "paper_tables/out")


@functools.lru_cache(maxsize=1)
def git_state() -> dict:
    """The commit, and whether tracked files other than :data:`OUTPUT_PATHS` differ from it (``dirty``)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    try:
        changed = git("status", "--porcelain", "-uno", "--", ".", *(f":(exclude){p}" for p in OUTPUT_PATHS))
        return {"commit": git("rev-parse", "HEAD") or "unknown", "dirty": bool(changed)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


@functools.lru_cache(maxsize=1)
def package_versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)  # not torch_pruning.__version__ (stale in 1.6.1, style.md Sec. 4.4)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def environment(device: torch.device) -> dict:
    return {"git": git_state(), "packages": package_versions(), "python": platform.python_version(),
            "platform": platform.platform(), "device": device_name(device), "hostname": platform.node(),
            # the CPU's vector ISA (e.g. AVX2, AVX512): fp32 kernels, and whether bf16 is native, follow it
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
