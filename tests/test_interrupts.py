"""Ctrl-C and exceptions during training leave the model at its last completed step (issue 17).

Each test interrupts a fit at a known step and compares the model with an uninterrupted fit of
that many steps: bit for bit (same engine, same operations), hidden layers and head.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SEEDS
from deepbasis import MLP, BasisRegressor, fit, fit_ensemble, init
from deepbasis.train.engines.single import SingleEngine
from deepbasis.train.engines.stacked import StackedMLPEngine

SRC = Path(__file__).resolve().parents[1] / "src"


def _data():
    x = torch.linspace(0, 1, 40, dtype=torch.float64)[:, None]
    return x, torch.sin(2 * math.pi * x)


def _model(seed, hooked=False):
    model = init.box_(MLP(1, 8, 3, dtype=torch.float64), generator=seed)
    if hooked:  # a forward hook takes the model off the stacked fast path (SingleEngine)
        model.register_forward_hook(lambda module, args, out: None)
    return model


def _same(a, b):
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name


def _interrupt_at(step):
    def callback(k, loss, model):
        if k == step:
            raise KeyboardInterrupt
    return callback


@pytest.mark.parametrize("method", ["lsgd", "gd"])
@pytest.mark.parametrize("hooked", [False, True], ids=["stacked", "single"])
@pytest.mark.parametrize("seed", SEEDS[:1])
def test_interrupt_in_a_callback_leaves_the_model_at_that_step(seed, hooked, method):
    x, y = _data()
    model = _model(seed, hooked)
    with pytest.raises(KeyboardInterrupt) as caught:
        fit(model, x, y, method=method, steps=50, progress=False, callbacks=[_interrupt_at(7)])
    history = caught.value.history
    assert history.stop_reason == "interrupted" and len(history.loss) == 8
    reference = _model(seed, hooked)
    expected = fit(reference, x, y, method=method, steps=7, progress=False)
    _same(model, reference)
    assert history.loss == expected.loss


def _raising(original, at, error=KeyboardInterrupt):
    """An engine method that raises ``error`` on its ``at``-th call (once)."""
    calls = []

    def method(engine, *args):
        calls.append(1)
        if len(calls) == at:
            raise error
        return original(engine, *args)

    return method


@pytest.mark.parametrize("engine", [StackedMLPEngine, SingleEngine])
@pytest.mark.parametrize("method", ["lsgd", "gd"])
def test_interrupt_in_a_forward_pass_leaves_hidden_layers_and_a_matching_head(
        monkeypatch, engine, method):
    # The 6th forward pass is that of step 5: the hidden layers have had 5 updates and the
    # LSGD head in the engine is still that of step 4 (the stale head of the issue).
    x, y = _data()
    hooked = engine is SingleEngine
    monkeypatch.setattr(engine, "forward", _raising(engine.forward, at=6))
    model = _model(SEEDS[0], hooked)
    with pytest.raises(KeyboardInterrupt) as caught:
        fit(model, x, y, method=method, steps=50, progress=False)
    monkeypatch.undo()
    reference = _model(SEEDS[0], hooked)
    expected = fit(reference, x, y, method=method, steps=5, progress=False)
    _same(model, reference)
    assert caught.value.history.loss == expected.loss


def test_ctrl_c_during_an_optimizer_step_is_held_until_the_step_is_done(monkeypatch):
    x, y = _data()
    original = StackedMLPEngine.step
    calls = []

    def step(engine):
        calls.append(1)
        if len(calls) == 4:  # Ctrl-C arrives in the middle of the 4th update
            os.kill(os.getpid(), signal.SIGINT)
        return original(engine)

    monkeypatch.setattr(StackedMLPEngine, "step", step)
    model = _model(SEEDS[0])
    with pytest.raises(KeyboardInterrupt) as caught:
        fit(model, x, y, steps=50, progress=False)
    monkeypatch.undo()
    reference = _model(SEEDS[0])
    fit(reference, x, y, steps=4, progress=False)
    _same(model, reference)
    assert len(caught.value.history.loss) == 5


def test_an_error_in_a_step_falls_back_to_the_snapshot(monkeypatch):
    # Half a step cannot be completed: the model returns to the last snapshot (step 0 here).
    x, y = _data()
    monkeypatch.setattr(StackedMLPEngine, "step",
                        _raising(StackedMLPEngine.step, at=3, error=RuntimeError("boom")))
    model = _model(SEEDS[0])
    with pytest.raises(RuntimeError, match="boom") as caught:
        fit(model, x, y, steps=50, progress=False)
    monkeypatch.undo()
    reference = _model(SEEDS[0])
    fit(reference, x, y, steps=0, progress=False)
    _same(model, reference)
    assert len(caught.value.history.loss) == 1


@pytest.mark.parametrize("hooked", [False, True], ids=["stacked", "vmap"])
def test_interrupted_ensemble_members_are_at_the_step_and_the_result_is_attached(hooked):
    x, y = _data()
    seeds = SEEDS[:2]

    def make(seed):
        return _model(seed, hooked)

    with pytest.raises(KeyboardInterrupt) as caught:
        fit_ensemble(make, x, y, seeds=seeds, steps=30, progress=False,
                     callbacks=[_interrupt_at(4)])
    result = caught.value.result
    expected = fit_ensemble(make, x, y, seeds=seeds, steps=4, progress=False)
    for got, want, history in zip(result.models, expected.models, result.histories,
                                  strict=True):
        _same(got, want)
        assert history.stop_reason == "interrupted" and len(history.loss) == 5


_CHILD = textwrap.dedent("""
    import json, math, sys, torch
    from deepbasis import MLP, fit, init
    torch.set_num_threads(1)
    x = torch.linspace(0, 1, 200, dtype=torch.float64)[:, None]
    y = torch.sin(2 * math.pi * x)
    make = lambda: init.box_(MLP(1, 16, 3, dtype=torch.float64), generator=0)
    model = make()
    def ready(step, loss, m):
        if step == 20:
            print("ready", flush=True)
    try:
        fit(model, x, y, steps=10**7, progress=False, callbacks=[ready])
    except KeyboardInterrupt as error:
        history = error.history
        reference = make()
        fit(reference, x, y, steps=len(history.loss) - 1, progress=False)
        same = all(torch.equal(a, b) for a, b in
                   zip(model.state_dict().values(), reference.state_dict().values()))
        trained = not torch.equal(model.layers[0].weight, make().layers[0].weight)
        print(json.dumps({"steps": len(history.loss) - 1, "same": same, "trained": trained,
                          "reason": history.stop_reason}), flush=True)
""")


def test_sigint_to_a_process_mid_fit_keeps_the_training():
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    report = json.loads(out.strip().splitlines()[-1])
    assert report["steps"] >= 20 and report["reason"] == "interrupted", err
    assert report["trained"] and report["same"], report


def test_interrupted_refit_leaves_the_regressor_as_it_was(monkeypatch):
    fit_module = importlib.import_module("deepbasis.train.fit")

    rng = np.random.default_rng(SEEDS[0])
    X = rng.uniform(0, 1, (60, 2))
    y = X[:, 0] - X[:, 1] ** 2
    regressor = BasisRegressor(activation="relu", steps=20, random_state=0).fit(X, y)
    before = {k: v for k, v in vars(regressor).items() if k.endswith("_")}
    weights = {k: v.clone() for k, v in regressor.model_.state_dict().items()}
    predictions = regressor.predict(X)

    original = fit_module.fit

    def interrupted(*args, callbacks=(), **kwargs):  # the estimator's own callbacks stay
        return original(*args, **kwargs, callbacks=[*callbacks, _interrupt_at(5)])

    monkeypatch.setattr(fit_module, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        regressor.fit(1000 * X, 1000 * y)  # new scaling, interrupted mid-training
    after = {k: v for k, v in vars(regressor).items() if k.endswith("_")}
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key] is value, key
    _same_weights = all(torch.equal(weights[k], v)
                        for k, v in regressor.model_.state_dict().items())
    assert _same_weights
    np.testing.assert_array_equal(regressor.predict(X), predictions)


def test_failed_refit_keeps_the_previous_fit():
    X = np.linspace(0, 1, 30)[:, None]
    regressor = BasisRegressor(activation="relu", steps=5, random_state=0).fit(X, 2 * X[:, 0])
    before = dict(vars(regressor))
    with pytest.raises(ValueError, match="NaN"):
        regressor.fit(np.hstack([X, X]), np.full(30, np.nan))
    assert vars(regressor) == before
