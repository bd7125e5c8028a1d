r"""The raw parameters of a shallow 1-D ReLU network,
:math:`f(x) = b_0 + \sum_i v_i (w_i x + b_i)_+`.

The loss-surface and gradient-flow results of Sahs et al. (2022, §2.3–2.5) are stated in these
parameters θ_NN = (w, b, v, b₀) (3H + 1 numbers) and in the BDSO parameters derived from them
(β = −b/w, μ = w v, s = sgn w; :func:`deepbasis.analysis.bdso`). :class:`ShallowParams` holds
θ_NN as float64 tensors, converts to and from a network, and flattens to one vector in the
order (w, b, v, b₀), the order of the Hessian's rows in :mod:`.loss_surface`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..nn.mlp import MLP


@dataclass(frozen=True)
class ShallowParams:
    """θ_NN = (w, b, v, b₀) of :math:`f(x) = b_0 + \\sum_i v_i \\operatorname{ReLU}(w_i x + b_i)`.

    Attributes:
        w, b, v: ``(H,)`` float64 input weights, biases and output weights.
        b0: ``()`` float64 output bias.
    """

    w: torch.Tensor
    b: torch.Tensor
    v: torch.Tensor
    b0: torch.Tensor

    @property
    def width(self) -> int:
        return int(self.w.numel())

    def flat(self) -> torch.Tensor:
        """``(3H + 1,)`` vector in the order (w, b, v, b₀)."""
        return torch.cat([self.w, self.b, self.v, self.b0.reshape(1)])

    @classmethod
    def from_flat(cls, theta: torch.Tensor) -> ShallowParams:
        """Inverse of :meth:`flat` (keeps the autograd graph of ``theta``)."""
        if theta.ndim != 1 or theta.numel() % 3 != 1:
            raise ValueError(f"a flat shallow parameter vector has length 3H + 1, got shape "
                             f"{tuple(theta.shape)}")
        h = (theta.numel() - 1) // 3
        return cls(theta[:h], theta[h:2 * h], theta[2 * h:3 * h], theta[3 * h])

    @classmethod
    def from_model(cls, model: nn.Module) -> ShallowParams:
        """Read θ_NN from a shallow network, as float64 copies.

        Accepts an :class:`~deepbasis.MLP` with ``depth=1``, one input and one output, ReLU (an
        input ``domain`` is folded into w and b, so θ_NN is in the user's x), or
        ``nn.Sequential(nn.Linear(1, H), nn.ReLU(), nn.Linear(H, 1))``.
        """
        first, head = shallow_layers(model)
        with torch.no_grad():
            w = first.weight.detach().to("cpu", torch.float64)[:, 0].clone()
            b = first.bias.detach().to("cpu", torch.float64).clone()
            v = head.weight.detach().to("cpu", torch.float64)[0].clone()
            b0 = head.bias.detach().to("cpu", torch.float64)[0].clone()
            if isinstance(model, MLP) and model.domain is not None:
                lo, hi = float(model.domain[0][0]), float(model.domain[1][0])
                b = b - w * lo / (hi - lo)  # x̃ = (x − lo) / (hi − lo)
                w = w / (hi - lo)
        return cls(w, b, v, b0)

    def to_model(self) -> nn.Sequential:
        """A float64 ``nn.Sequential(Linear(1, H), ReLU(), Linear(H, 1))`` with these values."""
        h = self.width
        model = nn.Sequential(nn.Linear(1, h), nn.ReLU(), nn.Linear(h, 1)).to(torch.float64)
        with torch.no_grad():
            model[0].weight.copy_(self.w.detach()[:, None])
            model[0].bias.copy_(self.b.detach())
            model[2].weight.copy_(self.v.detach()[None, :])
            model[2].bias.copy_(self.b0.detach().reshape(1))
        return model

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) for ``x`` of shape ``(N,)`` → ``(N,)`` (differentiable in the parameters)."""
        return self.b0 + torch.relu(x[:, None] * self.w + self.b) @ self.v  # (N,)

    def active(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, H)`` activation pattern ⟦w_i x_n + b_i > 0⟧ (the vectors 1_i of 2022 §2.1)."""
        return (x[:, None] * self.w + self.b) > 0


def shallow_layers(model: nn.Module) -> tuple[nn.Linear, nn.Linear]:
    """The two Linear layers of a shallow 1-D ReLU network (an ``MLP`` of depth 1 with one input,
    one output and ReLU, or ``nn.Sequential(Linear(1, H), ReLU(), Linear(H, 1))``, nested
    ``Sequential``s allowed); a ``ValueError`` for anything else."""
    if isinstance(model, MLP) and model.depth == 1 and model.in_features == 1 \
            and model.out_features == 1 and model.activation_name == "relu":
        return model.layers[0], model.head  # depth 1: no skip connection to add
    if isinstance(model, nn.Sequential):
        mods = [m for m in model.modules() if not isinstance(m, (nn.Sequential, nn.Identity))]
        if (len(mods) == 3 and isinstance(mods[0], nn.Linear) and isinstance(mods[1], nn.ReLU)
                and isinstance(mods[2], nn.Linear) and mods[0].in_features == 1
                and mods[2].out_features == 1 and mods[0].bias is not None
                and mods[2].bias is not None):
            return mods[0], mods[2]
    raise ValueError(
        f"need a shallow network Linear(1, H) → ReLU → Linear(H, 1) with biases (an MLP with "
        f"depth=1, in_features=1, out_features=1, activation='relu'), got {type(model).__name__}; "
        "ShallowParams(w, b, v, b0) builds one from raw tensors")


def as_shallow_params(model_or_params: nn.Module | ShallowParams) -> ShallowParams:
    """``ShallowParams`` unchanged, or read from a shallow network (see
    :meth:`ShallowParams.from_model`)."""
    if isinstance(model_or_params, ShallowParams):
        return model_or_params
    return ShallowParams.from_model(model_or_params)


def as_data(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Data as float64 ``(N,)`` vectors; accepts ``(N,)`` or ``(N, 1)``."""
    x = torch.as_tensor(x).detach().to(torch.float64)
    y = torch.as_tensor(y).detach().to(torch.float64)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if x.ndim != 1 or y.shape != x.shape:
        raise ValueError(f"need 1-D data x (N,) or (N, 1) and y of the same length, got x of "
                         f"shape {tuple(x.shape)} and y of shape {tuple(y.shape)}")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("x and y must be finite; drop the rows with NaN or inf")
    return x, y
