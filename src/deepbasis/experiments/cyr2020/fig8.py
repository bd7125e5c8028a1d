"""Residual networks: the image of the unit square, and covariance spectra through depth
(Cyr et al. 2020, Fig. 8, §4.2 and App. C).

Networks: residual ReLU ``MLP(1, w, L)`` (a plain input layer, then L − 1 residual layers
x ↦ x + σ(W x + b)), initialized with uniform Glorot, uniform He (zero biases) or the residual
Box initialization (eqs. 12–16, δ = 1/L, so every depth L is its own network). As in App. C the
box [0, 1]^w is fed into the w → w hidden layers, *excluding the input layer*
(``include_input_layer=False``): P_L is the image of [0, 1]^w under layers 2…L.

**(a) Width 2.** The image P_L of [0, 1]² for L = 2…128: its diameter, its area (union area of
the images of a uniform grid's triangles, the piecewise-linear interpolant of the map; a
Monte Carlo ∫|det J|, which counts folded sheets more than once, is recorded beside it), its
largest coordinate, the ratio λ_min/λ_max of the covariance of the pushed-forward grid (a
uniform sample of the square), and its angular width as seen from the origin.

**(b) Widths 8, 32, 128.** λ_min/λ_max and λ_2/λ_max of the covariance of ``n_samples``
points of U[0, 1]^w pushed through the network (:func:`deepbasis.analysis.covariance_ratios`).
With n samples even the identity map gives λ_min/λ_max ≈ ((1 − √(w/n))/(1 + √(w/n)))² (≈ 0.5
for w = 128, n = 4096), so "bounded away from 0" is judged against 1e-2.

Claims (thresholds fixed before running, from the paper's wording):

(a) width 2
1. the residual image never collapses to a point: for every init, seed and L its diameter is
   > 1e-8 × √2;
2. He blows up (Fig. 17 caption: "the blow-up evident in the He basis"): He's median diameter
   at the largest L is ≥ 100 × √2;
3. Glorot and He images tend to lines through the origin: at the largest L the median
   λ_min/λ_max of the image is ≤ 1e-3 for both (with zero biases every image contains 0);
4. Box stays bounded: every Box image lies in [0, e]² (eq. 15);
5. Box "remarkably preserves area": at every L the median area of Box's P_L is within a factor
   2 of the square's (in [0.5, 2]);

(b) widths 8, 32, 128, at the largest depth unless stated
6. Glorot and He: the median λ_min/λ_max is ≤ 1e-3 at every width ("quickly become zero");
7. Glorot and He: the median λ_2/λ_max is ≤ 1e-3 at every width ("eventually becomes zero");
8. Box: the medians of both ratios are ≥ 1e-2 at every depth and width ("neither ratio tends
   toward zero");
9. Box's median λ_min/λ_max is ≥ 10 × He's and ≥ 10 × Glorot's at every width.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...analysis.geometry import (
    box_image,
    covariance_ratios,
    feature_covariance_ratios,
    image_area,
    image_diameter,
    image_volume,
)
from ...init import initialize_
from ...nn import MLP
from ...runner import Cell, Claim, Experiment, Report
from ..plotting import COLORS, markdown_table, new_figure, save_figure
from ._common import INIT_LABELS
from ._images import INIT_COLORS, PLOT_SEED, image_grid_figure

_COMMON = {"dtype": "float64", "inits": ["glorot", "he", "box"], "box_variant": "eq16",
           "collapse_tol": 1e-8, "lines": 4096}
PROFILES = {
    "quick": {**_COMMON, "image_depths": [2, 4, 8], "image_seeds": 3, "resolution": 9,
              "volume_samples": 256, "widths": [8], "cov_depths": [2, 8], "cov_seeds": 2,
              "n_samples": 512},
    "default": {**_COMMON, "image_depths": [2, 4, 8, 16, 32, 64, 128], "image_seeds": 16,
                "resolution": 65, "volume_samples": 2048, "widths": [8, 32, 128],
                "cov_depths": [2, 4, 8, 16, 32, 64, 128], "cov_seeds": 6, "n_samples": 4096},
    "paper": {**_COMMON, "image_depths": [2, 4, 8, 16, 32, 64, 128], "image_seeds": 64,
              "resolution": 129, "volume_samples": 8192, "widths": [8, 32, 128],
              "cov_depths": [2, 4, 8, 16, 32, 64, 128], "cov_seeds": 16, "n_samples": 16384},
}

LINE_RATIO = 1e-3  # "ratio becomes zero"
BOUNDED_RATIO = 1e-2  # "bounded away from zero"
BLOW_UP = 100.0
AREA_FACTOR = 2.0


def cells(params: Mapping[str, Any]) -> list[Cell]:
    image_seeds = tuple(range(params["image_seeds"]))
    cov_seeds = tuple(range(params["cov_seeds"]))
    common = {"dtype": params["dtype"], "box_variant": params["box_variant"]}
    out = [Cell({**common, "part": "image", "init": init, "width": 2, "depth": depth,
                 "resolution": params["resolution"], "volume_samples": params["volume_samples"],
                 "collapse_tol": params["collapse_tol"], "lines": params["lines"]},
                image_seeds)
           for init in params["inits"] for depth in params["image_depths"]]
    out += [Cell({**common, "part": "covariance", "init": init, "width": width, "depth": depth,
                  "n_samples": params["n_samples"]}, cov_seeds)
            for init in params["inits"] for width in params["widths"]
            for depth in params["cov_depths"]]
    return out


def build_model(settings: Mapping[str, Any], seed: int) -> MLP:
    """Residual ``MLP(1, w, L)`` initialized with ``settings['init']`` from ``seed``."""
    model = MLP(1, settings["width"], settings["depth"], residual=True,
                dtype=getattr(torch, settings["dtype"]))
    options = {"variant": settings["box_variant"]} if settings["init"] == "box" else {}
    return initialize_(model, settings["init"], generator=seed, **options)


def angular_width(points: np.ndarray) -> float:
    """Largest minus smallest polar angle (degrees) of the nonzero points (positive quadrant)."""
    radius = np.linalg.norm(points, axis=1)
    keep = radius > 1e-12 * max(float(radius.max()), np.finfo(float).tiny)
    if not keep.any():
        return 0.0
    angle = np.degrees(np.arctan2(points[keep, 1], points[keep, 0]))
    return float(angle.max() - angle.min())


def _image_record(settings: Mapping[str, Any], seed: int) -> dict[str, Any]:
    model = build_model(settings, seed)
    image = box_image(model, resolution=settings["resolution"], refine=0,
                      include_input_layer=False)
    final = image.points[-1].numpy()  # (G², 2)
    # Area of the interpolant on the uniform grid (all triangles): with residual layers almost
    # every triangle crosses one of the 2(L − 1) cut lines, so "exact triangles only" would
    # leave most of the square out; the residual maps are Lipschitz, so the interpolant's error
    # shrinks with the grid spacing.
    area = image_area(final, image.triangles, lines=settings["lines"])
    multiplicity = image_area(final, image.triangles, multiplicity=True)
    volume = float(image_volume(model, settings["volume_samples"], generator=seed,
                                include_input_layer=False)[-1])
    ratio = feature_covariance_ratios(torch.as_tensor(final)).min_ratio[0]
    return {
        "seed": seed,
        "diameter": image_diameter(final),
        "area": area,
        "area_multiplicity": multiplicity,
        "jacobian_volume": volume if math.isfinite(volume) else None,
        "max_coordinate": float(final.max()),
        "min_coordinate": float(final.min()),
        "min_ratio": float(ratio),
        "angular_width": angular_width(final),
    }


def _covariance_record(settings: Mapping[str, Any], seed: int) -> dict[str, Any]:
    model = build_model(settings, seed)
    # The init consumed its own generator; the samples get a separate, seed-derived stream.
    gen = torch.Generator().manual_seed(10_000 + seed)
    ratios = covariance_ratios(model, settings["n_samples"], generator=gen,
                               include_input_layer=False)
    return {"seed": seed, "min_ratio": float(ratios.min_ratio[-1]),
            "second_ratio": float(ratios.second_ratio[-1]),
            "max_eigenvalue": float(ratios.eigenvalues[-1, -1])}


def run(settings: Mapping[str, Any], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    make = _image_record if settings["part"] == "image" else _covariance_record
    return [make(settings, seed) for seed in seeds]


# --- report -------------------------------------------------------------------------------------

def _by(records, part: str, *keys: str) -> dict[tuple, list[Mapping[str, Any]]]:
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for record in records:
        if record["settings"]["part"] == part:
            groups.setdefault(tuple(record["settings"][k] for k in keys), []).append(record)
    return groups


def _median(records, key: str) -> float:
    values = [np.inf if r[key] is None else r[key] for r in records]
    return float(np.median(values))


def _band(ax, depths, groups, init, key, *, color, label, ls="-", floor=1e-300):
    values = np.array([[np.inf if r[key] is None else r[key] for r in groups[(init, d)]]
                       for d in depths]).T  # (seeds, depths)
    logs = np.log10(np.maximum(values, floor))
    q25, q50, q75 = np.percentile(logs, [25, 50, 75], axis=0)
    ax.plot(depths, q50, color=color, label=label, ls=ls, marker="o", ms=3)
    ax.fill_between(depths, q25, q75, color=color, alpha=0.15, lw=0)


def _image_metrics_figure(groups, params, out: Path, name: str) -> str:
    depths = params["image_depths"]
    panels = [("diameter", "log10 diameter of P_L"), ("area", "log10 area of P_L"),
              ("min_ratio", "log10 λ_min/λ_max of P_L"),
              ("angular_width", "log10 angular width of P_L (degrees)")]
    figure, axes = new_figure(len(panels), 1, width=3.9, height=3.3)
    for ax, (key, ylabel) in zip(axes.flat, panels, strict=True):
        for init in params["inits"]:
            _band(ax, depths, groups, init, key, color=INIT_COLORS[init],
                  label=INIT_LABELS[init], floor=1e-20)
        if key in ("min_ratio", "angular_width"):
            ax.axhspan(-20.5, -15, color="0.85", lw=0)  # float64 rounding level
        ax.set_xscale("log", base=2)
        ax.set_xlabel("network depth L")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0, 1].axhline(0.0, color="k", lw=0.8, ls=":")
    figure.suptitle("Residual width 2: image of [0, 1]² through layers 2…L (median and IQR over "
                    f"{params['image_seeds']} seeds; values below 1e-20, e.g. a numerically flat "
                    "image's area, drawn at −20; grey: float64 rounding level)", fontsize=10)
    return save_figure(figure, out, name)


def _covariance_figure(groups, params, out: Path, name: str) -> str:
    depths = params["cov_depths"]
    styles = ["-", "--", ":", "-."]
    figure, axes = new_figure(len(params["inits"]), 2, width=3.9, height=3.2, sharey="row")
    for col, init in enumerate(params["inits"]):
        for row, (key, label) in enumerate([("min_ratio", "λ_min/λ_max"),
                                            ("second_ratio", "λ_2/λ_max")]):
            ax = axes[row, col]
            for k, width in enumerate(params["widths"]):
                sub = {(init, d): groups[(init, width, d)] for d in depths}
                _band(ax, depths, sub, init, key, color=COLORS[k], ls=styles[k % 4],
                      label=f"w = {width}", floor=1e-20)
            ax.axhspan(-20.5, -15, color="0.85", lw=0)  # float64 rounding level
            ax.axhline(math.log10(BOUNDED_RATIO), color="k", lw=0.6, ls=":")
            ax.axhline(math.log10(LINE_RATIO), color="k", lw=0.6, ls="--")
            ax.set_xscale("log", base=2)
            ax.set_xlabel("network depth L")
            ax.set_ylabel(f"log10 {label}")
            ax.set_title(f"{INIT_LABELS[init]}", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    figure.suptitle(f"Covariance of U[0, 1]^w pushed through residual layers 2…L "
                    f"({params['n_samples']} samples; median and IQR over {params['cov_seeds']} "
                    "seeds; values below 1e-20 drawn at −20)\nthresholds of the claims: dotted "
                    f"{BOUNDED_RATIO:g} (bounded away from 0), dashed {LINE_RATIO:g} (zero); "
                    "grey: float64 rounding level (ratios there mean 0)",
                    fontsize=10)
    return save_figure(figure, out, name)


def report(records: list[dict], params: Mapping[str, Any], out: Path) -> Report:
    inits = params["inits"]
    depths = params["image_depths"]
    deepest = max(depths)
    images = _by(records, "image", "init", "depth")
    cov = _by(records, "covariance", "init", "width", "depth")
    figures = []

    def model_of(init: str, depth: int) -> MLP:
        return build_model(images[(init, depth)][0]["settings"], PLOT_SEED)

    figures.append(image_grid_figure(
        inits, model_of, out, "fig8_images.png", depths=depths,
        resolution=params["resolution"], refine=0, include_input_layer=False, one_network=False,
        exact_only=False,
        title=f"Residual width 2: [0, 1]² through layers 2…L, seed {PLOT_SEED}\n"
              "window [−0.1H, 1.1H]², H = largest coordinate"))
    figures.append(_image_metrics_figure(images, params, out, "fig8_image_metrics.png"))
    figures.append(_covariance_figure(cov, params, out, "fig8_covariance.png"))
    image_fig, metrics_fig, cov_fig = figures

    # (a) width 2
    rows = []
    for init in inits:
        for d in depths:
            rs = images[(init, d)]
            rows.append([INIT_LABELS[init], d, f"{_median(rs, 'diameter'):.3g}",
                         f"{_median(rs, 'area'):.3g}", f"{_median(rs, 'jacobian_volume'):.3g}",
                         f"{_median(rs, 'max_coordinate'):.3g}",
                         f"{_median(rs, 'min_ratio'):.2g}",
                         f"{_median(rs, 'angular_width'):.2g}"])
    table_a = markdown_table(["init", "L", "diameter", "area (set)", "∫|det J| (MC)",
                              "max coordinate", "λ_min/λ_max", "angle (deg)"], rows)
    tol = params["collapse_tol"] * math.sqrt(2.0)
    smallest = {INIT_LABELS[i]: min(r["diameter"] for d in depths for r in images[(i, d)])
                for i in inits}
    claims = [Claim(
        "The residual image never collapses to a point: diameter > 1e-8 × √2 for every init, "
        "seed and L", passed=all(v > tol for v in smallest.values()),
        value={"smallest_diameter": smallest},
        paper="the image of the square never collapses to a point … regardless of "
              "initialization (§4.2)", figure=metrics_fig)]
    if "he" in inits:
        he_diam = _median(images[("he", deepest)], "diameter")
        glorot_diam = (_median(images[("glorot", deepest)], "diameter")
                       if "glorot" in inits else None)
        claims.append(Claim(
            f"He's image blows up: median diameter at L = {deepest} ≥ {BLOW_UP:g} × √2",
            passed=bool(he_diam >= BLOW_UP * math.sqrt(2.0)),
            value={"He": he_diam, "Glorot (not judged)": glorot_diam},
            paper="the blow-up evident in the He basis (Fig. 17 caption; §4.2)",
            figure=metrics_fig))
    baselines = [i for i in inits if i in ("glorot", "he")]
    line = {INIT_LABELS[i]: _median(images[(i, deepest)], "min_ratio") for i in baselines}
    angle = {INIT_LABELS[i]: _median(images[(i, deepest)], "angular_width") for i in baselines}
    claims.append(Claim(
        f"Glorot and He images tend to lines through the origin: median λ_min/λ_max of P_L at "
        f"L = {deepest} ≤ {LINE_RATIO:g}",
        passed=bool(line) and all(v <= LINE_RATIO for v in line.values()),
        value={"min_ratio": line, "angular_width_deg": angle},
        paper="P_L, under the Glorot and He initializations, tends to a linear subspace through "
              "the origin (App. C)", figure=metrics_fig))
    if "box" in inits:
        box = [r for d in depths for r in images[("box", d)]]
        low, high = min(r["min_coordinate"] for r in box), max(r["max_coordinate"] for r in box)
        claims.append(Claim(
            "Box's image stays bounded: every P_L lies in [0, e]² (eq. 15)",
            passed=bool(low >= -1e-12 and high <= math.e + 1e-12),
            value={"min": low, "max": high}, paper="features in [0, e] (eq. 15)",
            figure=image_fig))
        areas = {f"L={d}": _median(images[("box", d)], "area") for d in depths}
        claims.append(Claim(
            f"Box remarkably preserves area: median area of P_L within a factor {AREA_FACTOR:g} "
            "of the square's at every L",
            passed=all(1 / AREA_FACTOR <= a <= AREA_FACTOR for a in areas.values()),
            value=areas, paper="a remarkable preservation of the area of P_L as depth increases "
                               "(§4.2)", figure=metrics_fig))

    # (b) covariance spectra
    rows = []
    for init in inits:
        for width in params["widths"]:
            rows.append([INIT_LABELS[init], width]
                        + [f"{_median(cov[(init, width, d)], 'min_ratio'):.2g} / "
                           f"{_median(cov[(init, width, d)], 'second_ratio'):.2g}"
                           for d in params["cov_depths"]])
    table_b = markdown_table(["init", "w"] + [f"L = {d}" for d in params["cov_depths"]], rows)
    top = max(params["cov_depths"])
    widths = params["widths"]
    for key, label, wording in [
            ("min_ratio", "λ_min/λ_max", "quickly become zero with increasing depth"),
            ("second_ratio", "λ_2/λ_max", "eventually becomes zero")]:
        values = {f"{INIT_LABELS[i]} w={w}": _median(cov[(i, w, top)], key)
                  for i in baselines for w in widths}
        claims.append(Claim(
            f"Under Glorot and He {label} goes to 0: median at L = {top} ≤ {LINE_RATIO:g} at "
            "every width", passed=bool(values) and all(v <= LINE_RATIO for v in values.values()),
            value=values, paper=f"the ratio … {wording} (§4.2, Fig. 8)", figure=cov_fig))
    if "box" in inits:
        lowest = {f"w={w}": min(min(_median(cov[("box", w, d)], "min_ratio"),
                                    _median(cov[("box", w, d)], "second_ratio"))
                                for d in params["cov_depths"]) for w in widths}
        claims.append(Claim(
            f"Under Box neither ratio tends to 0: both medians ≥ {BOUNDED_RATIO:g} at every "
            "depth and width", passed=all(v >= BOUNDED_RATIO for v in lowest.values()),
            value={"smallest_median": lowest},
            paper="neither ratio tends toward zero for the Box initialization (§4.2)",
            figure=cov_fig))
        medians = {f"w={w}": {INIT_LABELS[i]: _median(cov[(i, w, top)], "min_ratio")
                              for i in ["box", *baselines]} for w in widths}
        passed = all(m["Box"] >= 10.0 * m[INIT_LABELS[i]]
                     for m in medians.values() for i in baselines)
        claims.append(Claim(
            f"Box's median λ_min/λ_max at L = {top} is ≥ 10 × He's and Glorot's at every width",
            passed=bool(baselines) and passed, value=medians,
            paper="Glorot/He ratios → 0, Box's stay away from 0 (§4.2, Fig. 8)",
            figure=cov_fig))

    markdown = (
        "Residual ReLU networks MLP(1, w, L); the box [0, 1]^w enters layer 2 (App. C: the "
        "input layer excluded), so P_L is its image through L − 1 residual layers. Glorot and "
        "He are uniform with zero biases; Box is eqs. 12–16 (δ = 1/L).\n\n"
        f"**(a) width 2**, {params['image_seeds']} seeds, medians. Area (set) is the union area "
        f"of the images of a {params['resolution']}² grid's triangles; ∫|det J| is a Monte Carlo "
        f"estimate with {params['volume_samples']} samples that counts folded sheets more than "
        "once (equal to the area when the map does not fold). The angle is the spread of polar "
        "angles of the image seen from the origin.\n\n" + table_a
        + f"\n\n**(b) covariance ratios** λ_min/λ_max / λ_2/λ_max (medians over "
        f"{params['cov_seeds']} seeds, {params['n_samples']} samples of U[0, 1]^w).\n\n"
        + table_b
    )
    return Report(claims=claims, markdown=markdown, figures=figures)


EXPERIMENT = Experiment(
    id="cyr2020.fig8",
    title="Residual networks: image of the unit square and covariance spectra through depth",
    paper="Cyr et al. (2020), Fig. 8, §4.2, App. C",
    profiles=PROFILES,
    cells=cells,
    run=run,
    report=report,
    description="(a) The image P_L of [0, 1]² through the residual layers of width-2 networks; "
                "(b) λ_min/λ_max and λ_2/λ_max of the covariance of U[0, 1]^w pushed through "
                "residual networks of widths 8, 32, 128, for Glorot / He / Box.",
)
