"""Issue 24: hostile or careless inputs to the CLI, data files, model files, the store and the
reports. Each probe ends in one line of error, a non-zero exit and nothing written, or in a
result that is exactly right: never a file written outside its folder, a silently wrong fit,
or a traceback."""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import zipfile
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


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a fit that should have failed writes nothing in the checkout


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


def test_store_and_profile_folders_that_are_links_are_refused_before_the_sweep(tmp_path, fakes):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    os.symlink(elsewhere, out / "quick")
    line = one_line_error(run_quick(out), 1)
    assert "quick is a symbolic link" in line
    (out / "quick").unlink()
    os.symlink(elsewhere / "other.sqlite", out / STORE_FILENAME)
    line = one_line_error(run_quick(out), 1)
    assert "results.sqlite is a symbolic link" in line
    assert list(elsewhere.iterdir()) == []


def test_report_out_does_not_replace_a_foreign_html_page(tmp_path, fakes):
    out = tmp_path / "out"
    assert run_quick(out).exit_code == 0
    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html>\n<title>my page</title>\n")
    line = one_line_error(invoke("report", out, "--html", "--out", page))
    assert "--force" in line and page.read_text().endswith("<title>my page</title>\n")
    assert invoke("report", out, "--html", "--out", tmp_path / "r.html").exit_code == 0
    assert invoke("report", out, "--html", "--out", tmp_path / "r.html").exit_code == 0


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


# --- the estimator's files -----------------------------------------------------------------


def write_csv(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


def curve(n=30, bad=None, ids=None):
    """``id,x,z,y`` rows; ``bad`` replaces z in row 7 (a typo in a float column)."""
    lines = ["id,x,z,y"]
    for i in range(n):
        x, z = i / (n - 1), ((i * 7) % n) / n + 0.01
        cell = bad if bad is not None and i == 7 else repr(z)
        lines.append(f"{ids[i] if ids else i + 1000},{x!r},{cell},{float(np.sin(3 * x)) + z!r}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A model of y from x and z (ids skipped), and its data file."""
    folder = tmp_path_factory.mktemp("fitted")
    data = write_csv(folder / "d.csv", curve())
    done = invoke("fit", data, "-t", "y", "-o", folder / "m.safetensors", *FAST)
    assert done.exit_code == 0, done.output
    assert "skipped column 'id'" in done.output
    return folder / "m.safetensors", data


# --- 2. a column of numbers with one bad cell is named, never dropped -----------------------


@pytest.mark.parametrize("bad", ["0.5o", '"1,234"', "0.5\x00", "n.a."])
def test_one_bad_cell_names_the_column_instead_of_dropping_it(tmp_path, bad):
    data = write_csv(tmp_path / "d.csv", curve(bad=bad))
    before = tree(tmp_path)
    line = one_line_error(invoke("fit", data, "-t", "y", *FAST))
    assert "input column 'z'" in line and "row 8 (line 9 of d.csv)" in line
    assert "the others are numbers" in line and "--na-values" in line
    assert tree(tmp_path) == before


def test_na_markers_and_skip_missing_fit_on_the_other_rows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = write_csv(tmp_path / "d.csv", curve(bad="#N/A"))  # a spreadsheet's missing value
    line = one_line_error(invoke("fit", data, "-t", "y", *FAST))
    assert "input column 'z'" in line and "NaN or empty" in line and "--skip-missing" in line
    done = invoke("fit", data, "-t", "y", "--skip-missing", *FAST)
    assert done.exit_code == 0, done.output
    assert "skipped 1 row(s) with a missing input or target" in done.output
    assert "inputs (2): x, z" in done.output
    data = write_csv(tmp_path / "e.csv", curve(bad="?"))
    done = invoke("fit", data, "-t", "y", "--na-values", "?", "--skip-missing", *FAST)
    assert done.exit_code == 0, done.output
    assert "inputs (2): x, z" in done.output


# --- 3. predict copies the other columns verbatim -------------------------------------------


def test_predict_copies_every_input_column_byte_for_byte(tmp_path, fitted):
    model, _ = fitted
    big = 2**53 + 1
    text = ("id,x,z,note\r\n"
            f"00042,0.25,0.5,NA\r\n"
            f"{big},0.5,0.25,\"a, quoted\nnote\"\r\n"
            f"{big + 1},1e-1,0.125,\r\n")
    data = write_csv(tmp_path / "in.csv", text)
    done = invoke("predict", model, data, "-o", tmp_path / "out.csv")
    assert done.exit_code == 0, done.output
    out = (tmp_path / "out.csv").read_bytes().decode()
    records = text.split("\r\n")[:-1]
    assert out.startswith(records[0] + ",y_pred\r\n")
    lines = out.split("\r\n")[:-1]
    assert len(lines) == 4
    for original, written in zip(records, lines, strict=True):
        assert written.startswith(original + ",")  # the input's own bytes, then the prediction
    # into NPZ: ids stay exact (int64 or text), never floats that collapse
    done = invoke("predict", model, data, "-o", tmp_path / "out.npz")
    assert done.exit_code == 0, done.output
    with np.load(tmp_path / "out.npz") as archive:
        assert list(archive["id"]) == ["00042", str(big), str(big + 1)]
        assert list(archive["note"]) == ["NA", "a, quoted\nnote", ""]


def test_predict_npz_keeps_integer_ids_exact(tmp_path, fitted):
    model, _ = fitted
    ids = np.array([2**53 + 1, 2**53 + 2, 7], dtype=np.int64)
    np.savez(tmp_path / "in.npz", id=ids, x=np.array([0.1, 0.2, 0.3]), z=np.array([0.5, 0.5, 0.5]))
    for out in ("out.npz", "out.csv"):
        done = invoke("predict", model, tmp_path / "in.npz", "-o", tmp_path / out)
        assert done.exit_code == 0, done.output
    with np.load(tmp_path / "out.npz") as archive:
        assert archive["id"].dtype == np.int64 and list(archive["id"]) == list(ids)
    assert (tmp_path / "out.csv").read_text().splitlines()[1].startswith(f"{2**53 + 1},")


def test_predict_out_onto_its_input_or_model_is_refused(tmp_path, fitted):
    model, data = fitted
    copy = tmp_path / "d.csv"
    copy.write_bytes(data.read_bytes())
    before = tree(tmp_path)
    line = one_line_error(invoke("predict", model, copy, "-o", copy))
    assert "is the input file" in line and "--force" in line
    assert tree(tmp_path) == before
    with sqlite3.connect(tmp_path / "store.csv") as conn:  # a store under a .csv name
        conn.execute("CREATE TABLE t (a)")
    before = tree(tmp_path)
    line = one_line_error(invoke("predict", model, copy, "-o", tmp_path / "store.csv"))
    assert "SQLite" in line
    assert tree(tmp_path) == before
    done = invoke("predict", model, copy, "-o", copy, "--force")
    assert done.exit_code == 0, done.output
    assert copy.read_text().splitlines()[0] == "id,x,z,y,y_pred"


# --- 7. fit refuses a column named twice, before training -----------------------------------


@pytest.mark.parametrize("args", [["-t", "y,y"], ["-t", "y", "--inputs", "x,x"],
                                  ["-t", "y", "--inputs", "x, z,x"]])
def test_a_column_named_twice_is_refused_before_fitting(tmp_path, args):
    data = write_csv(tmp_path / "d.csv", curve())
    before = tree(tmp_path)
    line = one_line_error(invoke("fit", data, *args, *FAST))
    assert "name each column once" in line
    assert tree(tmp_path) == before


# --- 8. one-line errors ---------------------------------------------------------------------


@pytest.mark.parametrize("target", ["", " , "])
def test_empty_target_is_one_line(tmp_path, target):
    data = write_csv(tmp_path / "d.csv", curve())
    line = one_line_error(invoke("fit", data, "-t", target, *FAST))
    assert "names no column" in line


def test_unusable_device_is_refused_before_reading(tmp_path, monkeypatch):
    import torch

    data = write_csv(tmp_path / "d.csv", curve())
    if not torch.cuda.is_available():
        line = one_line_error(invoke("fit", data, "-t", "y", "--device", "cuda", *FAST))
        assert "--device 'cuda' cannot be used" in line and "--device cpu" in line
    for device in ("meta", "nonsense"):
        line = one_line_error(invoke("fit", data, "-t", "y", "--device", device, *FAST))
        assert f"--device {device!r}" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]


def test_plot_format_is_checked_before_the_fit(tmp_path, monkeypatch):
    from deepbasis.estimator import regressor

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted before the plot name was checked")

    monkeypatch.setattr(regressor.BasisRegressor, "fit", no_fit)
    data = write_csv(tmp_path / "d.csv", curve())
    line = one_line_error(invoke("fit", data, "-t", "y", "--plot", tmp_path / "x.txt", *FAST))
    assert "'.txt'" in line and ".png" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]


def _npz_member(path: Path, key: str) -> tuple[int, int]:
    """(offset of the member's data in the file, its size) for an uncompressed NPZ."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(key + ".npy")
    with path.open("rb") as handle:
        handle.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(handle.read(4), dtype="<u2")
    return info.header_offset + 30 + int(name_len) + int(extra_len), info.file_size


def test_damaged_npz_is_one_line(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.linspace(0, 1, 20), y=np.linspace(0, 1, 20) ** 2)
    good = path.read_bytes()
    start, size = _npz_member(path, "y")
    flipped = bytearray(good)
    flipped[start + size - 3] ^= 0xFF  # a bit of y's data: the CRC no longer matches
    path.write_bytes(bytes(flipped))
    line = one_line_error(invoke("fit", path, "-t", "y", *FAST))
    assert "d.npz" in line and "CRC" in line
    # y declares 10**12 values and holds 20 (a well-formed zip: only the shape lies)
    fields = np.lib.format.header_data_from_array_1_0(np.zeros(20))
    fields["shape"] = (10**12,)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, fields)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", _npy(np.linspace(0, 1, 20)))
        archive.writestr("y.npy", buffer.getvalue() + np.zeros(20).tobytes())
    line = one_line_error(invoke("fit", path, "-t", "y", *FAST))
    assert "d.npz" in line and "(1000000000000,)" in line


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# --- model files: every string checked, the digest whatever the version says -----------------


def _edit_model(path: Path, out: Path, edit=None, metadata=None, digest=True) -> Path:
    """A copy of the model file at ``out``, rewritten by test_model_files' forger."""
    from test_model_files import _rewrite

    shutil.copyfile(path, out)
    _rewrite(out, edit, metadata=metadata, digest=digest)
    return out


@pytest.mark.parametrize("device", ["meta", "cuda\x00", "x" * 300])
def test_model_file_with_a_bad_device_is_one_line(tmp_path, fitted, device):
    model, data = fitted
    bad = _edit_model(model, tmp_path / "bad.safetensors",
                      lambda d: d["params"].__setitem__("device", device))
    line = one_line_error(invoke("predict", bad, data, "-o", tmp_path / "p.csv"))
    assert "params.device" in line
    assert not (tmp_path / "p.csv").exists()


def test_a_digest_is_checked_whatever_the_version_says(tmp_path, fitted):
    model, data = fitted

    def tamper(description):
        description["scaling"]["y_mean"] = [v + 1.0 for v in description["scaling"]["y_mean"]]

    downgraded = _edit_model(model, tmp_path / "v1.safetensors", tamper,
                             metadata={"format_version": "1"}, digest=False)
    line = one_line_error(invoke("predict", downgraded, data, "-o", tmp_path / "p.csv"))
    assert "digest" in line and "does not match" in line
    assert not (tmp_path / "p.csv").exists()


# --- warnings people need ------------------------------------------------------------------


def test_predicting_far_outside_the_training_box_warns_once(tmp_path, fitted):
    model, _ = fitted
    data = write_csv(tmp_path / "far.csv", "x,z\n0.5,0.5\n100.0,0.5\n0.55,0.5\n1.05,0.5\n")
    done = invoke("predict", model, data, "-o", tmp_path / "p.csv")
    assert done.exit_code == 0, done.output
    warnings = [line for line in done.output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, done.output
    assert "1 of 4 row(s)" in warnings[0] and "10% of its width" in warnings[0]
    assert "x=100 at row 2 (line 3 of far.csv)" in warnings[0] and "box widths" in warnings[0]
    inside = write_csv(tmp_path / "near.csv", "x,z\n0.5,0.5\n1.05,0.5\n")
    done = invoke("predict", model, inside, "-o", tmp_path / "q.csv")
    assert done.exit_code == 0 and "warning" not in done.output, done.output


def test_a_model_fitted_on_an_array_warns_that_columns_go_by_position(tmp_path):
    from deepbasis.estimator import BasisRegressor

    X = np.linspace(0, 1, 20)[:, None] * [1.0, 2.0]
    path = BasisRegressor(width=4, depth=1, steps=3, random_state=0, activation="relu").fit(
        X, X[:, 0]).save(tmp_path / "m.safetensors")
    data = write_csv(tmp_path / "d.csv", "b,a\n0.1,0.2\n0.3,0.4\n")
    done = invoke("predict", path, data, "-o", tmp_path / "p.csv")
    assert done.exit_code == 0, done.output
    assert "warning: m.safetensors was fitted on an array" in done.output
    assert "taken by position ('b', 'a')" in done.output


# --- parse errors name the right line ------------------------------------------------------


def test_parse_error_after_a_multiline_field_names_its_line(tmp_path):
    data = write_csv(tmp_path / "d.csv",
                     'x,note,y\n1,"two\nlines",2\n2,"three\nmore\nlines",3\n3,x,4,5\n')
    line = one_line_error(invoke("fit", data, "-t", "y", *FAST))
    assert "line 7 of d.csv has 4 field(s)" in line
    data = write_csv(tmp_path / "e.csv", 'x,y\n1,2\n2,"unclosed\n3,4\n')
    from deepbasis.estimator import DataError, read_table

    with pytest.raises(DataError, match="line 3"):
        read_table(data, "y")
    data = write_csv(tmp_path / "f.csv", 'x,note,y\n1,"a\nb",2\n2,oops,zz\n')
    line = one_line_error(invoke("fit", data, "-t", "y", "-i", "x", *FAST))
    assert "row 2 (line 4 of f.csv) has 'zz'" in line
