"""Tiny data in the exact on-disk formats the ``paper`` profile reads (benchmark/profiles.py ``_paper``).

- ``cifar-10-batches-py``: ``data_batch_1..5``, ``test_batch``, ``batches.meta`` -- Python pickles of dicts
  with ``data`` (uint8 N x 3072, channel-major rows as in the official files), ``labels``, ``filenames``,
  ``batch_label``; meta ``label_names``, ``num_cases_per_batch``, ``num_vis``.
- ``cifar-100-python``: ``train``, ``test``, ``meta`` with ``fine_labels`` / ``coarse_labels`` and meta
  ``fine_label_names`` / ``coarse_label_names``.
- ``imagenet/{train,val}/<wnid>/*.JPEG|png``: an ImageFolder tree with 1000 wnids (val: a few of them).
- ``300K_random_images.npy``: uint8 N x 32 x 32 x 3.
- ``places365/<class>/*.jpg``: the ImageFolder the profile uses as ImageNet's OOD source.

Contents are random, with a per-class offset so a teacher has something to learn.  torchvision refuses
these CIFAR files (their md5s are not the official ones; it checks them on every load), so the suite
reads them with its own reader of the format (oefsmc/data/cifar_python.py) and records them as
``cifar-python-unverified``.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _images(rng: np.random.Generator, labels: np.ndarray, size: int, classes: int) -> np.ndarray:
    """uint8 N x size x size x 3: noise around a colour that depends on the class."""
    base = (np.arange(classes)[:, None] * np.array([37, 91, 53]) % 200 + 28).astype(np.int16)
    noise = rng.integers(-28, 28, (len(labels), size, size, 3), dtype=np.int16)
    return (base[labels][:, None, None, :] + noise).clip(0, 255).astype(np.uint8)


def _rows(images: np.ndarray) -> np.ndarray:
    """N x 32 x 32 x 3 -> N x 3072 (the official files' layout: R plane, G plane, B plane)."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _balanced_labels(per_class: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.repeat(np.arange(classes), per_class))


def write_cifar10(root: Path, per_class_train: int = 10, per_class_test: int = 5, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    labels = _balanced_labels(per_class_train, 10, rng)
    images = _images(rng, labels, 32, 10)
    for i, part in enumerate(np.array_split(np.arange(len(labels)), 5), start=1):
        _dump(folder / f"data_batch_{i}", {"batch_label": f"training batch {i} of 5", "labels": labels[part].tolist(),
                                           "data": _rows(images[part]),
                                           "filenames": [f"img_{j}.png" for j in part]})
    test_labels = _balanced_labels(per_class_test, 10, rng)
    _dump(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": test_labels.tolist(),
                                  "data": _rows(_images(rng, test_labels, 32, 10)),
                                  "filenames": [f"test_{j}.png" for j in range(len(test_labels))]})
    _dump(folder / "batches.meta", {"num_cases_per_batch": len(labels) // 5, "label_names": CIFAR10_NAMES,
                                    "num_vis": 3072})
    return folder


def write_cifar100(root: Path, per_class_train: int = 5, per_class_test: int = 1, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, per in (("train", per_class_train), ("test", per_class_test)):
        labels = _balanced_labels(per, 100, rng)
        _dump(folder / name, {"filenames": [f"{name}_{j}.png" for j in range(len(labels))], "batch_label": name,
                              "fine_labels": labels.tolist(), "coarse_labels": (labels // 5).tolist(),
                              "data": _rows(_images(rng, labels, 32, 100))})
    _dump(folder / "meta", {"fine_label_names": [f"fine_{i:02d}" for i in range(100)],
                            "coarse_label_names": [f"coarse_{i:02d}" for i in range(20)]})
    return folder


def _save_tree(folder: Path, counts: list[int], names: list[str], size: int, rng: np.random.Generator) -> int:
    """ImageFolder tree: ``counts[c]`` files in ``folder/names[c]``, JPEG and PNG alternating."""
    n = 0
    for c, (name, count) in enumerate(zip(names, counts)):
        if not count:
            continue
        (folder / name).mkdir(parents=True, exist_ok=True)
        for j, img in enumerate(_images(rng, np.full(count, c % 1000), size, 1000)):
            ext, fmt = ((".JPEG", "JPEG") if (n + j) % 2 == 0 else (".png", "PNG"))
            Image.fromarray(img).save(folder / name / f"{name}_{j}{ext}", fmt)
        n += count
    return n


def imagenet_wnids() -> list[str]:
    return [f"n{10000000 + 17 * i:08d}" for i in range(1000)]


def write_imagenet(root: Path, train_counts: list[int], val_classes: int = 10, per_val_class: int = 2,
                   size: int = 8, seed: int = 2) -> Path:
    """``root/imagenet/{train,val}``: ``train_counts[c]`` (at least 1) images of wnid c; ``val`` holds the
    first ``val_classes`` wnids (a subset: labels follow the training wnids)."""
    rng = np.random.default_rng(seed)
    wnids = imagenet_wnids()
    folder = root / "imagenet"
    _save_tree(folder / "train", [max(1, c) for c in train_counts], wnids, size, rng)
    _save_tree(folder / "val", [per_val_class] * val_classes, wnids[:val_classes], size, rng)
    return folder


def write_random300k(root: Path, n: int = 600, seed: int = 3) -> Path:
    rng = np.random.default_rng(seed)
    path = root / "300K_random_images.npy"
    np.save(path, rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))
    return path


def write_places365(root: Path, classes: int = 2, per_class: int = 6, size: int = 8, seed: int = 4) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "places365"
    _save_tree(folder, [per_class] * classes, [f"place_{i}" for i in range(classes)], size, rng)
    return folder


def write_cifar_arrays(root: Path, dataset: str, per_class_train: int, per_class_test: int, seed: int = 5) -> Path:
    """``root/<dataset>/{train,test}.npz`` in the layout of ``../shared/data`` (images, labels, classes)."""
    rng = np.random.default_rng(seed)
    classes = 10 if dataset == "cifar10" else 100
    names = CIFAR10_NAMES if classes == 10 else [f"fine_{i:02d}" for i in range(100)]
    (root / dataset).mkdir(parents=True, exist_ok=True)
    for split, per in (("train", per_class_train), ("test", per_class_test)):
        labels = _balanced_labels(per, classes, rng)
        np.savez(root / dataset / f"{split}.npz", images=_images(rng, labels, 32, classes),
                 labels=labels.astype(np.int16), classes=np.array(names))
    return root / dataset
