r"""Geometry of the hidden layers: the image P_L of the unit box and its covariance spectrum.

Cyr et al. (2020), App. C: feed the box :math:`[0, 1]^w` into the w → w hidden layers of a
network and look at its image :math:`P_L` after L layers. A collapse of :math:`P_L` to a point
means constant basis functions; a collapse to a line (or a lower-dimensional set) means
linearly dependent basis functions (Fig. 6, Fig. 8). For w = 2 the image can be drawn and its
area measured; for any w the covariance spectrum of pushed-forward uniform samples measures how
close the image is to a lower-dimensional subspace (Fig. 8, right).

Which layers: with ``include_input_layer=True`` (default) the box enters layer 1, which needs
``in_features == width``. With ``include_input_layer=False`` it enters layer 2, i.e. the image
through the w → w hidden layers "excluding the d-dimensional input layer" (App. C); this is the
right choice for residual networks, whose first layer is always plain in :class:`deepbasis.MLP`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from scipy.spatial import ConvexHull, QhullError
from torch import nn

from .._checks import GeneratorLike, as_generator

_MAX_GRID_POINTS = 2**22


@dataclass
class BoxImage:
    """Images of a (triangulated) grid of the unit box through a network's hidden layers.

    Attributes:
        points: ``(L + 1, N, w)`` float64; ``points[0]`` are the grid points in
            :math:`[0, 1]^w` and ``points[l]`` their images after ``l`` layers.
        triangles: ``(T, 3)`` int64 vertex indices of a triangulation of the square (w = 2
            only, else ``None``), counter-clockwise in the input, so a triangle's signed image
            area is positive where the map preserves orientation.
        exact: ``(L + 1, T)`` bool, or ``None`` when unknown (activations other than ReLU, or
            modules other than an MLP): whether the three vertices of a triangle share the
            activation pattern of layers 1..l (a zero pre-activation fits both). Such a
            triangle lies in (the closure of) one linear region, a convex polytope, of the
            map, so its image *is* the triangle of its vertices' images; the image of any
            other triangle is only approximated, and can be far off (a tiny triangle across a
            kink of a steep map is stretched across the plane).
        resolution: G, points per side of the initial grid.
        levels: refinement levels actually used (0: the uniform grid).
    """

    points: torch.Tensor
    triangles: torch.Tensor | None
    exact: torch.Tensor | None
    resolution: int
    levels: int = 0

    @property
    def depth(self) -> int:
        """Number of layers L the box went through."""
        return self.points.shape[0] - 1

    def inexact_fraction(self) -> np.ndarray:
        r"""``(L + 1,)``: the share of the square covered by inexact triangles at each depth.

        The area :func:`image_area` reports misses at most this share of the square times
        the largest :math:`|\det J|` of the map on it.
        """
        if self.triangles is None:
            raise ValueError("inexact_fraction needs a triangulated (w = 2) image")
        areas = np.abs(_signed_areas(_as_numpy(self.points[:1]), _as_numpy_int(self.triangles)))
        if self.exact is None:
            return np.full(self.depth + 1, np.nan)
        return (areas * ~_as_numpy_bool(self.exact)).sum(axis=1)


@dataclass
class _LayerMap:
    """x ↦ [h_1, …, h_L] through the chosen layers, and (for ReLU MLPs) their linear regions."""

    states: Callable[[torch.Tensor], list[torch.Tensor]]
    in_features: int
    width: int
    # x ↦ (states, (N, L·w) int8 signs of the pre-activations, (N, L) det J_l); None when
    # not a ReLU MLP.
    regions: Callable[[torch.Tensor], tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]] \
        | None = None


def _layer_map(model: nn.Module, include_input_layer: bool) -> _LayerMap:
    layers = getattr(model, "layers", None)
    if layers is not None and hasattr(model, "activation"):
        chosen = list(layers) if include_input_layer else list(layers)[1:]
        if not chosen:
            raise ValueError(
                "include_input_layer=False leaves no layers in a depth-1 network; use a network "
                "with depth >= 2 or include_input_layer=True"
            )
        residual = bool(getattr(model, "residual", False))
        activation = model.activation

        def run(x: torch.Tensor, with_regions: bool):
            # Written out rather than through model.hidden_states: the box lives in the layer's
            # own input coordinates, so the model's optional domain map must not be applied,
            # and the first layer is plain even in a residual network.
            out, active, dets = [], [], []
            h = x
            J = torch.eye(x.shape[1], dtype=x.dtype, device=x.device).expand(len(x), -1, -1)
            for index, layer in enumerate(chosen):
                pre = layer(h)  # (N, w)
                z = activation(pre)  # (N, w)
                plain = not residual or (include_input_layer and index == 0)
                h = z if plain else h + z
                out.append(h)
                if with_regions:
                    on = pre > 0  # (N, w)
                    step = on[:, :, None] * layer.weight @ J  # (N, w, in): D W J (ReLU)
                    J = step if plain else J + step
                    active.append(torch.sign(pre).to(torch.int8))
                    dets.append(_det(J))  # (N,)
            return out, active, dets

        def regions(x: torch.Tensor):
            out, active, dets = run(x, True)
            return out, torch.cat(active, dim=1), torch.stack(dets, dim=1)

        relu = isinstance(activation, nn.ReLU)
        return _LayerMap(lambda x: run(x, False)[0], chosen[0].in_features,
                         chosen[-1].out_features, regions if relu else None)
    if not include_input_layer:
        raise TypeError(
            f"include_input_layer=False needs a deepbasis.MLP (with .layers and .activation), "
            f"got {type(model).__name__}"
        )
    hidden = getattr(model, "hidden_states", None)
    if hidden is None:
        raise TypeError(
            f"{type(model).__name__} has no hidden_states(x); pass a deepbasis.MLP or a module "
            "whose hidden_states(x) returns every hidden layer's output"
        )
    in_features = getattr(model, "in_features", None)
    width = getattr(model, "width", None)
    if in_features is None or width is None:
        raise TypeError(f"{type(model).__name__} needs in_features and width attributes")
    return _LayerMap(hidden, in_features, width)


def _det(J: torch.Tensor) -> torch.Tensor:
    """Batched determinants; the 2 × 2 formula directly (batched LU is slow for tiny matrices)."""
    if J.shape[-1] == 2:
        return J[:, 0, 0] * J[:, 1, 1] - J[:, 0, 1] * J[:, 1, 0]
    return torch.linalg.det(J)


def _model_dtype(model: nn.Module) -> torch.dtype:
    for parameter in model.parameters():
        return parameter.dtype
    return torch.float64


def _model_device(model: nn.Module) -> torch.device:
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def _check_box_dims(d: int, w: int, include_input_layer: bool) -> None:
    if d != w:
        hint = ("build the model as MLP(w, w, L) or pass include_input_layer=False to feed the "
                "box into layers 2..L (App. C: excluding the input layer)"
                if include_input_layer else "the hidden layers must all have the same width")
        raise ValueError(
            f"the box [0, 1]^w must pass through every chosen layer, but their input has "
            f"{d} dimension(s) and their output {w}; {hint}"
        )


def _check_depth(depth: int | None, available: int) -> int:
    if depth is None:
        return available
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= available:
        raise ValueError(f"depth must be an integer in [1, {available}], got {depth!r}")
    return depth


def unit_box_grid(width: int, resolution: int, *, dtype: torch.dtype = torch.float64
                  ) -> torch.Tensor:
    """The ``resolution^width`` points of a regular grid of :math:`[0, 1]^{width}`.

    Ordered with the first coordinate fastest, so for w = 2 point ``i + G j`` is
    ``(i / (G − 1), j / (G − 1))``.

    Examples:
        >>> unit_box_grid(2, 3)[4]
        tensor([0.5000, 0.5000], dtype=torch.float64)
    """
    axis = torch.linspace(0.0, 1.0, resolution, dtype=dtype)
    mesh = torch.meshgrid(*([axis] * width), indexing="ij")
    # meshgrid's last axis varies fastest; reversing makes coordinate 0 the fastest.
    return torch.stack([m.reshape(-1) for m in reversed(mesh)], dim=1)  # (G^w, w)


def grid_triangles(resolution: int) -> torch.Tensor:
    """Counter-clockwise triangulation of the ``G × G`` grid of :func:`unit_box_grid`:
    every cell split along its diagonal, ``(2 (G − 1)^2, 3)``.

    Examples:
        >>> grid_triangles(2)
        tensor([[0, 1, 3],
                [0, 3, 2]])
    """
    g = resolution
    i, j = torch.meshgrid(torch.arange(g - 1), torch.arange(g - 1), indexing="ij")
    a = (i + g * j).reshape(-1)  # lower-left corner of each cell
    b, c, d = a + 1, a + 1 + g, a + g  # lower-right, upper-right, upper-left
    return torch.cat([torch.stack([a, b, c], 1), torch.stack([a, c, d], 1)])  # (2(G-1)^2, 3)


@torch.no_grad()
def box_image(
    model: nn.Module,
    *,
    depth: int | None = None,
    resolution: int = 33,
    refine: int = 8,
    include_input_layer: bool = True,
    max_points: int = 2**20,
) -> BoxImage:
    r"""The image :math:`P_l` of the unit box :math:`[0, 1]^w` after every hidden layer l.

    Cyr et al. (2020), App. C and Figs. 6 and 8. A grid of ``resolution`` points per side is
    pushed through the layers. For w = 2 it is triangulated so that the images of the
    triangles can be drawn and measured (:func:`image_area`).

    **Refinement (w = 2, ReLU MLPs).** A ReLU network is affine on each linear region, so the
    image of a triangle whose vertices share one activation pattern is exactly the triangle of
    the vertices' images (:attr:`BoxImage.exact`). A triangle whose vertices do not, and which
    touches a full-rank region (some vertex with :math:`\det J_l ≠ 0`), is split into four, up
    to ``refine`` times. Triangles touching only rank-deficient
    regions are not refined: the map squashes them onto curves, where refining would only
    multiply triangles of zero area. A full-rank region that contains no vertex of the initial
    grid can be missed; the Monte Carlo :func:`image_volume` is an independent check.

    Args:
        model: a :class:`deepbasis.MLP` (or any module with ``hidden_states``, ``in_features``
            and ``width``, then without refinement). With ``include_input_layer=True`` it needs
            ``in_features == width``.
        depth: number of layers to go through (default: all chosen layers).
        resolution: points per side of the initial grid, G ≥ 2. The grid has :math:`G^w`
            points, at most :math:`2^{22}`; for large w use :func:`covariance_ratios`.
        refine: maximal number of refinement levels (0: the uniform grid). The finest inexact
            triangles are :math:`1 / ((G − 1) 2^{\text{refine}})` wide.
        include_input_layer: feed the box into layer 1 (default) or into layer 2, i.e. the
            image through the w → w hidden layers excluding the input layer (App. C); use
            ``False`` for residual networks, whose first layer is always plain.
        max_points: stop refining before the mesh would exceed this many points.

    Returns:
        :class:`BoxImage` with ``points`` ``(depth + 1, N, w)`` (float64, CPU).

    Examples:
        >>> from deepbasis import MLP, init
        >>> model = init.box_(MLP(2, 2, 4, dtype=torch.float64), generator=0)
        >>> image = box_image(model, resolution=9, refine=0)
        >>> image.points.shape, image.triangles.shape
        (torch.Size([5, 81, 2]), torch.Size([128, 3]))
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution must be an integer >= 2, got {resolution!r}")
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise ValueError(f"refine must be a non-negative integer, got {refine!r}")
    layer_map = _layer_map(model, include_input_layer)
    d, w = layer_map.in_features, layer_map.width
    _check_box_dims(d, w, include_input_layer)
    if resolution**w > _MAX_GRID_POINTS:
        raise ValueError(
            f"a grid of resolution {resolution} in {w} dimensions has {resolution}^{w} points "
            f"(more than 2^22); lower resolution, or use covariance_ratios / image_volume, "
            "which sample the box"
        )
    dtype, device = _model_dtype(model), _model_device(model)
    with_regions = w == 2 and layer_map.regions is not None

    def evaluate(x: np.ndarray):
        """Images (depth, N, w); if known, active bits (N, depth·w) and det J_l (N, depth)."""
        x = torch.as_tensor(x, dtype=dtype, device=device)
        bits = dets = None
        if with_regions:
            states, bits, dets = layer_map.regions(x)
            bits = bits[:, :depth * w].cpu().numpy()
            dets = dets[:, :depth].to(device="cpu", dtype=torch.float64).numpy()
        else:
            states = layer_map.states(x)
        images = torch.stack(states[:depth]).to(device="cpu", dtype=torch.float64).numpy()
        return images, bits, dets

    grid = unit_box_grid(w, resolution, dtype=torch.float64).numpy()
    depth = _check_depth(depth, len(layer_map.states(
        torch.as_tensor(grid[:1], dtype=dtype, device=device))))
    images, bits, dets = evaluate(grid)
    triangles = exact = None
    levels = 0
    if w == 2:
        triangles = grid_triangles(resolution).numpy()
        if with_regions:
            grid, images, bits, triangles, levels = _refine(
                grid, images, bits, dets, triangles, evaluate, refine, max_points)
            first = _first_difference(bits, triangles)
            exact = torch.as_tensor(first[None, :] >= (np.arange(depth + 1) * w)[:, None])
        triangles = torch.as_tensor(triangles, dtype=torch.int64)
    points = torch.as_tensor(np.concatenate([grid[None], images]))  # (depth+1, N, w)
    return BoxImage(points=points, triangles=triangles, exact=exact, resolution=resolution,
                    levels=levels)


def _first_difference(signs: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Per triangle, the first unit whose pre-activation is > 0 at one vertex and < 0 at
    another (``signs.shape[1]`` if none).

    A zero pre-activation fits either pattern (ReLU is continuous there), so a triangle with
    no such conflict lies in the *closure* of one linear region, where the map is affine.
    """
    vertex = signs[triangles]  # (T, 3, bits)
    differ = (vertex > 0).any(axis=1) & (vertex < 0).any(axis=1)  # (T, bits)
    return np.where(differ.any(axis=1), differ.argmax(axis=1), signs.shape[1])


def _signed_areas(images: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(depth, T) signed areas of the image triangles."""
    a, b, c = (images[:, triangles[:, k]] for k in range(3))  # (depth, T, 2) each
    return 0.5 * ((b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1])
                  - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0]))


def _refine(points, images, bits, dets, triangles, evaluate, levels: int, max_points: int):
    """Split inexact triangles that touch a full-rank region into four, repeatedly."""
    depth, w = images.shape[0], images.shape[2]
    used = 0
    for _ in range(levels):
        first = _first_difference(bits, triangles)  # (T,)
        inexact = first[None, :] < (np.arange(1, depth + 1) * w)[:, None]  # (depth, T)
        full_rank = (dets[triangles] != 0).any(axis=1).T  # (depth, T)
        split = (inexact & full_rank).any(axis=0)
        mixed = triangles[split]  # (M, 3)
        if len(mixed) == 0 or len(points) + 3 * len(mixed) > max_points:
            break
        edges = np.concatenate([mixed[:, [0, 1]], mixed[:, [1, 2]], mixed[:, [2, 0]]])
        unique, inverse = np.unique(np.sort(edges, axis=1), axis=0, return_inverse=True)
        # A midpoint may duplicate a hanging node made earlier by a neighbour's split; a repeated
        # vertex changes no triangle's image, so it is not worth a lookup.
        mids = 0.5 * (points[unique[:, 0]] + points[unique[:, 1]])  # (E, 2)
        index = (len(points) + inverse.reshape(-1)).reshape(3, -1).T  # (M, 3): ab, bc, ca
        new_images, new_bits, new_dets = evaluate(mids)
        points = np.concatenate([points, mids])
        images = np.concatenate([images, new_images], axis=1)
        bits = np.concatenate([bits, new_bits])
        dets = np.concatenate([dets, new_dets])
        a, b, c = mixed.T
        ab, bc, ca = index.T
        # The four children keep the parent's counter-clockwise orientation.
        children = np.stack([np.stack([a, ab, ca], 1), np.stack([ab, b, bc], 1),
                             np.stack([ca, bc, c], 1), np.stack([ab, bc, ca], 1)])
        triangles = np.concatenate([triangles[~split], children.reshape(-1, 3)])
        used += 1
    return points, images, bits, triangles, used


def _as_numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().to(torch.float64).numpy()
    return np.asarray(values, dtype=np.float64)


def _as_numpy_int(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.int64)


def _as_numpy_bool(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=bool)


def image_area(points, triangles=None, *, lines: int = 4096, multiplicity: bool = False):
    r"""Area of the union of the triangles ``points[triangles]`` in the plane (w = 2).

    Pass a :class:`BoxImage` (from :func:`box_image`) to get the area of the image
    :math:`P_l` of the unit square at every depth: then only the triangles that are exact at
    depth l (:attr:`BoxImage.exact`) are used, which gives a lower bound that converges to the
    true area as the refinement resolves the map's kinks (the rest is bounded by
    :meth:`BoxImage.inexact_fraction`); for non-ReLU networks all triangles are used (the
    piecewise-linear interpolant of the map on the grid).

    The union is measured by vertical scanlines: on each of ``lines`` vertical lines (the
    midpoints of equal strips of the image's bounding box) every triangle cuts an interval,
    and the *exact* length of the union of those intervals is computed by sorting. The length
    along a line is a continuous piecewise-linear function of x, so the midpoint rule is exact
    on every strip free of vertices and crossings; a strip with a kink errs by at most its
    width times the change of length across it, so the relative error is O(lines⁻²) for a
    polygon with few vertices and at worst O(perimeter / lines) for a ragged union of many
    small triangles (measured on network images: ≤ 3e-3 with 1024 lines, ≤ 1e-5 with 4096).
    A fold (two sheets over the same point) is counted once, as the area of a set should be.
    Triangles of zero area (up to 1e-14 of the bounding box) are skipped.

    With ``multiplicity=True`` the sum of the triangles' unsigned areas is returned instead:
    :math:`\int |\det J|` over the (exact) triangles, which counts every sheet of a fold. It is
    ≥ the union area, with equality when the map does not fold.

    Args:
        points: ``(N, 2)`` vertices, ``(D, N, 2)`` for D images on the same triangulation, or a
            :class:`BoxImage`.
        triangles: ``(T, 3)`` integer vertex indices (not with a :class:`BoxImage`).
        lines: number of scanlines (≥ 1).
        multiplicity: return :math:`\int |\det J|` instead of the union area.

    Returns:
        A float for ``(N, 2)`` points, else a ``(D,)`` NumPy array (``(L + 1,)`` for a
        :class:`BoxImage`).

    Examples:
        >>> square = torch.tensor([[0.0, 0.0], [2.0, 0.0], [2.0, 1.0], [0.0, 1.0]])
        >>> round(image_area(square, torch.tensor([[0, 1, 2], [0, 2, 3]])), 12)
        2.0
    """
    if isinstance(lines, bool) or not isinstance(lines, int) or lines < 1:
        raise ValueError(f"lines must be a positive integer, got {lines!r}")
    area = _triangle_area_sum if multiplicity else _union_area
    if isinstance(points, BoxImage):
        image = points
        if triangles is not None:
            raise ValueError("pass either a BoxImage or (points, triangles), not both")
        if image.triangles is None:
            raise ValueError("image_area needs a 2-D image; use image_volume for w > 2")
        p, t = _as_numpy(image.points), _as_numpy_int(image.triangles)
        _check_area_inputs(p, t)
        exact = None if image.exact is None else _as_numpy_bool(image.exact)
        return np.array([area(p[l], t if exact is None else t[exact[l]], lines)
                         for l in range(len(p))])
    if triangles is None:
        raise ValueError("image_area needs triangles (T, 3) with (N, 2) points, or a BoxImage")
    p, t = _as_numpy(points), _as_numpy_int(triangles)
    _check_area_inputs(p, t)
    if p.ndim == 2:
        return area(p, t, lines)
    return np.array([area(q, t, lines) for q in p])


def _check_area_inputs(p: np.ndarray, t: np.ndarray) -> None:
    if p.ndim not in (2, 3) or p.shape[-1] != 2:
        raise ValueError(f"points must have shape (N, 2) or (D, N, 2), got {p.shape}")
    if t.ndim != 2 or t.shape[1] != 3:
        raise ValueError(f"triangles must have shape (T, 3), got {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= p.shape[-2]):
        raise ValueError(f"triangles index vertices outside 0..{p.shape[-2] - 1}")
    if not np.isfinite(p).all():
        raise ValueError("points contain NaN or inf; the image has overflowed, use float64")


def _triangle_area_sum(p: np.ndarray, t: np.ndarray, lines: int) -> float:
    return float(np.abs(_signed_areas(p[None], t)[0]).sum())


def _union_area(p: np.ndarray, t: np.ndarray, lines: int, budget: int = 2_000_000) -> float:
    if t.size == 0:
        return 0.0
    used = p[np.unique(t)]
    x0, y0 = used.min(axis=0)
    x1, y1 = used.max(axis=0)
    if x1 <= x0 or y1 <= y0:
        return 0.0  # the image lies on a vertical or horizontal segment (or a point)
    # Flat image triangles (segments, points) have no area: dropping them changes the union by
    # at most T · 1e-14 of the bounding box and saves most of the work once a map squashes
    # regions onto curves.
    cross = 2.0 * _signed_areas(p[None], t)[0]
    t = t[np.abs(cross) > 1e-14 * (x1 - x0) * (y1 - y0)]
    if t.size == 0:
        return 0.0
    # Normalize to the unit bounding box: scale-free, and the per-line offsets below then
    # separate lines by exactly 2 units without losing precision.
    q = (p - [x0, y0]) / [x1 - x0, y1 - y0]
    tri = q[t]  # (T, 3, 2)
    h = 1.0 / lines
    lo = np.ceil(tri[:, :, 0].min(axis=1) / h - 0.5).astype(np.int64).clip(0, lines - 1)
    hi = np.floor(tri[:, :, 0].max(axis=1) / h - 0.5).astype(np.int64).clip(-1, lines - 1)
    counts = np.maximum(hi - lo + 1, 0)
    blocks = max(1, math.ceil(int(counts.sum()) / budget))
    edges = np.linspace(0, lines, blocks + 1).astype(np.int64)
    total = 0.0
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        # Line indices of this block that each triangle crosses: [a, b].
        a, b = np.maximum(lo, start), np.minimum(hi, stop - 1)
        n = np.maximum(b - a + 1, 0)
        if n.sum() == 0:
            continue
        owner = np.repeat(np.arange(len(tri)), n)  # (P,) triangle of each (line, triangle) pair
        first = np.repeat(np.cumsum(n) - n, n)
        line = a[owner] + np.arange(int(n.sum())) - first  # (P,)
        x = (line + 0.5) * h
        v = tri[owner]  # (P, 3, 2)
        ylo = np.full(len(x), np.inf)
        yhi = np.full(len(x), -np.inf)
        for i, j in ((0, 1), (1, 2), (2, 0)):
            xa, ya, xb, yb = v[:, i, 0], v[:, i, 1], v[:, j, 0], v[:, j, 1]
            # Vertical edges are skipped: the two other edges of the triangle bound the cut.
            ok = (xa != xb) & (np.minimum(xa, xb) <= x) & (x <= np.maximum(xa, xb))
            with np.errstate(divide="ignore", invalid="ignore"):
                y = ya + (x - xa) / (xb - xa) * (yb - ya)
            ylo = np.where(ok, np.minimum(ylo, y), ylo)
            yhi = np.where(ok, np.maximum(yhi, y), yhi)
        keep = yhi >= ylo
        # Exact union length per line: sort by start, keep a running maximum of the ends.
        # Offsetting line k by 2k puts all lines into one sorted sweep (y is in [0, 1]).
        start_key = ylo[keep] + 2.0 * line[keep]
        end_key = yhi[keep] + 2.0 * line[keep]
        order = np.argsort(start_key, kind="stable")
        s, e = start_key[order], end_key[order]
        reach = np.concatenate([[-np.inf], np.maximum.accumulate(e)[:-1]])
        total += float(np.maximum(e - np.maximum(s, reach), 0.0).sum())
    return float(total * h * (x1 - x0) * (y1 - y0))


def image_diameter(points) -> float:
    r"""Largest distance between two of ``points``: the diameter of their convex hull.

    The diameter is attained between two vertices of the convex hull, so for images of
    dimension 2 or 3 the hull (``scipy.spatial.ConvexHull``) is computed in the points' own
    affine span and the distances among its vertices are compared; degenerate sets are handled
    exactly: a point has diameter 0 and a segment the distance between its ends. Above three
    dimensions all pairs are compared (in blocks, O(N²)).

    Args:
        points: ``(N, w)`` array or tensor.

    Returns:
        The diameter (float, 0.0 for fewer than two distinct points).

    Examples:
        >>> image_diameter(torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]]))
        5.0
    """
    p = _as_numpy(points)
    if p.ndim != 2:
        raise ValueError(f"points must have shape (N, w), got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("points contain NaN or inf; the image has overflowed, use float64")
    if len(p) < 2 or np.all(p == p[0]):
        return 0.0
    center = p.mean(axis=0)
    centered = p - center
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    # Affine dimension: singular values below this are rounding noise of a flat set.
    rank = int((s > s[0] * max(p.shape) * np.finfo(np.float64).eps * 16).sum())
    if rank <= 1:
        along = centered @ vt[0]
        return float(np.linalg.norm(p[np.argmax(along)] - p[np.argmin(along)]))
    if rank <= 3:
        try:
            hull = ConvexHull(centered @ vt[:rank].T)
            return _brute_diameter(p[hull.vertices])
        except QhullError:
            pass  # nearly degenerate beyond the rank tolerance: compare all pairs
    return _brute_diameter(p)


def _brute_diameter(p: np.ndarray) -> float:
    # Differences, not the |a|² + |b|² − 2 a·b expansion, which loses digits for close points.
    block = max(1, 2**22 // (len(p) * p.shape[1]))
    best = 0.0
    for start in range(0, len(p), block):
        diff = p[start:start + block, None, :] - p[None, :, :]  # (b, N, w)
        best = max(best, float((diff**2).sum(axis=-1).max()))
    return math.sqrt(best)


@torch.no_grad()
def image_volume(
    model: nn.Module,
    n_samples: int = 4096,
    *,
    depth: int | None = None,
    include_input_layer: bool = True,
    generator: GeneratorLike = None,
    chunk: int = 256,
) -> torch.Tensor:
    r"""Monte Carlo estimate of :math:`\int_{[0,1]^w} |\det J_l(x)|\,dx` after every layer l.

    :math:`J_l` is the Jacobian of the map through the first l layers. The integral is the
    w-dimensional volume of the image :math:`P_l` **counted with multiplicity**: a region
    folded k times onto itself counts k times, so it is an upper bound of the image's volume
    (equal when the map is injective), and it is 0 once the map has rank < w almost
    everywhere. For w = 2, :func:`image_area` gives the area of the set itself.

    The samples are ``torch.rand(n_samples, w, generator=generator)`` in float64; the
    standard error is the sample standard deviation of :math:`|\det J|` over
    :math:`\sqrt{n}`. Determinants go through ``slogdet`` and the mean through ``logsumexp``,
    so very large or small volumes do not overflow before the final ``exp`` (which may give
    ``inf`` beyond float64's range).

    Args:
        model: as for :func:`box_image`.
        n_samples: number of uniform samples of the box.
        depth: number of layers (default: all chosen layers).
        include_input_layer: as for :func:`box_image`.
        generator: ``torch.Generator`` or int seed for the samples.
        chunk: samples per batched Jacobian (memory is ``chunk · L · w²``).

    Returns:
        ``(depth,)`` float64 tensor; entry l − 1 is the estimate after l layers.

    Examples:
        >>> from deepbasis import MLP, init
        >>> model = init.box_(MLP(2, 2, 3, dtype=torch.float64), generator=0)
        >>> image_volume(model, 64, generator=0).shape
        torch.Size([3])
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    layer_map = _layer_map(model, include_input_layer)
    states, d, w = layer_map.states, layer_map.in_features, layer_map.width
    _check_box_dims(d, w, include_input_layer)
    gen = as_generator(generator)
    dtype, device = _model_dtype(model), _model_device(model)
    x = torch.rand(n_samples, w, generator=gen, dtype=torch.float64)  # (n, w)
    probe = states(x[:1].to(device=device, dtype=dtype))
    depth = _check_depth(depth, len(probe))

    def stacked(v: torch.Tensor) -> torch.Tensor:
        return torch.stack(states(v[None])[:depth])[:, 0]  # (depth, w)

    jacobian = torch.func.vmap(torch.func.jacfwd(stacked))
    logs = []
    for start in range(0, n_samples, chunk):
        xs = x[start:start + chunk].to(device=device, dtype=dtype)
        J = jacobian(xs).to(device="cpu", dtype=torch.float64)  # (c, depth, w, w)
        logs.append(torch.linalg.slogdet(J).logabsdet)  # (c, depth); -inf where det = 0
    logabs = torch.cat(logs)  # (n, depth)
    return torch.exp(torch.logsumexp(logabs, dim=0) - math.log(n_samples))


class CovarianceRatios(NamedTuple):
    """Eigenvalue ratios of the feature covariance after every layer (float64).

    Attributes:
        min_ratio: ``(L,)`` λ_min / λ_max.
        second_ratio: ``(L,)`` λ_2 / λ_max (λ_2 the second largest).
        eigenvalues: ``(L, w)`` eigenvalues, ascending, negatives from rounding set to 0.
    """

    min_ratio: torch.Tensor
    second_ratio: torch.Tensor
    eigenvalues: torch.Tensor


def feature_covariance_ratios(features: torch.Tensor) -> CovarianceRatios:
    r"""λ_min/λ_max and λ_2/λ_max of the covariance of ``features`` ``(N, w)`` or ``(L, N, w)``.

    The covariance is the unbiased sample covariance (``numpy.cov`` convention), computed and
    diagonalized (``eigvalsh``) in float64. Rounding can make the smallest eigenvalues slightly
    negative; they are clipped to 0. Ratios below about 1e-15 are at rounding level and mean
    "zero".

    **Zero covariance.** When every feature is constant over the samples (the image collapsed
    to a point), λ_max = 0 and both ratios are defined as 0: the image has lost every
    dimension, the most degenerate case, consistent with "ratio → 0 means degenerate".
    """
    f = features.detach().to(device="cpu", dtype=torch.float64)
    if f.ndim == 2:
        f = f[None]
    if f.ndim != 3 or f.shape[1] < 2 or f.shape[2] < 2:
        raise ValueError(
            f"features must have shape (N, w) or (L, N, w) with N >= 2 samples and w >= 2 "
            f"features, got {tuple(features.shape)}"
        )
    if not torch.isfinite(f).all():
        raise ValueError("features contain NaN or inf; the image has overflowed, use float64")
    centered = f - f.mean(dim=1, keepdim=True)  # (L, N, w)
    cov = centered.transpose(1, 2) @ centered / (f.shape[1] - 1)  # (L, w, w)
    eig = torch.linalg.eigvalsh(cov).clamp_min(0.0)  # (L, w) ascending
    top = eig[:, -1]
    safe = torch.where(top > 0, top, torch.ones_like(top))
    zero = torch.zeros_like(top)
    min_ratio = torch.where(top > 0, eig[:, 0] / safe, zero)
    second_ratio = torch.where(top > 0, eig[:, -2] / safe, zero)
    return CovarianceRatios(min_ratio, second_ratio, eig)


@torch.no_grad()
def covariance_ratios(
    model: nn.Module,
    n_samples: int = 4096,
    *,
    depth: int | None = None,
    include_input_layer: bool = True,
    generator: GeneratorLike = None,
) -> CovarianceRatios:
    r"""Covariance spectrum of :math:`U[0, 1]^w` pushed through every hidden layer (Fig. 8).

    Cyr et al. (2020), §4.2: the ratios λ_min/λ_max and λ_2/λ_max of the covariance of the
    hidden features. λ_min/λ_max → 0 means one basis function has become (nearly) a linear
    combination of the others; λ_2/λ_max → 0 means the image is close to a line, i.e. all
    basis functions are (nearly) multiples of one another plus constants.

    The samples are ``torch.rand(n_samples, w, generator=generator, dtype=torch.float64)``,
    cast to the model's dtype. With n samples the ratios carry sampling noise: even for the
    identity map λ_min/λ_max ≈ ((1 − √(w/n)) / (1 + √(w/n)))² (Marchenko–Pastur), so use
    n ≫ w. A collapsed (constant) image gives ratios 0, see :func:`feature_covariance_ratios`.

    Args:
        model: as for :func:`box_image`.
        n_samples: number of samples (≥ 2).
        depth: number of layers (default: all chosen layers).
        include_input_layer: as for :func:`box_image`.
        generator: ``torch.Generator`` or int seed for the samples.

    Returns:
        :class:`CovarianceRatios` with one entry per layer 1..depth.

    Examples:
        >>> from deepbasis import MLP, init
        >>> model = init.box_(MLP(8, 8, 4, residual=True, dtype=torch.float64), generator=0)
        >>> covariance_ratios(model, 1024, generator=0).min_ratio.shape
        torch.Size([4])
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    layer_map = _layer_map(model, include_input_layer)
    states, d, w = layer_map.states, layer_map.in_features, layer_map.width
    _check_box_dims(d, w, include_input_layer)
    if w < 2:
        raise ValueError(f"covariance ratios need width >= 2, got {w}")
    gen = as_generator(generator)
    x = torch.rand(n_samples, w, generator=gen, dtype=torch.float64)  # (n, w)
    hidden = states(x.to(device=_model_device(model), dtype=_model_dtype(model)))
    depth = _check_depth(depth, len(hidden))
    return feature_covariance_ratios(torch.stack(hidden[:depth]))  # (depth, n, w)


__all__ = [
    "BoxImage",
    "CovarianceRatios",
    "box_image",
    "covariance_ratios",
    "feature_covariance_ratios",
    "grid_triangles",
    "image_area",
    "image_diameter",
    "image_volume",
    "unit_box_grid",
]
