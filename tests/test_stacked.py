"""The MLP fast path of fit / fit_ensemble: which models take it, and that its hand-written
forward pass computes what MLP.forward computes (domain map, residual layers, activations,
several inputs and outputs) — against the generic engine, on non-chaotic GD + SGD runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import deepbasis.train.engines.stacked as stacked
from conftest import SEEDS
from deepbasis import MLP, Regression, fit, fit_ensemble, init
from deepbasis.train import D, LinearProblem, Term

DTYPE = torch.float64


def _problem(seed: int, d: int, m: int, n: int = 40):
    g = torch.Generator().manual_seed(seed)
    x = 3.0 * torch.rand(n, d, dtype=DTYPE, generator=g) - 1.0  # (N, d) in [-1, 2]
    y = torch.cos(x.sum(1, keepdim=True)) * torch.arange(1, m + 1, dtype=DTYPE)  # (N, m)
    return x, y


def test_which_models_take_the_fast_path():
    x, y = _problem(0, 1, 1)
    problem = Regression(x, y)
    model = MLP(1, 8, 2, dtype=DTYPE)
    assert stacked.stackable(model, problem)
    assert not stacked.stackable(MLP(1, 1, 2, dtype=DTYPE), problem)  # width 1
    handle = model.layers[0].register_forward_hook(lambda *args: None)
    assert not stacked.stackable(model, problem)  # hooks must run: the generic path calls them
    handle.remove()
    pinn = LinearProblem([Term(D(0), x, torch.zeros(len(x), 1, dtype=DTYPE))])
    assert not stacked.stackable(model, pinn)

    class Wrapped(MLP):
        pass

    assert not stacked.stackable(Wrapped(1, 8, 2, dtype=DTYPE), problem)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("d", "m", "activation", "residual", "method"), [
    (1, 1, "relu", False, "gd"), (1, 2, "tanh", True, "gd"), (3, 1, "relu", True, "lsgd"),
    (2, 3, "sin", False, "gd"), (1, 1, "gelu", True, "lsgd")])
def test_fast_path_matches_the_generic_engine(monkeypatch, seed, d, m, activation, residual,
                                              method):
    x, y = _problem(seed, d, m)

    def make():
        model = MLP(d, 6, 3, m, activation=activation, residual=residual,
                    domain=(-1.0, 2.0), dtype=DTYPE)
        return init.he_(model, generator=seed)

    settings = dict(method=method, optimizer="sgd", lr=0.01, steps=10, progress=False)
    fast = make()
    fast_history = fit(fast, x, y, **settings)
    monkeypatch.setattr(stacked, "stackable", lambda model, problem: False)
    generic = make()
    generic_history = fit(generic, x, y, **settings)
    # Different kernels (broadcast products vs addmm), so equal up to rounding, which these
    # short, well-conditioned runs keep small.
    np.testing.assert_allclose(fast_history.loss, generic_history.loss, rtol=1e-9,
                               err_msg=f"seed {seed}")
    for (name, p), q in zip(fast.named_parameters(), generic.parameters(), strict=True):
        # An LS head is as sensitive as its basis is ill-conditioned (cond ~ 5e4 here at seed
        # 0: heads of size ~300 differ by 7e-8), so it is compared relative to its size.
        atol = 1e-8 * float(q.detach().abs().max()) if name.startswith("head") else 1e-11
        torch.testing.assert_close(p, q, rtol=1e-9, atol=atol, msg=f"{name}, seed {seed}")
    # and the model's own forward pass gives the recorded final loss
    with torch.no_grad():
        mse = float(((fast(x) - y) ** 2).mean(0).sum())
    assert mse == pytest.approx(fast_history.final_loss, rel=1e-9)


def test_frozen_parameters_stay_and_members_still_match():
    x = torch.linspace(0, 1, 64, dtype=DTYPE)[:, None]  # (N, 1) on Box's unit interval
    y = torch.sin(2 * math.pi * x)

    def make(seed):
        model = init.box_(MLP(1, 10, 3, dtype=DTYPE), generator=seed)
        model.layers[0].requires_grad_(False)
        return model

    result = fit_ensemble(make, x, y, seeds=[3, 4], steps=15, progress=False)
    for member, seed in enumerate([3, 4]):
        initial = make(seed)
        torch.testing.assert_close(result.models[member].layers[0].weight,
                                   initial.layers[0].weight, rtol=0, atol=0)
        single = make(seed)
        history = fit(single, x, y, steps=15, progress=False)
        assert history.loss == result.histories[member].loss, f"seed {seed}"
        assert history.final_loss < history.loss[0]
