"""The claims ledger (docs/claims.md) names every registered claim and cannot fall behind the code.

- the committed ledger lists every experiment of the registry, its claims numbered 1…n;
- every review (deepbasis.experiments.reviews) matches exactly one claim, and a *refuted* claim's
  evidence names a test that exists;
- the page is the rendering of its JSON rows (no hand edits);
- the claims a run of the code produces today are the ones the ledger lists (checked on a few
  fast experiments; set DEEPBASIS_LEDGER_ALL=1 to run every experiment's quick profile).
"""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepbasis.cli import app
from deepbasis.experiments.reviews import CLASSES, REVIEWS
from deepbasis.runner import registry
from deepbasis.runner.ledger import NO_RUN, LedgerRow, ledger_markdown, write_ledger
from deepbasis.runner.runner import run_experiment

ROOT = Path(__file__).resolve().parents[1]
LEDGER = ROOT / "docs" / "claims.md"
ROWS = ROOT / "docs" / "claims.json"
#: Quick profiles fast enough for every test run; the rest with DEEPBASIS_LEDGER_ALL=1.
FAST = ["sahs.roughness_init", "milkert.square", "sahs.spiky", "sahs.uniform_breakpoints"]


def _ledger() -> dict:
    return json.loads(ROWS.read_text(encoding="utf-8"))


def _normalized(text: str) -> str:
    """A claim's text without its numbers, which depend on the profile (seeds, targets)."""
    return re.sub(r"\d+(\.\d+)?", "#", text)


def test_ledger_lists_every_registered_experiment_with_its_claims_numbered():
    rows = _ledger()["rows"]
    assert {r["experiment"] for r in rows} == set(registry())
    for experiment_id in registry():
        numbers = [r["number"] for r in rows if r["experiment"] == experiment_id]
        assert numbers == [0] or numbers == list(range(1, len(numbers) + 1)), experiment_id
    assert all(r["claim"] for r in rows if r["number"])


def test_every_review_matches_exactly_one_claim_and_refutations_name_their_test():
    rows = _ledger()["rows"]
    for experiment_id, reviews in REVIEWS.items():
        assert experiment_id in registry(), experiment_id
        claims = [r["claim"] for r in rows if r["experiment"] == experiment_id and r["number"]]
        for review in reviews:
            assert review.cls in CLASSES
            hits = [c for c in claims if review.match in c]
            assert len(hits) == 1, (experiment_id, review.match, hits)
            if review.evidence.startswith("tests/"):
                path, _, name = review.evidence.partition("::")
                tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
                assert name in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, \
                    review.evidence
    refuted = [r for r in rows if r["cls"] == "refuted"]
    assert refuted and all(r["evidence"] for r in refuted)


def test_ledger_page_is_the_rendering_of_its_rows():
    data = _ledger()
    rows = [LedgerRow(**r) for r in data["rows"]]
    assert LEDGER.read_text(encoding="utf-8") == ledger_markdown(
        rows, command=data["command"]) + "\n"


@pytest.mark.parametrize(
    "experiment_id", sorted(registry()) if os.environ.get("DEEPBASIS_LEDGER_ALL") else FAST)
def test_ledger_names_the_claims_the_code_makes_today(experiment_id, tmp_path):
    rows = [r for r in _ledger()["rows"] if r["experiment"] == experiment_id]
    if rows and rows[0]["verdict"] == NO_RUN:
        pytest.fail(f"{experiment_id}: no stored run in the ledger; run it and regenerate "
                    "docs/claims.md (deepbasis report results/ --ledger -o docs/claims.md)")
    run_experiment(experiment_id, "quick", tmp_path, progress=False, workers=1)
    made = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["claims"]
    listed = {_normalized(r["claim"]) for r in rows if r["number"]}
    missing = [c["claim"] for c in made if _normalized(c["claim"]) not in listed]
    assert not missing, (f"{experiment_id}: claims the code makes that docs/claims.md does not "
                         f"list (regenerate it): {missing}")


def test_report_ledger_command_lists_unrun_experiments_too(tmp_path):
    run_experiment("sahs.roughness_init", "quick", tmp_path / "results" / "sahs.roughness_init",
                   progress=False, workers=1)
    out = tmp_path / "claims.md"
    done = CliRunner().invoke(app, ["report", str(tmp_path / "results"), "--ledger", "-o",
                                    str(out)])
    assert done.exit_code == 0, done.output
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Claims ledger")
    rows = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))["rows"]
    assert {r["experiment"] for r in rows} == set(registry())
    ours = [r for r in rows if r["experiment"] == "sahs.roughness_init"]
    assert ours and all(r["verdict"] == "not judged" and r["profile"] == "quick" for r in ours)
    assert all(r["verdict"] == NO_RUN for r in rows if r["experiment"] != "sahs.roughness_init")
    # An existing file that is not a ledger is not replaced without --force.
    other = tmp_path / "notes.md"
    other.write_text("mine\n")
    with pytest.raises(ValueError, match="not a claims ledger"):
        write_ledger([tmp_path / "results"], other)
    assert other.read_text() == "mine\n"
