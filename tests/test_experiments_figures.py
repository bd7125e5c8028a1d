"""Quick profiles of the geometry experiments cyr2020.fig6, fig8 and fig16 run end to end, write
their PNGs and report, and evaluate their claims as booleans with values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from deepbasis.experiments import get_experiment
from deepbasis.experiments.cyr2020.fig6 import first_depth
from deepbasis.experiments.cyr2020.fig8 import angular_width
from deepbasis.experiments.cyr2020.fig16 import basis_numbers
from deepbasis.runner.runner import run_experiment

PNG = b"\x89PNG\r\n\x1a\n"

CASES = {
    "cyr2020.fig6": (["fig6.png", "fig6_collapse.png"], 3),
    "cyr2020.fig8": (["fig8_images.png", "fig8_image_metrics.png", "fig8_covariance.png"], 9),
    "cyr2020.fig16": (["fig16_plain.png", "fig17_residual.png"], 0),
}


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Each quick profile, run once for all the tests of this module."""
    runs = {}
    for experiment_id in sorted(CASES):
        out = tmp_path_factory.mktemp(experiment_id.replace(".", "_"))
        runs[experiment_id] = (run_experiment(experiment_id, "quick", out, progress=False), out)
    return runs


@pytest.mark.parametrize("experiment_id", sorted(CASES))
def test_quick_profile_runs_and_reports(experiment_id, quick_runs):
    figures, n_claims = CASES[experiment_id]
    result, out = quick_runs[experiment_id]
    cells = get_experiment(experiment_id).cells(get_experiment(experiment_id).params("quick"))
    assert len(result.records) == sum(len(cell.seeds) for cell in cells)
    assert all("seed" in r for r in result.records)
    for name in figures:
        assert (out / name).read_bytes()[:8] == PNG, name
    assert result.report.figures == figures
    claims = json.loads((out / "claims.json").read_text())
    assert len(claims) == n_claims
    for claim in claims:
        assert isinstance(claim["passed"], bool), claim
        assert claim["value"] is not None and claim["figure"] in figures, claim
    report = (out / "report.md").read_text()
    if n_claims:
        assert "not judged" in report  # a quick run is a smoke check
    else:
        assert "No claims" in report


def test_fig6_records_are_consistent(quick_runs):
    result, _ = quick_runs["cyr2020.fig6"]
    depth = get_experiment("cyr2020.fig6").params("quick")["depth"]
    for r in result.records:
        assert len(r["diameter"]) == len(r["area"]) == depth + 1
        assert r["diameter"][0] == pytest.approx(math.sqrt(2.0), rel=1e-14)
        assert r["area"][0] == pytest.approx(1.0, rel=1e-6)
        # Area counted once never exceeds area counted with multiplicity (up to the scanline
        # error, documented as ≤ 1e-5 relative with 4096 lines).
        assert all(a <= m * (1 + 1e-4) + 1e-12
                   for a, m in zip(r["area"], r["area_multiplicity"], strict=True)), r["seed"]
        if r["point_depth"] is not None:  # a point stays a point
            assert all(d == 0.0 or d <= 1e-8 * math.sqrt(2.0)
                       for d in r["diameter"][r["point_depth"]:])
        if r["settings"]["init"] == "box":
            assert min(r["min_coordinate"]) >= 0.0 and max(r["max_coordinate"]) <= 1.0 + 1e-12


def test_first_depth():
    assert first_depth([False, False, True, True]) == 2
    assert first_depth([False, False]) is None


def test_angular_width():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    assert angular_width(points) == pytest.approx(45.0, rel=1e-14)
    assert angular_width(np.zeros((3, 2))) == 0.0


def test_fig8_records_are_consistent(quick_runs):
    result, _ = quick_runs["cyr2020.fig8"]
    for r in result.records:
        if r["settings"]["part"] == "image":
            assert r["area"] <= r["area_multiplicity"] * (1 + 1e-4) + 1e-12, r["seed"]
            assert r["min_coordinate"] >= 0.0  # residual ReLU layers only add non-negatives
        else:
            assert 0.0 <= r["min_ratio"] <= r["second_ratio"] <= 1.0, r["seed"]


def test_basis_numbers_count_constants_and_rank():
    x = np.linspace(0.0, 1.0, 11)
    phi = np.stack([x, 2.0 * x, np.full_like(x, 3.0), np.abs(x - 0.5)], axis=1)
    numbers = basis_numbers(phi, 1e-10)
    assert numbers == {"constant": 1, "rank": 3, "max_abs": 3.0}
    assert basis_numbers(np.full((4, 2), np.inf), 1e-10)["rank"] is None
