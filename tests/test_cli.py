"""Tests of the `deepbasis` commands run, list, status and report (cli.py)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import runner_fakes
from deepbasis import __version__
from deepbasis.cli import app
from deepbasis.runner.store import STORE_FILENAME

cli = CliRunner()


@pytest.fixture(autouse=True)
def fakes(monkeypatch):
    runner_fakes.register(monkeypatch)


def invoke(*args):
    return cli.invoke(app, [str(a) for a in args])


def run_quick(out, *extra):
    return invoke("run", "fake.quick", "--profile", "quick", "--out", out, "--no-progress",
                  "--workers", "1", *extra)


def test_version_and_list():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"deepbasis {__version__}"
    result = invoke("list")
    assert result.exit_code == 0
    assert "fake.quick" in result.output and "A fake experiment for the runner tests" in \
        result.output


def test_python_dash_m_deepbasis():
    done = subprocess.run([sys.executable, "-m", "deepbasis", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"deepbasis {__version__}"


def test_run_then_resume_then_fresh(tmp_path):
    first = run_quick(tmp_path)
    assert first.exit_code == 0, first.output
    assert "[PASS] the mean loss is positive" in first.output
    assert "[FAIL] the mean loss is below 0 (fails on purpose)" in first.output
    assert f"report: {tmp_path / 'report.md'}" in first.output
    assert f"figure: {tmp_path / 'loss_vs_width.png'}" in first.output
    assert "resumed" not in first.output
    again = run_quick(tmp_path)
    assert again.exit_code == 0
    assert "resumed: 12 record(s) were already stored, 0 computed now" in again.output
    fresh = run_quick(tmp_path, "--fresh")
    assert fresh.exit_code == 0 and "resumed" not in fresh.output


@pytest.mark.parametrize(("args", "message"), [
    (["run", "fake.nope"], "error: unknown experiment 'fake.nope'; valid ids:"),
    (["run", "fake.quick", "--profile", "huge"],
     "error: unknown profile 'huge' for fake.quick; valid profiles: 'quick', 'default', 'paper'"),
    (["run", "fake.quick", "--executor", "slurm"], "error: unknown executor 'slurm'"),
    (["run", "fake.quick", "--address", "auto"], "error: --address is only used with --executor "
                                                 "ray"),
], ids=["experiment", "profile", "executor", "address"])
def test_bad_input_exits_2_without_traceback(tmp_path, args, message):
    result = invoke(*args, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_unknown_experiment_lists_valid_ids(tmp_path):
    result = invoke("run", "fake.nope", "--out", tmp_path)
    assert "\n  fake.quick" in result.output


def test_workers_must_be_positive(tmp_path):
    result = run_quick(tmp_path, "--workers", "0")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_ray_missing_exits_2(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    result = invoke("run", "fake.quick", "--profile", "quick", "--out", tmp_path, "--executor",
                    "ray")
    assert result.exit_code == 2
    assert "pip install 'deepbasis[ray]'" in result.output and "Traceback" not in result.output


def test_failing_cells_exit_1_with_the_reason(tmp_path):
    result = invoke("run", "fake.flaky", "--profile", "quick", "--out", tmp_path,
                    "--no-progress", "--workers", "1")
    assert result.exit_code == 1
    assert "error: 1 of 4 cell(s) of fake.flaky failed" in result.output
    assert "FloatingPointError: loss became NaN at step 7" in result.output


def test_incompatible_store_exits_1(tmp_path):
    assert run_quick(tmp_path).exit_code == 0
    with sqlite3.connect(tmp_path / STORE_FILENAME) as conn:
        conn.execute("PRAGMA user_version = 7")
    result = run_quick(tmp_path)
    assert result.exit_code == 1
    assert "schema version 7" in result.output and "Traceback" not in result.output


def test_status_and_report(tmp_path):
    results = tmp_path / "results"
    assert run_quick(results / "fake.quick").exit_code == 0
    status = invoke("status", results)
    assert status.exit_code == 0, status.output
    assert "fake.quick [quick]: cells 4/4, seeds 12/12: complete" in status.output
    assert "1 of 2 claims pass" in status.output
    assert "not run here: " in status.output and "fake.flaky" in status.output

    report = invoke("report", results)
    assert report.exit_code == 0
    assert f"report: {results / 'index.md'}" in report.output
    assert "the mean loss is positive" in (results / "index.md").read_text()
    html = invoke("report", results / "fake.quick", "--html", "--out", tmp_path / "r.html")
    assert html.exit_code == 0 and (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_status_and_report_of_nothing_exit_2(tmp_path):
    for command in ("status", "report"):
        result = invoke(command, tmp_path)
        assert result.exit_code == 2 and "holds no experiment results" in result.output
        result = invoke(command, tmp_path / "missing")
        assert result.exit_code == 2 and "no such folder" in result.output


def test_status_of_a_broken_store_exits_1(tmp_path):
    (tmp_path / STORE_FILENAME).write_bytes(b"not sqlite" * 100)
    result = invoke("status", tmp_path)
    assert result.exit_code == 1 and "not a deepbasis result store" in result.output


def test_full_disk_while_writing_the_report_exits_1(tmp_path, monkeypatch):
    import errno

    from deepbasis.runner import runner

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(runner, "_write_text", full)
    result = run_quick(tmp_path)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "No space left on device" in result.output and "records are stored" in result.output
    monkeypatch.undo()
    runner_fakes.register(monkeypatch)
    again = run_quick(tmp_path)
    assert again.exit_code == 0 and "resumed: 12 record(s)" in again.output
