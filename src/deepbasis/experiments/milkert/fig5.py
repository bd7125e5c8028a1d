"""Inside trained default networks: pre-activations per layer (Milkert et al., Fig. 5, §4.3).

The paper shows the pre-activations of a default-initialized width-4, depth-5 network trained on
a convex target and observes that "the first two layers are wasted. No neuron's activation
pattern crosses 0, so ReLU is never used", that deeper units are mostly strictly positive or
negative, and that "around half of the default networks collapse". We train default networks on
x³ (the paper's figure does not name its target; x³ is its first), record every unit's
pre-activation over the data, and count

- per network, the layers in which no unit crosses zero on the data (ReLU acts as the identity
  or as zero on the whole layer) — collapsed networks excluded;
- the collapse rate (output constant over the data; :mod:`._common`).

Claim thresholds, fixed before running: the median non-collapsed network has ≥ 1 such layer;
the collapse rate lies in [0.25, 0.75].
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...runner import Cell, Claim, Experiment, Report
from ...train import fit
from ..plotting import COLORS, markdown_table, new_figure, save_figure
from ._common import SETUP, TARGETS, collapsed, data, plain

_COMMON = {**SETUP, "target": "x3", "init": "default", "curve_points": 101}
PROFILES = {
    "quick": {**_COMMON, "seeds": 3, "steps": 20},
    "default": {**_COMMON, "seeds": 30, "steps": 1000},
    "paper": {**_COMMON, "seeds": 30, "steps": 1000},
}


def cells(params: Mapping[str, Any]) -> list[Cell]:
    keys = ("target", "init", "points", "width", "depth", "lr", "optimizer", "dtype", "steps",
            "curve_points")
    return [Cell({k: params[k] for k in keys}, tuple(range(params["seeds"])))]


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    x, y, _ = data(settings)
    keep = torch.linspace(0, x.shape[0] - 1, settings["curve_points"]).round().long()
    records = []
    for seed in seeds:
        model = plain(settings, seed, settings["init"])
        history = fit(model, x, y, method="gd", steps=settings["steps"], lr=settings["lr"],
                      progress=False)
        with torch.no_grad():
            pre, h = [], x
            for layer in model.layers:
                z = layer(h)  # (N, width) pre-activations
                pre.append(z)
                h = torch.relu(z)
        crossing = [int(((z.min(0).values < 0) & (z.max(0).values > 0)).sum()) for z in pre]
        records.append({
            "seed": seed,
            "mse": history.final_loss,
            "collapsed": collapsed(model, x),
            "crossing_units": crossing,  # per layer: units whose pre-activation changes sign
            "positive_units": [int((z.min(0).values >= 0).sum()) for z in pre],
            "negative_units": [int((z.max(0).values <= 0).sum()) for z in pre],
            "curves": [z[keep].T.tolist() for z in pre],  # layer -> unit -> values
        })
    return records


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    records = sorted(records, key=lambda r: r["seed"])
    alive = [r for r in records if not r["collapsed"]]
    wasted = [sum(c == 0 for c in r["crossing_units"]) for r in alive]
    collapse = 1 - len(alive) / len(records)
    shown = (sorted(alive, key=lambda r: r["mse"])[len(alive) // 2] if alive else records[0])

    depth = params["depth"]
    figure, axes = new_figure(depth, 1, width=2.6, height=2.8)
    xs = np.linspace(0, 1, params["curve_points"])
    for layer, ax in enumerate(axes[0]):
        for unit, values in enumerate(shown["curves"][layer]):
            ax.plot(xs, values, color=COLORS[unit], lw=1.3)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_title(f"layer {layer + 1}: {shown['crossing_units'][layer]} of "
                     f"{params['width']} cross 0", fontsize=9)
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("pre-activation")
    figure.suptitle(f"Trained default network on {TARGETS[params['target']][0]} (seed "
                    f"{shown['seed']}, median MSE of the non-collapsed: {shown['mse']:.1e})",
                    fontsize=10)
    name = save_figure(figure, out, "fig5.png")

    rows = [[r["seed"], f"{r['mse']:.2e}", "yes" if r["collapsed"] else "no",
             " ".join(map(str, r["crossing_units"])), " ".join(map(str, r["positive_units"])),
             " ".join(map(str, r["negative_units"]))] for r in records]
    table = markdown_table(["seed", "MSE", "collapsed", "units crossing 0 (layers 1–5)",
                            "always ≥ 0", "always ≤ 0"], rows)
    median_wasted = float(np.median(wasted)) if wasted else float("nan")
    claims = [
        Claim("In a trained default network whole layers leave ReLU unused: the median "
              "non-collapsed network has ≥ 1 layer in which no unit crosses zero",
              passed=bool(wasted) and median_wasted >= 1,
              value={"median": median_wasted, "per network": wasted},
              paper="Fig. 5: the first two layers, no neuron crosses 0", figure=name),
        Claim("About half of the default networks collapse to a constant (rate in [0.25, 0.75])",
              passed=bool(0.25 <= collapse <= 0.75), value=round(collapse, 3),
              paper="\"around half of the default networks collapse\"", figure=name),
    ]
    markdown = (
        f"{len(records)} default-initialized networks (width {params['width']}, "
        f"{depth} hidden layers) trained on {TARGETS[params['target']][0]} with Adam, lr "
        f"{params['lr']}, {params['steps']} steps. Collapse rate {collapse:.2f}; layers with no "
        f"unit crossing zero per non-collapsed network: {wasted} (median {median_wasted}). "
        f"The figure shows the non-collapsed network of median MSE.\n\n" + table
    )
    return Report(claims=claims, markdown=markdown, figures=[name])


EXPERIMENT = Experiment(
    id="milkert.fig5",
    title="Pre-activations inside trained default networks; wasted layers and collapse rate",
    paper="Milkert et al., Fig. 5, §4.3",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="Default-initialized width-4 depth-5 ReLU networks trained on x³: which "
                "layers use their ReLUs, and how often the network collapses.",
)
