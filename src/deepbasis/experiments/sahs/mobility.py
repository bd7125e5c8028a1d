"""Breakpoint mobility per layer during training (Sahs et al. 2020, §3 "Depth helps with
optimization…", Fig. 2, App. A.5).

A 6-layer ReLU network (5 hidden layers of width 8, PyTorch's default init) is trained by
full-batch GD (lr 5e-5 on the summed squared error) on the 'smooth' and 'sharp' data-gap
targets on [−3, 3] (gap [−0.5, 0.5]) until the relative loss change between steps falls below
a tolerance (or a step budget runs out). A :class:`~deepbasis.analysis.watch.BreakpointWatch`
records every layer's induced breakpoints every k steps; between records the breakpoints of
each (layer, unit) are matched (in order along x, or by the optimal assignment when their
number changed), which defines births, deaths and speeds. Per layer we report how often its
number of breakpoints changed, its births + deaths, and the mean speed of its matched
breakpoints, each relative to layer 1 as in Fig. 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...analysis.watch import BreakpointWatch
from ...nn import MLP
from ...runner import Cell, Claim, Experiment, Report
from ..plotting import COLORS, markdown_table, new_figure, save_figure
from ._deep_gd import gap_data, gap_targets, train

PROFILES = {
    "quick": {"targets": ["smooth"], "spacing": 0.2, "lr": 5e-5, "steps": 60, "every": 10,
              "rel_tol": 1e-9, "seeds": 1},
    "default": {"targets": ["smooth", "sharp"], "spacing": 0.02, "lr": 5e-5, "steps": 20000,
                "every": 10, "rel_tol": 1e-9, "seeds": 4},
    "paper": {"targets": ["smooth", "sharp"], "spacing": 0.01, "lr": 5e-5, "steps": 500000,
              "every": 10, "rel_tol": 1e-9, "seeds": 10},
}
_WIDTH, _DEPTH = 8, 5


def cells(params: Mapping[str, Any]) -> list[Cell]:
    keys = ("spacing", "lr", "steps", "every", "rel_tol")
    return [Cell({"target": t, "width": _WIDTH, "depth": _DEPTH, **{k: params[k] for k in keys}},
                 tuple(range(params["seeds"]))) for t in params["targets"]]


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    x = gap_data(settings["spacing"])
    y = gap_targets(settings["target"], x)
    records = []
    for seed in seeds:
        torch.manual_seed(seed)  # PyTorch's default init draws from the global generator
        model = MLP(1, settings["width"], settings["depth"], dtype=torch.float64)
        watch = BreakpointWatch(-3.0, 3.0, every=settings["every"])
        losses = train(model, x, y, lr=settings["lr"], steps=settings["steps"], watch=watch,
                       rel_tol=settings["rel_tol"])
        changes = watch.changes()
        per_layer = {}
        for layer, cs in changes.items():
            changed = [c.births + c.deaths > 0 for c in cs]
            speeds = np.concatenate([c.speed for c in cs]) if cs else np.empty(0)
            per_layer[str(layer)] = {
                "count_changes": int(sum(changed)),
                "births": int(sum(c.births for c in cs)),
                "deaths": int(sum(c.deaths for c in cs)),
                "mean_speed": float(speeds.mean()) if speeds.size else None,  # no breakpoints
                "intervals": len(cs),
                "count_initial": int(watch.records[0].breakpoints[layer].size),
                "count_final": int(watch.records[-1].breakpoints[layer].size),
            }
        # A thinned trajectory for the figure: every breakpoint of every layer, ≤ 200 frames.
        stride = max(1, len(watch.records) // 200)
        frames = [{"step": r.step,
                   "x": {str(k): v.tolist() for k, v in r.breakpoints.items()}}
                  for r in watch.records[::stride]]
        records.append({"seed": seed, "steps_run": len(losses) - 1,
                        "converged": len(losses) - 1 < settings["steps"],
                        "loss_initial": losses[0], "loss_final": losses[-1],
                        "layers": per_layer, "frames": frames})
    return records


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    targets = params["targets"]
    layers = [str(k) for k in range(1, _DEPTH + 1)]
    stats = {}
    for t in targets:
        rs = [r for r in records if r["settings"]["target"] == t]
        for key in ("count_changes", "births", "deaths", "mean_speed"):
            for layer in layers:
                values = [r["layers"][layer][key] for r in rs]
                values = [np.nan if v is None else v for v in values]
                stats[(t, key, layer)] = (float(np.nanmedian(values))
                                          if not np.all(np.isnan(values)) else np.nan)

    figure, axes = new_figure(3, 1, width=4.6, height=3.8)
    pos = np.arange(1, _DEPTH + 1)
    bar = 0.8 / max(len(targets), 1)
    for i, t in enumerate(targets):
        changes = np.array([stats[(t, "count_changes", la)] for la in layers])
        speeds = np.array([stats[(t, "mean_speed", la)] for la in layers])
        axes[0, 0].bar(pos + (i - (len(targets) - 1) / 2) * bar, changes, bar,
                       color=COLORS[i], label=t)
        rel = speeds / speeds[0] if speeds[0] > 0 else np.full_like(speeds, np.nan)
        axes[0, 1].bar(pos + (i - (len(targets) - 1) / 2) * bar, rel, bar, color=COLORS[i],
                       label=t)
    axes[0, 0].set_xlabel("layer")
    axes[0, 0].set_ylabel("record intervals with births/deaths (median)")
    axes[0, 0].set_title("changes in the number of breakpoints")
    axes[0, 1].axhline(1, color="k", lw=0.8, ls=":")
    axes[0, 1].set_xlabel("layer")
    axes[0, 1].set_ylabel("mean breakpoint speed / layer 1's")
    axes[0, 1].set_title("breakpoint speed relative to layer 1")
    for ax in axes[0, :2]:
        ax.set_xticks(pos)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    ax = axes[0, 2]
    r0 = next(r for r in records if r["settings"]["target"] == targets[-1])
    for j, layer in enumerate(layers):
        xs = [(f["step"], x) for f in r0["frames"] for x in f["x"][layer]]
        if xs:
            steps, locs = zip(*xs, strict=True)
            ax.scatter(locs, steps, s=1.5, color=COLORS[j], label=f"layer {layer}", lw=0)
    ax.axvspan(-0.5, 0.5, color="0.9", zorder=0, label="data gap")
    ax.set_xlim(-3, 3)
    ax.set_xlabel("breakpoint x")
    ax.set_ylabel("GD step")
    ax.set_title(f"breakpoints per layer, '{targets[-1]}', seed {r0['seed']}")
    ax.legend(fontsize=7, markerscale=4, loc="upper right")
    name = save_figure(figure, out, "mobility.png")

    rows = []
    for t in targets:
        s1 = stats[(t, "mean_speed", "1")]
        for layer in layers:
            sp = stats[(t, "mean_speed", layer)]
            rows.append([t, layer, f"{stats[(t, 'count_changes', layer)]:.0f}",
                         f"{stats[(t, 'births', layer)]:.0f} / {stats[(t, 'deaths', layer)]:.0f}",
                         f"{sp:.3g}" if np.isfinite(sp) else "no breakpoints",
                         f"{sp / s1:.2f}" if s1 > 0 and np.isfinite(sp) else "—"])
    table = markdown_table(["target", "layer", "intervals with a count change",
                            "births / deaths", "mean speed (x per step)", "speed / layer 1"], rows)
    deeper = layers[1:]
    # Layers without breakpoints have no speed (NaN): they neither pass nor fail the comparison,
    # but a target where no deeper layer has breakpoints fails.
    faster = {t: any(np.isfinite(stats[(t, "mean_speed", la)]) for la in deeper)
              and all(stats[(t, "mean_speed", la)] > stats[(t, "mean_speed", "1")]
                      for la in deeper if np.isfinite(stats[(t, "mean_speed", la)]))
              for t in targets}
    more_changes = {t: all(stats[(t, "count_changes", la)] >= stats[(t, "count_changes", "1")]
                           for la in deeper)
                    and sum(stats[(t, "count_changes", la)] for la in deeper)
                    > stats[(t, "count_changes", "1")] for t in targets}
    converged = [r["converged"] for r in records]
    claims = [
        Claim("Deeper layers create and annihilate breakpoints more often than layer 1 "
              "(median intervals with a change in the count: every layer 2–5 ≥ layer 1, and "
              "more in total)",
              passed=all(more_changes.values()),
              value={t: [stats[(t, "count_changes", la)] for la in layers] for t in targets},
              paper="the number of breakpoints in deeper layers changes more often (Fig. 2)",
              figure=name),
        Claim("Breakpoints of deeper layers move faster than layer 1's, not necessarily "
              "monotonically (median mean speed of every layer 2–5 that has breakpoints > "
              "layer 1's)",
              passed=all(faster.values()),
              value={t: [None if not np.isfinite(stats[(t, "mean_speed", la)]) else
                         round(stats[(t, "mean_speed", la)]
                               / max(stats[(t, "mean_speed", "1")], 1e-300), 2)
                         for la in layers] for t in targets},
              paper="velocity higher than layer 1, not monotonic in depth (Fig. 2)",
              figure=name),
    ]
    markdown = (
        f"5 hidden layers of width 8, PyTorch default init, float64; data every "
        f"{params['spacing']} on [−3, 3] outside the gap (−0.5, 0.5); targets 'smooth' = tanh(2x), "
        "'sharp' = sign(x) (our choice: the papers only plot them, Fig. 8); GD lr "
        f"{params['lr']} on Σ (f − y)², until the relative loss change per step is below "
        f"{params['rel_tol']} or {params['steps']} steps ({sum(converged)}/{len(converged)} "
        f"runs converged by that test). Breakpoints recorded every {params['every']} steps on "
        "[−3, 3]; a breakpoint leaving or entering [−3, 3] counts as a death or birth (so layer 1 "
        "can have some). Medians over seeds.\n\n" + table
        + "\n\nThe paper gives no numbers for Fig. 2 (the text copy lost the bars), so the claims "
        "are the paper's qualitative statements."
    )
    return Report(claims=claims, markdown=markdown, figures=[name])


EXPERIMENT = Experiment(
    id="sahs.mobility",
    title="Breakpoint births, deaths and speed per layer during training (6 layers, width 8)",
    paper="Sahs et al. (2020), Fig. 2 and App. A.5",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="Do deeper layers create, annihilate and move breakpoints more than layer 1?",
)
