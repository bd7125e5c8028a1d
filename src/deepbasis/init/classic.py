"""The classic initializers used as baselines: PyTorch's default, He, Glorot, orthogonal, RAAI.

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


# Standard deviation times √fan_in of the Gaussian entries of RAI with P = Beta(2, 1).
RAI_STD = 0.6007


def raai_layer_parameters(
    fan_out: int,
    fan_in: int,
    *,
    correlation: float | None = None,
    std: float | None = None,
    generator: GeneratorLike = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Weights, biases and positive positions (float64, CPU) of one RAAI layer.

    Each unit j has the parameter vector :math:`v_j = (W_{j1}, …, W_{j,\text{fan\_in}}, b_j)` of
    length m = fan_in + 1. One position :math:`k_j \sim U\{0, …, m − 1\}` gets
    :math:`v_{jk_j} \sim \text{Beta}(2, 1)` (density 2t on [0, 1]; drawn as √U); the other
    m − 1 entries are jointly Gaussian with mean 0, variance ``std²`` (default
    :math:`(0.6007)^2/\text{fan\_in}`) and pairwise correlation ``correlation`` (default the
    most negative admissible value :math:`−1/(m − 2)`, where they sum to exactly zero).

    Returns:
        ``(weight (fan_out, fan_in), bias (fan_out,), positive (fan_out,))`` where
        ``positive[j] = k_j`` (``fan_in`` means the bias).
    """
    for name, value in (("fan_out", fan_out), ("fan_in", fan_in)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    gen = as_generator(generator)
    m = fan_in + 1
    gaussians = m - 1  # ≥ 1
    if std is None:
        std = RAI_STD / math.sqrt(fan_in)
    if not (math.isfinite(std) and std > 0):
        raise ValueError(f"std must be a positive number, got {std!r}")
    lowest = -1.0 / (gaussians - 1) if gaussians > 1 else 0.0
    if correlation is None:
        correlation = lowest
    if gaussians > 1 and not lowest - 1e-12 <= correlation < 1.0:
        raise ValueError(f"correlation must lie in [-1/(m-2), 1) = [{lowest:.4g}, 1) for "
                         f"{gaussians} Gaussian entries per unit, got {correlation!r}")
    # Correlated Gaussians from iid z: g = α (z − β z̄ 1) has covariance α² (I − γ/n 11ᵀ) with
    # γ = 2β − β², n = gaussians; γ = −n c/(1 − c) gives pairwise correlation c, and α restores
    # the variance to std².
    z = torch.randn(fan_out, gaussians, generator=gen, dtype=torch.float64)  # (out, n)
    if gaussians > 1:
        gamma = min(1.0, -gaussians * correlation / (1.0 - correlation))
        beta = 1.0 - math.sqrt(1.0 - gamma)
        alpha = std / math.sqrt(1.0 - gamma / gaussians)
        g = alpha * (z - beta * z.mean(dim=1, keepdim=True))
    else:
        g = std * z
    positive = torch.randint(0, m, (fan_out,), generator=gen)  # (out,)
    values = torch.sqrt(torch.rand(fan_out, generator=gen, dtype=torch.float64))  # Beta(2, 1)
    v = torch.empty(fan_out, m, dtype=torch.float64)
    rest = torch.ones(fan_out, m, dtype=torch.bool)
    rest[torch.arange(fan_out), positive] = False
    v[rest] = g.reshape(-1)  # row-major: row j's Gaussians fill its non-positive slots in order
    v[torch.arange(fan_out), positive] = values
    return v[:, :fan_in].contiguous(), v[:, fan_in].contiguous(), positive


@torch.no_grad()
def raai_(
    module: nn.Module,
    *,
    correlation: float | None = None,
    generator: GeneratorLike = None,
) -> nn.Module:
    r"""Randomized asymmetric + anti-correlated initialization (RAAI) of every ``nn.Linear``.

    RAAI combines two ideas (Singh, D. & Sreejith, G. J. (2021), "Initializing ReLU networks in
    an expressive subspace of weights", arXiv 2103.12499): the randomized asymmetric
    initialization (RAI) of Lu, L., Shin, Y., Su, Y. & Karniadakis, G. E. (2020), "Dying ReLU
    and initialization: theory and numerical examples" (arXiv 1903.06733), which makes one
    incoming parameter of every unit positive so that a deep ReLU network is unlikely to be
    born dead, and Gaussian weights that are *anti-correlated* within each unit, which keeps
    signal correlations from saturating at 1 with depth.

    **What we implement, precisely** (our sources lack RAAI's exact parameters; see
    specs/compositional-networks.md). For every layer, unit j's vector
    :math:`v_j = (W_{j,:}, b_j) \in \mathbb{R}^{m}`, m = fan_in + 1:

    .. math::
        k_j \sim U\{1, …, m\}, \quad v_{jk_j} \sim \text{Beta}(2, 1), \quad
        (v_{ji})_{i \ne k_j} \sim N\!\left(0,\ σ^2 [(1 − c) I + c\,\mathbf{1}\mathbf{1}^T]\right),
        \quad σ = 0.6007/\sqrt{\text{fan\_in}},

    - RAI as Lu et al. define it: the positive entry may be any weight or the bias, P =
      Beta(2, 1); σ = 0.6007/√fan_in is the value used with Beta(2, 1) in public RAI
      implementations (Lu et al. derive the Gaussian variance from a second-moment
      condition that we do not reproduce).
    - The anti-correlation acts on the m − 1 Gaussian entries of each unit (bias included);
      ``correlation=None`` takes c = −1/(m − 2), the most negative value with a valid
      covariance — the Gaussian part of each unit then sums to exactly zero, which removes
      the common-mode direction that ReLU's positive outputs otherwise amplify (Singh &
      Sreejith's mechanism). Units with a single Gaussian entry (fan_in = 1) are uncorrelated.
    - Every ``nn.Linear`` is drawn this way, the head included (it is one more layer to RAI).

    Args:
        module: a :class:`deepbasis.MLP`, an ``nn.Sequential`` of linear and activation layers,
            or an ``nn.Linear``. Layers need biases.
        correlation: pairwise correlation c of the Gaussian entries of a unit, in
            [−1/(m − 2), 1); None for the most negative.
        generator: ``torch.Generator`` or int seed for every draw.

    Examples:
        >>> from deepbasis import MLP, init
        >>> model = init.raai_(MLP(1, 4, 5), generator=0)
    """
    gen = as_generator(generator)
    for layer in _all_linear(module):
        if layer.bias is None:
            raise ValueError("RAAI draws the bias as part of each unit's vector: build "
                             "nn.Linear with bias=True")
        weight, bias, _ = raai_layer_parameters(layer.out_features, layer.in_features,
                                                correlation=correlation, generator=gen)
        _assign(layer.weight, weight)
        _assign(layer.bias, bias)
    return module
