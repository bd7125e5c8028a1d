import json

import pytest

from deepbasis.experiments import PROFILES, get_experiment, registry
from deepbasis.runner.runner import run_experiment


def test_quick_profile_writes_records_report_claims_and_figure(tmp_path):
    result = run_experiment("cyr2020.initial_loss", "quick", tmp_path, progress=False)
    params = get_experiment("cyr2020.initial_loss").params("quick")
    expected = params["seeds"] * 2 * (len(params["plain_depths"]) + len(params["residual_depths"]))
    assert len(result.records) == expected
    assert all(r["initial_loss"] > 0 and "seed" in r for r in result.records)
    claims = json.loads((tmp_path / "claims.json").read_text())
    assert len(claims) == 2
    assert all(set(c) >= {"claim", "passed", "value"} and isinstance(c["passed"], bool)
               for c in claims)
    report = (tmp_path / "report.md").read_text()
    assert "not judged" in report  # a quick run is a smoke check
    png = tmp_path / "initial_loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((tmp_path / "records.jsonl").read_text().splitlines()) == expected


def test_every_experiment_has_all_profiles_and_valid_cells():
    for experiment in registry().values():
        for profile in PROFILES:
            cells = experiment.cells(experiment.params(profile))
            assert cells, f"{experiment.id} has no cells in profile {profile}"
            for cell in cells:
                json.dumps(dict(cell.settings))  # settings must be JSON-serializable
                assert cell.seeds, f"{experiment.id}: a cell without seeds"


def test_unknown_experiment_and_profile_list_the_valid_ones():
    with pytest.raises(ValueError,
                       match=r"(?s)unknown experiment .cyr2020.nope.*cyr2020.initial_loss"):
        get_experiment("cyr2020.nope")
    with pytest.raises(ValueError, match="unknown profile 'fast'.*'quick', 'default', 'paper'"):
        get_experiment("cyr2020.initial_loss").params("fast")
