r"""The 2-D high-frequency target of Wang, Crawford-Eng & Perdikaris (2021), App. C.3, eq. C.1.

.. math::
    f(x, y) = \sum_{i=1}^{4} A_{i,0} \sin(2π ν_{i,0} x) \cos(2π ν_{i,1} y)
            + A_{i,1} \sin(2π ν_{i,2} x) \sin(2π ν_{i,3} y),
    \qquad ν_{i,j} \sim U(0, M),\ A_{i,j} \sim U(0, 2),\ M = 18,

on [−1, 1]². The paper uses one fixed draw (its Fig. 8) without stating it; ours is the draw
of ``torch.Generator().manual_seed(HIGHFREQ_SEED)`` (seed 0): ν (4 × 4) first, then A (4 × 2),
both float64 on the CPU.
"""

from __future__ import annotations

import math

import torch

from .._checks import GeneratorLike, as_2d_inputs, as_generator

HIGHFREQ_SEED = 0
MAX_FREQUENCY = 18.0


def highfreq_parameters(generator: GeneratorLike = HIGHFREQ_SEED,
                        max_frequency: float = MAX_FREQUENCY) -> tuple[torch.Tensor, torch.Tensor]:
    """The frequencies ν (4, 4) ~ U(0, M) and amplitudes A (4, 2) ~ U(0, 2) of eq. C.1."""
    if not (isinstance(max_frequency, (int, float)) and math.isfinite(max_frequency)
            and max_frequency > 0):
        raise ValueError(f"max_frequency must be a positive number, got {max_frequency!r}")
    gen = as_generator(generator)
    nu = torch.rand(4, 4, generator=gen, dtype=torch.float64) * max_frequency
    amplitude = torch.rand(4, 2, generator=gen, dtype=torch.float64) * 2.0
    return nu, amplitude


def highfreq_target(x: torch.Tensor, generator: GeneratorLike = HIGHFREQ_SEED,
                    max_frequency: float = MAX_FREQUENCY) -> torch.Tensor:
    """Eq. C.1 at the points ``x`` (N, 2); returns (N, 1) in ``x``'s dtype.

    Examples:
        >>> highfreq_target(torch.zeros(3, 2, dtype=torch.float64)).flatten().tolist()
        [0.0, 0.0, 0.0]
    """
    x = as_2d_inputs("x", x, 2)
    nu, amplitude = highfreq_parameters(generator, max_frequency)
    nu, amplitude = nu.to(x), amplitude.to(x)
    u, v = 2.0 * math.pi * x[:, 0:1], 2.0 * math.pi * x[:, 1:2]  # (N, 1)
    value = (amplitude[:, 0] * torch.sin(nu[:, 0] * u) * torch.cos(nu[:, 1] * v)
             + amplitude[:, 1] * torch.sin(nu[:, 2] * u) * torch.sin(nu[:, 3] * v))  # (N, 4)
    return value.sum(dim=1, keepdim=True)


def square_grid(n: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The n × n regular grid of [−1, 1]² as (n², 2), x fastest (the paper's 200 × 200 grid)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    t = torch.linspace(-1.0, 1.0, n, dtype=dtype)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


__all__ = ["HIGHFREQ_SEED", "MAX_FREQUENCY", "highfreq_parameters", "highfreq_target",
           "square_grid"]
