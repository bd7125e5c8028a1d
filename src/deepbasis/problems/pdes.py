r"""Linear PDEs with exact solutions, as least-squares problems: the second-order training suite.

Four problems from four families, each on the unit square (or space-time square), with a
collocation grid for the residual, boundary (and initial) points for the conditions, and an
exact solution to measure the relative L² error on a finer grid:

=================  =========================================================  ==================
name               equation                                                   exact solution
=================  =========================================================  ==================
``poisson``        −Δu = 2π² sin πx sin πy, u = 0 on ∂Ω                        sin πx sin πy
``helmholtz``      Δu + k²u = (k² − 5π²) sin πx sin 2πy, k = 4, u = 0 on ∂Ω    sin πx sin 2πy
``heat``           ∂t u = κ ∂xx u, κ = 0.1, u(x, 0) = sin πx, u(0, t) = u(1, t)  e^{−κπ²t} sin πx
                   = 0; inputs ordered (x, t)
``variable``       −∇·(a∇u) = f with a(x, y) = 1 + (x + y) / 2, u = 0 on ∂Ω;    sin πx sin πy
                   written −aΔu − ½(∂x u + ∂y u) (a field coefficient)
=================  =========================================================  ==================

``poisson`` is the standard PINN benchmark (DeepXDE's and energy natural gradient's
"Poisson 2-D"): with a 51 × 51 residual grid and 4 × 51 boundary points as in
``benchmarks/bench_pde.py``. Every term has weight 1 and the problem's loss is the sum of the
terms' mean squared residuals (eq. 1 of Cyr et al. 2020).

Examples:
    >>> case = pde_problem("poisson", n=11)
    >>> case.problem.n_points, tuple(case.error_points.shape)
    (165, (10201, 2))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .._checks import check_choice
from ..train.operators import D, Identity, LinearProblem, Term

PDES = ("poisson", "helmholtz", "heat", "variable")

_PI = math.pi
HELMHOLTZ_K = 4.0
HEAT_KAPPA = 0.1


@dataclass(frozen=True)
class PDECase:
    """A PDE problem with its exact solution.

    Attributes:
        name: one of :data:`PDES`.
        equation: the equation in words.
        problem: the :class:`~deepbasis.LinearProblem` (residual, boundary and initial terms).
        exact: the exact solution, ``(N, 2)`` points → ``(N,)`` values.
        error_points: the grid the relative L² error is measured on.
    """

    name: str
    equation: str
    problem: LinearProblem
    exact: Callable[[torch.Tensor], torch.Tensor]
    error_points: torch.Tensor

    def relative_error(self, model: nn.Module) -> float:
        """‖NN − u‖ / ‖u‖ over :attr:`error_points` (the first output of the model)."""
        head = model.head
        x = self.error_points.to(dtype=head.weight.dtype, device=head.weight.device)
        with torch.no_grad():
            u = self.exact(x)
            return float((model(x)[:, 0] - u).norm() / u.norm())


def square_points(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The n × n Cartesian grid of [0, 1]², ``(n², 2)``."""
    s = torch.linspace(0, 1, n, dtype=dtype)
    a, b = torch.meshgrid(s, s, indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)


def boundary_points(n: int, sides: tuple[str, ...] = ("bottom", "top", "left", "right"),
                    dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """n points on each named side of [0, 1]² (corners repeated), ``(n · len(sides), 2)``."""
    s = torch.linspace(0, 1, n, dtype=dtype)
    zero, one = torch.zeros_like(s), torch.ones_like(s)
    side = {"bottom": (s, zero), "top": (s, one), "left": (zero, s), "right": (one, s)}
    return torch.cat([torch.stack(side[name], dim=1) for name in sides])


def pde_problem(name: str, n: int = 51, *, error_grid: int = 101,
                dtype: torch.dtype = torch.float64) -> PDECase:
    """The PDE ``name`` with an n × n residual grid and n points per boundary side.

    Args:
        name: ``"poisson"``, ``"helmholtz"``, ``"heat"`` or ``"variable"``.
        n: points per side (≥ 3).
        error_grid: points per side of the error grid.
        dtype: of the points.
    """
    check_choice("name", name, PDES)
    for label, value in (("n", n), ("error_grid", error_grid)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 3:
            raise ValueError(f"{label} must be an integer >= 3, got {value!r}")
    inner = square_points(n, dtype)
    errors = square_points(error_grid, dtype)
    laplace = D(0, order=2) + D(1, order=2)
    if name == "poisson":
        exact = _sin_sin(1, 1)
        terms = [Term(-laplace, inner, target=lambda x: 2 * _PI**2 * exact(x), name="pde"),
                 Term(Identity(), boundary_points(n, dtype=dtype), target=0.0,
                      name="boundary")]
        equation = "−Δu = 2π² sin πx sin πy on [0, 1]², u = 0 on the boundary"
    elif name == "helmholtz":
        exact = _sin_sin(1, 2)
        k2 = HELMHOLTZ_K**2
        terms = [Term(laplace + k2 * Identity(), inner,
                      target=lambda x: (k2 - 5 * _PI**2) * exact(x), name="pde"),
                 Term(Identity(), boundary_points(n, dtype=dtype), target=0.0,
                      name="boundary")]
        equation = (f"Δu + {k2:g}u = ({k2:g} − 5π²) sin πx sin 2πy on [0, 1]², u = 0 on the "
                    "boundary")
    elif name == "heat":
        def exact(x: torch.Tensor) -> torch.Tensor:
            return torch.exp(-HEAT_KAPPA * _PI**2 * x[:, 1]) * torch.sin(_PI * x[:, 0])

        initial = boundary_points(n, ("bottom",), dtype)  # t = 0
        walls = boundary_points(n, ("left", "right"), dtype)  # x = 0 and x = 1
        terms = [Term(D(1) - HEAT_KAPPA * D(0, order=2), inner, target=0.0, name="pde"),
                 Term(Identity(), initial, target=lambda x: torch.sin(_PI * x[:, 0]),
                      name="initial"),
                 Term(Identity(), walls, target=0.0, name="walls")]
        equation = (f"∂t u = {HEAT_KAPPA:g} ∂xx u on (x, t) in [0, 1]², u(x, 0) = sin πx, "
                    "u(0, t) = u(1, t) = 0")
    else:  # variable
        exact = _sin_sin(1, 1)

        def a(x: torch.Tensor) -> torch.Tensor:
            return 1 + 0.5 * (x[:, 0] + x[:, 1])

        def source(x: torch.Tensor) -> torch.Tensor:
            # −∇·(a∇u) = −aΔu − ∇a·∇u with ∇a = (½, ½), u = sin πx sin πy
            ux = _PI * torch.cos(_PI * x[:, 0]) * torch.sin(_PI * x[:, 1])
            uy = _PI * torch.sin(_PI * x[:, 0]) * torch.cos(_PI * x[:, 1])
            return a(x) * 2 * _PI**2 * exact(x) - 0.5 * (ux + uy)

        operator = -(a * laplace) - 0.5 * (D(0) + D(1))
        terms = [Term(operator, inner, target=source, name="pde"),
                 Term(Identity(), boundary_points(n, dtype=dtype), target=0.0,
                      name="boundary")]
        equation = ("−∇·(a∇u) = f on [0, 1]², a = 1 + (x + y)/2, u = sin πx sin πy, u = 0 "
                    "on the boundary")
    return PDECase(name, equation, LinearProblem(terms), exact, errors)


def _sin_sin(p: int, q: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def exact(x: torch.Tensor) -> torch.Tensor:
        return torch.sin(p * _PI * x[:, 0]) * torch.sin(q * _PI * x[:, 1])

    exact.__name__ = f"sin{p}πx·sin{q}πy"
    return exact


__all__ = ["PDES", "PDECase", "boundary_points", "pde_problem", "square_points"]
