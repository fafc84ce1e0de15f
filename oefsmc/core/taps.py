"""Feature taps by module path (forward hooks), for layer-wise distillation and reconstruction."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn as nn


class Taps:
    """``with Taps(model, ["features.0", ...]) as taps: model(x); taps.outputs["features.0"]``.

    Records each module's output (and, with ``inputs=True``, its first input) on every forward pass.
    """

    def __init__(self, model: nn.Module, names: list[str], inputs: bool = False, detach: bool = True):
        self.model, self.names, self.record_inputs, self.detach = model, list(names), inputs, detach
        self.outputs: dict[str, torch.Tensor] = {}
        self.inputs: dict[str, torch.Tensor] = {}
        self._handles: list = []

    def __enter__(self) -> "Taps":
        for name in self.names:
            module = self.model.get_submodule(name)
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def _hook(self, name: str):
        def fn(_module, inp, out):
            self.outputs[name] = out.detach() if self.detach else out
            if self.record_inputs:
                self.inputs[name] = inp[0].detach() if self.detach else inp[0]
        return fn

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


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
