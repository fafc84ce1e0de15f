"""The paper's axes (``oefsmc.axes``): the registries agree with them, unknown names never crash, and the
renderers read them without torch."""
from __future__ import annotations

import subprocess
import sys

import pytest

import baselines  # noqa: F401  (registers the methods)
from oefsmc import axes
from oefsmc.core.method import METHODS
from oefsmc.oe.variants import VARIANTS


@pytest.mark.parametrize("name", METHODS.names())
def test_registered_methods_carry_the_axes_label_and_order(name):
    cls = METHODS.get(name)
    assert name in axes.METHOD_AXIS, f"method {name!r} is registered but has no oefsmc.axes.METHOD_AXIS entry"
    assert cls.name == name
    assert cls.label == axes.method_label(name)
    assert cls.paper_order == axes.METHOD_AXIS.index(name)


def test_every_axes_method_is_registered():
    assert sorted(axes.METHOD_NAMES) == METHODS.names()
    assert axes.method_order(METHODS.names()) == list(axes.METHOD_NAMES)
    assert set(axes.PAPER_METHODS) <= set(axes.METHOD_NAMES)


@pytest.mark.parametrize("name", VARIANTS.names())
def test_registered_variants_carry_the_axes_label_and_order(name):
    v = VARIANTS.get(name)
    assert v.label == axes.variant_label(name)
    assert v.order == axes.VARIANT_AXIS.index(name)
    assert v.in_paper == axes.VARIANT_AXIS.entry(name).in_paper
    assert sorted(axes.VARIANT_AXIS.names()) == VARIANTS.names()


def test_labels_and_orders():
    assert [axes.method_label(m) for m in axes.PAPER_METHODS] == ["CD", "FSKD", "MiR", "PRACTISE"]
    assert axes.method_order(["practise", "x5", "cd", "a0", "cd"]) == ["cd", "practise", "a0", "x5"]
    assert axes.method_label("x5") == "x5"
    assert axes.variant_order(["ft-only", "full", "zz", "none"]) == ["none", "full", "ft-only", "zz"]
    assert axes.variant_figure_label("zz") == "zz" and axes.variant_legend_label("zz") == "zz"
    assert axes.table2_row_label("mir", "ft-only") == "MiR + FT only (not in paper)"
    assert axes.table2_row_label("x5", "none") == "x5"
    assert axes.table2_row_label("cd", "no-ft") == "CD + w/o FT"
    assert [axes.dataset_label(d) for d in axes.PAPER_DATASETS] == ["CIFAR-10", "CIFAR-100", "ILSVRC-2012"]
    assert axes.dataset_label("digits") == "digits"
    assert axes.arch_label("resnet20") == "ResNet-20" and axes.arch_label("demo_vgg") == "demo_vgg"
    assert list(axes.PAPER_COLUMNS) == list(axes.PAPER_DATASETS)


def test_unknown_dataset_and_arch_sort_after_the_known_ones():
    assert axes.dataset_order(["svhn", "imagenet", "digits", "cifar10"]) == ["cifar10", "imagenet", "digits", "svhn"]
    assert axes.arch_order(["zz", "resnet34", "vgg16"]) == ["vgg16", "resnet34", "zz"]


def test_renderers_import_without_torch():
    code = ("import sys; import paper_tables.render, paper_tables.claims, paper_tables.protocols, "
            "paper_tables.perclass, paper_tables.figure3, oefsmc.axes, benchmark.grids, benchmark.profiles; "
            "bad = [m for m in ('torch', 'baselines') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
