"""Output files are complete or untouched (issue 17, 4): temporary file + rename everywhere,
output paths checked before any work, one-line errors (exit 1) for unwritable targets."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from deepbasis import _files
from deepbasis._files import UnwritableError, atomic_write, check_writable
from deepbasis.cli import app
from deepbasis.estimator import BasisRegressor, load_model
from deepbasis.estimator.data import write_table

SRC = Path(__file__).resolve().parents[1] / "src"
OLD = b"x,y\n1.0,2.0\n"


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def model_and_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("in")
    x = np.linspace(0, 1, 400)
    write_table(folder / "d.csv", {"x": x, "y": np.sin(3 * x)})
    regressor = BasisRegressor(width=4, depth=1, steps=3, activation="relu", random_state=0)
    regressor.fit(x[:, None], np.sin(3 * x))
    model = regressor.save(folder / "m.safetensors", input_columns=["x"], target_names=["y"])
    return model, folder / "d.csv"


def _deny(monkeypatch, folder: Path, code=errno.EACCES):
    """Make creating files in ``folder`` fail as a read-only folder does (we run as root)."""
    original = _files.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == folder.resolve():
            raise OSError(code, os.strerror(code))
        return original(*args, dir=dir, **kwargs)

    monkeypatch.setattr(_files.tempfile, "mkstemp", mkstemp)


# --- the helper --------------------------------------------------------------------------------


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "out.csv"
    target.write_bytes(OLD)
    with pytest.raises(UnwritableError, match="No space left on device; free some space"):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert target.read_bytes() == OLD and _leftovers(tmp_path) == []
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == OLD and _leftovers(tmp_path) == []


def test_a_successful_write_replaces_the_file_and_keeps_its_permissions(tmp_path):
    target = tmp_path / "out.csv"
    target.write_bytes(OLD)
    target.chmod(0o640)
    with atomic_write(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and (target.stat().st_mode & 0o777) == 0o640
    fresh = tmp_path / "fresh.csv"
    with atomic_write(fresh) as tmp:
        tmp.write_bytes(b"new")
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~_files._UMASK


def test_check_writable_names_the_problem_and_changes_nothing(tmp_path):
    assert check_writable(tmp_path / "a.csv") == tmp_path / "a.csv"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UnwritableError, match="folder .* does not exist"):
        check_writable(tmp_path / "missing" / "a.csv")
    with pytest.raises(UnwritableError, match="is a folder"):
        check_writable(tmp_path)


# --- predict --out -----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_predict_into_a_read_only_folder_fails_up_front_and_keeps_the_file(
        tmp_path, monkeypatch, model_and_data, code):
    model, data = model_and_data
    out = tmp_path / "p.csv"
    out.write_bytes(OLD)
    _deny(monkeypatch, tmp_path, code)
    done = _invoke("predict", model, data, "-o", out)
    assert done.exit_code == 1, done.output
    assert done.output.strip().startswith("error: cannot write") and \
        len(done.output.strip().splitlines()) == 1
    assert out.read_bytes() == OLD and _leftovers(tmp_path) == []


def test_predict_into_a_missing_folder_is_one_line(tmp_path, model_and_data):
    model, data = model_and_data
    done = _invoke("predict", model, data, "-o", tmp_path / "nope" / "p.csv")
    assert done.exit_code == 1 and "does not exist" in done.output
    assert "Traceback" not in done.output


def test_predict_when_the_disk_fills_keeps_the_previous_predictions(
        tmp_path, monkeypatch, model_and_data):
    import csv

    model, data = model_and_data
    out = tmp_path / "p.csv"
    out.write_bytes(OLD)

    class FullDisk:
        def __init__(self, handle, **kwargs):
            self.rows = 0

        def writerow(self, row):
            self.rows += 1
            if self.rows == 50:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(csv, "writer", FullDisk)
    done = _invoke("predict", model, data, "-o", out)
    assert done.exit_code == 1 and "No space left on device" in done.output, done.output
    assert out.read_bytes() == OLD and _leftovers(tmp_path) == []


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv")
def test_predict_into_a_really_read_only_folder(tmp_path, model_and_data):
    # As root, chmod does not stop writes; setpriv drops the capability that overrides it.
    model, data = model_and_data
    folder = tmp_path / "ro"
    folder.mkdir()
    out = folder / "p.csv"
    out.write_bytes(OLD)
    folder.chmod(0o555)
    try:
        done = subprocess.run(
            ["setpriv", "--bounding-set", "-dac_override", sys.executable, "-m",
             "deepbasis.cli", "predict", str(model), str(data), "-o", str(out)],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, "PYTHONPATH": str(SRC), "PYTHONDONTWRITEBYTECODE": "1"})
    finally:
        folder.chmod(0o755)
    assert done.returncode == 1, done.stderr
    assert "Permission denied" in done.stderr and "Traceback" not in done.stderr
    assert out.read_bytes() == OLD and _leftovers(folder) == []


# --- fit --out / --plot, report --out ----------------------------------------------------------


@pytest.mark.parametrize("which", ["out", "plot"])
def test_fit_checks_its_output_paths_before_fitting(tmp_path, monkeypatch, model_and_data,
                                                     which):
    _, data = model_and_data
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    _deny(monkeypatch, blocked)
    import deepbasis.estimator.regressor as regressor_module

    monkeypatch.setattr(regressor_module.BasisRegressor, "fit", None)  # must not be reached
    paths = {"out": tmp_path / "m", "plot": tmp_path / "p.png"}
    paths[which] = blocked / "x.png" if which == "plot" else blocked / "m"
    done = _invoke("fit", data, "-t", "y", "--steps", "1", "--no-progress",
                   "--out", paths["out"], "--plot", paths["plot"])
    assert done.exit_code == 1, done.output
    assert "cannot write" in done.output and "fitting" not in done.output


def test_a_model_save_that_fails_keeps_the_previous_model(tmp_path, monkeypatch,
                                                          model_and_data):
    model, data = model_and_data
    path = tmp_path / "m.safetensors"
    path.write_bytes(model.read_bytes())
    regressor = BasisRegressor(width=3, depth=1, steps=1, activation="relu", random_state=1)
    regressor.fit(np.linspace(0, 1, 10)[:, None], np.linspace(0, 1, 10))
    import safetensors.torch

    def fails(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(safetensors.torch, "save_file", fails)
    with pytest.raises(UnwritableError, match="No space left"):
        regressor.save(path)
    assert path.read_bytes() == model.read_bytes() and _leftovers(tmp_path) == []
    load_model(path)


def test_report_out_whose_rename_fails_leaves_no_temporary_file(tmp_path, monkeypatch):
    import runner_fakes
    from deepbasis.runner.runner import run_experiment

    runner_fakes.register(monkeypatch)
    results = tmp_path / "results"
    run_experiment("fake.quick", "quick", results / "fake.quick", progress=False)
    target = tmp_path / "index.md"
    old = b"# deepbasis reproduction report\n\nan earlier one\n"  # only a report is replaced
    target.write_bytes(old)

    def refuse(src, dst):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(_files.os, "replace", refuse)
    done = _invoke("report", results, "--out", target)
    assert done.exit_code == 1 and done.output.count("\n") == 1, done.output
    assert target.read_bytes() == old and _leftovers(tmp_path) == []
