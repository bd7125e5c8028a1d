r"""``BasisRegressor``: the most accurate small network for a table of data, with no tuning.

A scikit-learn estimator around the library: a residual :class:`deepbasis.MLP` with Box
initialization, trained by the hybrid least-squares / gradient-descent method LSGD (Cyr et al.
2020, Algorithm 1), in float64, choosing between a ReLU and a tanh network on held-out rows.
Inputs are mapped onto the unit box [0, 1]^d from the training data's range (where Box
initialization expects them, §4) and targets are standardized; both maps are undone for
prediction, so ``predict`` answers in the units of ``y``.
"""

from __future__ import annotations

import copy
import functools
import math
import numbers
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .._checks import check_choice
from ..init import INITIALIZERS, initialize_
from ..nn.mlp import ACTIVATIONS, MLP
from ..train.history import History
from ..train.lstsq import fit_head_
from .io import DTYPES, ModelFileError, read_model_file, save_model

METHODS = ("lsgd", "gd")
AUTO_ACTIVATIONS = ("relu", "tanh")  # what activation="auto" chooses from


def _learned(name: str) -> bool:
    """Attributes that ``fit`` sets (scikit-learn's trailing underscore, and private state)."""
    return (name.endswith("_") and not name.startswith("__")) or name == "_target_is_1d"


def _all_or_nothing(fit):
    """``fit`` runs on a shallow copy without learned attributes; on success the learned
    attributes of the copy replace those of the estimator in one assignment."""

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        work = copy.copy(self)
        work.__dict__ = {k: v for k, v in self.__dict__.items() if not _learned(k)}
        fit(work, *args, **kwargs)
        self.__dict__ = {**{k: v for k, v in self.__dict__.items() if not _learned(k)},
                         **{k: v for k, v in work.__dict__.items() if _learned(k)}}
        return self

    return wrapper


class BasisRegressor(RegressorMixin, BaseEstimator):
    r"""Deep network regression, Box-initialized and trained by LSGD (Cyr et al. 2020).

    From "Robust Training and Initialization of Deep Neural Networks: An Adaptive Basis
    Viewpoint" - Cyr, E. C. et al. (2020). The network is an adaptive basis Φ(x) (the hidden
    layers) with a linear head; every training step solves for the head by least squares
    (eq. 7) and takes one Adam step on the hidden layers (Algorithm 1).

    **Scaling.** ``fit`` maps each input column affinely from its training range
    ``[min, max]`` onto [0, 1] (a constant column is mapped to 0.5) and standardizes each
    target column to zero mean and unit variance. The input map is part of ``model_``
    (:class:`deepbasis.MLP` with ``domain=``), and after training the target map is folded into
    the linear head, so ``model_`` is an ordinary basis network from raw inputs to raw targets.
    ``history_.loss`` is on the *standardized* targets: the training mean squared error divided
    by the target variance, summed over outputs (for one output, ``1 - R²`` on the training set).

    **Candidates.** ``activation="auto"`` (the default) trains two networks, one with ReLU and
    one with tanh units, and keeps the better: tanh features give a smooth basis that fits
    smooth targets orders of magnitude more accurately (sin(2πx): ~1e-7 against ~1e-3), while
    ReLU is more accurate at kinks and jumps and never rings between data points
    (``benchmarks/bench_estimator.py``). With ``ensemble = E > 1`` each activation gets E
    members with different seeds, trained as one batched computation
    (:func:`deepbasis.fit_ensemble`). Whenever there is more than one candidate, a random
    ``validation_fraction`` of the rows is held out, every candidate is trained on the rest,
    the one with the lowest validation error is kept, and its linear head is re-solved by least
    squares on *all* rows (the hidden layers stay as trained). Prediction uses that one
    network, not a mean: it is as cheap to evaluate, save and analyse as a single fit. Pass one
    name (``activation="relu"``) to train a single network on every row.

    **Defaults** (width 32, depth 4, residual Box init, LSGD, 1000 steps, learning rate 5e-3,
    float64, ReLU-or-tanh) were chosen on the targets of ``benchmarks/bench_estimator.py``;
    they fit ~1000 points in a few seconds on one CPU core.

    Args:
        width: units per hidden layer (the number of basis functions).
        depth: number of hidden layers.
        residual: residual hidden layers 2..depth (eq. 5).
        activation: ``"auto"`` (ReLU or tanh, chosen on held-out rows), one name of
            :data:`deepbasis.nn.ACTIVATIONS`, or a list/tuple of names to choose from.
        init: initializer name, one of :data:`deepbasis.init.INITIALIZERS` ('box', 'he', ...).
        method: ``"lsgd"`` (least squares for the head + Adam on the hidden layers) or ``"gd"``
            (Adam on all parameters).
        steps: training iterations (full batch).
        lr: Adam learning rate.
        ensemble: members E per activation, trained in one batch (see above).
        validation_fraction: share of rows held out to choose among candidates (used only when
            there is more than one).
        random_state: ``None``, an int, or a ``numpy.random.RandomState``: seeds the
            initialization, the member seeds and the validation split.
        dtype: ``"float64"`` (default; needed for errors below ~1e-6) or ``"float32"``.
        device: torch device for training and prediction, e.g. ``"cpu"`` or ``"cuda"``.
        progress: show a progress bar while training.

    Attributes:
        model_: the fitted :class:`deepbasis.MLP`, from raw inputs to raw targets.
        history_: the training :class:`deepbasis.History` of ``model_``.
        activation_: the activation of ``model_``.
        n_features_in_: number of input columns.
        feature_names_in_: input column names (when ``X`` had string column names).
        n_outputs_: number of target columns.
        x_lower_, x_upper_: the input box mapped onto [0, 1]^d, each ``(n_features_in_,)``.
        y_mean_, y_scale_: the target standardization, each ``(n_outputs_,)``.
        seeds_: the E member seeds (shared by every activation).
        candidates_: ``(activation, seed)`` of every candidate, in training order.
        validation_mse_: validation mean squared error of every candidate, in the units of
            ``y`` averaged over outputs (``None`` with a single candidate).
        best_member_: index into ``candidates_`` of the kept network.

    Examples:
        >>> import numpy as np
        >>> from deepbasis import BasisRegressor
        >>> X = np.linspace(0, 1, 200)[:, None]
        >>> y = np.abs(X[:, 0] - 0.3)
        >>> model = BasisRegressor(steps=200, random_state=0).fit(X, y)
        >>> float(model.score(X, y)) > 0.999
        True
    """

    def __init__(
        self,
        *,
        width: int = 32,
        depth: int = 4,
        residual: bool = True,
        activation: str = "auto",
        init: str = "box",
        method: str = "lsgd",
        steps: int = 1000,
        lr: float = 5e-3,
        ensemble: int = 1,
        validation_fraction: float = 0.2,
        random_state=None,
        dtype: str = "float64",
        device: str = "cpu",
        progress: bool = False,
    ) -> None:
        # scikit-learn convention: __init__ only stores the settings; fit checks them.
        self.width = width
        self.depth = depth
        self.residual = residual
        self.activation = activation
        self.init = init
        self.method = method
        self.steps = steps
        self.lr = lr
        self.ensemble = ensemble
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.dtype = dtype
        self.device = device
        self.progress = progress

    # --- scikit-learn protocol ---------------------------------------------------------------

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    @_all_or_nothing
    def fit(self, X, y) -> BasisRegressor:
        """Fit the network to inputs ``X`` ``(n_samples, n_features)`` and targets ``y``
        ``(n_samples,)`` or ``(n_samples, n_outputs)``; returns ``self``.

        All or nothing: the fit works on a copy, and only a complete fit replaces the learned
        attributes; after an exception (an invalid input, Ctrl-C) a fitted regressor keeps
        its previous model, scaling and attributes exactly as they were.

        Raises:
            ValueError: NaN or inf in ``X`` or ``y`` (the message gives the first bad
                ``[row, column]``), fewer than 2 rows (3 when there are several candidates,
                as with the default ``activation="auto"``), or an invalid setting (the
                message names it and the valid values).

        Warns:
            UserWarning: a constant target column; it is fitted exactly by the constant.
            RuntimeWarning: the training loss became non-finite; the network is kept at its
                last finite state (see :func:`deepbasis.fit`).
        """
        settings = self._checked_settings()
        _check_finite("y", _as_float_or_none(y))  # before validate_data, whose y message is vague
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64,
                             ensure_all_finite=False)
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        _check_finite("X", X)
        _check_finite("y", y)
        self._target_is_1d = y.ndim == 1
        Y = y.reshape(len(y), -1)  # (N, m)
        n, m = Y.shape
        several = settings["ensemble"] * len(settings["activations"]) > 1
        needed = 3 if several else 2
        if n < needed:
            why = (" with several candidates (training and validation rows; "
                   "activation='relu', ensemble=1 needs 2)" if several else "")
            raise ValueError(f"BasisRegressor needs at least {needed} samples to fit{why}, got "
                             f"n_samples={n}")
        self.n_outputs_ = m

        # Input map onto the unit box (Box init, §4). A constant column gets a unit-width box
        # centred on its value, so it maps to 0.5 instead of dividing by zero.
        lower, upper = X.min(axis=0), X.max(axis=0)
        _check_input_range(lower, upper, settings["dtype"])
        flat = upper - lower <= 1e-12 * np.maximum(1.0, np.abs(upper))
        lower = np.where(flat, lower - 0.5, lower)
        upper = np.where(flat, upper + 0.5, upper)
        self.x_lower_, self.x_upper_ = lower, upper

        # Target standardization; a constant column keeps scale 1 and is fitted as 0 + mean.
        _check_target_range(Y, settings["dtype"])
        mean, scale = _mean_and_std(Y)
        constant = np.all(Y == Y[:1], axis=0)
        for j in np.flatnonzero(constant):
            which = "the target" if m == 1 else f"target column {j}"
            warnings.warn(
                f"{which} is constant (every value is {float(Y[0, j])!r}); BasisRegressor "
                "fits that constant",
                UserWarning,
                stacklevel=3,  # past the all-or-nothing wrapper: the caller of fit
            )
        scale = np.where(constant | (scale == 0), 1.0, scale)
        self.y_mean_, self.y_scale_ = mean, scale

        dtype, device = settings["dtype"], settings["device"]
        # torch.tensor copies, so read-only (memory-mapped) arrays are fine.
        x = torch.tensor(X, dtype=dtype, device=device)  # (N, d)
        z = torch.as_tensor(_standardized(Y, mean, scale), dtype=dtype, device=device)  # (N, m)

        rng = check_random_state(self.random_state)
        E = settings["ensemble"]
        activations = settings["activations"]
        self.seeds_ = [int(s) for s in rng.randint(0, 2**31 - 1, size=E)]
        self.candidates_ = [(a, seed) for a in activations for seed in self.seeds_]
        self.validation_mse_ = None
        self.best_member_ = 0
        train = {"method": settings["method"], "steps": settings["steps"], "lr": settings["lr"],
                 "progress": bool(self.progress)}
        if constant.all():
            # Nothing to learn: the head is zero and the bias holds the mean (folded below).
            model = self._make_model(self.seeds_[0], m, activations[0])
            with torch.no_grad():
                model.head.weight.zero_()
                model.head.bias.zero_()
            history = History(loss=[0.0], time=[0.0], method=settings["method"],
                              settings={"steps": 0, "reason": "constant targets"})
        elif len(self.candidates_) == 1:
            model, history = self._train_one(activations[0], self.seeds_[0], x, z, m, train)
        else:
            # Several candidates (activations × seeds): train each on the same training rows,
            # keep the one with the lowest error on the held-out rows.
            order = rng.permutation(n)
            n_val = min(max(1, round(settings["validation_fraction"] * n)), n - 2)
            val = torch.as_tensor(order[:n_val], device=device)
            tr = torch.as_tensor(order[n_val:], device=device)
            models, histories = [], []
            for activation in activations:
                if E == 1:
                    one, history = self._train_one(activation, self.seeds_[0], x[tr], z[tr], m,
                                                   train)
                    models.append(one)
                    histories.append(history)
                else:
                    from ..train.ensemble import fit_ensemble

                    result = fit_ensemble(
                        lambda seed, a=activation: self._make_model(seed, m, a), x[tr], z[tr],
                        seeds=self.seeds_, **train)
                    models += result.models
                    histories += result.histories
            units = torch.as_tensor(scale, dtype=dtype, device=device)  # (m,)
            errors = []
            with torch.no_grad():
                for member in models:
                    residual = (member(x[val]) - z[val]) * units  # (n_val, m) in units of y
                    errors.append(float((residual**2).mean()))
            self.validation_mse_ = np.asarray(errors)
            # A member whose loss became non-finite was frozen at its last finite state; it
            # competes like the others, and a non-finite validation error never wins.
            ranking = np.where(np.isfinite(self.validation_mse_), self.validation_mse_, np.inf)
            self.best_member_ = int(np.argmin(ranking))
            model, history = models[self.best_member_], histories[self.best_member_]
            # The basis was chosen on held-out rows; its head may now use every row.
            fit_head_(model, x, z)
        self.activation_ = model.activation_name
        _fold_target_scaling_(model, mean, scale)
        _check_folded_head(model, Y)
        self.model_ = model.eval()
        self.history_ = history
        return self

    def predict(self, X) -> np.ndarray:
        """Predictions ``(n_samples,)`` (or ``(n_samples, n_outputs)`` for 2-D ``y`` at fit)."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite=False)
        X = np.asarray(X, dtype=np.float64)
        _check_finite("X", X)
        parameter = self.model_.head.weight
        with torch.no_grad():
            x = torch.tensor(X, dtype=parameter.dtype, device=parameter.device)  # (N, d)
            out = self.model_(x).to(device="cpu", dtype=torch.float64).numpy()  # (N, m)
        return out[:, 0] if self._target_is_1d else out

    # --- model files -------------------------------------------------------------------------

    def save(self, path: str | Path, **extra) -> Path:
        """Write the fitted regressor to a ``.safetensors`` file (see
        :func:`deepbasis.estimator.save_model`); returns the path."""
        return save_model(self, path, **extra)

    @classmethod
    def load(cls, path: str | Path) -> BasisRegressor:
        """Read a regressor written by :meth:`save` (never executes code from the file)."""
        return load_model(path)

    # --- helpers -----------------------------------------------------------------------------

    def _make_model(self, seed: int, outputs: int, activation: str) -> MLP:
        settings = self._checked_settings()
        model = MLP(
            len(self.x_lower_), settings["width"], settings["depth"], outputs,
            residual=bool(self.residual), activation=activation,
            domain=(self.x_lower_.tolist(), self.x_upper_.tolist()),
            dtype=settings["dtype"], device=settings["device"],
        )
        with warnings.catch_warnings():
            if self.init == "box":
                # box_ warns for non-ReLU activations; choosing one here is deliberate (Box
                # features through tanh are a good smooth basis, see the class docstring).
                warnings.filterwarnings("ignore", message="Box initialization is designed")
            initialize_(model, self.init, generator=seed)
        return model

    def _train_one(self, activation, seed, x, z, outputs, train) -> tuple[MLP, History]:
        from ..train.fit import fit

        model = self._make_model(seed, outputs, activation)
        try:
            history = fit(model, x, z, generator=seed, **train)
        except FloatingPointError as error:
            # fit restored the model to its last finite state: keep that, and say so.
            warnings.warn(f"{error} BasisRegressor keeps that restored model.", RuntimeWarning,
                          stacklevel=4)
            history = error.history
        return model, history

    def _checked_settings(self) -> dict:
        """Validate the settings (at fit time, as scikit-learn requires) and normalize them."""
        def positive_int(name, value, minimum=1):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                    or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
            return int(value)

        settings = {
            "width": positive_int("width", self.width),
            "depth": positive_int("depth", self.depth),
            "steps": positive_int("steps", self.steps, minimum=0),
            "ensemble": positive_int("ensemble", self.ensemble),
        }
        settings["activations"] = _activations(self.activation)
        check_choice("init", self.init, INITIALIZERS)
        settings["method"] = check_choice("method", self.method, METHODS)
        if isinstance(self.lr, bool) or not isinstance(self.lr, numbers.Real) \
                or not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        settings["lr"] = float(self.lr)
        fraction = self.validation_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) \
                or not 0 < fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {fraction!r}")
        settings["validation_fraction"] = float(fraction)
        settings["dtype"] = _torch_dtype(self.dtype)
        try:
            settings["device"] = torch.device(self.device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device must name a torch device such as 'cpu' or 'cuda', got "
                             f"{self.device!r}") from None
        return settings


def load_model(path: str | Path) -> BasisRegressor:
    """Read a :class:`~deepbasis.BasisRegressor` written by :func:`deepbasis.estimator.save_model`.

    The network is rebuilt from the file's validated description and its weights are copied
    in from the safetensors data (:func:`deepbasis.estimator.io.read_model_file`); nothing in
    the file is executed. ``predict`` of the loaded regressor equals that of the saved one
    exactly (same dtype and device).

    Raises:
        FileNotFoundError, ModelFileError: as :func:`~deepbasis.estimator.io.read_model_file`
            (no such file; not a readable deepbasis model file of this format version).
    """
    file = read_model_file(path)
    model, description = file.model, file.description
    fitted, params = description["fitted"], description["params"]
    known = BasisRegressor().get_params(deep=False)
    settings = {k: v for k, v in params.items() if k in known}
    if isinstance(settings.get("activation"), list):  # JSON has no tuples
        settings["activation"] = tuple(settings["activation"])
    estimator = BasisRegressor(**settings)
    try:
        estimator._checked_settings()
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{Path(path).name} has a malformed description: params: "
                             f"{error}") from None
    device = estimator.device
    try:
        model.to(device)
    except (RuntimeError, TypeError, AssertionError):  # e.g. saved on a GPU, loaded without
        estimator.device = "cpu"
    estimator.model_ = model
    estimator.n_features_in_ = model.in_features
    if fitted.get("feature_names_in") is not None:
        estimator.feature_names_in_ = np.asarray(fitted["feature_names_in"], dtype=object)
    estimator.n_outputs_ = model.out_features
    estimator._target_is_1d = bool(fitted["target_is_1d"])
    estimator.x_lower_ = np.asarray(file.x_lower)
    estimator.x_upper_ = np.asarray(file.x_upper)
    estimator.y_mean_ = np.asarray(file.y_mean)
    estimator.y_scale_ = np.asarray(file.y_scale)
    estimator.seeds_ = list(fitted.get("seeds", []))
    estimator.activation_ = model.activation_name
    estimator.candidates_ = [(str(a), int(seed)) for a, seed in fitted.get("candidates", [])]
    estimator.best_member_ = int(fitted.get("best_member", 0))
    mse = fitted.get("validation_mse")
    estimator.validation_mse_ = None if mse is None else np.asarray(mse, dtype=np.float64)
    estimator.history_ = (None if description.get("history") is None
                          else History.from_dict(description["history"]))
    estimator.extra_ = description.get("extra", {})
    return estimator


def _activations(value) -> list[str]:
    """'auto' → ['relu', 'tanh']; a name → [name]; a list or tuple of names → those names."""
    if isinstance(value, str):
        check_choice("activation", value, ["auto", *ACTIVATIONS])
        return list(AUTO_ACTIVATIONS) if value == "auto" else [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"activation must be 'auto', a name or a list of names, got {value!r}")
    for name in value:
        check_choice("activation", name, ACTIVATIONS)
    if len(set(value)) != len(value):
        raise ValueError(f"activation {value!r} names a candidate twice")
    return list(value)


def _torch_dtype(value) -> torch.dtype:
    if isinstance(value, torch.dtype) and value in DTYPES.values():
        return value
    name = str(value).removeprefix("torch.")
    check_choice("dtype", name, DTYPES)
    return DTYPES[name]


def _as_float_or_none(values) -> np.ndarray | None:
    """``values`` as a float array, or None when they are not plain numbers (left to
    scikit-learn's validation, which explains those cases)."""
    if hasattr(values, "toarray") or hasattr(values, "__array_namespace__") and not \
            isinstance(values, np.ndarray):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array if array.ndim >= 1 else None  # None or a scalar: scikit-learn explains


def _check_finite(name: str, array: np.ndarray | None) -> None:
    """Raise naming the first NaN/inf entry, as ``name[row, column]`` (0-based)."""
    if array is None or array.size == 0:
        return
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        value = array[index]
        kind = "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")
        where = f"{name}[{', '.join(map(str, index))}]"
        raise ValueError(
            f"Input {name} contains NaN or inf: {where} is {kind} ({int(bad.sum())} non-finite "
            f"value(s) in all). Remove or impute those rows before fitting or predicting."
        )


# Below this magnitude the sums and squares of mean and std cannot overflow float64 (N·y² ≤
# 1e8 · 1e300), and the plain formulas are used, so ordinary data are scaled exactly as always.
_SAFE_TARGET = 1e146


def _mean_and_std(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations of ``Y`` (N, m) that do not overflow for finite
    targets near the float64 limit: those are computed on ``Y / max|Y|`` and scaled back."""
    peak = np.abs(Y).max(axis=0)  # (m,)
    if not (peak > _SAFE_TARGET).any():
        return Y.mean(axis=0), Y.std(axis=0)
    peak = np.where(peak > 0, peak, 1.0)
    unit = Y / peak  # |unit| ≤ 1
    return unit.mean(axis=0) * peak, unit.std(axis=0) * peak


def _standardized(Y: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(Y − mean) / scale, without forming Y − mean when that could overflow."""
    if not (np.abs(Y).max(axis=0) > _SAFE_TARGET).any():
        return (Y - mean) / scale
    return Y / scale - mean / scale  # both terms are O(N) at most


def _check_input_range(lower: np.ndarray, upper: np.ndarray, dtype: torch.dtype) -> None:
    """The network maps [lower, upper] onto [0, 1]: the bounds and their difference must be
    finite in the model's dtype."""
    biggest = torch.finfo(dtype).max
    with np.errstate(over="ignore"):
        span = upper - lower
    for j in range(len(lower)):
        if max(abs(lower[j]), abs(upper[j]), span[j]) > biggest:
            name = str(dtype).removeprefix("torch.")
            hint = " or use dtype='float64'" if dtype != torch.float64 else ""
            raise ValueError(
                f"input column {j} spans [{lower[j]:.6g}, {upper[j]:.6g}]: every value is "
                f"finite, but that range (width {span[j]:.6g}) does not fit in {name} (largest "
                f"{biggest:.6g}), so it cannot be mapped onto [0, 1]. Rescale the column (e.g. "
                f"divide it by 1e{_exponent(max(abs(lower[j]), abs(upper[j])))}){hint}.")


# Headroom between the largest target and the dtype's largest number: the output layer holds
# the target scale times weights of the standardized fit (typically O(1), rarely above 1e3).
_TARGET_HEADROOM = 1e4


def _check_target_range(Y: np.ndarray, dtype: torch.dtype) -> None:
    """Before training: targets whose scale the output layer could not hold are an error."""
    if Y.size and float(np.abs(Y).max()) > torch.finfo(dtype).max / _TARGET_HEADROOM:
        _target_range_error(Y, dtype)


def _check_folded_head(model: MLP, Y: np.ndarray) -> None:
    """After folding the target scale into the head, it must still be finite in its dtype."""
    head = model.head
    if not (bool(torch.isfinite(head.weight).all()) and bool(torch.isfinite(head.bias).all())):
        _target_range_error(Y, head.weight.dtype)


def _target_range_error(Y: np.ndarray, dtype: torch.dtype):
    name = str(dtype).removeprefix("torch.")
    peak = float(np.abs(Y).max())
    hint = " or use dtype='float64'" if dtype != torch.float64 else ""
    raise ValueError(
        f"the targets reach |y| = {peak:.6g}: every value is finite, but a model in {name} "
        f"(largest {torch.finfo(dtype).max:.6g}) cannot hold their scale in its output layer. "
        f"Rescale y (e.g. divide it by 1e{_exponent(peak)}) and multiply the predictions "
        f"back{hint}.")


def _exponent(value: float) -> int:
    """A power of ten that brings ``value`` down to about 100."""
    return max(int(math.log10(value)) - 2, 1) if value > 0 else 1


@torch.no_grad()
def _fold_target_scaling_(model: MLP, mean: np.ndarray, scale: np.ndarray) -> MLP:
    """y = mean + scale ⊙ (W Φ + b)  ⇒  head ← (diag(scale) W, scale ⊙ b + mean)."""
    head = model.head
    s = torch.as_tensor(scale, dtype=head.weight.dtype, device=head.weight.device)  # (m,)
    mu = torch.as_tensor(mean, dtype=head.weight.dtype, device=head.weight.device)  # (m,)
    head.weight.mul_(s[:, None])
    head.bias.mul_(s).add_(mu)
    return model
