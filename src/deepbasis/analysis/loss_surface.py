r"""The loss surface of a shallow 1-D ReLU network in spline coordinates (Sahs et al. 2022,
§2.3–2.4).

Conventions (specs/spline-view.md, "Loss surface"): the loss is
:math:`ℓ = ½ \sum_n (f(x_n) − y_n)^2` — a *sum* with the factor ½, not a mean — and the residual
is :math:`ε_n = f(x_n) − y_n` (the paper's ε̂ has the opposite sign; only the signs of the
gradient formulas change). Parameters are θ_NN = (w, b, v, b₀), flattened in that order
(:class:`~deepbasis.analysis.shallow.ShallowParams`).

What is here:

- :func:`loss_hessian` — the exact Hessian of ℓ in the network parameters (``torch.func``; any
  network, or a :class:`ShallowParams`), and :func:`hessian_spectrum` — its eigenvalues and the
  number of zero ones, counted with a tolerance relative to the largest |eigenvalue|.
- :func:`data_partition`, :func:`is_lonely` — the partition of the data by the sorted
  breakpoints, and whether it is *lonely* (every piece holds at most one data point, 2022 §2.3.1);
  :func:`lonely_probability` (exact, for uniformly spaced breakpoints) beside
  :func:`lonely_probability_printed` (Remark 1 as printed).
- :func:`classify_knots` — Theorem 3: along the slice ℓ(β_i) (μ_i, s_i and the other units
  fixed) every data point is a Passthrough, Repeller or Attractor knot.
- :func:`piecewise_ols_test` — Theorem 4: with one unit active on all data, θ is critical iff on
  every piece of the data partition the network is the ordinary-least-squares line of that
  piece's data.

ReLU's second derivative is taken as 0 at the kink (what autograd does): the Hessian is exact
wherever no data point sits exactly on a breakpoint, the setting of the paper's Theorem 5.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, hessian

from .shallow import ShallowParams, as_data, as_shallow_params
from .spline import bdso

# Relative tolerance for zero eigenvalues of the Hessian: |λ| ≤ rtol · max|λ|. At a lonely
# critical point the zero eigenvalues come out at ~1e-16 · max|λ| (rounding of a float64
# Gram matrix) while the N non-zero ones are squared singular values of the N × (3H + 1)
# Jacobian of the outputs, ≥ 1e-8 · max|λ| in our experiments; 1e-10 sits between with margin.
DEFAULT_ZERO_RTOL = 1e-10

# Relative tolerance of the piecewise-OLS test (residual moments against the size of the terms
# summed to make them).
DEFAULT_OLS_RTOL = 1e-9

PASSTHROUGH, REPELLER, ATTRACTOR, FLAT = 0, 1, 2, 3
KNOT_NAMES = ("passthrough", "repeller", "attractor", "flat")


# ---------------------------------------------------------------------------------------------
# Loss, gradient, Hessian
# ---------------------------------------------------------------------------------------------


def shallow_loss(params: ShallowParams, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r""":math:`ℓ = ½ \sum_n (f(x_n) − y_n)^2` (differentiable in ``params``)."""
    return 0.5 * ((params(x) - y) ** 2).sum()


def _flat_loss_fn(model_or_params, x, y):
    """(θ₀ flat float64, θ ↦ ℓ(θ)) for a ShallowParams or any network."""
    if isinstance(model_or_params, ShallowParams):
        theta0 = model_or_params.flat().detach().clone()

        def loss(theta):
            return shallow_loss(ShallowParams.from_flat(theta), x, y)

        return theta0, loss
    model = copy.deepcopy(model_or_params).to(torch.float64)
    names = [n for n, p in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    theta0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    xs = x[:, None]

    def loss(theta):
        parts = torch.split(theta, sizes)
        params = {n: t.reshape(s) for n, t, s in zip(names, parts, shapes, strict=True)}
        out = functional_call(model, params, (xs,))  # (N, 1)
        return 0.5 * ((out[:, 0] - y) ** 2).sum()

    return theta0, loss


def loss_gradient(model_or_params: nn.Module | ShallowParams, x: torch.Tensor,
                  y: torch.Tensor) -> torch.Tensor:
    """Gradient of ℓ in the flat parameter vector (see :func:`loss_hessian` for the order)."""
    x, y = as_data(x, y)
    theta0, loss = _flat_loss_fn(model_or_params, x, y)
    theta = theta0.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(theta), theta)
    return grad


def loss_hessian(model_or_params: nn.Module | ShallowParams, x: torch.Tensor,
                 y: torch.Tensor) -> torch.Tensor:
    r"""The exact Hessian :math:`∇^2_θ ℓ` of :math:`ℓ = ½ \sum_n (f(x_n) − y_n)^2`, in float64.

    For a :class:`ShallowParams` the parameters are (w, b, v, b₀) in that order, the rows of
    the paper's eq. (4) (Sahs et al. 2022, Thm 5); for any other network (1 input, 1 output) the
    order of ``model.parameters()`` — for a shallow :class:`~deepbasis.MLP` without a
    ``domain`` that is the same order. Computed by ``torch.func.hessian`` (forward over
    reverse) on a float64 copy; the model is not changed.

    Args:
        model_or_params: a network with one input and one output, or ``ShallowParams``.
        x, y: data, ``(N,)`` or ``(N, 1)``.

    Returns:
        ``(P, P)`` symmetric float64 tensor, P the number of parameters (3H + 1 for shallow).
    """
    x, y = as_data(x, y)
    theta0, loss = _flat_loss_fn(model_or_params, x, y)
    h = hessian(loss)(theta0)
    return (h + h.T) / 2  # symmetric up to rounding already; make it exactly so for eigvalsh


@dataclass(frozen=True)
class HessianSpectrum:
    """Eigenvalues of a Hessian and how many are zero, positive and negative.

    Attributes:
        eigenvalues: ``(P,)`` ascending.
        zero_count: eigenvalues with |λ| ≤ ``tolerance``.
        positive_count, negative_count: the others by sign.
        rtol: the relative tolerance used; ``tolerance = rtol · max|λ|``.
        tolerance: the absolute threshold.
    """

    eigenvalues: torch.Tensor
    zero_count: int
    positive_count: int
    negative_count: int
    rtol: float
    tolerance: float


def hessian_spectrum(matrix: torch.Tensor, *, rtol: float = DEFAULT_ZERO_RTOL) -> HessianSpectrum:
    """Eigenvalues of a symmetric matrix; an eigenvalue counts as zero when
    |λ| ≤ ``rtol`` · max|λ| (``DEFAULT_ZERO_RTOL`` = 1e-10; see the comment there)."""
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"need a square matrix, got shape {tuple(matrix.shape)}")
    if not 0 <= rtol < 1:
        raise ValueError(f"rtol must be in [0, 1), got {rtol}")
    eig = torch.linalg.eigvalsh(matrix.to(torch.float64))
    scale = float(eig.abs().max()) if eig.numel() else 0.0
    tol = rtol * scale
    zero = eig.abs() <= tol
    return HessianSpectrum(eig, int(zero.sum()), int((eig > tol).sum()), int((eig < -tol).sum()),
                           rtol, tol)


# ---------------------------------------------------------------------------------------------
# Data partitions and loneliness
# ---------------------------------------------------------------------------------------------


def _breakpoints(params: ShallowParams) -> torch.Tensor:
    """The breakpoints β_i of the units with w_i ≠ 0 (the others have none), by
    :func:`deepbasis.analysis.bdso`."""
    beta = bdso(params.to_model()).breakpoints
    return beta[torch.isfinite(beta)]


def data_partition(breakpoints: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Index p of the piece X_p = [β_(p), β_(p+1)) holding each data point (2022 §2.1), with
    β_(0) = −∞ < β_(1) ≤ … ≤ β_(H) < β_(H+1) = ∞ the sorted breakpoints. ``(N,)`` int64."""
    beta = torch.sort(torch.as_tensor(breakpoints, dtype=torch.float64).reshape(-1)).values
    beta = beta[torch.isfinite(beta)]
    return torch.searchsorted(beta, torch.as_tensor(x, dtype=torch.float64).reshape(-1),
                              right=True)


def is_lonely(breakpoints_or_params, x: torch.Tensor) -> bool:
    """Whether every piece of the data partition holds at most one data point (2022 §2.3.1).

    ``breakpoints_or_params``: a ``(H,)`` tensor of breakpoints, a :class:`ShallowParams` or a
    shallow network.
    """
    beta = (breakpoints_or_params if isinstance(breakpoints_or_params, torch.Tensor)
            else _breakpoints(as_shallow_params(breakpoints_or_params)))
    pieces = data_partition(beta, x)
    return bool(torch.bincount(pieces).max() <= 1) if pieces.numel() else True


def lonely_probability(n_data: int, n_breakpoints: int) -> float:
    r"""P(lonely) for ``n_breakpoints`` = H uniformly spaced breakpoints spanning the data range
    and N data points uniform in that range (the setting of 2022 Remark 1), exactly.

    The H breakpoints cut the range into M = H − 1 equal cells; the partition is lonely iff
    the N points fall in distinct cells (the birthday problem):
    :math:`P = \prod_{k<N} (1 − k / M)`, ≈ :math:`e^{−N^2 / (2M)}` for N ≪ M.
    """
    m = n_breakpoints - 1
    if n_data <= 1:
        return 1.0
    if n_data > m:
        return 0.0
    return math.exp(sum(math.log1p(-k / m) for k in range(n_data)))


def lonely_probability_printed(n_data: int, n_breakpoints: int) -> float:
    """Remark 1 of Sahs et al. (2022) as printed: 1 − exp(−N² / (H + 1))."""
    return 1.0 - math.exp(-(n_data**2) / (n_breakpoints + 1))


# ---------------------------------------------------------------------------------------------
# Theorem 3: knot classification along a breakpoint's slice
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnotClassification:
    """Each data point's type as a knot of the slice ℓ(β_i) (2022 Thm 3).

    Attributes:
        unit: the unit i whose breakpoint varies.
        x: ``(K,)`` the distinct data locations, sorted (the knots of the slice).
        kind: ``(K,)`` int64 codes PASSTHROUGH (0), REPELLER (1), ATTRACTOR (2), FLAT (3); FLAT:
            on one side of x_k unit i is active on no data, so the slice is constant there (the
            paper's measure-one statement leaves this boundary case out).
        left_minimum, right_minimum: ``(K,)`` m₁, m₂ — the minimizers of the quadratics p₁ on
            [x_{k−1}, x_k] and p₂ on [x_k, x_{k+1}] (extended beyond their pieces); NaN where
            the piece is flat.
        curvature_left, curvature_right: ``(K,)`` p₁'' = μ_i² |A|, p₂'' (A: the unit's active
            data on that piece).
    """

    unit: int
    x: torch.Tensor
    kind: torch.Tensor
    left_minimum: torch.Tensor
    right_minimum: torch.Tensor
    curvature_left: torch.Tensor
    curvature_right: torch.Tensor

    def names(self) -> list[str]:
        return [KNOT_NAMES[int(k)] for k in self.kind]


def classify_knots(model_or_params, x: torch.Tensor, y: torch.Tensor, unit: int
                   ) -> KnotClassification:
    r"""Classify every data point as a Passthrough, Repeller or Attractor knot of unit i's
    breakpoint (Sahs et al. 2022, Thm 3).

    The slice varies β_i with μ_i, s_i and every other unit fixed (e.g. b_i alone, Cor. 2). On
    an open interval between consecutive data the unit's active data A do not change, the
    residuals there are :math:`ε_m(β) = g_m + μ_i (x_m − β)` (g: the residual without unit i),
    so the slice is the quadratic :math:`½ \sum_{m∈A} ε_m(β)^2` + const with curvature
    :math:`μ_i^2 |A|` and minimizer :math:`m = \bar x_A + \bar g_A / μ_i`. Knot x_k with
    m₁ (left piece) and m₂ (right piece) is Passthrough if both lie on one side of x_k,
    Repeller if m₁ < x_k < m₂ (a local maximum of the slice) and Attractor if m₂ < x_k < m₁ (a
    local minimum).

    Args:
        model_or_params: a shallow network or :class:`ShallowParams`.
        x, y: data, ``(N,)`` or ``(N, 1)``.
        unit: index i of the unit (needs w_i ≠ 0 and v_i ≠ 0, i.e. μ_i ≠ 0).
    """
    p = as_shallow_params(model_or_params)
    x, y = as_data(x, y)
    if not 0 <= unit < p.width:
        raise ValueError(f"unit must be in [0, {p.width}), got {unit}")
    form = bdso(p.to_model())
    mu, s, beta = (float(form.delta_slopes[unit]), float(form.orientations[unit]),
                   float(form.breakpoints[unit]))
    if mu == 0 or s == 0:
        raise ValueError(f"unit {unit} has w = {float(p.w[unit])}, v = {float(p.v[unit])}: its "
                         "delta-slope μ = w v is 0, so the loss does not depend on its breakpoint")
    with torch.no_grad():
        own = mu * (x - beta) * ((s * (x - beta)) > 0)  # unit i's contribution, (N,)
        g = p(x) - y - own  # residual without unit i
    knots = torch.unique(x)  # (K,) sorted
    k = knots.numel()
    # One β inside each of the K + 1 open intervals between knots (ends: one step outside).
    span = float(knots[-1] - knots[0]) if k > 1 else 1.0
    inner = torch.cat([knots[:1] - span, (knots[1:] + knots[:-1]) / 2, knots[-1:] + span])
    active = (s * (x[None, :] - inner[:, None])) > 0  # (K + 1, N)
    count = active.sum(dim=1).to(torch.float64)
    sum_x = (active * x).sum(dim=1)
    sum_g = (active * g).sum(dim=1)
    with torch.no_grad():
        vertex = torch.where(count > 0, (sum_x + sum_g / mu) / count.clamp_min(1),
                             torch.full_like(count, math.nan))
    curvature = mu**2 * count
    m1, m2 = vertex[:-1], vertex[1:]  # left and right piece of each knot, (K,)
    kind = torch.full((k,), PASSTHROUGH, dtype=torch.int64)
    kind[(m1 < knots) & (knots < m2)] = REPELLER
    kind[(m2 < knots) & (knots < m1)] = ATTRACTOR
    kind[torch.isnan(m1) | torch.isnan(m2)] = FLAT
    return KnotClassification(unit, knots, kind, m1, m2, curvature[:-1], curvature[1:])


def breakpoint_slice(model_or_params, x: torch.Tensor, y: torch.Tensor, unit: int,
                     betas: torch.Tensor) -> torch.Tensor:
    """ℓ at breakpoint positions ``betas`` of unit i, moving b_i = −w_i β only (so μ_i, s_i and
    the other units stay fixed; 2022 Cor. 2). ``(B,)`` float64, for plots and checks."""
    p = as_shallow_params(model_or_params)
    x, y = as_data(x, y)
    betas = torch.as_tensor(betas, dtype=torch.float64).reshape(-1)
    w, v = p.w[unit], p.v[unit]
    with torch.no_grad():
        rest = p(x) - v * torch.relu(w * x + p.b[unit]) - y  # residual without unit i, (N,)
        own = v * torch.relu(w * (x[None, :] - betas[:, None]))  # (B, N): b_i = −w_i β
        return 0.5 * ((rest + own) ** 2).sum(dim=1)


# ---------------------------------------------------------------------------------------------
# Theorem 4: critical points are piecewise OLS fits
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PiecewiseOLS:
    """Result of the piecewise-OLS test (2022 Thm 4).

    Attributes:
        is_ols: every piece's residual moments vanish (up to ``rtol``).
        has_global_unit: some unit is active on all data (the theorem's hypothesis).
        pieces: ``(P,)`` the indices of the data-holding pieces.
        residual_sum, residual_moment: ``(P,)`` Σ_{n∈π_p} ε_n and Σ_{n∈π_p} ε_n x_n.
        relative_error: the largest moment divided by the size of its terms.
        rtol: the tolerance used.
    """

    is_ols: bool
    has_global_unit: bool
    pieces: torch.Tensor
    residual_sum: torch.Tensor
    residual_moment: torch.Tensor
    relative_error: float
    rtol: float


def piecewise_ols_test(model_or_params, x: torch.Tensor, y: torch.Tensor, *,
                       rtol: float = DEFAULT_OLS_RTOL) -> PiecewiseOLS:
    r"""Is the network, on every piece π_p of the data partition, the OLS line of π_p's data?

    Sahs et al. (2022), Thm 4: if some unit is active on all data, θ is a critical point of ℓ iff
    this holds. The OLS conditions on a piece are the normal equations
    :math:`\sum_{n∈π_p} ε_n = 0` and :math:`\sum_{n∈π_p} ε_n x_n = 0` (the network is linear on
    the piece). A moment counts as zero when it is at most ``rtol`` times the sum of the
    absolute values of its terms, taken with |f(x_n)| + |y_n| in place of |ε_n| (so rounding
    of f itself is covered).

    The equivalence needs the generic case: every unit with a breakpoint has v_i ≠ 0 and no
    breakpoint sits exactly on a data point; otherwise a critical point need not satisfy the
    conditions on both sides of that breakpoint.
    """
    p = as_shallow_params(model_or_params)
    x, y = as_data(x, y)
    with torch.no_grad():
        f = p(x)
        eps = f - y
        pieces = data_partition(_breakpoints(p), x)
        used, index = torch.unique(pieces, return_inverse=True)
        size = torch.zeros(used.numel(), dtype=torch.float64)
        s1 = torch.zeros_like(size).index_add_(0, index, eps)
        sx = torch.zeros_like(size).index_add_(0, index, eps * x)
        scale1 = torch.zeros_like(size).index_add_(0, index, f.abs() + y.abs())
        scalex = torch.zeros_like(size).index_add_(0, index, (f.abs() + y.abs()) * x.abs())
        tiny = torch.finfo(torch.float64).tiny
        rel = torch.cat([s1.abs() / scale1.clamp_min(tiny), sx.abs() / scalex.clamp_min(tiny)])
        rel = torch.where(torch.cat([scale1, scalex]) > 0, rel, torch.zeros_like(rel))
        worst = float(rel.max()) if rel.numel() else 0.0
        global_unit = bool(p.active(x).all(dim=0).any())
    return PiecewiseOLS(worst <= rtol, global_unit, used, s1, sx, worst, rtol)
