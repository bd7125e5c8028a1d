"""The transport-equation PINN (problems/transport.py, Cyr et al. 2020 §5.3, eq. 19)."""

import math

import pytest
import torch

from conftest import SEEDS, tol
from deepbasis import MLP
from deepbasis.init import box_
from deepbasis.problems.transport import (
    exact_solution,
    grid_points,
    relative_l2_error,
    rms_error,
    solution_errors,
    tent,
    transport_operator,
    transport_problem,
)
from deepbasis.train import lstsq, set_head_

F64 = torch.float64


def random_points(seed, n=200):
    return torch.rand(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_tent():
    x = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.45, 0.5, 0.9], dtype=F64)
    torch.testing.assert_close(tent(x), torch.tensor([0, 0, 0.5, 1, 0.25, 0, 0], dtype=F64),
                               **tol(F64))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("velocity", ["constant", "linear"])
def test_exact_solutions_solve_the_pde_and_boundary_conditions(seed, velocity):
    x = random_points(seed)  # almost surely off the kinks, where the derivative exists
    residual = transport_operator(velocity)(lambda p: exact_solution(p, velocity)[:, None], x)
    torch.testing.assert_close(residual, torch.zeros_like(residual), rtol=0, atol=1e-12)
    s = x[:, 0]
    zeros = torch.zeros_like(s)
    torch.testing.assert_close(exact_solution(torch.stack([s, zeros], 1), velocity), tent(s),
                               **tol(F64))
    torch.testing.assert_close(exact_solution(torch.stack([zeros, s], 1), velocity), zeros,
                               **tol(F64))


def test_velocity_operators():
    assert repr(transport_operator("constant")) == "D(1) + D(0)"
    assert repr(transport_operator("linear")) == "D(1) + x·D(0)"


@pytest.mark.parametrize("velocity", ["constant", "linear"])
def test_problem_layout_matches_eq_19(velocity):
    n, eps = 11, 0.25
    problem = transport_problem(velocity, n=n, epsilon=eps)
    pde, initial, inflow = problem.terms
    assert [t.name for t in problem.terms] == ["pde", "initial", "inflow"]
    assert pde.points.shape == (n * n, 2) and initial.points.shape == inflow.points.shape == (n, 2)
    assert pde.weight == eps and initial.weight == inflow.weight == 1.0
    assert (initial.points[:, 1] == 0).all() and (inflow.points[:, 0] == 0).all()
    # identity terms: rows are [Φ, 1] / √N and targets u0 / √N (J2) and 0 (J3)
    model = box_(MLP(2, 6, 1, domain=(0.0, 1.0), dtype=F64), generator=0)
    A, b = problem.rows(model)
    assert A.shape == (n * n + 2 * n, 7)
    block = A[n * n:n * n + n]
    phi = model.features(initial.points)
    torch.testing.assert_close(block[:, :6], phi / math.sqrt(n), **tol(F64))
    torch.testing.assert_close(block[:, 6], torch.full((n,), 1 / math.sqrt(n), dtype=F64),
                               **tol(F64))
    torch.testing.assert_close(b[n * n:n * n + n, 0], tent(initial.points[:, 0]) / math.sqrt(n),
                               **tol(F64))
    assert (b[:n * n] == 0).all() and (b[-n:] == 0).all()
    # the PDE rows carry √(ε/N) and have no bias contribution (∂ of a constant is 0)
    assert (A[:n * n, 6] == 0).all()


def characteristic_network(extra: int = 0, seed: int = 0) -> MLP:
    """u0(x − t) = (ReLU(s − 0.1) − 2 ReLU(s − 0.3) + ReLU(s − 0.5)) / 0.2 with s = x − t:
    three units whose cut planes are the characteristics through the tent's kinks, plus
    ``extra`` Box-initialized units that the least-squares solve must switch off."""
    model = box_(MLP(2, 3 + extra, 1, domain=(0.0, 1.0), dtype=F64), generator=seed)
    with torch.no_grad():
        model.layers[0].weight[:3] = torch.tensor([[1.0, -1.0]] * 3, dtype=F64)
        model.layers[0].bias[:3] = -torch.tensor([0.1, 0.3, 0.5], dtype=F64)
    return model


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("extra", [0, 5])
def test_exact_solution_in_the_span_is_found_by_one_ls_solve(seed, extra):
    problem = transport_problem("constant", n=101, epsilon=1.0)
    model = characteristic_network(extra, seed)
    with torch.no_grad():
        A, b = problem.rows(model)
    result = lstsq(A, b)
    assert float(result.residual.sum()) <= 1e-20, f"seed={seed}"
    set_head_(model.head, result.solution)
    with torch.no_grad():
        assert float(problem.loss(model)) <= 1e-20, f"seed={seed}"
    assert relative_l2_error(model, "constant", n=201) <= 1e-10, f"seed={seed}"


def test_errors_of_exact_and_zero_models():
    model = characteristic_network()
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor([[5.0, -10.0, 5.0]], dtype=F64))
        model.head.bias.zero_()
    assert relative_l2_error(model) <= 1e-12 and rms_error(model) <= 1e-12
    with torch.no_grad():
        model.head.weight.zero_()
    errors = solution_errors(model, "linear", n=51)
    exact = exact_solution(grid_points(51), "linear")
    assert errors["relative_l2"] == pytest.approx(1.0)
    assert errors["rms"] == pytest.approx(float(exact.pow(2).mean().sqrt()))


def test_grid_points_order():
    p = grid_points(3)
    assert p.shape == (9, 2)
    torch.testing.assert_close(p[:3], torch.tensor([[0, 0], [0.5, 0], [1, 0]], dtype=F64))


def test_bad_input():
    with pytest.raises(ValueError, match="unknown velocity 'quadratic'; valid choices are "
                                         "'constant', 'linear'"):
        transport_problem("quadratic")
    with pytest.raises(ValueError, match="epsilon must be a positive finite number, got -1"):
        transport_problem(epsilon=-1.0)
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        transport_problem(n=1)
    with pytest.raises(ValueError, match=r"shape \(N, 2\) with columns \(x, t\), got \(4, 3\)"):
        exact_solution(torch.rand(4, 3))
    with pytest.raises(ValueError, match="the model expects in_features=3"):
        transport_problem(n=5).validate(MLP(3, 4, 1, dtype=F64))


@pytest.mark.parametrize("seed", SEEDS)
def test_fit_trains_the_problem_with_lsgd_and_gd(seed):
    # fit takes the problem through the protocol: LSGD's loss[0] is the LS solve on the initial
    # rows, GD's loss[0] is the initial network's multi-term loss; both runs lower the loss.
    from deepbasis import fit

    problem = transport_problem("linear", n=11, epsilon=0.5)

    def model():
        return box_(MLP(2, 8, 2, residual=True, domain=(0.0, 1.0), dtype=F64), generator=seed)

    initial = model()
    with torch.no_grad():
        A, b = problem.rows(initial)
        gd_start = float(problem.loss(initial))
    ls_start = float(lstsq(A, b).residual.sum())
    lsgd = fit(model(), problem, method="lsgd", steps=20, lr=0.01, progress=False)
    gd = fit(model(), problem, method="gd", steps=20, lr=0.01, progress=False)
    assert lsgd.loss[0] == pytest.approx(ls_start, rel=1e-8), f"seed={seed}"
    assert gd.loss[0] == pytest.approx(gd_start, rel=1e-10), f"seed={seed}"
    assert lsgd.loss[-1] < lsgd.loss[0] and gd.loss[-1] < gd.loss[0], f"seed={seed}"
