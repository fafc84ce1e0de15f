"""Sweep profiles: how each paper column of Tables 1-2 and Figure 3 is run on a given machine.

A *profile* fixes everything a grid cell needs beyond the paper's own axes (method, OE variant,
Num, balanced or imbalanced, seed): which dataset / architecture / Num stands for each paper column,
the hyperparameter schedule, the OOD source, the data root and teachers, the number of seeds and the
device.  Four are registered (:data:`PROFILES`):

``demo`` (the default)
    Offline, CPU, minutes.  The embedded sklearn-digits dataset (10 classes, 8x8 grayscale, about 140
    training images per class once the test split is held out) with small stand-in networks and
    teachers the suite trains in seconds; schedule ``demo``; 3 seeds.  Column mapping: CIFAR-10 /
    VGG-16 -> digits / ``demo_vgg`` (plain chain, no residual blocks), Num unchanged; CIFAR-100 /
    ResNet-32 -> digits / ``demo_resnet_s``, Num / 10; ILSVRC-2012 / ResNet-34 -> digits /
    ``demo_resnet_m``, Num / 10 (3000 / 10 = 300 is about the largest imbalanced Num digits can draw).
    OOD source: the embedded natural-image patches (``demo-patches``).
``paper``
    The paper's grids at full scale: schedule ``official``, 5 seeds, device ``auto``; CIFAR-10 /
    CIFAR-100 (torchvision or ``<data-root>/<dataset>/{train,test}.npz``) and ILSVRC-2012 under
    ``<data-root>/imagenet``.  OOD: the 300K Random Images file
    ``<data-root>/300K_random_images.npy`` for CIFAR (the paper's source), an ImageFolder at
    ``<data-root>/places365`` for ImageNet (the paper names none; our default).  A column whose data or
    teacher is missing is skipped with its reason; the rest still runs.  Never filled with anything else.
``cifar10-real``
    Real CIFAR-10 arrays (``--data-root``, default ``../shared/data`` beside the repository) and a
    published CIFAR-10 ResNet-32 teacher (``--teacher``), OOD = the CIFAR-100 arrays, schedule ``cpu``,
    5 seeds, ResNet-32 for every run, evaluation in fp32 on every machine.  Table 1 runs Num 10 and 50
    only; Table 2 only the CIFAR-10 column at Num 10 and 50.  What it shortens is listed in
    :attr:`Profile.shortens` and copied into every record.
``cifar100-real``
    The paper's own CIFAR-100 / ResNet-32 column of Table 2 (long-tailed, ratio 100, Num 100 / 200 / 500)
    on the complete CIFAR-100 arrays, with the suite-trained teacher :data:`CIFAR100_TEACHER`, OOD = the
    CIFAR-10 arrays, schedule ``official`` (``cpu`` for MiR and PRACTISE), 5 seeds, fp32 evaluation.  It
    is compared with the paper's numbers (flagged beyond 2 std); skipped with its reason while the teacher
    is missing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

from oefsmc.axes import PAPER_COLUMNS, arch_label, dataset_label
from oefsmc.errors import UserError
from paper_tables.columns import ColumnMap  # noqa: F401  (re-exported: profiles are built from it)

#: The repository root when running from a checkout (``<root>/benchmark/profiles.py``).
REPO_ROOT = Path(__file__).resolve().parents[1]

#: Paper columns: paper dataset -> (paper arch, Table 2 Nums), and their printed labels (all from
#: :mod:`oefsmc.axes`, re-exported here).  Table 1 is the CIFAR-10 / VGG-16 column.
PAPER_DATASET_LABELS = {d: dataset_label(d) for d in PAPER_COLUMNS}
PAPER_ARCH_LABELS = {arch: arch_label(arch) for arch, _ in PAPER_COLUMNS.values()}


@dataclass(frozen=True)
class Profile:
    """Everything a grid needs beyond the paper's axes (see the module docstring)."""

    name: str
    description: str
    schedule: str
    n_seeds: int
    device: str
    columns: Mapping[str, ColumnMap]          # paper dataset -> how it is run (absent: not run here)
    ood: Mapping[str, str]                    # run dataset -> OOD source spec
    data_root: Optional[str] = None
    teachers: Mapping[str, str] = field(default_factory=dict)  # run dataset -> checkpoint path
    #: paper Nums run per (artifact group, paper dataset); absent = all of the paper's Nums
    nums: Mapping[tuple[str, str], tuple[int, ...]] = field(default_factory=dict)
    shortens: tuple[str, ...] = ()            # what differs from the paper's setting
    #: per-method schedule where it differs from ``schedule`` (e.g. a method whose official schedule does
    #: not fit the machine); named in every caption
    method_schedules: Mapping[str, str] = field(default_factory=dict)
    flag_2std: bool = False                   # flag |diff| > 2 std (only where the paper's setting runs)
    skip_missing: bool = False                # missing data/teacher skips the column (not an error)
    #: sweep-level ``--set`` overrides, merged into the cells they act on (benchmark/overrides.py)
    overrides: Mapping[str, str] = field(default_factory=dict)
    #: evaluation precision of every cell: ``auto`` resolves on the machine that computes (bf16 where it is
    #: native); a profile whose grids span sittings on different machines pins ``fp32``, so one key (and
    #: one precision) holds wherever a cell runs (notes, section 7)
    eval_precision: str = "auto"
    #: default teacher path -> how to obtain it when the checkpoint is missing (added to the error)
    teacher_hints: Mapping[str, str] = field(default_factory=dict)

    def schedule_for(self, method: str) -> str:
        """The hyperparameter schedule a method's cells run with in this profile."""
        return self.method_schedules.get(method, self.schedule)

    # ------------------------------------------------------------------ columns
    def column(self, paper_dataset: str) -> Optional[ColumnMap]:
        """The mapping of a paper column, or ``None`` when this profile does not run it."""
        return self.columns.get(paper_dataset)

    def paper_nums(self, group: str, paper_dataset: str, paper_default: tuple[int, ...]) -> tuple[int, ...]:
        """Paper Nums of ``paper_dataset`` run in artifact ``group`` ("table1", "table2", "fig3")."""
        if paper_dataset not in self.columns:
            return ()
        return tuple(n for n in paper_default if n in self.nums.get((group, paper_dataset), paper_default))

    def not_run_reason(self, group: str, paper_dataset: str, paper_num: int,
                       paper_default: tuple[int, ...]) -> Optional[str]:
        """Why a paper cell has no run in this profile (``None`` when it does)."""
        if paper_dataset not in self.columns:
            return f"column not run in the {self.name} profile"
        if paper_num not in self.paper_nums(group, paper_dataset, paper_default):
            return f"Num not run in the {self.name} profile"
        return None

    def mapping_lines(self) -> list[str]:
        """Human-readable column mapping, one line per paper column (printed in every caption)."""
        lines = []
        for pd_, (parch, _) in PAPER_COLUMNS.items():
            paper = f"{PAPER_DATASET_LABELS[pd_]}/{PAPER_ARCH_LABELS[parch]}"
            m = self.columns.get(pd_)
            if m is None:
                lines.append(f"{paper}: not run")
            elif (m.dataset, m.arch, m.num_divisor) == (pd_, parch, 1):
                lines.append(f"{paper}: as in the paper")
            else:
                num = "Num unchanged" if m.num_divisor == 1 else f"Num/{m.num_divisor}"
                lines.append(f"{paper} -> {m.dataset}/{m.arch}, {num}")
        return lines

    def record_info(self) -> dict:
        """What every record of this profile carries about it."""
        return {
            "name": self.name, "schedule": self.schedule, "device": self.device,
            "shortens": list(self.shortens), "column_mapping": self.mapping_lines(),
        }


# ----------------------------------------------------------------------------- the four profiles
def _demo(data_root: Optional[str], teachers: Mapping[str, str]) -> Profile:
    return Profile(
        name="demo",
        description="embedded sklearn digits, small stand-in nets, suite-trained teachers, offline CPU",
        schedule="demo", n_seeds=3, device="cpu",
        columns={
            "cifar10": ColumnMap("digits", "demo_vgg", 1),
            "cifar100": ColumnMap("digits", "demo_resnet_s", 10),
            "imagenet": ColumnMap("digits", "demo_resnet_m", 10),
        },
        ood={"digits": "demo-patches"},
        data_root=data_root, teachers=dict(teachers),
        shortens=(
            "dataset: embedded sklearn digits (10 classes, 8x8 grayscale) instead of CIFAR/ImageNet",
            "architectures: small stand-ins demo_vgg / demo_resnet_s / demo_resnet_m",
            "Num: CIFAR-100 and ImageNet columns divided by 10",
            "teachers: trained by the suite in seconds",
            "schedule: demo (shortened iterations/epochs of every stage)",
            "OOD: natural-image patches from scikit-image's bundled photographs",
            "seeds: 3 instead of 5",
        ),
    )


def _paper(data_root: Optional[str], teachers: Mapping[str, str]) -> Profile:
    root = data_root or str(Path("data").resolve())
    return Profile(
        name="paper",
        description="the paper's grids at full scale (downloads, GPU)",
        schedule="official", n_seeds=5, device="auto",
        columns={pd_: ColumnMap(pd_, parch, 1) for pd_, (parch, _) in PAPER_COLUMNS.items()},
        ood={
            "cifar10": f"random300k:{Path(root) / '300K_random_images.npy'}",
            "cifar100": f"random300k:{Path(root) / '300K_random_images.npy'}",
            "imagenet": f"folder:{Path(root) / 'places365'}",
        },
        data_root=root, teachers=dict(teachers),
        shortens=(), flag_2std=True, skip_missing=True,
    )


def _default_shared(*parts: str) -> Optional[str]:
    """``../shared/data/...`` beside the repository root, when it exists."""
    p = REPO_ROOT.parent / "shared" / "data" / Path(*parts)
    return str(p) if p.exists() else None


def _cifar10_real(data_root: Optional[str], teachers: Mapping[str, str]) -> Profile:
    root = data_root or _default_shared()
    teach = dict(teachers)
    if "cifar10" not in teach:
        default = _default_shared("teachers", "cifar10_resnet32-d509ac18.th")
        if default:
            teach["cifar10"] = default
    return Profile(
        name="cifar10-real",
        description="real CIFAR-10 arrays, a published ResNet-32 teacher, CIFAR-100 as OOD, CPU schedule",
        schedule="cpu", n_seeds=5, device="auto",
        columns={"cifar10": ColumnMap("cifar10", "resnet32", 1)},
        ood={"cifar10": "cifar100"},
        data_root=root, teachers=teach,
        nums={("table1", "cifar10"): (10, 50), ("table2", "cifar10"): (10, 50)},
        shortens=(
            "schedule: cpu (shortened iterations/epochs of every stage for 2 CPU cores)",
            "architecture: ResNet-32 (the published CIFAR-10 teacher) instead of VGG-16",
            "OOD: the CIFAR-100 arrays instead of 300K Random Images",
            "data: the ../shared/data CIFAR-10 pool (20,000 training images) for few-sample draws",
            "Num: 10 and 50 only; only the CIFAR-10 column of Table 2",
        ),
        eval_precision="fp32",
    )


#: Where the suite-trained CIFAR-100 ResNet-32 teacher is committed (``python -m benchmark teacher train
#: --dataset cifar100 --arch resnet32 --data-root ../shared/data --precision fp32 --switch-precision --out
#: <this path>``: epochs 1-47 ran in bf16, the rest in fp32; notes, section 9).
CIFAR100_TEACHER = REPO_ROOT / "results" / "teachers" / "cifar100_resnet32.pt"


def _cifar100_real(data_root: Optional[str], teachers: Mapping[str, str]) -> Profile:
    root = data_root or _default_shared()
    # the committed teacher, never one trained inside a sweep: when it is missing the column is skipped
    teach = {"cifar100": str(CIFAR100_TEACHER), **teachers}
    return Profile(
        name="cifar100-real",
        description="the paper's CIFAR-100 / ResNet-32 column on real data, with the suite-trained teacher",
        schedule="official", n_seeds=5, device="auto",
        columns={"cifar100": ColumnMap("cifar100", "resnet32", 1)},
        ood={"cifar100": "cifar10"},
        data_root=root, teachers=teach,
        nums={("table2", "cifar100"): (100, 200, 500)},
        method_schedules={"practise": "cpu", "mir": "cpu"},
        shortens=(
            "teacher: ResNet-32 trained by the suite on the complete CIFAR-100 training set (akamaster's "
            "recipe; results/teachers/cifar100_resnet32.pt.json)",
            "OOD: the CIFAR-10 arrays instead of 300K Random Images",
            "schedule: official for CD and FSKD; cpu for MiR and PRACTISE (official takes about 29 min per cell "
            "on 2 cores for each: docs/REPRODUCTION_NOTES.md sections 6 and 9)",
        ),
        flag_2std=True, skip_missing=True, eval_precision="fp32",
        teacher_hints={str(CIFAR100_TEACHER): (
            "the suite's CIFAR-100 teacher is committed there once trained; train or resume it with `python -m "
            "benchmark teacher train --dataset cifar100 --arch resnet32 --data-root ../shared/data --precision "
            "fp32 --switch-precision --out results/teachers/cifar100_resnet32.pt` (notes, section 9), or pass "
            "--teacher cifar100=PATH")},
    )


PROFILES = {"demo": _demo, "paper": _paper, "cifar10-real": _cifar10_real, "cifar100-real": _cifar100_real}
DEFAULT_PROFILE = "demo"


def parse_teachers(items: Optional[list[str]]) -> dict[str, str]:
    """``--teacher [DATASET=]PATH`` (repeatable) -> {dataset: path}; a bare PATH is stored under ``*``."""
    out: dict[str, str] = {}
    for item in items or []:
        ds, sep, path = item.partition("=")
        if not sep or "/" in ds or not ds:
            ds, path = "*", item
        out[ds] = str(Path(path).expanduser().resolve())
    return out


def get_profile(name: str, data_root: Optional[str] = None, teachers: Optional[list[str]] = None) -> Profile:
    """Build profile ``name`` with the command line's ``--data-root`` / ``--teacher`` applied.

    A bare ``--teacher PATH`` applies to every run dataset of the profile; ``DATASET=PATH`` must name one.
    """
    if name not in PROFILES:
        raise UserError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
    root = str(Path(data_root).expanduser().resolve()) if data_root else None
    parsed = parse_teachers(teachers)
    explicit = {k: v for k, v in parsed.items() if k != "*"}
    profile = PROFILES[name](root, explicit)
    runs = sorted({m.dataset for m in profile.columns.values()})
    for ds in explicit:
        if ds not in runs:
            raise UserError(f"--teacher {ds}={explicit[ds]}: the {name} profile runs no {ds} cells (it runs "
                            f"{', '.join(runs)}): name one of those, or pass a bare --teacher PATH")
    if "*" in parsed:  # a bare PATH: every run dataset of the profile, unless named explicitly
        every = {m.dataset: parsed["*"] for m in profile.columns.values()}
        profile = PROFILES[name](root, {**every, **explicit})
    return profile
