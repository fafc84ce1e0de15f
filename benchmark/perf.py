"""``python -m benchmark perf``: measured speed and memory figures (a benchmark script, not a test).

Prints one table (and, with ``--json``, one JSON object as the last stdout line):
- evaluation throughput (images/s) of ResNet-32 and VGG-16 on the CIFAR-10 test set: plain eager fp32,
  channels_last, bf16 autocast, and the suite's evaluation path, with each mode's top-1;
- FSKD with 500 samples on ResNet-32: seconds of the compression stage (anchor: the FSKD paper reports
  19.3 s for VGG-16 Prune-B with 500 samples on a 1080 Ti);
- seconds per cell for each method on the ``cifar10-real`` setting, and the per-cell overhead
  (interpreter start-up and imports, data, teacher);
- the demo Table 2, cold (fresh results and teacher cache) and with a warm cache;
- peak memory (max RSS of this process and of its children).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from oefsmc.axes import METHOD_NAMES

from .cli import command, emit_json
from .plugins import load_plugins

if TYPE_CHECKING:
    import torch

REPO = Path(__file__).resolve().parents[1]


def _timeit(fn, repeat: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def eval_throughput(arch: str, model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, norm,
                    batch: int = 500) -> list[dict]:
    """Images/s and top-1 of the evaluation modes on the whole test set (best of 3 passes)."""
    import torch

    from oefsmc.core.evaluate import predict
    model = model.eval()
    rows = []

    def plain():
        with torch.no_grad():
            return torch.cat([model(norm(images[i:i + batch])).argmax(1) for i in range(0, len(images), batch)])

    def channels_last():
        m = model.to(memory_format=torch.channels_last)
        with torch.no_grad():
            out = torch.cat([m(norm(images[i:i + batch]).contiguous(memory_format=torch.channels_last)).argmax(1)
                             for i in range(0, len(images), batch)])
        model.to(memory_format=torch.contiguous_format)
        return out

    def bf16():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return torch.cat([model(norm(images[i:i + batch])).argmax(1) for i in range(0, len(images), batch)])

    def suite():
        return predict(model, images, batch, norm, precision="auto")

    for name, fn in (("eager fp32 (baseline)", plain), ("channels_last", channels_last), ("bf16 autocast", bf16),
                     ("suite evaluate()", suite)):
        pred = fn()
        secs = _timeit(fn, repeat=2)
        rows.append({"what": f"eval {arch}: {name}", "images_per_s": len(images) / secs, "seconds": secs,
                     "top1": float((pred.cpu() == labels).float().mean() * 100)})
    return rows


def _cifar_rows(data_root: str, teacher_path: str, rows: list[dict]) -> None:
    from oefsmc.data import load_split
    from oefsmc.models import build_model
    from oefsmc.models.teacher import Normalizer, load_teacher_file
    test = load_split("cifar10", data_root, "test")
    teacher = load_teacher_file(teacher_path, "resnet32", 10, 3)
    rows += eval_throughput("resnet32", teacher.model, test.images, test.labels, Normalizer("imagenet"))
    vgg = build_model("vgg16", 10, 3).eval()  # throughput only: random weights (no published VGG-16 teacher)
    rows += [dict(r, top1=None) for r in eval_throughput("vgg16 (random weights)", vgg, test.images,
                                                          test.labels, Normalizer("cifar"))]


def _cell(cell: dict) -> dict:
    from oefsmc.pipeline import resolve_config, run_config
    load_plugins()
    return run_config(resolve_config(cell))


def _method_rows(data_root: str, teacher_path: str, rows: list[dict]) -> None:
    base = {"dataset": "cifar10", "arch": "resnet32", "balanced": False, "imbalance_ratio": 100.0, "oe": "none",
            "seed": 0, "schedule": "cpu", "data_root": data_root, "teacher": teacher_path, "device": "cpu"}
    rec = _cell({**base, "num": 500, "method": "fskd"})
    rows.append({"what": "FSKD compress, 500 samples, ResNet-32 (target <= 20 s; FSKD paper: 19.3 s VGG-16 "
                         "Prune-B on a 1080 Ti)", "seconds": rec["timings"]["compress_s"],
                 "top1": rec["metrics"]["top1"], "note": f"top1_pruned {rec['metrics']['top1_pruned']:.2f}"})
    for method in METHOD_NAMES:
        rec = _cell({**base, "num": 50, "method": method})
        t = rec["timings"]
        rows.append({"what": f"cell {method} (cifar10-real, Num 50, cpu schedule)", "seconds": t["total_s"],
                     "top1": rec["metrics"]["top1"],
                     "note": f"prune {t['prune_s']:.1f}s compress {t['compress_s']:.1f}s eval {t['eval_s']:.1f}s"})
    startup = subprocess.run([sys.executable, "-c", "import time; t=time.perf_counter(); import oefsmc.pipeline, "
                              "baselines; print(time.perf_counter()-t)"], capture_output=True, text=True, cwd=REPO)
    rows.append({"what": "per-cell overhead: interpreter start-up + imports (paid once per worker)",
                 "seconds": float(startup.stdout.strip() or "nan")})
    from oefsmc.data.sources import load_split
    load_split.cache_clear()
    t0 = time.perf_counter()
    load_split("cifar10", data_root, "train"), load_split("cifar10", data_root, "test")
    rows.append({"what": "per-cell overhead: load CIFAR-10 arrays (paid once per worker)",
                 "seconds": time.perf_counter() - t0})
    from oefsmc.models.teacher import load_teacher_file
    t0 = time.perf_counter()
    load_teacher_file(teacher_path, "resnet32", 10, 3)
    rows.append({"what": "per-cell overhead: load teacher (paid once per worker)", "seconds": time.perf_counter() - t0})


def _teacher_rows(data_root: str, rows: list[dict], steps: int = 30) -> None:
    """Teacher training throughput (ResNet-32, CIFAR-10 images, batch 128): an eager fp32 loop (normalise
    and augment each batch from uint8, default memory format) against the suite's trainer in fp32 and
    bf16, each over ``steps`` iterations after one warm-up epoch of the same size."""
    import torch
    import torch.nn.functional as F

    from oefsmc.core.augment import random_crop_flip
    from oefsmc.data import load_split
    from oefsmc.models import build_model
    from oefsmc.models.teacher import RECIPES, Normalizer
    from oefsmc.models.teacher_training import apply_recipe_overrides, train_teacher
    train = load_split("cifar10", data_root, "train")
    images, labels = train.images[:128 * steps], train.labels[:128 * steps]
    recipe = apply_recipe_overrides(RECIPES.get("akamaster-resnet"), {"teacher.epochs": "1"})

    def eager() -> float:
        torch.manual_seed(0)
        model = build_model("resnet32", 10, 3).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        norm, gen = Normalizer("cifar"), torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        for s in range(steps):
            x = random_crop_flip(norm(images[s * 128:(s + 1) * 128]), gen, 4)
            loss = F.cross_entropy(model(x), labels[s * 128:(s + 1) * 128])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return 128 * steps / (time.perf_counter() - t0)

    def trainer(precision: str) -> float:
        stats = train_teacher(build_model("resnet32", 10, 3), images, labels, recipe, 0, torch.device("cpu"),
                              precision=precision)
        return stats["history"][-1]["img_per_s"]

    eager()
    for name, fn in (("eager fp32 loop (baseline)", eager), ("suite trainer fp32", lambda: trainer("fp32")),
                     ("suite trainer bf16 + channels_last", lambda: trainer("bf16"))):
        rows.append({"what": f"teacher training ResNet-32, batch 128: {name}", "images_per_s": fn()})


def _demo_rows(rows: list[dict], jobs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, OEFSMC_CACHE=str(Path(tmp) / "cache"))
        cmd = [sys.executable, "-m", "benchmark", "sweep", "--table", "2", "--results-dir", str(Path(tmp) / "res"),
               "--out-dir", str(Path(tmp) / "out"), "--no-progress", "--jobs", str(jobs)]
        for label in ("cold: no records, no cached teachers", "warm cache: every record present"):
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
            rows.append({"what": f"demo Table 2 ({label}; target cold <= 300 s, warm <= 10 s)",
                         "seconds": time.perf_counter() - t0, "note": f"exit {proc.returncode}"})


def _add(p: argparse.ArgumentParser) -> None:
    default_root = REPO.parent / "shared" / "data"
    p.add_argument("--data-root", default=str(default_root), help="CIFAR-10 arrays (../shared/data layout)")
    p.add_argument("--teacher", default=None, help="ResNet-32 CIFAR-10 checkpoint (default: the published one)")
    p.add_argument("--skip", action="append", default=[], choices=["eval", "teacher", "methods", "demo"],
                   help="leave out a part: eval (throughput), teacher (training throughput), methods (per-method "
                        "cost), demo (the demo sweep); repeatable")
    p.add_argument("--jobs", type=int, default=2, help="workers for the demo Table 2 sweep")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")


def _run(args) -> int:
    import torch

    from oefsmc.errors import UserError
    teacher = args.teacher or next(iter(sorted((Path(args.data_root) / "teachers").glob("cifar10_resnet32-*.th"))),
                                   None)
    if ("eval" not in args.skip or "methods" not in args.skip) and (teacher is None or
                                                                     not Path(args.data_root, "cifar10").is_dir()):
        raise UserError("perf needs CIFAR-10 arrays and a ResNet-32 teacher: pass --data-root DIR and --teacher PATH "
                        "(or --skip eval --skip methods)")
    torch.set_num_threads(os.cpu_count() or 1)
    rows: list[dict] = []
    if "eval" not in args.skip:
        _cifar_rows(args.data_root, str(teacher), rows)
    if "teacher" not in args.skip:
        _teacher_rows(args.data_root, rows)
    if "methods" not in args.skip:
        os.environ["OEFSMC_COMPRESSED_CACHE"] = "0"  # measure the compression stage, not a cache hit
        _method_rows(args.data_root, str(teacher), rows)
    if "demo" not in args.skip:
        _demo_rows(rows, args.jobs)
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    rows.append({"what": "peak memory (max RSS) of this process / of its largest child", "note":
                 f"{peak_self:.0f} MiB / {peak_children:.0f} MiB"})
    machine = f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    print(f"machine: {machine}")
    print(f"{'what':<95} {'images/s':>10} {'seconds':>9} {'top1':>7}  note")
    for r in rows:
        ips = f"{r['images_per_s']:.0f}" if r.get("images_per_s") else ""
        secs = f"{r['seconds']:.2f}" if r.get("seconds") is not None else ""
        top1 = f"{r['top1']:.2f}" if r.get("top1") is not None else ""
        print(f"{r['what']:<95} {ips:>10} {secs:>9} {top1:>7}  {r.get('note', '')}")
    if args.json:
        emit_json({"machine": machine, "rows": rows})
    return 0


command("perf", "measure evaluation throughput, FSKD speed, per-cell cost and the demo sweep")((_add, _run))
