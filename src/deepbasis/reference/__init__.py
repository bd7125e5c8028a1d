"""Classical fitters the networks are measured against (no networks, no training).

Each says which optimum it computes: :func:`optimal_segmentation` is the exact global optimum of
*discontinuous* segmented least squares (Bai & Perron 1998); :func:`greedy_merge` approximates
it fast (Acharya et al. 2016); :func:`continuous_pwl_fit` is the best of several local optima
of *continuous* free-knot piecewise-linear least squares (what a ReLU network can represent);
:func:`linear_interpolant` and :func:`natural_cubic_spline` are the interpolating limits of
Sahs et al. (2022, §2.6).
"""

from .continuous import ContinuousFit, continuous_pwl_fit
from .segments import Segmentation, SegmentCosts, greedy_merge, optimal_segmentation
from .splines import linear_interpolant, natural_cubic_spline

__all__ = [
    "ContinuousFit",
    "SegmentCosts",
    "Segmentation",
    "continuous_pwl_fit",
    "greedy_merge",
    "linear_interpolant",
    "natural_cubic_spline",
    "optimal_segmentation",
]
