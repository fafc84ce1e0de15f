"""The rows of Table 2 and the ablation variants of Figure 3a (OE-FSMC Sec. 5.4), as a registry.

| variant | compression                              | fine-tuning                                  |
|---------|------------------------------------------|----------------------------------------------|
| none    | the method's official pipeline ("w/o all") | none beyond the official pipeline           |
| full    | OOD data, class weights, joint loss       | CE + eta * weighted OOD CE ("+ Ours")        |
| no-comp | the method's own ("w/o Comp.")            | CE + eta * weighted OOD CE                   |
| no-ft   | OOD data, class weights, joint loss       | CE only ("w/o FT")                           |
| ft-only | the method's own                          | CE only (our control, not in the paper)      |

``label`` and ``order`` (Figure 3a's order, our control last) equal :data:`oefsmc.axes.VARIANT_AXIS`, the
torch-free table the renderers read (checked by ``tests/paper_tables/test_axes.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..registry import Registry


@dataclass(frozen=True)
class Variant:
    name: str
    compress_with_ood: bool
    finetune: Optional[str]  # None | "ce" | "ce+ood"
    label: str
    in_paper: bool = True
    order: int = 0  # position in Figure 3a (Sec. 5.4); our control last

    @property
    def uses_ood(self) -> bool:
        return self.compress_with_ood or self.finetune == "ce+ood"


VARIANTS: Registry[Variant] = Registry("OE variant")
for _v in (
    Variant("none", False, None, "w/o all (baseline row)", order=0),
    Variant("full", True, "ce+ood", "+ Ours", order=3),
    Variant("no-comp", False, "ce+ood", "w/o Comp.", order=1),
    Variant("no-ft", True, "ce", "w/o FT", order=2),
    Variant("ft-only", False, "ce", "FT only (our control)", in_paper=False, order=4),
):
    VARIANTS.add(_v.name, _v)
