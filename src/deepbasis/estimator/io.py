"""Model files that are safe to open: weights in safetensors, everything else in JSON.

One file, ``NAME.safetensors``. The tensors are the ``state_dict`` of the fitted
:class:`deepbasis.MLP`; the safetensors header's string metadata holds

- ``"format"``: ``"deepbasis.regressor"`` (files from anything else are refused),
- ``"format_version"``: ``"2"`` (:data:`FORMAT_VERSION`; newer files are refused with a hint),
- ``"deepbasis_version"``: the version that wrote it,
- ``"sha256"``: a SHA-256 digest of the description and of every tensor (name, dtype, shape and
  bytes, in name order), verified on loading, so a flipped bit is an error, not a prediction,
- ``"description"``: JSON with the architecture, the input box and target scaling, the
  estimator's settings, the names of the input and target columns, the training history and
  any extra fields given to :func:`save_model` (e.g. train / validation errors).

The header is plain JSON at the start of the file, so ``read_description(path)`` (or any
safetensors reader) shows it without loading the weights. Loading never unpickles or executes
anything from the file, and trusts nothing in it: every field of the description is validated
in one place (:func:`_validate_description`); the tensor names, shapes and dtypes the
architecture implies are compared with those stored *before* any tensor is read or the network
allocated (so a header claiming ``depth=10**7`` is an error, not a hang); the digest is checked
and non-finite weights are refused. Every failure is a :class:`ModelFileError` that names the
field or tensor. A single file (rather than a folder of weights + JSON) cannot lose one half.

**Files of format version 1** (deepbasis before the digest) still load, with a
``UserWarning`` that they cannot be verified; saving them again writes version 2. A file that
carries a digest is checked whatever its version field says.

Files are written to a temporary file in the same folder and renamed
(:func:`deepbasis._files.atomic_write`), so a failed save never leaves half a model, nor
destroys the file it was replacing.

This module knows the file, not the estimator class: :func:`read_model_file` returns the
validated network and description, and :func:`deepbasis.estimator.load_model` (in
``regressor.py``, which imports this module and not the other way round) turns them back into
a ``BasisRegressor``.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from .._files import atomic_write
from ..nn.mlp import ACTIVATIONS, MLP
from ..train.history import History

FORMAT = "deepbasis.regressor"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1: no digest (loaded with a warning)
DTYPES = {"float64": torch.float64, "float32": torch.float32}  # the dtypes a model file holds
# Bounds on the sizes a description may claim: far above any network this estimator trains,
# far below what would exhaust memory or hang before the tensors are compared.
# The device types a model may name: a "meta" tensor holds no numbers to predict with.
_DEVICES = ("cpu", "cuda", "mps", "xpu")
MAX_SIZE = {"in_features": 1_000_000, "width": 100_000, "depth": 10_000,
            "out_features": 100_000}


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

    Raises:
        ValueError: the network holds NaN or inf weights (the file would not load).
        deepbasis._files.UnwritableError: the file cannot be written; an existing file at
            ``path`` is left as it was (the file is written beside it and renamed).

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
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    for name, tensor in tensors.items():  # a file that loading would refuse is not written
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"cannot save the model: its tensor {name!r} holds NaN or inf; "
                             "refit it (or restore a good copy) before saving")
    text = json.dumps(description, allow_nan=True)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "deepbasis_version": __version__,
        "description": text,
        "sha256": _digest(text, tensors),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)
    return path


def _optional_fitted(estimator) -> dict:
    """``n_iter``, ``n_networks``, ``noise_std``, ``head_ridge``, ``head_covariance`` (for
    ``predict(return_std=True)`` after loading) and ``feature_importances`` when the estimator
    has them."""
    fields = {}
    if getattr(estimator, "n_iter_", None) is not None:
        fields["n_iter"] = int(estimator.n_iter_)
    if getattr(estimator, "n_networks_", None) is not None:
        fields["n_networks"] = int(estimator.n_networks_)
    for name in ("noise_std", "head_ridge", "head_covariance", "feature_importances"):
        value = getattr(estimator, f"{name}_", None)
        if value is not None:
            fields[name] = np.asarray(value, dtype=np.float64).tolist()
    return fields


def read_description(path: str | Path) -> dict:
    """The validated JSON description of a model file (no weights are loaded).

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: not a safetensors file, corrupt or truncated, written by something
            else, a newer format version, or a field of the description is invalid.
    """
    path = Path(path)
    with _open(path) as handle:
        description = _parse_description(path, _check_metadata(path, handle.metadata() or {}))
    _validate_description(path, description)
    return description


def read_model_file(path: str | Path) -> ModelFile:
    """The validated contents of a model file: the network rebuilt from the description, with
    the weights copied in from the safetensors data (nothing in the file is executed).

    In order: the header (format, version, every field of the description); the tensor names,
    shapes and dtypes against those the architecture implies, before any tensor is read; the
    SHA-256 digest; finite weights. Only then is the network built.
    :func:`deepbasis.estimator.load_model` turns the result back into a ``BasisRegressor``.

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: the file is not a safetensors file, is corrupt or truncated, was written
            by something else, has a format version this deepbasis cannot read, a field of its
            description is invalid (the message names it), its tensors do not match its
            description, its digest does not match its contents, or a weight is not finite.

    Warns:
        UserWarning: a file of format version 1, which has no digest to verify.
    """
    path = Path(path)
    with _open(path) as handle:
        metadata = _check_metadata(path, handle.metadata() or {})
        description = _parse_description(path, metadata)
        checked = _validate_description(path, description)
        stored = {}
        for name in handle.keys():
            part = handle.get_slice(name)  # shape and dtype only: nothing is read yet
            stored[name] = (tuple(part.get_shape()), str(part.get_dtype()))
        _check_tensor_layout(path, checked, stored)
        tensors = {name: handle.get_tensor(name) for name in stored}  # sizes are checked
    _check_digest(path, metadata, tensors)
    for name, value in tensors.items():
        if not bool(torch.isfinite(value).all()):
            raise ModelFileError(
                f"tensor {name!r} in {path.name} holds non-finite values (NaN or inf); the "
                "file is corrupt, or the model was saved after its training failed. Refit it.")
    arch = description["architecture"]
    model = MLP(checked["in_features"], checked["width"], checked["depth"],
                checked["out_features"], residual=arch["residual"], activation=arch["activation"],
                domain=checked["domain"], dtype=DTYPES[arch["dtype"]])
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return ModelFile(model, description, checked["x_lower"], checked["x_upper"],
                     checked["y_mean"], checked["y_scale"])


# --- helpers ---------------------------------------------------------------------------------


@contextmanager
def _open(path: Path):
    """The file opened by safetensors (which checks the header against the file size)."""
    from safetensors import safe_open

    if not path.is_file():
        raise FileNotFoundError(f"no model file at {str(path)!r}")
    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
        handle.__enter__()
    except Exception as error:  # safetensors raises its own SafetensorError, or OSError
        raise ModelFileError(
            f"cannot read {path.name} as a deepbasis model file: it is not a valid safetensors "
            f"file, or it is corrupt or truncated ({error}). Model files are written by "
            "`deepbasis fit` or BasisRegressor.save."
        ) from None
    try:
        yield handle
    except ModelFileError:
        raise
    except Exception as error:  # a read failing half-way: truncated data, I/O error
        raise ModelFileError(
            f"cannot read the tensors of {path.name}: the file is corrupt or truncated "
            f"({error})") from None
    finally:
        handle.__exit__(None, None, None)


def _check_metadata(path: Path, metadata: dict) -> dict:
    if metadata.get("format") != FORMAT:
        raise ModelFileError(
            f"{path.name} is a safetensors file but not a deepbasis model (its metadata has "
            f"format={metadata.get('format')!r}, expected {FORMAT!r}); it was written by "
            "something else"
        )
    version = metadata.get("format_version")
    if version not in [str(v) for v in READABLE_VERSIONS]:
        writer = metadata.get("deepbasis_version", "an unknown version")
        raise ModelFileError(
            f"{path.name} has model format version {version!r} (written by deepbasis {writer}); "
            f"this deepbasis {__version__} reads version {FORMAT_VERSION}. Use a deepbasis that "
            "matches the file, or refit the model."
        )
    return metadata


def _parse_description(path: Path, metadata: dict) -> dict:
    try:
        description = json.loads(metadata["description"])
    except (KeyError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path.name} has no readable description ({error})") from None
    if not isinstance(description, dict):
        raise ModelFileError(f"{path.name} has a malformed description: not a JSON object")
    return description


def _validate_description(path: Path, description: dict) -> dict:
    """Check every field the loader uses; the sizes, bounds and scaling, normalized.

    The one place where a description is validated: every error names its field, as
    ``ModelFileError("NAME has a malformed description: FIELD ...")``.
    """
    def fail(field, problem):
        raise ModelFileError(f"{path.name} has a malformed description: {field} {problem}")

    def get(parent, key, prefix, kind=dict):
        if not isinstance(parent, dict) or key not in parent:
            fail(f"{prefix}{key!r}", "is missing")
        value = parent[key]
        if kind is not None and not isinstance(value, kind):
            fail(f"{prefix}{key}", f"must be a JSON {kind.__name__}, got {value!r:.80}")
        return value

    def integer(value, field, low, high):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            what = "a positive integer" if low == 1 else "an integer"
            fail(field, f"must be {what} in [{low}, {high}], got {value!r:.80}")
        return value

    def floats(value, field, length, finite=True):
        if not isinstance(value, list) or len(value) != length or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            kind = "finite numbers" if finite else "numbers"
            fail(field, f"must be a list of {length} {kind}, got {value!r:.80}")
        out = [float(v) for v in value]
        if finite and not all(math.isfinite(v) for v in out):
            fail(field, f"must be a list of {length} finite numbers, got {value!r:.80}")
        return out

    def strings(value, field, length=None):
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or (
                length is not None and len(value) != length):
            count = f"{length} " if length is not None else ""
            fail(field, f"must be null or a list of {count}strings, got {value!r:.80}")
        return value

    arch = get(description, "architecture", "")
    if get(arch, "class", "architecture.", str) != "MLP":
        fail("architecture.class", f"must be 'MLP', got {arch['class']!r:.80}")
    checked = {key: integer(get(arch, key, "architecture.", None), f"architecture.{key}", 1, high)
               for key, high in MAX_SIZE.items()}
    d, m = checked["in_features"], checked["out_features"]
    get(arch, "residual", "architecture.", bool)
    if get(arch, "activation", "architecture.", str) not in ACTIVATIONS:
        fail("architecture.activation", f"is an unknown activation {arch['activation']!r:.80}")
    if get(arch, "dtype", "architecture.", str) not in DTYPES:
        fail("architecture.dtype", f"is an unknown dtype {arch['dtype']!r:.80}; one of "
             f"{sorted(DTYPES)}")
    checked["dtype"] = arch["dtype"]
    domain = get(arch, "domain", "architecture.", list)
    if len(domain) != 2:
        fail("architecture.domain", "must be a pair [lower, upper]")
    lower, upper = (floats(v, f"architecture.domain[{i}]", d) for i, v in enumerate(domain))
    if not all(a < b for a, b in zip(lower, upper, strict=True)):
        fail("architecture.domain", "needs lower < upper in every coordinate")
    checked["domain"] = (lower, upper)

    scaling = get(description, "scaling", "")
    for key, length in (("x_lower", d), ("x_upper", d), ("y_mean", m), ("y_scale", m)):
        checked[key] = floats(get(scaling, key, "scaling.", list), f"scaling.{key}", length)

    params = get(description, "params", "")
    device = params.get("device", "cpu")
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError, ValueError):
        kind = None
    if kind not in _DEVICES:
        fail("params.device", f"must name a torch device ({', '.join(_DEVICES)}), got "
             f"{device!r:.80}")
    for key, value in params.items():
        if isinstance(value, str) and (len(value) > 200 or not value.isprintable()):
            fail(f"params.{key}", f"must be a short printable string, got {value!r:.80}")

    fitted = get(description, "fitted", "")
    if get(fitted, "n_features_in", "fitted.", None) != d:
        fail("fitted.n_features_in", f"must equal architecture.in_features={d}, got "
             f"{fitted['n_features_in']!r:.80}")
    if get(fitted, "n_outputs", "fitted.", None) != m:
        fail("fitted.n_outputs", f"must equal architecture.out_features={m}, got "
             f"{fitted['n_outputs']!r:.80}")
    if get(fitted, "target_is_1d", "fitted.", bool) and m != 1:
        fail("fitted.target_is_1d", f"is true but the model has {m} outputs")
    strings(fitted.get("feature_names_in"), "fitted.feature_names_in", d)
    seeds = fitted.get("seeds", [])
    if not isinstance(seeds, list):
        fail("fitted.seeds", f"must be a list of integers, got {seeds!r:.80}")
    for i, seed in enumerate(seeds):
        integer(seed, f"fitted.seeds[{i}]", 0, 2**63 - 1)
    candidates = fitted.get("candidates", [])
    if not isinstance(candidates, list) or not all(
            isinstance(c, list) and len(c) == 2 and isinstance(c[0], str) for c in candidates):
        fail("fitted.candidates", f"must be a list of [activation, seed] pairs, got "
             f"{candidates!r:.80}")
    for i, (_, seed) in enumerate(candidates):
        integer(seed, f"fitted.candidates[{i}][1]", 0, 2**63 - 1)
    integer(fitted.get("best_member", 0), "fitted.best_member", 0, max(len(candidates) - 1, 0))
    if fitted.get("validation_mse") is not None:
        floats(fitted["validation_mse"], "fitted.validation_mse", len(candidates), finite=False)
    if fitted.get("feature_importances") is not None:
        floats(fitted["feature_importances"], "fitted.feature_importances", d)
    networks = integer(fitted.get("n_networks", 1), "fitted.n_networks", 1, checked["width"])
    if checked["width"] % networks:
        fail("fitted.n_networks", f"must divide the width {checked['width']}, got {networks}")

    history = description.get("history")
    if history is not None:
        try:
            parsed = History.from_dict(history)
            if not all(isinstance(v, float) for v in [*parsed.loss, *parsed.time]):
                raise TypeError("loss and time must be numbers")
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            fail("history", f"is not a training history ({type(error).__name__}: {error})")

    extra = description.get("extra", {})
    if not isinstance(extra, dict):
        fail("extra", f"must be a JSON object, got {extra!r:.80}")
    for key, length in (("input_columns", None), ("input_names", d), ("target_names", m)):
        names = strings(extra.get(key), f"extra.{key}", length)
        if names is not None and len(set(names)) != len(names):
            fail(f"extra.{key}", f"names a column twice: {names!r:.80}")
    return checked


def _expected_tensors(checked: dict, dtype: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """name → (shape, safetensors dtype) of the ``state_dict`` of the described MLP."""
    d, w, m = checked["in_features"], checked["width"], checked["out_features"]
    kind = {"float64": "F64", "float32": "F32"}[dtype]
    expected = {"_lower": ((d,), kind), "_upper": ((d,), kind)}
    for layer in range(checked["depth"]):
        expected[f"layers.{layer}.weight"] = ((w, d if layer == 0 else w), kind)
        expected[f"layers.{layer}.bias"] = ((w,), kind)
    expected["head.weight"] = ((m, w), kind)
    expected["head.bias"] = ((m,), kind)
    return expected


def _check_tensor_layout(path: Path, checked: dict, stored: dict) -> None:
    dtype = checked["dtype"]
    expected = _expected_tensors(checked, dtype)
    if set(stored) != set(expected):
        missing = sorted(set(expected) - set(stored))
        unexpected = sorted(set(stored) - set(expected))
        raise ModelFileError(
            f"the tensors in {path.name} do not match its architecture (depth="
            f"{checked['depth']} needs {len(expected)} tensors, the file holds {len(stored)}): "
            f"missing {_few(missing)}, unexpected {_few(unexpected)}"
        )
    for name, (shape, kind) in stored.items():
        if (shape, kind) != expected[name]:
            want_shape, want_kind = expected[name]
            raise ModelFileError(
                f"tensor {name!r} in {path.name} has shape {shape} and dtype {kind}, but the "
                f"architecture needs {want_shape} and {want_kind}"
            )


def _few(names: list[str], shown: int = 6) -> str:
    return str(names) if len(names) <= shown else f"{names[:shown]} and {len(names) - shown} more"


def _digest(description: str, tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the description and of every tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256(description.encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"\0{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.view(torch.uint8).numpy() if tensor.numel() else b"")
    return digest.hexdigest()


def _check_digest(path: Path, metadata: dict, tensors: dict[str, torch.Tensor]) -> None:
    # A digest, when there is one, is checked whatever the version field says: editing
    # "format_version" to "1" must not switch the check off.
    if metadata["format_version"] == "1" and "sha256" not in metadata:
        warnings.warn(
            f"{path.name} has model format version 1, which stores no checksum, so its contents "
            "cannot be verified; save it again (BasisRegressor.load(path).save(path)) to add "
            "one", UserWarning, stacklevel=4)
        return
    stored = metadata.get("sha256")
    if not isinstance(stored, str):
        raise ModelFileError(f"{path.name} has no sha256 digest in its metadata; the header was "
                             "damaged or edited")
    if _digest(metadata["description"], tensors) != stored:
        raise ModelFileError(
            f"{path.name} is corrupt: the SHA-256 digest of its description and tensors does "
            "not match the one stored in it (a changed bit, or an edited file). Use a good copy "
            "or refit the model.")


def _floats(values) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


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
