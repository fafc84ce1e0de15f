"""End-to-end checks of the OE-FSMC add-on through the pipeline on the embedded demo (CPU, seconds)."""
import json

import numpy as np
import pytest
import torch

import baselines  # noqa: F401  (registers the methods this module spies on)
from oefsmc import pipeline
from oefsmc.core import finetune as ft
from oefsmc.core.method import METHODS
from oefsmc.errors import UserError
from oefsmc.pipeline import resolve_config, run_config

BASE = {"dataset": "digits", "arch": "demo_vgg", "num": 50, "balanced": False, "imbalance_ratio": 100.0,
        "seed": 0, "schedule": "demo", "device": "cpu"}




def cell(**kw):
    return {**BASE, **kw}


def quick(**over):
    """Overrides that keep a cell to a fraction of a second."""
    return {"finetune.max_iters": "10", "finetune.patience": "10", **over}


@pytest.mark.parametrize("method", ["cd", "fskd", "mir", "practise"])
@pytest.mark.parametrize("variant", ["none", "full", "no-comp", "no-ft", "ft-only"])
def test_every_variant_runs_for_every_method(method, variant):
    arch = "demo_resnet_s" if method == "practise" else "demo_vgg"
    over = quick() if variant != "none" else {}
    rec = run_config(resolve_config(cell(method=method, oe=variant, arch=arch, num=20, overrides=over)))
    json.dumps(rec, allow_nan=False)
    m = rec["metrics"]
    assert 0 <= m["top1"] <= 100 and len(m["per_class"]) == 10
    assert set(rec["timings"]) >= {"prune_s", "compress_s", "finetune_s", "eval_s"}
    if variant in ("full", "no-comp", "no-ft"):
        assert rec["oe"]["aux_size"] == 20 and sum(rec["oe"]["aux_label_histogram"]) == 20
    else:
        assert rec["oe"] is None
    assert (rec["stats"]["finetune"] is None) == (variant == "none")


def test_run_record_has_oe_settings_histogram_and_losses():
    rec = run_config(resolve_config(cell(method="mir", oe="full", overrides=quick())))
    oe = rec["oe"]
    assert oe["settings"]["lambda"] == 0.5 and oe["settings"]["eta"] == 2.5 and oe["settings"]["labels"] == "fixed"
    assert oe["settings"]["class_weights"] == "rebalanced" and len(oe["importance_class_weights"]) == 10
    assert np.isclose(sum(oe["ood_label_distribution"]), 1.0)
    assert rec["stats"]["compress"]["loss_first"] > 0
    assert rec["stats"]["finetune"]["history"] and "ood" in rec["stats"]["finetune"]["history"][0]
    # Gamma follows Eq. 4 for the drawn class counts
    counts = np.array(rec["config"]["class_counts"], float)
    beta = counts / counts.sum()
    alpha = beta.max() + beta.min()
    assert np.allclose(oe["ood_label_distribution"], (alpha - beta) / (10 * alpha - 1))


@pytest.mark.slow
def test_sets_do_not_depend_on_method_or_variant():
    recs = [run_config(resolve_config(cell(method=m, oe=v, overrides=quick(), arch=a)))
            for m, v, a in [("fskd", "full", "demo_vgg"), ("mir", "no-comp", "demo_vgg"),
                            ("cd", "no-ft", "demo_vgg"), ("practise", "full", "demo_resnet_s")]]
    few = {r["fewshot"]["indices_sha256"] for r in recs}
    aux = {r["oe"]["aux_labels_sha256"] + r["oe"]["pool_indices_sha256"] for r in recs}
    assert len(few) == 1 and len(aux) == 1
    base = run_config(resolve_config(cell(method="cd", oe="none")))
    assert base["fewshot"]["indices_sha256"] in few


def _capture_stage_data(monkeypatch):
    """Record the StageData each stage sees (compression: via the method; fine-tuning: via finetune())."""
    seen = {}
    monkeypatch.setenv("OEFSMC_COMPRESSED_CACHE", "0")  # the compression must run to be seen
    cls = METHODS.get("fskd")
    original = cls.compress

    def spy_compress(self, teacher, student, data):
        seen["compress"] = data
        return original(self, teacher, student, data)
    monkeypatch.setattr(cls, "compress", spy_compress)
    original_ft = ft.finetune

    def spy_ft(model, data, loss_fn, hp, generator, aux_labels_fn=None, *args, **kwargs):
        seen["finetune"] = (data, loss_fn, aux_labels_fn)
        return original_ft(model, data, loss_fn, hp, generator, aux_labels_fn, *args, **kwargs)
    monkeypatch.setattr(pipeline.ft, "finetune", spy_ft)
    return seen


def test_fixed_labels_are_the_same_in_both_stages(monkeypatch):
    seen = _capture_stage_data(monkeypatch)
    run_config(resolve_config(cell(method="fskd", oe="full", overrides=quick())))
    comp, (fine, _loss, labels_fn) = seen["compress"], seen["finetune"]
    assert labels_fn is None, "fixed mode must reuse the assigned labels"
    assert torch.equal(comp.aux_y, fine.aux_y) and torch.equal(comp.aux_x, fine.aux_x)


def test_per_batch_mode_redraws(monkeypatch):
    seen = _capture_stage_data(monkeypatch)
    run_config(resolve_config(cell(method="fskd", oe="full", overrides=quick(**{"oe.labels": "per-batch"}))))
    _data, _loss, labels_fn = seen["finetune"]
    idx = torch.arange(50)
    assert labels_fn is not None and not torch.equal(labels_fn(idx), labels_fn(idx))


def test_lambda_reaches_compression_and_eta_reaches_finetuning(monkeypatch):
    seen = _capture_stage_data(monkeypatch)
    run_config(resolve_config(cell(method="fskd", oe="full", overrides=quick(**{"oe.lambda": "0.2",
                                                                                 "oe.eta": "4.0"}))))
    assert seen["compress"].lam == pytest.approx(0.2)
    data, loss_fn, _ = seen["finetune"]
    logits_few, logits_aux = torch.randn(5, 10), torch.randn(7, 10)
    y_few, y_aux = torch.randint(0, 10, (5,)), torch.randint(0, 10, (7,))
    total, parts = loss_fn(logits_few, y_few, logits_aux, y_aux)
    assert total.item() == pytest.approx((parts["ce"] + 4.0 * parts["ood"]).item(), rel=1e-6)


def test_eta_changes_the_result():
    a = run_config(resolve_config(cell(method="fskd", oe="no-comp", overrides=quick(**{"oe.eta": "0.1"}))))
    b = run_config(resolve_config(cell(method="fskd", oe="no-comp", overrides=quick(**{"oe.eta": "5"}))))
    # the OOD term's weight changes the fine-tuning loss it reports at the first evaluation (no wall-clock values)
    loss_a = [(h["iter"], h["ood"], h["monitor"]) for h in a["stats"]["finetune"]["history"]]
    loss_b = [(h["iter"], h["ood"], h["monitor"]) for h in b["stats"]["finetune"]["history"]]
    assert loss_a and loss_b and loss_a != loss_b


def test_lambda_changes_the_result():
    a = run_config(resolve_config(cell(method="mir", oe="no-ft", overrides=quick(**{"oe.lambda": "0.0"}))))
    b = run_config(resolve_config(cell(method="mir", oe="no-ft", overrides=quick(**{"oe.lambda": "1.0"}))))
    assert a["stats"]["compress"]["loss_last"] != b["stats"]["compress"]["loss_last"]


def test_variant_without_ood_rejects_oe_overrides():
    with pytest.raises(UserError, match="uses no OOD"):
        resolve_config(cell(method="mir", oe="none", overrides={"oe.lambda": "0.2"}))
    with pytest.raises(UserError, match="unknown parameter"):
        resolve_config(cell(method="mir", oe="full", overrides={"oe.lamda": "0.2"}))


def test_default_valued_override_resolves_like_no_override():
    a = resolve_config(cell(method="mir", oe="full"))
    b = resolve_config(cell(method="mir", oe="full", overrides={"oe.lambda": "0.5"}))
    assert a["hp"] == b["hp"]


def test_baseline_row_is_compress_alone():
    rec = run_config(resolve_config(cell(method="mir", oe="none")))
    assert rec["timings"]["finetune_s"] == 0.0 and rec["metrics"]["top1"] == rec["metrics"]["top1_compressed"]
