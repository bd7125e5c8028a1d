r"""Exact splines of 1-D ReLU networks: breakpoints, delta-slopes, linear pieces, roughness.

A ReLU network with scalar input is a continuous piecewise-linear (CPWL) function. This module
computes that function *exactly* (up to float64 rounding, never by sampling):

- :func:`bdso` — the Breakpoint / Delta-slope / Orientation form of a shallow network
  (Sahs et al. 2020, eq. 2; Sahs et al. 2022, eq. 1):
  :math:`f(x) = b_0 + \sum_i μ_i (x − β_i) ⟦s_i (x − β_i) > 0⟧` with :math:`β_i = −b_i / w_i`,
  :math:`μ_i = w_i v_i`, :math:`s_i = \operatorname{sgn} w_i`.
- :func:`spline_of` — the spline of *any* 1-D → m ReLU network on an interval (plain or residual
  :class:`~deepbasis.MLP` of any depth, or an ``nn.Sequential`` of ``Linear`` / ``ReLU``), found
  by propagating linear pieces layer by layer (Sahs et al. 2020, §2.1 and App. B). Every knot of
  the output records the (layer, unit) whose pre-activation crossed zero there, and every layer
  records all its zero crossings, *active* (the output bends there) or not.
- :func:`count_pieces` — the number of linear pieces of the output.
- :class:`Spline` — a value type for CPWL functions on an interval (evaluation, roughness,
  restriction, plot), also returned by the continuous fits in :mod:`deepbasis.reference`.

How the propagation works. On ``[lower, upper]`` the network's state after each layer is CPWL,
stored as its values at sorted points ``t`` and its slope on each interval between them. A
linear layer maps values and slopes. A ReLU finds, for every interval and unit, a strict sign
change of the pre-activation (an affine function there), inserts the zero crossing
:math:`t^* = t_j + (t_{j+1} − t_j)\, z_j / (z_j − z_{j+1})` as a new point (the crossing unit
is set to exactly 0 there, the others are interpolated), and zeroes the slope of every unit on
the sub-intervals where it is off (its sign at a sub-interval's midpoint: at a crossing, a unit
crossing zero at the same x is only rounding away from 0). All units of a layer are handled at
once. Residual layers add the skip before the next layer, as :class:`~deepbasis.MLP` does. With
Numba installed (``deepbasis[fast]``) the whole propagation is one compiled call.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..nn.mlp import MLP
from . import _spline_ops as ops

# A knot is *active* (the output bends there) when its slope jump exceeds this fraction of the
# size of the terms summed to make the output's slopes (see `_output_arrays`). Mathematically
# inactive knots give jumps of exactly 0 or a few ulps of those terms (BLAS may sum two rows in
# different orders); genuine jumps below 1e-13 of the slope terms are beyond float64 anyway.
DEFAULT_JUMP_RTOL = 1e-13
# Pieces narrower than this fraction of the interval's scale are rounding slivers: two crossings
# that coincide mathematically (a unit that touches zero without crossing, dipped an ulp below
# by rounding; two units built to share a breakpoint) land an ulp or two apart. Breakpoints are
# computed to ~1e-15 of that scale, so 1e-12 leaves a margin of 1000 either way.
DEFAULT_SLIVER_RTOL = 1e-12


@dataclass(frozen=True)
class LayerCrossings:
    """All zero crossings of one ReLU layer's pre-activations on the interval.

    Attributes:
        layer: 1-based index of the ReLU layer (hidden layer ℓ of Sahs et al. 2020, App. B).
        x: ``(C,)`` float64 crossing locations, sorted.
        unit: ``(C,)`` int64 index of the unit whose pre-activation is zero there.
        active: ``(C,)`` bool, whether the network's output is non-differentiable there (some
            path from the unit to the output is on; Definition 1 of App. B). Inactive crossings
            are real breakpoints of the layer but the output does not see them.
    """

    layer: int
    x: torch.Tensor
    unit: torch.Tensor
    active: torch.Tensor

    @property
    def count(self) -> int:
        """Number of breakpoints this layer induces (active or not)."""
        return int(self.x.numel())

    @property
    def count_active(self) -> int:
        """Number of breakpoints of this layer that the output sees."""
        return int(self.active.sum())


class _Crossings(Sequence):
    """The :class:`LayerCrossings` of every ReLU layer, an immutable sequence built on first
    use from the crossings of all layers in one array each (most callers only count pieces,
    and 3 tensors per layer cost as much as a ReLU step)."""

    def __init__(self, counts: np.ndarray, x: np.ndarray, unit: np.ndarray,
                 active: np.ndarray) -> None:
        self._arrays = (counts, x, unit, active)

    @functools.cached_property
    def _layers(self) -> tuple[LayerCrossings, ...]:
        counts, *arrays = self._arrays
        sizes = counts.tolist()
        return tuple(LayerCrossings(layer, *parts) for layer, parts in enumerate(
            zip(*(torch.from_numpy(a).split(sizes) for a in arrays), strict=True), 1))

    def __getitem__(self, index):
        return self._layers[index]

    def __len__(self) -> int:
        return self._arrays[0].shape[0]

    def __repr__(self) -> str:
        return repr(self._layers)


@dataclass(frozen=True, eq=False)
class Spline:
    r"""A continuous piecewise-linear function :math:`[a, b] → ℝ^m`.

    Stored as its values at the sorted points ``a = t_0 < t_1 < … < t_K < t_{K+1} = b`` and
    the slope of each of the K + 1 pieces between them. The interior points are the *knots*
    (breakpoints): the output's slope changes at each of them.

    Attributes:
        points: ``(K + 2,)`` float64, ``(lower, *knots, upper)``.
        values: ``(K + 2, m)`` float64, the function at ``points``.
        slopes: ``(K + 1, m)`` float64, the slope of each piece.
        knot_layer, knot_unit: ``(K,)`` int64 or ``None`` — for a spline of a network, the
            (1-based layer, unit) whose pre-activation crossed zero at each knot (the first
            one if several coincide).
        crossings: for a spline of a network, a sequence of one :class:`LayerCrossings` per
            ReLU layer, else ``None``.

    Evaluation outside ``[lower, upper]`` extends the two end pieces linearly; for a spline of
    a network that is the network only if it has no breakpoints out there.

    Examples:
        >>> import torch
        >>> s = Spline.from_values(torch.tensor([0., 1., 2.]), torch.tensor([0., 1., 0.]))
        >>> s(torch.tensor([0.5, 1.5]))
        tensor([0.5000, 0.5000], dtype=torch.float64)
        >>> s.num_pieces, s.roughness()
        (2, 4.0)
    """

    points: torch.Tensor
    values: torch.Tensor
    slopes: torch.Tensor
    knot_layer: torch.Tensor | None = None
    knot_unit: torch.Tensor | None = None
    crossings: Sequence[LayerCrossings] | None = field(default=None, repr=False)

    @classmethod
    def from_values(cls, points: torch.Tensor, values: torch.Tensor) -> Spline:
        """The CPWL interpolant of ``values`` at strictly increasing ``points``.

        ``values`` is ``(P,)`` or ``(P, m)``. Points where the slope does not change are kept as
        knots (use :meth:`simplify` to drop them).
        """
        points = torch.as_tensor(points, dtype=torch.float64).reshape(-1)
        values = torch.as_tensor(values, dtype=torch.float64)
        if values.ndim == 1:
            values = values[:, None]
        if points.numel() < 2 or values.shape[0] != points.numel():
            raise ValueError(
                f"need at least 2 points and one value row per point, got {points.numel()} "
                f"points and values of shape {tuple(values.shape)}"
            )
        if not bool((points[1:] > points[:-1]).all()) or not bool(torch.isfinite(points).all()):
            raise ValueError("points must be finite and strictly increasing; sort them and "
                             "drop duplicates first")
        slopes = (values[1:] - values[:-1]) / (points[1:] - points[:-1])[:, None]
        return cls(points, values, slopes)

    # --- shape ------------------------------------------------------------------------------
    @property
    def knots(self) -> torch.Tensor:
        """``(K,)`` sorted interior breakpoints."""
        return self.points[1:-1]

    @property
    def lower(self) -> float:
        return float(self.points[0])

    @property
    def upper(self) -> float:
        return float(self.points[-1])

    @property
    def out_features(self) -> int:
        return int(self.values.shape[1])

    @property
    def num_pieces(self) -> int:
        """Number of linear pieces, K + 1."""
        return int(self.slopes.shape[0])

    @property
    def delta_slopes(self) -> torch.Tensor:
        """``(K, m)`` slope change at each knot (μ of the BDSO form for a shallow network)."""
        return self.slopes[1:] - self.slopes[:-1]

    # --- evaluation ---------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate at ``x``: ``(N, 1)`` → ``(N, m)`` like a network; ``(N,)`` → ``(N,)`` if
        m = 1, else ``(N, m)``."""
        x = torch.as_tensor(x)
        flat = x.detach().to(torch.float64).reshape(-1)
        # Piece p covers [points[p], points[p + 1]); the end pieces extend outward.
        piece = torch.searchsorted(self.knots, flat, right=True)  # (N,)
        y = self.values[piece] + self.slopes[piece] * (flat - self.points[piece])[:, None]
        if x.ndim == 2 and x.shape[1] == 1:
            return y
        if self.out_features == 1:
            return y[:, 0].reshape(x.shape)
        return y.reshape(*x.shape, self.out_features)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """Slope at ``x``, ``(N, m)`` (the right derivative at a knot)."""
        flat = torch.as_tensor(x, dtype=torch.float64).reshape(-1)
        return self.slopes[torch.searchsorted(self.knots, flat, right=True)]

    # --- measures -----------------------------------------------------------------------------
    def roughness(self) -> float:
        r"""Roughness :math:`ρ = \sum_k \lVert Δ s_k \rVert^2`, the squared slope jumps summed over
        knots (and outputs); for a shallow network :math:`ρ = \sum_i μ_i^2` (Sahs et al. 2020,
        §2.2)."""
        return float((self.delta_slopes**2).sum())

    def roughness_by_layer(self) -> dict[int, float]:
        """Roughness split by the layer that induced each knot (a spline of a network only).

        Sahs et al. (2020, Fig. 3) sum roughness "by layer" without defining it for deep
        networks; our choice (specs/spline-view.md): layer ℓ gets the squared slope jumps of the
        output at the active breakpoints that layer ℓ induced. The values sum to
        :meth:`roughness`.
        """
        if self.knot_layer is None or self.crossings is None:
            raise ValueError("roughness_by_layer needs a spline of a network; build it with "
                             "spline_of(model, lower, upper)")
        jumps = (self.delta_slopes**2).sum(dim=1)  # (K,)
        return {c.layer: float(jumps[self.knot_layer == c.layer].sum()) for c in self.crossings}

    def l2_distance(self, other: Spline) -> float:
        r"""Exact :math:`\lVert f − g \rVert_{L^2[a, b]}` to another spline on the same interval."""
        if abs(self.lower - other.lower) > 0 or abs(self.upper - other.upper) > 0:
            raise ValueError("both splines must live on the same interval; restrict one first")
        grid = torch.unique(torch.cat([self.points, other.points]))  # sorted
        d = self(grid[:, None]) - other(grid[:, None])  # (P, m), linear in between
        h = (grid[1:] - grid[:-1])[:, None]
        a, b = d[:-1], d[1:]
        return math.sqrt(float((h * (a * a + a * b + b * b) / 3).sum()))

    # --- transformations ----------------------------------------------------------------------
    def restrict(self, lower: float, upper: float) -> Spline:
        """The same function on ``[lower, upper]`` (inside or beyond this spline's interval)."""
        lower, upper = _check_interval(lower, upper)
        inside = (self.knots > lower) & (self.knots < upper)
        ends = torch.tensor([lower, upper], dtype=torch.float64)
        points = torch.cat([ends[:1], self.knots[inside], ends[1:]])
        values = torch.cat([self(ends[:1, None]), self.values[1:-1][inside],
                            self(ends[1:, None])])
        first = int(torch.searchsorted(self.knots, ends[:1], right=True))
        slopes = self.slopes[first:first + int(inside.sum()) + 1]
        return Spline(
            points, values, slopes,
            None if self.knot_layer is None else self.knot_layer[inside],
            None if self.knot_unit is None else self.knot_unit[inside],
            None if self.crossings is None else tuple(
                _restrict_crossings(c, lower, upper) for c in self.crossings),
        )

    def simplify(self, rtol: float = 0.0) -> Spline:
        """Drop knots whose slope jump is at most ``rtol`` times the largest |slope| (0: exact)."""
        scale = float(self.slopes.abs().max()) if self.slopes.numel() else 0.0
        keep = (self.delta_slopes.abs() > rtol * scale).any(dim=1)
        pieces = torch.cat([torch.tensor([True]), keep])
        points = torch.cat([self.points[:1], self.knots[keep], self.points[-1:]])
        values = torch.cat([self.values[:1], self.values[1:-1][keep], self.values[-1:]])
        return Spline(points, values, self.slopes[pieces],
                      None if self.knot_layer is None else self.knot_layer[keep],
                      None if self.knot_unit is None else self.knot_unit[keep], self.crossings)

    def plot(self, ax=None, *, output: int = 0, knots: bool = True, **kwargs):
        """Draw the spline (one output) with its knots marked; returns the matplotlib axes."""
        if ax is None:
            import matplotlib.pyplot as plt

            ax = plt.gca()
        (line,) = ax.plot(self.points.numpy(), self.values[:, output].numpy(), **kwargs)
        if knots and self.knots.numel():
            ax.plot(self.knots.numpy(), self.values[1:-1, output].numpy(), "o", ms=3,
                    color=line.get_color())
        return ax

    def __repr__(self) -> str:
        return (f"Spline(pieces={self.num_pieces}, interval=[{self.lower:g}, {self.upper:g}], "
                f"out_features={self.out_features})")


@dataclass(frozen=True)
class BDSO:
    r"""Breakpoint / delta-slope / orientation form of a shallow 1-D ReLU network.

    :math:`f(x) = b_0 + \sum_i μ_i (x − β_i) ⟦s_i (x − β_i) > 0⟧` (Sahs et al. 2020, eq. 2 and
    App. C.1). A unit with :math:`w_i = 0` is the constant :math:`v_i \operatorname{ReLU}(b_i)`:
    it has no breakpoint (β = NaN, μ = 0, s = 0) and its constant is part of ``offset``.

    Attributes:
        breakpoints: ``(H,)`` β_i = −b_i / w_i.
        delta_slopes: ``(H,)`` μ_i = w_i v_i.
        orientations: ``(H,)`` s_i = sgn w_i ∈ {−1, 0, +1}.
        offset: b_0 (the head's bias plus the constants of units with w_i = 0).
    """

    breakpoints: torch.Tensor
    delta_slopes: torch.Tensor
    orientations: torch.Tensor
    offset: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate the BDSO formula at ``x`` (any shape; returns the same shape)."""
        x = torch.as_tensor(x, dtype=torch.float64)
        flat = x.reshape(-1, 1)
        on = self.orientations != 0
        d = flat - self.breakpoints[on]  # (N, H')
        side = (self.orientations[on] * d) > 0
        y = self.offset + (self.delta_slopes[on] * d * side).sum(dim=1)
        return y.reshape(x.shape)

    def roughness(self) -> float:
        r""":math:`ρ = \sum_i μ_i^2` (Sahs et al. 2020, §2.2)."""
        return float((self.delta_slopes**2).sum())

    def to_spline(self, lower: float, upper: float) -> Spline:
        """The spline of this function on ``[lower, upper]`` (breakpoints outside are folded
        into the end pieces; coinciding breakpoints become one knot)."""
        lower, upper = _check_interval(lower, upper)
        on = self.orientations != 0
        beta = self.breakpoints[on]
        inside = beta[(beta > lower) & (beta < upper)]
        points = torch.cat([torch.tensor([lower], dtype=torch.float64),
                            torch.unique(inside),
                            torch.tensor([upper], dtype=torch.float64)])
        values = self(points)[:, None]
        mids = (points[1:] + points[:-1]) / 2
        d = mids[:, None] - beta  # (K + 1, H')
        slopes = (self.delta_slopes[on] * ((self.orientations[on] * d) > 0)).sum(dim=1)
        return Spline(points, values, slopes[:, None])


# ---------------------------------------------------------------------------------------------
# Networks as a program of float64 operations
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Program:
    """A ReLU network as the propagation reads it (both the compiled one and NumPy's).

    Attributes:
        codes: ``(n_ops,)`` int64 operation codes, in order.
        shapes: ``(n_linear, 4)`` int64, for linear layer k: (out, in, offset of its (out, in)
            weight in ``params``, offset of its (out,) bias).
        params: every weight and bias, float64, in one flat buffer.
    """

    codes: np.ndarray
    shapes: np.ndarray
    params: np.ndarray

    def linear(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Weight ``(out, in)`` and bias ``(out,)`` of linear layer ``k`` (views)."""
        out, into, w_at, b_at = (int(v) for v in self.shapes[k])
        return (self.params[w_at:w_at + out * into].reshape(out, into),
                self.params[b_at:b_at + out])


def _program(model: nn.Module) -> _Program:
    if isinstance(model, MLP):
        if model.activation_name != "relu":
            raise ValueError(f"spline_of needs a ReLU network; this MLP uses activation "
                             f"{model.activation_name!r}, whose output is not piecewise linear")
        if model.in_features != 1:
            raise ValueError(f"spline_of needs a network with one input, got in_features="
                             f"{model.in_features}")
        linears = [*model.layers, model.head]
        hidden = [ops.LINEAR, ops.RELU]
        if model.residual:
            hidden = [ops.OPEN_SKIP, *hidden, ops.CLOSE_SKIP]
        codes = [ops.LINEAR, ops.RELU, *hidden * (len(linears) - 2), ops.LINEAR]
    elif isinstance(model, nn.Sequential):
        codes, linears = [], []
        for module in _flatten(model):
            if isinstance(module, nn.Linear):
                codes.append(ops.LINEAR)
                linears.append(module)
            elif isinstance(module, nn.ReLU):
                codes.append(ops.RELU)
            elif not isinstance(module, nn.Identity):
                raise TypeError(f"spline_of handles nn.Linear, nn.ReLU and nn.Identity inside an "
                                f"nn.Sequential, got {type(module).__name__}")
        if not linears or linears[0].in_features != 1:
            raise ValueError("spline_of needs a network with one input: its first nn.Linear "
                             "must have in_features=1")
    else:
        raise TypeError(f"spline_of takes a deepbasis MLP or an nn.Sequential of Linear/ReLU "
                        f"layers, got {type(model).__name__}")
    # One copy of all parameters (weight, bias, weight, bias, …), float64 on the CPU.
    tensors, shapes, at = [], [], 0
    for layer in linears:
        w, b = layer.weight, layer.bias
        out, into = w.shape
        tensors += [w.reshape(-1), w.new_zeros(out) if b is None else b.reshape(-1)]
        shapes.append((out, into, at, at + out * into))
        at += out * (into + 1)
    params = torch.cat(tensors).detach().to("cpu", torch.float64).numpy()
    if isinstance(model, MLP) and model.domain is not None:
        # x̃ = (x − l) / (u − l): fold the input box into the first layer, in float64.
        lo, hi = float(model.domain[0][0]), float(model.domain[1][0])
        h = shapes[0][0]
        w, b = params[:h], params[h:2 * h]
        b -= (w * lo) / (hi - lo)
        w /= hi - lo
    return _Program(np.array(codes, dtype=np.int64), np.array(shapes, dtype=np.int64), params)


def _flatten(seq: nn.Sequential):
    for module in seq:
        if isinstance(module, nn.Sequential):
            yield from _flatten(module)
        else:
            yield module


def _check_interval(lower, upper) -> tuple[float, float]:
    lower, upper = float(lower), float(upper)
    if not (math.isfinite(lower) and math.isfinite(upper)) or not lower < upper:
        raise ValueError(f"need a finite interval with lower < upper, got [{lower}, {upper}]")
    return lower, upper


# ---------------------------------------------------------------------------------------------
# Propagation
# ---------------------------------------------------------------------------------------------


# A linear layer maps the slopes of every interval but the values of only every ANCHOR-th
# point: the other values are rebuilt as z[k + 1] = z[k] + s_k (t[k + 1] − t[k]), exact on each
# interval, summing at most ANCHOR − 1 steps from an anchor (so rounding stays within a few ulps
# of the terms). This nearly halves the arithmetic of mapping every point's values as well.
ANCHOR = 8


class _State:
    """A CPWL state on sorted points ``t`` (P,), stored in one buffer ``x``: rows 0..P−2 are
    the slopes on the P − 1 intervals, the last ⌈P / ANCHOR⌉ rows the values at the anchor
    points 0, ANCHOR, 2·ANCHOR, …, so one matrix product maps both. Also the full values and
    slopes of open residual blocks' inputs, and for each point its origin (crossing id; −1 for
    the interval's ends). After a ReLU, ``x`` keeps only the ``columns`` of the units that are
    nonzero somewhere (``None``: all ``width``): the next layer multiplies by those only.

    NumPy float64: the arrays are small, so per-call overhead and passes over memory dominate.
    """

    def __init__(self, t: np.ndarray, x: np.ndarray) -> None:
        self.t = t  # (P,)
        self.x = x  # (P − 1 + ⌈P / ANCHOR⌉, d)
        self.skips: list[tuple[np.ndarray, np.ndarray]] = []  # (values (P, d), slopes)
        self.origin = np.full(t.shape[0], -1, dtype=np.int64)
        self.columns: np.ndarray | None = None
        self.width = x.shape[1]

    def expand(self) -> None:
        """Put back the all-zero columns of the units a ReLU left off everywhere."""
        if self.columns is not None:
            full = np.zeros((self.x.shape[0], self.width))
            full[:, self.columns] = self.x
            self.x, self.columns = full, None

    def weight(self, w: np.ndarray) -> np.ndarray:
        """The columns of a next layer's weight ``w`` that meet the kept units."""
        return w if self.columns is None else w[:, self.columns]

    @property
    def slopes(self) -> np.ndarray:
        return self.x[: self.t.shape[0] - 1]

    def values(self) -> np.ndarray:
        """Values at every point, ``(P, d)``, rebuilt from the anchors and the slopes."""
        return _values(self.t, self.x)


def _values(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Values at the points ``t`` of the buffer ``x`` (slopes, then anchor values; _State)."""
    p, m = t.shape[0], ANCHOR
    d = x.shape[1]
    blocks = x.shape[0] - (p - 1)
    steps = np.empty((blocks * m, d))
    np.multiply(x[: p - 1], (t[1:] - t[:-1])[:, None], out=steps[1:p])
    steps[p:] = 0.0
    steps[::m] = x[p - 1:]  # exact values at the anchors
    cube = steps.reshape(blocks, m, d)
    for r in range(1, m):  # a running sum within each block (np.cumsum is slower here)
        cube[:, r] += cube[:, r - 1]
    return steps[:p]


def _mm_t(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``a @ w.T`` by torch's matmul, so the thread count follows torch.set_num_threads like
    the rest of the library (NumPy's BLAS would pick its own)."""
    return torch.mm(torch.from_numpy(a), torch.from_numpy(w).T).numpy()


def _linear(state: _State, w: np.ndarray, b: np.ndarray) -> None:
    x = _mm_t(state.x, state.weight(w))  # slopes and anchor values in one product
    x[state.t.shape[0] - 1:] += b  # the bias moves values only
    state.x, state.columns, state.width = x, None, x.shape[1]


def _split_numpy(t: np.ndarray, x: np.ndarray, origin: np.ndarray, m: int, next_id: int):
    """The ReLU step in NumPy: the same arithmetic, in the same order, as the compiled
    ``_spline_numba.relu_split``. Returns the new points, the buffer (only the columns ``cols``
    of the units that are > 0 somewhere) and origins, and for each crossing its interval j,
    unit u, fraction λ along the interval and location t*."""
    p = t.shape[0]
    z, sz = _values(t, x), x[: p - 1]  # (P, d) pre-activations, (P − 1, d) their slopes
    pos = z > 0
    cols = np.nonzero(pos.any(axis=0))[0]  # a crossing has a positive end: an old point
    j, u = np.nonzero(pos[:-1] != pos[1:])  # candidates; a zero at a point is no crossing
    a, b = z[j, u], z[j + 1, u]
    strict = (a * b) < 0
    if not strict.all():
        j, u, a, b = j[strict], u[strict], a[strict], b[strict]
    count = j.shape[0]
    if count == 0:
        on = pos[:-1] | pos[1:]  # a unit is on on an interval iff > 0 at either end
        anchors = np.maximum(z[::m], 0.0)
        return (t, np.concatenate([np.multiply(sz, on), anchors])[:, cols], cols, origin, j, u,
                a, a)
    lam = a / (a - b)  # in [0, 1]: a and −b have the same sign
    tj, tk = t[j], t[j + 1]
    tc = np.minimum(np.maximum(tj + lam * (tk - tj), tj), tk)  # (C,) inside interval j
    # New points go right after the old point that starts their interval, sorted by x there;
    # each old interval j becomes 1 + (its crossings) intervals, all with parent j.
    if count > 1 and bool((j[1:] == j[:-1]).any()):  # np.nonzero gave them sorted by interval
        within = np.lexsort((tc, j))
        j, u, lam, tc = j[within], u[within], lam[within], tc[within]
    per_interval = np.bincount(j, minlength=p - 1)  # (P − 1,)
    old_at, new_at = _new_positions(j, per_interval)
    q = p + count
    # A unit keeps one sign on each new interval. Between two old points it is the sign at
    # either end; on the pieces of a split interval, the sign at the piece's midpoint, where z
    # (affine on the parent interval) is clear of zero. (Not the sign at a crossing: a unit
    # that crosses zero at the same x as the crossing unit is an ulp off zero there.)
    on = np.repeat(pos[:-1] | pos[1:], per_interval + 1, axis=0)  # (Q − 1, d)
    is_new = np.zeros(q, dtype=bool)
    is_new[new_at] = True
    frac = np.zeros(q)  # each crossing's fraction λ along its parent interval
    frac[new_at] = lam
    rows = np.nonzero(is_new[:-1] | is_new[1:])[0]  # the pieces of split intervals
    mid = (frac[rows] + np.where(is_new[rows + 1], frac[rows + 1], 1.0)) * 0.5
    parent = np.repeat(np.arange(p - 1), per_interval + 1)[rows]
    za = z[parent]
    on[rows] = za + mid[:, None] * (z[parent + 1] - za) > 0
    out = np.empty((q - 1 + (q + m - 1) // m, z.shape[1]))
    np.multiply(np.repeat(sz, per_interval + 1, axis=0), on, out=out[: q - 1])
    # Anchors: the ReLU of the values there. z is affine on interval j: a crossing's values
    # are interpolated, the crossing unit's is exactly 0.
    anchors = out[q - 1:]
    source = np.empty(q, dtype=np.int64)  # old point, or p + crossing, behind each new point
    source[old_at] = np.arange(p)
    source[new_at] = np.arange(p, q)
    anchor_rows = source[::m]
    old = anchor_rows < p
    anchors[old] = z[anchor_rows[old]]
    c = anchor_rows[~old] - p
    zj = z[j[c]]
    anchors[~old] = zj + lam[c, None] * (z[j[c] + 1] - zj)
    anchors[np.nonzero(~old)[0], u[c]] = 0.0
    np.maximum(anchors, 0.0, out=anchors)
    new_t = np.empty(q)
    new_t[old_at] = t
    new_t[new_at] = tc
    new_origin = np.empty(q, dtype=np.int64)
    new_origin[old_at] = origin
    new_origin[new_at] = np.arange(next_id, next_id + count)
    return new_t, out[:, cols], cols, new_origin, j, u, lam, tc


def _new_positions(j: np.ndarray, per_interval: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the old points and the crossings (in interval ``j``, sorted) go among the new."""
    shift = np.zeros(per_interval.shape[0] + 1, dtype=np.int64)
    np.cumsum(per_interval, out=shift[1:])
    return np.arange(shift.shape[0]) + shift, j + 1 + np.arange(j.shape[0])


def _compiled():
    """The compiled module when Numba is installed (and ``ACCELERATE``), else ``None``."""
    global _COMPILED
    if not ACCELERATE:
        return None
    if _COMPILED is None:
        try:
            from . import _spline_numba
        except ImportError:  # Numba is optional: `pip install deepbasis[fast]`
            _spline_numba = False
        _COMPILED = _spline_numba
    return _COMPILED or None


# Propagate in one call compiled by Numba when it is installed (set False to run the NumPy
# code, e.g. to compare the two).
ACCELERATE = True
_COMPILED = None


def _relu_split(state: _State, crossings: list, next_id: int) -> int:
    """Apply a ReLU, inserting every zero crossing of the pre-activations as a new point."""
    state.expand()  # only after another ReLU: units are numbered in the full layer
    t, width = state.t, state.x.shape[1]
    new_t, x, cols, origin, j, u, lam, tc = _split_numpy(t, state.x, state.origin, ANCHOR,
                                                         next_id)
    count = j.shape[0]
    if count and state.skips:  # residual inputs live on the new points too
        per_interval = np.bincount(j, minlength=t.shape[0] - 1)
        old_at, new_at = _new_positions(j, per_interval)
        for k, (v, s) in enumerate(state.skips):
            moved = np.empty((new_t.shape[0], v.shape[1]))
            moved[old_at] = v
            moved[new_at] = v[j] + lam[:, None] * (v[j + 1] - v[j])
            state.skips[k] = (moved, np.repeat(s, per_interval + 1, axis=0))
    state.t, state.x, state.origin = new_t, x, origin
    state.columns, state.width = (None if cols.shape[0] == width else cols), width
    crossings.append((tc, u))  # sorted by interval, then by x: sorted by x
    return next_id + count


def _propagate(program: _Program, lower: float, upper: float) -> tuple:
    """Run ``program`` on ``[lower, upper]`` in NumPy; returns what the compiled
    ``_spline_numba.propagate`` does."""
    state = _State(np.array([lower, upper]), np.array([[1.0], [lower]]))  # slope 1; value at t0
    crossings: list[tuple] = []
    next_id, terms, last = 0, None, program.codes.shape[0] - 1
    layers = iter(range(program.shapes.shape[0]))
    for op, code in enumerate(program.codes):
        if code == ops.LINEAR:
            w, b = program.linear(next(layers))
            if op == last:  # the output's slopes' terms set the knot tolerance
                terms = _mm_t(np.abs(state.slopes), np.abs(state.weight(w))).max()
            _linear(state, w, b)
        elif code == ops.RELU:
            next_id = _relu_split(state, crossings, next_id)
        elif code == ops.OPEN_SKIP:
            state.expand()
            state.skips.append((state.values(), state.slopes.copy()))
        else:  # ops.CLOSE_SKIP: add the block's input
            state.expand()
            v, s = state.skips.pop()
            state.x = state.x + np.concatenate([s, v[::ANCHOR]])
    state.expand()
    if terms is None:
        terms = np.abs(state.slopes).max()
    counts = np.array([c[0].shape[0] for c in crossings], dtype=np.int64)
    units = np.concatenate([np.empty(0, np.int64), *(c[1] for c in crossings)])
    places = np.concatenate([np.empty(0), *(c[0] for c in crossings)])
    return state.t, state.values(), state.slopes, state.origin, counts, units, places, terms


@torch.no_grad()
def spline_of(model: nn.Module, lower: float, upper: float, *,
              jump_rtol: float = DEFAULT_JUMP_RTOL,
              sliver_rtol: float = DEFAULT_SLIVER_RTOL) -> Spline:
    r"""The exact spline of a 1-D → m ReLU network on ``[lower, upper]``.

    Propagates linear pieces layer by layer in float64 (Sahs et al. 2020, App. B): a neuron of
    layer ℓ induces a breakpoint wherever its pre-activation :math:`z^{(ℓ)}_i(x)` crosses zero;
    the breakpoint is *active* if the output is non-differentiable there. The returned spline
    has the output's knots (active breakpoints only) with the (layer, unit) that induced each,
    and in ``crossings`` every layer's zero crossings, active or not.

    Args:
        model: a :class:`~deepbasis.MLP` with ``activation="relu"`` and ``in_features=1``
            (plain or residual, any depth, with or without an input ``domain``), or an
            ``nn.Sequential`` of ``nn.Linear`` / ``nn.ReLU`` (nested ones are flattened).
        lower, upper: the interval.
        jump_rtol: a crossing is an output knot when the output's slope jumps there by more than
            ``jump_rtol`` times the largest sum of absolute terms that made an output slope (so
            mathematically zero jumps, which rounding can turn into a few ulps, are not knots).
        sliver_rtol: pieces narrower than ``sliver_rtol · max(upper − lower, |lower|, |upper|)``
            are rounding slivers between crossings that coincide mathematically (a unit that
            touches zero without crossing, dipped an ulp below it by rounding): the output keeps
            the pieces on either side, with a knot between them only if their slopes differ.
            The layers' ``crossings`` keep every crossing; 0 keeps every piece.

    Returns:
        :class:`Spline` with ``knot_layer``, ``knot_unit`` and ``crossings`` filled in.

    Examples:
        >>> import torch
        >>> from deepbasis import MLP
        >>> model = MLP(1, width=16, depth=3, dtype=torch.float64)
        >>> s = spline_of(model, -3.0, 3.0)
        >>> x = torch.linspace(-3, 3, 101, dtype=torch.float64)[:, None]
        >>> bool(torch.allclose(s(x), model(x), rtol=1e-12, atol=1e-12))
        True
    """
    lower, upper = _check_interval(lower, upper)
    if not sliver_rtol >= 0.0:
        raise ValueError(f"sliver_rtol must be >= 0 (0 keeps every piece), got {sliver_rtol}")
    sliver = sliver_rtol * max(upper - lower, abs(lower), abs(upper))
    program = _program(model)
    compiled = _compiled()
    if compiled is None:
        t, values, slopes, origin, counts, units, places, terms = _propagate(program, lower,
                                                                             upper)
        arrays = _output_arrays(t, values, slopes, origin, counts, units, jump_rtol * terms,
                                sliver)
    else:
        *arrays, counts, units, places = compiled.propagate_on_torch_threads(
            program.codes, program.shapes, program.params, lower, upper, ANCHOR, jump_rtol,
            sliver)
    *arrays, active = arrays
    return Spline(*(torch.from_numpy(a) for a in arrays),
                  _Crossings(counts, places, units, active))


def _output_arrays(t: np.ndarray, values: np.ndarray, slopes: np.ndarray, origin: np.ndarray,
                   counts: np.ndarray, units: np.ndarray, atol: float, sliver: float) -> tuple:
    """The output spline from the propagated points ``t`` with their ``values`` and ``origin``
    (crossing id; −1 for the ends) and the ``slopes`` between them, and each ReLU layer's
    crossing ``counts`` and all crossings' ``units`` in id order: its points, values and
    slopes, each knot's layer and unit, and whether each crossing is an output knot. The
    compiled ``_spline_numba.output_arrays`` does the same."""
    # Coinciding crossings leave intervals of zero length or a rounding sliver: keep the pieces
    # wider than `sliver` (the widest if none is); a knot between two kept pieces takes the
    # last of the points before the right one.
    widths = t[1:] - t[:-1]
    kept = np.nonzero(widths > sliver)[0]  # (Q,) left point of each piece kept
    if kept.shape[0] == 0:
        kept = np.array([int(np.argmax(widths))])
    slopes = slopes[kept]  # (Q, m)
    bend = (np.abs(slopes[1:] - slopes[:-1]) > atol).any(axis=1)  # (Q − 1,)
    knot_points = kept[1:][bend]  # index in t of each output knot
    # Pieces between two knots have the same slope up to atol: keep the first one's.
    first_piece = np.concatenate([[True], bend])
    points = np.concatenate([t[:1], t[knot_points], t[-1:]])
    vals = np.concatenate([values[:1], values[knot_points], values[-1:]])
    # Crossing ids are 0, 1, 2, … in the order they were issued, layer by layer.
    active_ids = origin[knot_points]
    active = np.zeros(units.shape[0], dtype=bool)
    active[active_ids] = True
    knot_layer = np.repeat(np.arange(1, counts.shape[0] + 1), counts)[active_ids]
    return points, vals, slopes[first_piece], knot_layer, units[active_ids], active


def _restrict_crossings(c: LayerCrossings, lower: float, upper: float) -> LayerCrossings:
    keep = (c.x > lower) & (c.x < upper)
    return LayerCrossings(c.layer, c.x[keep], c.unit[keep], c.active[keep])


def count_pieces(model: nn.Module, lower: float, upper: float) -> int:
    """Number of linear pieces of a 1-D ReLU network's output on ``[lower, upper]``, exactly
    (see :func:`spline_of`)."""
    return spline_of(model, lower, upper).num_pieces


def count_regions(model: nn.Module, lower: float, upper: float) -> int:
    """Number of activation regions on ``[lower, upper]``: intervals between *all* zero
    crossings of all layers, active or not (what ``regioncam`` counts in 1-D); ≥ the number of
    linear pieces of the output."""
    spline = spline_of(model, lower, upper)
    xs = torch.cat([c.x for c in spline.crossings]) if spline.crossings else torch.empty(0)
    return int(torch.unique(xs).numel()) + 1


# ---------------------------------------------------------------------------------------------
# Shallow networks
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def bdso(model: nn.Module) -> BDSO:
    """The BDSO form (breakpoints, delta-slopes, orientations, offset) of a shallow network.

    Accepts a :class:`~deepbasis.MLP` with depth 1, ReLU, one input and one output (its input
    ``domain`` is folded in, so breakpoints are in the user's x), or any
    ``nn.Sequential(nn.Linear(1, H), nn.ReLU(), nn.Linear(H, 1))``. Sahs et al. (2020), eq. 2.
    """
    program = _program(model)
    if program.codes.tolist() != [ops.LINEAR, ops.RELU, ops.LINEAR] or program.shapes[1, 0] != 1:
        raise ValueError("bdso needs a shallow network Linear(1, H) → ReLU → Linear(H, 1) (an MLP "
                         "with depth=1 and out_features=1); use spline_of for deeper networks")
    (w, b), (v, b0) = program.linear(0), program.linear(1)
    w, b, v = (torch.from_numpy(a.reshape(-1).copy()) for a in (w, b, v))  # (H,) each
    b0 = float(b0[0])
    orient = torch.sign(w)
    flat = orient == 0
    beta = torch.where(flat, torch.full_like(w, math.nan), -b / torch.where(flat, 1.0, w))
    mu = w * v
    offset = float(b0 + (v * b.clamp_min(0.0))[flat].sum())
    return BDSO(beta, mu, orient, offset)


