"""Structural pruning that returns a physically smaller network plus the kept channel indices.

- Channel *selection* is ours and explicit (L1 filter norms, Li et al. 2017, "Pruning Filters for
  Efficient ConvNets"; or a method's own choice such as CD's solve), so the kept indices are exact and
  known.  The *surgery* (slicing the conv, its BN, the next conv's input channels or the linear head's
  columns) is Torch-Pruning's dependency graph (``torch-pruning`` 1.6), which handles the coupled layers
  of any architecture; we only ever prune convs whose outputs are not residually coupled (option-A
  shortcuts break Torch-Pruning's tracing of coupled channels, shared/reference/style.md Sec. 4.4).
- Block dropping (PRACTISE) replaces a residual block whose shortcut is the identity by ``nn.Identity``.
"""
from __future__ import annotations

import copy
from typing import Mapping

import torch
import torch.nn as nn
import torch_pruning as tp


def get_module(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path)


def set_module(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, leaf, new)


def l1_filter_norms(conv: nn.Conv2d) -> torch.Tensor:
    """Li et al. (2017) Eq. 1: s_j = sum |W_j| over the filter's input channels and kernel."""
    return conv.weight.detach().abs().flatten(1).sum(1)


def top_k_by_l1(conv: nn.Conv2d, n_keep: int) -> torch.Tensor:
    """Indices (ascending, i.e. original order) of the ``n_keep`` filters with the largest L1 norm.

    Ties break toward the lower index (stable sort), so selection is deterministic.
    """
    norms = l1_filter_norms(conv)
    n_keep = max(1, min(int(n_keep), norms.numel()))
    order = torch.sort(-norms, stable=True).indices
    return torch.sort(order[:n_keep]).values


def n_keep_for_ratio(channels: int, prune_ratio: float) -> int:
    """Filters kept when pruning ``prune_ratio`` of them: C - int(C * p) (FSKD's int(C*p)-th threshold)."""
    return channels - int(channels * prune_ratio)


def prune_output_channels(model: nn.Module, kept: Mapping[str, torch.Tensor],
                          example_input: torch.Tensor) -> nn.Module:
    """Physically remove, in place, every output channel of each named conv that is not in ``kept``.

    ``kept`` maps conv module paths to kept output-channel indices (teacher numbering).  Returns ``model``.
    """
    if not kept:
        return model
    was_training = model.training
    model.eval()
    with torch.enable_grad():  # Torch-Pruning traces the graph with autograd
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_input)
        for name, idx in kept.items():
            conv = get_module(model, name)
            keep = set(int(i) for i in idx.tolist())
            pruned = [i for i in range(conv.out_channels) if i not in keep]
            if not pruned:
                continue
            group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=pruned)
            if not graph.check_pruning_group(group):
                raise RuntimeError(f"Torch-Pruning refused to prune {name} to {len(keep)} channels")
            group.prune()
    model.train(was_training)
    return model


def pruned_copy(teacher: nn.Module, kept: Mapping[str, torch.Tensor], example_input: torch.Tensor) -> nn.Module:
    """A physically smaller deep copy of ``teacher`` (the teacher itself is untouched)."""
    return prune_output_channels(copy.deepcopy(teacher), kept, example_input)


def drop_blocks(model: nn.Module, block_paths: list[str]) -> nn.Module:
    """Replace each named residual block (identity shortcut required) by ``nn.Identity`` in place."""
    for path in block_paths:
        block = get_module(model, path)
        shortcut = getattr(block, "shortcut", None) or getattr(block, "downsample", None)
        if shortcut is not None and not isinstance(shortcut, nn.Identity):
            raise ValueError(f"{path} changes shape (non-identity shortcut) and cannot be dropped")
        set_module(model, path, nn.Identity())
    return model


def count_params_macs(model: nn.Module, example_input: torch.Tensor) -> tuple[int, int]:
    """(parameters, MACs) for one input, via Torch-Pruning's counter (``tp.utils.count_ops_and_params``)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(model, example_input[:1])
    model.train(was_training)
    return int(params), int(macs)
