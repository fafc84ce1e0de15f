"""CD (baselines/cd.py): loss terms, fast quadratic form, projection schedule, budgets, OE weighting, e2e."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from baselines.cd import (CD, QuadraticLoss, cd_loss_direct, cd_plan, combine_weights, group_norms,
                          pgd_solve)
from oefsmc.core.stage_data import StageData
from oefsmc.models import build_model
from conftest import randomize_bn







def _net(arch: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_bn(build_model(arch, 10, 1), seed)


def _data(n: int = 24, n_aux: int = 0, lam: float = 1.0, seed: int = 0, class_weights=None, ch: int = 1,
          hw: int = 8) -> StageData:
    g = torch.Generator().manual_seed(seed)
    aux_x = torch.randn(n_aux, ch, hw, hw, generator=g) * 1.5 + 0.3 if n_aux else None
    aux_y = torch.randint(0, 10, (n_aux,), generator=g) if n_aux else None
    return StageData(torch.randn(n, ch, hw, hw, generator=g), torch.randint(0, 10, (n,), generator=g), 10,
                     aux_x, aux_y, lam, class_weights)


def _method(**hp) -> CD:
    params = {k: p.value_for("demo") for k, p in CD.params.items()}
    params.update(hp)
    return CD(params, torch.device("cpu"), torch.Generator().manual_seed(0))


def _layer(seed=0, c_in=6, c_out=5, stride=1):
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
    w_t = torch.randn(c_out, c_in, 3, 3, generator=g)
    w_s = w_t + 0.3 * torch.randn(c_out, c_in, 3, 3, generator=g)
    return conv, w_s, w_t, g


# ----------------------------------------------------------------------------- loss


def test_loss_terms_and_mu():
    conv, w_s, w_t, g = _layer()
    data = _data(7, ch=6, hw=5)
    xs, xt = [torch.randn(7, 6, 5, 5, generator=g)], [torch.randn(7, 6, 5, 5, generator=g)]
    lab = [data.few_y]
    l1, lc, li = cd_loss_direct(conv, w_s, w_t, 1.0, xs, xt, data, lab)
    l0, _, _ = cd_loss_direct(conv, w_s, w_t, 0.0, xs, xt, data, lab)
    # the official formulas, written out
    f = lambda w, x: nn.functional.conv2d(x, w, padding=1)  # noqa: E731
    n_elem = 7 * 5 * 5 * 5
    torch.testing.assert_close(lc, ((f(w_s, xt[0]) - f(w_t, xt[0])) ** 2).sum() / n_elem)
    torch.testing.assert_close(li, ((f(w_t, xs[0]) - f(w_s, xs[0])) ** 2).sum() / n_elem)
    torch.testing.assert_close(l1, lc)
    torch.testing.assert_close(l0, li)
    assert abs(float(lc - li)) > 1e-3
    # X_S == X_T: both cross terms coincide, every mu gives the same loss
    vals = [cd_loss_direct(conv, w_s, w_t, mu, xt, xt, data, lab)[0] for mu in (0.0, 0.3, 0.9, 1.0)]
    for v in vals[1:]:
        torch.testing.assert_close(v, vals[0])


@pytest.mark.parametrize("form", ["gram", "rows"])
@pytest.mark.parametrize("stride", [1, 2])
def test_quadratic_form_equals_direct_loss_and_autograd(form, stride):
    conv, w_s, w_t, g = _layer(1, stride=stride)
    conv.stride = (stride, stride)
    cw = torch.tensor([0.4, 0.05, 0.05, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05])
    data = _data(9, n_aux=5, lam=0.35, class_weights=cw, ch=6, hw=6)
    xs = [torch.randn(9, 6, 6, 6, generator=g), torch.randn(5, 6, 6, 6, generator=g)]
    xt = [torch.randn(9, 6, 6, 6, generator=g), torch.randn(5, 6, 6, 6, generator=g)]
    w_few, w_aux = combine_weights(data, data.few_y, data.aux_y)
    mu = 0.7
    quad = QuadraticLoss(conv, xs, xt, [w_few, w_aux], mu, images_per_batch=4, form=form)
    assert quad.form == form
    w = w_s.clone().requires_grad_(True)
    ref, lc, li = cd_loss_direct(conv, w, w_t, mu, xs, xt, data, [data.few_y, data.aux_y])
    ref.backward()
    d = (w_s - w_t).reshape(5, -1)
    val, grad = quad.loss_and_grad(d)
    torch.testing.assert_close(val, ref.detach(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grad.reshape_as(w_s), w.grad, rtol=1e-4, atol=1e-6)
    qc, qi = quad.parts(d)
    assert qc == pytest.approx(float(lc.detach()), rel=1e-4) and qi == pytest.approx(float(li.detach()), rel=1e-4)


def test_aux_loss_uses_lambda():
    conv, w_s, w_t, g = _layer(2)
    xs = [torch.randn(8, 6, 5, 5, generator=g), 2 * torch.randn(6, 6, 5, 5, generator=g)]
    xt = [torch.randn(8, 6, 5, 5, generator=g), torch.randn(6, 6, 5, 5, generator=g)]
    d = (w_s - w_t).reshape(5, -1)
    values = []
    for lam in (0.2, 0.8):
        data = _data(8, n_aux=6, lam=lam, ch=6, hw=5)
        w_few, w_aux = combine_weights(data, data.few_y, data.aux_y)
        assert float(w_few.sum()) == pytest.approx(lam) and float(w_aux.sum()) == pytest.approx(1 - lam)
        quad = QuadraticLoss(conv, xs, xt, [w_few, w_aux], 0.6)
        val = float(quad.loss_and_grad(d)[0])
        ref = float(cd_loss_direct(conv, w_s, w_t, 0.6, xs, xt, data, [data.few_y, data.aux_y])[0])
        assert val == pytest.approx(ref, rel=1e-4)
        values.append(val)
    assert abs(values[0] - values[1]) > 0.05 * max(values)


# ----------------------------------------------------------------------------- projection


def test_projection_schedule_keeps_exactly_budget_and_zeros_stay_zero():
    conv, _, w_t, g = _layer(3, c_in=12, c_out=6)
    data = _data(10, ch=12, hw=5)
    xs, xt = [torch.randn(10, 12, 5, 5, generator=g)], [torch.randn(10, 12, 5, 5, generator=g)]
    quad = QuadraticLoss(conv, xs, xt, [combine_weights(data, data.few_y, None)[0]], 0.6)
    iters, budget = 30, 5
    w, info = pgd_solve(w_t, quad, budget, iters, 1e-2, trace=True)
    trace = info["trace"]
    for i, kept in enumerate(trace):
        if i <= iters // 3:
            expect = int((12 - budget) * float((iters / 3 - i) / (iters / 3))) + budget
            assert len(kept) == expect
        else:
            assert len(kept) == budget
        if i:
            assert set(kept) <= set(trace[i - 1])  # a zeroed group never comes back
    assert info["kept"].tolist() == trace[-1]
    nz = torch.nonzero(group_norms(w) > 0).flatten().tolist()
    assert nz == trace[-1] and len(nz) == budget
    # the surviving groups were refitted (moved away from the teacher) and the loss went down after T/3
    assert not torch.allclose(w[:, nz], w_t[:, nz])
    assert info["history"][-1]["loss"] <= info["history"][1]["loss"] + 1e-9


def test_unpruned_layer_refit_is_a_no_op():
    """Why compress() skips layers whose budget equals C_in: the official Adam run never moves them."""
    conv, _, w_t, g = _layer(5)
    data = _data(6, ch=6, hw=5)
    xs, xt = [torch.randn(6, 6, 5, 5, generator=g)], [torch.randn(6, 6, 5, 5, generator=g)]
    quad = QuadraticLoss(conv, xs, xt, [combine_weights(data, data.few_y, None)[0]], 0.6)
    w, info = pgd_solve(w_t, quad, 6, 30, 1e-2)
    assert torch.equal(w, w_t) and info["final_loss"] == 0.0


def test_fixed_mask_never_changes_support():
    conv, _, w_t, g = _layer(4, c_in=8, c_out=4)
    data = _data(6, ch=8, hw=5)
    xs, xt = [torch.randn(6, 8, 5, 5, generator=g)], [torch.randn(6, 8, 5, 5, generator=g)]
    quad = QuadraticLoss(conv, xs, xt, [combine_weights(data, data.few_y, None)[0]], 0.9)
    keep = torch.tensor([1, 4, 6])
    w, info = pgd_solve(w_t, quad, 3, 30, 1e-2, fixed_keep=keep, trace=True)
    assert all(k == keep.tolist() for k in info["trace"])
    assert info["kept"].tolist() == keep.tolist()


# ----------------------------------------------------------------------------- budgets


def _official_resnet56_cfg(model, ratio):
    """chnl_learner.__get_cfgs for resnet_56, transcribed: in-channel budget per conv in module order."""
    cfg, layer_id = [], 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            c = m.in_channels
            if layer_id % 2 == 0 and layer_id not in [0, 16, 20, 38, 54]:
                cfg.append(int(ratio * c) + 1)
            else:
                cfg.append(c)
            layer_id += 1
    return cfg


def test_budgets_match_official_rules():
    r56 = build_model("resnet56", 10)
    plan = cd_plan(r56, 0.5)
    official = _official_resnet56_cfg(r56, 0.5)
    convs = [n for n, m in r56.named_modules() if isinstance(m, nn.Conv2d)]
    assert plan.aligned == convs[1:]
    assert [plan.budgets[n] for n in convs[1:]] == official[1:]
    vgg = build_model("vgg16", 10)
    plan = cd_plan(vgg, 0.5)
    assert [plan.budgets[n] for n in plan.aligned] == [32, 32, 64, 64, 128, 128, 128, 256, 256, 256, 256, 256]
    r34 = build_model("resnet34", 1000)
    plan = cd_plan(r34, 0.5)
    pruned = plan.pruned(r34)
    assert pruned == [f"{b}.conv2" for b in ("layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0",
                                              "layer3.1", "layer3.2", "layer3.3")]
    assert [plan.budgets[n] for n in pruned] == [32, 32, 64, 64, 128, 128, 128, 128]
    r32 = build_model("resnet32", 10)
    assert cd_plan(r32, 0.5).pruned(r32) == [f"layer{s}.{i}.conv2" for s, i in
                                             [(1, 0), (1, 1), (1, 2), (1, 4), (2, 1), (2, 2), (2, 3), (2, 4),
                                              (3, 1), (3, 2), (3, 3)]]


# ----------------------------------------------------------------------------- end to end


def _widths(model):
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


@pytest.mark.parametrize("arch", ["demo_vgg", "demo_resnet_s", "demo_resnet_m"])
def test_end_to_end_physically_pruned_with_budget(arch):
    teacher = _net(arch, 6)
    before = copy.deepcopy(teacher.state_dict())
    data = _data(40, n_aux=20, lam=0.5, seed=2)
    method = _method()
    student = method.build_student(teacher, data)
    out, stats = method.compress(teacher, student, data)
    for k, v in teacher.state_dict().items():  # the shared teacher is never mutated
        assert torch.equal(v, before[k]), k
    plan = cd_plan(teacher, 0.5)
    widths, t_widths = _widths(out.model), _widths(teacher)
    assert set(out.kept) == {plan.producers[n] for n in plan.pruned(teacher)}
    for name in plan.pruned(teacher):
        prod = plan.producers[name]
        assert widths[prod] == plan.budgets[name] == len(out.kept[prod]) < t_widths[prod]
        assert out.model.get_submodule(name).in_channels == plan.budgets[name]
    assert widths == _widths(student.model)  # same budgets as the L1 student
    assert stats["physical_prune_max_logit_change"] < 1e-4  # Stage B removal is exact
    assert stats["stage_c"]["steps"] == (10 if arch == "demo_vgg" else 20)
    assert [r["layer"] for r in stats["layers"]] == plan.pruned(teacher)  # the others are exact no-ops
    assert stats["unchanged_layers"] == [n for n in plan.aligned if n not in plan.pruned(teacher)]
    with torch.no_grad():
        assert out.model(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    assert stats["bn_mode_stage_a"] == ("train" if arch == "demo_vgg" else "eval")


def test_fixed_l1_keeps_l1_channels_and_cd_selection_differs():
    teacher = _net("demo_resnet_m", 7)
    data = _data(40, seed=3)
    student = _method().build_student(teacher, data)
    fixed, _ = _method(selection="fixed-l1").compress(teacher, student, data)
    assert set(fixed.kept) == set(student.kept)
    for k in student.kept:
        assert torch.equal(fixed.kept[k], student.kept[k])
    cd, _ = _method().compress(teacher, student, data)
    assert any(not torch.equal(cd.kept[k], student.kept[k]) for k in student.kept)
