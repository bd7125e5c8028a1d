"""Tests of the runner (runner/runner.py): resume, atomic cells, failures, kill -9."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import runner_fakes
from deepbasis.experiments import Cell, registry
from deepbasis.runner.runner import (
    CellsFailed,
    plan_cells,
    run_experiment,
)
from deepbasis.runner.store import (
    STORE_FILENAME,
    ResultStore,
    Stamp,
    StoreError,
)

TESTS = str(Path(__file__).parent)
# `python -m deepbasis ARGS` with the fake experiments registered first.
LAUNCHER = ("import sys, runner_fakes; runner_fakes.register(); "
            "from deepbasis.cli import main; sys.argv[0] = 'deepbasis'; main()")


@pytest.fixture(autouse=True)
def fakes(monkeypatch):
    runner_fakes.register(monkeypatch)
    monkeypatch.delenv("DEEPBASIS_FAKE_SLEEP", raising=False)


def spy_experiment(monkeypatch, base=runner_fakes.QUICK, run=runner_fakes.run):
    """Register ``fake.spy``: ``base`` whose run function logs its calls (width, seeds)."""
    calls = []

    def spy(settings, seeds):
        calls.append((settings["width"], seeds))
        return run(settings, seeds)

    monkeypatch.setitem(registry(), "fake.spy", dataclasses.replace(base, id="fake.spy", run=spy))
    return calls


def without_times(records):
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in records]


def stored(folder, experiment):
    """The store's records with their stamps, minus the two that are times."""
    with ResultStore.in_folder(folder, readonly=True) as store:
        return [(r.settings, r.seed, r.record, dataclasses.replace(
            r.stamp, wall_time=0.0, finished_at="")) for r in store.records(experiment)]


def test_run_writes_store_records_and_report(tmp_path):
    result = run_experiment("fake.quick", "quick", tmp_path, progress=False)
    names = {p.name for p in tmp_path.iterdir()}
    assert {STORE_FILENAME, "records.jsonl", "report.md", "report.json", "claims.json",
            "loss_vs_width.png"} <= names
    params = runner_fakes.PROFILES["quick"]
    assert [(r["settings"]["width"], r["seed"]) for r in result.records] == [
        (w, s) for w in params["widths"] for s in params["seeds"]]
    expected = [r for w in params["widths"]
                for r in runner_fakes.run({"width": w, "dtype": "float64"}, (0, 1, 2))]
    assert [{k: r[k] for k in ("seed", "loss", "curve")} for r in result.records] == expected
    assert all(r["wall_time"] >= 0 for r in result.records)
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == result.records
    assert (result.computed, result.reused) == (12, 0)
    (stamp,) = {r[3] for r in stored(tmp_path, "fake.quick")}
    assert (stamp.dtype, stamp.device, stamp.deepbasis_version) == ("float64", "cpu", "0.1.0")
    claims = json.loads((tmp_path / "claims.json").read_text())
    assert [c["passed"] for c in claims] == [True, False]
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["experiment"], report["profile"], report["figures"]) == (
        "fake.quick", "quick", ["loss_vs_width.png"])
    assert "| FAIL | the mean loss is below 0" in (tmp_path / "report.md").read_text()


def test_rerun_skips_everything_stored(tmp_path, monkeypatch):
    calls = spy_experiment(monkeypatch)
    first = run_experiment("fake.spy", "quick", tmp_path, progress=False)
    assert len(calls) == 4
    again = run_experiment("fake.spy", "quick", tmp_path, progress=False)
    assert len(calls) == 4, "a stored (settings, seed) was run again"
    assert (again.computed, again.reused) == (0, 12)
    assert again.records == first.records


def test_only_missing_seeds_are_run(tmp_path, monkeypatch):
    reference = run_experiment("fake.quick", "quick", tmp_path / "ref", progress=False)
    calls = spy_experiment(monkeypatch)
    # A store that holds seed 0 of width 1 and all of width 2, as an interrupted run might.
    with ResultStore.in_folder(tmp_path / "out") as store:
        for width, seeds in ((1, (0,)), (2, (0, 1, 2))):
            settings = {"width": width, "dtype": "float64"}
            store.put_cell("fake.spy", settings, runner_fakes.run(settings, seeds), Stamp())
    result = run_experiment("fake.spy", "quick", tmp_path / "out", progress=False)
    assert calls == [(1, (1, 2)), (3, (0, 1, 2)), (4, (0, 1, 2))]
    assert (result.computed, result.reused) == (8, 4)
    assert without_times(result.records) == without_times(reference.records)


def test_fresh_starts_over(tmp_path, monkeypatch):
    calls = spy_experiment(monkeypatch)
    run_experiment("fake.spy", "quick", tmp_path, progress=False)
    with ResultStore.in_folder(tmp_path) as store:  # another experiment in the same folder
        store.put_cell("fake.other", {"w": 1}, [{"seed": 0}], Stamp())
    result = run_experiment("fake.spy", "quick", tmp_path, progress=False, fresh=True)
    assert len(calls) == 8 and (result.computed, result.reused) == (12, 0)
    with ResultStore.in_folder(tmp_path) as store:
        assert store.count("fake.other") == 1  # --fresh forgets only this experiment
        assert len(store.runs("fake.spy")) == 1


def test_profiles_share_identical_cells(tmp_path, monkeypatch):
    # Settings are complete, so a cell of `paper` equal to one of `quick` is the same record.
    calls = spy_experiment(monkeypatch)
    run_experiment("fake.spy", "quick", tmp_path, progress=False)
    result = run_experiment("fake.spy", "paper", tmp_path, progress=False)
    assert calls[4:] == [(1, (3,)), (2, (3,))]
    assert [(r["settings"]["width"], r["seed"]) for r in result.records] == [
        (w, s) for w in (1, 2) for s in (0, 1, 2, 3)]


def test_failed_cells_keep_the_others_and_are_retried(tmp_path, monkeypatch):
    reference = run_experiment("fake.quick", "quick", tmp_path / "ref", progress=False)
    with pytest.raises(CellsFailed, match=r"1 of 4 cell\(s\) of fake.flaky failed; the records "
                                          r"of every other cell are stored(.|\n)*'width': 3"
                                          r"(.|\n)*FloatingPointError") as info:
        run_experiment("fake.flaky", "quick", tmp_path / "out", progress=False)
    assert [(s["width"], seeds) for s, seeds, _ in info.value.failures] == [(3, (0, 1, 2))]
    assert not (tmp_path / "out" / "report.md").exists()
    with ResultStore.in_folder(tmp_path / "out") as store:
        assert store.count("fake.flaky") == 9
    # The bug is fixed: the rerun computes only the failed cell.
    calls = spy_experiment(monkeypatch)
    monkeypatch.setitem(registry(), "fake.flaky",
                        dataclasses.replace(registry()["fake.spy"], id="fake.flaky"))
    result = run_experiment("fake.flaky", "quick", tmp_path / "out", progress=False)
    assert calls == [(3, (0, 1, 2))]
    assert without_times(result.records) == without_times(reference.records)


def test_contract_breaking_run_is_reported(tmp_path):
    with pytest.raises(CellsFailed, match=r"fake.badseeds(.|\n)*returned records for seeds "
                                          r"\[100, 101, 102\]"):
        run_experiment("fake.badseeds", "quick", tmp_path, progress=False)
    with ResultStore.in_folder(tmp_path) as store:
        assert store.count() == 0


def test_plan_is_checked(monkeypatch):
    def duplicate_cells(params):
        return [Cell({"w": 1}, (0, 1)), Cell({"w": 1}, (1, 2))]

    bad = dataclasses.replace(runner_fakes.QUICK, cells=duplicate_cells)
    with pytest.raises(ValueError, match=r"\(settings \{\"w\":1\}, seed 1\) appears in two "
                                         "cells"):
        plan_cells(bad, {})
    bad = dataclasses.replace(runner_fakes.QUICK, cells=lambda p: [Cell({"f": object()}, (0,))])
    with pytest.raises(ValueError, match="not plain JSON"):
        plan_cells(bad, {})
    bad = dataclasses.replace(runner_fakes.QUICK, cells=lambda p: [Cell({"w": 1}, (0.5,))])
    with pytest.raises(TypeError, match=r"seed 0.5 of cell \{\"w\":1\} is not an int"):
        plan_cells(bad, {})


def test_unknown_names_list_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment 'fake.nope'; valid ids:(.|\n)*"
                                         "fake.quick"):
        run_experiment("fake.nope", "quick", tmp_path)
    with pytest.raises(ValueError, match="unknown profile 'huge' for fake.quick; valid profiles: "
                                         "'quick', 'default', 'paper'"):
        run_experiment("fake.quick", "huge", tmp_path)
    with pytest.raises(ValueError, match="unknown executor 'slurm'"):
        run_experiment("fake.quick", "quick", tmp_path, executor="slurm")
    with pytest.raises(ValueError, match="threads must be a positive int or None, got 0"):
        run_experiment("fake.quick", "quick", tmp_path, threads=0)


def test_disk_full_mid_sweep_fails_loudly_and_resumes(tmp_path, monkeypatch):
    reference = run_experiment("fake.quick", "quick", tmp_path / "ref", progress=False)
    real = ResultStore._insert_record
    inserted = []

    def full_at_third_cell(self, row):
        if len(inserted) == 7:  # the second seed of the third cell
            raise sqlite3.OperationalError("database or disk is full")
        inserted.append(row)
        real(self, row)

    monkeypatch.setattr(ResultStore, "_insert_record", full_at_third_cell)
    with pytest.raises(StoreError, match="disk is full. Nothing of it was written"):
        run_experiment("fake.quick", "quick", tmp_path / "out", progress=False)
    monkeypatch.setattr(ResultStore, "_insert_record", real)
    with ResultStore.in_folder(tmp_path / "out") as store:
        assert store.count() == 6  # two whole cells; none of the third
    result = run_experiment("fake.quick", "quick", tmp_path / "out", progress=False)
    assert (result.computed, result.reused) == (6, 6)
    assert without_times(result.records) == without_times(reference.records)


def test_incompatible_store_is_not_mixed(tmp_path):
    run_experiment("fake.quick", "quick", tmp_path, progress=False)
    with sqlite3.connect(tmp_path / STORE_FILENAME) as conn:
        conn.execute("PRAGMA user_version = 0")
    with pytest.raises(StoreError, match="schema version 0"):
        run_experiment("fake.quick", "quick", tmp_path, progress=False)


def test_progress_bar_counts_cells_and_seeds(tmp_path, capsys):
    run_experiment("fake.quick", "quick", tmp_path, progress=True)
    err = capsys.readouterr().err
    assert "fake.quick" in err and "12/12" in err and "cells 4/4" in err
    run_experiment("fake.quick", "quick", tmp_path, progress=False)
    assert capsys.readouterr().err == ""


def _children(pid):
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has exited


def _count(folder):
    try:
        uri = (folder / STORE_FILENAME).resolve().as_uri()
        with sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT count(*) FROM records").fetchone()[0]
    except sqlite3.Error:
        return 0  # not created yet, or its schema is not committed yet


def test_worker_pool_run_exits_cleanly(tmp_path):
    # Workers are stopped with SIGTERM; nothing they created may be reported as leaked (tqdm's
    # default lock is a semaphore registered with the driver's resource tracker).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]),
               DEEPBASIS_FAKE_SLEEP="0.5")
    cmd = [sys.executable, "-c", LAUNCHER, "run", "fake.quick", "--profile", "default",
           "--out", str(tmp_path / "out"), "--no-progress", "--workers", "2"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "leaked" not in done.stderr and "Warning" not in done.stderr, done.stderr


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_sigkilled_sweep_resumes_to_the_uninterrupted_records(tmp_path):
    """kill -9 a real `deepbasis run --workers 2` mid-sweep, rerun it, compare with one run."""
    reference = run_experiment("fake.quick", "default", tmp_path / "ref", progress=False)
    total = len(reference.records)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS, os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-c", LAUNCHER, "run", "fake.quick", "--profile", "default",
           "--out", str(out), "--no-progress"]
    driver = subprocess.Popen(cmd + ["--workers", "2"], env=dict(env, DEEPBASIS_FAKE_SLEEP="0.4"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while _count(out) < 3:  # at least one whole cell stored
            assert driver.poll() is None, driver.stdout.read().decode()
            assert time.monotonic() < deadline, "no record was stored within 120 s"
            time.sleep(0.02)
        workers = _children(driver.pid)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    killed_at = _count(out)
    assert 3 <= killed_at < total, f"killed after {killed_at} of {total} records"
    assert killed_at % 3 == 0, "a cell's seeds were stored partly"
    # The pool's workers notice that their driver is gone and exit.
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), f"orphaned workers {workers}"
    assert _count(out) == killed_at, "something wrote after the driver died"

    resumed = subprocess.run(cmd + ["--workers", "1"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resumed: {killed_at} record(s) were already stored" in resumed.stdout
    assert stored(out, "fake.quick") == stored(tmp_path / "ref", "fake.quick")
    lines = (out / "records.jsonl").read_text().splitlines()
    assert without_times(json.loads(line) for line in lines) == without_times(reference.records)
