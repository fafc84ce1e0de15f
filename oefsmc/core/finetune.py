"""The shared fine-tuning stage that runs after ``compress`` (not per method).

Its loss is supplied by the pipeline's configuration (plain CE on the few-sample set, or OE-FSMC's
CE + eta * weighted OOD CE, Eqs. 8-9), so this loop knows nothing about OE.  Defaults (Sec. 5.1 gives only
batch 128 and lr 5e-4; the rest is ours and recorded): SGD with momentum 0.9, lr 5e-4, batch 128, at most
300 iterations, early stopping ("we employ an early stopping mechanism", Sec. 4.3) after 30 iterations
without improvement of the monitor.  The optimizer and the monitor were chosen by
``python -m benchmark finetune-study`` on a validation split of the training pool, never the test set
(docs/REPRODUCTION_NOTES.md, section 4); Adam and ``train_loss`` remain switches.

The monitor is named and uses only the few-sample (and auxiliary) sets, never test labels and never
extra pool images:
- ``few_loss``: CE on the whole few-sample set, in eval mode (the primary objective; the OOD term of
  Eq. 9 is a regulariser and is not monitored);
- ``train_loss``: the whole fine-tuning objective on the few-sample (+ auxiliary) set, in eval mode;
- ``few_acc``: top-1 on the few-sample set, in eval mode (ties broken by ``few_loss``).
The weights with the best monitor value are restored at the end.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import torch
import torch.nn as nn

from .params import Param, between, positive
from .stage_data import StageData

FINETUNE_PARAMS = {
    "optimizer": Param("sgd", "optimizer (Sec. 5.1 names none; SGD chosen by the fine-tuning study, "
                              "docs/REPRODUCTION_NOTES.md section 4)", choices=("sgd", "adam")),
    "lr": Param(5e-4, "learning rate (OE-FSMC Sec. 5.1)", range=positive(10)),
    "momentum": Param(0.9, "SGD momentum (optimizer=sgd only; ours)", range=between(0, 0.999)),
    "batch_size": Param(128, "few-sample batch size (Sec. 5.1); the auxiliary batch has the same size",
                        range=between(1, 65536)),
    "max_iters": Param(300, "upper bound on iterations (ours)", {"demo": 60}, range=between(0, 1e7)),
    "patience": Param(30, "early stopping: iterations without monitor improvement (ours)", {"demo": 15},
                      range=between(1, 1e7)),
    "eval_every": Param(5, "iterations between monitor evaluations", {"demo": 5}, range=between(1, 1e7)),
    "weight_decay": Param(0.0, "weight decay (ours)", range=between(0, 1)),
    "monitor": Param("few_loss", "early-stopping monitor, computed on few-sample(+aux) data only (few_loss "
                     "chosen by the fine-tuning study)",
                     choices=("train_loss", "few_loss", "few_acc")),
    "augment": Param(True, "random crop + flip on training batches (CIFAR standard)", {"demo": False}),
    "forward": Param("joint", "few-sample and auxiliary images in one concatenated forward pass "
                     "(Open-Sampling; BN sees both) or separate passes", choices=("joint", "separate")),
}

# optimizer name -> (parameters, hp) -> torch optimizer
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda params, hp: torch.optim.Adam(params, lr=hp["lr"], weight_decay=hp["weight_decay"]),
    "sgd": lambda params, hp: torch.optim.SGD(params, lr=hp["lr"], momentum=hp["momentum"],
                                              weight_decay=hp["weight_decay"]),
}

# (model, x_few, y_few, x_aux, y_aux) -> (loss, parts)
LossFn = Callable[..., tuple[torch.Tensor, dict]]


def _snapshot(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _forward(model: nn.Module, x_few: torch.Tensor, x_aux: Optional[torch.Tensor], mode: str):
    if x_aux is None:
        return model(x_few), None
    if mode == "joint":
        out = model(torch.cat([x_few, x_aux]))
        return out[: len(x_few)], out[len(x_few):]
    return model(x_few), model(x_aux)


def _few_ce(logits_few, data: StageData) -> float:
    return float(torch.nn.functional.cross_entropy(logits_few, data.few_y))


# monitor name -> (few logits, aux logits or None, data, loss_fn) -> (value, tie-break); lower is better
MONITORS: dict[str, Callable[..., tuple[float, float]]] = {
    "train_loss": lambda lf, la, d, loss_fn: (
        float(loss_fn(lf, d.few_y, la, d.aux_y if d.has_aux else None)[0]), 0.0),
    "few_loss": lambda lf, la, d, loss_fn: (_few_ce(lf, d), 0.0),
    "few_acc": lambda lf, la, d, loss_fn: (-float((lf.argmax(1) == d.few_y).float().mean()), _few_ce(lf, d)),
}


def improves(value: tuple[float, float], best: tuple[float, float], tol: float = 1e-6) -> bool:
    """Lower primary value, or an equal primary value and a lower tie-break."""
    return value[0] < best[0] - tol or (abs(value[0] - best[0]) <= tol and value[1] < best[1] - tol)


class EarlyStopping:
    """The stopping rule: stop once ``patience`` iterations pass without the monitor improving (checked
    every ``every`` iterations); remembers the best value and its iteration.  Shared by :func:`finetune`
    and the fine-tuning study's simulation, so both follow one rule."""

    def __init__(self, first: tuple[float, float], patience: int, every: int):
        self.best, self.best_iter, self.since_best = first, 0, 0
        self.patience, self.every = patience, every

    def update(self, value: tuple[float, float], iteration: int) -> bool:
        """Record the monitor at ``iteration``; True if it is the new best."""
        if improves(value, self.best):
            self.best, self.best_iter, self.since_best = value, iteration, 0
            return True
        self.since_best += self.every
        return False

    @property
    def should_stop(self) -> bool:
        return self.since_best >= self.patience


def finetune(model: nn.Module, data: StageData, loss_fn: LossFn, hp: dict, generator: torch.Generator,
             aux_labels_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
             augment_fn: Optional[Callable] = None,
             probe: Optional[Callable[[nn.Module, int, dict], None]] = None) -> dict:
    """Fine-tune ``model`` in place; returns stats (iterations, best monitor, losses, seconds).

    ``aux_labels_fn(aux_idx)`` gives the auxiliary labels of a batch: the fixed assigned labels by
    default, or freshly drawn ones (Open-Sampling's per-batch mode).  ``probe(model, iteration, values)``,
    if given, is called (model in eval mode) at every monitor evaluation, iteration 0 included, with the
    (value, tie-break) of every registered monitor; it observes and must not change the model (the
    fine-tuning study uses it; cells never do).
    """
    t0 = time.perf_counter()
    opt = OPTIMIZERS[hp["optimizer"]](model.parameters(), hp)
    batches = data.minibatches(hp["batch_size"], generator)
    aux_labels = aux_labels_fn or (lambda idx: data.aux_y[idx])

    def monitor_value(iteration: int) -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            logits_few, logits_aux = _forward(model, data.few_x, data.aux_x if data.has_aux else None, "separate")
            names = list(MONITORS) if probe is not None else [hp["monitor"]]
            values = {n: MONITORS[n](logits_few, logits_aux, data, loss_fn) for n in names}
        if probe is not None:
            probe(model, iteration, values)
        model.train()
        return values[hp["monitor"]]

    stopping = EarlyStopping(monitor_value(0), hp["patience"], hp["eval_every"])
    best_state = _snapshot(model)
    it = 0
    history = []
    model.train()
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
            if stopping.should_stop:
                break
    model.load_state_dict(best_state)
    return {"iters": it, "best_iter": stopping.best_iter, "best_monitor": stopping.best[0], "monitor": hp["monitor"],
            "history": history[-20:], "seconds": time.perf_counter() - t0}
