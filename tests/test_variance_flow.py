"""Tests for deepbasis.analysis.variance_flow: eq. 2.1 / B.3 of Wang et al. (2021) against closed
forms, SciPy's adaptive quadrature and Monte Carlo; fixed points and the tanh bifurcation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from conftest import SEEDS
from deepbasis.analysis.variance_flow import (
    as_activation,
    backward_map,
    bifurcation_scale,
    fixed_points,
    forward_map,
    gaussian_moment,
    variance_flow,
)

NUMPY = {"tanh": np.tanh, "sin": np.sin, "relu": lambda z: np.maximum(z, 0.0)}


@pytest.mark.parametrize("s0", [0.3, 1.0, 7.0])
def test_relu_second_moment_is_preserved_at_he_scale(s0):
    # Fig. 1(a): E relu(c s Z)² = c² s² / 2, so c = √2 gives s_{i+1} = s_i at every depth.
    flow = variance_flow("relu", math.sqrt(2.0), s0, 20)
    np.testing.assert_allclose(flow, s0, rtol=1e-12)  # rounding of √2: ~5e-15 a layer
    # and Glorot's c = 1 halves the second moment per layer
    np.testing.assert_allclose(variance_flow("relu", 1.0, s0, 4), s0 * 2.0 ** -(np.arange(5) / 2),
                               rtol=1e-13)


def test_relu_backward_is_one_half_at_every_scale():
    for scale in (0.1, 1.0, 10.0):
        assert backward_map("relu", scale, 1.0) == pytest.approx(math.sqrt(0.5), rel=1e-14)


def test_tanh_bifurcates_at_c_equal_one():
    below = fixed_points("tanh", 0.95)
    assert [p.s for p in below] == [0.0] and below[0].stable
    assert below[0].slope == pytest.approx(0.95, rel=1e-6)  # F'(0) = c for tanh
    above = fixed_points("tanh", 1.05)
    assert len(above) == 2
    zero, positive = above
    assert zero.s == 0.0 and not zero.stable
    assert positive.s > 0 and positive.stable
    # near the bifurcation F(s) ≈ c s (1 − c² s²), so s*² ≈ (c − 1)/c³
    assert positive.s == pytest.approx(math.sqrt(0.05 / 1.05**3), rel=0.1)
    assert bifurcation_scale("tanh", s_probe=1e-4) == pytest.approx(1.0, abs=1e-6)


def test_fixed_points_are_fixed_and_their_slope_matches_a_finite_difference():
    for c in (1.2, 2.0, 3.0):
        (_, point) = fixed_points("tanh", c)
        assert forward_map("tanh", c, point.s) == pytest.approx(point.s, abs=1e-13)
        h = 1e-4
        slope = (forward_map("tanh", c, point.s + h)
                 - forward_map("tanh", c, point.s - h)) / (2 * h)
        assert point.slope == pytest.approx(slope, abs=1e-6)
    # B.3 for tanh: one positive fixed point, stable (App. B, Fig. 7)
    for c in (0.5, 1.0, 2.0, 4.0):
        points = fixed_points("tanh", c, backward=True)
        assert len(points) == 1 and points[0].s > 0 and points[0].stable


@pytest.mark.parametrize("name", ["tanh", "sin", "relu"])
@pytest.mark.parametrize("scale", [0.5, 3.0, 10.0])
def test_quadrature_matches_scipy_adaptive_quadrature(name, scale):
    f = NUMPY[name]

    def reference(g):
        dens = lambda z: g(scale * z) ** 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
        return sum(quad(dens, a, b, limit=2000, epsabs=1e-14, epsrel=1e-12)[0]
                   for a, b in ((-40.0, 0.0), (0.0, 40.0)))

    assert gaussian_moment(name, scale) == pytest.approx(reference(f), rel=1e-9, abs=1e-9)
    derivative = {"tanh": lambda z: 1 - np.tanh(z) ** 2, "sin": np.cos,
                  "relu": lambda z: (z > 0) * 1.0}[name]
    assert gaussian_moment(name, scale, derivative=True) == pytest.approx(
        reference(derivative), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ["tanh", "sin", "relu"])
def test_quadrature_agrees_with_monte_carlo_within_its_error(seed, name):
    z = torch.randn(10**6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    f = as_activation(name)
    for scale in (0.5, 2.0):
        values = f(scale * z) ** 2
        standard_error = float(values.std()) / math.sqrt(z.numel())
        assert abs(gaussian_moment(name, scale) - float(values.mean())) < 4 * standard_error


def test_accepts_modules_and_functions():
    assert forward_map(torch.nn.Tanh(), 1.3, 0.7) == forward_map("tanh", 1.3, 0.7)
    assert forward_map(torch.sin, 1.3, 0.7) == forward_map("sin", 1.3, 0.7)


def test_bad_input_is_rejected_with_clear_messages():
    with pytest.raises(ValueError, match="unknown activation 'tanhh'"):
        forward_map("tanhh", 1.0, 1.0)
    with pytest.raises(ValueError, match="c must be a finite number"):
        variance_flow("tanh", float("nan"), 1.0, 3)
    with pytest.raises(ValueError, match="layers must be"):
        variance_flow("tanh", 1.0, 1.0, -1)
    with pytest.raises(ValueError, match="widen the bracket"):
        bifurcation_scale("tanh", c_low=1.5, c_high=2.0)
