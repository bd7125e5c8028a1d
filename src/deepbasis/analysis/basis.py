"""Basis diagnostics: the basis functions, the loss of the first LS solve, images of the unit
box through hidden layers (Cyr et al. 2020, App. C), and covariance spectra (Fig. 8)."""

from __future__ import annotations

import torch
from torch import nn

from .._checks import as_2d_inputs, as_2d_targets, check_finite
from ..train.lstsq import design_matrix, head_of, lstsq


@torch.no_grad()
def basis_functions(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Evaluate the basis Φ(x) of a basis network: ``(N, w)``, no gradient."""
    head_of(model)
    return model.features(x)


@torch.no_grad()
def initial_basis_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       rcond: float | None = None) -> float:
    r"""Mean squared error after the first least-squares solve for the head (eq. 7).

    The loss :math:`\min_θ \frac{1}{N} \|[Φ(x), 1] θ − y\|^2` (summed over outputs) of the best
    head for the model's current basis: how well the *initial* basis can fit ``y``. The model is
    not changed; :func:`deepbasis.fit_head_` writes the solution into the head.
    """
    head = head_of(model)
    x = as_2d_inputs("x", x, x.shape[-1] if x.ndim == 2 else 1)
    y = as_2d_targets("y", y, x.shape[0], head.out_features)
    phi = check_finite("features(x)", model.features(x))
    A = design_matrix(phi, bias=head.bias is not None)
    residual = lstsq(A, y.to(A.dtype), rcond=rcond).residual  # (m,)
    return float(residual.sum() / x.shape[0])
