"""Tests of the result store (experiments/store.py): keys, stamps, atomic cells, refusals."""

from __future__ import annotations

import errno
import json
import math
import os
import sqlite3
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepbasis.runner.spec import settings_key
from deepbasis.runner.store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    STORE_FILENAME,
    ResultStore,
    Stamp,
    StoreError,
)

STAMP = Stamp("0.1.0", "2.13.0+cpu", "cpu", "float64", 0.25, "2026-01-01T00:00:00.000Z")


def records(seeds, scale=1.0):
    return [{"seed": s, "loss": scale * (s + 0.5), "curve": [1.0, 0.5 * s]} for s in seeds]


def rows(path):
    """Every record row, read with plain sqlite3 (not through the class under test)."""
    with sqlite3.connect(path) as conn:
        return sorted(conn.execute("SELECT experiment, settings, seed, record FROM records"))


def test_put_and_read_back_with_stamps(tmp_path):
    with ResultStore.in_folder(tmp_path) as store:
        store.put_cell("x.a", {"width": 2, "depth": 1}, records([0, 1]), STAMP)
        store.put_cell("x.a", {"depth": 1, "width": 4}, records([0]), STAMP)
        store.put_cell("x.b", {"width": 2, "depth": 1}, records([5]), STAMP)
        assert store.count() == 4 and store.count("x.a") == 3
        assert store.experiments() == ["x.a", "x.b"]
        key = settings_key({"width": 2, "depth": 1})
        assert store.done_seeds("x.a") == {key: {0, 1}, settings_key({"width": 4, "depth": 1}):
                                           {0}}
        got = list(store.records("x.a"))
    assert [(r.settings, r.seed) for r in got] == [
        ({"depth": 1, "width": 2}, 0), ({"depth": 1, "width": 2}, 1), ({"depth": 1, "width": 4}, 0)]
    assert got[1].record == records([1])[0]
    assert got[0].stamp == STAMP


def test_settings_key_is_order_independent(tmp_path):
    with ResultStore.in_folder(tmp_path) as store:
        store.put_cell("x.a", {"a": 1, "b": [1, 2]}, records([0]), STAMP)
        assert store.done_seeds("x.a") == {settings_key({"b": [1, 2], "a": 1}): {0}}


def test_file_is_marked_wal_and_versioned(tmp_path):
    ResultStore.in_folder(tmp_path).close()
    with sqlite3.connect(tmp_path / STORE_FILENAME) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_first_write_of_a_key_wins(tmp_path):
    # Runs are pure, so a recomputed (experiment, settings, seed) carries nothing new.
    with ResultStore.in_folder(tmp_path) as store:
        store.put_cell("x.a", {"w": 1}, records([0]), STAMP)
        store.put_cell("x.a", {"w": 1}, records([0], scale=7.0), STAMP)
        assert [r.record for r in store.records("x.a")] == records([0])


def test_runs_and_delete(tmp_path):
    with ResultStore.in_folder(tmp_path) as store:
        run_id = store.start_run("x.a", "quick", {"n": 2}, [('{"w":1}', (0, 1))], "local")
        store.put_cell("x.a", {"w": 1}, records([0, 1]), STAMP)
        store.put_cell("x.b", {"w": 1}, records([0]), STAMP)
        (run,) = store.runs("x.a")
        assert (run.profile, run.params, run.plan, run.finished_at) == (
            "quick", {"n": 2}, [('{"w":1}', (0, 1))], None)
        store.finish_run(run_id)
        assert store.runs()[0].finished_at is not None
        assert store.delete_experiment("x.a") == 2
        assert store.count() == 1 and store.runs() == [] and store.experiments() == ["x.b"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=10,
)


@settings(max_examples=25, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=6).filter(lambda k: k != "seed"), json_values,
                               max_size=4),
       seed=st.integers(0, 2**31))
def test_records_round_trip_exactly(tmp_path_factory, payload, seed):
    folder = tmp_path_factory.mktemp("roundtrip")
    record = {"seed": seed, **payload}
    with ResultStore.in_folder(folder) as store:
        store.put_cell("x.a", {"w": 1}, [record], STAMP)
        (got,) = store.records("x.a")
    assert got.record == record, f"seed {seed}"


def test_nan_and_inf_survive(tmp_path):
    # A diverged run's NaN loss is a result too, and must come back as NaN.
    with ResultStore.in_folder(tmp_path) as store:
        store.put_cell("x.a", {"w": 1}, [{"seed": 0, "loss": math.nan, "top": math.inf}], STAMP)
        (got,) = store.records("x.a")
    assert math.isnan(got.record["loss"]) and got.record["top"] == math.inf


def test_disk_full_leaves_the_store_unchanged(tmp_path):
    """A real SQLITE_FULL (page limit reached) in the middle of a cell: nothing of it is kept."""
    path = tmp_path / STORE_FILENAME
    with ResultStore(path) as store:
        store.put_cell("x.a", {"w": 1}, records([0, 1]), STAMP)
        before = rows(path)
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages + 1}")
        big = [{"seed": s, "blob": "x" * 3000} for s in range(8)]  # needs several new pages
        with pytest.raises(StoreError, match="disk is full.*Nothing of it was written"):
            store.put_cell("x.a", {"w": 2}, big, STAMP)
        assert store.count() == 2
        store._conn.execute("PRAGMA max_page_count = 1073741823")
        store.put_cell("x.a", {"w": 3}, records([0]), STAMP)  # still usable afterwards
    assert rows(path) == sorted(before + [("x.a", '{"w":3}', 0,
                                           json.dumps(records([0])[0], sort_keys=True))])


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   sqlite3.OperationalError("database or disk is full")],
                         ids=["ENOSPC", "SQLITE_FULL"])
def test_write_failing_mid_cell_rolls_back(tmp_path, monkeypatch, error):
    path = tmp_path / STORE_FILENAME
    with ResultStore(path) as store:
        store.put_cell("x.a", {"w": 1}, records([0]), STAMP)
        before = rows(path)
        real = ResultStore._insert_record
        calls = []

        def failing_second(self, row):
            calls.append(row)
            if len(calls) == 2:  # the first seed of the cell is already inserted
                raise error
            real(self, row)

        monkeypatch.setattr(ResultStore, "_insert_record", failing_second)
        with pytest.raises(StoreError, match=r"(No space|disk is full).*records stored before "
                                             r"are intact.*rerun"):
            store.put_cell("x.a", {"w": 2}, records([0, 1, 2]), STAMP)
        assert len(calls) == 2
    assert rows(path) == before


def test_other_schema_version_is_refused(tmp_path):
    path = tmp_path / STORE_FILENAME
    with ResultStore(path) as store:
        store.put_cell("x.a", {"w": 1}, records([0]), STAMP)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    for readonly in (False, True):
        with pytest.raises(StoreError, match="schema version 99.*reads and writes schema version"
                                             f" {SCHEMA_VERSION}.*never mixed"):
            ResultStore(path, readonly=readonly)
    with sqlite3.connect(path) as conn:  # and it was not touched
        assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 1


def test_foreign_sqlite_file_is_refused(tmp_path):
    path = tmp_path / STORE_FILENAME
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE mine (x)")
    with pytest.raises(StoreError, match="not a deepbasis result store"):
        ResultStore(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal"  # left as it was


def test_non_database_file_is_refused(tmp_path):
    path = tmp_path / STORE_FILENAME
    path.write_bytes(b"this is not a database, it is a text file " * 50)
    with pytest.raises(StoreError, match="not a deepbasis result store"):
        ResultStore(path)


def test_readonly_open_never_writes(tmp_path):
    with ResultStore.in_folder(tmp_path) as store:
        store.put_cell("x.a", {"w": 1}, records([0]), STAMP)
    with ResultStore.in_folder(tmp_path, readonly=True) as store:
        assert store.count() == 1
        with pytest.raises(StoreError, match="opened read-only"):
            store.put_cell("x.a", {"w": 2}, records([0]), STAMP)
    with pytest.raises(StoreError, match="no result store"):
        ResultStore.in_folder(tmp_path / "elsewhere", readonly=True)


def _chmod_blocks_writes(folder) -> bool:
    probe = folder / "probe"
    try:
        probe.write_text("x")
    except OSError:
        return True
    probe.unlink()
    return False


def test_readonly_folder_fails_loudly(tmp_path):
    folder = tmp_path / "results"
    with ResultStore.in_folder(folder) as store:
        store.put_cell("x.a", {"w": 1}, records([0]), STAMP)
    before = rows(folder / STORE_FILENAME)
    empty = tmp_path / "empty"
    empty.mkdir()
    for d in (folder, empty):
        d.chmod(stat.S_IRUSR | stat.S_IXUSR)
    for f in folder.iterdir():
        f.chmod(stat.S_IRUSR)
    try:
        if not _chmod_blocks_writes(empty):
            pytest.skip(f"uid {os.getuid()} can write into a chmod 500 folder (root with "
                        "CAP_DAC_OVERRIDE); run under `setpriv --bounding-set -dac_override` "
                        "to exercise this test as root")
        with pytest.raises(StoreError, match="cannot open the result store.*writable"):
            ResultStore.in_folder(empty / "sub")
        with pytest.raises(StoreError, match="(readonly|read-only|unable to open)"):
            with ResultStore.in_folder(folder) as store:
                store.put_cell("x.a", {"w": 2}, records([0]), STAMP)
        with ResultStore.in_folder(folder, readonly=True) as store:  # status still reads it
            assert store.count() == 1
    finally:
        for d in (folder, empty):
            d.chmod(stat.S_IRWXU)
        for f in folder.iterdir():
            f.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert rows(folder / STORE_FILENAME) == before
