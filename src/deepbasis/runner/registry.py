"""Finding experiments: every module ``deepbasis/experiments/<paper>/<name>.py`` that defines
``EXPERIMENT`` is registered as ``<paper>.<name>`` (``experiments/cyr2020/fig5.py`` →
``cyr2020.fig5``), so adding an experiment is adding a file.

Modules and packages whose name starts with ``_`` are private (code that several experiments of
one paper share) and are never scanned. The registry knows no paper by name: it walks the
``deepbasis.experiments`` package.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

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
