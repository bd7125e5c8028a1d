"""The sahs.* experiments run end to end on their quick profiles (records, claims, figures)."""

import json

import pytest

from deepbasis.experiments import get_experiment
from deepbasis.runner.runner import run_experiment

SAHS = ["sahs.init_distributions", "sahs.roughness_init", "sahs.pieces_vs_depth",
        "sahs.gd_vs_pwl", "sahs.uniform_breakpoints", "sahs.spiky", "sahs.alpha_regimes"]


@pytest.mark.parametrize("experiment_id", SAHS)
def test_quick_profile_runs_and_reports(experiment_id, tmp_path):
    result = run_experiment(experiment_id, "quick", tmp_path, progress=False)
    experiment = get_experiment(experiment_id)
    cells = experiment.cells(experiment.params("quick"))
    assert len(result.records) == sum(len(c.seeds) for c in cells)
    claims = json.loads((tmp_path / "claims.json").read_text())
    assert claims and all(isinstance(c["passed"], bool) for c in claims)
    report = (tmp_path / "report.md").read_text()
    assert "not judged" in report  # quick is a smoke check
    pngs = list(tmp_path.glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
