"""Spline-view initializers and the initial breakpoint / delta-slope distributions."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from conftest import SEEDS
from deepbasis import MLP, init
from deepbasis.analysis import bdso, spline_of
from deepbasis.analysis import bdso_distributions as dist

KS_P = 1e-3  # a correct law fails one of these tests with probability ~1e-3


def he_shallow(seed, width, domain=None):
    model = MLP(1, width, 1, domain=domain, dtype=torch.float64)
    return init.he_(model, "normal", zero_bias=False, generator=seed)


def outputs(model, lo=-4.0, hi=4.0, n=2001):
    x = torch.linspace(lo, hi, n, dtype=torch.float64)[:, None]
    with torch.no_grad():
        return model(x)


# --- the initializers keep what they promise ---------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_uniform_breakpoints_keeps_delta_slopes_and_orientations(seed):
    model = he_shallow(seed, 2000, domain=(-1.0, 3.0))
    before = bdso(model)
    init.uniform_breakpoints_(model, -2.0, 2.0, generator=seed)
    after = bdso(model)
    torch.testing.assert_close(after.delta_slopes, before.delta_slopes, rtol=1e-14, atol=0)
    assert torch.equal(after.orientations, before.orientations)
    assert float(after.breakpoints.min()) >= -2.0 and float(after.breakpoints.max()) <= 2.0
    assert stats.kstest(after.breakpoints.numpy(), "uniform", args=(-2.0, 4.0)).pvalue > KS_P


def test_uniform_breakpoints_is_seeded_and_needs_a_range():
    a = init.uniform_breakpoints_(he_shallow(0, 8), -1, 1, generator=5)
    b = init.uniform_breakpoints_(he_shallow(0, 8), -1, 1,
                                  generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    with pytest.raises(ValueError, match="lower=..."):
        init.uniform_breakpoints_(he_shallow(0, 8))
    ranged = he_shallow(0, 8, domain=(0.0, 5.0))
    init.uniform_breakpoints_(ranged, generator=0)
    assert float(bdso(ranged).breakpoints.min()) >= 0.0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("depth,layer", [(1, 1), (3, 1), (3, 2), (3, 3)])
def test_alpha_scaling_preserves_the_function(seed, depth, layer):
    model = init.he_(MLP(1, 16, depth, dtype=torch.float64), zero_bias=False, generator=seed)
    before = outputs(model)
    spline = spline_of(model, -4, 4)
    w = model.layers[layer - 1].weight.detach().clone()
    alpha = torch.exp(torch.randn(16, generator=torch.Generator().manual_seed(seed),
                                  dtype=torch.float64))
    init.alpha_scale_(model, alpha, layer=layer)
    torch.testing.assert_close(model.layers[layer - 1].weight.detach(), alpha[:, None] * w)
    torch.testing.assert_close(outputs(model), before, rtol=1e-12, atol=1e-12)
    after = spline_of(model, -4, 4)
    torch.testing.assert_close(after.knots, spline.knots, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(after.delta_slopes, spline.delta_slopes, rtol=1e-12, atol=1e-12)


def test_alpha_scaling_moves_the_weights_and_rejects_residual():
    model = he_shallow(0, 4)
    w = model.layers[0].weight.detach().clone()
    init.alpha_scale_(model, 3.0)
    torch.testing.assert_close(model.layers[0].weight.detach(), 3 * w)
    with pytest.raises(ValueError, match="plain"):
        init.alpha_scale_(MLP(1, 4, 3, residual=True), 2.0)
    with pytest.raises(ValueError, match="positive"):
        init.alpha_scale_(model, -1.0)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("balanced", [True, False])
def test_set_spline_is_exact(seed, balanced):
    target = init.random_cpwl(-2, 2, breakpoints=20, generator=seed)
    model = nn.Sequential(nn.Linear(1, 24), nn.ReLU(), nn.Linear(24, 1)).double()
    init.set_spline_(model, target, balanced=balanced)
    got = spline_of(model, -2, 2)
    torch.testing.assert_close(got.points, target.points, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.values, target.values, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="at least 21 units"):
        init.set_spline_(nn.Sequential(nn.Linear(1, 20), nn.ReLU(), nn.Linear(20, 1)), target)


@pytest.mark.parametrize("seed", SEEDS)
def test_spiky_shallow_is_a_20_breakpoint_cpwl(seed):
    model = init.spiky_(MLP(1, 21, 1, dtype=torch.float64), generator=seed)
    spline = spline_of(model, -2, 2)
    assert spline.knots.numel() == 20
    assert float(spline.values.abs().max()) <= 2.0
    assert spline.roughness() > 50 * 4  # far rougher than He's E[ρ₀] = 4


def test_spiky_deep_is_pretrained_towards_the_cpwl():
    model = init.he_(MLP(1, 8, 4, dtype=torch.float64), zero_bias=False, generator=0)
    target = init.random_cpwl(generator=1)
    x = torch.linspace(-2, 2, 401, dtype=torch.float64)[:, None]
    with torch.no_grad():
        before = float(((model(x) - target(x)) ** 2).sum())
    init.spiky_(model, pretrain_epochs=150, lr=1e-4, generator=1)
    with torch.no_grad():
        after = float(((model(x) - target(x)) ** 2).sum())
    assert after < 0.8 * before


# --- initial distributions (Sahs et al. 2020, Theorem 1 / Corollary 1) -----------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_gaussian_breakpoints_are_cauchy_and_slopes_laplace_given_breakpoint(seed):
    width = 100_000
    form = bdso(he_shallow(seed, width))
    sigma_w = sigma_b = math.sqrt(2.0)  # he_ with biases: std √(2 / fan_in), fan_in = 1
    sigma_v = math.sqrt(2.0 / width)
    beta, mu = form.breakpoints.numpy(), form.delta_slopes.numpy()
    assert stats.kstest(beta, dist.gaussian_breakpoint(sigma_b, sigma_w).cdf).pvalue > KS_P
    # μ | β ~ Laplace(0, scale(β)) for every β ⇔ μ / scale(β) ~ Laplace(0, 1), independent of β.
    z = mu / dist.gaussian_delta_slope_scale(beta, sigma_b, sigma_w, sigma_v)
    assert stats.kstest(z, "laplace").pvalue > KS_P
    # ... and at one β band (|β| < 0.05 and 1.9 < β < 2.1): the conditional law itself.
    for lo, hi in ((-0.05, 0.05), (1.9, 2.1)):
        band = (beta > lo) & (beta < hi)
        scale = dist.gaussian_delta_slope_scale((lo + hi) / 2, sigma_b, sigma_w, sigma_v)
        assert stats.kstest(mu[band] / scale, "laplace").pvalue > KS_P / 10
    marginal = mu[:20_000]  # the K₀ CDF (Struve functions) is slow: 2·10⁴ draws suffice
    assert stats.kstest(marginal, lambda m: dist.gaussian_delta_slope_cdf(m, sigma_w, sigma_v)
                        ).pvalue > KS_P


@pytest.mark.parametrize("seed", SEEDS)
def test_uniform_init_densities(seed):
    g = torch.Generator().manual_seed(seed)
    a_b, a_w, a_v, n = 0.7, 1.3, 0.4, 100_000
    model = nn.Sequential(nn.Linear(1, n), nn.ReLU(), nn.Linear(n, 1)).double()
    with torch.no_grad():
        model[0].bias.copy_((torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * a_b)
        model[0].weight.copy_((torch.rand(n, 1, generator=g, dtype=torch.float64) * 2 - 1) * a_w)
        model[2].weight.copy_((torch.rand(1, n, generator=g, dtype=torch.float64) * 2 - 1) * a_v)
    form = bdso(model)
    beta, mu = form.breakpoints.numpy(), form.delta_slopes.numpy()
    assert stats.kstest(beta, lambda b: dist.uniform_breakpoint_cdf(b, a_b, a_w)).pvalue > KS_P
    assert stats.kstest(mu, lambda m: dist.uniform_delta_slope_cdf(m, a_w, a_v)).pvalue > KS_P
    z = mu / dist.uniform_delta_slope_half_width(beta, a_b, a_w, a_v)
    assert stats.kstest(z, dist.standard_triangular().cdf).pvalue > KS_P


@pytest.mark.parametrize("name,expected", [("he", dist.he_roughness),
                                           ("glorot", dist.glorot_roughness)])
@pytest.mark.parametrize("width", [5, 50])
def test_expected_initial_roughness(name, expected, width):
    # Many shallow networks at once: one wide layer, split into groups of `width` units.
    groups = 4000
    model = MLP(1, width * groups, 1, dtype=torch.float64)
    w = torch.randn(width * groups, generator=torch.Generator().manual_seed(width))
    v = torch.randn(width * groups, generator=torch.Generator().manual_seed(width + 1))
    s = math.sqrt(2.0) if name == "he" else math.sqrt(2.0 / (width + 1))
    sv = math.sqrt(2.0 / width) if name == "he" else math.sqrt(2.0 / (width + 1))
    rho = ((s * w * sv * v) ** 2).reshape(groups, width).sum(1).double().numpy()
    del model
    se = rho.std(ddof=1) / np.sqrt(groups)
    assert abs(rho.mean() - expected(width)) < 4 * se
    theory_sd = math.sqrt(dist.initial_roughness_variance(width, s, sv))
    assert rho.std(ddof=1) == pytest.approx(theory_sd, rel=0.15)


@pytest.mark.parametrize("name", ["he", "glorot"])
def test_roughness_of_initialized_networks(name):
    # The same through our initializers and the spline: ρ₀ = Σ μ² of he_/glorot_ networks.
    width, runs = 20, 400
    rhos = []
    for seed in range(runs):
        model = init.initialize_(MLP(1, width, 1, dtype=torch.float64), name, generator=seed,
                                 distribution="normal")
        rhos.append(bdso(model).roughness())
    expected = dist.he_roughness(width) if name == "he" else dist.glorot_roughness(width)
    se = np.std(rhos, ddof=1) / math.sqrt(runs)
    assert abs(np.mean(rhos) - expected) < 4 * se
