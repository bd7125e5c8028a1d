"""Read tables of inputs and targets from CSV, Parquet or NPZ files, with errors that name the
row and the column.

A *column* is a named 1-D array of numbers:

- **CSV** (``.csv``, comma separated; ``.tsv``, tab separated): the first line is the header of
  column names; every other non-blank line is one data row. A ``.csv`` file whose header has no
  comma but semicolons (or tabs, or ``|``) is read with that separator (:attr:`Columns.delimiter`
  says which).
- **Parquet** (``.parquet``, ``.pq``): the file's columns; needs ``pyarrow``
  (``pip install "deepbasis[parquet]"``).
- **NPZ** (``.npz``, written by ``numpy.savez``): each 1-D array is a column named by its key; a
  2-D array ``x`` of shape ``(N, k)`` is the ``k`` columns ``x[0]`` … ``x[k-1]``, and the name
  ``x`` selects all of them. NPZ files are opened with ``allow_pickle=False``, so they never run
  code.

Rows are numbered from 1 in messages, as a spreadsheet does (the CSV header is not a row);
CSV messages also give the line of the file.

When the inputs are not named, every column but the targets is an input, except columns that
look like row identifiers (:func:`identifier_columns`: a different integer, or a different
string, in every row), which :func:`read_table` leaves out and lists in ``Table.skipped``.
"""

from __future__ import annotations

import collections
import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._files import atomic_write

FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npz": "npz"}
_MISSING = {"", "na", "n/a", "nan", "null", "none"}


class DataError(ValueError):
    """A data file cannot be used for fitting or prediction; the message says where and why."""


@dataclass
class Columns:
    """The columns of a data file, in file order.

    ``values[name]`` is a 1-D array: float64 for numeric columns, ``object`` (strings) for the
    others. ``groups`` maps an NPZ 2-D array's key to the names of its columns. ``lines`` maps a
    row number (1-based) to its line in a CSV file.
    """

    path: Path
    values: dict[str, np.ndarray]
    groups: dict[str, list[str]] = field(default_factory=dict)
    lines: list[int] | None = None
    delimiter: str | None = None  # the CSV separator used (sniffed for .csv files)

    @property
    def names(self) -> list[str]:
        return list(self.values)

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.values.values()))) if self.values else 0

    def where(self, row: int) -> str:
        """'row 7 (line 8 of data.csv)' for a 0-based row index."""
        text = f"row {row + 1}"
        if self.lines is not None:
            text += f" (line {self.lines[row]} of {self.path.name})"
        return text

    def resolve(self, selection: Sequence[str], role: str) -> list[str]:
        """Column names for a selection of column (or NPZ group) names; unknown names raise."""
        names: list[str] = []
        for name in selection:
            if name in self.values:
                names.append(name)
            elif name in self.groups:
                names.extend(self.groups[name])
            else:
                raise DataError(
                    f"{role} column {name!r} is not in {self.path.name}; the available columns "
                    f"are {_listing(self)}"
                )
        return names


@dataclass
class Table:
    """Numeric inputs and targets read from a file, validated (finite, enough rows)."""

    inputs: np.ndarray  # (N, d) float64
    targets: np.ndarray | None  # (N, m) float64, or None when no target was asked for
    input_names: list[str]
    target_names: list[str]
    input_columns: list[str]  # the selection as given (NPZ group names kept), for predict
    path: Path
    skipped: list[str] = field(default_factory=list)  # identifier-like columns left out
    missing: np.ndarray | None = None  # (N,) bool: rows with a missing input (allow_missing)
    columns: Columns | None = None  # every column of the file, as read


def read_columns(path: str | Path) -> Columns:
    """Read every column of a CSV, Parquet or NPZ file (no validation beyond the format).

    Raises:
        FileNotFoundError: no such file.
        DataError: unknown extension, or a malformed file (ragged CSV rows, an empty file,
            NPZ arrays of different lengths or with more than two dimensions).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {str(path)!r}")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"cannot read {path.name!r}: unknown extension {path.suffix!r}; use one of "
            f"{', '.join(sorted(FORMATS))}"
        )
    columns = {"csv": _read_csv, "parquet": _read_parquet, "npz": _read_npz}[kind](path)
    if not columns.values:
        raise DataError(f"{path.name} has no columns")
    return columns


def read_table(
    path: str | Path,
    target: Sequence[str] | str | None,
    inputs: Sequence[str] | str | None = None,
    *,
    min_rows: int = 2,
    skip_identifiers: bool = False,
    allow_missing: bool = False,
    purpose: str = "fitting",
) -> Table:
    """Read inputs (and targets) for fitting or prediction, checking every value used.

    Args:
        path: a ``.csv``, ``.tsv``, ``.parquet``/``.pq`` or ``.npz`` file.
        target: the target column name(s): a list, or one string with comma-separated names
            (several names fit several outputs). ``None`` reads inputs only (prediction).
        inputs: the input column name(s), the same way; by default every column that is not a
            target. Columns not selected are never checked, so a text column can be left out.
        min_rows: the fewest data rows accepted.
        skip_identifiers: when ``inputs`` is not given, leave out the columns that look like
            row identifiers (:func:`identifier_columns`), as long as another input remains;
            they are listed in ``Table.skipped``.
        allow_missing: accept missing (NaN or empty) input values; ``Table.missing`` marks
            those rows (for predictions that skip them). Infinite values are still refused.
        purpose: what the rows are for, in the too-few-rows message.

    Returns:
        A :class:`Table` with float64 ``inputs`` ``(N, d)`` and ``targets`` ``(N, m)``.

    Raises:
        DataError: a missing column (the message lists the available ones), a non-numeric
            column, a NaN/inf/empty value (the message names its row and column), no input
            columns, or fewer than ``min_rows`` rows.

    Examples:
        >>> table = read_table("runs.csv", target="drag", inputs="speed,angle")  # doctest: +SKIP
        >>> table.inputs.shape, table.target_names  # doctest: +SKIP
        ((500, 2), ['drag'])
    """
    columns = read_columns(path)
    target_sel = _split(target) if target is not None else []
    target_names = columns.resolve(target_sel, "target")
    skipped: list[str] = []
    if inputs is None or _split(inputs) == []:
        targets = set(target_names)  # a set: the check is linear in the columns
        input_names = [name for name in columns.names if name not in targets]
        if skip_identifiers:
            skipped = identifier_columns(columns, input_names)
            if len(skipped) == len(input_names):
                skipped = []  # never leave no input: an integer grid may be the only input
            input_names = [name for name in input_names if name not in skipped]
        input_sel = _collapse_groups(columns, input_names)
    else:
        input_sel = _split(inputs)
        input_names = columns.resolve(input_sel, "input")
    overlap = sorted(set(input_names) & set(target_names))
    if overlap:
        raise DataError(f"column(s) {overlap} are both inputs and targets; pick each once")
    if not input_names:
        raise DataError(
            f"{columns.path.name} has no input columns besides the target(s) {target_names}; "
            f"the available columns are {_listing(columns)}"
        )
    n = columns.n_rows
    if n < min_rows:
        raise DataError(
            f"{columns.path.name} has {n} data row(s); {purpose} needs at least {min_rows}"
        )
    x = _numeric_matrix(columns, input_names, "input", allow_nan=allow_missing)
    y = _numeric_matrix(columns, target_names, "target") if target_names else None
    missing = np.isnan(x).any(axis=1) if allow_missing else None
    return Table(x, y, input_names, target_names, input_sel, columns.path, skipped, missing,
                 columns)


def identifier_columns(columns: Columns, names: Sequence[str] | None = None) -> list[str]:
    """The columns among ``names`` (default: all) that look like row identifiers: a different
    value in every row (at least 3 rows), all integers or all non-numeric strings.

    Such a column (``id``, ``run_id``, a sample name) numbers the rows rather than measuring
    anything, so a fit that takes it as an input learns the row order.

    Examples:
        >>> import numpy as np
        >>> cols = Columns(Path("t.csv"), {"id": np.array([3.0, 1.0, 2.0]),
        ...                                "x": np.array([0.5, 0.1, 0.2])})
        >>> identifier_columns(cols)
        ['id']
    """
    found = []
    for name in names if names is not None else columns.names:
        values = columns.values[name]
        if len(values) < 3:
            continue
        if values.dtype == object:
            cells = [str(v).strip() for v in values]
            if len(set(cells)) == len(cells):
                found.append(name)
        elif np.isfinite(values).all() and np.all(values == np.round(values)) \
                and len(np.unique(values)) == len(values):
            found.append(name)
    return found


def write_table(path: str | Path, columns: dict[str, np.ndarray]) -> Path:
    """Write named 1-D columns to a ``.csv``/``.tsv`` (full float precision), ``.npz`` or
    ``.parquet`` file, chosen by the extension. Text columns are written as text; in CSV a NaN
    is an empty cell (which the reader reads back as missing).

    The file is written beside ``path`` and renamed (:func:`deepbasis._files.atomic_write`):
    a failed write (full disk, read-only folder) leaves an existing file as it was.

    Raises:
        DataError: an unknown extension.
        deepbasis._files.UnwritableError: the file cannot be written (the message says why).
    """
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"cannot write {path.name!r}: unknown extension {path.suffix!r}; use one of "
            f"{', '.join(sorted(FORMATS))}"
        )
    with atomic_write(path) as tmp:
        if kind == "npz":
            with tmp.open("wb") as handle:  # a handle: savez would append .npz to a name
                np.savez(handle, **{name: _plain(v) for name, v in columns.items()})
        elif kind == "parquet":
            pa, pq = _pyarrow()
            pq.write_table(pa.table({name: np.asarray(v) for name, v in columns.items()}),
                           str(tmp))
        else:
            delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
            names = list(columns)
            data = [np.asarray(columns[name]) for name in names]
            with tmp.open("w", newline="") as handle:
                writer = csv.writer(handle, delimiter=delimiter)
                writer.writerow(names)
                for row in zip(*data, strict=True):
                    writer.writerow([_cell_text(v) for v in row])
    return path


def _cell_text(value) -> str:
    """A CSV cell: numbers exactly (integers without ".0", others by repr, which round-trips),
    NaN as an empty cell (what the reader reads as missing), text as it is."""
    if isinstance(value, str):
        return value
    number = float(value)
    if math.isnan(number):
        return ""
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)


def _plain(values) -> np.ndarray:
    """An array NPZ can store without pickle: numbers as they are, text as unicode strings."""
    array = np.asarray(values)
    return array.astype(str) if array.dtype == object else array


# --- readers ---------------------------------------------------------------------------------


def _read_csv(path: Path) -> Columns:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            delimiter = _sniff_delimiter(path, handle)
            lines = list(enumerate(csv.reader(handle, delimiter=delimiter), start=1))
    except UnicodeDecodeError as error:
        raise DataError(f"{path.name} is not a UTF-8 text file ({error.reason}); is it really "
                        "a CSV file?") from None
    except csv.Error as error:
        raise DataError(f"{path.name} is not valid CSV: {error}") from None
    lines = [(number, row) for number, row in lines if any(cell.strip() for cell in row)]
    if not lines:
        raise DataError(f"{path.name} is empty; a CSV file needs a header line of column names")
    _, header = lines[0]
    header = [name.strip() for name in header]
    for index, name in enumerate(header):
        if not name:
            raise DataError(f"column {index + 1} of the header of {path.name} has no name")
    counts = collections.Counter(header)  # linear: a 200,000-column header is fine
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise DataError(f"{path.name} has duplicate column names {duplicates}")
    cells: list[list[str]] = [[] for _ in header]
    numbers = []
    for number, row in lines[1:]:
        if len(row) != len(header):
            raise DataError(
                f"line {number} of {path.name} has {len(row)} field(s) but the header has "
                f"{len(header)}"
            )
        for column, cell in zip(cells, row, strict=True):
            column.append(cell.strip())
        numbers.append(number)
    values = {name: _parse_cells(column) for name, column in zip(header, cells, strict=True)}
    return Columns(path, values, lines=numbers, delimiter=delimiter)


def _sniff_delimiter(path: Path, handle) -> str:
    """Tab for ``.tsv``; for ``.csv`` a comma, unless the header line has none and has
    semicolons, tabs or ``|`` (the most frequent of them). Rewinds ``handle``."""
    if path.suffix.lower() == ".tsv":
        return "\t"
    header = next((line for line in handle if line.strip()), "")
    handle.seek(0)
    if "," in header:
        return ","
    counts = {d: header.count(d) for d in ";\t|"}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _parse_cells(cells: list[str]) -> np.ndarray:
    """float64 if every cell is a number or a missing marker (→ NaN), else the strings."""
    out = np.empty(len(cells), dtype=np.float64)
    for i, cell in enumerate(cells):
        try:
            out[i] = float(cell)
        except ValueError:
            if cell.lower() in _MISSING:
                out[i] = math.nan
            else:
                return np.asarray(cells, dtype=object)
    return out


def _read_npz(path: Path) -> Columns:
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:  # zipfile.BadZipFile, OSError, ValueError: all "not an NPZ"
        raise DataError(f"cannot read {path.name} as an NPZ file: {error}") from None
    values: dict[str, np.ndarray] = {}
    groups: dict[str, list[str]] = {}
    with archive:
        for key in archive.files:
            try:
                array = archive[key]
            except ValueError as error:  # object arrays need pickle, which we refuse
                raise DataError(f"array {key!r} in {path.name} cannot be read safely ({error}); "
                                "save plain numeric arrays") from None
            if array.ndim == 0 or array.ndim > 2:
                raise DataError(
                    f"array {key!r} in {path.name} has shape {array.shape}; use 1-D arrays "
                    "(one column each) or 2-D arrays (N, k) (k columns)"
                )
            numeric = np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
            if numeric and np.issubdtype(array.dtype, np.complexfloating):
                numeric = False
            array = array.astype(np.float64) if numeric else array.astype(object)
            if array.ndim == 1:
                values[key] = array
            else:
                names = [f"{key}[{j}]" for j in range(array.shape[1])]
                groups[key] = names
                for j, name in enumerate(names):
                    values[name] = array[:, j]
    lengths = {name: len(v) for name, v in values.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"the arrays in {path.name} have different numbers of rows: {lengths}")
    return Columns(path, values, groups)


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            "reading or writing Parquet needs pyarrow: pip install \"deepbasis[parquet]\" "
            "(or pip install pyarrow), or convert the file to CSV or NPZ"
        ) from None
    return pa, pq


def _read_parquet(path: Path) -> Columns:
    pa, pq = _pyarrow()
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"cannot read {path.name} as a Parquet file: {error}") from None
    values = {}
    for name in table.column_names:
        column = table.column(name)
        kind = column.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            # Nulls become NaN so that the finiteness check reports them with their row.
            array = column.cast(pa.float64()).fill_null(math.nan).to_numpy()
            values[name] = np.asarray(array, dtype=np.float64)
        else:
            values[name] = np.asarray(column.to_pylist(), dtype=object)
    return Columns(path, values)


# --- validation ------------------------------------------------------------------------------


def _numeric_matrix(columns: Columns, names: list[str], role: str, *,
                    allow_nan: bool = False) -> np.ndarray:
    out = np.empty((columns.n_rows, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        values = columns.values[name]
        if values.dtype == object:
            row = _first_non_numeric(values)
            raise DataError(
                f"{role} column {name!r} of {columns.path.name} is not numeric: "
                f"{columns.where(row)} has {values[row]!r}. Convert it to numbers, or leave the "
                "column out with --inputs / inputs=."
            )
        bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            what = "NaN or empty" if np.isnan(values[row]) else f"{values[row]}"
            raise DataError(
                f"{role} column {name!r} of {columns.path.name} has a non-finite value "
                f"({what}) at {columns.where(row)}; {int(bad.sum())} value(s) in that column are "
                "NaN, inf or empty. Remove or fill those rows."
            )
        out[:, j] = values
    return out


def _first_non_numeric(values: np.ndarray) -> int:
    for i, value in enumerate(values):
        if isinstance(value, str):
            try:
                float(value)
                continue
            except ValueError:
                if value.strip().lower() in _MISSING:
                    continue
            return i
        if not isinstance(value, (int, float, np.number)) or isinstance(value, complex):
            return i
    return 0


def _collapse_groups(columns: Columns, names: list[str]) -> list[str]:
    """Replace the columns of an NPZ 2-D array by its key when all of them are selected."""
    group_of = {n: key for key, group in columns.groups.items() for n in group}
    selected = set(names)
    whole = {key for key, group in columns.groups.items() if selected.issuperset(group)}
    out: list[str] = []
    seen: set[str] = set()
    for name in names:  # linear in the number of columns
        key = group_of.get(name)
        if key in whole:
            if key not in seen:
                seen.add(key)
                out.append(key)
        else:
            out.append(name)
    return out


def _split(selection: Sequence[str] | str) -> list[str]:
    if isinstance(selection, str):
        return [name.strip() for name in selection.split(",") if name.strip()]
    return [str(name) for name in selection]


def _listing(columns: Columns) -> str:
    names = list(columns.groups) + [n for n in columns.names
                                    if not any(n in g for g in columns.groups.values())]
    shown = ", ".join(repr(n) for n in names[:30])
    return shown + (f", … ({len(names)} in all)" if len(names) > 30 else "")
