"""Least-squares solvers for the linear head: minimum-norm SVD, QR, ridge, GCV ridge; batched.

:func:`lstsq` is the general solver; :func:`solve_head` is the one :func:`deepbasis.fit` calls
every LSGD iteration (the minimum-norm SVD solution, cheaper on ReLU bases; or, with
``method="gcv"``, :func:`gcv_lstsq`'s Tikhonov solution with λ chosen by generalized
cross-validation); :func:`fit_head_` and :func:`set_head_` put a solution into a network's head.

``torch.linalg.lstsq`` is not enough: on CUDA it only offers the 'gels' driver, which assumes
full rank, while rank-deficient feature matrices are normal here (He initialization with zero
biases on [0, 1] gives a rank-2 basis). The SVD solver below is minimum-norm on every device.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .._checks import as_2d_inputs, as_2d_targets, check_choice, check_finite

METHODS = ("svd", "qr", "ridge")
HEAD_METHODS = ("auto", *METHODS, "gcv")  # solve_head's (and fit's lstsq_method)
_COMPACT_MIN_COLUMNS = 48  # below this, dropping zero columns costs more than it saves


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

class GCVResult(NamedTuple):
    """What :func:`gcv_lstsq` chose, per right-hand side column (batch dimensions first).

    ``solution`` (..., w, m): the Tikhonov solution for the chosen λ; ``ridge`` (..., m): λ;
    ``dof`` (..., m): the effective number of parameters tr H(λ) = Σ σ²/(σ² + λ);
    ``residual`` (..., m): ‖Aθ − b‖²; ``rows``: the N the criterion used.
    """

    solution: torch.Tensor
    ridge: torch.Tensor
    dof: torch.Tensor
    residual: torch.Tensor
    rows: float

    def noise_variance(self) -> torch.Tensor:
        """σ̂² = ‖Aθ − b‖² / (N − tr H), the noise estimate of GCV (Wahba 1990, eq. 4.5.3),
        in the units of the rows of A and b (..., m)."""
        return self.residual / (self.rows - self.dof).clamp_min(1.0)


# λ / σ_max² tried by gcv_lstsq: 0 and 10^-30 … 10^4 every decade, then a finer grid (a tenth
# of a decade, ± one decade) around the best. σ² ≪ λ filters a direction out, σ² ≫ λ keeps it;
# singular values span eps·σ_max … σ_max, so λ below eps²·σ_max² is λ = 0 in floating point.
_GCV_COARSE = np.concatenate([[0.0], 10.0 ** np.arange(-30.0, 4.01, 1.0)])
_GCV_FINE = 10.0 ** np.arange(-1.0, 1.001, 0.1)


def gcv_lstsq(A: torch.Tensor, b: torch.Tensor, rcond: float | None = None,
              rows: float | None = None) -> GCVResult:
    r"""Tikhonov least squares :math:`\min_θ \|Aθ − b\|^2 + λ\|θ\|^2`, λ chosen by GCV.

    Generalized cross-validation (Golub, Heath & Wahba 1979) picks, for each column of b, the λ
    minimizing

    .. math:: G(λ) = \frac{N \, \|(I − H_λ) b\|^2}{(N − \operatorname{tr} H_λ)^2},
        \qquad H_λ = A (A^T A + λ I)^{-1} A^T,

    a rotation-invariant approximation of leave-one-out cross-validation. From one thin SVD
    A = U Σ Vᵀ (for tall A through a QR factorization, A = Q R, R = U_R Σ Vᵀ) and c = Uᵀ b,
    every λ costs O(k m) (k = min(N, w)):
    tr H = Σ f_i and ‖(I − H) b‖² = ‖b − U c‖² + Σ (1 − f_i)² c_i² with filter factors
    f_i = σ_i² / (σ_i² + λ) — so scanning a grid of λ (0, and 10⁻³⁰ … 10⁴ · σ_max² every
    decade, refined to a tenth of a decade) costs no more than the SVD itself. The same
    construction underlies slimTrain's sampled GCV for the last layer (Newman et al. 2022).

    On noise-free data the residual keeps falling as λ → 0 and GCV picks λ ≈ 0, i.e. the
    minimum-norm least-squares solution; on noisy data it picks λ near σ²_noise / σ²_θ, the
    ratio of the noise to the prior coefficient variance (the Bayes-optimal ridge). Singular
    values at or below ``rcond · σ_max`` (default ``eps · max(N, w)``) are dropped, as in
    :func:`lstsq`. Every column of A is penalized, including a bias column of ones (the
    targets of :func:`deepbasis.fit` are usually centred, so this costs little). λ with
    N − tr H < 1/2 (interpolation, nothing left to validate against) are not candidates.

    Args:
        A: ``(..., N, w)`` matrices (leading dimensions are batch dimensions).
        b: ``(..., N, m)`` right-hand sides.
        rcond: relative cutoff for small singular values.
        rows: the N of the criterion (default: A's number of rows). For rows scaled by
            √(frequency weights), pass the sum of the weights: the choice of λ is then the one
            the data with every row repeated its weight's number of times would get.

    Returns:
        :class:`GCVResult`.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> A = torch.randn(200, 5, generator=g, dtype=torch.float64)
        >>> exact = gcv_lstsq(A, A @ torch.ones(5, 1, dtype=torch.float64))
        >>> float(exact.ridge) < 1e-20  # noise-free: (almost) plain least squares
        True
    """
    n, w = A.shape[-2], A.shape[-1]
    if rcond is None:
        rcond = torch.finfo(A.dtype).eps * max(n, w)
    b = b.to(A.dtype)
    if n >= 2 * w:
        # Tall A (the usual case): Householder QR, A = Q R, then the SVD of the small R = U Σ Vᵀ
        # (same singular values). Qᵀ b is applied by the reflectors, never forming Q: about the
        # LAPACK work of gelsd, today's solve.
        reflectors, tau = torch.geqrf(A)  # (..., N, w), (..., w)
        qtb = torch.ormqr(reflectors, tau, b, left=True, transpose=True)  # (..., N, m)
        U, S, Vh = torch.linalg.svd(reflectors[..., :w, :].triu(), full_matrices=False)
        c = U.mT @ qtb[..., :w, :]  # (..., k, m)
        outside = (qtb[..., w:, :] ** 2).sum(dim=-2)  # (..., m): ‖(I − QQᵀ) b‖²
    else:
        U, S, Vh = torch.linalg.svd(A, full_matrices=False)  # (..., N, k), (..., k), (..., k, w)
        c = U.mT @ b  # (..., k, m)
        outside = ((b - U @ c) ** 2).sum(dim=-2)  # (..., m)
    # Everything after the factorization works on k·(w + m) numbers per matrix: NumPy on the
    # host is several times faster there than a dozen small tensor operations.
    batch = A.shape[:-2]
    host = lambda t: t.reshape(-1, *t.shape[len(batch):]).to("cpu", torch.float64).numpy()  # noqa: E731
    S_, Vh_, c_, out_ = host(S), host(Vh), host(c), host(outside)  # (B,k) (B,k,w) (B,k,m) (B,m)
    kept = S_ > rcond * S_[:, :1]  # (B, k)
    s2 = np.where(kept, S_ * S_, 0.0)  # (B, k)
    c_ = np.where(kept[:, :, None], c_, 0.0)
    out_ = out_ + np.where(kept[:, :, None], 0.0, host(c) ** 2).sum(axis=1)  # no λ fits it
    n_gcv = n if rows is None else float(rows)
    ratio, dof, rss = _gcv_scan(s2, c_ * c_, out_, n_gcv)  # each (B, m)
    lam = ratio * s2[:, :1]  # (B, m)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(kept[:, :, None], S_[:, :, None] / (s2[:, :, None] + lam[:, None, :]),
                        0.0)  # (B, k, m)
    theta = np.matmul(Vh_.transpose(0, 2, 1), gain * c_)  # (B, w, m)
    back = lambda a: torch.as_tensor(a, device=A.device).to(A.dtype).reshape(  # noqa: E731
        *batch, *a.shape[1:])
    return GCVResult(back(theta), back(lam), back(dof), back(rss), n_gcv)


def _gcv_scan(s2: np.ndarray, c2: np.ndarray, outside: np.ndarray,
              n: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """λ / σ_max² minimizing GCV, and tr H and the residual there: each (B, m).

    ``s2`` (B, k) squared singular values (0 for dropped ones), ``c2`` (B, k, m) squared
    coefficients Uᵀb, ``outside`` (B, m) the residual no λ can remove.
    """
    top = s2[:, :1]  # (B, 1)

    def score(ratios):  # ratios (B, G, m) → criterion, rss, dof (B, G, m)
        lam = ratios * top[:, :, None]  # (B, G, m)
        s = s2[:, None, :, None]  # (B, 1, k, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(s > 0, s / (s + lam[:, :, None, :]), 0.0)  # (B, G, k, m); λ=0: 1
        rss = outside[:, None, :] + ((1.0 - f) ** 2 * c2[:, None, :, :]).sum(axis=2)
        room = n - f.sum(axis=2)
        crit = np.where(room >= 0.5, n * rss / np.maximum(room, 0.5) ** 2, np.inf)
        return crit, rss, n - room

    B, m = outside.shape
    ratios = np.broadcast_to(_GCV_COARSE[None, :, None], (B, len(_GCV_COARSE), m))
    crit, _, _ = score(ratios)
    centre = np.take_along_axis(ratios, crit.argmin(axis=1)[:, None, :], axis=1)  # (B, 1, m)
    refined = centre * _GCV_FINE[None, :, None]  # (B, F, m); λ = 0 stays 0
    crit, rss, dof = score(refined)
    pick = crit.argmin(axis=1)[:, None, :]
    take = lambda a: np.take_along_axis(a, pick, axis=1)[:, 0, :]  # noqa: E731
    return take(refined), take(dof), take(rss)


def solve_options(problem, method: str, rcond: float | None, ridge: float) -> dict:
    """The keywords the engines pass to :func:`solve_head` every iteration: the method, rcond,
    ridge and, for GCV, the rows to count when the problem says (``problem.gcv_rows``, e.g.
    the sum of the frequency weights of a weighted regression)."""
    options = {"method": method, "rcond": rcond, "ridge": ridge}
    if method == "gcv" and getattr(problem, "gcv_rows", None) is not None:
        options["rows"] = float(problem.gcv_rows)
    return options


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
    head = head_of(model)
    x = as_2d_inputs("x", x, _in_features(model, x))
    y = as_2d_targets("y", y, x.shape[0], head.out_features)
    phi = check_finite("features(x)", model.features(x))
    A = design_matrix(phi, bias=head.bias is not None)
    solution = lstsq(A, y.to(A.dtype), method=method, rcond=rcond, ridge=ridge).solution
    set_head_(head, solution)
    return model


def head_of(model: nn.Module) -> nn.Linear:
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear) or not callable(getattr(model, "features", None)):
        raise TypeError(
            f"{type(model).__name__} is not a basis network: it needs a features(x) method and a "
            "`head` nn.Linear (see deepbasis.MLP)"
        )
    return head


def _in_features(model: nn.Module, x: torch.Tensor) -> int:
    return int(getattr(model, "in_features", x.shape[-1] if x.ndim == 2 else 1))


def solve_head(
    A: torch.Tensor,
    b: torch.Tensor,
    method: str = "auto",
    rcond: float | None = None,
    ridge: float = 0.0,
    rows: float | None = None,
) -> torch.Tensor:
    r"""The head θ minimizing :math:`\|Aθ − b\|` (eq. 7), minimum-norm when A is rank deficient.

    ``method="auto"`` (the default of :func:`fit`) returns the same minimum-norm solution as
    ``numpy.linalg.lstsq`` and :func:`deepbasis.lstsq` with ``method="svd"`` — singular values
    at or below ``rcond · σ_max`` (default ``rcond = eps · max(N, w)``) are treated as zero —
    but cheaper:

    1. In bases of at least 48 columns, columns of A that are exactly zero on every row are
       dropped before the solve and get a zero coefficient, which is exactly their minimum-norm
       value. ReLU bases have many: a unit that is off on every data point (dead, or not yet
       reached by the data) gives a zero column. With He initialization on the paper's Table 1
       grid most columns are zero (e.g. 196 of 257 after a few steps at width 256, depth 4),
       and the SVD's cost falls with the square of the number of columns. (Below 48 columns
       the bookkeeping costs more than it saves.)
    2. The remaining problem is solved by a divide-and-conquer SVD: LAPACK ``gelsd`` on the CPU
       (the driver NumPy uses; about 2× faster than an explicit SVD and product), and
       :func:`deepbasis.lstsq`'s SVD elsewhere (``torch.linalg.lstsq`` offers only the
       full-rank ``gels`` on CUDA).

    Measured and rejected (float64, N = 256, widths 4–256, one thread): Cholesky of the normal
    equations, with pivoting (LAPACK ``pstrf``) for rank deficiency, is 3–10× faster than the
    SVD at width ≥ 64, but squaring the condition number moves the rank cutoff from
    ``eps · max(N, w)`` to about ``sqrt(w · eps)``: on He-initialized width-256 bases it dropped
    5–7 legitimate singular values in 1e-8…1e-7 σ_max and raised the LS loss by up to 0.4 %.
    ``torch.linalg.lstsq``'s default CPU driver ``gelsy`` is fast but returns wrong ranks
    (pytorch/pytorch#187411, uninitialized pivot array) in torch 2.13. QR (``geqrf``) with a
    triangular solve wherever R is nonsingular by the SVD's rule (checked with the pivots and
    R's singular values; gelsd for the rest) makes about half gelsd's LAPACK work, but takes
    some twenty small tensor operations: on Box and He bases of width 32 (256 points) the solve
    went from 0.23 to 0.43 ms per iteration, so it was dropped.

    Args:
        A: ``(..., N, w)`` design rows (leading dimensions are batch dimensions), detached.
        b: ``(..., N, m)`` targets.
        method: ``"auto"``, ``"gcv"`` (Tikhonov-regularized, λ chosen on every solve by
            generalized cross-validation from the SVD, see :func:`gcv_lstsq`; for noisy data),
            or one of :func:`deepbasis.lstsq`'s methods (``"svd"``, ``"qr"``, ``"ridge"``) to
            use that solver unchanged.
        rcond: relative cutoff for small singular values.
        ridge: Tikhonov parameter for ``method="ridge"``.
        rows: for ``method="gcv"``, the number of rows the criterion counts (see
            :func:`gcv_lstsq`; a weighted problem's sum of frequency weights).

    Returns:
        θ ``(..., w, m)``. A matrix with NaN or inf entries (a diverged basis) gets a NaN
        solution instead of an error, so the loss becomes non-finite and :func:`fit` recovers.

    Examples:
        >>> A = torch.ones(3, 2, dtype=torch.float64)  # two identical columns: rank 1
        >>> solve_head(A, torch.ones(3, 1, dtype=torch.float64)).flatten()  # the min-norm one
        tensor([0.5000, 0.5000], dtype=torch.float64)
    """
    n, w = A.shape[-2], A.shape[-1]
    if rcond is None:
        rcond = torch.finfo(A.dtype).eps * max(n, w)
    batch, m = A.shape[:-2], b.shape[-1]
    if method == "auto" and not batch and w < _COMPACT_MIN_COLUMNS and A.device.type == "cpu":
        # The hot path of fit on small bases: one reduction, one host sync, one LAPACK call.
        if math.isfinite(float(A.sum())):
            return torch.linalg.lstsq(A, b, rcond=rcond, driver="gelsd").solution  # (w, m)
    flat_A = A.reshape(-1, n, w)  # (B, N, w); a single matrix is a batch of one
    flat_b = b.expand(*batch, n, m).reshape(-1, n, m)  # (B, N, m)
    compact = method == "auto" and w >= _COMPACT_MIN_COLUMNS
    # A sum is finite exactly when every entry is (or when it overflows, which is no better).
    if compact:
        column_max = flat_A.abs().amax(dim=-2)  # (B, w); NaN and inf propagate
        sums = column_max.sum(dim=-1).tolist()  # one host sync
    else:
        sums = flat_A.sum(dim=(-2, -1)).tolist()
    finite = [math.isfinite(v) for v in sums]
    if not all(finite):
        # A diverged basis: LAPACK would print an error and raise. Solve a zero system for those
        # matrices instead and return NaN for them, so the loss says what happened.
        ok = torch.tensor(finite, device=A.device)  # (B,)
        flat_A = torch.where(ok[:, None, None], flat_A, 0.0)
        if compact:
            column_max = torch.where(ok[:, None], column_max, 0.0)
    if method == "gcv":
        theta = gcv_lstsq(flat_A, flat_b, rcond, rows=rows).solution  # (B, w, m)
    elif method != "auto":
        theta = lstsq(flat_A, flat_b, method=method, rcond=rcond, ridge=ridge).solution
    elif not compact:
        theta = _min_norm_svd(flat_A, flat_b, rcond)  # (B, w, m)
    else:
        live = column_max > 0  # (B, w)
        if live.shape[0] == 1 or bool((live == live[:1]).all()):
            theta = _solve_live_columns(flat_A, flat_b, live[0], rcond)
        else:
            # Members with different zero columns are solved one by one, each on its own
            # columns, exactly as a separate run would (a solve on the union of the columns is
            # the same solution only up to rounding, which chaotic training then amplifies).
            theta = torch.stack([_solve_live_columns(flat_A[i], flat_b[i], live[i], rcond)
                                 for i in range(flat_A.shape[0])])
    if not all(finite):
        theta = torch.where(ok[:, None, None], theta, math.nan)
    return theta.reshape(*batch, w, m)


def _solve_live_columns(A: torch.Tensor, b: torch.Tensor, live: torch.Tensor,
                        rcond: float) -> torch.Tensor:
    """Min-norm solve on the ``live`` (nonzero) columns; zero coefficients for the others."""
    keep = torch.nonzero(live).squeeze(1)  # (w',)
    w = A.shape[-1]
    if keep.numel() == w:
        return _min_norm_svd(A, b, rcond)
    theta = torch.zeros(*A.shape[:-2], w, b.shape[-1], dtype=A.dtype, device=A.device)
    if keep.numel() > 0:
        solution = _min_norm_svd(A.index_select(-1, keep), b, rcond)  # (..., w', m)
        theta.index_copy_(-2, keep, solution)
    return theta


def _min_norm_svd(A: torch.Tensor, b: torch.Tensor, rcond: float) -> torch.Tensor:
    if A.device.type == "cpu":
        return torch.linalg.lstsq(A, b, rcond=rcond, driver="gelsd").solution  # (..., w, m)
    return lstsq(A, b, method="svd", rcond=rcond).solution

