r"""The linear transport equation as a physics-informed least-squares problem (Cyr et al. 2020).

Section 5.3, eq. (19):

.. math::
    ∂_t u + a(x, t)\, ∂_x u = 0 \quad \text{on } (x, t) \in [0, 1]^2, \qquad
    u(x, 0) = u_0(x), \qquad u(0, t) = 0,

with the loss of eq. (19), :math:`J = ε J_1 + J_2 + J_3`: the mean squared PDE residual over a
Cartesian grid of the square, the mean squared misfit of the initial condition on the line
t = 0 and of the inflow condition on the line x = 0. Inputs are ordered **(x, t)**: column 0 is
x and column 1 is t, so the residual operator is ``D(1) + a * D(0)``.

Choices the paper leaves open (specs/paper-notes.md):

- **u0** is "a tent function": we use the tent with peak 1 at x = 0.3 supported on [0.1, 0.5],
  so the exact solutions vanish on x = 0 and the inflow condition is consistent.
- **Velocities**: ``"constant"`` a = 1 with exact solution u0(x − t), and ``"linear"`` a = x
  with exact solution u0(x e^{−t}). Eq. (19) prints the residual as "∂t NN + ∂x a NN"; we read
  it as the advective form ∂t u + a ∂x u stated in the text, the form both exact solutions solve.
- **Point sets**: the residual is collocated on the full n × n grid of [0, 1]² (boundary points
  included), the initial condition on n points of t = 0 and the inflow condition on n points of
  x = 0; n = 101 in the paper (spacing Δx = 0.01).
- **Errors** are measured against the exact solution on a finer n × n grid (default 201): the
  relative L² error ‖NN − u‖ / ‖u‖ and the RMS error (‖NN − u‖ / √N), both over grid points.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import check_choice
from ..train.operators import D, Identity, LinearProblem, Operator, Term

VELOCITIES = ("constant", "linear")

TENT_PEAK = 0.3  # u0 peaks at x = 0.3 ...
TENT_HALF_WIDTH = 0.2  # ... and is supported on [0.1, 0.5]


def tent(x: torch.Tensor, peak: float = TENT_PEAK, half_width: float = TENT_HALF_WIDTH
         ) -> torch.Tensor:
    r"""The initial condition :math:`u_0(x) = \max(0,\ 1 − |x − \text{peak}| / \text{half\_width})`.

    Examples:
        >>> tent(torch.tensor([0.1, 0.3, 0.4, 0.6]))
        tensor([0.0000, 1.0000, 0.5000, 0.0000])
    """
    return torch.clamp(1.0 - (x - peak).abs() / half_width, min=0.0)


def linear_velocity(points: torch.Tensor) -> torch.Tensor:
    """a(x, t) = x, the non-constant velocity of Fig. 13 (points ordered (x, t))."""
    return points[:, 0]


linear_velocity.__name__ = "x"  # so the operator prints as D(1) + x·D(0)


def transport_operator(velocity: str = "constant") -> Operator:
    """The residual operator ∂t + a ∂x, i.e. ``D(1) + a * D(0)`` for inputs ordered (x, t)."""
    check_choice("velocity", velocity, VELOCITIES)
    if velocity == "constant":
        return D(1) + D(0)
    return D(1) + linear_velocity * D(0)


def exact_solution(points: torch.Tensor, velocity: str = "constant") -> torch.Tensor:
    """The exact solution at ``points`` ``(N, 2)`` ordered (x, t): ``(N,)``.

    u0(x − t) for a = 1 (characteristics x − t = const) and u0(x e^{−t}) for a = x
    (characteristics x e^{−t} = const).
    """
    check_choice("velocity", velocity, VELOCITIES)
    _check_points(points)
    x, t = points[:, 0], points[:, 1]
    if velocity == "constant":
        return tent(x - t)
    return tent(x * torch.exp(-t))


def grid_points(n: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The n × n Cartesian grid of [0, 1]² as ``(n², 2)`` points (x, t), x varying fastest."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (grid points per side), got {n!r}")
    s = torch.linspace(0.0, 1.0, n, dtype=dtype)
    t, x = torch.meshgrid(s, s, indexing="ij")
    return torch.stack([x.reshape(-1), t.reshape(-1)], dim=1)  # (n², 2)


def transport_problem(velocity: str = "constant", n: int = 101, epsilon: float = 1.0, *,
                      dtype: torch.dtype = torch.float64) -> LinearProblem:
    r"""The PINN loss of eq. (19) as a :class:`~deepbasis.train.operators.LinearProblem`.

    Three terms: ``"pde"`` (weight ε, residual ∂t u + a ∂x u = 0 on the n × n grid),
    ``"initial"`` (u(x, 0) = u0(x) on n points) and ``"inflow"`` (u(0, t) = 0 on n points).

    Args:
        velocity: ``"constant"`` (a = 1) or ``"linear"`` (a = x).
        n: grid points per side (101 in the paper).
        epsilon: ε > 0, the weight of the PDE term (1 for Fig. 12; W^−α in Fig. 13).
        dtype: of the points and targets.

    Examples:
        >>> problem = transport_problem("linear", n=11, epsilon=0.5)
        >>> [term.name for term in problem.terms], problem.n_points
        (['pde', 'initial', 'inflow'], 143)
    """
    check_choice("velocity", velocity, VELOCITIES)
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or \
            not math.isfinite(epsilon) or epsilon <= 0:
        raise ValueError(f"epsilon must be a positive finite number, got {epsilon!r}")
    interior = grid_points(n, dtype=dtype)  # (n², 2)
    s = torch.linspace(0.0, 1.0, n, dtype=dtype)
    zeros = torch.zeros_like(s)
    initial = torch.stack([s, zeros], dim=1)  # (n, 2): t = 0
    inflow = torch.stack([zeros, s], dim=1)  # (n, 2): x = 0
    return LinearProblem([
        Term(transport_operator(velocity), interior, target=0.0, weight=float(epsilon),
             name="pde"),
        Term(Identity(), initial, target=tent(s), name="initial"),
        Term(Identity(), inflow, target=0.0, name="inflow"),
    ])


@torch.no_grad()
def solution_errors(model: nn.Module, velocity: str = "constant", n: int = 201
                    ) -> dict[str, float]:
    """``{"relative_l2": ‖NN − u‖/‖u‖, "rms": ‖NN − u‖/√N}`` on the n × n grid of [0, 1]²."""
    dtype = next(model.parameters()).dtype
    points = grid_points(n, dtype=dtype)
    exact = exact_solution(points, velocity)  # (N,)
    error = model(points)[:, 0] - exact  # (N,)
    return {
        "relative_l2": float(error.norm() / exact.norm()),
        "rms": float(error.norm() / math.sqrt(error.numel())),
    }


def relative_l2_error(model: nn.Module, velocity: str = "constant", n: int = 201) -> float:
    """‖NN − u‖ / ‖u‖ over the n × n grid of [0, 1]² (u the exact solution)."""
    return solution_errors(model, velocity, n)["relative_l2"]


def rms_error(model: nn.Module, velocity: str = "constant", n: int = 201) -> float:
    """Root-mean-square error of NN − u over the n × n grid of [0, 1]² (Fig. 13's "RMS error")."""
    return solution_errors(model, velocity, n)["rms"]


def _check_points(points: torch.Tensor) -> None:
    if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[1] != 2:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else \
            type(points).__name__
        raise ValueError(f"points must have shape (N, 2) with columns (x, t), got {shape}")


__all__ = [
    "VELOCITIES",
    "exact_solution",
    "grid_points",
    "linear_velocity",
    "relative_l2_error",
    "rms_error",
    "solution_errors",
    "tent",
    "transport_operator",
    "transport_problem",
]
