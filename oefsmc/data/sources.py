"""In-distribution datasets: CIFAR-10/100 (arrays or torchvision), ImageNet (ImageFolder), the demo.

On-disk formats, tried in this order for CIFAR:
1. the array format of ``../shared/data``: ``<root>/<dataset>/{train,test}.npz`` with ``images`` (uint8
   N x 32 x 32 x 3), ``labels`` and ``classes``;
2. torchvision's format under ``<root>`` (``cifar-10-batches-py`` / ``cifar-100-python``), downloaded there
   when ``download=True`` and the network is reachable.  Files with the official md5s are read by
   torchvision; files in the same format with other contents (torchvision refuses them: it checks the
   md5s on every load) by the suite's reader of that format, with the source marked
   ``cifar-python-unverified:`` (:mod:`oefsmc.data.cifar_python`).
ImageNet is an ImageFolder tree ``<root>/imagenet/{train,val}/<wnid>/*``, decoded once (resize 256, centre
crop 224) and cached as a uint8 tensor file, so no cell decodes again.  Labels are indices into the training
split's sorted wnids (the teacher's outputs), for ``val`` too: a ``val`` tree holding a subset of the wnids is
labelled correctly (ImageFolder alone would number its own folders), and a wnid unknown to ``train`` is an error.
Each loaded split is memoised in-process (long-lived sweep workers reuse it).
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..atomic import atomic_write_stream
from ..errors import InputError, UserError
from ..registry import Registry
from .imageset import ImageSet, fingerprint


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_classes: int
    resolution: int
    channels: int
    load: Callable[[Optional[str], str, bool], ImageSet]  # (root, split, download) -> ImageSet
    description: str


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def cache_dir() -> Path:
    """Suite-written caches (decoded images, trained teachers): ``$OEFSMC_CACHE`` or ``<repo>/.cache``."""
    env = os.environ.get("OEFSMC_CACHE")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / ".cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


ARRAY_FIELDS = ("images", "labels", "classes")


def corrupt_data(path: Path, problem: str) -> InputError:
    """The one-line error for a data file that exists but cannot be used: which file, what, and the fix."""
    readme = path.parent.parent / "README.md"
    where = f" ({readme})" if readme.is_file() else ""
    return InputError(f"corrupt data file {path}: {problem}; check its md5 against the data README{where} and copy "
                      "it again, or delete it and re-download with --download")


def _read_arrays(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """images, labels, classes of an array file; any failure to read it is a :func:`corrupt_data` error."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ARRAY_FIELDS if k not in z.files]
            if missing:
                raise corrupt_data(path, f"it has no {' / '.join(missing)} array (has: {', '.join(z.files)})")
            images, labels, classes = np.ascontiguousarray(z["images"]), z["labels"], [str(c) for c in z["classes"]]
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001  (BadZipFile, zlib / pickle / EOF errors ...: unreadable)
        detail = " ".join(str(exc).split(". ")[0].split())[:100]
        raise corrupt_data(path, f"truncated, or not a .npz archive ({type(exc).__name__}: {detail})") from None
    if images.ndim not in (3, 4) or images.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
        raise corrupt_data(path, f"images {images.dtype} {list(images.shape)} and labels {list(labels.shape)} are not "
                                 "uint8 N x H x W (x C) images with N labels")
    return images, labels, classes


def _from_arrays(path: Path) -> ImageSet:
    images_np, labels_np, classes = _read_arrays(path)
    images = torch.from_numpy(images_np)
    labels = torch.from_numpy(labels_np.astype(np.int64))
    if images.ndim == 3:
        images = images[..., None]
    return ImageSet(images, labels, classes, f"npz:{path}", fingerprint(images, labels))


def _no_data(dataset: str, root: Optional[str], extra: str = "") -> UserError:
    where = f"under {root}" if root else "(no --data-root given)"
    return UserError(f"no {dataset} data {where}: pass --data-root DIR holding {dataset}/{{train,test}}.npz or "
                     f"torchvision's files, or add --download to fetch it (needs internet){extra}")


def _load_cifar(dataset: str, root: Optional[str], split: str, download: bool) -> ImageSet:
    if root:
        npz = Path(root) / dataset / f"{split}.npz"
        if npz.is_file():
            return _from_arrays(npz)
    import torchvision
    from .cifar_python import folder_name, official_md5s_match
    cls = torchvision.datasets.CIFAR10 if dataset == "cifar10" else torchvision.datasets.CIFAR100
    tv_root = root or str(cache_dir() / "data")  # without --data-root: where --download put it before
    folder = Path(tv_root) / folder_name(dataset)
    if not download and not folder.is_dir():
        raise _no_data(dataset, root)
    if not download and not official_md5s_match(dataset, tv_root):
        return _unverified_cifar(dataset, tv_root, split)
    try:
        ds = cls(tv_root, train=(split == "train"), download=download)
    except RuntimeError:  # "Dataset not found or corrupted"
        if folder.is_dir():
            raise InputError(f"corrupt {dataset} files in {folder} (torchvision's md5 check failed): delete {folder} "
                             "and re-download with --download") from None
        raise _no_data(dataset, root) from None
    except Exception as exc:  # URLError etc.: the download failed
        raise UserError(f"could not download {dataset} ({type(exc).__name__}): pass --data-root DIR with the "
                        "data, or retry --download with internet") from None
    images = torch.from_numpy(np.ascontiguousarray(ds.data))
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    return ImageSet(images, labels, list(ds.classes), f"torchvision:{tv_root}", fingerprint(images, labels))


def _unverified_cifar(dataset: str, tv_root: str, split: str) -> ImageSet:
    """torchvision's format with non-official contents, read by :func:`read_cifar_python`."""
    from .cifar_python import folder_name, read_cifar_python
    data, labels, classes = read_cifar_python(dataset, tv_root, split, DATASETS.get(dataset).num_classes)
    images, targets = torch.from_numpy(data), torch.from_numpy(labels)
    return ImageSet(images, targets, classes, f"cifar-python-unverified:{Path(tv_root) / folder_name(dataset)}",
                    fingerprint(images, targets))


def _load_imagenet(root: Optional[str], split: str, download: bool) -> ImageSet:
    if not root:
        raise UserError("imagenet needs --data-root DIR with imagenet/{train,val}/<wnid>/*; torchvision cannot "
                        "download ILSVRC-2012 (download it from image-net.org)")
    folder = Path(root) / "imagenet" / ("val" if split == "test" else split)
    if not folder.is_dir():
        raise UserError(f"no ImageNet {split} folder at {folder}: pass --data-root DIR with imagenet/{{train,val}}/"
                        "<wnid>/* (download from image-net.org; --download cannot fetch ILSVRC-2012)")
    data = decode_image_folder(folder, 224, resize=256)
    return data if split == "train" else _relabel(data, _train_classes(Path(root) / "imagenet" / "train"))


def _train_classes(folder: Path) -> list[str]:
    """The training split's classes in ImageFolder's order (sorted folder names)."""
    from torchvision.datasets.folder import find_classes
    if not folder.is_dir():
        raise UserError(f"no ImageNet train folder at {folder}: its wnids define the labels of val; pass "
                        "--data-root DIR with imagenet/{train,val}/<wnid>/*")
    return find_classes(str(folder))[0]


def _relabel(data: ImageSet, classes: list[str]) -> ImageSet:
    """``data`` with labels re-indexed into ``classes`` (by name)."""
    index = {c: i for i, c in enumerate(classes)}
    unknown = [c for c in data.classes if c not in index]
    if unknown:
        raise UserError(f"{data.source} has class folder(s) {', '.join(unknown[:3])} that the training split "
                        "lacks: val must use the training wnids")
    mapping = torch.as_tensor([index[c] for c in data.classes], dtype=torch.int64)
    labels = mapping[data.labels]
    return ImageSet(data.images, labels, list(classes), data.source, fingerprint(data.images, labels))


def decode_image_folder(folder: Path, size: int, resize: int) -> ImageSet:
    """Decode an ImageFolder once (resize, centre crop) and cache it as a uint8 tensor file."""
    import torchvision
    from torchvision.transforms import v2
    stat = folder.stat()
    key = hashlib.sha256(f"{folder.resolve()}|{stat.st_mtime_ns}|{size}|{resize}".encode()).hexdigest()[:16]
    cached = cache_dir() / "decoded" / f"{folder.name}-{key}.pt"
    if cached.is_file():
        blob = torch.load(cached, weights_only=True)
        return ImageSet(blob["images"], blob["labels"], list(blob["classes"].split("\n")), f"folder:{folder}",
                        blob["fingerprint"])
    tf = v2.Compose([v2.PILToTensor(), v2.Resize(resize, antialias=True), v2.CenterCrop(size)])
    ds = torchvision.datasets.ImageFolder(str(folder), transform=tf)
    if len(ds) == 0:
        raise UserError(f"no images under {folder}")
    images = torch.empty((len(ds), size, size, 3), dtype=torch.uint8)
    for i in range(len(ds)):  # decoding is inherently per file; done once, then cached
        img, _ = ds[i]
        images[i] = img[:3].permute(1, 2, 0) if img.shape[0] >= 3 else img.expand(3, -1, -1).permute(1, 2, 0)
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    fp = fingerprint(images, labels)
    with atomic_write_stream(cached) as fh:
        torch.save({"images": images, "labels": labels, "classes": "\n".join(ds.classes), "fingerprint": fp}, fh)
    return ImageSet(images, labels, list(ds.classes), f"folder:{folder}", fp)


DATASETS.add("cifar10", DatasetSpec("cifar10", 10, 32, 3, functools.partial(_load_cifar, "cifar10"),
                                    "CIFAR-10 (Krizhevsky 2009)"))
DATASETS.add("cifar100", DatasetSpec("cifar100", 100, 32, 3, functools.partial(_load_cifar, "cifar100"),
                                     "CIFAR-100 (Krizhevsky 2009)"))
DATASETS.add("imagenet", DatasetSpec("imagenet", 1000, 224, 3, _load_imagenet, "ILSVRC-2012 (ImageFolder)"))


@functools.lru_cache(maxsize=8)
def load_split(dataset: str, root: Optional[str], split: str, download: bool = False) -> ImageSet:
    """Load (and memoise in this process) one split: ``train`` (the pool few-sample sets come from) or ``test``."""
    spec = DATASETS.get(dataset)
    if split not in ("train", "test"):
        raise ValueError(split)
    if root is not None and not Path(root).exists():
        raise UserError(f"--data-root {root} does not exist: pass an existing directory")
    if root is not None and not Path(root).is_dir():
        raise UserError(f"--data-root {root} is a file, not a directory: pass the directory holding the data")
    data = spec.load(root, split, download)
    if data.num_classes != spec.num_classes:
        raise UserError(f"{dataset} at {data.source} has {data.num_classes} classes, expected {spec.num_classes}")
    return data
