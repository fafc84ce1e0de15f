"""The paper profile's loaders on tiny files: torchvision's CIFAR python format, ImageNet val labels."""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from oefsmc.data import sources
from oefsmc.data.cifar_python import official_md5s_match, read_cifar_python
from oefsmc.data.imageset import ImageSet
from oefsmc.errors import UserError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmark"))
import paper_data  # noqa: E402


def test_unofficial_cifar_files_are_read_and_marked_unverified(tmp_path):
    paper_data.write_cifar10(tmp_path, per_class_train=3, per_class_test=2)
    sources.load_split.cache_clear()
    train = sources.load_split("cifar10", str(tmp_path), "train")
    test = sources.load_split("cifar10", str(tmp_path), "test")
    assert not official_md5s_match("cifar10", str(tmp_path))
    assert train.source == f"cifar-python-unverified:{tmp_path / 'cifar-10-batches-py'}"
    assert train.images.shape == (30, 32, 32, 3) and len(test) == 20
    assert train.classes == paper_data.CIFAR10_NAMES and sorted(set(train.labels.tolist())) == list(range(10))


def test_a_broken_cifar_folder_is_one_line_naming_the_fix(tmp_path):
    folder = paper_data.write_cifar10(tmp_path, per_class_train=1, per_class_test=1)
    (folder / "data_batch_3").unlink()
    with pytest.raises(UserError, match="data_batch_3 is missing"):
        read_cifar_python("cifar10", str(tmp_path), "train", 10)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="not a CIFAR python batch file"):
        read_cifar_python("cifar10", str(tmp_path), "test", 10)


def test_the_reader_never_runs_code_from_a_pickle(tmp_path):
    folder = paper_data.write_cifar10(tmp_path, per_class_train=1, per_class_test=1)

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": Evil(), "labels": [0]}, f, protocol=2)
    with pytest.raises(UserError, match="UnpicklingError"):
        read_cifar_python("cifar10", str(tmp_path), "test", 10)


def test_imagenet_val_is_labelled_by_the_training_wnids(tmp_path):
    for wnid in ("n01", "n02", "n03"):
        (tmp_path / "train" / wnid).mkdir(parents=True)
    assert sources._train_classes(tmp_path / "train") == ["n01", "n02", "n03"]
    images = torch.zeros((3, 4, 4, 3), dtype=torch.uint8)
    val = ImageSet(images, torch.tensor([0, 1, 1]), ["n02", "n03"], "folder:val")  # ImageFolder's own numbering
    fixed = sources._relabel(val, ["n01", "n02", "n03"])
    assert fixed.labels.tolist() == [1, 2, 2] and fixed.classes == ["n01", "n02", "n03"]
    with pytest.raises(UserError, match="n09"):
        sources._relabel(ImageSet(images, torch.tensor([0, 0, 0]), ["n09"], "folder:val"), ["n01"])
    with pytest.raises(UserError, match="no ImageNet train folder"):
        sources._train_classes(tmp_path / "nowhere")


def test_a_malformed_300k_file_is_refused(tmp_path):
    from oefsmc.data.ood import load_candidates
    np.save(tmp_path / "bad.npy", np.zeros((4, 32, 32), dtype=np.float32))
    with pytest.raises(UserError, match="expected uint8 N x H x W x 3"):
        load_candidates(f"random300k:{tmp_path / 'bad.npy'}", None)
    good = paper_data.write_random300k(tmp_path, n=5)
    assert load_candidates(f"random300k:{good}", None).shape == (5, 32, 32, 3)
