"""The fine-tuning protocol switches: BatchNorm mode, what is trained, the held-out monitor, the oracle-test
diagnostic (oefsmc/core/finetune.py, oefsmc/pipeline.py)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn as nn

import oefsmc.core.finetune as ft_module
from oefsmc.core.finetune import FINETUNE_PARAMS, finetune, head_module
from oefsmc.core.params import resolve
from oefsmc.core.stage_data import StageData
from oefsmc.errors import UserError
from oefsmc.pipeline import holdout_split, resolve_config, run_config


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3))


def _run(bn="train", params="all", iters=10):
    model = _net()
    g = torch.Generator().manual_seed(0)
    data = StageData(torch.randn(12, 1, 6, 6, generator=g) * 3 + 1, torch.arange(12) % 3, 3)
    hp = resolve("finetune", FINETUNE_PARAMS, "official", {})
    hp.update(bn=bn, params=params, max_iters=iters, patience=iters, eval_every=5, lr=0.1, batch_size=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = lambda lf, yf, la, ya: (nn.functional.cross_entropy(lf, yf), {})  # noqa: E731
    # keep the last iterate (no early stopping): a monitor that always "improves"
    hp["monitor"] = "few_loss"
    stats = finetune(model, data, loss, hp, g)
    return before, model, stats


def _changed(before, model, name):
    return not torch.equal(before[name], model.state_dict()[name])


def test_bn_eval_freezes_running_statistics_and_train_updates_them():
    before, model, stats = _run("train")
    assert stats["iters"] == 10
    assert _changed(before, model, "1.running_mean") and _changed(before, model, "1.running_var")
    before, model, _ = _run("eval")
    assert not _changed(before, model, "1.running_mean") and not _changed(before, model, "1.running_var")
    assert _changed(before, model, "1.weight")  # affine parameters still train


def test_bn_recal_reestimates_statistics_on_the_finetuning_images():
    before, model, _ = _run("recal")
    data_x = torch.randn(12, 1, 6, 6, generator=torch.Generator().manual_seed(0)) * 3 + 1
    with torch.no_grad():
        feats = model[0](data_x)
    # the running mean is the (cumulative) mean over the fine-tuning images of the restored weights
    assert torch.allclose(model[1].running_mean, feats.mean((0, 2, 3)), atol=1e-5)


def test_head_scope_leaves_the_trunk_unchanged():
    before, model, _ = _run("eval", "head")
    assert head_module(model) is model[5]
    assert not any(_changed(before, model, k) for k in ("0.weight", "0.bias", "1.weight", "1.bias"))
    assert _changed(before, model, "5.weight")
    before, model, _ = _run("eval", "bn+head")
    assert not _changed(before, model, "0.weight") and _changed(before, model, "1.weight")
    assert all(p.requires_grad for p in model.parameters())  # frozen parameters are given back


def test_holdout_split_is_stratified_and_keeps_singletons():
    counts = [4, 2, 1, 0]
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    mask = holdout_split(counts, labels, 0.25, "k")
    assert mask.tolist().count(True) == 2 and mask[labels == 2].sum() == 0
    assert mask[labels == 0].sum() == 1 and mask[labels == 1].sum() == 1
    assert (holdout_split(counts, labels, 0.25, "k") == mask).all()


CELL = {"dataset": "digits", "arch": "demo_vgg", "num": 30, "method": "fskd", "oe": "full", "schedule": "demo",
        "seed": 0, "device": "cpu"}


def test_oracle_test_is_a_labelled_diagnostic_that_changes_nothing_else():
    plain = run_config(resolve_config(CELL))
    res = resolve_config(dict(CELL, overrides={"finetune.select": "oracle-test"}))
    assert res["diagnostic"] == "test-set selection"
    diag = run_config(res)
    assert diag["metrics"]["top1"] == plain["metrics"]["top1"]
    d = diag["diagnostic"]
    assert d["kind"] == "test-set selection" and d["oracle_top1"] >= diag["metrics"]["top1"]
    at_best = [p["test_top1"] for p in d["curve"] if p["iter"] == diag["stats"]["finetune"]["best_iter"]]
    assert at_best == [diag["metrics"]["top1"]]
    assert "diagnostic" not in plain and "diagnostic" not in resolve_config(CELL)


def _rows(x: torch.Tensor) -> Counter:
    return Counter(r.numpy().tobytes() for r in x.cpu())


def test_holdout_monitor_trains_on_fewer_images_and_is_keyed(monkeypatch):
    seen = []
    original = ft_module.finetune

    def spy(model, data, loss_fn, hp, generator, aux_labels_fn=None, augment=None, probe=None, holdout=None,
            *args):
        seen.append((data.few_x, holdout))
        return original(model, data, loss_fn, hp, generator, aux_labels_fn, augment, probe, holdout, *args)

    monkeypatch.setattr(ft_module, "finetune", spy)
    run_config(resolve_config(CELL))
    rec = run_config(resolve_config(dict(CELL, overrides={"finetune.monitor": "holdout_loss"})))
    (all_x, no_holdout), (train_x, (held_x, _)) = seen
    assert no_holdout is None and len(all_x) == CELL["num"]
    assert rec["stats"]["finetune"]["held_out_images"] == len(held_x) > 0
    assert len(train_x) == CELL["num"] - len(held_x)              # fine-tuning sees only the rest
    assert _rows(train_x) + _rows(held_x) == _rows(all_x)          # a split of the same few-sample set
    assert rec["config"]["hp"]["finetune"]["holdout"] == 0.2
    assert "holdout" not in resolve_config(CELL)["hp"]["finetune"]
    with pytest.raises(UserError, match="holdout_loss"):
        resolve_config(dict(CELL, overrides={"finetune.holdout": "0.3"}))
