r"""Compositional ReLU networks: width 4, depth d, exactly 2^d linear pieces (Milkert et al.).

From "Compelling ReLU Network Initialization and Training to Leverage Exponential Scaling with
Depth" - Milkert, M., Hyde, D. & Laine, F. (published at ICML 2025 as "Compelling ReLU Networks
to Exhibit Exponentially Many Linear Regions at Initialization and During Training"). The text
copy lost its formulas; ``specs/compositional-networks.md`` restores them and is cited here.

A triangle with peak a ∈ (0, 1) (eq. 1),

.. math::
    T_a(u) = u / a \ (0 ≤ u ≤ a), \qquad T_a(u) = (1 − u)/(1 − a) \ (a ≤ u ≤ 1),

is composed into waves :math:`W_i = T_{a_i} ∘ ⋯ ∘ T_{a_0}` (eq. 2; W_i has 2^{i+1} pieces), and
the network computes (eq. 3)

.. math::
    F(x) = x + σ \sum_{i=0}^{d-1} s_i W_i(x), \qquad σ = ±1,

with σ = −1 for convex targets (x³, x¹¹) and σ = +1 for concave ones (sine, tanh). With all peaks
½, s_0 = ¼ and σ = −1 this is Yarotsky's approximation of x².

**Scales.** ``scales="enforced"`` ties them to the peaks by eq. 5 (Theorem 3.4, "differentiability
enforced"): :math:`s_{i+1} = s_i (1 − a_{i+1}) a_{i+2}`, so the derivative jumps shrink with
depth and the infinite-depth limit is differentiable. The last scale s_{d−1} needs the spare peak
a_d, which enters nothing else. ``scales="free"`` makes every s_i a parameter ("not enforced");
the spare peak is then inert. The amplitude s_0 is trainable in both.

**Parameterization (our choice; the paper does not state one).** Peaks stay strictly inside
(0, 1) — bounded away from 0 and 1 as Theorem A.1 requires — through a scaled logistic,

.. math::
    a_i = c + (1 − 2c)\,\operatorname{sigmoid}(θ_i), \qquad c = \text{margin} = 0.05,

so a_i ∈ (c, 1 − c) and the triangle slopes stay below 1/c. Scales stay positive through their
logarithm, :math:`s_i = \exp(ρ_i)`: positive scales keep the constant ``bias`` neuron alive (it
carries s_k through a ReLU), and the log makes the relative step the same for s_0 ≈ 0.25 and
s_5 ≈ 1e-4.

**The raw network** (spec, "The 4-neuron layer"). Hidden layer k holds four neurons
(sum, t1, t2, bias) = (x + σΣ_{j<k} s_j W_j, s_k W_{k−1}, s_k ReLU(W_{k−1} − a_k), s_k) with
W_{−1} = x. :meth:`CompositionalNet.raw_weights` returns their weights as differentiable
functions of (θ, ρ), :meth:`CompositionalNet.forward` runs that ReLU network (so training the
peaks trains exactly the function the raw network computes), and :meth:`CompositionalNet.to_mlp`
copies the weights into a plain width-4 :class:`~deepbasis.MLP`.

**When the construction breaks.** The ``sum`` neuron passes through a ReLU, so the raw network
equals eq. 3 only while every partial sum :math:`x + σ \sum_{j<k} s_j W_j(x)` is ≥ 0 (for σ = +1
always; for σ = −1 while the waves do not outweigh the line) and while the inputs lie in the
domain. Every forward pass checks the pre-activations of the ``sum`` and ``t1`` neurons; a value
below ``-violation_tol`` means the ReLU clipped part of the construction. ``on_violation``
chooses what happens: ``"warn"`` (default) issues a :class:`ConstructionViolationWarning`,
``"raise"`` raises :class:`ConstructionViolationError`, ``"ignore"`` only records it in
``last_violation_`` (the most negative pre-activation of the last forward pass, 0.0 when none).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from .._checks import as_2d_inputs, check_choice
from .mlp import MLP, _domain_bounds

SCALE_MODES = ("enforced", "free")
VIOLATION_ACTIONS = ("warn", "raise", "ignore")


class ConstructionViolationWarning(UserWarning):
    """A ReLU of a compositional network clipped a value the construction needs (eq. 3)."""


class ConstructionViolationError(ValueError):
    """Raised instead of :class:`ConstructionViolationWarning` when ``on_violation="raise"``."""


def triangle(u: torch.Tensor, a: torch.Tensor | float) -> torch.Tensor:
    r"""The triangle function :math:`T_a` of eq. 1 on [0, 1]: 0 at 0 and 1, peak 1 at ``a``."""
    return torch.where(u <= a, u / a, (1.0 - u) / (1.0 - a))


def eq5_scales(peaks: torch.Tensor, scale0: torch.Tensor | float, count: int) -> torch.Tensor:
    r"""Scales :math:`s_0, …, s_{count−1}` of eq. 5: :math:`s_{i+1} = s_i (1 − a_{i+1}) a_{i+2}`.

    ``peaks`` needs at least ``count + 1`` entries (a_0 is not used; s_{count−1} uses
    a_{count}). With all peaks ½ every ratio is ¼ (Yarotsky's x²).
    """
    ratios = (1.0 - peaks[1:count]) * peaks[2:count + 1]  # (count − 1,)
    scale0 = torch.as_tensor(scale0, dtype=peaks.dtype, device=peaks.device).reshape(1)
    return torch.cat([scale0, scale0 * torch.cumprod(ratios, dim=0)])


class CompositionalNet(nn.Module):
    r"""Peak-parameterized width-4 ReLU network of depth d with exactly 2^d pieces (eq. 3).

    Args:
        depth: number of hidden layers d (≥ 1); the network carries the waves W_0 … W_{d−1}.
        sign: σ = −1 subtracts the waves from the line y = x (convex targets), +1 adds them.
        scales: ``"enforced"`` (eq. 5) or ``"free"`` (every s_i a parameter).
        peaks: initial peaks a_0 … a_d (d + 1 values in (margin, 1 − margin)); default all ½.
            Use :func:`deepbasis.init.compositional_peaks_` for random peaks.
        scale0: initial amplitude s_0 (> 0). Free scales start at their eq.-5 values, so all
            three variants of the paper start from the same function.
        margin: c of the peak parameterization a = c + (1 − 2c) sigmoid(θ), 0 < c < ½.
        domain: optional ``(lower, upper)`` of the inputs, mapped affinely onto [0, 1]
            where the construction lives (as :class:`~deepbasis.MLP` does).
        on_violation: ``"warn"``, ``"raise"`` or ``"ignore"`` (see the module docstring).
        violation_tol: pre-activations above ``-violation_tol`` count as non-negative
            (rounding); default ``1000 · eps`` of the dtype.
        dtype, device: of the parameters.

    Examples:
        >>> import torch
        >>> net = CompositionalNet(20, sign=-1, scale0=0.25, dtype=torch.float64)  # peaks ½
        >>> x = torch.linspace(0, 1, 1001, dtype=torch.float64)[:, None]
        >>> bool((net(x) - x**2).abs().max() < 1e-12)
        True
        >>> mlp = net.to_mlp()  # the same function as a plain MLP(1, 4, 20)
    """

    def __init__(
        self,
        depth: int,
        *,
        sign: int = -1,
        scales: str = "enforced",
        peaks: torch.Tensor | Sequence[float] | None = None,
        scale0: float = 0.25,
        margin: float = 0.05,
        domain: tuple[float, float] | None = None,
        on_violation: str = "warn",
        violation_tol: float | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        if sign not in (-1, 1):
            raise ValueError(f"sign must be -1 (convex targets) or +1 (concave), got {sign!r}")
        check_choice("scales", scales, SCALE_MODES)
        check_choice("on_violation", on_violation, VIOLATION_ACTIONS)
        if not 0.0 < float(margin) < 0.5:
            raise ValueError(f"margin must lie in (0, 0.5), got {margin!r}")
        self.depth = depth
        self.sign = int(sign)
        self.scale_mode = scales
        self.margin = float(margin)
        self.on_violation = on_violation
        factory = {"dtype": dtype, "device": device}
        self.peak_logits = nn.Parameter(torch.zeros(depth + 1, **factory))
        self.log_scales = nn.Parameter(torch.zeros(1 if scales == "enforced" else depth,
                                                   **factory))
        real_dtype = self.peak_logits.dtype
        self.violation_tol = (1e3 * torch.finfo(real_dtype).eps if violation_tol is None
                              else float(violation_tol))
        self.domain = None
        if domain is not None:
            lower, upper = _domain_bounds(domain, 1)
            self.domain = (float(lower[0]), float(upper[0]))
            self.register_buffer("_lower", lower.to(dtype=real_dtype, device=device))
            self.register_buffer("_upper", upper.to(dtype=real_dtype, device=device))
        self.last_violation_ = 0.0
        self.set_peaks_(torch.full((depth + 1,), 0.5) if peaks is None else peaks, scale0)

    # ---------------------------------------------------------------------------------------
    # The parameters: peaks and scales
    # ---------------------------------------------------------------------------------------

    @torch.no_grad()
    def set_peaks_(self, peaks: torch.Tensor | Sequence[float],
                   scale0: float | None = None) -> CompositionalNet:
        """Set the peaks a_0 … a_d (and s_0); free scales are reset to their eq.-5 values."""
        peaks = torch.as_tensor(peaks, dtype=torch.float64).reshape(-1)
        if peaks.numel() != self.depth + 1:
            raise ValueError(f"a depth-{self.depth} network needs {self.depth + 1} peaks "
                             f"a_0 … a_{self.depth}, got {peaks.numel()}")
        c = self.margin
        if not bool(((peaks > c) & (peaks < 1 - c)).all()):
            raise ValueError(f"peaks must lie in ({c}, {1 - c}) (margin={c}), got "
                             f"{peaks.tolist()}; pass a smaller margin or move the peaks")
        if scale0 is None:
            scale0 = float(self.scales()[0])
        if not (math.isfinite(scale0) and scale0 > 0):
            raise ValueError(f"scale0 must be a positive number, got {scale0!r}")
        logits = torch.logit((peaks - c) / (1 - 2 * c))
        self.peak_logits.copy_(logits.to(self.peak_logits))
        s = eq5_scales(peaks, scale0, self.depth)
        self.log_scales.copy_(torch.log(s[: self.log_scales.numel()]).to(self.log_scales))
        return self

    def peaks(self) -> torch.Tensor:
        """Peaks a_0 … a_d, shape ``(d + 1,)``, each in (margin, 1 − margin)."""
        c = self.margin
        return c + (1 - 2 * c) * torch.sigmoid(self.peak_logits)

    def scales(self) -> torch.Tensor:
        """Scales s_0 … s_{d−1}, shape ``(d,)``: eq. 5 from s_0, or the free parameters."""
        if self.scale_mode == "free":
            return torch.exp(self.log_scales)
        return eq5_scales(self.peaks(), torch.exp(self.log_scales[0]), self.depth)

    # ---------------------------------------------------------------------------------------
    # The raw ReLU network
    # ---------------------------------------------------------------------------------------

    def raw_weights(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        r"""Weights and biases of the equivalent ReLU network, exactly as the spec writes them.

        Returns ``d + 1`` pairs ``(W, b)``: the input layer (4 × 1), ``d − 1`` hidden layers
        (4 × 4, zero bias) and the output layer (1 × 4, zero bias). Rows are output neurons
        (sum, t1, t2, bias); with :math:`S_{k+1} = s_{k+1}/s_k` and :math:`q_k = a_k − a_k^2`:

        .. math::
            W^{(k→k+1)} = \begin{pmatrix}
                1 & σ/a_k & −σ/q_k & 0 \\
                0 & S_{k+1}/a_k & −S_{k+1}/q_k & 0 \\
                0 & S_{k+1}/a_k & −S_{k+1}/q_k & −S_{k+1} a_{k+1} \\
                0 & 0 & 0 & S_{k+1}
            \end{pmatrix},

        input layer :math:`W = (1, s_0, s_0, 0)^T`, :math:`b = (0, 0, −s_0 a_0, s_0)`, output
        :math:`(1, σ/a_{d−1}, −σ/q_{d−1}, 0)`. Differentiable in the peaks and scales.
        """
        first_w, first_b, hidden, head_w = self._raw_tensors()
        zeros4 = torch.zeros(4, dtype=first_w.dtype, device=first_w.device)
        layers = [(first_w, first_b)] + [(w, zeros4) for w in hidden.unbind(0)]
        layers.append((head_w, torch.zeros(1, dtype=first_w.dtype, device=first_w.device)))
        return layers

    def _raw_tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        # Vectorized over layers: a few dozen tensor ops per forward pass whatever the depth.
        a = self.peaks()  # (d + 1,)
        s = self.scales()  # (d,)
        sigma = float(self.sign)
        zero, one = torch.zeros_like(a[0]), torch.ones_like(a[0])
        first_w = torch.stack([one, s[0], s[0], zero])[:, None]  # (4, 1)
        first_b = torch.stack([zero, zero, -s[0] * a[0], s[0]])  # (4,)
        ak = a[: self.depth - 1]  # a_0 … a_{d−2}, (d − 1,)
        ratio = s[1:] / s[:-1]  # S_{k+1}, (d − 1,)
        up, down = 1.0 / ak, -1.0 / (ak - ak**2)  # the two slopes of T_{a_k} per ReLU
        z, o = torch.zeros_like(ak), torch.ones_like(ak)
        hidden = torch.stack([
            o, sigma * up, sigma * down, z,
            z, ratio * up, ratio * down, z,
            z, ratio * up, ratio * down, -ratio * a[1: self.depth],
            z, z, z, ratio,
        ], dim=1).reshape(-1, 4, 4)  # (d − 1, 4, 4), rows = outputs (sum, t1, t2, bias)
        last = a[self.depth - 1]
        head_w = torch.stack([one, sigma / last, -sigma / (last - last**2), zero])[None, :]
        return first_w, first_b, hidden, head_w

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Map inputs from ``domain`` onto [0, 1] (identity without a domain)."""
        if self.domain is None:
            return x
        return (x - self._lower) / (self._upper - self._lower)

    def hidden_preactivations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Pre-activations ``(N, 4)`` of every hidden layer of the raw network (sum, t1, t2,
        bias)."""
        as_2d_inputs("x", x, 1)
        *hidden, _ = self.raw_weights()
        h = self.normalize(x)
        out = []
        for w, b in hidden:
            z = h @ w.T + b  # (N, 4)
            out.append(z)
            h = torch.relu(z)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[-1] != 1:
            as_2d_inputs("x", x, 1)  # raises with the full message
        first_w, first_b, hidden, head_w = self._raw_tensors()
        z = self.normalize(x) @ first_w.T + first_b  # (N, 4)
        lows = [z[:, :2].detach().amin()]  # sum and t1 must stay ≥ 0 (t2 is meant to clip)
        h = torch.relu(z)
        for w in hidden.unbind(0):
            z = h @ w.T  # (N, 4); hidden layers have no ordinary bias
            lows.append(z[:, :2].detach().amin())
            h = torch.relu(z)
        lows = torch.stack(lows)
        layer = int(torch.argmin(lows))
        self._report(float(lows[layer]), layer)
        return h @ head_w.T  # (N, 1)

    def _report(self, low: float, layer: int) -> None:
        self.last_violation_ = min(low, 0.0)
        if low >= -self.violation_tol or self.on_violation == "ignore":
            return
        message = (
            f"compositional network: a pre-activation of the 'sum' or 't1' neuron in hidden "
            f"layer {layer + 1} is {low:.3g} < 0, so the ReLU clips it and the network no longer "
            f"equals x + σ Σ s_i W_i(x) (eq. 3). With sign=-1 this means the waves outweigh the "
            f"line (lower the amplitude s_0); otherwise an input lies outside the domain."
        )
        if self.on_violation == "raise":
            raise ConstructionViolationError(message)
        # 5: _report ← forward ← Module._call_impl ← Module._wrapped_call_impl ← caller
        warnings.warn(message, ConstructionViolationWarning, stacklevel=5)

    # ---------------------------------------------------------------------------------------
    # The construction in closed form, and the equivalent plain network
    # ---------------------------------------------------------------------------------------

    def waves(self, x: torch.Tensor) -> torch.Tensor:
        """The waves W_0(x) … W_{d−1}(x) of eq. 2, shape ``(N, d)``, by composing triangles."""
        as_2d_inputs("x", x, 1)
        u = self.normalize(x)[:, 0]  # (N,)
        a = self.peaks()
        out = []
        for k in range(self.depth):
            u = triangle(u, a[k])
            out.append(u)
        return torch.stack(out, dim=1)

    def partial_sums(self, x: torch.Tensor) -> torch.Tensor:
        r"""What the ``sum`` neuron of hidden layer k should carry: x + σ Σ_{j<k} s_j W_j(x).

        Shape ``(N, d)``; column 0 is x itself (after the domain map). The raw network equals
        eq. 3 at x exactly when every entry is ≥ 0 and x lies in the domain.
        """
        terms = self.sign * self.scales() * self.waves(x)  # (N, d)
        u = self.normalize(x)  # (N, 1)
        return u + torch.cumsum(terms, dim=1) - terms

    def construction(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 3 evaluated directly, :math:`x + σ Σ_i s_i W_i(x)`, shape ``(N, 1)`` (no ReLU)."""
        u = self.normalize(x)
        return u + self.sign * (self.scales() * self.waves(x)).sum(dim=1, keepdim=True)

    @torch.no_grad()
    def breakpoints(self) -> torch.Tensor:
        """The 2^d − 1 interior bends of eq. 3 on the domain, sorted, in closed form.

        Bends of W_k are those of W_{k−1} plus, on each piece of W_{k−1} (which runs linearly
        between 0 and 1), the point where W_{k−1} = a_k. Returned in the input coordinates
        (``domain`` applied), float64.
        """
        a = self.peaks().detach().to(torch.float64).cpu()
        knots = torch.tensor([0.0, 1.0], dtype=torch.float64)
        values = torch.tensor([0.0, 1.0], dtype=torch.float64)  # W_{-1} = x at the knots
        for k in range(self.depth):
            left, right = values[:-1], values[1:]
            t = (a[k] - left) / (right - left)  # where the piece crosses a_k
            new = knots[:-1] + t * (knots[1:] - knots[:-1])
            merged = torch.empty(2 * knots.numel() - 1, dtype=torch.float64)
            merged[0::2], merged[1::2] = knots, new
            # T_{a_k} maps 0 → 0, a_k → 1, 1 → 0.
            new_values = torch.empty_like(merged)
            new_values[0::2] = 0.0
            new_values[1::2] = 1.0
            knots, values = merged, new_values
        interior = knots[1:-1]
        if self.domain is not None:
            lower, upper = self.domain
            interior = lower + (upper - lower) * interior
        return interior

    @torch.no_grad()
    def to_mlp(self) -> MLP:
        """A plain :class:`~deepbasis.MLP` ``(1, 4, d)`` with the raw weights of
        :meth:`raw_weights`.

        Same dtype, device and ``domain``; an independent copy (training it leaves this network
        unchanged). It equals eq. 3 wherever the construction holds (see ``partial_sums``).
        """
        weights = self.raw_weights()
        mlp = MLP(1, 4, self.depth, domain=self.domain, dtype=self.peak_logits.dtype,
                  device=self.peak_logits.device)
        for layer, (w, b) in zip([*mlp.layers, mlp.head], weights, strict=True):
            layer.weight.copy_(w)
            layer.bias.copy_(b)
        return mlp

    def extra_repr(self) -> str:
        return (f"depth={self.depth}, sign={self.sign:+d}, scales={self.scale_mode!r}, "
                f"margin={self.margin}, domain={self.domain}, on_violation={self.on_violation!r}")
