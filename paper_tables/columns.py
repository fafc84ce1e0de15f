"""Paper columns: how one is run (:class:`ColumnMap`, shared by the profiles and the renderers) and how a
rendered column is named and judged (:func:`column_label`, :func:`is_paper_config`, :func:`column_info`).

Kept free of heavy imports (no pandas, no torch), so a profile can be built before anything else loads;
labels come from :mod:`oefsmc.axes`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Optional, Protocol

from oefsmc.axes import arch_label, dataset_label

if TYPE_CHECKING:
    from pandas import DataFrame

__all__ = ["ColumnInfo", "ColumnMap", "ColumnRun", "RunsAs", "column_info", "column_label", "is_paper_config"]


@dataclass(frozen=True)
class ColumnMap:
    """How one paper column (dataset, arch) is run in a profile: run dataset, run arch, Num scaling."""

    dataset: str
    arch: str
    num_divisor: int = 1

    def num(self, paper_num: int) -> int:
        """The Num actually drawn for the paper's ``paper_num``."""
        return paper_num // self.num_divisor


class RunsAs(Protocol):
    """What ran for a paper column (``benchmark.profiles.ColumnMap`` has this shape)."""

    dataset: str
    arch: str

    def num(self, paper_num: int) -> int: ...


#: What ran for one paper column (the profiles' own definition).
ColumnRun = ColumnMap


@dataclass(frozen=True)
class ColumnInfo:
    """A rendered column: its header and whether it is the paper's configuration (Δ is a target)."""

    label: str
    target: bool


def is_paper_config(run: Optional[RunsAs], paper_dataset: str, paper_arch: str, paper_num: int) -> bool:
    """True when the column runs the paper's own configuration: dataset, architecture and Num unchanged
    (then Δ = reproduced − paper is a target comparison; otherwise the paper's number is context)."""
    return run is not None and (run.dataset, run.arch, run.num(paper_num)) == (paper_dataset, paper_arch, paper_num)


def column_label(paper_dataset: str, paper_arch: str, paper_num: int, run: Optional[RunsAs] = None) -> str:
    """Header naming what ran, with the paper's configuration where it differs.

    "CIFAR-100 / ResNet-32 Num=100" (as in the paper, or ``run`` is ``None``), "CIFAR-10 / ResNet-32
    (paper: VGG-16) Num=10" (only the architecture differs), "digits / demo_resnet_s Num=10 (paper:
    CIFAR-100 / ResNet-32 Num=100)" (the dataset or Num differs).
    """
    paper = f"{dataset_label(paper_dataset)} / {arch_label(paper_arch)}"
    if run is None or is_paper_config(run, paper_dataset, paper_arch, paper_num):
        return f"{paper} Num={paper_num}"
    num = run.num(paper_num)
    if (run.dataset, num) == (paper_dataset, paper_num):
        return f"{dataset_label(run.dataset)} / {arch_label(run.arch)} (paper: {arch_label(paper_arch)}) Num={num}"
    return f"{dataset_label(run.dataset)} / {arch_label(run.arch)} Num={num} (paper: {paper} Num={paper_num})"


@dataclass(frozen=True)
class _ObservedRun:
    """What the runs of one paper cell column ran (inferred from the tidy frame)."""

    dataset: str
    arch: str
    run_num: int

    def num(self, paper_num: int) -> int:
        return self.run_num


def column_info(paper_dataset: str, paper_arch: str, paper_num: int, runs: DataFrame,
                columns: Optional[Mapping[str, RunsAs]]) -> ColumnInfo:
    """Header and target flag of a paper column.

    From ``columns`` when given (a paper dataset absent from it is not run: the paper's label, not a
    target); else from the column's runs: none -> taken as run as in the paper; runs that disagree on
    what ran -> the paper's label, not a target (the stand-in footnote lists them).
    """
    if columns is not None:
        run = columns.get(paper_dataset)
        return ColumnInfo(column_label(paper_dataset, paper_arch, paper_num, run),
                          is_paper_config(run, paper_dataset, paper_arch, paper_num))
    sel = runs[(runs["paper_dataset"] == paper_dataset) & (runs["paper_num"] == paper_num)]
    configs = set(zip(sel["dataset"], sel["arch"], sel["num"]))
    if len(configs) != 1:
        return ColumnInfo(column_label(paper_dataset, paper_arch, paper_num), not configs)
    run = _ObservedRun(*configs.pop())
    return ColumnInfo(column_label(paper_dataset, paper_arch, paper_num, run),
                      is_paper_config(run, paper_dataset, paper_arch, paper_num))
