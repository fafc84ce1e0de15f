"""The complementary label distribution for OOD data (OE-FSMC Eq. 4, from Open-Sampling).

beta_j = m_j / M (the few-sample class prior), alpha = max_j beta_j + min_j beta_j,
Gamma_j = (alpha - beta_j) / (K * alpha - 1), and the class-dependent weights of Eq. 8,
gamma_j = K * Gamma_j (Open-Sampling's ``alg/ood_noise.py``: rebalance_rate / sum * num_classes).
A balanced set gives Gamma = 1/K and gamma = 1 for every class.
"""
from __future__ import annotations

import numpy as np


def label_prior(counts) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() <= 0:
        raise ValueError("the few-sample set is empty")
    return counts / counts.sum()


def complementary_distribution(counts) -> np.ndarray:
    """Gamma (Eq. 4) for class counts m_j."""
    beta = label_prior(counts)
    k = len(beta)
    alpha = beta.max() + beta.min()
    denom = k * alpha - 1.0
    if abs(denom) < 1e-12:  # only when K == 1
        return np.ones(k) / k
    return (alpha - beta) / denom


def ood_class_weights(gamma_dist: np.ndarray) -> np.ndarray:
    """gamma_j = K * Gamma_j (mean 1 over classes)."""
    return len(gamma_dist) * np.asarray(gamma_dist, dtype=np.float64)


def importance_class_weights(few_counts, aux_labels: np.ndarray, mode: str) -> np.ndarray:
    """w_j of Eq. 6 (sum 1).  Eq. 6 writes w_j = p_j / sum_k p_k with p_j "the relative frequency of class j"
    yet says minority classes get larger weights, which is only true of a frequency *after* rebalancing
    (shared/seeds/README.md).  Readings (``--set oe.class_weights=``):

    - ``rebalanced`` (default): p_j = the class frequency of the OOD-rebalanced set, few-sample images plus
      auxiliary images with their assigned labels, (m_j + a_j) / (M + m).  Relative to the prior m_j / M
      of Eq. 3 this raises every minority class.
    - ``inverse``: p_j = 1 / (m_j + 1), a (Laplace-smoothed) inverse frequency of the few-sample set, defined
      for classes with no few-sample image.
    """
    few = np.asarray(few_counts, dtype=np.float64)
    k = len(few)
    if mode == "rebalanced":
        aux = np.bincount(np.asarray(aux_labels, dtype=np.int64), minlength=k).astype(np.float64)
        p = few + aux
    elif mode == "inverse":
        p = 1.0 / (few + 1.0)
    else:
        raise ValueError(f"unknown class-weight mode {mode!r}")
    return p / p.sum()
