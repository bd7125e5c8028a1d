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

Missing values are empty cells and the usual markers (``NA``, ``NaN``, ``null``, ``#N/A``, ...;
more with ``na_values``). A column of numbers with a few cells that are neither is not
numeric, and the error names those cells (row, line, value).

When the inputs are not named, every column but the targets is an input, except columns that
look like row identifiers (:func:`identifier_columns`: a different integer, or a different
text that is not a number, in every row), which :func:`read_table` leaves out and lists in
``Table.skipped``.

:func:`write_with_columns` copies a file's columns through exactly as they are in the file
(``predict`` adds its predictions to them): ``00042``, ``2**53 + 1`` and ``NA`` stay what
they were.
"""

from __future__ import annotations

import collections
import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._files import atomic_write

FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npz": "npz"}
# Cells read as missing (NaN), compared in lower case: pandas' default markers, which cover
# what spreadsheets write (#N/A) and what R writes (NA).
_MISSING = {"", "na", "n/a", "nan", "null", "none", "#n/a", "#n/a n/a", "#na", "<na>", "-nan",
            "-na", "1.#ind", "-1.#ind", "1.#qnan", "-1.#qnan"}


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
    # The file's own values, for copying columns through unchanged (``predict``): for CSV the
    # text of every cell as written ("00042" stays "00042"), for NPZ and Parquet the arrays in
    # their stored dtype (int64 stays int64). ``records`` is the text of the CSV header and of
    # each data row, line ending included, as they are in the file.
    original: dict[str, np.ndarray] = field(default_factory=dict)
    records: list[str] | None = None

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


def read_columns(path: str | Path, na_values: Sequence[str] | str = ()) -> Columns:
    """Read every column of a CSV, Parquet or NPZ file (no validation beyond the format).

    ``na_values``: more CSV cell texts to read as missing (NaN), besides the usual markers
    (empty, ``NA``, ``NaN``, ``null``, ``#N/A``, ...); a list, or one comma-separated string.

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
    if kind == "csv":
        columns = _read_csv(path, {v.strip().lower() for v in _split(na_values)} | _MISSING)
    else:
        columns = {"parquet": _read_parquet, "npz": _read_npz}[kind](path)
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
    na_values: Sequence[str] | str = (),
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
        allow_missing: accept missing (NaN or empty) input and target values;
            ``Table.missing`` marks those rows (for predictions or fits that skip them).
            Infinite values are still refused.
        purpose: what the rows are for, in the too-few-rows message.
        na_values: more CSV cell texts that mean "missing" (:func:`read_columns`).

    Returns:
        A :class:`Table` with float64 ``inputs`` ``(N, d)`` and ``targets`` ``(N, m)``.

    Raises:
        DataError: a missing column (the message lists the available ones), a column named
            twice, a non-numeric column (a column of numbers with a few other cells names the
            first of them), a NaN/inf/empty value (the message names its row and column), no
            input or no target columns, or fewer than ``min_rows`` rows.

    Examples:
        >>> table = read_table("runs.csv", target="drag", inputs="speed,angle")  # doctest: +SKIP
        >>> table.inputs.shape, table.target_names  # doctest: +SKIP
        ((500, 2), ['drag'])
    """
    columns = read_columns(path, na_values)
    target_sel = _split(target) if target is not None else []
    if target is not None and not target_sel:
        raise DataError(f"the target {target!r} names no column; give the target column(s), "
                        f"e.g. --target y (the columns are {_listing(columns)})")
    _check_unique(target_sel, "target")
    target_names = columns.resolve(target_sel, "target")
    _check_unique(target_names, "target")
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
        _check_unique(input_sel, "input")
        input_names = columns.resolve(input_sel, "input")
        _check_unique(input_names, "input")
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
    y = (_numeric_matrix(columns, target_names, "target", allow_nan=allow_missing)
         if target_names else None)
    missing = None
    if allow_missing:
        missing = np.isnan(x).any(axis=1)
        if y is not None:
            missing |= np.isnan(y).any(axis=1)
    return Table(x, y, input_names, target_names, input_sel, columns.path, skipped, missing,
                 columns)


def identifier_columns(columns: Columns, names: Sequence[str] | None = None) -> list[str]:
    """The columns among ``names`` (default: all) that look like row identifiers: a different
    value in every row (at least 3 rows), all integers or all non-numeric strings.

    A column of numbers with a few cells that are not (``0.5o``, ``"1,234"``) is *not* an
    identifier, whatever its values: it is a measurement with a typo, and reading it as an
    input makes :func:`read_table` name the bad cells instead of dropping the column.

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
            if len(set(cells)) == len(cells) and not any(_is_number(c) for c in cells):
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


def write_with_columns(path: str | Path, source: Columns,
                       added: dict[str, np.ndarray]) -> Path:
    """Write every column of ``source`` exactly as it is in its file, then the ``added``
    columns (``predict``: the inputs, then the predictions), to ``path``.

    Nothing is re-formatted: a CSV written to the same kind of file keeps each row's own text
    byte for byte (quotes, ``00042``, ``NA``, ``2**53 + 1``, line endings) with the new cells
    appended; into another format, a CSV column becomes integers or floats only when every
    cell reads back as the same text, and stays text otherwise; NPZ and Parquet columns keep
    their dtype. Written atomically, as :func:`write_table`.
    """
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if source.records is not None and kind == "csv" and \
            path.suffix.lower() == source.path.suffix.lower():
        return _append_csv_columns(path, source, added)
    target = "csv" if kind == "csv" else "typed"
    columns = {name: _verbatim(source.original.get(name, source.values[name]), target)
               for name in source.names}
    return write_table(path, {**columns, **added})


def _append_csv_columns(path: Path, source: Columns, added: dict[str, np.ndarray]) -> Path:
    names = list(added)
    data = [np.asarray(added[name]) for name in names]
    delimiter = source.delimiter or ","
    rows = [names, *zip(*data, strict=True)]
    with atomic_write(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="")
        for record, extra in zip(source.records, rows, strict=True):
            body = record.rstrip("\r\n")
            handle.write(body + delimiter)
            texts = [_cell_text(v) for v in extra]
            if any(texts):
                writer.writerow(texts)
            else:  # csv would write a lone empty cell as "" (to mark the row)
                handle.write(delimiter * (len(texts) - 1))
            handle.write(record[len(body):] or "\n")
    return path


def _verbatim(values: np.ndarray, target: str) -> np.ndarray:
    """A column as read from its file, for a ``target`` of "csv" (text as it is) or "typed"
    (NPZ, Parquet: CSV text becomes int64 or float64 only when nothing changes)."""
    values = np.asarray(values)
    if values.dtype != object or target == "csv":
        return values
    if not all(isinstance(v, str) for v in values):
        return values
    cells = [v.strip() for v in values]
    if cells and all(re.fullmatch(r"-?(0|[1-9][0-9]*)", c) for c in cells) and \
            all(-(2**63) <= int(c) < 2**63 for c in cells):
        return np.asarray([int(c) for c in cells], dtype=np.int64)
    try:
        numbers = np.asarray([float(c) for c in cells], dtype=np.float64)
    except ValueError:
        return values
    exact = all(not re.fullmatch(r"[+-]?0[0-9]+|[+-]?[0-9]{17,}", c) for c in cells)
    return numbers if cells and exact and np.isfinite(numbers).all() else values


def _cell_text(value) -> str:
    """A CSV cell: numbers exactly (integers without ".0", others by repr, which round-trips),
    NaN as an empty cell (what the reader reads as missing), text as it is."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value))  # exactly: 2**53 + 1 is not a float
    number = float(value)
    if math.isnan(number):
        return ""
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)


def _plain(values) -> np.ndarray:
    """An array NPZ can store without pickle: numbers as they are, text as unicode strings."""
    array = np.asarray(values)
    return array.astype(str) if array.dtype == object else array


# --- readers ---------------------------------------------------------------------------------


def _read_csv(path: Path, missing: set[str] = _MISSING) -> Columns:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            delimiter = _sniff_delimiter(path, handle)
            physical = list(handle)  # the file's lines, endings kept (a record may span several)
    except UnicodeDecodeError as error:
        raise DataError(f"{path.name} is not a UTF-8 text file ({error.reason}); is it really "
                        "a CSV file?") from None
    reader = csv.reader(physical, delimiter=delimiter)
    lines = []  # (first line of the record, its fields, its text as in the file)
    start = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise DataError(f"{path.name} is not valid CSV: line {start + 1}: {error}") from None
        lines.append((start + 1, row, "".join(physical[start:reader.line_num])))
        start = reader.line_num
    lines = [record for record in lines if any(cell.strip() for cell in record[1])]
    if not lines:
        raise DataError(f"{path.name} is empty; a CSV file needs a header line of column names")
    _, header, _ = lines[0]
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
    for number, row, _ in lines[1:]:
        if len(row) != len(header):
            raise DataError(
                f"line {number} of {path.name} has {len(row)} field(s) but the header has "
                f"{len(header)}"
            )
        for column, cell in zip(cells, row, strict=True):
            column.append(cell)
        numbers.append(number)
    values = {name: _parse_cells([c.strip() for c in column], missing)
              for name, column in zip(header, cells, strict=True)}
    original = {name: np.asarray(column, dtype=object)
                for name, column in zip(header, cells, strict=True)}
    return Columns(path, values, lines=numbers, delimiter=delimiter, original=original,
                   records=[text for _, _, text in lines])


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


def _parse_cells(cells: list[str], missing: set[str] = _MISSING) -> np.ndarray:
    """float64 if every cell is a number or a missing marker (→ NaN), else the strings."""
    out = np.empty(len(cells), dtype=np.float64)
    for i, cell in enumerate(cells):
        try:
            out[i] = float(cell)
        except ValueError:
            if cell.lower() in missing:
                out[i] = math.nan
            else:
                return np.asarray(cells, dtype=object)
    return out


def _read_npz(path: Path) -> Columns:
    values: dict[str, np.ndarray] = {}
    original: dict[str, np.ndarray] = {}
    groups: dict[str, list[str]] = {}
    for key, array in _npz_arrays(path):
        if array.ndim == 0 or array.ndim > 2:
            raise DataError(
                f"array {key!r} in {path.name} has shape {array.shape}; use 1-D arrays "
                "(one column each) or 2-D arrays (N, k) (k columns)"
            )
        numeric = np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
        if numeric and np.issubdtype(array.dtype, np.complexfloating):
            numeric = False
        parsed = array.astype(np.float64) if numeric else array.astype(object)
        if array.ndim == 1:
            values[key], original[key] = parsed, array
        else:
            names = [f"{key}[{j}]" for j in range(array.shape[1])]
            groups[key] = names
            for j, name in enumerate(names):
                values[name], original[name] = parsed[:, j], array[:, j]
    lengths = {name: len(v) for name, v in values.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"the arrays in {path.name} have different numbers of rows: {lengths}")
    return Columns(path, values, groups, original=original)


def _npz_arrays(path: Path):
    """``(key, array)`` of every array of an NPZ file, read without pickle.

    Each array's header is read first and the bytes it declares compared with the bytes
    stored, before anything is allocated: a damaged or edited file (a shape of 10**12, a
    truncated member, a bad CRC) is a :class:`DataError`, not a memory error or a traceback.
    """
    import zipfile

    def damaged(why):
        return DataError(f"cannot read {path.name} as an NPZ file: {why}. Is it really a "
                         "file written by numpy.savez? Save it again from its source.")

    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise damaged(error) from None
    arrays = []
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        for info in members:  # every header first: nothing is read if one is wrong
            key = info.filename.removesuffix(".npy")
            try:
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                    else:
                        raise ValueError(f"NPY format version {version} is not supported")
                    header = member.tell()
            except Exception as error:  # not an .npy member, a malformed header: all "damaged"
                raise damaged(f"member {info.filename!r}: {error}") from None
            if dtype.hasobject:
                raise DataError(f"array {key!r} in {path.name} cannot be read safely: it "
                                "holds Python objects, which only pickle could read (refused); "
                                "save plain numeric or string arrays")
            declared = math.prod(shape) * dtype.itemsize
            if info.file_size != header + declared:
                raise damaged(f"array {key!r} declares shape {shape} of {dtype} "
                              f"({declared:,} bytes) but the file holds "
                              f"{max(info.file_size - header, 0):,} bytes of it")
        for info in members:
            key = info.filename.removesuffix(".npy")
            try:
                with archive.open(info) as member:
                    arrays.append((key, np.lib.format.read_array(member, allow_pickle=False)))
            except Exception as error:  # zipfile.BadZipFile (bad CRC), EOFError, OSError
                raise damaged(f"array {key!r}: {error}") from None
    return arrays


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
    values, original = {}, {}
    for name in table.column_names:
        column = table.column(name)
        kind = column.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            # Nulls become NaN so that the finiteness check reports them with their row.
            array = column.cast(pa.float64()).fill_null(math.nan).to_numpy()
            values[name] = np.asarray(array, dtype=np.float64)
        else:
            values[name] = np.asarray(column.to_pylist(), dtype=object)
        if column.null_count == 0 and not pa.types.is_floating(kind) and (
                pa.types.is_integer(kind) or pa.types.is_boolean(kind)):
            original[name] = column.to_numpy()  # int64 ids stay exact
        else:
            original[name] = np.asarray(column.to_pylist(), dtype=object)  # None: missing
    return Columns(path, values, original=original)


# --- validation ------------------------------------------------------------------------------


def _numeric_matrix(columns: Columns, names: list[str], role: str, *,
                    allow_nan: bool = False) -> np.ndarray:
    out = np.empty((columns.n_rows, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        values = columns.values[name]
        if values.dtype == object:
            raise DataError(_not_numeric(columns, name, role))
        bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            what = "NaN or empty" if np.isnan(values[row]) else f"{values[row]}"
            raise DataError(
                f"{role} column {name!r} of {columns.path.name} has a non-finite value "
                f"({what}) at {columns.where(row)}; {int(bad.sum())} value(s) in that column are "
                "NaN, inf or empty. Remove or fill those rows"
                + (", or pass --skip-missing to leave them out." if not allow_nan else ".")
            )
        out[:, j] = values
    return out


def _not_numeric(columns: Columns, name: str, role: str) -> str:
    """Why a column is not numeric: a column of numbers with a few other cells names the
    first of them (row, value) and the ways out; a text column says it is text."""
    values = columns.values[name]
    bad = [i for i, v in enumerate(values) if not _is_number(v, missing=True)]
    if len(bad) == len(values) or not bad:
        row = bad[0] if bad else 0
        return (f"{role} column {name!r} of {columns.path.name} is not numeric: "
                f"{columns.where(row)} has {values[row]!r:.60}. Convert it to numbers, or leave "
                "the column out with --inputs / inputs=.")
    shown = ", ".join(f"{columns.where(i)} has {values[i]!r:.40}" for i in bad[:3])
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    return (f"{role} column {name!r} of {columns.path.name} is not numeric: {shown}{more} "
            f"({len(bad)} of {len(values)} cells; the others are numbers). Fix those cells; or, "
            f"if they mean 'missing', list them with --na-values (na_values=) and leave those "
            f"rows out with --skip-missing; or leave the column out with --inputs.")


def _is_number(value, missing: bool = False) -> bool:
    """Whether a cell is a number (or, with ``missing``, a missing-value marker)."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, complex)):
        return True
    if not isinstance(value, str):
        return False
    text = value.strip()
    if missing and text.lower() in _MISSING:
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_unique(names: Sequence[str], role: str) -> None:
    seen = collections.Counter(names)
    twice = [name for name, count in seen.items() if count > 1]
    if twice:
        raise DataError(f"the {role} columns name {twice[0]!r} {seen[twice[0]]} times; name "
                        "each column once (a model cannot tell its columns apart otherwise)")


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
