"""Tests for deepbasis.analysis.geometry: images of the unit box, their area and diameter, the
Jacobian volume and covariance spectra, against closed forms, brute force and NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from torch import nn

from deepbasis import MLP, init
from deepbasis.analysis.geometry import (
    BoxImage,
    box_image,
    covariance_ratios,
    feature_covariance_ratios,
    grid_triangles,
    image_area,
    image_diameter,
    image_volume,
    unit_box_grid,
)

F64 = torch.float64
SEEDS = [0, 1, 2, 3]


def _set_layers(model: MLP, weights, biases) -> MLP:
    with torch.no_grad():
        for layer, w, b in zip(model.layers, weights, biases, strict=True):
            layer.weight.copy_(torch.as_tensor(w, dtype=F64))
            layer.bias.copy_(torch.as_tensor(b, dtype=F64))
    return model


def _signed(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (points[triangles[:, k]] for k in range(3))
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1])
                  - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


# --- grid and triangulation -------------------------------------------------------------------

def test_grid_order_and_counter_clockwise_triangles():
    grid = unit_box_grid(2, 5).numpy()
    assert np.allclose(grid[1 + 5 * 3], [0.25, 0.75])  # point i + G j is (i, j) / (G - 1)
    triangles = grid_triangles(5).numpy()
    areas = _signed(grid, triangles)
    assert (areas > 0).all()
    assert math.isclose(areas.sum(), 1.0, rel_tol=1e-14)


# --- image_area -------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_area_of_affine_image_is_abs_det(seed):
    rng = np.random.default_rng(seed)
    A, b = rng.normal(size=(2, 2)), rng.normal(size=2)
    grid, triangles = unit_box_grid(2, 9).numpy(), grid_triangles(9).numpy()
    image = grid @ A.T + b
    expected = abs(np.linalg.det(A))
    # Midpoint scanlines are exact on strips without vertices; 4 kinks cost O(lines^-2).
    assert image_area(image, triangles) == pytest.approx(expected, rel=1e-5), f"seed {seed}"
    assert image_area(image, triangles, multiplicity=True) == pytest.approx(expected, rel=1e-12)


def test_area_of_a_fold_counts_the_overlap_once():
    grid, triangles = unit_box_grid(2, 11).numpy(), grid_triangles(11).numpy()
    folded = np.stack([np.abs(grid[:, 0] - 0.5), grid[:, 1]], axis=1)  # (|x - 1/2|, y)
    assert image_area(folded, triangles) == pytest.approx(0.5, rel=1e-6)
    # ∫|det J| counts both sheets: strictly more than the area of the set.
    assert image_area(folded, triangles, multiplicity=True) == pytest.approx(1.0, rel=1e-12)


def test_area_of_stacked_images_and_degenerate_sets():
    grid, triangles = unit_box_grid(2, 4).numpy(), grid_triangles(4).numpy()
    stacked = np.stack([grid, 3.0 * grid, np.zeros_like(grid), grid * [1.0, 0.0]])
    areas = image_area(stacked, triangles)
    assert areas.shape == (4,)
    assert areas[:2] == pytest.approx([1.0, 9.0], rel=1e-6)
    assert areas[2] == 0.0 and areas[3] == 0.0  # a point and a segment


def test_area_of_a_segment_off_axis_is_zero():
    grid, triangles = unit_box_grid(2, 6).numpy(), grid_triangles(6).numpy()
    line = np.stack([grid[:, 0] + grid[:, 1], 2.0 * (grid[:, 0] + grid[:, 1])], axis=1)
    assert image_area(line, triangles) == 0.0


@pytest.mark.parametrize(
    ("points", "triangles", "match"),
    [
        (np.zeros((4, 3)), np.zeros((1, 3), dtype=int), r"\(N, 2\)"),
        (np.zeros((4, 2)), np.zeros((1, 2), dtype=int), r"\(T, 3\)"),
        (np.zeros((4, 2)), np.array([[0, 1, 7]]), "outside"),
        (np.full((4, 2), np.nan), np.array([[0, 1, 2]]), "NaN"),
        (np.zeros((4, 2)), None, "needs triangles"),
    ],
)
def test_area_rejects_bad_inputs(points, triangles, match):
    with pytest.raises(ValueError, match=match):
        image_area(points, triangles)


def test_area_rejects_bad_lines():
    with pytest.raises(ValueError, match="lines must be a positive integer"):
        image_area(np.zeros((3, 2)), np.array([[0, 1, 2]]), lines=0)


# --- box_image through networks ---------------------------------------------------------------

def test_identity_network_image_is_the_square():
    model = _set_layers(MLP(2, 2, 3, dtype=F64), [np.eye(2)] * 3, [np.zeros(2)] * 3)
    image = box_image(model, resolution=9)
    assert isinstance(image, BoxImage) and image.depth == 3
    assert torch.equal(image.points[3], image.points[0])
    assert bool(image.exact.all())
    assert image_area(image) == pytest.approx([1.0] * 4, rel=1e-6)
    assert image_diameter(image.points[3]) == pytest.approx(math.sqrt(2.0), rel=1e-14)


@pytest.mark.parametrize("seed", SEEDS)
def test_affine_relu_network_area_and_volume_are_abs_det(seed):
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(2, 2, generator=gen, dtype=F64)
    b = A.abs().sum(dim=1) + 1.0  # every unit active on the square: ReLU acts as the identity
    model = _set_layers(MLP(2, 2, 1, dtype=F64), [A], [b])
    expected = abs(float(torch.linalg.det(A)))
    image = box_image(model, resolution=7)
    assert image_area(image)[1] == pytest.approx(expected, rel=1e-5), f"seed {seed}"
    volume = image_volume(model, 64, generator=seed)
    torch.testing.assert_close(volume, torch.tensor([expected], dtype=F64), rtol=1e-12, atol=0)


def _fold_network() -> MLP:
    # Layer 1: identity on the square. Layer 2 (residual): x1 + relu(1 - 2 x1) = max(x1, 1 - x1),
    # a fold at x1 = 1/2 onto [1/2, 1] x [0, 1]; |det J| = 1 on both sides.
    return _set_layers(MLP(2, 2, 2, residual=True, dtype=F64),
                       [np.eye(2), [[-2.0, 0.0], [0.0, 0.0]]], [np.zeros(2), [1.0, 0.0]])


@pytest.mark.parametrize("resolution", [9, 10])
def test_folding_network_union_area_is_half_its_jacobian_volume(resolution):
    image = box_image(_fold_network(), resolution=resolution, refine=10)
    area = image_area(image)[2]
    # With an even grid the fold x1 = 1/2 cuts through triangles: refinement leaves inexact
    # triangles of total input area ``inexact`` there, and |det J| = 1 bounds what they miss.
    inexact = image.inexact_fraction()[2]
    assert inexact <= 1e-2
    assert 0.5 - inexact - 1e-9 <= area <= 0.5 + 1e-9
    assert image_area(image, multiplicity=True)[2] == pytest.approx(1.0 - inexact, abs=1e-9)
    torch.testing.assert_close(image_volume(_fold_network(), 32, generator=0),
                               torch.ones(2, dtype=F64), rtol=1e-12, atol=0)


@pytest.mark.parametrize("seed", SEEDS)
def test_exact_triangles_are_mapped_affinely(seed):
    model = init.box_(MLP(2, 2, 5, dtype=F64), generator=seed)
    image = box_image(model, resolution=9, refine=3)
    t = image.triangles
    centroids = image.points[0][t].mean(dim=1)  # (T, 2)
    mapped = torch.stack(model.hidden_states(centroids))  # (L, T, 2)
    images_of_vertices = image.points[1:][:, t].mean(dim=2)  # (L, T, 2)
    exact = image.exact[1:]
    assert bool(exact.any()), f"seed {seed}"
    torch.testing.assert_close(mapped[exact], images_of_vertices[exact], rtol=0, atol=1e-12,
                               msg=f"seed {seed}")


@pytest.mark.parametrize("seed", SEEDS)
def test_box_image_lies_in_the_unit_box(seed):
    """Eq. (11): a Box-initialized plain layer maps [0, 1]^w into [0, 1]^w."""
    image = box_image(init.box_(MLP(2, 2, 6, dtype=F64), generator=seed), resolution=9)
    assert float(image.points.min()) >= 0.0 and float(image.points.max()) <= 1.0 + 1e-12


@pytest.mark.parametrize("seed", SEEDS)
def test_area_never_exceeds_the_monte_carlo_jacobian_volume(seed):
    model = init.box_(MLP(2, 2, 3, dtype=F64), generator=seed)
    area = image_area(box_image(model, resolution=17, refine=8))[1:]
    n = 20_000
    gen = torch.Generator().manual_seed(seed)
    volume = image_volume(model, n, generator=gen)
    # Union area <= ∫|det J|; allow 5 Monte Carlo standard errors (|det J| <= max over pieces).
    bound = volume.numpy() + 5.0 * np.sqrt(volume.numpy() * 10.0 / n) + 1e-9
    assert (area <= bound).all(), f"seed {seed}: area {area}, volume {volume}"


def test_image_volume_of_a_half_dead_map_is_a_binomial_mean():
    model = _set_layers(MLP(2, 2, 1, dtype=F64), [np.eye(2)], [[-0.5, 0.0]])
    n, seed = 4000, 7
    volume = float(image_volume(model, n, generator=seed)[0])
    # |det J| is 1 where x1 > 1/2 and 0 elsewhere: a Bernoulli(1/2) mean.
    assert abs(volume - 0.5) <= 5.0 * math.sqrt(0.25 / n), f"seed {seed}: {volume}"


def test_excluding_the_input_layer_feeds_the_box_into_layer_two():
    model = init.box_(MLP(1, 2, 4, residual=True, dtype=F64), generator=3)
    image = box_image(model, resolution=5, refine=0, include_input_layer=False)
    h = image.points[0]
    for depth, layer in enumerate(model.layers[1:], start=1):
        h = h + torch.relu(layer(h))
        torch.testing.assert_close(image.points[depth], h, rtol=0, atol=0)
    assert image.depth == 3


def test_glorot_image_is_he_image_scaled_for_square_zero_bias_layers():
    # Zero biases make ReLU layers positively homogeneous, and for 2 x 2 layers Glorot's bound
    # is He's over sqrt(2): the same seed gives the same image shrunk by 2^(-l/2).
    he = box_image(init.he_(MLP(2, 2, 5, dtype=F64), generator=11), resolution=5, refine=0)
    glorot = box_image(init.glorot_(MLP(2, 2, 5, dtype=F64), generator=11), resolution=5,
                       refine=0)
    scale = 2.0 ** (-0.5 * torch.arange(6, dtype=F64))[:, None, None]
    torch.testing.assert_close(glorot.points, he.points * scale, rtol=1e-13, atol=0)


def test_a_module_with_hidden_states_only_is_accepted_without_refinement():
    class Wrapped(nn.Module):
        def __init__(self, inner: MLP):
            super().__init__()
            self.inner, self.in_features, self.width = inner, inner.in_features, inner.width

        def hidden_states(self, x):
            return self.inner.hidden_states(x)

    inner = init.box_(MLP(2, 2, 3, dtype=F64), generator=0)
    image = box_image(Wrapped(inner), resolution=5)
    assert image.exact is None and image.levels == 0
    torch.testing.assert_close(image.points, box_image(inner, resolution=5, refine=0).points)


def test_box_image_in_three_dimensions_has_no_triangles():
    image = box_image(init.box_(MLP(3, 3, 2, dtype=F64), generator=0), resolution=4)
    assert image.points.shape == (3, 64, 3) and image.triangles is None
    with pytest.raises(ValueError, match="2-D image"):
        image_area(image)


def test_box_image_errors():
    with pytest.raises(ValueError, match="in_features == width|MLP\\(w, w, L\\)"):
        box_image(MLP(1, 2, 3, dtype=F64))
    with pytest.raises(ValueError, match="resolution must be an integer >= 2"):
        box_image(MLP(2, 2, 3, dtype=F64), resolution=1)
    with pytest.raises(ValueError, match="refine must be a non-negative integer"):
        box_image(MLP(2, 2, 3, dtype=F64), refine=-1)
    with pytest.raises(ValueError, match=r"depth must be an integer in \[1, 3\]"):
        box_image(MLP(2, 2, 3, dtype=F64), depth=4)
    with pytest.raises(ValueError, match="leaves no layers"):
        box_image(MLP(2, 2, 1, dtype=F64), include_input_layer=False)
    with pytest.raises(ValueError, match="more than 2\\^22"):
        box_image(MLP(8, 8, 1, dtype=F64), resolution=9)
    with pytest.raises(TypeError, match="has no hidden_states"):
        box_image(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="include_input_layer=False needs a deepbasis.MLP"):
        box_image(nn.Linear(2, 2), include_input_layer=False)


# --- image_diameter ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dim", [2, 3, 5])
def test_diameter_matches_brute_force(seed, dim):
    points = np.random.default_rng(seed).normal(size=(300, dim))
    assert image_diameter(points) == pytest.approx(pdist(points).max(), rel=1e-13), f"seed {seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_diameter_of_degenerate_sets(seed):
    rng = np.random.default_rng(seed)
    t = rng.uniform(size=(50, 1))
    segment = np.array([1.0, -2.0]) + t * np.array([3.0, 4.0])  # collinear: Qhull would fail
    assert image_diameter(segment) == pytest.approx(5.0 * (t.max() - t.min()), rel=1e-12)
    plane = rng.normal(size=(40, 2)) @ rng.normal(size=(2, 3))  # flat in 3-D
    assert image_diameter(plane) == pytest.approx(pdist(plane).max(), rel=1e-12)
    assert image_diameter(np.ones((10, 2))) == 0.0
    assert image_diameter(torch.zeros(1, 2)) == 0.0


def test_diameter_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"\(N, w\)"):
        image_diameter(np.zeros(3))
    with pytest.raises(ValueError, match="NaN or inf"):
        image_diameter(np.array([[0.0, np.inf], [1.0, 1.0]]))


# --- covariance ratios ------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_feature_covariance_ratios_match_numpy(seed):
    features = np.random.default_rng(seed).normal(size=(200, 5)) @ np.diag([1, 2, 3, 4, 10.0])
    ratios = feature_covariance_ratios(torch.as_tensor(features))
    eig = np.linalg.eigvalsh(np.cov(features.T))
    assert float(ratios.min_ratio[0]) == pytest.approx(eig[0] / eig[-1], rel=1e-10)
    assert float(ratios.second_ratio[0]) == pytest.approx(eig[-2] / eig[-1], rel=1e-10)
    np.testing.assert_allclose(ratios.eigenvalues[0].numpy(), eig, rtol=1e-10)


def test_zero_covariance_gives_zero_ratios():
    ratios = feature_covariance_ratios(torch.full((2, 10, 3), 0.7, dtype=F64))
    assert ratios.min_ratio.tolist() == [0.0, 0.0]
    assert ratios.second_ratio.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("seed", SEEDS)
def test_covariance_ratios_of_a_linear_network_match_numpy(seed):
    gen = torch.Generator().manual_seed(100 + seed)
    weights = [torch.randn(3, 3, generator=gen, dtype=F64) for _ in range(2)]
    model = _set_layers(MLP(3, 3, 2, activation="identity", dtype=F64), weights,
                        [torch.zeros(3), torch.ones(3)])
    n = 5000
    ratios = covariance_ratios(model, n, generator=seed)
    # The documented draw: torch.rand(n, w, generator=seed, dtype=float64).
    x = torch.rand(n, 3, generator=torch.Generator().manual_seed(seed), dtype=F64).numpy()
    M = weights[1].numpy() @ weights[0].numpy()
    for depth, features in enumerate([x @ weights[0].numpy().T, x @ M.T]):
        eig = np.linalg.eigvalsh(np.cov(features.T))
        assert float(ratios.min_ratio[depth]) == pytest.approx(eig[0] / eig[-1], rel=1e-9)
        assert float(ratios.second_ratio[depth]) == pytest.approx(eig[1] / eig[-1], rel=1e-9)
    # And the population value M M^T / 12 within sampling error (5000 samples: a few %).
    population = np.linalg.eigvalsh(M @ M.T / 12.0)
    assert float(ratios.second_ratio[1]) == pytest.approx(population[1] / population[2],
                                                          rel=0.15), f"seed {seed}"


def test_covariance_ratios_excluding_the_input_layer():
    model = init.box_(MLP(1, 4, 3, residual=True, dtype=F64), generator=0)
    ratios = covariance_ratios(model, 256, generator=0, include_input_layer=False)
    assert ratios.min_ratio.shape == (2,) and ratios.eigenvalues.shape == (2, 4)
    assert bool(((ratios.min_ratio > 0) & (ratios.min_ratio <= ratios.second_ratio)).all())


def test_covariance_ratio_errors():
    with pytest.raises(ValueError, match="n_samples must be an integer >= 2"):
        covariance_ratios(MLP(2, 2, 2, dtype=F64), 1)
    with pytest.raises(ValueError, match="width >= 2"):
        covariance_ratios(MLP(1, 1, 2, dtype=F64), 10)
    with pytest.raises(ValueError, match="N >= 2 samples"):
        feature_covariance_ratios(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="NaN or inf"):
        feature_covariance_ratios(torch.full((4, 3), float("inf")))
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        image_volume(MLP(2, 2, 2, dtype=F64), 0)
