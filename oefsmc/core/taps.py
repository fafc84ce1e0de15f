"""Feature taps by module path: run a network up to a module and take its output (layer-wise distillation)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn as nn


class StopForward(Exception):
    """Raised by a hook to end a forward pass early once the wanted feature is captured."""


@contextmanager
def capture_until(model: nn.Module, name: str, inputs: bool = False) -> Iterator[dict]:
    """Capture ``name``'s output (and input) and stop the forward pass there (saves the rest of the net)."""
    box: dict = {}
    module = model.get_submodule(name)

    def hook(_m, inp, out):
        box["out"] = out
        if inputs:
            box["in"] = inp[0]
        raise StopForward

    handle = module.register_forward_hook(hook)
    try:
        yield box
    finally:
        handle.remove()


def run_until(model: nn.Module, name: str, x: torch.Tensor, inputs: bool = False) -> dict:
    """Forward ``x`` only as far as module ``name``; returns {"out": ..., "in": ...}."""
    with capture_until(model, name, inputs) as box:
        try:
            model(x)
        except StopForward:
            pass
    if "out" not in box:
        raise RuntimeError(f"module {name} was not reached in the forward pass")
    return box
