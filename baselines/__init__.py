"""The four few-sample compression baselines, one file each, registered in ``oefsmc.core.method.METHODS``.

Importing this package registers: ``cd`` (Bai et al. 2020), ``fskd`` (Li et al. 2020), ``mir`` (Wang et al.
2022) and ``practise`` (Wang and Wu 2023).
"""
import importlib

for _name in ("fskd", "cd", "mir", "practise"):
    try:
        importlib.import_module(f"baselines.{_name}")
    except ModuleNotFoundError as _exc:  # a method still being written must not break the others
        if _exc.name != f"baselines.{_name}":
            raise
