"""The image of the unit square through plain width-2 ReLU layers (Cyr et al. 2020, Fig. 6,
§4.1 and App. C).

Setting: plain ReLU networks ``MLP(2, 2, L)`` whose every layer maps R² → R², initialized with
uniform Glorot, uniform He (both with zero biases, the paper's baselines) or Box; the unit square
[0, 1]² is pushed through the layers (:func:`deepbasis.analysis.box_image`, with exact
linear-region refinement) and its image P_l measured after every layer l = 1…L: diameter
(:func:`~deepbasis.analysis.image_diameter`) and area of the set
(:func:`~deepbasis.analysis.image_area`). The paper shows one draw per initialization; here
every seed is measured and the figure shows seed 0.

**Collapse.** The image has *collapsed to a point* at the first depth where its diameter is
≤ 1e-8 × √2 (the square's diameter); for ReLU layers this is almost always an exact 0 (every
unit inactive on the whole image). It has *lost its area* (become a curve) at the first depth
where its area is ≤ 1e-8. A seed that has not collapsed by L is counted as collapsing at L + 1
(censored) in medians and rank tests.

**Zero biases.** With zero biases a ReLU layer is positively homogeneous, so the image of the
square under Glorot or He is star-shaped from the origin (a cone section) and contains 0: it
loses area when the cone narrows to a ray, and it collapses to a point only when every unit
dies, and then the point is the origin. Moreover, for 2 × 2 layers Glorot's weights are He's
divided by √2, so with the same seed the Glorot image at depth l is the He image scaled by
2^(−l/2): their collapse depths coincide (an exact 0 stays 0 under scaling).

Claims (thresholds fixed before running):

1. the image collapses to a point with depth: at the largest depth L at least half of the
   seeds of every initialization have collapsed;
2. later for Box than for He and Glorot: Box's median collapse depth is larger than He's and
   Glorot's, and a one-sided Mann–Whitney U test (Box later) gives p < 0.05 against each;
3. Box layers map [0, 1]² into [0, 1]² (eq. 11): every image point of every seed and depth
   lies in [0, 1]² (up to 1e-12).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from ...analysis.geometry import BoxImage, box_image, image_area, image_diameter
from ...init import initialize_
from ...nn import MLP
from ...runner import Cell, Claim, Experiment, Report
from ..plotting import COLORS, markdown_table, new_figure, save_figure
from ._common import INIT_LABELS
from ._images import INIT_COLORS, PLOT_SEED, image_grid_figure

_COMMON = {"width": 2, "dtype": "float64", "inits": ["glorot", "he", "box"],
           "collapse_tol": 1e-8, "lines": 4096}
PROFILES = {
    "quick": {**_COMMON, "depth": 6, "seeds": 4, "resolution": 9, "refine": 3,
              "plot_depths": [1, 2, 4, 6]},
    "default": {**_COMMON, "depth": 16, "seeds": 64, "resolution": 33, "refine": 6,
                "plot_depths": [1, 2, 3, 4, 6, 8, 12, 16]},
    "paper": {**_COMMON, "depth": 32, "seeds": 256, "resolution": 65, "refine": 8,
              "plot_depths": [1, 2, 4, 6, 8, 12, 16, 24, 32]},
}
#: Bound of eq. (11) for Box images, with room for rounding.
BOX_BOUND_SLACK = 1e-12


def cells(params: Mapping[str, Any]) -> list[Cell]:
    seeds = tuple(range(params["seeds"]))
    keys = ("width", "depth", "resolution", "refine", "collapse_tol", "lines", "dtype")
    return [Cell({**{k: params[k] for k in keys}, "init": init}, seeds)
            for init in params["inits"]]


def build_model(settings: Mapping[str, Any], seed: int) -> MLP:
    """``MLP(w, w, L)``, plain ReLU, initialized with ``settings['init']`` from ``seed``."""
    width = settings["width"]
    model = MLP(width, width, settings["depth"], dtype=getattr(torch, settings["dtype"]))
    return initialize_(model, settings["init"], generator=seed)


def image_of(settings: Mapping[str, Any], seed: int) -> BoxImage:
    return box_image(build_model(settings, seed), resolution=settings["resolution"],
                     refine=settings["refine"])


def first_depth(flags: Sequence[bool]) -> int | None:
    """The first index (depth) at which ``flags`` is true, or ``None``."""
    for depth, flag in enumerate(flags):
        if flag:
            return depth
    return None


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    records = []
    tol = settings["collapse_tol"]
    for seed in seeds:
        image = image_of(settings, seed)
        diameter = [image_diameter(p) for p in image.points]
        area = image_area(image, lines=settings["lines"]).tolist()
        point = [d <= tol * diameter[0] for d in diameter]
        curve = [a <= tol * area[0] for a in area]
        last = image.points[-1]
        records.append({
            "seed": seed,
            "diameter": diameter,
            "area": area,
            "area_multiplicity": image_area(image, multiplicity=True).tolist(),
            "inexact_fraction": image.inexact_fraction().tolist(),
            "max_coordinate": image.points.amax(dim=(1, 2)).tolist(),
            "min_coordinate": image.points.amin(dim=(1, 2)).tolist(),
            "point_depth": first_depth(point),
            "area_depth": first_depth(curve),
            # Where a collapsed image ended up (the last depth's image is then one point).
            "final_center": last.mean(dim=0).tolist(),
            "refine_levels": image.levels,
            "triangles": int(image.triangles.shape[0]),
        })
    return records


def _censored(values: Sequence[int | None], depth: int) -> np.ndarray:
    return np.array([depth + 1 if v is None else v for v in values], dtype=float)


def _median_text(value: float, depth: int) -> str:
    return f"> {depth}" if value > depth else f"{value:g}"


def _groups(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault(record["settings"]["init"], []).append(record)
    return groups


# --- figures ------------------------------------------------------------------------------------


INIT_STYLES = {"glorot": "--", "he": "-", "box": "-"}


def _metrics_figure(groups, params, out: Path, name: str) -> str:
    depth = params["depth"]
    depths = np.arange(depth + 1)
    figure, axes = new_figure(3, 1, width=4.2, height=3.4)
    for init, records in groups.items():
        style = {"color": INIT_COLORS.get(init, COLORS[3]), "label": INIT_LABELS.get(init, init),
                 "ls": INIT_STYLES.get(init, "-"), "lw": 2.2 if init == "glorot" else 1.4}
        collapsed = [np.mean([r["point_depth"] is not None and r["point_depth"] <= d
                              for r in records]) for d in depths]
        flat = [np.mean([r["area_depth"] is not None and r["area_depth"] <= d
                         for r in records]) for d in depths]
        axes[0, 0].step(depths, collapsed, where="post", **style)
        axes[0, 1].step(depths, flat, where="post", **style)
        diam = np.array([r["diameter"] for r in records]) / math.sqrt(2.0)
        q25, q50, q75 = np.percentile(diam, [25, 50, 75], axis=0)
        axes[0, 2].plot(depths, q50, **style)
        axes[0, 2].fill_between(depths, q25, q75, color=style["color"], alpha=0.15, lw=0)
    axes[0, 0].set_ylabel("share of seeds collapsed to a point")
    axes[0, 1].set_ylabel("share of seeds whose image has no area")
    axes[0, 2].set_ylabel("diameter / √2 (median and IQR)")
    for ax in axes.flat:
        ax.set_xlabel("layer l")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    seeds = len(next(iter(groups.values())))
    figure.suptitle(f"Plain width-2 ReLU layers, {seeds} seeds per initialization (Glorot, "
                    "dashed, equals He seed by seed in the first two panels)", fontsize=10)
    return save_figure(figure, out, name)


# --- report -------------------------------------------------------------------------------------

def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    depth = params["depth"]
    groups = _groups(records)
    inits = [i for i in params["inits"] if i in groups]

    def model_of(init: str, d: int) -> MLP:
        return build_model({**groups[init][0]["settings"], "depth": d}, PLOT_SEED)

    settings = groups[inits[0]][0]["settings"]
    images = image_grid_figure(
        inits, model_of, out, "fig6.png", depths=params["plot_depths"],
        resolution=settings["resolution"], refine=settings["refine"],
        title=f"Image of [0, 1]² through L plain width-2 ReLU layers, seed {PLOT_SEED}\n"
              "(filled: 2-D part; lines: images of grid lines; window [−0.1H, 1.1H]², "
              "H = largest coordinate)")
    metrics = _metrics_figure({i: groups[i] for i in inits}, params, out, "fig6_collapse.png")

    point = {i: _censored([r["point_depth"] for r in groups[i]], depth) for i in inits}
    flat = {i: _censored([r["area_depth"] for r in groups[i]], depth) for i in inits}
    medians = {i: float(np.median(point[i])) for i in inits}
    share = {i: float(np.mean(point[i] <= depth)) for i in inits}

    rows = []
    for i in inits:
        rs = groups[i]
        collapsed = [r for r in rs if r["point_depth"] is not None]
        at_origin = sum(np.abs(r["final_center"]).max() == 0.0 for r in collapsed)
        q25, q75 = np.percentile(point[i], [25, 75])
        rows.append([
            INIT_LABELS.get(i, i), len(rs),
            _median_text(medians[i], depth), f"{_median_text(q25, depth)}–"
            f"{_median_text(q75, depth)}", f"{share[i]:.2f}",
            _median_text(float(np.median(flat[i])), depth),
            f"{at_origin}/{len(collapsed)}",
            f"{np.median([r['inexact_fraction'][-1] for r in rs]):.2g}",
        ])
    table = markdown_table(
        ["init", "seeds", "median point-collapse depth", "IQR", f"share collapsed by L = {depth}",
         "median depth the area vanishes", "collapsed, final point = origin",
         "median inexact share"],
        rows)

    claims = [
        Claim(f"The image collapses to a point with depth: by L = {depth} at least half of the "
              "seeds of every initialization have collapsed (diameter ≤ 1e-8 × √2)",
              passed=bool(inits) and all(share[i] >= 0.5 for i in inits),
              value={INIT_LABELS.get(i, i): round(share[i], 3) for i in inits},
              paper="collapse to a point … for all three initializations is inevitable "
                    "(App. C, Fig. 6)", figure=metrics),
    ]
    if "box" in inits:
        tests = {}
        for other in (i for i in inits if i != "box"):
            result = stats.mannwhitneyu(point["box"], point[other], alternative="greater")
            tests[other] = float(result.pvalue)
        later = all(medians["box"] > medians[o] for o in tests)
        claims.append(Claim(
            "The image collapses later for Box than for He and Glorot: Box's median collapse "
            "depth is larger and a one-sided Mann–Whitney U test gives p < 0.05 against each",
            passed=bool(tests) and later and all(p < 0.05 for p in tests.values()),
            value={"median_depth": {INIT_LABELS.get(i, i): medians[i] for i in inits},
                   "p_value": {INIT_LABELS.get(o, o): p for o, p in tests.items()}},
            paper="collapses … for the He and Glorot initializations at a lower number of "
                  "layers than Box (§4.1, Fig. 6)", figure=metrics))
        box = groups["box"]
        low = min(min(r["min_coordinate"]) for r in box)
        high = max(max(r["max_coordinate"]) for r in box)
        claims.append(Claim(
            "Box layers map [0, 1]² into [0, 1]² (eq. 11): every image point lies in [0, 1]²",
            passed=bool(low >= -BOX_BOUND_SLACK and high <= 1.0 + BOX_BOUND_SLACK),
            value={"min": low, "max": high}, paper="[0, 1]^w into [0, 1]^w (eq. 11)",
            figure=images))

    markdown = (
        f"Plain ReLU layers R² → R², depth up to {depth}, {params['seeds']} seeds per "
        "initialization (Glorot and He uniform with zero biases). Images of a "
        f"{params['resolution']}² grid refined up to {params['refine']} times along the kinks of "
        "the map. A seed's "
        "point-collapse depth is the first layer whose image has diameter ≤ 1e-8 × √2; "
        "'area vanishes' is the first layer whose image has area ≤ 1e-8 (a curve or a point); "
        f"seeds that never do count as L + 1 = {depth + 1} ('> {depth}'). 'Inexact share' is the "
        "part of the square (at the last layer) where the refined mesh did not resolve the "
        "map's kinks; its area is left out, so areas are lower bounds.\n\n" + table
        + "\n\nWith zero biases a collapsed Glorot or He image is always the origin, and the same "
        "seed gives Glorot the He image scaled by 2^(−l/2), so their collapse depths are equal "
        "seed by seed (see the module docstring)."
    )
    return Report(claims=claims, markdown=markdown, figures=[images, metrics])


EXPERIMENT = Experiment(
    id="cyr2020.fig6",
    title="Image of the unit square through plain width-2 ReLU layers: Glorot / He / Box",
    paper="Cyr et al. (2020), Fig. 6, §4.1, App. C",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="The image P_L of [0, 1]² through L plain width-2 ReLU layers, drawn and "
                "measured (diameter, area) per layer; when it collapses to a point the basis is "
                "constant.",
)
