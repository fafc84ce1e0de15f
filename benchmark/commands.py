"""The subcommands of ``python -m benchmark`` (each registered with ``@command``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from oefsmc.errors import UserError

from .cli import add_data_args, add_fewshot_args, command, emit_json
from .plugins import load_plugins


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------- fewshot
def _fewshot_args(p: argparse.ArgumentParser) -> None:
    add_data_args(p)
    add_fewshot_args(p)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object, the last line of stdout")


def _fewshot_run(args) -> int:
    from oefsmc.data import DATASETS, load_split
    from oefsmc.data.fewshot import sample_fewshot
    from oefsmc.oe.complementary import complementary_distribution, ood_class_weights
    spec = DATASETS.get(args.dataset)
    train = load_split(args.dataset, args.data_root, "train", args.download)
    fs = sample_fewshot(train.labels.numpy(), spec.num_classes, args.dataset, args.num, args.balanced,
                        args.imbalance_ratio, args.seed)
    gamma_dist = complementary_distribution(fs.class_counts)
    out = {**fs.to_json(), "dataset": args.dataset, "num": args.num, "balanced": args.balanced,
           "imbalance_ratio": None if args.balanced else args.imbalance_ratio, "seed": args.seed,
           "pool": train.source, "pool_size": len(train),
           "ood_label_distribution": gamma_dist.tolist(), "class_weights": ood_class_weights(gamma_dist).tolist()}
    if args.json:
        emit_json(out)
    else:
        print(f"{args.dataset}: Num {args.num}, class counts {fs.class_counts}")
        print(f"OOD label distribution (Gamma): {[round(g, 4) for g in out['ood_label_distribution']]}")
    return 0


command("fewshot", "draw a few-sample set and print its class counts and indices")((_fewshot_args, _fewshot_run))


# ----------------------------------------------------------------------------------------------- run
def _cell_args(p: argparse.ArgumentParser) -> None:
    add_data_args(p)
    p.add_argument("--arch", required=True, help="architecture, e.g. resnet32 | vgg16 | resnet34 | demo_vgg")
    add_fewshot_args(p)
    p.add_argument("--method", required=True, help="cd | fskd | mir | practise")
    p.add_argument("--oe", default="none", help="none | full | no-comp | no-ft | ft-only")
    p.add_argument("--teacher", default=None, help="teacher checkpoint (default: train one and cache it)")
    p.add_argument("--teacher-normalization", default="auto", help="auto | imagenet | cifar | digits")
    p.add_argument("--schedule", default="official", help="official | cpu | demo")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                   help="override a hyperparameter, e.g. --set mir.iters=500 --set oe.lambda=0.5 (see `params`)")
    p.add_argument("--ood", default=None, help="OOD source (default per dataset; same as --set oe.ood=)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object, the last line of stdout")


def cell_from_args(args) -> dict:
    from oefsmc.core.params import parse_overrides
    return {"dataset": args.dataset, "arch": args.arch, "num": args.num, "balanced": args.balanced,
            "imbalance_ratio": args.imbalance_ratio, "method": args.method, "oe": args.oe, "seed": args.seed,
            "schedule": args.schedule, "overrides": parse_overrides(args.overrides), "data_root": args.data_root,
            "teacher": args.teacher, "teacher_normalization": args.teacher_normalization, "ood": args.ood,
            "device": args.device}


def _run_run(args) -> int:
    from oefsmc.pipeline import resolve_config, run_config
    load_plugins()
    resolved = resolve_config(cell_from_args(args))
    _log(f"running {args.method} ({args.oe}) on {args.arch}/{args.dataset}, Num {args.num}, seed {args.seed}")
    record = run_config(resolved, log=_log)
    m = record["metrics"]
    _log(f"teacher {m['teacher_top1']:.2f}  pruned {m['top1_pruned']:.2f}  final {m['top1']:.2f}  "
         f"({record['timings']['total_s']:.1f} s)")
    if args.json:
        emit_json(record)
    return 0


command("run", "run one cell (method x OE variant x seed) and print its record")((_cell_args, _run_run))


# ------------------------------------------------------------------------------------------- teacher
def _teacher_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["train", "eval"], help="train (resumable) or evaluate a teacher")
    add_data_args(p)
    p.add_argument("--arch", required=True, help="architecture, e.g. resnet32 | vgg16 | demo_vgg")
    p.add_argument("--teacher", default=None, help="checkpoint to evaluate (eval); default: the suite's cached one")
    p.add_argument("--teacher-normalization", default="auto",
                   help="auto (from the sidecar) | imagenet | cifar | digits")
    p.add_argument("--out", default=None, metavar="PATH",
                   help="train: write the teacher here (+ PATH.json sidecar; PATH.ckpt while training); "
                        "default: the suite's cache, where cells find it")
    p.add_argument("--precision", default=None, choices=["auto", "fp32", "bf16"],
                   help="train: auto (default: bf16 where the device has it natively, else fp32), fp32, or bf16 "
                        "autocast + channels_last (notes, section 9)")
    p.add_argument("--switch-precision", action="store_true",
                   help="train: carry on a resume checkpoint begun in the other precision (e.g. bf16 begun on a CPU "
                        "with native bf16, continued in fp32 on one without); each epoch's precision is recorded")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="teacher.NAME=VALUE",
                   help="shorten the recipe, e.g. --set teacher.epochs=2 (epochs, batch_size, lr, milestones, "
                        "weight_decay, momentum); a shortened teacher has its own key")
    p.add_argument("--max-epochs", type=int, default=None, metavar="N",
                   help="train: stop after N more epochs (resume later from PATH.ckpt with the same command)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")


def _teacher_train(args, spec, device) -> dict:
    from oefsmc.core.params import parse_overrides
    from oefsmc.teacher_store import (DEFAULT_TRAIN_PRECISION, resolve_teacher, resolve_train_precision,
                                      train_and_save, trained_recipe, trained_teacher_path)
    if args.max_epochs is not None and args.max_epochs < 1:
        raise UserError(f"--max-epochs {args.max_epochs}: must be at least 1")
    overrides = parse_overrides(args.overrides)
    precision = resolve_train_precision(args.precision or DEFAULT_TRAIN_PRECISION, args.device)
    recipe = trained_recipe(args.dataset, args.arch, overrides)
    ident = resolve_teacher(args.dataset, args.arch, args.data_root, None, "auto", overrides, precision,
                            device=args.device)
    out = Path(args.out) if args.out else trained_teacher_path(ident["key"])
    if out.is_dir():
        raise UserError(f"--out {out} is a directory: pass the path of the checkpoint file to write")
    from .preflight import check_writable_dir
    check_writable_dir(out.parent, "--out")
    if not args.out and device.type == "cpu":
        # into the cells' teacher cache, under the key a cell computes: train it as a cell would, on one
        # thread (CPU reductions follow the thread count; a file passed with --teacher is keyed by its sha256)
        import torch

        from oefsmc.pipeline import CELL_THREADS
        torch.set_num_threads(CELL_THREADS)
        _log(f"into the cells' teacher cache: {CELL_THREADS} thread, as a cell trains it (--out PATH: all cores)")
    _log(f"training {args.arch} on {args.dataset} with {recipe.name} ({recipe.epochs} epochs, {precision}) -> {out}")
    meta = train_and_save(args.dataset, args.arch, args.data_root, recipe, out, device, precision, _log,
                          progress=not args.no_progress, max_epochs_this_run=args.max_epochs,
                          allow_precision_change=args.switch_precision)
    if not meta["complete"]:
        _log(f"stopped after epoch {meta['train']['epochs_done']}/{recipe.epochs}; rerun the same command to resume "
             f"from {out}.ckpt")
        return {"complete": False, "epochs_done": meta["train"]["epochs_done"], "out": str(out)}
    print(f"{args.arch} on {args.dataset}: test top-1 {meta['top1']:.2f} (written to {out} and {out}.json)")
    return {"complete": True, "top1": meta["top1"], "out": str(out), "sha256": sha256_of(out),
            "train": meta["train"]}


def sha256_of(path) -> str:
    from oefsmc.models.teacher import sha256_file
    return sha256_file(Path(path))


def _teacher_run(args) -> int:
    from oefsmc.core.evaluate import evaluate
    from oefsmc.data import DATASETS, load_split
    from oefsmc.models.teacher import Normalizer, load_teacher_file
    from oefsmc.teacher_store import load_teacher, pick_device, resolve_teacher
    spec = DATASETS.get(args.dataset)
    device = pick_device(args.device)
    if args.action == "train":
        out = _teacher_train(args, spec, device)
        if args.json:
            emit_json(out)
        return 0
    if args.teacher:
        teacher = load_teacher_file(args.teacher, args.arch, spec.num_classes, spec.channels,
                                    args.teacher_normalization, device)
    else:
        from oefsmc.core.params import parse_overrides
        ident = resolve_teacher(args.dataset, args.arch, args.data_root, None, "auto",
                                parse_overrides(args.overrides), args.precision or "auto", device=args.device)
        teacher = load_teacher(ident, args.dataset, args.arch, args.data_root, device, _log)
    test = load_split(args.dataset, args.data_root, "test", args.download)
    acc = evaluate(teacher.model, test.images, test.labels, spec.num_classes, 500,
                   Normalizer(teacher.normalization, device))
    out = {"top1": round(acc["top1"], 4), "per_class": acc["per_class"], "head": acc["head"],
           "medium": acc["medium"], "tail": acc["tail"], "normalization": teacher.normalization,
           "teacher": teacher.identity, "test_source": test.source, "test_size": len(test)}
    if args.json:
        emit_json(out)
    else:
        print(f"{args.arch} on {args.dataset}: top-1 {acc['top1']:.2f}")
    return 0


command("teacher", "train (resumable, cached) or evaluate a teacher")((_teacher_args, _teacher_run))


# -------------------------------------------------------------------------------------------- params
def _params_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default=None, help="only this method's parameters")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object, the last line of stdout")


def _params_run(args) -> int:
    from oefsmc.core.finetune import FINETUNE_PARAMS
    from oefsmc.core.method import METHODS
    from oefsmc.core.params import describe
    from oefsmc.oe.params import OE_PARAMS
    load_plugins()
    spaces = {name: METHODS.get(name).params for name in METHODS.names()}
    if args.method:
        spaces = {args.method: METHODS.get(args.method).params}
    spaces.update({"finetune": FINETUNE_PARAMS, "oe": OE_PARAMS})
    if args.json:
        emit_json({ns: {n: {"default": p.default, "schedules": dict(p.schedules), "doc": p.doc,
                            "accepts": p.accepts()} for n, p in ps.items()} for ns, ps in spaces.items()})
    else:
        for ns, ps in spaces.items():
            print("\n".join(describe(ns, ps)))
    return 0


command("params", "list every hyperparameter name, default, schedule value and range")((_params_args, _params_run))


# --------------------------------------------------------------------------------------------- sweep
def _sweep_args(p: argparse.ArgumentParser) -> None:
    try:
        from .sweep_cli import add_sweep_arguments
    except ImportError:
        return
    add_sweep_arguments(p)


def _sweep_run(args) -> int:
    try:
        from .sweep_cli import run_sweep_command
    except ImportError:
        raise UserError("the sweep orchestrator is not installed in this checkout yet") from None
    return run_sweep_command(args)  # benchmark.hooks registers the methods for the real pipeline


command("sweep", "run a paper artifact's grid (cached, resumable) and render it")((_sweep_args, _sweep_run))
