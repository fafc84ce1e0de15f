"""Few-sample sets (OE-FSMC Sec. 5.1), reproducible and inspectable.

``Num`` is the TOTAL size of the set (the paper's ImageNet remark; shared/seeds/README.md).
- balanced: Num // K per class, the remainder to the lowest class indices;
- long-tailed with ratio rho: w_i = rho^(-i/(K-1)) in natural class order (class 0 is the head);
  counts = largest-remainder apportionment of Num by w, ties to the lower class index; a class may get 0.
Images are drawn uniformly without replacement inside each class from a generator seeded by
(dataset, Num, balanced|imbalanced, rho, seed) only -- never by the method or the OE variant -- so every
row of a table column sees the same images.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..errors import UserError


def seed_from(*parts) -> int:
    """A 63-bit seed from a tuple of identifying values (stable across processes and platforms)."""
    text = "|".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)


def balanced_counts(num: int, num_classes: int) -> list[int]:
    base, rest = divmod(num, num_classes)
    return [base + (1 if i < rest else 0) for i in range(num_classes)]


def longtail_counts(num: int, num_classes: int, ratio: float) -> list[int]:
    """Largest-remainder apportionment of ``num`` by w_i = ratio^(-i/(K-1)).  Num 10, K 10 -> [4,2,2,1,1,0,...]."""
    k = num_classes
    w = np.array([ratio ** (-i / (k - 1)) if k > 1 else 1.0 for i in range(k)], dtype=np.float64)
    quota = num * w / w.sum()
    counts = np.floor(quota).astype(int)
    remainder = quota - counts
    left = num - int(counts.sum())
    # largest remainder first; ties (equal remainders) go to the lower class index (stable sort)
    order = sorted(range(k), key=lambda i: (-round(remainder[i], 12), i))
    for i in order[:left]:
        counts[i] += 1
    return counts.tolist()


def class_counts(num: int, num_classes: int, balanced: bool, ratio: float = 100.0) -> list[int]:
    if num <= 0:
        raise UserError(f"--num {num}: Num must be a positive total number of samples")
    if not balanced and ratio < 1:
        raise UserError(f"--imbalance-ratio {ratio}: the ratio must be >= 1 (1 means balanced)")
    return balanced_counts(num, num_classes) if balanced else longtail_counts(num, num_classes, ratio)


@dataclass
class FewShotSet:
    indices: np.ndarray  # into the training pool, grouped by class, each class's draw in drawn order
    class_counts: list[int]
    seed_key: str

    def to_json(self) -> dict:
        return {"class_counts": self.class_counts, "indices": self.indices.tolist(), "seed_key": self.seed_key}


def fewshot_key(dataset: str, num: int, balanced: bool, ratio: float, seed: int) -> str:
    setting = "balanced" if balanced else "imbalanced"
    return f"fewshot|{dataset}|{num}|{setting}|{1.0 if balanced else float(ratio)}|{seed}"


def sample_fewshot(labels: np.ndarray, num_classes: int, dataset: str, num: int, balanced: bool,
                   ratio: float, seed: int) -> FewShotSet:
    labels = np.asarray(labels)
    if num > len(labels):
        raise UserError(f"--num {num} is larger than the {dataset} training pool ({len(labels)} images): "
                        "lower --num or use a larger --data-root")
    counts = class_counts(num, num_classes, balanced, ratio)
    key = fewshot_key(dataset, num, balanced, ratio, seed)
    rng = np.random.default_rng(seed_from(key))
    chosen = []
    for c, n in enumerate(counts):
        pool = np.flatnonzero(labels == c)
        if n > len(pool):
            raise UserError(f"--num {num} ({'balanced' if balanced else f'ratio {ratio:g}'}) needs {n} images of "
                            f"class {c} but the {dataset} pool has {len(pool)}: lower --num")
        if n:
            chosen.append(rng.choice(pool, size=n, replace=False))
    idx = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    return FewShotSet(idx.astype(np.int64), counts, key)


def ldam_longtail_indices(labels: np.ndarray, num_classes: int, ratio: float, seed: int = 0) -> np.ndarray:
    """The standard LDAM-DRW long-tailed training set: n_i = int(n_max * ratio^(-i/(K-1))).

    Per class, ``np.random.seed(seed)`` then shuffle and keep the first n_i (``imbalance_cifar.py``);
    CIFAR-10 at ratio 100 gives 12,406 images.  For reference runs.
    """
    labels = np.asarray(labels)
    n_max = int(np.bincount(labels, minlength=num_classes).max())
    np.random.seed(seed)
    out = []
    for c in range(num_classes):
        n = int(n_max * (1.0 / ratio) ** (c / (num_classes - 1)))
        idx = np.flatnonzero(labels == c)
        np.random.shuffle(idx)
        out.append(idx[:n])
    return np.concatenate(out)
