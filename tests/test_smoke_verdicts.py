"""Quick runs are smoke checks ("not judged", never FAIL); every profile keeps its own report."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest
from typer.testing import CliRunner

import runner_fakes
from deepbasis.cli import app
from deepbasis.runner import registry
from deepbasis.runner.reporting import folder_status, format_status, write_combined_report
from deepbasis.runner.runner import report_folder, run_experiment
from deepbasis.runner.store import STORE_FILENAME


@pytest.fixture(autouse=True)
def smoke_fake(monkeypatch):
    """fake.quick as a real experiment is: its quick profile is a smoke run."""
    runner_fakes.register(monkeypatch)
    monkeypatch.setitem(registry(), "fake.quick",
                        dataclasses.replace(runner_fakes.QUICK, smoke_profiles=("quick",)))


def _run(out, profile):
    return CliRunner().invoke(app, ["run", "fake.quick", "--profile", profile, "--out", str(out),
                                    "--no-progress", "--workers", "1"])


def test_real_experiments_do_not_judge_quick_runs():
    for experiment in registry().values():
        if not experiment.id.startswith("fake."):
            assert not experiment.judged("quick") and experiment.judged("default"), \
                experiment.id


def test_quick_run_says_not_judged_everywhere(tmp_path):
    done = _run(tmp_path, "quick")
    assert done.exit_code == 0, done.output
    assert "Profile quick is a smoke run" in done.output and "not judged" in done.output
    assert "[not judged] the mean loss is below 0 (fails on purpose)" in done.output
    assert "[FAIL]" not in done.output and "[PASS]" not in done.output
    claims = json.loads((tmp_path / "claims.json").read_text())
    assert [(c["judged"], c["verdict"]) for c in claims] == [(False, "not judged")] * 2
    assert [c["passed"] for c in claims] == [True, False]  # what the smoke check gave, kept
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["judged"] is False and "smoke run" in report["note"]
    markdown = (tmp_path / "report.md").read_text()
    assert "not judged at profile `quick`" in markdown and "| not judged |" in markdown
    assert "| FAIL |" not in markdown and "| PASS |" not in markdown
    status = format_status([folder_status(tmp_path)])
    assert "report, profile quick: 2 claims not judged (profile quick)" in status
    assert "[FAIL]" not in status
    html = write_combined_report([tmp_path], tmp_path / "all.html", html=True).read_text()
    assert 'class="not-judged"' in html and 'class="fail"' not in html
    assert "0 of 0 claims pass; 2 not judged" in html
    text = write_combined_report([tmp_path], tmp_path / "all.md").read_text()
    assert "| not judged |" in text and "| FAIL |" not in text


def test_default_run_still_judges(tmp_path):
    done = _run(tmp_path, "default")
    assert done.exit_code == 0, done.output
    assert "[FAIL] the mean loss is below 0 (fails on purpose)" in done.output
    assert json.loads((tmp_path / "report.json").read_text())["judged"] is True


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and not p.name.startswith(STORE_FILENAME))


def test_each_profile_keeps_its_report_whatever_the_order(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert _run(first, "default").exit_code == 0
    default_report = (first / "report.md").read_text()
    default_png = (first / "loss_vs_width.png").read_bytes()
    done = _run(first, "quick")  # a quick run in the folder of a default run
    assert done.exit_code == 0, done.output
    assert f"report: {first / 'quick' / 'report.md'}" in done.output
    assert (first / "report.md").read_text() == default_report
    assert (first / "loss_vs_width.png").read_bytes() == default_png
    assert json.loads((first / "quick" / "report.json").read_text())["profile"] == "quick"

    assert _run(second, "quick").exit_code == 0  # the other order: quick first
    assert json.loads((second / "report.json").read_text())["profile"] == "quick"
    done = _run(second, "default")
    assert done.exit_code == 0, done.output
    assert f"report: {second / 'report.md'}" in done.output
    assert json.loads((second / "report.json").read_text())["profile"] == "default"
    assert json.loads((second / "quick" / "report.json").read_text())["profile"] == "quick"
    assert _files(first) == _files(second)
    def records(folder):
        lines = folder.joinpath("records.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "wall_time"} for line in lines]

    assert records(second) == records(first)
    assert records(second / "quick") == records(first / "quick")

    # One store for both profiles, in its usual format; status shows both reports.
    with sqlite3.connect(first / STORE_FILENAME) as db:
        assert db.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 36  # 12 widths × 3
    status = format_status([folder_status(first)])
    assert "report, profile default: 1 of 2 claims pass" in status
    assert f"report, profile quick (in {first / 'quick'}): 2 claims not judged" in status
    assert report_folder(first, "quick") == first / "quick"
    assert report_folder(first, "default") == first
    assert run_experiment("fake.quick", "quick", first, progress=False).folder == \
        first / "quick"
