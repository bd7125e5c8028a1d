"""What the milkert experiments share: targets, the rows of Table 1, training one model.

Settings (spec, "Experimental setup"): 500 evenly spaced points of [0, 1], MSE, width 4 and
5 hidden layers, Adam with learning rate 1e-3, 1000 full-batch epochs — per stage for the
two-stage rows (our reading; the paper says 1000 epochs). Choices, stated once here:

- targets: x³ and x¹¹ (σ = −1), sin(πx/2) and tanh(3x)/tanh(3) (σ = +1). We divide tanh(3x)
  by tanh(3) so that all four pass through (0, 0) and (1, 1) like the construction
  (F(0) = 0, F(1) = 1 for any peaks); the paper names "tanh(3x)" without saying how it maps
  [0, 1] to [0, 1].
- starting peaks U(0.3, 0.7) and s_0 = ¼ (capped so that F ≥ 0 when σ = −1), drawn from the
  seed, shared by the three compositional rows (:func:`deepbasis.init.compositional_peaks_`).
- collapse ("dying ReLU"): the trained network's output varies by less than 1e-8 over the data.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ...init import box_, compositional_peaks_, raai_, torch_default_
from ...nn import MLP, CompositionalNet
from ...problems import grid
from ...train import fit, fit_two_stage

TARGETS: dict[str, tuple[str, int, Callable[[torch.Tensor], torch.Tensor]]] = {
    "x3": ("x³", -1, lambda x: x**3),
    "x11": ("x¹¹", -1, lambda x: x**11),
    "tanh3": ("tanh(3x)/tanh(3)", 1, lambda x: torch.tanh(3 * x) / math.tanh(3.0)),
    "sin": ("sin(πx/2)", 1, lambda x: torch.sin(0.5 * math.pi * x)),
}

#: The rows of Table 1 in the paper's order, then ours beyond the paper.
ROWS = ["default", "raai", "no_pretraining", "not_enforced", "enforced", "box_lsgd"]
ROW_NAMES = {
    "default": "Default network",
    "raai": "RAAI distribution",
    "no_pretraining": "No pretraining",
    "not_enforced": "Differentiability not enforced",
    "enforced": "Differentiability enforced",
    "box_lsgd": "Box + LSGD (ours, beyond the paper)",
}

#: Table 1 of the published version (spec): row -> target -> (min MSE, mean MSE).
PAPER = {
    "default": {"x3": (2.11e-5, 7.20e-2), "x11": (2.19e-5, 2.82e-2)},
    "raai": {"x3": (2.14e-5, 3.97e-2), "x11": (4.40e-5, 4.12e-2)},
    "no_pretraining": {"x3": (7.63e-7, 3.89e-5), "x11": (1.86e-5, 3.56e-4)},
    "not_enforced": {"x3": (1.64e-7, 1.02e-5), "x11": (3.20e-6, 3.73e-5)},
    "enforced": {"x3": (7.86e-8, 5.27e-7), "x11": (8.86e-7, 7.87e-6)},
}

COLLAPSE_RANGE = 1e-8

SETUP = {"points": 500, "width": 4, "depth": 5, "lr": 1e-3, "optimizer": "adam",
         "peak_low": 0.3, "peak_high": 0.7, "scale0": 0.25, "dtype": "float64",
         "box_lsgd_lr": 5e-3}


def data(settings: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Inputs (N, 1), targets (N, 1) and σ of the target named in ``settings``."""
    x = grid(settings["points"], dtype=getattr(torch, settings["dtype"]))
    _, sign, function = TARGETS[settings["target"]]
    return x, function(x), sign


def compositional(settings: Mapping[str, Any], seed: int, scales: str) -> CompositionalNet:
    """The constructed network of one seed (the same peaks for every scale mode)."""
    _, sign, _ = TARGETS[settings["target"]]
    net = CompositionalNet(settings["depth"], sign=sign, scales=scales,
                           dtype=getattr(torch, settings["dtype"]))
    return compositional_peaks_(net, settings["peak_low"], settings["peak_high"],
                                scale0=settings["scale0"], generator=seed)


def plain(settings: Mapping[str, Any], seed: int, init: str) -> MLP:
    model = MLP(1, settings["width"], settings["depth"], dtype=getattr(torch, settings["dtype"]))
    initializer = {"default": torch_default_, "raai": raai_, "box": box_}[init]
    return initializer(model, generator=seed)


def collapsed(model: torch.nn.Module, x: torch.Tensor) -> bool:
    """Whether ``model`` outputs a constant on the data (a dead ReLU network)."""
    with torch.no_grad():
        out = model(x)
    return bool(float(out.max() - out.min()) < COLLAPSE_RANGE)


def train(settings: Mapping[str, Any], seed: int,
          on_stage: Callable[[str, torch.nn.Module], dict] | None = None) -> dict[str, Any]:
    """Train one model of ``settings["row"]``; return its record (without the seed).

    ``on_stage(stage, network)`` is called with ``"init"``, ``"pretrained"`` (two-stage rows)
    and ``"trained"``; the dicts it returns are merged into the record under those names.
    """
    x, y, _ = data(settings)
    row, steps, lr = settings["row"], settings["steps"], settings["lr"]
    extra: dict[str, Any] = {}
    start = time.perf_counter()
    record: dict[str, Any] = {}
    if row in ("default", "raai", "box_lsgd"):
        model = plain(settings, seed, "box" if row == "box_lsgd" else row)
        if on_stage:
            extra["init"] = on_stage("init", model)
        if row == "box_lsgd":  # same architecture and parameter count, both stages' steps
            history = fit(model, x, y, method="lsgd", steps=2 * steps,
                          lr=settings["box_lsgd_lr"], progress=False)
        else:
            history = fit(model, x, y, method="gd", steps=steps, lr=lr, progress=False)
        network = model
        record.update(mse=history.final_loss, initial_mse=history.loss[0])
    else:
        net = compositional(settings, seed, "free" if row == "not_enforced" else "enforced")
        if on_stage:
            extra["init"] = on_stage("init", net.to_mlp())
        pretrain_steps = 0 if row == "no_pretraining" else steps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # violations are counted into the record
            result = fit_two_stage(net, x, y, pretrain_steps=pretrain_steps, steps=steps,
                                   lr=lr, optimizer=settings["optimizer"])
        network = result.network
        if result.pretrain is not None:
            record.update(pretrain_mse=result.pretrain.final_loss,
                          violation_steps=result.pretrain.settings["violation_steps"],
                          worst_violation=result.pretrain.settings["worst_violation"],
                          peaks=[round(float(a), 6) for a in net.peaks().detach()])
            if on_stage:
                extra["pretrained"] = on_stage("pretrained", net.to_mlp())
        record.update(mse=result.final_loss, initial_mse=result.history.loss[0]
                      if result.pretrain is None else result.pretrain.loss[0])
    if on_stage:
        extra["trained"] = on_stage("trained", network)
    record.update(collapsed=collapsed(network, x), seconds=time.perf_counter() - start, **extra)
    return record
