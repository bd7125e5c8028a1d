r"""Two-stage training: reparameterized parameters first, raw weights second (Milkert et al.).

From "Compelling ReLU Network Initialization and Training to Leverage Exponential Scaling with
Depth" - Milkert, M., Hyde, D. & Laine, F. (spec: specs/compositional-networks.md, "Two-stage
training").

1. **Pretraining** (:func:`pretrain`): the loss is minimized over the reparameterized
   parameters only — for a :class:`~deepbasis.nn.CompositionalNet` the peak logits and the
   log-scales — by gradient descent *through* the construction: the raw weights are a
   differentiable function of the peaks (:meth:`~deepbasis.nn.CompositionalNet.raw_weights`),
   so the network keeps its 2^d pieces whatever the optimizer does.
2. **Fine-tuning**: the constraint is released. The equivalent plain network
   (``model.to_mlp()``) is trained on its raw weights and biases by :func:`deepbasis.fit`
   with a fresh optimizer (``method="gd"``, Adam, as in the paper; LSGD is one argument away).

"No pretraining" is the same call with ``pretrain_steps=0``: the constructed network trained
as raw weights directly.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import torch
from torch import nn

from .._checks import as_2d_inputs, as_2d_targets, check_choice
from .history import History

PRETRAIN_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}


@dataclass
class TwoStageResult:
    """What :func:`fit_two_stage` returns.

    Attributes:
        network: the fine-tuned plain network (``model.to_mlp()`` after stage 2).
        pretrain: the :class:`History` of stage 1 (``None`` when ``pretrain_steps=0``).
        history: the :class:`History` of stage 2 (:func:`deepbasis.fit`'s).
    """

    network: nn.Module
    pretrain: History | None
    history: History

    @property
    def final_loss(self) -> float:
        """The loss after both stages."""
        return self.history.final_loss


def _check_data(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    as_2d_inputs("x", x, 1)
    y = as_2d_targets("y", y, x.shape[0], 1)
    param = next(model.parameters())
    return x.to(param), y.to(param)


def _check_steps_lr(steps: int, lr: float, name: str = "steps") -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {steps!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"Invalid learning rate: {lr!r} (must be a positive number)")


def pretrain(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 1000,
    lr: float = 1e-3,
    optimizer: str = "adam",
    optimizer_options: Mapping[str, Any] | None = None,
) -> History:
    r"""Stage 1: train a reparameterized network's own parameters on the MSE, in place.

    Full-batch gradient descent on :math:`\frac{1}{N}\sum_n (F(x_n) − y_n)^2` over
    ``model.parameters()`` — for a :class:`~deepbasis.nn.CompositionalNet` the peak logits
    θ and log-scales ρ, through the raw weights they determine.

    Construction violations (a ``sum`` or ``t1`` pre-activation below zero, see
    :class:`~deepbasis.nn.CompositionalNet`) are not reported step by step: the number of steps
    with one and the most negative value go into ``history.settings`` (``violation_steps``,
    ``worst_violation``) and one :class:`~deepbasis.nn.ConstructionViolationWarning` is issued
    at the end if there were any.

    Args:
        model: the reparameterized network (any ``nn.Module`` mapping ``(N, 1)`` to ``(N, 1)``).
        x: inputs ``(N, 1)``; y: targets ``(N,)`` or ``(N, 1)``.
        steps: optimizer steps (≥ 0). lr: learning rate (> 0).
        optimizer: ``"adam"`` (the paper's) or ``"sgd"``; ``optimizer_options`` are passed on.

    Returns:
        :class:`History` with ``steps + 1`` losses; ``loss[k]`` is the MSE after k steps.

    Raises:
        FloatingPointError: the loss became non-finite; the model is left at the last finite
            state.

    Examples:
        >>> import torch
        >>> from deepbasis.nn import CompositionalNet
        >>> x = torch.linspace(0, 1, 100, dtype=torch.float64)[:, None]
        >>> net = CompositionalNet(4, sign=-1, dtype=torch.float64)
        >>> history = pretrain(net, x, x**3, steps=20)
        >>> history.loss[-1] < history.loss[0]
        True
    """
    _check_steps_lr(steps, lr)
    check_choice("optimizer", optimizer, PRETRAIN_OPTIMIZERS)
    x, y = _check_data(model, x, y)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = PRETRAIN_OPTIMIZERS[optimizer](params, lr=lr, **dict(optimizer_options or {}))
    tracks = hasattr(model, "last_violation_") and hasattr(model, "on_violation")
    saved_action = model.on_violation if tracks else None
    if tracks:
        model.on_violation = "ignore"  # counted here, reported once below
    tol = getattr(model, "violation_tol", 0.0)
    losses: list[float] = []
    times: list[float] = []
    violation_steps, worst = 0, 0.0
    start = perf_counter()
    last_good = [p.detach().clone() for p in params]
    try:
        for k in range(steps + 1):
            loss = torch.mean((model(x) - y) ** 2)
            value = float(loss.detach())
            losses.append(value)
            times.append(perf_counter() - start)
            if tracks and model.last_violation_ < -tol:
                violation_steps += 1
                worst = min(worst, model.last_violation_)
            if not math.isfinite(value):
                with torch.no_grad():
                    for p, good in zip(params, last_good, strict=True):
                        p.copy_(good)
                raise FloatingPointError(
                    f"pretraining loss became {value} at step {k}; the model holds the state of "
                    f"step {k - 1}. Lower the learning rate (lr={lr})."
                )
            if k == steps:
                break
            with torch.no_grad():
                for p, good in zip(params, last_good, strict=True):
                    good.copy_(p)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    finally:
        if tracks:
            model.on_violation = saved_action
    if violation_steps:
        from ..nn.compositional import ConstructionViolationWarning

        warnings.warn(
            f"pretraining: in {violation_steps} of {steps + 1} steps a ReLU of the construction "
            f"clipped a partial sum (most negative pre-activation {worst:.3g}); the network then "
            f"differs from eq. 3 there. Lower the amplitude s_0 or check the inputs' domain.",
            ConstructionViolationWarning,
            stacklevel=2,
        )
    settings = {"stage": "pretrain", "steps": steps, "lr": lr, "optimizer": optimizer,
                "violation_steps": violation_steps, "worst_violation": worst}
    return History(loss=losses, time=times, method="gd", settings=settings)


def fit_two_stage(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    pretrain_steps: int = 1000,
    steps: int = 1000,
    lr: float = 1e-3,
    pretrain_lr: float | None = None,
    optimizer: str = "adam",
    method: str = "gd",
    progress: bool = False,
    **fit_options: Any,
) -> TwoStageResult:
    r"""Pretrain the reparameterized parameters, then fine-tune the raw weights (two stages).

    Stage 1 is :func:`pretrain` on ``model`` (in place; skipped for ``pretrain_steps=0``,
    the paper's "no pretraining" row). Stage 2 copies the raw weights into a plain network with
    ``model.to_mlp()`` and trains every weight and bias with :func:`deepbasis.fit` and a fresh
    optimizer. The paper uses Adam, lr 1e-3, 1000 epochs per stage (full batch).

    Args:
        model: a reparameterized network with ``to_mlp()``, e.g.
            :class:`~deepbasis.nn.CompositionalNet` (changed in place by stage 1).
        x: inputs ``(N, 1)``; y: targets ``(N,)`` or ``(N, 1)``.
        pretrain_steps: stage-1 steps (0: no pretraining). steps: stage-2 steps.
        lr: stage-2 learning rate; pretrain_lr: stage-1 learning rate (default ``lr``).
        optimizer: for both stages (``"adam"``).
        method: stage 2's :func:`deepbasis.fit` method, ``"gd"`` (the paper) or ``"lsgd"``.
        progress: show stage 2's progress bar.
        **fit_options: passed to :func:`deepbasis.fit` (e.g. ``target_loss``, ``metrics``).

    Returns:
        :class:`TwoStageResult` with the trained plain network and both histories.

    Examples:
        >>> import torch
        >>> from deepbasis.nn import CompositionalNet
        >>> x = torch.linspace(0, 1, 100, dtype=torch.float64)[:, None]
        >>> result = fit_two_stage(CompositionalNet(4, dtype=torch.float64), x, x**3,
        ...                        pretrain_steps=20, steps=20)
        >>> result.network(x).shape
        torch.Size([100, 1])
    """
    from deepbasis.train import fit  # the public entry point, resolved at call time

    to_mlp = getattr(model, "to_mlp", None)
    if not callable(to_mlp):
        raise TypeError(f"fit_two_stage needs a reparameterized network with a to_mlp() "
                        f"method (e.g. deepbasis.nn.CompositionalNet), got "
                        f"{type(model).__name__}")
    _check_steps_lr(pretrain_steps, lr if pretrain_lr is None else pretrain_lr,
                    "pretrain_steps")
    x, y = _check_data(model, x, y)
    history_1 = None
    if pretrain_steps > 0:
        history_1 = pretrain(model, x, y, steps=pretrain_steps,
                             lr=lr if pretrain_lr is None else pretrain_lr, optimizer=optimizer)
    network = to_mlp()  # a fresh, independent plain network
    history_2 = fit(network, x, y, method=method, steps=steps, lr=lr, optimizer=optimizer,
                    progress=progress, **fit_options)
    return TwoStageResult(network=network, pretrain=history_1, history=history_2)
