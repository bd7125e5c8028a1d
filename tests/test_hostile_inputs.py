"""Issue 24: hostile or careless inputs to the CLI, data files, model files, the store and the
reports. Each probe ends in one line of error, a non-zero exit and nothing written, or in a
result that is exactly right: never a file written outside its folder, a silently wrong fit,
or a traceback."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import runner_fakes
from deepbasis.cli import app
from deepbasis.runner.store import LOCK_FILENAME, STORE_FILENAME

FAST = ["--steps", "5", "--width", "4", "--depth", "1", "--no-progress", "--activation", "relu"]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result, code=None):
    """A failure reported as one ``error: ...`` line, without a traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert result.exit_code != 0 and (code is None or result.exit_code == code), result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    return errors[0]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (what "nothing written" compares)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture
def fakes(monkeypatch):
    runner_fakes.register(monkeypatch)
    monkeypatch.delenv("DEEPBASIS_FAKE_SLEEP", raising=False)


def run_quick(out, experiment="fake.quick"):
    return invoke("run", experiment, "--profile", "quick", "--out", out, "--no-progress",
                  "--workers", "1")


# --- 1. report.json's profile never leads a run outside its folder --------------------------


@pytest.mark.parametrize("profile", ["../victim", "/ABSOLUTE"])
def test_profile_in_report_json_is_not_a_path(tmp_path, fakes, profile):
    out, victim = tmp_path / "out", tmp_path / "victim"
    assert run_quick(out).exit_code == 0
    report = json.loads((out / "report.json").read_text())
    target = profile if profile.startswith("..") else str(victim)
    report["profile"] = target
    (out / "report.json").write_text(json.dumps(report))
    victim.mkdir()
    (victim / "report.md").write_text("keep me")
    done = invoke("run", "fake.quick", "--profile", "default", "--out", out, "--no-progress",
                  "--workers", "1")
    assert done.exit_code == 0, done.output
    assert tree(victim) == {"report.md": b"keep me"}
    assert json.loads((out / "report.json").read_text())["profile"] == "default"


@pytest.mark.parametrize("command", ["run", "status", "report"])
@pytest.mark.parametrize("damage", ["deep", "profile"])
def test_hostile_report_json_is_one_line(tmp_path, fakes, command, damage):
    out = tmp_path / "out"
    assert run_quick(out).exit_code == 0
    if damage == "deep":
        (out / "report.json").write_text("[" * 100_000 + "]" * 100_000)
    else:
        report = json.loads((out / "report.json").read_text())
        report["profile"] = ["quick"]
        (out / "report.json").write_text(json.dumps(report))
    if command == "run":
        done = run_quick(out)  # an unreadable report is written again from the records
        assert done.exit_code == 0, done.output
        assert json.loads((out / "report.json").read_text())["profile"] == "quick"
    elif command == "status":
        done = invoke("status", out)
        assert done.exit_code == 1 and "Traceback" not in done.output
        assert "report.json is damaged" in done.output
    else:
        before = tree(tmp_path)
        line = one_line_error(invoke("report", out))
        assert "report.json is damaged" in line
        assert tree(tmp_path) == before


# --- 4. report --out never replaces a store or a file it did not write -----------------------


def test_report_out_refuses_the_store_and_foreign_files(tmp_path, fakes):
    out = tmp_path / "out"
    assert run_quick(out).exit_code == 0
    before = tree(tmp_path)
    line = one_line_error(invoke("report", out, "--out", out / STORE_FILENAME))
    assert "SQLite" in line and "choose another --out" in line
    line = one_line_error(invoke("report", out, "--out", out / "claims.json", "--force"))
    assert "claims.json" in line
    notes = tmp_path / "notes.md"
    notes.write_text("my notes")
    before = tree(tmp_path)
    line = one_line_error(invoke("report", out, "--out", notes))
    assert "--force" in line
    assert tree(tmp_path) == before
    with sqlite3.connect(out / STORE_FILENAME) as conn:
        assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 12
    # Its own earlier report is replaced; a foreign file only with --force.
    assert invoke("report", out, "--out", tmp_path / "index.md").exit_code == 0
    assert invoke("report", out, "--out", tmp_path / "index.md").exit_code == 0
    assert invoke("report", out, "--out", notes, "--force").exit_code == 0
    assert notes.read_text().startswith("# deepbasis reproduction report")


# --- 5. the lock file is never followed --------------------------------------------------------


def test_lock_file_symlink_is_not_followed(tmp_path, fakes):
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    out.mkdir()
    victim.write_text("precious")
    os.symlink(victim, out / LOCK_FILENAME)
    line = one_line_error(run_quick(out), 1)
    assert "symbolic link" in line
    assert victim.read_text() == "precious"


# --- 6. one folder, one experiment -------------------------------------------------------------


def test_second_experiment_in_one_folder_is_refused(tmp_path, fakes, monkeypatch):
    import dataclasses

    from deepbasis.experiments import registry

    monkeypatch.setitem(registry(), "fake.other",
                        dataclasses.replace(runner_fakes.QUICK, id="fake.other"))
    out = tmp_path / "out"
    assert run_quick(out).exit_code == 0
    before = tree(out)
    line = one_line_error(run_quick(out, "fake.other"), 1)
    assert "'fake.quick'" in line and "fake.other" in line and "--out" in line
    assert tree(out) == before
    # The store holds several experiments' records safely; only the report files clash.
    (out / "report.json").unlink()
    assert run_quick(out, "fake.other").exit_code == 0
    line = one_line_error(run_quick(out), 1)
    assert "'fake.other'" in line
    with sqlite3.connect(out / STORE_FILENAME) as conn:
        assert conn.execute("SELECT count(DISTINCT experiment) FROM records").fetchone()[0] == 2
