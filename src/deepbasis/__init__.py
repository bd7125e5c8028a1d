"""deepbasis: deep ReLU and tanh networks trained to scientific-computing accuracy.

A network with a linear last layer is an adaptive basis Φ(x) plus a linear head. deepbasis
initializes that basis so it is rich instead of collapsed (:mod:`deepbasis.init`), trains it
with hybrid least-squares / gradient descent (:mod:`deepbasis.train`), and looks inside it
(:mod:`deepbasis.analysis`). Every claim of the papers it implements is an experiment
(:mod:`deepbasis.experiments`, ``deepbasis run ID``).

Importing deepbasis prints nothing, seeds nothing and downloads nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Names are loaded on first use (PEP 562), so that `deepbasis --help`, `deepbasis list` and
# `deepbasis --version` answer without importing torch (~3 s; tests/test_cli_fast.py).
# `import deepbasis as db; db.fit(...)` and `from deepbasis import MLP` work as usual.
_SUBMODULES = ("analysis", "init", "nn", "train")
_LAZY = {
    "MLP": "nn",
    "CompositionalNet": "nn",
    "EnsembleResult": "train",
    "History": "train",
    "LinearProblem": "train",
    "Problem": "train",
    "Regression": "train",
    "Term": "train",
    "fit": "train",
    "fit_ensemble": "train",
    "fit_head_": "train",
    "fit_two_stage": "train",
    "lstsq": "train",
    # BasisRegressor needs scikit-learn, which takes ~0.7 s more to import.
    "BasisRegressor": "estimator",
}

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names are loaded lazily
    from . import analysis, init, nn, train
    from .estimator import BasisRegressor
    from .nn import MLP, CompositionalNet
    from .train import (
        EnsembleResult,
        History,
        LinearProblem,
        Problem,
        Regression,
        Term,
        fit,
        fit_ensemble,
        fit_head_,
        fit_two_stage,
        lstsq,
    )

__all__ = [
    "BasisRegressor",
    "CompositionalNet",
    "EnsembleResult",
    "History",
    "LinearProblem",
    "MLP",
    "Problem",
    "Regression",
    "Term",
    "__version__",
    "analysis",
    "fit",
    "fit_ensemble",
    "fit_head_",
    "fit_two_stage",
    "init",
    "lstsq",
    "nn",
    "train",
]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        if name != "BasisRegressor":
            globals()[name] = value  # later look-ups skip __getattr__
        return value
    raise AttributeError(f"module 'deepbasis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
