import numpy as np
import pytest
import torch

from oefsmc.core.losses import weighted_ce
from oefsmc.core.stage_data import StageData
from oefsmc.oe.auxiliary import draw_labels
from oefsmc.oe.complementary import complementary_distribution, importance_class_weights, ood_class_weights


def test_balanced_gives_uniform():
    g = complementary_distribution([5] * 10)
    assert np.allclose(g, 0.1) and np.allclose(ood_class_weights(g), 1.0)


def test_open_sampling_cifar10_lt_vector():
    """methods.md Sec. 5.4: Open-Sampling's CIFAR-10-LT (ratio 100) counts."""
    counts = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    g = complementary_distribution(counts)
    beta = np.array(counts) / sum(counts)
    assert beta.max() + beta.min() == pytest.approx(0.40706, abs=1e-5)
    expected = [0.0013, 0.0539, 0.0854, 0.1043, 0.1156, 0.1224, 0.1265, 0.1289, 0.1304, 0.1313]
    assert np.allclose(g, expected, atol=6e-5)
    assert np.allclose(ood_class_weights(g), [0.013, 0.539, 0.854, 1.043, 1.156, 1.224, 1.265, 1.289, 1.304,
                                              1.313], atol=6e-4)
    assert g.sum() == pytest.approx(1.0)


def test_weighted_ce_is_weighted_mean_not_batch_mean():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 1])
    w = torch.tensor([0.2, 1.8])
    per = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    expected = (w[y] * per).sum() / w[y].sum()
    assert torch.allclose(weighted_ce(logits, y, w), expected)
    assert not torch.allclose(weighted_ce(logits, y, w), (w[y] * per).sum() / len(y))


def test_combine_uses_lambda():
    x = torch.zeros(4, 1, 2, 2)
    d = StageData(x, torch.zeros(4, dtype=torch.long), 2, x[:2], torch.zeros(2, dtype=torch.long), lam=0.3)
    few, aux = torch.tensor([1.0, 3.0, 1.0, 3.0]), torch.tensor([10.0, 20.0])
    assert d.combine(few, aux).item() == pytest.approx(0.3 * 2 + 0.7 * 15)
    d.lam = 0.8
    assert d.combine(few, aux).item() == pytest.approx(0.8 * 2 + 0.2 * 15)
    plain = StageData(x, torch.zeros(4, dtype=torch.long), 2)
    assert plain.combine(few).item() == pytest.approx(2.0)
    with pytest.raises(ValueError):
        plain.combine(few, aux)
    wf, wa = d.source_weights()
    assert (wf * few.sum() + wa * aux.sum()).item() == pytest.approx(d.combine(few, aux).item())


def test_class_aware_importance_weights():
    x = torch.zeros(3, 1, 2, 2)
    y = torch.tensor([0, 0, 1])
    d = StageData(x, y, 2, class_weights=torch.tensor([0.5, 0.5]))
    w = d.importance_weights(y)
    assert torch.allclose(w, torch.tensor([0.25, 0.25, 0.5]))
    plain = StageData(x, y, 2)
    assert torch.allclose(plain.importance_weights(y), torch.full((3,), 1 / 3))
    loss = torch.tensor([1.0, 1.0, 4.0])
    assert d.combine(loss, y_few=y).item() == pytest.approx(2.5)
    assert plain.combine(loss, y_few=y).item() == pytest.approx(2.0)


def test_eq6_readings():
    few = [4, 2, 2, 1, 1, 0, 0, 0, 0, 0]
    aux = np.array([5, 6, 7, 8, 9] * 2)
    # rebalanced: (m_j + a_j) / (M + m); the auxiliary labels add 2 images to each of classes 5-9
    w = importance_class_weights(few, aux, "rebalanced")
    assert np.allclose(w, np.array([4, 2, 2, 1, 1, 2, 2, 2, 2, 2]) / 20)
    assert w[0] < 4 / 10 and w[9] > 0  # the head class loses weight against its prior, a tail class gains it
    # inverse: 1 / (m_j + 1), normalised
    inv = importance_class_weights(few, aux, "inverse")
    raw = np.array([1 / 5, 1 / 3, 1 / 3, 1 / 2, 1 / 2, 1, 1, 1, 1, 1])
    assert np.allclose(inv, raw / raw.sum())
    with pytest.raises(ValueError, match="unknown class-weight mode"):
        importance_class_weights(few, aux, "uniform")


def test_draw_labels_follows_distribution():
    g = complementary_distribution([40, 24, 15, 9, 5, 3, 2, 1, 1, 0])
    labels = draw_labels(g, np.random.default_rng(0).random(200_000))
    freq = np.bincount(labels, minlength=10) / 200_000
    assert np.allclose(freq, g, atol=0.005)
