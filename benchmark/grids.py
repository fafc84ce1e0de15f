"""Grids: the cells each paper artifact needs, for a profile.

A *cell* is one experiment, a plain dict (the contract with :mod:`oefsmc.pipeline`)::

    {"dataset", "arch", "num", "balanced", "imbalance_ratio", "method", "oe", "seed", "schedule",
     "overrides", "data_root", "teacher", "ood", "device"}

plus ``eval_precision`` where the profile pins it.  A :class:`GridEntry` pairs a cell with the *tag*
saying which paper cell it stands for (artifact, paper dataset / arch / Num, setting, method, variant, and
for Figure 3 the swept parameter), which the renderers need and the experiment does not.  Grids list
every (paper cell x seed); cells that are the same experiment are merged later by their resolved key
(:mod:`benchmark.sweep`), e.g. Table 1's imbalanced cells and Table 2's CIFAR-10 baseline cells (the paper
prints identical numbers for them), or Figure 3c's lambda = 0.5 and Table 2's "+ Ours" cell.

The paper's grids:

* Table 1 (Sec. 5.2): VGG-16 / CIFAR-10, Num 10/20/50/100, balanced vs. imbalanced (ratio 100), the
  four methods, no OE.
* Table 2 (Sec. 5.3): VGG-16 / CIFAR-10 Num 10/20/50, ResNet-32 / CIFAR-100 Num 100/200/500, ResNet-34
  / ILSVRC-2012 Num 1000/2000/3000, imbalanced ratio 100, the four methods x OE ``none`` / ``full`` plus
  our ``ft-only`` control.
* Figure 3 (Secs. 5.4-5.5).  The paper does not say which method or dataset Figure 3 uses; our choice
  (:data:`FIG3_METHOD`, :data:`FIG3_COLUMN`, :data:`FIG3_NUM`): MiR on the CIFAR-10 / VGG-16 column,
  imbalanced ratio 100, Num 50; panel (b) at Num 10 / 20 / 50.  (a) the OE variants none / no-comp /
  no-ft / full and our ft-only control; (b) ``oe.aux_size`` = {0.25, 0.5, 1, 2, 4} x Num; (c)
  ``oe.lambda`` in {0, .2, .4, .5, .6, .8, 1}; (d) ``oe.eta`` in {0.1, .5, 1.5, 2.5, 3.5, 5}.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

from oefsmc.axes import (
    FIG3A_VARIANTS,
    METHOD_NAMES,
    PAPER_COLUMNS,
    TABLE1_DATASET,
    TABLE1_NUMS,
    TABLE2_VARIANTS,
    method_label,
)
from oefsmc.errors import UserError

from .overrides import scoped_overrides
from .profiles import Profile

#: The methods, Nums and variants of the grids come from :mod:`oefsmc.axes` (the renderers read the same).
METHODS = METHOD_NAMES
IMBALANCE_RATIO = 100.0

FIG3_METHOD = "mir"
FIG3_COLUMN = TABLE1_DATASET      # the paper's CIFAR-10 / VGG-16 column
FIG3_NUM = 50
FIG3B_NUMS = (10, 20, 50)
FIG3B_RATIOS = (0.25, 0.5, 1.0, 2.0, 4.0)
FIG3C_LAMBDAS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)
FIG3D_ETAS = (0.1, 0.5, 1.5, 2.5, 3.5, 5.0)

ARTIFACTS = ("table1", "table2", "fig3a", "fig3b", "fig3c", "fig3d", "table2-protocols", "selection-bias")
FIGURE_PANELS = ("3a", "3b", "3c", "3d")
#: ``--table`` values: every ``table<N>`` artifact (a new table is one grid builder and one ARTIFACTS entry).
TABLE_NUMBERS: tuple[str, ...] = tuple(a[len("table"):] for a in ARTIFACTS if a[len("table"):].isdigit())
#: ``--figure`` values.
FIGURE_CHOICES: tuple[str, ...] = FIGURE_PANELS + ("all",)


@dataclass
class GridEntry:
    """One (paper cell, seed): the experiment ``cell`` and the ``tag`` of the paper cell it stands for."""

    cell: dict
    tag: dict = field(default_factory=dict)


def figure_choice_text(panel: str = "a") -> str:
    """The Figure 3 setting we chose (the paper does not say), for captions and notes."""
    label = method_label(FIG3_METHOD)
    nums = "/".join(map(str, FIG3B_NUMS)) if panel == "b" else str(FIG3_NUM)
    return (f"Our choice (the paper does not say): {label} on the CIFAR-10/VGG-16 column, "
            f"imbalanced ratio {IMBALANCE_RATIO:g}, Num {nums}")


def _fmt(v: float) -> str:
    """A --set value as text: 0.5 -> "0.5", 1.0 -> "1", 2.5 -> "2.5"."""
    return f"{v:g}"


def aux_size_for(ratio: float, num: int) -> int:
    """Auxiliary-set size ``ratio`` x ``num``, rounded half up, at least 1."""
    return max(1, int(math.floor(ratio * num + 0.5)))


def make_cell(profile: Profile, paper_dataset: str, paper_num: int, *, balanced: bool, method: str,
              oe: str, seed: int, overrides: Optional[dict] = None) -> dict:
    """The experiment cell that stands for a paper cell in ``profile``.

    The profile's sweep-level ``--set`` overrides are merged in where they act on the cell
    (:func:`benchmark.overrides.scoped_overrides`); the cell's own ``overrides`` win.
    """
    col = profile.column(paper_dataset)
    if col is None:
        raise ValueError(f"profile {profile.name} does not run the {paper_dataset} column")
    cell = {
        "dataset": col.dataset,
        "arch": col.arch,
        "num": col.num(paper_num),
        "balanced": bool(balanced),
        "imbalance_ratio": 1.0 if balanced else IMBALANCE_RATIO,
        "method": method,
        "oe": oe,
        "seed": int(seed),
        "schedule": profile.schedule_for(method),
        "overrides": dict(overrides or {}),
        "data_root": profile.data_root,
        "teacher": profile.teachers.get(col.dataset),
        "ood": profile.ood[col.dataset],
        "device": profile.device,
    }
    if profile.eval_precision != "auto":
        cell["eval_precision"] = profile.eval_precision
    cell["overrides"] = {**scoped_overrides(profile.overrides, cell), **cell["overrides"]}
    return cell


def _tag(artifact: str, paper_dataset: str, paper_num: int, setting: str, method: str, variant: str,
         **extra) -> dict:
    return {"artifact": artifact, "paper_dataset": paper_dataset,
            "paper_arch": PAPER_COLUMNS[paper_dataset][0], "paper_num": int(paper_num),
            "setting": setting, "method": method, "variant": variant, **extra}


# ---------------------------------------------------------------------------- one builder per artifact
def table1(profile: Profile, seeds: Iterable[int]) -> list[GridEntry]:
    """Table 1: CIFAR-10 column, Num x {balanced, imbalanced} x 4 methods, OE none."""
    out = []
    for num in profile.paper_nums("table1", TABLE1_DATASET, TABLE1_NUMS):
        for balanced in (True, False):
            setting = "balanced" if balanced else "imbalanced"
            for method in METHODS:
                for seed in seeds:
                    cell = make_cell(profile, TABLE1_DATASET, num, balanced=balanced, method=method, oe="none",
                                     seed=seed)
                    out.append(GridEntry(cell, _tag("table1", TABLE1_DATASET, num, setting, method, "none")))
    return out


def table2(profile: Profile, seeds: Iterable[int]) -> list[GridEntry]:
    """Table 2: three columns x 3 Nums x 4 methods x OE {none, full, ft-only}, imbalanced."""
    out = []
    for paper_dataset, (_, nums) in PAPER_COLUMNS.items():
        for num in profile.paper_nums("table2", paper_dataset, nums):
            for method in METHODS:
                for variant in TABLE2_VARIANTS:
                    for seed in seeds:
                        cell = make_cell(profile, paper_dataset, num, balanced=False, method=method,
                                         oe=variant, seed=seed)
                        out.append(GridEntry(cell, _tag("table2", paper_dataset, num, "imbalanced",
                                                        method, variant)))
    return out


def _fig_entry(profile: Profile, panel: str, num: int, seed: int, variant: str, param_name: str,
               param_value, overrides: Optional[dict] = None) -> GridEntry:
    cell = make_cell(profile, FIG3_COLUMN, num, balanced=False, method=FIG3_METHOD, oe=variant, seed=seed,
                     overrides=overrides)
    tag = _tag(f"fig3{panel}", FIG3_COLUMN, num, "imbalanced", FIG3_METHOD, variant, panel=panel,
               param_name=param_name, param_value=param_value)
    return GridEntry(cell, tag)


def _fig_nums(profile: Profile, nums: tuple[int, ...]) -> tuple[int, ...]:
    return profile.paper_nums("fig3", FIG3_COLUMN, nums)


def fig3a(profile: Profile, seeds: Iterable[int]) -> list[GridEntry]:
    """Figure 3a: the OE variants (and our ft-only control) at the chosen setting."""
    return [_fig_entry(profile, "a", num, s, v, "variant", None)
            for num in _fig_nums(profile, (FIG3_NUM,)) for v in FIG3A_VARIANTS for s in seeds]


def fig3b(profile: Profile, seeds: Iterable[int]) -> list[GridEntry]:
    """Figure 3b: auxiliary-set size {0.25..4} x Num for Num 10/20/50, OE full.

    Ratio 1 carries no override: the default auxiliary size is Num (Sec. 5.1), so that cell is the
    Table 2 "+ Ours" run itself.  The plotted value is the run's auxiliary size (Num of the run column).
    """
    out = []
    for num in _fig_nums(profile, FIG3B_NUMS):
        run_num = profile.column(FIG3_COLUMN).num(num)
        for ratio in FIG3B_RATIOS:
            size = aux_size_for(ratio, run_num)
            over = {} if ratio == 1.0 else {"oe.aux_size": str(size)}
            out += [_fig_entry(profile, "b", num, s, "full", "aux_size", size, over) for s in seeds]
    return out


def fig3c(profile: Profile, seeds: Iterable[int]) -> list[GridEntry]:
    """Figure 3c: lambda of Eq. 7 (``oe.lambda``), OE full."""
    return [_fig_entry(profile, "c", num, s, "full", "lambda", lam, {"oe.lambda": _fmt(lam)})
            for num in _fig_nums(profile, (FIG3_NUM,)) for lam in FIG3C_LAMBDAS for s in seeds]


def fig3d(profile: Profile, seeds: Iterable[int]) -> list[GridEntry]:
    """Figure 3d: eta of the fine-tuning regulariser (``oe.eta``), OE full."""
    return [_fig_entry(profile, "d", num, s, "full", "eta", eta, {"oe.eta": _fmt(eta)})
            for num in _fig_nums(profile, (FIG3_NUM,)) for eta in FIG3D_ETAS for s in seeds]


#: Fine-tuning protocols claim 2 is reported under (``claim2_protocols.md``): the suite's defaults (BatchNorm in
#: train mode, SGD, the head only, ``few_loss`` with relative tolerance 0.01: chosen by ``python -m benchmark
#: protocol-study`` on a validation split, docs/REPRODUCTION_NOTES.md section 4), the protocol of the session-3
#: records (every parameter, absolute tolerance), the two other fine-tuning scopes (issue 17) and BatchNorm's
#: running statistics frozen (issue 11).  An override equal to a default is dropped when cells are planned, so
#: a protocol that equals the defaults shares their records.
PROTOCOLS: dict[str, dict[str, str]] = {
    "default": {},
    "bn-train-all (session 3)": {"finetune.bn": "train", "finetune.params": "all", "finetune.rel_tol": "0",
                                 "finetune.optimizer": "sgd", "finetune.monitor": "few_loss"},
    "all parameters": {"finetune.params": "all"},
    "bn+head": {"finetune.params": "bn+head"},
    "bn=eval": {"finetune.bn": "eval"},
    # the monitor a few-sample user really has: a held-out fifth of each class's few samples (issue 17)
    "holdout monitor": {"finetune.monitor": "holdout_loss"},
}
FINETUNED_VARIANTS = ("ft-only", "full")


def table2_protocols(profile: Profile, seeds: Iterable[int]) -> list[GridEntry]:
    """Table 2's ``none`` / ``ft-only`` / ``full`` cells under every protocol of :data:`PROTOCOLS` (tag
    ``protocol``); ``none`` has no fine-tuning stage, so its cells are shared by every protocol."""
    out = []
    for name, overrides in PROTOCOLS.items():
        for e in table2(profile, seeds):
            over = overrides if e.cell["oe"] in FINETUNED_VARIANTS else {}
            cell = dict(e.cell, overrides={**e.cell["overrides"], **over})
            out.append(GridEntry(cell, dict(e.tag, artifact="table2-protocols", protocol=name)))
    return out


def selection_bias(profile: Profile, seeds: Iterable[int]) -> list[GridEntry]:
    """DIAGNOSTIC: Table 2's fine-tuned cells with ``finetune.select=oracle-test`` (their records also carry
    the best test accuracy over the run's monitor evaluation points).  Never rendered into a table, a
    figure or a verdict -- only into ``selection_bias.md``."""
    out = []
    for e in table2(profile, seeds):
        if e.cell["oe"] in FINETUNED_VARIANTS:
            cell = dict(e.cell, overrides={**e.cell["overrides"], "finetune.select": "oracle-test"})
            out.append(GridEntry(cell, dict(e.tag, artifact="selection-bias", diagnostic="test-set selection")))
    return out


BUILDERS: dict[str, Callable[[Profile, Iterable[int]], list[GridEntry]]] = {
    "table1": table1, "table2": table2, "fig3a": fig3a, "fig3b": fig3b, "fig3c": fig3c, "fig3d": fig3d,
    "table2-protocols": table2_protocols, "selection-bias": selection_bias,
}
STUDIES = ("protocols", "selection-bias")


def artifacts_for(tables: Optional[Iterable[str]], figures: Optional[Iterable[str]],
                  studies: Optional[Iterable[str]] = None) -> list[str]:
    """``--table 1 --figure all --study protocols`` -> ["table1", "fig3a", ...] in a stable order, no duplicates."""
    wanted = [{"protocols": "table2-protocols"}.get(s, s) for s in studies or []]
    for t in tables or []:
        wanted.append(f"table{t}")
    for f in figures or []:
        wanted += [f"fig{p}" for p in FIGURE_PANELS] if f == "all" else [f"fig{f}"]
    tables_, figures_, studies_ = "|".join(TABLE_NUMBERS), "|".join(FIGURE_CHOICES), "|".join(STUDIES)
    bad = [a for a in wanted if a not in BUILDERS]
    if bad:
        raise UserError(f"unknown artifact(s) {', '.join(bad)}; use --table {tables_} or --figure {figures_}")
    if not wanted:
        raise UserError(f"nothing to run: give --table {tables_}, --figure {figures_} and/or --study {studies_}")
    return [a for a in ARTIFACTS if a in wanted]


def build_grid(artifacts: Iterable[str], profile: Profile, seeds: Iterable[int]) -> list[GridEntry]:
    """All entries of the given artifacts (duplicates across artifacts are kept; the sweep merges them)."""
    seeds = list(seeds)
    out: list[GridEntry] = []
    for a in artifacts:
        out += BUILDERS[a](profile, seeds)
    return out
