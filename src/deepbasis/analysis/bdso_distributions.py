r"""Distributions of a shallow network's breakpoints and delta-slopes at initialization.

Sahs et al. (2020), Theorem 1 and Corollary 1; Sahs et al. (2022), Theorem 1. For one unit
:math:`v\,\mathrm{ReLU}(w x + b)` with independent zero-mean w, b, v, the breakpoint is
:math:`β = −b/w` and the delta-slope :math:`μ = w v`. The printed formulas lost symbols in our
copies; those below were re-derived from the papers' definitions (specs/spline-view.md) and are
checked by Kolmogorov–Smirnov tests against draws.

Gaussian :math:`b \sim N(0, σ_b^2),\ w \sim N(0, σ_w^2),\ v \sim N(0, σ_v^2)`:

- :math:`β \sim \mathrm{Cauchy}(0, σ_b/σ_w)`;
- :math:`μ \mid β \sim \mathrm{Laplace}\big(0,\ σ_b σ_v σ_w / \sqrt{σ_b^2 + σ_w^2 β^2}\big)`;
- :math:`p(μ) = K_0(|μ| / (σ_v σ_w)) / (π σ_v σ_w)`.

Uniform :math:`b \sim U[−a_b, a_b],\ w \sim U[−a_w, a_w],\ v \sim U[−a_v, a_v]`:

- :math:`p(β) = \min(a_b/|β|, a_w)^2 / (4 a_b a_w)`;
- :math:`p(μ) = \log(a_w a_v / |μ|) / (2 a_w a_v)` on :math:`|μ| ≤ a_w a_v`;
- :math:`μ \mid β` triangular on :math:`|μ| ≤ a_v \min(a_b/|β|, a_w)`.

Roughness :math:`ρ_0 = \sum_i μ_i^2` has :math:`E[ρ_0] = H σ_w^2 σ_v^2` (2020, Theorem 2):
4 under He (:math:`σ_w = \sqrt2, σ_v = \sqrt{2/H}`) and :math:`4H/(H+1)^2` under Glorot
(:math:`σ_w = σ_v = \sqrt{2/(H+1)}`), with :math:`\mathrm{Var}[ρ_0] = 8 H σ_v^4 σ_w^4`.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats


def gaussian_breakpoint(sigma_b: float, sigma_w: float):
    """Frozen SciPy law of β under a Gaussian init: Cauchy(0, σ_b/σ_w)."""
    return stats.cauchy(loc=0.0, scale=sigma_b / sigma_w)


def gaussian_delta_slope_scale(beta, sigma_b: float, sigma_w: float, sigma_v: float):
    """Laplace scale of μ | β under a Gaussian init: σ_b σ_v σ_w / √(σ_b² + σ_w² β²)."""
    beta = np.asarray(beta, dtype=np.float64)
    return sigma_b * sigma_v * sigma_w / np.sqrt(sigma_b**2 + sigma_w**2 * beta**2)


def gaussian_delta_slope_pdf(mu, sigma_w: float, sigma_v: float):
    """Marginal density of μ = w v under a Gaussian init: K₀(|μ|/(σ_v σ_w)) / (π σ_v σ_w)."""
    s = sigma_v * sigma_w
    return special.k0(np.abs(np.asarray(mu, dtype=np.float64)) / s) / (np.pi * s)


def gaussian_delta_slope_cdf(mu, sigma_w: float, sigma_v: float):
    """CDF of the marginal of μ (numerical integral of the K₀ density)."""
    s = sigma_v * sigma_w
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    # ∫₀^m K₀(t) dt in closed form via Struve functions: (π m / 2)(K₀ L₋₁ + K₁ L₀).
    m = np.abs(mu) / s
    half = np.where(m > 0, np.pi * m / 2 * (special.k0(m) * special.modstruve(-1, m)
                                           + special.k1(m) * special.modstruve(0, m)), 0.0)
    half = np.where(m > 50, np.pi / 2, half) / np.pi  # the tail: ∫₀^∞ K₀ = π/2
    return 0.5 + np.sign(mu) * half


def uniform_breakpoint_pdf(beta, a_b: float, a_w: float):
    """Density of β under a uniform init: min(a_b/|β|, a_w)² / (4 a_b a_w)."""
    beta = np.abs(np.asarray(beta, dtype=np.float64))
    with np.errstate(divide="ignore"):
        return np.minimum(a_b / beta, a_w) ** 2 / (4 * a_b * a_w)


def uniform_breakpoint_cdf(beta, a_b: float, a_w: float):
    """CDF of β under a uniform init (integral of :func:`uniform_breakpoint_pdf`)."""
    beta = np.asarray(beta, dtype=np.float64)
    c = a_b / a_w  # the density is flat (a_w/(4 a_b)) on |β| ≤ c, then a_b/(4 a_w β²)
    x = np.abs(beta)
    inner = np.minimum(x, c) * a_w / (4 * a_b)
    with np.errstate(divide="ignore"):
        outer = np.where(x > c, a_b / (4 * a_w) * (1 / c - 1 / np.maximum(x, c)), 0.0)
    return 0.5 + np.sign(beta) * (inner + outer)


def uniform_delta_slope_pdf(mu, a_w: float, a_v: float):
    """Density of μ under a uniform init: log(a_w a_v / |μ|) / (2 a_w a_v) on |μ| ≤ a_w a_v."""
    m = np.abs(np.asarray(mu, dtype=np.float64))
    top = a_w * a_v
    with np.errstate(divide="ignore"):
        return np.where(m <= top, np.log(top / m) / (2 * top), 0.0)


def uniform_delta_slope_cdf(mu, a_w: float, a_v: float):
    """CDF of μ under a uniform init: ½ + sgn(μ) (u − u log u)/2 with u = |μ|/(a_w a_v)."""
    mu = np.asarray(mu, dtype=np.float64)
    u = np.clip(np.abs(mu) / (a_w * a_v), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = np.where(u > 0, (u - u * np.log(u)) / 2, 0.0)
    return 0.5 + np.sign(mu) * half


def uniform_delta_slope_half_width(beta, a_b: float, a_w: float, a_v: float):
    """Half-width of the triangular law of μ | β under a uniform init: a_v min(a_b/|β|, a_w)."""
    beta = np.abs(np.asarray(beta, dtype=np.float64))
    with np.errstate(divide="ignore"):
        return a_v * np.minimum(a_b / beta, a_w)


def standard_triangular():
    """Frozen SciPy symmetric triangular law on [−1, 1] (μ | β divided by its half-width)."""
    return stats.triang(c=0.5, loc=-1.0, scale=2.0)


def expected_initial_roughness(width: int, sigma_w: float, sigma_v: float) -> float:
    """E[ρ₀] = H σ_w² σ_v² (Sahs et al. 2020, Theorem 2)."""
    return width * sigma_w**2 * sigma_v**2


def initial_roughness_variance(width: int, sigma_w: float, sigma_v: float) -> float:
    """Var[ρ₀] = 8 H σ_v⁴ σ_w⁴ (Sahs et al. 2020, App. C.5)."""
    return 8 * width * sigma_v**4 * sigma_w**4


def he_roughness(width: int) -> float:
    """E[ρ₀] under He: σ_w = √2, σ_v = √(2/H) ⇒ 4 for every width."""
    return expected_initial_roughness(width, 2**0.5, (2 / width) ** 0.5)


def glorot_roughness(width: int) -> float:
    """E[ρ₀] under Glorot: σ_w = σ_v = √(2/(H+1)) ⇒ 4H/(H+1)²."""
    s = (2 / (width + 1)) ** 0.5
    return expected_initial_roughness(width, s, s)
