r"""Globally orthogonal (GO) initialization (Wang, Crawford-Eng & Perdikaris 2021, §3).

Every hidden layer j gets weights :math:`W_j = c_j Z_j / \sqrt{d^j_\text{in}}` with fixed
standard-normal *directions* :math:`Z_j` and one trainable *scale* :math:`c_j`, and the bias
:math:`b_j \mathbb{1}` with one trainable offset :math:`b_j`. The 2m numbers (c, b) are
calibrated by Adam so that the last hidden layer's features are as orthogonal as possible over
the data (eq. 3.2):

.. math::
    \min_{c, b}\; -\frac{1}{d(d-1)} \sum_{i \ne k} \log\left(1 - \cos^2 θ_{ik}\right)
    + λ \lVert c \rVert_2^2, \qquad
    \cos θ_{ik} = \frac{\langle g_i, g_k \rangle}{\lVert g_i \rVert \lVert g_k \rVert}

with :math:`g_i` the i-th feature evaluated on a batch of inputs (eq. 3.1: the inner product of
the empirical data distribution, *uncentered*). The head (the last linear layer) is left as it
is: it does not change the features; initialize it first with the initializer of your choice.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call

from .._checks import GeneratorLike, as_2d_inputs, as_generator, check_choice
from ._walk import linear_layers

DIRECTIONS = ("fixed", "redrawn")


@dataclass
class GOHistory:
    """What :func:`go_` did: the objective per step and the calibrated (c, b).

    Attributes:
        loss: eq. 3.2 (orthogonality term + λ‖c‖²) on each step's batch, before the update.
        orthogonality: the log-sine term alone.
        mean_squared_cosine: mean of cos² θ_ik over i ≠ k on each step's batch.
        scales, biases: (c_j), (b_j) after every step, ``steps + 1`` rows (row 0: the start).
        input_mean, input_std: the standardization folded into the first layer.
        directions: 'fixed' or 'redrawn'.
        wall_time: seconds spent calibrating.
    """

    loss: list[float] = field(default_factory=list)
    orthogonality: list[float] = field(default_factory=list)
    mean_squared_cosine: list[float] = field(default_factory=list)
    scales: list[list[float]] = field(default_factory=list)
    biases: list[list[float]] = field(default_factory=list)
    input_mean: list[float] = field(default_factory=list)
    input_std: list[float] = field(default_factory=list)
    directions: str = "fixed"
    wall_time: float = 0.0

    @property
    def final_scales(self) -> list[float]:
        return self.scales[-1]

    @property
    def final_biases(self) -> list[float]:
        return self.biases[-1]


def feature_cosines(features: torch.Tensor, *, centered: bool = False) -> torch.Tensor:
    """Cosines between the columns of ``features`` (N, d) under the empirical measure (eq. 3.1).

    ``centered=True`` subtracts each column's mean first (correlations instead of eq. 3.1's
    uncentered cosines). A column that is zero on every point (a dead ReLU unit) has no
    direction; its cosines are 0.
    """
    if centered:
        features = features - features.mean(dim=0)
    norms = torch.linalg.vector_norm(features, dim=0).clamp_min(torch.finfo(features.dtype).tiny)
    unit = features / norms  # (N, d)
    return unit.T @ unit  # (d, d)


def mean_squared_cosine(features: torch.Tensor, *, centered: bool = False) -> float:
    """Mean of cos² θ_ik over the d(d − 1) pairs i ≠ k of columns of ``features`` (N, d)."""
    d = features.shape[1]
    if d < 2:
        raise ValueError(f"need at least 2 features to measure orthogonality, got {d}")
    return float(_objective(features.detach(), centered)[1])


def orthogonality_loss(features: torch.Tensor, *, centered: bool = False) -> torch.Tensor:
    r"""The log-sine term of eq. 3.2: :math:`-\sum_{i≠k} \log(1 − \cos^2 θ_{ik}) / (d(d−1))`."""
    return _objective(features, centered)[0]


def _objective(features: torch.Tensor, centered: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-sine term of eq. 3.2, mean squared cosine) from one cosine matrix."""
    d = features.shape[1]
    cos2 = feature_cosines(features, centered=centered) ** 2  # (d, d)
    off = ~torch.eye(d, dtype=torch.bool, device=features.device)
    cos2 = cos2[off]  # (d (d − 1),)
    # Collapsed features (cos² → 1 under Glorot in deep tanh nets) would give log(0) = −inf:
    # clamp the sine² at a dtype-dependent floor so the gradient stays finite and still points
    # toward orthogonality.
    floor = 1e-12 if features.dtype == torch.float64 else 1e-6
    sine2 = (1.0 - cos2).clamp_min(floor)
    return -torch.log(sine2).mean(), cos2.detach().mean()


def _dead_unit_barrier(g: torch.Tensor, z: torch.Tensor, eps: float) -> torch.Tensor:
    r""":math:`-\frac{2}{d}\sum_i \log(r_i/(r_i + ε))`, :math:`r_i = ‖g_i‖²/‖z_i‖²` (see go_)."""
    tiny = torch.finfo(g.dtype).tiny
    r = (g * g).sum(0) / (z * z).sum(0).clamp_min(tiny)  # (d,)
    # A unit dead on the whole batch has no gradient to revive it: clamp so it adds a constant,
    # not an infinite (NaN) gradient.
    return -2.0 * torch.log((r / (r + eps)).clamp_min(1e-12)).mean()


class _Features(nn.Module):
    """``net``'s last hidden layer features as a module's forward, for ``functional_call``."""

    def __init__(self, net: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.net = net
        self._prefix = None
        if not callable(getattr(net, "features", None)):
            children = list(net) if isinstance(net, nn.Sequential) else []
            index = next((k for k, child in enumerate(children) if child is head), None)
            if index is None:
                raise TypeError(
                    f"go_ needs the last hidden layer's features of {type(net).__name__}: pass a "
                    "module with a features(x) method (a deepbasis.MLP) or an nn.Sequential "
                    "whose last nn.Linear is the head"
                )
            self._prefix = children[:index]  # a plain list: not registered twice

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._prefix is None:
            return self.net.features(x)
        for child in self._prefix:
            x = child(x)
        return x


class _StopForward(Exception):
    pass


def _first_layer_inputs(features, first: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """What the first hidden layer receives for inputs ``x`` (after e.g. MLP's domain map)."""
    captured = []

    def hook(_module, args):
        captured.append(args[0].detach())
        raise _StopForward

    handle = first.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            features(x)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError("the first hidden nn.Linear was never called in the forward pass")
    return captured[0]


def go_(
    module: nn.Module,
    x: torch.Tensor,
    *,
    steps: int = 5000,
    lr: float = 5e-3,
    lam: float = 1e-4,
    batch_size: int = 2048,
    directions: str = "fixed",
    normalize: bool = True,
    init_scale: float = 1.0,
    dead_unit_barrier: float = 1e-3,
    centered: bool = False,
    generator: GeneratorLike = None,
) -> GOHistory:
    r"""Globally orthogonal initialization of ``module``'s hidden layers, calibrated on ``x``.

    From "Enhancing the trainability and expressivity of deep MLPs with globally orthogonal
    initialization" - Wang, H., Crawford-Eng, I. & Perdikaris, P. (2021), eq. 3.2.

    .. math::
        W_j = c_j Z_j / \sqrt{d^j_\text{in}}, \quad b_j \mathbb{1}, \qquad
        (c, b) = \arg\min\; -\tfrac{1}{d(d-1)} \textstyle\sum_{i≠k} \log(1 − \cos^2 θ_{ik})
        + λ \lVert c \rVert^2

    Each Adam step evaluates the features on ``batch_size`` inputs drawn without replacement
    from ``x`` (all of ``x`` when it has fewer rows). The paper's settings: lr 5e-3, λ = 1e-4
    (1e-3 in its Fig. 4), 5,000–20,000 steps, batches of 2,048 from 2^16 inputs.

    **Directions.** ``'fixed'`` (the default) draws :math:`Z_j` once and calibrates (c, b) for
    exactly the weights the network ends up with: the objective is deterministic up to the
    batch, so Adam settles instead of chasing a fresh draw every step, the calibrated network is
    the one whose features were made orthogonal (not a new draw that was only orthogonal on
    average), and no d² normals are drawn per layer per step (App. A notes the saving).
    ``'redrawn'`` is the paper's procedure: a new :math:`Z_j` every step, minimizing the
    expected objective over draws; the final network takes one more fresh draw.

    **Inputs** are standardized as the paper does (App. C: zero mean, unit variance per input
    dimension, over all of ``x``), and the standardization is folded into the first layer
    (:math:`W_1 ← W_1 \operatorname{diag}(1/σ)`, :math:`b_1 ← b_1 − W_1 μ`), so the returned
    network takes raw inputs and computes exactly the calibrated network of standardized ones.
    It applies to what the first layer receives (after a :class:`deepbasis.MLP`'s ``domain``
    map). A constant input column keeps σ = 1.

    **Dead units (our addition).** A feature that is zero on the whole batch has no direction;
    its cosines are 0, so eq. 3.2 *rewards* killing units. On ReLU networks, whose features are
    non-negative and can only become orthogonal by having disjoint supports, plain eq. 3.2 does
    exactly that: it drives the shared biases negative until most units of the last layer are
    dead (measured on 3 × 16 ReLU nets, 150 steps: 14–16 of 16 dead for seeds 0–2,
    tests/test_go.py). We therefore add a barrier
    :math:`-\frac{2}{d}\sum_i \log\frac{r_i}{r_i + ε}`, with :math:`r_i = \lVert g_i\rVert^2 /
    \lVert z_i\rVert^2` the share of unit i's pre-activation energy that survives the activation
    (ε = ``dead_unit_barrier``). It equals eq. 3.2 with :math:`1 − \cos^2 θ_{ik}` replaced by
    :math:`w_i w_k (1 − \cos^2 θ_{ik})`, :math:`w_i = r_i/(r_i + ε)`: a dying unit counts as
    collinear with all others. With it no ReLU unit dies, but then GO does not reliably lower
    ReLU cosines either (held-out mean cos² rose in 2 of 5 seeds): with one scale and one bias
    per layer, a positively homogeneous network can only trade overlap of supports for dead
    units. GO is a method for tanh and sin networks. For tanh and sin units :math:`r_i` is O(1)
    unless they saturate
    far beyond |z| ~ 30, so the barrier is ~ε there; ``dead_unit_barrier=0`` is eq. 3.2 exactly.

    Args:
        module: a :class:`deepbasis.MLP` (plain or residual) or an ``nn.Sequential`` of
            ``nn.Linear`` and activation layers; at least one hidden layer and a linear head.
        x: calibration inputs ``(N, d_in)``, finite.
        steps: Adam steps (≥ 0).
        lr: Adam learning rate.
        lam: λ of the penalty λ‖c‖² (≥ 0); it keeps the scales from growing without bound.
        batch_size: inputs per step (≥ 2).
        directions: ``'fixed'`` or ``'redrawn'`` (see above).
        normalize: standardize the inputs (see above); ``False`` uses them as they are.
        init_scale: starting value of every :math:`c_j` (1 ≈ Glorot for square layers); every
            :math:`b_j` starts at 0.
        dead_unit_barrier: ε of the dead-unit barrier (see above; ≥ 0, 0 = the paper's loss).
        centered: use centered cosines (correlations) instead of eq. 3.1's uncentered ones; a
            constant offset of a feature is absorbed by the head's bias anyway.
        generator: ``torch.Generator`` or int seed for the directions and the batches.

    Returns:
        :class:`GOHistory`; ``module`` is changed in place (its hidden layers; not the head).

    Examples:
        >>> from deepbasis import MLP, init
        >>> model = MLP(2, 16, 3, activation="tanh", dtype=torch.float64)
        >>> x = torch.rand(512, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> history = init.go_(model, x, steps=50, batch_size=256, generator=0)
        >>> history.mean_squared_cosine[-1] < history.mean_squared_cosine[0]
        True
    """
    layers = linear_layers(module)
    if layers.head is None or not layers.hidden:
        raise ValueError(
            f"go_ calibrates the hidden layers of a network against its last hidden layer's "
            f"features, but {type(module).__name__} has no hidden layer before a linear head; "
            "pass an MLP with depth >= 1 (e.g. nn.Sequential(nn.Linear, nn.Tanh, nn.Linear))"
        )
    hidden, head = layers.hidden, layers.head
    first = hidden[0]
    x = as_2d_inputs("x", x, _in_features(module, first))
    _check_settings(steps=steps, lr=lr, lam=lam, batch_size=batch_size, directions=directions,
                    init_scale=init_scale, rows=x.shape[0])
    if isinstance(dead_unit_barrier, bool) or not isinstance(dead_unit_barrier, (int, float)) \
            or not math.isfinite(dead_unit_barrier) or dead_unit_barrier < 0:
        raise ValueError(f"dead_unit_barrier must be a finite number >= 0, got "
                         f"{dead_unit_barrier!r}")
    if head.in_features < 2:
        raise ValueError(f"the last hidden layer has {head.in_features} feature; GO needs at "
                         "least 2 to make orthogonal")
    features_of = _Features(module, head)
    dtype, device = first.weight.dtype, first.weight.device
    gen = as_generator(generator)
    x = x.to(dtype=dtype, device=device)

    # Standardization of what the first layer sees (App. C), folded into its weights.
    u = _first_layer_inputs(features_of, first, x)  # (N, d_in)
    if normalize:
        mean = u.mean(dim=0)
        std = u.std(dim=0) if u.shape[0] > 1 else torch.ones_like(mean)
        std = torch.where(std > 0, std, torch.ones_like(std))
    else:
        mean, std = torch.zeros(u.shape[1], dtype=dtype, device=device), \
            torch.ones(u.shape[1], dtype=dtype, device=device)

    names = {id(p): n for n, p in features_of.named_parameters()}  # 'net.<name>'
    fan_in = [layer.in_features for layer in hidden]

    def draw() -> list[torch.Tensor]:
        # float64 CPU draws, as every initializer: a seed gives the same network on any device.
        return [(torch.randn(layer.weight.shape, generator=gen, dtype=torch.float64)
                 / math.sqrt(fi)).to(dtype=dtype, device=device)
                for layer, fi in zip(hidden, fan_in, strict=True)]

    def parameters(c: torch.Tensor, b: torch.Tensor, z: list[torch.Tensor]) -> dict:
        values = {}
        for j, layer in enumerate(hidden):
            weight = c[j] * z[j]  # (out, in)
            bias = b[j].expand(layer.out_features)
            if j == 0:  # fold the standardization (u − μ)/σ into layer 1
                weight = weight / std
                bias = bias - weight @ mean
            values[names[id(layer.weight)]] = weight
            if layer.bias is not None:
                values[names[id(layer.bias)]] = bias
        return values

    c = torch.full((len(hidden),), float(init_scale), dtype=dtype, device=device,
                   requires_grad=True)
    b = torch.zeros(len(hidden), dtype=dtype, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([c, b], lr=lr)
    z = draw()
    history = GOHistory(input_mean=mean.tolist(), input_std=std.tolist(), directions=directions)
    history.scales.append(c.detach().tolist())
    history.biases.append(b.detach().tolist())
    n = x.shape[0]
    trace, path = [], []
    pre_activations = []  # the last hidden layer's output z, for the dead-unit barrier
    hook = hidden[-1].register_forward_hook(lambda _m, _a, out: pre_activations.append(out)) \
        if dead_unit_barrier > 0 else None
    start = time.perf_counter()
    try:
        for _ in range(steps):
            if directions == "redrawn":
                z = draw()
            if batch_size >= n:
                batch = x
            else:
                batch = x[torch.randperm(n, generator=gen)[:batch_size].to(device)]
            g = functional_call(features_of, parameters(c, b, z), (batch,))  # (B, d)
            orth, msc = _objective(g, centered)
            loss = orth + lam * (c * c).sum()
            if hook is not None:
                loss = loss + _dead_unit_barrier(g, pre_activations.pop(), dead_unit_barrier)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            trace.append(torch.stack([loss.detach(), orth.detach(), msc]))
            path.append(torch.cat([c.detach(), b.detach()]))
    finally:
        if hook is not None:
            hook.remove()
    if not (torch.isfinite(c).all() and torch.isfinite(b).all()):
        # The module is written only below, so it is left as it was.
        raise FloatingPointError(
            "GO calibration diverged (non-finite scale or bias); the model is unchanged. Lower "
            f"lr (got {lr}) or raise lam (got {lam})")
    trace = torch.stack(trace).tolist() if trace else []  # one host sync, not one per step
    for row in torch.stack(path).tolist() if path else []:
        history.scales.append(row[:len(hidden)])
        history.biases.append(row[len(hidden):])
    for loss_k, orth_k, msc_k in trace:
        history.loss.append(loss_k)
        history.orthogonality.append(orth_k)
        history.mean_squared_cosine.append(msc_k)
    history.wall_time = time.perf_counter() - start
    if directions == "redrawn":
        z = draw()
    with torch.no_grad():
        final = parameters(c.detach(), b.detach(), z)
        params = dict(features_of.named_parameters())
        for name, value in final.items():
            params[name].copy_(value)
    return history


def _in_features(module: nn.Module, first: nn.Linear) -> int:
    value = getattr(module, "in_features", None)
    return value if isinstance(value, int) else first.in_features


def _check_settings(*, steps, lr, lam, batch_size, directions, init_scale, rows) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    for name, value in (("lr", lr), ("init_scale", init_scale)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) \
            or lam < 0:
        raise ValueError(f"lam (λ of the penalty λ‖c‖²) must be a finite number >= 0, got "
                         f"{lam!r}; use lam=0 for no penalty")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"batch_size must be an integer >= 2, got {batch_size!r}")
    check_choice("directions", directions, DIRECTIONS)
    if rows < 2:
        raise ValueError(f"x must have at least 2 rows to measure feature angles, got {rows}")


@torch.no_grad()
def go_module_(module: nn.Module, x: torch.Tensor | None = None, *,
               generator: GeneratorLike = None, **options) -> nn.Module:
    """:func:`go_` with the initializer-registry signature: returns ``module``, not the history.

    GO calibrates on data, so ``x`` is required: ``initialize_(model, "go", x=inputs)``.
    """
    if x is None:
        raise ValueError("the 'go' initializer calibrates on data: pass the inputs, e.g. "
                         "initialize_(model, 'go', x=inputs) or go_(model, inputs)")
    with torch.enable_grad():
        go_(module, x, generator=generator, **options)
    return module
