"""Roughness per layer during training (Sahs et al. 2020, Fig. 3 and App. A.2).

A ReLU network with 4 hidden layers of width 8 (the paper's "5 layer network", PyTorch default
init) is trained by full-batch GD (lr 1e-4 on the summed squared error, 10,000 epochs) on x²/2
and sin(x) on [−2, 2], data every 0.01; every 50 epochs we record roughness per layer, two ways:

- **output roughness by layer** (specs/spline-view.md, our [choice], primary): the squared
  slope jumps of the *output* at the active breakpoints layer ℓ induced; these sum to the
  output's roughness (:meth:`Spline.roughness_by_layer`, recorded by
  :class:`~deepbasis.analysis.watch.BreakpointWatch`);
- **basis roughness of layer ℓ** (a closer reading of App. A.2, "roughness per layer was
  summed over all units within that layer", and of the text's "roughness of the basis
  functions … in the deeper layers"): Σ over the units of layer ℓ of the roughness of the
  unit's post-ReLU output x_i^(ℓ)(x), computed exactly as the spline of the network cut after
  layer ℓ.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...analysis.spline import spline_of
from ...analysis.watch import BreakpointWatch
from ...nn import MLP
from ...runner import Cell, Claim, Experiment, Report
from ..plotting import COLORS, markdown_table, new_figure, save_figure
from ..stats import mean_ci
from ._deep_gd import train

_TARGETS = {"quadratic": lambda x: x**2 / 2, "sine": torch.sin}
_TITLES = {"quadratic": "x²/2", "sine": "sin(x)"}
PROFILES = {
    "quick": {"targets": ["quadratic", "sine"], "spacing": 0.2, "lr": 1e-4, "steps": 40,
              "every": 20, "seeds": 1},
    "default": {"targets": ["quadratic", "sine"], "spacing": 0.01, "lr": 1e-4, "steps": 10000,
                "every": 50, "seeds": 5},
    "paper": {"targets": ["quadratic", "sine"], "spacing": 0.01, "lr": 1e-4, "steps": 10000,
              "every": 50, "seeds": 10},
}
_WIDTH, _DEPTH, _LOWER, _UPPER = 8, 4, -2.0, 2.0


def cells(params: Mapping[str, Any]) -> list[Cell]:
    keys = ("spacing", "lr", "steps", "every")
    return [Cell({"target": t, "width": _WIDTH, "depth": _DEPTH, **{k: params[k] for k in keys}},
                 tuple(range(params["seeds"]))) for t in params["targets"]]


def basis_roughness(model: MLP, lower: float, upper: float) -> list[float]:
    """Per hidden layer ℓ: Σ over its units of the roughness of the unit's output (post-ReLU)
    on [lower, upper], exactly (the spline of the network cut after layer ℓ)."""
    out, mods = [], []
    for layer in model.layers:
        mods += [layer, nn.ReLU()]
        out.append(spline_of(nn.Sequential(*mods), lower, upper).roughness())
    return out


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    n = round((_UPPER - _LOWER) / settings["spacing"]) + 1
    x = torch.linspace(_LOWER, _UPPER, n, dtype=torch.float64)[:, None]
    y = _TARGETS[settings["target"]](x)
    records = []
    for seed in seeds:
        torch.manual_seed(seed)  # PyTorch's default init draws from the global generator
        model = MLP(1, settings["width"], settings["depth"], dtype=torch.float64)
        watch = BreakpointWatch(_LOWER, _UPPER, every=settings["every"])
        basis: list[list[float]] = []

        def callback(step, loss, m, watch=watch, basis=basis):
            if step % watch.every == 0:
                watch.record(m, step, loss)
                basis.append(basis_roughness(m, _LOWER, _UPPER))

        losses = train(model, x, y, lr=settings["lr"], steps=settings["steps"], watch=None,
                       callback=callback)
        hist = watch.history()
        records.append({
            "seed": seed, "steps": hist["step"].tolist(), "loss": hist["loss"].tolist(),
            "roughness": hist["roughness"].tolist(),
            "output_by_layer": [hist[f"roughness_{k}"].tolist()
                                for k in range(1, settings["depth"] + 1)],
            "basis_by_layer": np.asarray(basis).T.tolist(),
            "pieces": hist["pieces"].tolist(), "loss_final": losses[-1],
        })
    return records


def _median_curves(rs, key):
    return np.median(np.asarray([r[key] for r in rs]), axis=0)  # (layers, records)


def _ci_text(ci: tuple[float, float, float], shares: list[float]) -> str:
    mean, lo, hi = ci
    return f"mean {mean:.3f}, 95 % CI [{lo:.3f}, {hi:.3f}], per seed {shares}"


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    targets = params["targets"]
    figure, axes = new_figure(len(targets), 2, width=4.8, height=3.4)
    summary = {}
    for j, t in enumerate(targets):
        rs = [r for r in records if r["settings"]["target"] == t]
        steps = np.asarray(rs[0]["steps"])
        out_med = _median_curves(rs, "output_by_layer")
        basis_med = _median_curves(rs, "basis_by_layer")
        total = np.median(np.asarray([r["roughness"] for r in rs]), axis=0)
        for row, (curves, what) in enumerate(((out_med, "output roughness by inducing layer"),
                                              (basis_med, "basis roughness (Σ over units)"))):
            ax = axes[row, j]
            for k in range(curves.shape[0]):
                ax.plot(steps, curves[k], color=COLORS[k], label=f"layer {k + 1}")
            if row == 0:
                ax.plot(steps, total, "k:", lw=1, label="output total")
            ax.set_yscale("symlog", linthresh=1e-3)
            ax.set_xlabel("GD epoch")
            ax.set_ylabel("roughness")
            ax.set_title(f"{_TITLES[t]}: {what}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        # Shares of the final roughness per seed, then medians.
        final_out = np.asarray([[c[-1] for c in r["output_by_layer"]] for r in rs])  # (S, L)
        final_basis = np.asarray([[c[-1] for c in r["basis_by_layer"]] for r in rs])
        init_basis = np.asarray([[c[0] for c in r["basis_by_layer"]] for r in rs])
        share_out = final_out[:, 1:].sum(1) / np.maximum(final_out.sum(1), 1e-300)
        share_basis = final_basis[:, 1:].sum(1) / np.maximum(final_basis.sum(1), 1e-300)
        summary[t] = {
            "later_share_output": float(np.median(share_out)),
            "later_share_basis": float(np.median(share_basis)),
            # "Most of the roughness": the mean share over seeds with its 95 % t-interval;
            # the claim needs the whole interval above 0.5 (one seed's share varies 0.38–0.62).
            "ci_output": mean_ci(share_out), "ci_basis": mean_ci(share_basis),
            "shares_output": share_out.round(3).tolist(),
            "shares_basis": share_basis.round(3).tolist(),
            "init_basis": np.median(init_basis, axis=0).tolist(),
            "final_basis": np.median(final_basis, axis=0).tolist(),
            "final_output": np.median(final_out, axis=0).tolist(),
            "loss_final": float(np.median([r["loss_final"] for r in rs])),
            "pieces_final": float(np.median([r["pieces"][-1] for r in rs])),
        }
    name = save_figure(figure, out, "roughness_by_layer.png")

    rows = []
    for t in targets:
        s = summary[t]
        rows.append([_TITLES[t], ", ".join(f"{v:.3g}" for v in s["final_output"]),
                     f"{s['later_share_output']:.2f}",
                     ", ".join(f"{v:.3g}" for v in s["init_basis"]),
                     ", ".join(f"{v:.3g}" for v in s["final_basis"]),
                     f"{s['later_share_basis']:.2f}", f"{s['loss_final']:.3g}",
                     f"{s['pieces_final']:.0f}"])
    table = markdown_table(
        ["target", "final output roughness by layer 1…4", "share of layers 2–4",
         "initial basis roughness by layer", "final basis roughness by layer",
         "share of layers 2–4 (basis)", "final loss Σε²", "pieces"], rows)
    sine = summary.get("sine")
    init_lower = (sine is not None
                  and all(v < sine["init_basis"][0] for v in sine["init_basis"][1:]))
    claims = [
        Claim("For the complex target sin(x), most of the output's roughness at the end of "
              "training sits at breakpoints induced by the later layers 2–4: the 95 % "
              "confidence interval of the mean share over seeds lies above 0.5 (our per-layer "
              "definition)",
              passed=sine is not None and sine["ci_output"][1] > 0.5,
              value={t: _ci_text(summary[t]["ci_output"], summary[t]["shares_output"])
                     for t in targets},
              paper="for complex functions most of the roughness is in the later layers "
                    "(Fig. 3, right)", figure=name),
        Claim("Same with the basis-roughness reading of App. A.2 (Σ over a layer's units of the "
              "roughness of their outputs; 95 % interval of the mean share of layers 2–4 above "
              "0.5 for sin(x))",
              passed=sine is not None and sine["ci_basis"][1] > 0.5,
              value={t: _ci_text(summary[t]["ci_basis"], summary[t]["shares_basis"])
                     for t in targets},
              paper="Fig. 3 (right)", figure=name),
        Claim("At initialization the basis functions of deeper layers are smoother than layer "
              "1's (basis roughness of layers 2–4 < layer 1's)",
              passed=bool(init_lower),
              value={t: [round(v, 4) for v in summary[t]["init_basis"]] for t in targets},
              paper="the roughness of the basis functions at initialization in the deeper "
                    "layers is lower than that of the shallow layers (§3)", figure=name),
    ]
    markdown = (
        f"4 hidden layers of width 8, PyTorch default init, float64, data every "
        f"{params['spacing']} on [−2, 2], GD lr {params['lr']} on Σ (f − y)², {params['steps']} "
        f"epochs, recorded every {params['every']}; medians over {params['seeds']} seeds. Top "
        "row of the figure: output roughness split by the layer that induced each knot (sums to "
        "the output's roughness); bottom row: Σ over each layer's units of the roughness of "
        "their outputs. The paper gives Fig. 3 without numbers.\n\n" + table
    )
    return Report(claims=claims, markdown=markdown, figures=[name])


EXPERIMENT = Experiment(
    id="sahs.roughness_by_layer",
    title="Roughness per layer during training (4 hidden layers of width 8), x²/2 and sin(x)",
    paper="Sahs et al. (2020), Fig. 3 and App. A.2",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="Where does the roughness of a deep ReLU network's fit live, layer by layer?",
)
