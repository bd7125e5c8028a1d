"""Finding experiments: every module ``deepbasis/experiments/<paper>/<name>.py`` that defines
``EXPERIMENT`` is registered as ``<paper>.<name>`` (``experiments/cyr2020/fig5.py`` →
``cyr2020.fig5``), so adding an experiment is adding a file.

Modules and packages whose name starts with ``_`` are private (code that several experiments of
one paper share) and are never scanned. The registry knows no paper by name: it walks the
``deepbasis.experiments`` package.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
from functools import cache
from pathlib import Path

from .spec import Experiment

#: The package whose sub-packages (one per paper) hold the experiment modules.
EXPERIMENTS_PACKAGE = "deepbasis.experiments"


@cache
def registry() -> dict[str, Experiment]:
    """All experiments, by id, sorted."""
    root = importlib.import_module(EXPERIMENTS_PACKAGE)
    found: dict[str, Experiment] = {}
    for paper in pkgutil.iter_modules(root.__path__):
        if not paper.ispkg or paper.name.startswith("_"):
            continue
        package = importlib.import_module(f"{EXPERIMENTS_PACKAGE}.{paper.name}")
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            experiment = getattr(module, "EXPERIMENT", None)
            if not isinstance(experiment, Experiment):
                continue
            expected = f"{paper.name}.{info.name}"
            if experiment.id != expected:
                raise RuntimeError(f"{module.__name__} defines experiment {experiment.id!r}; "
                                   f"its file name makes the id {expected!r}: rename one of them")
            found[experiment.id] = experiment
    return dict(sorted(found.items()))


def get_experiment(experiment_id: str) -> Experiment:
    """Look up an experiment; an unknown id lists the valid ones."""
    experiments = registry()
    if experiment_id not in experiments:
        valid = "\n  ".join(experiments)
        raise ValueError(f"unknown experiment {experiment_id!r}; valid ids:\n  {valid}")
    return experiments[experiment_id]


def experiment_titles() -> dict[str, str]:
    """Every experiment's id and title, sorted by id, read from the source without importing it.

    ``deepbasis list`` answers in a fraction of a second this way: importing the experiment
    modules imports torch (seconds). Each ``experiments/<paper>/<name>.py`` is parsed (``ast``)
    for ``EXPERIMENT = Experiment(id="...", title="...")`` with literal strings; when any module
    does not have that form, this falls back to :func:`registry` (which stays the source of
    truth; ``tests/test_cli_fast.py`` checks that both agree).
    """
    if registry.cache_info().currsize:  # already imported: ask the source of truth
        return {eid: e.title for eid, e in registry().items()}
    spec = importlib.util.find_spec(EXPERIMENTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return {eid: e.title for eid, e in registry().items()}
    found: dict[str, str] = {}
    for root in spec.submodule_search_locations:
        for paper in sorted(Path(root).iterdir()):
            if not paper.is_dir() or paper.name.startswith(("_", ".")) \
                    or not (paper / "__init__.py").is_file():
                continue
            for module in sorted(paper.glob("*.py")):
                if module.name.startswith("_"):
                    continue
                entry = _static_experiment(module)
                if entry is None:
                    source = module.read_text(encoding="utf-8")
                    if "EXPERIMENT" not in source:
                        continue  # a module without an experiment is not registered either
                    return {eid: e.title for eid, e in registry().items()}
                found[entry[0]] = entry[1]
    return dict(sorted(found.items()))


def _static_experiment(path: Path) -> tuple[str, str] | None:
    """(id, title) of ``EXPERIMENT = Experiment(id=..., title=...)`` in ``path``, or None."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return None
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "EXPERIMENT"
                and isinstance(node.value, ast.Call)):
            continue
        keywords = {k.arg: k.value for k in node.value.keywords if k.arg}
        try:
            eid, title = (ast.literal_eval(keywords["id"]), ast.literal_eval(keywords["title"]))
        except (KeyError, ValueError):
            return None
        if isinstance(eid, str) and isinstance(title, str):
            return eid, title
    return None
