"""The four few-sample compression baselines, one file each, registered in ``oefsmc.core.method.METHODS``.

Importing this package registers: ``cd`` (Bai et al. 2020), ``fskd`` (Li et al. 2020), ``mir`` (Wang et al.
2022) and ``practise`` (Wang and Wu 2023).
"""
from . import cd, fskd, mir, practise  # noqa: F401
