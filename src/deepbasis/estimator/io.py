"""Model files that are safe to open: weights in safetensors, everything else in JSON.

One file, ``NAME.safetensors``. The tensors are the ``state_dict`` of the fitted
:class:`deepbasis.MLP`; the safetensors header's string metadata holds

- ``"format"``: ``"deepbasis.regressor"`` (files from anything else are refused),
- ``"format_version"``: ``"1"`` (:data:`FORMAT_VERSION`; newer files are refused with a hint),
- ``"deepbasis_version"``: the version that wrote it,
- ``"description"``: JSON with the architecture, the input box and target scaling, the
  estimator's settings, the names of the input and target columns, the training history and
  any extra fields given to :func:`save_model` (e.g. train / validation errors).

The header is plain JSON at the start of the file, so ``read_description(path)`` (or any
safetensors reader) shows it without loading the weights. Loading builds the network from the
validated description and copies the tensors in; it never unpickles or executes anything from
the file. A single file (rather than a folder of weights + JSON) cannot lose one half.

This module knows the file, not the estimator class: :func:`read_model_file` returns the
validated network and description, and :func:`deepbasis.estimator.load_model` (in
``regressor.py``, which imports this module and not the other way round) turns them back into
a ``BasisRegressor``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..nn.mlp import ACTIVATIONS, MLP

FORMAT = "deepbasis.regressor"
FORMAT_VERSION = 1
DTYPES = {"float64": torch.float64, "float32": torch.float32}  # the dtypes a model file holds


class ModelFileError(ValueError):
    """A model file is unreadable, corrupt, truncated, of another format or another version."""


@dataclass
class ModelFile:
    """What :func:`read_model_file` found in a file, validated."""

    model: MLP  # the network, weights loaded, in eval mode
    description: dict  # the JSON description (see the module docstring)
    x_lower: list[float]  # the input box and target scaling, each checked for its length
    x_upper: list[float]
    y_mean: list[float]
    y_scale: list[float]


def save_model(estimator, path: str | Path, **extra) -> Path:
    """Write a fitted :class:`~deepbasis.BasisRegressor` to ``path`` (a ``.safetensors`` file).

    Args:
        estimator: a fitted ``BasisRegressor``.
        path: the file to write; ``.safetensors`` is appended when it has another suffix.
        **extra: JSON-able fields stored under ``description["extra"]`` (the command line stores
            the input/target column names and the train/validation errors here).

    Returns:
        The path written.

    Examples:
        >>> path = save_model(regressor, "model.safetensors")  # doctest: +SKIP
        >>> load_model(path).predict(X)  # identical to regressor.predict(X)  # doctest: +SKIP
    """
    from safetensors.torch import save_file
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator, "model_")
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    model = estimator.model_
    description = {
        "architecture": {
            "class": "MLP",
            "in_features": model.in_features,
            "width": model.width,
            "depth": model.depth,
            "out_features": model.out_features,
            "residual": model.residual,
            "activation": model.activation_name,
            "domain": [list(model.domain[0]), list(model.domain[1])],
            "dtype": str(model.head.weight.dtype).removeprefix("torch."),
        },
        "scaling": {
            "x_lower": _floats(estimator.x_lower_),
            "x_upper": _floats(estimator.x_upper_),
            "y_mean": _floats(estimator.y_mean_),
            "y_scale": _floats(estimator.y_scale_),
            "note": "inputs map from [x_lower, x_upper] to [0, 1] inside the network; the target "
                    "standardization y = y_mean + y_scale * z is folded into the head weights",
        },
        "params": _json_params(estimator.get_params(deep=False)),
        "fitted": {
            "n_features_in": int(estimator.n_features_in_),
            "n_outputs": int(estimator.n_outputs_),
            "target_is_1d": bool(estimator._target_is_1d),
            "feature_names_in": (None if getattr(estimator, "feature_names_in_", None) is None
                                 else [str(n) for n in estimator.feature_names_in_]),
            "seeds": [int(s) for s in estimator.seeds_],
            "candidates": [[str(a), int(seed)] for a, seed in estimator.candidates_],
            "best_member": int(estimator.best_member_),
            "validation_mse": (None if estimator.validation_mse_ is None
                               else _floats(estimator.validation_mse_)),
            # Optional (absent in files of earlier versions): early stopping and uncertainty.
            **_optional_fitted(estimator),
        },
        "history": _history_to_dict(estimator.history_),
        "extra": json.loads(json.dumps(extra, default=_json_default)),
    }
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "deepbasis_version": __version__,
        "description": json.dumps(description, allow_nan=True),
    }
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


def _optional_fitted(estimator) -> dict:
    """``n_iter``, ``noise_std``, ``head_ridge``, ``head_covariance`` when the estimator has
    them (for ``predict(return_std=True)`` after loading)."""
    fields = {}
    if getattr(estimator, "n_iter_", None) is not None:
        fields["n_iter"] = int(estimator.n_iter_)
    for name in ("noise_std", "head_ridge", "head_covariance"):
        value = getattr(estimator, f"{name}_", None)
        if value is not None:
            fields[name] = np.asarray(value, dtype=np.float64).tolist()
    return fields


def read_description(path: str | Path) -> dict:
    """The validated JSON description of a model file (no weights are loaded).

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: not a safetensors file, corrupt or truncated, written by something
            else, or a newer format version.
    """
    metadata, _ = _open(Path(path), tensors=False)
    return _parse_description(Path(path), metadata)


def read_model_file(path: str | Path) -> ModelFile:
    """The validated contents of a model file: the network rebuilt from the description, with
    the weights copied in from the safetensors data (nothing in the file is executed).

    :func:`deepbasis.estimator.load_model` turns them back into a ``BasisRegressor``.

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: the file is not a safetensors file, is corrupt or truncated, was written
            by something else, has a format version this deepbasis cannot read, or its tensors
            do not match its description.
    """
    path = Path(path)
    metadata, tensors = _open(path, tensors=True)
    description = _parse_description(path, metadata)
    try:
        arch = description["architecture"]
        sizes = {key: arch[key] for key in ("in_features", "width", "depth", "out_features")}
        for key, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"architecture.{key} must be a positive integer, got {value!r}")
        if arch["class"] != "MLP":
            raise ValueError(f"unknown architecture class {arch['class']!r}")
        if arch["activation"] not in ACTIVATIONS:
            raise ValueError(f"unknown activation {arch['activation']!r}")
        if arch["dtype"] not in DTYPES:
            raise ValueError(f"unknown dtype {arch['dtype']!r}")
        lower, upper = (_float_list(v, sizes["in_features"]) for v in arch["domain"])
        model = MLP(**sizes, residual=bool(arch["residual"]), activation=arch["activation"],
                    domain=(lower, upper), dtype=DTYPES[arch["dtype"]])
        scaling = description["scaling"]
        fitted = description["fitted"]
        if not isinstance(description["params"], dict):
            raise ValueError("params must be a JSON object")
        d, m = sizes["in_features"], sizes["out_features"]
        x_lower, x_upper = (_float_list(scaling[k], d) for k in ("x_lower", "x_upper"))
        y_mean, y_scale = (_float_list(scaling[k], m) for k in ("y_mean", "y_scale"))
        if fitted["n_features_in"] != d or fitted["n_outputs"] != m:
            raise ValueError("fitted.n_features_in / n_outputs disagree with the architecture")
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"{path.name} has a malformed description: {error}") from None

    expected = model.state_dict()
    if set(tensors) != set(expected):
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        raise ModelFileError(
            f"the tensors in {path.name} do not match its architecture: missing {missing}, "
            f"unexpected {unexpected}"
        )
    for name, value in tensors.items():
        if value.shape != expected[name].shape or value.dtype != expected[name].dtype:
            raise ModelFileError(
                f"tensor {name!r} in {path.name} has shape {tuple(value.shape)} and dtype "
                f"{value.dtype}, but the architecture needs {tuple(expected[name].shape)} and "
                f"{expected[name].dtype}"
            )
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return ModelFile(model, description, x_lower, x_upper, y_mean, y_scale)


# --- helpers ---------------------------------------------------------------------------------


def _open(path: Path, tensors: bool) -> tuple[dict, dict]:
    from safetensors import safe_open

    if not path.is_file():
        raise FileNotFoundError(f"no model file at {str(path)!r}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            values = {name: handle.get_tensor(name) for name in handle.keys()} if tensors \
                else {}
    except Exception as error:  # safetensors raises its own SafetensorError, or OSError
        raise ModelFileError(
            f"cannot read {path.name} as a deepbasis model file: it is not a valid safetensors "
            f"file, or it is corrupt or truncated ({error}). Model files are written by "
            "`deepbasis fit` or BasisRegressor.save."
        ) from None
    if metadata.get("format") != FORMAT:
        raise ModelFileError(
            f"{path.name} is a safetensors file but not a deepbasis model (its metadata has "
            f"format={metadata.get('format')!r}, expected {FORMAT!r}); it was written by "
            "something else"
        )
    version = metadata.get("format_version")
    if version != str(FORMAT_VERSION):
        writer = metadata.get("deepbasis_version", "an unknown version")
        raise ModelFileError(
            f"{path.name} has model format version {version!r} (written by deepbasis {writer}); "
            f"this deepbasis {__version__} reads version {FORMAT_VERSION}. Use a deepbasis that "
            "matches the file, or refit the model."
        )
    return metadata, values


def _parse_description(path: Path, metadata: dict) -> dict:
    try:
        description = json.loads(metadata["description"])
    except (KeyError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path.name} has no readable description ({error})") from None
    if not isinstance(description, dict):
        raise ModelFileError(f"{path.name} has a malformed description: not a JSON object")
    return description


def _floats(values) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def _float_list(values, length: int) -> list[float]:
    if not isinstance(values, list) or len(values) != length:
        raise ValueError(f"expected a list of {length} numbers, got {values!r}")
    out = [float(v) for v in values]
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"expected finite numbers, got {values!r}")
    return out


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _json_params(params: dict) -> dict:
    out = {}
    for key, value in params.items():
        if isinstance(value, np.random.RandomState):
            value = None  # a RandomState's state is not a setting; the seeds are stored
        elif isinstance(value, torch.dtype):
            value = str(value).removeprefix("torch.")
        elif isinstance(value, torch.device):
            value = str(value)
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return json.loads(json.dumps(out, default=_json_default))


def _history_to_dict(history) -> dict | None:
    return None if history is None else history.to_dict()
