r"""Gradient flow of the spline parameters of a shallow ReLU network (Sahs et al. 2022, Thm 6).

Loss :math:`ℓ = ½ \sum_n ε_n^2` with :math:`ε_n = f(x_n) − y_n` (the sign convention of
:mod:`.loss_surface`). With :math:`A_i` the data on which unit i is active and
:math:`⟨ε_i, g⟩ = \sum_{n ∈ A_i} ε_n g(x_n)`, gradient flow on θ_NN = (w, b, v, b₀) is (2022
eq. 5, signs for our ε)

.. math::
    \dot w_i = −v_i ⟨ε_i, x⟩,\quad \dot b_i = −v_i ⟨ε_i, 1⟩,\quad
    \dot v_i = −(w_i ⟨ε_i, x⟩ + b_i ⟨ε_i, 1⟩),\quad \dot b_0 = −⟨ε, 1⟩,

and the chain rule through :math:`β_i = −b_i / w_i`, :math:`μ_i = w_i v_i` gives (2022 eqs. 6–7,
re-derived in specs/spline-view.md)

.. math::
    \dot β_i = \frac{v_i}{w_i}\big[⟨ε_i, 1⟩ + β_i ⟨ε_i, x⟩\big], \qquad
    \dot μ_i = −w_i^2 \Big[\big(1 + (v_i/w_i)^2\big) ⟨ε_i, x⟩ − β_i ⟨ε_i, 1⟩\Big]
             = −(w_i^2 + v_i^2) ⟨ε_i, x⟩ − w_i b_i ⟨ε_i, 1⟩.

Under α-scaling (w, b, v) → (α w, α b, v / α), which leaves f unchanged, β̇ scales as 1/α² and
μ̇ as α² (exactly for units with b = 0 and approximately otherwise; 2022 §2.5.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .shallow import ShallowParams, as_data, as_shallow_params


@dataclass(frozen=True)
class BDSOVelocity:
    """Time derivatives of the BDSO parameters under gradient flow.

    Attributes:
        breakpoints: ``(H,)`` β̇_i (NaN for a unit with w_i = 0: it has no breakpoint).
        delta_slopes: ``(H,)`` μ̇_i.
        offset: ḃ₀.
    """

    breakpoints: torch.Tensor
    delta_slopes: torch.Tensor
    offset: float


def _residual_moments(p: ShallowParams, x: torch.Tensor, y: torch.Tensor):
    """ε (N,), and per unit ⟨ε_i, 1⟩, ⟨ε_i, x⟩ (H,)."""
    with torch.no_grad():
        eps = p(x) - y  # (N,)
        on = p.active(x).to(torch.float64)  # (N, H)
        return eps, eps @ on, (eps * x) @ on


def parameter_velocity(model_or_params, x: torch.Tensor, y: torch.Tensor) -> ShallowParams:
    """−∇ℓ in θ_NN = (w, b, v, b₀) in closed form (2022 eq. 5), as a :class:`ShallowParams`."""
    p = as_shallow_params(model_or_params)
    x, y = as_data(x, y)
    eps, e1, ex = _residual_moments(p, x, y)
    return ShallowParams(-p.v * ex, -p.v * e1, -(p.w * ex + p.b * e1), -eps.sum())


def bdso_velocity(model_or_params, x: torch.Tensor, y: torch.Tensor) -> BDSOVelocity:
    r"""β̇ and μ̇ of every unit under gradient flow on ℓ, in closed form (2022 Thm 6).

    Args:
        model_or_params: a shallow network (see :class:`ShallowParams.from_model`) or
            ``ShallowParams``.
        x, y: data, ``(N,)`` or ``(N, 1)``.

    Examples:
        >>> import torch
        >>> from deepbasis.analysis.shallow import ShallowParams
        >>> p = ShallowParams(torch.tensor([1.0, -2.0], dtype=torch.float64),
        ...                   torch.tensor([0.5, 1.0], dtype=torch.float64),
        ...                   torch.tensor([0.3, 0.7], dtype=torch.float64),
        ...                   torch.tensor(0.0, dtype=torch.float64))
        >>> x = torch.linspace(-1, 1, 5, dtype=torch.float64)
        >>> bdso_velocity(p, x, x**2).breakpoints.shape
        torch.Size([2])
    """
    p = as_shallow_params(model_or_params)
    x, y = as_data(x, y)
    eps, e1, ex = _residual_moments(p, x, y)
    w, b, v = p.w, p.b, p.v
    has_break = w != 0
    safe_w = torch.where(has_break, w, torch.ones_like(w))
    # eq. (6) with β = −b/w substituted:
    # (v/w)[⟨ε_i, 1⟩ + β⟨ε_i, x⟩] = v (w⟨ε_i, 1⟩ − b⟨ε_i, x⟩) / w²
    beta_dot = torch.where(has_break, v * (w * e1 - b * ex) / safe_w**2,
                           torch.full_like(w, float("nan")))
    mu_dot = -(w**2 + v**2) * ex - w * b * e1  # eq. (7), multiplied out (no division by w)
    return BDSOVelocity(beta_dot, mu_dot, float(-eps.sum()))


def alpha_scale(model_or_params, alpha: float | torch.Tensor) -> ShallowParams:
    """(w, b, v) → (α w, α b, v / α), per unit if ``alpha`` is ``(H,)``: the same function
    (2022 §2.1, Fig. 1), different gradient-flow speeds of β and μ (§2.5.1)."""
    p = as_shallow_params(model_or_params)
    alpha = torch.as_tensor(alpha, dtype=torch.float64)
    if (alpha <= 0).any() or not torch.isfinite(alpha).all():
        raise ValueError(f"alpha must be positive and finite, got {alpha}")
    return ShallowParams(p.w * alpha, p.b * alpha, p.v / alpha, p.b0)
