"""The method interface: every few-sample compression method runs the same stages.

    build_student(teacher, data) -> Student            (structure + weights copied from the teacher)
    compress(teacher, student, data) -> (Student, stats)  (the method's own official pipeline)

followed by the pipeline's optional shared fine-tuning stage and evaluation (:mod:`oefsmc.pipeline`).
A method is one small file in ``baselines/`` registered with ``@METHODS.register("name")``.  It computes
every loss per sample and reduces it with ``data.combine`` (OE-FSMC Eq. 7), so the OE add-on reaches
every stage through :class:`~oefsmc.core.stage_data.StageData` and never through a branch in a method.
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch
import torch.nn as nn

from ..registry import Registry
from .params import Param
from .stage_data import StageData
from .student import Student


class Method:
    name: ClassVar[str] = ""
    #: printed name and position in the paper's tables; equal to :data:`oefsmc.axes.METHOD_AXIS`, the
    #: torch-free table the renderers read (checked by ``tests/paper_tables/test_axes.py``)
    label: ClassVar[str] = ""
    paper_order: ClassVar[int] = -1
    citation: ClassVar[str] = ""
    params: ClassVar[Mapping[str, Param]] = {}
    # whether the method's structure/importance criterion looks at data (then OE's class-aware weights act)
    data_driven_selection: ClassVar[bool] = False
    applicable_families: ClassVar[tuple[str, ...]] = ("vgg", "cifar_resnet", "imagenet_resnet")
    not_applicable_reason: ClassVar[str] = ""

    def __init__(self, hp: dict[str, Any], device: torch.device, generator: torch.Generator):
        self.hp = hp
        self.device = device
        self.generator = generator  # seeded per cell; the only source of training randomness

    def build_student(self, teacher: nn.Module, data: StageData) -> Student:
        raise NotImplementedError

    def compress(self, teacher: nn.Module, student: Student, data: StageData) -> tuple[Student, dict]:
        raise NotImplementedError

    @classmethod
    def is_applicable(cls, family: str) -> bool:
        return family in cls.applicable_families


METHODS: Registry[type[Method]] = Registry("method")
