"""Finite but extreme data (issue 17, 3): huge targets are scaled without overflow, and data a
model cannot represent get an error that says so (not "remove or impute NaN rows")."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from deepbasis.cli import app
from deepbasis.estimator import BasisRegressor


def _curve(n=50):
    x = np.linspace(0, 1, n)[:, None]
    return x, np.sin(3 * x[:, 0])


def _regressor(**settings):
    return BasisRegressor(width=8, depth=2, steps=20, activation="relu", random_state=0,
                          **settings)


@pytest.mark.parametrize("size", [1e200, 1e300, -1e303])
def test_huge_finite_targets_fit_like_ordinary_ones(size):
    X, y = _curve()
    reference = _regressor().fit(X, y)
    regressor = _regressor().fit(X, size * y)
    prediction = regressor.predict(X)
    assert np.isfinite(prediction).all()
    assert np.isfinite(regressor.y_mean_).all() and np.isfinite(regressor.y_scale_).all()
    # The same fit in other units (R² in units of ``size``; scikit-learn's score overflows).
    r2 = 1 - ((prediction / size - y) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    np.testing.assert_allclose(r2, reference.score(X, y), atol=1e-6)


@pytest.mark.parametrize(("size", "dtype"), [(1.7e308, "float64"), (1e200, "float32")])
def test_targets_a_model_cannot_hold_are_an_error_before_training(monkeypatch, size, dtype):
    import importlib

    monkeypatch.setattr(importlib.import_module("deepbasis.train.fit"), "fit", None)  # unused
    X, y = _curve()
    with pytest.raises(ValueError, match=rf"targets reach \|y\| = .* every value is finite.*"
                                         rf"{dtype}.*Rescale y") as caught:
        _regressor(dtype=dtype).fit(X, size * y)
    assert "impute" not in str(caught.value)


@pytest.mark.parametrize(("low", "size", "dtype"), [(-1.0, 1e308, "float64"),
                                                    (0.0, 1e39, "float32")])
def test_inputs_whose_range_overflows_are_named(low, size, dtype):
    X = np.linspace(0, 1, 30)[:, None] * [1.0, 1.0]
    X[:, 1] = np.linspace(low, 1.0, 30) * size  # every value finite
    with pytest.raises(ValueError, match=rf"input column 1 spans .* every value is finite.*"
                                         rf"does not fit in {dtype}.*Rescale the column") as c:
        _regressor(dtype=dtype).fit(X, X[:, 0])
    assert "impute" not in str(c.value)


def test_huge_inputs_within_range_still_fit():
    X, y = _curve()
    regressor = _regressor().fit(1e300 * (2 * X - 1), y)
    assert regressor.score(1e300 * (2 * X - 1), y) > 0.99


def test_fit_command_reports_finite_errors_for_huge_targets(tmp_path):
    x, y = _curve(60)
    data = tmp_path / "d.csv"
    rows = zip(x[:, 0].tolist(), (1e200 * y).tolist(), strict=True)
    data.write_text("x,y\n" + "".join(f"{a!r},{b!r}\n" for a, b in rows))
    done = CliRunner().invoke(app, ["fit", str(data), "-t", "y", "--steps", "10",
                                    "--no-progress", "-o", str(tmp_path / "m")])
    assert done.exit_code == 0, done.output
    rows = [line for line in done.output.splitlines() if line.startswith("y ")]
    assert rows and all("inf" not in row and "nan" not in row for row in rows), done.output
    done = CliRunner().invoke(app, ["predict", str(tmp_path / "m.safetensors"), str(data),
                                    "-o", str(tmp_path / "p.csv")])
    assert done.exit_code == 0, done.output
