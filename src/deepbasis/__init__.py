"""deepbasis: deep ReLU and tanh networks trained to scientific-computing accuracy.

A network with a linear last layer is an adaptive basis Φ(x) plus a linear head. deepbasis
initializes that basis so it is rich instead of collapsed (:mod:`deepbasis.init`), trains it
with hybrid least-squares / gradient descent (:mod:`deepbasis.train`), and looks inside it
(:mod:`deepbasis.analysis`). Every claim of the papers it implements is an experiment
(:mod:`deepbasis.experiments`, ``deepbasis run ID``).

Importing deepbasis prints nothing, seeds nothing and downloads nothing.
"""

from . import analysis, init, nn, train
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

__version__ = "0.1.0"

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
    # BasisRegressor needs scikit-learn, which takes ~0.7 s to import: load it on first use.
    if name == "BasisRegressor":
        from .estimator import BasisRegressor

        return BasisRegressor
    raise AttributeError(f"module 'deepbasis' has no attribute {name!r}")
