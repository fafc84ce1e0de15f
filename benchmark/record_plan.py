"""Plans built from the records alone, for ``--render-only``: no dataset is opened, no teacher hashed.

A normal plan resolves every grid entry (:func:`benchmark.plan.plan_sweep`), which reads the data files
for their fingerprints and hashes the teachers.  Rendering needs none of that: every record carries the
cell it was computed for (``record["cell"]``), so grid entries are matched to records on the cell's
*identity* -- the experiment's own fields (dataset, arch, Num, balance and ratio, method, OE variant,
seed, schedule, and the overrides that differ from their defaults), without its locations (data root,
teacher path, OOD path, device).  A fresh clone without ``../shared`` can then render the committed
records.  When two records of the current schema match one entry (e.g. the same cell computed with two
teachers), the newest is used and one line says so.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Callable, Iterable, Optional

from oefsmc.oe.params import with_derived_defaults

from .cache import ResultCache, canonical_json
from .grids import GridEntry

#: Cell fields that are locations or machine choices, not the experiment (the record's config holds the
#: identities: the teacher's sha256, the data fingerprints, the resolved device).
LOCATION_FIELDS = ("data_root", "teacher", "teacher_normalization", "ood", "device", "eval_precision")


def param_spaces() -> dict:
    """Every hyperparameter space by namespace (each method's, ``finetune``, ``oe``): what
    :func:`normalised_overrides` and :func:`cell_identity` read to drop overrides equal to their default."""
    from oefsmc.core.finetune import FINETUNE_PARAMS
    from oefsmc.core.method import METHODS
    from oefsmc.oe.params import OE_PARAMS

    from .plugins import load_plugins
    load_plugins()  # the methods of baselines, in the registry read below
    spaces = {name: METHODS.get(name).params for name in METHODS.names()}
    spaces.update(finetune=FINETUNE_PARAMS, oe=OE_PARAMS)
    return spaces


def normalised_overrides(cell: dict, spaces: dict) -> dict:
    """The cell's overrides without those equal to their schedule default (as planning drops them)."""
    from oefsmc.core.params import parse_value
    out = {}
    for name, raw in sorted((cell.get("overrides") or {}).items()):
        ns, _, param = name.partition(".")
        spec = spaces.get(ns, {}).get(param)
        if spec is not None:
            try:
                if parse_value(str(raw), spec.default, name, spec.choices) == spec.value_for(cell.get("schedule",
                                                                                                      "official")):
                    continue
            except Exception:  # noqa: BLE001  (an override that does not parse keeps its text)
                pass
        out[name] = str(raw)
    return out


def cell_identity(cell: dict, spaces: dict) -> str:
    """The experiment a cell states, without its locations.  A precision the profile pins (``fp32`` in the
    real-data profiles) is part of it: only ``auto`` is a machine choice, so a pinned grid never renders a
    record evaluated in another precision."""
    body = {k: v for k, v in cell.items()
            if k not in LOCATION_FIELDS or (k == "eval_precision" and v != "auto")}
    body["overrides"] = normalised_overrides(cell, spaces)
    return canonical_json(body)


def stale_defaults(record: dict, spaces: dict) -> list[str]:
    """The hyperparameters the record ran with a value other than today's default although its cell does not
    override them: it was computed under other defaults (e.g. before ``finetune.params`` became ``head``), so
    a sweep would recompute it under a new key, and it must not stand in for today's cell.  A record without
    ``config.hp`` cannot be checked and is accepted."""
    cell, hp = record["cell"], (record.get("config") or {}).get("hp")
    if not isinstance(hp, dict):
        return []
    overridden = set(normalised_overrides(cell, spaces))
    schedule = cell.get("schedule", "official")
    stale = []
    for ns, values in sorted(hp.items()):
        if not isinstance(values, dict):  # a namespace this suite does not know (e.g. a test's fake pipeline)
            continue
        today = {param: spec.value_for(schedule) for param, spec in spaces.get(ns, {}).items()}
        if ns == "oe" and "num" in cell:  # defaults that follow the cell (m = Num, n, the OOD source)
            today = with_derived_defaults(today, cell["num"], cell.get("ood"), cell.get("dataset", ""))
        for param, value in sorted(values.items()):
            name = f"{ns}.{param}"
            if param not in today or name in overridden:
                continue
            if canonical_json(value) != canonical_json(today[param]):
                stale.append(name)
    return stale


def records_by_identity(cache: ResultCache, spaces: dict,
                        stale: Optional[dict[str, list[str]]] = None) -> dict[str, list[tuple[float, str, dict]]]:
    """identity -> [(finished_unix, key, record)] for every valid record of the profile made under today's
    defaults; ``stale`` (if given) collects the others, key -> the parameters whose default changed."""
    out: dict[str, list] = defaultdict(list)
    for key in cache.keys():
        entry = cache.check(key)
        if entry.state not in ("ok", "failed") or not isinstance(entry.record.get("cell"), dict):
            continue
        changed = stale_defaults(entry.record, spaces)
        if changed:
            if stale is not None:
                stale[key] = changed
            continue
        out[cell_identity(entry.record["cell"], spaces)].append((entry.finished_unix, key, entry.record))
    return out


def plan_from_records(entries: Iterable[GridEntry], profile, cache: ResultCache, artifacts: list[str],
                      seeds: list[int], log: Optional[Callable[[str], None]] = None):
    """A :class:`benchmark.plan.Plan` whose jobs are the records matching the grid entries."""
    from oefsmc.core.method import METHODS
    from oefsmc.models import ARCHS

    from .plan import Job, Plan
    spaces = param_spaces()
    stale: dict[str, list[str]] = {}
    found = records_by_identity(cache, spaces, stale)
    if stale and log:
        names = sorted({n for changed in stale.values() for n in changed})
        log(f"{len(stale)} record{'s' if len(stale) != 1 else ''} made under other defaults ({', '.join(names[:3])}"
            f"{', ...' if len(names) > 3 else ''}): not rendered; run the sweep to recompute them")
    keys, reasons, kinds, jobs = [], [], [], {}
    warned = set()
    entries = list(entries)
    for e in entries:
        method = METHODS.get(e.cell["method"])
        if not method.is_applicable(ARCHS.get(e.cell["arch"]).family):
            keys.append(None), reasons.append(method.not_applicable_reason), kinds.append("na")
            continue
        ident = cell_identity(e.cell, spaces)
        matches = sorted(found.get(ident, []), key=lambda m: m[0])
        if len(matches) > 1 and ident not in warned and log:
            warned.add(ident)
            log(f"{len(matches)} records match {e.cell['method']} {e.cell['oe']} Num={e.cell['num']} "
                f"seed={e.cell['seed']}; rendering the newest ({matches[-1][1]})")
        if matches:
            _, key, rec = matches[-1]
        else:  # no record: a key no file has, so the cell renders as missing
            key = "none-" + hashlib.sha256(ident.encode()).hexdigest()[:15]
            rec = {"cell": e.cell, "config": {}}
        jobs.setdefault(key, Job(key, rec["cell"], rec.get("config", {}))).entries.append(e)
        keys.append(key), reasons.append(None), kinds.append("job")
    return Plan(profile, list(artifacts), list(seeds), entries, keys, reasons, kinds, jobs)


def records_from_other_stacks(plan, cache: ResultCache, here: Optional[dict] = None) -> Optional[str]:
    """One line when cached records this sweep reuses were computed under another torch version or, for CPU
    cells, another CPU vector ISA (``env.cpu_capability``: AVX2, AVX512, ...).  Neither is in the key
    (committed records would then be unusable on a reviewer's machine), yet fp32 kernels can differ
    between them in the last bits, so a reused record may not be bit-identical to what this machine would
    compute (docs/REPRODUCTION_NOTES.md, "Record keys").  ``--force`` recomputes.  ``None`` when all match.
    ``here``: this machine's ``{"torch": ..., "cpu_capability": ...}`` (tests pass their own)."""
    if here is None:  # what a record made here would say (oefsmc.envinfo.environment)
        import torch

        from oefsmc.envinfo import package_versions
        here = {"torch": package_versions()["torch"], "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    differing: dict[str, set] = defaultdict(set)
    count = 0
    for job in plan.jobs.values():
        entry = cache.check(job.key)
        if entry.state != "ok":
            continue
        env = entry.record.get("env") or {}
        theirs = {"torch": (env.get("packages") or {}).get("torch"), "cpu_capability": env.get("cpu_capability")}
        names = ["torch"] + (["cpu_capability"] if entry.record.get("config", {}).get("device") == "cpu" else [])
        diff = [n for n in names if theirs[n] is not None and theirs[n] != here[n]]
        count += bool(diff)
        for n in diff:
            differing[n].add(f"{theirs[n]} there, {here[n]} here")
    if not count:
        return None
    what = "; ".join(f"{n}: {', '.join(sorted(v))}" for n, v in sorted(differing.items()))
    return (f"{count} cached record{'s' if count != 1 else ''} reused here {'was' if count == 1 else 'were'} "
            f"computed on another stack ({what}); the numbers may differ from this machine's in the last bits: "
            "--force recomputes them")


#: Resolved-config fields that a cell's identity leaves out but its key contains: where a record of the same
#: experiment can differ (the machine's evaluation precision, the device, the teacher file, the data files).
MACHINE_FIELDS = ("eval_precision", "device", "threads", "teacher", "data", "ood")


def records_under_other_choices(plan, cache: ResultCache) -> Optional[str]:
    """One line when cells a sweep would compute already have a record of the same experiment under another
    key, e.g. evaluated in bf16 on a CPU with native bf16 while this machine resolves ``auto`` to fp32
    (:func:`oefsmc.core.evaluate.resolve_precision`).  A record is a function of its key, so the sweep
    recomputes them; ``--render-only`` matches on the identity and renders the existing ones.  ``None`` when
    there are none."""
    missing = [j for j in plan.jobs.values() if cache.check(j.key).state != "ok"]
    if not missing:
        return None
    spaces = param_spaces()
    found = records_by_identity(cache, spaces)
    differing: dict[str, set] = defaultdict(set)
    count = 0
    for job in missing:
        matches = [rec for _, key, rec in found.get(cell_identity(job.cell, spaces), []) if key != job.key]
        if not matches:
            continue
        count += 1
        theirs = matches[-1].get("config", {})
        for name in MACHINE_FIELDS:
            if canonical_json(theirs.get(name)) != canonical_json(job.resolved.get(name)):
                differing[name].add(_short(theirs.get(name)) + " there, " + _short(job.resolved.get(name)) + " here"
                                    if name in ("eval_precision", "device", "threads") else "differs")
    if not count:
        return None
    what = "; ".join(f"{name}: {', '.join(sorted(v))}" for name, v in sorted(differing.items())) or "other fields"
    return (f"{count} cell{'s' if count != 1 else ''} to compute already {'has' if count == 1 else 'have'} a record "
            "of the same experiment "
            f"under another key ({what}): a sweep on this machine recomputes them; --render-only renders the "
            "existing records")


def _short(value) -> str:
    return str(value) if not isinstance(value, (dict, list)) else "(…)"
