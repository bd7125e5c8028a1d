"""Classical interpolating splines used as limits of trained networks (Sahs et al. 2022, §2.6).

- :func:`linear_interpolant` — the continuous piecewise-linear interpolant of the data (the
  small-α, adaptive-regime limit of a shallow ReLU network), as a
  :class:`~deepbasis.analysis.Spline`.
- :func:`natural_cubic_spline` — SciPy's ``CubicSpline(bc_type="natural")``, the roughness-
  minimizing interpolant (the large-α, kernel-regime limit, Corollary 4).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.interpolate import CubicSpline

from ..analysis.spline import Spline
from .segments import _prepare


def linear_interpolant(x, y) -> Spline:
    """The continuous piecewise-linear interpolant through ``(x, y)`` (x distinct)."""
    x, y = _prepare(x, y)
    if not (np.diff(x) > 0).all():
        raise ValueError("linear_interpolant needs distinct x values")
    return Spline.from_values(torch.from_numpy(x), torch.from_numpy(y))


def natural_cubic_spline(x, y) -> CubicSpline:
    """SciPy's natural cubic spline through ``(x, y)`` (second derivative 0 at both ends)."""
    x, y = _prepare(x, y)
    return CubicSpline(x, y, bc_type="natural")
