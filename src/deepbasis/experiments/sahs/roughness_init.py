"""Initial roughness ρ₀ = Σ μ_i² of shallow networks under He and Glorot (Sahs et al. 2020,
Thm 2; App. C.5).

Monte Carlo over many networks at several widths, with the weights ``init.he_`` /
``init.glorot_`` draw (normal: input weights N(0, σ_w²), output weights N(0, σ_v²); biases do
not enter ρ₀), drawn as one (networks, H) array per cell; ρ₀ = Σ (w_i v_i)². The first
networks of each cell are also built with the initializers themselves and their BDSO roughness
checked against the same formula. E[ρ₀] = 4 under He for every width and 4H/(H + 1)² under
Glorot, Var[ρ₀] = 8 H σ_v⁴ σ_w⁴.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...analysis import bdso
from ...analysis import bdso_distributions as dist
from ...init import initialize_
from ...nn import MLP
from ...runner import Cell, Claim, Experiment, Report
from ..plotting import COLORS, markdown_table, new_figure, save_figure

PROFILES = {
    "quick": {"widths": [2, 20], "networks": 2000, "seeds": 1},
    "default": {"widths": [1, 2, 5, 10, 20, 50, 100, 200, 500], "networks": 20000, "seeds": 5},
    "paper": {"widths": [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], "networks": 100000,
              "seeds": 5},
}


def cells(params: Mapping[str, Any]) -> list[Cell]:
    return [Cell({"init": init, "width": w, "networks": params["networks"]},
                 tuple(range(params["seeds"])))
            for init in ("he", "glorot") for w in params["widths"]]


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    init, width, count = settings["init"], settings["width"], settings["networks"]
    sw, sv = _sigmas(init, width)
    out = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(1000 * seed + (0 if init == "he" else 1))
        w = torch.randn(count, width, generator=gen, dtype=torch.float64) * sw
        v = torch.randn(count, width, generator=gen, dtype=torch.float64) * sv
        rho = ((w * v) ** 2).sum(dim=1).numpy()  # (networks,)
        # The same through the initializers and the spline view, for a few networks.
        built = []
        for k in range(5):
            model = initialize_(MLP(1, width, 1, dtype=torch.float64), init,
                                generator=seed * 100 + k, distribution="normal")
            b = bdso(model)
            w1, v1 = model.layers[0].weight[:, 0].detach(), model.head.weight[0].detach()
            built.append(abs(b.roughness() - float(((w1 * v1) ** 2).sum())))
        out.append({"seed": seed, "mean": float(rho.mean()), "var": float(rho.var(ddof=1)),
                    "n": count, "q99": float(np.quantile(rho, 0.99)),
                    "bdso_check": max(built)})
    return out


def _sigmas(init: str, width: int) -> tuple[float, float]:
    if init == "he":
        return math.sqrt(2.0), math.sqrt(2.0 / width)
    s = math.sqrt(2.0 / (width + 1))
    return s, s


def _theory(init: str, width: int) -> tuple[float, float]:
    sw, sv = _sigmas(init, width)
    return (dist.expected_initial_roughness(width, sw, sv),
            dist.initial_roughness_variance(width, sw, sv))


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    rows, within, summary = [], True, {}
    figure, axes = new_figure(1, 1, width=5.5, height=4.0)
    ax = axes[0, 0]
    for color, init in zip(COLORS, ("he", "glorot"), strict=False):
        ws, means, ses = [], [], []
        for w in params["widths"]:
            recs = [r for r in records if r["settings"]["init"] == init
                    and r["settings"]["width"] == w]
            n = sum(r["n"] for r in recs)
            mean = sum(r["mean"] * r["n"] for r in recs) / n
            var = sum(r["var"] * (r["n"] - 1) for r in recs) / (n - len(recs))
            se = math.sqrt(var / n)
            expected, theory_var = _theory(init, w)
            z = (mean - expected) / se
            within &= abs(z) < 4
            summary[f"{init} H={w}"] = round(z, 2)
            rows.append([init, w, f"{mean:.4g} ± {se:.2g}", f"{expected:.4g}", f"{z:+.2f}",
                         f"{var:.3g}", f"{theory_var:.3g}", n])
            ws.append(w)
            means.append(mean)
            ses.append(se)
        ax.errorbar(ws, means, yerr=np.asarray(ses) * 2, color=color, marker="o", ls="none",
                    capsize=3, label=f"{'He' if init == 'he' else 'Glorot'}: Monte Carlo (±2 SE)")
        grid = np.geomspace(min(ws), max(ws), 200)
        ax.plot(grid, [_theory(init, g)[0] for g in grid], color=color, lw=1,
                label="4" if init == "he" else "4H/(H+1)²")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("width H")
    ax.set_ylabel("E[ρ₀] = E[Σ μ²]")
    ax.set_title("Initial roughness of shallow ReLU networks")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    name = save_figure(figure, out, "roughness_init.png")
    table = markdown_table(["init", "H", "mean ρ₀ ± SE (ours)", "E[ρ₀] (Thm 2)",
                            "z", "Var ρ₀ (ours)", "8Hσ_v⁴σ_w⁴"], [r[:-1] for r in rows])
    claims = [Claim(
        "E[ρ₀] = 4 under He and 4H/(H+1)² under Glorot, within Monte Carlo error "
        "(|mean − E| < 4 standard errors at every width)",
        passed=bool(within), value=summary, paper="Thm 2: E = 4 (He), 4H/(H+1)² (Glorot)",
        figure=name)]
    markdown = (f"{params['networks']} networks × {params['seeds']} seeds per cell, built by "
                "`init.he_` / `init.glorot_` with normal draws; ρ₀ = Σ μ_i² from the BDSO form. "
                "z = (mean − E[ρ₀]) / SE.\n\n" + table)
    return Report(claims=claims, markdown=markdown, figures=[name])


EXPERIMENT = Experiment(
    id="sahs.roughness_init",
    title="Monte Carlo initial roughness under He and Glorot",
    paper="Sahs et al. (2020), Theorem 2",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="E[ρ₀] of shallow networks vs width: 4 (He), 4H/(H+1)² (Glorot).",
)
