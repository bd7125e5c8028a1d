"""Levenberg–Marquardt training (deepbasis.train.lm) and the Jacobians it uses
(deepbasis.train.jacobian): against dense NumPy references, finite differences and autograd."""

from __future__ import annotations

import math
import os
import signal
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import deepbasis as db
from conftest import SEEDS
from deepbasis.problems.pdes import pde_problem
from deepbasis.train import D, Identity, LinearProblem, Regression, Term
from deepbasis.train.engines.vmap import _RowsOf
from deepbasis.train.jacobian import ResidualRows, activation_derivatives
from deepbasis.train.lm import LMOptions, _State, _System
from deepbasis.train.lstsq import solve_head

F64 = torch.float64


def _mlp(d=2, width=6, depth=2, out=1, activation="tanh", residual=False, seed=0, **kw):
    model = db.MLP(d, width, depth, out_features=out, activation=activation, residual=residual,
                   dtype=F64, **kw)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64) * 0.8)
    return model


def _points(n, d, seed):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _generic(rows: ResidualRows) -> ResidualRows:
    """The same rows through the general torch.func path (the reference)."""
    rows.fast = False
    rows._skeleton = _RowsOf(rows.model, rows.problem)
    return rows


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("activation", ["tanh", "sin", "relu", "sigmoid", "gelu"])
@pytest.mark.parametrize("residual", [False, True])
def test_operator_row_jacobian_matches_autograd(seed, activation, residual):
    # Orders 1 and 2 (and a mixed and a third derivative), a coefficient field, two outputs,
    # an input box: the Taylor-stream Jacobian against torch.func's jacobian of problem.rows.
    x = _points(9, 2, seed)
    a = lambda p: 1 + p[:, 0]  # noqa: E731
    op = D(0, order=2) + a * D(1, order=2) + 0.5 * (D(0) @ D(1)) + a * D(1) - 2 * Identity()
    problem = LinearProblem([
        Term(op + D(0, order=3), x, target=torch.rand(9, 2, dtype=F64), name="pde"),
        Term(D(0), x[:4], target=1.0, weight=3.0, name="flux"),
        Term(Identity(), x[:3], target=0.5, weight=2.0, name="value")])
    model = _mlp(out=2, activation=activation, residual=residual, seed=seed,
                 domain=([0.0, -1.0], [2.0, 1.0]))
    rows = ResidualRows(model, problem)
    assert rows.fast
    xi = rows.pack()
    theta = torch.randn(7, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)
    A, b = rows.design(xi)
    A_ref, b_ref = problem.rows(model)
    torch.testing.assert_close(A, A_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(b, b_ref, rtol=0, atol=0)
    _, _, J = rows.jacobian(xi, theta)
    _, _, J_ref = _generic(rows).jacobian(xi, theta)
    assert J.shape == (2 * problem.n_points, rows.size)
    torch.testing.assert_close(J, J_ref, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_regression_jacobian_against_finite_differences(seed):
    x, y = _points(20, 3, seed), _points(20, 2, seed + 1)
    model = _mlp(d=3, width=5, depth=3, out=2, residual=True, seed=seed)
    rows = ResidualRows(model, Regression(x, y))
    xi = rows.pack()
    theta = torch.randn(6, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)
    _, _, J = rows.jacobian(xi, theta)

    def out(v):
        A, _ = rows.design(v)
        return (A @ theta).mT.reshape(-1)

    h = 1e-6
    for p in range(0, rows.size, 7):
        e = torch.zeros_like(xi)
        e[p] = h
        fd = (out(xi + e) - out(xi - e)) / (2 * h)
        torch.testing.assert_close(J[:, p], fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("seed", SEEDS)
def test_projected_gradient_is_the_reduced_losss_gradient(seed):
    # Variable projection: with θ(ξ) = A(ξ)⁺ b, Kaufman's Jacobian gives the exact gradient of
    # the reduced loss ‖A(ξ)θ(ξ) − b‖² (= 2 Jᵀr), checked by central differences.
    x = _points(30, 1, seed)
    model = _mlp(d=1, width=4, depth=2, seed=seed)
    problem = Regression(x, torch.sin(3 * x))
    rows = ResidualRows(model, problem)
    xi = rows.pack()

    def reduced(v):
        A, b = rows.design(v)
        theta = solve_head(A, b)
        return float(((A @ theta - b) ** 2).sum())

    A, b = rows.design(xi)
    state = _State(rows, model, xi, solve_head(A, b), reduced(xi))
    system = _System(rows, state, joint=False, options=LMOptions())
    h = 1e-6
    for p in range(rows.size):
        e = torch.zeros_like(xi)
        e[p] = h
        fd = (reduced(xi + e) - reduced(xi - e)) / (2 * h)
        assert abs(2 * float(system.g[p]) - fd) <= 1e-6 * (1 + abs(fd)), (p, seed)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("solver", ["normal", "kernel", "qr"])
@pytest.mark.parametrize("scaling", ["identity", "diagonal"])
@pytest.mark.parametrize("joint", [False, True])
def test_step_matches_a_dense_numpy_reference(seed, solver, scaling, joint):
    # (JᵀJ + μD) δ = −Jᵀr solved by NumPy as the stacked least-squares problem.
    x = _points(12, 2, seed)
    model = _mlp(width=5, depth=2, seed=seed)
    rows = ResidualRows(model, Regression(x, torch.cos(x.sum(1))))
    xi = rows.pack()
    A, b = rows.design(xi)
    state = _State(rows, model, xi, solve_head(A, b), 0.0)
    system = _System(rows, state, joint, LMOptions(solver=solver, scaling=scaling))
    scale = system.damping_scale(None)
    mu = 0.37 * system.max_diagonal()
    delta = system.step(mu, scale).numpy()
    J, r = system.J.numpy(), system.r.numpy()
    d = np.ones(J.shape[1]) if scale is None else scale.numpy()
    stacked = np.vstack([J, np.diag(np.sqrt(mu * d))])
    reference = np.linalg.lstsq(stacked, np.concatenate([-r, np.zeros(J.shape[1])]),
                                rcond=None)[0]
    np.testing.assert_allclose(delta, reference, rtol=1e-8, atol=1e-12)
    predicted = float(r @ r - (r + J @ reference) @ (r + J @ reference))
    assert system.predicted(system.step(mu, scale)) == pytest.approx(predicted, rel=1e-8)


def test_activation_derivatives_match_nested_autograd():
    z = torch.linspace(-2, 2, 11, dtype=F64)
    for module in (nn.Tanh(), nn.Sigmoid(), db.nn.mlp.Sine(), nn.GELU()):
        got = activation_derivatives(module, z, 4)
        fn = module
        for k in range(5):
            torch.testing.assert_close(got[k], fn(z), rtol=1e-10, atol=1e-12)
            fn = _grad_of(fn)


def _grad_of(fn):
    def g(z):
        if not z.requires_grad:
            z = z.detach().requires_grad_()
        with torch.enable_grad():
            out = fn(z)
            return torch.autograd.grad(out.sum(), z, create_graph=True)[0]
    return g


def _teacher_student(seed, noise=0.3):
    """A width-3 tanh teacher with well-separated units, and a student: the teacher moved by
    ``noise`` · N(0, 1) in every parameter (seeded). The student's architecture represents the
    target exactly, and the minimum is isolated up to the network's symmetries."""
    teacher = db.MLP(1, 3, 1, activation="tanh", dtype=F64)
    with torch.no_grad():
        teacher.layers[0].weight.copy_(torch.tensor([[2.0], [-3.0], [1.0]]))
        teacher.layers[0].bias.copy_(torch.tensor([0.5, -0.2, 0.1]))
        teacher.head.weight.copy_(torch.tensor([[1.0, 0.5, -1.0]]))
        teacher.head.bias.fill_(0.3)
    x = torch.linspace(-1, 1, 40, dtype=F64)[:, None]
    with torch.no_grad():
        y = teacher(x)
        g = torch.Generator().manual_seed(seed)
        for p in teacher.parameters():
            p.add_(noise * torch.randn(p.shape, generator=g, dtype=F64))
    return teacher, x, y


@pytest.mark.parametrize("seed", SEEDS)
def test_converges_to_machine_precision_on_a_representable_target(seed):
    # The minimum is 0: variable projection gets there to rounding (loss ≤ 1e-28, i.e. a
    # residual of ~1e-15 per point, from ~1e-4) and stops by itself when no decrease is left.
    # (The joint variant needs many more iterations on the same problems: 20–40 against
    # 60–100+, as Golub & Pereyra and Ruhe & Wedin found; benchmarks/bench_pde.py.)
    student, x, y = _teacher_student(seed)
    history = db.fit(student, x, y, method="lm", steps=300, progress=False)
    assert history.loss[0] > 1e-8
    assert history.final_loss <= 1e-28, (history.final_loss, history.message)
    assert history.stop_reason == "tolerance"
    assert all(b <= a for a, b in zip(history.loss, history.loss[1:], strict=False))
    with torch.no_grad():
        torch.testing.assert_close(student(x), y, rtol=0, atol=1e-13)


@pytest.mark.parametrize("seed", SEEDS)
def test_joint_and_projection_reach_the_same_minimum(seed):
    # A convex case: a one-parameter "hidden layer" (a fixed basis cos(k s x) with s trained),
    # started near the minimum (s = 1.15…1.17 against 1.2, the head at its least-squares
    # value), where the problem is locally convex. Both variants converge to the same s and
    # the same loss.
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.s = nn.Parameter(torch.tensor([1.15 + 0.01 * seed], dtype=F64))
            self.head = nn.Linear(3, 1, dtype=F64)
            self.k = torch.arange(1, 4, dtype=F64)

        def features(self, x):
            return torch.cos(self.s * self.k * x)

        def forward(self, x):
            return self.head(self.features(x))

    x = torch.linspace(0, 1, 50, dtype=F64)[:, None]
    y = torch.cos(1.2 * x) + 0.5 * torch.cos(2.4 * x) + 0.01 * torch.sin(7 * x)
    results = []
    for variant in ("projection", "joint"):
        model = db.fit_head_(Scaled(), x, y)
        history = db.fit(model, x, y, method="lm", steps=100, progress=False,
                         optimizer_options={"variant": variant})
        results.append((float(model.s.detach()), history.final_loss))
    (s1, l1), (s2, l2) = results
    assert s1 == pytest.approx(s2, rel=1e-7)
    assert l1 == pytest.approx(l2, rel=1e-6)


def test_poisson_pinn_reaches_what_lsgd_does_not():
    # A small 2-D Poisson PINN: 100 LM iterations get the solution to 1e-5…1e-3 (seeds 0–3),
    # 20× and more below what LSGD's Adam reaches in the same number of iterations (0.08–0.3).
    case = pde_problem("poisson", 15, error_grid=31)
    model = db.MLP(2, 16, 1, activation="tanh", dtype=F64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        db.init.box_(model, generator=0)
    start = [p.detach().clone() for p in model.parameters()]
    history = db.fit(model, case.problem, method="lm", steps=100, progress=False)
    lm_error = case.relative_error(model)
    with torch.no_grad():
        for p, s in zip(model.parameters(), start, strict=True):
            p.copy_(s)
    db.fit(model, case.problem, method="lsgd", steps=100, progress=False)
    assert lm_error < 3e-3 and lm_error < case.relative_error(model) / 20, history.message


def test_interrupt_leaves_the_last_accepted_state_with_a_matching_head():
    student, x, y = _teacher_student(0)
    calls = []

    def interrupt(step, loss, model):
        calls.append(step)
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as caught:
        db.fit(student, x, y, method="lm", steps=50, callbacks=[interrupt], progress=False)
    history = caught.value.history
    assert history.stop_reason == "interrupted" and history.steps == 5
    with torch.no_grad():
        loss = float(((student(x) - y) ** 2).mean())
        A = torch.cat([student.features(x), torch.ones(40, 1, dtype=F64)], 1)
        theta = solve_head(A, y)
    assert loss == pytest.approx(history.final_loss, rel=1e-9)
    torch.testing.assert_close(student.head.weight.detach(), theta[:-1].mT)


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="needs SIGALRM")
def test_ctrl_c_between_iterations_leaves_a_consistent_model():
    case = pde_problem("heat", 21, error_grid=11)
    model = _mlp(width=24, depth=2)

    def handler(signum, frame):  # a real Ctrl-C, at a random point of an iteration
        os.kill(os.getpid(), signal.SIGINT)

    # One iteration first: torch imports modules lazily on its first calls, and an interrupt
    # in the middle of an import leaves that module half-initialized for the whole process.
    db.fit(_mlp(width=24, depth=2), case.problem, method="lm", steps=1, progress=False)
    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            db.fit(model, case.problem, method="lm", steps=10**6, progress=False)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    history = caught.value.history
    rows = ResidualRows(model, case.problem)
    A, b = rows.design(rows.pack())
    theta = db.train.head_parameters(model.head).detach()
    assert float(((A @ theta - b) ** 2).sum()) == history.final_loss  # the state it describes
    assert float(case.problem.loss(model).detach()) == pytest.approx(history.final_loss,
                                                                      rel=1e-6)


class _Fragile(nn.Module):
    """A tanh basis whose features are NaN once any hidden weight exceeds 2 in size."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.layer = nn.Linear(1, 4, dtype=F64)
        with torch.no_grad():
            self.layer.weight.copy_(torch.rand(4, 1, generator=g, dtype=F64))
        self.head = nn.Linear(4, 1, dtype=F64)

    def features(self, x):
        h = torch.tanh(self.layer(x))
        return torch.where(self.layer.weight.abs().max() > 2, math.nan, h)

    def forward(self, x):
        return self.head(self.features(x))


def test_a_non_finite_trial_step_is_rejected_not_applied():
    x = torch.linspace(0, 1, 30, dtype=F64)[:, None]
    model = _Fragile()
    history = db.fit(model, x, torch.sin(12 * x), method="lm", steps=30, progress=False,
                     optimizer_options={"damping": 1e-12})
    assert not all(history.trace["accepted"][1:])  # some trial steps went to NaN ...
    assert all(math.isfinite(v) for v in history.loss)  # ... and none was taken
    assert float(model.layer.weight.detach().abs().max()) <= 2
    assert history.final_loss < history.loss[0]


def test_memory_guard_refuses_before_allocating():
    case = pde_problem("poisson", 21, error_grid=11)
    model = _mlp(width=32, depth=3)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(MemoryError, match=r"GiB.*(fewer points|smaller network)"):
        db.fit(model, case.problem, method="lm", steps=5, progress=False,
               optimizer_options={"max_memory": 1e6})
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


@pytest.mark.parametrize("options, message", [
    ({"variant": "full"}, "variant"), ({"scaling": "moré"}, "scaling"),
    ({"solver": "cg"}, "solver"), ({"damping": 0.0}, "damping"), ({"tol": -1}, "tol"),
    ({"max_memory": -5}, "max_memory"), ({"lr": 1.0}, "unknown")])
def test_bad_options_are_named(options, message):
    student, x, y = _teacher_student(0)
    with pytest.raises(ValueError, match=message):
        db.fit(student, x, y, method="lm", steps=1, progress=False, optimizer_options=options)


def test_history_records_the_solver_trace_and_round_trips(tmp_path):
    student, x, y = _teacher_student(1)
    history = db.fit(student, x, y, method="lm", steps=12, progress=False,
                     metrics={"max": lambda m: float(m(x).abs().max())}, metric_every=5)
    assert history.method == "lm" and len(history.loss) == 13
    assert set(history.trace) == {"damping", "accepted", "jacobian_s", "solve_s"}
    assert all(len(v) == 13 for v in history.trace.values())
    assert history.metric_steps == [0, 5, 10, 12]
    assert history.message
    again = db.History.load(history.save(tmp_path / "h.json"))
    assert again.to_dict() == history.to_dict()


def test_tolerance_and_target_loss_stop_the_run():
    student, x, y = _teacher_student(2)
    history = db.fit(student, x, y, method="lm", steps=500, progress=False, target_loss=1e-12)
    assert history.stop_reason == "target_loss" and history.final_loss <= 1e-12
    assert history.loss[-2] > 1e-12
    student, x, y = _teacher_student(2)
    history = db.fit(student, x, y, method="lm", steps=500, progress=False,
                     optimizer_options={"tol": 1e-3})
    assert history.stop_reason == "tolerance" and history.steps < 500


@pytest.mark.parametrize("lstsq_method", ["gcv", "ridge"])
def test_head_options_apply_to_every_solve(lstsq_method):
    x = torch.linspace(0, 1, 40, dtype=F64)[:, None]
    y = torch.sin(6 * x) + 0.1 * torch.cos(40 * x)
    model = _mlp(d=1, width=8, depth=1)
    db.fit(model, x, y, method="lm", steps=20, progress=False, lstsq_method=lstsq_method,
           ridge=1e-3)
    A = torch.cat([model.features(x), torch.ones(40, 1, dtype=F64)], 1).detach()
    scale = 1 / math.sqrt(40)  # the rows of a Regression are scaled by 1/√N
    theta = solve_head(A * scale, y * scale, method=lstsq_method, ridge=1e-3)
    torch.testing.assert_close(model.head.weight.detach(), theta[:-1].mT)


def test_any_basis_network_takes_the_general_jacobian():
    # The teacher–student problem on a basis network that is not a deepbasis MLP: the general
    # (torch.func) Jacobian drives LM to the same rounding-level minimum.
    class Plain(nn.Module):
        def __init__(self, mlp):
            super().__init__()
            self.layer = mlp.layers[0]
            self.head = mlp.head

        def features(self, x):
            return torch.tanh(self.layer(x))

        def forward(self, x):
            return self.head(self.features(x))

    student, x, y = _teacher_student(0)
    model = Plain(student)
    history = db.fit(model, x, y, method="lm", steps=300, progress=False)
    assert not ResidualRows(model, Regression(x, y)).fast
    assert history.final_loss <= 1e-28, history.message


def test_fit_ensemble_lm_members_equal_separate_fits():
    x = torch.linspace(-1, 1, 30, dtype=F64)[:, None]
    y = torch.sin(3 * x)

    def make(seed):
        return _mlp(d=1, width=4, depth=2, seed=seed)

    result = db.fit_ensemble(make, x, y, seeds=[0, 1], method="lm", steps=15, progress=False)
    for seed, model, history in zip([0, 1], result.models, result.histories, strict=True):
        single = make(seed)
        alone = db.fit(single, x, y, method="lm", steps=15, progress=False)
        assert history.loss == alone.loss
        for p, q in zip(model.parameters(), single.parameters(), strict=True):
            assert torch.equal(p, q)
    assert result.losses.shape == (2, 16)
