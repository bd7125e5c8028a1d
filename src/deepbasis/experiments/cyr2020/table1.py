"""Wall time of LSGD relative to GD per iteration (Cyr et al. 2020, Table 1, Appendix A).

Setting (Table 1 caption, "the same as that of Figure 3"): plain ReLU networks of widths and
depths {4, 16, 64, 256}, uniform He initialization with zero biases, sin(2πx) on 256 points,
Adam (GD lr 5e-4, LSGD lr 5e-3), full batch. Each cell is measured by
:func:`deepbasis.train.timing.lsgd_gd_time_ratio`: LSGD and GD runs from the same initial
network, timed alternately over ``repeats`` rounds after a warm-up, median time per iteration;
the ratio is median LSGD / median GD. float64 on the CPU with the runner's thread setting
(``deepbasis run --threads``, 1 by default). The paper timed 1000 iterations in TensorFlow on an
Intel i7-8700; the paper profile does the same, the default profile times fewer iterations in
the large cells (the per-iteration cost settles after a few steps), see :func:`steps_for`.

**Timings on a shared machine are noisy**: other processes, and the other worker of a
``--workers 2`` run, change both methods' times; the alternating order makes drifts hit both
alike, but single cells can still move by 10–20 %. Run it alone with
``deepbasis run cyr2020.table1 --workers 1``.

Claims: the paper's two statements about its table — the overhead is smaller for deeper
networks (at every width, the deepest cell's ratio below the shallowest's), and its size (ours
at most the paper's value, cell by cell) — and our targets from the catalogue, fixed before
running: ratio ≤ 1.10 in every cell with depth ≥ 16, and ≤ 1.30 in every cell. The paper
measured 1.33–2.08.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...runner import Cell, Claim, Experiment, Report
from ..plotting import markdown_table, new_figure, save_figure

_SIZES = [4, 16, 64, 256]
_COMMON = {"points": 256, "dtype": "float64", "optimizer": "adam", "repeats": 3,
           "min_steps": 10}
PROFILES = {
    "quick": {**_COMMON, "widths": [4, 16], "depths": [4, 16], "max_steps": 10,
              "work": 1e6, "repeats": 1},
    "default": {**_COMMON, "widths": _SIZES, "depths": _SIZES, "max_steps": 1000,
                "work": 1e8},
    "paper": {**_COMMON, "widths": _SIZES, "depths": _SIZES, "max_steps": 1000,
              "work": float("inf")},
}

DEEP_TARGET = 1.10  # depth ≥ 16
ALL_TARGET = 1.30


def steps_for(width: int, depth: int, params: Mapping[str, Any]) -> int:
    """Iterations per timed run: ``work`` / (depth · max(width, 32)²), clipped to
    [min_steps, max_steps], so every cell takes a few seconds (small widths are overhead-bound,
    hence the floor of 32)."""
    cost = depth * max(width, 32) ** 2
    steps = params["max_steps"] if np.isinf(params["work"]) else int(params["work"] / cost)
    return int(min(params["max_steps"], max(params["min_steps"], steps)))


def cells(params: Mapping[str, Any]) -> list[Cell]:
    return [Cell({"width": w, "depth": d, "steps": steps_for(w, d, params),
                  "repeats": params["repeats"], "points": params["points"],
                  "dtype": params["dtype"], "optimizer": params["optimizer"]}, (0,))
            for w in params["widths"] for d in params["depths"]]


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    from ...train.timing import lsgd_gd_time_ratio

    records = []
    for seed in seeds:
        result = lsgd_gd_time_ratio(settings["width"], settings["depth"], settings["steps"],
                                    settings["points"], dtype=getattr(torch, settings["dtype"]),
                                    repeats=settings["repeats"],
                                    optimizer=settings["optimizer"], seed=seed)
        records.append({"seed": seed, **result})
    return records


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    from ...train.timing import PAPER_TABLE1

    widths, depths = params["widths"], params["depths"]
    ratio = {(r["settings"]["width"], r["settings"]["depth"]): r["ratio"] for r in records}
    by_cell = {(r["settings"]["width"], r["settings"]["depth"]): r for r in records}

    figure, axes = new_figure(2, 1, width=4.6, height=3.8)
    for ax, title, table in (
        (axes[0, 0], "ours (float64, this CPU)", ratio),
        (axes[0, 1], "paper (TensorFlow, i7-8700)",
         {(w, d): PAPER_TABLE1.get(w, {}).get(d, np.nan) for w in widths for d in depths}),
    ):
        grid = np.array([[table[(w, d)] for d in depths] for w in widths], dtype=float)
        image = ax.imshow(grid, cmap="viridis", vmin=0.8, vmax=2.1, origin="upper")
        for i in range(len(widths)):
            for j in range(len(depths)):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center",
                        color="white" if grid[i, j] < 1.6 else "black", fontsize=9)
        ax.set_xticks(range(len(depths)), [str(d) for d in depths])
        ax.set_yticks(range(len(widths)), [str(w) for w in widths])
        ax.set_xlabel("depth (hidden layers)")
        ax.set_ylabel("width")
        ax.set_title(f"LSGD / GD wall time per iteration: {title}", fontsize=9)
    figure.colorbar(image, ax=axes[0, 1], shrink=0.8)
    name = save_figure(figure, out, "table1.png")

    rows = []
    for w in widths:
        for d in depths:
            r = by_cell[(w, d)]
            paper = PAPER_TABLE1.get(w, {}).get(d)
            rows.append([w, d, r["settings"]["steps"], f"{r['lsgd'] * 1e3:.3g}",
                         f"{r['gd'] * 1e3:.3g}", f"{r['ratio']:.2f}", f"{r['pair_ratio']:.2f}",
                         "—" if paper is None else f"{paper:.2f}",
                         f"{r['gd_vs_bare']:.2f}" if "gd_vs_bare" in r else "—"])
    deep = {f"w={w},L={d}": round(ratio[(w, d)], 2) for w in widths for d in depths if d >= 16}
    every = {f"w={w},L={d}": round(ratio[(w, d)], 2) for w in widths for d in depths}
    paper_values = [v for row in PAPER_TABLE1.values() for v in row.values()]
    paper_range = f"{min(paper_values):.2f}–{max(paper_values):.2f}"
    # The paper's own statements about its table: the overhead shrinks with depth, and its
    # size (1.33–2.08 on its hardware); ours are claims 3 and 4, stricter targets.
    shallow, deepest = min(depths), max(depths)
    falls = {f"w={w}": f"{ratio[(w, shallow)]:.2f} → {ratio[(w, deepest)]:.2f}" for w in widths}
    paper_cell = {(w, d): PAPER_TABLE1[w][d] for w in widths for d in depths
                  if d in PAPER_TABLE1.get(w, {})}
    above_paper = {f"w={w},L={d}": f"{ratio[(w, d)]:.2f} > {v:.2f}"
                   for (w, d), v in paper_cell.items() if ratio[(w, d)] > v}
    claims = [
        Claim(f"For deeper networks the increase is smaller: at every width the ratio at depth "
              f"{deepest} is below that at depth {shallow}",
              passed=deepest > shallow and all(ratio[(w, deepest)] < ratio[(w, shallow)]
                                               for w in widths),
              value=falls,
              paper="\"For deeper networks, the increase is smaller\" (Table 1 caption): "
                    + ", ".join(f"w={w}: {PAPER_TABLE1[w][min(PAPER_TABLE1[w])]:.2f} → "
                                f"{PAPER_TABLE1[w][max(PAPER_TABLE1[w])]:.2f}"
                                for w in widths if w in PAPER_TABLE1),
              figure=name),
        Claim("LSGD's overhead is no larger than the paper's: in every cell the ratio is at "
              "most the paper's value for that cell",
              passed=bool(paper_cell) and not above_paper,
              value={"cells compared": len(paper_cell), "cells above the paper's": above_paper,
                     "largest ours": round(max(ratio[k] for k in paper_cell), 2)
                     if paper_cell else None},
              paper=f"paper {paper_range} (TensorFlow CPU, i7-8700)", figure=name),
        Claim(f"LSGD costs at most {DEEP_TARGET:.2f}× GD per iteration for depth ≥ 16 (our "
              "target; every cell)",
              passed=bool(deep) and all(v <= DEEP_TARGET for v in deep.values()),
              value={**deep, "max": max(deep.values()) if deep else None},
              paper=f"paper {paper_range} over the whole table (1.33–1.65 for depth ≥ 16)",
              figure=name),
        Claim(f"LSGD costs at most {ALL_TARGET:.2f}× GD per iteration in every cell (our "
              "target)",
              passed=all(v <= ALL_TARGET for v in every.values()),
              value={"max": max(every.values()), "min": min(every.values()),
                     "cells_above": {k: v for k, v in every.items() if v > ALL_TARGET}},
              paper=f"paper {paper_range}", figure=name),
    ]
    markdown = (
        "Median wall time per iteration (ms) over "
        f"{params['repeats']} alternating rounds; ratio = median LSGD / median GD, pair = "
        "median of the per-round ratios, GD / bare = the library's GD against a minimal PyTorch "
        "loop. Timings were taken on a shared CPU and are noisy (see the module docstring).\n\n"
        + markdown_table(["width", "depth", "iterations", "LSGD ms", "GD ms", "ratio", "pair",
                          "paper", "GD / bare"], rows)
    )
    return Report(claims=claims, markdown=markdown, figures=[name])


EXPERIMENT = Experiment(
    id="cyr2020.table1",
    title="Wall time of LSGD relative to GD per iteration, widths × depths {4, 16, 64, 256}",
    paper="Cyr et al. (2020), Table 1, Appendix A",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="Cost of the least-squares solve on top of a gradient step, plain ReLU "
                "networks, He init, sin(2πx) on 256 points.",
)
