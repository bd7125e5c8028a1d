"""RAAI: randomized asymmetric (Lu et al. 2020) + anti-correlated (Singh & Sreejith 2021)."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from conftest import SEEDS
from deepbasis import MLP, init
from deepbasis.init import raai_layer_parameters

ROWS = 4000


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("fan_in", [1, 4, 9])
def test_raai_draws_follow_the_stated_distributions(seed, fan_in):
    weight, bias, positive = raai_layer_parameters(ROWS, fan_in, generator=seed)
    v = torch.cat([weight, bias[:, None]], dim=1).numpy()  # (rows, m)
    m = fan_in + 1
    rows = np.arange(ROWS)
    # The positive entry: Beta(2, 1), at a uniformly chosen position (weights or bias).
    assert stats.kstest(v[rows, positive.numpy()], stats.beta(2, 1).cdf).pvalue > 1e-3
    counts = np.bincount(positive.numpy(), minlength=m)
    assert stats.chisquare(counts).pvalue > 1e-3
    # The others: N(0, σ²), σ = 0.6007/√fan_in (one entry per row, so the sample is iid).
    mask = np.ones_like(v, dtype=bool)
    mask[rows, positive.numpy()] = False
    gauss = v[mask].reshape(ROWS, m - 1)
    sigma = 0.6007 / math.sqrt(fan_in)
    assert stats.kstest(gauss[:, 0], "norm", args=(0, sigma)).pvalue > 1e-3
    if m - 1 > 1:
        # Default anti-correlation: the most negative, −1/(m − 2): each row's Gaussians sum to 0.
        np.testing.assert_allclose(gauss.sum(axis=1), 0.0, atol=1e-12)
        corr = np.corrcoef(gauss[:, 0], gauss[:, 1])[0, 1]
        assert abs(corr - (-1.0 / (m - 2))) < 4.0 / math.sqrt(ROWS)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("correlation", [-0.2, 0.0, 0.5])
def test_raai_correlation_parameter(seed, correlation):
    weight, bias, positive = raai_layer_parameters(ROWS, 5, correlation=correlation,
                                                   generator=seed)
    v = torch.cat([weight, bias[:, None]], dim=1).numpy()
    mask = np.ones_like(v, dtype=bool)
    mask[np.arange(ROWS), positive.numpy()] = False
    gauss = v[mask].reshape(ROWS, 5)
    sigma = 0.6007 / math.sqrt(5)
    for j in (0, 3):
        assert stats.kstest(gauss[:, j], "norm", args=(0, sigma)).pvalue > 1e-3
    # Sample correlation of a pair of Gaussian entries: within 4 standard errors.
    corr = np.corrcoef(gauss[:, 1], gauss[:, 4])[0, 1]
    assert abs(corr - correlation) < 4.0 * (1 - correlation**2) / math.sqrt(ROWS)


def test_raai_initializes_every_linear_layer_and_checks_its_settings():
    model = init.raai_(MLP(1, 4, 5, dtype=torch.float64), generator=0)
    for layer in [*model.layers, model.head]:
        v = torch.cat([layer.weight, layer.bias[:, None]], dim=1)
        assert ((v > 0) & (v <= 1)).any(dim=1).all()  # a Beta(2, 1) entry in every unit
    with pytest.raises(ValueError, match=r"correlation must lie in \[-1/\(m-2\), 1\)"):
        raai_layer_parameters(4, 4, correlation=-0.9, generator=0)
