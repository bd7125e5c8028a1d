"""Flat vs 'spiky' initialization: generalization (Sahs et al. 2020, Table 3 / App. A.3, Figs. 4
and 6; 2022, Fig. 10 top).

20 random training points in [−2, 2], test points every 0.01. Shallow: 21 units, PyTorch's
default init vs ``init.spiky_`` (set exactly to a 20-breakpoint CPWL with values ~ U[−2, 2]).
Deep: 4 hidden layers of width 8, default init vs the same weights pretrained for 10,000 epochs
(GD, lr 1e-4) on such a CPWL. Then GD for 20,000 epochs at lr 1e-4 (shallow spiky: lr/5, as in
the paper) on the summed squared error; test loss = summed squared error on the test grid.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...analysis import spline_of
from ...init import spiky_, torch_default_
from ...nn import MLP
from ...runner import Cell, Claim, Experiment, Report
from ..plotting import COLORS, markdown_table, new_figure, save_figure
from ._common import LABELS, TARGETS, fmt, mean_sd, summed_loss, train

TARGET_NAMES = ["sin", "arctan", "peaks", "cubic", "square", "exp_half"]
VARIANTS = ["shallow", "spiky shallow", "deep", "spiky deep"]
PAPER = {  # 2020 Table 3: shallow, spiky shallow, deep, spiky deep
    "sin": ["42.95 ± 6.406", "157.5 ± 60.27", "31.48 ± 7.078", "122.0 ± 128.2"],
    "arctan": ["0.01252 ± 0.0765", "2.499 ± 1.257", "0.9795 ± 0.9355", "32.57 ± 26.10"],
    "peaks": ["156.9 ± 12.45", "150.1 ± 61.48", "148.1 ± 8.755", "198.0 ± 170.9"],
    "cubic": ["3.608 ± 1.683", "136.7 ± 124.1", "56.77 ± 98.91", "191.6 ± 114.1"],
    "square": ["3.559 ± 4.553", "150.6 ± 49.00", "1.741 ± 1.296", "46.02 ± 19.42"],
    "exp_half": ["0.6509 ± 0.5928", "181.1 ± 75.36", "1.339 ± 1.292", "54.50 ± 37.77"],
}
_COMMON = {"targets": TARGET_NAMES, "train_points": 20, "lr": 1e-4, "spiky_lr_factor": 0.2}
PROFILES = {
    "quick": {**_COMMON, "targets": ["square"], "epochs": 40, "pretrain": 20, "seeds": 1},
    "default": {**_COMMON, "epochs": 20_000, "pretrain": 10_000, "seeds": 2},
    "paper": {**_COMMON, "epochs": 20_000, "pretrain": 10_000, "seeds": 5},
}


def cells(params: Mapping[str, Any]) -> list[Cell]:
    keys = ("train_points", "lr", "spiky_lr_factor", "epochs", "pretrain")
    return [Cell({"target": t, "variant": v, **{k: params[k] for k in keys}},
                 tuple(range(params["seeds"])))
            for t in params["targets"] for v in VARIANTS]


def _model(variant: str, seed: int, pretrain: int):
    deep = "deep" in variant
    model = MLP(1, 8 if deep else 21, 4 if deep else 1, dtype=torch.float64)
    torch_default_(model, generator=seed)
    if variant.startswith("spiky"):
        # The CPWL is drawn from its own stream, the same for the shallow and deep variants.
        spiky_(model, pretrain_epochs=pretrain, lr=1e-4, generator=50_000 + seed)
    return model


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    f = TARGETS[settings["target"]]
    x_test = torch.linspace(-2, 2, 401, dtype=torch.float64)[:, None]
    y_test = f(x_test)
    out = []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        x = (torch.rand(settings["train_points"], 1, generator=g, dtype=torch.float64) * 4 - 2)
        y = f(x)
        variant = settings["variant"]
        model = _model(variant, seed, settings["pretrain"])
        initial = copy.deepcopy(model)
        lr = settings["lr"] * (settings["spiky_lr_factor"] if variant == "spiky shallow" else 1)
        losses = train(model, x, y, epochs=settings["epochs"], lr=lr)
        before, after = spline_of(initial, -2, 2), spline_of(model, -2, 2)
        out.append({
            "seed": seed, "train_loss": losses[-1], "test_loss": summed_loss(model, x_test,
                                                                             y_test),
            "initial_roughness": before.roughness(), "final_roughness": after.roughness(),
            "x": x[:, 0].tolist(), "initial_points": before.points.tolist(),
            "initial_values": before.values[:, 0].tolist(),
            "final_points": after.points.tolist(), "final_values": after.values[:, 0].tolist(),
        })
    return out


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    def group(t, v):
        return [r for r in records if r["settings"]["target"] == t and r["settings"]["variant"]
                == v]

    targets = params["targets"]
    rows, test, trainl = [], {}, {}
    for t in targets:
        row = [LABELS[t]]
        for k, v in enumerate(VARIANTS):
            m, sd = mean_sd(r["test_loss"] for r in group(t, v))
            test[(t, v)] = m
            trainl[(t, v)] = mean_sd(r["train_loss"] for r in group(t, v))[0]
            row += [fmt(m, sd), PAPER[t][k]]
        rows.append(row)
    header = ["target"] + [h for v in VARIANTS for h in (f"{v} (ours)", "paper")]
    table = markdown_table(header, rows)
    train_rows = [[LABELS[t]] + [f"{trainl[(t, v)]:.3g}" for v in VARIANTS] for t in targets]
    train_table = markdown_table(["target"] + [f"{v}: train loss" for v in VARIANTS], train_rows)

    figure, axes = new_figure(2, 2, width=4.6, height=3.2)
    t = "sin" if "sin" in targets else targets[0]
    grid = np.linspace(-2, 2, 400)
    for row, kind in enumerate(("shallow", "deep")):
        for col, stage in enumerate(("initial", "final")):
            ax = axes[row, col]
            ax.plot(grid, TARGETS[t](torch.from_numpy(grid)).numpy(), color="k", lw=2.5,
                    alpha=0.25, label="target")
            for color, v in zip(COLORS, (kind, f"spiky {kind}"), strict=False):
                r = group(t, v)[0]
                ax.plot(r[f"{stage}_points"], r[f"{stage}_values"], color=color, lw=1.1,
                        label=f"{v}" + (f", test {r['test_loss']:.3g}" if stage == "final"
                                        else ""))
            r = group(t, kind)[0]
            ax.plot(r["x"], TARGETS[t](torch.tensor(r["x"])).numpy(), "k.", ms=5)
            ax.set_ylim(-3, 3)
            ax.set_title(f"{LABELS[t]}, {kind}: {'before' if stage == 'initial' else 'after'} "
                         "training", fontsize=9)
            ax.legend(fontsize=7)
    name = save_figure(figure, out, "spiky.png")

    worse = {kind: sum(test[(t, f"spiky {kind}")] > test[(t, kind)] for t in targets)
             for kind in ("shallow", "deep")}
    need = max(1, int(np.ceil(0.8 * len(targets))))
    # "Both fit the training data": App. A.3 gives the paper's own final training losses, "for
    # sine, final training loss was .94 for spiky and 1.02 for standard" (sums over the 20
    # points, RMS ≈ 0.23 per point), and calls that fitting "near perfectly". That value is the
    # absolute bar here, for every target and variant. (An earlier check compared spiky /
    # standard ratios of two small losses, which says nothing about fitting.)
    fit_bar = 1.02
    fitted = {f"{LABELS[t]} {v}": round(trainl[(t, v)], 3) for t in targets for v in VARIANTS}
    claims = [
        Claim(f"Spiky init generalizes worse (higher mean test loss) for ≥ {need} of "
              f"{len(targets)} targets, shallow",
              passed=bool(worse["shallow"] >= need), value={"targets worse": worse["shallow"]},
              paper="5 of 6 (all but the sawtooth)", figure=name),
        Claim(f"... and deep (≥ {need} of {len(targets)})", passed=bool(worse["deep"] >= need),
              value={"targets worse": worse["deep"]}, paper="6 of 6", figure=name),
        Claim(f"Both fit the training data: mean final training loss (sum over the 20 points) "
              f"≤ {fit_bar} — the paper's own final value for standard-init sine, RMS 0.23 per "
              "point — for every target and variant",
              passed=all(v <= fit_bar for v in fitted.values()),
              value={"above the bar": {k: v for k, v in fitted.items() if v > fit_bar},
                     "largest": max(fitted.values())},
              paper="\"both networks fit the training data near perfectly\"; sine: final "
                    "training loss .94 (spiky) and 1.02 (standard), App. A.3",
              figure=name),
    ]
    markdown = (f"{params['seeds']} trials; GD {params['epochs']} epochs, lr {params['lr']} "
                f"(spiky shallow × {params['spiky_lr_factor']}); deep spiky pretrained "
                f"{params['pretrain']} epochs. Test loss: summed squared error on 401 points "
                "(the paper's losses look like sums too).\n\n" + table + "\n\nFinal training "
                "losses (sum over the 20 points):\n\n" + train_table)
    return Report(claims=claims, markdown=markdown, figures=[name])


EXPERIMENT = Experiment(
    id="sahs.spiky",
    title="Flat vs spiky initialization, shallow and deep, six targets",
    paper="Sahs et al. (2020), Table 3 / App. A.3, Figs. 4, 6",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="Generalization from 20 points after GD from a flat or a rough initial spline.",
)
