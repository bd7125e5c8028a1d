"""Model choice (issue 26, item 2): the Bayesian last layer's evidence that
``bench_estimator.py --suite criteria`` compares with the held-out error and K-fold."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

from conftest import SEEDS
from deepbasis.estimator.calibration import log_evidence


def _closed_form(A, b, log_alpha, log_beta):
    """log N(b; 0, AAᵀ/α + I/β): the marginal likelihood written out."""
    cov = A @ A.T / np.exp(log_alpha) + np.eye(len(b)) / np.exp(log_beta)
    return multivariate_normal(np.zeros(len(b)), cov).logpdf(b)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("rank", [8, 5])  # full column rank, and a rank-deficient design
def test_log_evidence_is_the_maximized_marginal_likelihood(seed, rank):
    """MacKay's fixed point is the maximum over (α, β) of the closed form (to 1e-6)."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(60, rank)) @ rng.normal(size=(rank, 8))  # (60, 8) of rank `rank`
    b = A @ rng.normal(size=8) + 0.3 * rng.normal(size=60)
    best = minimize(lambda p: -_closed_form(A, b, *p), x0=[0.0, 1.0], method="Nelder-Mead",
                    options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000})
    assert log_evidence(A, b) == pytest.approx(-best.fun, rel=1e-6, abs=1e-6), f"seed={seed}"


def test_log_evidence_prefers_the_basis_that_explains_the_targets():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=200)
    b = np.sin(2 * np.pi * x) + 0.1 * rng.normal(size=200)
    good = np.stack([np.sin(2 * np.pi * x), np.cos(2 * np.pi * x), np.ones(200)], axis=1)
    poor = np.stack([x, x**2, np.ones(200)], axis=1)
    assert log_evidence(good, b) > log_evidence(poor, b) + 50


def test_small_data_is_judged_by_every_row_once(monkeypatch):
    """At most CV_ROWS training rows: the race is repeated over K = 5 folds, every row is held
    out in exactly one of them, and validation_mse_ is the error over all the folds."""
    import torch

    from deepbasis.estimator import BasisRegressor, selection

    held_out = []

    class Recording(selection.HeldOutMonitor):
        def __init__(self, x, *args):
            held_out.append(x.detach().clone())
            super().__init__(x, *args)

    monkeypatch.setattr(selection, "HeldOutMonitor", Recording)
    rng = np.random.default_rng(5)
    X = rng.uniform(size=(120, 1))
    y = np.sin(6 * X[:, 0]) + 0.1 * rng.normal(size=120)
    model = BasisRegressor(random_state=5, steps=60).fit(X, y)
    folds = held_out[:5]  # the race's held-out rows, then the 4 other folds (then retraining)
    rows = torch.cat(folds)[:, 0].numpy()
    np.testing.assert_array_equal(np.sort(rows), np.sort(X[:, 0]))  # each row exactly once
    assert all(18 <= len(fold) <= 30 for fold in folds), [len(f) for f in folds]
    assert model.validation_mse_.shape == (2,) and np.isfinite(model.validation_mse_).all()

    held_out.clear()
    monkeypatch.setattr(selection, "CV_ROWS", 0)  # one split: the race runs once
    monkeypatch.setattr(selection, "NOISY", np.inf)  # (and no networks to average are trained)
    BasisRegressor(random_state=5, steps=60).fit(X, y)
    assert len(held_out) <= 2  # the race's held-out rows (and the winner's retraining)


def _curve(error, loss):
    return np.stack([np.asarray(error, float), np.asarray(loss, float)], axis=1)  # (T, 2)


def test_cv_steps_stops_where_the_held_out_error_turns_while_the_loss_falls():
    """Issue 26: the K-fold curve's minimum in the race's first half, when by the end the
    held-out error has risen while the training loss fell (noise being fitted)."""
    from deepbasis.estimator.selection import cv_steps

    steps = np.arange(0, 201, 5)
    error = 1.0 + 1e-3 * (steps - 20.0) ** 2 / 400  # lowest at step 20
    loss = 1.0 / (1 + steps)  # falling throughout
    assert cv_steps(_curve(error, loss), 200) == 20
    # still falling (noise-free fit): train on as usual
    assert cv_steps(_curve(1 / (1 + steps), loss), 200) is None
    # lowest late in the race: train on as usual
    assert cv_steps(_curve(1.0 + 1e-3 * (steps - 150.0) ** 2, loss), 200) is None
    # the error rose with the training loss (an optimizer jolt, not overfitting)
    jolt = np.where(steps > 100, 10.0, 1.0 / (1 + steps))
    assert cv_steps(_curve(jolt, jolt), 200) is None
    assert cv_steps(_curve(np.full(41, np.inf), loss), 200) is None


def test_held_out_monitor_records_the_error_and_loss_curve():
    import torch

    from deepbasis.estimator.monitor import HeldOutMonitor

    x = torch.linspace(0, 1, 20, dtype=torch.float64)[:, None]
    z = torch.sin(x)
    model = torch.nn.Linear(1, 1).double()
    monitor = HeldOutMonitor(x, z, torch.ones(20, dtype=torch.float64), patience=10, stop=True)
    for step in range(13):
        monitor(step, 1.0 / (1 + step), model)
    curve = monitor.curve(model, 20)  # steps 0, 5, ..., 20; measured up to step 10
    assert curve.shape == (5, 2)
    assert curve[:, 1].tolist() == [1.0, 1 / 6, 1 / 11, 1 / 11, 1 / 11]
    assert np.allclose(curve[:, 0], monitor.error(model).mean())
