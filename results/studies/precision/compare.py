"""The same cifar10-real cells, computed twice: evaluated in bf16 on a native-bf16 CPU (session 6) and in fp32
on an AVX2 CPU (session 7), every other field of the experiment equal.

Both runs train in fp32 (only evaluation differs in precision), but on CPUs with different vector units, so
the compression and fine-tuning weights need not be bit-identical either.  The difference per cell therefore
bounds what the machine and the evaluation precision together move a record by; it is what the pinned fp32
precision of the real-data profiles (reproduction notes, section 7) protects the grids from mixing.

Run from the repository root while both kinds of record are in ``results/cifar10-real/`` (the bf16 ones were
deleted afterwards as unused; they stay readable at the commit named in ``precision_compare.json``):
``.venv/bin/python results/studies/precision/compare.py``.  Writes ``precision_compare.json`` and ``.md`` here.
"""
import json
import statistics
import subprocess
from pathlib import Path

from benchmark.record_plan import param_spaces, cell_identity

HERE = Path(__file__).resolve().parent
RECORDS = HERE.parents[1] / "cifar10-real"
METRICS = ("top1_compressed", "top1")


def _identity(cell: dict, spaces: dict) -> str:
    return cell_identity({k: v for k, v in cell.items() if k != "eval_precision"}, spaces)


def main() -> None:
    spaces = param_spaces()
    by_precision: dict[str, dict[str, dict]] = {"bf16": {}, "fp32": {}}
    for path in sorted(RECORDS.glob("*.json")):
        rec = json.loads(path.read_text())
        precision = (rec.get("config") or {}).get("eval_precision")
        if rec.get("schema_version") == 2 and rec.get("status") == "ok" and precision in by_precision:
            by_precision[precision][_identity(rec["cell"], spaces)] = rec
    rows = []
    for ident, old in by_precision["bf16"].items():
        new = by_precision["fp32"].get(ident)
        if new is None:
            continue
        c = old["cell"]
        row = {"method": c["method"], "variant": c["oe"], "num": c["num"], "seed": c["seed"],
               "bf16_key": old["key"], "fp32_key": new["key"],
               "bf16_cpu": old["env"].get("cpu_capability", "native bf16 (not recorded)"),
               "fp32_cpu": new["env"].get("cpu_capability")}
        for m in METRICS:
            row[f"{m}_bf16"] = old["metrics"][m]
            row[f"{m}_fp32"] = new["metrics"][m]
            row[f"{m}_diff"] = new["metrics"][m] - old["metrics"][m]
        rows.append(row)
    if not rows:
        raise SystemExit("no bf16/fp32 pairs in results/cifar10-real: check out the commit named in "
                         "precision_compare.json (the bf16 records were deleted after it) and run there")
    rows.sort(key=lambda r: (r["num"], r["method"], r["variant"], r["seed"]))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    summary = {}
    for m in METRICS:
        diffs = [r[f"{m}_diff"] for r in rows]
        if diffs:
            summary[m] = {"n": len(diffs), "mean": statistics.fmean(diffs),
                          "mean_abs": statistics.fmean(abs(d) for d in diffs), "max_abs": max(abs(d) for d in diffs),
                          "identical": sum(d == 0 for d in diffs)}
    out = {"records_at_commit": commit, "pairs": rows, "summary": summary}
    (HERE / "precision_compare.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = ["# bf16 on a native-bf16 CPU vs fp32 on an AVX2 CPU: the same cifar10-real cells", "",
             f"{len(rows)} pairs (records at commit `{commit[:12]}`; `compare.py` says how they were made).", "",
             "| metric | pairs | identical | mean fp32 - bf16 | mean abs | max abs |", "|---|---|---|---|---|---|"]
    for m, s in summary.items():
        lines.append(f"| {m} | {s['n']} | {s['identical']} | {s['mean']:+.3f} | {s['mean_abs']:.3f} | "
                     f"{s['max_abs']:.2f} |")
    lines += ["", "| Num | method | variant | seed | compressed bf16 | compressed fp32 | top-1 bf16 | top-1 fp32 "
              "| diff |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['num']} | {r['method']} | {r['variant']} | {r['seed']} | {r['top1_compressed_bf16']:.2f} | "
                     f"{r['top1_compressed_fp32']:.2f} | {r['top1_bf16']:.2f} | {r['top1_fp32']:.2f} | "
                     f"{r['top1_diff']:+.2f} |")
    (HERE / "precision_compare.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:8 + len(summary)]))


if __name__ == "__main__":
    main()
