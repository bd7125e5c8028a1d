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


def test_alpha_regimes_lm_reaches_the_papers_near_zero_loss(tmp_path):
    # GD stops far above the tolerance in the quick profile's 100 epochs; Levenberg–Marquardt
    # on the same networks reaches it (the kernel regime, α = 30).
    run_experiment("sahs.alpha_regimes", "quick", tmp_path, progress=False)
    records = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    by = {(r["settings"]["trainer"], r["settings"]["alpha"]): r for r in records}
    tolerance = get_experiment("sahs.alpha_regimes").params("quick")["tolerance"]
    assert by[("lm", 30.0)]["train_loss"] < tolerance < by[("gd", 30.0)]["train_loss"]


def test_pieces_vs_depth_stacked_gd_matches_separate_runs():
    # The seeds of a sahs.pieces_vs_depth cell train as one stacked computation; each member
    # must end where its own GD loop ends (up to rounding).
    import torch

    from deepbasis.experiments.sahs._common import TARGETS, train
    from deepbasis.experiments.sahs.pieces_vs_depth import train_stacked
    from deepbasis.init import torch_default_
    from deepbasis.nn import MLP

    x = torch.linspace(-3, 3, 60, dtype=torch.float64)[:, None]
    y = TARGETS["sin_pi"](x)

    def make(seed):
        return torch_default_(MLP(1, 8, 3, dtype=torch.float64), generator=seed)

    alone = [make(seed) for seed in range(3)]
    for model in alone:
        train(model, x, y, epochs=50, lr=5e-4)
    stacked = [make(seed) for seed in range(3)]
    finals = train_stacked(stacked, x, y, epochs=50, lr=5e-4)
    with torch.no_grad():
        for a, b, final in zip(alone, stacked, finals, strict=True):
            torch.testing.assert_close(b(x), a(x), rtol=1e-10, atol=1e-12)
            assert abs(final - float(((b(x) - y) ** 2).sum())) < 1e-12
