"""The result store: every record of every run, in one SQLite file per output folder.

DESIGN.md: "The runner stores every record keyed by (experiment, settings, seed), so a killed
sweep resumes and never repeats or loses a finished run." This module is that store. It is
embedded (stdlib :mod:`sqlite3`, no server), and only ever touched by the driver process: the
executors (local process pool, Ray) send records back and the driver writes them.

Guarantees:

- **Atomic cells.** The records of one cell (several seeds trained as one batched ensemble)
  are committed in one transaction: after any crash, ``kill -9`` or full disk, a cell's
  records are either all stored or none are. SQLite's write-ahead log (WAL) with
  ``synchronous=FULL`` makes a commit durable before :meth:`ResultStore.put_cell` returns.
- **Stamped records.** Each record carries the deepbasis and torch versions, device and dtype
  of the process that computed it, the cell's wall time per seed and when it finished.
- **No silent mixing.** The file is marked as a deepbasis store (SQLite ``application_id``)
  with a schema version (``user_version``); a foreign SQLite file or a store of another schema
  version is refused with a message that says what to do, never read or extended.
- **Damage is named, never "fixed".** A damaged file (a malformed page, a truncated file, a
  record that is not JSON) is a :class:`StoreError` that names the file, the table and the row
  where known, changes nothing, and points to SQLite's recovery (``.recover``); it never
  suggests deleting anything. A store copied without its ``-shm`` file is read with the
  records in its write-ahead log (from a private copy when it cannot be opened in place).
- **One run per folder.** :func:`folder_lock` is an advisory lock (``fcntl.flock`` on
  ``results.lock`` in the folder) that ``deepbasis run`` holds from opening the store to
  writing the report: a second run on the folder (or its ``--fresh``) stops with "already
  running in PID …" instead of computing everything twice or deleting records under the first.

Examples:
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with ResultStore.in_folder(folder) as store:
    ...         store.put_cell("demo.exp", {"width": 8}, [{"seed": 0, "loss": 0.5}], Stamp())
    ...         store.done_seeds("demo.exp")
    {'{"width":8}': {0}}
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .spec import settings_key

#: File name of the store inside an output folder.
STORE_FILENAME = "results.sqlite"

#: File name of the advisory lock a running ``deepbasis run`` holds in its folder.
LOCK_FILENAME = "results.lock"

#: Bump when the tables change incompatibly; older and newer stores are then refused.
SCHEMA_VERSION = 1

#: SQLite ``application_id`` marking a file as a deepbasis result store ("dBrs").
APPLICATION_ID = 0x64427273

_SCHEMA = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE records (
    experiment        TEXT    NOT NULL,
    settings          TEXT    NOT NULL,  -- canonical JSON (spec.settings_key)
    seed              INTEGER NOT NULL,
    record            TEXT    NOT NULL,  -- the run function's record, JSON
    deepbasis_version TEXT    NOT NULL,
    torch_version     TEXT    NOT NULL,
    device            TEXT    NOT NULL,
    dtype             TEXT    NOT NULL,
    wall_time         REAL    NOT NULL,  -- seconds: the cell's wall time / its number of seeds
    finished_at       TEXT    NOT NULL,  -- UTC, ISO 8601
    PRIMARY KEY (experiment, settings, seed)
);
CREATE TABLE runs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment        TEXT NOT NULL,
    profile           TEXT NOT NULL,
    params            TEXT NOT NULL,  -- the profile's parameters, JSON
    plan              TEXT NOT NULL,  -- [[settings key, [seeds]], ...]: what the run must hold
    executor          TEXT NOT NULL,
    deepbasis_version TEXT NOT NULL,
    started_at        TEXT NOT NULL,
    finished_at       TEXT           -- NULL while running, or if the run was interrupted
);
"""


class StoreError(RuntimeError):
    """The result store cannot be opened, read or written; the message says why and what to do."""


def recovery_hint(path: Path) -> str:
    """How to get the records out of a damaged store (SQLite's own recovery)."""
    return (f"Nothing was changed. SQLite can usually recover the records: `sqlite3 {path} "
            f"\".recover\" | sqlite3 recovered.sqlite` (sqlite3 3.29 or later), then use "
            f"recovered.sqlite as {STORE_FILENAME} in a copy of the folder; keep the damaged "
            "file until the copy is checked.")


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold the advisory lock of an output folder (``fcntl.flock`` on ``results.lock``).

    Raises:
        StoreError: another process holds it (the message gives its PID), or the lock file
            cannot be created (read-only folder).
    """
    folder = Path(folder)
    try:
        import fcntl
    except ImportError:  # no flock (Windows): no lock, as before
        yield
        return
    path = folder / LOCK_FILENAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # O_NOFOLLOW: a results.lock that is a symbolic link (planted, or left by a copy)
        # must not make us truncate the file it points to.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as error:
        if path.is_symlink():
            raise StoreError(
                f"{path} is a symbolic link; deepbasis does not follow it (it would overwrite "
                f"the file it points to). Remove the link and run the command again.") from None
        raise StoreError(
            f"cannot open the result store in {folder} for writing: cannot create {path.name} "
            f"({error.strerror or error}). Check that the folder exists, is writable and the "
            "disk is not full, or choose another --out.") from error
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "an unknown process"
        os.close(fd)
        raise StoreError(
            f"another `deepbasis run` is already running in PID {holder} on {folder} (it holds "
            f"{path}); wait for it to finish, or stop it, then rerun this command: it resumes "
            "from the records stored. Two runs on one folder would compute the same cells "
            "twice.") from None
    try:
        with contextlib.suppress(OSError):  # the PID is only for the message above
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race)


@dataclass(frozen=True)
class Stamp:
    """Where and how a cell's records were computed (stored with every record).

    Attributes:
        deepbasis_version: version of the deepbasis that ran the cell.
        torch_version: version of torch that ran the cell.
        device: device the computation ran on (``"cpu"``, ``"cuda:0"``, ...).
        dtype: floating-point dtype of the computation (``"float64"``, ...).
        wall_time: seconds per seed (the cell's wall time divided by its number of seeds).
        finished_at: UTC time the cell finished, ISO 8601.
    """

    deepbasis_version: str = ""
    torch_version: str = ""
    device: str = "cpu"
    dtype: str = ""
    wall_time: float = 0.0
    finished_at: str = field(default_factory=lambda: utc_now())


@dataclass(frozen=True)
class StoredRecord:
    """One stored record with its key and stamp."""

    experiment: str
    settings: dict[str, Any]
    seed: int
    record: dict[str, Any]
    stamp: Stamp


@dataclass(frozen=True)
class RunInfo:
    """One ``deepbasis run`` of an experiment and profile, as the store remembers it.

    ``plan`` is the list of ``(settings key, seeds)`` the run had to produce; ``finished_at``
    is ``None`` for a run that is going on or was interrupted.
    """

    id: int
    experiment: str
    profile: str
    params: dict[str, Any]
    plan: list[tuple[str, tuple[int, ...]]]
    executor: str
    deepbasis_version: str
    started_at: str
    finished_at: str | None


def _is_corrupt(error: sqlite3.DatabaseError) -> bool:
    """SQLite says the file is damaged (not: busy, full, read-only)."""
    return (getattr(error, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB")
            or "malformed" in str(error))


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the millisecond."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def _deepbasis_version() -> str:
    from .. import __version__

    return __version__


class ResultStore:
    """A deepbasis result store (one SQLite file), opened for reading and writing.

    Args:
        path: the SQLite file; created (with its folder) unless ``readonly``.
        readonly: open an existing store without ever writing to it (``deepbasis status``).

    Raises:
        StoreError: the file is not a deepbasis store, was written with another schema version,
            or cannot be created or opened (read-only folder, full disk, missing file).

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._copy: Path | None = None  # a private copy read instead (see _connect_readonly)
        self._conn = self._connect()
        try:
            self._check_or_create()
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def in_folder(cls, folder: str | Path, *, readonly: bool = False) -> ResultStore:
        """The store of an output folder (``folder/results.sqlite``)."""
        return cls(Path(folder) / STORE_FILENAME, readonly=readonly)

    # -- opening -------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            if not self.path.is_file():
                raise StoreError(f"no result store at {self.path}")
            return self._connect_readonly()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit transactions; every write below is an explicit
            # BEGIN IMMEDIATE ... COMMIT, so a cell is stored whole or not at all.
            return sqlite3.connect(self.path, isolation_level=None, timeout=60.0)
        except (OSError, sqlite3.Error) as error:
            raise StoreError(self._cannot_write(error)) from error

    def _connect_readonly(self) -> sqlite3.Connection:
        uri = self.path.resolve().as_uri()
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            # A WAL database in a folder we cannot write (no -shm file can be made) opens
            # only as immutable, which ignores the write-ahead log. When there is a log (a
            # store copied without its -shm file, or a run still going), read a private copy
            # of the file and its log instead, so the records in the log are seen.
            conn.close()
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.is_file() and wal.stat().st_size > 0:
                return self._connect_copy(wal)
            return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)
        except sqlite3.DatabaseError:
            return conn  # not a database at all: the header check says so clearly

    def _connect_copy(self, wal: Path) -> sqlite3.Connection:
        self._copy = Path(tempfile.mkdtemp(prefix="deepbasis-store-"))
        try:
            shutil.copyfile(self.path, self._copy / self.path.name)
            shutil.copyfile(wal, self._copy / wal.name)
        except OSError as error:
            shutil.rmtree(self._copy, ignore_errors=True)
            raise StoreError(f"cannot read the result store {self.path}: it has a write-ahead "
                             f"log ({wal.name}) but no -shm file, the folder is read-only, and "
                             f"copying it failed ({error})") from error
        uri = (self._copy / self.path.name).as_uri()
        return sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None)

    def _check_or_create(self) -> None:
        try:
            self._check_header()
            if self.readonly:
                return
            # WAL: readers never block the writer and a commit is one append to the log;
            # synchronous=FULL: a commit survives power loss, not only a killed process.
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            with self._transaction():
                if self._is_empty():
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                    self._conn.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?)",
                        [("schema_version", str(SCHEMA_VERSION)),
                         ("created_by", f"deepbasis {_deepbasis_version()}"),
                         ("created_at", utc_now())],
                    )
        except sqlite3.DatabaseError as error:
            notadb = getattr(error, "sqlite_errorname", "") == "SQLITE_NOTADB"
            if self._looks_like_ours() or (_is_corrupt(error) and not notadb):
                raise StoreError(self._damaged("its header", error)) from error
            if isinstance(error, sqlite3.OperationalError):
                raise StoreError(self._cannot_write(error)) from error
            raise StoreError(
                f"{self.path} is not a deepbasis result store ({error}); choose another output "
                "folder (--out)"
            ) from error

    def _looks_like_ours(self) -> bool:
        """Whether the file starts as a deepbasis store does (SQLite magic and our
        application_id at byte 68), so that damage further in is reported as damage."""
        try:
            with open(self.path, "rb") as handle:
                head = handle.read(72)
        except OSError:
            return False
        return (len(head) == 72 and head.startswith(b"SQLite format 3\0")
                and int.from_bytes(head[68:72], "big") == APPLICATION_ID)

    def _damaged(self, what: str, error: BaseException | str) -> str:
        return (f"the result store {self.path} is damaged: {what} cannot be read ({error}). "
                + recovery_hint(self.path))

    def _is_empty(self) -> bool:
        return self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0

    def _check_header(self) -> None:
        application_id = self._conn.execute("PRAGMA application_id").fetchone()[0]
        schema = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if application_id == 0 and schema == 0 and self._is_empty():
            if self.readonly:
                raise StoreError(f"{self.path} is an empty file, not a deepbasis result store")
            return  # a new file: the schema is created next
        if application_id != APPLICATION_ID:
            raise StoreError(
                f"{self.path} is an SQLite file but not a deepbasis result store; choose another "
                "output folder (--out)"
            )
        if schema != SCHEMA_VERSION:
            created_by = self._meta("created_by") or "an unknown deepbasis version"
            raise StoreError(
                f"the result store {self.path} was written by {created_by} with store schema "
                f"version {schema}, but deepbasis {_deepbasis_version()} reads and writes schema "
                f"version {SCHEMA_VERSION}; records are never mixed across schemas. Use the "
                "deepbasis version that wrote it, or choose another --out to start a new "
                "store beside it."
            )

    def _meta(self, key: str) -> str | None:
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error:
            return None
        return row[0] if row else None

    def _cannot_write(self, error: BaseException) -> str:
        return (
            f"cannot open the result store {self.path} for writing: {error}. Check that the "
            "folder exists, is writable and the disk is not full, or choose another --out."
        )

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._conn.close()
        if self._copy is not None:
            shutil.rmtree(self._copy, ignore_errors=True)
            self._copy = None

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------

    class _Transaction:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> None:
            # IMMEDIATE takes the write lock now, so no other writer can interleave.
            self.conn.execute("BEGIN IMMEDIATE")

        def __exit__(self, exc_type: type | None, *rest: object) -> None:
            if exc_type is None:
                self.conn.execute("COMMIT")
            elif self.conn.in_transaction:
                # SQLite may already have rolled back (e.g. on SQLITE_FULL); either way the
                # failed transaction leaves nothing behind.
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass

    def _transaction(self) -> ResultStore._Transaction:
        if self.readonly:
            raise StoreError(f"the result store {self.path} was opened read-only")
        return ResultStore._Transaction(self._conn)

    def _write(self, what: str, action: Any) -> None:
        """Run ``action()`` in one transaction; any failure leaves the store as it was."""
        try:
            with self._transaction():
                action()
        except (sqlite3.Error, OSError) as error:
            if isinstance(error, sqlite3.DatabaseError) and _is_corrupt(error):
                raise StoreError(
                    f"could not store {what} in {self.path}: the file is damaged ({error}). "
                    + recovery_hint(self.path)) from error
            name = getattr(error, "sqlite_errorname", "")
            if name == "SQLITE_FULL" or getattr(error, "errno", None) == 28:
                fix = "Free disk space"
            elif name in ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH"):
                fix = "Make the folder and the file writable"
            else:
                fix = "Free disk space or make the folder writable"
            raise StoreError(
                f"could not store {what} in {self.path}: {error}. Nothing of it was written; "
                f"the records stored before are intact. {fix}, then rerun the same command: "
                "it resumes where it stopped."
            ) from error

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """Turn SQLite's errors while reading ``what`` into a StoreError that names it."""
        try:
            yield
        except sqlite3.DatabaseError as error:
            raise StoreError(self._damaged(what, error)) from error

    def _insert_record(self, row: tuple[Any, ...]) -> None:
        self._conn.execute(
            "INSERT INTO records (experiment, settings, seed, record, deepbasis_version, "
            "torch_version, device, dtype, wall_time, finished_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            # A record already stored for this key wins: runs are pure, so a second
            # computation of the same (experiment, settings, seed) carries nothing new.
            "ON CONFLICT (experiment, settings, seed) DO NOTHING",
            row,
        )

    def put_cell(self, experiment: str, settings: Mapping[str, Any] | str,
                 records: Sequence[Mapping[str, Any] | str], stamp: Stamp) -> None:
        """Store one cell's records, all in one transaction.

        Args:
            experiment: the experiment id.
            settings: the cell's settings (or their canonical key, :func:`spec.settings_key`).
            records: one record per seed, each with an integer ``"seed"`` (or its JSON text).
            stamp: versions, device, dtype and wall time of the computation.

        Raises:
            StoreError: the write failed (full disk, read-only folder); nothing was stored.
        """
        key = settings if isinstance(settings, str) else settings_key(settings)
        rows = []
        for record in records:
            text = record if isinstance(record, str) else json.dumps(record, sort_keys=True)
            seed = json.loads(text)["seed"] if isinstance(record, str) else record["seed"]
            rows.append((experiment, key, int(seed), text, stamp.deepbasis_version,
                         stamp.torch_version, stamp.device, stamp.dtype, float(stamp.wall_time),
                         stamp.finished_at))

        def insert() -> None:
            for row in rows:
                self._insert_record(row)

        self._write(f"{len(rows)} record(s) of {experiment} {key}", insert)

    def delete_experiment(self, experiment: str) -> int:
        """Forget every record and run of ``experiment`` (``--fresh``); returns how many records."""
        count = self.count(experiment)

        def delete() -> None:
            self._conn.execute("DELETE FROM records WHERE experiment = ?", (experiment,))
            self._conn.execute("DELETE FROM runs WHERE experiment = ?", (experiment,))

        self._write(f"the removal of {experiment}'s records", delete)
        return count

    def start_run(self, experiment: str, profile: str, params: Mapping[str, Any],
                  plan: Iterable[tuple[str, Sequence[int]]], executor: str) -> int:
        """Remember that a run of ``experiment``/``profile`` began and what it must produce."""
        plan_json = json.dumps([[key, list(seeds)] for key, seeds in plan])
        params_json = json.dumps(dict(params), sort_keys=True, default=str)
        run_id: list[int] = []

        def insert() -> None:
            cursor = self._conn.execute(
                "INSERT INTO runs (experiment, profile, params, plan, executor, "
                "deepbasis_version, started_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (experiment, profile, params_json, plan_json, executor, _deepbasis_version(),
                 utc_now()),
            )
            run_id.append(int(cursor.lastrowid))

        self._write(f"the start of a run of {experiment}", insert)
        return run_id[0]

    def finish_run(self, run_id: int) -> None:
        """Mark a run as complete (every planned record stored)."""
        self._write("the end of a run", lambda: self._conn.execute(
            "UPDATE runs SET finished_at = ? WHERE id = ?", (utc_now(), run_id)))

    # -- reading -------------------------------------------------------------------------------

    def experiments(self) -> list[str]:
        """Ids of the experiments with stored records or runs, sorted."""
        with self._reading("the tables records and runs"):
            rows = self._conn.execute(
                "SELECT experiment FROM records UNION SELECT experiment FROM runs ORDER BY 1")
            return [row[0] for row in rows]

    def count(self, experiment: str | None = None) -> int:
        """Number of stored records (of one experiment, or all)."""
        with self._reading("the table records"):
            if experiment is None:
                return self._conn.execute("SELECT count(*) FROM records").fetchone()[0]
            return self._conn.execute(
                "SELECT count(*) FROM records WHERE experiment = ?", (experiment,)).fetchone()[0]

    def done_seeds(self, experiment: str) -> dict[str, set[int]]:
        """Settings key → seeds stored, for one experiment."""
        done: dict[str, set[int]] = {}
        with self._reading(f"the table records (experiment {experiment})"):
            for key, seed in self._conn.execute(
                    "SELECT settings, seed FROM records WHERE experiment = ?", (experiment,)):
                done.setdefault(key, set()).add(seed)
        return done

    def records(self, experiment: str) -> Iterator[StoredRecord]:
        """Every stored record of ``experiment`` with its stamp, ordered by settings and seed."""
        with self._reading(f"the table records (experiment {experiment})"):
            rows = self._conn.execute(
                "SELECT settings, seed, record, deepbasis_version, torch_version, device, "
                "dtype, wall_time, finished_at FROM records WHERE experiment = ? "
                "ORDER BY settings, seed",
                (experiment,),
            ).fetchall()
        for key, seed, record, *stamp in rows:
            try:
                settings, payload = json.loads(key), json.loads(record)
                if not isinstance(settings, dict) or not isinstance(payload, dict):
                    raise ValueError("not a JSON object")
            except (TypeError, ValueError) as error:
                raise StoreError(self._damaged(
                    f"the record of experiment {experiment}, settings {key!s:.200}, seed {seed} "
                    "(table records)", error)) from None
            yield StoredRecord(experiment, settings, seed, payload, Stamp(*stamp))

    def runs(self, experiment: str | None = None) -> list[RunInfo]:
        """The runs remembered (of one experiment, or all), oldest first."""
        query = ("SELECT id, experiment, profile, params, plan, executor, deepbasis_version, "
                 "started_at, finished_at FROM runs")
        args: tuple[str, ...] = ()
        if experiment is not None:
            query += " WHERE experiment = ?"
            args = (experiment,)
        out = []
        with self._reading("the table runs"):
            rows = self._conn.execute(query + " ORDER BY id", args).fetchall()
        for row in rows:
            run_id, exp, profile, params, plan, executor, version, started, finished = row
            try:
                params = json.loads(params)
                plan = [(str(key), tuple(int(s) for s in seeds)) for key, seeds in
                        json.loads(plan)]
            except (TypeError, ValueError) as error:
                raise StoreError(self._damaged(
                    f"run {run_id} of {exp} (table runs: its params or plan)", error)) from None
            out.append(RunInfo(run_id, exp, profile, params, plan, executor, version, started,
                               finished))
        return out
