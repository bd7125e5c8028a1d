r"""Segmented least-squares regression: the discontinuous piecewise-linear yardsticks.

Both fitters here fit **discontinuous** pieces — every segment gets its own ordinary
least-squares line — as in Bai & Perron (1998) and Acharya, Diakonikolas, Li & Schmidt (2016).
A ReLU network is continuous; see :mod:`deepbasis.reference.continuous` for that optimum.

- :func:`optimal_segmentation` — exact dynamic programming (Bai & Perron 1998): the **global
  optimum** of the total squared error over all segmentations into k segments of at least
  ``min_size`` points (same problem as ``ruptures.Dynp(model="linear")``).
- :func:`greedy_merge` — Greedy Merge (Acharya et al. 2016): fast, **approximate** (no
  optimality guarantee for a given k; the paper bounds its error against the optimum with
  O(k) pieces).

Segment costs are O(1) from prefix sums of 1, x, y, x², xy, y² (on centred, scaled data to
limit cancellation): the SSE of the OLS line on points i..j−1 is
:math:`S_{yy} − S_y^2/n − (S_{xy} − S_x S_y / n)^2 / (S_{xx} − S_x^2 / n)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Segmentation:
    """A discontinuous piecewise-linear least-squares fit of sorted data.

    Attributes:
        x, y: the (sorted) data, float64 NumPy arrays.
        ends: segment ends as indices into the data, exclusive, the last one ``n`` (ruptures'
            convention for breakpoints).
        coefficients: ``(k, 2)`` slope and intercept of each segment's OLS line.
        cost: total squared error Σ (fit − y)².
        method: which fitter made it.
    """

    x: np.ndarray
    y: np.ndarray
    ends: tuple[int, ...]
    coefficients: np.ndarray
    cost: float
    method: str

    @property
    def num_pieces(self) -> int:
        return len(self.ends)

    @property
    def starts(self) -> tuple[int, ...]:
        return (0, *self.ends[:-1])

    @property
    def breaks(self) -> np.ndarray:
        """x where one segment hands over to the next: midway between neighbouring points."""
        inner = np.asarray(self.ends[:-1], dtype=np.int64)
        return (self.x[inner - 1] + self.x[inner]) / 2

    def __call__(self, x) -> np.ndarray:
        """Evaluate the (discontinuous) fit; each x uses the segment whose range holds it."""
        x = np.asarray(x, dtype=np.float64)
        seg = np.searchsorted(self.breaks, x, side="right")
        return self.coefficients[seg, 0] * x + self.coefficients[seg, 1]

    def mse(self) -> float:
        return self.cost / self.x.shape[0]


class SegmentCosts:
    """O(1) SSE of the OLS line on any run of consecutive points, from prefix sums."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y
        # Centre and scale: the prefix sums then stay O(n) and cancellation stays small.
        self._mx, self._sx = x.mean(), max(float(np.ptp(x)), np.finfo(float).tiny)
        self._my, self._sy = y.mean(), max(float(np.abs(y - y.mean()).max()), 1.0)
        u = (x - self._mx) / self._sx
        v = (y - self._my) / self._sy
        zero = np.zeros(1)
        self._n = np.arange(x.shape[0] + 1, dtype=np.float64)
        self._su = np.concatenate([zero, np.cumsum(u)])
        self._sv = np.concatenate([zero, np.cumsum(v)])
        self._suu = np.concatenate([zero, np.cumsum(u * u)])
        self._suv = np.concatenate([zero, np.cumsum(u * v)])
        self._svv = np.concatenate([zero, np.cumsum(v * v)])

    def sse(self, i, j) -> np.ndarray:
        """SSE of the OLS line on points ``i .. j − 1`` (broadcasting integer arrays)."""
        n = self._n[j] - self._n[i]
        su, sv = self._su[j] - self._su[i], self._sv[j] - self._sv[i]
        with np.errstate(divide="ignore", invalid="ignore"):
            cuu = (self._suu[j] - self._suu[i]) - su * su / n
            cuv = (self._suv[j] - self._suv[i]) - su * sv / n
            cvv = (self._svv[j] - self._svv[i]) - sv * sv / n
            # A run with (numerically) one distinct x fits a constant: no slope term.
            flat = cuu <= 1e-13 * np.maximum(n, 1.0)
            sse = np.where(flat, cvv, cvv - cuv * cuv / np.where(flat, 1.0, cuu))
        return np.maximum(sse, 0.0) * self._sy**2

    def line(self, i: int, j: int) -> tuple[float, float]:
        """Slope and intercept of the OLS line on points ``i .. j − 1`` (in the data's units)."""
        xs, ys = self.x[i:j], self.y[i:j]
        if j - i == 1 or np.ptp(xs) == 0:
            return 0.0, float(ys.mean())
        xm, ym = xs.mean(), ys.mean()
        slope = float(((xs - xm) * (ys - ym)).sum() / ((xs - xm) ** 2).sum())
        return slope, float(ym - slope * xm)


def _prepare(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    y = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y, dtype=np.float64)
    x, y = x.reshape(-1), y.reshape(-1)
    if x.shape != y.shape or x.shape[0] < 2:
        raise ValueError(f"x and y need the same number (≥ 2) of values, got {x.shape} and "
                         f"{y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite")
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def _result(costs: SegmentCosts, ends: list[int], method: str) -> Segmentation:
    starts = [0, *ends[:-1]]
    coef = np.array([costs.line(i, j) for i, j in zip(starts, ends, strict=True)])
    # Report the cost from the residuals (the prefix sums that chose the cuts carry rounding
    # of order eps · Σ y² per segment).
    seg = np.repeat(np.arange(len(ends)), np.diff([0, *ends]))
    cost = float(((coef[seg, 0] * costs.x + coef[seg, 1] - costs.y) ** 2).sum())
    return Segmentation(costs.x, costs.y, tuple(int(e) for e in ends), coef, cost, method)


def optimal_segmentation(x, y, n_pieces: int, *, min_size: int = 2,
                         jump: int = 1) -> Segmentation:
    r"""Globally optimal segmented regression into ``n_pieces`` discontinuous OLS lines.

    Exact dynamic programming (Bai & Perron 1998): with :math:`c(i, j)` the SSE of the OLS line
    on points i..j−1 (O(1) from prefix sums) and :math:`D_p(j)` the least error of p segments of
    the first j points, :math:`D_p(j) = \min_i D_{p−1}(i) + c(i, j)`; O(k m²) for m candidate
    breakpoints, vectorized over them. This is the **global optimum** among segmentations whose
    segments have ≥ ``min_size`` points and whose inner breakpoints are multiples of ``jump``
    — the problem ``ruptures.Dynp(model="linear", min_size=min_size, jump=jump)`` solves.

    Args:
        x, y: data (any order; sorted by x here).
        n_pieces: number of segments k ≥ 1.
        min_size: least number of points per segment (2: a line through two points).
        jump: inner breakpoints only at indices that are multiples of ``jump``.

    Returns:
        :class:`Segmentation` (``ends`` as ruptures returns them).
    """
    x, y = _prepare(x, y)
    n = x.shape[0]
    for name, value in (("n_pieces", n_pieces), ("min_size", min_size), ("jump", jump)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    candidates = np.concatenate([np.arange(0, n, jump), [n]])  # possible segment ends/starts
    if n_pieces * min_size > n:
        raise ValueError(f"cannot cut {n} points into {n_pieces} segments of ≥ {min_size} points;"
                         f" lower n_pieces or min_size")
    costs = SegmentCosts(x, y)
    i, j = candidates[:, None], candidates[None, :]
    seg = costs.sse(i, j)  # (m, m): cost of a segment from candidate a to candidate b
    seg[(j - i) < min_size] = np.inf
    m = candidates.shape[0]
    best = seg[0].copy()  # D_1(b): one segment from 0 to candidate b
    back = []
    for _ in range(n_pieces - 1):
        total = best[:, None] + seg  # (a, b): D_{p−1}(a) + c(a, b)
        arg = np.argmin(total, axis=0)  # first minimum, like ruptures' ascending scan
        best = total[arg, np.arange(m)]
        back.append(arg)
    if not np.isfinite(best[-1]):
        raise ValueError(f"no segmentation of {n} points into {n_pieces} segments with "
                         f"min_size={min_size} and jump={jump}")
    ends, b = [n], m - 1
    for arg in reversed(back):
        b = int(arg[b])
        ends.append(int(candidates[b]))
    return _result(costs, sorted(ends), "dp")


def greedy_merge(x, y, n_pieces: int, *, initial_size: int | None = None,
                 noise_variance: float | None = None) -> Segmentation:
    r"""Greedy Merge segmented regression (Acharya, Diakonikolas, Li & Schmidt, ICML 2016).

    Start from runs of ``initial_size`` consecutive points (default ≈ n^{1/4}, at least 2).
    Each round pairs neighbouring segments, scores each pair by its merge error
    :math:`\mathrm{SSE}(\text{merged}) − \text{length} · σ^2`, keeps the ⌈k/2⌉ pairs with the
    largest scores unmerged and merges all others (so the count falls from m to about
    m/2 + k/2). Once a round would overshoot, the cheapest single neighbouring pair is merged
    one at a time until k segments remain. σ² is ``noise_variance`` or, by default, the
    residual variance of the initial runs.

    An **approximation**: no optimality guarantee at a given k (the paper proves an error bound
    against the optimum, with O(k) pieces); it needs O(n log n) work instead of O(k n²).
    """
    x, y = _prepare(x, y)
    n = x.shape[0]
    if isinstance(n_pieces, bool) or not isinstance(n_pieces, int) or n_pieces < 1:
        raise ValueError(f"n_pieces must be a positive integer, got {n_pieces!r}")
    size = initial_size or max(2, round(n**0.25))
    if n_pieces * size > n and initial_size is None:
        size = max(1, n // n_pieces)
    ends = list(range(size, n, size))
    if not ends or ends[-1] != n:
        ends.append(n)
    if len(ends) > 1 and n - ends[-2] < size:  # fold a short tail into its neighbour
        ends.pop(-2)
    costs = SegmentCosts(x, y)
    ends_a = np.asarray(ends)
    if noise_variance is None:
        starts_a = np.concatenate([[0], ends_a[:-1]])
        dof = max(n - 2 * len(ends), 1)
        noise_variance = float(costs.sse(starts_a, ends_a).sum()) / dof
    sigma2 = float(noise_variance)
    keep = math.ceil(n_pieces / 2)
    while len(ends_a) > n_pieces:
        m = len(ends_a)
        pairs = m // 2
        if pairs - keep < 1 or m - (pairs - keep) < n_pieces:
            break
        starts_a = np.concatenate([[0], ends_a[:-1]])
        left = starts_a[0:2 * pairs:2]
        right_end = ends_a[1:2 * pairs:2]
        score = costs.sse(left, right_end) - (right_end - left) * sigma2  # (pairs,)
        unmerged = np.zeros(pairs, dtype=bool)
        unmerged[np.argsort(score, kind="stable")[pairs - keep:]] = True  # the largest errors
        drop = np.zeros(m, dtype=bool)  # drop the end between a merged pair
        drop[0:2 * pairs:2] = ~unmerged
        ends_a = ends_a[~drop]
    while len(ends_a) > n_pieces:  # finish one merge at a time, cheapest first
        starts_a = np.concatenate([[0], ends_a[:-1]])
        merged = costs.sse(starts_a[:-1], ends_a[1:])
        parts = costs.sse(starts_a[:-1], ends_a[:-1]) + costs.sse(starts_a[1:], ends_a[1:])
        k = int(np.argmin(merged - parts))
        ends_a = np.delete(ends_a, k)
    return _result(costs, [int(e) for e in ends_a], "greedy_merge")
