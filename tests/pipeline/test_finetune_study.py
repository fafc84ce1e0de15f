"""The fine-tuning study: its validation split and the observation-only probe."""
import json

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.finetune_study import simulate_early_stopping, validation_split
from oefsmc.pipeline import resolve_config, run_config

CELL = {"dataset": "digits", "arch": "demo_vgg", "num": 20, "balanced": False, "imbalance_ratio": 100.0,
        "seed": 0, "schedule": "demo", "device": "cpu", "method": "fskd", "oe": "full",
        "overrides": {"finetune.max_iters": "20", "finetune.patience": "20"}}


def test_validation_split_is_balanced_and_avoids_the_few_sample_set():
    labels = np.repeat(np.arange(3), 10)
    exclude = np.array([0, 1, 10, 20, 21, 22])
    idx = validation_split(labels, exclude, 5, 3, seed=0)
    assert len(idx) == 15 and not set(idx) & set(exclude)
    assert np.bincount(labels[idx]).tolist() == [5, 5, 5]
    with pytest.raises(ValueError, match="class 2 has only 7"):
        validation_split(labels, exclude, 8, 3, seed=0)


def test_probe_sees_every_monitor_evaluation_and_changes_nothing():
    plain = run_config(resolve_config(CELL))
    seen = []
    probed = run_config(resolve_config(CELL), finetune_probe=lambda model, it, mons: seen.append((it, mons)))
    assert plain["metrics"]["top1"] == probed["metrics"]["top1"]
    assert plain["metrics"]["per_class"] == probed["metrics"]["per_class"]
    iters = [it for it, _ in seen]
    assert iters[0] == 0 and iters == sorted(iters) and iters[-1] == probed["stats"]["finetune"]["iters"]
    assert set(seen[0][1]) == {"train_loss", "few_loss", "few_acc"}
    history = {h["iter"]: h["monitor"] for h in probed["stats"]["finetune"]["history"]}
    monitor = probed["stats"]["finetune"]["monitor"]
    assert all(history[it] == mons[monitor][0] for it, mons in seen if it in history)


def _point(it, loss, val):
    return {"iter": it, "monitors": {"m": (loss, 0.0)}, "val_top1": val}


def test_simulated_early_stopping_follows_the_finetune_rule():
    curve = [_point(0, 1.0, 50), _point(5, 0.5, 60), _point(10, 0.7, 70), _point(15, 0.6, 80),
             _point(20, 0.4, 40)]
    assert simulate_early_stopping(curve, "m", patience=10, every=5) == {
        "stopped_at": 15, "restored_iter": 5, "val_top1": 60}
    assert simulate_early_stopping(curve, "m", patience=15, every=5)["restored_iter"] == 20


def test_cli_prints_curves_per_variant(capsys):
    rc = main(["finetune-study", "--dataset", "digits", "--arch", "demo_vgg", "--num", "20", "--method", "fskd",
               "--schedule", "demo", "--device", "cpu", "--variants", "ft-only", "full", "--val-per-class", "20",
               "--set", "finetune.max_iters=10", "--set", "finetune.patience=10", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["variant"] for r in out["results"]] == ["ft-only", "full"]
    for r in out["results"]:
        assert r["curve"][0]["iter"] == 0 and 0 <= r["val_best"]["val_top1"] <= 100
        assert set(r["early_stopping"]) == {"train_loss", "few_loss", "few_acc"}


def test_cli_rejects_a_variant_without_fine_tuning(capsys):
    rc = main(["finetune-study", "--dataset", "digits", "--arch", "demo_vgg", "--num", "20", "--method", "fskd",
               "--variants", "none"])
    assert rc != 0 and "no fine-tuning stage" in capsys.readouterr().err
