import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from oefsmc.data import load_split
from oefsmc.data.ood import ood_pool, to_resolution
from oefsmc.errors import UserError
from oefsmc.models.teacher import read_state_dict

REPO = Path(__file__).resolve().parents[2]


def cli(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr)
    return proc


def test_help_lists_subcommands():
    out = cli("--help").stdout
    for sub in ("fewshot", "run", "teacher", "params", "sweep"):
        assert sub in out
    assert "--num" in cli("fewshot", "--help").stdout


@pytest.mark.slow
def test_fewshot_json_last_line_demo():
    proc = cli("fewshot", "--dataset", "digits", "--num", "20", "--seed", "1", "--json")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rec["class_counts"] == [8, 5, 3, 2, 1, 1, 0, 0, 0, 0]
    train = load_split("digits", None, "train")
    labels = train.labels.numpy()[rec["indices"]]
    assert np.bincount(labels, minlength=10).tolist() == rec["class_counts"]
    assert len(rec["ood_label_distribution"]) == 10 and abs(sum(rec["ood_label_distribution"]) - 1) < 1e-9
    again = json.loads(cli("fewshot", "--dataset", "digits", "--num", "20", "--seed", "1", "--json")
                       .stdout.strip().splitlines()[-1])
    assert again["indices"] == rec["indices"]


@pytest.mark.slow
def test_fewshot_balanced_gives_uniform_gamma():
    rec = json.loads(cli("fewshot", "--dataset", "digits", "--num", "30", "--balanced", "--json")
                     .stdout.strip().splitlines()[-1])
    assert rec["class_counts"] == [3] * 10
    assert np.allclose(rec["ood_label_distribution"], 0.1) and np.allclose(rec["class_weights"], 1.0)


@pytest.mark.parametrize("args,needle", [
    (["fewshot", "--dataset", "mnist", "--num", "10"], "unknown dataset"),
    (["fewshot", "--dataset", "digits", "--num", "0"], "out of range"),
    (["fewshot", "--dataset", "digits", "--num", "5000"], "larger than"),
    (["fewshot", "--dataset", "digits", "--num", "10", "--imbalance-ratio", "0.5"], "ratio"),
    (["fewshot", "--dataset", "cifar10", "--num", "10"], "--data-root"),
    (["fewshot", "--dataset", "cifar10", "--num", "10", "--data-root", "/nonexistent/dir"], "--data-root"),
    (["run", "--dataset", "digits", "--arch", "nope", "--num", "10", "--method", "fskd"], "unknown architecture"),
    (["run", "--dataset", "digits", "--arch", "demo_vgg", "--num", "10", "--method", "fskd", "--set", "x"],
     "NAME=VALUE"),
])
@pytest.mark.slow
def test_bad_input_one_line_error(args, needle):
    proc = cli(*args, check=False)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert needle in err and "Traceback" not in err and len(err.splitlines()) == 1, err


def test_demo_split_sizes():
    train, test = load_split("digits", None, "train"), load_split("digits", None, "test")
    assert len(test) == 400 and torch.bincount(test.labels).tolist() == [40] * 10
    assert torch.bincount(train.labels).min() >= 130
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (8, 8, 1)


def test_ood_pool_seeded_dedup_and_resized():
    train = load_split("digits", None, "train")
    a = ood_pool("digits", train, "demo-patches", 100, 0, None)
    b = ood_pool("digits", train, "demo-patches", 100, 0, None)
    c = ood_pool("digits", train, "demo-patches", 100, 1, None)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert a.images.shape == (100, 8, 8, 1)


def test_ood_pool_drops_byte_identical_images(tmp_path):
    train = load_split("digits", None, "train")
    # an OOD file whose first 30 images are copies of in-distribution images
    ood = np.concatenate([train.images[:30].numpy(), np.full((70, 8, 8, 1), 7, np.uint8)
                          + np.arange(70, dtype=np.uint8)[:, None, None, None]])
    np.savez(tmp_path / "ood.npz", images=ood)
    pool = ood_pool("digits", train, f"npz:{tmp_path / 'ood.npz'}", 70, 0, None)
    assert len(pool.images) == 70 and pool.dropped_duplicates > 0
    id_bytes = {row.tobytes() for row in train.images.reshape(len(train), -1).numpy()}
    assert not any(row.tobytes() in id_bytes for row in pool.images.reshape(70, -1).numpy())
    assert sorted(pool.source_indices.tolist()) == list(range(30, 100))
    with pytest.raises(UserError, match="fewer than the pool size"):
        ood_pool("digits", train, f"npz:{tmp_path / 'ood.npz'}", 80, 0, None)


def test_an_ood_file_is_identified_and_drawn_by_its_content_not_its_path(tmp_path):
    from oefsmc.data.ood import path_source_identity
    train = load_split("digits", None, "train")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (100, 8, 8, 1), dtype=np.uint8)
    (tmp_path / "b").mkdir()
    np.savez(tmp_path / "ood.npz", images=images)
    np.savez(tmp_path / "b" / "copy.npz", images=images)
    np.savez(tmp_path / "other.npz", images=255 - images)                  # same size, other content
    ident = {name: path_source_identity("npz", str(tmp_path / name)) for name in ("ood.npz", "b/copy.npz",
                                                                                  "other.npz")}
    assert ident["ood.npz"] == ident["b/copy.npz"] != ident["other.npz"]
    pools = [ood_pool("digits", train, f"npz:{tmp_path / name}", 20, 0, None) for name in ("ood.npz", "b/copy.npz")]
    assert torch.equal(pools[0].images, pools[1].images)                   # the same draw at either path
    folder = path_source_identity("folder", str(tmp_path / "b"))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "copy.npz").write_bytes((tmp_path / "b" / "copy.npz").read_bytes())
    (tmp_path / "c" / "extra.bin").write_bytes(b"x")
    assert path_source_identity("folder", str(tmp_path / "c")) != folder   # a folder: its file list


def test_to_resolution_grey_and_resize():
    rgb = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    out = to_resolution(rgb, 8, 1)
    assert out.shape == (3, 8, 8, 1) and out.dtype == torch.uint8


class EvilPayload:
    """Unpickling this would run code (``__reduce__``); weights_only loading must refuse it."""

    def __reduce__(self):
        return (print, ("executed!",))


def test_pickled_code_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": EvilPayload()}, path)
    with pytest.raises(UserError, match="refusing"):
        read_state_dict(path)


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("depth,top1", [(20, 91.73), (32, 92.63), (56, 93.39)])
def test_published_teachers_reproduce(shared_data, depth, top1):
    ckpt = next((shared_data / "teachers").glob(f"cifar10_resnet{depth}-*.th"), None)
    if ckpt is None:
        pytest.skip(f"no published cifar10_resnet{depth}-*.th in {shared_data / 'teachers'}")
    proc = cli("teacher", "eval", "--dataset", "cifar10", "--arch", f"resnet{depth}", "--teacher", str(ckpt),
               "--data-root", str(shared_data), "--json")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rec["top1"] == pytest.approx(top1, abs=0.005)
    assert rec["normalization"] == "imagenet"


@pytest.mark.slow
@pytest.mark.realdata
def test_real_fewshot_indices(shared_data):
    rec = json.loads(cli("fewshot", "--dataset", "cifar10", "--num", "100", "--seed", "2", "--data-root",
                         str(shared_data), "--json").stdout.strip().splitlines()[-1])
    labels = np.load(shared_data / "cifar10" / "train.npz")["labels"]
    assert np.bincount(labels[rec["indices"]], minlength=10).tolist() == rec["class_counts"]
    assert len(set(rec["indices"])) == 100
