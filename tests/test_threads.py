"""The thread policy: one thread for small fits, set only for the call, restored on errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import deepbasis as db
from deepbasis.train.threads import AUTO_SINGLE_THREAD_WORK, auto_threads, thread_policy


@pytest.fixture
def two_threads():
    """The process runs with 2 threads (as PyTorch's default would on a 2-core machine)."""
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(1)


def _data(n=32):
    x = torch.linspace(0, 1, n, dtype=torch.float64)[:, None]
    return x, torch.sin(2 * math.pi * x)


def _model(seed=0):
    return db.init.box_(db.MLP(1, 8, 2, dtype=torch.float64), generator=seed)


def _threads_seen():
    seen = []

    def callback(step, loss, model):
        seen.append(torch.get_num_threads())

    return seen, callback


def test_auto_is_one_thread_below_the_bound_and_leaves_larger_work():
    assert auto_threads(AUTO_SINGLE_THREAD_WORK / 2) == 1
    assert auto_threads(AUTO_SINGLE_THREAD_WORK * 2) is None
    assert auto_threads(10, device="meta") is None  # only CPU work is affected


def test_thread_policy_restores_on_exception(two_threads):
    with pytest.raises(RuntimeError, match="boom"), thread_policy(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == two_threads
    with thread_policy(None) as used:
        assert used == two_threads
    with pytest.raises(ValueError, match="threads must be 'auto', None or a positive int"):
        with thread_policy(0):
            pass


@pytest.mark.parametrize("threads, inside", [("auto", 1), (1, 1), (3, 3), (None, 2)])
def test_fit_applies_threads_only_during_the_call(two_threads, threads, inside):
    x, y = _data()
    seen, callback = _threads_seen()
    db.fit(_model(), x, y, steps=3, progress=False, callbacks=[callback], threads=threads)
    assert set(seen) == {inside}
    assert torch.get_num_threads() == two_threads


def test_fit_ensemble_applies_threads_only_during_the_call(two_threads):
    x, y = _data()
    seen, callback = _threads_seen()
    db.fit_ensemble(_model, x, y, seeds=[0, 1], steps=3, progress=False, callbacks=[callback])
    assert set(seen) == {1}
    assert torch.get_num_threads() == two_threads


def test_fit_restores_threads_when_training_fails(two_threads):
    x, y = _data()

    def explode(step, loss, model):
        assert torch.get_num_threads() == 3
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        db.fit(_model(), x, y, steps=3, progress=False, callbacks=[explode], threads=3)
    assert torch.get_num_threads() == two_threads


def test_fit_rejects_bad_threads():
    x, y = _data()
    with pytest.raises(ValueError, match="threads must be 'auto', None or a positive int, "
                                         "got 'many'"):
        db.fit(_model(), x, y, steps=1, progress=False, threads="many")


@pytest.mark.parametrize("threads, inside", [("auto", 1), (3, 3), (None, 2)])
def test_regressor_applies_threads_only_during_fit(two_threads, monkeypatch, threads, inside):
    from deepbasis.estimator.regressor import BasisRegressor

    seen = []
    fit = BasisRegressor._fit

    def spy(self, *args):  # (X, y, sample_weight, settings)
        seen.append(torch.get_num_threads())
        return fit(self, *args)

    monkeypatch.setattr(BasisRegressor, "_fit", spy)
    X = np.linspace(0, 1, 20)[:, None]
    BasisRegressor(steps=2, activation="relu", threads=threads).fit(X, X[:, 0])
    assert seen == [inside]
    assert torch.get_num_threads() == two_threads
    with pytest.raises(ValueError, match="contains NaN"):  # restored on errors too
        BasisRegressor(steps=2, threads=threads).fit(X, np.full(20, np.nan))
    assert torch.get_num_threads() == two_threads


@pytest.mark.parametrize("flag, inside", [((), 1), (("--threads", "3"), 3)])
def test_cli_fit_applies_threads_only_during_the_fit(two_threads, monkeypatch, tmp_path, flag,
                                                     inside):
    from typer.testing import CliRunner

    from deepbasis.cli import app
    from deepbasis.estimator.regressor import BasisRegressor

    seen = []
    fit = BasisRegressor._fit

    def spy(self, *args):  # (X, y, sample_weight, settings)
        seen.append(torch.get_num_threads())
        return fit(self, *args)

    monkeypatch.setattr(BasisRegressor, "_fit", spy)
    data = tmp_path / "d.csv"
    data.write_text("x,y\n" + "".join(f"{k / 19},{(k / 19) ** 2}\n" for k in range(20)))
    done = CliRunner().invoke(app, ["fit", str(data), "-t", "y", "-o", str(tmp_path / "m"),
                                    "--steps", "2", "--width", "4", "--depth", "1",
                                    "--no-progress", *flag])
    assert done.exit_code == 0, done.output
    assert seen == [inside]
    assert torch.get_num_threads() == two_threads
