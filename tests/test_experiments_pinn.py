"""The transport-PINN experiments: cyr2020.fig12, cyr2020.fig13, cyr2020.appE."""

import json
import math

import pytest
import torch

from deepbasis import MLP
from deepbasis.experiments import get_experiment
from deepbasis.experiments.cyr2020._pinn import build_model, model_from, parameters_of
from deepbasis.experiments.cyr2020.appE import KINKS, characteristic_distance, cut_lines
from deepbasis.experiments.cyr2020.fig13 import log_slope
from deepbasis.runner.runner import run_experiment

PNG = b"\x89PNG\r\n\x1a\n"


def _check_outputs(result, out, figure, n_claims):
    claims = json.loads((out / "claims.json").read_text())
    assert len(claims) == n_claims
    assert all(isinstance(c["passed"], bool) for c in claims)
    assert (out / figure).read_bytes()[:8] == PNG
    assert all("seed" in r for r in result.records)


def test_fig12_quick(tmp_path):
    result = run_experiment("cyr2020.fig12", "quick", tmp_path, progress=False)
    params = get_experiment("cyr2020.fig12").params("quick")
    assert len(result.records) == 2 * len(params["seeds"])
    _check_outputs(result, tmp_path, "fig12.png", 2)
    for r in result.records:
        steps = r["settings"]["steps"]
        assert r["loss_steps"][0] == 0 and r["loss_steps"][-1] == steps
        assert r["final_loss"] == pytest.approx(sum(r["term_losses"].values()), rel=1e-6)
    # LSGD's loss[0] is the LS solve on the initial basis, at or below GD's initial loss
    by_seed = {(r["settings"]["method"], r["seed"]): r for r in result.records}
    for seed in params["seeds"]:
        assert by_seed["lsgd", seed]["loss"][0] <= by_seed["gd", seed]["loss"][0] * (1 + 1e-12)


def test_fig13_quick(tmp_path):
    result = run_experiment("cyr2020.fig13", "quick", tmp_path, progress=False)
    _check_outputs(result, tmp_path, "fig13.png", 3)
    for r in result.records:
        s = r["settings"]
        assert s["epsilon"] == pytest.approx(s["width"] ** -s["alpha"])
        assert s["velocity"] == "linear"


def test_fig13_shared_configurations_run_once():
    experiment = get_experiment("cyr2020.fig13")
    for profile in ("quick", "default", "paper"):
        keys = [cell.key() for cell in experiment.cells(experiment.params(profile))]
        assert len(keys) == len(set(keys)), profile


def test_appE_quick_identical_initializations(tmp_path):
    result = run_experiment("cyr2020.appE", "quick", tmp_path, progress=False)
    _check_outputs(result, tmp_path, "appE.png", 0)
    params = get_experiment("cyr2020.appE").params("quick")
    gd, lsgd = sorted(result.records, key=lambda r: r["settings"]["method"])
    assert sorted(map(int, gd["snapshots"])) == params["gd_snapshots"]
    assert sorted(map(int, lsgd["snapshots"])) == params["lsgd_snapshots"]
    # both runs start from the same hidden layer (the head differs: LSGD solved for it)
    for name in ("layers.0.weight", "layers.0.bias"):
        assert gd["snapshots"]["0"][name] == lsgd["snapshots"]["0"][name]


def test_model_round_trip():
    settings = get_experiment("cyr2020.fig12").params("quick")
    model = build_model(settings, seed=3)
    copy = model_from(settings, parameters_of(model))
    x = torch.rand(20, 2, dtype=torch.float64)
    torch.testing.assert_close(copy(x), model(x), rtol=0, atol=0)


def test_cut_lines_in_user_coordinates():
    # domain x ∈ [0, 2], t ∈ [0, 1], so x̂ = x / 2, t̂ = t:
    # unit 0: 2x̂ − t̂ − 0.3 = x − t − 0.3 = 0 is the segment (0.3, 0)–(1.3, 1);
    # unit 1: x̂ − 0.5 = 0 is the vertical line x = 1;
    # unit 2: never crosses the box (x̂ + t̂ + 5 > 0 everywhere)
    model = MLP(2, 3, 1, domain=((0.0, 0.0), (2.0, 1.0)), dtype=torch.float64)
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.tensor([[2.0, -1.0], [1.0, 0.0], [1.0, 1.0]],
                                                  dtype=torch.float64))
        model.layers[0].bias.copy_(torch.tensor([-0.3, -0.5, 5.0], dtype=torch.float64))
    lines = cut_lines(model)
    assert len(lines) == 2
    (p, q), (r, s) = (sorted(seg) for seg in lines)
    assert p == pytest.approx((0.3, 0.0)) and q == pytest.approx((1.3, 1.0))
    assert r == pytest.approx((1.0, 0.0)) and s == pytest.approx((1.0, 1.0))


def test_characteristic_distance_is_zero_on_the_characteristic():
    model = MLP(2, 3, 1, domain=(0.0, 1.0), dtype=torch.float64)
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.tensor([[1.0, -1.0]] * 3, dtype=torch.float64))
        model.layers[0].bias.copy_(-torch.tensor(KINKS, dtype=torch.float64))
        model.layers[0].bias[2] = -0.6  # off its characteristic x − t = 0.5 by 0.1/√2
    assert characteristic_distance(model, KINKS[0]) == pytest.approx(0.0, abs=1e-15)
    assert characteristic_distance(model, KINKS[1]) == pytest.approx(0.0, abs=1e-15)
    assert characteristic_distance(model, KINKS[2]) == pytest.approx(0.1 / math.sqrt(2))


def test_log_slope():
    widths = [8, 16, 32, 64]
    assert log_slope(widths, [3.0 * w**-0.5 for w in widths]) == pytest.approx(-0.5)
    assert math.isnan(log_slope([8], [1.0]))
    assert log_slope(widths, [1.0, None, math.inf, 1e-3]) == pytest.approx(-3 / math.log10(8))
