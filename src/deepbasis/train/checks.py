"""Input checks shared by :func:`deepbasis.fit` and :func:`deepbasis.fit_ensemble` (once, at the
entry point, before any work), and the settings they record in the history."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .._checks import as_2d_targets, check_choice
from .lstsq import HEAD_METHODS, head_of
from .optim import OPTIMIZERS
from .problem import Problem, Regression

METHODS = ("lsgd", "gd", "lm")


def check_settings(*, method, steps, lr, optimizer, generator, callbacks, target_loss,
                   lstsq_method, rcond, ridge, metrics, metric_every, check_every,
                   optimizer_options) -> dict[str, Any]:
    check_choice("method", method, METHODS)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_choice("lstsq_method", lstsq_method, HEAD_METHODS)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) \
            or lr <= 0:
        raise ValueError(f"Invalid learning rate: {lr!r}; lr must be a finite number > 0 "
                         "(the paper uses 5e-3 for LSGD and 5e-4 for GD)")
    if target_loss is not None and (isinstance(target_loss, bool)
                                    or not isinstance(target_loss, (int, float))
                                    or math.isnan(target_loss)):
        raise ValueError(f"target_loss must be a number or None, got {target_loss!r}")
    if rcond is not None and not (isinstance(rcond, (int, float)) and rcond >= 0):
        raise ValueError(f"rcond must be None or a number >= 0, got {rcond!r}")
    if not (isinstance(ridge, (int, float)) and ridge >= 0):
        raise ValueError(f"ridge must be a number >= 0, got {ridge!r}")
    if lstsq_method == "ridge" and not ridge > 0:
        raise ValueError(f"lstsq_method='ridge' needs ridge > 0, got ridge={ridge!r}")
    for name, value in (("metric_every", metric_every), ("check_every", check_every)):
        if value is None and name == "check_every":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if generator is not None and (isinstance(generator, bool)
                                  or not isinstance(generator, (int, torch.Generator))):
        raise TypeError(f"generator must be None, an int seed or a torch.Generator, got "
                        f"{generator!r}")
    if callable(callbacks) or not all(callable(c) for c in callbacks):
        raise TypeError("callbacks must be a sequence of callables callback(step, loss, model); "
                        f"got {callbacks!r} (wrap a single callback in a tuple)")
    if metrics is not None:
        if not isinstance(metrics, Mapping) or not all(
                isinstance(k, str) and callable(f) for k, f in metrics.items()):
            raise TypeError("metrics must be a dict of name -> callable(model) -> float, got "
                            f"{metrics!r}")
    if optimizer_options is not None and not isinstance(optimizer_options, Mapping):
        raise TypeError(f"optimizer_options must be a dict, got {optimizer_options!r}")
    return {
        "method": method, "steps": steps, "lr": float(lr), "optimizer": optimizer,
        "optimizer_options": {k: _jsonable(v) for k, v in (optimizer_options or {}).items()},
        "target_loss": None if target_loss is None else float(target_loss),
        "lstsq_method": lstsq_method, "rcond": rcond, "ridge": float(ridge),
        "metrics": sorted(metrics or {}), "metric_every": metric_every,
    }


def _jsonable(value):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return repr(value)


def check_model_finite(model: nn.Module) -> None:
    for name, p in model.named_parameters():
        if p.is_floating_point() and not bool(torch.isfinite(p).all()):
            raise ValueError(f"parameter {name!r} of the model has NaN or inf entries; "
                             "re-initialize the model before fitting")


def as_problem(model: nn.Module, x, y) -> Problem:
    """``Regression(x, y)`` on the model's dtype and device, or the problem ``x``; validated."""
    head = head_of(model)
    if isinstance(x, torch.Tensor):
        if y is None:
            raise ValueError("fit(model, x, y) needs the targets y; or pass a problem "
                             "fit(model, problem)")
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
        factory = {"dtype": head.weight.dtype, "device": head.weight.device}
        if x.ndim == 2 and y.ndim in (1, 2):
            # Shapes first, so a mismatch is reported as such and not as a dtype problem.
            as_2d_targets("y", y, x.shape[0], head.out_features)
        problem = Regression(x.to(**factory), y.to(**factory))
    else:
        if y is not None:
            raise ValueError("pass either fit(model, x, y) or fit(model, problem), not a problem "
                             "and y")
        if not (callable(getattr(x, "rows", None)) and callable(getattr(x, "validate", None))):
            raise TypeError(f"x must be a tensor of inputs or a problem with rows(model) and "
                            f"validate(model), got {type(x).__name__}")
        problem = x
    problem.validate(model)
    return problem


def model_settings(model: nn.Module, head: nn.Linear, problem) -> dict[str, Any]:
    n_params = sum(p.numel() for p in model.parameters())
    settings: dict[str, Any] = {
        "model": type(model).__name__,
        "width": head.in_features,
        "outputs": head.out_features,
        "parameters": n_params,
        "dtype": str(head.weight.dtype).removeprefix("torch."),
        "device": str(head.weight.device),
        "problem": type(problem).__name__,
    }
    for attr in ("depth", "residual", "activation_name", "in_features"):
        if hasattr(model, attr):
            settings[attr] = getattr(model, attr)
    x = getattr(problem, "x", None)
    if isinstance(x, torch.Tensor):
        settings["points"] = int(x.shape[0])
    return settings
