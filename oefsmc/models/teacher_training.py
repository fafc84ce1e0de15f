"""Teacher training: one resumable trainer for CPU and CUDA, with a cited recipe.

What it guarantees (issue: "teacher training that is fast, resumable and visible"):

- **Same weights after a kill.**  A checkpoint is written atomically after every epoch: model, optimizer,
  the scheduler position (the learning rate is a pure function of the step, :func:`lr_at`), the data
  generator's RNG state and the epoch.  ``train_teacher(..., checkpoint=PATH)`` resumes from it and, on CPU,
  reaches bit-identical weights to an uninterrupted run (every random draw after initialisation comes from
  one CPU ``torch.Generator`` whose state is in the checkpoint; tested with a tiny recipe).
- **Fast.**  The images are normalised once and stay on the device; batches are gathered by index and
  augmented there (:func:`oefsmc.core.augment.random_crop_flip`, no per-sample Python).  ``precision``:
  ``fp32`` (eager), or ``bf16``: autocast to bfloat16 with channels_last memory (CPU with native bf16, or
  CUDA), master weights and optimizer in fp32.
- **Precision may change at a resume, when asked.**  ``bf16`` autocast is fast only where the device computes
  bf16 natively; emulated (an AVX2-only CPU) it is about 9x slower than fp32.  A run started in one precision
  on one machine can be carried on in the other with ``allow_precision_change=True`` (``teacher train
  --switch-precision``): the learning rate, data order and augmentation do not depend on the precision, so
  the run is the same recipe with some epochs computed in another precision.  Every epoch's precision is in
  the history and the returned ``precision_by_epoch``; the bit-identity guarantee above holds only for a run
  kept in one precision.
- **Visible.**  A progress bar per epoch (loss, learning rate, the epoch's ETA and the run's ETA), and a
  log line per epoch.

Recipes (:data:`oefsmc.models.teacher.RECIPES`) follow the official trainers; ``--set teacher.NAME=VALUE``
shortens one through :func:`apply_recipe_overrides` (documented, and part of the teacher's key).
"""
from __future__ import annotations

import dataclasses
import io
import math
import sys
import time
from pathlib import Path
from typing import Callable, Mapping, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..atomic import atomic_write_bytes
from ..errors import UserError
from .normalization import Normalizer

#: Bump when the trainer's numerics change: it is part of every suite-trained teacher's key.
TRAINER_VERSION = 2
TRAIN_PRECISIONS = ("fp32", "bf16")
CHECKPOINT_FORMAT = 1


def lr_at(recipe, step: int, steps_per_epoch: int) -> float:
    """The learning rate of iteration ``step`` (0-based): x0.1 at every milestone epoch (MultiStepLR), or
    cosine annealing over the whole run when the recipe has no milestones."""
    if recipe.milestones:
        passed = sum(1 for m in recipe.milestones if step >= m * steps_per_epoch)
        return recipe.lr * (0.1 ** passed)
    total = steps_per_epoch * recipe.epochs
    return recipe.lr * 0.5 * (1 + math.cos(math.pi * step / total))


RECIPE_OVERRIDABLE = ("epochs", "batch_size", "lr", "milestones", "weight_decay", "momentum")


def apply_recipe_overrides(recipe, overrides: Mapping[str, str]):
    """``{"teacher.epochs": "2"}`` -> a shortened copy of ``recipe`` (name suffixed with the changes)."""
    from ..core.params import parse_value
    changes = {}
    for full, raw in overrides.items():
        if not full.startswith("teacher."):
            continue
        name = full[len("teacher."):]
        if name not in RECIPE_OVERRIDABLE:
            raise UserError(f"--set {full}: unknown teacher setting; use one of "
                            f"{', '.join('teacher.' + n for n in RECIPE_OVERRIDABLE)}")
        like = getattr(recipe, name)
        value = parse_value(str(raw), list(like) if isinstance(like, tuple) else like, full)
        if name == "milestones":
            value = tuple(int(v) for v in value)
        if name in ("epochs", "batch_size") and value < 1:
            raise UserError(f"--set {full}={raw}: must be at least 1")
        if name == "lr" and not value > 0:
            raise UserError(f"--set {full}={raw}: must be > 0")
        changes[name] = value
    if not changes:
        return recipe
    suffix = ",".join(f"{k}={'/'.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in sorted(changes.items()))
    return dataclasses.replace(recipe, name=f"{recipe.name}[{suffix}]", **changes)


def _autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _save_checkpoint(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load_checkpoint(path: Path, identity: dict, allow_precision_change: bool = False) -> Optional[dict]:
    """The resume state at ``path`` (``None`` when there is none), checked against this run's ``identity``.

    The identity's ``precision`` is the precision of the checkpoint's last epoch; a different one is refused
    unless ``allow_precision_change``, with the two ways on in the message."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (a truncated or foreign file)
        raise UserError(f"cannot read the training checkpoint {path} ({type(exc).__name__}): delete it to "
                        "start the training again") from None
    saved = dict(state.get("identity") or {})
    saved_precision = saved.pop("precision", None)
    wanted = {k: v for k, v in identity.items() if k != "precision"}
    if state.get("format") != CHECKPOINT_FORMAT or saved != wanted:
        raise UserError(f"the training checkpoint {path} belongs to another run (recipe, seed, trainer or "
                        "data differ): delete it or choose another --out")
    if saved_precision != identity["precision"] and not allow_precision_change:
        raise UserError(f"the training checkpoint {path} was trained in {saved_precision} up to epoch "
                        f"{state.get('epoch')}: pass --precision {saved_precision} to continue it as it was, or add "
                        f"--switch-precision to continue it in {identity['precision']} (recorded per epoch)")
    for entry in state.get("history", []):  # checkpoints written before the history named the precision
        entry.setdefault("precision", saved_precision)
    return state


def precision_segments(history: list) -> list[dict]:
    """Runs of consecutive epochs trained in one precision: ``[{"precision", "epochs": [first, last]}]``."""
    segments: list[dict] = []
    for h in history:
        if segments and segments[-1]["precision"] == h.get("precision"):
            segments[-1]["epochs"][1] = h["epoch"]
        else:
            segments.append({"precision": h.get("precision"), "epochs": [h["epoch"], h["epoch"]]})
    return segments


def _match_optimizer_state_layout(opt: torch.optim.Optimizer) -> None:
    """Give each loaded optimizer buffer its parameter's memory format (a checkpoint written under
    channels_last, resumed in contiguous fp32, or the reverse); the values are unchanged."""
    for group in opt.param_groups:
        for p in group["params"]:
            for name, buf in opt.state.get(p, {}).items():
                if torch.is_tensor(buf) and buf.shape == p.shape:
                    opt.state[p][name] = torch.empty_like(p).copy_(buf)


def train_teacher(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, recipe, seed: int,
                  device: torch.device, log: Optional[Callable[[str], None]] = None, *, precision: str = "fp32",
                  checkpoint: Optional[Path] = None, data_fingerprint: str = "", progress: bool = False,
                  max_epochs_this_run: Optional[int] = None, allow_precision_change: bool = False) -> dict:
    """Train ``model`` in place on uint8 NHWC ``images`` with ``recipe``; returns training stats.

    ``checkpoint``: resume from this file if it exists, and write it after every epoch.
    ``allow_precision_change``: carry on a checkpoint trained in another precision (module docstring).
    Returns with ``stats["complete"] = False`` after ``max_epochs_this_run`` epochs when the recipe is not
    finished (the checkpoint then carries the run on).
    """
    from ..core.augment import random_crop_flip
    if precision not in TRAIN_PRECISIONS:
        raise UserError(f"unknown training precision {precision!r}; choose one of: {', '.join(TRAIN_PRECISIONS)}")
    device = torch.device(device)
    identity = {"recipe": dataclasses.asdict(recipe), "seed": int(seed), "precision": precision,
                "trainer_version": TRAINER_VERSION, "n_images": int(len(images)), "data": data_fingerprint}
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model.to(device)
    memory = torch.channels_last if precision == "bf16" else torch.contiguous_format
    model.to(memory_format=memory)
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    start_epoch, history = 0, []
    resumed = _load_checkpoint(checkpoint, identity, allow_precision_change) if checkpoint else None
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        opt.load_state_dict(resumed["optimizer"])
        _match_optimizer_state_layout(opt)
        gen.set_state(resumed["generator"])
        start_epoch, history = int(resumed["epoch"]), list(resumed["history"])
        if log:
            before = resumed["identity"].get("precision")
            switch = f", switching from {before} to {precision}" if before != precision else ""
            log(f"resuming from {checkpoint} after epoch {start_epoch}/{recipe.epochs}{switch}")
    norm = Normalizer(recipe.normalization, device)
    x_all = norm(images).contiguous(memory_format=memory)
    y_all = labels.to(device)
    steps_per_epoch = max(1, len(x_all) // recipe.batch_size)
    last_epoch = recipe.epochs if max_epochs_this_run is None else min(recipe.epochs, start_epoch + max_epochs_this_run)
    model.train()
    t_run = time.perf_counter()
    for epoch in range(start_epoch, last_epoch):
        t_epoch = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        perm = torch.randperm(len(x_all), generator=gen).to(device)
        bar = _epoch_bar(progress, epoch, recipe.epochs, steps_per_epoch, history)
        for s in range(steps_per_epoch):
            step = epoch * steps_per_epoch + s
            lr = lr_at(recipe, step, steps_per_epoch)
            for group in opt.param_groups:
                group["lr"] = lr
            idx = perm[s * recipe.batch_size:(s + 1) * recipe.batch_size]
            x = x_all[idx]
            if recipe.augment_pad or recipe.flip:
                x = random_crop_flip(x, gen, recipe.augment_pad, recipe.flip).contiguous(memory_format=memory)
            with _autocast(device, precision):
                loss = F.cross_entropy(model(x), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
            if bar is not None and (s % 20 == 0 or s == steps_per_epoch - 1):
                bar.set_postfix(loss=f"{float(loss):.3f}", lr=f"{lr:.4g}", refresh=False)
                bar.update(s + 1 - bar.n)
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - t_epoch
        history.append({"epoch": epoch + 1, "loss": float(loss_sum) / steps_per_epoch, "lr": lr,
                        "seconds": round(seconds, 2),
                        "img_per_s": round(steps_per_epoch * recipe.batch_size / seconds, 1),
                        "threads": torch.get_num_threads(), "device": str(device), "precision": precision})
        if checkpoint:
            _save_checkpoint(checkpoint, {"format": CHECKPOINT_FORMAT, "identity": identity, "epoch": epoch + 1,
                                          "model": model.state_dict(), "optimizer": opt.state_dict(),
                                          "scheduler": {"step": (epoch + 1) * steps_per_epoch,
                                                        "steps_per_epoch": steps_per_epoch},
                                          "generator": gen.get_state(), "history": history})
        if log:
            left = (recipe.epochs - epoch - 1) * seconds
            log(f"teacher epoch {epoch + 1}/{recipe.epochs}: loss {history[-1]['loss']:.4f}, lr {lr:.4g}, "
                f"{seconds:.1f} s ({history[-1]['img_per_s']:.0f} img/s), about {left / 60:.0f} min left")
    model.to(memory_format=torch.contiguous_format).eval()
    done = len(history) >= recipe.epochs
    segments = precision_segments(history)
    return {"epochs": recipe.epochs, "epochs_done": len(history), "complete": done,
            "steps": steps_per_epoch * recipe.epochs,
            "precision": segments[0]["precision"] if len(segments) == 1 else ("mixed" if segments else precision),
            "precision_by_epoch": segments, "trainer_version": TRAINER_VERSION,
            "final_loss": history[-1]["loss"] if history else math.nan, "history": history,
            "seconds_this_run": round(time.perf_counter() - t_run, 2),
            "seconds_total": round(sum(h["seconds"] for h in history), 2)}


def _epoch_bar(progress: bool, epoch: int, epochs: int, steps: int, history: list):
    if not progress:
        return None
    from tqdm import tqdm
    done = [h["seconds"] for h in history[-5:]]
    eta = f", run ETA {(epochs - epoch) * sum(done) / len(done) / 60:.0f} min" if done else ""
    return tqdm(total=steps, desc=f"epoch {epoch + 1}/{epochs}{eta}", unit="it", file=sys.stderr,
                leave=False, dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 60.0)
