"""The protocol study (benchmark/protocol_study.py): its run plan, monitor simulation, resumability, summary."""
from __future__ import annotations

import json

import pytest

from benchmark.cli import main
from benchmark.protocol_study import PHASE1, MonitorSimulator, protocol_id, protocols


def test_phase1_grid_is_bn_x_optimizer_x_params():
    grid = protocols(PHASE1)
    assert len(grid) == 3 * 2 * 2 and len({protocol_id(p) for p in grid}) == 12


def test_simulator_stops_once_every_rule_has_stopped():
    sim = MonitorSimulator(patience=10, every=5)
    flat = {"few_loss": (1.0, 0.0), "train_loss": (2.0, 0.0), "few_acc": (-0.5, 1.0)}
    assert not sim.update(0, flat)
    assert not sim.update(5, flat)
    assert sim.update(10, flat)  # no improvement for 10 iterations under every rule
    curve = [{"iter": i, "val_top1": 50.0 + i, "val_tail": 0.0} for i in (0, 5, 10)]
    out = sim.outcome(curve)
    assert out["few_loss@0.01"] == {"stopped_at": 10, "restored_iter": 0, "val_top1": 50.0, "val_tail": 0.0}


@pytest.mark.slow
def test_study_runs_resumes_and_summarizes(tmp_path, capsys):
    args = ["protocol-study", "--profile", "demo", "--methods", "fskd", "--nums", "10", "--seeds", "0",
            "--limit", "2", "--val-per-class", "10", "--max-iters", "20", "--out-dir", str(tmp_path)]
    assert main(args) == 0
    runs = sorted(p for p in tmp_path.glob("*.json") if not p.name.startswith("summary"))
    assert len(runs) == 2
    run = json.loads(runs[0].read_text())
    assert run["curve"][0]["iter"] == 0 and "few_loss@0.01" in run["outcomes"]
    assert "test" not in json.dumps(run["outcomes"])  # scored on the validation split only
    capsys.readouterr()
    assert main(args + ["--json"]) == 0  # resumable: the two runs are skipped, two more are done
    assert len([p for p in tmp_path.glob("*.json") if not p.name.startswith("summary")]) == 4
    summary = (tmp_path / "summary.md").read_text()
    assert "never the test set" in summary and "bn=train,optimizer=sgd,params=all" in summary
