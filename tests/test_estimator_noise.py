"""Noise-aware heads (GCV), early stopping, a model that can say no, sample weights and
predictive uncertainty (issue 15)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import deepbasis
from conftest import SEEDS
from deepbasis.estimator import BasisRegressor, selection
from deepbasis.estimator.regressor import PoorFitWarning
from deepbasis.train.lstsq import gcv_lstsq, solve_head

# --- gcv_lstsq against a direct computation ----------------------------------------------------


def _gcv_reference(A: np.ndarray, b: np.ndarray, lam: float) -> float:
    """G(λ) = N ‖(I − H) b‖² / (N − tr H)² with H formed explicitly."""
    n, w = A.shape
    H = A @ np.linalg.solve(A.T @ A + lam * np.eye(w), A.T)
    residual = b - H @ b
    return n * float(residual @ residual) / (n - np.trace(H)) ** 2


def _problem(seed: int, n: int, w: int, sigma: float, outputs: int = 1):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, w, generator=g, dtype=torch.float64)
    theta = torch.randn(w, outputs, generator=g, dtype=torch.float64)  # prior N(0, 1)
    noise = sigma * torch.randn(n, outputs, generator=g, dtype=torch.float64)
    return A, A @ theta, A @ theta + noise


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("n", "w"), [(120, 12), (30, 20)])  # the QR path and the SVD path
def test_gcv_chooses_the_minimum_of_the_criterion_and_solves_that_ridge(seed, n, w):
    A, _, b = _problem(seed, n, w, sigma=0.3)
    result = gcv_lstsq(A, b)
    lam = float(result.ridge)
    An, bn = A.numpy(), b.numpy()[:, 0]
    # the Tikhonov solution for the chosen λ (numpy reference)
    expected = np.linalg.solve(An.T @ An + lam * np.eye(w), An.T @ bn)
    np.testing.assert_allclose(result.solution.numpy()[:, 0], expected, rtol=1e-8, atol=1e-10)
    # no λ of a fine scan does better than the chosen one (up to the grid's resolution)
    chosen = _gcv_reference(An, bn, lam)
    top = np.linalg.svd(An, compute_uv=False)[0] ** 2
    scan = [_gcv_reference(An, bn, r * top) for r in 10.0 ** np.arange(-12, 2.01, 0.02)]
    assert chosen <= min(scan) * (1 + 1e-3), f"seed={seed}: G={chosen} vs scan {min(scan)}"
    # tr H and the residual it reports
    H_trace = np.sum(np.linalg.svd(An, compute_uv=False) ** 2
                     / (np.linalg.svd(An, compute_uv=False) ** 2 + lam))
    np.testing.assert_allclose(float(result.dof), H_trace, rtol=1e-10)
    np.testing.assert_allclose(float(result.residual), np.sum((An @ expected - bn) ** 2),
                               rtol=1e-8)


@pytest.mark.parametrize("seed", SEEDS)
def test_gcv_picks_no_ridge_on_noise_free_data(seed):
    A, b, _ = _problem(seed, 200, 15, sigma=0.0, outputs=2)
    result = gcv_lstsq(A, b)
    top = torch.linalg.svdvals(A)[0] ** 2
    assert float(result.ridge.max() / top) < 1e-20, f"seed={seed}: λ={result.ridge}"
    expected, *_ = np.linalg.lstsq(A.numpy(), b.numpy(), rcond=None)
    np.testing.assert_allclose(result.solution.numpy(), expected, rtol=1e-9, atol=1e-12)


def test_gcv_picks_the_noise_to_signal_ratio_on_noisy_data():
    # θ ~ N(0, 1), noise σ = 0.5: the Bayes-optimal ridge is σ² / 1 = 0.25. GCV's choice
    # scatters around it; over 3 seeds × 4 outputs the median must be within 1.5×, every
    # value within 4×.
    chosen = []
    for seed in SEEDS:
        A, _, b = _problem(seed, 400, 20, sigma=0.5, outputs=4)
        result = gcv_lstsq(A, b)
        chosen += result.ridge.tolist()
        np.testing.assert_allclose(result.noise_variance().numpy(), 0.25, rtol=0.35)
    assert 0.25 / 1.5 < np.median(chosen) < 0.25 * 1.5, chosen
    assert all(0.25 / 4 < value < 0.25 * 4 for value in chosen), chosen


def test_gcv_batched_equals_one_by_one_and_rank_deficiency():
    g = torch.Generator().manual_seed(5)
    A = torch.randn(3, 80, 10, generator=g, dtype=torch.float64)
    A[1, :, 9] = A[1, :, 8]  # a repeated column: rank 9
    b = torch.randn(3, 80, 2, generator=g, dtype=torch.float64)
    batched = gcv_lstsq(A, b)
    for i in range(3):
        one = gcv_lstsq(A[i], b[i])
        torch.testing.assert_close(batched.solution[i], one.solution, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(batched.ridge[i], one.ridge, rtol=1e-12, atol=0.0)
    # the repeated column gets the same coefficient (minimum norm), also with λ = 0
    solution = gcv_lstsq(A[1], A[1] @ torch.ones(10, 1, dtype=torch.float64)).solution
    torch.testing.assert_close(solution[8], solution[9], rtol=1e-8, atol=1e-10)


def test_solve_head_and_fit_take_the_gcv_method():
    A, _, b = _problem(0, 100, 8, sigma=0.3)
    torch.testing.assert_close(solve_head(A, b, method="gcv"), gcv_lstsq(A, b).solution)
    nan = A.clone()
    nan[3, 2] = float("nan")
    assert torch.isnan(solve_head(nan, b, method="gcv")).all()  # a diverged basis: NaN, no error
    x = torch.linspace(0, 1, 64, dtype=torch.float64)[:, None]
    y = torch.sin(6 * x) + 0.1 * torch.randn(64, 1, generator=torch.Generator().manual_seed(0),
                                             dtype=torch.float64)
    model = deepbasis.init.box_(deepbasis.MLP(1, 8, 2, dtype=torch.float64), generator=0)
    history = deepbasis.fit(model, x, y, steps=5, lstsq_method="gcv", progress=False)
    assert history.settings["lstsq_method"] == "gcv"
    with torch.no_grad():
        A = deepbasis.train.design_matrix(model.features(x))
    theta = gcv_lstsq(A, y).solution  # the head is the GCV head of the final basis
    torch.testing.assert_close(model.head.weight.mT, theta[:8], rtol=1e-9, atol=1e-12)
    result = deepbasis.fit_ensemble(
        lambda s: deepbasis.init.box_(deepbasis.MLP(1, 8, 2, dtype=torch.float64), generator=s),
        x, y, seeds=[0, 1], steps=5, lstsq_method="gcv", progress=False)
    np.testing.assert_allclose(result.losses[0], history.loss, rtol=1e-9)


# --- the estimator ------------------------------------------------------------------------------


def _sin(seed: int, n: int, noise: float):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, size=(n, 1))
    return X, np.sin(2 * np.pi * X[:, 0]) + noise * rng.standard_normal(n)


def test_noise_free_smooth_data_keeps_its_accuracy():
    # GCV picks λ ≈ 0 on noise-free data, so the tanh basis still fits sin(2πx) to ~1e-6
    # (the minimum-norm head of the paper's LSGD gets the same order here).
    X, y = _sin(0, 200, 0.0)
    test = np.linspace(0, 1, 1001)[:, None]
    regressor = BasisRegressor(steps=300, activation="tanh", random_state=0).fit(X, y)
    error = np.sqrt(np.mean((regressor.predict(test) - np.sin(2 * np.pi * test[:, 0])) ** 2))
    assert error < 1e-4, error
    assert regressor.head_ridge_[0] < 1e-10, regressor.head_ridge_


def test_gcv_head_does_not_memorize_noise():
    # With noise σ = 0.1 the GCV head has λ > 0, and the fit is closer to the function than
    # the minimum-norm head trained for as long without early stopping.
    X, y = _sin(1, 150, 0.1)
    test = np.linspace(0, 1, 1001)[:, None]
    truth = np.sin(2 * np.pi * test[:, 0])
    errors = {}
    for head in ("gcv", "lstsq"):
        regressor = BasisRegressor(steps=200, activation="tanh", head=head,
                                   early_stopping=head == "gcv", random_state=1).fit(X, y)
        errors[head] = np.sqrt(np.mean((regressor.predict(test) - truth) ** 2))
        if head == "gcv":
            assert regressor.head_ridge_[0] > 1e-6, regressor.head_ridge_
    assert errors["gcv"] < errors["lstsq"], errors


def test_early_stopping_stops_and_restores_the_best_hidden_state(monkeypatch):
    monkeypatch.setattr(selection, "NOISY", np.inf)  # one network, not a mean of K (see below)
    X, y = _sin(2, 120, 0.2)
    regressor = BasisRegressor(width=16, depth=2, steps=400, activation="relu",
                               n_iter_no_change=40, random_state=2).fit(X, y)
    history = regressor.history_
    assert history.stop_reason == "callback"  # it stopped before the 400 steps
    assert regressor.n_iter_ + 40 <= len(history.loss) - 1 < 400
    # The kept hidden layers are those of step n_iter_: a separate fit of that many steps on the
    # training rows gives them.
    train = ~regressor._validation_mask
    z = (y - regressor.y_mean_[0]) / regressor.y_scale_[0]
    model = regressor._make_model(regressor.seeds_[0], 1, "relu")
    deepbasis.fit(model, torch.tensor(X[train]), torch.tensor(z[train])[:, None],
                  steps=regressor.n_iter_, lr=regressor.lr, lstsq_method="gcv", progress=False)
    for kept, again in zip(regressor.model_.layers, model.layers, strict=True):
        torch.testing.assert_close(kept.weight, again.weight, rtol=1e-9, atol=1e-12)


def test_early_stopping_off_trains_every_step():
    X, y = _sin(3, 60, 0.2)
    regressor = BasisRegressor(width=8, depth=2, steps=50, activation="relu",
                               early_stopping=False, random_state=3).fit(X, y)
    assert regressor.n_iter_ == 50 and len(regressor.history_.loss) == 51
    assert regressor._validation_mask is None  # one candidate: every row trains


@pytest.mark.parametrize("seed", SEEDS)
def test_warns_on_a_pure_noise_target(seed):
    rng = np.random.default_rng(seed)
    X, y = rng.uniform(size=(150, 3)), rng.standard_normal(150)
    with pytest.warns(PoorFitWarning, match="explains little"):
        regressor = BasisRegressor(width=16, depth=2, steps=100, random_state=seed).fit(X, y)
    # and it is then not worse than predicting the mean by much
    assert abs(regressor.score(X, y)) < 0.5


def test_no_warning_on_a_learnable_target():
    X, y = _sin(4, 150, 0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PoorFitWarning)
        BasisRegressor(width=16, depth=2, steps=100, random_state=4).fit(X, y)


def test_a_candidate_that_explodes_is_not_kept(monkeypatch):
    # tanh is far better on sin(2πx) by the held-out error; if its predictions left the
    # targets' range between the training points, the ReLU candidate must be kept instead.
    X, y = _sin(5, 120, 0.0)
    real = selection.explodes

    def tanh_explodes(model, *args):
        return model.activation_name == "tanh" or real(model, *args)

    monkeypatch.setattr(selection, "explodes", tanh_explodes)
    regressor = BasisRegressor(width=16, depth=2, steps=60, random_state=5).fit(X, y)
    assert regressor.validation_mse_[1] < regressor.validation_mse_[0]  # tanh is better...
    assert regressor.activation_ == "relu"  # ...but explodes

    monkeypatch.setattr(selection, "explodes", lambda *args: True)
    with pytest.warns(PoorFitWarning, match="far outside the range of the training targets"):
        BasisRegressor(width=16, depth=2, steps=20, random_state=5).fit(X, y)


def test_explosion_check_sees_a_spike_between_training_points():
    model = deepbasis.MLP(1, 4, 1, dtype=torch.float64, activation="relu")
    with torch.no_grad():  # a narrow ReLU bump at 0.5, outside the targets' range [0, 1]
        model.layers[0].weight.copy_(torch.tensor([[1.0], [1.0], [1.0], [0.0]]))
        model.layers[0].bias.copy_(torch.tensor([-0.49, -0.5, -0.51, 0.0]))
        model.head.weight.copy_(torch.tensor([[1e4, -2e4, 1e4, 0.0]]))
        model.head.bias.zero_()
    train = torch.tensor([[0.0], [0.25], [0.75], [1.0]], dtype=torch.float64)
    low, high = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    assert not selection.explodes(model, train, low, high)
    probes = selection.probe_points(train.numpy(), np.random.RandomState(0),
                                    torch.float64, "cpu")
    assert selection.explodes(model, probes, low, high)


@pytest.mark.parametrize("head", ["lstsq", "gcv"])
def test_integer_sample_weights_equal_repeated_rows(head):
    rng = np.random.default_rng(6)
    X = rng.uniform(size=(40, 2))
    y = np.sin(3 * X[:, 0]) + X[:, 1] ** 2 + 0.05 * rng.standard_normal(40)
    weights = rng.integers(0, 4, size=40)
    settings = {"width": 8, "depth": 2, "steps": 8, "activation": "relu", "head": head,
                "random_state": 0}
    weighted = BasisRegressor(**settings).fit(X, y, sample_weight=weights)
    repeated = BasisRegressor(**settings).fit(np.repeat(X, weights, axis=0),
                                              np.repeat(y, weights))
    np.testing.assert_array_equal(weighted.x_lower_, repeated.x_lower_)
    np.testing.assert_allclose(weighted.y_scale_, repeated.y_scale_, rtol=1e-13)
    # The same rows are held out, every loss and solve weighs like repetition: the same fit up
    # to rounding (sums in another order), which 8 LSGD steps amplify only a little.
    np.testing.assert_allclose(weighted.validation_mse_, repeated.validation_mse_, rtol=1e-5)
    np.testing.assert_allclose(weighted.predict(X), repeated.predict(X), rtol=1e-5, atol=1e-6)


def test_unit_weights_are_no_weights_and_zero_weights_remove_rows():
    X, y = _sin(7, 50, 0.1)
    settings = {"width": 8, "depth": 2, "steps": 10, "random_state": 0}
    plain = BasisRegressor(**settings).fit(X, y).predict(X)
    ones = BasisRegressor(**settings).fit(X, y, sample_weight=np.full(50, 3.0)).predict(X)
    np.testing.assert_array_equal(plain, ones)
    keep = np.arange(50) % 5 != 0
    removed = BasisRegressor(**settings).fit(X[keep], y[keep]).predict(X)
    zeroed = BasisRegressor(**settings).fit(X, y, sample_weight=keep * 1.0).predict(X)
    np.testing.assert_array_equal(removed, zeroed)
    with pytest.raises(ValueError, match="at least one non-zero"):
        BasisRegressor(**settings).fit(X, y, sample_weight=np.zeros(50))
    with pytest.raises(ValueError, match="[Nn]egative"):
        BasisRegressor(**settings).fit(X, y, sample_weight=-np.ones(50))


@pytest.mark.parametrize("seed", SEEDS)
def test_predictive_intervals_are_calibrated_on_noisy_data(seed):
    # 95 % intervals from return_std must cover 90-99 % of new noisy observations.
    rng = np.random.default_rng(100 + seed)
    f = lambda x: np.sin(2 * np.pi * x[:, 0]) + 0.5 * x[:, 1]  # noqa: E731
    X = rng.uniform(size=(300, 2))
    y = f(X) + 0.1 * rng.standard_normal(300)
    regressor = BasisRegressor(width=16, depth=3, steps=150, random_state=seed).fit(X, y)
    test = rng.uniform(size=(3000, 2))
    observed = f(test) + 0.1 * rng.standard_normal(3000)
    mean, std = regressor.predict(test, return_std=True)
    coverage = np.mean(np.abs(observed - mean) <= 1.96 * std)
    assert 0.90 <= coverage <= 0.99, f"seed={seed}: coverage {coverage:.3f}"
    np.testing.assert_allclose(regressor.noise_std_, 0.1, rtol=0.3)


def test_return_std_shapes_and_model_files(tmp_path):
    X, y = _sin(8, 60, 0.1)
    Y = np.c_[y, 2 * y]
    regressor = BasisRegressor(width=8, depth=2, steps=10, random_state=0).fit(X, Y)
    mean, std = regressor.predict(X, return_std=True)
    assert mean.shape == std.shape == (60, 2) and (std > 0).all()
    np.testing.assert_array_equal(mean, regressor.predict(X))
    loaded = BasisRegressor.load(regressor.save(tmp_path / "m.safetensors"))
    np.testing.assert_array_equal(loaded.predict(X, return_std=True)[1], std)
    assert loaded.n_iter_ == regressor.n_iter_


def test_model_files_without_the_new_fields_still_load(tmp_path, monkeypatch):
    from deepbasis.estimator import io

    X, y = _sin(9, 40, 0.1)
    regressor = BasisRegressor(width=8, depth=2, steps=5, random_state=0).fit(X, y)
    monkeypatch.setattr(io, "_optional_fitted", lambda estimator: {})  # as an older version
    loaded = BasisRegressor.load(regressor.save(tmp_path / "old.safetensors"))
    np.testing.assert_array_equal(loaded.predict(X), regressor.predict(X))
    with pytest.raises(ValueError, match="no predictive uncertainty"):
        loaded.predict(X, return_std=True)


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("head", "ridge", "unknown head 'ridge'; valid choices are 'gcv', 'lstsq'"),
    ("early_stopping", "yes", "early_stopping must be True or False, got 'yes'"),
    ("n_iter_no_change", 0, "n_iter_no_change must be an integer >= 1, got 0"),
])
def test_new_settings_are_checked(setting, value, message):
    with pytest.raises(ValueError, match=message):
        BasisRegressor(**{setting: value}).fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 0.0])


def test_a_trained_state_must_clearly_beat_the_untrained_basis():
    # The monitor keeps a later state only if its held-out error beats step 0's by one standard
    # error of the row-by-row difference: a lower mean carried by a few rows is noise.
    from deepbasis.estimator.monitor import HeldOutMonitor

    class Fixed(torch.nn.Module):  # a "model" that predicts given values on the held-out rows
        def __init__(self, values):
            super().__init__()
            self.values = torch.nn.Parameter(torch.as_tensor(values, dtype=torch.float64)[:, None])

        def forward(self, x):
            return self.values

    n = 40
    x, z = torch.zeros(n, 1, dtype=torch.float64), torch.zeros(n, 1, dtype=torch.float64)
    monitor = HeldOutMonitor(x, z, torch.ones(n, dtype=torch.float64), patience=100, stop=True)
    model = Fixed(np.full(n, 0.5))  # step 0: squared error 0.25 on every row
    monitor(0, 0.0, model)
    lucky = np.full(n, 0.5)
    lucky[0] = 0.0  # one row perfect, two a little worse, the rest as before: a lower mean
    lucky[1:3] = 0.52  # (0.2448 < 0.25) by less than one standard error of the gains
    with torch.no_grad():
        model.values.copy_(torch.as_tensor(lucky)[:, None])
    monitor(5, 0.0, model)
    assert monitor.best_step(model, 5) == 0  # not clearly better: step 0 stays the best
    with torch.no_grad():
        model.values.fill_(0.4)  # every row better: 0.16
    monitor(10, 0.0, model)
    assert monitor.best_step(model, 10) == 10
