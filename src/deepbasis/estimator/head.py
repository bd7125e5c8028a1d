"""The linear head of ``BasisRegressor`` on weighted rows: the weighted problem for training,
weighted design rows, and the final solve of the head on every row."""

from __future__ import annotations

import torch

from ..nn.mlp import MLP
from ..train.lstsq import design_matrix, gcv_lstsq, lstsq, set_head_
from ..train.problem import Regression


class WeightedRegression(Regression):
    """Regression with frequency weights: J = Σ w_i ‖y_i − NN(x_i)‖² / Σ w_i."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> None:
        super().__init__(x, y)
        self._rows = torch.sqrt(weight / weight.sum())[:, None]  # (N, 1)
        self.gcv_rows = float(weight.sum())  # GCV counts repeated rows (solve_options)

    def rows(self, model):
        A = design_matrix(model.features(self.x)) * self._rows  # (N, w + 1)
        return A, self.y.to(A.dtype) * self._rows


def training_data(x, z, w) -> tuple:
    """The positional data of :func:`deepbasis.fit` for rows (x, z) with weights w (or None)."""
    return (x, z) if w is None else (WeightedRegression(x, z, w),)


def weighted_rows(model: MLP, x, z, w):
    """Design rows and targets scaled by √w, and the number of rows GCV counts (Σ w)."""
    return weigh_rows(design_matrix(model.features(x)), z, w)  # (N, w + 1)


def weigh_rows(A: torch.Tensor, z, w):
    """:func:`weighted_rows` of design rows ``A`` already computed."""
    if w is None:
        return A, z.to(A.dtype), float(A.shape[0])
    root = torch.sqrt(w)[:, None]
    return A * root, z.to(A.dtype) * root, float(w.sum())


@torch.no_grad()
def solve_head_(model: MLP, x, z, w, head: str) -> MLP:
    """The head on rows (x, z, w): GCV ridge (``head="gcv"``) or minimum-norm least squares."""
    A, b, rows = weighted_rows(model, x, z, w)
    if head == "gcv":
        solution = gcv_lstsq(A, b, rows=rows).solution
    else:
        solution = lstsq(A, b, method="svd").solution
    set_head_(model.head, solution)
    return model
