"""Loss surface in spline coordinates (Sahs et al. 2022, §2.3–2.4): Hessian, lonely partitions,
knot classification (Thm 3), piecewise-OLS critical points (Thm 4), Cor. 3's zero count."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import SEEDS
from deepbasis import MLP
from deepbasis.analysis.loss_surface import (
    ATTRACTOR,
    FLAT,
    PASSTHROUGH,
    REPELLER,
    breakpoint_slice,
    classify_knots,
    data_partition,
    hessian_spectrum,
    is_lonely,
    lonely_probability,
    lonely_probability_printed,
    loss_gradient,
    loss_hessian,
    piecewise_ols_test,
)
from deepbasis.analysis.shallow import ShallowParams

F64 = torch.float64


def random_params(h: int, g: torch.Generator, scale: float = 1.0) -> ShallowParams:
    w, b, v = (scale * torch.randn(h, generator=g, dtype=F64) for _ in range(3))
    return ShallowParams(w, b, v, torch.randn((), generator=g, dtype=F64))


def random_data(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.sort(4 * torch.rand(n, generator=g, dtype=F64) - 2).values
    return x, torch.randn(n, generator=g, dtype=F64)


def finite_difference_hessian(model_or_params, x, y, h=1e-6) -> torch.Tensor:
    """Central differences of the autograd gradient, one column per parameter."""
    if isinstance(model_or_params, ShallowParams):
        theta = model_or_params.flat()
        grad = lambda t: loss_gradient(ShallowParams.from_flat(t), x, y)  # noqa: E731
    else:
        model = model_or_params
        params = list(model.parameters())
        theta = torch.cat([p.detach().reshape(-1) for p in params])

        def grad(t):
            with torch.no_grad():
                torch.nn.utils.vector_to_parameters(t, params)
            return loss_gradient(model, x, y)

    cols = []
    for j in range(theta.numel()):
        e = torch.zeros_like(theta)
        e[j] = h
        cols.append((grad(theta + e) - grad(theta - e)) / (2 * h))
    if not isinstance(model_or_params, ShallowParams):
        torch.nn.utils.vector_to_parameters(theta, list(model_or_params.parameters()))
    return torch.stack(cols, dim=1)


@pytest.mark.parametrize("seed", SEEDS)
def test_hessian_matches_finite_differences_of_the_gradient(seed):
    g = torch.Generator().manual_seed(seed)
    p = random_params(6, g)
    x, y = random_data(15, g)
    exact = loss_hessian(p, x, y)
    fd = finite_difference_hessian(p, x, y)
    # Central differences: truncation O(h²) ~ 1e-12, rounding ~ eps·|∇ℓ|/h ~ 1e-9.
    torch.testing.assert_close(exact, fd, rtol=0, atol=1e-6 * float(exact.abs().max()))
    assert torch.equal(exact, exact.T)


@pytest.mark.parametrize("seed", SEEDS)
def test_hessian_of_a_deep_network_matches_finite_differences(seed):
    torch.manual_seed(seed)
    model = MLP(1, 4, 2, dtype=F64)
    g = torch.Generator().manual_seed(seed)
    x, y = random_data(10, g)
    exact = loss_hessian(model, x, y)
    assert exact.shape == (sum(p.numel() for p in model.parameters()),) * 2
    fd = finite_difference_hessian(model, x, y)
    torch.testing.assert_close(exact, fd, rtol=0, atol=1e-6 * float(exact.abs().max()))


def test_hessian_of_a_shallow_mlp_is_that_of_its_params_in_order_w_b_v_b0():
    torch.manual_seed(0)
    model = MLP(1, 5, 1, dtype=F64)
    x, y = random_data(9, torch.Generator().manual_seed(1))
    torch.testing.assert_close(loss_hessian(model, x, y),
                               loss_hessian(ShallowParams.from_model(model), x, y),
                               rtol=1e-12, atol=1e-12)


def test_shallow_params_fold_an_mlp_domain_and_round_trip():
    torch.manual_seed(0)
    model = MLP(1, 7, 1, domain=(-3.0, 2.0), dtype=F64)
    p = ShallowParams.from_model(model)
    x = torch.linspace(-3, 2, 50, dtype=F64)
    torch.testing.assert_close(p(x), model(x[:, None])[:, 0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(p.to_model()(x[:, None])[:, 0], p(x), rtol=0, atol=0)
    torch.testing.assert_close(ShallowParams.from_flat(p.flat()).flat(), p.flat())
    with pytest.raises(ValueError, match="shallow network"):
        ShallowParams.from_model(MLP(1, 4, 2))


def lonely_interpolating_params(n: int, h: int, g: torch.Generator):
    """Data, and a network through them whose partition is lonely and whose first unit is
    active on all data (the setting of 2022 Cor. 3)."""
    x = torch.sort(torch.rand(n, generator=g, dtype=F64) * 4 - 2).values
    y = torch.randn(n, generator=g, dtype=F64)
    gaps = (x[1:] + x[:-1]) / 2  # one breakpoint between consecutive points: lonely
    extra = torch.rand(h - (n - 1) - 1, generator=g, dtype=F64) * 5 - 2.5
    beta = torch.cat([x[:1] - 0.5, gaps, extra])  # unit 0: left of all data ...
    w = (0.5 + torch.rand(h, generator=g, dtype=F64)) * torch.where(
        torch.rand(h, generator=g) < 0.5, -1.0, 1.0).to(F64)
    w[0] = abs(w[0])  # ... and right-facing: active on all data
    b = -w * beta
    phi = torch.cat([torch.relu(x[:, None] * w + b), torch.ones(n, 1, dtype=F64)], dim=1)
    sol = torch.linalg.lstsq(phi, y[:, None], driver="gelsd").solution[:, 0]  # min norm
    return ShallowParams(w, b, sol[:-1], sol[-1]), x, y


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("n", "h"), [(4, 6), (6, 10), (8, 9)])
def test_lonely_critical_point_has_exactly_3h_plus_1_minus_n_zero_eigenvalues(seed, n, h):
    g = torch.Generator().manual_seed(seed)
    p, x, y = lonely_interpolating_params(n, h, g)
    assert is_lonely(p, x)
    assert float(((p(x) - y) ** 2).sum()) < 1e-24  # ℓ = 0 (Cor. 3)
    assert float(loss_gradient(p, x, y).abs().max()) < 1e-10  # critical
    spectrum = hessian_spectrum(loss_hessian(p, x, y))
    assert spectrum.zero_count == 3 * h + 1 - n
    assert spectrum.positive_count == n and spectrum.negative_count == 0
    nonzero = spectrum.eigenvalues[spectrum.eigenvalues.abs() > spectrum.tolerance]
    zero = spectrum.eigenvalues[spectrum.eigenvalues.abs() <= spectrum.tolerance]
    # The gap the tolerance sits in: zeros at rounding level, non-zeros far above it.
    assert float(zero.abs().max()) < 1e-13 * float(spectrum.eigenvalues.abs().max())
    assert float(nonzero.abs().min()) > 1e-8 * float(spectrum.eigenvalues.abs().max())


def test_data_partition_and_loneliness():
    beta = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    x = torch.tensor([-2.0, -0.5, 1.0, 3.0], dtype=F64)
    assert data_partition(beta, x).tolist() == [0, 1, 2, 3]
    assert is_lonely(beta, x)
    assert not is_lonely(beta, torch.tensor([0.6, 0.7], dtype=F64))
    assert data_partition(beta, torch.tensor([0.5], dtype=F64)).tolist() == [2]  # [β_p, β_p+1)


def test_lonely_probability_exact_small_cases_and_monte_carlo():
    assert lonely_probability(2, 3) == pytest.approx(0.5)  # two cells, two points
    assert lonely_probability(3, 3) == 0.0
    assert lonely_probability(1, 2) == 1.0
    assert lonely_probability_printed(4, 15) == pytest.approx(1 - math.exp(-1.0))
    g = torch.Generator().manual_seed(0)
    n, h, trials = 5, 30, 4000
    beta = torch.linspace(0, 1, h, dtype=F64)
    hits = sum(is_lonely(beta, torch.rand(n, generator=g, dtype=F64)) for _ in range(trials))
    p = lonely_probability(n, h)
    se = math.sqrt(p * (1 - p) / trials)
    assert abs(hits / trials - p) < 4 * se


def slope_signs_by_scan(p, x, y, unit, knots, delta):
    """Brute force: signs of the slice's one-sided slopes at each knot."""
    left = breakpoint_slice(p, x, y, unit, knots) - breakpoint_slice(p, x, y, unit, knots - delta)
    right = breakpoint_slice(p, x, y, unit, knots + delta) - breakpoint_slice(p, x, y, unit, knots)
    return torch.sign(left), torch.sign(right), right


@pytest.mark.parametrize("seed", SEEDS)
def test_knot_classification_matches_a_brute_force_scan_of_the_slice(seed):
    g = torch.Generator().manual_seed(seed)
    p = random_params(5, g)
    x, y = random_data(12, g)
    y = y + 2 * torch.sin(2 * x)  # some structure so that all kinds occur
    seen = set()
    for unit in range(p.width):
        c = classify_knots(p, x, y, unit)
        assert torch.equal(c.x, torch.unique(x))
        delta = 1e-5 * float((c.x[1:] - c.x[:-1]).min())
        left, right, right_step = slope_signs_by_scan(p, x, y, unit, c.x, delta)
        for k, kind in enumerate(c.kind.tolist()):
            seen.add(kind)
            if kind == FLAT:  # the slice is constant on one side
                step = right_step[k] if torch.isnan(c.right_minimum[k]) else (
                    breakpoint_slice(p, x, y, unit, c.x[k:k + 1])
                    - breakpoint_slice(p, x, y, unit, c.x[k:k + 1] - delta))[0]
                assert abs(float(step)) < 1e-12
            elif kind == PASSTHROUGH:
                assert left[k] == right[k] != 0
            elif kind == REPELLER:  # a local maximum of the slice
                assert left[k] > 0 and right[k] < 0
            else:
                assert kind == ATTRACTOR  # a local minimum
                assert left[k] < 0 and right[k] > 0
        # The vertices: the slice is exactly quadratic between knots, so a parabola through
        # three scanned points of a piece has its vertex at m (left piece of each knot).
        for k in range(1, c.x.numel()):
            if torch.isnan(c.left_minimum[k]):
                continue
            a, b = float(c.x[k - 1]), float(c.x[k])
            t = torch.tensor([a + 0.2 * (b - a), a + 0.5 * (b - a), a + 0.8 * (b - a)],
                             dtype=F64)
            coef = torch.linalg.solve(torch.stack([t**2, t, torch.ones_like(t)], 1),
                                      breakpoint_slice(p, x, y, unit, t))
            vertex = -coef[1] / (2 * coef[0])
            assert float(coef[0]) == pytest.approx(float(c.curvature_left[k]) / 2, rel=1e-6)
            assert float(vertex) == pytest.approx(float(c.left_minimum[k]), rel=1e-6, abs=1e-6)
    assert {PASSTHROUGH, FLAT} <= seen


@pytest.mark.parametrize("seed", SEEDS)
def test_attractors_are_the_local_minima_of_the_slice_at_data_points(seed):
    g = torch.Generator().manual_seed(seed)
    p = random_params(4, g)
    x, y = random_data(10, g)
    y = y + 3 * torch.cos(3 * x)
    for unit in range(p.width):
        c = classify_knots(p, x, y, unit)
        grid = torch.sort(torch.cat([torch.linspace(-3, 3, 3001, dtype=F64), c.x])).values
        values = breakpoint_slice(p, x, y, unit, grid)
        is_min = (values[1:-1] < values[:-2]) & (values[1:-1] < values[2:])
        is_max = (values[1:-1] > values[:-2]) & (values[1:-1] > values[2:])
        at = torch.isin(grid[1:-1], c.x)
        minima = set(grid[1:-1][is_min & at].tolist())
        maxima = set(grid[1:-1][is_max & at].tolist())
        assert minima == set(c.x[c.kind == ATTRACTOR].tolist())
        assert maxima == set(c.x[c.kind == REPELLER].tolist())


def critical_point_with_loss(g: torch.Generator):
    """A critical point with ℓ > 0: y = f − e with e orthogonal to (1, x) on every piece."""
    p = random_params(6, g)
    p = ShallowParams(p.w.clone(), p.b.clone(), p.v, p.b0)
    p.w[0], p.b[0] = 1.0, 3.0  # β = −3, right-facing: active on all data in [−2, 2]
    x = torch.sort(4 * torch.rand(40, generator=g, dtype=F64) - 2).values
    with torch.no_grad():
        f = p(x)
    pieces = data_partition(-p.b / p.w, x)
    e = torch.zeros_like(x)
    for piece in torch.unique(pieces):
        idx = torch.nonzero(pieces == piece)[:, 0]
        if idx.numel() >= 3:
            basis = torch.stack([torch.ones_like(x[idx]), x[idx]], 1)
            noise = torch.randn(idx.numel(), generator=g, dtype=F64)
            q, _ = torch.linalg.qr(basis)
            e[idx] = noise - q @ (q.T @ noise)
    return p, x, f - e


@pytest.mark.parametrize("seed", SEEDS)
def test_piecewise_ols_test_agrees_with_the_gradient(seed):
    g = torch.Generator().manual_seed(seed)
    p, x, y = critical_point_with_loss(g)
    result = piecewise_ols_test(p, x, y)
    grad = loss_gradient(p, x, y)
    assert result.has_global_unit and result.is_ols
    assert float(((p(x) - y) ** 2).sum()) > 1.0  # not an interpolant
    assert float(grad.abs().max()) < 1e-10  # Thm 4, "if"
    # Move one target: no longer OLS on its piece, and no longer critical (Thm 4, "only if").
    y2 = y.clone()
    y2[17] += 0.3
    result2 = piecewise_ols_test(p, x, y2)
    assert not result2.is_ols and result2.relative_error > 1e-3
    assert float(loss_gradient(p, x, y2).abs().max()) > 1e-3
    # A random network is neither.
    q = random_params(6, g)
    assert not piecewise_ols_test(q, x, y).is_ols
    assert float(loss_gradient(q, x, y).abs().max()) > 1e-3


def test_errors_name_the_fix():
    p = random_params(3, torch.Generator().manual_seed(0))
    x, y = random_data(5, torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="unit must be in"):
        classify_knots(p, x, y, 3)
    flat = ShallowParams(torch.zeros(3, dtype=F64), p.b, p.v, p.b0)
    with pytest.raises(ValueError, match="delta-slope"):
        classify_knots(flat, x, y, 0)
    with pytest.raises(ValueError, match="same length"):
        loss_hessian(p, x, y[:-1])
    with pytest.raises(ValueError, match="square"):
        hessian_spectrum(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="shallow network"):
        classify_knots(nn.Linear(1, 1), x, y, 0)
