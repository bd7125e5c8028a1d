r"""The predictive uncertainty of ``BasisRegressor``: noise level and the head's posterior.

The Bayesian view of the last layer (the basis Φ fixed, the head's Gaussian posterior under its
ridge prior: Bayesian linear regression on the network's last-layer features, MacKay 1992; Snoek
et al. 2015, "DNGO") gives the predictive variance of a new observation at x,

.. math:: \operatorname{std}(x)^2 = σ^2 + a(x)^T C\, a(x),
    \qquad C = σ^2 (A^T W A + λ I)^{-1}, \quad a(x) = [Φ(x), 1],

with λ the head's GCV ridge. :func:`noise_variance` estimates σ² (held-out rows, pooled with
the training rows' GCV residual when an F test allows), :func:`posterior` assembles what
``predict(return_std=True)`` needs.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import f as scipy_f

from ..nn.mlp import MLP
from ..train.lstsq import design_matrix, gcv_lstsq
from .head import weigh_rows

_POOL_LEVEL = 0.05  # one-sided F test: held-out rows this improbably worse ⇒ training rows overfit


def ridge_posterior(A: torch.Tensor, b: torch.Tensor, rows: float, head: str):
    """The head on rows (A, b) and what its posterior needs: coefficients θ ``(k, m)``, the
    ridge λ ``(m,)``, the effective degrees of freedom tr H ``(m,)`` and the SVD factors
    (V, 1 / (s² + λ)) of (AᵀA + λI)⁻¹."""
    result = gcv_lstsq(A, b, rows=rows)
    ridge = result.ridge if head == "gcv" else torch.zeros_like(result.ridge)  # (m,)
    _, S, Vh = torch.linalg.svd(A, full_matrices=False)  # (k,), (k, w + 1)
    kept = S > torch.finfo(A.dtype).eps * max(A.shape) * S[:1]
    s2 = torch.where(kept, S * S, torch.zeros_like(S))[:, None]  # (k, 1)
    inverse = torch.where(kept[:, None], 1.0 / (s2 + ridge[None, :]), torch.zeros_like(s2))
    inverse = inverse.nan_to_num(0.0, posinf=0.0)  # (k, m)
    dof = (s2 * inverse).sum(dim=0)  # (m,): Σ s² / (s² + λ) = tr H
    theta = Vh.mT @ (inverse * (Vh @ (A.mT @ b.to(A.dtype))))  # (AᵀA + λI)⁻¹ Aᵀ b
    return theta, ridge, dof, Vh, inverse


@torch.no_grad()
def noise_variance(features: torch.Tensor, z, w, head: str, validation_mask
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The noise variance σ² of each output (standardized units) and its residual degrees of
    freedom ν, both ``(m,)``.

    Held-out rows: the head solved on the training rows predicts each held-out row i with
    error e_i, whose variance under the head's posterior is σ² (1 + h_i), h_i = a_iᵀ (AᵀA +
    λI)⁻¹ a_i; so σ²_val = mean(e_i² / (1 + h_i)), unbiased whatever the hidden layers learnt
    from the training rows, but on few rows (ν = n_val, ~40 of 200: ±11 % in σ). The training
    rows give GCV's σ²_train = ‖r‖² / (N_train − tr H) on many more rows, unbiased only if the
    hidden layers have not fitted their noise. A one-sided F test of σ²_val / σ²_train decides:
    held-out rows significantly worse (the training rows are overfit) ⇒ σ²_val alone; else
    both pooled by their degrees of freedom. Without held-out rows: GCV on every row.
    """
    n = features.shape[0]  # features: the design rows [Φ(x), 1], (N, k)
    weights = torch.ones(n, dtype=features.dtype, device=features.device) if w is None \
        else w.to(features.dtype)
    z = z.to(features.dtype)
    train = torch.ones(n, dtype=torch.bool, device=features.device) \
        if validation_mask is None else ~torch.as_tensor(validation_mask, device=features.device)
    A, b, rows = weigh_rows(features[train], z[train], weights[train])
    theta, _, dof, Vh, inverse = ridge_posterior(A, b, rows, head)
    residual = ((A @ theta - b) ** 2).sum(dim=0)  # (m,)
    nu_train = (rows - dof).clamp_min(1.0)
    train_variance = residual / nu_train
    if validation_mask is None:
        return train_variance, nu_train
    val = ~train
    a = features[val]  # (n_val, k)
    leverage = ((a @ Vh.mT) ** 2) @ inverse  # (n_val, m): a_iᵀ (AᵀA + λI)⁻¹ a_i
    errors = (z[val] - a @ theta) ** 2 / (1.0 + leverage)  # (n_val, m)
    n_val = float(weights[val].sum())
    val_variance = weights[val] @ errors / n_val  # (m,)
    ratio = (val_variance / train_variance).to("cpu", torch.float64).numpy()
    p = scipy_f.sf(ratio, n_val, nu_train.to("cpu", torch.float64).numpy())  # (m,)
    overfit = torch.as_tensor(p < _POOL_LEVEL, device=features.device)
    pooled = (n_val * val_variance + nu_train * train_variance) / (n_val + nu_train)
    variance = torch.where(overfit, val_variance, pooled)
    nu = torch.where(overfit, torch.full_like(nu_train, n_val), n_val + nu_train)
    return variance, nu


@torch.no_grad()
def posterior(model: MLP, x, z, w, head: str, scale: np.ndarray, validation_mask
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(noise_std, head_ridge, head_covariance)`` of the fitted (standardized) ``model``
    on rows (x, z, w), in units of y (``scale``): see ``BasisRegressor.predict``."""
    features = design_matrix(model.features(x))  # (N, w + 1): one forward pass for both
    A, b, rows = weigh_rows(features, z, w)
    _, ridge, _, Vh, inverse = ridge_posterior(A, b, rows, head)  # every row's head
    noise, dof = noise_variance(features, z, w, head, validation_mask)  # (m,) (m,)
    # σ is estimated from ν residual degrees of freedom: the predictive distribution is then
    # Student-t with ν degrees of freedom (σ² with the noninformative prior), whose variance
    # is ν / (ν − 2) times the plug-in one; both terms below carry that factor.
    noise = noise * dof / (dof - 2).clamp_min(1.0)
    units = torch.as_tensor(scale, dtype=A.dtype, device=A.device)  # (m,)
    cov = torch.einsum("kw,km,kv->mwv", Vh, inverse, Vh)  # (m, w + 1, w + 1)
    cov = cov * (noise * units**2)[:, None, None]
    covariance = cov.to("cpu", torch.float64).numpy()
    if z.shape[1] and not np.isfinite(covariance).all():
        covariance = np.where(np.isfinite(covariance), covariance, 0.0)
    return ((noise.sqrt() * units).to("cpu", torch.float64).numpy(),
            ridge.to("cpu", torch.float64).numpy(), covariance)
