"""The suite's import graph, read from the source (no module is imported): cycles, layer arrows, module sizes.

``python -m benchmark.architecture`` prints the longest modules, every import cycle between modules of the
suite's packages, and any arrow from the core (``oefsmc``) up to its plug-ins (``baselines``) or its entry points
(``benchmark``, ``paper_tables``).  Imports inside functions count: a lazy import is still a dependency.
``tests/test_architecture.py`` holds the suite to zero cycles and zero upward arrows.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = ("oefsmc", "baselines", "benchmark", "paper_tables")
#: package -> packages it must never import (the core is the bottom layer).
FORBIDDEN = {"oefsmc": ("baselines", "benchmark", "paper_tables"),
             "baselines": ("benchmark", "paper_tables")}
ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))}


def _resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _owner(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` is or lies inside."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> modules of the suite it imports (``from pkg import mod`` counts as importing ``pkg.mod``)."""
    known = modules(root)
    graph: dict[str, set[str]] = {m: set() for m in known}
    for mod, path in known.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node, mod, is_package)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
            for target in targets:
                owner = _owner(target, known)
                if owner and owner != mod:
                    graph[mod].add(owner)
    return graph


def _is_ancestor_package(a: str, b: str) -> bool:
    return b.startswith(a + ".")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), ignoring a module's import of its own
    package's ``__init__`` (Python runs a package's ``__init__`` before any submodule; that is not a cycle a
    contributor can untangle)."""
    edges = {m: {t for t in ts if not _is_ancestor_package(t, m)} for m, ts in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def upward_arrows(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs that break the layering in :data:`FORBIDDEN`."""
    bad = []
    for mod, targets in graph.items():
        for target in targets:
            if target.split(".")[0] in FORBIDDEN.get(mod.split(".")[0], ()):
                bad.append((mod, target))
    return sorted(bad)


def line_counts(root: Path = ROOT) -> dict[str, int]:
    return {m: len(p.read_text().splitlines()) for m, p in modules(root).items()}


def main() -> int:
    graph = import_graph()
    sizes = sorted(line_counts().items(), key=lambda kv: -kv[1])
    print("longest modules:")
    for name, n in sizes[:8]:
        print(f"  {n:5d}  {name}")
    found = cycles(graph)
    print(f"import cycles: {len(found)}")
    for component in found:
        print("  " + " <-> ".join(component))
    arrows = upward_arrows(graph)
    print(f"upward arrows (core -> plug-ins/entry points): {len(arrows)}")
    for a, b in arrows:
        print(f"  {a} -> {b}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
