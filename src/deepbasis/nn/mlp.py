"""Basis networks: a stack of hidden layers producing features Φ(x), and a linear head.

A *basis network* is anything with ``features(x) -> (N, w)`` and ``head: nn.Linear(w, m)``
(DESIGN.md, "Basis network protocol"); the network's output is ``head(features(x))``, i.e.
eq. (3) of Cyr et al. (2020): NN(x) = Σ_i ξ^L_i Φ_i(x; ξ^H).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._checks import as_2d_inputs, check_choice


class Sine(nn.Module):
    """sin(x) as a module, for SIREN-like networks and the variance-flow analysis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "sin": Sine,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    """Return a fresh activation module by name ('relu', 'tanh', 'sin', ...)."""
    check_choice("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    r"""Plain or residual fully connected network with a linear head.

    Plain (eq. 4 of Cyr et al. 2020): :math:`Φ = σ∘T_L∘⋯∘σ∘T_1`.
    Residual (eq. 5): :math:`Φ = (I + σ∘T_L)∘⋯∘(I + σ∘T_2)∘(σ∘T_1)`; the first hidden layer
    is always plain because it changes the dimension from ``in_features`` to ``width``.

    Args:
        in_features: input dimension d.
        width: number of units w in every hidden layer (the number of basis functions).
        depth: number of hidden layers L (≥ 1).
        out_features: number of outputs m of the linear head.
        residual: use residual hidden layers 2..L.
        activation: name of the hidden activation ('relu', 'tanh', 'sin', ...).
        domain: optional ``(lower, upper)`` box of the data. Inputs are mapped affinely by
            ``(x - lower) / (upper - lower)`` onto [0, 1]^d before the first layer, which is
            where Box initialization expects them. Scalars or length-d sequences.
        dtype, device: of the parameters.

    Examples:
        >>> model = MLP(1, width=32, depth=4, residual=True)
        >>> model.features(torch.rand(256, 1)).shape
        torch.Size([256, 32])
    """

    def __init__(
        self,
        in_features: int,
        width: int,
        depth: int,
        out_features: int = 1,
        *,
        residual: bool = False,
        activation: str = "relu",
        domain: tuple[float | Sequence[float], float | Sequence[float]] | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("width", width),
                            ("depth", depth), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.in_features = in_features
        self.width = width
        self.depth = depth
        self.out_features = out_features
        self.residual = bool(residual)
        self.activation_name = activation
        self.activation = make_activation(activation)
        factory = {"dtype": dtype, "device": device}
        self.layers = nn.ModuleList(
            [nn.Linear(in_features, width, **factory)]
            + [nn.Linear(width, width, **factory) for _ in range(depth - 1)]
        )
        self.head = nn.Linear(width, out_features, **factory)
        self.domain = None
        if domain is not None:
            lower, upper = _domain_bounds(domain, in_features)
            self.domain = (lower.tolist(), upper.tolist())
            buffer_dtype = dtype if dtype is not None else torch.get_default_dtype()
            self.register_buffer("_lower", lower.to(dtype=buffer_dtype, device=device))
            self.register_buffer("_upper", upper.to(dtype=buffer_dtype, device=device))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Map inputs from the model's ``domain`` onto [0, 1]^d (identity without a domain)."""
        if self.domain is None:
            return x
        return (x - self._lower) / (self._upper - self._lower)

    def hidden_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of every hidden layer, ``[h_1, …, h_L]``, each ``(N, width)``."""
        self._check_shape(x)
        layers = iter(self.layers)  # not self.layers[1:]: slicing builds a ModuleList per call
        h = self.activation(next(layers)(self.normalize(x)))  # (N, w)
        states = [h]
        for layer in layers:
            z = self.activation(layer(h))  # (N, w)
            h = h + z if self.residual else z
            states.append(h)
        return states

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Basis functions Φ(x), shape ``(N, width)``."""
        self._check_shape(x)
        layers = iter(self.layers)  # not self.layers[1:]: slicing builds a ModuleList per call
        h = self.activation(next(layers)(self.normalize(x)))  # (N, w)
        for layer in layers:
            z = self.activation(layer(h))  # (N, w)
            h = h + z if self.residual else z
        return h

    def _check_shape(self, x: torch.Tensor) -> None:
        # Shape only: this runs in every training step. Finiteness is checked once, where data
        # enters (fit, fit_head_, the estimator).
        if x.ndim != 2 or x.shape[-1] != self.in_features:
            as_2d_inputs("x", x, self.in_features)  # raises with the full message

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (N, m)

    def extra_repr(self) -> str:
        kind = "residual" if self.residual else "plain"
        return (f"{kind}, in={self.in_features}, width={self.width}, depth={self.depth}, "
                f"out={self.out_features}, activation={self.activation_name!r}, "
                f"domain={self.domain}")


def _domain_bounds(domain, in_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        lower, upper = domain
    except (TypeError, ValueError):
        raise ValueError(f"domain must be a pair (lower, upper), got {domain!r}") from None
    lower = torch.as_tensor(lower, dtype=torch.float64).reshape(-1).expand(in_features).clone()
    upper = torch.as_tensor(upper, dtype=torch.float64).reshape(-1).expand(in_features).clone()
    if not (torch.isfinite(lower).all() and torch.isfinite(upper).all()):
        raise ValueError(f"domain bounds must be finite, got {domain!r}")
    if (upper <= lower).any():
        raise ValueError(f"domain needs lower < upper in every coordinate, got {domain!r}")
    return lower, upper


@torch.no_grad()
def mean_network(models: Sequence[MLP]) -> MLP:
    """One :class:`MLP` whose output is exactly the mean of ``models``' outputs.

    The K networks side by side are one network of width Σ w_k: the first layers' rows are
    stacked, every later hidden layer is block-diagonal (so each block sees only its own
    network's features, through the same activation and residual connections) and the head is
    the members' heads side by side, each divided by K. The result is an ordinary basis network
    of K·w features (``features`` are the members' features side by side), so the head can be
    re-solved on it, saved and analysed like any other.

    Args:
        models: networks of the same input size, depth, outputs, activation, residual setting,
            domain, dtype and device (widths may differ).

    Raises:
        ValueError: no models, or models that differ in any of the above.

    Examples:
        >>> a, b = MLP(2, 8, 3, residual=True), MLP(2, 8, 3, residual=True)
        >>> x = torch.rand(5, 2)
        >>> torch.allclose(mean_network([a, b])(x), (a(x) + b(x)) / 2, atol=1e-6)
        True
    """
    models = list(models)
    if not models:
        raise ValueError("mean_network needs at least one network, got none")
    first = models[0]
    signature = ("in_features", "depth", "out_features", "residual", "activation_name",
                 "domain")
    for k, model in enumerate(models[1:], start=1):
        for name in signature:
            if getattr(model, name) != getattr(first, name):
                raise ValueError(f"mean_network: network {k} has {name}="
                                 f"{getattr(model, name)!r} but network 0 has "
                                 f"{getattr(first, name)!r}; the networks must share it")
    weight = first.head.weight
    mean = MLP(first.in_features, sum(model.width for model in models), first.depth,
               first.out_features, residual=first.residual, activation=first.activation_name,
               domain=first.domain, dtype=weight.dtype, device=weight.device)
    mean.layers[0].weight.copy_(torch.cat([model.layers[0].weight for model in models]))
    for i in range(1, first.depth):
        mean.layers[i].weight.copy_(torch.block_diag(*(m.layers[i].weight for m in models)))
    for i in range(first.depth):
        mean.layers[i].bias.copy_(torch.cat([model.layers[i].bias for model in models]))
    mean.head.weight.copy_(torch.cat([model.head.weight for model in models], dim=1)
                           / len(models))
    mean.head.bias.copy_(torch.stack([model.head.bias for model in models]).mean(dim=0))
    return mean
