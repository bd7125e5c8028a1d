"""Tests for the problems of Wang et al. (2021): the eq. C.1 target and image regression."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from torch import nn
from torch.func import jacrev, vmap

from conftest import SEEDS, tol
from deepbasis import MLP
from deepbasis.problems import (
    highfreq_parameters,
    highfreq_target,
    image_problem,
    load_photograph,
    snr_db,
    square_grid,
    tv_regularizer,
)

F64 = torch.float64


def test_highfreq_is_one_fixed_draw_of_eq_c1():
    nu, amplitude = highfreq_parameters()
    assert nu.shape == (4, 4) and amplitude.shape == (4, 2)
    assert ((nu > 0) & (nu < 18)).all() and ((amplitude > 0) & (amplitude < 2)).all()
    x = torch.tensor([[0.3, -0.7], [0.05, 0.9]], dtype=F64)
    expected = []
    for px, py in x.tolist():
        total = 0.0
        for i in range(4):
            total += amplitude[i, 0] * math.sin(2 * math.pi * nu[i, 0] * px) * \
                math.cos(2 * math.pi * nu[i, 1] * py)
            total += amplitude[i, 1] * math.sin(2 * math.pi * nu[i, 2] * px) * \
                math.sin(2 * math.pi * nu[i, 3] * py)
        expected.append([float(total)])
    torch.testing.assert_close(highfreq_target(x), torch.tensor(expected, dtype=F64), **tol(F64))
    torch.testing.assert_close(highfreq_target(x), highfreq_target(x, generator=0))
    assert not torch.equal(highfreq_target(x), highfreq_target(x, generator=1))


def test_square_grid():
    grid = square_grid(3)
    assert grid.shape == (9, 2)
    assert grid[:3, 0].tolist() == [-1.0, 0.0, 1.0] and grid[:3, 1].tolist() == [-1.0] * 3


@pytest.mark.parametrize("seed", SEEDS)
def test_image_problem_is_standardized_and_samples_the_ratio(seed):
    problem = image_problem("astronaut", 32, sample_ratio=0.25, generator=seed)
    assert problem.image.shape == (32, 32, 3)
    assert problem.train.numel() == 256 and problem.train.unique().numel() == 256
    torch.testing.assert_close(problem.coords.mean(0), torch.zeros(2, dtype=F64), **tol(F64))
    torch.testing.assert_close(problem.coords.std(0), torch.ones(2, dtype=F64), **tol(F64))
    torch.testing.assert_close(problem.values.std(0), torch.ones(3, dtype=F64), **tol(F64))
    back = problem.to_image(problem.values).numpy()
    assert abs(back - problem.image).max() < 1e-12
    # row-major: pixel (row 0, column 1) is coordinate index 1, with a larger x
    assert problem.coords[1, 0] > problem.coords[0, 0]
    assert problem.coords[1, 1] == problem.coords[0, 1]
    points = problem.domain_points(100, generator=seed)
    assert (points.min(0).values >= problem.coords.min(0).values).all()


def test_native_photograph():
    image = load_photograph("astronaut")
    assert image.shape == (512, 512, 3) and 0.0 <= image.min() and image.max() <= 1.0


def test_snr_in_decibels():
    y = torch.ones(100, 3, dtype=F64)
    assert snr_db(y * 1.1, y) == pytest.approx(20.0, rel=1e-12)  # noise 0.1 of the signal
    assert snr_db(y, y) == math.inf
    with pytest.raises(ValueError, match="same shape"):
        snr_db(y[:10], y)


def test_tv_regularizer_is_the_mean_squared_frobenius_norm_of_the_jacobian():
    linear = nn.Linear(2, 3).to(F64)
    points = torch.randn(7, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert float(tv_regularizer(linear, points).detach()) == pytest.approx(
        float((linear.weight.detach()**2).sum()), rel=1e-12)
    model = MLP(2, 8, 2, out_features=3, activation="tanh", dtype=F64)
    jac = vmap(jacrev(lambda p: model(p[None])[0]))(points)  # (7, 3, 2)
    value = tv_regularizer(model, points)
    torch.testing.assert_close(value, (jac**2).sum() / 7, **tol(F64))
    value.backward()  # differentiable in the parameters
    assert model.layers[0].weight.grad is not None


def test_missing_scikit_image_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    with pytest.raises(ImportError, match=r"deepbasis\[images\]"):
        load_photograph("astronaut")
