r"""LSGD vs GD on the toy quadratic of Appendix A (Cyr et al. 2020, Fig. 14).

:math:`f(x, y) = 5x^2 − 6xy + 5y^2`, learning rate 0.1, start (−4, 1). By analogy with eq. (6)
x plays the linear (head) variable ξ^L and y the hidden variable ξ^H:

- **GD**: plain gradient descent on (x, y) jointly, :math:`(x, y) ← (x, y) − 0.1 ∇f`.
- **LSGD** (Algorithm 1): first x ← argmin_x f(x, y) = 3y/5 (the "least-squares solve"), then
  repeatedly one gradient step in y, :math:`y ← y − 0.1 ∂_y f(x, y)`, followed by the exact
  minimization in x. Each plotted LSGD point is the state after a GD step *and* the LS solve
  that follows, as in the paper's caption.

This is not a network, so it is implemented directly (a few lines of float64 arithmetic)
rather than through :func:`deepbasis.fit`: writing f as ‖Aθ − b‖² would need a target b that
depends on the hidden variable, which the problem protocol (A differentiable, b fixed data)
does not describe. Plain gradient descent, not Adam: Appendix A compares the two iterations
themselves.

Closed form (a check): GD multiplies the error along both eigenvectors of the Hessian
(eigenvalues 4 and 16) by 0.6 and −0.6, so f falls by 0.36 per step; LSGD's reduced function is
3.2 y² with y ← 0.36 y, so f falls by 0.1296 per step, starting from 3.2 instead of 109.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...runner import Cell, Claim, Experiment, Report
from ..plotting import COLORS, markdown_table, new_figure, save_figure

_COMMON = {"lr": 0.1, "start": [-4.0, 1.0], "a": 5.0, "b": -6.0, "c": 5.0}
PROFILES = {
    "quick": {**_COMMON, "steps": 20},
    "default": {**_COMMON, "steps": 30},
    "paper": {**_COMMON, "steps": 30},
}


def quadratic(x: float, y: float, a: float, b: float, c: float) -> float:
    """f(x, y) = a x² + b x y + c y²."""
    return a * x * x + b * x * y + c * y * y


def gd_path(start, lr: float, steps: int, a: float, b: float, c: float) -> np.ndarray:
    """Gradient descent on (x, y) jointly; ``(steps + 1, 2)`` iterates."""
    x, y = start
    path = [(x, y)]
    for _ in range(steps):
        gx, gy = 2 * a * x + b * y, b * x + 2 * c * y
        x, y = x - lr * gx, y - lr * gy
        path.append((x, y))
    return np.asarray(path)


def lsgd_path(start, lr: float, steps: int, a: float, b: float, c: float) -> np.ndarray:
    """Algorithm 1 on f: exact minimization in x (∂_x f = 0 ⇒ x = −b y / 2a) after each GD
    step in y; ``(steps + 1, 2)`` iterates, the first after the initial LS solve."""
    _, y = start
    x = -b * y / (2 * a)  # LS(y)
    path = [(x, y)]
    for _ in range(steps):
        y = y - lr * (b * x + 2 * c * y)  # GD step on the hidden variable
        x = -b * y / (2 * a)  # LS solve for the linear variable
        path.append((x, y))
    return np.asarray(path)


def cells(params: Mapping[str, Any]) -> list[Cell]:
    settings = {k: params[k] for k in ("lr", "start", "a", "b", "c", "steps")}
    return [Cell(settings, (0,))]  # deterministic: one "seed"


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    coeffs = (settings["a"], settings["b"], settings["c"])
    args = (settings["start"], settings["lr"], settings["steps"], *coeffs)
    record: dict[str, Any] = {}
    for method, path in (("gd", gd_path(*args)), ("lsgd", lsgd_path(*args))):
        record[f"{method}_path"] = path.tolist()
        record[f"{method}_loss"] = [quadratic(x, y, *coeffs) for x, y in path]
    return [{"seed": seed, **record} for seed in seeds]


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    record = records[0]
    coeffs = (params["a"], params["b"], params["c"])
    gd, lsgd = np.asarray(record["gd_path"]), np.asarray(record["lsgd_path"])
    gd_loss, lsgd_loss = np.asarray(record["gd_loss"]), np.asarray(record["lsgd_loss"])

    figure, axes = new_figure(2, 1, width=5.0, height=4.2)
    ax = axes[0, 0]
    grid = np.linspace(-4.5, 4.5, 301)
    gx, gy = np.meshgrid(grid, np.linspace(-2.5, 2.5, 201))
    levels = np.geomspace(0.05, 150, 14)
    ax.contour(gx, gy, quadratic(gx, gy, *coeffs), levels=levels, colors="0.7", linewidths=0.7)
    ys = np.linspace(-2.5, 2.5, 2)
    ax.plot(-coeffs[1] * ys / (2 * coeffs[0]), ys, color="0.4", ls=":", lw=1,
            label="x = LS(y)")
    ax.plot(gd[:, 0], gd[:, 1], "o-", color=COLORS[0], ms=3, lw=1, label="GD")
    ax.plot(lsgd[:, 0], lsgd[:, 1], "s-", color=COLORS[1], ms=3, lw=1, label="LSGD")
    ax.plot([params["start"][0], lsgd[0, 0]], [params["start"][1], lsgd[0, 1]], "--",
            color=COLORS[1], lw=1, label="first LS solve")
    ax.plot(*params["start"], "k*", ms=10, label="start (−4, 1)")
    ax.set_xlim(-4.5, 4.5)
    ax.set_ylim(-2.5, 2.5)
    ax.set_xlabel("x (linear variable ξ^L)")
    ax.set_ylabel("y (hidden variable ξ^H)")
    ax.set_title("paths on 5x² − 6xy + 5y², lr 0.1", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax = axes[0, 1]
    steps = np.arange(len(gd_loss))
    ax.semilogy(steps, gd_loss, "o-", color=COLORS[0], ms=3, label="GD")
    ax.semilogy(steps, lsgd_loss, "s-", color=COLORS[1], ms=3, label="LSGD")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss f(x_k, y_k)")
    ax.set_title("loss per iteration", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    name = save_figure(figure, out, "fig14.png")

    below = lsgd_loss < gd_loss
    ratio = float(np.max(lsgd_loss / gd_loss))
    claims = [Claim(
        "LSGD's loss is below GD's at every iteration (strictly, k = 0 … steps; LSGD's k = 0 "
        "is after its first LS solve)",
        passed=bool(below.all()),
        value={"iterations_below": int(below.sum()), "iterations": int(below.size),
               "max_ratio_lsgd_over_gd": ratio},
        paper="LSGD achieves lower loss for the same number of iterations (Fig. 14 right)",
        figure=name)]
    rows = [[k, f"{gd_loss[k]:.3e}", f"{lsgd_loss[k]:.3e}"]
            for k in sorted({0, 1, 2, 5, 10, len(gd_loss) - 1}) if k < len(gd_loss)]
    markdown = ("Plain gradient descent (not Adam), lr 0.1. Per-step contraction of f: GD "
                f"{gd_loss[-1] / gd_loss[-2]:.4f} (closed form 0.36), LSGD "
                f"{lsgd_loss[-1] / lsgd_loss[-2]:.4f} (closed form 0.1296).\n\n"
                + markdown_table(["iteration", "GD loss", "LSGD loss"], rows))
    return Report(claims=claims, markdown=markdown, figures=[name])


EXPERIMENT = Experiment(
    id="cyr2020.fig14",
    title="Toy quadratic 5x² − 6xy + 5y²: LSGD vs GD paths and losses",
    paper="Cyr et al. (2020), Fig. 14, Appendix A",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="x is the linear variable (solved exactly after each step), y the hidden one; "
                "plain GD with lr 0.1 from (−4, 1).",
)
