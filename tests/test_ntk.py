"""Tests for deepbasis.analysis.ntk: the empirical NTK against a hand-computed Jacobian."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import SEEDS, tol
from deepbasis import MLP, init
from deepbasis.analysis.ntk import empirical_ntk, kernel_width, normalize_rows

F64 = torch.float64


@pytest.mark.parametrize("seed", SEEDS)
def test_one_hidden_layer_relu_ntk_matches_the_analytic_jacobian(seed):
    gen = torch.Generator().manual_seed(seed)
    model = init.glorot_(MLP(3, 12, 1, dtype=F64), zero_bias=False, generator=seed)
    x = torch.randn(9, 3, generator=gen, dtype=F64)
    w, b = model.layers[0].weight, model.layers[0].bias  # (12, 3), (12,)
    v = model.head.weight[0]  # (12,)
    with torch.no_grad():
        z = x @ w.T + b  # (N, 12)
        on = (z > 0).to(F64)
        # f = Σ_k v_k relu(z_k) + c:  ∂f/∂v_k = relu(z_k), ∂f/∂w_k = v_k 1[z_k > 0] x,
        # ∂f/∂b_k = v_k 1[z_k > 0], ∂f/∂c = 1.
        jac = torch.cat([
            ((v * on)[:, :, None] * x[:, None, :]).reshape(9, -1),  # weight, row-major like W
            v * on,  # bias (N, 12)
            torch.relu(z),  # head weight (N, 12)
            torch.ones(9, 1, dtype=F64),  # head bias
        ], dim=1)  # (N, P)
        expected = jac @ jac.T
    torch.testing.assert_close(empirical_ntk(model, x), expected, **tol(F64))
    # the same in closed form, without a Jacobian:
    closed = torch.relu(z) @ torch.relu(z).T + (on * v**2) @ on.T * (x @ x.T + 1) + 1
    torch.testing.assert_close(expected, closed, **tol(F64))


@pytest.mark.parametrize("chunk_size", [1, 4, 7, 100])
def test_chunked_equals_unchunked(chunk_size):
    model = MLP(2, 16, 3, activation="tanh", residual=True, dtype=F64)
    x = torch.rand(13, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    torch.testing.assert_close(empirical_ntk(model, x, chunk_size=chunk_size),
                               empirical_ntk(model, x), **tol(F64))


def test_sequential_and_second_output():
    model = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 2)).to(F64)
    x = torch.linspace(-1, 1, 6, dtype=F64)[:, None]
    kernel = empirical_ntk(model, x, output=1)
    assert kernel.shape == (6, 6)
    torch.testing.assert_close(kernel, kernel.T, **tol(F64))
    assert torch.linalg.eigvalsh(kernel).min() > -1e-10  # J Jᵀ is positive semi-definite


def test_normalized_rows_have_unit_area_and_laplace_width():
    x = torch.linspace(-10, 10, 1001, dtype=F64)
    ell = 0.5
    kernel = torch.exp(-(x[:, None] - x[None, :]).abs() / ell)
    rows = normalize_rows(kernel, x)
    torch.testing.assert_close(torch.trapezoid(rows, x, dim=1), torch.ones(1001, dtype=F64))
    # away from the ends, the mean distance under e^{−|t|/ℓ}/(2ℓ) is ℓ
    # (trapezoid rule with h = ℓ/25)
    assert kernel_width(kernel, x)[500].item() == pytest.approx(ell, rel=1e-3)
    assert math.isfinite(kernel_width(kernel, x).sum().item())


def test_bad_input():
    model = MLP(2, 4, 1, dtype=F64)
    with pytest.raises(ValueError, match="non-finite"):
        empirical_ntk(model, torch.tensor([[0.0, float("inf")]], dtype=F64))
    with pytest.raises(ValueError, match="chunk_size must be"):
        empirical_ntk(model, torch.zeros(3, 2, dtype=F64), chunk_size=0)
