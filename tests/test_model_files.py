"""Model files prove themselves (issue 17, 2): tampered headers, flipped bits, NaN weights.

Every probe here loaded (or hung, or crashed with a traceback) before the digest and the
header-before-allocation checks.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from deepbasis.estimator import BasisRegressor, ModelFileError, io, load_model, read_description


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    X = np.linspace(0, 1, 40)[:, None] * [1.0, 2.0]
    regressor = BasisRegressor(width=6, depth=2, steps=5, random_state=0, activation="relu")
    regressor.fit(X, np.sin(3 * X[:, 0]) + X[:, 1])
    path = regressor.save(tmp_path_factory.mktemp("model") / "m.safetensors",
                          target_names=["y"], input_names=["a", "b"])
    return path.read_bytes(), X, regressor.predict(X)


def _copy(saved, tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(saved[0])
    return path


def _rewrite(path, edit=None, tensors=None, metadata=None, digest=True):
    """Rewrite the file with an edited description / tensors; by default with a digest that
    matches the edit (a deliberate forgery, which the other checks must catch)."""
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
        values = {k: handle.get_tensor(k) for k in handle.keys()}
    description = json.loads(meta["description"])
    if edit is not None:
        edit(description)
    meta["description"] = json.dumps(description)
    values.update(tensors or {})
    if digest:
        meta["sha256"] = io._digest(meta["description"], values)
    meta.update(metadata or {})
    save_file(values, str(path), metadata={k: v for k, v in meta.items() if v is not None})


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the network was built before the file was checked")
    monkeypatch.setattr(io, "MLP", refuse)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("depth", 10**7, r"architecture.depth must be a positive integer in \[1, 10000\]"),
    ("width", 40000, r"tensor '.*' in m.safetensors has shape"),
    ("depth", 5000, r"depth=5000 needs 10004 tensors, the file holds 8"),
    ("in_features", 3, r"architecture.domain\[0\] must be a list of 3"),
])
def test_header_sizes_are_checked_against_the_tensors_before_allocation(
        saved, tmp_path, monkeypatch, field, value, message):
    path = _copy(saved, tmp_path)
    _rewrite(path, lambda d: d["architecture"].update({field: value}))
    _no_network(monkeypatch)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


@pytest.mark.parametrize(("edit", "field"), [
    (lambda d: d["fitted"].update(best_member=7), "fitted.best_member"),
    (lambda d: d["fitted"].update(best_member="x"), "fitted.best_member"),
    (lambda d: d["fitted"].update(candidates=[["relu"]]), "fitted.candidates"),
    (lambda d: d["fitted"].update(seeds=[-1]), r"fitted.seeds\[0\]"),
    (lambda d: d["fitted"].update(target_is_1d="yes"), "fitted.target_is_1d"),
    (lambda d: d["fitted"].update(feature_names_in=[1, 2]), "fitted.feature_names_in"),
    (lambda d: d["fitted"].update(validation_mse=[1.0, 2.0]), "fitted.validation_mse"),
    (lambda d: d["fitted"].update(n_networks=0), "fitted.n_networks"),
    (lambda d: d["fitted"].update(n_networks=4), "fitted.n_networks"),  # divides no 6 · K
    (lambda d: d.update(history=[1, 2]), "history"),
    (lambda d: d.update(history={"loss": "abc"}), "history"),
    (lambda d: d["history"].update(loss=["a"]), "history"),
    (lambda d: d["extra"].update(target_names="y"), "extra.target_names"),
    (lambda d: d["extra"].update(target_names=["y", "z"]), "extra.target_names"),
    (lambda d: d.update(extra=[]), "extra"),
    (lambda d: d["params"].update(device="banana"), "params.device"),
    (lambda d: d["params"].update(device=12), "params.device"),
    (lambda d: d["params"].update(width="wide"), "params: width"),
    (lambda d: d.pop("fitted"), "'fitted' is missing"),
    (lambda d: d["architecture"].update(residual="no"), "architecture.residual"),
    (lambda d: d["architecture"].update(dtype="float16"), "architecture.dtype"),
    (lambda d: d["scaling"].update(y_scale=[1e400]), "scaling.y_scale"),
])
def test_every_bad_field_is_a_model_file_error_naming_it(saved, tmp_path, edit, field):
    path = _copy(saved, tmp_path)
    _rewrite(path, edit)
    with pytest.raises(ModelFileError, match=f"malformed description: {field}"):
        load_model(path)


@pytest.mark.parametrize("position", [-1, -9, -50])
def test_a_flipped_bit_in_the_weights_is_refused(saved, tmp_path, position):
    raw = bytearray(saved[0])
    raw[position] ^= 0x40  # little-endian float64: the last byte holds sign and exponent
    path = tmp_path / "m.safetensors"
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="digest .* does not match"):
        load_model(path)


def test_an_edited_description_without_a_new_digest_is_refused(saved, tmp_path):
    path = _copy(saved, tmp_path)
    _rewrite(path, lambda d: d["scaling"].update(y_mean=[1e6]), digest=False)
    with pytest.raises(ModelFileError, match="digest"):
        load_model(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(saved, tmp_path, bad):
    path = _copy(saved, tmp_path)
    with safe_open(str(path), framework="pt") as handle:
        weight = handle.get_tensor("head.weight").clone()
    weight[0, 0] = bad
    _rewrite(path, tensors={"head.weight": weight})  # digest recomputed: only NaN is wrong
    with pytest.raises(ModelFileError, match="'head.weight' .* non-finite"):
        load_model(path)


def test_a_missing_digest_is_refused(saved, tmp_path):
    path = _copy(saved, tmp_path)
    _rewrite(path, digest=False, metadata={"sha256": None})
    with pytest.raises(ModelFileError, match="no sha256 digest"):
        load_model(path)


def test_version_1_files_load_with_a_warning_and_resave_as_version_2(saved, tmp_path):
    path = _copy(saved, tmp_path)
    _rewrite(path, digest=False, metadata={"format_version": "1", "sha256": None})
    with pytest.warns(UserWarning, match="format version 1, which stores no checksum"):
        loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(saved[1]), saved[2])
    loaded.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        description = read_description(path)
        assert description["architecture"]["width"] == 6 * loaded.n_networks_
        assert description["fitted"]["n_networks"] == loaded.n_networks_
        np.testing.assert_array_equal(load_model(path).predict(saved[1]), saved[2])
    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata()["format_version"] == str(io.FORMAT_VERSION) == "2"


def test_a_good_file_still_loads_exactly(saved, tmp_path):
    path = _copy(saved, tmp_path)
    np.testing.assert_array_equal(load_model(path).predict(saved[1]), saved[2])


def test_predict_command_refuses_a_corrupt_model_in_one_line(saved, tmp_path):
    from typer.testing import CliRunner

    from deepbasis.cli import app

    raw = bytearray(saved[0])
    raw[-1] ^= 0x40
    model = tmp_path / "m.safetensors"
    model.write_bytes(bytes(raw))
    data = tmp_path / "x.csv"
    data.write_text("a,b\n0.5,1.0\n")
    done = CliRunner().invoke(app, ["predict", str(model), str(data), "-o",
                                    str(tmp_path / "p.csv")])
    assert done.exit_code != 0 and "digest" in done.output, done.output
    assert "Traceback" not in done.output
    assert not (tmp_path / "p.csv").exists()


def test_a_model_with_nan_weights_is_not_saved(saved, tmp_path):
    import torch

    regressor = load_model(_copy(saved, tmp_path))
    with torch.no_grad():
        regressor.model_.head.bias[0] = float("nan")
    with pytest.raises(ValueError, match="'head.bias' holds NaN or inf"):
        regressor.save(tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()
