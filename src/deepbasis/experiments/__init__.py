"""Reproductions: one module per paper figure or table, found by name.

Every module ``experiments/<paper>_<name>.py`` that defines ``EXPERIMENT`` is registered as
``<paper>.<name>`` (e.g. ``cyr2020_fig5.py`` → ``cyr2020.fig5``), so adding an experiment is
adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from .spec import PROFILES, Cell, Claim, Experiment, Report

_NOT_EXPERIMENTS = {"spec", "runner", "plotting", "store", "executors", "reporting", "cli"}


@cache
def registry() -> dict[str, Experiment]:
    """All experiments, by id, sorted."""
    found: dict[str, Experiment] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name in _NOT_EXPERIMENTS or "_" not in info.name:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        experiment = getattr(module, "EXPERIMENT", None)
        if isinstance(experiment, Experiment):
            found[experiment.id] = experiment
    return dict(sorted(found.items()))


def get_experiment(experiment_id: str) -> Experiment:
    """Look up an experiment; an unknown id lists the valid ones."""
    experiments = registry()
    if experiment_id not in experiments:
        valid = "\n  ".join(experiments)
        raise ValueError(f"unknown experiment {experiment_id!r}; valid ids:\n  {valid}")
    return experiments[experiment_id]


__all__ = ["PROFILES", "Cell", "Claim", "Experiment", "Report", "get_experiment", "registry"]
