"""Data: in-distribution datasets (a registry), few-sample sets, OOD pools and the embedded demo."""
from .imageset import ImageSet  # noqa: F401
from .sources import DATASETS, DatasetSpec, load_split  # noqa: F401
from . import demo  # noqa: F401  (registers the embedded demo dataset)
