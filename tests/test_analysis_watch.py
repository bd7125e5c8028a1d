"""Watching breakpoints during training: records, matching, births/deaths, speeds, density."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import gaussian_kde

from conftest import SEEDS
from deepbasis import MLP, fit
from deepbasis.analysis.spline import spline_of
from deepbasis.analysis.watch import BreakpointWatch, breakpoint_density, match_breakpoints

F64 = torch.float64


def model_with_seed(seed: int, width: int = 8, depth: int = 3) -> MLP:
    torch.manual_seed(seed)
    model = MLP(1, width, depth, dtype=F64)
    with torch.no_grad():  # biases spread so that breakpoints fall inside [−3, 3]
        for layer in model.layers:
            layer.bias.uniform_(-1, 1)
    return model


@pytest.mark.parametrize("seed", SEEDS)
def test_unchanged_parameters_give_zero_speed_and_no_births_or_deaths(seed):
    model = model_with_seed(seed)
    watch = BreakpointWatch(-3.0, 3.0, every=5)
    for step in range(16):  # a loop that never updates the model
        watch(step, 1.0, model)
    assert [r.step for r in watch.records] == [0, 5, 10, 15]
    changes = watch.changes()
    assert set(changes) == {1, 2, 3}
    assert sum(r.breakpoints[1].size for r in watch.records) > 0
    for per_record in changes.values():
        for c in per_record:
            assert c.births == 0 and c.deaths == 0
            assert c.before == c.after == c.displacement.size
            assert np.all(c.speed == 0.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_moving_one_first_layer_bias_moves_that_units_breakpoint_by_delta_over_w(seed):
    model = model_with_seed(seed)
    watch = BreakpointWatch(-3.0, 3.0, every=1)
    watch.record(model, step=0)
    first = watch.records[0]
    unit = int(first.units[1][np.argmin(np.abs(first.breakpoints[1]))])  # one near 0
    w = float(model.layers[0].weight[unit, 0])
    delta = 0.05 * abs(w)  # moves β = −b/w by −δ/w = ∓0.05
    with torch.no_grad():
        model.layers[0].bias[unit] += delta
    watch.record(model, step=4)
    c = watch.change(1, 1)
    assert c.births == 0 and c.deaths == 0 and c.steps == 4
    moved = c.units == unit
    assert moved.sum() == 1
    assert c.moved_to[moved][0] - c.moved_from[moved][0] == pytest.approx(-delta / w, rel=1e-10)
    assert c.displacement[moved][0] == pytest.approx(0.05, rel=1e-10)
    assert c.speed[moved][0] == pytest.approx(0.05 / 4, rel=1e-10)
    assert np.all(c.displacement[~moved] == 0.0)  # the other first-layer units did not move


def test_shallow_network_breakpoints_are_minus_b_over_w():
    torch.manual_seed(0)
    model = MLP(1, 6, 1, dtype=F64)
    rec = BreakpointWatch(-50.0, 50.0).record(model, 0)
    w, b = model.layers[0].weight[:, 0].detach(), model.layers[0].bias.detach()
    beta = (-b / w).numpy()
    inside = np.abs(beta) < 50
    np.testing.assert_allclose(np.sort(rec.breakpoints[1]), np.sort(beta[inside]), rtol=1e-12)
    np.testing.assert_array_equal(np.sort(rec.units[1]), np.sort(np.nonzero(inside)[0]))


def test_records_agree_with_spline_of_and_roughness_sums_by_layer():
    model = model_with_seed(1, width=8, depth=4)
    rec = BreakpointWatch(-3.0, 3.0).record(model, 0, loss=2.5)
    spline = spline_of(model, -3.0, 3.0)
    assert rec.pieces == spline.num_pieces and rec.loss == 2.5
    assert rec.roughness == pytest.approx(spline.roughness(), rel=1e-12)
    assert sum(rec.roughness_by_layer.values()) == pytest.approx(rec.roughness, rel=1e-12)
    for c in spline.crossings:
        np.testing.assert_array_equal(rec.breakpoints[c.layer], c.x.numpy())


def test_matching_with_a_birth_uses_the_closest_assignment():
    x_old, u_old = np.array([0.0, 1.0, 2.0]), np.array([0, 0, 1])
    x_new, u_new = np.array([0.1, 0.5, 1.05]), np.array([0, 0, 0])  # unit 1's breakpoint left
    io, jn = match_breakpoints(x_old, u_old, x_new, u_new)
    assert sorted(zip(io.tolist(), jn.tolist(), strict=True)) == [(0, 0), (1, 2)]


def test_watch_as_a_fit_callback_records_every_k_steps_and_never_stops_training():
    model = model_with_seed(2, width=8, depth=2)
    x = torch.linspace(-3, 3, 64, dtype=F64)[:, None]
    grid = np.linspace(-3, 3, 61)
    watch = BreakpointWatch(-3.0, 3.0, every=10, density_grid=grid)
    history = fit(model, x, torch.sin(x), method="gd", steps=30, lr=1e-3, callbacks=[watch],
                  progress=False)
    assert len(history.loss) == 31
    assert [r.step for r in watch.records] == [0, 10, 20, 30]
    assert [r.loss for r in watch.records] == pytest.approx([history.loss[k] for k in
                                                             (0, 10, 20, 30)])
    h = watch.history()
    assert set(h) >= {"step", "pieces", "roughness", "count_1", "roughness_2"}
    assert watch.records[-1].density.shape == grid.shape
    with pytest.raises(ValueError, match="every must be a positive integer"):
        BreakpointWatch(-1.0, 1.0, every=0)


def test_watch_as_a_fit_metric_matches_the_callback_records():
    x = torch.linspace(-3, 3, 64, dtype=F64)[:, None]
    a, b = model_with_seed(3, width=8, depth=2), model_with_seed(3, width=8, depth=2)
    by_callback = BreakpointWatch(-3.0, 3.0, every=10)
    fit(a, x, torch.sin(x), method="gd", steps=25, lr=1e-3, callbacks=[by_callback],
        progress=False)
    by_metric = BreakpointWatch(-3.0, 3.0, every=10)
    history = fit(b, x, torch.sin(x), method="gd", steps=25, lr=1e-3,
                  metrics={"pieces": by_metric.metric}, metric_every=10, progress=False)
    by_metric.sync(history)
    assert [r.step for r in by_metric.records] == [0, 10, 20, 25]  # fit adds the last step
    assert history.metrics["pieces"] == [r.pieces for r in by_metric.records]
    for ra, rb in zip(by_callback.records, by_metric.records[:3], strict=True):
        assert ra.step == rb.step and ra.loss == pytest.approx(rb.loss, rel=1e-12)
        np.testing.assert_allclose(ra.breakpoints[2], rb.breakpoints[2], rtol=1e-12)
    with pytest.raises(ValueError, match="metric steps"):
        by_metric.sync(history)


@pytest.mark.parametrize("seed", SEEDS)
def test_breakpoint_density_matches_scipy_gaussian_kde(seed):
    rng = np.random.default_rng(seed)
    points = rng.standard_cauchy(40).clip(-5, 5)
    grid = np.linspace(-6, 6, 101)
    h = 0.4
    ours = breakpoint_density(points, grid, bandwidth=h)
    scipy_kde = gaussian_kde(points, bw_method=h / points.std(ddof=1))(grid)
    np.testing.assert_allclose(ours, scipy_kde, rtol=1e-10, atol=1e-14)
    scott = breakpoint_density(points, np.linspace(-60, 60, 20001))
    assert scott.sum() * (120 / 20000) == pytest.approx(1.0, rel=1e-6)
    assert math.isfinite(float(breakpoint_density([0.3], grid).max()))
