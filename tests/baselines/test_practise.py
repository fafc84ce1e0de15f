"""PRACTISE (baselines/practise.py): recoverability picks the free block, identity adaptors, adaptor-only
training, the VGG adaptation, the MAC target, and class-aware recoverability."""
import copy

import pytest
import torch

import baselines  # noqa: F401  (registers the methods)
from baselines.practise import (PRACTISE_PARAMS, Adaptors, _Cache, adaptor_sites, candidates, choose_k,
                                dropped_copy, macs_of, recoverability, tail_fn, train_adaptors)
from oefsmc.core.method import METHODS
from oefsmc.core.params import resolve
from oefsmc.core.stage_data import StageData
from oefsmc.core.taps import run_until
from oefsmc.models import build_model


def _teacher(arch="demo_resnet_s", seed=0, in_ch=1, hw=8):
    torch.manual_seed(seed)
    t = build_model(arch, 10, in_ch)
    t.train()
    with torch.no_grad():  # non-trivial BN running statistics
        for _ in range(3):
            t(torch.randn(64, in_ch, hw, hw))
    return t.eval()


def _data(n=48, n_aux=0, seed=1, lam=0.5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = torch.arange(n) % 10
    if n_aux:
        xa = torch.randn(n_aux, 1, 8, 8, generator=g) + 1.0
        return StageData(x, y, 10, xa, torch.arange(n_aux) % 10, lam=lam)
    return StageData(x, y, 10)


def _hp(**over):
    return resolve("practise", PRACTISE_PARAMS, "demo", {f"practise.{k}": str(v) for k, v in over.items()})


def _method(**over):
    return METHODS.get("practise")(_hp(**over), torch.device("cpu"), torch.Generator().manual_seed(0))


@pytest.mark.parametrize("free", ["layer2.1", "layer1.1", "layer3.1"])
def test_drops_the_block_that_costs_nothing(free):
    teacher = _teacher()
    blk = teacher.get_submodule(free)
    with torch.no_grad():  # residual branch outputs exactly 0: the block is relu(x) = x on a post-ReLU stream
        blk.bn2.weight.zero_()
        blk.bn2.bias.zero_()
    student = _method().build_student(teacher, _data())
    sel = student.scheme["selection"]
    assert student.dropped_blocks == [free] and sel["k"] == 1
    free_row = next(r for r in sel["candidates"] if r["unit"] == free)
    assert free_row["recoverability"] < 1e-6  # weight decay nudges the identity adaptors
    assert all(r["recoverability"] > 1e-4 for r in sel["candidates"] if r["unit"] != free)
    # the returned student keeps the teacher's weights and equals the teacher (the dropped block was a no-op)
    x = _data().few_x
    with torch.no_grad():
        assert torch.allclose(student.model(x), teacher(x), atol=1e-5)


def test_adaptors_are_identity_initialised_and_only_they_train():
    teacher = _teacher("demo_resnet_m")
    data = _data()
    unit = "layer2.1"
    model = dropped_copy(teacher, [unit]).eval()
    x = data.few_x
    with torch.no_grad():
        plain = model.forward_features(x)
    sites = adaptor_sites(teacher, unit)
    assert sites.after == ["layer2.0.conv2"] and sites.pre == ["layer2.2.conv1", "layer3.0.conv1"]
    for p in model.parameters():
        p.requires_grad_(False)
    adaptors = Adaptors(model, sites)
    with torch.no_grad():
        assert torch.equal(model.forward_features(x), plain)
        # the cached-stage tail reproduces the full forward
        h = _Cache(teacher, data).stage_input(sites.start)
        assert torch.allclose(tail_fn(model, sites.start)(h), plain, atol=1e-5)
    state = copy.deepcopy(model.state_dict())
    ad_before = [p.detach().clone() for p in adaptors.parameters()]
    cache = _Cache(teacher, data)
    before = recoverability(tail_fn(model, sites.start), cache.stage_input(sites.start), cache.feats, data)
    stats = train_adaptors(teacher, model, adaptors, sites.start, cache, data, _hp(adaptor_iters=20),
                           torch.Generator().manual_seed(0))
    after = recoverability(tail_fn(model, sites.start), cache.stage_input(sites.start), cache.feats, data)
    for k, v in model.state_dict().items():  # network weights AND BN running stats unchanged (eval mode)
        assert torch.equal(v, state[k]), k
    assert any(not torch.equal(a, b) for a, b in zip(adaptors.parameters(), ad_before))
    assert after < before and stats["loss_last"] < stats["loss_first"]
    adaptors.remove()
    with torch.no_grad():
        assert torch.equal(model.forward_features(x), plain)  # discarded, not absorbed


def test_vgg_adaptation_drops_only_equal_shape_layers():
    vgg16 = build_model("vgg16", 10, 3)
    names = vgg16.conv_names()
    assert candidates(vgg16) == [names[i - 1] for i in (2, 4, 6, 7, 9, 10, 12, 13)]
    demo = _teacher("demo_vgg")
    names = demo.conv_names()
    assert candidates(demo) == [names[1], names[3], names[5]]
    for unit in candidates(demo):
        conv = demo.get_submodule(unit)
        assert conv.in_channels == conv.out_channels
    student = _method(adaptor_iters=3).build_student(demo, _data())
    assert len(student.dropped_blocks) == 1
    (unit,) = student.dropped_blocks
    assert unit in candidates(demo) and unit not in student.model.conv_names()
    assert student.model.forward_features(_data().few_x).shape == demo.forward_features(_data().few_x).shape
    sites = adaptor_sites(demo, names[3])
    assert sites.after == [names[2]] and sites.pre == [names[4]]
    assert adaptor_sites(demo, names[5]).pre == []


def test_macs_reduction_hits_the_target():
    teacher = _teacher("demo_resnet_m")
    data = _data()
    student = _method(adaptor_iters=3).build_student(teacher, data)
    sel = student.scheme["selection"]
    assert sel["k"] == 2 and len(student.dropped_blocks) == 2
    assert abs(sel["macs_reduction"] - 22.0) < 3.0
    assert macs_of(student.model, data.few_x[:1]) < macs_of(teacher, data.few_x[:1])
    # ResNet-32 (12 candidates of ~equal cost, 6.8% each): k = 3 is closest to 22%
    r32 = build_model("resnet32", 10, 3).eval()
    ex = torch.randn(1, 3, 32, 32)
    base = macs_of(r32, ex)
    reds = [100.0 * (base - macs_of(dropped_copy(r32, [u]), ex)) / base for u in candidates(r32)]
    assert len(reds) == 12 and choose_k(sorted(reds), 22.0) == 3
    assert choose_k([10.0, 10.0, 10.0], 15.0) == 1  # tie -> smaller k


def test_recoverability_is_class_aware():
    teacher = _teacher()
    data = _data()
    model = dropped_copy(teacher, ["layer2.1"]).eval()
    cache = _Cache(teacher, data)
    tail, h = tail_fn(model, "layer2"), cache.stage_input("layer2")
    plain = recoverability(tail, h, cache.feats, data)
    with torch.no_grad():
        per = (tail(h) - cache.feats).pow(2).flatten(1).mean(1)
    assert plain == pytest.approx(float(per.mean()), rel=1e-5)
    w = torch.zeros(10)
    w[3] = 1.0
    data.class_weights = w  # all importance on class 3
    only3 = float(per[data.few_y == 3].mean())
    assert recoverability(tail, h, cache.feats, data) == pytest.approx(only3, rel=1e-5)


def test_compress_recovers_and_reports_selection():
    teacher = _teacher()
    data = _data(n_aux=32)
    m = _method(adaptor_iters=5, mir_iters=30)
    student = m.build_student(teacher, data)
    teacher_state = copy.deepcopy(teacher.state_dict())
    head = {n: p.detach().clone() for n, p in student.model.named_parameters() if n.startswith("linear.")}
    student, stats = m.compress(teacher, student, data)
    assert stats["selection"]["dropped"] == student.dropped_blocks
    rec = stats["recovery"]
    assert rec["iters"] == 30 and rec["loss_last"] < rec["loss_first"]
    assert all(torch.equal(p, head[n]) for n, p in student.model.named_parameters() if n in head)
    assert all(torch.equal(v, teacher_state[k]) for k, v in teacher.state_dict().items())


def test_torchvision_resnet_official_adaptor_positions():
    r34 = build_model("resnet34", 10, 3).eval()
    assert candidates(r34) == ["layer1.1", "layer1.2", "layer2.1", "layer2.2", "layer2.3", "layer3.1",
                               "layer3.2", "layer3.3", "layer3.4", "layer3.5", "layer4.1", "layer4.2"]
    s = adaptor_sites(r34, "layer2.2")
    assert s.after == ["layer2.0.downsample.0", "layer2.0.conv2", "layer2.1.conv2"]
    assert s.pre == ["layer2.3.conv1", "layer3.0.conv1", "layer3.0.downsample.0"]
    assert adaptor_sites(r34, "layer4.1").pre == ["layer4.2.conv1"]
    model = dropped_copy(r34, ["layer2.2"]).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        plain = model.forward_features(x)
        adaptors = Adaptors(model, s)
        h = run_until(r34, "layer2", x, inputs=True)["in"]
        assert torch.allclose(tail_fn(model, "layer2")(h), plain, atol=1e-5)
        assert torch.equal(model.forward_features(x), plain)
    adaptors.remove()
