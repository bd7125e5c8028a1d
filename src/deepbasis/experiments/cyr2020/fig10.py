"""Convergence of residual Box networks in width and in depth, on u1 and sin(2πx)
(Cyr et al. 2020, Fig. 10, §5.1).

Setting: u1 (eq. 17) and u2 = sin(2πx) on 256 evenly spaced points of [0, 1], residual ReLU
networks with Box initialization trained by LSGD (Adam).

**Choices** (the paper gives neither the fixed depth / width of each sweep, nor the learning
rate or iteration count): a width sweep w = 4, 8, 16, 32, 64 at L = 8 hidden layers and a depth
sweep L = 2, 4, 8, 16, 32 at width w = 8; learning rate 0.005 (that of Figs. 5 and 9); 5,000
iterations and 8 seeds (paper profile), 1,000 iterations and 4 seeds (default). The error of a
seed is the RMS error of the final model on the 256 training points.

Claims (fixed before running): the least-squares slope of the mean over seeds of log10 RMS
against log10(width) or log10(depth), over the sweep, is

- sin(2πx): ≤ −0.7 in width and ≤ −0.7 in depth ("first-order convergence", slope −1, with
  0.3 of slack);
- u1: ≤ −0.5 in width (converges) and > −0.5 in depth (does not) — "convergence with respect
  to width only for the discontinuous function".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...runner import Cell, Claim, Experiment, Report
from ..plotting import COLORS, markdown_table, new_figure, save_figure
from ._common import group, train_cell

_COMMON = {"targets": ["u1", "sin2pi"], "points": 256, "residual": True, "activation": "relu",
           "init": "box", "method": "lsgd", "optimizer": "adam", "lr": 0.005,
           "dtype": "float64", "widths": [4, 8, 16, 32, 64], "width_sweep_depth": 8,
           "depths": [2, 4, 8, 16, 32], "depth_sweep_width": 8}
PROFILES = {
    "quick": {**_COMMON, "seeds": 2, "steps": 20, "widths": [4, 16], "depths": [2, 8]},
    "default": {**_COMMON, "seeds": 4, "steps": 1000},
    "paper": {**_COMMON, "seeds": 8, "steps": 5000},
}

SMOOTH_SLOPE = -0.7
U1_SLOPE = -0.5
TARGET_LABELS = {"u1": "u1 (eq. 17, discontinuous)", "sin2pi": "sin(2πx)"}


def sweep_points(params: Mapping[str, Any]) -> dict[str, list[tuple[int, int]]]:
    """(width, depth) pairs of the width sweep and of the depth sweep."""
    return {"width": [(w, params["width_sweep_depth"]) for w in params["widths"]],
            "depth": [(params["depth_sweep_width"], d) for d in params["depths"]]}


def cells(params: Mapping[str, Any]) -> list[Cell]:
    seeds = tuple(range(params["seeds"]))
    keys = ("points", "residual", "activation", "init", "method", "optimizer", "lr", "steps",
            "dtype")
    sweeps = sweep_points(params)
    pairs = list(dict.fromkeys(sweeps["width"] + sweeps["depth"]))  # shared point runs once
    return [Cell({**{k: params[k] for k in keys}, "target": target, "width": w, "depth": d},
                 seeds)
            for target in params["targets"] for w, d in pairs]


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    return train_cell(settings, seeds)


def _log_rms(records) -> np.ndarray:
    return np.log10([np.inf if r["rms"] is None else r["rms"] for r in records])


def fitted_slope(sizes, mean_log_rms) -> float:
    """Least-squares slope of mean log10 RMS against log10 size (NaN if not finite)."""
    y = np.asarray(mean_log_rms, dtype=float)
    if not np.isfinite(y).all():
        return float("nan")
    return float(np.polyfit(np.log10(np.asarray(sizes, dtype=float)), y, 1)[0])


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    cellwise = group(records, "target", "width", "depth")
    sweeps = sweep_points(params)
    slopes: dict[str, float] = {}
    figure, axes = new_figure(2, len(params["targets"]), width=4.4, height=3.6)
    rows = []
    for row, target in enumerate(params["targets"]):
        for col, (kind, color) in enumerate((("width", COLORS[0]), ("depth", COLORS[1]))):
            ax = axes[row, col]
            pairs = sweeps[kind]
            sizes = [w if kind == "width" else d for w, d in pairs]
            logs = [_log_rms(cellwise[(target, w, d)]) for w, d in pairs]
            means = [float(v.mean()) for v in logs]
            slope = fitted_slope(sizes, means)
            slopes[f"{target} {kind}"] = round(slope, 2)
            for size, values in zip(sizes, logs, strict=True):
                finite = np.isfinite(values)
                ax.scatter(np.full(finite.sum(), size), 10 ** values[finite], s=12,
                           facecolors="none", edgecolors=color, lw=0.8)
            ax.plot(sizes, 10 ** np.asarray(means), "o-", color=color,
                    label=f"mean of log10 RMS (slope {slope:.2f})")
            ref = 10 ** means[0] * sizes[0] / np.asarray(sizes, dtype=float)
            ax.plot(sizes, ref, "--", color=COLORS[2], lw=1, label="first order (slope −1)")
            fixed = (f"L = {params['width_sweep_depth']}" if kind == "width"
                     else f"w = {params['depth_sweep_width']}")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(sizes, [str(s) for s in sizes])
            ax.set_xlabel("width w" if kind == "width" else "hidden layers L")
            ax.set_ylabel("RMS error")
            ax.set_title(f"{TARGET_LABELS[target]}: {kind} sweep ({fixed})", fontsize=9)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7)
            rows.append([target, f"{kind} ({fixed})",
                         ", ".join(f"{s}: {10 ** m:.2e}" for s, m in zip(sizes, means,
                                                                           strict=True)),
                         f"{slope:.2f}"])
    name = save_figure(figure, out, "fig10.png")

    def le(key, bound):
        return bool(slopes.get(key, np.nan) <= bound)

    claims = []
    if "sin2pi" in params["targets"]:
        claims.append(Claim(
            f"sin(2πx): ~first-order convergence in width and in depth (fitted log-log slope "
            f"≤ {SMOOTH_SLOPE:g} for both sweeps)",
            passed=le("sin2pi width", SMOOTH_SLOPE) and le("sin2pi depth", SMOOTH_SLOPE),
            value={"width_slope": slopes["sin2pi width"], "depth_slope": slopes["sin2pi depth"]},
            paper="first-order convergence in width and depth (§5.1, Fig. 10 right)",
            figure=name))
    if "u1" in params["targets"]:
        claims.append(Claim(
            f"u1: convergence in width only (width slope ≤ {U1_SLOPE:g}, depth slope "
            f"> {U1_SLOPE:g})",
            passed=le("u1 width", U1_SLOPE) and bool(slopes["u1 depth"] > U1_SLOPE),
            value={"width_slope": slopes["u1 width"], "depth_slope": slopes["u1 depth"]},
            paper="only convergence with respect to width for the discontinuous function "
                  "(§5.1, Fig. 10 left)",
            figure=name))
    markdown = (
        f"Residual ReLU networks, Box init, LSGD (Adam, lr {params['lr']:g}) for "
        f"{params['steps']} iterations, {params['seeds']} seeds per point, "
        f"{params['points']} points. RMS = 10^(mean over seeds of log10 RMS of the final "
        "model); slope = least-squares slope against log10 width or depth.\n\n"
        + markdown_table(["target", "sweep", "RMS error", "slope"], rows)
    )
    return Report(claims=claims, markdown=markdown, figures=[name])


EXPERIMENT = Experiment(
    id="cyr2020.fig10",
    title="Residual Box networks: RMS error vs width and vs depth on u1 and sin(2πx)",
    paper="Cyr et al. (2020), Fig. 10, §5.1",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="Width and depth convergence studies of LSGD-trained residual ReLU networks "
                "with Box initialization.",
)
