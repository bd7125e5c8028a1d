"""What ``BasisRegressor.fit`` does to the data before training, and undoes after it.

Inputs are mapped from their training range onto the unit box [0, 1]^d (where Box
initialization expects them, Cyr et al. 2020 §4): the map is part of the network
(:class:`deepbasis.MLP` with ``domain=``). Targets are standardized, and after training the
standardization is folded into the linear head. Both maps are checked to be representable in
the model's dtype, and every input is checked to be finite, with messages that name the value.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from ..nn.mlp import MLP


def as_float_or_none(values) -> np.ndarray | None:
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


def check_finite(name: str, array: np.ndarray | None) -> None:
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


def input_box(X: np.ndarray, dtype: torch.dtype) -> tuple[np.ndarray, np.ndarray]:
    """The box ``(lower, upper)`` mapped onto [0, 1]^d: each column's training range. A
    constant column gets a unit-width box centred on its value, so it maps to 0.5 instead of
    dividing by zero."""
    lower, upper = X.min(axis=0), X.max(axis=0)
    check_input_range(lower, upper, dtype)
    flat = upper - lower <= 1e-12 * np.maximum(1.0, np.abs(upper))
    return np.where(flat, lower - 0.5, lower), np.where(flat, upper + 0.5, upper)


# Below this magnitude the sums and squares of mean and std cannot overflow float64 (N·y² ≤
# 1e8 · 1e300), and the plain formulas are used, so ordinary data are scaled exactly as always.
_SAFE_TARGET = 1e146


def mean_and_std(Y: np.ndarray, weights: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations of ``Y`` (N, m), weighted by ``weights`` (N,),
    that do not overflow for finite targets near the float64 limit: those are computed on
    ``Y / max|Y|`` and scaled back."""
    peak = np.abs(Y).max(axis=0)  # (m,)
    big = (peak > _SAFE_TARGET).any()
    peak = np.where(peak > 0, peak, 1.0) if big else np.ones_like(peak)
    unit = Y / peak if big else Y  # |unit| ≤ 1 when big
    mean = np.average(unit, axis=0, weights=weights)
    std = np.sqrt(np.average((unit - mean) ** 2, axis=0, weights=weights))
    return mean * peak, std * peak


def standardized(Y: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(Y − mean) / scale, without forming Y − mean when that could overflow."""
    if not (np.abs(Y).max(axis=0) > _SAFE_TARGET).any():
        return (Y - mean) / scale
    return Y / scale - mean / scale  # both terms are O(N) at most


def check_input_range(lower: np.ndarray, upper: np.ndarray, dtype: torch.dtype) -> None:
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


def check_target_range(Y: np.ndarray, dtype: torch.dtype) -> None:
    """Before training: targets whose scale the output layer could not hold are an error."""
    if Y.size and float(np.abs(Y).max()) > torch.finfo(dtype).max / _TARGET_HEADROOM:
        _target_range_error(Y, dtype)


def check_folded_head(model: MLP, Y: np.ndarray) -> None:
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
def fold_target_scaling_(model: MLP, mean: np.ndarray, scale: np.ndarray) -> MLP:
    """y = mean + scale ⊙ (W Φ + b)  ⇒  head ← (diag(scale) W, scale ⊙ b + mean)."""
    head = model.head
    s = torch.as_tensor(scale, dtype=head.weight.dtype, device=head.weight.device)  # (m,)
    mu = torch.as_tensor(mean, dtype=head.weight.dtype, device=head.weight.device)  # (m,)
    head.weight.mul_(s[:, None])
    head.bias.mul_(s).add_(mu)
    return model
