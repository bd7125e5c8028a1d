"""deepbasis' own studies (experiments/beyond) and the PDE suite they use (problems/pdes)."""

from __future__ import annotations

import json

import pytest
import torch

from deepbasis.experiments import get_experiment
from deepbasis.problems.pdes import PDES, pde_problem
from deepbasis.runner.runner import run_experiment


@pytest.mark.parametrize("name", PDES)
def test_the_exact_solution_solves_every_term(name):
    # Each term's residual L[u] − g on the exact solution, with L applied by automatic
    # differentiation (the operators' own apply): zero to rounding.
    case = pde_problem(name, 9)
    exact = _Exact(case)
    for term in case.problem.terms:
        residual = term.residual(exact)
        assert residual.dtype == torch.float64
        assert float(residual.abs().max()) < 1e-11, (name, term.name)


class _Exact(torch.nn.Module):
    """The exact solution as a float64 module (so operators evaluate it in float64)."""

    def __init__(self, case):
        super().__init__()
        self.case = case
        self.head = torch.nn.Linear(1, 1, dtype=torch.float64)

    def forward(self, x):
        return self.case.exact(x)[:, None]


def test_pde_problem_checks_its_arguments():
    with pytest.raises(ValueError, match="name"):
        pde_problem("wave")
    with pytest.raises(ValueError, match="n must be an integer >= 3"):
        pde_problem("poisson", 2)


def test_relative_error_of_the_exact_solution_is_zero():
    case = pde_problem("heat", 5, error_grid=11)
    assert case.relative_error(_Exact(case)) == 0.0


def test_pde_accuracy_quick_profile_runs_and_reports(tmp_path):
    result = run_experiment("beyond.pde_accuracy", "quick", tmp_path, progress=False)
    experiment = get_experiment("beyond.pde_accuracy")
    cells = experiment.cells(experiment.params("quick"))
    assert len(result.records) == sum(len(c.seeds) for c in cells) == 16
    budget = experiment.params("quick")["budget"]
    for record in result.records:  # a run ends at the budget, or earlier when LM converges
        times = record["times"]
        assert len(times) == len(record["errors"]) >= 1
        assert times == sorted(times) and 0 < record["wall_time"] < budget + 30
    claims = json.loads((tmp_path / "claims.json").read_text())
    assert len(claims) == 2 and all(isinstance(c["passed"], bool) for c in claims)
    assert "not judged" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "pde_accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
