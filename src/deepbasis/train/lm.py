r"""Levenberg–Marquardt training: the hidden layers by a damped Gauss–Newton step, the head by
least squares (variable projection), or every parameter at once (joint).

Every problem :func:`deepbasis.fit` trains is :math:`\min \|A(ξ)\,θ − b\|^2` with θ the linear
head and ξ the hidden parameters (:mod:`deepbasis.train.problem`). LSGD solves θ exactly and
moves ξ by a first-order optimizer; for smooth targets and linear PDEs that stalls at two or three
digits, where the residual's curvature matters (the "PINN accuracy barrier"). This module moves ξ
by Levenberg–Marquardt instead.

**Variable projection** (``variant="projection"``, the default; Golub & Pereyra 1973). With the
head eliminated, :math:`θ(ξ) = A(ξ)^+ b`, the problem is :math:`\min_ξ \|r(ξ)\|^2` with the
projected residual :math:`r(ξ) = A θ(ξ) − b = −P^⊥_{A(ξ)} b`. Its Jacobian is taken in Kaufman's
form (1975), :math:`J = P^⊥_A\, ∂(Aθ)/∂ξ` (θ fixed): the derivative of the network's rows in the
hidden parameters (:mod:`deepbasis.train.jacobian`) with the range of A projected out, which
drops a second-order term of Golub–Pereyra's exact Jacobian and keeps its convergence (measured:
``tests/test_lm.py`` and ``benchmarks/bench_pde.py``). After every trial step the head is
re-solved with the same options as LSGD (``lstsq_method``, ``rcond``, ``ridge``, GCV); with a
ridge or GCV head the projection is still onto A's range, a Gauss–Newton approximation.

**Joint** (``variant="joint"``): LM on every parameter, head included — the Gauss–Newton step of
energy natural gradient PINN solvers (Müller & Zeinhofer 2023). It starts from the model as it
is, head included (so ``loss[0]`` is the given network's loss, not that of a least-squares head),
and moves head and hidden layers together; the head options are not used.

**One iteration.** At an accepted state: the residual r, the Jacobian J (m · R rows,
P columns), g = Jᵀr and the damping scale D. Then the step

.. math::
    (J^T J + μ D)\, δ = −J^T r

and a trial ξ + δ (one forward pass and a head solve, no Jacobian). The gain ratio ρ = (actual
decrease) / (decrease predicted by the linear model, :math:`\|r\|^2 − \|r + Jδ\|^2`) decides:
ρ > 1e-4 accepts the step and shrinks μ by Nielsen's rule :math:`\max(1/3, 1 − (2ρ − 1)^3)`; a
rejected step (or a non-finite trial loss) multiplies μ by ν and ν by 2 and costs no Jacobian.
μ starts at ``damping · max diag(JᵀJ)`` (Madsen, Nielsen & Tingleff 2004).

**Damping scale D.** ``scaling="diagonal"`` (Marquardt 1963; Moré's running maximum of
diag(JᵀJ), floored at 1e-12 of its largest entry so dead units do not divide by zero), the
default, or ``"identity"`` (Levenberg 1944). Measured on the PDE suite
(``python benchmarks/bench_pde.py``: 64 tanh units, 60 s on one thread) the diagonal reached
lower or equal errors on all four problems — Poisson 2.5e-9 against 5.2e-8, Helmholtz 8.9e-9
against 3.0e-6, heat 2.1e-10 against 1.0e-10, variable coefficients 9.2e-9 against 5.7e-8 —
while over the first 150 iterations neither was consistently ahead (within 2–3× either way).

**The linear system**, chosen by ``solver="auto"``:

- ``"normal"`` (rows ≥ parameters): the P × P Gram matrix JᵀJ once per Jacobian, then one
  Cholesky per trial (a rejected step refactors with the new μ, no new Jacobian). Squares J's
  condition number, which the damping bounds: :math:`κ ≤ (λ_{max} + μ) / μ`.
- ``"kernel"`` (parameters > rows): the push-through identity
  :math:`δ = −D^{-1} J^T (J D^{-1} J^T + μ I)^{-1} r`, an (m · R) × (m · R) system.
- ``"qr"``: the stacked least-squares problem :math:`\min \|[J; \sqrt{μ} D^{1/2}]\,δ + [r; 0]\|`
  by QR, with no squaring: the most accurate, the slowest, and what a failed Cholesky falls
  back to.

Measured per trial step (one thread, float64, the 2-D Poisson PINN after 30 iterations,
μ = 1e-9 max diag(JᵀJ), the worst conditioning a run meets; the Gram matrix or kernel is formed
once per Jacobian and not counted):

====================  ==============  ==============  ==============
rows × parameters     normal          kernel          qr
====================  ==============  ==============  ==============
2,805 × 192           0.4 ms          442 ms          18 ms
2,805 × 1,152         50 ms           635 ms          1,100 ms
285 × 1,152           56 ms           1.0 ms          290 ms
====================  ==============  ==============  ==============

The steps of the normal and kernel forms differ from QR's by 1e-7…1e-5 relatively, which the
gain ratio absorbs (an inexact step is judged by the actual decrease like any other), so
``"auto"`` takes the cheaper square system: normal equations when rows ≥ parameters, the kernel
form otherwise (``python benchmarks/bench_pde.py --solvers`` prints the table).

**When to use it.** LM forms and factors a P × P (or rows × rows) matrix every accepted step:
on a CPU it is the method of choice for small and mid-size networks and point sets — up to about
10⁴ residual rows × 10⁴ parameters (J alone is then 800 MB in float64) — where it reaches 6–8
digits that Adam-based LSGD does not. For large data sets, mini-batches, wide networks and GPUs
with memory to spare per step, LSGD (``method="lsgd"``) scales where LM cannot. A J that would
not fit in ``max_memory`` is refused before anything is allocated.

**On data, guard the points between the points.** LM fits the training rows much more tightly
than Adam does, and on scattered data that can overfit between them. Measured at equal wall
time (``python benchmarks/bench_lm_regression.py``: MLP(d, 32, 2, tanh), 20 s, seeds 0–2,
test RMSE / std, median and range): on Franke's function from 500 random points LSGD 1.8e-3
(1.5e-3…4.0e-3), LM 1.2e-3 (6.1e-4…2.8e-2: one seed overfits), LM with
``lstsq_method="gcv"`` 1.3e-3 (2.3e-4…1.8e-3), LM stopped on 20 % held-out rows 8.7e-4
(4.4e-4…1.2e-2); on a two-frequency sine from 128 points LSGD 6.4e-6, LM 1.5e-5, LM + GCV
3.0e-6, held-out 3.3e-4; a GP with an ARD RBF + white-noise kernel beat all of them (2.9e-4
and 6.4e-7). So on data use LM with the GCV head (``lstsq_method="gcv"``): no worse than LSGD at
the median and in the worst case on Franke, 2× worse in the worst of three on the sine.

**Precision.** The Jacobian is computed in the model's dtype; the Gram matrix, the factorization
and the step in float64 whatever the model's dtype (``float64`` is still strongly recommended:
in float32 the residual itself stops at ~1e-4 relative).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .._checks import check_choice
from .checks import model_settings
from .history import History
from .jacobian import ResidualRows
from .loop import _HeldInterrupt
from .lstsq import set_head_, solve_head, solve_options
from .problem import head_parameters, problem_loss

VARIANTS = ("projection", "joint")
SCALINGS = ("identity", "diagonal")
SOLVERS = ("auto", "normal", "kernel", "qr")

_ACCEPT = 1e-4  # smallest gain ratio that accepts a step
_MAX_REJECTIONS = 40  # consecutive rejections: no step the linear model predicts is left
_MAX_DAMPING = 1e20  # μ's ceiling relative to max diag(JᵀJ): steps below rounding beyond it


@dataclass
class LMOptions:
    """Settings of :func:`fit_lm` (also accepted by ``fit(method="lm", optimizer_options=…)``).

    Attributes:
        variant: ``"projection"`` (head eliminated by least squares) or ``"joint"``.
        scaling: damping scale D, ``"diagonal"`` (Marquardt's) or ``"identity"`` (module
            docstring).
        solver: ``"auto"``, ``"normal"``, ``"kernel"`` or ``"qr"`` (module docstring).
        damping: τ, the initial μ relative to max diag(JᵀJ).
        tol: relative-decrease tolerance: stop when an accepted step and the linear model
            both decrease the loss by at most ``tol`` · loss. 0 switches it off.
        max_memory: bytes the Jacobian and the linear system may take (default: half the
            machine's memory).
    """

    variant: str = "projection"
    scaling: str = "diagonal"
    solver: str = "auto"
    damping: float = 1e-3
    tol: float = 1e-14
    max_memory: float | None = None

    def check(self) -> None:
        check_choice("variant", self.variant, VARIANTS)
        check_choice("scaling", self.scaling, SCALINGS)
        check_choice("solver", self.solver, SOLVERS)
        for name in ("damping", "tol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value) or value < 0 or (name == "damping" and value == 0):
                bound = "> 0" if name == "damping" else ">= 0"
                raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
        if self.max_memory is not None and not (isinstance(self.max_memory, (int, float))
                                                and self.max_memory > 0):
            raise ValueError(f"max_memory must be a positive number of bytes, got "
                             f"{self.max_memory!r}")


def lm_options(options: Mapping[str, Any] | None) -> LMOptions:
    """:class:`LMOptions` from a dict of its fields, naming any unknown key."""
    options = dict(options or {})
    known = set(LMOptions.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown Levenberg–Marquardt option(s) {unknown}; valid: "
                         f"{sorted(known)}")
    result = LMOptions(**options)
    result.check()
    return result


def lm_settings(settings: Mapping[str, Any], model: nn.Module, problem,
                options: LMOptions) -> dict[str, Any]:
    """A run's recorded settings for LM: fit's checked ones less the first-order optimizer's
    (``lr``, ``optimizer``), the model's and problem's, and the LM options."""
    out = {k: v for k, v in settings.items() if k not in ("lr", "optimizer")}
    out.update(model_settings(model, model.head, problem))
    out["optimizer_options"] = dict(vars(options))
    return out


def fit_lm(model: nn.Module, problem, *, steps: int, options: LMOptions,
           target_loss: float | None = None, callbacks: Sequence[Callable] = (),
           metrics: Mapping[str, Callable] | None = None, metric_every: int = 1,
           progress: bool | str = True, lstsq_method: str = "auto",
           rcond: float | None = None, ridge: float = 0.0,
           settings: dict[str, Any] | None = None) -> History:
    """Run Levenberg–Marquardt on a validated problem; the engine behind ``fit(method="lm")``.

    Use :func:`deepbasis.fit` with ``method="lm"``: it checks the inputs and sets the threads.
    ``steps`` counts LM iterations (each one trial step, accepted or rejected); the history has
    the loss of the accepted state after every iteration, so it never increases.
    """
    metrics = dict(metrics or {})
    rows = ResidualRows(model, problem)
    head = model.head
    joint = options.variant == "joint"
    m = head.out_features
    width = head.in_features + (head.bias is not None)
    columns = rows.size + (width * m if joint else 0)
    _check_memory(rows.rows * m, columns, rows.size, head.weight.dtype, options)
    solve = solve_options(problem, lstsq_method, rcond, ridge)
    xi = rows.pack()
    start = perf_counter()

    A, b = rows.design(xi)
    if joint:  # the model's own head
        theta = head_parameters(head).detach().clone()  # (w + 1, m)
    else:
        theta = solve_head(A, b, **solve)  # (w + 1, m)
    loss = float(problem_loss(A, b, theta))
    history = History(loss=[loss], time=[perf_counter() - start], method="lm",
                      settings=dict(settings or {}), metrics={k: [] for k in metrics})
    history.trace = {"damping": [math.nan], "accepted": [True], "jacobian_s": [0.0],
                     "solve_s": [0.0]}
    state = _State(rows, model, xi, theta, loss)
    bar = tqdm(total=steps, desc=progress if isinstance(progress, str) else "LM",
               disable=not progress, leave=False, dynamic_ncols=True)
    hold = _HeldInterrupt()
    try:
        with hold:
            stop = _run(state, rows, history, options, solve, joint, steps,
                        target_loss, callbacks, metrics, metric_every, bar, hold, start)
    except BaseException as error:
        hold.holding = True
        state.write(hold)
        _end_at_state(history, state)
        history.stop_reason = "interrupted"
        history.message = f"interrupted after {history.steps} iteration(s)"
        error.history = history
        raise
    finally:
        bar.close()
    state.write(hold)
    history.stop_reason, history.message = stop
    return history


class _State:
    """The last accepted point: hidden parameters ξ, head θ, loss; written into the model.

    The point is one attribute, replaced by one assignment, so an interrupt never finds ξ of
    one step with θ of another."""

    def __init__(self, rows, model, xi, theta, loss) -> None:
        self.rows, self.model = rows, model
        self.point = (xi, theta, loss)
        self.written = False

    xi = property(lambda self: self.point[0])
    theta = property(lambda self: self.point[1])
    loss = property(lambda self: self.point[2])

    def write(self, hold: _HeldInterrupt) -> None:
        if self.written:
            return
        holding = hold.holding
        hold.holding = True  # a Ctrl-C now would leave the layers half written: hold it
        self.rows.write(self.xi)
        set_head_(self.model.head, self.theta)
        self.written = True
        hold.holding = holding


def _end_at_state(history: History, state: _State) -> None:
    """Drop an entry an interrupt left half made (its step recorded, its state not taken)."""
    while len(history.loss) > 1 and history.loss[-1] != state.loss:
        n = len(history.loss)
        for values in (history.loss, history.time, *history.trace.values()):
            if len(values) == n:
                values.pop()


def _run(state, rows, history, options, solve, joint, steps, target_loss,
         callbacks, metrics, metric_every, bar, hold, start):
    mu = nu = None
    scale = None
    system = None
    rejections = 0
    stop = _observe(state, 0, steps, callbacks, metrics, metric_every, history, hold)
    if stop is not None:
        return stop
    if target_loss is not None and state.loss <= target_loss:
        return "target_loss", f"loss {state.loss:.3e} <= target_loss {target_loss:.3e}"
    for step in range(1, steps + 1):
        tic = perf_counter()
        if system is None:  # a Jacobian only at a newly accepted state
            system = _System(rows, state, joint, options)
            if not system.finite:
                return "non-finite", "the Jacobian at the current state has NaN or inf entries"
            scale = system.damping_scale(scale)
            if mu is None:
                mu, nu = options.damping * float(system.max_diagonal()), 2.0
                mu = mu if mu > 0 else options.damping
        jacobian_time = perf_counter() - tic
        tic = perf_counter()
        delta = system.step(mu, scale)
        predicted = system.predicted(delta)
        trial = _trial(rows, state, delta, joint, solve)
        solve_time = perf_counter() - tic
        actual = state.loss - trial[2] if trial is not None else -math.inf
        gain = actual / predicted if predicted > 0 else -math.inf
        accepted = math.isfinite(gain) and gain > _ACCEPT
        hold.holding = True  # the state and its history entry change together
        if accepted:
            previous = state.loss
            state.written = False
            state.point = trial
            mu *= max(1 / 3, 1 - (2 * gain - 1) ** 3)
            nu = 2.0
            system = None
            rejections = 0
        else:
            mu = min(mu * nu, _MAX_DAMPING * max(system.max_diagonal(), 1.0))
            nu *= 2.0
            rejections += 1
        history.loss.append(state.loss)
        history.time.append(perf_counter() - start)
        trace = history.trace
        trace["damping"].append(mu)
        trace["accepted"].append(accepted)
        trace["jacobian_s"].append(jacobian_time)
        trace["solve_s"].append(solve_time)
        hold.holding = False
        hold.raise_held()
        bar.update()
        bar.set_postfix_str(f"loss={state.loss:.3e} μ={mu:.1e}", refresh=False)
        stop = _observe(state, step, steps, callbacks, metrics, metric_every, history, hold)
        hold.raise_held()
        if stop is not None:
            return stop
        if target_loss is not None and state.loss <= target_loss:
            stop = "target_loss", f"loss {state.loss:.3e} <= target_loss {target_loss:.3e}"
        elif accepted and options.tol > 0 and actual <= options.tol * previous \
                and predicted <= options.tol * previous:
            stop = "tolerance", (f"relative decrease {actual / previous:.1e} <= tol "
                                 f"{options.tol:.1e} at iteration {step}")
        elif rejections >= _MAX_REJECTIONS:
            stop = "tolerance", (
                f"{rejections} rejected steps in a row at iteration {step}: no decrease the "
                "linear model predicts is left — the minimum to rounding, or (if the loss is "
                "still large) a nearly collinear basis whose least-squares head is huge: "
                "initialize with init.box_ or init.he_")
        if stop is not None:
            _observe(state, step, step, (), metrics, metric_every, history, hold, again=True)
            return stop
    return "steps", f"ran {steps} iteration(s)"


def _observe(state, step, steps, callbacks, metrics, metric_every, history, hold,
             again: bool = False):
    """Callbacks and due metrics at ``step`` (the model is written first); a stop or None.

    Metrics are due every ``metric_every`` iterations, at the last one, and (``again``) at an
    iteration that ends the run early, unless already taken there."""
    due = bool(metrics) and (step % metric_every == 0 or step == steps or again)
    if again and history.metric_steps and history.metric_steps[-1] == step:
        due = False
    if not (callbacks or due):
        return None
    state.write(hold)
    if due:
        for name, metric in metrics.items():
            history.metrics[name].append(float(metric(state.model)))
        history.metric_steps.append(step)
    if any(callback(step, state.loss, state.model) for callback in callbacks):
        if metrics and not due:
            _observe(state, step, step, (), metrics, metric_every, history, hold, again=True)
        return "callback", f"a callback stopped the run at iteration {step}"
    return None


def _trial(rows, state, delta, joint, solve):
    """(ξ', θ', loss') after the step δ, or None if the loss is not finite."""
    delta = delta.to(state.xi.dtype)
    xi = state.xi + delta[:rows.size]
    A, b = rows.design(xi)
    if joint:
        theta = state.theta + delta[rows.size:].view(state.theta.shape[1], -1).mT
    else:
        theta = solve_head(A, b, **solve)
    loss = float(problem_loss(A, b, theta))
    return (xi, theta, loss) if math.isfinite(loss) else None


class _System:
    """J, r and what the damped step needs at one accepted state (float64)."""

    def __init__(self, rows: ResidualRows, state: _State, joint: bool, options: LMOptions):
        A, b, J = rows.jacobian(state.xi, state.theta)  # J (m·R, P)
        residual = A @ state.theta - b  # (R, m)
        r = residual.mT.reshape(-1)  # (m·R,), output by output
        J = J.to(torch.float64)
        A64 = A.to(torch.float64)
        if joint:
            m = b.shape[1]
            blocks = torch.block_diag(*([A64] * m))  # (m·R, m·(w + 1)): ∂ vec(Aθ) / ∂ vec(θ)
            J = torch.cat([J, blocks], dim=1)
        else:
            # Kaufman's Jacobian: the range of A (numerically: the singular vectors above the
            # head solve's cutoff) projected out of every output's block of rows.
            U, s, _ = torch.linalg.svd(A64, full_matrices=False)
            cutoff = torch.finfo(A.dtype).eps * max(A.shape) * (s[0] if s.numel() else 0)
            U = U[:, s > cutoff]  # (R, k)
            m = b.shape[1]
            J3 = J.view(m, -1, J.shape[1])  # (m, R, P)
            J3 = J3 - U @ (U.mT @ J3)
            J = J3.reshape(-1, J.shape[1])
        self.J = J
        self.r = r.to(torch.float64)
        self.g = J.mT @ self.r  # (P,)
        self.finite = bool(torch.isfinite(J).all()) and bool(torch.isfinite(self.g).all())
        n_rows, n_cols = J.shape
        self.solver = options.solver
        if self.solver == "auto":
            self.solver = "normal" if n_rows >= n_cols else "kernel"
        self.scaling = options.scaling
        self.column_norms = (J * J).sum(dim=0)  # diag(JᵀJ)
        if self.solver == "normal":
            self.G = J.mT @ J  # (P, P)
        elif self.solver == "kernel":
            self._kernel_scale = None

    def max_diagonal(self) -> float:
        return float(self.column_norms.max()) if self.column_norms.numel() else 0.0

    def damping_scale(self, previous: torch.Tensor | None) -> torch.Tensor | None:
        """D's diagonal (Moré's running maximum), or None for the identity."""
        if self.scaling == "identity":
            return None
        d = self.column_norms
        if previous is not None:
            d = torch.maximum(d, previous)
        return d.clamp_min(1e-12 * float(d.max()) if d.numel() else 0.0)

    def step(self, mu: float, scale: torch.Tensor | None) -> torch.Tensor:
        J, r, g = self.J, self.r, self.g
        d = scale if scale is not None else torch.ones_like(g)
        if self.solver == "normal":
            M = self.G + torch.diag(mu * d)
            factor, info = torch.linalg.cholesky_ex(M)
            if int(info) == 0:
                return -torch.cholesky_solve(g[:, None], factor)[:, 0]
        elif self.solver == "kernel":
            if self._kernel_scale is None or self._kernel_scale is not scale:
                Jd = J / d  # J D⁻¹
                self._K = Jd @ J.mT  # (m·R, m·R)
                self._Jd = Jd
                self._kernel_scale = scale
            M = self._K + mu * torch.eye(self._K.shape[0], dtype=J.dtype, device=J.device)
            factor, info = torch.linalg.cholesky_ex(M)
            if int(info) == 0:
                y = torch.cholesky_solve(r[:, None], factor)[:, 0]
                return -(self._Jd.mT @ y)
        # "qr", or a Cholesky that failed: min ‖[J; √μ D^½] δ + [r; 0]‖ without squaring
        stacked = torch.cat([J, torch.diag(torch.sqrt(mu * d))], dim=0)
        rhs = torch.cat([-r, torch.zeros_like(g)])
        Q, R = torch.linalg.qr(stacked)
        return torch.linalg.solve_triangular(R, (Q.mT @ rhs)[:, None], upper=True)[:, 0]

    def predicted(self, delta: torch.Tensor) -> float:
        """‖r‖² − ‖r + Jδ‖², the decrease the linear model predicts."""
        Jd = self.J @ delta
        return float(-2 * (self.g @ delta) - Jd @ Jd)


def _check_memory(n_rows: int, n_columns: int, hidden: int, dtype: torch.dtype,
                  options: LMOptions) -> None:
    """Refuse, before allocating, a Jacobian and linear system larger than ``max_memory``."""
    itemsize = torch.finfo(dtype).bits // 8
    side = n_columns if options.solver in ("auto", "normal") and n_rows >= n_columns \
        or options.solver == "normal" else n_rows
    # J in the model's dtype and in float64, its projected copy, and the square system twice
    # (matrix and factor).
    need = n_rows * hidden * itemsize + 2 * n_rows * n_columns * 8 + 2 * side * side * 8
    limit = options.max_memory if options.max_memory is not None else _half_the_memory()
    if need > limit:
        raise MemoryError(
            f"Levenberg–Marquardt needs about {need / 2**30:.1f} GiB for its {n_rows:,} × "
            f"{n_columns:,} Jacobian and a {side:,} × {side:,} linear system, more than the "
            f"{limit / 2**30:.1f} GiB allowed (max_memory); use fewer points or a smaller "
            f"network, raise optimizer_options['max_memory'], or train with method='lsgd', "
            "whose memory does not grow with the number of parameters squared")


def _half_the_memory() -> float:
    try:
        return 0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume 8 GiB
        return 4.0 * 2**30


__all__ = ["LMOptions", "fit_lm", "lm_options"]
