r"""Box initialization for plain and residual ReLU networks (Cyr et al. 2020, §4 and App. B).

Each unit is σ(k (x − p)·n): a cut plane through a random point p of the layer's input box with
a random unit normal n, and a slope k chosen so that the unit's maximum over the box is a set
value. Written as an affine map T(x) = W x + b this is W_i = k_i n_i and b_i = −k_i n_i·p_i.

Two corrections to the printed Algorithms 2 and 3 (see specs/paper-notes.md):

- the normal is divided by its norm, not its squared norm (line 4), so n is a unit vector;
- the bias is −k n·p, not +k n·p (line 8), so that the cut plane passes through p and the
  defining property (eq. 10) holds: over [0, 1]^w each plain unit has minimum 0 and maximum 1.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .._checks import GeneratorLike, as_generator, check_choice
from ._walk import linear_layers
from .classic import _assign, _uniform

RESIDUAL_VARIANTS = ("eq16", "algorithm3")


def box_layer_parameters(
    fan_out: int,
    fan_in: int,
    *,
    box: float = 1.0,
    peak: float = 1.0,
    generator: GeneratorLike = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Weights and biases (float64, CPU) of one Box-initialized layer.

    Every unit i is :math:`σ(k_i (x − p_i)·n_i)` with :math:`p_i \sim U[0, m]^{\text{fan\_in}}`
    (``m = box``), :math:`n_i` uniform on the unit sphere, and :math:`k_i` such that the
    maximum over :math:`[0, m]^{\text{fan\_in}}` is ``peak``. By Lemma 1 the maximum is at the
    corner :math:`p^{\max} = m · \max(\operatorname{sgn}(n), 0)`, so

    .. math::
        k_i = \frac{\text{peak}}{\sum_j (p^{\max}_{ij} − p_{ij}) n_{ij}}, \qquad
        W_{ij} = k_i n_{ij}, \qquad b_i = −k_i \sum_j n_{ij} p_{ij}.

    Returns:
        ``(weight (fan_out, fan_in), bias (fan_out,))``.
    """
    gen = as_generator(generator)
    p = torch.rand(fan_out, fan_in, generator=gen, dtype=torch.float64) * box  # (out, in)
    n = torch.randn(fan_out, fan_in, generator=gen, dtype=torch.float64)
    n = n / torch.linalg.vector_norm(n, dim=1, keepdim=True)  # unit normals (Alg. 2 line 4)
    corner = box * (n > 0).to(torch.float64)  # Lemma 1; ties (n = 0) take 0
    reach = ((corner - p) * n).sum(dim=1)  # (out,) distance from the cut plane to the corner
    # reach > 0 almost surely: p is inside the box and the corner is the farthest point along n.
    # It is 0 only when p sits on that corner, a measure-zero event we still guard against.
    reach = reach.clamp_min(torch.finfo(torch.float64).tiny)
    k = peak / reach  # (out,)
    weight = k[:, None] * n
    bias = -k * (n * p).sum(dim=1)  # cut plane through p (sign corrected, see module doc)
    return weight, bias


@torch.no_grad()
def box_(
    module: nn.Module,
    *,
    residual: bool | None = None,
    variant: str = "eq16",
    inputs: torch.Tensor | None = None,
    generator: GeneratorLike = None,
) -> nn.Module:
    r"""Box initialization of a ReLU network's hidden layers (Cyr et al. 2020, Algorithms 2–3).

    From "Robust Training and Initialization of Deep Neural Networks: An Adaptive Basis
    Viewpoint" - Cyr, E. C. et al. (2020).

    **Plain layers** (§4.1, Algorithm 2): every unit has its cut plane through a random point of
    [0, 1]^w and reaches exactly 1 at the box's farthest corner, so each layer maps
    [0, 1]^w into [0, 1]^w with every unit attaining 0 and 1 (eq. 10).

    **Residual layers** l = 2..L (§4.2): for ``variant="eq16"`` (default, eqs. 12–16),
    :math:`δ = 1/L`, :math:`m = (1 + 1/L)^{l−1}`, p ∈ [0, m]^w and the unit's maximum over
    [0, m]^w is δ m, so layer l maps [0, m]^w into [0, m(1 + δ)]^w and every feature stays in
    [0, e]. ``variant="algorithm3"`` follows Algorithm 3 as printed (bias sign and normalization
    corrected): :math:`m = (1 + 1/(L − 1))^l` and the maximum over [0, m]^w is 1/(L − 1).
    The first hidden layer is always initialized as a plain layer.

    **Inputs must lie in [0, 1]^d.** Build the model with ``MLP(..., domain=(lower, upper))`` to
    map your data there, and pass ``inputs=x`` to have this checked.

    The head (last ``nn.Linear``) is given Glorot-uniform weights and a zero bias; with LSGD it
    is replaced by the least-squares solution anyway.

    Args:
        module: a :class:`deepbasis.MLP`, an ``nn.Sequential`` of linear and ReLU layers (walked
            in forward order; treated as plain), or any basis network with ``head``.
        residual: override the architecture's residual flag (default: ``module.residual``,
            False for modules without one).
        variant: ``"eq16"`` or ``"algorithm3"`` for residual layers.
        inputs: optional training inputs ``(N, d)`` in the user's coordinates; if given, raise
            when they do not map into [0, 1]^d.
        generator: ``torch.Generator`` or int seed used for every draw.

    Returns:
        ``module``, initialized in place.

    Examples:
        >>> import torch
        >>> from deepbasis import MLP, init
        >>> model = init.box_(MLP(1, 32, 8, residual=True), generator=0)
        >>> model.features(torch.rand(5, 1)).min() >= 0
        tensor(True)
    """
    check_choice("variant", variant, RESIDUAL_VARIANTS)
    gen = as_generator(generator)
    layers = linear_layers(module)
    residual = layers.residual if residual is None else bool(residual)
    activation = getattr(module, "activation_name", "relu")
    if activation != "relu":
        warnings.warn(
            f"Box initialization is designed for ReLU networks; this one uses {activation!r}. "
            "The box invariants (unit maxima of exactly 1) hold for the pre-activations only.",
            stacklevel=2,
        )
    if inputs is not None:
        _check_unit_box(module, inputs)
    depth = len(layers.hidden)
    if residual and variant == "algorithm3" and depth < 2:
        raise ValueError("variant='algorithm3' needs depth >= 2 (it divides by L - 1)")
    for index, layer in enumerate(layers.hidden, start=1):
        if index == 1 or not residual:
            box, peak = 1.0, 1.0
        elif variant == "eq16":
            box = (1.0 + 1.0 / depth) ** (index - 1)
            peak = box / depth  # δ m with δ = 1/L
        else:  # Algorithm 3
            box = (1.0 + 1.0 / (depth - 1)) ** index
            peak = 1.0 / (depth - 1)
        weight, bias = box_layer_parameters(
            layer.out_features, layer.in_features, box=box, peak=peak, generator=gen
        )
        _assign(layer.weight, weight)
        if layer.bias is None:
            raise ValueError("Box initialization needs biases: build nn.Linear with bias=True")
        _assign(layer.bias, bias)
    if layers.head is not None:
        head = layers.head
        bound = (6.0 / (head.in_features + head.out_features)) ** 0.5
        _assign(head.weight, _uniform(head.weight.shape, bound, gen))
        if head.bias is not None:
            head.bias.zero_()
    return module


def _check_unit_box(module: nn.Module, inputs: torch.Tensor) -> None:
    normalize = getattr(module, "normalize", None)
    x = normalize(inputs) if normalize is not None else inputs
    lo, hi = float(x.min()), float(x.max())
    slack = 1e-6
    if lo < -slack or hi > 1.0 + slack:
        raise ValueError(
            f"Box initialization assumes inputs in [0, 1]^d, but the inputs span [{lo:.4g}, "
            f"{hi:.4g}] after the model's input map. Build the model with "
            f"MLP(..., domain=(lower, upper)) covering your data, or rescale the inputs."
        )
