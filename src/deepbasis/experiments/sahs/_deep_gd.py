"""Plain PyTorch training for the sahs dynamics experiments, watched by BreakpointWatch.

The papers train with full-batch GD at learning rates like 5e-5 on what appears to be a summed
squared error (specs/paper-notes.md, Table 3 note); we use ``loss = Σ_n (f(x_n) − y_n)²`` (sum,
no ½) so their learning rates mean the same thing here.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...analysis.watch import BreakpointWatch


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, lr: float, steps: int,
          optimizer: str = "gd", watch: BreakpointWatch | None = None,
          callback=None, rel_tol: float = 0.0) -> list[float]:
    """Full-batch training on the summed squared error; returns the loss of every step.

    Stops early when the relative loss change between steps falls below ``rel_tol`` (the
    papers' "until convergence"; 0: never). ``watch`` and ``callback`` (both
    ``(step, loss, model)``) are called every step; a watch also records the last step.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.SGD(params, lr=lr) if optimizer == "gd"
           else torch.optim.Adam(params, lr=lr))
    losses: list[float] = []
    for step in range(steps + 1):
        opt.zero_grad(set_to_none=True)
        loss = ((model(x) - y) ** 2).sum()
        value = loss.item() if not loss.requires_grad else loss.detach().item()
        losses.append(value)
        if watch is not None:
            watch(step, value, model)
        if callback is not None:
            callback(step, value, model)
        converged = (rel_tol > 0 and step > 0
                     and abs(losses[-2] - value) <= rel_tol * max(value, 1e-300))
        if step == steps or converged or not math.isfinite(value):
            if watch is not None and watch.records and watch.records[-1].step != step:
                watch.record(model, step, value)
            break
        loss.backward()
        opt.step()
    return losses


def gap_targets(name: str, x: torch.Tensor) -> torch.Tensor:
    """The 'smooth' and 'sharp' data-gap targets (2020 Fig. 8 / 2022 Fig. 11). The papers show
    them only as plots; our choice: smooth = tanh(2x), sharp = sign(x) (a jump inside the gap
    [−0.5, 0.5], where there are no data)."""
    if name == "smooth":
        return torch.tanh(2 * x)
    if name == "sharp":
        return torch.sign(x)
    raise ValueError(f"unknown gap target {name!r}; valid choices are 'smooth', 'sharp'")


def gap_data(spacing: float, dtype=torch.float64) -> torch.Tensor:
    """Inputs every ``spacing`` on [−3, 3] without the gap (−0.5, 0.5), as ``(N, 1)``."""
    n = round(6 / spacing) + 1
    x = torch.linspace(-3, 3, n, dtype=dtype)
    return x[(x <= -0.5) | (x >= 0.5)][:, None]
