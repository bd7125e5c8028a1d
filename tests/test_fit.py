"""deepbasis.fit: LSGD and GD against references (numpy lstsq, closed forms), the history's
semantics, early stopping, callbacks, recovery from non-finite losses, and input validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import SEEDS
from deepbasis import MLP, History, Regression, analysis, fit, init
from deepbasis.train.lstsq import design_matrix, solve_head
from deepbasis.train.optim import OPTIMIZERS

DTYPE = torch.float64


def _data(n: int = 64, outputs: int = 1):
    x = torch.linspace(0.0, 1.0, n, dtype=DTYPE)[:, None]  # (N, 1)
    columns = [torch.sin(2 * math.pi * x), torch.cos(2 * math.pi * x), x**2][:outputs]
    return x, torch.cat(columns, dim=1)  # (N, m)


def _box(seed: int, width: int = 16, depth: int = 2, outputs: int = 1) -> MLP:
    return init.box_(MLP(1, width, depth, outputs, dtype=DTYPE), generator=seed)


def _he(seed: int, width: int = 16, depth: int = 2) -> MLP:
    return init.he_(MLP(1, width, depth, dtype=DTYPE), generator=seed)


def _mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((model(x) - y) ** 2).mean(dim=0).sum())


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


class LinearBasis(nn.Module):
    """A basis network without activation: Φ(x) = x Wᵀ. Its loss is a polynomial in the
    parameters and exactly 0 at a linear target: the 'parabola' of the convergence tests."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.hidden = nn.Linear(1, 2, dtype=DTYPE)
        self.head = nn.Linear(2, 1, dtype=DTYPE)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.rand(p.shape, generator=g, dtype=DTYPE) + 0.5)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(x)  # (N, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# --- convergence --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("method", "steps", "tolerance"),
                         [("lsgd", 5, 1e-24), ("gd", 1500, 1e-8)])
def test_converges_on_a_linear_target(seed, method, steps, tolerance):
    # y = 3x - 1 is in the span of [x, 1]: LSGD is exact after its first solve, GD gets there.
    x = torch.linspace(-1.0, 1.0, 32, dtype=DTYPE)[:, None]
    y = 3.0 * x - 1.0
    history = fit(LinearBasis(seed), x, y, method=method, steps=steps, lr=1e-2, progress=False)
    assert history.final_loss < tolerance, f"seed {seed}: final loss {history.final_loss}"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("method", "lr"), [("lsgd", 5e-3), ("gd", 5e-3)])
def test_small_regression_loss_falls_tenfold(seed, method, lr):
    x, y = _data()
    history = fit(_box(seed), x, y, method=method, steps=300, lr=lr, progress=False)
    assert history.final_loss < history.loss[0] / 10, (
        f"seed {seed}: {method} went from {history.loss[0]:.3e} to {history.final_loss:.3e}")


# --- the least-squares head ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("make", [_box, _he, lambda s: _box(s, width=64)],
                         ids=["box16", "he16-rank-deficient", "box64-zero-columns"])
def test_lsgd_head_is_numpy_minimum_norm_solution(seed, make):
    x, y = _data()
    model = make(seed)
    fit(model, x, y, steps=10, progress=False)
    with torch.no_grad():
        A = design_matrix(model.features(x)) / math.sqrt(len(x))  # (N, w + 1)
    expected, *_ = np.linalg.lstsq(A.numpy(), y.numpy() / math.sqrt(len(x)), rcond=None)
    theta = torch.cat([model.head.weight.detach().mT, model.head.bias.detach()[None]])
    scale = float(np.abs(expected).max())
    torch.testing.assert_close(theta, torch.from_numpy(expected), rtol=0, atol=1e-9 * scale,
                               msg=lambda m: f"seed {seed}: {m}")


def _rank_deficient(g, n, w, rank, zero_columns=()):
    A = torch.randn(n, rank, generator=g, dtype=DTYPE) @ torch.randn(rank, w, generator=g,
                                                                     dtype=DTYPE)
    A[:, list(zero_columns)] = 0.0
    return A


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("n", "w", "rank", "zeros"),
                         [(40, 6, 6, ()), (40, 6, 3, (1,)), (40, 60, 20, (0, 7, 30)),
                          (30, 70, 30, (3, 4))])
def test_solve_head_matches_numpy_lstsq(seed, n, w, rank, zeros):
    g = torch.Generator().manual_seed(seed)
    A = _rank_deficient(g, n, w, rank, zeros)
    b = torch.randn(n, 2, generator=g, dtype=DTYPE)
    expected, *_ = np.linalg.lstsq(A.numpy(), b.numpy(), rcond=None)
    theta = solve_head(A, b)
    torch.testing.assert_close(theta, torch.from_numpy(expected), rtol=1e-8, atol=1e-9,
                               msg=lambda m: f"seed {seed}: {m}")
    for column in zeros:  # wide bases drop zero columns: exactly the min-norm coefficient 0
        assert bool((theta[column] == 0).all()) if w >= 48 else theta[column].abs().max() < 1e-12


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("w", [6, 60])
def test_solve_head_batched_equals_one_by_one(seed, w):
    g = torch.Generator().manual_seed(seed)
    A = torch.stack([_rank_deficient(g, 40, w, r, z)
                     for r, z in ((w, ()), (3, (0,)), (4, (1, 2)))])  # (3, 40, w)
    b = torch.randn(3, 40, 1, generator=g, dtype=DTYPE)
    batched = solve_head(A, b)
    for k in range(3):
        torch.testing.assert_close(batched[k], solve_head(A[k], b[k]), rtol=0, atol=0)


def test_solve_head_non_finite_matrix_gives_nan_not_an_error():
    A = torch.ones(2, 5, 3, dtype=DTYPE)
    A[1, 2, 0] = math.nan
    theta = solve_head(A, torch.ones(2, 5, 1, dtype=DTYPE))
    assert torch.isfinite(theta[0]).all() and torch.isnan(theta[1]).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_ls_head_loss_never_above_gd_heads_loss(seed):
    # For the same model state, the LS head minimizes the loss over all heads: check against
    # the head GD has at several points of a GD run.
    x, y = _data()
    gaps = []

    def compare(step, loss, model):
        if step % 20 == 0:
            with torch.no_grad():
                A = design_matrix(model.features(x)) / math.sqrt(len(x))
                theta = solve_head(A, y / math.sqrt(len(x)))
                ls_loss = float(((A @ theta - y / math.sqrt(len(x))) ** 2).sum())
            gaps.append((step, ls_loss, loss))

    fit(_box(seed), x, y, method="gd", steps=200, lr=5e-3, progress=False, callbacks=[compare])
    assert len(gaps) == 11
    for step, ls_loss, gd_loss in gaps:
        assert ls_loss <= gd_loss * (1 + 1e-12), f"seed {seed}, step {step}: {ls_loss} > {gd_loss}"


# --- history semantics --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_lsgd_history_starts_at_the_initial_ls_loss(seed):
    x, y = _data()
    model = _box(seed)
    initial = analysis.initial_basis_loss(model, x, y)
    history = fit(model, x, y, steps=25, progress=False)
    assert isinstance(history, History)
    assert len(history.loss) == len(history.time) == 26
    assert history.loss[0] == pytest.approx(initial, rel=1e-10), f"seed {seed}"
    assert history.method == "lsgd" and history.stop_reason == "steps"
    assert all(b >= a for a, b in zip(history.time, history.time[1:], strict=False))
    # the model is left fitted: its loss is the last entry, its head the LS solution
    assert _mse(model, x, y) == pytest.approx(history.final_loss, rel=1e-10)
    json.dumps(history.settings)  # JSON-able
    assert history.settings["steps"] == 25 and history.settings["width"] == 16


@pytest.mark.parametrize("seed", SEEDS)
def test_gd_history_is_the_loss_after_k_steps(seed):
    x, y = _data()
    model = _box(seed)
    initial = _mse(model, x, y)
    history = fit(model, x, y, method="gd", steps=7, lr=1e-3, progress=False)
    assert history.loss[0] == pytest.approx(initial, rel=1e-12)
    again = _box(seed)
    for k in (3, 7):
        reference = _box(seed)
        fit(reference, x, y, method="gd", steps=k, lr=1e-3, progress=False)
        assert history.loss[k] == pytest.approx(_mse(reference, x, y), rel=1e-12)
    assert _mse(model, x, y) == pytest.approx(history.final_loss, rel=1e-12)
    del again


def test_zero_steps_only_solves_the_head():
    x, y = _data()
    model = _box(0)
    hidden = _params(model)[:-2]
    history = fit(model, x, y, steps=0, progress=False)
    assert len(history.loss) == 1
    for before, after in zip(hidden, _params(model)[:-2], strict=True):
        assert torch.equal(before, after)
    assert _mse(model, x, y) == pytest.approx(history.loss[0], rel=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_multi_output_is_the_sum_of_per_output_losses(seed):
    # eq. 18: one head row per target; the LS solve separates over the outputs.
    x, y = _data(outputs=3)
    model = _box(seed, outputs=3)
    with torch.no_grad():
        A = design_matrix(model.features(x)).numpy()
    per_output = []
    for j in range(3):
        theta, *_ = np.linalg.lstsq(A, y[:, j].numpy(), rcond=None)
        per_output.append(float(((A @ theta - y[:, j].numpy()) ** 2).mean()))
    history = fit(model, x, y, steps=50, progress=False)
    assert history.loss[0] == pytest.approx(sum(per_output), rel=1e-10), f"seed {seed}"
    assert history.final_loss < history.loss[0]
    assert model.head.weight.shape == (3, 16)
    assert _mse(model, x, y) == pytest.approx(history.final_loss, rel=1e-10)


@pytest.mark.parametrize("method", ["lsgd", "gd"])
def test_gd_and_lsgd_fit_multi_output_targets(method):
    x, y = _data(outputs=3)
    history = fit(_box(0, outputs=3), x, y, method=method, steps=200, progress=False)
    assert history.final_loss < history.loss[0] / 5


def test_problem_object_equals_tensors():
    x, y = _data()
    a = fit(_box(0), x, y, steps=10, progress=False)
    b = fit(_box(0), Regression(x, y), steps=10, progress=False)
    assert a.loss == b.loss


def test_data_are_moved_to_the_models_dtype():
    x, y = _data()
    a = fit(_box(0), x, y, steps=5, progress=False)
    b = fit(_box(0), x.float(), y.float(), steps=5, progress=False)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-4)  # the float32 data are rounded


@pytest.mark.parametrize("method", ["lsgd", "gd"])
def test_same_seed_same_history(method):
    x, y = _data()
    first = fit(_box(3), x, y, method=method, steps=40, progress=False)
    second = fit(_box(3), x, y, method=method, steps=40, progress=False)
    assert first.loss == second.loss


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_every_optimizer_decreases_the_loss(optimizer):
    x, y = _data()
    lr = 1e-1 if optimizer == "sgd" else 1e-3
    history = fit(_box(0), x, y, method="gd", optimizer=optimizer, lr=lr, steps=50,
                  progress=False)
    assert history.final_loss < history.loss[0]


def test_optimizer_options_are_passed_through():
    x, y = _data()
    plain = fit(_box(0), x, y, method="gd", optimizer="sgd", lr=0.05, steps=10, progress=False)
    momentum = fit(_box(0), x, y, method="gd", optimizer="sgd", lr=0.05, steps=10,
                   optimizer_options={"momentum": 0.9}, progress=False)
    assert plain.loss[:2] == momentum.loss[:2] and plain.loss[5] != momentum.loss[5]
    assert momentum.settings["optimizer_options"] == {"momentum": 0.9}


# --- stopping, callbacks, metrics, progress -----------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_target_loss_stops_at_the_first_step_below_it(seed):
    x, y = _data()
    full = fit(_box(seed), x, y, steps=100, progress=False)
    target = full.loss[40]
    model = _box(seed)
    history = fit(model, x, y, steps=100, target_loss=target, progress=False)
    first = next(k for k, v in enumerate(full.loss) if v <= target)
    assert history.steps == first and history.stop_reason == "target_loss", f"seed {seed}"
    assert history.loss == full.loss[:first + 1]
    assert _mse(model, x, y) == pytest.approx(history.final_loss, rel=1e-10)


def test_target_is_tested_at_checks_when_checking_every_few_steps():
    # the accelerator setting: losses reach the host every check_every steps
    x, y = _data()
    full = fit(_box(0), x, y, steps=100, progress=False)
    target = full.loss[40]
    model = _box(0)
    history = fit(model, x, y, steps=100, target_loss=target, check_every=8, progress=False)
    assert history.stop_reason == "target_loss" and history.final_loss <= target
    assert history.steps % 8 == 7 and history.loss == full.loss[:history.steps + 1]
    assert _mse(model, x, y) == pytest.approx(history.final_loss, rel=1e-10)


def test_callbacks_see_every_step_and_can_stop():
    x, y = _data()
    seen = []

    def record(step, loss, model):
        seen.append((step, loss))
        return step == 12

    model = _box(0)
    history = fit(model, x, y, steps=50, callbacks=[record], progress=False)
    assert [s for s, _ in seen] == list(range(13))
    assert [v for _, v in seen] == history.loss
    assert history.steps == 12 and history.stop_reason == "callback"
    assert _mse(model, x, y) == pytest.approx(history.final_loss, rel=1e-10)


def test_metrics_are_evaluated_every_metric_every_steps_and_at_the_end():
    x, y = _data()
    history = fit(_box(0), x, y, steps=12, progress=False, metric_every=5,
                  metrics={"mse": lambda m: _mse(m, x, y), "one": lambda m: 1.0})
    assert history.metric_steps == [0, 5, 10, 12]
    assert history.metrics["one"] == [1.0] * 4
    np.testing.assert_allclose(history.metrics["mse"], [history.loss[k] for k in (0, 5, 10, 12)],
                               rtol=1e-10)


def test_progress_bar_runs(capsys):
    x, y = _data()
    fit(_box(0), x, y, steps=60, progress=True)
    assert "LSGD" in capsys.readouterr().err


# --- non-finite losses --------------------------------------------------------------------------


@pytest.mark.parametrize("check_every", [1, 7])
def test_diverging_sgd_raises_and_restores_the_last_finite_state(check_every):
    x, y = _data()
    model = _box(0)
    with pytest.raises(FloatingPointError, match=r"non-finite .* at step \d+") as caught:
        fit(model, x, y, method="gd", optimizer="sgd", lr=1e6, steps=200, progress=False,
            check_every=check_every)
    error = caught.value
    history = error.history
    assert history.stop_reason == "non-finite" and len(history.loss) == error.step + 1
    assert not math.isfinite(history.loss[-1])
    assert all(math.isfinite(v) for v in history.loss[:-1])
    assert f"step {error.step}" in str(error)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # the model holds the state of the step before: its loss is the last finite entry
    assert _mse(model, x, y) == pytest.approx(history.loss[-2], rel=1e-12)


@pytest.mark.parametrize("method", ["lsgd", "gd"])
def test_nan_injected_by_a_callback_is_rolled_back(method):
    x, y = _data()
    clean = fit(_box(1), x, y, method=method, steps=8, progress=False)

    def poison(step, loss, model):
        if step == 5:
            with torch.no_grad():
                model.layers[0].weight[0, 0] = math.nan

    model = _box(1)
    with pytest.raises(FloatingPointError, match="at step 6; the model was restored to step 5"):
        fit(model, x, y, method=method, steps=100, callbacks=[poison], progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert _mse(model, x, y) == pytest.approx(clean.loss[5], rel=1e-12)


def test_non_finite_initial_loss_leaves_the_model_unchanged():
    x, y = _data()
    model = _box(0)
    with torch.no_grad():
        model.layers[0].weight.fill_(1e308)  # finite, but the features overflow
    before = _params(model)
    with pytest.raises(FloatingPointError, match="at step 0; the model is unchanged"):
        fit(model, x, y, steps=10, progress=False)
    for a, b in zip(before, _params(model), strict=True):
        assert torch.equal(a, b)


# --- input validation: every error is raised before any work ------------------------------------


def _bad_calls():
    x, y = _data()
    nan_x = x.clone()
    nan_x[3, 0] = math.nan
    inf_y = y.clone()
    inf_y[5, 0] = math.inf
    return [
        ((x, y[:10]), {}, ValueError, r"N = 64 rows"),
        ((x, torch.cat([y, y], dim=1)), {}, ValueError, "out_features=2"),
        ((nan_x, y), {}, ValueError, "non-finite"),
        ((x, inf_y), {}, ValueError, "non-finite"),
        ((x[:, 0], y), {}, ValueError, r"x\[:, None\]"),
        ((x, y), {"lr": 0.0}, ValueError, "Invalid learning rate"),
        ((x, y), {"lr": -1e-3}, ValueError, "Invalid learning rate"),
        ((x, y), {"lr": math.nan}, ValueError, "Invalid learning rate"),
        ((x, y), {"steps": -1}, ValueError, "steps must be a non-negative integer"),
        ((x, y), {"steps": 2.5}, ValueError, "steps must be a non-negative integer"),
        ((x, y), {"method": "newton"}, ValueError, "valid choices are 'lsgd', 'gd'"),
        ((x, y), {"optimizer": "lbfgs"}, ValueError, "unknown optimizer 'lbfgs'.*'adam'"),
        ((x, y), {"lstsq_method": "cholesky"}, ValueError, "valid choices are 'auto'"),
        ((x, y), {"lstsq_method": "ridge"}, ValueError, "needs ridge > 0"),
        ((x, y), {"target_loss": math.nan}, ValueError, "target_loss"),
        ((x, y), {"metric_every": 0}, ValueError, "metric_every"),
        ((x, y), {"check_every": 0}, ValueError, "check_every"),
        ((x, y), {"rcond": -1.0}, ValueError, "rcond"),
        ((x, y), {"callbacks": lambda *a: None}, TypeError, "sequence of callables"),
        ((x, y), {"metrics": [len]}, TypeError, "metrics must be a dict"),
        ((x,), {}, ValueError, "needs the targets y"),
        ((Regression(x, y), y), {}, ValueError, "not a problem and y"),
    ]


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), _bad_calls(),
                         ids=lambda v: None if not isinstance(v, str) else v[:24])
def test_bad_input_raises_before_any_work(args, kwargs, error, match):
    model = _box(0)
    before = _params(model)
    with pytest.raises(error, match=match):
        fit(model, *args, progress=False, **kwargs)
    for a, b in zip(before, _params(model), strict=True):
        assert torch.equal(a, b)


def test_not_a_basis_network():
    x, y = _data()
    with pytest.raises(TypeError, match="not a basis network"):
        fit(nn.Sequential(nn.Linear(1, 4), nn.ReLU(), nn.Linear(4, 1)), x, y, progress=False)


def test_non_finite_parameters_are_rejected():
    x, y = _data()
    model = _box(0)
    with torch.no_grad():
        model.layers[1].bias[2] = math.inf
    with pytest.raises(ValueError, match="'layers.1.bias'.*NaN or inf"):
        fit(model, x, y, progress=False)


def test_lsgd_needs_trainable_hidden_parameters():
    x, y = _data()
    model = _box(0)
    for p in model.layers.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable hidden parameters.*fit_head_"):
        fit(model, x, y, progress=False)
