"""Output files that are either complete or untouched: write to a temporary file, then rename.

Every file deepbasis writes for a user (model files, predictions, plots, reports, run records)
goes through :func:`atomic_write`: the data go to a temporary file in the target's folder, are
flushed to the disk, and only then renamed over the target (``os.replace``, atomic on POSIX
within one file system). A full disk, a read-only folder or Ctrl-C half-way therefore never
leaves a truncated file, and never destroys the file that was there; the temporary file is
removed on failure. :func:`check_writable` tests a target up front, so a command can refuse
before hours of work instead of after.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: mkstemp's 0600 becomes what open() would have given


class UnwritableError(OSError):
    """An output path that cannot be written; the message names it and says why."""


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; write it, and on success it replaces ``path``.

    Raises:
        UnwritableError: the folder does not exist, is not writable, or the disk is full;
            ``path`` is unchanged and no temporary file is left behind.

    Examples:
        >>> with atomic_write("out.csv") as tmp:  # doctest: +SKIP
        ...     tmp.write_text("a,b\\n1,2\\n")
    """
    path = Path(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _unwritable(error.errno, _why(path, error)) from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _mode(path))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the data are on the disk before the name points at them
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(error, OSError) and not isinstance(error, UnwritableError):
            raise _unwritable(error.errno, _why(path, error)) from None
        raise


def check_writable(path: str | Path) -> Path:
    """Raise :class:`UnwritableError` unless a file can be created at ``path`` (by creating
    and removing a temporary file beside it); return ``path``. Nothing at ``path`` changes."""
    path = Path(path)
    if path.is_dir():
        raise _unwritable(21, f"cannot write {str(path)!r}: it is a folder; give a file name")
    try:
        with atomic_write(path):
            raise _Probe
    except _Probe:
        pass
    return path


def _unwritable(errno: int | None, message: str) -> UnwritableError:
    error = UnwritableError(message)  # one argument: str(error) is the message alone
    error.errno = errno
    return error


class _Probe(Exception):
    """Raised inside the probe so that atomic_write removes its file instead of renaming."""


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777  # replacing a file keeps its permissions
    except OSError:
        return 0o666 & ~_UMASK


def _why(path: Path, error: OSError) -> str:
    folder = path.parent
    if not folder.exists():
        reason = f"the folder {str(folder)!r} does not exist; create it first"
    elif not folder.is_dir():
        reason = f"{str(folder)!r} is not a folder"
    else:
        reason = error.strerror or str(error)
        if error.errno == 28:
            reason += "; free some space and run the command again"
        elif error.errno in (13, 30, 1):
            reason += "; choose a writable location"
    return f"cannot write {str(path)!r}: {reason}"


# --- names read from files, and files a command must not overwrite -------------------------


def is_plain_name(name: object) -> bool:
    """Whether ``name`` (read from a file the program did not write just now, e.g. a figure
    or profile name in ``report.json``) is one plain file name: a non-empty string without a
    folder separator, NUL or control character, and not ``.`` or ``..``. Only such a name
    joined to a folder stays inside that folder."""
    return (isinstance(name, str) and 0 < len(name) <= 255 and name not in (".", "..")
            and not any(c in name for c in "/\\") and all(ord(c) >= 32 for c in name))


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same existing file (links and ``..`` resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


_SQLITE_MAGIC = b"SQLite format 3\x00"


def file_kind(path: str | Path) -> str | None:
    """What an existing file at ``path`` holds, when overwriting it would lose work deepbasis
    cannot redo: ``"an SQLite database (a result store?)"``, ``"a safetensors file (a model?)"``,
    or None (no file, or anything else)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    if head.startswith(_SQLITE_MAGIC):
        return "an SQLite database (a result store)"
    if len(head) > 8 and head[8:9] == b"{" and b'"__metadata__"' in head or \
            path.suffix == ".safetensors" and len(head) > 8 and head[8:9] == b"{":
        return "a safetensors file (a model)"
    return None
