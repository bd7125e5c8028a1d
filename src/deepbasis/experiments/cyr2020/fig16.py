"""Basis functions at initialization, plain and residual (Cyr et al. 2020, Figs. 16 and 17,
App. D).

Setting: ReLU networks ``MLP(1, 8, L)`` of width 8 on the input interval [0, 1], plain
(Fig. 16) and residual (Fig. 17), initialized with uniform Glorot, uniform He (both with zero
biases, the paper's baselines) or Box (residual: eqs. 12–16). The figures plot the eight basis
functions Φ_i(x) = features(x) at initialization for increasing depth (rows) and the three
initializations (columns), seed 0. The depths are not legible in our copy of the paper; we use
L = 1, 2, 4, 8, 16 for plain networks (Fig. 5's depths) and L = 8, 16, 32, 64, 128 for residual
ones (Fig. 7's).

**Figure only: no claims are evaluated** (EXPERIMENTS.md). For orientation the report
tabulates, per panel and over all seeds, simple numbers: how many basis functions are constant
on [0, 1] (max − min ≤ 1e-10 × max|Φ|), the rank of the basis with the constant function
(singular values of [1, Φ], columns scaled to unit norm, above 1e-10 × the largest), and
max |Φ|. With zero biases a ReLU
network, plain or residual, is positively homogeneous, so every Glorot or He basis function is
c_i · x on [0, 1] (c_i ≥ 0): the rank of [1, Φ] is at most 2 whatever the depth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...init import initialize_
from ...nn import MLP
from ...runner import Cell, Experiment, Report
from ..plotting import COLORS, markdown_table, new_figure, save_figure

INIT_LABELS = {"glorot": "Glorot", "he": "He", "box": "Box"}
_COMMON = {"width": 8, "dtype": "float64", "inits": ["glorot", "he", "box"], "tol": 1e-10}
PROFILES = {
    "quick": {**_COMMON, "points": 257, "seeds": 2, "plain_depths": [1, 4],
              "residual_depths": [8, 32]},
    "default": {**_COMMON, "points": 1025, "seeds": 8, "plain_depths": [1, 2, 4, 8, 16],
                "residual_depths": [8, 16, 32, 64, 128]},
    "paper": {**_COMMON, "points": 4097, "seeds": 32, "plain_depths": [1, 2, 4, 8, 16],
              "residual_depths": [8, 16, 32, 64, 128]},
}
PLOT_SEED = 0


def cells(params: Mapping[str, Any]) -> list[Cell]:
    seeds = tuple(range(params["seeds"]))
    keys = ("width", "points", "dtype", "tol")
    out = []
    for residual, depths in ((False, params["plain_depths"]), (True, params["residual_depths"])):
        out += [Cell({**{k: params[k] for k in keys}, "residual": residual, "init": init,
                      "depth": depth}, seeds)
                for init in params["inits"] for depth in depths]
    return out


def build_model(settings: Mapping[str, Any], seed: int) -> MLP:
    model = MLP(1, settings["width"], settings["depth"], residual=settings["residual"],
                dtype=getattr(torch, settings["dtype"]))
    return initialize_(model, settings["init"], generator=seed)


@torch.no_grad()
def basis(settings: Mapping[str, Any], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``x (N,)`` evenly spaced on [0, 1] and the basis ``Φ(x) (N, w)`` at initialization."""
    model = build_model(settings, seed)
    x = torch.linspace(0.0, 1.0, settings["points"], dtype=getattr(torch, settings["dtype"]))
    return x.numpy(), model.features(x[:, None]).numpy()  # (N,), (N, w)


def basis_numbers(phi: np.ndarray, tol: float) -> dict[str, Any]:
    """Constant count, rank of [1, Φ], and max |Φ| (see the module docstring)."""
    if not np.isfinite(phi).all():
        return {"constant": None, "rank": None, "max_abs": None}
    scale = float(np.abs(phi).max())
    spread = phi.max(axis=0) - phi.min(axis=0)  # (w,)
    constant = int((spread <= tol * max(scale, np.finfo(float).tiny)).sum())
    design = np.concatenate([np.ones((len(phi), 1)), phi], axis=1)  # (N, w + 1)
    # Unit columns: the rank must not depend on the basis' scale (He residual reaches 1e27,
    # which would otherwise drown the constant column below the cutoff).
    norms = np.linalg.norm(design, axis=0)
    design = design[:, norms > 0] / norms[norms > 0]
    singular = np.linalg.svd(design, compute_uv=False)
    rank = int((singular > tol * singular[0]).sum())
    return {"constant": constant, "rank": rank, "max_abs": scale}


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    return [{"seed": seed, **basis_numbers(basis(settings, seed)[1], settings["tol"])}
            for seed in seeds]


def _figure(groups, params, residual: bool, depths: Sequence[int], out: Path, name: str) -> str:
    inits = params["inits"]
    figure, axes = new_figure(len(inits), len(depths), width=3.3, height=2.1)
    kind = "ResNet" if residual else "Plain"
    for col, init in enumerate(inits):
        for row, depth in enumerate(depths):
            ax = axes[row, col]
            settings = groups[(residual, init, depth)][0]["settings"]
            x, phi = basis(settings, PLOT_SEED)
            for i in range(phi.shape[1]):
                ax.plot(x, phi[:, i], lw=0.9, color=COLORS[i % len(COLORS)])
            numbers = basis_numbers(phi, settings["tol"])
            ax.text(0.02, 0.96, f"const {numbers['constant']}/{phi.shape[1]}, rank "
                    f"{numbers['rank']}, max|Φ| {numbers['max_abs']:.2g}",
                    transform=ax.transAxes, fontsize=6.5, va="top",
                    bbox={"facecolor": "white", "alpha": 0.7, "lw": 0, "pad": 1})
            ax.tick_params(labelsize=6)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(INIT_LABELS.get(init, init), fontsize=10)
            if col == 0:
                ax.set_ylabel(f"L = {depth}", fontsize=9)
            if row == len(depths) - 1:
                ax.set_xlabel("x", fontsize=8)
    figure.suptitle(f"{kind} width-{params['width']} basis functions Φ_i(x) at initialization, "
                    f"seed {PLOT_SEED} (rank: of [1, Φ])", fontsize=10)
    return save_figure(figure, out, name)


def _stat(values: Sequence[Any], fmt: str) -> str:
    if any(v is None for v in values):
        return "non-finite"
    return format(float(np.median(values)), fmt)


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for record in records:
        s = record["settings"]
        groups.setdefault((s["residual"], s["init"], s["depth"]), []).append(record)
    figures = [
        _figure(groups, params, False, params["plain_depths"], out, "fig16_plain.png"),
        _figure(groups, params, True, params["residual_depths"], out, "fig17_residual.png"),
    ]
    rows = []
    for residual, depths in ((False, params["plain_depths"]), (True, params["residual_depths"])):
        for init in params["inits"]:
            for depth in depths:
                rs = groups[(residual, init, depth)]
                all_constant = sum(r["constant"] == params["width"] for r in rs)
                rows.append(["residual" if residual else "plain", INIT_LABELS.get(init, init),
                             depth, _stat([r["constant"] for r in rs], ".1f"),
                             f"{all_constant}/{len(rs)}", _stat([r["rank"] for r in rs], ".1f"),
                             _stat([r["max_abs"] for r in rs], ".3g")])
    table = markdown_table(["architecture", "init", "L", "median constant Φ_i",
                            "seeds with every Φ_i constant", "median rank [1, Φ]",
                            "median max|Φ|"], rows)
    markdown = (
        "Figure only: no claims are evaluated. Per panel, over "
        f"{params['seeds']} seeds and {params['points']} evenly spaced points of [0, 1]: the "
        f"number of constant basis functions (max − min ≤ {params['tol']:g} × max|Φ|), the rank "
        f"of [1, Φ] with unit-norm columns (singular values above {params['tol']:g} × the "
        "largest; at most "
        f"{params['width'] + 1}), and max|Φ|.\n\n" + table
    )
    return Report(claims=[], markdown=markdown, figures=figures)


EXPERIMENT = Experiment(
    id="cyr2020.fig16",
    title="Basis functions at initialization, Glorot / He / Box, plain (Fig. 16) and residual "
          "(Fig. 17), width 8",
    paper="Cyr et al. (2020), Figs. 16–17, App. D",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="The eight basis functions of width-8 ReLU networks on [0, 1] at initialization, "
                "for increasing depth; figure only.",
)
