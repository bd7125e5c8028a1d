"""The Cyr et al. (2020) training experiments: quick profiles end to end, and their helpers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import SEEDS
from deepbasis.experiments import get_experiment
from deepbasis.experiments.cyr2020._common import (
    basis_diagnostics,
    build_model,
    data,
    initial_basis_loss,
    subsample,
    train_cell,
)
from deepbasis.runner.runner import run_experiment

TRAINING = ["cyr2020.fig3", "cyr2020.fig5", "cyr2020.fig7", "cyr2020.fig9", "cyr2020.fig10",
            "cyr2020.fig11"]
ALL = [*TRAINING, "cyr2020.fig14", "cyr2020.table1"]
PNG = b"\x89PNG\r\n\x1a\n"
RECORD_FIELDS = {"seed", "initial_ls_loss", "loss_steps", "loss", "final_loss", "min_loss",
                 "rms", "rms_per_output", "diverged", "steps_run"}


@pytest.mark.parametrize("experiment_id", ALL)
def test_quick_profile_writes_figures_claims_and_records(experiment_id, tmp_path):
    result = run_experiment(experiment_id, "quick", tmp_path, progress=False)
    params = get_experiment(experiment_id).params("quick")
    cells = get_experiment(experiment_id).cells(params)
    assert len(result.records) == sum(len(c.seeds) for c in cells)
    assert result.report.figures
    for figure in result.report.figures:
        assert (tmp_path / figure).read_bytes()[:8] == PNG, figure
    claims = json.loads((tmp_path / "claims.json").read_text())
    assert claims
    for claim in claims:
        assert isinstance(claim["passed"], bool), claim
        assert claim["value"] is not None, claim
        assert claim["figure"] in result.report.figures, claim
    for record in result.records:
        assert isinstance(record["seed"], int)
        if experiment_id in TRAINING:
            assert RECORD_FIELDS <= set(record), set(record) ^ RECORD_FIELDS
            steps = record["settings"]["steps"]
            assert record["loss_steps"][0] == 0 and record["loss_steps"][-1] == steps
            assert len(record["loss"]) == len(record["loss_steps"])
            assert record["steps_run"] == steps
            assert record["initial_ls_loss"] > 0
            if record["settings"]["method"] == "lsgd":
                # loss[0] of LSGD is the loss after the first LS solve (fit's contract). Not
                # to 1e-10: the nearly collapsed plain Box L = 16 basis (relative feature
                # spread ~1e-8) amplifies the rounding differences between the batched and the
                # single forward pass and between the two SVD drivers to ~1e-5.
                assert record["loss"][0] == pytest.approx(record["initial_ls_loss"], rel=1e-3)
    text = (tmp_path / "report.md").read_text()
    assert "not judged" in text  # a quick run is a smoke check


def test_subsample_keeps_first_and_last_and_bounds_length():
    for n in (1, 2, 7, 500, 501, 502, 10_001):
        curve = list(range(n))
        steps, values = subsample(curve, max_points=501)
        assert steps[0] == 0 and steps[-1] == n - 1, n
        assert len(steps) <= 502, n  # every k-th point plus possibly the last
        assert values == [float(s) for s in steps]
        assert steps == sorted(set(steps))
    assert subsample(list(range(11)), max_points=501)[0] == list(range(11))


def test_basis_diagnostics_detects_a_constant_basis():
    settings = {"width": 8, "depth": 2, "residual": False, "activation": "relu", "init": "box",
                "dtype": "float64"}
    model = build_model(settings, 0)
    x = torch.linspace(0, 1, 64, dtype=torch.float64)[:, None]
    rich = basis_diagnostics(model, x)
    assert rich["basis_rank"] >= 1 and rich["feature_spread"] > 0
    with torch.no_grad():  # a first layer that ignores x makes every basis function constant
        model.layers[0].weight.zero_()
        model.layers[0].bias.fill_(0.5)
    flat = basis_diagnostics(model, x)
    assert flat["basis_rank"] == 0 and flat["feature_spread"] == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_box_collapse_at_depth_16_is_a_float32_effect(seed):
    """cyr2020.fig5, claims 3-4: the 16-layer plain Box basis (width 32) is constant only to
    ~1e-7 of its size. In float32 (TensorFlow's default, presumably the paper's precision) the
    basis is constant — the first LS solve does no better than fitting the mean of sin(2πx)
    — and the diagnostic says rank 0; in float64 the same network's basis is usable
    and the first LS solve is more than an order of magnitude better."""
    settings = {"target": "sin2pi", "points": 256, "width": 32, "depth": 16, "residual": False,
                "activation": "relu", "init": "box", "dtype": "float64"}
    x, y = data(settings)
    model = build_model(settings, seed)
    spread = basis_diagnostics(model, x)
    assert spread["feature_spread"] < 1e-5 * spread["feature_max"], (seed, spread)
    single = build_model(settings, seed).float()
    assert basis_diagnostics(single, x.float())["basis_rank"] == 0, seed
    loss32 = initial_basis_loss(single, x.float(), y.float())
    loss64 = initial_basis_loss(model, x, y)
    mean_fit = float(((y - y.mean()) ** 2).mean())  # the MSE of the best constant
    assert loss32 == pytest.approx(mean_fit, rel=1e-4), (seed, loss32, mean_fit)
    assert loss64 < loss32 / 10, (seed, loss64, loss32)


@pytest.mark.parametrize("seed", SEEDS)
def test_record_of_a_seed_does_not_depend_on_its_batch(seed):
    """The store may rerun only missing seeds: a seed's record must not depend on which other
    seeds share its ensemble (float64, CPU; fit_ensemble promises 1e-10)."""
    settings = {"target": "sin2pi", "points": 32, "width": 6, "depth": 2, "residual": True,
                "activation": "relu", "init": "box", "method": "lsgd", "optimizer": "adam",
                "lr": 5e-3, "steps": 5, "dtype": "float64"}
    together = train_cell(settings, (seed, seed + 1))[1]
    alone = train_cell(settings, (seed + 1,))[0]
    assert together["seed"] == alone["seed"] == seed + 1
    np.testing.assert_allclose(together["loss"], alone["loss"], rtol=1e-10,
                               err_msg=f"seed {seed + 1}")
    assert together["rms"] == pytest.approx(alone["rms"], rel=1e-8)


def test_fig14_matches_the_closed_form():
    """GD contracts f by 0.36 per step, LSGD by 0.1296, from f = 109 and 3.2 (module doc)."""
    from deepbasis.experiments.cyr2020.fig14 import run

    params = get_experiment("cyr2020.fig14").params("default")
    (record,) = run(get_experiment("cyr2020.fig14").cells(params)[0].settings, (0,))
    gd, ls = np.asarray(record["gd_loss"]), np.asarray(record["lsgd_loss"])
    k = np.arange(len(gd))
    np.testing.assert_allclose(gd, 109.0 * 0.36**k, rtol=1e-10)
    np.testing.assert_allclose(ls, 3.2 * 0.1296**k, rtol=1e-10)
    # LSGD's x is the exact minimizer 3y/5 at every iterate.
    path = np.asarray(record["lsgd_path"])
    np.testing.assert_allclose(path[:, 0], 0.6 * path[:, 1], rtol=1e-12)


def test_fig7_learning_rates_are_two_to_minus_k_plus_three():
    from deepbasis.experiments.cyr2020.fig7 import learning_rate

    assert [learning_rate(d) for d in (8, 16, 32, 64, 128)] == [2.0**-(k + 3)
                                                                 for k in range(5)]
    cells = get_experiment("cyr2020.fig7").cells(get_experiment("cyr2020.fig7").params("paper"))
    assert {c.settings["depth"]: c.settings["lr"] for c in cells}[128] == 1 / 128


def test_fig10_shares_the_common_sweep_point_and_fits_power_laws():
    from deepbasis.experiments.cyr2020.fig10 import fitted_slope

    experiment = get_experiment("cyr2020.fig10")
    for profile in ("quick", "default", "paper"):
        keys = [c.key() for c in experiment.cells(experiment.params(profile))]
        assert len(keys) == len(set(keys)), profile
    sizes = [2, 4, 8, 16]
    assert fitted_slope(sizes, [math.log10(3.0 * s**-1.3) for s in sizes]) == pytest.approx(-1.3)
    assert math.isnan(fitted_slope(sizes, [0.0, 1.0, math.inf, 2.0]))


def test_fig9_depth_trend_is_one_sided():
    from deepbasis.experiments.cyr2020.fig9 import depth_trend

    def records(errors):
        return [{"settings": {"depth": d}, "rms": e} for d, e in errors]

    falling = records([(d, 1.0 / d + 0.01 * s) for d in (2, 4, 8, 16) for s in range(3)])
    rho, p = depth_trend(falling)
    assert rho < -0.9 and p < 0.01
    rising = records([(d, float(d) + 0.01 * s) for d in (2, 4, 8, 16) for s in range(3)])
    assert depth_trend(rising)[1] > 0.99
    diverged = records([(2, 0.1), (4, None), (8, None)])  # diverged seeds rank as the worst
    assert depth_trend(diverged)[0] > 0
