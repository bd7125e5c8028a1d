"""How a network *learns*: least squares for the head, LSGD and GD, ensembles, PINN problems."""

from .lstsq import LstsqResult, design_matrix, fit_head_, lstsq, set_head_
from .problem import Problem, Regression, head_parameters, problem_loss

__all__ = [
    "LstsqResult",
    "Problem",
    "Regression",
    "design_matrix",
    "fit_head_",
    "head_parameters",
    "lstsq",
    "problem_loss",
    "set_head_",
]
