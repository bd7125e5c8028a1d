"""The classic initializers used as baselines: PyTorch's default, He, Glorot and orthogonal.

All follow ``torch.nn.init`` conventions: they change the module in place under
``torch.no_grad()``, return it, and take every random draw from ``generator``. Draws are made
on the CPU in float64 and then copied to each parameter's device and dtype, so a seed gives the
same network on every device and in every precision (up to rounding).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import GeneratorLike, as_generator, check_choice
from ._walk import linear_layers


def _uniform(shape, bound: float, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2.0 - 1.0) * bound


def _normal(shape, std: float, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=gen, dtype=torch.float64) * std


def _assign(param: torch.Tensor | None, value: torch.Tensor) -> None:
    if param is not None:
        param.copy_(value.to(dtype=param.dtype, device=param.device))


def _all_linear(module: nn.Module) -> list[nn.Linear]:
    layers = linear_layers(module)
    return layers.hidden + ([layers.head] if layers.head is not None else [])


@torch.no_grad()
def torch_default_(module: nn.Module, *, generator: GeneratorLike = None) -> nn.Module:
    r"""Re-draw every ``nn.Linear`` as PyTorch's ``nn.Linear.reset_parameters`` does.

    .. math::
        W_{ij}, b_i \sim U\left(-1/\sqrt{\text{fan\_in}},\ 1/\sqrt{\text{fan\_in}}\right)

    (``kaiming_uniform_`` with ``a = √5``), but with draws from ``generator``.

    Examples:
        >>> from deepbasis import MLP, init
        >>> model = init.torch_default_(MLP(1, 8, 2), generator=0)
    """
    gen = as_generator(generator)
    for layer in _all_linear(module):
        bound = 1.0 / math.sqrt(layer.in_features)
        _assign(layer.weight, _uniform(layer.weight.shape, bound, gen))
        if layer.bias is not None:
            _assign(layer.bias, _uniform(layer.bias.shape, bound, gen))
    return module


def _fan_init_(module, std_of_fans, distribution, zero_bias, gen) -> nn.Module:
    check_choice("distribution", distribution, ("uniform", "normal"))
    for layer in _all_linear(module):
        std = std_of_fans(layer.in_features, layer.out_features)
        if distribution == "uniform":
            value = _uniform(layer.weight.shape, math.sqrt(3.0) * std, gen)
        else:
            value = _normal(layer.weight.shape, std, gen)
        _assign(layer.weight, value)
        if layer.bias is not None:
            if zero_bias:
                layer.bias.zero_()
            else:
                _assign(layer.bias, _normal(layer.bias.shape, std, gen))
    return module


@torch.no_grad()
def he_(
    module: nn.Module,
    distribution: str = "uniform",
    *,
    zero_bias: bool = True,
    generator: GeneratorLike = None,
) -> nn.Module:
    r"""He (Kaiming) initialization of every ``nn.Linear``, fan-in mode, ReLU gain.

    From "Delving deep into rectifiers" - He, K. et al. (2015).

    .. math::
        \text{std} = \sqrt{2 / \text{fan\_in}}, \quad
        W \sim U(-\sqrt{3}\,\text{std}, \sqrt{3}\,\text{std}) \text{ or } N(0, \text{std}^2)

    Biases are zero by default: this is the "He" baseline of Cyr et al. (2020). With zero
    biases and inputs in [0, 1], a plain ReLU network is exactly linear on the domain (positive
    homogeneity), so its initial least-squares loss is that of the best straight line. With
    ``zero_bias=False`` biases are drawn from N(0, std²).

    Args:
        module: a :class:`deepbasis.MLP`, an ``nn.Sequential`` of linear and activation layers,
            or an ``nn.Linear``.
        distribution: ``"uniform"`` or ``"normal"``.
        zero_bias: set biases to zero.
        generator: ``torch.Generator`` or int seed for every draw.

    Examples:
        >>> from deepbasis import MLP, init
        >>> model = init.he_(MLP(1, 32, 4), generator=0)
    """
    gen = as_generator(generator)
    return _fan_init_(module, lambda fi, fo: math.sqrt(2.0 / fi), distribution, zero_bias, gen)


@torch.no_grad()
def glorot_(
    module: nn.Module,
    distribution: str = "uniform",
    *,
    zero_bias: bool = True,
    generator: GeneratorLike = None,
) -> nn.Module:
    r"""Glorot (Xavier) initialization of every ``nn.Linear``.

    From "Understanding the difficulty of training deep feedforward neural networks" -
    Glorot, X. & Bengio, Y. (2010).

    .. math::
        \text{std} = \sqrt{2 / (\text{fan\_in} + \text{fan\_out})}, \quad
        W \sim U(-\sqrt{3}\,\text{std}, \sqrt{3}\,\text{std}) \text{ or } N(0, \text{std}^2)

    Biases are zero by default (``zero_bias=False`` draws them from N(0, std²)).

    Examples:
        >>> from deepbasis import MLP, init
        >>> model = init.glorot_(MLP(1, 32, 4), generator=0)
    """
    gen = as_generator(generator)
    return _fan_init_(module, lambda fi, fo: math.sqrt(2.0 / (fi + fo)), distribution,
                      zero_bias, gen)


@torch.no_grad()
def orthogonal_(
    module: nn.Module,
    gain: float = 1.0,
    *,
    zero_bias: bool = True,
    generator: GeneratorLike = None,
) -> nn.Module:
    r"""(Semi-)orthogonal weights for every ``nn.Linear``, scaled by ``gain``.

    From "Exact solutions to the nonlinear dynamics of learning in deep linear neural networks"
    - Saxe, A. et al. (2013). Each weight is the Q factor of the QR decomposition of a standard
    normal matrix, with the signs of R's diagonal folded in so that Q is Haar-distributed:
    rows are orthonormal when out ≤ in, columns when out > in.

    Examples:
        >>> from deepbasis import MLP, init
        >>> model = init.orthogonal_(MLP(4, 8, 3), generator=0)
    """
    gen = as_generator(generator)
    for layer in _all_linear(module):
        rows, cols = layer.weight.shape
        a = torch.randn(max(rows, cols), min(rows, cols), generator=gen, dtype=torch.float64)
        q, r = torch.linalg.qr(a)  # (max, min)
        q = q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, torch.ones(()))
        if rows < cols:
            q = q.T
        _assign(layer.weight, gain * q)
        if layer.bias is not None and zero_bias:
            layer.bias.zero_()
        elif layer.bias is not None:
            _assign(layer.bias, _normal(layer.bias.shape, gain / math.sqrt(cols), gen))
    return module
