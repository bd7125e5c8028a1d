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
    BasisRegressor(random_state=5, steps=60).fit(X, y)
    assert len(held_out) <= 2  # the race's held-out rows (and the winner's retraining)
