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
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .._checks import check_choice
from ..init import INITIALIZERS, initialize_
from ..nn.mlp import ACTIVATIONS, MLP
from ..train.history import History
from ..train.lstsq import design_matrix
from ..train.threads import check_threads, thread_policy
from .calibration import posterior
from .io import DTYPES, ModelFileError, read_model_file, save_model
from .monitor import held_out_rows, row_groups
from .relevance import importances, input_relevance
from .scaling import (
    as_float_or_none,
    check_finite,
    check_folded_head,
    check_target_range,
    fold_target_scaling_,
    input_box,
    mean_and_std,
    standardized,
)
from .selection import Candidates, PoorFitWarning, choose

__all__ = ["BasisRegressor", "PoorFitWarning", "load_model"]

METHODS = ("lsgd", "gd")
HEADS = ("gcv", "lstsq")
AUTO_ACTIVATIONS = ("relu", "tanh")  # what activation="auto" chooses from
_POOR_FIT = 0.9  # held-out RMSE / target std above which fit warns (the mean gives ~1)
# width="auto": 64 units up to this many rows, 32 above. On the benchmark's smooth targets 64
# is 4-16x more accurate than 32 (Franke, Friedman 2, sin); on 50,000 x 8 rows it is no more
# accurate and twice as slow (60 s instead of 33 s on one core).
_AUTO_WIDTH = ((10_000, 64), (None, 32))


#: Private attributes that ``fit`` sets beside the learned ones.
_PRIVATE_STATE = ("_target_is_1d", "_validation_mask")


def _learned(name: str) -> bool:
    """Attributes that ``fit`` sets (scikit-learn's trailing underscore, and private state)."""
    return (name.endswith("_") and not name.startswith("__")) or name in _PRIVATE_STATE


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
    ``validation_fraction`` of the rows is held out; every candidate trains 200 steps on at most
    600 of the other rows (a race), the one with the lowest validation error is retrained from
    its initialization on every training row for every step, and its linear head is re-solved
    by least squares on *all* rows (the hidden layers stay as trained). On noisy rows (GCV's
    noise estimate for the kept network at least 0.5 % of the target's standard deviation,
    ``head="gcv"``, at most 4,000 training rows) the kept network is instead averaged with one
    network per other fold of a K-fold split (K = 1 / ``validation_fraction``, at most 5), each
    trained on the rows outside its fold and stopped early on it: the mean has seen every row
    and averages out what each network fitted of the noise (10-25 % lower test error on the
    benchmark's noisy rows). The K networks take the smoothing head, penalized by the fitted
    function's curvature (:mod:`deepbasis.estimator.smoothing`), where its K-fold error is
    lower than their heads'. Prediction uses one network either way: the K networks side by
    side are one network of K × ``width`` features (:func:`deepbasis.nn.mlp.mean_network`), as
    cheap to evaluate, save and analyse as a single fit (``n_networks_`` says K). Pass one
    name (``activation="relu"``) to train a single network on every row.

    **Noise, early stopping, saying no.** By default (``head="gcv"``) every head solve is a
    ridge solve with λ chosen by generalized cross-validation, and each candidate is stopped
    early on the held-out rows and returned to its best state (``n_iter_``). A candidate whose
    predictions leave the targets' range (by more than 3× its width) at the training points,
    between them or across the training box (1-2 inputs) is not kept; if the kept network's
    held-out RMSE exceeds 0.9 × the target's standard deviation, ``fit`` warns
    (:class:`PoorFitWarning`) and says what to try. ``predict(X, return_std=True)`` gives a
    predictive standard deviation from the Bayesian view of the head: noise plus the head's
    uncertainty, its 95 % interval covering ~94 % of new observations (see :meth:`predict`).

    **Irrelevant inputs.** ``feature_importances_`` is each input's relevance: the RMS over the
    training rows of the fitted function's derivative along the input's training range. When
    some inputs matter much less than others, the race's winner is also trained on an input box
    that squeezes them (:mod:`deepbasis.estimator.relevance`), so its basis varies mostly along
    the relevant inputs, and that network is kept if it is clearly better on the held-out rows.

    **Many rows.** With several candidates and more than 4,000 training rows, the race runs
    every step on a random subset of 4,000 training rows (each candidate stopped early); only
    the winner then trains on every training row, from the state it reached, again with early
    stopping. This keeps the cost of choosing an activation independent of the number of rows.

    **Defaults** (width 64 up to 10,000 rows and 32 above, depth 4, residual Box init, LSGD,
    1000 steps, learning rate 1e-2, float64, ReLU-or-tanh) were chosen on the targets of
    ``benchmarks/bench_estimator.py``; they fit ~1000 points in a few seconds on one CPU core.

    Args:
        width: units per hidden layer (the number of basis functions), or ``"auto"``: 64 up to
            10,000 rows, 32 above (as accurate there, and half the time).
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
        validation_fraction: share of the (distinct) rows held out, to choose among candidates
            and for early stopping (no rows are held out with one candidate and
            ``early_stopping=False``).
        head: ``"gcv"`` (default): every least-squares solve of the head is Tikhonov
            regularized, λ chosen on each solve by generalized cross-validation
            (:func:`deepbasis.train.lstsq.gcv_lstsq`; λ ≈ 0 on noise-free data, so smooth
            targets keep their accuracy, and λ ≈ noise/signal on noisy data, so noise is not
            memorized); ``"lstsq"``: minimum-norm least squares (the paper's LSGD).
        early_stopping: stop each candidate when its held-out error has not improved (by a
            relative 1e-4, checked every 5 steps) for ``n_iter_no_change`` steps, and keep the
            state with the lowest held-out error (hidden layers and their head) among those
            that beat the untrained network by a standard error of the row-by-row difference
            (else the untrained one: on noisy data, training that does not clearly help has
            fitted noise).
        n_iter_no_change: the patience of early stopping, in training steps.
        random_state: ``None``, an int, or a ``numpy.random.RandomState``: seeds the
            initialization, the member seeds and the validation split.
        dtype: ``"float64"`` (default; needed for errors below ~1e-6) or ``"float32"``.
        device: torch device for training and prediction, e.g. ``"cpu"`` or ``"cuda"``.
        progress: show a progress bar while training.
        threads: CPU threads while fitting: ``"auto"`` (one thread for problems too small to
            gain from more, see :mod:`deepbasis.train.threads`), a positive int, or ``None``
            (leave ``torch.get_num_threads()`` alone). Restored when ``fit`` returns.

    Attributes:
        model_: the fitted :class:`deepbasis.MLP`, from raw inputs to raw targets.
        history_: the training :class:`deepbasis.History` of ``model_``.
        activation_: the activation of ``model_``.
        n_features_in_: number of input columns.
        feature_names_in_: input column names (when ``X`` had string column names).
        n_outputs_: number of target columns.
        width_: the width of each network (``width``, or what ``"auto"`` chose);
            ``model_`` has ``n_networks_ × width_`` features.
        n_networks_: the number of networks averaged into ``model_``: K on noisy rows (see
            *Candidates*), else 1.
        x_lower_, x_upper_: the training inputs' range, each ``(n_features_in_,)``: mapped onto
            [0, 1]^d, or onto the relevance box when that was kept (``model_.domain``).
        feature_importances_: ``(n_features_in_,)``, summing to 1: the relevance of each input
            to the fitted function, the RMS over the training rows of its derivative along the
            input's training range (:mod:`deepbasis.estimator.relevance`; ``None`` in a file
            saved by an older deepbasis).
        y_mean_, y_scale_: the target standardization, each ``(n_outputs_,)``.
        seeds_: the E member seeds (shared by every activation).
        candidates_: ``(activation, seed)`` of every candidate, in training order.
        validation_mse_: validation mean squared error of every candidate, in the units of
            ``y`` averaged over outputs (``None`` with a single candidate).
        cv_mse_: with several candidates and at most 600 training rows, every candidate's
            mean squared error over K folds (each row held out once; units of ``y``, averaged
            over outputs); it overrules ``validation_mse_`` where it is clearly lower (a
            standard error of the row-by-row difference). ``None`` otherwise.
        best_member_: index into ``candidates_`` of the kept network.
        n_iter_: the training step whose state was kept (the best held-out error with early
            stopping; the last step otherwise); after a race on a subset (many rows), the
            steps of the race plus those on every row.
        noise_std_: the noise level σ of each output (units of ``y``), times √(ν / (ν − 2)):
            estimated from the held-out rows' prediction errors, pooled with the training rows'
            GCV residuals when the hidden layers have not fitted those (see
            ``predict(return_std=True)``; GCV's ‖r‖² / (N − tr H) without held-out rows); for
            a mean of K networks, from every row's error in the network that held it out
            (ν = N).
        head_ridge_: the λ of the final head of each output (standardized targets, unscaled
            design rows; 0 with ``head="lstsq"``).
        head_covariance_: ``(n_outputs_, width + 1, width + 1)`` posterior covariance of each
            output's head coefficients [weight, bias], in units of ``y``²
            (``predict(return_std=True)``).

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
        width: int | str = "auto",
        depth: int = 4,
        residual: bool = True,
        activation: str = "auto",
        init: str = "box",
        method: str = "lsgd",
        steps: int = 1000,
        lr: float = 1e-2,
        ensemble: int = 1,
        validation_fraction: float = 0.2,
        head: str = "gcv",
        early_stopping: bool = True,
        n_iter_no_change: int = 100,
        random_state=None,
        dtype: str = "float64",
        device: str = "cpu",
        progress: bool = False,
        threads: int | str | None = "auto",
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
        self.head = head
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.dtype = dtype
        self.device = device
        self.progress = progress
        self.threads = threads

    # --- scikit-learn protocol ---------------------------------------------------------------

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    @_all_or_nothing
    def fit(self, X, y, sample_weight=None) -> BasisRegressor:
        """Fit the network to inputs ``X`` ``(n_samples, n_features)`` and targets ``y``
        ``(n_samples,)`` or ``(n_samples, n_outputs)``; returns ``self``.

        All or nothing: the fit works on a copy, and only a complete fit replaces the learned
        attributes; after an exception (an invalid input, Ctrl-C) a fitted regressor keeps
        its previous model, scaling and attributes exactly as they were.

        ``sample_weight`` ``(n_samples,)``, non-negative, are frequency weights: every loss,
        least-squares solve, scaling and validation error weighs row i by ``sample_weight[i]``,
        a row of weight 0 is left out, and integer weights fit what repeating each row that
        many times fits (identical rows always fall on the same side of the validation split,
        and GCV counts Σ w rows), up to rounding.

        Raises:
            ValueError: NaN or inf in ``X``, ``y`` or ``sample_weight`` (the message gives the
                first bad ``[row, column]``), fewer than 2 rows (3 distinct rows when rows are
                held out: with several candidates, as with the default ``activation="auto"``,
                or with ``early_stopping=True``), or an invalid setting (the message names it
                and the valid values).

        Warns:
            UserWarning: a constant target column; it is fitted exactly by the constant.
            PoorFitWarning: the kept network's error on the held-out rows is not clearly below
                the target's standard deviation (RMSE > 0.9 std), or every candidate's
                predictions leave the range of the targets between the training points; the
                message says what to try.
            RuntimeWarning: the training loss became non-finite; the network is kept at its
                last finite state (see :func:`deepbasis.fit`).
        """
        settings = self._checked_settings()
        try:  # the size measure of threads="auto"; validate_data explains a bad X below
            shape = getattr(X, "shape", None)
            rows = int(shape[0]) if shape else len(X)
        except (TypeError, ValueError, IndexError):
            rows = 0
        candidates = settings["ensemble"] * len(settings["activations"])
        settings["width"] = _resolved_width(settings["width"], rows)
        work = rows * settings["width"] ** 2 * settings["depth"] * candidates  # ~rows × params
        with thread_policy(check_threads(self.threads), work=work, device=settings["device"]):
            return self._fit(X, y, sample_weight, settings)

    def _fit(self, X, y, sample_weight, settings: dict) -> BasisRegressor:
        X, Y, weights = self._checked_data(X, y, sample_weight)  # (N, d), (N, m), (N,) | None
        n, m = Y.shape
        several = settings["ensemble"] * len(settings["activations"]) > 1
        held_out = several or settings["early_stopping"]
        groups = row_groups(X, Y) if held_out else None
        _check_enough_rows(n if groups is None else int(groups.max()) + 1, held_out)
        self.n_outputs_ = m
        self.width_ = settings["width"]  # resolved by fit
        dtype, device = settings["dtype"], settings["device"]
        self.x_lower_, self.x_upper_ = input_box(X, dtype)  # onto [0, 1]^d (Box init, §4)
        mean, scale, constant = _target_scaling(Y, weights, dtype)
        self.y_mean_, self.y_scale_ = mean, scale
        # torch.tensor copies, so read-only (memory-mapped) arrays are fine.
        x = torch.tensor(X, dtype=dtype, device=device)  # (N, d)
        z = torch.as_tensor(standardized(Y, mean, scale), dtype=dtype, device=device)  # (N, m)
        w = None if weights is None else torch.as_tensor(weights, dtype=dtype, device=device)

        rng = check_random_state(self.random_state)
        activations = settings["activations"]
        self.seeds_ = [int(s) for s in rng.randint(0, 2**31 - 1, size=settings["ensemble"])]
        self.candidates_ = [(a, seed) for a in activations for seed in self.seeds_]
        self.validation_mse_ = self.cv_mse_ = None
        self.best_member_ = 0
        self._validation_mask = None  # (N,) the held-out rows, when rows are held out
        folds = None  # where model is a mean of K networks: the rows each never saw
        head = settings["head"]
        candidates = Candidates(
            lambda seed, activation, box: self._make_model(seed, m, activation, box),
            self.seeds_,
            {"method": settings["method"], "steps": settings["steps"], "lr": settings["lr"],
             "progress": bool(self.progress), "threads": None,  # set by fit
             "lstsq_method": "gcv" if head == "gcv" else "auto"})
        if constant.all():
            model, history = self._constant_model(m, activations[0], settings["method"])
            self.n_iter_ = 0
        elif not held_out:  # one candidate on every row
            model, history = candidates.fit(activations[0], x, z, w, None,
                                            bool(self.progress) and activations[0])[0]
            self.n_iter_ = len(history.loss) - 1
        else:  # candidates trained on most rows, chosen and stopped on the held-out rest
            self._validation_mask = held_out_rows(groups, settings["validation_fraction"], rng)
            choice = choose(candidates, activations, x, z, w, X, self._validation_mask,
                            box=(self.x_lower_, self.x_upper_), scale=scale, head=head,
                            patience=settings["n_iter_no_change"],
                            stop=settings["early_stopping"], rng=rng,
                            progress=bool(self.progress),
                            describe_range=lambda span: f"{span[0] * scale[0] + mean[0]:.4g} "
                                                        f"… {span[1] * scale[0] + mean[0]:.4g}",
                            groups=groups)
            model, history, folds = choice.model, choice.history, choice.held_out
            self.validation_mse_ = (choice.errors * scale**2).mean(axis=1)  # in units of y
            self.cv_mse_ = None if choice.cv_errors is None else \
                (choice.cv_errors * scale**2).mean(axis=1)
            self.best_member_, self.n_iter_ = choice.best, choice.n_iter
            _warn_if_poor(choice.validation_error)
        self.noise_std_, self.head_ridge_, self.head_covariance_ = posterior(
            model, x, z, w, head, scale, self._validation_mask, folds)
        self.feature_importances_ = importances(
            input_relevance(model, x, self.x_lower_, self.x_upper_))
        self.activation_ = model.activation_name
        self.n_networks_ = len(folds) if folds else 1  # model_: n_networks_ × width_ features
        fold_target_scaling_(model, mean, scale)
        check_folded_head(model, Y)
        self.model_ = model.eval()
        self.history_ = history
        return self

    def _checked_data(self, X, y, sample_weight):
        """``X`` ``(N, d)``, ``y`` as ``Y`` ``(N, m)`` and the weights ``(N,)`` (None when
        uniform), all finite float64; rows of weight 0 left out. Sets ``n_features_in_``,
        ``feature_names_in_`` (scikit-learn's validate_data) and ``_target_is_1d``."""
        check_finite("y", as_float_or_none(y))  # before validate_data, whose y message is vague
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64,
                             ensure_all_finite=False)
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        check_finite("X", X)
        check_finite("y", y)
        weights = None
        if sample_weight is not None:
            weights = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                           ensure_non_negative=True)
            if not (weights > 0).any():
                raise ValueError("sample_weight is 0 for every row; at least one row needs a "
                                 "positive weight")
            keep = weights > 0  # a row of weight 0 is a row that is not there
            X, y, weights = X[keep], y[keep], weights[keep]
            if np.all(weights == weights[0]):
                weights = None  # uniform weights fit what no weights fit
        self._target_is_1d = y.ndim == 1
        return X, y.reshape(len(y), -1), weights

    def _constant_model(self, outputs: int, activation: str, method: str
                        ) -> tuple[MLP, History]:
        """Nothing to learn: the head is zero and the bias holds the mean (folded later)."""
        model = self._make_model(self.seeds_[0], outputs, activation)
        with torch.no_grad():
            model.head.weight.zero_()
            model.head.bias.zero_()
        return model, History(loss=[0.0], time=[0.0], method=method,
                              settings={"steps": 0, "reason": "constant targets"})

    def predict(self, X, return_std: bool = False):
        """Predictions ``(n_samples,)`` (or ``(n_samples, n_outputs)`` for 2-D ``y`` at fit).

        With ``return_std=True``, also the predictive standard deviation of a new observation
        at each row, of the same shape: from the Bayesian view of the last layer (the basis Φ
        fixed, the head's Gaussian posterior under its ridge prior: Bayesian linear regression on
        the network's last-layer features, MacKay 1992; Snoek et al. 2015, "DNGO"),

        .. math:: \\operatorname{std}(x)^2 = σ^2 + a(x)^T C\\, a(x),
            \\qquad C = σ^2 (A^T W A + λ I)^{-1}, \\quad a(x) = [Φ(x), 1],

        with λ the head's GCV ridge and σ the noise level (``noise_std_``). The std includes
        the noise (first term) and the head's uncertainty (second: larger where the training
        rows constrain the basis combination less: gaps, edges, outside the training box), not
        the hidden layers' uncertainty, so far outside the data it is optimistic.

        σ² is estimated from the held-out rows: the head solved on the training rows predicts
        held-out row i with error e_i of variance σ² (1 + h_i), h_i = a_iᵀ (AᵀA + λI)⁻¹ a_i, so
        σ² = mean e_i² / (1 + h_i) (the head's uncertainty is not counted twice). That
        estimate is honest whatever the hidden layers learnt, but rests on few rows (40 of
        200: ±11 % in σ). When a one-sided F test does not find the held-out rows worse than
        the training rows' GCV residual ‖r‖² / (N_train − tr H) (the basis has not fitted the
        training rows' noise, as for an untrained basis), the two are pooled, on ν ≈ N − tr H
        degrees of freedom. Both terms carry the factor ν / (ν − 2), the variance of the
        Student-t predictive for σ estimated from ν degrees of freedom.

        Measured (``benchmarks/bench_intervals.py``, 4,000 held-out noisy points, default
        settings, seeds 0-9): the interval ±1.96 std covers 92.5-95.6 % (mean 93.8 %) on
        sin(2πx) + N(0, 0.1²) with 200 rows, and 91.3-95.5 % (mean 93.5 %) on make_friedman1
        (noise 1, 500 rows). The spread is that of σ̂ (coverage moves by 0.23 / √(2ν)): on the
        sine σ̂ equals the noise actually drawn on the training rows to ~2 %, which is itself
        up to 8 % below 0.1 on some seeds; on Friedman 1 the trained basis leaves only the
        100 held-out rows honest (±7 % in σ).
        """
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite=False)
        X = np.asarray(X, dtype=np.float64)
        check_finite("X", X)
        parameter = self.model_.head.weight
        with torch.no_grad():
            x = torch.tensor(X, dtype=parameter.dtype, device=parameter.device)  # (N, d)
            out = self.model_(x).to(device="cpu", dtype=torch.float64).numpy()  # (N, m)
            if return_std:
                if getattr(self, "head_covariance_", None) is None:
                    raise ValueError("this model has no predictive uncertainty (it was saved "
                                     "by an older deepbasis); fit it again for return_std=True")
                A = design_matrix(self.model_.features(x)).to("cpu", torch.float64).numpy()
                cov = np.asarray(self.head_covariance_, dtype=np.float64)  # (m, w + 1, w + 1)
                spread = np.einsum("nk,mkl,nl->nm", A, cov, A)  # (N, m)
                std = np.sqrt(np.maximum(spread, 0.0) + np.asarray(self.noise_std_) ** 2)
        if self._target_is_1d:
            out = out[:, 0]
            if return_std:
                std = std[:, 0]
        return (out, std) if return_std else out

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

    def _make_model(self, seed: int, outputs: int, activation: str,
                    box: tuple[np.ndarray, np.ndarray] | None = None) -> MLP:
        """An initialized network whose input ``box`` (default: the training data's,
        ``x_lower_``, ``x_upper_``) maps onto [0, 1]^d."""
        settings = self._checked_settings()
        lower, upper = (self.x_lower_, self.x_upper_) if box is None else box
        model = MLP(
            len(self.x_lower_), self.width_, settings["depth"], outputs,
            residual=bool(self.residual), activation=activation,
            domain=(lower.tolist(), upper.tolist()),
            dtype=settings["dtype"], device=settings["device"],
        )
        with warnings.catch_warnings():
            if self.init == "box":
                # box_ warns for non-ReLU activations; choosing one here is deliberate (Box
                # features through tanh are a good smooth basis, see the class docstring).
                warnings.filterwarnings("ignore", message="Box initialization is designed")
            initialize_(model, self.init, generator=seed)
        return model

    def _checked_settings(self) -> dict:
        """Validate the settings (at fit time, as scikit-learn requires) and normalize them."""
        def positive_int(name, value, minimum=1):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                    or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
            return int(value)

        settings = {
            "width": "auto" if isinstance(self.width, str) and self.width == "auto"
            else _width(self.width),
            "depth": positive_int("depth", self.depth),
            "steps": positive_int("steps", self.steps, minimum=0),
            "ensemble": positive_int("ensemble", self.ensemble),
            "n_iter_no_change": positive_int("n_iter_no_change", self.n_iter_no_change),
        }
        settings["head"] = check_choice("head", self.head, HEADS)
        if not isinstance(self.early_stopping, (bool, np.bool_)):
            raise ValueError(f"early_stopping must be True or False, got "
                             f"{self.early_stopping!r}")
        settings["early_stopping"] = bool(self.early_stopping)
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
    estimator.n_networks_ = int(fitted.get("n_networks", 1))  # absent from older files: 1
    estimator.width_ = model.width // estimator.n_networks_
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
    estimator.cv_mse_ = None  # not stored: a record of the choice, not needed to predict
    # Added after format 1's first release: absent from older files (return_std then raises).
    history = description.get("history") or {}
    estimator.n_iter_ = int(fitted.get("n_iter", max(len(history.get("loss", [])) - 1, 0)))
    for name in ("noise_std", "head_ridge", "head_covariance", "feature_importances"):
        value = fitted.get(name)
        setattr(estimator, f"{name}_", None if value is None else np.asarray(value,
                                                                             dtype=np.float64))
    estimator.history_ = (None if description.get("history") is None
                          else History.from_dict(description["history"]))
    estimator.extra_ = description.get("extra", {})
    return estimator


def _width(value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"width must be 'auto' or an integer >= 1, got {value!r}")
    return int(value)


def _resolved_width(width: int | str, rows: int) -> int:
    """``width``, or for ``"auto"`` the width of the first ``_AUTO_WIDTH`` entry for ``rows``."""
    if width != "auto":
        return width
    return next(w for limit, w in _AUTO_WIDTH if limit is None or rows <= limit)


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


def _check_enough_rows(distinct: int, held_out: bool) -> None:
    """At least 2 rows to fit, 3 distinct ones when some are held out."""
    needed = 3 if held_out else 2
    if distinct < needed:
        why = (" with held-out validation rows (several candidates or early_stopping=True;"
               " activation='relu', ensemble=1, early_stopping=False needs 2)"
               if held_out else "")
        what = "distinct samples" if held_out else "samples"
        raise ValueError(f"BasisRegressor needs at least {needed} {what} to fit{why}, got "
                         f"n_samples={distinct}")


def _target_scaling(Y: np.ndarray, weights, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted mean and standard deviation of each target column, and which columns are
    constant: those keep scale 1 (fitted as 0 + mean), with a warning."""
    check_target_range(Y, dtype)
    mean, scale = mean_and_std(Y, weights)
    constant = np.all(Y == Y[:1], axis=0)
    for j in np.flatnonzero(constant):
        which = "the target" if Y.shape[1] == 1 else f"target column {j}"
        warnings.warn(
            f"{which} is constant (every value is {float(Y[0, j])!r}); BasisRegressor "
            "fits that constant",
            UserWarning,
            stacklevel=5,  # past _fit, fit and the all-or-nothing wrapper: the caller of fit
        )
    return mean, np.where(constant | (scale == 0), 1.0, scale), constant


def _warn_if_poor(validation_error: np.ndarray) -> None:
    """PoorFitWarning when the kept network's held-out RMSE (per output, standardized) is
    above ``_POOR_FIT`` of the target's standard deviation."""
    ratio = np.sqrt(validation_error)
    poor = np.flatnonzero(ratio > _POOR_FIT)
    if len(poor):
        which = ("the target" if len(ratio) == 1 else
                 "target column(s) " + ", ".join(str(int(j)) for j in poor))
        warnings.warn(
            f"BasisRegressor's error on the held-out rows is {ratio.max():.2f} times the "
            f"standard deviation of {which} (predicting the mean gives about 1.0): the "
            "network explains little of it. The data may be mostly noise, or the "
            "inputs may not determine the target. Try more rows, fewer or more "
            "informative inputs, a smaller network (width=8, depth=2), ensemble=4, or "
            "a linear model or gradient boosting.", PoorFitWarning, stacklevel=5)
