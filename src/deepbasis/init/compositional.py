"""Random starting peaks for :class:`~deepbasis.nn.CompositionalNet` (Milkert et al., §4.1).

The paper draws a common set of starting peaks that the three compositional variants share
(spec, "Two-stage training", step 1) but does not say from which distribution; ours is a choice,
stated in :func:`compositional_peaks_`.
"""

from __future__ import annotations

import torch

from .._checks import GeneratorLike, as_generator
from ..nn.compositional import CompositionalNet


@torch.no_grad()
def compositional_peaks_(
    model: CompositionalNet,
    low: float = 0.3,
    high: float = 0.7,
    *,
    scale0: float = 0.25,
    generator: GeneratorLike = None,
) -> CompositionalNet:
    r"""Draw the peaks a_0 … a_d of ``model`` i.i.d. from U(low, high) and set s_0, in place.

    **Our choice** (the paper states none): U(0.3, 0.7) keeps every triangle slope below
    1/0.3 and every linear piece of the depth-d wave at least 0.3^d wide, so the 2^d pieces are
    resolvable in float64 up to d ≈ 25. Scales follow eq. 5 from ``scale0`` (free scales start
    at the same values).

    For ``sign = -1`` the amplitude is then lowered, if needed, to the largest value for which
    :math:`F = x − Σ s_i W_i ≥ 0` on the whole domain (checked exactly at the bends): every
    partial sum carried by the ``sum`` neuron is ≥ F, so the raw network equals the
    construction at initialization (no ReLU clips it). All scales are multiplied by
    :math:`λ = \min(1, \min_j x_j / (x_j − F(x_j)))` over the bends x_j.

    Args:
        model: a :class:`~deepbasis.nn.CompositionalNet`.
        low, high: range of the peaks, inside (margin, 1 − margin) of the model.
        scale0: the amplitude s_0 before the non-negativity cap.
        generator: ``torch.Generator`` or int seed for every draw.

    Examples:
        >>> from deepbasis.nn import CompositionalNet
        >>> net = compositional_peaks_(CompositionalNet(5), generator=0)
    """
    if not isinstance(model, CompositionalNet):
        raise TypeError(f"compositional_peaks_ needs a CompositionalNet, got "
                        f"{type(model).__name__}")
    c = model.margin
    if not c < low < high < 1 - c:
        raise ValueError(f"need margin < low < high < 1 - margin = {1 - c}, got low={low}, "
                         f"high={high} (margin={c})")
    gen = as_generator(generator)
    peaks = low + (high - low) * torch.rand(model.depth + 1, generator=gen, dtype=torch.float64)
    model.set_peaks_(peaks, scale0)
    if model.sign < 0:
        lam = _nonnegative_factor(model)
        if lam < 1.0:
            model.log_scales.add_(torch.log(torch.tensor(lam, dtype=torch.float64)).item())
    return model


def _nonnegative_factor(model: CompositionalNet) -> float:
    """Largest λ ≤ 1 with x − λ Σ s_i W_i(x) ≥ 0 at every bend (F is linear between bends)."""
    x = model.breakpoints().to(model.peak_logits)[:, None]  # (2^d − 1, 1) bends
    u = model.normalize(x)
    waves = (model.scales() * model.waves(x)).sum(dim=1, keepdim=True)  # Σ s_i W_i ≥ 0
    ratio = torch.where(waves > 0, u / waves, torch.full_like(u, float("inf")))
    return float(min(1.0, ratio.min().item()))
