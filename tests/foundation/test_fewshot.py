import numpy as np
import pytest

from oefsmc.data.fewshot import (balanced_counts, class_counts, ldam_longtail_indices, longtail_counts,
                                 sample_fewshot)
from oefsmc.errors import UserError


def reference_longtail(num, k, ratio):
    """Independent largest-remainder apportionment (the rule, written out again without the suite's code)."""
    w = [ratio ** (-i / (k - 1)) for i in range(k)]
    total = sum(w)
    quotas = [num * wi / total for wi in w]
    floors = [int(q) for q in quotas]
    rem = sorted(range(k), key=lambda i: (-(quotas[i] - floors[i]), i))
    for i in rem[: num - sum(floors)]:
        floors[i] += 1
    return floors


def test_issue_example():
    assert longtail_counts(10, 10, 100) == [4, 2, 2, 1, 1, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("num", [10, 20, 50, 100, 1000])
@pytest.mark.parametrize("k", [10, 100, 1000])
def test_counts_follow_rule(num, k):
    lt = longtail_counts(num, k, 100)
    assert sum(lt) == num and lt == reference_longtail(num, k, 100)
    assert all(a >= b for a, b in zip(lt, lt[1:])), "head-to-tail counts must not increase"
    bal = balanced_counts(num, k)
    assert sum(bal) == num and max(bal) - min(bal) <= 1
    assert bal == sorted(bal, reverse=True), "the remainder goes to the lowest class indices"
    assert bal[0] == num // k + (1 if num % k else 0)


def test_known_values():
    assert balanced_counts(25, 10) == [3] * 5 + [2] * 5
    assert longtail_counts(100, 10, 100) == [40, 24, 15, 9, 5, 3, 2, 1, 1, 0]


def pool(per_class=50, k=10, seed=1):
    rng = np.random.default_rng(seed)
    return rng.permutation(np.repeat(np.arange(k), per_class))


@pytest.mark.parametrize("balanced", [True, False])
def test_sampling_is_valid_and_reproducible(balanced):
    labels = pool()
    a = sample_fewshot(labels, 10, "cifar10", 50, balanced, 100, seed=3)
    b = sample_fewshot(labels, 10, "cifar10", 50, balanced, 100, seed=3)
    c = sample_fewshot(labels, 10, "cifar10", 50, balanced, 100, seed=4)
    assert np.array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)
    assert len(set(a.indices.tolist())) == 50
    assert np.bincount(labels[a.indices], minlength=10).tolist() == a.class_counts


def test_seed_key_excludes_method_and_variant():
    # the sampler has no method/variant argument at all; the key names exactly the five inputs
    fs = sample_fewshot(pool(), 10, "cifar10", 20, False, 100, seed=0)
    assert fs.seed_key == "fewshot|cifar10|20|imbalanced|100.0|0"


@pytest.mark.parametrize("kwargs,match", [
    ({"num": 0}, "positive"), ({"num": -3}, "positive"), ({"num": 10_000}, "larger than"),
    ({"num": 10, "ratio": 0.5}, "ratio"), ({"num": 400, "balanced": False}, "needs"),
])
def test_bad_input_is_a_user_error(kwargs, match):
    args = {"num": 10, "balanced": False, "ratio": 100.0, **kwargs}
    with pytest.raises(UserError, match=match):
        sample_fewshot(pool(), 10, "cifar10", args["num"], args["balanced"], args["ratio"], 0)


def test_ldam_cifar10_size():
    labels = np.repeat(np.arange(10), 5000)
    idx = ldam_longtail_indices(labels, 10, 100)
    assert len(idx) == 12406
    assert np.bincount(labels[idx]).tolist() == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def test_class_counts_balanced_vs_ratio_one():
    assert class_counts(10, 10, True) == [1] * 10
    assert class_counts(10, 10, False, 1.0) == [1] * 10
