"""Targets and problems from the papers."""

from .functions import TARGETS, grid, legendre, sin2pi, target, u1
from .highfreq import highfreq_parameters, highfreq_target, square_grid
from .images import ImageProblem, image_problem, load_photograph, snr_db, tv_regularizer
from .pdes import PDES, PDECase, pde_problem
from .transport import exact_solution, relative_l2_error, rms_error, transport_problem

__all__ = ["TARGETS", "grid", "legendre", "sin2pi", "target", "u1"]
__all__ += ["exact_solution", "relative_l2_error", "rms_error", "transport_problem"]
__all__ += ["highfreq_parameters", "highfreq_target", "square_grid"]
__all__ += ["ImageProblem", "image_problem", "load_photograph", "snr_db", "tv_regularizer"]
__all__ += ["PDES", "PDECase", "pde_problem"]
