"""`deepbasis fit` / `deepbasis predict`, and reading data files with row/column errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from deepbasis.cli import app
from deepbasis.estimator import DataError, load_model, read_table, write_table
from deepbasis.estimator.data import read_columns

FAST = ["--steps", "20", "--width", "8", "--depth", "2", "--no-progress"]


def _invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def _csv(path, header, rows):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def curve_csv(tmp_path):
    x = np.linspace(-1.0, 2.0, 80)
    rows = [[repr(float(a)), "label", repr(float(np.sin(3 * a)))] for a in x]
    return _csv(tmp_path / "curve.csv", ["x", "note", "y"], rows)


# --- fit and predict ---------------------------------------------------------------------------


def test_fit_csv_then_predict_round_trip(tmp_path, curve_csv, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = _invoke("fit", curve_csv, "--target", "y", "--inputs", "x", *FAST)
    assert done.exit_code == 0, done.output
    assert "train" in done.output and "validation" in done.output
    assert "activation: " in done.output and "best of 2 candidates" in done.output
    model, plot = tmp_path / "curve.model.safetensors", tmp_path / "curve.fit.png"
    assert model.is_file() and plot.is_file() and plot.stat().st_size > 10_000
    regressor = load_model(model)
    assert regressor.extra_["input_columns"] == ["x"]
    assert regressor.extra_["target_names"] == ["y"]
    assert set(regressor.extra_["errors"]) == {"train", "validation"}

    done = _invoke("predict", model, curve_csv, "--out", tmp_path / "out.csv")
    assert done.exit_code == 0, done.output
    assert "RMSE of y against the values in curve.csv" in done.output
    written = read_columns(tmp_path / "out.csv")
    assert written.names == ["x", "note", "y", "y_pred"]  # every column, then the prediction
    table = read_table(curve_csv, "y", "x")
    np.testing.assert_array_equal(written.values["y_pred"], regressor.predict(table.inputs))
    np.testing.assert_array_equal(written.values["y"], table.targets[:, 0])
    assert list(written.values["note"]) == ["label"] * 80


def test_fit_npz_two_inputs_two_targets(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.uniform(0.0, 1.0, (150, 2))
    np.savez(tmp_path / "field.npz", x=X, u=np.sin(4 * X[:, 0]) * X[:, 1], v=X.sum(axis=1))
    done = _invoke("fit", tmp_path / "field.npz", "-t", "u,v", "--out", tmp_path / "f",
                   "--plot", tmp_path / "plot.png", "--validation", "0", *FAST)
    assert done.exit_code == 0, done.output
    assert "no validation split" in done.output and "validation   " not in done.output
    assert (tmp_path / "plot.png").stat().st_size > 10_000
    regressor = load_model(tmp_path / "f.safetensors")
    assert regressor.extra_["input_columns"] == ["x"]
    assert regressor.extra_["input_names"] == ["x[0]", "x[1]"]
    np.savez(tmp_path / "new.npz", x=X[:7])  # predict needs only the inputs
    done = _invoke("predict", tmp_path / "f.safetensors", tmp_path / "new.npz", "-o",
                   tmp_path / "p.npz")
    assert done.exit_code == 0, done.output
    with np.load(tmp_path / "p.npz") as out:
        assert sorted(out.files) == ["u_pred", "v_pred", "x[0]", "x[1]"]
        np.testing.assert_array_equal(np.c_[out["u_pred"], out["v_pred"]],
                                      regressor.predict(X[:7]))


def test_fit_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    x = np.linspace(0.0, 1.0, 50)
    write_table(tmp_path / "d.parquet", {"a": x, "b": x**2, "c": np.abs(x - 0.4)})
    done = _invoke("fit", tmp_path / "d.parquet", "-t", "c", "-o", tmp_path / "m", *FAST)
    assert done.exit_code == 0, done.output
    done = _invoke("predict", tmp_path / "m.safetensors", tmp_path / "d.parquet", "-o",
                   tmp_path / "p.parquet")
    assert done.exit_code == 0, done.output
    assert read_columns(tmp_path / "p.parquet").names == ["a", "b", "c", "c_pred"]


def test_fit_plot_for_three_inputs(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.uniform(size=(40, 3))
    write_table(tmp_path / "d.csv", {"p": X[:, 0], "q": X[:, 1], "r": X[:, 2],
                                     "y": X @ [1.0, -2.0, 0.5]})
    done = _invoke("fit", tmp_path / "d.csv", "-t", "y", "-o", tmp_path / "m", *FAST)
    assert done.exit_code == 0, done.output
    assert (tmp_path / "m.fit.png").is_file()


def test_fit_reports_bad_data_and_exits_2(tmp_path, curve_csv):
    done = _invoke("fit", curve_csv, "--target", "z", *FAST)
    assert done.exit_code == 2
    assert "target column 'z' is not in curve.csv; the available columns are 'x', 'note', " \
           "'y'" in done.output
    done = _invoke("fit", curve_csv, "--target", "y", *FAST)  # 'note' is text
    assert done.exit_code == 2
    assert "input column 'note' of curve.csv is not numeric: row 1 (line 2 of curve.csv) has " \
           "'label'" in done.output


def test_predict_with_a_corrupt_model(tmp_path, curve_csv):
    (tmp_path / "m.safetensors").write_bytes(b"garbage")
    done = _invoke("predict", tmp_path / "m.safetensors", curve_csv, "-o", tmp_path / "p.csv")
    assert done.exit_code == 2
    assert "cannot read m.safetensors as a deepbasis model file" in done.output


def test_predict_needs_the_model_inputs(tmp_path, curve_csv):
    done = _invoke("fit", curve_csv, "-t", "y", "-i", "x", "-o", tmp_path / "m", *FAST)
    assert done.exit_code == 0, done.output
    _csv(tmp_path / "other.csv", ["t"], [["1.0"]])
    done = _invoke("predict", tmp_path / "m.safetensors", tmp_path / "other.csv", "-o",
                   tmp_path / "p.csv")
    assert done.exit_code == 2
    assert "input column 'x' is not in other.csv; the available columns are 't'" in done.output


# --- reading data files ------------------------------------------------------------------------


@pytest.mark.parametrize(("cell", "shown"), [("", "NaN or empty"), ("nan", "NaN or empty"),
                                              ("inf", "inf"), ("-inf", "-inf")])
def test_non_finite_cell_names_row_line_and_column(tmp_path, cell, shown):
    rows = [["0.0", "1.0"], ["1.0", "2.0"], ["2.0", cell], ["3.0", "4.0"]]
    path = _csv(tmp_path / "d.csv", ["a", "b"], rows)
    with pytest.raises(DataError, match=rf"target column 'b' of d.csv has a non-finite value "
                                        rf"\({shown}\) at row 3 \(line 4 of d.csv\)"):
        read_table(path, "b")


def test_non_numeric_cell(tmp_path):
    path = _csv(tmp_path / "d.csv", ["a", "b"], [["0", "1"], ["1", "two"], ["2", "3"]])
    with pytest.raises(DataError, match=r"target column 'b' of d.csv is not numeric: row 2 "
                                        r"\(line 3 of d.csv\) has 'two'"):
        read_table(path, "b")


def test_unselected_text_column_is_ignored(tmp_path):
    path = _csv(tmp_path / "d.csv", ["a", "name", "b"], [["0", "x", "1"], ["1", "y", "2"]])
    table = read_table(path, "b", "a")
    np.testing.assert_array_equal(table.inputs, [[0.0], [1.0]])
    np.testing.assert_array_equal(table.targets, [[1.0], [2.0]])


def test_missing_target_lists_the_columns(tmp_path):
    path = _csv(tmp_path / "d.csv", ["a", "b"], [["0", "1"]])
    with pytest.raises(DataError, match="target column 'y' is not in d.csv; the available "
                                        "columns are 'a', 'b'"):
        read_table(path, "y")


def test_too_few_rows(tmp_path):
    path = _csv(tmp_path / "d.csv", ["a", "b"], [["0", "1"]])
    with pytest.raises(DataError, match="d.csv has 1 data row.*needs at least 2"):
        read_table(path, "b")
    with pytest.raises(DataError, match="e.csv has 0 data row"):
        read_table(_csv(tmp_path / "e.csv", ["a", "b"], []), "b")


def test_ragged_and_unnamed_csv(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(DataError, match="line 3 of d.csv has 1 field"):
        read_columns(path)
    path.write_text("a,,c\n1,2,3\n")
    with pytest.raises(DataError, match="column 2 of the header of d.csv has no name"):
        read_columns(path)
    path.write_text("")
    with pytest.raises(DataError, match="d.csv is empty"):
        read_columns(path)


def test_only_target_column(tmp_path):
    path = _csv(tmp_path / "d.csv", ["b"], [["0"], ["1"]])
    with pytest.raises(DataError, match="no input columns besides the target"):
        read_table(path, "b")


def test_unknown_extension_and_missing_file(tmp_path):
    (tmp_path / "d.xlsx").write_bytes(b"")
    with pytest.raises(DataError, match=r"unknown extension '.xlsx'; use one of .csv, .npz"):
        read_table(tmp_path / "d.xlsx", "y")
    with pytest.raises(FileNotFoundError, match="no data file"):
        read_table(tmp_path / "none.csv", "y")


def test_npz_columns_groups_and_object_arrays(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2)), y=np.arange(4.0))
    table = read_table(tmp_path / "d.npz", "y")
    assert table.input_names == ["x[0]", "x[1]"] and table.input_columns == ["x"]
    np.savez(tmp_path / "bad.npz", x=np.zeros(4), y=np.array([1, "a", None, 2], dtype=object))
    with pytest.raises(DataError, match="cannot be read safely"):
        read_table(tmp_path / "bad.npz", "y")
    np.savez(tmp_path / "nan.npz", x=np.array([0.0, 1.0, np.nan]), y=np.zeros(3))
    with pytest.raises(DataError, match=r"input column 'x' of nan.npz has a non-finite value "
                                        r"\(NaN or empty\) at row 3;"):
        read_table(tmp_path / "nan.npz", "y")


def test_parquet_nulls_and_text(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [0.0, None, 2.0], "s": ["p", "q", "r"], "y": [1, 2, 3]}),
                   tmp_path / "d.parquet")
    with pytest.raises(DataError, match=r"input column 'a' of d.parquet has a non-finite value "
                                        r"\(NaN or empty\) at row 2"):
        read_table(tmp_path / "d.parquet", "y", "a")
    with pytest.raises(DataError, match="input column 's' of d.parquet is not numeric: row 1 "
                                        "has 'p'"):
        read_table(tmp_path / "d.parquet", "y", "s")


def test_write_then_read_is_exact(tmp_path):
    values = {"a": np.array([0.1, 1 / 3, -2e-300]), "b": np.array([np.pi, 1e300, 5.0])}
    for name in ("w.csv", "w.tsv", "w.npz"):
        columns = read_columns(write_table(tmp_path / name, values))
        for key, column in values.items():
            np.testing.assert_array_equal(columns.values[key], column)


def test_fit_names_a_bad_row_and_warns_on_a_constant_target(tmp_path):
    rows = [[str(i), "1.5"] for i in range(10)]
    path = _csv(tmp_path / "flat.csv", ["x", "y"], rows)
    with pytest.warns(UserWarning, match=r"the target is constant \(every value is 1\.5\)"):
        done = _invoke("fit", path, "-t", "y", "-o", tmp_path / "m", *FAST)
    assert done.exit_code == 0, done.output
    np.testing.assert_array_equal(load_model(tmp_path / "m.safetensors").predict([[3.0]]), 1.5)
    rows[6][1] = "inf"
    _csv(path, ["x", "y"], rows)
    done = _invoke("fit", path, "-t", "y", *FAST)
    assert done.exit_code == 2
    assert "target column 'y' of flat.csv has a non-finite value (inf) at row 7 (line 8 of " \
           "flat.csv)" in done.output


def test_fit_with_an_activation_list(tmp_path, curve_csv):
    done = _invoke("fit", curve_csv, "-t", "y", "-i", "x", "-o", tmp_path / "m",
                   "--activation", "relu, sin", *FAST)
    assert done.exit_code == 0, done.output
    regressor = load_model(tmp_path / "m.safetensors")
    assert regressor.get_params()["activation"] == ("relu", "sin")
    assert regressor.activation_ in ("relu", "sin")


def test_predict_with_a_model_saved_from_python(tmp_path):
    from deepbasis.estimator import BasisRegressor

    X = np.linspace(0.0, 1.0, 30)[:, None] * [1.0, 2.0]
    regressor = BasisRegressor(width=8, depth=2, steps=5, random_state=0).fit(X, X[:, 0] ** 2)
    regressor.save(tmp_path / "m.safetensors")
    write_table(tmp_path / "in.csv", {"a": X[:, 0], "b": X[:, 1]})
    done = _invoke("predict", tmp_path / "m.safetensors", tmp_path / "in.csv", "-o",
                   tmp_path / "p.csv")
    assert done.exit_code == 0, done.output
    np.testing.assert_array_equal(read_columns(tmp_path / "p.csv").values["y_pred"],
                                  regressor.predict(X))
    write_table(tmp_path / "more.csv", {"a": X[:, 0], "b": X[:, 1], "c": X[:, 0]})
    done = _invoke("predict", tmp_path / "m.safetensors", tmp_path / "more.csv", "-o",
                   tmp_path / "p.csv")
    assert done.exit_code == 2
    assert "does not name its input columns and more.csv has 3 column(s), not the 2" \
           in done.output


# --- real tables: identifiers, all columns out, missing inputs, separators, row counts --------


@pytest.fixture
def runs_csv(tmp_path):
    """A table as users have them: an id, a sample name, two inputs and the target."""
    rng = np.random.default_rng(1)
    speed, angle = rng.uniform(0, 1, 40), rng.uniform(0, 1, 40)
    rows = [[str(1000 + i), f"s{i}", repr(float(s)), repr(float(a)), repr(float(s * s + a))]
            for i, (s, a) in enumerate(zip(speed, angle, strict=True))]
    return _csv(tmp_path / "runs.csv", ["run_id", "name", "speed", "angle", "drag"], rows)


def test_fit_prints_the_inputs_and_skips_identifier_columns(tmp_path, runs_csv):
    done = _invoke("fit", runs_csv, "-t", "drag", "-o", tmp_path / "m", *FAST)
    assert done.exit_code == 0, done.output
    assert "inputs (2): speed, angle" in done.output
    assert "skipped column 'run_id': it looks like a row identifier" in done.output
    assert "skipped column 'name'" in done.output
    assert load_model(tmp_path / "m.safetensors").extra_["input_columns"] == ["speed", "angle"]
    done = _invoke("fit", runs_csv, "-t", "drag", "-i", "run_id,speed", "-o", tmp_path / "n",
                   *FAST)  # named in --inputs: used
    assert done.exit_code == 0, done.output
    assert "inputs (2): run_id, speed" in done.output and "skipped" not in done.output


def test_identifier_columns():
    from deepbasis.estimator.data import Columns, identifier_columns

    values = {"id": np.array([5.0, 3.0, 4.0, 9.0]), "x": np.array([0.1, 0.2, 0.3, 0.4]),
              "level": np.array([1.0, 2.0, 1.0, 2.0]),
              "tag": np.array(["a", "b", "c", "d"], dtype=object),
              "city": np.array(["P", "P", "L", "L"], dtype=object)}
    assert identifier_columns(Columns(Path("t.csv"), values)) == ["id", "tag"]


def test_only_integer_input_is_not_skipped(tmp_path):
    path = _csv(tmp_path / "g.csv", ["n", "y"], [[str(i), repr(i * 0.5)] for i in range(10)])
    table = read_table(path, "y", skip_identifiers=True)
    assert table.input_names == ["n"] and table.skipped == []


def test_predict_writes_every_column_and_named_predictions(tmp_path, runs_csv):
    assert _invoke("fit", runs_csv, "-t", "drag", "-o", tmp_path / "m", *FAST).exit_code == 0
    model = tmp_path / "m.safetensors"
    done = _invoke("predict", model, runs_csv, "-o", tmp_path / "p.csv")
    assert done.exit_code == 0, done.output
    written = read_columns(tmp_path / "p.csv")
    assert written.names == ["run_id", "name", "speed", "angle", "drag", "drag_pred"]
    original = read_columns(runs_csv)
    np.testing.assert_array_equal(written.values["run_id"], original.values["run_id"])
    assert "1000," in (tmp_path / "p.csv").read_text()  # integers stay integers
    table = read_table(runs_csv, "drag", "speed,angle")
    np.testing.assert_array_equal(written.values["drag_pred"],
                                  load_model(model).predict(table.inputs))
    done = _invoke("predict", model, runs_csv, "-o", tmp_path / "q.csv", "--column", "fit_{target}")
    assert done.exit_code == 0, done.output
    assert read_columns(tmp_path / "q.csv").names[-1] == "fit_drag"
    done = _invoke("predict", model, tmp_path / "p.csv", "-o", tmp_path / "r.csv")
    assert done.exit_code == 2 and "already has a column 'drag_pred'" in done.output


def test_predict_skip_missing_leaves_those_predictions_empty(tmp_path, runs_csv):
    assert _invoke("fit", runs_csv, "-t", "drag", "-o", tmp_path / "m", *FAST).exit_code == 0
    lines = runs_csv.read_text().splitlines()
    cells = lines[3].split(",")
    cells[3] = ""  # row 3 has no angle
    lines[3] = ",".join(cells)
    holed = tmp_path / "holed.csv"
    holed.write_text("\n".join(lines) + "\n")
    done = _invoke("predict", tmp_path / "m.safetensors", holed, "-o", tmp_path / "p.csv")
    assert done.exit_code == 2
    assert "input column 'angle' of holed.csv has a non-finite value (NaN or empty) at row 3 " \
           "(line 4 of holed.csv)" in done.output and "--skip-missing" in done.output
    done = _invoke("predict", tmp_path / "m.safetensors", holed, "-o", tmp_path / "p.csv",
                   "--skip-missing")
    assert done.exit_code == 0, done.output
    assert "predictions for 39 rows" in done.output and "1 row(s) with a missing input" in \
        done.output
    out = (tmp_path / "p.csv").read_text().splitlines()
    assert out[3].endswith(",") and not out[4].endswith(",")  # empty prediction in row 3 only
    assert len(out) == 41


def test_semicolon_separated_csv_is_sniffed(tmp_path, runs_csv):
    semi = tmp_path / "semi.csv"
    semi.write_text(runs_csv.read_text().replace(",", ";"))
    columns = read_columns(semi)
    assert columns.delimiter == ";" and columns.names == read_columns(runs_csv).names
    done = _invoke("fit", semi, "-t", "drag", "-o", tmp_path / "m", *FAST)
    assert done.exit_code == 0, done.output
    assert "read semi.csv as ';'-separated" in done.output


def test_one_minimum_row_count(tmp_path):
    rows = [[repr(x), repr(x * x)] for x in (0.1, 0.5, 0.9, 0.3)]
    three = _csv(tmp_path / "three.csv", ["x", "y"], rows[:3])
    done = _invoke("fit", three, "-t", "y", "-o", tmp_path / "m", *FAST)
    assert done.exit_code == 2 and "Traceback" not in done.output
    assert "three.csv has 3 data row(s); fitting needs at least 4: 3 to train 2 candidates and " \
           "1 held out for validation (--validation 0 trains on every row)" in done.output
    for extra in (["--validation", "0"], ["--activation", "relu"]):
        done = _invoke("fit", three, "-t", "y", "-o", tmp_path / "m", *extra, *FAST)
        assert done.exit_code == 0, done.output
    four = _csv(tmp_path / "four.csv", ["x", "y"], rows)
    done = _invoke("fit", four, "-t", "y", "-o", tmp_path / "m", *FAST)
    assert done.exit_code == 0, done.output
    two = _csv(tmp_path / "two.csv", ["x", "y"], rows[:2])
    done = _invoke("fit", two, "-t", "y", "-o", tmp_path / "m", "--activation", "relu",
                   "--validation", "0", *FAST)
    assert done.exit_code == 0, done.output


def test_progress_bars_are_named_by_candidate(tmp_path, curve_csv):
    done = _invoke("fit", curve_csv, "-t", "y", "-i", "x", "-o", tmp_path / "m",
                   *[a for a in FAST if a != "--no-progress"])
    assert done.exit_code == 0, done.output
    assert "relu 1/2" in done.output and "tanh 2/2" in done.output
    assert "LSGD" not in done.output


def test_fit_says_when_the_model_is_a_mean_of_networks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    x = rng.uniform(size=150)
    rows = [[repr(float(a)), repr(float(np.sin(6 * a) + 0.2 * e))]
            for a, e in zip(x, rng.standard_normal(150), strict=True)]
    noisy = _csv(tmp_path / "noisy.csv", ["x", "y"], rows)
    done = _invoke("fit", noisy, "--target", "y", *FAST)
    assert done.exit_code == 0, done.output
    assert "noisy rows: the model is the mean of 5 networks" in done.output
    assert load_model(tmp_path / "noisy.model.safetensors").n_networks_ == 5
