"""Sweep workers on one machine: CPU threads per worker, and several CUDA cells sharing one GPU.

``--jobs N`` starts N loky worker processes (:func:`benchmark.execution.execute`).  On a GPU machine each
worker that runs a CUDA cell creates its own CUDA context the first time it touches the device
(``oefsmc.pipeline.run_config`` picks the device inside the worker), so N cells share the GPU the way N
independent processes do: the few-sample cells are small and leave most of a large GPU idle on their own.

- The parent never initialises CUDA: planning (``resolve_config``) and rendering only read files, the
  GPU's name and bf16 support come from a child process (``oefsmc.envinfo.cuda_facts``), and devices
  are picked in the workers (tested with CUDA made to look available).  loky starts its workers by
  fork + exec, so they would not inherit a CUDA state in any case; the parent would only waste a
  context's memory on the GPU.
- CPU threads (:func:`worker_threads`): a worker running CPU cells gets one intra-op thread (N workers
  share the cores; more would oversubscribe them).  A worker running CUDA cells gets its share of the
  cores, ``cores // N``, not one: its CPU-side work (few-sample draws, decoding, resizing OOD images,
  index generation for the augmentation) then does not queue behind a single thread while the GPU waits,
  and the thread count does not change any CUDA kernel.
- With ``--jobs 1`` the cells run in the sweep process itself and the thread count is left as it is.
- A task of a SLURM job array (``--backend slurm``) is alone in its allocation: it counts as one worker
  and its cores are those the allocation gives it (:func:`available_cores`), not the node's.
"""
from __future__ import annotations

import os
import sys


def uses_cuda(device: str) -> bool:
    """Will a cell with this ``device`` setting run on CUDA in this (worker) process?"""
    if device not in ("auto", "cuda") and not str(device).startswith("cuda:"):
        return False
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_available())


def available_cores() -> int:
    """The cores this process may run on (a SLURM allocation or ``taskset`` restricts them), else all."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def worker_threads(device: str, n_jobs: int, cores: int | None = None) -> int:
    """Intra-op CPU threads for one of ``n_jobs`` workers running cells on ``device``."""
    if not uses_cuda(device):
        return 1
    cores = cores or available_cores()
    return max(1, cores // max(1, n_jobs))
