"""Candidate selection for ``BasisRegressor.fit``: train every candidate, keep the best.

The candidates are E members (seeds) per activation. Each trains on the training rows with the
held-out monitor (early stopping, best state); a candidate whose predictions leave the targets'
range at the training points, between them or across the training box is not kept; of the rest
the one with the lowest held-out error is. With many rows the candidates race on a subset and
only the winner trains on every row. The winner's head is finally re-solved on every row.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..nn.mlp import MLP
from ..train.history import History
from .head import solve_head_, training_data
from .monitor import HeldOutMonitor

_EXPLODE = 3.0  # predictions beyond the target range by this many spans "explode"
RACE_ROWS = 4000  # above this many training rows, candidates race on a subset of this size


class PoorFitWarning(UserWarning):
    """The fitted model explains little of the target, or is not to be trusted between the
    training points (see :meth:`BasisRegressor.fit`)."""


@dataclass
class Candidates:
    """How to build and train the candidates: ``make_model(seed, activation)`` gives an
    initialized network, ``seeds`` are the E member seeds (shared by every activation), and
    ``train`` the keyword arguments of :func:`deepbasis.fit`."""

    make_model: Callable[[int, str], MLP]
    seeds: list[int]
    train: dict

    def fit(self, activation: str, x, z, w, monitor: HeldOutMonitor | None,
            progress: bool | str = False) -> list[tuple[MLP, History]]:
        """Train the E members of one activation on (x, z) (weights w); each left at its
        best held-out state when ``monitor`` restores them (early stopping)."""
        from ..train.ensemble import fit_ensemble
        from ..train.fit import fit

        data = training_data(x, z, w)
        callbacks = () if monitor is None else (monitor,)
        train = {**self.train, "progress": progress}
        if len(self.seeds) == 1:
            seed = self.seeds[0]
            model = self.make_model(seed, activation)
            try:
                history = fit(model, *data, generator=seed, callbacks=callbacks, **train)
            except FloatingPointError as error:
                # fit restored the model to its last finite state: keep that, and say so.
                warnings.warn(f"{error} BasisRegressor keeps that restored model.",
                              RuntimeWarning, stacklevel=5)
                history = error.history
            result = [(model, history)]
        else:
            ensemble = fit_ensemble(lambda seed: self.make_model(seed, activation), *data,
                                    seeds=self.seeds, callbacks=callbacks, **train)
            result = list(zip(ensemble.models, ensemble.histories, strict=True))
        if monitor is not None:
            for model, _ in result:
                monitor.restore(model)
        return result

    def resume(self, model: MLP, x, z, w, monitor: HeldOutMonitor) -> History:
        """Train ``model`` further on (x, z), from its current state (the winner of a race)."""
        from ..train.fit import fit

        try:
            history = fit(model, *training_data(x, z, w), callbacks=(monitor,), **self.train)
        except FloatingPointError as error:
            warnings.warn(f"{error} BasisRegressor keeps that restored model.", RuntimeWarning,
                          stacklevel=5)
            history = error.history
        monitor.restore(model)
        return history


@dataclass
class Choice:
    """The kept candidate: its network (head on every row), history, index, the step whose
    state was kept, every candidate's held-out MSE ``(C, m)`` and the kept one's ``(m,)``
    (standardized units)."""

    model: MLP
    history: History
    best: int
    n_iter: int
    errors: np.ndarray
    validation_error: np.ndarray


def choose(candidates: Candidates, activations: list[str], x, z, w, X: np.ndarray,
           validation_rows: np.ndarray, *, scale: np.ndarray, head: str, patience: int,
           stop: bool, rng, progress: bool,
           describe_range: Callable[[tuple[float, float]], str]) -> Choice:
    """Train every candidate on the rows not in ``validation_rows`` and keep the best on
    those (module docstring): the lowest held-out MSE in units of y (``scale`` ``(m,)``, the
    target's standard deviations), averaged over outputs. ``X`` are the raw inputs (for the
    probe points), ``rng`` a RandomState (the race's subset and the probes)."""
    device, dtype = x.device, x.dtype
    val = torch.as_tensor(np.flatnonzero(validation_rows), device=device)
    tr = torch.as_tensor(np.flatnonzero(~validation_rows), device=device)
    w_tr = None if w is None else w[tr]
    w_val = torch.ones(len(val), dtype=dtype, device=device) if w is None else w[val]
    monitor = HeldOutMonitor(x[val], z[val], w_val, patience, stop)
    # Many rows: the candidates race on a random subset of the training rows, and only
    # the winner goes on to train on all of them (a step costs in proportion to rows).
    race = len(activations) * len(candidates.seeds) > 1 and len(tr) > RACE_ROWS
    rows = tr[torch.as_tensor(np.sort(rng.choice(len(tr), RACE_ROWS, replace=False)),
                              device=device)] if race else tr
    trained = []
    E = len(candidates.seeds)
    for i, activation in enumerate(activations):
        # Each candidate's bar says which it is ("relu 1/2"), so its ETA reads right.
        label = f"{activation}{f' ×{E}' if E > 1 else ''} {i + 1}/{len(activations)}"
        trained += candidates.fit(activation, x[rows], z[rows], None if w is None else w[rows],
                                  monitor, progress and label)
    errors = np.stack([monitor.final_error(one) for one, _ in trained])  # (C, m)
    probes = probe_points(X[~validation_rows], rng, dtype, device)
    low, high = z.amin(dim=0), z.amax(dim=0)
    exploded = [explodes(one, probes, low, high) for one, _ in trained]
    ranking = (errors * scale**2).mean(axis=1)
    ranking = np.where(np.isfinite(ranking), ranking, np.inf)
    if not all(exploded):
        ranking = np.where(exploded, np.inf, ranking)
    else:
        span = (float(z[:, 0].min()), float(z[:, 0].max()))
        warnings.warn(
            "every candidate network predicts values far outside the range of the "
            f"training targets ({describe_range(span)}) between the training points; the "
            "kept one is not to be trusted there. Try a smaller network (width=8, "
            "depth=2), activation='relu', more rows, or head='gcv' if it was off.",
            PoorFitWarning, stacklevel=5)  # choose, _fit, fit, its wrapper: the caller
    best = int(np.argmin(ranking))
    model, history = trained[best]
    n_iter = monitor.best_step(model, len(history.loss) - 1)
    validation_error = errors[best]
    if race:
        raced = copy.deepcopy(model.state_dict())
        final = HeldOutMonitor(x[val], z[val], w_val, patience, stop)
        history = candidates.resume(model, x[tr], z[tr], w_tr, final)
        if explodes(model, probes, low, high) and not exploded[best]:
            model.load_state_dict(raced)  # the raced state was in range: keep it
        else:
            n_iter += final.best_step(model, len(history.loss) - 1)
            validation_error = final.final_error(model)
    # The basis was chosen on held-out rows; its head may now use every row, unless that
    # makes it leave the targets' range where the training rows' head did not.
    kept_head = copy.deepcopy(model.head.state_dict())
    solve_head_(model, x, z, w, head)
    if not exploded[best] and explodes(model, probes, low, high):
        model.head.load_state_dict(kept_head)
    return Choice(model, history, best, n_iter, errors, validation_error)


def probe_points(X: np.ndarray, rng, dtype, device) -> torch.Tensor:
    """Points inside the training data where a trustworthy fit stays in the targets' range:
    the training rows (up to 4000), midpoints of 2000 random pairs of them and, with 1 or 2
    inputs, 2000 points spread over the training box (a grid in 1-D)."""
    n, d = X.shape
    rows = X if n <= 4000 else X[rng.choice(n, 4000, replace=False)]
    i, j = rng.randint(0, n, size=(2, 2000))
    probes = [rows, (X[i] + X[j]) / 2]
    lower, upper = X.min(axis=0), X.max(axis=0)
    if d == 1:
        probes.append(np.linspace(lower, upper, 2000))
    elif d == 2:
        probes.append(lower + (upper - lower) * rng.uniform(size=(2000, d)))
    return torch.as_tensor(np.concatenate(probes), dtype=dtype, device=device)


@torch.no_grad()
def explodes(model: MLP, probes: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> bool:
    """Whether ``model``'s predictions at ``probes`` leave [low, high] (the targets' range,
    per output) by more than ``_EXPLODE`` times its width, or are not finite."""
    prediction = model(probes)  # (P, m)
    span = (high - low).clamp_min(1e-12)
    outside = (prediction < low - _EXPLODE * span) | (prediction > high + _EXPLODE * span)
    return bool(outside.any()) or not bool(torch.isfinite(prediction).all())
