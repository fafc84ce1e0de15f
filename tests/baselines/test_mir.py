"""MiR (baselines/mir.py): frozen head, decreasing loss, Eq. 7 mixing, BN modes, teacher untouched."""
import copy

import pytest
import torch

import baselines  # noqa: F401  (registers the methods)
from baselines.mir import MIR_PARAMS, feature_channels, mimic, mir_hp
from oefsmc.core.losses import feature_mse_per_sample
from oefsmc.core.method import METHODS
from oefsmc.core.params import resolve
from oefsmc.core.stage_data import StageData
from oefsmc.models import build_model


def _teacher(arch="demo_resnet_s", seed=0):
    torch.manual_seed(seed)
    t = build_model(arch, 10, 1)
    t.train()
    with torch.no_grad():  # non-trivial BN running statistics
        for _ in range(3):
            t(torch.randn(128, 1, 8, 8))
    return t.eval()


def _data(n=40, n_aux=0, lam=1.0, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    if n_aux:
        xa = torch.randn(n_aux, 1, 8, 8, generator=g) * 2.0 + 0.5  # a different ("OOD") distribution
        ya = torch.randint(0, 10, (n_aux,), generator=g)
        return StageData(x, y, 10, xa, ya, lam=lam)
    return StageData(x, y, 10)


def _method(**over):
    hp = resolve("mir", MIR_PARAMS, "demo", {f"mir.{k}": str(v) for k, v in over.items()})
    return METHODS.get("mir")(hp, torch.device("cpu"), torch.Generator().manual_seed(0))


@pytest.mark.parametrize("arch", ["demo_resnet_s", "demo_vgg"])
def test_head_bit_identical_and_loss_decreases(arch):
    teacher = _teacher(arch)
    data = _data()
    m = _method(iters=40)
    student = m.build_student(teacher, data)
    head_before = {n: p.detach().clone() for n, p in student.model.named_parameters()
                   if n.startswith(tuple(student.model.head_names()))}
    body_before = {n: p.detach().clone() for n, p in student.model.named_parameters() if n not in head_before}
    student, stats = m.compress(teacher, student, data)
    params = dict(student.model.named_parameters())
    assert head_before and all(torch.equal(params[n], v) for n, v in head_before.items())
    assert any(not torch.equal(params[n], v) for n, v in body_before.items())
    assert stats["loss_last"] < 0.7 * stats["loss_first"]
    assert stats["iters"] == 40 and stats["lr_step_iters"] == 16
    assert stats["lr_final"] == pytest.approx(0.02 * 0.01)  # drops at 40% and 80%


def test_vgg_mimics_kept_channels_of_pruned_last_conv():
    teacher = _teacher("demo_vgg")
    student = _method().build_student(teacher, _data())
    ch = feature_channels(teacher, student)
    assert ch is not None and len(ch) == 32  # pruned-A halves the last conv (64 -> 32)
    assert torch.equal(ch, student.kept[teacher.conv_names()[-1]])
    assert not torch.equal(ch, torch.arange(32))  # an L1 choice, so which channels matters below

    data = _data()
    probe = copy.deepcopy(student.model).train()
    with torch.no_grad():  # the 40 images fit in one batch
        s = probe.forward_features(data.few_x)
        t = teacher.forward_features(data.few_x)
    expected = feature_mse_per_sample(s, t[:, ch]).mean()
    stats = mimic(teacher, student.model, data, mir_hp(dict(_method().hp, iters=1)),
                  torch.Generator().manual_seed(0), channels=ch)
    assert stats["loss_first"] == pytest.approx(float(expected), rel=1e-4)
    assert abs(float(expected) - float(feature_mse_per_sample(s, t[:, :32]).mean())) > 1e-3


def test_combined_loss_is_lambda_mixture_and_lambda_acts():
    teacher = _teacher()
    lam = 0.3
    data = _data(n=20, n_aux=30, lam=lam)
    m = _method()
    student = m.build_student(teacher, data)
    probe = copy.deepcopy(student.model).train()
    with torch.no_grad():  # both sets fit in one batch: one joint forward over all of them, any order
        s = probe.forward_features(torch.cat([data.few_x, data.aux_x]))
        t = teacher.forward_features(torch.cat([data.few_x, data.aux_x]))
    per = feature_mse_per_sample(s, t)
    expected = lam * per[:20].mean() + (1 - lam) * per[20:].mean()
    stats = mimic(teacher, student.model, data, mir_hp(dict(m.hp, iters=1)), torch.Generator().manual_seed(0))
    assert stats["loss_first"] == pytest.approx(float(expected), rel=1e-4)
    assert abs(float(expected) - float(per.mean())) > 1e-3  # the mixture is not the plain mean here

    results = []
    for lam_ in (0.1, 0.9):
        d = _data(n=20, n_aux=30, lam=lam_)
        mm = _method(iters=10)
        st = mm.build_student(teacher, d)
        mm.compress(teacher, st, d)
        results.append(torch.cat([p.detach().flatten() for p in st.model.parameters()]))
    assert not torch.allclose(results[0], results[1])


def test_student_bn_updated_teacher_untouched():
    teacher = _teacher()
    teacher_state = copy.deepcopy(teacher.state_dict())
    data = _data()
    m = _method(iters=5)
    student = m.build_student(teacher, data)
    rm_before = student.model.layer1[0].bn1.running_mean.clone()
    m.compress(teacher, student, data)
    assert not torch.equal(rm_before, student.model.layer1[0].bn1.running_mean)  # train-mode BN
    assert not teacher.training
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, teacher_state[k]), k


def test_augmentation_path_runs_and_is_seeded():
    teacher = _teacher()
    data = _data()
    outs = []
    for _ in range(2):
        m = _method(iters=5, augment="true", pad=1)
        st = m.build_student(teacher, data)
        stats = m.compress(teacher, st, data)[1]
        assert stats["augment"] and not stats["teacher_features_cached"]
        outs.append(stats["loss_last"])
    assert outs[0] == outs[1]
