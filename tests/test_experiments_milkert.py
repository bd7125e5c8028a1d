import json

import pytest

from deepbasis.runner.runner import run_experiment


@pytest.mark.parametrize("experiment_id, claims", [("milkert.table1", 5), ("milkert.fig5", 2),
                                                   ("milkert.square", 2)])
def test_quick_profiles_run_and_report(tmp_path, experiment_id, claims):
    result = run_experiment(experiment_id, "quick", tmp_path, progress=False)
    assert result.records and all("seed" in r for r in result.records)
    verdicts = json.loads((tmp_path / "claims.json").read_text())
    assert len(verdicts) == claims and all(isinstance(c["passed"], bool) for c in verdicts)
    name = experiment_id.split(".")[1]
    assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_square_quick_profile_claims_pass(tmp_path):
    run_experiment("milkert.square", "quick", tmp_path, progress=False)
    verdicts = json.loads((tmp_path / "claims.json").read_text())
    assert verdicts[0]["passed"]  # 4× per layer; the depth-20 claim needs the default profile


def test_regions_quick_profile(tmp_path):
    import deepbasis.analysis as analysis

    if not hasattr(analysis, "count_pieces"):
        pytest.skip("deepbasis.analysis.count_pieces (spline view, issue 11) not on this branch")
    run_experiment("milkert.regions", "quick", tmp_path, progress=False)
    verdicts = json.loads((tmp_path / "claims.json").read_text())
    assert len(verdicts) == 3
    assert verdicts[0]["passed"], verdicts[0]  # exactly 2^d pieces at initialization
