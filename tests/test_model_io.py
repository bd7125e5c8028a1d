"""Model files: safetensors weights + JSON description; exact round trips and clear errors."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.exceptions import NotFittedError

from conftest import SEEDS
from deepbasis.estimator import BasisRegressor, ModelFileError, load_model, read_description
from deepbasis.estimator.io import FORMAT, FORMAT_VERSION


def _fitted(seed: int = 0, outputs: int = 1, **settings) -> tuple[BasisRegressor, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 4.0, size=(60, 2))
    y = np.cos(X[:, :1] * np.arange(1, outputs + 1)) + X[:, 1:]  # (60, outputs)
    settings = {"width": 8, "depth": 2, "steps": 10, "random_state": seed, **settings}
    regressor = BasisRegressor(**settings).fit(X, y[:, 0] if outputs == 1 else y)
    return regressor, X


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("settings", [
    {}, {"outputs": 3}, {"dtype": "float32"}, {"ensemble": 2},
    {"residual": False, "activation": "tanh", "init": "he"},
    {"activation": ("relu", "sin"), "ensemble": 2},
], ids=["plain", "multi-output", "float32", "ensemble", "tanh-he", "candidates"])
def test_round_trip_gives_identical_predictions(tmp_path, seed, settings):
    regressor, X = _fitted(seed, **settings)
    path = regressor.save(tmp_path / "model.safetensors")
    loaded = BasisRegressor.load(path)
    np.testing.assert_array_equal(loaded.predict(X), regressor.predict(X), err_msg=f"seed={seed}")
    assert loaded.get_params() == regressor.get_params()
    assert loaded.n_features_in_ == regressor.n_features_in_
    assert loaded.n_outputs_ == regressor.n_outputs_
    assert loaded.history_.loss == regressor.history_.loss
    assert loaded.seeds_ == regressor.seeds_
    assert loaded.candidates_ == regressor.candidates_
    assert loaded.activation_ == regressor.activation_
    for name in ("x_lower_", "x_upper_", "y_mean_", "y_scale_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(regressor, name))
    if regressor.validation_mse_ is not None:
        np.testing.assert_array_equal(loaded.validation_mse_, regressor.validation_mse_)
    for a, b in zip(loaded.model_.state_dict().values(), regressor.model_.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)


def test_suffix_extra_fields_and_description(tmp_path):
    regressor, _ = _fitted()
    path = regressor.save(tmp_path / "model", errors={"rmse": [0.5]})
    assert path.name == "model.safetensors"
    description = read_description(path)
    # the network's width: K networks of 8 units where the fit averaged K (noisy rows)
    assert description["architecture"]["width"] == 8 * regressor.n_networks_
    assert description["fitted"].get("n_networks", 1) == regressor.n_networks_
    assert description["architecture"]["residual"] is True
    assert description["params"]["steps"] == 10
    assert description["extra"] == {"errors": {"rmse": [0.5]}}
    assert load_model(path).extra_ == {"errors": {"rmse": [0.5]}}
    # The header is plain JSON at the start of the file: readable without deepbasis.
    raw = path.read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    assert header["__metadata__"]["format"] == FORMAT


def test_refit_after_load_works(tmp_path):
    regressor, X = _fitted(1)
    loaded = load_model(regressor.save(tmp_path / "m.safetensors"))
    y = X[:, 0] ** 2
    loaded.fit(X, y)
    assert loaded.predict(X).shape == (len(X),)


def test_unfitted_estimator_cannot_be_saved(tmp_path):
    with pytest.raises(NotFittedError):
        BasisRegressor().save(tmp_path / "m.safetensors")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file at"):
        load_model(tmp_path / "nothing.safetensors")


@pytest.mark.parametrize("keep", [0.3, 0.9, 0.999])
def test_truncated_file(tmp_path, keep):
    regressor, _ = _fitted()
    path = regressor.save(tmp_path / "m.safetensors")
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        load_model(path)


def test_corrupt_header(tmp_path):
    regressor, _ = _fitted()
    path = regressor.save(tmp_path / "m.safetensors")
    raw = bytearray(path.read_bytes())
    raw[8:20] = b"#" * 12  # the JSON header no longer parses
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="not a valid safetensors file"):
        load_model(path)


@pytest.mark.parametrize("content", [b"", b"hello world", b"\x89PNG\r\n\x1a\n" + b"\0" * 64])
def test_not_a_safetensors_file(tmp_path, content):
    path = tmp_path / "m.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="cannot read m.safetensors as a deepbasis model"):
        load_model(path)


def test_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "m.safetensors"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ModelFileError):
        load_model(path)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "t.safetensors")
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "t.safetensors")
    assert not marker.exists()


def test_safetensors_file_from_something_else(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(path), metadata={"format": "pt"})
    with pytest.raises(ModelFileError, match="not a deepbasis model .*format='pt'"):
        load_model(path)


def _rewrite(path, *, metadata=None, tensors=None, description=None):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        old_metadata = handle.metadata()
        old_tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    new_metadata = {**old_metadata, **(metadata or {})}
    if description is not None:
        new_metadata["description"] = description(json.loads(old_metadata["description"]))
    save_file({**old_tensors, **(tensors or {})}, str(path), metadata=new_metadata)


def test_wrong_format_version(tmp_path):
    regressor, _ = _fitted()
    path = regressor.save(tmp_path / "m.safetensors")
    _rewrite(path, metadata={"format_version": str(FORMAT_VERSION + 1)})
    with pytest.raises(ModelFileError, match=rf"model format version '{FORMAT_VERSION + 1}'.*"
                                             rf"reads version {FORMAT_VERSION}"):
        load_model(path)


def test_tensor_shape_disagrees_with_description(tmp_path):
    regressor, _ = _fitted()
    path = regressor.save(tmp_path / "m.safetensors")
    _rewrite(path, tensors={"head.weight": torch.zeros(1, 9, dtype=torch.float64)})
    with pytest.raises(ModelFileError, match=r"tensor 'head.weight' .* shape \(1, 9\)"):
        load_model(path)


def test_missing_tensor(tmp_path):
    regressor, _ = _fitted()
    path = regressor.save(tmp_path / "m.safetensors")
    description = read_description(path)
    description["architecture"]["depth"] = 3  # one more hidden layer than the file holds
    _rewrite(path, description=lambda _: json.dumps(description))
    with pytest.raises(ModelFileError, match=r"do not match its architecture.*missing "
                                             r"\['layers.2.bias', 'layers.2.weight'\]"):
        load_model(path)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["architecture"].update(width=-3), "architecture.width must be a positive"),
    (lambda d: d["architecture"].update(activation="__import__('os')"), "unknown activation"),
    (lambda d: d["architecture"].pop("domain"), "'domain'"),
    (lambda d: d["scaling"].update(y_mean=["nan"]), "finite numbers"),
])
def test_malformed_description(tmp_path, change, message):
    regressor, _ = _fitted()
    path = regressor.save(tmp_path / "m.safetensors")

    def edit(description):
        change(description)
        return json.dumps(description)

    _rewrite(path, description=edit)
    with pytest.raises(ModelFileError, match=f"malformed description.*{message}"):
        load_model(path)


def test_description_that_is_not_json(tmp_path):
    regressor, _ = _fitted()
    path = regressor.save(tmp_path / "m.safetensors")
    _rewrite(path, metadata={"description": "{not json"})
    with pytest.raises(ModelFileError, match="no readable description"):
        load_model(path)
