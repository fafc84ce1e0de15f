"""What ran: git commit, package versions, device -- stored in every record."""
from __future__ import annotations

import functools
import importlib.metadata as md
import json
import platform
import subprocess
import sys
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


def cuda_facts() -> dict:
    """``{"name", "bf16"}`` of CUDA device 0, asked without initialising CUDA in this process when it is not
    yet initialised: a sweep's parent resolves every cell's device and precision and must not create a
    CUDA context (benchmark/workers.py), and ``torch.cuda.get_device_name`` / ``is_bf16_supported`` do, so a
    child process asks instead, once per process.  ``{}`` without CUDA."""
    if not torch.cuda.is_available():
        return {}
    if torch.cuda.is_initialized():
        return {"name": torch.cuda.get_device_name(0), "bf16": bool(torch.cuda.is_bf16_supported())}
    return _probe_cuda()


@functools.lru_cache(maxsize=1)
def _probe_cuda() -> dict:
    """:func:`cuda_facts` in a child process (which may initialise CUDA; this one does not)."""
    probe = ("import json, torch; print(json.dumps({'name': torch.cuda.get_device_name(0), "
             "'bf16': bool(torch.cuda.is_bf16_supported())} if torch.cuda.is_available() else {}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def environment(device: torch.device) -> dict:
    return {"git": git_state(), "packages": package_versions(), "python": platform.python_version(),
            "platform": platform.platform(), "device": device_name(device), "hostname": platform.node(),
            # the CPU's vector ISA (e.g. AVX2, AVX512): fp32 kernels, and whether bf16 is native, follow it
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
