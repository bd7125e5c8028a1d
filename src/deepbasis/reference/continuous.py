r"""Continuous free-knot piecewise-linear least squares — the fair yardstick for ReLU networks.

A 1-D ReLU network is a *continuous* piecewise-linear function, so the optimum it should be
compared with is the continuous one: with k pieces (k − 1 free interior knots τ),

.. math::
    \min_{τ, c} \sum_n \Big(c_0 + c_1 x_n + \sum_{j<k} c_{j+1} (x_n − τ_j)_+ − y_n\Big)^2 .

For fixed knots this is linear least squares (variable projection); the knots are then moved by
a bounded trust-region least-squares solver. The problem is non-convex, so the result is **the
best of several local optima** — started from the breakpoints of the exact *discontinuous*
optimum (:func:`~deepbasis.reference.optimal_segmentation`), from uniform and quantile knots,
and from random knots — not a certified global optimum. ``pwlf`` (differential evolution plus
the same inner least squares) is the reference it is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import least_squares, minimize

from .._checks import GeneratorLike, as_generator
from ..analysis.spline import Spline
from .segments import _prepare, optimal_segmentation

NELDER_MEAD_MAX_KNOTS = 10  # simplex polish up to this many knots (it slows down beyond)


@dataclass(frozen=True)
class ContinuousFit:
    """A continuous piecewise-linear least-squares fit.

    Attributes:
        spline: the fit on [min x, max x] (a :class:`~deepbasis.analysis.Spline`).
        cost: Σ (fit − y)².
        starts: number of local optimizations run; the best is kept.
    """

    spline: Spline
    cost: float
    starts: int

    @property
    def num_pieces(self) -> int:
        return self.spline.num_pieces

    def mse(self, n: int) -> float:
        return self.cost / n


def _design(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones_like(x), x, np.maximum(x[:, None] - knots[None, :], 0.0)])


def _solve(x, y, knots) -> tuple[np.ndarray, np.ndarray]:
    a = _design(x, knots)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return coef, a @ coef - y


def _spline(lo: float, hi: float, knots: np.ndarray, coef: np.ndarray) -> Spline:
    inner = np.unique(knots[(knots > lo) & (knots < hi)])
    points = np.concatenate([[lo], inner, [hi]])
    values = _design(points, knots) @ coef
    return Spline.from_values(torch.from_numpy(points), torch.from_numpy(values))


def continuous_pwl_fit(x, y, n_pieces: int, *, random_starts: int = 2, sweeps: int = 2,
                       max_evaluations: int | None = None,
                       generator: GeneratorLike = None) -> ContinuousFit:
    """Least-squares continuous piecewise-linear fit with ``n_pieces`` pieces (free knots).

    Best of several local optima (see the module docstring): starts from the exact
    discontinuous optimum's breakpoints, uniform knots, quantile knots and ``random_starts``
    random draws from ``generator``; each is refined by ``scipy.optimize.least_squares`` on the
    knot positions, with the coefficients solved exactly for every knot set. Then up to
    ``sweeps`` rounds move one knot at a time to the best of ≤ 200 grid positions (others
    fixed) and polish again, which gets the solver past the kinks where a knot crosses a data
    point; up to 10 knots a Nelder–Mead simplex polishes each result for the same reason.
    ``max_evaluations`` caps the residual evaluations of each local solve (many knots make
    each finite-difference Jacobian cost one least-squares solve per knot).
    Cost: O(sweeps · k · 200) small least-squares solves plus the polishing.
    """
    x, y = _prepare(x, y)
    if isinstance(n_pieces, bool) or not isinstance(n_pieces, int) or n_pieces < 1:
        raise ValueError(f"n_pieces must be a positive integer, got {n_pieces!r}")
    lo, hi = float(x[0]), float(x[-1])
    inner = n_pieces - 1
    if inner == 0:
        coef, r = _solve(x, y, np.empty(0))
        return ContinuousFit(_spline(lo, hi, np.empty(0), coef), float(r @ r), 1)
    gen = as_generator(generator)
    starts = [np.linspace(lo, hi, n_pieces + 1)[1:-1],
              np.quantile(x, np.linspace(0, 1, n_pieces + 1)[1:-1])]
    if x.shape[0] >= 2 * n_pieces:
        starts.append(optimal_segmentation(x, y, n_pieces, jump=max(1, x.shape[0] // 400))
                      .breaks)
    for _ in range(random_starts):
        u = torch.rand(inner, generator=gen, dtype=torch.float64).numpy()
        starts.append(np.sort(lo + (hi - lo) * u))
    best = None
    for start in starts:
        cost, knots = _polish(x, y, np.clip(start, lo, hi), lo, hi, max_evaluations)
        if best is None or cost < best[0]:
            best = (cost, knots)
    # The cost has a kink wherever a knot crosses a data point, where a local solver can stall:
    # sweep each knot over a grid of positions (others fixed), then polish again.
    grid = np.unique(np.quantile(x, np.linspace(0, 1, min(x.shape[0], 200))))
    for _ in range(sweeps):
        cost, knots = best
        for j in range(inner):
            trial = np.repeat(knots[None, :], grid.shape[0], axis=0)
            trial[:, j] = grid
            costs = [float(np.square(_solve(x, y, k)[1]).sum()) for k in trial]
            if min(costs) < cost:
                cost, knots = min(costs), trial[int(np.argmin(costs))]
        cost, knots = _polish(x, y, knots, lo, hi, max_evaluations)
        if cost >= best[0] * (1 - 1e-12):
            break
        best = (cost, knots)
    cost, knots = best
    coef, _ = _solve(x, y, knots)
    return ContinuousFit(_spline(lo, hi, knots, coef), cost, len(starts))


def _polish(x, y, knots, lo, hi, max_evaluations=None) -> tuple[float, np.ndarray]:
    def sse(k):
        return float(np.square(_solve(x, y, np.clip(k, lo, hi))[1]).sum())

    fit = least_squares(lambda k: _solve(x, y, k)[1], knots, bounds=(lo, hi), method="trf",
                        x_scale=(hi - lo) / (knots.shape[0] + 1), max_nfev=max_evaluations)
    if sse(fit.x) <= sse(knots):
        knots = fit.x
    if knots.shape[0] <= NELDER_MEAD_MAX_KNOTS:
        # Gradient solvers stop at the kinks (a knot on a data point); the simplex does not.
        simplex = minimize(sse, knots, method="Nelder-Mead",
                           options={"xatol": 1e-10 * (hi - lo), "fatol": 1e-15, "maxfev": 4000})
        if simplex.fun < sse(knots):
            knots = np.clip(simplex.x, lo, hi)
    return sse(knots), knots
