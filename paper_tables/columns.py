"""How a paper column is run: the one definition the profiles (``benchmark.profiles``) and the renderers share.

Kept free of heavy imports (no pandas, no torch), so a profile can be built before anything else loads.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ColumnMap:
    """How one paper column (dataset, arch) is run in a profile: run dataset, run arch, Num scaling."""

    dataset: str
    arch: str
    num_divisor: int = 1

    def num(self, paper_num: int) -> int:
        """The Num actually drawn for the paper's ``paper_num``."""
        return paper_num // self.num_divisor
