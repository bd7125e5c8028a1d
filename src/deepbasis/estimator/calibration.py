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
    val = torch.zeros(n, dtype=torch.bool, device=features.device) \
        if validation_mask is None else torch.as_tensor(validation_mask, device=features.device)
    errors, (residual, rows, dof) = _held_out_errors(features, z, weights, val, head)
    nu_train = (rows - dof).clamp_min(1.0)
    train_variance = residual / nu_train
    if validation_mask is None:
        return train_variance, nu_train
    n_val = float(weights[val].sum())
    val_variance = weights[val] @ errors / n_val  # (m,)
    ratio = (val_variance / train_variance).to("cpu", torch.float64).numpy()
    p = scipy_f.sf(ratio, n_val, nu_train.to("cpu", torch.float64).numpy())  # (m,)
    overfit = torch.as_tensor(p < _POOL_LEVEL, device=features.device)
    pooled = (n_val * val_variance + nu_train * train_variance) / (n_val + nu_train)
    variance = torch.where(overfit, val_variance, pooled)
    nu = torch.where(overfit, torch.full_like(nu_train, n_val), n_val + nu_train)
    return variance, nu


def _held_out_errors(features: torch.Tensor, z, weights, held: torch.Tensor, head: str):
    """The head solved on the design rows ``features`` outside ``held`` (weights ``weights``),
    and each held-out row's squared error divided by its predictive factor 1 + h_i, h_i =
    a_iᵀ (AᵀWA + λI)⁻¹ a_i: ``(n_held, m)``; with the solve's residual ‖Aθ − b‖² ``(m,)``, its
    number of rows Σ w and its effective degrees of freedom tr H ``(m,)``."""
    A, b, rows = weigh_rows(features[~held], z[~held], weights[~held])
    theta, _, dof, Vh, inverse = ridge_posterior(A, b, rows, head)
    a = features[held]  # (n_held, k)
    leverage = ((a @ Vh.mT) ** 2) @ inverse  # (n_held, m)
    errors = (z[held] - a @ theta) ** 2 / (1.0 + leverage)
    return errors, (((A @ theta - b) ** 2).sum(dim=0), rows, dof)


@torch.no_grad()
def folds_noise_variance(features: torch.Tensor, held_out: list[np.ndarray], z, w, head: str
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """The noise variance σ² ``(m,)`` and its degrees of freedom ν of a mean of K networks
    whose ``features`` ``(N, K·w)`` are theirs side by side (:func:`deepbasis.nn.mlp.
    mean_network`), network k having never seen the rows ``held_out[k]`` ``(N,)`` (the folds of
    a K-fold split, every row in one): network k's head solved on its other rows predicts each
    of its held-out rows i with error e_i of variance σ² (1 + h_i) (see :func:`noise_variance`),
    so σ² = mean(e_i² / (1 + h_i)) over every row, on ν = N rows instead of one fold's."""
    weights = torch.ones(len(features), dtype=features.dtype, device=features.device) \
        if w is None else w.to(features.dtype)
    z = z.to(features.dtype)
    total, count = None, 0.0
    for block, held in zip(features.chunk(len(held_out), dim=1), held_out, strict=True):
        held = torch.as_tensor(held, device=features.device)
        errors, _ = _held_out_errors(design_matrix(block), z, weights, held, head)
        part = weights[held] @ errors  # (m,)
        total = part if total is None else total + part
        count += float(weights[held].sum())
    return total / count, torch.full_like(total, count)


@torch.no_grad()
def posterior(model: MLP, x, z, w, head: str, scale: np.ndarray, validation_mask,
              held_out: list[np.ndarray] | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(noise_std, head_ridge, head_covariance)`` of the fitted (standardized) ``model``
    on rows (x, z, w), in units of y (``scale``): see ``BasisRegressor.predict``. Where
    ``model`` is the mean of K networks that each never saw one fold of the rows
    (``held_out``: the K folds' masks), the noise comes from every row's error when held out
    (:func:`folds_noise_variance`)."""
    phi = model.features(x)  # (N, w): one forward pass for all of it
    features = design_matrix(phi)  # (N, w + 1)
    A, b, rows = weigh_rows(features, z, w)
    _, ridge, _, Vh, inverse = ridge_posterior(A, b, rows, head)  # every row's head
    if held_out:
        noise, dof = folds_noise_variance(phi, held_out, z, w, head)
    else:
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


def log_evidence(A: np.ndarray, b: np.ndarray, iterations: int = 100) -> float:
    r"""Log marginal likelihood of targets ``b`` ``(N,)`` under the Bayesian last layer on
    design rows ``A`` ``(N, k)``: θ ~ N(0, α⁻¹ I), b | θ ~ N(Aθ, β⁻¹ I), with α and β at
    MacKay's fixed point (MacKay 1992, "Bayesian interpolation", eqs. 4.9-4.10):

    .. math:: \log p(b) = \tfrac{k}{2}\log α + \tfrac{N}{2}\log β − \tfrac{β}{2}‖b − Aθ‖^2
        − \tfrac{α}{2}‖θ‖^2 − \tfrac12 \log|αI + βA^TA| − \tfrac{N}{2}\log 2π.

    It judges the basis Φ as fixed: for a basis trained on the same rows it is optimistic, which
    is why ``BasisRegressor`` does not choose by it (``bench_estimator.py --suite criteria``)."""
    A, b = np.asarray(A, dtype=np.float64), np.asarray(b, dtype=np.float64)
    N, k = A.shape
    U, S, Vt = np.linalg.svd(A, full_matrices=False)
    kept = S > np.finfo(np.float64).eps * max(A.shape) * S[0]
    s2, c = S[kept] ** 2, U[:, kept].T @ b  # (r,), (r,): b's coordinates in A's range
    outside = float(b @ b - c @ c)  # ‖b‖² beyond the range of A: a residual at any θ
    alpha, beta = 1.0, 1.0 / max(float(np.var(b)), 1e-300)
    for _ in range(iterations):
        shrink = beta * s2 / (alpha + beta * s2)  # (r,)
        gamma = float(shrink.sum())  # the well-determined parameters
        coef = shrink * c / np.sqrt(s2)  # θ in V's coordinates: β s c / (α + β s²)
        misfit = float(((1 - shrink) ** 2 * c**2).sum()) + max(outside, 0.0)
        norm = float((coef**2).sum())
        new_alpha = gamma / max(norm, 1e-300)
        new_beta = (N - gamma) / max(misfit, 1e-300)
        if abs(new_alpha - alpha) <= 1e-10 * alpha and abs(new_beta - beta) <= 1e-10 * beta:
            alpha, beta = new_alpha, new_beta
            break
        alpha, beta = new_alpha, new_beta
    shrink = beta * s2 / (alpha + beta * s2)
    coef = shrink * c / np.sqrt(s2)
    misfit = float(((1 - shrink) ** 2 * c**2).sum()) + max(outside, 0.0)
    log_det = float(np.log(alpha + beta * s2).sum()) + (k - len(s2)) * np.log(alpha)
    return float(k / 2 * np.log(alpha) + N / 2 * np.log(beta) - beta / 2 * misfit
                 - alpha / 2 * float((coef**2).sum()) - log_det / 2 - N / 2 * np.log(2 * np.pi))
