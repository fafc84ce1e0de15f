"""FSKD (baselines/fskd.py): exact merge, planted-Q recovery, OE-weighted least squares, L1 students."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from baselines.fskd import FSKD, conv_stream, fskd_aligned_convs, fskd_sweep, merge_q
from oefsmc.core.stage_data import StageData
from oefsmc.core.student import Student
from oefsmc.core.taps import run_until
from oefsmc.models import build_model
from conftest import randomize_bn







def _net(arch: str, seed: int = 0, in_ch: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_bn(build_model(arch, 10, in_ch), seed)


def _data(n: int = 24, n_aux: int = 0, lam: float = 1.0, seed: int = 0, hw: int = 8, ch: int = 1) -> StageData:
    g = torch.Generator().manual_seed(seed)
    aux_x = torch.randn(n_aux, ch, hw, hw, generator=g) * 1.5 + 0.3 if n_aux else None
    aux_y = torch.randint(0, 10, (n_aux,), generator=g) if n_aux else None
    return StageData(torch.randn(n, ch, hw, hw, generator=g), torch.randint(0, 10, (n,), generator=g), 10,
                     aux_x, aux_y, lam)


def _method(**hp) -> FSKD:
    params = {k: p.default for k, p in FSKD.params.items()}
    params.update(hp)
    return FSKD(params, torch.device("cpu"), torch.Generator().manual_seed(0))


@pytest.mark.parametrize("arch,shape", [("demo_vgg", (3, 1, 8, 8)), ("demo_resnet_s", (3, 1, 8, 8)),
                                        ("resnet34", (2, 3, 64, 64))])
def test_conv_stream_equals_forward(arch, shape):
    in_ch = shape[1]
    model = _net(arch, 1, in_ch)
    x = torch.randn(*shape)
    names = []
    with torch.no_grad():
        for name, inp in conv_stream(model, x):
            if name is None:
                out = inp
            else:
                names.append(name)
        ref = model.forward_features(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    assert names == convs


def test_merge_is_exact():
    torch.manual_seed(0)
    conv = nn.Conv2d(5, 7, 3, padding=1, bias=False)
    bn = randomize_bn(nn.Sequential(nn.BatchNorm2d(7)), 3)
    q = torch.randn(7, 7)
    qconv = nn.Conv2d(7, 7, 1, bias=False)
    with torch.no_grad():
        qconv.weight.copy_(q[:, :, None, None])
    explicit = nn.Sequential(copy.deepcopy(conv), qconv, copy.deepcopy(bn)).eval()
    merge_q(conv, q)
    merged = nn.Sequential(conv, copy.deepcopy(bn)).eval()
    x = torch.randn(4, 5, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(merged(x), explicit(x), rtol=1e-5, atol=1e-5)


def test_solve_recovers_planted_q():
    student_net = _net("demo_vgg", 2, in_ch=3)  # 3 input channels: every layer's A has full rank
    teacher = copy.deepcopy(student_net)
    planted = "features.7"  # third conv (16 -> 32 channels)
    g = torch.Generator().manual_seed(5)
    c = teacher.get_submodule(planted).out_channels
    q_true = torch.eye(c) + 0.3 * torch.randn(c, c, generator=g) / c ** 0.5
    merge_q(teacher.get_submodule(planted), q_true)
    data = _data(30, ch=3)
    model = copy.deepcopy(student_net)
    qs, layers, _ = fskd_sweep(model, teacher, [data.few_x], [1 / 30], fskd_aligned_convs(model), {})
    assert set(qs) == set(teacher.conv_names())
    torch.testing.assert_close(qs[planted], q_true.double(), atol=1e-4, rtol=0)
    for name, q in qs.items():
        if name != planted:
            torch.testing.assert_close(q, torch.eye(q.shape[0], dtype=q.dtype), atol=1e-4, rtol=0)
    by_name = {r["layer"]: r for r in layers}
    assert by_name[planted]["mse_before"] > 1e-3 and by_name[planted]["mse_after"] < 1e-8


def _reference_q(teacher, student, fitted, data, lam, name):
    """Weighted least squares of layer ``name``, solved directly on sqrt-weighted rows with lstsq.

    The student's input to ``name`` is taken from the fitted model (its earlier layers are the corrected
    ones the sweep used); the feature is the conv with the *unfitted* weights of ``student``.
    """
    conv_s, conv_t = student.model.get_submodule(name), teacher.get_submodule(name)
    kept = student.kept.get(name)
    rows = lambda z: z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).double()  # noqa: E731
    ys, ts, ws = [], [], []
    for x, w in ((data.few_x, lam / data.num_few), (data.aux_x, (1 - lam) / data.num_aux)):
        with torch.no_grad():
            y = conv_s(run_until(fitted, name, x, inputs=True)["in"])
            t = conv_t(run_until(teacher, name, x, inputs=True)["in"])
        t = t if kept is None else t[:, kept]
        ys.append(rows(y))
        ts.append(rows(t))
        ws.append(torch.full((ys[-1].shape[0],), w / (y.shape[2] * y.shape[3]), dtype=torch.float64))
    y, t, w = torch.cat(ys), torch.cat(ts), torch.cat(ws).sqrt()[:, None]
    q_t = torch.linalg.lstsq(w * y, w * t).solution  # (w Y) Q^T = w T
    return q_t.T, conv_s.weight.detach().double()


@pytest.mark.parametrize("name", ["features.3", "features.10"])
def test_weighted_least_squares_uses_lambda(name):
    teacher = _net("demo_vgg", 3, in_ch=3)
    method = _method(batch_size=7)
    merged = {}
    for lam in (0.8, 0.2):
        data = _data(20, n_aux=12, lam=lam, seed=4, ch=3)
        student = method.build_student(teacher, data)
        out, stats = method.compress(teacher, student, data)
        q_ref, w0 = _reference_q(teacher, student, out.model, data, lam, name)
        w_new = out.model.get_submodule(name).weight.detach().double()
        expect = (q_ref @ w0.reshape(w0.shape[0], -1)).reshape_as(w0)
        torch.testing.assert_close(w_new, expect, atol=1e-5, rtol=1e-4)
        merged[lam] = w_new
    assert (merged[0.8] - merged[0.2]).abs().max() > 1e-3  # lambda is not ignored


@pytest.mark.parametrize("arch", ["demo_vgg", "demo_resnet_s"])
def test_pruning_keeps_top_l1_and_ratio0_reproduces_teacher(arch):
    teacher = _net(arch, 4)
    data = _data(16)
    method = _method()
    student = method.build_student(teacher, data)
    assert student.kept
    for name, idx in student.kept.items():
        w = teacher.get_submodule(name).weight.detach()
        norms = w.abs().flatten(1).sum(1)
        expect = torch.sort(torch.argsort(norms, descending=True)[: w.shape[0] - w.shape[0] // 2]).values
        assert torch.equal(idx.cpu(), expect)
        torch.testing.assert_close(student.model.get_submodule(name).weight.detach().shape[0], len(expect))
    # a ratio-0 student (no pruning) is left unchanged: FSKD reproduces the teacher
    full = Student(copy.deepcopy(teacher), {})
    out, stats = method.compress(teacher, full, data)
    x = torch.randn(10, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(out.model(x), teacher(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", ["demo_vgg", "demo_resnet_s", "demo_resnet_m"])
def test_fskd_improves_pruned_student(arch):
    teacher = _net(arch, 5)
    data = _data(64, seed=1)
    method = _method(batch_size=20)  # several accumulation batches
    student = method.build_student(teacher, data)
    out, stats = method.compress(teacher, student, data)
    assert len(stats["layers"]) == len(fskd_aligned_convs(teacher))
    x = torch.randn(200, 1, 8, 8, generator=torch.Generator().manual_seed(9))  # held-out inputs
    with torch.no_grad():
        f_t, f_before, f_after = (m.forward_features(x) for m in (teacher, student.model, out.model))
        l_t, l_before, l_after = (m(x) for m in (teacher, student.model, out.model))
    if arch == "demo_vgg":  # the last conv is pruned: compare on the kept teacher channels
        f_t = f_t[:, student.kept[teacher.conv_names()[-1]]]
    assert (f_after - f_t).pow(2).mean() < 0.7 * (f_before - f_t).pow(2).mean()
    assert (l_after - l_t).pow(2).mean() < (l_before - l_t).pow(2).mean()
    assert all(r["mse_after"] <= r["mse_before"] + 1e-12 for r in stats["layers"])
    # physically the same size as the pruned student (the Q's are merged)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(out.model) == n(student.model) < n(teacher)
