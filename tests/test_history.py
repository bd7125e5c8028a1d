"""History: JSON round trip (strict JSON, non-finite values kept), properties, plotting."""

from __future__ import annotations

import json
import math

import pytest
from matplotlib.figure import Figure

from deepbasis import History


def _history() -> History:
    return History(loss=[1.0, 0.5, math.inf, math.nan], time=[0.0, 0.1, 0.2, 0.3],
                   metrics={"rms": [0.3, -math.inf]}, metric_steps=[0, 3], method="gd",
                   settings={"steps": 3, "lr": 1e-3, "optimizer": "adam"},
                   stop_reason="non-finite")


def test_save_load_round_trip(tmp_path):
    history = _history()
    path = history.save(tmp_path / "history.json")
    # strict JSON: no NaN / Infinity tokens
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON token {c}"))
    loaded = History.load(path)
    assert loaded.loss[:3] == history.loss[:3] and math.isnan(loaded.loss[3])
    assert loaded.time == history.time
    assert loaded.metrics["rms"] == [0.3, -math.inf]
    assert loaded.metric_steps == [0, 3]
    assert (loaded.method, loaded.settings, loaded.stop_reason) == ("gd", history.settings,
                                                                    "non-finite")


def test_properties():
    history = History(loss=[4.0, 2.0, 1.0], time=[0.0, 1.0, 2.0])
    assert history.final_loss == 1.0 and history.steps == 2
    assert math.isnan(History(loss=[], time=[]).final_loss)


def test_from_dict_of_to_dict_is_identity_for_finite_values():
    history = History(loss=[3.0, 1.5], time=[0.0, 0.5], metrics={"a": [1.0]}, metric_steps=[1],
                      method="lsgd", settings={"width": 8})
    assert History.from_dict(history.to_dict()) == history


@pytest.mark.parametrize("x", ["step", "time"])
def test_plot_returns_a_figure(x):
    figure = History(loss=[1.0, 0.1, 0.01], time=[0.0, 0.2, 0.5]).plot(x=x)
    assert isinstance(figure, Figure)
    (ax,) = figure.axes
    assert ax.get_yscale() == "log" and len(ax.lines) == 1
    assert list(ax.lines[0].get_ydata()) == [1.0, 0.1, 0.01]


def test_plot_into_given_axes():
    figure = Figure()
    ax = figure.add_subplot()
    History(loss=[1.0, 0.5], time=[0.0, 1.0]).plot(ax=ax, label="a")
    History(loss=[2.0, 0.5], time=[0.0, 1.0], method="gd").plot(ax=ax)
    assert [line.get_label() for line in ax.lines] == ["a", "GD"]


def test_plot_rejects_unknown_axis():
    with pytest.raises(ValueError, match="x must be 'step' or 'time'"):
        History(loss=[1.0], time=[0.0]).plot(x="epoch")
