"""One-dimensional regression targets of the papers, on evenly spaced points."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import eval_legendre


def grid(n: int = 256, lower: float = 0.0, upper: float = 1.0, *,
         dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``n`` evenly spaced points of [lower, upper] as an ``(n, 1)`` tensor (ends included)."""
    if n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    return torch.linspace(lower, upper, n, dtype=dtype)[:, None]


def sin2pi(x: torch.Tensor) -> torch.Tensor:
    """u2(x) = sin(2πx), the smooth target of Cyr et al. (2020)."""
    return torch.sin(2.0 * math.pi * x)


def u1(x: torch.Tensor) -> torch.Tensor:
    """Eq. (17) of Cyr et al. (2020): x on [0, 0.5), 1 − (3/4) x² on [0.5, 1]; a jump at 0.5."""
    return torch.where(x < 0.5, x, 1.0 - 0.75 * x**2)


def legendre(x: torch.Tensor, count: int) -> torch.Tensor:
    r"""The first ``count`` shifted Legendre polynomials, normalized in L²([0, 1]) (§5.2).

    :math:`\sqrt{2n + 1}\, P_n(2x − 1)`, n = 0..count−1; returns ``(N, count)`` for ``x`` of
    shape ``(N, 1)``.
    """
    if count < 1:
        raise ValueError(f"count must be a positive integer, got {count}")
    t = (2.0 * x[:, 0] - 1.0).detach().cpu().numpy().astype(np.float64)
    columns = [math.sqrt(2 * n + 1) * eval_legendre(n, t) for n in range(count)]
    return torch.as_tensor(np.stack(columns, axis=1), dtype=x.dtype, device=x.device)


TARGETS = {"sin2pi": sin2pi, "u1": u1}


def target(name: str):
    """A named 1-D target function ('sin2pi', 'u1')."""
    from .._checks import check_choice

    check_choice("target", name, TARGETS)
    return TARGETS[name]
