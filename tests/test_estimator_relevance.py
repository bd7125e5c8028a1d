"""Input relevance (issue 26, item 1): ``feature_importances_`` and the relevance box.

``input_relevance`` is the RMS over rows of the fitted function's derivative along each input in
the unit box; ``relevance_box`` shrinks the box of weakly relevant inputs so that a fresh
Box-initialized basis varies mostly along the relevant ones; ``choose`` keeps a network on that
box only where it is clearly better on the held-out rows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import SEEDS
from deepbasis.estimator import BasisRegressor
from deepbasis.estimator import relevance as relevance_module
from deepbasis.estimator.relevance import importances, input_relevance, relevance_box
from deepbasis.nn.mlp import MLP


def _two_of_five(seed: int, n: int = 400):
    """y = sin(2 x0) + x1² on inputs of very different ranges; x2, x3, x4 unused."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, size=(n, 5)) * np.array([1.0, 1.0, 10.0, 0.1, 1.0])
    return X, np.sin(2 * X[:, 0]) + X[:, 1] ** 2


def test_input_relevance_is_the_rms_derivative_in_the_unit_box():
    """Against central differences of the network in float64 (tolerance 1e-6 relative)."""
    torch.manual_seed(0)
    lower, upper = np.array([0.0, -2.0, 10.0]), np.array([1.0, 2.0, 30.0])
    model = MLP(3, 8, 2, 2, activation="tanh", domain=(lower.tolist(), upper.tolist()),
                dtype=torch.float64)
    rng = np.random.default_rng(0)
    X = lower + (upper - lower) * rng.uniform(size=(50, 3))
    x = torch.tensor(X)
    got = input_relevance(model, x, lower, upper)
    h = 1e-6
    expected = np.empty(3)
    with torch.no_grad():
        for j in range(3):
            step = torch.zeros(3, dtype=torch.float64)
            step[j] = h * (upper[j] - lower[j])  # a step of h in the unit box
            slope = (model(x + step) - model(x - step)).numpy() / (2 * h)  # (N, m)
            expected[j] = np.sqrt(np.mean(np.sum(slope**2, axis=1)))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_relevance_box_shrinks_only_weakly_relevant_inputs():
    lower, upper = np.array([0.0, 0.0, -1.0]), np.array([1.0, 2.0, 1.0])
    assert relevance_box(lower, upper, np.array([1.0, 0.5, 0.3])) is None  # all ≥ UNEVEN
    assert relevance_box(lower, upper, np.array([0.0, 0.0, 0.0])) is None
    assert relevance_box(lower, upper, np.array([1.0, np.nan, 0.1])) is None
    for power in (1.0, 2.0):
        low, high = relevance_box(lower, upper, np.array([2.0, 1.0, 0.0]), power)
        np.testing.assert_array_equal(low, lower)
        # the data's range of input j maps onto [0, s_j]: s = share ** power, at least the floor
        s = np.maximum(np.array([1.0, 0.5, 0.0]) ** power, relevance_module._FLOOR)
        np.testing.assert_allclose((upper - lower) / (high - lower), s)


def test_importances_sum_to_one_or_are_zero():
    np.testing.assert_allclose(importances(np.array([3.0, 1.0])), [0.75, 0.25])
    np.testing.assert_array_equal(importances(np.zeros(3)), np.zeros(3))


@pytest.mark.parametrize("seed", SEEDS)
def test_feature_importances_separate_the_unused_inputs(seed):
    X, y = _two_of_five(seed, n=300)
    model = BasisRegressor(activation="tanh", random_state=seed, steps=300).fit(X, y)
    importance = model.feature_importances_
    assert importance.shape == (5,)
    assert abs(importance.sum() - 1.0) < 1e-12
    assert importance[:2].min() > 10 * importance[2:].max(), (
        f"seed={seed}: importances {np.round(importance, 4)}")
    rng = np.random.default_rng(10_000 + seed)
    X_test = rng.uniform(-1.0, 1.0, size=(2000, 5)) * np.array([1.0, 1.0, 10.0, 0.1, 1.0])
    truth = np.sin(2 * X_test[:, 0]) + X_test[:, 1] ** 2
    error = np.sqrt(np.mean((model.predict(X_test) - truth) ** 2)) / np.std(truth)
    assert error < 1e-3, f"seed={seed}: test RMSE / std {error:.2e}"


def test_where_every_input_matters_evenly_the_fit_is_the_one_without_relevance(monkeypatch):
    """Franke-like 2-D target, both inputs relevant: relevance_box declines, so the fit is
    bit for bit the one with the relevance step switched off (UNEVEN = 0)."""
    rng = np.random.default_rng(3)
    X = rng.uniform(size=(200, 2))
    y = np.exp(-((X[:, 0] - 0.3) ** 2 + (X[:, 1] - 0.6) ** 2) * 4) + np.sin(3 * X[:, 1])
    with_step = BasisRegressor(activation="tanh", random_state=3, steps=150).fit(X, y)
    monkeypatch.setattr(relevance_module, "UNEVEN", 0.0)
    without = BasisRegressor(activation="tanh", random_state=3, steps=150).fit(X, y)
    np.testing.assert_array_equal(with_step.predict(X), without.predict(X))
    assert with_step.feature_importances_.min() > 0.25


@pytest.fixture
def small_race(monkeypatch):
    """The race on 100 training rows for 50 steps: its subset and the winner's retraining on
    every row run on small data."""
    from deepbasis.estimator import selection

    monkeypatch.setattr(selection, "SHORT_RACE_ROWS", 100)
    monkeypatch.setattr(selection, "RACE_STEPS", 50)


def test_the_choice_is_reproducible_and_survives_save_and_load(small_race, tmp_path):
    """Race on a subset, relevance candidates, the winner retrained on every row: the same
    random_state gives the same fit, and a network on the relevance box saves and loads."""
    X, y = _two_of_five(1, n=250)
    one = BasisRegressor(random_state=7, steps=150).fit(X, y)
    two = BasisRegressor(random_state=7, steps=150).fit(X, y)
    assert (one.activation_, one.best_member_, one.n_iter_) == \
        (two.activation_, two.best_member_, two.n_iter_)
    np.testing.assert_array_equal(one.predict(X), two.predict(X))
    np.testing.assert_array_equal(one.validation_mse_, two.validation_mse_)
    lower = np.asarray(one.model_.domain[0])
    upper = np.asarray(one.model_.domain[1])
    assert ((upper - lower) > (one.x_upper_ - one.x_lower_) * 2).any(), (
        "the unused inputs' box was not widened")
    loaded = BasisRegressor.load(one.save(tmp_path / "m.safetensors"))
    np.testing.assert_array_equal(loaded.predict(X), one.predict(X))
    np.testing.assert_array_equal(loaded.feature_importances_, one.feature_importances_)
