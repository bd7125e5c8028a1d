"""Width-2 networks on the discontinuous u1: which init and architecture gain from depth?
(Cyr et al. 2020, Fig. 9, §5.1).

Setting (§5.1 and the Fig. 9 caption): u1 of eq. (17) on 256 evenly spaced points of [0, 1],
ReLU networks of width 2, plain and residual, Glorot / He (both uniform with zero biases, the
paper's baselines) / Box initialization, LSGD with Adam at learning rate 0.005, an ensemble of
seeds per (init, architecture, depth).

**Choices** (not stated in the paper): depths L = 2, 4, 8, 16, 32, 64 and 5,000 iterations,
16 seeds (paper profile); the default profile uses L = 2…32, 1,000 iterations and 8 seeds.
The error of a seed is the RMS error of the final model on the 256 training points.

Claim (fixed before running): "only Box + residual improves statistically with depth" is
tested per configuration with a one-sided Spearman rank correlation between depth and RMS
error over all its seeds (alternative: negative correlation). It passes when Box-residual's
p-value is < 0.05 and every other configuration's is ≥ 0.05.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ...runner import Cell, Claim, Experiment, Report
from ..plotting import COLORS, markdown_table, new_figure, save_figure
from ._common import INIT_LABELS, group, train_cell

_COMMON = {"target": "u1", "points": 256, "width": 2, "activation": "relu", "method": "lsgd",
           "optimizer": "adam", "lr": 0.005, "dtype": "float64",
           "inits": ["glorot", "he", "box"], "architectures": ["plain", "residual"]}
PROFILES = {
    "quick": {**_COMMON, "seeds": 3, "steps": 20, "depths": [2, 8]},
    "default": {**_COMMON, "seeds": 8, "steps": 1000, "depths": [2, 4, 8, 16, 32]},
    "paper": {**_COMMON, "seeds": 16, "steps": 5000, "depths": [2, 4, 8, 16, 32, 64]},
}

ALPHA = 0.05


def cells(params: Mapping[str, Any]) -> list[Cell]:
    seeds = tuple(range(params["seeds"]))
    keys = ("target", "points", "width", "activation", "method", "optimizer", "lr", "steps",
            "dtype")
    return [Cell({**{k: params[k] for k in keys}, "depth": depth, "init": init,
                  "residual": architecture == "residual"}, seeds)
            for init in params["inits"] for architecture in params["architectures"]
            for depth in params["depths"]]


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    return train_cell(settings, seeds)


def _rms(record: Mapping[str, Any]) -> float:
    return np.inf if record["rms"] is None else record["rms"]  # diverged: worst rank


def depth_trend(records: list[Mapping[str, Any]]) -> tuple[float, float]:
    """Spearman ρ of (depth, RMS) over all seeds and its one-sided p-value (ρ < 0)."""
    depths = [r["settings"]["depth"] for r in records]
    errors = [_rms(r) for r in records]
    if len(set(depths)) < 2 or len(set(errors)) < 2:
        return float("nan"), 1.0
    result = stats.spearmanr(depths, errors, alternative="less")
    return float(result.statistic), float(result.pvalue)


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    depths = params["depths"]
    by_config = group(records, "init", "residual")
    figure, axes = new_figure(len(params["inits"]), 1, width=4.2, height=3.8, sharey=True)
    rng = np.random.default_rng(0)  # horizontal jitter of the seed markers only
    trends, rows = {}, []
    for ax, init in zip(axes[0], params["inits"], strict=True):
        for color, marker, architecture in ((COLORS[0], "o", "plain"),
                                            (COLORS[1], "s", "residual")):
            if architecture not in params["architectures"]:
                continue
            config = by_config[(init, architecture == "residual")]
            rho, p = depth_trend(config)
            trends[f"{init} {architecture}"] = (rho, p)
            per_depth = group(config, "depth")
            xs, ys = [], []
            for d in depths:
                values = [_rms(r) for r in per_depth[(d,)]]
                xs += list(d * 2 ** rng.uniform(-0.15, 0.15, len(values)))
                ys += values
            finite = np.isfinite(ys)
            ax.scatter(np.asarray(xs)[finite], np.asarray(ys)[finite], s=14, marker=marker,
                       facecolors="none", edgecolors=color, lw=0.9,
                       label=f"{architecture} (Spearman ρ {rho:.2f}, p {p:.2g})")
            medians = [np.median([_rms(r) for r in per_depth[(d,)]]) for d in depths]
            ax.plot(depths, medians, color=color, lw=1, alpha=0.7)
            rows.append([INIT_LABELS[init], architecture]
                        + [f"{m:.3g}" for m in medians] + [f"{rho:.2f}", f"{p:.3g}"])
        anchor_config = by_config[(init, "residual" in params["architectures"])]
        anchor = np.median([_rms(r) for r in group(anchor_config, "depth")[(depths[0],)]])
        ax.plot(depths, anchor * depths[0] / np.asarray(depths, dtype=float), color=COLORS[2],
                ls="--", lw=1, label="first order (∝ 1/L)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(depths, [str(d) for d in depths])
        ax.set_xlabel("hidden layers L")
        ax.set_title(f"{INIT_LABELS[init]}, width {params['width']}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("RMS error on the data (final model)")
    name = save_figure(figure, out, "fig9.png")

    box = trends.get("box residual", (float("nan"), 1.0))
    others = {k: v for k, v in trends.items() if k != "box residual"}
    claims = [Claim(
        f"Only Box + residual improves statistically with depth: one-sided Spearman test of "
        f"RMS vs depth (ρ < 0) significant at {ALPHA:g} for Box-residual and not for the "
        "other five configurations",
        passed=bool(box[1] < ALPHA and all(p >= ALPHA for _, p in others.values())),
        value={k: {"rho": round(rho, 3), "p": float(f"{p:.3g}")} for k, (rho, p) in
               trends.items()},
        paper="Glorot and He fail regardless of architecture; Box plain also poor; Box ResNet "
              "shows a significant statistical improvement (§5.1, Fig. 9)",
        figure=name)]
    markdown = (
        f"u1 (eq. 17) on {params['points']} points, ReLU width {params['width']}, LSGD (Adam, "
        f"lr {params['lr']:g}) for {params['steps']} iterations, {params['seeds']} seeds per "
        "cell. Median RMS error over seeds per depth, and the one-sided Spearman test over all "
        "seeds (diverged seeds count as the worst error).\n\n"
        + markdown_table(["init", "architecture"] + [f"L = {d}" for d in depths]
                         + ["Spearman ρ", "p (ρ < 0)"], rows)
    )
    return Report(claims=claims, markdown=markdown, figures=[name])


EXPERIMENT = Experiment(
    id="cyr2020.fig9",
    title="Width-2 ReLU networks on the discontinuous u1: RMS error vs depth, "
          "Glorot / He / Box, plain and residual",
    paper="Cyr et al. (2020), Fig. 9, §5.1",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="RMS error of every seed against depth for three initializations and two "
                "architectures, trained by LSGD.",
)
