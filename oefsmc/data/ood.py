"""OOD pools (OE-FSMC Sec. 4.3, "OOD Set Handling") and their sources.

A pool pre-samples n images (default max(500, auxiliary-set size)) from an OOD source with a generator
seeded by (dataset, OOD source, n, seed) only -- a source read from a path by its content identity
(:func:`path_source_identity`), not its location -- drops every image byte-identical to an image of the
in-distribution training set, resizes to the in-distribution resolution (and channel count), and stays
fixed per seed.  Sources (a registry keyed by the part before ``:``):

- ``random300k:PATH``  the "300K Random Images" ``.npy`` (uint8 N x 32 x 32 x 3): the paper's source
  (Open-Sampling issue #1; ``hongxin001/ODNL: datasets/random_images_300.py``);
- ``cifar100`` / ``cifar10``  the other CIFAR's training split from ``--data-root`` (disjoint classes);
- ``svhn``  torchvision SVHN (train split) under ``--data-root``;
- ``folder:PATH``  any ImageFolder / directory tree of images (e.g. Places365 for ImageNet);
- ``npz:PATH``  an array file with ``images`` (uint8 N x H x W x C);
- ``demo-patches``  the embedded demo's natural-image patches (:mod:`oefsmc.data.demo`).
The paper names no OOD source for ImageNet; the ``paper`` profile defaults to ``folder:<root>/places365``.
"""
from __future__ import annotations

import functools
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..filehash import sha256_file
from ..registry import Registry
from .fewshot import seed_from
from .imageset import ImageSet

# (argument after "kind:", data_root, download) -> uint8 N x H x W x C candidate images
OODLoader = Callable[[str, Optional[str], bool], torch.Tensor]
OOD_SOURCES: Registry[OODLoader] = Registry("OOD source")


def _random300k(arg: str, root, download) -> torch.Tensor:
    path = Path(arg)
    if not path.is_file():
        raise UserError(f"no 300K Random Images file at {path}: download 300K_random_images.npy (see the "
                        "Outlier Exposure / Open-Sampling READMEs) and pass --set oe.ood=random300k:PATH")
    arr = np.load(path, mmap_mode="r")  # memory-mapped: only the sampled images are ever read
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise UserError(f"{path} holds {arr.dtype} {arr.shape}, expected uint8 N x H x W x 3 (the 300K Random "
                        "Images file is 300000 x 32 x 32 x 3)")
    with warnings.catch_warnings():  # a read-only view, never written (ood_pool only indexes it)
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(arr))


def _cifar(name: str):
    def load(arg: str, root, download) -> torch.Tensor:
        from .sources import load_split
        return load_split(name, root, "train", download).images
    return load


def _svhn(arg: str, root, download) -> torch.Tensor:
    import torchvision
    if not root:
        raise UserError("the svhn OOD source needs --data-root DIR (and --download the first time)")
    try:
        ds = torchvision.datasets.SVHN(root, split="train", download=download)
    except Exception as exc:
        raise UserError(f"no SVHN under {root} ({type(exc).__name__}): add --download (needs internet)") from None
    return torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 2, 3, 1)))


def _folder(arg: str, root, download) -> torch.Tensor:
    from .sources import decode_image_folder
    path = Path(arg)
    if not path.is_dir():
        raise UserError(f"OOD folder {path} does not exist: pass --set oe.ood=folder:DIR with an image tree")
    return decode_image_folder(path, 224, resize=256).images


def _npz(arg: str, root, download) -> torch.Tensor:
    path = Path(arg)
    if not path.is_file():
        raise UserError(f"no OOD array file at {path}: pass --set oe.ood=npz:FILE with an 'images' array")
    with np.load(path) as z:
        images = np.ascontiguousarray(z["images"])
    return torch.from_numpy(images if images.ndim == 4 else images[..., None])


def _demo(arg: str, root, download) -> torch.Tensor:
    from .demo import demo_patches
    return demo_patches()


OOD_SOURCES.add("random300k", _random300k)
OOD_SOURCES.add("cifar100", _cifar("cifar100"))
OOD_SOURCES.add("cifar10", _cifar("cifar10"))
OOD_SOURCES.add("svhn", _svhn)
OOD_SOURCES.add("folder", _folder)
OOD_SOURCES.add("npz", _npz)
OOD_SOURCES.add("demo-patches", _demo)


def path_source_identity(kind: str, arg: str) -> str:
    """The identity of an OOD source read from a path, independent of where it lies: a file by its
    sha256 (computed once per size and modification time), a folder by the sorted list of its files'
    relative paths and sizes (hashing every image of a Places365-sized tree would take minutes)."""
    p = Path(arg)
    if p.is_dir():
        return f"{kind}:files-" + _folder_listing_sha256(str(p.resolve()))[:16]
    if not p.exists():
        return f"{kind}:{p.name}|missing"
    st = p.stat()
    return f"{kind}:sha256-" + _file_sha256(str(p.resolve()), st.st_size, st.st_mtime_ns)[:16]


@functools.lru_cache(maxsize=16)
def _folder_listing_sha256(path: str) -> str:
    """Once per process (a sweep plans every cell with the same folder; a tree of 1.8M images takes seconds)."""
    root = Path(path)
    listing = sorted((str(f.relative_to(root)), f.stat().st_size) for f in root.rglob("*") if f.is_file())
    return hashlib.sha256(repr(listing).encode()).hexdigest()


@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, _size: int, _mtime_ns: int) -> str:
    return sha256_file(Path(path))


def _seed_source(source: str) -> str:
    """What seeds a pool's draw: the source spec, with a path replaced by the content identity (the same
    file at another path draws the same pool; a source without a path is its spec, as always)."""
    kind, arg = parse_source(source)
    return path_source_identity(kind, arg) if arg else source


def parse_source(spec: str) -> tuple[str, str]:
    kind, _, arg = spec.partition(":")
    OOD_SOURCES.get(kind)  # validates
    if kind in ("random300k", "folder", "npz") and not arg:
        raise UserError(f"OOD source {spec!r} needs a path: {kind}:PATH")
    return kind, arg


@functools.lru_cache(maxsize=4)
def load_candidates(spec: str, root: Optional[str], download: bool = False) -> torch.Tensor:
    kind, arg = parse_source(spec)
    return OOD_SOURCES.get(kind)(arg, root, download)


def to_resolution(images: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """uint8 N x H x W x C -> uint8 N x size x size x channels (area/bilinear resize, grey <-> RGB)."""
    x = images.permute(0, 3, 1, 2).float()
    if x.shape[1] != channels:
        if channels == 1:
            x = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]) if x.shape[1] >= 3 else x[:, :1]
        else:
            x = x[:, :1].expand(-1, channels, -1, -1)
    if x.shape[-1] != size or x.shape[-2] != size:
        mode = "area" if x.shape[-1] > size else "bilinear"
        x = F.interpolate(x, size=(size, size), mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _image_hashes(images: torch.Tensor) -> set[bytes]:
    flat = images.reshape(len(images), -1).numpy()
    return {hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat}


@dataclass
class OODPool:
    images: torch.Tensor  # uint8 n x H x W x C at the in-distribution resolution
    source_indices: np.ndarray  # index of each image in the source
    dropped_duplicates: int
    key: str


def ood_pool(dataset: str, id_train: ImageSet, source: str, n: int, seed: int,
             root: Optional[str], download: bool = False) -> OODPool:
    """Pre-sample the fixed OOD pool of ``n`` images for this (dataset, source, n, seed)."""
    if n <= 0:
        raise UserError(f"--set oe.pool_size={n}: the OOD pool needs at least one image")
    kind, _ = parse_source(source)
    if kind == dataset:
        raise UserError(f"OOD source {source} is the in-distribution dataset itself: choose another --set oe.ood")
    candidates = load_candidates(source, root, download)
    key = f"ood|{dataset}|{_seed_source(source)}|{n}|{seed}"
    order = np.random.default_rng(seed_from(key)).permutation(len(candidates))
    id_hashes = _id_hashes(id_train)
    chosen: list[int] = []
    images: list[torch.Tensor] = []
    dropped = 0
    pos = 0
    while len(chosen) < n and pos < len(order):
        take = order[pos:pos + max(2 * (n - len(chosen)), 64)]
        pos += len(take)
        batch = to_resolution(candidates[torch.as_tensor(take)], id_train.resolution, id_train.channels)
        flat = batch.reshape(len(batch), -1).numpy()
        for j, row in enumerate(flat):
            if hashlib.blake2b(row.tobytes(), digest_size=16).digest() in id_hashes:
                dropped += 1
                continue
            chosen.append(int(take[j]))
            images.append(batch[j])
            if len(chosen) == n:
                break
    if len(chosen) < n:
        raise UserError(f"OOD source {source} has only {len(chosen)} usable images, fewer than the pool size {n}: "
                        "lower --set oe.pool_size or use a larger source")
    return OODPool(torch.stack(images), np.asarray(chosen), dropped, key)


_HASH_CACHE: dict[tuple[str, str], set] = {}


def _id_hashes(id_train: ImageSet) -> set[bytes]:
    key = (id_train.source, id_train.fingerprint)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = _image_hashes(id_train.images)
    return _HASH_CACHE[key]
