"""The x² check of the construction: error falling 4× per layer (spec; Yarotsky 2017).

With every peak ½, s_0 = ¼ and σ = −1, eq. 5 gives s_i = 4^{−(i+1)} and the compositional
network is Yarotsky's approximation of x²: it interpolates x² at the 2^d + 1 points j/2^d, so
its largest error, at the midpoints of the pieces, is exactly 4^{−(d+1)} — 2.3e-13 at depth 20
(the spec: "max error 2e-13 at depth 20"). We evaluate both the construction (eq. 3) and the
raw-weight plain network :meth:`~deepbasis.nn.CompositionalNet.to_mlp` on the 2^{d+1} + 1
points k/2^{d+1}, which contain every bend and every midpoint. No training; beyond the paper.

Claim thresholds, fixed before running: the error ratio between consecutive depths lies in
[3.9, 4.1] for d = 1 … 19, and the raw network's error at depth 20 is ≤ 3e-13.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ...nn import CompositionalNet
from ...runner import Cell, Claim, Experiment, Report
from ..plotting import COLORS, markdown_table, new_figure, save_figure

PROFILES = {
    "quick": {"depths": list(range(1, 13)), "dtype": "float64"},
    "default": {"depths": list(range(1, 21)), "dtype": "float64"},
    "paper": {"depths": list(range(1, 21)), "dtype": "float64"},
}


def cells(params: Mapping[str, Any]) -> list[Cell]:
    return [Cell({"depth": d, "dtype": params["dtype"], "peak": 0.5, "scale0": 0.25,
                  "sign": -1}, (0,)) for d in params["depths"]]


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    dtype = getattr(torch, settings["dtype"])
    depth = settings["depth"]
    net = CompositionalNet(depth, sign=settings["sign"], scale0=settings["scale0"],
                           peaks=[settings["peak"]] * (depth + 1), on_violation="raise",
                           dtype=dtype)
    x = torch.linspace(0, 1, 2 ** (depth + 1) + 1, dtype=dtype)[:, None]
    with torch.no_grad():
        construction = float((net.construction(x) - x**2).abs().max())
        raw = float((net.to_mlp()(x) - x**2).abs().max())
    return [{"seed": seed, "construction_error": construction, "raw_error": raw,
             "theory": 4.0 ** -(depth + 1)} for seed in seeds]


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    records = sorted(records, key=lambda r: r["settings"]["depth"])
    depths = [r["settings"]["depth"] for r in records]
    raw = [r["raw_error"] for r in records]
    figure, axes = new_figure(1, 1, width=5.6, height=4.0)
    ax = axes[0, 0]
    ax.semilogy(depths, [r["theory"] for r in records], "k--", lw=1, label="4^-(d+1)")
    ax.semilogy(depths, [r["construction_error"] for r in records], "o", color=COLORS[0],
                ms=7, mfc="none", label="construction (eq. 3)")
    ax.semilogy(depths, raw, ".", color=COLORS[1], ms=7, label="raw-weight MLP(1, 4, d)")
    ax.set_xlabel("hidden layers d")
    ax.set_ylabel("max |F(x) − x²| on [0, 1]")
    ax.set_title("All peaks ½, s₀ = ¼, σ = −1: F → x²")
    ax.set_xticks(depths)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    name = save_figure(figure, out, "square.png")

    ratios = [a / b for a, b in zip(raw, raw[1:], strict=False)]
    rows = [[d, f"{r['theory']:.3e}", f"{r['construction_error']:.3e}", f"{r['raw_error']:.3e}",
             f"{ratio:.3f}" if ratio is not None else ""]
            for d, r, ratio in zip(depths, records, [None, *ratios], strict=False)]
    table = markdown_table(["d", "4^-(d+1)", "construction error", "MLP error",
                            "ratio to d − 1"], rows)
    last = raw[-1]
    claims = [
        Claim("The error falls 4× per added layer (ratio in [3.9, 4.1] between consecutive "
              "depths)", passed=bool(ratios) and all(3.9 <= q <= 4.1 for q in ratios),
              value={"min": round(min(ratios), 4), "max": round(max(ratios), 4)},
              paper="~4× per layer (spec; Yarotsky 2017)", figure=name),
        Claim(f"Max error at depth {depths[-1]} ≤ 3e-13 (raw-weight network)",
              passed=bool(depths[-1] == 20 and last <= 3e-13), value=f"{last:.3e}",
              paper="2e-13 at depth 20 (spec)", figure=name),
    ]
    markdown = ("Largest error of the compositional network with all peaks ½ against x², on "
                "the 2^{d+1} + 1 points that contain every bend and piece midpoint.\n\n" + table)
    return Report(claims=claims, markdown=markdown, figures=[name])


EXPERIMENT = Experiment(
    id="milkert.square",
    title="x² by the construction: error 4^-(d+1), 2e-13 at depth 20",
    paper="Milkert et al., §2.1 and Theorem 3.4 (Yarotsky's x²); spec check",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="The compositional network with all peaks ½ approximates x² with error "
                "falling 4× per layer.",
)
