"""Teachers: load a checkpoint safely, or train one with a cited recipe and cache it.

Normalisation belongs to the teacher, not to the dataset: a teacher carries the mean/std its inputs were
normalised with, and every record says which one was used.
- Published CIFAR-10 ResNets (akamaster/pytorch_resnet_cifar10, ``../shared/data/teachers``): a dict with
  ``state_dict`` (keys prefixed ``module.``) normalised with ImageNet statistics.
- Suite-trained teachers: a tensor-only state dict plus a JSON sidecar (arch, dataset, recipe,
  normalisation, accuracy).  Checkpoints are read with ``torch.load(..., weights_only=True)``: a file that
  needs arbitrary pickled code is refused with a clear error, never executed.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from ..atomic import atomic_write, atomic_write_bytes
from ..errors import InputError, UserError
from ..filehash import sha256_file  # noqa: F401  (re-exported)
from ..registry import Registry
from .normalization import NORMALISATIONS, Normalizer  # noqa: F401  (re-exported)
from .registry import build_model
from .teacher_training import TRAINER_VERSION, train_teacher  # noqa: F401  (re-exported)


@dataclass
class Teacher:
    model: nn.Module
    normalization: str
    identity: dict  # what the cache key records: {"kind", "sha256" | "key", "path", ...}
    meta: dict = field(default_factory=dict)


def check_checkpoint_path(path: Path) -> None:
    """One line naming the fix unless ``path`` is a file: a missing path, or a directory (with the
    checkpoints found in it)."""
    if path.is_file():
        return
    if path.is_dir():
        found = sorted(p.name for p in path.iterdir() if p.suffix in (".th", ".pt", ".pth"))[:3]
        hint = f" (it holds {', '.join(found)})" if found else ""
        raise UserError(f"--teacher {path} is a directory, not a checkpoint: pass the checkpoint file itself{hint}")
    raise UserError(f"--teacher {path} does not exist: pass the path of a teacher checkpoint")


def read_state_dict(path: Path) -> tuple[dict, dict]:
    """Read a checkpoint with ``weights_only=True``; returns (state_dict without ``module.``, extra fields)."""
    check_checkpoint_path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if "can still be loaded" not in str(exc):  # torch's words for "needs pickled code": else not a checkpoint
            raise InputError(f"--teacher {path} is not a readable torch checkpoint (truncated or garbage: "
                             f"{type(exc).__name__}): check the file or save it again with torch.save") from None
        raise InputError(f"refusing to load {path}: it is not a plain-tensor checkpoint ({type(exc).__name__}); "
                         "save its state_dict with torch.save(model.state_dict(), PATH)") from None
    extra = {}
    if isinstance(blob, dict) and "state_dict" in blob:
        extra = {k: v for k, v in blob.items() if k != "state_dict" and isinstance(v, (int, float, str))}
        blob = blob["state_dict"]
    if not isinstance(blob, dict) or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise InputError(f"--teacher {path} holds no state_dict of tensors: save one with "
                         "torch.save(model.state_dict(), PATH)")
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in blob.items()}
    return state, extra


def teacher_identity(path: str, normalization: str = "auto") -> dict:
    """Cheap identity of a checkpoint for cache keys: its sha256 and the normalisation it will use."""
    p = Path(path)
    check_checkpoint_path(p)
    return {"kind": "file", "path": str(p.resolve()), "sha256": sha256_file(p),
            "normalization": resolve_normalization(p, normalization)}


def read_sidecar(path: Path) -> dict:
    """The JSON sidecar ``<path>.json`` of a suite-trained teacher ({} when there is none)."""
    sidecar = Path(str(path) + ".json")
    if not sidecar.is_file():
        return {}
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"teacher sidecar {sidecar} is unreadable ({type(exc).__name__}): delete it (the "
                         "normalisation then defaults to imagenet) or write it again") from None
    if not isinstance(meta, dict):
        raise InputError(f"teacher sidecar {sidecar} is not a JSON object: delete it or write it again")
    return meta


def resolve_normalization(path: Path, requested: str) -> str:
    if requested != "auto":
        return requested
    sidecar = read_sidecar(path)
    if "normalization" in sidecar:
        return sidecar["normalization"]
    # akamaster/pytorch_resnet_cifar10 checkpoints (.th, DataParallel "module." keys) use ImageNet statistics
    return "imagenet"


def load_teacher_file(path: str, arch: str, num_classes: int, in_channels: int, normalization: str = "auto",
                      device: str | torch.device = "cpu") -> Teacher:
    p = Path(path)
    state, extra = read_state_dict(p)
    model = build_model(arch, num_classes, in_channels)
    fits = f"{p} does not fit --arch {arch} with {num_classes} classes and {in_channels} input channels"
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # size mismatch: another dataset (classes, channels) or width
        first = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln), "size mismatch")
        raise InputError(f"{fits} ({first[:160]}): pass the teacher of this dataset and architecture") from None
    if missing or unexpected:
        raise InputError(f"{fits} (missing {len(missing)} keys, unexpected {len(unexpected)}): check --arch/--dataset "
                         "or pass the teacher of this architecture")
    model.to(device).eval()
    return Teacher(model, resolve_normalization(p, normalization), teacher_identity(path, normalization),
                   {"checkpoint_fields": extra})


# ---------------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class Recipe:
    name: str
    optimizer: str  # "sgd"
    lr: float
    momentum: float
    weight_decay: float
    batch_size: int
    epochs: int
    milestones: tuple[int, ...]  # epochs at which lr *= 0.1; empty: cosine annealing
    augment_pad: int  # random-crop padding (0: no crop); horizontal flip when flip is True
    flip: bool
    normalization: str
    source: str


RECIPES: Registry[Recipe] = Registry("teacher recipe")
RECIPES.add("cd-vgg16", Recipe(
    "cd-vgg16", "sgd", 0.1, 0.9, 5e-4, 64, 300, (150, 225), 4, True, "cifar",
    "CD scripts/start_vanilla.sh (SGD 0.1, wd 5e-4, batch 64, 300 epochs, steps 150/225) with FSKD's "
    "crop+flip augmentation (CD's script passes no --data_aug; methods.md Sec. 1.6, 2.5)"))
RECIPES.add("akamaster-resnet", Recipe(
    "akamaster-resnet", "sgd", 0.1, 0.9, 1e-4, 128, 200, (100, 150), 4, True, "cifar",
    "akamaster/pytorch_resnet_cifar10 trainer.py (SGD 0.1, wd 1e-4, batch 128, 200 epochs, steps 100/150)"))
RECIPES.add("demo", Recipe(
    "demo", "sgd", 0.05, 0.9, 5e-4, 64, 25, (), 1, False, "digits",
    "ours: the embedded demo's teachers train in seconds on the digits training pool (cosine lr)"))

DEFAULT_RECIPE = {("digits", "*"): "demo", ("cifar10", "vgg16"): "cd-vgg16", ("cifar100", "vgg16"): "cd-vgg16"}


def default_recipe(dataset: str, arch: str) -> str:
    if (dataset, arch) in DEFAULT_RECIPE:
        return DEFAULT_RECIPE[(dataset, arch)]
    if (dataset, "*") in DEFAULT_RECIPE:
        return DEFAULT_RECIPE[(dataset, "*")]
    if arch.startswith("resnet") and dataset in ("cifar10", "cifar100"):
        return "akamaster-resnet"
    raise UserError(f"no teacher recipe for {arch} on {dataset}: pass --teacher PATH")


def trained_teacher_key(dataset: str, arch: str, recipe: str, seed: int, data_fingerprint: str,
                        precision: str = "fp32", device: str = "cpu") -> str:
    """Cache key of a suite-trained teacher: everything that decides its weights (the trainer's version too).
    The device type it trains on is named when it is not the CPU (CUDA kernels give other floats; a CPU
    teacher's key is as it always was, so the committed demo records keep theirs)."""
    where = "" if device == "cpu" else f"-{device}"
    return f"{dataset}-{arch}-{recipe}-s{seed}-{precision}{where}-t{TRAINER_VERSION}-{data_fingerprint}"


def save_teacher(model: nn.Module, path: Path, meta: dict) -> None:
    """Tensor-only checkpoint + JSON sidecar, both written atomically."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, buf)
    atomic_write_bytes(path, buf.getvalue())
    atomic_write(Path(str(path) + ".json"), json.dumps(meta, indent=2, sort_keys=True) + "\n")
