"""fit_ensemble: each batched member equals a separate fit with its seed (float64, CPU), members
stop independently (target, callback, non-finite loss), and bad input is rejected."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import SEEDS
from deepbasis import MLP, EnsembleResult, Regression, fit, fit_ensemble, init

DTYPE = torch.float64


def _data(n: int = 64, outputs: int = 1):
    x = torch.linspace(0.0, 1.0, n, dtype=DTYPE)[:, None]  # (N, 1)
    y = torch.cat([torch.sin(2 * math.pi * x), x**2][:outputs], dim=1)  # (N, m)
    return x, y


def _make(width: int = 8, depth: int = 2, outputs: int = 1):
    return lambda seed: init.box_(MLP(1, width, depth, outputs, dtype=DTYPE), generator=seed)


def _max_param_diff(a, b) -> float:
    return max(float((p - q).detach().abs().max())
               for p, q in zip(a.parameters(), b.parameters(), strict=True))


def _max_rel_loss_diff(a, b) -> float:
    assert len(a) == len(b)
    return max(abs(u - v) / abs(v) for u, v in zip(a, b, strict=True))


# (width, depth, in_features, outputs, activation, residual, method, optimizer, lr): the MLP fast
# path (deepbasis.train.engines.stacked) gives every member the bits of its separate run, including
# LSGD + Adam, whose dynamics amplify a one-ulp difference to O(1) within tens of steps.
CONFIGS = [
    (8, 2, 1, 1, "relu", False, "lsgd", "adam", 5e-3),
    (32, 4, 1, 1, "relu", False, "lsgd", "adam", 5e-3),
    (64, 3, 1, 1, "relu", False, "lsgd", "adam", 5e-3),  # zero columns dropped per member
    (5, 3, 2, 1, "relu", True, "lsgd", "adam", 5e-3),
    (16, 3, 3, 2, "tanh", False, "lsgd", "adam", 5e-3),
    (7, 2, 1, 3, "tanh", True, "gd", "rmsprop", 1e-3),
    (12, 3, 1, 1, "relu", False, "gd", "adamw", 1e-3),
    (20, 4, 2, 2, "relu", True, "lsgd", "sgd", 0.05),
    (2, 2, 1, 1, "relu", False, "lsgd", "adam", 5e-3),
    (9, 2, 4, 1, "gelu", False, "gd", "adam", 1e-3),
]


def _random_data(seed: int, n: int, d: int, m: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, dtype=DTYPE, generator=g)  # (N, d)
    y = torch.sin(2 * math.pi * x.sum(1, keepdim=True)) * torch.arange(1, m + 1, dtype=DTYPE)
    return x, y  # (N, d), (N, m)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_members_equal_separate_runs(seed, config):
    width, depth, d, m, activation, residual, method, optimizer, lr = config
    x, y = _random_data(seed, n=50 + 13 * d, d=d, m=m)  # N·w rarely a multiple of the SIMD width

    def make(s):
        model = MLP(d, width, depth, m, activation=activation, residual=residual, dtype=DTYPE)
        return init.he_(model, generator=s) if activation != "relu" else \
            init.box_(model, generator=s)

    seeds = [seed, seed + 10, seed + 20]
    settings = dict(method=method, optimizer=optimizer, lr=lr, steps=40, progress=False)
    result = fit_ensemble(make, x, y, seeds=seeds, **settings)
    assert isinstance(result, EnsembleResult) and result.seeds == seeds
    assert result.losses.shape == (3, 41) and result.failed == {}
    for member, s in enumerate(seeds):
        single = make(s)
        history = fit(single, x, y, **settings)
        np.testing.assert_allclose(result.losses[member], history.loss, rtol=1e-10,
                                   err_msg=f"seed {s}")
        assert _max_param_diff(result.models[member], single) < 1e-10, f"seed {s}"
        # stronger than asked, and what the fast path is built for: the same bits
        assert result.histories[member].loss == history.loss, f"seed {s}"


class _TwoLayer(torch.nn.Module):
    """A basis network that is not an MLP: takes the generic (vmap) ensemble engine.

    Ramps with breakpoints spread over [0, 1] (a well-conditioned basis), mixed by a
    near-identity second layer; the seed perturbs both layers.
    """

    def __init__(self, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.inner = torch.nn.Linear(1, 6, dtype=DTYPE)
        self.outer = torch.nn.Linear(6, 6, dtype=DTYPE)
        self.head = torch.nn.Linear(6, 1, dtype=DTYPE)
        with torch.no_grad():
            self.inner.weight.fill_(1.0)
            self.inner.bias.copy_(-torch.linspace(0.0, 0.9, 6, dtype=DTYPE)
                                  + 0.05 * torch.rand(6, dtype=DTYPE, generator=g))
            self.outer.weight.copy_(torch.eye(6, dtype=DTYPE)
                                    + 0.1 * torch.randn(6, 6, dtype=DTYPE, generator=g))
            self.outer.bias.zero_()
            self.head.weight.zero_()
            self.head.bias.zero_()

    def features(self, x):
        return torch.relu(self.outer(torch.relu(self.inner(x))))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("method", ["lsgd", "gd"])
def test_generic_engine_members_equal_separate_runs(seed, method):
    # The generic engine (vmap) rounds differently from a separate run: it is "up to rounding"
    # per step. GD keeps the difference at rounding level over many steps. LSGD's head solves
    # amplify it, on some seeds chaotically (seed 3, 20 SGD steps, AMD EPYC with MKL: 0.31 in
    # the parameters; seeds 0-2: ~1e-7), so LSGD is compared over 3 steps, where the
    # per-step contract shows (deepbasis.train.engines.vmap).
    x, y = _data()
    seeds = [seed, seed + 1]
    steps = 20 if method == "gd" else 3
    result = fit_ensemble(_TwoLayer, x, y, seeds=seeds, method=method, optimizer="sgd",
                          lr=0.02, steps=steps, progress=False)
    for member, s in enumerate(seeds):
        single = _TwoLayer(s)
        history = fit(single, x, y, method=method, optimizer="sgd", lr=0.02, steps=steps,
                      progress=False)
        loss_tol, param_tol = (1e-7, 1e-5) if method == "lsgd" else (1e-10, 1e-10)
        np.testing.assert_allclose(result.losses[member], history.loss, rtol=loss_tol,
                                   err_msg=f"seed {s}")
        assert _max_param_diff(result.models[member], single) < param_tol, f"seed {s}"


def test_multi_output_and_problem_object():
    x, y = _data(outputs=2)
    make = _make(outputs=2)
    a = fit_ensemble(make, Regression(x, y), seeds=[0, 1], steps=5, progress=False)
    b = fit(make(1), x, y, steps=5, progress=False)
    assert _max_rel_loss_diff(a.histories[1].loss, b.loss) < 1e-10


def test_wide_members_with_different_zero_columns():
    # Width 64: zero feature columns are dropped per member before the LS solve.
    x, y = _data()
    make = _make(width=64)
    result = fit_ensemble(make, x, y, seeds=[0, 1], steps=5, method="lsgd", optimizer="sgd",
                          lr=0.05, progress=False)
    for member, seed in enumerate([0, 1]):
        single = make(seed)
        history = fit(single, x, y, steps=5, method="lsgd", optimizer="sgd", lr=0.05,
                      progress=False)
        assert _max_rel_loss_diff(result.histories[member].loss, history.loss) < 1e-10


def test_target_loss_stops_members_independently():
    x, y = _data()
    make = _make()
    full = fit_ensemble(make, x, y, seeds=[0, 1, 2], steps=60, progress=False)
    target = float(np.median(full.losses[:, 30]))
    result = fit_ensemble(make, x, y, seeds=[0, 1, 2], steps=60, target_loss=target,
                          progress=False)
    for member, seed in enumerate([0, 1, 2]):
        single = make(seed)
        history = fit(single, x, y, steps=60, target_loss=target, progress=False)
        got = result.histories[member]
        assert got.stop_reason == history.stop_reason and len(got.loss) == len(history.loss)
        assert _max_rel_loss_diff(got.loss, history.loss) < 1e-10
        assert np.isnan(result.losses[member, len(got.loss):]).all()
        # the member's model is the state at which it stopped
        with torch.no_grad():
            mse = float(((result.models[member](x) - y) ** 2).mean())
        assert mse == pytest.approx(got.final_loss, rel=1e-9)


@pytest.mark.parametrize("method", ["lsgd", "gd"])
def test_non_finite_member_is_frozen_at_its_last_finite_state(method):
    x, y = _data()
    make = _make()

    created, victim = [], []

    def make_recorded(seed):
        created.append(make(seed))
        return created[-1]

    def poison(step, loss, model):  # callbacks get each member's own model object
        if step == 4 and model is victim[0]:
            with torch.no_grad():
                model.layers[0].weight[0, 0] = math.nan

    victim.append(None)
    result = fit_ensemble(lambda seed: _victim(make_recorded(seed), seed, victim), x, y,
                          seeds=[10, 11, 12], steps=15, method=method, optimizer="sgd", lr=0.05,
                          callbacks=[poison], progress=False)
    assert result.failed == {1: 5}
    failed = result.histories[1]
    assert failed.stop_reason == "non-finite" and len(failed.loss) == 6
    assert math.isnan(failed.loss[-1])
    assert all(torch.isfinite(p).all() for p in result.models[1].parameters())
    # the same run on its own raises, restored to the same state
    single = make(11)
    victim[0] = single
    with pytest.raises(FloatingPointError, match="at step 5"):
        fit(single, x, y, steps=15, method=method, optimizer="sgd", lr=0.05,
            callbacks=[poison], progress=False)
    assert _max_param_diff(result.models[1], single) < 1e-10
    # the others are untouched by their neighbour's failure
    for member, seed in ((0, 10), (2, 12)):
        other = make(seed)
        history = fit(other, x, y, steps=15, method=method, optimizer="sgd", lr=0.05,
                      progress=False)
        assert _max_rel_loss_diff(result.histories[member].loss, history.loss) < 1e-10
        assert _max_param_diff(result.models[member], other) < 1e-10


def _victim(model, seed, victim):
    if seed == 11:
        victim[0] = model
    return model


def test_member_failing_at_step_zero_keeps_its_initial_state():
    x, y = _data()
    base = _make()

    def make(seed):
        model = base(seed)
        if seed == 1:
            with torch.no_grad():
                model.layers[0].weight.fill_(1e308)  # finite, but the features overflow
        return model

    result = fit_ensemble(make, x, y, seeds=[0, 1], steps=5, progress=False)
    assert result.failed == {1: 0} and len(result.histories[1].loss) == 1
    for p, q in zip(result.models[1].parameters(), make(1).parameters(), strict=True):
        assert torch.equal(p, q)
    assert len(result.histories[0].loss) == 6


def test_callbacks_and_metrics_see_each_members_model():
    x, y = _data()
    make = _make()
    created = []

    def make_recorded(seed):
        created.append(make(seed))
        return created[-1]

    def stop_first(step, loss, model):
        return step == 3 and model is created[0]

    def mse(model):
        with torch.no_grad():
            return float(((model(x) - y) ** 2).mean())

    result = fit_ensemble(make_recorded, x, y, seeds=[0, 1], steps=6, callbacks=[stop_first],
                          metric_every=2, metrics={"mse": mse}, progress=False)
    assert [h.stop_reason for h in result.histories] == ["callback", "steps"]
    assert result.histories[0].steps == 3 and result.histories[1].steps == 6
    assert result.histories[0].metric_steps == [0, 2, 3]
    assert result.histories[1].metric_steps == [0, 2, 4, 6]
    for history in result.histories:
        np.testing.assert_allclose(history.metrics["mse"],
                                   [history.loss[k] for k in history.metric_steps], rtol=1e-10)


def test_bad_input():
    x, y = _data()
    make = _make()
    with pytest.raises(ValueError, match="seeds is empty"):
        fit_ensemble(make, x, y, seeds=[], progress=False)
    with pytest.raises(TypeError, match="seeds must be"):
        fit_ensemble(make, x, y, seeds=3, progress=False)
    with pytest.raises(TypeError, match="make_model must be a callable"):
        fit_ensemble(None, x, y, seeds=[0], progress=False)
    with pytest.raises(ValueError, match="member 1 does not have the architecture"):
        fit_ensemble(lambda s: _make(width=8 + s)(s), x, y, seeds=[0, 1], progress=False)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        fit_ensemble(make, x, y, seeds=[0], lr=0, progress=False)
    with pytest.raises(ValueError, match="N = 64 rows"):
        fit_ensemble(make, x, y[:5], seeds=[0], progress=False)
