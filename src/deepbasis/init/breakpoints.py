r"""Initializations in the spline view: uniform breakpoints, α-scaling, and "spiky" networks.

A shallow 1-D ReLU network is the spline :math:`f(x) = b_0 + \sum_i μ_i (x − β_i)⟦s_i (x − β_i)
> 0⟧` with breakpoints :math:`β_i = −b_i/w_i`, delta-slopes :math:`μ_i = w_i v_i` and orientations
:math:`s_i = \operatorname{sgn} w_i` (Sahs et al. 2020, eq. 2; 2022, eq. 1). Each unit has one
more degree of freedom, its scale: :math:`(w_i, b_i, v_i) → (α w_i, α b_i, v_i/α)` leaves the
function unchanged. The initializers here set these spline parameters directly. All follow
``torch.nn.init`` conventions: in place, under ``torch.no_grad()``, return their argument, and
take every random draw from ``generator``. Breakpoints are in the user's x: an
:class:`~deepbasis.MLP` ``domain`` is folded in.

They need settings no name-only registry entry can give (a data range, α, target values), so
:data:`deepbasis.init.INITIALIZERS` does not list them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._checks import GeneratorLike, as_generator
from ..analysis.shallow import shallow_layers
from ..analysis.spline import Spline
from ..nn.mlp import MLP
from ._walk import linear_layers


def _affine(model: nn.Module) -> tuple[float, float]:
    """(lower, upper − lower) of an MLP's input box, (0, 1) without one: x = lo + width x̃."""
    if isinstance(model, MLP) and model.domain is not None:
        lo, hi = float(model.domain[0][0]), float(model.domain[1][0])
        return lo, hi - lo
    return 0.0, 1.0


def _set_units(model, w, b, v, offset) -> None:
    """Write user-x parameters (w, b: the unit is v ReLU(w x + b)) into the shallow network."""
    first, head = shallow_layers(model)
    lo, width = _affine(model)
    # In normalized coordinates x = lo + width x̃: w̃ = w width, b̃ = b + w lo.
    first.weight.copy_((w * width)[:, None].to(first.weight))
    first.bias.copy_((b + w * lo).to(first.bias))
    head.weight.copy_(v[None, :].to(head.weight))
    head.bias.fill_(float(offset))


def _range(model, lower, upper) -> tuple[float, float]:
    if lower is None or upper is None:
        if isinstance(model, MLP) and model.domain is not None:
            lo, hi = float(model.domain[0][0]), float(model.domain[1][0])
            lower = lo if lower is None else lower
            upper = hi if upper is None else upper
        else:
            raise ValueError("give the data range: lower=..., upper=... (or build the MLP with "
                             "domain=(lower, upper))")
    lower, upper = float(lower), float(upper)
    if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
        raise ValueError(f"need a finite range with lower < upper, got [{lower}, {upper}]")
    return lower, upper


@torch.no_grad()
def uniform_breakpoints_(module: nn.Module, lower: float | None = None,
                         upper: float | None = None, *, offset_noise: float = 0.1,
                         generator: GeneratorLike = None) -> nn.Module:
    r"""Move every breakpoint to a uniform draw over the data range, keeping the delta-slopes.

    From "A Functional Characterization of Randomly Initialized Gradient Descent in Deep ReLU
    Networks" - Sahs, J. et al. (2020), Table 1 / App. A.1; Sahs et al. (2022), Table 1. Apply
    it after a standard initialization: each unit keeps its delta-slope :math:`μ_i`,
    orientation :math:`s_i` and scale :math:`|w_i|`, and gets

    .. math::
        β_i \sim U[\text{lower}, \text{upper}], \qquad b_i = −w_i β_i .

    The paper also adds "N(0, .01) noise" to the breakpoints' values; where is not stated
    (specs/spline-view.md, a choice): here the output bias gets
    :math:`N(0, \text{offset\_noise}^2)`, default std 0.1 (variance 0.01). Units with
    :math:`w_i = 0` are left alone.

    Args:
        module: a shallow 1-D network (``MLP(1, H, 1)`` or ``Sequential(Linear(1, H), ReLU(),
            Linear(H, 1))``).
        lower, upper: the data range (default: the MLP's ``domain``).
        offset_noise: std of the noise added to the output bias.
        generator: ``torch.Generator`` or int seed for every draw.

    Examples:
        >>> from deepbasis import MLP, init
        >>> model = init.uniform_breakpoints_(init.he_(MLP(1, 21, 1), zero_bias=False,
        ...                                            generator=0), -2.0, 2.0, generator=1)
    """
    lower, upper = _range(module, lower, upper)
    gen = as_generator(generator)
    first, head = shallow_layers(module)
    lo, width = _affine(module)
    w = first.weight.detach()[:, 0].to(torch.float64) / width  # user-x slopes
    v = head.weight.detach()[0].to(torch.float64)
    beta = lower + (upper - lower) * torch.rand(w.shape[0], generator=gen, dtype=torch.float64)
    b_user = first.bias.detach().to(torch.float64) - w * lo
    b = torch.where(w != 0, -w * beta, b_user)
    noise = float(torch.randn((), generator=gen, dtype=torch.float64)) * offset_noise
    _set_units(module, w, b, v, float(head.bias.detach()[0]) + noise)
    return module


@torch.no_grad()
def alpha_scale_(module: nn.Module, alpha: float | torch.Tensor, *, layer: int = 1) -> nn.Module:
    r"""Rescale the units of one hidden layer without changing the function.

    Sahs et al. (2022, §2.1 and §2.5.1): :math:`(w_i, b_i, v_i) → (α w_i, α b_i, v_i/α)`, α > 0,
    leaves every ReLU unit's output times its outgoing weights unchanged (positive
    homogeneity). In the spline view it keeps breakpoints and delta-slopes; it changes how fast
    they move under gradient descent (breakpoints like 1/α², delta-slopes like α²), so small α
    gives the adaptive regime (near a linear interpolant) and large α the kernel regime (near a
    natural cubic spline, Corollary 4).

    Args:
        module: a plain (non-residual) ReLU :class:`~deepbasis.MLP` or ``nn.Sequential`` of
            ``Linear``/``ReLU``; a residual skip would carry the scale past the next layer.
        alpha: scalar or per-unit tensor of positive scales.
        layer: which hidden layer (1-based) to rescale; its outgoing weights get 1/α.
    """
    if isinstance(module, MLP):
        if module.residual and module.depth > 1:
            raise ValueError("alpha_scale_ needs a plain network: in a residual MLP the skip "
                             "would carry the scaled features past the next layer")
    elif not isinstance(module, nn.Sequential):
        raise TypeError(f"alpha_scale_ takes an MLP or nn.Sequential, got {type(module).__name__}")
    walk = linear_layers(module)
    linears = [*walk.hidden, walk.head]
    if not 1 <= layer < len(linears):
        raise ValueError(f"layer must be between 1 and {len(linears) - 1} (the hidden layers), "
                         f"got {layer}")
    inc, out = linears[layer - 1], linears[layer]
    a = torch.as_tensor(alpha, dtype=torch.float64).reshape(-1).expand(inc.out_features)
    if not bool((a > 0).all()) or not bool(torch.isfinite(a).all()):
        raise ValueError(f"alpha must be positive and finite, got {alpha!r}")
    inc.weight.mul_(a[:, None].to(inc.weight))
    if inc.bias is not None:
        inc.bias.mul_(a.to(inc.bias))
    out.weight.div_(a[None, :].to(out.weight))
    return module


@torch.no_grad()
def set_spline_(module: nn.Module, spline: Spline, *, balanced: bool = True) -> nn.Module:
    r"""Set a shallow network to a continuous piecewise-linear function, exactly (in place).

    With points :math:`t_0 < t_1 < … < t_K < t_{K+1}` and slopes :math:`m_0, …, m_K` of the
    spline on :math:`[t_0, t_{K+1}]`, unit 0 is right-facing at :math:`t_0` with
    :math:`μ_0 = m_0`, unit k (1 ≤ k ≤ K) right-facing at :math:`t_k` with
    :math:`μ_k = m_k − m_{k−1}`, and :math:`b_0 = f(t_0)`; so the network needs H ≥ K + 1 units,
    and further units get μ = 0 (breakpoint at :math:`t_0`, output weight 0). Each unit's
    scale is free (α-symmetry): ``balanced=True`` takes :math:`|w_i| = |v_i| = \sqrt{|μ_i|}`
    (1 where μ = 0), else :math:`w_i = 1`. Left of :math:`t_0` the network is constant.
    """
    first, _ = shallow_layers(module)
    if spline.out_features != 1:
        raise ValueError("set_spline_ needs a spline with one output")
    width = first.out_features
    k = spline.knots.numel()
    if width < k + 1:
        raise ValueError(f"a spline with {k} knots needs at least {k + 1} units; this network "
                         f"has {width}")
    mu = torch.zeros(width, dtype=torch.float64)
    mu[0] = spline.slopes[0, 0]
    mu[1:k + 1] = spline.delta_slopes[:, 0]
    beta = torch.full((width,), spline.lower, dtype=torch.float64)
    beta[1:k + 1] = spline.knots
    w = torch.ones(width, dtype=torch.float64)
    if balanced:
        w = mu.abs().sqrt().where(mu != 0, w)
    _set_units(module, w, -w * beta, mu / w, float(spline.values[0, 0]))
    return module


def random_cpwl(lower: float = -2.0, upper: float = 2.0, *, breakpoints: int = 20,
                value_range: float = 2.0, generator: GeneratorLike = None) -> Spline:
    r"""A random "spiky" continuous piecewise-linear function (Sahs et al. 2020, Table 3).

    ``breakpoints`` evenly spaced interior knots on [lower, upper] (the paper does not say how
    they are placed: a choice) and values :math:`\sim U[−\text{value\_range},
    \text{value\_range}]` at the knots and both ends.
    """
    gen = as_generator(generator)
    points = torch.linspace(lower, upper, breakpoints + 2, dtype=torch.float64)
    values = (torch.rand(breakpoints + 2, generator=gen, dtype=torch.float64) * 2 - 1) * value_range
    return Spline.from_values(points, values)


@torch.no_grad()
def spiky_(module: nn.Module, lower: float = -2.0, upper: float = 2.0, *, breakpoints: int = 20,
           value_range: float = 2.0, pretrain_epochs: int = 10_000, lr: float = 1e-4,
           points: int = 401, generator: GeneratorLike = None) -> nn.Module:
    r"""'Spiky' initialization: start from a rough random CPWL function (Sahs et al. 2020, Table 3).

    The target is :func:`random_cpwl` (20 breakpoints, values ~ U[−2, 2] on [−2, 2] by
    default). A shallow network is set to it exactly (:func:`set_spline_`, which needs H ≥
    ``breakpoints`` + 1 units: the paper's 21). Any deeper network — which cannot be solved
    for — is *pretrained* to it, as in the paper: ``pretrain_epochs`` full-batch gradient-descent
    steps with learning rate ``lr`` on the summed squared error over ``points`` evenly spaced
    x (the paper's losses are sums; it pretrains 10,000 epochs at lr 1e-4 from the network's
    current weights).
    """
    gen = as_generator(generator)
    target = random_cpwl(lower, upper, breakpoints=breakpoints, value_range=value_range,
                         generator=gen)
    try:
        shallow_layers(module)
    except ValueError:
        return _pretrain(module, target, pretrain_epochs, lr, points)
    return set_spline_(module, target)


def _pretrain(module: nn.Module, target: Spline, epochs: int, lr: float, points: int):
    param = next(module.parameters())
    x = torch.linspace(target.lower, target.upper, points, dtype=torch.float64)[:, None]
    y = target(x).to(param)
    x = x.to(param)
    params = [p for p in module.parameters() if p.requires_grad]
    for _ in range(epochs):
        with torch.enable_grad():
            loss = ((module(x) - y) ** 2).sum()
            grads = torch.autograd.grad(loss, params)
        torch._foreach_add_(params, grads, alpha=-lr)  # gradient descent step (no_grad here)
    return module
