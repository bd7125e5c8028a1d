"""Least-squares solvers for the linear head: minimum-norm SVD, QR, ridge; batched.

``torch.linalg.lstsq`` is not enough: on CUDA it only offers the 'gels' driver, which assumes
full rank, while rank-deficient feature matrices are normal here (He initialization with zero
biases on [0, 1] gives a rank-2 basis). The SVD solver below is minimum-norm on every device.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .._checks import as_2d_inputs, as_2d_targets, check_choice, check_finite

METHODS = ("svd", "qr", "ridge")


class LstsqResult(NamedTuple):
    """``solution`` (..., w, m) and ``residual`` (..., m): the sum of squared residuals of
    each right-hand side column, ‖A X − B‖² column by column."""

    solution: torch.Tensor
    residual: torch.Tensor


def lstsq(
    A: torch.Tensor,
    B: torch.Tensor,
    method: str = "svd",
    rcond: float | None = None,
    ridge: float = 0.0,
) -> LstsqResult:
    r"""Solve :math:`\min_X \|A X − B\|_F` (plus :math:`\text{ridge}\,\|X\|_F^2` for ridge).

    Args:
        A: ``(..., N, w)`` matrices; leading dimensions are batch dimensions.
        B: ``(..., N, m)`` or ``(..., N)`` right-hand sides (batch dimensions broadcast).
        method:
            - ``"svd"`` (default): minimum-norm solution :math:`A^+ B` through the SVD. Singular
              values below ``rcond · σ_max`` are treated as zero; ``rcond`` defaults to
              ``eps · max(N, w)`` (NumPy's and LAPACK's convention).
            - ``"qr"``: Householder QR, faster for tall full-rank ``A``. When ``R``'s diagonal
              shows rank deficiency (below the same cutoff) it falls back to the SVD so the
              minimum-norm solution is still returned.
            - ``"ridge"``: :math:`(A^T A + \text{ridge}\, I)^{-1} A^T B` by Cholesky;
              ``ridge > 0`` is required.
        rcond: relative cutoff for small singular values (svd, qr).
        ridge: Tikhonov parameter for ``method="ridge"``.

    Returns:
        :class:`LstsqResult` with ``solution`` ``(..., w, m)`` (``(..., w)`` when ``B`` was
        ``(..., N)``) and ``residual``.

    Examples:
        >>> A = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
        >>> lstsq(A, torch.ones(3, dtype=torch.float64)).solution  # min-norm of a rank-1 system
        tensor([0.5000, 0.5000], dtype=torch.float64)
    """
    check_choice("method", method, METHODS)
    if A.ndim < 2:
        raise ValueError(f"A must have shape (..., N, w), got {tuple(A.shape)}")
    vector = B.ndim == A.ndim - 1
    if vector:
        B = B.unsqueeze(-1)
    if B.ndim < 2 or B.shape[-2] != A.shape[-2]:
        raise ValueError(
            f"B must have shape (..., N, m) or (..., N) with N = {A.shape[-2]} rows like A, "
            f"got {tuple(B.shape) if not vector else tuple(B.shape[:-1])}"
        )
    if not A.is_floating_point():
        raise TypeError(f"A must be a floating-point tensor, got {A.dtype}")
    B = B.to(A.dtype)
    n, w = A.shape[-2], A.shape[-1]
    if rcond is None:
        rcond = torch.finfo(A.dtype).eps * max(n, w)
    if rcond < 0:
        raise ValueError(f"rcond must be non-negative, got {rcond}")
    if method == "svd":
        X = _svd_solve(A, B, rcond)
    elif method == "qr":
        X = _qr_solve(A, B, rcond)
    else:
        if not ridge > 0:
            raise ValueError(f"method='ridge' needs ridge > 0, got ridge={ridge}")
        X = _ridge_solve(A, B, ridge)
    residual = ((A @ X - B) ** 2).sum(dim=-2)  # (..., m)
    if vector:
        X = X.squeeze(-1)
    return LstsqResult(X, residual)


def _svd_solve(A: torch.Tensor, B: torch.Tensor, rcond: float) -> torch.Tensor:
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)  # (..., N, k), (..., k), (..., k, w)
    cutoff = rcond * S[..., :1]  # relative to the largest singular value of each matrix
    inverse = torch.where(S > cutoff, 1.0 / S, torch.zeros_like(S))  # pseudo-inverse of Σ
    return Vh.mT @ (inverse.unsqueeze(-1) * (U.mT @ B))  # (..., w, m)


def _qr_solve(A: torch.Tensor, B: torch.Tensor, rcond: float) -> torch.Tensor:
    n, w = A.shape[-2], A.shape[-1]
    if n < w:
        return _svd_solve(A, B, rcond)
    Q, R = torch.linalg.qr(A, mode="reduced")  # (..., N, w), (..., w, w)
    diag = torch.diagonal(R, dim1=-2, dim2=-1).abs()
    # Without pivoting |R_ii| is not the singular value, but a tiny diagonal entry relative to
    # the largest is a reliable sign of rank deficiency; the SVD then gives the min-norm answer.
    if bool((diag <= rcond * diag.amax(dim=-1, keepdim=True)).any()):
        return _svd_solve(A, B, rcond)
    return torch.linalg.solve_triangular(R, Q.mT @ B, upper=True)


def _ridge_solve(A: torch.Tensor, B: torch.Tensor, ridge: float) -> torch.Tensor:
    w = A.shape[-1]
    gram = A.mT @ A + ridge * torch.eye(w, dtype=A.dtype, device=A.device)
    factor = torch.linalg.cholesky(gram)
    return torch.cholesky_solve(A.mT @ B, factor)


def design_matrix(features: torch.Tensor, bias: bool = True) -> torch.Tensor:
    """Append a column of ones to ``features`` (..., N, w) → (..., N, w + 1) for the head bias."""
    if not bias:
        return features
    ones = torch.ones(*features.shape[:-1], 1, dtype=features.dtype, device=features.device)
    return torch.cat([features, ones], dim=-1)


@torch.no_grad()
def set_head_(head: nn.Linear, solution: torch.Tensor) -> nn.Linear:
    """Write a least-squares solution ``(w [+ 1], m)`` into ``head``'s weight (and bias)."""
    w = head.in_features
    head.weight.copy_(solution[:w].mT.to(head.weight.dtype))
    if head.bias is not None:
        head.bias.copy_(solution[w].to(head.bias.dtype))
    return head


@torch.no_grad()
def fit_head_(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    method: str = "svd",
    rcond: float | None = None,
    ridge: float = 0.0,
) -> nn.Module:
    """Solve for the head's weight and bias by least squares, in place (eq. 7).

    Minimizes the mean squared error of ``model(x)`` against ``y`` over the head only, with the
    hidden layers (the basis Φ) fixed. Works for any basis network: ``features(x)`` + ``head``.

    Args:
        model: a basis network.
        x: inputs ``(N, d)``.
        y: targets ``(N,)`` or ``(N, m)``.
        method, rcond, ridge: passed to :func:`lstsq`.

    Returns:
        ``model``, with its head replaced by the least-squares solution.
    """
    head = _head_of(model)
    x = as_2d_inputs("x", x, _in_features(model, x))
    y = as_2d_targets("y", y, x.shape[0], head.out_features)
    phi = check_finite("features(x)", model.features(x))
    A = design_matrix(phi, bias=head.bias is not None)
    solution = lstsq(A, y.to(A.dtype), method=method, rcond=rcond, ridge=ridge).solution
    set_head_(head, solution)
    return model


def _head_of(model: nn.Module) -> nn.Linear:
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear) or not callable(getattr(model, "features", None)):
        raise TypeError(
            f"{type(model).__name__} is not a basis network: it needs a features(x) method and a "
            "`head` nn.Linear (see deepbasis.MLP)"
        )
    return head


def _in_features(model: nn.Module, x: torch.Tensor) -> int:
    return int(getattr(model, "in_features", x.shape[-1] if x.ndim == 2 else 1))
