r"""Cut planes of a ReLU PINN during training, GD beside LSGD (Cyr et al. 2020, Appendix E).

The constant-velocity transport PINN of Fig. 12 (a = 1, width 32, depth 1, Box, ReLU, Adam lr
0.005, float64) is trained by GD and by LSGD from the *same* initialization (same seed). At a
few steps of each run we draw the network's solution over (x, t) ∈ [0, 1]² with the cut planes
of its ReLU units superimposed as dashed red lines: unit i of the first layer switches on across
the line :math:`W_i · \hat{x} + b_i = 0`, where :math:`\hat{x} = (x − \text{lower}) /
(\text{upper} − \text{lower})` is the model's normalized input, mapped back to (x, t). The
characteristics through the tent's kinks, x − t ∈ {0.1, 0.3, 0.5}, are drawn as thin white
dotted lines: the exact solution needs three cut planes on them, and the paper's observation is
that LSGD's cut planes find them far sooner than GD's. Figure only (no claim); the report adds a
table of how far each characteristic is from the nearest cut plane at every snapshot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...nn import MLP
from ...problems.transport import TENT_HALF_WIDTH, TENT_PEAK
from ...runner import Cell, Experiment, Report
from ..plotting import markdown_table, new_figure, save_figure
from ._pinn import PAPER_SETTINGS, model_from, parameters_of, solution_on_grid, train

KINKS = (TENT_PEAK - TENT_HALF_WIDTH, TENT_PEAK, TENT_PEAK + TENT_HALF_WIDTH)

PROFILES = {
    "quick": {**PAPER_SETTINGS, "n": 21, "width": 8, "gd_snapshots": [0, 10, 40],
              "lsgd_snapshots": [0, 5, 20], "error_grid": 41, "seed": 0},
    "default": {**PAPER_SETTINGS, "gd_snapshots": [0, 100, 1000, 5000],
                "lsgd_snapshots": [0, 10, 100, 500], "seed": 0},
    "paper": {**PAPER_SETTINGS, "gd_snapshots": [0, 100, 500, 1000, 2500, 5000],
              "lsgd_snapshots": [0, 10, 25, 50, 100, 500], "seed": 0},
}


def cut_lines(model: MLP) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    r"""The first-layer cut planes of a 2-input network, clipped to its domain box.

    Unit i switches on across :math:`W_i · \hat{x} + b_i = 0`; with :math:`\hat{x}_j = (x_j −
    l_j) / (u_j − l_j)` that is :math:`\sum_j \frac{W_{ij}}{u_j − l_j} x_j + b_i − \sum_j
    \frac{W_{ij} l_j}{u_j − l_j} = 0` in the user's coordinates. Returns one segment
    ``((x0, t0), (x1, t1))`` per unit whose line crosses the box (others are omitted).
    """
    lower, upper = ((0.0, 0.0), (1.0, 1.0)) if model.domain is None else model.domain
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    weight = model.layers[0].weight.detach().cpu().double().numpy() / (upper - lower)  # (w, 2)
    bias = model.layers[0].bias.detach().cpu().double().numpy() - weight @ lower  # (w,)
    segments = []
    for (a, b), c in zip(weight, bias, strict=True):  # a x + b t + c = 0
        points = []
        if abs(b) > 1e-14:  # crossings with the vertical edges x = lower, upper
            for x in (lower[0], upper[0]):
                t = -(a * x + c) / b
                if lower[1] - 1e-12 <= t <= upper[1] + 1e-12:
                    points.append((x, t))
        if abs(a) > 1e-14:  # crossings with the horizontal edges t = lower, upper
            for t in (lower[1], upper[1]):
                x = -(b * t + c) / a
                if lower[0] - 1e-12 <= x <= upper[0] + 1e-12:
                    points.append((x, t))
        unique = []
        for p in points:
            if all(math.dist(p, q) > 1e-9 for q in unique):
                unique.append(p)
        if len(unique) >= 2:
            p, q = max(((p, q) for p in unique for q in unique), key=lambda pq: math.dist(*pq))
            segments.append((tuple(map(float, p)), tuple(map(float, q))))
    return segments


def characteristic_distance(model: MLP, kink: float, samples: int = 101) -> float:
    """How far the characteristic x − t = kink is from the nearest first-layer cut plane.

    The largest vertical-free distance (maximum over ``samples`` points of the characteristic
    inside [0, 1]², of the distance to the unit's line), minimized over units: 0 when a cut plane
    lies exactly on the characteristic.
    """
    lower, upper = ((0.0, 0.0), (1.0, 1.0)) if model.domain is None else model.domain
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    weight = model.layers[0].weight.detach().cpu().double().numpy() / (upper - lower)
    bias = model.layers[0].bias.detach().cpu().double().numpy() - weight @ lower
    t = np.linspace(0.0, max(0.0, 1.0 - kink), samples)  # the part of x = kink + t in the box
    points = np.stack([kink + t, t], axis=1)  # (S, 2)
    norms = np.linalg.norm(weight, axis=1)  # (w,)
    dist = np.abs(points @ weight.T + bias) / np.maximum(norms, 1e-300)  # (S, w)
    return float(dist.max(axis=0).min())


def cells(params: Mapping[str, Any]) -> list[Cell]:
    base = {k: params[k] for k in ("velocity", "n", "epsilon", "width", "depth", "residual",
                                   "activation", "init", "optimizer", "lr", "dtype",
                                   "error_grid")}
    return [Cell({**base, "method": method, "steps": max(params[f"{method}_snapshots"]),
                  "snapshots": sorted(params[f"{method}_snapshots"])}, (params["seed"],))
            for method in ("gd", "lsgd")]


class _Snapshots:
    """A :func:`deepbasis.fit` callback that keeps the parameters at chosen steps."""

    def __init__(self, steps: Sequence[int]) -> None:
        self.steps = set(steps)
        self.taken: dict[int, dict[str, list]] = {}

    def __call__(self, step: int, loss: float, model: torch.nn.Module) -> None:
        # called by fit after step `step`'s loss is known, before its update (for LSGD the
        # head already holds that step's least-squares solution)
        if step in self.steps:
            self.taken[step] = parameters_of(model)


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    train_settings = {k: v for k, v in settings.items() if k != "snapshots"}
    snapshots = {seed: _Snapshots(settings["snapshots"]) for seed in seeds}
    records = train(train_settings, seeds, keep_parameters=True,
                    callbacks_for=lambda seed: [snapshots[seed]])
    for record in records:
        taken = snapshots[record["seed"]].taken
        taken.setdefault(settings["steps"], record["parameters"])  # the fitted final model
        record["snapshots"] = {str(step): taken[step] for step in sorted(taken)}
    return records


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    by = {r["settings"]["method"]: r for r in records}
    gd, lsgd = by["gd"], by["lsgd"]
    rows_n = max(len(gd["snapshots"]), len(lsgd["snapshots"]))
    figure, axes = new_figure(2, rows_n, width=3.6, height=3.2)
    table = []
    for col, (name, record) in enumerate((("GD", gd), ("LSGD", lsgd))):
        loss = dict(zip(record["loss_steps"], record["loss"], strict=True))
        for row, (step, parameters) in enumerate(sorted(record["snapshots"].items(),
                                                        key=lambda kv: int(kv[0]))):
            ax = axes[row, col]
            settings = record["settings"]
            model = model_from(settings, parameters)
            u = solution_on_grid(settings, parameters, 101)
            ax.imshow(u, origin="lower", extent=(0, 1, 0, 1), vmin=-0.1, vmax=1.1,
                      cmap="viridis", aspect="auto")
            for kink in KINKS:
                ax.plot([kink, 1.0], [0.0, 1.0 - kink], color="white", ls=":", lw=0.9)
            for p, q in cut_lines(model):
                ax.plot([p[0], q[0]], [p[1], q[1]], color="red", ls="--", lw=0.8)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            value = loss.get(int(step))
            ax.set_title(f"{name}, step i = {step}" + (f", loss {value:.2g}" if value is not None
                                                       else ""), fontsize=9)
            ax.set_xlabel("x", fontsize=8)
            ax.set_ylabel("t", fontsize=8)
            distances = [characteristic_distance(model, k) for k in KINKS]
            table.append([name, step, _fmt(value), *(f"{d:.2e}" for d in distances)])
    for col, record in enumerate((gd, lsgd)):
        for row in range(len(record["snapshots"]), rows_n):
            axes[row, col].set_visible(False)
    figure.suptitle("Transport PINN, a = 1: solution, ReLU cut planes (red dashed)\n"
                    "and characteristics through the kinks of u0 (white dotted)", fontsize=10)
    name = save_figure(figure, out, "appE.png")
    markdown = (
        "Distance from each characteristic x − t = k through a kink of u0 to the nearest cut "
        "plane (largest distance along the characteristic inside the square; 0 = aligned). "
        f"GD and LSGD start from the same initialization (seed {gd['seed']}).\n\n"
        + markdown_table(["method", "step", "loss", *(f"k = {k:g}" for k in KINKS)], table))
    return Report(claims=[], markdown=markdown, figures=[name])


def _fmt(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.3g}"


EXPERIMENT = Experiment(
    id="cyr2020.appE",
    title="Transport PINN a = 1: ReLU cut planes during GD and LSGD training",
    paper="Cyr et al. (2020), Appendix E",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description=(
        "Fig. 12's setting (width 32, depth 1, Box, ReLU, lr 0.005, float64); GD and LSGD "
        "from identical initializations; snapshots of the solution with first-layer cut planes."
    ),
)
