"""The piecewise-linear yardsticks (deepbasis.reference) against ruptures, pwlf and SciPy."""

import numpy as np
import pytest
import torch

from conftest import SEEDS
from deepbasis.reference import (
    SegmentCosts,
    continuous_pwl_fit,
    greedy_merge,
    linear_interpolant,
    natural_cubic_spline,
    optimal_segmentation,
)


def noisy_data(seed, n=80):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-2, 2, n))
    return x, np.sin(3 * x) + 0.5 * x**2 + 0.1 * rng.standard_normal(n)


def test_segment_costs_equal_lstsq():
    x, y = noisy_data(0, 50)
    costs = SegmentCosts(x, y)
    for i, j in [(0, 50), (3, 5), (10, 31), (7, 8)]:
        a = np.column_stack([x[i:j], np.ones(j - i)])
        _, res, *_ = np.linalg.lstsq(a, y[i:j], rcond=None)
        expected = float(res.sum()) if res.size else 0.0
        assert float(costs.sse(i, j)) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("pieces,min_size,jump", [(2, 2, 1), (4, 2, 1), (3, 5, 1), (5, 3, 4)])
def test_dp_equals_ruptures(seed, pieces, min_size, jump):
    rpt = pytest.importorskip("ruptures")
    x, y = noisy_data(seed)
    ours = optimal_segmentation(x, y, pieces, min_size=min_size, jump=jump)
    algo = rpt.Dynp(model="linear", min_size=min_size, jump=jump)
    algo.fit(np.column_stack([y, x, np.ones_like(x)]))
    ends = algo.predict(n_bkps=pieces - 1)
    starts = [0, *ends[:-1]]
    cost = sum(algo.cost.error(a, b) for a, b in zip(starts, ends, strict=True))
    assert list(ours.ends) == ends
    assert ours.cost == pytest.approx(cost, rel=1e-9)
    assert ours.mse() == pytest.approx(float(((ours(x) - y) ** 2).mean()), rel=1e-9)


def test_dp_is_exact_on_pieces_it_can_represent():
    x = np.linspace(0, 3, 61)
    y = np.where(x < 1, x, np.where(x < 2, 5 - 2 * x, 3 * x))  # three lines, two jumps
    fit = optimal_segmentation(x, y, 3)
    assert fit.cost == pytest.approx(0.0, abs=1e-20)
    np.testing.assert_allclose(fit.coefficients, [[1, 0], [-2, 5], [3, 0]], atol=1e-12)


def test_dp_rejects_impossible_cuts():
    x, y = noisy_data(0, 10)
    with pytest.raises(ValueError, match="segments"):
        optimal_segmentation(x, y, 6, min_size=2)


@pytest.mark.parametrize("seed", SEEDS)
def test_greedy_merge_is_never_better_than_the_optimum(seed):
    x, y = noisy_data(seed, 200)
    for k in (2, 5, 10):
        gm = greedy_merge(x, y, k)
        dp = optimal_segmentation(x, y, k)
        assert gm.num_pieces == k
        assert gm.cost >= dp.cost * (1 - 1e-12)
    # With plenty of pieces Greedy Merge gets close to the optimum (Acharya et al. 2016).
    assert greedy_merge(x, y, 40).cost <= 2.0 * optimal_segmentation(x, y, 20).cost


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("pieces", [2, 4])
def test_continuous_fit_no_worse_than_pwlf(seed, pieces):
    pwlf = pytest.importorskip("pwlf")
    x, y = noisy_data(seed, 60)
    ours = continuous_pwl_fit(x, y, pieces, generator=seed)
    ref = pwlf.PiecewiseLinFit(x, y, seed=seed)
    ref.fit(pieces)
    assert ours.num_pieces <= pieces
    assert ours.cost <= ref.ssr * (1 + 1e-9)
    # The spline is continuous by construction and its cost is what it says.
    fitted = ours.spline(torch.from_numpy(x)).numpy()
    assert ours.cost == pytest.approx(float(((fitted - y) ** 2).sum()), rel=1e-9)
    # Continuity costs something: never better than the discontinuous optimum.
    assert ours.cost >= optimal_segmentation(x, y, pieces).cost * (1 - 1e-9)


def test_interpolants_match_scipy_and_numpy():
    from scipy.interpolate import CubicSpline

    x, y = noisy_data(1, 12)
    lin = linear_interpolant(x, y)
    q = np.linspace(x[0], x[-1], 101)
    np.testing.assert_allclose(lin(torch.from_numpy(q)).numpy(), np.interp(q, x, y), rtol=1e-13)
    cs = natural_cubic_spline(x[::-1], y[::-1])  # any order
    np.testing.assert_allclose(cs(q), CubicSpline(x, y, bc_type="natural")(q), rtol=1e-13)
    np.testing.assert_allclose(cs(x[[0, -1]], 2), 0.0, atol=1e-9)
