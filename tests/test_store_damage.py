"""Damaged stores, concurrent runs and bounded waits (issue 17, 5 and 6).

Each test damages a store the way a disk, a copy or a careless user does, then checks that
`deepbasis status` / `run` say what is damaged (file, table, row), never suggest deleting,
point to SQLite's recovery, and that one broken folder does not hide the healthy ones.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import runner_fakes
from deepbasis.cli import app
from deepbasis.runner.reporting import combined_html, folder_status, load_report
from deepbasis.runner.runner import run_experiment
from deepbasis.runner.store import STORE_FILENAME, ResultStore, StoreError, folder_lock

SRC = Path(__file__).resolve().parents[1] / "src"
FORBIDDEN = ("move it away", "delete", "remove the", "free disk space")


@pytest.fixture(autouse=True)
def fakes(monkeypatch):
    runner_fakes.register(monkeypatch)


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _run(out, *extra):
    return _invoke("run", "fake.quick", "--profile", "quick", "--out", out, "--no-progress",
                   "--workers", "1", *extra)


@pytest.fixture
def results(tmp_path):
    """results/ with two complete runs of the fake experiment, a/ and b/."""
    root = tmp_path / "results"
    for name in ("a", "b"):
        run_experiment("fake.quick", "quick", root / name, progress=False)
    return root


def _sql(folder, statement):
    conn = sqlite3.connect(folder / STORE_FILENAME)
    conn.execute(statement)
    conn.commit()
    conn.close()


def _says_damaged_and_recovery(text):
    assert "is damaged" in text and ".recover" in text, text
    assert not any(word in text.lower() for word in FORBIDDEN), text
    assert "Traceback" not in text


def _status_shows_the_healthy_folder(done, results):
    assert done.exit_code == 1, done.output
    assert str(results / "b") in done.output
    healthy = done.output.split(str(results / "b"))[1]
    assert "complete" in healthy and "claims pass" in healthy, done.output


def test_status_reports_a_malformed_page_and_goes_on(results):
    path = results / "a" / STORE_FILENAME
    raw = bytearray(path.read_bytes())
    page = int.from_bytes(raw[16:18], "big")
    assert len(raw) >= 2 * page and not (results / "a" / (STORE_FILENAME + "-wal")).exists()
    raw[page:] = b"\xa5" * (len(raw) - page)  # every page after the header page
    path.write_bytes(bytes(raw))
    done = _invoke("status", results)
    _status_shows_the_healthy_folder(done, results)
    _says_damaged_and_recovery(done.output.split(str(results / "b"))[0])
    done = _run(results / "a")
    assert done.exit_code == 1
    _says_damaged_and_recovery(done.output)


def test_status_reports_a_corrupt_plan_row_and_goes_on(results):
    _sql(results / "a", "UPDATE runs SET plan = '[[\"k\", 3' WHERE id = 1")
    done = _invoke("status", results)
    _status_shows_the_healthy_folder(done, results)
    assert "run 1 of fake.quick (table runs" in done.output
    _says_damaged_and_recovery(done.output)


def test_status_reports_a_bad_report_json_and_goes_on(results):
    (results / "a" / "report.json").write_text('{"experiment": ')
    done = _invoke("status", results)
    _status_shows_the_healthy_folder(done, results)
    assert "report.json is damaged" in done.output
    assert "Traceback" not in done.output
    with pytest.raises(ValueError, match="report.json is damaged"):
        load_report(results / "a")


def test_a_corrupt_record_is_exit_1_naming_file_and_record(results):
    _sql(results / "a", "UPDATE records SET record = '{\"seed\": 0, ' WHERE seed = 0")
    done = _run(results / "a")
    assert done.exit_code == 1, done.output
    assert str(results / "a" / STORE_FILENAME) in done.output
    assert "seed 0" in done.output and "table records" in done.output
    _says_damaged_and_recovery(done.output)


@pytest.mark.parametrize("keep", [0.5, 100])
def test_a_truncated_store_is_damaged_not_foreign(results, keep):
    path = results / "a" / STORE_FILENAME
    raw = path.read_bytes()
    path.write_bytes(raw[:int(len(raw) * keep) if keep < 1 else keep])
    done = _run(results / "a")
    assert done.exit_code == 1, done.output
    _says_damaged_and_recovery(done.output)


def test_a_foreign_file_is_not_called_damaged_and_nothing_suggests_moving_it(tmp_path):
    (tmp_path / STORE_FILENAME).write_bytes(b"hello, this is not a database" * 10)
    done = _run(tmp_path)
    assert done.exit_code == 1 and "not a deepbasis result store" in done.output
    assert not any(word in done.output.lower() for word in FORBIDDEN)


def _store_with_records_in_its_wal(folder: Path) -> int:
    """A store whose records are only in its -wal file, copied without the -shm file."""
    source = folder.parent / "live"
    store = ResultStore.in_folder(source)
    store._conn.execute("PRAGMA wal_autocheckpoint = 0")
    for seed in range(6):
        store.put_cell("fake.quick", {"w": 1}, [{"seed": seed}], runner_fakes_stamp())
    folder.mkdir()
    shutil.copyfile(source / STORE_FILENAME, folder / STORE_FILENAME)
    shutil.copyfile(source / (STORE_FILENAME + "-wal"), folder / (STORE_FILENAME + "-wal"))
    store.close()
    return 6


def runner_fakes_stamp():
    from deepbasis.runner.store import Stamp

    return Stamp()


def test_a_store_copied_without_its_shm_file_is_read_with_its_log(tmp_path, monkeypatch):
    folder = tmp_path / "copy"
    count = _store_with_records_in_its_wal(folder)
    assert not (folder / (STORE_FILENAME + "-shm")).exists()

    # A read-only folder (we run as root): SQLite cannot create the -shm file there, and
    # mode=ro fails on the first read (checked by hand under `setpriv --bounding-set
    # -dac_override`); immutable=1 would then ignore the log and see an empty file.
    original = sqlite3.connect

    class CannotMakeShm:  # what mode=ro gives in a read-only folder when -shm is missing
        def execute(self, *args):
            raise sqlite3.OperationalError("unable to open database file")

        def close(self):
            pass

    def connect(database, *args, **kwargs):
        if isinstance(database, str) and "mode=ro" in database and str(folder) in database:
            return CannotMakeShm()
        return original(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    status = folder_status(folder)
    assert status.error is None and status.records == count
    assert sorted(os.listdir(folder)) == [STORE_FILENAME, STORE_FILENAME + "-wal"]


# --- one run per folder ------------------------------------------------------------------------


def test_a_second_run_on_a_locked_folder_says_who_holds_it(results):
    with folder_lock(results / "a"):
        with pytest.raises(StoreError, match=rf"already running in PID {os.getpid()}"):
            run_experiment("fake.quick", "quick", results / "a", progress=False)
        before = ResultStore.in_folder(results / "a", readonly=True)
        count = before.count()
        before.close()
        with pytest.raises(StoreError, match="already running"):  # --fresh cannot delete
            run_experiment("fake.quick", "quick", results / "a", progress=False, fresh=True)
        with ResultStore.in_folder(results / "a", readonly=True) as store:
            assert store.count() == count > 0
    run_experiment("fake.quick", "quick", results / "a", progress=False)  # released


_HOLDER = textwrap.dedent("""
    import sys, time
    from deepbasis.runner.store import folder_lock
    with folder_lock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.readline()
""")


def test_two_processes_one_folder(results):
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(results / "a")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(SRC)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        done = _run(results / "a", "--fresh")
        assert done.exit_code == 1, done.output
        assert f"already running in PID {holder.pid}" in done.output
    finally:
        holder.communicate("\n", timeout=60)
    with ResultStore.in_folder(results / "a", readonly=True) as store:
        assert store.count() > 0  # the --fresh above deleted nothing
    assert _run(results / "a").exit_code == 0


# --- HTML reports embed only the experiment's own files ------------------------------------------


def test_html_report_embeds_only_files_inside_the_folder(results, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\nSECRET-BYTES")
    outside = results / "outside.png"
    outside.write_bytes(b"\x89PNG\r\n\x1a\nOUTSIDE-BYTES")
    folder = results / "a"
    (folder / "link.png").symlink_to(secret)
    (folder / "own.png").write_bytes(b"\x89PNG\r\n\x1a\nOWN-BYTES")
    data = json.loads((folder / "report.json").read_text())
    data["figures"] = [str(secret), "../outside.png", "link.png", "own.png"]
    data["markdown"] += f"\n\n![x]({secret})\n\n![y](../outside.png)\n"
    (folder / "report.json").write_text(json.dumps(data))
    page = combined_html([load_report(folder)])
    for forbidden in (b"SECRET-BYTES", b"OUTSIDE-BYTES"):
        assert base64.b64encode(b"\x89PNG\r\n\x1a\n" + forbidden).decode() not in page
    assert base64.b64encode(b"\x89PNG\r\n\x1a\nOWN-BYTES").decode() in page
    assert "only the experiment's own files are embedded" in page
