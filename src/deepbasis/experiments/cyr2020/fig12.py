r"""Transport PINN with constant velocity: LSGD vs GD (Cyr et al. 2020, §5.3, Fig. 12).

:math:`∂_t u + ∂_x u = 0` on [0, 1]² with the tent u0 (peak 1 at x = 0.3, support [0.1, 0.5])
and u(0, t) = 0; loss eq. (19) with ε = 1 on a 101 × 101 grid
(:func:`deepbasis.problems.transport.transport_problem`). One hidden layer of 32 ReLU units,
Box initialization (inputs already in [0, 1]²), Adam with learning rate 0.005, float64; GD runs
5,000 steps and LSGD 500. The exact solution u0(x − t) is in the span of a width-3 ReLU network
(three cut planes along the characteristics x − t = 0.1, 0.3, 0.5), so the loss can reach round-
off: the paper reports LSGD at ~1e-15 "with orders of magnitude fewer iterations than GD".

The training it shares with ``cyr2020.fig13`` and ``cyr2020.appE`` is in :mod:`._pinn`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...runner import Cell, Claim, Experiment, Report
from ..plotting import COLORS, markdown_table, new_figure, save_figure
from ._common import band
from ._pinn import MODEL_KEYS, PAPER_SETTINGS, exact_on_grid, solution_on_grid, train

PROFILES = {
    # seconds: a coarse grid and short runs, to exercise the pipeline in CI
    "quick": {**PAPER_SETTINGS, "n": 21, "width": 8, "gd_steps": 60, "lsgd_steps": 30,
              "error_grid": 41, "seeds": [0, 1]},
    # the paper's settings, 3 seeds (the paper does not say how many it averaged)
    "default": {**PAPER_SETTINGS, "seeds": [0, 1, 2]},
    "paper": {**PAPER_SETTINGS, "seeds": list(range(8))},
}

# -- the experiment --------------------------------------------------------------------------


def cells(params: Mapping[str, Any]) -> list[Cell]:
    base = {k: params[k] for k in ("velocity", "n", "epsilon", "optimizer", "lr",
                                   "error_grid", *MODEL_KEYS)}
    return [Cell({**base, "method": method, "steps": params[f"{method}_steps"]},
                 tuple(params["seeds"])) for method in ("gd", "lsgd")]


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    return train(settings, seeds, keep_parameters=True)


def _by_method(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list] = {"gd": [], "lsgd": []}
    for record in records:
        out[record["settings"]["method"]].append(record)
    for method in out:
        out[method].sort(key=lambda r: r["seed"])
    return out


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    by = _by_method(records)
    gd, lsgd = by["gd"], by["lsgd"]
    figure, axes = new_figure(5, 1, width=3.9, height=3.6)
    ax = axes[0, 0]
    for method, color, group in (("GD", COLORS[0], gd), ("LSGD", COLORS[1], lsgd)):
        band(ax, group, label=f"{method} ({len(group)} seeds)", color=color)
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("iteration")
    ax.set_ylabel("log10 loss J = εJ1 + J2 + J3")
    ax.set_title(f"a = 1, width {params['width']}, depth {params['depth']}, Box, ReLU", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)

    n = 101
    exact = exact_on_grid(params["velocity"], n)
    shown = []
    for ax, name, group in ((axes[0, 1], "GD", gd), (axes[0, 2], "LSGD", lsgd)):
        record = group[0]
        u = solution_on_grid(record["settings"], record["parameters"], n)
        shown.append(u)
        image = ax.imshow(u, origin="lower", extent=(0, 1, 0, 1), vmin=-0.1, vmax=1.1,
                          cmap="viridis", aspect="auto")
        ax.set_title(f"{name} after {record['settings']['steps']} steps (seed "
                     f"{record['seed']})\nloss {_fmt(record['final_loss'])}, rel. L2 error "
                     f"{_fmt(record['relative_l2'])}", fontsize=9)
        ax.set_xlabel("x")
        ax.set_ylabel("t")
    figure.colorbar(image, ax=axes[0, 2], fraction=0.05)
    ax = axes[0, 3]
    s = np.linspace(0, 1, n)
    for k, t_index in enumerate((25, 75)):
        ax.plot(s, exact[t_index], color="k", ls="--", lw=1.2,
                label="exact" if k == 0 else None)
        ax.plot(s, shown[0][t_index], color=COLORS[0], lw=1.2, label="GD" if k == 0 else None)
        ax.plot(s, shown[1][t_index], color=COLORS[1], lw=1.2, ls=":",
                label="LSGD" if k == 0 else None)
        peak = 0.3 + s[t_index]  # where the exact tent peaks at this t
        ax.annotate(f"t = {s[t_index]:.2f}", (min(peak, 0.88), 1.03), ha="center", fontsize=8)
    ax.set_xlabel("x")
    ax.set_ylabel("u(x, t)")
    ax.set_ylim(-0.15, 1.15)
    ax.set_title("slices t = 0.25 and t = 0.75", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[0, 4]
    tiny = np.finfo(float).tiny
    for label, color, u in (("GD", COLORS[0], shown[0]), ("LSGD", COLORS[1], shown[1])):
        ax.semilogy(s, np.maximum(np.abs(u - exact).max(axis=0), tiny), color=color, lw=1.2,
                    label=label)
    ax.set_xlabel("x")
    ax.set_ylabel("max over t of |NN − u|")
    ax.set_title("pointwise error (seed shown)", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    name = save_figure(figure, out, "fig12.png")

    lsgd_final = [r["final_loss"] for r in lsgd]
    gd_final = [r["final_loss"] for r in gd]
    lsgd_worst = max(_as_float(v) for v in lsgd_final)
    gd_best = min(_as_float(v) for v in gd_final)
    ratio = gd_best / lsgd_worst if lsgd_worst > 0 else math.inf
    lsgd_steps, gd_steps = lsgd[0]["settings"]["steps"], gd[0]["settings"]["steps"]
    claims = [
        Claim(f"LSGD reaches loss ≤ 1e-12 in float64 within {lsgd_steps} steps (every seed)",
              passed=bool(lsgd_worst <= 1e-12),
              value={"lsgd_worst_final_loss": lsgd_worst, "seeds": len(lsgd)},
              paper="LSGD converges to 1e-15 in double precision", figure=name),
        Claim(f"GD after {gd_steps} steps stays ≥ 1e4 × above LSGD after {lsgd_steps} steps "
              "(best GD seed vs worst LSGD seed)",
              passed=bool(ratio >= 1e4),
              value={"gd_best_final_loss": gd_best, "lsgd_worst_final_loss": lsgd_worst,
                     "ratio": ratio},
              paper="orders of magnitude fewer iterations than GD", figure=name),
    ]
    rows = []
    for method, group in (("GD", gd), ("LSGD", lsgd)):
        for r in group:
            terms = r["term_losses"]
            rows.append([method, r["seed"], r["settings"]["steps"], _fmt(r["loss"][0]),
                         _fmt(r["final_loss"]), _fmt(terms.get("pde")),
                         _fmt(terms.get("initial")), _fmt(terms.get("inflow")),
                         _fmt(r["relative_l2"]), f"{r.get('wall_time', math.nan):.1f}"])
    markdown = markdown_table(["method", "seed", "steps", "loss[0]", "final loss", "εJ1", "J2",
                               "J3", "rel. L2 error", "wall s"], rows)
    return Report(claims=claims, markdown=markdown, figures=[name])


def _as_float(value: float | None) -> float:
    return math.inf if value is None else float(value)


def _fmt(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.3g}"


EXPERIMENT = Experiment(
    id="cyr2020.fig12",
    title="Transport PINN, a = 1: LSGD (500 steps) vs GD (5,000 steps)",
    paper="Cyr et al. (2020), §5.3, Fig. 12",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description=(
        "∂t u + ∂x u = 0 on [0, 1]², tent u0 (peak 1 at x = 0.3, support [0.1, 0.5]), u(0, t) = "
        "0; loss eq. (19) with ε = 1 on a 101 × 101 grid; width 32, depth 1, Box, ReLU, Adam lr "
        "0.005, float64. The relative L2 error is against u0(x − t) on a 201 × 201 grid."
    ),
)
