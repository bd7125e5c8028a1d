"""How a network *learns*: least squares for the head, LSGD and GD, ensembles, PINN problems,
and two-stage training of reparameterized networks."""

from .ensemble import EnsembleResult, fit_ensemble
from .fit import fit
from .history import History
from .lm import LMOptions
from .lstsq import (
    GCVResult,
    LstsqResult,
    design_matrix,
    fit_head_,
    gcv_lstsq,
    lstsq,
    set_head_,
    solve_head,
)
from .operators import D, Identity, LinearProblem, Operator, Term
from .pretrain import TwoStageResult, fit_two_stage, pretrain
from .problem import Problem, Regression, head_parameters, problem_loss

__all__ = [
    "D",
    "EnsembleResult",
    "GCVResult",
    "History",
    "Identity",
    "LMOptions",
    "fit",
    "fit_ensemble",
    "fit_two_stage",
    "pretrain",
    "TwoStageResult",
    "solve_head",
    "LinearProblem",
    "Operator",
    "Term",
    "LstsqResult",
    "Problem",
    "Regression",
    "design_matrix",
    "fit_head_",
    "gcv_lstsq",
    "head_parameters",
    "lstsq",
    "problem_loss",
    "set_head_",
]
