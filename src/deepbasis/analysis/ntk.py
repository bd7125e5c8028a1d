r"""The empirical neural tangent kernel of a network on a point set (Wang et al. 2021, eq. 3.3).

.. math::
    K(x, y) = \nabla_w f_w(x) \cdot \nabla_w f_w(y), \qquad K = J J^\top,\quad
    J_{ip} = \partial f_w(x_i) / \partial w_p

Jacobians come from ``torch.func`` (``vmap`` of ``jacrev`` over the points, with the parameters
passed functionally). For networks too big to hold the whole (N, P) Jacobian, ``chunk_size``
builds K one parameter tensor at a time, :math:`K = \sum_t J_t J_t^\top`, with each J_t computed
``chunk_size`` points at a time: peak memory N × (largest parameter tensor) instead of N × P.

Fig. 4 of the paper plots each kernel function :math:`K(x_i, \cdot)` normalized to unit area
(:func:`normalize_rows`); :func:`kernel_width` summarizes how far a kernel reaches.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from .._checks import as_2d_inputs


def _jacobian(model: nn.Module, x: torch.Tensor, params: dict, output: int,
              chunk_size: int | None) -> dict[str, torch.Tensor]:
    """{name: (N, numel)} Jacobian of output ``output`` w.r.t. the given parameters."""
    frozen = {n: p.detach() for n, p in model.named_parameters() if n not in params}
    buffers = dict(model.named_buffers())

    def f(p, xi):  # one point (d,) → scalar
        out = functional_call(model, ({**frozen, **p}, buffers), (xi[None, :],))
        return out[0, output]

    jac = jacrev(f)
    blocks = []
    step = x.shape[0] if chunk_size is None else chunk_size
    for start in range(0, x.shape[0], step):
        blocks.append(vmap(jac, in_dims=(None, 0))(params, x[start:start + step]))
    return {n: torch.cat([b[n] for b in blocks]).reshape(x.shape[0], -1) for n in params}


def empirical_ntk(model: nn.Module, x: torch.Tensor, *, chunk_size: int | None = None,
                  output: int = 0) -> torch.Tensor:
    r"""The empirical NTK :math:`K = J J^\top` (N, N) of ``model``'s output ``output`` on ``x``.

    Args:
        model: any module mapping (N, d) → (N, m); all its parameters count.
        x: points (N, d).
        chunk_size: ``None`` computes the whole Jacobian at once. An integer builds K one
            parameter tensor at a time, ``chunk_size`` points at a time (same K up to rounding).
        output: which output column (for m > 1).

    Examples:
        >>> from deepbasis import MLP
        >>> model = MLP(1, 8, 2, activation="tanh", dtype=torch.float64)
        >>> x = torch.linspace(-1, 1, 5, dtype=torch.float64)[:, None]
        >>> empirical_ntk(model, x).shape
        torch.Size([5, 5])
    """
    in_features = getattr(model, "in_features", None)
    if not isinstance(in_features, int):
        in_features = x.shape[1] if isinstance(x, torch.Tensor) and x.ndim == 2 else 1
    x = as_2d_inputs("x", x, in_features)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    named = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    if not named:
        raise ValueError(f"{type(model).__name__} has no trainable parameters: its NTK is zero")
    n = x.shape[0]
    dtype = next(iter(named.values())).dtype
    x = x.to(dtype)
    if chunk_size is None:
        jac = _jacobian(model, x, named, output, None)
        j = torch.cat(list(jac.values()), dim=1)  # (N, P)
        return j @ j.T
    kernel = torch.zeros(n, n, dtype=dtype, device=x.device)
    for name, value in named.items():  # one parameter tensor at a time: memory N × numel
        j = _jacobian(model, x, {name: value}, output, chunk_size)[name]  # (N, numel)
        kernel += j @ j.T
    return kernel


def normalize_rows(kernel: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Each kernel function K(x_i, ·) divided by the area under |K(x_i, ·)| (trapezoid rule on
    sorted 1-D ``x``, (N,) or (N, 1)).

    This is Fig. 4's normalization ("normalized to have unit area"). For a non-negative kernel
    it is the signed area; we use |K| because an empirical NTK row can change sign, and a row
    whose signed area is near 0 would be blown up by dividing by it.
    """
    grid = x.reshape(-1)
    order = torch.argsort(grid)
    area = torch.trapezoid(kernel[:, order].abs(), grid[order], dim=1)  # (N,)
    return kernel / area[:, None]


def kernel_width(kernel: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""How far each kernel function reaches: :math:`\int |y − x_i| |K(x_i, y)| dy / \int |K(x_i,
    y)| dy` on sorted 1-D ``x`` (N,): the mean distance under the normalized ``|K(x_i, ·)|``.

    A Laplace kernel :math:`e^{-|y−x|/\ell}` on a wide interval has width ℓ.
    """
    grid = x.reshape(-1)
    order = torch.argsort(grid)
    grid, k = grid[order], kernel[order][:, order].abs()
    distance = (grid[None, :] - grid[:, None]).abs()
    return torch.trapezoid(distance * k, grid, dim=1) / torch.trapezoid(k, grid, dim=1)


__all__ = ["empirical_ntk", "kernel_width", "normalize_rows"]
