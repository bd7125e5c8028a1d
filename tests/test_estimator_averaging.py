"""Noisy rows are fitted by a mean of K networks (issue 26): the kept network and one per
other fold of a K-fold split, each stopped on its own fold, as one network
(:func:`deepbasis.nn.mlp.mean_network`); its noise level from every row's error when held out.

Tolerances: the noise estimate from N rows has relative standard error √(2 / N) (a χ²_N / N);
it must land within 4 of them."""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_friedman1

from conftest import SEEDS
from deepbasis import MLP
from deepbasis.estimator import BasisRegressor, selection
from deepbasis.estimator.calibration import folds_noise_variance


def _sin(seed: int, n: int, noise: float):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 1))
    return X, np.sin(2 * np.pi * X[:, 0]) + noise * rng.standard_normal(n)


@pytest.mark.parametrize("seed", SEEDS)
def test_noisy_rows_are_fitted_by_a_mean_of_networks_that_each_held_out_one_fold(
        seed, monkeypatch, tmp_path):
    recorded = []
    members = selection._fold_members

    def recording(*args, **kwargs):
        result = members(*args, **kwargs)
        recorded.append((args[6], [held for _, held in result]))  # validation rows, folds
        return result

    monkeypatch.setattr(selection, "_fold_members", recording)
    X, y = _sin(seed, 150, 0.1)
    model = BasisRegressor(width=16, steps=100, random_state=seed).fit(X, y)
    (validation, folds), = recorded
    held = np.stack([validation, *folds])  # (K, N)
    np.testing.assert_array_equal(held.sum(axis=0), 1)  # every row held out exactly once
    assert model.n_networks_ == len(held) == 5, f"seed={seed}"
    assert model.width_ == 16 and model.model_.width == 5 * 16
    loaded = BasisRegressor.load(model.save(tmp_path / "mean.safetensors"))
    assert (loaded.n_networks_, loaded.width_) == (5, 16)
    np.testing.assert_array_equal(loaded.predict(X, return_std=True)[1],
                                  model.predict(X, return_std=True)[1])


@pytest.mark.parametrize("seed", SEEDS)
def test_noise_free_rows_keep_one_network(seed):
    X, y = _sin(seed, 150, 0.0)
    model = BasisRegressor(width=16, steps=100, random_state=seed).fit(X, y)
    assert model.n_networks_ == 1 and model.model_.width == 16, f"seed={seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_the_fit_is_the_mean_of_its_networks_and_closer_than_they_are_on_average(
        seed, monkeypatch):
    # Whether the mean beats the one kept network is measured in bench_estimator.py (10-25 %
    # lower error on Friedman 1 at 600 rows, all 3 splits; on 250 rows and 32 units it was
    # higher for 2 of 18 seeds). Here: the fitted function is exactly the mean of the K
    # networks, so its squared error is at most their mean squared error (Jensen), for any seed.
    averaged = []
    mean_network = selection.mean_network

    def recording(networks):
        averaged.append([copy.deepcopy(network) for network in networks])
        return mean_network(networks)

    monkeypatch.setattr(selection, "mean_network", recording)
    X, y = make_friedman1(n_samples=250, noise=1.0, random_state=seed)
    test, truth = make_friedman1(n_samples=2000, noise=0.0, random_state=1000 + seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BasisRegressor(width=32, steps=200, random_state=seed).fit(X, y)
    (networks,) = averaged
    with torch.no_grad():
        each = [network(torch.as_tensor(test))[:, 0].numpy() * model.y_scale_[0]
                + model.y_mean_[0] for network in networks]  # in units of y
    np.testing.assert_allclose(model.predict(test), np.mean(each, axis=0), rtol=1e-10,
                               atol=1e-10 * model.y_scale_[0])
    error = np.mean((model.predict(test) - truth) ** 2)
    members = [np.mean((one - truth) ** 2) for one in each]
    assert error <= np.mean(members), f"seed={seed}: {error:.4f} against {members}"


@pytest.mark.parametrize("seed", SEEDS)
def test_noise_from_every_fold_matches_the_drawn_noise(seed):
    # Targets in the span of fixed features plus noise σ: with least-squares heads each held-out
    # error has variance σ² (1 + h_i) exactly, so the estimate is unbiased.
    g = torch.Generator().manual_seed(seed)
    n, sigma = 2000, 0.3
    network = MLP(2, 12, 2, activation="tanh", dtype=torch.float64)
    x = torch.rand(n, 2, generator=g, dtype=torch.float64)
    with torch.no_grad():
        z = network(x) + sigma * torch.randn(n, 1, generator=g, dtype=torch.float64)
    fold = torch.randint(0, 5, (n,), generator=g).numpy()
    with torch.no_grad():
        features = torch.cat([network.features(x)] * 5, dim=1)  # 5 networks, side by side
    variance, dof = folds_noise_variance(features, [fold == k for k in range(5)], z, None,
                                         "lstsq")
    assert float(dof[0]) == n
    ratio = float(variance[0]) / sigma**2
    assert abs(ratio - 1) <= 4 * math.sqrt(2 / n), f"seed={seed}: σ̂²/σ² = {ratio:.4f}"
