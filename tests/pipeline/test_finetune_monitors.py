"""The shared fine-tuning stage's monitors and optimizers (oefsmc/core/finetune.py)."""
import torch

from oefsmc.core.finetune import MONITORS, OPTIMIZERS, improves
from oefsmc.core.stage_data import StageData


def _data():
    few_y = torch.tensor([0, 1, 1])
    return StageData(torch.zeros(3, 1), few_y, 2, torch.zeros(2, 1), torch.tensor([0, 1]), 0.5)


def _loss_fn(lf, yf, la, ya):
    ce = torch.nn.functional.cross_entropy(lf, yf)
    return ce + 10.0 * torch.nn.functional.cross_entropy(la, ya), {}


def _view(lf, la, data, holdout=None, holdout_y=None):
    return {"few": lf, "aux": la, "data": data, "loss_fn": _loss_fn, "holdout": holdout, "holdout_y": holdout_y}


def test_relative_tolerance_ignores_noise_sized_improvements():
    best = (0.004, 0.0)
    assert improves((0.00398, 0.0), best)                     # absolute 1e-6 only: a 2e-5 drop counts
    assert not improves((0.00398, 0.0), best, rel_tol=0.01)   # within 1% of the best: noise
    assert improves((0.0039, 0.0), best, rel_tol=0.01)        # 2.5% better: an improvement


def test_holdout_monitor_scores_the_held_out_images():
    data = _data()
    held = torch.tensor([[0.0, 3.0]])
    value = MONITORS["holdout_loss"](_view(torch.zeros(3, 2), None, data, held, torch.tensor([1])))[0]
    assert value == torch.nn.functional.cross_entropy(held, torch.tensor([1])).item()


def test_few_loss_ignores_the_ood_term_and_train_loss_includes_it():
    data = _data()
    lf = torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
    la = torch.tensor([[0.0, 5.0], [5.0, 0.0]])  # both auxiliary images confidently wrong
    few = MONITORS["few_loss"](_view(lf, la, data))[0]
    total = MONITORS["train_loss"](_view(lf, la, data))[0]
    assert few == torch.nn.functional.cross_entropy(lf, data.few_y).item()
    assert total > few + 10 * 4.9


def test_few_acc_breaks_ties_by_few_loss():
    data = _data()
    confident = torch.tensor([[4.0, 0.0], [0.0, 4.0], [0.0, 4.0]])
    hesitant = torch.tensor([[0.1, 0.0], [0.0, 0.1], [0.0, 0.1]])
    a = MONITORS["few_acc"](_view(confident, None, data))
    b = MONITORS["few_acc"](_view(hesitant, None, data))
    assert a[0] == b[0] == -1.0 and improves(a, b) and not improves(b, a)


def test_optimizer_registry_builds_what_it_names():
    params = [torch.nn.Parameter(torch.zeros(2))]
    hp = {"lr": 5e-4, "momentum": 0.9, "weight_decay": 0.0}
    sgd, adam = OPTIMIZERS["sgd"](params, hp), OPTIMIZERS["adam"](params, hp)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["lr"] == 5e-4
