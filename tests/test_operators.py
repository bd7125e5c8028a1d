"""Linear operators on basis networks and multi-term least-squares problems (train/operators.py).

References: closed-form derivatives of one-layer tanh and ReLU networks, central finite
differences (float64), reverse-mode autograd for the multi-term loss, torch.autograd.gradcheck
for the differentiability of the rows in the hidden parameters.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from conftest import SEEDS, tol
from deepbasis import MLP, Problem
from deepbasis.train import lstsq
from deepbasis.train.operators import D, Identity, LinearProblem, Operator, Term, derivatives

F64 = torch.float64
LOWER, UPPER = torch.tensor([-1.0, 0.5], dtype=F64), torch.tensor([2.0, 1.5], dtype=F64)


def tanh_net(seed, width=5, depth=1, out=1, residual=False, domain=True):
    torch.manual_seed(seed)  # only the nn.Linear default draws; every value below is checked
    return MLP(2, width, depth, out, residual=residual, activation="tanh", dtype=F64,
               domain=(LOWER.tolist(), UPPER.tolist()) if domain else None)


def points(seed, n=9):
    g = torch.Generator().manual_seed(1000 + seed)
    return LOWER + (UPPER - LOWER) * torch.rand(n, 2, generator=g, dtype=F64)


def velocity(x):
    return 1.0 + x[:, 0] * x[:, 1]


# -- closed forms ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_one_layer_tanh_derivatives_match_closed_forms(seed):
    # Φ_i = tanh(z_i), z_i = W_i·x̂ + b_i with x̂ = (x − lower)/(upper − lower), so
    # ∂_j Φ_i = (1 − Φ_i²) W_ij / s_j and ∂_j∂_k Φ_i = −2 Φ_i (1 − Φ_i²) W_ij W_ik / (s_j s_k).
    model, x = tanh_net(seed), points(seed)
    W, b = model.layers[0].weight.detach(), model.layers[0].bias.detach()
    s = UPPER - LOWER
    phi = torch.tanh(((x - LOWER) / s) @ W.T + b)  # (N, w)
    d1 = [(1 - phi**2) * W[:, j] / s[j] for j in range(2)]
    d2 = [[-2 * phi * (1 - phi**2) * W[:, j] * W[:, k] / (s[j] * s[k]) for k in range(2)]
          for j in range(2)]
    t = tol(F64)
    torch.testing.assert_close(Identity().basis(model, x), phi, **t)
    for j in range(2):
        torch.testing.assert_close(D(j).basis(model, x), d1[j], **t)
        torch.testing.assert_close(D(j, order=2).basis(model, x), d2[j][j], **t)
    torch.testing.assert_close((D(0) @ D(1)).basis(model, x), d2[0][1], **t)
    torch.testing.assert_close((D(1) @ D(0)).basis(model, x), d2[0][1], **t)
    a = velocity(x)[:, None]
    op = D(1) + velocity * D(0) - 2.5 * Identity()
    torch.testing.assert_close(op.basis(model, x), d1[1] + a * d1[0] - 2.5 * phi, **t)
    torch.testing.assert_close(op.constant(x), torch.full((9, 1), -2.5, dtype=F64), **t)
    torch.testing.assert_close((velocity * Identity()).constant(x), a, **t)
    torch.testing.assert_close(D(0).constant(x), torch.zeros(9, 1, dtype=F64), **t)


@pytest.mark.parametrize("seed", SEEDS)
def test_hand_set_relu_network_derivatives(seed):
    # u(x, t) = Σ c_i ReLU(p_i x + q_i t − k_i): ∂x u = Σ c_i p_i 1[z_i > 0], ∂t u likewise,
    # and every second derivative vanishes (away from the cut planes, i.e. almost surely).
    g = torch.Generator().manual_seed(seed)
    p, q, k, c = (torch.randn(4, generator=g, dtype=F64) for _ in range(4))
    model = MLP(2, 4, 1, dtype=F64)
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.stack([p, q], dim=1))
        model.layers[0].bias.copy_(-k)
        model.head.weight.copy_(c[None])
        model.head.bias.fill_(0.7)
    x = torch.rand(50, 2, generator=g, dtype=F64)
    on = ((x @ torch.stack([p, q]) - k) > 0).to(F64)  # (N, 4)
    t = tol(F64)
    torch.testing.assert_close(D(0)(model, x), on @ (c * p)[:, None], **t)
    torch.testing.assert_close(D(1)(model, x), on @ (c * q)[:, None], **t)
    relu = torch.relu(x @ torch.stack([p, q]) - k)
    torch.testing.assert_close(Identity()(model, x), relu @ c[:, None] + 0.7, **t)
    for op in (D(0, order=2), D(1, order=2), D(0) @ D(1)):
        torch.testing.assert_close(op(model, x), torch.zeros(50, 1, dtype=F64), **t)


# -- finite differences ------------------------------------------------------------------------


def central_difference(fn, x, j, h):
    e = torch.zeros(2, dtype=F64)
    e[j] = h
    return (fn(x + e) - fn(x - e)) / (2 * h)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("residual", [False, True])
def test_derivatives_match_finite_differences(seed, residual):
    # Central differences in float64: error O(h²) + O(eps/h). With h = 1e-5 (first order) the
    # total is ~1e-10; second order as a difference of first derivatives, h = 1e-4, ~1e-8.
    model, x = tanh_net(seed, width=6, depth=3, residual=residual), points(seed)
    f = model.features
    for j in range(2):
        fd = central_difference(f, x, j, 1e-5)
        torch.testing.assert_close(D(j).basis(model, x), fd, rtol=1e-7, atol=1e-8)
        fd2 = central_difference(lambda y, j=j: D(j).basis(model, y), x, j, 1e-4)
        torch.testing.assert_close(D(j, order=2).basis(model, x), fd2, rtol=1e-6, atol=1e-7)
    fd_mixed = central_difference(lambda y: D(1).basis(model, y), x, 0, 1e-4)
    torch.testing.assert_close((D(0) @ D(1)).basis(model, x), fd_mixed, rtol=1e-6, atol=1e-7)
    # third order, to exercise deeper nesting
    fd3 = central_difference(lambda y: D(0, order=2).basis(model, y), x, 0, 1e-4)
    torch.testing.assert_close(D(0, order=3).basis(model, x), fd3, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_operator_on_output_equals_rows_times_head(seed):
    model, x = tanh_net(seed, width=7, depth=2, out=3, residual=True), points(seed)
    op = D(1) + velocity * D(0) + 0.3 * (velocity * Identity()) + D(0, order=2)
    theta = torch.cat([model.head.weight.mT, model.head.bias[None]]).detach()  # (w + 1, m)
    torch.testing.assert_close(op(model, x), op.rows(model, x) @ theta, **tol(F64))
    assert op.rows(model, x, bias=False).shape == (9, 7)


def test_derivatives_reuses_the_primal():
    calls = []

    def fn(y):
        calls.append(1)
        return torch.sin(y).prod(dim=1, keepdim=True)

    x = points(0)
    out = derivatives(fn, x, [(), (0,), (1,), (0,)])
    assert set(out) == {(), (0,), (1,)}
    assert len(calls) == 2  # one JVP per direction; the identity comes from the first one
    torch.testing.assert_close(out[()], fn(x), **tol(F64))


def test_first_order_summands_share_one_jvp():
    # Σ_c a_c(x) ∂_c + b(x) I is one JVP along the per-point tangent (a_0(x), a_1(x)), whose
    # primal also serves the identity summand: fn is traced exactly once.
    calls = []

    def fn(y):
        calls.append(1)
        return torch.stack([torch.sin(y[:, 0]) * y[:, 1] ** 2, y.prod(dim=1)], dim=1)

    x = points(0)
    op = D(1) + velocity * D(0) - 3.0 * D(0) + velocity * Identity()
    value = op.apply(fn, x)
    assert len(calls) == 1
    a = velocity(x)[:, None]
    s, c, t = torch.sin(x[:, :1]), torch.cos(x[:, :1]), x[:, 1:]
    dx = torch.cat([c * t**2, t], dim=1)  # ∂x of both outputs
    dt = torch.cat([2 * s * t, x[:, :1]], dim=1)  # ∂t
    torch.testing.assert_close(value, dt + (a - 3.0) * dx + a * fn(x), **tol(F64))


# -- differentiable in the hidden parameters; composes with vmap -------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_rows_are_differentiable_in_hidden_parameters(seed):
    # LSGD backpropagates ‖Aθ − b‖² through the derivative rows: gradcheck compares autograd's
    # gradient in the hidden weights with finite differences of the rows.
    model, x = tanh_net(seed, width=3, depth=2, residual=True), points(seed, n=4)
    op = D(1) + velocity * D(0) + D(0, order=2)
    names = ["layers.0.weight", "layers.1.bias"]
    base = {k: v.detach() for k, v in model.named_parameters()}

    def rows(w0, b1):
        params = {**base, names[0]: w0, names[1]: b1}
        return op.apply(lambda y: _features(model, params, y), x)

    inputs = tuple(base[n].clone().requires_grad_(True) for n in names)
    assert torch.autograd.gradcheck(rows, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)
    # and through the problem's rows, as fit uses them
    problem = LinearProblem([Term(op, x, target=1.0)])
    A, b = problem.rows(model)
    (A.sum() ** 2).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in model.layers.parameters())


class _Features(nn.Module):
    """``forward = model.features``, so functional_call can swap the model's parameters."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, y):
        return self.model.features(y)


def _features(model, params, y):
    return functional_call(_Features(model), {f"model.{k}": v for k, v in params.items()}, (y,))


@pytest.mark.parametrize("seed", SEEDS)
def test_rows_compose_with_vmap_over_parameter_sets(seed):
    models = [tanh_net(seed + 10 * e, width=4, depth=2, residual=True) for e in range(3)]
    params, buffers = stack_module_state(models)
    x = points(seed)
    op = D(1) + velocity * D(0) + Identity()

    def rows(p, bufs):
        return op.apply(lambda y: _features(models[0], {**p, **bufs}, y), x)

    batched = vmap(rows)(params, buffers)  # (E, N, w)
    looped = torch.stack([op.basis(m, x) for m in models])
    torch.testing.assert_close(batched, looped, **tol(F64))


# -- the multi-term problem --------------------------------------------------------------------


def reverse_mode_loss(model, terms):
    """Σ ε_k mean_k ‖L_k[NN] − g_k‖² with derivatives by reverse-mode autograd (independent of
    the forward-mode code under test); supports identity, D(0), D(1) and a·D(0) terms."""
    total = 0.0
    for kind, x, g, eps in terms:
        y = x.clone().requires_grad_(True)
        u = model(y)  # (N, m)
        grads = [torch.autograd.grad(u[:, i].sum(), y, create_graph=True)[0]
                 for i in range(u.shape[1])]
        du = torch.stack(grads, dim=2)  # (N, d, m)
        value = {"identity": u, "transport": du[:, 1] + velocity(x)[:, None] * du[:, 0],
                 "dx": du[:, 0]}[kind]
        total = total + eps * ((value - g) ** 2).sum() / x.shape[0]
    return total


@pytest.mark.parametrize("seed", SEEDS)
def test_rows_reproduce_the_multi_term_loss(seed):
    g = torch.Generator().manual_seed(seed)
    model = tanh_net(seed, width=6, depth=2, out=2, residual=True)
    xs = [points(seed, n) for n in (13, 5, 7)]
    targets = [torch.randn(13, 2, generator=g, dtype=F64), torch.randn(5, 2, generator=g,
               dtype=F64), torch.zeros(7, 2, dtype=F64)]
    eps = [0.37, 1.0, 4.2]
    problem = LinearProblem([
        Term(D(1) + velocity * D(0), xs[0], target=targets[0], weight=eps[0], name="pde"),
        Term(Identity(), xs[1], target=targets[1], weight=eps[1], name="data"),
        Term(D(0), xs[2], target=0.0, weight=eps[2], name="neumann"),  # broadcast target
    ])
    assert isinstance(problem, Problem)
    problem.validate(model)
    A, b = problem.rows(model)
    assert A.shape == (25, 7) and b.shape == (25, 2)
    theta = torch.cat([model.head.weight.mT, model.head.bias[None]])  # (w + 1, m)
    rows_loss = ((A @ theta - b) ** 2).sum()
    reference = reverse_mode_loss(model, [("transport", xs[0], targets[0], eps[0]),
                                          ("identity", xs[1], targets[1], eps[1]),
                                          ("dx", xs[2], targets[2], eps[2])])
    torch.testing.assert_close(rows_loss, reference, **tol(F64))
    torch.testing.assert_close(problem.loss(model), reference, **tol(F64))
    parts = problem.term_losses(model)
    assert set(parts) == {"pde", "data", "neumann"}
    assert math.isclose(sum(parts.values()), float(reference.detach()), rel_tol=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_one_ls_solve_matches_numpy_lstsq(seed):
    # The head that minimizes the multi-term loss is numpy's least-squares solution of the rows.
    model = tanh_net(seed, width=5, depth=1)
    x = points(seed, 30)
    problem = LinearProblem([
        Term(D(0, order=2) + D(1, order=2), x, target=lambda p: p[:, :1] ** 2, name="poisson"),
        Term(Identity(), x[:6], target=torch.ones(6), weight=10.0, name="boundary"),
    ])
    with torch.no_grad():
        A, b = problem.rows(model)
    ours = lstsq(A, b).solution
    ref = np.linalg.lstsq(A.numpy(), b.numpy(), rcond=None)[0]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-8, atol=1e-10)


def test_operators_work_in_float32():
    model = MLP(2, 4, 2, activation="tanh", dtype=torch.float32)
    term = Term(D(1) + velocity * D(0), points(0), target=0.0)  # float64 points
    A, b = LinearProblem([term]).rows(model)
    assert A.dtype == b.dtype == torch.float32 and A.shape == (9, 5)


def test_head_without_bias_gives_no_bias_column():
    model = tanh_net(0)
    model.head = nn.Linear(5, 1, bias=False, dtype=F64)
    A, _ = LinearProblem([Term(D(0), points(0))]).rows(model)
    assert A.shape == (9, 5)


# -- the operator algebra ----------------------------------------------------------------------


def test_algebra_and_repr():
    x = points(0)
    assert repr(D(1) + velocity * D(0)) == "D(1) + velocity·D(0)"
    assert repr(D(0, order=2) - 2 * Identity()) == "D(0,0) - 2·I"
    assert repr(-D(0)) == "-D(0)"
    assert repr(D(0) @ D(1)) == repr(D(1) @ D(0)) == "D(0,1)"
    assert D(0, order=0).order == 0 and (D(0) @ D(1, order=2)).order == 3
    assert (D(2) + D(0)).coordinates == (0, 2)
    total = sum([D(0), D(1), Identity()])
    assert isinstance(total, Operator) and len(total.parts) == 3
    # numbers of every kind scale the same way
    model = tanh_net(0)
    ref = 3.0 * D(0).basis(model, x)
    for c in (3, 3.0, np.float64(3.0), torch.tensor(3.0)):
        torch.testing.assert_close((c * D(0)).basis(model, x), ref, **tol(F64))
        torch.testing.assert_close((D(0) * c).basis(model, x), ref, **tol(F64))
    # coefficient fields multiply; a field on the left of a composition is allowed
    both = velocity * (velocity * D(0))
    torch.testing.assert_close(both.basis(model, x),
                               velocity(x)[:, None] ** 2 * D(0).basis(model, x), **tol(F64))
    left = (velocity * Identity()) @ D(0)
    torch.testing.assert_close(left.basis(model, x), (velocity * D(0)).basis(model, x),
                               **tol(F64))
    # a field returning a number, and a subtraction
    torch.testing.assert_close(((lambda p: 2.0) * D(1) - D(1)).basis(model, x),
                               D(1).basis(model, x), **tol(F64))


def test_algebra_errors():
    with pytest.raises(ValueError, match="product rule"):
        D(0) @ (velocity * D(1))
    with pytest.raises(TypeError, match=r"scalar \(0-dim\), got shape \(3,\)"):
        D(0) * torch.ones(3)
    with pytest.raises(TypeError, match="got str"):
        "a" * D(0)
    with pytest.raises(ValueError, match="finite"):
        math.inf * D(0)
    with pytest.raises(ValueError, match="coordinate must be a non-negative integer, got -1"):
        D(-1)
    with pytest.raises(ValueError, match="order must be a non-negative integer, got 1.5"):
        D(0, order=1.5)
    model = tanh_net(0)
    with pytest.raises(ValueError, match=r"returned shape \(9, 2\).*shape \(9,\) or \(9, 1\)"):
        ((lambda p: p) * D(0)).basis(model, points(0))


# -- bad input to problems ---------------------------------------------------------------------


def test_derivative_in_a_missing_coordinate_is_an_error():
    x = points(0)
    with pytest.raises(ValueError, match=r"coordinate 2.*points of term 'pde' have: 2 "
                                         r"coordinate\(s\), valid 0..1; use D\(c\) with 0 <= c"):
        Term(D(2), x, name="pde")
    # the points have 3 columns, the model 2: the problem is rejected at validate
    problem = LinearProblem([Term(D(2), torch.rand(4, 3, dtype=F64), name="pde")])
    with pytest.raises(ValueError, match="3 column.*in_features=2; build the model"):
        problem.validate(tanh_net(0))


def test_points_of_the_wrong_dimension_are_an_error():
    with pytest.raises(ValueError, match=r"points must be a 2-D tensor \(N, d\), got \(5,\); "
                                         r"for 1-D inputs pass x\[:, None\]"):
        Term(Identity(), torch.rand(5, dtype=F64))
    with pytest.raises(ValueError, match=r"same number of columns, got term 0: 2, term 'b': 3"):
        LinearProblem([Term(D(0), points(0)), Term(Identity(), torch.rand(3, 3), name="b")])
    with pytest.raises(ValueError, match="no rows"):
        Term(Identity(), torch.rand(0, 2))
    with pytest.raises(ValueError, match="NaN or inf"):
        Term(Identity(), torch.tensor([[0.0, math.nan]]))


@pytest.mark.parametrize("weight", [0.0, -1.0, math.nan, math.inf, True])
def test_non_positive_weight_is_an_error(weight):
    with pytest.raises(ValueError, match=rf"weight must be a positive finite number ε > 0, got "
                                         rf"{weight!r}; to switch a term off, leave it out"):
        Term(Identity(), points(0), weight=weight)


def test_target_and_output_errors():
    x = points(0)
    with pytest.raises(ValueError, match=r"target must have shape \(9,\) or \(9, m\).*got \(4,\)"):
        Term(Identity(), x, target=torch.zeros(4))
    with pytest.raises(TypeError, match="target must be a number, a tensor or a callable"):
        Term(Identity(), x, target="zero")
    problem = LinearProblem([Term(Identity(), x, target=torch.zeros(9, 2))])
    with pytest.raises(ValueError, match="2 column.*out_features=1; build the model with "
                                         "out_features=2"):
        problem.validate(tanh_net(0))
    with pytest.raises(ValueError, match="same number of columns, got term 0: 2, term 1: 3"):
        LinearProblem([Term(Identity(), x, target=torch.zeros(9, 2)),
                       Term(Identity(), x, target=torch.zeros(9, 3))])
    with pytest.raises(TypeError, match="not a basis network"):
        problem.validate(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="at least one Term"):
        LinearProblem([])
    with pytest.raises(TypeError, match="operator must be a deepbasis Operator"):
        Term(lambda u: u, x)
