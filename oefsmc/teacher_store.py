"""Where a cell's teacher comes from: a checkpoint file, torchvision's weights, or training by the suite.

- :func:`resolve_teacher` (cheap): the teacher's identity for the cache key -- a file's sha256, the
  torchvision weights' name, or the key of a suite-trained teacher (dataset, arch, recipe, seed,
  precision, trainer version, data fingerprint).
- :func:`load_teacher`: load the teacher of an identity, or train it once (file-locked, cached under
  ``<cache>/teachers/``), and memoise it per process; :func:`get_teacher` does it for a resolved config.
  Together with :func:`resolve_teacher` this is how anything finds the teacher of (dataset, arch)
  (``python -m benchmark teacher eval`` too), with no cell or resolved config to invent.
- :func:`train_and_save`: what ``python -m benchmark teacher train`` and the pipeline share: the
  resumable trainer (:mod:`oefsmc.models.teacher_training`), then a tensor-only checkpoint and a JSON
  sidecar with the recipe, the training history and the fp32 test accuracy.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
from pathlib import Path
from typing import Mapping, Optional

import torch

from .core.evaluate import evaluate
from .data.sources import DATASETS, cache_dir, load_split
from .errors import UserError
from .models import build_model
from .models.teacher import (RECIPES, Normalizer, Teacher, default_recipe, load_teacher_file, save_teacher,
                             teacher_identity, train_teacher, trained_teacher_key)
from .models.teacher_training import apply_recipe_overrides

TEACHER_SEED = 0  # one teacher per (dataset, arch): the paper compresses one pre-trained model
#: Precision of suite-trained teachers: ``auto`` = bf16 autocast where the device computes bf16 natively,
#: fp32 elsewhere (docs/REPRODUCTION_NOTES.md section 9: on a short CIFAR-100 run bf16 cost no accuracy).
DEFAULT_TRAIN_PRECISION = "auto"


def resolve_train_precision(precision: str, device: str = "auto") -> str:
    """``auto`` -> ``bf16`` on a CPU with native bf16 or a CUDA device that supports it, else ``fp32``."""
    if precision != "auto":
        return precision
    from .core.evaluate import NATIVE_BF16  # asks CUDA without initialising it in this process
    native = NATIVE_BF16.get(pick_device(device).type)
    return "bf16" if native is not None and native() else "fp32"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is visible; use --device cpu")
    return torch.device(name)


def data_identity(dataset: str, root: Optional[str]) -> dict:
    """Source, fingerprint and size of both splits: a fresh dict each call (configs are edited by callers;
    the cached one must not be)."""
    return copy.deepcopy(_data_identity(dataset, root))


@functools.lru_cache(maxsize=64)
def _data_identity(dataset: str, root: Optional[str]) -> dict:
    train = load_split(dataset, root, "train")
    test = load_split(dataset, root, "test")
    return {"train": {"source": train.source, "fingerprint": train.fingerprint, "size": len(train)},
            "test": {"source": test.source, "fingerprint": test.fingerprint, "size": len(test)}}


def trained_recipe(dataset: str, arch: str, overrides: Optional[Mapping[str, str]] = None):
    """The default recipe of (dataset, arch), shortened by ``teacher.*`` overrides."""
    return apply_recipe_overrides(RECIPES.get(default_recipe(dataset, arch)), overrides or {})


def resolve_teacher(dataset: str, arch: str, data_root: Optional[str], teacher: Optional[str] = None,
                    normalization: str = "auto", overrides: Optional[Mapping[str, str]] = None,
                    precision: str = DEFAULT_TRAIN_PRECISION, device: str = "auto") -> dict:
    """The identity of the teacher a cell of (dataset, arch) uses (what the cache key records).  A teacher
    the suite trains trains on the cell's ``device``: its precision (``auto``) and its key follow that
    device, not whatever else the machine has."""
    if teacher:
        return teacher_identity(teacher, normalization)
    if arch == "resnet34" and dataset == "imagenet":
        return {"kind": "torchvision", "weights": "ResNet34_Weights.IMAGENET1K_V1", "normalization": "imagenet"}
    recipe = trained_recipe(dataset, arch, overrides)
    precision = resolve_train_precision(precision, device)
    fp = data_identity(dataset, data_root)["train"]["fingerprint"]
    where = pick_device(device).type
    return {"kind": "trained", "recipe": recipe.name, "seed": TEACHER_SEED, "normalization": recipe.normalization,
            "precision": precision, "recipe_fields": dataclasses.asdict(recipe),
            "key": trained_teacher_key(dataset, arch, recipe.name, TEACHER_SEED, fp, precision, where)}


_TEACHERS: dict[tuple, Teacher] = {}
_TEACHER_EVAL: dict[tuple, dict] = {}


def get_teacher(resolved: Mapping, device: torch.device, log=None) -> Teacher:
    """Load or train (and cache on disk) the teacher of a resolved config; memoised per process."""
    return load_teacher(resolved["teacher"], resolved["dataset"], resolved["arch"], resolved["data_root"], device,
                        log)


def load_teacher(identity: Mapping, dataset: str, arch: str, data_root: str | None, device: torch.device,
                 log=None) -> Teacher:
    """Load (or train and cache on disk) the teacher :func:`resolve_teacher` identified; memoised per process."""
    t = identity
    key = (t.get("sha256") or t.get("key") or t.get("weights"), t.get("normalization"), arch, str(device))
    if key in _TEACHERS:
        return _TEACHERS[key]
    spec = DATASETS.get(dataset)
    if t["kind"] == "file":
        teacher = load_teacher_file(t["path"], arch, spec.num_classes, spec.channels, t["normalization"], device)
    elif t["kind"] == "torchvision":
        from .models.imagenet_resnet import load_torchvision_weights
        model = build_model("resnet34", spec.num_classes, spec.channels)
        load_torchvision_weights(model)
        teacher = Teacher(model.to(device).eval(), "imagenet", t)
    else:
        teacher = _trained_teacher(t, dataset, arch, data_root, device, log)
    _TEACHERS[key] = teacher
    return teacher


def check_teacher(dataset: str, arch: str, path: str, normalization: str = "auto") -> None:
    """Before any work (the sweep's check, once per teacher): the checkpoint at ``path`` exists, is a
    plain-tensor state dict that fits ``arch`` on ``dataset``, and its sidecar (if any) names the same
    dataset and architecture.  Raises a one-line :class:`~oefsmc.errors.UserError` naming the fix."""
    from .errors import InputError
    from .models.teacher import read_sidecar
    spec = DATASETS.get(dataset)
    meta = read_sidecar(Path(path)) if Path(path).is_file() else {}
    for field_, want in (("dataset", dataset), ("arch", arch)):
        if meta.get(field_, want) != want:
            raise InputError(f"--teacher {path} is a {meta.get('arch')} teacher of {meta.get('dataset')} (says its "
                             f"sidecar), not of {arch} on {dataset}: pass the teacher of this column")
    load_teacher_file(path, arch, spec.num_classes, spec.channels, normalization, "cpu")


def trained_teacher_path(key: str) -> Path:
    return cache_dir() / "teachers" / f"{key}.pt"


def _trained_teacher(t: Mapping, dataset: str, arch: str, data_root: str | None, device: torch.device,
                     log=None) -> Teacher:
    from filelock import FileLock
    path = trained_teacher_path(t["key"])
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = DATASETS.get(dataset)
    with FileLock(str(path) + ".lock"):  # two workers never train the same teacher twice
        if not path.is_file():
            if log:
                log(f"training the {arch} teacher on {dataset} ({t['recipe']}); cached at {path}")
            recipe = dataclasses.replace(RECIPES.get(t["recipe"].split("[")[0]), **_recipe_tuple(t["recipe_fields"]))
            train_and_save(dataset, arch, data_root, recipe, path, device, t["precision"], log)
    return load_teacher_file(str(path), arch, spec.num_classes, spec.channels, t["normalization"], device)


def _recipe_tuple(fields: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}


def train_and_save(dataset: str, arch: str, data_root: Optional[str], recipe, out: Path, device: torch.device,
                   precision: str = DEFAULT_TRAIN_PRECISION, log=None, progress: bool = False,
                   max_epochs_this_run: Optional[int] = None, allow_precision_change: bool = False) -> dict:
    """Train (resuming from ``<out>.ckpt``, in another precision than it was begun in only with
    ``allow_precision_change``), then write ``out`` + ``out.json`` with the fp32 test top-1.

    Returns the sidecar's contents; ``complete`` is False when ``max_epochs_this_run`` stopped it early
    (then only the resume checkpoint is written)."""
    spec = DATASETS.get(dataset)
    precision = resolve_train_precision(precision, device.type)
    train = load_split(dataset, data_root, "train")
    out = Path(out)
    ckpt = Path(str(out) + ".ckpt")
    torch.manual_seed(TEACHER_SEED)  # the initial weights follow the teacher's seed, not the process's
    model = build_model(arch, spec.num_classes, spec.channels)
    stats = train_teacher(model, train.images, train.labels, recipe, TEACHER_SEED, device, log, precision=precision,
                          checkpoint=ckpt, data_fingerprint=train.fingerprint, progress=progress,
                          max_epochs_this_run=max_epochs_this_run, allow_precision_change=allow_precision_change)
    meta = {"arch": arch, "dataset": dataset, "recipe": recipe.name, "recipe_fields": dataclasses.asdict(recipe),
            "recipe_source": recipe.source, "seed": TEACHER_SEED, "normalization": recipe.normalization,
            "train": stats, "data": {"source": train.source, "fingerprint": train.fingerprint, "size": len(train)}}
    if not stats["complete"]:
        return {**meta, "complete": False}
    test = load_split(dataset, data_root, "test")
    acc = evaluate(model, test.images, test.labels, spec.num_classes, 1000, Normalizer(recipe.normalization, device))
    meta.update(top1=acc["top1"], per_class=acc["per_class"], test={"source": test.source,
                                                                     "fingerprint": test.fingerprint},
                complete=True)
    save_teacher(model, out, meta)
    ckpt.unlink(missing_ok=True)  # the finished teacher replaces the resume state
    return meta


def teacher_accuracy(resolved: Mapping, teacher: Teacher, device: torch.device, precision: str = "fp32") -> dict:
    key = (str(teacher.identity), resolved["data"]["test"]["fingerprint"], str(device), precision)
    if key not in _TEACHER_EVAL:
        test = load_split(resolved["dataset"], resolved["data_root"], "test")
        spec = DATASETS.get(resolved["dataset"])
        _TEACHER_EVAL[key] = evaluate(teacher.model, test.images, test.labels, spec.num_classes, 1000,
                                      Normalizer(teacher.normalization, device), precision)
    return _TEACHER_EVAL[key]
