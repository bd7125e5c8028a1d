r"""A smoothing head: the linear head penalized by the fitted function's curvature.

The GCV head (:func:`deepbasis.train.lstsq.gcv_lstsq`) shrinks the head's coefficients θ, which
in a basis of network features is not the same as shrinking what varies fast: on noisy smooth
1-D data it leaves the fit rougher than a smoothing spline or a Gaussian process. The smoothing
head penalizes the mean squared second derivative of f = [Φ, 1] θ over the training box, as a
smoothing spline does (Wahba 1990, ch. 1), in the unit coordinates u of the training box (each
input's range mapped onto [0, 1]):

.. math:: \min_θ \|Aθ − b\|^2 + λ\, θ^T Q θ, \qquad
    Q = \frac{1}{P} \sum_p \sum_j \frac{∂^2 a}{∂u_j^2}(x_p) \frac{∂^2 a}{∂u_j^2}(x_p)^T
    + ε \frac{\operatorname{tr} Q_0}{k} I,

a(x) = [Φ(x), 1] of k entries, second derivatives by central differences, at P = 2,000 points
uniform in the training rows' box (so rows given as integer weights and the same rows repeated
get the same Q); the small ε I keeps Q invertible (the penalty's null space: functions linear
along every input). With Q = RᵀR, θ = R⁻¹ θ̃ turns it into ordinary
Tikhonov least squares in A R⁻¹, and λ is chosen by GCV as for the GCV head.

Whether it is used is decided by K-fold cross-validation (:mod:`deepbasis.estimator.selection`):
each of the K networks of a noisy fit solves both heads on the rows it trained on and is judged
on the fold it never saw.
"""

from __future__ import annotations

import numpy as np
import torch

from ..nn.mlp import MLP
from ..train.lstsq import design_matrix, gcv_lstsq
from .head import weighted_rows

_STEP = 1e-3  # central-difference step in unit coordinates (error ~ eps / step² ~ 2e-10)
_POINTS = 2000  # P: points of the training box where the curvature is measured
_NULL = 1e-6  # ε: the share of the mean curvature penalty given to every coefficient


@torch.no_grad()
def curvature_penalty(model: MLP, x: torch.Tensor, rng) -> torch.Tensor:
    """Q ``(k, k)`` of the module docstring for ``model``'s design rows, at ``_POINTS``
    points uniform in the box of the rows ``x`` ``(N, d)`` (``rng``, a RandomState, draws
    them)."""
    lower, upper = x.amin(dim=0), x.amax(dim=0)
    uniform = torch.as_tensor(rng.uniform(size=(_POINTS, x.shape[1])), dtype=x.dtype,
                              device=x.device)
    points = lower + (upper - lower) * uniform  # (P, d)
    span = (upper - lower).clamp_min(1e-12)  # (d,): one unit of u in units of x
    centre = design_matrix(model.features(points))  # (P, k)
    penalty = torch.zeros(centre.shape[1], centre.shape[1], dtype=x.dtype, device=x.device)
    for j in range(x.shape[1]):
        step = torch.zeros_like(span)
        step[j] = _STEP * span[j]
        second = (design_matrix(model.features(points + step)) - 2 * centre
                  + design_matrix(model.features(points - step))) / _STEP**2  # (P, k)
        penalty += second.mT @ second
    penalty /= len(points)
    scale = float(torch.diagonal(penalty).mean())
    if not np.isfinite(scale) or scale <= 0:  # no curvature anywhere (ReLU between kinks)
        scale = 1.0
    return penalty + _NULL * scale * torch.eye(len(penalty), dtype=x.dtype, device=x.device)


def smoothing_solve(A: torch.Tensor, b: torch.Tensor, rows: float, penalty: torch.Tensor
                    ) -> torch.Tensor:
    """θ ``(k, m)`` minimizing ‖Aθ − b‖² + λ θᵀ Q θ, λ by GCV per output (``rows``: the N of
    the criterion, Σ w for weighted rows); Q = ``penalty`` symmetric positive definite."""
    root = torch.linalg.cholesky(penalty).mT  # Q = Rᵀ R, R upper triangular
    transformed = torch.linalg.solve_triangular(root, A, upper=True, left=False)  # A R⁻¹
    solution = gcv_lstsq(transformed, b, rows=rows).solution  # (k, m)
    return torch.linalg.solve_triangular(root, solution, upper=True)  # R⁻¹ θ̃


@torch.no_grad()
def smoothing_head(model: MLP, x, z, w, penalty: torch.Tensor) -> torch.Tensor:
    """The smoothing head θ ``(k, m)`` of ``model`` on rows (x, z, w) for curvature
    ``penalty`` (:func:`curvature_penalty`)."""
    return smoothing_solve(*weighted_rows(model, x, z, w), penalty)

