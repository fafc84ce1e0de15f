"""The paper's axes -- methods, OE variants, datasets, architectures, columns -- in one place.

Plain data and pure functions, no torch and no third-party import: the renderers (:mod:`paper_tables`), the
grids (:mod:`benchmark.grids`) and the profiles (:mod:`benchmark.profiles`) read every label and every
order from here, so they run from records alone.  The registries carry the same facts for what runs:
each :class:`oefsmc.core.method.Method` subclass its ``label`` and ``paper_order``, each
:class:`oefsmc.oe.variants.Variant` its ``label`` and ``order``; tests check that they equal these tables.

A name this module does not know never crashes a renderer: it is labelled by its own name and sorted after
every known name (by name).  Adding a fifth method: its ``baselines/<name>.py`` (with ``label`` and
``paper_order``), its import in ``baselines/__init__.py`` and one :data:`METHOD_AXIS` entry here
(``in_paper=False`` unless the paper prints its numbers, which then go to ``paper_tables/reported/*.csv``);
then the grids run it and every table, claim and figure shows it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "ARCH_AXIS",
    "DATASET_AXIS",
    "FIG3A_VARIANTS",
    "METHOD_AXIS",
    "METHOD_NAMES",
    "PAPER_COLUMNS",
    "PAPER_DATASETS",
    "PAPER_METHODS",
    "PERCLASS_VARIANTS",
    "TABLE1_ARCH",
    "TABLE1_DATASET",
    "TABLE1_NUMS",
    "TABLE2_VARIANTS",
    "VARIANT_AXIS",
    "Axis",
    "AxisEntry",
    "arch_label",
    "arch_order",
    "arch_sort_key",
    "column_name",
    "dataset_label",
    "dataset_order",
    "dataset_sort_key",
    "method_label",
    "method_order",
    "method_sort_key",
    "table2_row_label",
    "variant_figure_label",
    "variant_label",
    "variant_legend_label",
    "variant_order",
    "variant_sort_key",
]


@dataclass(frozen=True)
class AxisEntry:
    """One value of an axis: its name (as in cells and records), its printed label, and labels for other
    places (``styles``: e.g. a variant's Figure 3a bar label)."""

    name: str
    label: str
    styles: Mapping[str, str] = field(default_factory=dict)
    in_paper: bool = True  # False: our addition (drawn apart: dashed, hatched)


@dataclass(frozen=True)
class Axis:
    """The known values of one axis in paper order.  Unknown names: labelled by their own name, sorted
    after the known ones, by name."""

    kind: str
    entries: tuple[AxisEntry, ...]

    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.entries)

    def entry(self, name: str):
        return next((e for e in self.entries if e.name == name), None)

    def __contains__(self, name: object) -> bool:
        return self.entry(name) is not None  # type: ignore[arg-type]

    def index(self, name: str) -> int:
        """Paper position of a known name; ``len(entries)`` for an unknown one."""
        return next((i for i, e in enumerate(self.entries) if e.name == name), len(self.entries))

    def label(self, name: str, style: str = "") -> str:
        """The printed label (``style``: one of the entry's other labels, falling back to ``label``)."""
        e = self.entry(name)
        if e is None:
            return str(name)
        return e.styles.get(style, e.label) if style else e.label

    def sort_key(self, name) -> tuple[int, str]:
        """Known names by paper position, then unknown ones by name."""
        return self.index(name), "" if name in self else str(name)

    def order(self, names: Iterable[str]) -> list[str]:
        """``names`` without duplicates, in paper order, unknown ones after the known ones (by name)."""
        return sorted(dict.fromkeys(names), key=self.sort_key)

    def ranks(self, names: Iterable[str]) -> dict[str, int]:
        """``{name: position}`` of :meth:`order` (for sorting a frame column with ``Series.map``)."""
        return {n: i for i, n in enumerate(self.order(names))}


# ---------------------------------------------------------------------------------------------- methods
#: The suite's methods in the order of the paper's tables: its four baselines, then any method it does not
#: have (``in_paper=False``).  Checked against ``Method.label`` / ``Method.paper_order`` of the ``METHODS``
#: registry by the tests.
METHOD_AXIS = Axis("method", (
    AxisEntry("cd", "CD"),
    AxisEntry("fskd", "FSKD"),
    AxisEntry("mir", "MiR"),
    AxisEntry("practise", "PRACTISE"),
))
#: Every method the grids run and the tables always show, in table order.
METHOD_NAMES: tuple[str, ...] = METHOD_AXIS.names()
#: The paper's own methods (those with printed numbers).
PAPER_METHODS: tuple[str, ...] = tuple(e.name for e in METHOD_AXIS.entries if e.in_paper)

# ---------------------------------------------------------------------------------------------- variants
#: The OE variants (``oefsmc.oe.variants.VARIANTS``) in the order of Figure 3a (Sec. 5.4), our ft-only
#: control last.  Styles: ``figure`` (the Figure 3a bar), ``legend`` (the per-class figure), ``row`` (the
#: Table 2 row, ``{method}`` = the method's label).
VARIANT_AXIS = Axis("OE variant", (
    AxisEntry("none", "w/o all (baseline row)",
              {"figure": "w/o all\n(baseline)", "legend": "none (baseline)", "row": "{method}"}),
    AxisEntry("no-comp", "w/o Comp.", {"figure": "w/o Comp."}),
    AxisEntry("no-ft", "w/o FT", {"figure": "w/o FT"}),
    AxisEntry("full", "+ Ours", {"figure": "OE-FSMC\n(full)", "legend": "full (+ Ours)", "row": "+ Ours"}),
    AxisEntry("ft-only", "FT only (our control)",
              {"figure": "FT only\n(our control,\nnot in paper)", "legend": "ft-only (our control, not in paper)",
               "row": "{method} + FT only (not in paper)"}, in_paper=False),
))
#: Table 2's rows per method (Sec. 5.3), plus our ft-only control.
TABLE2_VARIANTS: tuple[str, ...] = ("none", "full", "ft-only")
#: Figure 3a's bars (Sec. 5.4), plus our ft-only control.
FIG3A_VARIANTS: tuple[str, ...] = VARIANT_AXIS.names()
#: The per-class figure's lines, in legend order.
PERCLASS_VARIANTS: tuple[str, ...] = ("none", "ft-only", "full")

# ---------------------------------------------------------------------------------------------- datasets
DATASET_AXIS = Axis("dataset", (
    AxisEntry("cifar10", "CIFAR-10"),
    AxisEntry("cifar100", "CIFAR-100"),
    AxisEntry("imagenet", "ILSVRC-2012"),
))
PAPER_DATASETS: tuple[str, ...] = DATASET_AXIS.names()

#: Architecture names as printed: the paper's three, then the suite's other CIFAR ResNets.
ARCH_AXIS = Axis("architecture", (
    AxisEntry("vgg16", "VGG-16"),
    AxisEntry("resnet32", "ResNet-32"),
    AxisEntry("resnet34", "ResNet-34"),
    AxisEntry("resnet20", "ResNet-20"),
    AxisEntry("resnet56", "ResNet-56"),
))

# ---------------------------------------------------------------------------------------------- columns
#: Paper columns: paper dataset -> (paper arch, Table 2 Nums), in paper order.
PAPER_COLUMNS: dict[str, tuple[str, tuple[int, ...]]] = {
    "cifar10": ("vgg16", (10, 20, 50)),
    "cifar100": ("resnet32", (100, 200, 500)),
    "imagenet": ("resnet34", (1000, 2000, 3000)),
}
#: Table 1 (Sec. 5.2): VGG-16 on CIFAR-10, Num 10/20/50/100.
TABLE1_DATASET, TABLE1_ARCH = "cifar10", "vgg16"
TABLE1_NUMS: tuple[int, ...] = (10, 20, 50, 100)


# ---------------------------------------------------------------------------------------------- functions
#: Label, paper order and sort key of each axis (an unknown name: itself, after the known ones).
method_label = METHOD_AXIS.label
method_order = METHOD_AXIS.order
method_sort_key = METHOD_AXIS.sort_key
variant_label = VARIANT_AXIS.label
variant_order = VARIANT_AXIS.order
variant_sort_key = VARIANT_AXIS.sort_key
dataset_label = DATASET_AXIS.label
dataset_order = DATASET_AXIS.order
dataset_sort_key = DATASET_AXIS.sort_key
arch_label = ARCH_AXIS.label
arch_order = ARCH_AXIS.order
arch_sort_key = ARCH_AXIS.sort_key


def variant_figure_label(name: str) -> str:
    """The Figure 3a bar label of a variant."""
    return VARIANT_AXIS.label(name, "figure")


def variant_legend_label(name: str) -> str:
    """The per-class figure's legend label of a variant (unknown: its name)."""
    return VARIANT_AXIS.label(name, "legend") if name in VARIANT_AXIS else str(name)


def table2_row_label(method: str, variant: str) -> str:
    """Table 2's row label: "CD", "+ Ours", "CD + FT only (not in paper)"; another variant "CD + <label>"."""
    e = VARIANT_AXIS.entry(variant)
    fmt = e.styles["row"] if e is not None and "row" in e.styles else "{method} + " + variant_label(variant)
    return fmt.format(method=method_label(method))


def column_name(dataset: str, num: int) -> str:
    """A column named briefly: "CIFAR-10 Num=10"."""
    return f"{dataset_label(dataset)} Num={num}"
