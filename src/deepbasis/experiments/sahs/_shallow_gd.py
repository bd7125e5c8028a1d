"""Shallow float64 networks for the sahs dynamics experiments: Gaussian init and full-batch GD
on ℓ = ½ Σ (f(x_n) − y_n)² with the closed-form gradient (2022 eq. 5; checked against autograd
in tests/test_analysis_dynamics.py)."""

from __future__ import annotations

import math

import torch

from ...analysis.dynamics import parameter_velocity
from ...analysis.shallow import ShallowParams


def gaussian_shallow(width: int, generator: torch.Generator, *, sigma_w: float = math.sqrt(2.0),
                     sigma_b: float = 1.0, sigma_v: float | None = None) -> ShallowParams:
    """w ~ N(0, σ_w²), b ~ N(0, σ_b²), v ~ N(0, σ_v²) (He: σ_w = √2, σ_v = √(2/H)), b₀ = 0."""
    sigma_v = math.sqrt(2.0 / width) if sigma_v is None else sigma_v
    f64 = torch.float64
    w = sigma_w * torch.randn(width, generator=generator, dtype=f64)
    b = sigma_b * torch.randn(width, generator=generator, dtype=f64)
    v = sigma_v * torch.randn(width, generator=generator, dtype=f64)
    return ShallowParams(w, b, v, torch.zeros((), dtype=f64))


def gd(params: ShallowParams, x: torch.Tensor, y: torch.Tensor, *, lr: float, steps: int,
       every: int = 0) -> tuple[ShallowParams, list[ShallowParams]]:
    """``steps`` plain GD steps; also the iterates every ``every`` steps (0: none)."""
    theta = params.flat().clone()
    trail = []
    for k in range(steps):
        if every and k % every == 0:
            trail.append(ShallowParams.from_flat(theta.clone()))
        theta += lr * parameter_velocity(ShallowParams.from_flat(theta), x, y).flat()
    final = ShallowParams.from_flat(theta)
    if every:
        trail.append(final)
    return final, trail


def sum_loss(params: ShallowParams, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(0.5 * ((params(x) - y) ** 2).sum())
