"""Training loss vs number of pieces: gradient-descent variants against optimal piecewise-linear
fits (Sahs et al. 2020, Fig. 1 left; 2022, Fig. 9) — and deepbasis's Box + LSGD beside them.

Target x² on [−1, 1], 500 evenly spaced points; budgets of k pieces. Optimal fits
(``deepbasis.reference``): exact DP (Bai & Perron; **discontinuous** pieces), Greedy Merge
(Acharya et al.; discontinuous, approximate) and the continuous free-knot optimum (what a ReLU
network can represent; best of local optima). Networks: shallow ReLU with k − 1 units (at most
k pieces) trained from PyTorch's default init by full-batch GD, Adam, and mini-batch SGD with
BatchNorm (the paper's three), and by deepbasis's Box initialization + LSGD (least-squares
head, Adam on the hidden layers), shallow and deep (4 layers, ⌈(k − 1)/4⌉ units each). Every
method gets the same number of parameter updates; a network's pieces are counted exactly on
[−1, 1] after training (``analysis.count_pieces``), and its loss is the training MSE.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ... import fit
from ...analysis import count_pieces
from ...init import box_, torch_default_
from ...nn import MLP
from ...reference import continuous_pwl_fit, greedy_merge, optimal_segmentation
from ...runner import Cell, Claim, Experiment, Report
from ..plotting import COLORS, markdown_table, new_figure, save_figure
from ._common import train

NETWORKS = ["gd", "adam", "sgd_batchnorm", "lsgd_shallow", "lsgd_deep"]
OPTIMAL = ["dp", "greedy_merge", "continuous"]
LABELS = {"dp": "DP (discontinuous optimum)", "greedy_merge": "Greedy Merge (discont.)",
          "continuous": "continuous optimum", "gd": "GD", "adam": "Adam",
          "sgd_batchnorm": "SGD + BatchNorm", "lsgd_shallow": "Box + LSGD, shallow",
          "lsgd_deep": "Box + LSGD, depth 4"}
LR = {"gd": 0.05, "adam": 1e-3, "sgd_batchnorm": 0.05, "lsgd_shallow": 5e-3, "lsgd_deep": 5e-3}
_COMMON = {"points": 500, "batch": 32}
PROFILES = {
    "quick": {**_COMMON, "pieces": [4, 8], "steps": 20, "seeds": 1},
    "default": {**_COMMON, "pieces": [2, 4, 8, 16, 32, 64, 128], "steps": 3000, "seeds": 2},
    "paper": {**_COMMON, "pieces": [2, 4, 8, 16, 32, 64, 128, 256], "steps": 20_000,
              "seeds": 5},
}


def cells(params: Mapping[str, Any]) -> list[Cell]:
    out = [Cell({"method": m, "pieces": k, "points": params["points"]}, (0,))
           for m in OPTIMAL for k in params["pieces"]]
    out += [Cell({"method": m, "pieces": k, "points": params["points"], "steps": params["steps"],
                  "lr": LR[m], "batch": params["batch"]}, tuple(range(params["seeds"])))
            for m in NETWORKS for k in params["pieces"]
            if not (m == "lsgd_deep" and k < 8)]
    return out


def _data(points: int):
    x = torch.linspace(-1, 1, points, dtype=torch.float64)[:, None]
    return x, x**2


def _optimal(method: str, k: int, x, y) -> dict[str, Any]:
    xs, ys = x[:, 0].numpy(), y[:, 0].numpy()
    n = xs.shape[0]
    if method == "dp":
        sse, pieces = optimal_segmentation(xs, ys, k).cost, k
    elif method == "greedy_merge":
        sse, pieces = greedy_merge(xs, ys, k).cost, k
    else:
        # Many knots: cap each local solve (each finite-difference Jacobian costs k solves).
        result = continuous_pwl_fit(xs, ys, k, random_starts=0, sweeps=1 if k <= 16 else 0,
                                    max_evaluations=None if k <= 32 else 4 * k, generator=0)
        sse, pieces = result.cost, result.num_pieces
    return {"mse": sse / n, "pieces": pieces}


def _folded(model: nn.Sequential) -> nn.Sequential:
    """The eval-mode BatchNorm network as Linear → ReLU → Linear (BatchNorm folded in)."""
    lin, bn, _, head = model
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    first = nn.Linear(1, lin.out_features).double()
    with torch.no_grad():
        first.weight.copy_(lin.weight * scale[:, None])
        first.bias.copy_((lin.bias - bn.running_mean) * scale + bn.bias)
    return nn.Sequential(first, nn.ReLU(), head)


def _network(settings, seed: int, x, y) -> dict[str, Any]:
    method, k, steps, lr = settings["method"], settings["pieces"], settings["steps"], settings["lr"]
    width = max(1, k - 1)
    if method.startswith("lsgd"):
        deep = method == "lsgd_deep"
        model = MLP(1, math.ceil(width / 4) if deep else width, 4 if deep else 1,
                    domain=(-1.0, 1.0), dtype=torch.float64)
        box_(model, generator=seed)
        fit(model, x, y, method="lsgd", steps=steps, lr=lr, progress=False)
        counted = model
    elif method == "sgd_batchnorm":
        torch.manual_seed(seed)  # BatchNorm's own init is deterministic; Linear re-drawn below
        model = nn.Sequential(nn.Linear(1, width), nn.BatchNorm1d(width), nn.ReLU(),
                              nn.Linear(width, 1)).double()
        torch_default_(model, generator=seed)
        batches = max(1, settings["points"] // settings["batch"])
        g = torch.Generator().manual_seed(seed)
        # `train` sums the squared error: lr / batch makes the step that of the batch mean.
        train(model, x, y, epochs=max(1, steps // batches), lr=lr / settings["batch"],
              batch_size=settings["batch"], generator=g)
        model.eval()
        counted = _folded(model)
    else:
        model = torch_default_(MLP(1, width, 1, dtype=torch.float64), generator=seed)
        # On the mean squared error (Fig. 1): `train` sums, so GD's lr is divided by N; Adam is
        # invariant to the loss scale.
        train(model, x, y, epochs=steps, lr=lr / x.shape[0] if method == "gd" else lr,
              optimizer=method)
        counted = model
    with torch.no_grad():
        mse = float(((counted(x) - y) ** 2).mean())
    return {"mse": mse, "pieces": count_pieces(counted, -1.0, 1.0)}


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    x, y = _data(settings["points"])
    out = []
    for seed in seeds:
        if settings["method"] in OPTIMAL:
            rec = _optimal(settings["method"], settings["pieces"], x, y)
        else:
            rec = _network(settings, seed, x, y)
        out.append({"seed": seed, **rec})
    return out


def _pieces_for(points: list[tuple[int, float]], level: float) -> float | None:
    """Fewest pieces at which a method's loss is ≤ level (None: never)."""
    ok = [p for p, loss in points if loss <= level]
    return min(ok) if ok else None


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    methods = OPTIMAL + NETWORKS
    curves = {m: [(r["pieces"], r["mse"]) for r in records if r["settings"]["method"] == m]
              for m in methods}
    figure, axes = new_figure(1, 1, width=6.2, height=4.4)
    ax = axes[0, 0]
    styles = {"dp": ("k", "-", "s"), "greedy_merge": ("#7f7f7f", "-", "^"),
              "continuous": ("#8c564b", "-", "D")}
    for i, m in enumerate(methods):
        pts = sorted(curves[m])
        if not pts:
            continue
        color, ls, marker = styles.get(m, (COLORS[i % len(COLORS)], "none", "o"))
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, np.maximum(ys, 1e-18), ls=ls, marker=marker, color=color, ms=4,
                label=LABELS[m], alpha=0.85)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("number of linear pieces on [−1, 1]")
    ax.set_ylabel("training MSE")
    ax.set_title("x² on [−1, 1]: training loss vs pieces", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    name = save_figure(figure, out, "gd_vs_pwl.png")

    pieces = params["pieces"]
    k_ref = 16 if 16 in pieces else pieces[len(pieces) // 2]
    level = min(loss for p, loss in curves["dp"] if p == k_ref)
    need = {m: _pieces_for(curves[m], level) for m in methods}
    biggest = max(p for m in NETWORKS for p, _ in curves[m])
    ratios = {m: (round(need[m] / k_ref, 2) if need[m] is not None
                  else f"> {biggest / k_ref:g} (never reached)") for m in methods}
    gd_family = ["gd", "adam", "sgd_batchnorm"]
    orders = all(need[m] is None or need[m] >= 10 * k_ref for m in gd_family)
    rows = []
    for m in methods:
        by_k = {}
        for p, loss in curves[m]:
            by_k.setdefault(p, []).append(loss)
        best = min(curves[m], key=lambda t: t[1]) if curves[m] else (None, None)
        rows.append([LABELS[m], need[m] if need[m] is not None else "—", ratios[m],
                     f"{best[1]:.3g} at {best[0]}" if best[0] else "—"])
    table = markdown_table(["method", f"pieces to reach DP's loss at k = {k_ref} "
                            f"({level:.2e})", "÷ k", "lowest MSE (at pieces)"], rows)
    lsgd = [m for m in ("lsgd_shallow", "lsgd_deep") if need[m] is not None]
    claims = [
        Claim(f"DP and Greedy Merge need orders of magnitude fewer pieces than any GD variant "
              f"for the same loss (GD, Adam, SGD+BN need ≥ 10× the {k_ref} pieces DP uses to "
              f"reach MSE {level:.2e}, or never reach it)",
              passed=bool(orders), value={m: ratios[m] for m in gd_family + ["greedy_merge"]},
              paper="orders of magnitude more pieces for GD (Fig. 1 / Fig. 9)", figure=name),
        Claim("Beyond the papers: Box + LSGD reaches DP's loss with < 10× its pieces "
              "(closes the gap by an order of magnitude)",
              passed=bool(lsgd and min(need[m] for m in lsgd) < 10 * k_ref),
              value={m: ratios[m] for m in ("lsgd_shallow", "lsgd_deep")},
              paper="not in the papers", figure=name),
        Claim("Strict ordering among GD variants: Adam below SGD+BatchNorm below GD (mean "
              "log10 MSE over budgets)",
              passed=bool(_mean_log(curves["adam"]) < _mean_log(curves["sgd_batchnorm"])
                          < _mean_log(curves["gd"])),
              value={m: round(_mean_log(curves[m]), 2) for m in gd_family},
              paper="Adam < BatchNorm SGD < vanilla GD", figure=name),
    ]
    markdown = (f"{params['points']} points; {params['steps']} parameter updates per network "
                f"(SGD+BN: mini-batches of {params['batch']}); learning rates {LR}; "
                f"{params['seeds']} seeds per network (each a point). DP and Greedy Merge fit "
                "discontinuous pieces, so they are below what any continuous fit can reach; the "
                "continuous optimum is the fair floor for networks.\n\n" + table)
    return Report(claims=claims, markdown=markdown, figures=[name])


def _mean_log(points) -> float:
    return float(np.mean([math.log10(max(loss, 1e-300)) for _, loss in points]))


EXPERIMENT = Experiment(
    id="sahs.gd_vs_pwl",
    title="Training loss vs pieces: DP, Greedy Merge, continuous optimum, GD variants, LSGD",
    paper="Sahs et al. (2020), Fig. 1 (left); Sahs et al. (2022), Fig. 9",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="How many pieces does each method need for a given training loss on x²?",
)
