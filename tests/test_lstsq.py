import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SEEDS
from deepbasis import MLP, fit_head_, init, lstsq


def _rank_deficient(g, n, w, rank):
    left = torch.randn(n, rank, generator=g, dtype=torch.float64)
    return left @ torch.randn(rank, w, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("method", ["svd", "qr"])
@pytest.mark.parametrize(("n", "w", "rank"), [(50, 8, 8), (50, 8, 3), (6, 10, 6), (6, 10, 2)])
def test_matches_numpy_lstsq_including_rank_deficient(seed, method, n, w, rank):
    g = torch.Generator().manual_seed(seed)
    A = _rank_deficient(g, n, w, rank)
    B = torch.randn(n, 3, generator=g, dtype=torch.float64)
    expected, *_ = np.linalg.lstsq(A.numpy(), B.numpy(), rcond=None)  # the minimum-norm solution
    result = lstsq(A, B, method=method)
    torch.testing.assert_close(result.solution, torch.from_numpy(expected), rtol=1e-8,
                               atol=1e-9, msg=lambda m: f"seed {seed}: {m}")
    residual = ((A.numpy() @ expected - B.numpy()) ** 2).sum(0)
    torch.testing.assert_close(result.residual, torch.from_numpy(residual), rtol=1e-8,
                               atol=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_batched_equals_one_by_one(seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.stack([_rank_deficient(g, 20, 6, r) for r in (6, 2, 4, 1)])  # (4, 20, 6)
    B = torch.randn(4, 20, 2, generator=g, dtype=torch.float64)
    batched = lstsq(A, B).solution
    assert batched.shape == (4, 6, 2)
    for k in range(4):
        expected, *_ = np.linalg.lstsq(A[k].numpy(), B[k].numpy(), rcond=None)
        torch.testing.assert_close(batched[k], torch.from_numpy(expected), rtol=1e-8, atol=1e-9)


def test_vector_right_hand_side_and_broadcast_batch():
    A = torch.randn(3, 10, 4, dtype=torch.float64)
    b = torch.randn(10, dtype=torch.float64)
    solution = lstsq(A[0], b).solution
    assert solution.shape == (4,)
    batched = lstsq(A, b.expand(3, 10)).solution
    assert batched.shape == (3, 4)
    torch.testing.assert_close(batched[0], solution)


@pytest.mark.parametrize("seed", SEEDS)
def test_ridge_matches_normal_equations(seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(30, 5, generator=g, dtype=torch.float64)
    B = torch.randn(30, 2, generator=g, dtype=torch.float64)
    lam = 0.3
    expected = np.linalg.solve(A.T.numpy() @ A.numpy() + lam * np.eye(5), A.T.numpy() @ B.numpy())
    torch.testing.assert_close(lstsq(A, B, method="ridge", ridge=lam).solution,
                               torch.from_numpy(expected))


def test_rcond_truncates_small_singular_values():
    A = torch.diag(torch.tensor([1.0, 1e-6], dtype=torch.float64))
    b = torch.tensor([1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(lstsq(A, b).solution, torch.tensor([1.0, 1e6], dtype=torch.float64))
    torch.testing.assert_close(lstsq(A, b, rcond=1e-3).solution,
                               torch.tensor([1.0, 0.0], dtype=torch.float64))


def test_zero_matrix_gives_zero_solution():
    A = torch.zeros(5, 3, dtype=torch.float64)
    result = lstsq(A, torch.ones(5, dtype=torch.float64))
    assert torch.equal(result.solution, torch.zeros(3, dtype=torch.float64))
    assert result.residual.item() == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: lstsq(torch.ones(5), torch.ones(5)), ValueError, r"A must have shape"),
        (lambda: lstsq(torch.ones(5, 2), torch.ones(4, 1)), ValueError, r"N = 5 rows like A"),
        (lambda: lstsq(torch.ones(5, 2), torch.ones(5), method="lu"), ValueError,
         r"unknown method 'lu'; valid choices are 'svd', 'qr', 'ridge'"),
        (lambda: lstsq(torch.ones(5, 2), torch.ones(5), method="ridge"), ValueError,
         r"needs ridge > 0"),
        (lambda: lstsq(torch.ones(5, 2), torch.ones(5), rcond=-1.0), ValueError, r"rcond"),
        (lambda: lstsq(torch.ones(5, 2, dtype=torch.int64), torch.ones(5)), TypeError,
         r"floating-point"),
    ],
)
def test_bad_input_raises_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("seed", SEEDS)
def test_fit_head_solves_for_weight_and_bias(seed):
    g = torch.Generator().manual_seed(seed)
    model = init.box_(MLP(1, 10, 2, out_features=2, dtype=torch.float64), generator=seed)
    x = torch.rand(40, 1, generator=g, dtype=torch.float64)
    y = torch.cat([torch.sin(3 * x), x**2], dim=1)
    assert fit_head_(model, x, y) is model
    with torch.no_grad():
        phi = torch.cat([model.features(x), torch.ones(40, 1, dtype=torch.float64)], 1).numpy()
    expected, *_ = np.linalg.lstsq(phi, y.numpy(), rcond=None)
    torch.testing.assert_close(model.head.weight.detach(), torch.from_numpy(expected[:10].T))
    torch.testing.assert_close(model.head.bias.detach(), torch.from_numpy(expected[10]))


def test_fit_head_rejects_bad_data():
    model = MLP(1, 4, 1, dtype=torch.float64)
    x = torch.rand(10, 1, dtype=torch.float64)
    bad = x.clone()
    bad[3, 0] = float("nan")
    with pytest.raises(ValueError, match=r"x contains 1 non-finite value.*index \(3, 0\)"):
        fit_head_(model, bad, x)
    with pytest.raises(ValueError, match=r"N = 10 rows"):
        fit_head_(model, x, torch.ones(9, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"out_features=2"):
        fit_head_(model, x, torch.ones(10, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="not a basis network"):
        fit_head_(torch.nn.Linear(1, 1), x, x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_rank_deficient_min_norm_on_cuda():
    A = _rank_deficient(torch.Generator().manual_seed(0), 30, 8, 3)
    B = torch.randn(30, 2, dtype=torch.float64)
    torch.testing.assert_close(lstsq(A.cuda(), B.cuda()).solution.cpu(), lstsq(A, B).solution)



@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 12), w=st.integers(1, 12), rank=st.integers(0, 12),
       seed=st.integers(0, 2**31 - 1))
def test_solution_is_the_minimum_norm_least_squares_solution(n, w, rank, seed):
    """Normal equations Aᵀ(AX − B) = 0, and X lies in A's row space (so it has minimum norm)."""
    g = torch.Generator().manual_seed(seed)
    rank = min(rank, n, w)
    A = _rank_deficient(g, n, w, rank) if rank else torch.zeros(n, w, dtype=torch.float64)
    B = torch.randn(n, 2, generator=g, dtype=torch.float64)
    X = lstsq(A, B).solution
    scale = 1.0 + float(A.abs().max()) ** 2 * float(B.abs().max())
    assert float((A.T @ (A @ X - B)).abs().max()) <= 1e-9 * scale, f"seed {seed}"
    # The component of X outside the row space of A (spanned by the first `rank` right
    # singular vectors) must vanish.
    basis = np.linalg.svd(A.numpy())[2][:rank].T  # (w, rank)
    outside = X.numpy() - basis @ (basis.T @ X.numpy())
    assert np.abs(outside).max() <= 1e-8 * (1 + np.abs(X.numpy()).max()), f"seed {seed}"
