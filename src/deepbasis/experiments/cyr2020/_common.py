"""Shared pieces of the Cyr et al. (2020) training experiments (Figs. 3, 5, 7, 9, 10, 11).

Every cell of these experiments is "one configuration, all its seeds": the seeds are trained
together by :func:`deepbasis.fit_ensemble` (one batched computation, identical per member to a
separate :func:`deepbasis.fit`), and each seed gives one record with its (subsampled) loss
curve, the loss of the first least-squares solve, the final and best losses and RMS errors.

Settings keys understood by :func:`build_model` / :func:`train_cell`:

``target`` ('sin2pi', 'u1', 'legendre'), ``points`` (evenly spaced on [0, 1]), ``outputs``
(number of Legendre polynomials; 1 otherwise), ``width``, ``depth``, ``residual``,
``activation``, ``init`` ('he', 'glorot', 'box', …), ``method`` ('lsgd' | 'gd'), ``optimizer``
('adam'), ``lr``, ``steps``, ``dtype`` ('float64').
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...analysis import initial_basis_loss
from ...init import initialize_
from ...nn import MLP
from ...problems import grid, legendre, sin2pi, u1
from ...train import fit_ensemble
from ..plotting import COLORS, log10_band, new_figure, save_figure

#: Longest stored loss curve: long curves keep every k-th step (plus the last) so a record
#: stays a few kB; the figures plot mean ± std of log10 loss, which this does not change.
MAX_CURVE_POINTS = 501

INIT_LABELS = {"he": "He", "glorot": "Glorot", "box": "Box", "orthogonal": "orthogonal",
               "torch_default": "torch default"}


def dtype_of(settings: Mapping[str, Any]) -> torch.dtype:
    return getattr(torch, settings.get("dtype", "float64"))


def data(settings: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Training points ``x (N, 1)`` on [0, 1] and targets ``y (N, m)`` of a cell."""
    x = grid(settings["points"], dtype=dtype_of(settings))  # (N, 1)
    name = settings["target"]
    if name == "sin2pi":
        y = sin2pi(x)  # (N, 1)
    elif name == "u1":
        y = u1(x)  # (N, 1)
    elif name == "legendre":
        y = legendre(x, settings["outputs"])  # (N, m)
    else:
        raise ValueError(f"unknown target {name!r}; valid: 'sin2pi', 'u1', 'legendre'")
    return x, y


def build_model(settings: Mapping[str, Any], seed: int) -> MLP:
    """The cell's network, initialized with ``settings['init']`` from ``seed``.

    The inputs already lie in [0, 1] (no input map needed for Box). Box on tanh networks
    (Fig. 11 uses Box "throughout", with ReLU and tanh) warns that the box invariants are
    those of the pre-activations; that is the paper's setting, so the warning is silenced here.
    """
    model = MLP(1, settings["width"], settings["depth"], settings.get("outputs", 1),
                residual=settings["residual"], activation=settings["activation"],
                dtype=dtype_of(settings))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Box initialization is designed for ReLU")
        initialize_(model, settings["init"], generator=seed)
    return model


def subsample(curve: Sequence[float], max_points: int = MAX_CURVE_POINTS
              ) -> tuple[list[int], list[float]]:
    """Every k-th entry of ``curve`` plus the last, with k the smallest giving ≤ max_points."""
    n = len(curve)
    every = max(1, math.ceil((n - 1) / (max_points - 1))) if n > 1 else 1
    steps = list(range(0, n, every))
    if steps[-1] != n - 1:
        steps.append(n - 1)
    return steps, [float(curve[k]) for k in steps]


@torch.no_grad()
def basis_diagnostics(model: MLP, x: torch.Tensor) -> dict[str, float | int]:
    """Is the basis constant over the input? (Fig. 5: Box at L = 16 'collapses'.)

    ``basis_rank`` counts the singular values of the *centered* features Φ(x) − mean_x Φ above
    max(1e-10, N·ε) × the features' largest magnitude × √N, with ε the machine epsilon of the
    features' dtype (NumPy's ``matrix_rank`` tolerance; in float64 1e-10 is the larger, in
    float32 N·ε, since rounding alone leaves centered float32 features of relative size ~ε):
    0 means every basis function is constant on the data. ``feature_spread`` is the largest
    range max_x Φ_i − min_x Φ_i over the units.
    """
    phi = model.features(x)  # (N, w)
    scale = float(phi.abs().max())
    centered = phi - phi.mean(dim=0, keepdim=True)  # (N, w)
    singular = torch.linalg.svdvals(centered)
    relative = max(1e-10, x.shape[0] * torch.finfo(phi.dtype).eps)
    threshold = relative * max(scale, float(np.finfo(float).tiny)) * math.sqrt(x.shape[0])
    return {
        "basis_rank": int((singular > threshold).sum()),
        "feature_spread": float((phi.amax(dim=0) - phi.amin(dim=0)).max()),
        "feature_max": scale,
    }


def _finite(value: float) -> float | None:
    """JSON-safe float: ``None`` for NaN or inf."""
    return float(value) if math.isfinite(value) else None


@torch.no_grad()
def rms_per_output(model: MLP, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Root-mean-square error of each output of ``model`` on ``(x, y)``."""
    residual = model(x) - y  # (N, m)
    return torch.sqrt((residual**2).mean(dim=0)).tolist()


def train_cell(
    settings: Mapping[str, Any],
    seeds: tuple[int, ...],
    *,
    diagnostics: bool = False,
    metrics: Mapping[str, Callable[[torch.nn.Module], float]] | None = None,
    metric_every: int = 1,
) -> list[dict[str, Any]]:
    """Train every seed of one cell as one batched ensemble; one record per seed.

    Record fields: ``seed``, ``initial_ls_loss`` (MSE after the first head solve on the
    initial basis — for LSGD this is ``loss[0]``), ``loss_steps`` / ``loss`` (subsampled curve,
    ``loss[0]`` before any step), ``final_loss``, ``min_loss``, ``rms`` (RMS error of the final
    model, all outputs pooled) and ``rms_per_output``, ``diverged`` (the loss went non-finite),
    optional ``metrics`` (subsampled curves) and ``metric_min`` (each metric's minimum over
    all its evaluations), and with ``diagnostics`` the initial
    :func:`basis_diagnostics` and ``initial_ls_loss_float32`` (the first LS solve with the
    initial network and data cast to float32).
    """
    x, y = data(settings)
    initial = {}
    for seed in seeds:
        model = build_model(settings, seed)
        entry: dict[str, Any] = {"initial_ls_loss": initial_basis_loss(model, x, y)}
        if diagnostics:
            entry.update(basis_diagnostics(model, x))
            # The paper most likely trained in single precision (TensorFlow's default): the
            # same initial basis evaluated in float32 shows whether a nearly collapsed basis
            # is still usable there.
            entry["initial_ls_loss_float32"] = initial_basis_loss(
                copy.deepcopy(model).float(), x.float(), y.float())
        initial[seed] = entry

    fit_kwargs = dict(method=settings["method"], steps=settings["steps"], lr=settings["lr"],
                      optimizer=settings.get("optimizer", "adam"), progress=False)
    if metrics:
        fit_kwargs.update(metrics=dict(metrics), metric_every=metric_every)
    result = fit_ensemble(lambda seed: build_model(settings, seed), x, y, seeds=list(seeds),
                          **fit_kwargs)

    records = []
    for seed, model, history in zip(seeds, result.models, result.histories, strict=True):
        curve = np.asarray(history.loss, dtype=float)
        finite = curve[np.isfinite(curve)]
        diverged = bool(not np.isfinite(curve).all())
        # A member whose loss went non-finite stops there (fit's contract); pad its curve so
        # every seed of a cell has the same stored steps, and count it as a failed run: no
        # final loss or error, whatever its last finite state was.
        padded = np.full(settings["steps"] + 1, np.nan)
        padded[:len(curve)] = curve
        steps, values = subsample(padded.tolist())
        rms = rms_per_output(model, x, y)
        record: dict[str, Any] = {
            "seed": seed,
            **initial[seed],
            "loss_steps": steps,
            "loss": [_finite(v) for v in values],
            "final_loss": None if diverged else _finite(float(curve[-1])),
            "min_loss": _finite(float(finite.min())) if finite.size else None,
            "steps_run": len(curve) - 1,
            "rms": None if diverged else _finite(math.sqrt(sum(r**2 for r in rms) / len(rms))),
            "rms_per_output": [None if diverged else _finite(r) for r in rms],
            "diverged": diverged,
            "stop_reason": getattr(history, "stop_reason", "steps"),
        }
        if metrics:
            record["metrics"] = {name: [_finite(v) for v in subsample(list(vals))[1]]
                                 for name, vals in history.metrics.items()}
            record["metric_min"] = {  # over every evaluation, not only the stored ones
                name: _finite(float(np.nanmin(vals))) if len(vals) else None
                for name, vals in history.metrics.items()}
        records.append(record)
    return records


def group(records: Sequence[Mapping[str, Any]], *keys: str) -> dict[tuple, list[Mapping]]:
    """Records grouped by the values of ``settings[key]`` for ``keys`` (in record order)."""
    groups: dict[tuple, list[Mapping]] = {}
    for record in records:
        groups.setdefault(tuple(record["settings"][k] for k in keys), []).append(record)
    return groups


def log10_mean(values: Sequence[float | None]) -> float:
    """Mean of log10 over seeds; a missing (diverged) value counts as +inf."""
    if not values or any(v is None for v in values):
        return math.inf
    return float(np.mean(np.log10(np.maximum(np.asarray(values, dtype=float),
                                              np.finfo(float).tiny))))


def curves(records: Sequence[Mapping[str, Any]]) -> tuple[list[int], np.ndarray]:
    """The common subsampled steps and the ``(seeds, points)`` loss curves (NaN if diverged)."""
    steps = records[0]["loss_steps"]
    values = np.array([[np.nan if v is None else v for v in r["loss"]] for r in records],
                      dtype=float)
    return steps, values


def band(ax, records: Sequence[Mapping[str, Any]], *, label: str, color: str,
         linestyle: str = "-") -> None:
    """Mean ± std of log10 loss over the seeds of ``records`` against iterations.

    Like :func:`plotting.log10_band` but tolerant of diverged seeds (their non-finite points
    are left out of that step's statistics) and with a line style.
    """
    steps, values = curves(records)
    if np.isfinite(values).all():
        log10_band(ax, values, label=label, color=color, x=steps)
        if linestyle != "-":
            ax.lines[-1].set_linestyle(linestyle)
        return
    logs = np.log10(np.maximum(values, np.finfo(float).tiny))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns after divergence
        mean, std = np.nanmean(logs, axis=0), np.nanstd(logs, axis=0)
    ax.plot(steps, mean, color=color, label=label, lw=1.4, ls=linestyle)
    ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2, lw=0)


def loss_band_figure(panels: Sequence[tuple[str, Sequence[tuple[str, str, str, list]]]],
                     out: Path, name: str, *, ncols: int | None = None,
                     ylabel: str = "log10 loss (MSE)", sharey: bool = False) -> str:
    """One panel per ``(title, [(label, color, linestyle, records), …])``; save as ``name``."""
    ncols = ncols or len(panels)
    nrows = math.ceil(len(panels) / ncols)
    figure, axes = new_figure(ncols, nrows, width=4.6, height=3.6, sharey=sharey)
    for ax, (title, series) in zip(axes.flat, panels, strict=False):
        for label, color, linestyle, records in series:
            band(ax, records, label=label, color=color, linestyle=linestyle)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        ax.yaxis.set_tick_params(labelleft=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    return save_figure(figure, out, name)


def depth_colors(depths: Sequence[int]) -> dict[int, str]:
    return {d: COLORS[i % len(COLORS)] for i, d in enumerate(depths)}


def fmt(value: float, digits: int = 2) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"
