"""Drawing the image of the unit square through width-2 layers, shared by ``cyr2020.fig6`` and
``cyr2020.fig8`` (Cyr et al. 2020, Figs. 6 and 8)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.collections import LineCollection, PolyCollection

from ...analysis.geometry import BoxImage, box_image
from ...nn import MLP
from ..plotting import COLORS, new_figure, save_figure
from ._common import INIT_LABELS

INIT_COLORS = {"glorot": COLORS[0], "he": COLORS[1], "box": COLORS[2]}
#: The seed whose images the figures show.
PLOT_SEED = 0


def draw_image(ax, image: BoxImage, depth: int, *, color: str, grid_lines: int = 9,
               samples: int = 513, model: MLP | None = None,
               include_input_layer: bool = True, exact_only: bool = True) -> None:
    """Draw P_depth: its exact 2-D part filled, and the images of grid lines of the square.

    The filled triangles are those on which the map is exactly affine (all triangles, the
    interpolant, with ``exact_only=False``); the images of
    ``grid_lines`` horizontal and vertical lines (``samples`` points each, pushed through the
    ``model`` when given) show the curves a folded or squashed image is made of.
    """
    points = image.points[depth].numpy()
    triangles = image.triangles.numpy()
    if exact_only and image.exact is not None:
        triangles = triangles[image.exact[depth].numpy()]
    polygons = points[triangles]  # (T, 3, 2)
    if len(polygons):
        u, v = polygons[:, 1] - polygons[:, 0], polygons[:, 2] - polygons[:, 0]
        polygons = polygons[np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]) > 0]  # not flat
        ax.add_collection(PolyCollection(polygons, facecolors=color, edgecolors="none",
                                         alpha=0.35, antialiased=False))
    if model is not None and depth > 0:
        t = np.linspace(0.0, 1.0, samples)
        levels = np.linspace(0.0, 1.0, grid_lines)
        inputs = np.concatenate([np.stack([t, np.full_like(t, v)], 1) for v in levels]
                                + [np.stack([np.full_like(t, v), t], 1) for v in levels])
        with torch.no_grad():
            x = torch.as_tensor(inputs, dtype=next(model.parameters()).dtype)
            layers = list(model.layers) if include_input_layer else list(model.layers)[1:]
            h = x
            for index, layer in enumerate(layers[:depth]):
                z = model.activation(layer(h))
                plain = not model.residual or (include_input_layer and index == 0)
                h = z if plain else h + z
        curves = h.to(torch.float64).numpy().reshape(2 * grid_lines, samples, 2)
        ax.add_collection(LineCollection(curves, colors=color, linewidths=0.6))
    # The paper's window: [−0.2, H]² with H the largest coordinate; ReLU images lie in the
    # positive quadrant, so this keeps the origin in view (lines *through the origin*).
    size = float(np.abs(points).max())
    if np.ptp(points, axis=0).max() == 0.0:
        ax.plot(*points[0], "o", color=color, ms=5)
    window = size if size > 0 else 1.0
    ax.set_xlim(-0.1 * window, 1.1 * window)
    ax.set_ylim(-0.1 * window, 1.1 * window)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=6)
    ax.xaxis.get_offset_text().set_fontsize(6)
    ax.yaxis.get_offset_text().set_fontsize(6)
    ax.text(0.97, 0.97, f"H = {size:.2g}", transform=ax.transAxes, ha="right", va="top",
            fontsize=7)


def image_grid_figure(inits: Sequence[str], model_of, out: Path, name: str, *,
                      depths: Sequence[int], title: str, resolution: int, refine: int,
                      include_input_layer: bool = True, one_network: bool = True,
                      exact_only: bool = True) -> str:
    """Rows = initializations, columns = depths: an image P_l in every panel.

    ``model_of(init, depth)`` gives the network drawn in a panel; with ``one_network`` a single
    network of the largest depth is built per row and drawn after each of ``depths`` layers,
    otherwise each panel has its own network of that depth, drawn after all its layers.
    """
    figure, axes = new_figure(len(depths), len(inits), width=1.9, height=2.0)
    for row, init in enumerate(inits):
        cache: dict[int, tuple[MLP, BoxImage]] = {}
        for col, depth in enumerate(depths):
            key = max(depths) if one_network else depth
            if key not in cache:
                model = model_of(init, key)
                cache[key] = (model, box_image(model, resolution=resolution, refine=refine,
                                               include_input_layer=include_input_layer))
            model, image = cache[key]
            ax = axes[row, col]
            draw_image(ax, image, depth if one_network else image.depth,
                       color=INIT_COLORS.get(init, COLORS[3]), model=model,
                       include_input_layer=include_input_layer, exact_only=exact_only)
            if row == 0:
                ax.set_title(f"L = {depth}", fontsize=9)
            if col == 0:
                ax.set_ylabel(INIT_LABELS.get(init, init), fontsize=10)
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, out, name)
