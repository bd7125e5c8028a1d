"""The layering of docs/architecture.md, checked on the source: which layer may import which, no
import circles, no experiment module importing another, and a registry that finds every
experiment module by its path."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from deepbasis.runner import registry

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "deepbasis"

#: Layers that compute; they must not know who uses them.
LOWER = ("nn", "init", "train", "analysis", "reference", "problems")
#: Layers built on top of them (and the CLI).
UPPER = ("experiments", "runner", "estimator", "cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Modules of deepbasis that ``module`` imports (static ``import`` / ``from`` statements).

    ``from .pkg import name`` counts as importing ``pkg.name`` when that is a module, else
    ``pkg``. Imports inside functions count too: a late import hides a circle, it does not
    remove it.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = list(ast.walk(tree))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in known else target)
    return {m for m in found if m in known and m != module}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_lower_layers_never_import_upper_layers():
    modules = _modules()
    offenders = [
        f"{m} imports {t}"
        for m, p in modules.items() if _layer(m) in LOWER
        for t in _imports(m, p, set(modules)) if _layer(t) in UPPER
    ]
    assert not offenders, "\n".join(offenders)


def test_no_import_circles():
    """No cycle in the import graph (a package counts as importing what its ``__init__``
    imports; importing one's own parent or child package is not an edge)."""
    modules = _modules()
    graph = {m: {t for t in _imports(m, p, set(modules))
                 if not m.startswith(t + ".") and not t.startswith(m + ".")}
             for m, p in modules.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_experiment_module_imports_another():
    modules = _modules()
    experiments = {m for m in modules if m.startswith("deepbasis.experiments.")
                   and m.count(".") == 3 and not m.rsplit(".", 1)[1].startswith("_")}
    offenders = [f"{m} imports {t}" for m in sorted(experiments)
                 for t in _imports(m, modules[m], set(modules)) if t in experiments]
    assert not offenders, "\n".join(offenders)


def test_registry_finds_every_experiment_module_by_its_path():
    expected = set()
    for path in (PACKAGE / "experiments").glob("*/*.py"):
        if path.parent.name.startswith("_") or path.name.startswith("_"):
            continue
        module = importlib.import_module(_module_name(path))
        if hasattr(module, "EXPERIMENT"):
            expected.add(f"{path.parent.name}.{path.stem}")
    assert expected and set(registry()) == expected


def test_the_scanner_sees_known_imports():
    """The graph the tests above walk does hold edges (so they could fail)."""
    modules = _modules()
    known = set(modules)
    assert "deepbasis.runner.store" in _imports(
        "deepbasis.runner.runner", modules["deepbasis.runner.runner"], known)
    assert "deepbasis.experiments.cyr2020._pinn" in _imports(
        "deepbasis.experiments.cyr2020.fig12", modules["deepbasis.experiments.cyr2020.fig12"],
        known)
