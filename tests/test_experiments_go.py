"""The go.* experiments (Wang et al. 2021) run end to end in their quick profiles."""

from __future__ import annotations

import json

import pytest

from deepbasis.experiments import get_experiment
from deepbasis.runner.runner import run_experiment

EXPECTED = {  # id: (claims, figures)
    "go.variance_flow": (6, ["variance_flow.png"]),
    "go.fig3": (3, ["fig3_outputs.png", "fig3_spread.png"]),
    "go.fig4": (2, ["fig4_ntk.png"]),
    "go.fig5": (4, ["fig5_errors.png"]),
    "go.table1": (4, ["table1_reconstructions.png"]),
}


@pytest.mark.parametrize("experiment_id", sorted(EXPECTED))
def test_quick_profile_writes_records_claims_and_figures(experiment_id, tmp_path):
    result = run_experiment(experiment_id, "quick", tmp_path, progress=False)
    experiment = get_experiment(experiment_id)
    cells = experiment.cells(experiment.params("quick"))
    assert len(result.records) == sum(len(c.seeds) for c in cells)
    claims = json.loads((tmp_path / "claims.json").read_text())
    count, figures = EXPECTED[experiment_id]
    assert len(claims) == count
    assert all(isinstance(c["passed"], bool) for c in claims)
    for figure in figures:
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "not judged" in (tmp_path / "report.md").read_text()  # quick is a smoke check
    if experiment_id == "go.variance_flow":  # these hold at any size
        assert all(c["passed"] for c in claims
                   if c["claim"].startswith(("ReLU", "tanh", "Backward")))
    if experiment_id == "go.table1":  # LSGD and the LS head beside Adam
        go = [r for r in result.records if r["settings"]["scheme"] == "MLP, GO"
              and r["settings"]["tv"] == 0.0]
        assert go and all({"adam_snr", "lsgd_snr", "ls_init_snr"} <= set(r) for r in go)
