r"""Least-squares training problems: the rows the LS step solves and the loss GD minimizes.

Every training problem of Cyr et al. (2020) is eq. (1),

.. math::
    J = \sum_k \frac{ε_k}{N_k} \left\| L_k[u] − L_k[NN] \right\|^2_{\ell^2(X_k)},

and since NN = Σ_i ξ^L_i Φ_i + bias is linear in the head, every term contributes rows
:math:`\sqrt{ε_k/N_k}\,[L_k[Φ](x), L_k[1](x)]` to one design matrix A and rows
:math:`\sqrt{ε_k/N_k}\,L_k[u](x)` to the target b (eqs. 6–7), so that
:math:`J = \|A θ − b\|^2` with θ = [headᵀ weight; head bias]. A *problem* is anything with a
``rows(model) -> (A, b)`` method (A differentiable with respect to the hidden parameters);
:func:`deepbasis.fit` needs nothing else. :class:`Regression` is the one-term identity case;
``deepbasis.train.operators`` builds multi-term physics-informed problems.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from .._checks import as_2d_inputs, as_2d_targets
from .lstsq import design_matrix


@runtime_checkable
class Problem(Protocol):
    """What :func:`deepbasis.fit` trains on."""

    def rows(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted design rows ``A (N_total, w + 1)`` and targets ``b (N_total, m)``."""
        ...

    def validate(self, model: nn.Module) -> None:
        """Raise a clear error if this problem does not fit ``model`` (dimensions, outputs)."""
        ...


def head_parameters(head: nn.Linear) -> torch.Tensor:
    """The head as one ``(w + 1, m)`` matrix θ = [weightᵀ; bias], matching ``design_matrix``."""
    theta = head.weight.mT  # (w, m)
    if head.bias is not None:
        theta = torch.cat([theta, head.bias[None, :]], dim=0)  # (w + 1, m)
    return theta


def problem_loss(A: torch.Tensor, b: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """J = ‖A θ − b‖², the weighted multi-term loss (a scalar, or (E,) for batched A)."""
    residual = A @ theta - b  # (..., N_total, m)
    return (residual**2).sum(dim=(-2, -1))


class Regression:
    r"""Plain regression, eq. (2): :math:`J = \frac{1}{N} \sum_i \|y_i − NN(x_i)\|^2`.

    For one output this is the mean squared error; for m outputs (eq. 18) it is the sum over
    outputs of each output's mean squared error.

    Args:
        x: inputs ``(N, d)``.
        y: targets ``(N,)`` or ``(N, m)``.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            hint = " For 1-D inputs pass x[:, None]." if isinstance(x, torch.Tensor) and \
                x.ndim == 1 else ""
            raise ValueError(f"x must be a 2-D tensor (N, d), got {shape}.{hint}")
        self.x = as_2d_inputs("x", x, x.shape[1])
        self.y = as_2d_targets("y", y, x.shape[0])
        if x.shape[0] == 0:
            raise ValueError("x has no rows; regression needs at least one point")
        self._scale = 1.0 / math.sqrt(x.shape[0])  # √(ε/N) with ε = 1

    @property
    def n_outputs(self) -> int:
        return self.y.shape[1]

    def validate(self, model: nn.Module) -> None:
        in_features = getattr(model, "in_features", None)
        if in_features is not None and in_features != self.x.shape[1]:
            raise ValueError(
                f"x has {self.x.shape[1]} column(s) but the model expects in_features="
                f"{in_features}"
            )
        head = getattr(model, "head", None)
        if isinstance(head, nn.Linear) and head.out_features != self.n_outputs:
            raise ValueError(
                f"y has {self.n_outputs} column(s) but the model has out_features="
                f"{head.out_features}; build the model with out_features={self.n_outputs}"
            )

    def rows(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        phi = model.features(self.x)  # (N, w)
        bias = getattr(getattr(model, "head", None), "bias", None) is not None
        A = design_matrix(phi, bias=bias) * self._scale  # (N, w + 1)
        return A, self.y.to(A.dtype) * self._scale
