"""Normalized empirical NTK at initialization, Glorot vs GO (Wang et al. 2021, Fig. 4, App. C.2).

A deep tanh MLP on 1-D inputs; GO calibrated on 2,048 uniform points (standardized) with
λ = 1e-3 and 1e-4; the NTK (eq. 3.3) on 256 evenly spaced standardized points; each kernel
function K(x_i, ·) normalized to unit area. Claim: GO's kernels are narrower than Glorot's, and
narrower as λ falls. Width of a kernel = the mean distance |y − x_i| under |K(x_i, ·)|
(:func:`deepbasis.analysis.ntk.kernel_width`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...analysis.ntk import empirical_ntk, kernel_width, normalize_rows
from ...nn import MLP
from ...runner import Cell, Claim, Experiment, Report
from ..plotting import COLORS, markdown_table, new_figure, save_figure
from ._common import DTYPES, glorot_normal_, paper_go_, standardize

_SCHEMES = [("glorot", None), ("go", 1e-3), ("go", 1e-4)]
PROFILES = {
    "quick": {"width": 16, "depth": 4, "go_steps": 100, "go_batch": 256, "go_points": 512,
              "ntk_points": 64, "seeds": 1, "dtype": "float64", "chunk": 32},
    # default: 16 layers as the paper but width 64 (not 256), GO 1,000 steps (not 10,000),
    # batches of 512 (not 2,048), 2 seeds
    "default": {"width": 64, "depth": 16, "go_steps": 1000, "go_batch": 512, "go_points": 2048,
                "ntk_points": 256, "seeds": 2, "dtype": "float32", "chunk": 64},
    "paper": {"width": 256, "depth": 16, "go_steps": 10000, "go_batch": 2048,
              "go_points": 2048, "ntk_points": 256, "seeds": 1, "dtype": "float32",
              "chunk": 64},
}


def cells(params: Mapping[str, Any]) -> list[Cell]:
    keys = ("width", "depth", "go_steps", "go_batch", "go_points", "ntk_points", "dtype",
            "chunk")
    return [Cell({"init": init, "lam": lam, **{k: params[k] for k in keys}},
                 tuple(range(params["seeds"]))) for init, lam in _SCHEMES]


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    dtype = DTYPES[settings["dtype"]]
    records = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        x_go = standardize(torch.rand(settings["go_points"], 1, generator=gen,
                                      dtype=torch.float64)).to(dtype)
        x = standardize(torch.linspace(-1, 1, settings["ntk_points"], dtype=torch.float64)[:, None])
        model = MLP(1, settings["width"], settings["depth"], activation="tanh", dtype=dtype)
        info = {}
        if settings["init"] == "glorot":
            glorot_normal_(model, seed)
        else:
            info = paper_go_(model, x_go, steps=settings["go_steps"], batch=settings["go_batch"],
                             lam=settings["lam"], generator=seed)
        model = model.double()
        kernel = empirical_ntk(model, x, chunk_size=settings["chunk"])
        widths = kernel_width(kernel, x)
        rows = normalize_rows(kernel, x)
        records.append({"seed": seed, **info, "widths": widths.tolist(),
                        "median_width": float(widths.median()),
                        "normalized": rows.float().numpy().round(5).tolist(),
                        "x": x[:, 0].tolist()})
    return records


def _label(settings) -> str:
    return "Glorot" if settings["init"] == "glorot" else f"GO, λ = {settings['lam']:g}"


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(_label(r["settings"]), []).append(r)
    labels = [_label({"init": i, "lam": lam}) for i, lam in _SCHEMES]
    figure, axes = new_figure(4, 1, width=3.8, height=3.4)
    for ax, label in zip(axes[0, :3], labels, strict=True):
        r = groups[label][0]
        x = np.array(r["x"])
        rows = np.array(r["normalized"])
        extent = [x.min(), x.max(), x.max(), x.min()]
        vmax = np.percentile(np.abs(rows), 99.5)
        ax.imshow(rows, extent=extent, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        ax.set(title=f"{label}: K(x_i, y) / area", xlabel="y", ylabel="kernel centre x_i")
    ax = axes[0, 3]
    for color, label in zip(COLORS, labels, strict=False):
        r = groups[label][0]
        x = np.array(r["x"])
        mid = len(x) // 2
        ax.plot(x - x[mid], np.array(r["normalized"])[mid], color=color, label=label)
    ax.set(title="kernel at the centre point", xlabel="y − x_i", ylabel="normalized K")
    ax.legend(fontsize=7)
    name = save_figure(figure, out, "fig4_ntk.png")

    median = {label: float(np.median([r["median_width"] for r in groups[label]]))
              for label in labels}
    rows = [[label, f"{median[label]:.3f}",
             ", ".join(f"{r['median_width']:.3f}" for r in groups[label]),
             f"{np.mean([r['go_msc_end'] for r in groups[label]]):.3f}"
             if groups[label][0].get("go_msc_end") is not None else "—"]
            for label in labels]
    glorot, go3, go4 = (median[label] for label in labels)
    seeds_ok = all(g3["median_width"] < g["median_width"] for g, g3 in
                   zip(groups[labels[0]], groups[labels[1]], strict=True))
    claims = [
        Claim("GO (λ = 1e-3) kernels are narrower than Glorot's (median kernel width, every "
              "seed)", passed=go3 < glorot and seeds_ok,
              value=f"{go3:.3f} vs {glorot:.3f}", paper="Fig. 4: narrower", figure=name),
        Claim("GO kernels narrow further as λ falls (λ = 1e-4 narrower than 1e-3)",
              passed=go4 < go3, value=f"{go4:.3f} vs {go3:.3f}",
              paper="Fig. 4: narrower as λ decreases", figure=name),
    ]
    markdown = (
        f"Empirical NTK of a {params['depth']} × {params['width']} tanh MLP on "
        f"{params['ntk_points']} evenly spaced standardized points (GO: {params['go_steps']} "
        f"steps, batches of {params['go_batch']}). Kernel width = mean |y − x_i| under "
        "|K(x_i, ·)|, median over centres (the domain spans ±1.73).\n\n"
        + markdown_table(["init", "median kernel width", "per seed", "GO mean cos² at end"],
                         rows)
    )
    return Report(claims=claims, markdown=markdown, figures=[name])


EXPERIMENT = Experiment(
    id="go.fig4",
    title="Normalized empirical NTK, Glorot vs GO (λ = 1e-3, 1e-4)",
    paper="Wang et al. (2021), Fig. 4, App. C.2",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="Are GO's kernels narrower than Glorot's, and narrower as λ falls?",
)
