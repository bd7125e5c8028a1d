"""Variance flow at initialization as a dynamical system (Wang et al. 2021, §2, App. B; Figs. 1,
2 and 7): eq. 2.1 maps for tanh / ReLU / sin, the tanh fixed points and their stability against
the scale c, the backward map B.3, and a real tanh network's post-activation spread against the
prediction of eq. 2.1 (Fig. 1c)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...analysis.variance_flow import (
    bifurcation_scale,
    fixed_points,
    forward_map,
    variance_flow,
)
from ...runner import Cell, Claim, Experiment, Report
from ..plotting import COLORS, markdown_table, new_figure, save_figure

_COMMON = {"activations": ["tanh", "relu", "sin"], "c_min": 0.5, "c_max": 3.0}
PROFILES = {
    "quick": {**_COMMON, "c_points": 11, "s_points": 21, "layers": 8, "width": 64,
              "samples": 512, "network_scales": [1.0, 1.5], "scan": 60},
    # default = paper's Fig. 1(c) network (width 1024, 2,048 inputs: seconds on a CPU) on
    # coarser c and s grids than the paper's figures
    "default": {**_COMMON, "c_points": 51, "s_points": 61, "layers": 32, "width": 1024,
                "samples": 2048, "network_scales": [1.0, 1.2, 1.5, 2.0], "scan": 400},
    "paper": {**_COMMON, "c_points": 101, "s_points": 101, "layers": 32, "width": 1024,
              "samples": 2048, "network_scales": [1.0, 1.2, 1.5, 2.0], "scan": 400},
}


def cells(params: Mapping[str, Any]) -> list[Cell]:
    return [Cell(dict(params), (0,))]


@torch.no_grad()
def _network_spread(c: float, layers: int, width: int, samples: int, seed: int) -> list[float]:
    """Root second moment of each hidden layer's post-activations of a tanh network with
    weights N(0, c²/d_in), zero biases, inputs N(0, 1) (Fig. 1c)."""
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(samples, width, generator=gen, dtype=torch.float64)
    spread = [float(h.pow(2).mean().sqrt())]
    for _ in range(layers):
        w = torch.randn(width, width, generator=gen, dtype=torch.float64) * c / math.sqrt(width)
        h = torch.tanh(h @ w.T)  # (N, w)
        spread.append(float(h.pow(2).mean().sqrt()))
    return spread


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    s_grid = np.linspace(0.0, 3.0, settings["s_points"]).tolist()
    c_grid = np.linspace(settings["c_min"], settings["c_max"], settings["c_points"]).tolist()
    records = []
    for seed in seeds:
        maps = {a: [forward_map(a, 1.0, s) for s in s_grid] for a in settings["activations"]}
        forward = [[(p.s, p.slope) for p in fixed_points("tanh", c, grid=settings["scan"])]
                   for c in c_grid]
        backward = [[(p.s, p.slope) for p in fixed_points("tanh", c, backward=True,
                                                                grid=settings["scan"])]
                    for c in c_grid]
        relu = variance_flow("relu", math.sqrt(2.0), 1.0, settings["layers"])
        network = {str(c): _network_spread(c, settings["layers"], settings["width"],
                                           settings["samples"], seed)
                   for c in settings["network_scales"]}
        predicted = {str(c): variance_flow("tanh", c, 1.0, settings["layers"])
                     for c in settings["network_scales"]}
        records.append({"seed": seed, "s_grid": s_grid, "c_grid": c_grid, "maps": maps,
                        "forward_fixed": forward, "backward_fixed": backward,
                        "relu_he_flow": relu, "bifurcation": bifurcation_scale("tanh"),
                        "network": network, "predicted": predicted})
    return records


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    r = records[0]
    c_grid = np.array(r["c_grid"])
    figure, axes = new_figure(4, 1, width=4.2, height=3.6)
    ax = axes[0, 0]
    for color, (name, values) in zip(COLORS, r["maps"].items(), strict=False):
        ax.plot(r["s_grid"], values, color=color, label=name)
    ax.plot(r["s_grid"], r["s_grid"], "k--", lw=0.8, label="identity")
    ax.set(xlabel="$s_i$", ylabel="$s_{i+1}$", title="(1a) eq. 2.1 at c = 1 (Glorot)")
    ax.legend()
    ax = axes[0, 1]
    for c, color in zip(r["network"], COLORS, strict=False):
        ax.plot(r["network"][c], color=color, label=f"network, c = {c}")
        ax.plot(r["predicted"][c], color=color, ls=":", label=f"eq. 2.1, c = {c}")
    ax.set(xlabel="layer", ylabel="root second moment",
           title=f"(1c) tanh net, width {params['width']}")
    ax.legend(fontsize=7)
    ax = axes[0, 2]
    positive = [max((s for s, _ in pts), default=0.0) for pts in r["forward_fixed"]]
    slope_zero = [pts[0][1] for pts in r["forward_fixed"]]
    slope_pos = [next((sl for s, sl in pts if s > 0), np.nan) for pts in r["forward_fixed"]]
    ax.plot(c_grid, positive, color=COLORS[0], label="positive fixed point s*")
    ax.axhline(0, color=COLORS[1], label="s = 0")
    ax2 = axes[0, 3]
    ax2.plot(c_grid, slope_zero, color=COLORS[1], label="F'(0)")
    ax2.plot(c_grid, slope_pos, color=COLORS[0], label="F'(s*)")
    backward = [pts[0] for pts in r["backward_fixed"]]
    ax.plot(c_grid, [b[0] for b in backward], color=COLORS[2], ls="--", label="B.3 fixed point")
    ax2.plot(c_grid, [b[1] for b in backward], color=COLORS[2], ls="--", label="B.3 slope")
    ax2.axhline(1, color="k", lw=0.8, ls=":")
    ax2.axhline(-1, color="k", lw=0.8, ls=":")
    ax.set(xlabel="variance offset c", ylabel="fixed point", title="(2a, 7) tanh fixed points")
    ax2.set(xlabel="variance offset c", ylabel="slope at the fixed point",
            title="(2b, 7) stability: |slope| < 1")
    ax.legend(fontsize=7)
    ax2.legend(fontsize=7)
    name = save_figure(figure, out, "variance_flow.png")

    relu_dev = max(abs(v - 1.0) for v in r["relu_he_flow"])
    above = [pts for c, pts in zip(c_grid, r["forward_fixed"], strict=True) if c > 1.0 + 1e-9]
    below = [pts for c, pts in zip(c_grid, r["forward_fixed"], strict=True) if c < 1.0 - 1e-9]
    bifurcation_ok = all(len(p) == 1 and p[0][0] == 0.0 and abs(p[0][1]) < 1 for p in below) \
        and all(len(p) == 2 and abs(p[0][1]) > 1 and abs(p[1][1]) < 1 for p in above)
    backward_ok = all(len(p) == 1 and p[0][0] > 0 and abs(p[0][1]) < 1
                      for p in r["backward_fixed"])
    errors = {c: max(abs(a - b) / b for a, b in zip(r["network"][c][1:], r["predicted"][c][1:],
                                                    strict=True))
              for c in r["network"]}
    glorot = r["network"]["1.0"]
    claims = [
        Claim("ReLU's second moment is preserved at c = √2 (He): max |s_L/s_0 − 1| over "
              f"{params['layers']} layers of eq. 2.1 below 1e-10",
              passed=relu_dev < 1e-10, value=f"{relu_dev:.1e}", paper="Fig. 1(a)", figure=name),
        Claim("tanh: eq. 2.1 bifurcates at c = 1 (bisection on c within 1e-3 of 1)",
              passed=abs(r["bifurcation"] - 1.0) < 1e-3, value=round(r["bifurcation"], 6),
              paper="Fig. 2(a): bifurcation at c ≈ 1", figure=name),
        Claim("tanh: for c < 1 only s = 0, stable; for c > 1 s = 0 is unstable and one stable "
              "positive fixed point appears (every c of the grid)",
              passed=bifurcation_ok, value=f"{len(below)} c < 1, {len(above)} c > 1 checked",
              paper="Fig. 2(b)", figure=name),
        Claim("Backward map B.3 (tanh): exactly one fixed point for every c, positive and "
              "stable; it shrinks with c but does not vanish",
              passed=backward_ok and backward[-1][0] > 0,
              value=f"s* from {backward[0][0]:.3f} (c = {c_grid[0]:.1f}) to "
                    f"{backward[-1][0]:.3f} (c = {c_grid[-1]:.1f})",
              paper="App. B, Fig. 7", figure=name),
        Claim("Glorot (c = 1) tanh network: the post-activation spread vanishes with depth "
              "(last layer below 1/4 of the first)",
              passed=glorot[-1] < 0.25 * glorot[1],
              value=f"{glorot[1]:.3f} → {glorot[-1]:.3f}", paper="Fig. 1(c)", figure=name),
        Claim("A real tanh network follows eq. 2.1 within 5 % at every layer and scale",
              passed=max(errors.values()) < 0.05,
              value={c: f"{e:.3f}" for c, e in errors.items()},
              paper="Fig. 1(c) (the mean-field assumption)", figure=name),
    ]
    rows = [[f"{c:.2f}", f"{pts[-1][0]:.4f}", f"{pts[-1][1]:.3f}",
             f"{bk[0][0]:.4f}", f"{bk[0][1]:.3f}"]
            for c, pts, bk in zip(c_grid, r["forward_fixed"], r["backward_fixed"], strict=True)
            ][:: max(1, len(c_grid) // 10)]
    markdown = (
        "Expectations by Gauss–Hermite quadrature (see deepbasis.analysis.variance_flow for "
        "the order and its measured error), where the paper used 4,096 Monte Carlo draws. "
        "Fixed points by bracketing and bisection.\n\n"
        + markdown_table(["c", "eq. 2.1 largest fixed point", "slope", "B.3 fixed point",
                          "B.3 slope"], rows)
    )
    return Report(claims=claims, markdown=markdown, figures=[name])


EXPERIMENT = Experiment(
    id="go.variance_flow",
    title="Variance flow (eq. 2.1, B.3): fixed points and stability vs the scale c",
    paper="Wang et al. (2021), Figs. 1, 2, 7; §2 and App. B",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="ReLU preserved at c = √2, tanh bifurcation at c = 1, backward stability, and "
                "a real network against the mean-field prediction.",
)
