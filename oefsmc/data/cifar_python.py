"""torchvision's CIFAR python-pickle format (``cifar-10-batches-py`` / ``cifar-100-python``), read by the suite.

Why the suite reads it itself: ``torchvision.datasets.CIFAR10`` / ``CIFAR100`` verify the md5 of every
batch file in ``__init__`` (``_check_integrity``) and of the meta file in ``_load_meta``, on every
construction and not only on download, and offer no switch to skip it.  Files in the exact format with
other contents (a re-pickled subset, the smoke test's tiny files) therefore raise "Dataset not found or
corrupted" there.  :func:`official_md5s_match` asks torchvision's own integrity check; where it passes,
:mod:`oefsmc.data.sources` uses torchvision, and otherwise :func:`read_cifar_python` reads the same files
the way torchvision's ``__init__`` does -- the batch files torchvision lists (``train_list`` /
``test_list``), each a latin-1 pickle of ``data`` (N x 3072 uint8, reshaped to N x 3 x 32 x 32 and then
HWC) and ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100), class names from the meta file's
``label_names`` / ``fine_label_names`` -- and marks the source ``cifar-python-unverified:`` so every
record says the md5s were not the official ones.

Unlike torchvision, the pickles are read with a restricted unpickler that builds only numpy arrays and
plain containers (the suite never executes code from a data file, as it never does from a checkpoint).
"""
from __future__ import annotations

import functools
import pickle
from pathlib import Path

import numpy as np

from ..errors import UserError

#: (module, name) a CIFAR pickle may reference: numpy array reconstruction (and, in protocol-2 pickles
#: written by Python 3, ``_codecs.encode`` for the raw bytes) only
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name}")
        return super().find_class(module, name)


def _load_pickle(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path} is missing: a CIFAR python folder needs every file torchvision lists "
                        "(re-extract the archive, or pass --data-root DIR holding <dataset>/{train,test}.npz)")
    try:
        with open(path, "rb") as f:
            blob = _ArrayUnpickler(f, encoding="latin1").load()
    except Exception as exc:  # noqa: BLE001  (truncated file, foreign pickle ...)
        raise UserError(f"{path} is not a CIFAR python batch file ({type(exc).__name__}): re-extract "
                        "the archive or delete the folder and use --download") from None
    if not isinstance(blob, dict):
        raise UserError(f"{path} holds a {type(blob).__name__}, not a CIFAR batch dict")
    return blob


@functools.lru_cache(maxsize=None)
def _torchvision_class(dataset: str):
    import torchvision
    return {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}[dataset]


def folder_name(dataset: str) -> str:
    """``cifar-10-batches-py`` / ``cifar-100-python`` (torchvision's ``base_folder``)."""
    return _torchvision_class(dataset).base_folder


def official_md5s_match(dataset: str, root: str) -> bool:
    """torchvision's own integrity check: every batch file and the meta file have the official md5."""
    from torchvision.datasets.utils import check_integrity
    cls = _torchvision_class(dataset)
    folder = Path(root) / cls.base_folder
    files = cls.train_list + cls.test_list + [[cls.meta["filename"], cls.meta["md5"]]]
    return all(check_integrity(str(folder / name), md5) for name, md5 in files)


def _batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    blob = _load_pickle(path)
    label_key = "labels" if "labels" in blob else "fine_labels"  # torchvision's rule
    if "data" not in blob or label_key not in blob:
        raise UserError(f"{path} has no 'data' / 'labels' (or 'fine_labels') entries: not a CIFAR batch file")
    data = np.asarray(blob["data"])
    labels = np.asarray(blob[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise UserError(f"{path}: 'data' is {data.dtype} {data.shape} with {len(labels)} labels, expected "
                        "uint8 N x 3072 with N labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise UserError(f"{path}: labels outside 0..{num_classes - 1}")
    return data, labels


def read_cifar_python(dataset: str, root: str, split: str, num_classes: int
                      ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(uint8 N x 32 x 32 x 3 images, int64 labels, class names) of ``split``, parsed as torchvision does."""
    cls = _torchvision_class(dataset)
    folder = Path(root) / cls.base_folder
    parts = [_batch(folder / name, num_classes) for name, _ in (cls.train_list if split == "train" else cls.test_list)]
    data = np.vstack([d for d, _ in parts]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = np.concatenate([lab for _, lab in parts])
    meta = _load_pickle(folder / cls.meta["filename"])
    classes = [str(c) for c in meta.get(cls.meta["key"], [])]
    if len(classes) != num_classes:
        raise UserError(f"{folder / cls.meta['filename']}: '{cls.meta['key']}' names {len(classes)} classes, "
                        f"expected {num_classes}")
    return np.ascontiguousarray(data), labels, classes
