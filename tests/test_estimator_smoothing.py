"""The smoothing head (issue 26): the linear head penalized by the fitted function's mean
squared second derivative over the training box (deepbasis.estimator.smoothing).

References: with Q = I it is the GCV ridge head (gcv_lstsq) exactly; the curvature penalty of a
one-layer tanh network against its analytic second derivative, φ'' = −2 tanh (1 − tanh²) w²
(central differences of step 1e-3: relative error ~1e-6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import SEEDS
from deepbasis import MLP
from deepbasis.estimator.smoothing import _NULL, _POINTS, curvature_penalty, smoothing_solve
from deepbasis.train.lstsq import gcv_lstsq


@pytest.mark.parametrize("seed", SEEDS)
def test_with_the_identity_penalty_it_is_the_gcv_ridge_head(seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(80, 6, generator=g, dtype=torch.float64)
    b = A @ torch.randn(6, 2, generator=g, dtype=torch.float64) \
        + 0.3 * torch.randn(80, 2, generator=g, dtype=torch.float64)
    theta = smoothing_solve(A, b, 80.0, torch.eye(6, dtype=torch.float64))
    torch.testing.assert_close(theta, gcv_lstsq(A, b, rows=80.0).solution, rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_curvature_penalty_matches_the_analytic_second_derivative(seed):
    model = MLP(1, 5, 1, activation="tanh", domain=(2.0, 6.0), dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    for parameter in model.parameters():
        parameter.data = torch.randn(parameter.shape, generator=g, dtype=torch.float64)
    x = 2.0 + 4.0 * torch.rand(40, 1, generator=g, dtype=torch.float64)
    penalty = curvature_penalty(model, x, np.random.RandomState(seed))
    # the same points: uniform in the rows' box, from the same RandomState
    lower, upper = x.min(), x.max()
    uniform = torch.as_tensor(np.random.RandomState(seed).uniform(size=(_POINTS, 1)))
    points = lower + (upper - lower) * uniform
    layer = model.layers[0]
    t = torch.tanh(layer(model.normalize(points))).detach()  # (P, 5)
    # d²/du² with u = (x − lower) / (upper − lower), the data's box; the network's domain is
    # (2, 6), so each unit of u is (upper − lower) / 4 units of the network's input
    w = layer.weight[:, 0].detach() * (upper - lower) / 4.0
    second = torch.cat([-2 * t * (1 - t**2) * w**2, torch.zeros(len(points), 1,
                                                                 dtype=torch.float64)], dim=1)
    exact = second.T @ second / len(points)
    exact = exact + _NULL * torch.diagonal(exact).mean() * torch.eye(6, dtype=torch.float64)
    torch.testing.assert_close(penalty, exact, rtol=1e-5, atol=1e-8 * float(exact.abs().max()))


def test_a_network_without_curvature_still_gets_an_invertible_penalty():
    model = MLP(2, 4, 2, activation="relu", dtype=torch.float64)
    with torch.no_grad():
        for layer in model.layers:
            layer.bias.fill_(10.0)  # every unit active on the box: the network is linear there
    x = torch.rand(30, 2, dtype=torch.float64)
    penalty = curvature_penalty(model, x, np.random.RandomState(0))
    assert torch.linalg.eigvalsh(penalty).min() > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_the_k_networks_take_the_smoothing_head_only_where_its_k_fold_error_is_lower(seed):
    from deepbasis.estimator.selection import _smooth_heads_if_better_

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(120, 1, generator=g, dtype=torch.float64)
    held = np.arange(120) % 3 == 0
    networks = [(MLP(1, 8, 2, activation="tanh", residual=True, dtype=torch.float64), mask)
                for mask in (held, ~held)]
    for network, _ in networks:
        for parameter in network.parameters():
            parameter.data = torch.randn(parameter.shape, generator=g, dtype=torch.float64)
    truth = networks[0][0]
    with torch.no_grad():
        z = truth(x)  # the first network with its head is exact on every row
    rng = np.random.RandomState(seed)
    heads = [network.head.weight.clone() for network, _ in networks]
    assert not _smooth_heads_if_better_([networks[0]], x, z, None, rng)  # error 0 already
    torch.testing.assert_close(networks[0][0].head.weight, heads[0], rtol=0, atol=0)
    with torch.no_grad():
        for network, _ in networks:
            network.head.weight.zero_()  # heads that predict a constant: any fit is better
            network.head.bias.zero_()
    assert _smooth_heads_if_better_(networks, x, z, None, rng)
    for network, mask in networks:
        rows = torch.as_tensor(mask)
        with torch.no_grad():
            error = float(((network(x[rows]) - z[rows]) ** 2).mean())
        assert error < float((z[rows] ** 2).mean()), f"seed={seed}"
