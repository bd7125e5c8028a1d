r"""Variance flow through a deep network at initialization, as a dynamical system.

Wang, Crawford-Eng & Perdikaris, "Enhancing the trainability and expressivity of deep MLPs with
globally orthogonal initialization" (2021), §2 and App. B. With weights of standard deviation
:math:`c/\sqrt{d_\text{in}}` and zero biases, a wide layer's pre-activations are approximately
:math:`N(0, c^2 s_i^2)`, so the root second moment of the post-activations follows

.. math::
    s_{i+1} = F_c(s_i) = \sqrt{\mathbb{E}\, f(c\, s_i\, Z)^2}, \qquad Z \sim N(0, 1)
    \quad\text{(eq. 2.1)}

and, backwards, the root second moment of the activation derivatives follows

.. math::
    s^T_X = B_c(s^T_Y) = \sqrt{\mathbb{E}\, f'(c\, s^T_Y\, Z)^2} \quad\text{(eq. B.3)}.

**Quadrature.** The paper estimates the expectations with 4,096 Monte Carlo draws (App. C.1),
whose error is ~1e-2. We use Gauss–Hermite quadrature in the probabilists' form,
:math:`\mathbb{E}\, g(Z) ≈ \sum_k w_k g(z_k)`, with an order that grows with the scale
:math:`σ = c s` of the integrand: ``order = 80 σ²`` rounded up to a power of two, at least 64
(the nodes near 0 are ~π/√(2n) apart, and ``f(σ z)`` varies on the scale 1/σ). Measured against
adaptive ``scipy.integrate.quad`` (split at 0, tolerance 1e-13) at σ ∈ {0.1, 0.5, 1, 3, 10,
30}: the absolute error of :math:`\mathbb{E} f(σZ)^2` and :math:`\mathbb{E} f'(σZ)^2` is at most
2.3e-10 for tanh (1e-13 for σ ≤ 3 and the function itself), 2.5e-13 for sin, and for ReLU
relative 3e-13 (the rule is exact up to rounding for every σ, because the nodes are symmetric and
even in number: the kink at 0 falls between nodes and :math:`\sum_{z_k > 0} w_k z_k^2 = 1/2`).
A 10⁷-draw Monte Carlo run (seed 0, standard errors 6e-5 to 9e-3) agrees with the quadrature
within 1.1 standard errors at σ ∈ {0.5, 1, 2, 5} for tanh, sin and ReLU
(tests/test_variance_flow.py checks 10⁶ draws within 4 standard errors). For a kinked
activation other than ReLU (a kink away from 0, e.g. hardtanh) the rule converges only
algebraically: pass a larger ``order``.

**Fixed points** of :math:`F_c` (or :math:`B_c`) are found by scanning :math:`F_c(s) - s` on a
geometric grid of (0, s_max] for sign changes and bisecting each bracket to machine precision;
a fixed point s* is stable when :math:`|F_c'(s^*)| < 1` (derivative by central differences).
For tanh, s = 0 is the only fixed point for c ≤ 1 and it is stable (slope c); at c = 1 a
pitchfork bifurcation creates a stable positive fixed point and makes 0 unstable (Fig. 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy.special import roots_hermitenorm
from torch import nn

Activation = str | nn.Module | Callable[[torch.Tensor], torch.Tensor]

_MIN_ORDER = 64
_MAX_ORDER = 2**18  # σ up to ~57 at the default accuracy; beyond, pass order= explicitly


@lru_cache(maxsize=32)
def _nodes(order: int) -> tuple[torch.Tensor, torch.Tensor]:
    z, w = roots_hermitenorm(order)  # ∫ g(z) e^{-z²/2} dz ≈ Σ w_k g(z_k)
    w = w / math.sqrt(2.0 * math.pi)  # → expectation under N(0, 1)
    return torch.as_tensor(z, dtype=torch.float64), torch.as_tensor(w, dtype=torch.float64)


def gauss_hermite(order: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights (float64) with ``E g(Z) ≈ Σ w_k g(z_k)`` for Z ~ N(0, 1)."""
    if isinstance(order, bool) or not isinstance(order, int) or order < 2:
        raise ValueError(f"order must be an integer >= 2, got {order!r}")
    return _nodes(order)


def auto_order(scale: float) -> int:
    """The default quadrature order for an integrand ``g(scale · z)``: 80 scale², a power of 2."""
    need = max(_MIN_ORDER, 80.0 * scale * scale)
    return int(min(_MAX_ORDER, 2 ** math.ceil(math.log2(need))))


def as_activation(activation: Activation) -> Callable[[torch.Tensor], torch.Tensor]:
    """A name from :data:`deepbasis.nn.ACTIVATIONS`, an ``nn.Module`` or a tensor function."""
    if isinstance(activation, str):
        from ..nn.mlp import make_activation

        return make_activation(activation)
    if callable(activation):
        return activation
    raise TypeError(f"activation must be a name such as 'tanh', an nn.Module or a function of a "
                    f"tensor, got {activation!r}")


def _derivative(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    # Elementwise activation: the gradient of Σ f(x_k) is f'(x_k).
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(f(x).sum(), x)
    return grad.detach()


def gaussian_moment(activation: Activation, scale: float, *, derivative: bool = False,
                    order: int | None = None) -> float:
    r""":math:`\mathbb{E}\, g(σ Z)^2` for ``g = f`` (or ``f'`` with ``derivative=True``)."""
    scale = float(scale)
    if not math.isfinite(scale) or scale < 0:
        raise ValueError(f"scale must be a finite number >= 0, got {scale!r}")
    f = as_activation(activation)
    z, w = gauss_hermite(order if order is not None else auto_order(scale))
    x = scale * z
    g = _derivative(f, x) if derivative else f(x)
    return float((w * g.to(torch.float64) ** 2).sum())


def forward_map(activation: Activation, c: float, s: float, *, order: int | None = None) -> float:
    r"""One step of eq. 2.1: :math:`\sqrt{\mathbb{E}\, f(c s Z)^2}`."""
    return math.sqrt(gaussian_moment(activation, abs(c) * s, order=order))


def backward_map(activation: Activation, c: float, s: float, *, order: int | None = None) -> float:
    r"""One step of eq. B.3: :math:`\sqrt{\mathbb{E}\, f'(c s Z)^2}`."""
    return math.sqrt(gaussian_moment(activation, abs(c) * s, derivative=True, order=order))


def variance_flow(activation: Activation, c: float, s0: float, layers: int, *,
                  backward: bool = False, order: int | None = None) -> list[float]:
    """Iterate eq. 2.1 (or B.3 with ``backward=True``) ``layers`` times from ``s0``.

    Returns ``[s_0, s_1, …, s_layers]``.

    Examples:
        >>> flow = variance_flow("relu", math.sqrt(2), 1.0, 10)
        >>> round(flow[-1], 12)  # He's scale preserves the second moment (Fig. 1a)
        1.0
    """
    _check_scale_and_start(c, s0)
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 0:
        raise ValueError(f"layers must be a non-negative integer, got {layers!r}")
    step = backward_map if backward else forward_map
    path = [float(s0)]
    for _ in range(layers):
        path.append(step(activation, c, path[-1], order=order))
    return path


@dataclass(frozen=True)
class FixedPoint:
    """A fixed point s* = F(s*) of eq. 2.1 or B.3, with the slope F'(s*) that decides stability."""

    s: float
    slope: float

    @property
    def stable(self) -> bool:
        """Attracting: |F'(s*)| < 1."""
        return abs(self.slope) < 1.0


def map_slope(activation: Activation, c: float, s: float, *, backward: bool = False,
              order: int | None = None, step: float = 1e-5) -> float:
    """F'(s) by central differences (one-sided at s = 0, where F is defined for s ≥ 0 only)."""
    fn = backward_map if backward else forward_map
    h = step * max(1.0, s)
    # Fix the quadrature order across the stencil so the difference sees one smooth function.
    order = order if order is not None else auto_order(abs(c) * (s + h))
    if s - h < 0:
        return (fn(activation, c, s + h, order=order) - fn(activation, c, s, order=order)) / h
    return (fn(activation, c, s + h, order=order) - fn(activation, c, s - h, order=order)) / (2 * h)


def fixed_points(activation: Activation, c: float, *, backward: bool = False,
                 s_max: float = 10.0, s_min: float = 1e-8, grid: int = 400,
                 order: int | None = None) -> list[FixedPoint]:
    r"""All fixed points of eq. 2.1 (or B.3) in [0, s_max], by bracketing and bisection.

    s = 0 is reported when F(0) = 0 (every odd activation; ReLU); its slope is the one-sided
    derivative. Positive fixed points are located by sign changes of F(s) − s on ``grid``
    geometrically spaced points of [s_min, s_max] and bisected to machine precision, so two
    fixed points closer than one grid cell can be missed (raise ``grid``). A map with F(s) = s
    on a whole interval (ReLU at c = √2) has no isolated fixed points: the scan finds none, and
    the slope at 0 (exactly 1) says so.

    Examples:
        >>> [round(p.s, 6) for p in fixed_points("tanh", 0.9)]  # below the bifurcation
        [0.0]
        >>> len(fixed_points("tanh", 1.5))  # 0 (unstable) and one stable positive point
        2
    """
    _check_scale_and_start(c, 1.0)
    if not (0 < s_min < s_max) or not math.isfinite(s_max):
        raise ValueError(f"need 0 < s_min < s_max < inf, got s_min={s_min!r}, s_max={s_max!r}")
    fn = backward_map if backward else forward_map

    def gap(s: float) -> float:
        return fn(activation, c, s, order=order) - s

    points = []
    if abs(fn(activation, c, 0.0, order=order)) < 1e-300:
        points.append(FixedPoint(0.0, map_slope(activation, c, 0.0, backward=backward,
                                                order=order)))
    grid_s = np.geomspace(s_min, s_max, grid)
    values = [gap(float(s)) for s in grid_s]
    for lo, hi, g_lo, g_hi in zip(grid_s[:-1], grid_s[1:], values[:-1], values[1:], strict=True):
        if g_lo == 0.0:
            root = float(lo)
        elif g_lo * g_hi < 0:
            root = _bisect(gap, float(lo), float(hi), g_lo)
        else:
            continue
        points.append(FixedPoint(root, map_slope(activation, c, root, backward=backward,
                                                 order=order)))
    return points


def _bisect(g: Callable[[float], float], lo: float, hi: float, g_lo: float) -> float:
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        g_mid = g(mid)
        if g_mid == 0.0:
            return mid
        if (g_mid < 0) == (g_lo < 0):
            lo, g_lo = mid, g_mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def bifurcation_scale(activation: Activation, *, c_low: float = 0.5, c_high: float = 2.0,
                      s_probe: float = 1e-3, tol: float = 1e-10,
                      order: int | None = None) -> float:
    r"""The scale c at which s = 0 stops attracting eq. 2.1, by bisection on c.

    Bisects on the sign of :math:`F_c(s_p) - s_p` at a small probe ``s_p`` (< 0: the flow
    contracts toward 0; > 0: it escapes to the positive fixed point). For tanh this is c = 1
    up to O(s_p²) (Fig. 2): :math:`F_c(s) ≈ c s (1 − c² s²)`.
    """
    def escapes(c: float) -> bool:
        return forward_map(activation, c, s_probe, order=order) > s_probe

    if escapes(c_low) or not escapes(c_high):
        raise ValueError(f"no bifurcation bracketed in [c_low, c_high] = [{c_low}, {c_high}]; "
                         "widen the bracket")
    lo, hi = c_low, c_high
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if escapes(mid) else (mid, hi)
    return 0.5 * (lo + hi)


def _check_scale_and_start(c: float, s0: float) -> None:
    for name, value in (("c", c), ("s0", s0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


__all__ = [
    "FixedPoint",
    "auto_order",
    "backward_map",
    "bifurcation_scale",
    "fixed_points",
    "forward_map",
    "gauss_hermite",
    "gaussian_moment",
    "map_slope",
    "variance_flow",
]
