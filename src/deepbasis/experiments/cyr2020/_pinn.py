"""Transport-PINN training shared by ``cyr2020.fig12``, ``cyr2020.fig13`` and ``cyr2020.appE``.

:func:`build_model` and :func:`train` take settings with keys ``velocity``, ``n`` (grid points per
side), ``epsilon``, ``width``, ``depth``, ``residual``, ``activation``, ``init``, ``dtype``,
``method``, ``steps``, ``lr``, ``optimizer`` and ``error_grid`` (points per side of the grid the
error is measured on). :data:`PAPER_SETTINGS` are Fig. 12's (Cyr et al. 2020, §5.3).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ...init import initialize_
from ...nn import MLP
from ...problems.transport import exact_solution, grid_points, solution_errors, transport_problem
from ._common import MAX_CURVE_POINTS
from ._common import subsample as _subsample

PAPER_SETTINGS = {"velocity": "constant", "n": 101, "epsilon": 1.0, "width": 32, "depth": 1,
          "residual": True, "activation": "relu", "init": "box", "optimizer": "adam",
          "lr": 0.005, "dtype": "float64", "error_grid": 201, "gd_steps": 5000,
          "lsgd_steps": 500}

MODEL_KEYS = ("width", "depth", "residual", "activation", "init", "dtype")


def dtype_of(settings: Mapping[str, Any]) -> torch.dtype:
    return getattr(torch, settings.get("dtype", "float64"))


def build_model(settings: Mapping[str, Any], seed: int) -> MLP:
    """The cell's ResNet on (x, t) ∈ [0, 1]², initialized by ``settings['init']`` from ``seed``.

    The domain map is the identity on [0, 1]² (kept explicit so the cut planes of App. E are
    well defined in the user's coordinates). Box initialization of a tanh network (Fig. 13 uses
    Box with tanh) warns that the box invariants hold for the pre-activations; that is the
    paper's setting, so the warning is silenced here.
    """
    model = MLP(2, settings["width"], settings["depth"], residual=settings["residual"],
                activation=settings["activation"], domain=(0.0, 1.0), dtype=dtype_of(settings))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Box initialization is designed for ReLU")
        initialize_(model, settings["init"], generator=seed)
    return model


def problem_of(settings: Mapping[str, Any]):
    return transport_problem(settings["velocity"], n=settings["n"],
                             epsilon=float(settings["epsilon"]), dtype=dtype_of(settings))


def subsample(curve: Sequence[float], max_points: int = MAX_CURVE_POINTS
              ) -> tuple[list[int], list[float | None]]:
    """The shared curve subsampling, with non-finite values stored as None (valid JSON)."""
    steps, values = _subsample(curve, max_points)
    return steps, [_finite(v) for v in values]


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def parameters_of(model: MLP) -> dict[str, list]:
    """The model's parameters as JSON-able nested lists (to redraw solutions in reports)."""
    return {name: p.detach().cpu().tolist() for name, p in model.named_parameters()}


def model_from(settings: Mapping[str, Any], parameters: Mapping[str, list]) -> MLP:
    """Rebuild a trained model from :func:`parameters_of` output."""
    model = build_model({**settings, "init": "torch_default"}, 0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.tensor(parameters[name], dtype=p.dtype))
    return model


def train(settings: Mapping[str, Any], seeds: Sequence[int], *, keep_parameters: bool = False,
          callbacks_for: Callable[[int], Sequence[Any]] | None = None) -> list[dict[str, Any]]:
    """Train one model per seed with :func:`deepbasis.fit`; one record per seed.

    Each seed is its own run, so a record does not depend on which seeds share its cell. (We
    measured :func:`deepbasis.fit_ensemble` on Fig. 12's problem — 3 members, 10,403 rows,
    width 32 — at 1.0–2.3× the time of three separate fits on this CPU: the rows are large
    enough that batching saves nothing.) ``callbacks_for(seed)`` gives that run's callbacks.

    Record fields: ``seed``, ``loss_steps`` / ``loss`` (subsampled curve; ``loss[0]`` is before
    any step, for LSGD after the first LS solve), ``final_loss``, ``min_loss``, ``term_losses``
    (εJ1, J2, J3 of the final model), ``relative_l2`` and ``rms`` (final model against the
    exact solution on the ``error_grid``), ``diverged`` (the loss went non-finite; the model is
    then at its last finite state and the curve is padded with NaN), and with
    ``keep_parameters`` the final ``parameters``.
    """
    from ...train import fit  # late import: keeps importing the registry light

    problem = problem_of(settings)
    options = dict(method=settings["method"], steps=settings["steps"], lr=settings["lr"],
                   optimizer=settings["optimizer"], progress=False)
    trained: list[tuple[int, torch.nn.Module, list[float]]] = []
    for seed in seeds:
        model = build_model(settings, seed)
        callbacks = tuple(callbacks_for(seed)) if callbacks_for is not None else ()
        try:
            history = fit(model, problem, callbacks=callbacks, **options)
            curve = [float(v) for v in history.loss]
        except FloatingPointError as error:  # the model is left at its last finite state
            partial = getattr(error, "history", None)
            curve = [float(v) for v in partial.loss] if partial is not None else [math.nan]
        trained.append((seed, model, curve))

    records = []
    for seed, model, curve in trained:
        diverged = not all(math.isfinite(v) for v in curve)
        # a run that stopped early (non-finite loss) is padded so every seed's curve aligns
        curve = curve + [math.nan] * (settings["steps"] + 1 - len(curve))
        finite = [v for v in curve if math.isfinite(v)]
        steps, values = subsample(curve)
        errors = solution_errors(model, settings["velocity"], n=settings["error_grid"])
        record: dict[str, Any] = {
            "seed": seed,
            "loss_steps": steps,
            "loss": values,
            "final_loss": _finite(curve[-1]),
            "min_loss": min(finite) if finite else None,
            "term_losses": problem.term_losses(model),
            "relative_l2": _finite(errors["relative_l2"]),
            "rms": _finite(errors["rms"]),
            "diverged": diverged,
        }
        if keep_parameters:
            record["parameters"] = parameters_of(model)
        records.append(record)
    return records


def solution_on_grid(settings: Mapping[str, Any], parameters: Mapping[str, list], n: int = 101
                     ) -> np.ndarray:
    """The trained network on an n × n grid, as an ``(n_t, n_x)`` array (t rows, x columns)."""
    model = model_from(settings, parameters)
    with torch.no_grad():
        u = model(grid_points(n, dtype=dtype_of(settings)))[:, 0]
    return u.reshape(n, n).cpu().numpy()


def exact_on_grid(velocity: str, n: int = 101) -> np.ndarray:
    return exact_solution(grid_points(n), velocity).reshape(n, n).numpy()
