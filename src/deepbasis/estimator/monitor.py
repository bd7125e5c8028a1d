"""The held-out rows of ``BasisRegressor.fit``: which rows, and what training does with them.

:func:`held_out_rows` draws a random share of the distinct rows (identical rows stay on one side
of the split); :class:`HeldOutMonitor` is the training callback that measures every member's
error on those rows, keeps each member's best state and stops it early.
"""

from __future__ import annotations

import math

import numpy as np
import torch

VALIDATE_EVERY = 5  # steps between held-out evaluations (early stopping)
_TOLERANCE = 1e-4  # relative decrease of the held-out error that counts as an improvement
_SIGNIFICANCE = 1.0  # standard errors by which a trained state must beat the untrained one


def row_groups(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Group index of every row, identical (x, y) rows sharing one: ``(N,)`` in 0..G-1.

    The validation split draws groups, not rows, so a repeated row never sits on both sides
    of it, and the split of data with repeated rows equals that of the same data with weights.
    The groups are numbered in sorted order of the rows, independent of the rows' order.
    """
    rows = np.ascontiguousarray(np.concatenate([X, Y], axis=1)) + 0.0  # -0.0 → 0.0
    _, groups = np.unique(rows, axis=0, return_inverse=True)
    return groups.reshape(-1)


def held_out_rows(groups: np.ndarray, fraction: float, rng) -> np.ndarray:
    """Which rows are held out, ``(N,)`` bool: a random ``fraction`` of the row groups (at
    least 1, leaving at least 2 for training), drawn with ``rng`` (a RandomState)."""
    distinct = int(groups.max()) + 1
    order = rng.permutation(distinct)
    n_val = min(max(1, round(fraction * distinct)), distinct - 2)
    in_val = np.zeros(distinct, dtype=bool)
    in_val[order[:n_val]] = True
    return in_val[groups]


def clearly_lower(rows: np.ndarray, other_rows: np.ndarray, w: np.ndarray) -> bool:
    """Whether per-row errors ``rows`` ``(n,)`` beat ``other_rows`` on the same rows (weights
    ``w`` summing to 1) by ``_SIGNIFICANCE`` standard errors of the row-by-row difference."""
    gain = float(w @ (other_rows - rows))
    spread = float(w @ (other_rows - rows - gain) ** 2)  # weighted variance of the gains
    return gain > _SIGNIFICANCE * math.sqrt(spread * float(w @ w))  # × 1/√n_eff


class HeldOutMonitor:
    """Held-out error of every member during training; early stopping and the best state.

    A fit callback: every ``VALIDATE_EVERY`` steps it computes the weighted held-out mean
    squared error of the member (standardized units, per output). A decrease of the mean over
    outputs by more than a relative ``_TOLERANCE`` is an improvement: the member's state (hidden
    layers and the head solved for them) is copied. A trained state must also beat the
    untrained one (step 0) by ``_SIGNIFICANCE`` standard errors of the row-by-row difference:
    on noisy targets a few dozen held-out rows make the minimum of the held-out error an
    optimistic pick, and training that does not clearly beat the initial basis with its GCV
    head has mostly fitted noise. On noise-free targets training beats it by orders of
    magnitude on every row. With ``stop=True`` a member stops when it has not improved for
    ``patience`` steps; :meth:`restore` puts the best state back.
    """

    def __init__(self, x, z, w, patience: int, stop: bool) -> None:
        self.x, self.z, self.w = x, z, w / w.sum()
        self._w64 = self.w.to("cpu", torch.float64)  # for the per-row statistics, once
        self.patience, self.stop = patience, stop
        self.best: dict[int, tuple[float, int, dict, np.ndarray]] = {}
        self.last: dict[int, np.ndarray] = {}
        self.initial: dict[int, tuple[float, np.ndarray]] = {}  # step 0: mean and row errors
        self.curves: dict[int, list[tuple[int, float, float]]] = {}  # (step, error, loss)

    @torch.no_grad()
    def error(self, model) -> np.ndarray:
        return self._errors(model)[0]

    @torch.no_grad()
    def _errors(self, model) -> tuple[np.ndarray, np.ndarray]:
        """Weighted MSE per output ``(m,)`` and squared error per row, mean over outputs."""
        squared = ((model(self.x) - self.z) ** 2).to("cpu", torch.float64)  # (n_val, m)
        return (self._w64 @ squared).numpy(), squared.mean(dim=1).numpy()

    @torch.no_grad()
    def row_errors(self, model) -> np.ndarray:
        """Squared error of ``model`` (its current state) on each held-out row ``(n_val,)``,
        mean over outputs, standardized units."""
        return self._errors(model)[1]

    def _beats_initial(self, key: int, rows: np.ndarray) -> bool:
        initial, initial_rows = self.initial[key]
        if not math.isfinite(initial):
            return True
        return clearly_lower(rows, initial_rows, self._w64.numpy())

    @torch.no_grad()
    def clearly_better(self, challenger, incumbent) -> bool:
        """Whether network ``challenger``'s held-out error (its current state) beats
        ``incumbent``'s by ``_SIGNIFICANCE`` standard errors of the row-by-row difference
        (both finite): a few dozen held-out rows do not tell a 10 % difference from luck."""
        errors, rows = self._errors(challenger)
        other_errors, other_rows = self._errors(incumbent)
        if not math.isfinite(float(errors.mean())):
            return False
        if not math.isfinite(float(other_errors.mean())):
            return True
        return clearly_lower(rows, other_rows, self._w64.numpy())

    def __call__(self, step: int, loss: float, model) -> bool:
        key = id(model)
        record = self.best.get(key)
        if record is not None and step % VALIDATE_EVERY:
            return False
        errors, rows = self._errors(model)
        self.last[key] = errors
        value = float(errors.mean()) if np.isfinite(errors).all() else math.inf
        self.curves.setdefault(key, []).append((step, value, float(loss)))
        if record is None:
            self.initial[key] = (value, rows)
        if record is None or (value < record[0] * (1 - _TOLERANCE)
                              and self._beats_initial(key, rows)):
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.best[key] = (value, step, state, errors)
            return False
        return self.stop and step - record[1] >= self.patience

    def restore(self, model) -> None:
        """Put the best state back (with early stopping) and keep its errors."""
        record = self.best.get(id(model))
        if record is None:
            return
        if self.stop:
            model.load_state_dict(record[2])
        else:  # no early stopping: the final state is kept; measure it
            self.best[id(model)] = (record[0], -1, record[2], self.error(model))

    def final_error(self, model) -> np.ndarray:
        record = self.best.get(id(model))
        return self.error(model) if record is None else record[3]

    def curve(self, model, steps: int) -> np.ndarray:
        """Held-out error (mean over outputs) and training loss of ``model`` at steps 0,
        ``VALIDATE_EVERY``, …, ``steps``: ``(steps // VALIDATE_EVERY + 1, 2)``; after an early
        stop the last measured values carry on."""
        grid = np.arange(0, steps + 1, VALIDATE_EVERY)
        measured = self.curves.get(id(model), [])
        if not measured:
            return np.full((len(grid), 2), math.inf)
        at = np.array([m[0] for m in measured], dtype=float)
        values = np.array([m[1:] for m in measured], dtype=float)  # (measured, 2)
        index = np.searchsorted(at, grid, side="right") - 1  # the last measurement ≤ each step
        return values[np.maximum(index, 0)]

    def best_step(self, model, last: int) -> int:
        record = self.best.get(id(model))
        return last if record is None or record[1] < 0 else record[1]
