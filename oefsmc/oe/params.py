"""The OE add-on's named hyperparameters (``--set oe.NAME=VALUE``)."""
from ..core.params import Param, between

OE_PARAMS = {
    "lambda": Param(0.5, "Eq. 7 weight of the few-sample distillation term (Sec. 5.5: best 0.5)", range=between(0, 1)),
    "eta": Param(2.5, "Eq. 9 weight of the weighted OOD cross-entropy (Sec. 5.5: best 2.5)", range=between(0, 1e3)),
    "aux_size": Param(0, "auxiliary-set size m; 0 means m = Num (Sec. 5.1: matches the few-sample set)",
                      range=between(0, 3e5)),
    "pool_size": Param(0, "OOD pool size n; 0 means max(500, m) (Sec. 4.3 pre-samples 500)", range=between(0, 3e5)),
    "ood": Param("", "OOD source (random300k:PATH, cifar100, cifar10, svhn, folder:PATH, npz:PATH, "
                     "demo-patches); empty means the profile's default"),
    "labels": Param("fixed", "auxiliary labels drawn once and reused in fine-tuning (the paper) or redrawn "
                             "every batch (Open-Sampling)", choices=("fixed", "per-batch")),
    "class_weights": Param("rebalanced", "Eq. 6 reading: frequencies of the OOD-rebalanced set, or inverse "
                                         "few-sample frequency", choices=("rebalanced", "inverse")),
}


#: The OOD source of a dataset when neither ``--set oe.ood`` nor the cell (its profile) names one.
DEFAULT_OOD = {"cifar10": "cifar100", "cifar100": "cifar10", "digits": "demo-patches", "imagenet": "svhn"}


def with_derived_defaults(oe: dict, num: int, cell_ood: str | None, dataset: str) -> dict:
    """``oe`` with the settings whose default depends on the cell filled in (Sec. 5.1 / 4.3): m = Num
    (``aux_size`` 0), n = max(500, m) (``pool_size`` 0), and the OOD source = the cell's, else the dataset's
    :data:`DEFAULT_OOD` (``ood`` empty).  Pure: the pipeline and the record checks resolve with it alike."""
    out = dict(oe)
    out["ood"] = out["ood"] or cell_ood or DEFAULT_OOD.get(dataset, "")
    out["aux_size"] = out["aux_size"] or int(num)
    out["pool_size"] = out["pool_size"] or max(500, out["aux_size"])
    return out
