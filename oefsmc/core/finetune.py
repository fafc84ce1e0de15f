"""The shared fine-tuning stage that runs after ``compress`` (not per method).

Its loss is supplied by the pipeline's configuration (plain CE on the few-sample set, or OE-FSMC's
CE + eta * weighted OOD CE, Eqs. 8-9), so this loop knows nothing about OE.  The paper fixes only batch 128
and lr 5e-4 (Sec. 5.1) and says "we employ an early stopping mechanism" (Sec. 4.3); everything else is a
*protocol choice* with a switch, chosen once on a validation split of the training pool (never the test
set; ``python -m benchmark protocol-study``, docs/REPRODUCTION_NOTES.md section 4):

- ``optimizer``: SGD (momentum 0.9) | Adam;
- ``bn``: how BatchNorm is handled -- ``train`` (the batch's statistics; running statistics updated),
  ``eval`` (running statistics frozen, affine parameters still trained), ``recal`` (train mode, then the
  running statistics re-estimated on the fine-tuning images -- few-sample plus auxiliary -- before every
  monitor evaluation, so the restored weights carry re-estimated statistics);
- ``params``: what is trained -- ``all`` (every parameter), ``head`` (the final linear layer only), or
  ``bn+head`` (BatchNorm affine parameters and the head);
- the early-stopping ``monitor`` and its relative tolerance ``rel_tol``.

Monitors use only the few-sample (and auxiliary) sets, never test labels and never extra pool images:
- ``few_loss``: CE on the whole few-sample set, in eval mode (the primary objective; the OOD term of
  Eq. 9 is a regulariser and is not monitored);
- ``train_loss``: the whole fine-tuning objective on the few-sample (+ auxiliary) set, in eval mode;
- ``few_acc``: top-1 on the few-sample set, in eval mode (ties broken by ``few_loss``);
- ``holdout_loss``: CE on a held-out part of the few-sample set that the fine-tuning stage does not train
  on (``holdout``, a fraction per class; the pipeline splits it off; the compression stage still saw it).
The weights with the best monitor value are restored at the end.

Diagnostic only: ``select=oracle-test`` additionally scores the *test* set at the monitor's evaluation
points, in a stream kept apart from the monitor (the run itself is unchanged, so its ``top1`` equals the
normal cell's), and records the best test accuracy over the iterations the run made.  It measures how
much test-set selection *could* add; it never enters a table, a figure or a verdict.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import torch
import torch.nn as nn

from .params import Param, between, positive
from .stage_data import StageData

FINETUNE_PARAMS = {
    "optimizer": Param("sgd", "optimizer (Sec. 5.1 names none; chosen by the fine-tuning study, "
                              "docs/REPRODUCTION_NOTES.md section 4)", choices=("sgd", "adam")),
    "lr": Param(5e-4, "learning rate (OE-FSMC Sec. 5.1)", range=positive(10)),
    "momentum": Param(0.9, "SGD momentum (optimizer=sgd only; ours)", range=between(0, 0.999)),
    "batch_size": Param(128, "few-sample batch size (Sec. 5.1); the auxiliary batch has the same size",
                        range=between(1, 65536)),
    "max_iters": Param(300, "upper bound on iterations (ours)", {"demo": 60}, range=between(0, 1e7)),
    "patience": Param(30, "early stopping: iterations without monitor improvement (ours)", {"demo": 15},
                      range=between(1, 1e7)),
    "eval_every": Param(5, "iterations between monitor evaluations", {"demo": 5}, range=between(1, 1e7)),
    "weight_decay": Param(0.0, "weight decay (ours; the paper states none)", range=between(0, 1)),
    "monitor": Param("few_loss", "early-stopping monitor, computed on few-sample(+aux) data only",
                     choices=("train_loss", "few_loss", "few_acc", "holdout_loss")),
    "rel_tol": Param(0.01, "early stopping: an improvement counts when it beats the best by this fraction of "
                           "its magnitude (ours; an absolute 1e-6 picked steps by noise)", range=between(0, 1)),
    "holdout": Param(0.2, "monitor=holdout_loss only: fraction of each class's few samples held out of "
                          "fine-tuning (classes with one sample keep it for training)", range=between(0, 1)),
    "augment": Param(True, "random crop + flip on training batches (CIFAR standard)", {"demo": False}),
    "forward": Param("joint", "few-sample and auxiliary images in one concatenated forward pass "
                     "(Open-Sampling; BN sees both) or separate passes", choices=("joint", "separate")),
    "bn": Param("train", "BatchNorm during fine-tuning: train | eval (frozen statistics) | recal "
                         "(re-estimated on the fine-tuning images)", choices=("train", "eval", "recal")),
    "params": Param("head", "what is fine-tuned: head (final linear layer; chosen by the protocol study, "
                            "docs/REPRODUCTION_NOTES.md section 4) | all | bn+head",
                    choices=("all", "head", "bn+head")),
    "select": Param("monitor", "monitor (the cell) | oracle-test (DIAGNOSTIC: also scores the test set at the "
                               "monitor's evaluation points; never in a table, figure or verdict)",
                    choices=("monitor", "oracle-test")),
}
HOLDOUT_MONITORS = ("holdout_loss",)
DIAGNOSTIC_TEST_SELECTION = "test-set selection"

# optimizer name -> (parameters, hp) -> torch optimizer
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda params, hp: torch.optim.Adam(params, lr=hp["lr"], weight_decay=hp["weight_decay"]),
    "sgd": lambda params, hp: torch.optim.SGD(params, lr=hp["lr"], momentum=hp["momentum"],
                                              weight_decay=hp["weight_decay"]),
}

# (model, x_few, y_few, x_aux, y_aux) -> (loss, parts)
LossFn = Callable[..., tuple[torch.Tensor, dict]]
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


# ------------------------------------------------------------------------------------ what is trained
def head_module(model: nn.Module) -> nn.Linear:
    """The final linear layer (the classifier head): the last ``nn.Linear`` in module order."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("finetune.params=head: the model has no linear head")
    return linears[-1]


def _bn_params(model: nn.Module) -> list[nn.Parameter]:
    return [p for m in model.modules() if isinstance(m, _BN) for p in m.parameters(recurse=False)]


# scope name -> model -> the parameters the optimizer trains
SCOPES: dict[str, Callable[[nn.Module], list[nn.Parameter]]] = {
    "all": lambda model: list(model.parameters()),
    "head": lambda model: list(head_module(model).parameters()),
    "bn+head": lambda model: _bn_params(model) + list(head_module(model).parameters()),
}


# ------------------------------------------------------------------------------------ BatchNorm modes
def set_train_mode(model: nn.Module, bn: str) -> None:
    """``model.train()``, then BatchNorm layers back to eval mode when ``bn == "eval"``."""
    model.train()
    if bn == "eval":
        for m in model.modules():
            if isinstance(m, _BN):
                m.eval()


@torch.no_grad()
def recalibrate_bn(model: nn.Module, x: torch.Tensor, batch_size: int) -> None:
    """Re-estimate every BatchNorm's running statistics on ``x`` (cumulative average over its batches)."""
    bns = [m for m in model.modules() if isinstance(m, _BN)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    was_training = model.training
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for i in range(0, len(x), batch_size):
        model(x[i:i + batch_size])
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.train(was_training)


def _snapshot(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _forward(model: nn.Module, x_few: torch.Tensor, x_aux: Optional[torch.Tensor], mode: str):
    if x_aux is None:
        return model(x_few), None
    if mode == "joint":
        out = model(torch.cat([x_few, x_aux]))
        return out[: len(x_few)], out[len(x_few):]
    return model(x_few), model(x_aux)


def _ce(logits, labels) -> float:
    return float(torch.nn.functional.cross_entropy(logits, labels))


# ------------------------------------------------------------------------------------ monitors
# name -> (view) -> (value, tie-break); lower is better.  ``view`` holds the eval-mode logits of the
# fine-tuning sets (few, aux) and of the held-out few samples, the data and the loss.
MONITORS: dict[str, Callable[[dict], tuple[float, float]]] = {
    "train_loss": lambda v: (float(v["loss_fn"](v["few"], v["data"].few_y, v["aux"],
                                                v["data"].aux_y if v["data"].has_aux else None)[0]), 0.0),
    "few_loss": lambda v: (_ce(v["few"], v["data"].few_y), 0.0),
    "few_acc": lambda v: (-float((v["few"].argmax(1) == v["data"].few_y).float().mean()),
                          _ce(v["few"], v["data"].few_y)),
    "holdout_loss": lambda v: (_ce(v["holdout"], v["holdout_y"]), 0.0) if v["holdout"] is not None
    else (float("nan"), 0.0),
}


def improves(value: tuple[float, float], best: tuple[float, float], rel_tol: float = 0.0,
             abs_tol: float = 1e-6) -> bool:
    """A lower primary value by more than ``max(abs_tol, rel_tol * |best|)``; or an equal primary value
    (within that tolerance) and a tie-break lower by more than ``abs_tol``."""
    tol = max(abs_tol, rel_tol * abs(best[0]))
    return value[0] < best[0] - tol or (abs(value[0] - best[0]) <= tol and value[1] < best[1] - abs_tol)


class EarlyStopping:
    """The stopping rule: stop once ``patience`` iterations pass without the monitor improving (checked
    every ``every`` iterations, relative tolerance ``rel_tol``); remembers the best value and its
    iteration.  Shared by :func:`finetune` and the fine-tuning study's simulation, so both follow one rule."""

    def __init__(self, first: tuple[float, float], patience: int, every: int, rel_tol: float = 0.0):
        self.best, self.best_iter, self.since_best = first, 0, 0
        self.patience, self.every, self.rel_tol = patience, every, rel_tol

    def update(self, value: tuple[float, float], iteration: int) -> bool:
        """Record the monitor at ``iteration``; True if it is the new best."""
        if improves(value, self.best, self.rel_tol):
            self.best, self.best_iter, self.since_best = value, iteration, 0
            return True
        self.since_best += self.every
        return False

    @property
    def should_stop(self) -> bool:
        return self.since_best >= self.patience


# ------------------------------------------------------------------------------------ the loop
def finetune(model: nn.Module, data: StageData, loss_fn: LossFn, hp: dict, generator: torch.Generator,
             aux_labels_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
             augment_fn: Optional[Callable] = None,
             probe: Optional[Callable[[nn.Module, int, dict], Optional[bool]]] = None,
             holdout: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
             test_score: Optional[Callable[[nn.Module], float]] = None) -> dict:
    """Fine-tune ``model`` in place; returns stats (iterations, best monitor, losses, seconds).

    ``aux_labels_fn(aux_idx)`` gives the auxiliary labels of a batch: the fixed assigned labels by
    default, or freshly drawn ones (Open-Sampling's per-batch mode).  ``holdout`` = (x, y) of the held-out
    few samples (monitor ``holdout_loss``).  ``probe(model, iteration, values)``, if given, is called
    (model in eval mode) at every monitor evaluation, iteration 0 included, with the (value, tie-break)
    of every registered monitor; it observes and must not change the model; returning True ends the run
    (the fine-tuning study uses it; cells never do).  ``test_score(model)`` (the ``oracle-test``
    diagnostic) is called at the same points, after the monitor, and its values only go to
    ``stats["diagnostic"]``.
    """
    t0 = time.perf_counter()
    trained = SCOPES[hp["params"]](model)
    trained_ids = {id(p) for p in trained}
    frozen = [p for p in model.parameters() if id(p) not in trained_ids and p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    opt = OPTIMIZERS[hp["optimizer"]](trained, hp)
    batches = data.minibatches(hp["batch_size"], generator)
    aux_labels = aux_labels_fn or (lambda idx: data.aux_y[idx])
    curve: list[dict] = []
    stop_requested = False

    def monitor_value(iteration: int) -> tuple[float, float]:
        nonlocal stop_requested
        if hp["bn"] == "recal":
            recalibrate_bn(model, data.all_x(), hp["batch_size"] * (2 if data.has_aux else 1))
        model.eval()
        with torch.no_grad():
            logits_few, logits_aux = _forward(model, data.few_x, data.aux_x if data.has_aux else None, "separate")
            view = {"few": logits_few, "aux": logits_aux, "data": data, "loss_fn": loss_fn,
                    "holdout": model(holdout[0]) if holdout is not None else None,
                    "holdout_y": holdout[1] if holdout is not None else None}
            names = ([n for n in MONITORS if n not in HOLDOUT_MONITORS or holdout is not None] if probe is not None
                     else [hp["monitor"]])
            values = {n: MONITORS[n](view) for n in names}
        if probe is not None:
            stop_requested = bool(probe(model, iteration, values))
        if test_score is not None:
            curve.append({"iter": iteration, "test_top1": float(test_score(model))})
        set_train_mode(model, hp["bn"])
        return values[hp["monitor"]]

    stopping = EarlyStopping(monitor_value(0), hp["patience"], hp["eval_every"], hp["rel_tol"])
    best_state = _snapshot(model)
    it = 0
    history = []
    set_train_mode(model, hp["bn"])
    try:
        for it in range(1, hp["max_iters"] + 1):
            few_idx, aux_idx = next(batches)
            x_few = data.few_x[few_idx]
            x_aux = data.aux_x[aux_idx] if aux_idx is not None else None
            if augment_fn is not None:
                x_few = augment_fn(x_few)
                x_aux = augment_fn(x_aux) if x_aux is not None else None
            logits_few, logits_aux = _forward(model, x_few, x_aux, hp["forward"])
            loss, parts = loss_fn(logits_few, data.few_y[few_idx], logits_aux,
                                  aux_labels(aux_idx) if aux_idx is not None else None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if it % hp["eval_every"] == 0 or it == hp["max_iters"]:
                value = monitor_value(it)
                history.append({"iter": it, "monitor": value[0], **{k: float(v) for k, v in parts.items()}})
                if stopping.update(value, it):
                    best_state = _snapshot(model)
                if stopping.should_stop or stop_requested:
                    break
    finally:
        for p in frozen:
            p.requires_grad_(True)
    model.load_state_dict(best_state)
    model.eval()
    stats = {"iters": it, "best_iter": stopping.best_iter, "best_monitor": stopping.best[0], "monitor": hp["monitor"],
             "history": history[-20:], "seconds": time.perf_counter() - t0,
             "trained_params": int(sum(p.numel() for p in trained))}
    if test_score is not None:
        best = max(curve, key=lambda r: r["test_top1"])
        stats["diagnostic"] = {"kind": DIAGNOSTIC_TEST_SELECTION, "oracle_top1": best["test_top1"],
                               "oracle_iter": best["iter"], "curve": curve,
                               "note": "test accuracy at the monitor's evaluation points; never used by the run"}
    return stats
