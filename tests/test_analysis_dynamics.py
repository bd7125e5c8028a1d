"""Gradient flow of breakpoints and delta-slopes (Sahs et al. 2022, Thm 6) against autograd."""

from __future__ import annotations

import pytest
import torch
from torch.func import jvp

from conftest import SEEDS
from deepbasis import MLP
from deepbasis.analysis.dynamics import alpha_scale, bdso_velocity, parameter_velocity
from deepbasis.analysis.loss_surface import loss_gradient
from deepbasis.analysis.shallow import ShallowParams

F64 = torch.float64


def setup(seed: int, h: int = 7, n: int = 20):
    g = torch.Generator().manual_seed(seed)
    p = ShallowParams(*(torch.randn(h, generator=g, dtype=F64) for _ in range(3)),
                      torch.randn((), generator=g, dtype=F64))
    x = 4 * torch.rand(n, generator=g, dtype=F64) - 2
    y = torch.sin(2 * x) + 0.3 * torch.randn(n, generator=g, dtype=F64)
    return p, x, y


def autograd_bdso_velocity(p: ShallowParams, x, y):
    """−∇ℓ by autograd, pushed through β = −b/w, μ = w v by a Jacobian-vector product."""
    theta = p.flat()
    flow = -loss_gradient(p, x, y)

    def beta_mu(t):
        q = ShallowParams.from_flat(t)
        return -q.b / q.w, q.w * q.v

    _, (beta_dot, mu_dot) = jvp(beta_mu, (theta,), (flow,))
    return beta_dot, mu_dot, flow


@pytest.mark.parametrize("seed", SEEDS)
def test_closed_form_beta_and_mu_velocities_match_autograd(seed):
    p, x, y = setup(seed)
    beta_dot, mu_dot, flow = autograd_bdso_velocity(p, x, y)
    got = bdso_velocity(p, x, y)
    torch.testing.assert_close(got.breakpoints, beta_dot, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.delta_slopes, mu_dot, rtol=1e-12, atol=1e-12)
    assert got.offset == pytest.approx(float(flow[-1]), rel=1e-12, abs=1e-12)
    assert float(beta_dot.abs().max()) > 1e-3  # not a trivially zero flow


@pytest.mark.parametrize("seed", SEEDS)
def test_parameter_velocity_is_minus_the_autograd_gradient(seed):
    p, x, y = setup(seed)
    torch.testing.assert_close(parameter_velocity(p, x, y).flat(), -loss_gradient(p, x, y),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_velocities_along_a_gradient_descent_trajectory(seed):
    p, x, y = setup(seed)
    for _ in range(50):  # the formulas hold at every point, not only at initialization
        p = ShallowParams.from_flat(p.flat() + 1e-2 * parameter_velocity(p, x, y).flat())
    beta_dot, mu_dot, _ = autograd_bdso_velocity(p, x, y)
    got = bdso_velocity(p, x, y)
    torch.testing.assert_close(got.breakpoints, beta_dot, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.delta_slopes, mu_dot, rtol=1e-12, atol=1e-12)


def test_a_shallow_mlp_gives_the_same_velocities_as_its_params():
    torch.manual_seed(0)
    model = MLP(1, 6, 1, dtype=F64)
    _, x, y = setup(1)
    a, b = bdso_velocity(model, x, y), bdso_velocity(ShallowParams.from_model(model), x, y)
    torch.testing.assert_close(a.breakpoints, b.breakpoints)


@pytest.mark.parametrize("seed", SEEDS)
def test_alpha_scaling_keeps_f_and_scales_the_speeds(seed):
    p, x, y = setup(seed)
    p = ShallowParams(p.w, torch.zeros_like(p.b), p.v, p.b0)  # b = 0: the scaling is exact
    alpha = 3.0
    q = alpha_scale(p, alpha)
    torch.testing.assert_close(q(x), p(x), rtol=1e-14, atol=1e-14)
    vp, vq = bdso_velocity(p, x, y), bdso_velocity(q, x, y)
    torch.testing.assert_close(vq.breakpoints, vp.breakpoints / alpha**2, rtol=1e-12, atol=1e-14)
    # μ̇ = −(w² + v²)⟨ε, x⟩: the w² part scales by α², the v² part by 1/α².
    expected = -(alpha**2 * p.w**2 + p.v**2 / alpha**2) * (
        ((p(x) - y) * x) @ p.active(x).to(F64))
    torch.testing.assert_close(vq.delta_slopes, expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="positive"):
        alpha_scale(p, -1.0)


def test_a_unit_without_breakpoint_has_nan_beta_velocity():
    p, x, y = setup(0, h=3)
    p = ShallowParams(torch.tensor([0.0, 1.0, -1.0], dtype=F64), p.b, p.v, p.b0)
    got = bdso_velocity(p, x, y)
    assert torch.isnan(got.breakpoints[0]) and torch.isfinite(got.breakpoints[1:]).all()
    _, mu_dot, _ = autograd_bdso_velocity(p, x, y)
    torch.testing.assert_close(got.delta_slopes, mu_dot, rtol=1e-12, atol=1e-12)
