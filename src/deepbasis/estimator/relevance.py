r"""Which inputs matter: relevance of each input of a fitted network, and an input box that
spends the basis on the relevant ones.

The relevance of input j is the root mean square, over the training rows, of the fitted
function's derivative along input j measured in the unit box (x_j's training range mapped onto
[0, 1], so it is the derivative times the input's range), summed over the standardized outputs:

.. math:: r_j = \Bigl(\frac{1}{N} \sum_i \sum_k \Bigl(\frac{∂ f_k}{∂ u_j}(x_i)\Bigr)^2\Bigr)^{1/2},
    \qquad u_j = \frac{x_j − \text{lower}_j}{\text{upper}_j − \text{lower}_j}.

An input the target does not depend on gets a derivative near 0 (what the network fitted of the
noise), an input it depends on strongly one of the order of the target's spread. Box
initialization spreads the basis over the unit box evenly in every input (Cyr et al. 2020, §4);
:func:`relevance_box` shrinks the unit-box coordinate of input j to [0, s_j], s_j = r_j / max r,
so a fresh basis varies mostly along the relevant inputs (what an ARD kernel's length scales do
for a Gaussian process). Whether that basis is kept is decided on held-out rows
(:mod:`deepbasis.estimator.selection`): only if it is clearly better there.
"""

from __future__ import annotations

import numpy as np
import torch

from ..nn.mlp import MLP

#: an input whose relevance is below this share of the largest counts as (nearly) irrelevant,
#: and only then is a basis on the rescaled box tried
UNEVEN = 0.25
#: s_j = (r_j / max r) ** power, for each power here (a candidate each). Measured
#: (bench_estimator.py, 3 splits): the square sharpens the contrast on Friedman 1 (0.086 against
#: 0.094 with noise at 600 rows, 3.6e-4 against 5.2e-4 noise-free at 1,500) but squeezes weakly
#: relevant inputs that matter to ~1e-2 of the box (damped pendulum: 1.0e-2 against 3.2e-3 on
#: one split; Friedman 2: 2.3e-3 against 1.1e-3); neither power wins everywhere
POWERS = (1.0, 2.0)
#: the smallest scale s_j of the rescaled box: an input is shrunk, never removed, so a network
#: can still use it (its first-layer weights grow by 1/s_j)
_FLOOR = 1e-2


def input_relevance(model: MLP, x: torch.Tensor, lower: np.ndarray, upper: np.ndarray
                    ) -> np.ndarray:
    """Relevance r ``(d,)`` of each input of ``model`` at rows ``x`` ``(N, d)`` (module
    docstring): the unit box maps the data box [lower, upper] onto [0, 1]^d."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = model(x)  # (N, m)
        squares = torch.zeros_like(x)
        for k in range(out.shape[1]):
            (grad,) = torch.autograd.grad(out[:, k].sum(), x, retain_graph=k + 1 < out.shape[1])
            squares = squares + grad.detach() ** 2  # (N, d)
    rms = torch.sqrt(squares.mean(dim=0)).to("cpu", torch.float64).numpy()
    return rms * (upper - lower)  # d f / d u_j = d f / d x_j · (upper − lower)


def importances(relevance: np.ndarray) -> np.ndarray:
    """Relevance normalized to sum to 1 (scikit-learn's ``feature_importances_``); all zeros
    for a function that depends on no input (a constant)."""
    total = float(relevance.sum())
    if not np.isfinite(total) or total <= 0:
        return np.zeros_like(relevance)
    return relevance / total


def relevance_box(lower: np.ndarray, upper: np.ndarray, relevance: np.ndarray,
                  power: float = 1.0) -> tuple[np.ndarray, np.ndarray] | None:
    """The input box that maps input j's training range onto [0, s_j] (s_j = (r_j / max r) **
    ``power``, at least ``_FLOOR``), or None when every input is relevant (all r_j / max r ≥
    ``UNEVEN``) or the relevance is not usable (not finite, all zero)."""
    top = float(relevance.max()) if relevance.size else 0.0
    if relevance.size < 2 or not np.isfinite(relevance).all() or top <= 0:
        return None
    share = relevance / top
    if share.min() >= UNEVEN:
        return None
    scale = np.maximum(share**power, _FLOOR)
    return lower, lower + (upper - lower) / scale
