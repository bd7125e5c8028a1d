r"""Train a basis network: hybrid least squares / gradient descent (LSGD) or plain GD.

A basis network (``features(x) -> Φ (N, w)`` and a linear ``head``) is linear in its head, so
every training problem is :math:`J(ξ^H, θ) = \|A(ξ^H)\,θ − b\|^2` with the design rows A built
from the basis and θ = [headᵀ weight; head bias] (Cyr et al. 2020, eqs. 6–7; see
:mod:`deepbasis.train.problem`). :func:`fit` minimizes it

- with ``method="lsgd"`` (Algorithm 1): the head is the least-squares solution for the current
  basis, and the optimizer steps the hidden parameters only;
- with ``method="gd"``: the optimizer steps every parameter.

**One forward pass per iteration.** Algorithm 1 alternates ``ξ^H = GD(ξ)`` and
``ξ^L = LS(ξ^H)``. Iteration k here computes A once, solves θ_k = LS(A) on that A (detached),
records J(A, θ_k), and backpropagates the same J to the hidden parameters. Because θ_k is the
exact minimizer for this A, the gradient with respect to the hidden parameters is the gradient
of the reduced (variable-projection) loss, and the iterates are those of Algorithm 1 without a
second forward pass per iteration (specs/paper-notes.md).

**Recovery from a non-finite loss, without per-step copies.** The loss of step k is checked on
the host before step k's optimizer update, so parameters that produced a non-finite loss are
never stepped. The *last finite state* is then the state of step k − 1, which has already been
updated away from. Instead of copying every parameter every step (a few percent of the step
time for wide nets, and paid by GD as well), the trainer keeps a snapshot of the parameters and
optimizer state every ``_SNAPSHOT_EVERY`` steps (at a step whose loss is known finite); on a
non-finite loss at step k it restores the snapshot and replays the deterministic iterations up
to k − 1 (callbacks and metrics are not re-run), so the model is left exactly at its last
finite state and the loss entry before the non-finite one describes it.

**Two engines.** A :class:`~deepbasis.MLP` on a regression is trained by the stacked engine of
:mod:`deepbasis.train.stacked` (as a one-member ensemble, so that :func:`fit_ensemble` members
equal separate runs bit for bit); any other basis network or problem by ``_SingleEngine`` here,
which calls ``problem.rows(model)``. Both compute the same iterations up to rounding.

**Host synchronization.** Losses are kept as tensors and copied to the host every
``check_every`` steps (default: every step on the CPU, where the values are already computed
synchronously and reading one costs about a microsecond; every 50 steps on accelerators, so
the GPU queue is not drained every step). Target-loss stopping, non-finite detection and the
progress bar act at those checks; callbacks and metrics force a check on the steps they run.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from time import perf_counter
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .._checks import GeneratorLike, as_2d_targets, check_choice
from .history import History
from .lstsq import METHODS as _LSTSQ_BASE_METHODS
from .lstsq import _head_of, lstsq, set_head_
from .problem import Problem, Regression, head_parameters, problem_loss

METHODS = ("lsgd", "gd")
LSTSQ_METHODS = ("auto",) + tuple(_LSTSQ_BASE_METHODS)

# Optimizers whose update is elementwise in the parameters, so that E members stacked into one
# tensor are stepped exactly as E separate runs would be (see deepbasis.train.ensemble).
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
_FUSED = ("adam", "adamw", "sgd")  # have a fused (single-kernel) implementation on CPU and CUDA

_COMPACT_MIN_COLUMNS = 48  # below this, dropping zero columns costs more than it saves
_SNAPSHOT_EVERY = 64  # steps between snapshots: bounds the replay after a non-finite loss
_POSTFIX_EVERY = 50  # steps between progress-bar loss updates

Callback = Callable[[int, float, nn.Module], Any]
Metric = Callable[[nn.Module], float]


# --------------------------------------------------------------------------------------------
# The least-squares solve for the head
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def solve_head(
    A: torch.Tensor,
    b: torch.Tensor,
    method: str = "auto",
    rcond: float | None = None,
    ridge: float = 0.0,
) -> torch.Tensor:
    r"""The head θ minimizing :math:`\|Aθ − b\|` (eq. 7), minimum-norm when A is rank deficient.

    ``method="auto"`` (the default of :func:`fit`) returns the same minimum-norm solution as
    ``numpy.linalg.lstsq`` and :func:`deepbasis.lstsq` with ``method="svd"`` — singular values
    at or below ``rcond · σ_max`` (default ``rcond = eps · max(N, w)``) are treated as zero —
    but cheaper:

    1. In bases of at least 48 columns, columns of A that are exactly zero on every row are
       dropped before the solve and get a zero coefficient, which is exactly their minimum-norm
       value. ReLU bases have many: a unit that is off on every data point (dead, or not yet
       reached by the data) gives a zero column. With He initialization on the paper's Table 1
       grid most columns are zero (e.g. 196 of 257 after a few steps at width 256, depth 4),
       and the SVD's cost falls with the square of the number of columns. (Below 48 columns
       the bookkeeping costs more than it saves.)
    2. The remaining problem is solved by a divide-and-conquer SVD: LAPACK ``gelsd`` on the CPU
       (the driver NumPy uses; about 2× faster than an explicit SVD and product), and
       :func:`deepbasis.lstsq`'s SVD elsewhere (``torch.linalg.lstsq`` offers only the
       full-rank ``gels`` on CUDA).

    Measured and rejected (float64, N = 256, widths 4–256, one thread): Cholesky of the normal
    equations, with pivoting (LAPACK ``pstrf``) for rank deficiency, is 3–10× faster than the
    SVD at width ≥ 64, but squaring the condition number moves the rank cutoff from
    ``eps · max(N, w)`` to about ``sqrt(w · eps)``: on He-initialized width-256 bases it dropped
    5–7 legitimate singular values in 1e-8…1e-7 σ_max and raised the LS loss by up to 0.4 %.
    ``torch.linalg.lstsq``'s default CPU driver ``gelsy`` is fast but returns wrong ranks
    (pytorch/pytorch#187411, uninitialized pivot array) in torch 2.13. QR (``geqrf``) with a
    triangular solve wherever R is nonsingular by the SVD's rule (checked with the pivots and
    R's singular values; gelsd for the rest) makes about half gelsd's LAPACK work, but takes
    some twenty small tensor operations: on Box and He bases of width 32 (256 points) the solve
    went from 0.23 to 0.43 ms per iteration, so it was dropped.

    Args:
        A: ``(..., N, w)`` design rows (leading dimensions are batch dimensions), detached.
        b: ``(..., N, m)`` targets.
        method: ``"auto"``, or one of :func:`deepbasis.lstsq`'s methods (``"svd"``, ``"qr"``,
            ``"ridge"``) to use that solver unchanged.
        rcond: relative cutoff for small singular values.
        ridge: Tikhonov parameter for ``method="ridge"``.

    Returns:
        θ ``(..., w, m)``. A matrix with NaN or inf entries (a diverged basis) gets a NaN
        solution instead of an error, so the loss becomes non-finite and :func:`fit` recovers.

    Examples:
        >>> A = torch.ones(3, 2, dtype=torch.float64)  # two identical columns: rank 1
        >>> solve_head(A, torch.ones(3, 1, dtype=torch.float64)).flatten()  # the min-norm one
        tensor([0.5000, 0.5000], dtype=torch.float64)
    """
    n, w = A.shape[-2], A.shape[-1]
    if rcond is None:
        rcond = torch.finfo(A.dtype).eps * max(n, w)
    batch, m = A.shape[:-2], b.shape[-1]
    if method == "auto" and not batch and w < _COMPACT_MIN_COLUMNS and A.device.type == "cpu":
        # The hot path of fit on small bases: one reduction, one host sync, one LAPACK call.
        if math.isfinite(float(A.sum())):
            return torch.linalg.lstsq(A, b, rcond=rcond, driver="gelsd").solution  # (w, m)
    flat_A = A.reshape(-1, n, w)  # (B, N, w); a single matrix is a batch of one
    flat_b = b.expand(*batch, n, m).reshape(-1, n, m)  # (B, N, m)
    compact = method == "auto" and w >= _COMPACT_MIN_COLUMNS
    # A sum is finite exactly when every entry is (or when it overflows, which is no better).
    if compact:
        column_max = flat_A.abs().amax(dim=-2)  # (B, w); NaN and inf propagate
        sums = column_max.sum(dim=-1).tolist()  # one host sync
    else:
        sums = flat_A.sum(dim=(-2, -1)).tolist()
    finite = [math.isfinite(v) for v in sums]
    if not all(finite):
        # A diverged basis: LAPACK would print an error and raise. Solve a zero system for those
        # matrices instead and return NaN for them, so the loss says what happened.
        ok = torch.tensor(finite, device=A.device)  # (B,)
        flat_A = torch.where(ok[:, None, None], flat_A, 0.0)
        if compact:
            column_max = torch.where(ok[:, None], column_max, 0.0)
    if method != "auto":
        theta = lstsq(flat_A, flat_b, method=method, rcond=rcond, ridge=ridge).solution
    elif not compact:
        theta = _min_norm_svd(flat_A, flat_b, rcond)  # (B, w, m)
    else:
        live = column_max > 0  # (B, w)
        if live.shape[0] == 1 or bool((live == live[:1]).all()):
            theta = _solve_live_columns(flat_A, flat_b, live[0], rcond)
        else:
            # Members with different zero columns are solved one by one, each on its own
            # columns, exactly as a separate run would (a solve on the union of the columns is
            # the same solution only up to rounding, which chaotic training then amplifies).
            theta = torch.stack([_solve_live_columns(flat_A[i], flat_b[i], live[i], rcond)
                                 for i in range(flat_A.shape[0])])
    if not all(finite):
        theta = torch.where(ok[:, None, None], theta, math.nan)
    return theta.reshape(*batch, w, m)


def _solve_live_columns(A: torch.Tensor, b: torch.Tensor, live: torch.Tensor,
                        rcond: float) -> torch.Tensor:
    """Min-norm solve on the ``live`` (nonzero) columns; zero coefficients for the others."""
    keep = torch.nonzero(live).squeeze(1)  # (w',)
    w = A.shape[-1]
    if keep.numel() == w:
        return _min_norm_svd(A, b, rcond)
    theta = torch.zeros(*A.shape[:-2], w, b.shape[-1], dtype=A.dtype, device=A.device)
    if keep.numel() > 0:
        solution = _min_norm_svd(A.index_select(-1, keep), b, rcond)  # (..., w', m)
        theta.index_copy_(-2, keep, solution)
    return theta


def _min_norm_svd(A: torch.Tensor, b: torch.Tensor, rcond: float) -> torch.Tensor:
    if A.device.type == "cpu":
        return torch.linalg.lstsq(A, b, rcond=rcond, driver="gelsd").solution  # (..., w, m)
    return lstsq(A, b, method="svd", rcond=rcond).solution


# --------------------------------------------------------------------------------------------
# Optimizers
# --------------------------------------------------------------------------------------------


def make_optimizer(name: str, params: Sequence[torch.Tensor], lr: float,
                   options: Mapping[str, Any] | None = None) -> torch.optim.Optimizer:
    """Build optimizer ``name`` (see :data:`OPTIMIZERS`) over ``params``.

    Adam, AdamW and SGD use PyTorch's fused implementation when it is available for the
    parameters' device and dtype (one kernel for all parameters; on this CPU about 1.3× faster
    per step than the default for-loop implementation for small networks); ``options`` are
    passed through and override that choice (e.g. ``{"betas": (0.9, 0.99)}``,
    ``{"momentum": 0.9}``, ``{"foreach": True}``).
    """
    check_choice("optimizer", name, OPTIMIZERS)
    options = dict(options or {})
    cls = OPTIMIZERS[name]
    if name in _FUSED and not {"fused", "foreach"} & options.keys():
        try:
            return cls(params, lr=lr, fused=True, **options)
        except (RuntimeError, ValueError):  # fused unsupported for this device or dtype
            pass
    return cls(params, lr=lr, **options)


# --------------------------------------------------------------------------------------------
# The training loop, shared by fit (one member) and fit_ensemble (E members)
# --------------------------------------------------------------------------------------------


class _Engine:
    """What the loop needs from a trainer: E members stepped together.

    ``forward`` returns the (E,) losses of the current state with the graph attached (and, for
    LSGD, writes the LS heads); ``backward`` and ``step`` do the rest of an iteration.
    """

    n_members: int
    device: torch.device

    def forward(self) -> torch.Tensor: ...

    def backward(self, loss: torch.Tensor) -> None: ...

    def step(self) -> None: ...

    def snapshot(self) -> Any: ...

    def restore(self, state: Any) -> None: ...

    def freeze(self, member: int) -> None:
        """Keep ``member`` at its current state from now on."""

    def member_model(self, member: int) -> nn.Module: ...

    def write_back(self, member: int) -> None:
        """Copy ``member_model(member)`` back into the trained state (after a callback)."""

    def finish(self) -> None:
        """Leave every member's final state in its model."""


class _Outcome:
    """Per-member result of the loop."""

    def __init__(self, metric_names: Iterable[str]) -> None:
        self.loss: list[float] | None = None  # set when the member stops
        self.stop_reason = "steps"
        self.failed_step: int | None = None  # step whose loss was non-finite
        self.restored_step: int | None = None  # step whose state the model holds after that
        self.metrics: dict[str, list[float]] = {name: [] for name in metric_names}
        self.metric_steps: list[int] = []


def _train(
    engine: _Engine,
    *,
    steps: int,
    target_loss: float | None,
    callbacks: Sequence[Callback],
    metrics: Mapping[str, Metric],
    metric_every: int,
    check_every: int | None,
    progress: bool,
    desc: str,
) -> tuple[list[_Outcome], list[float]]:
    E = engine.n_members
    if check_every is None:  # see the module docstring, "Host synchronization"
        check_every = 1 if engine.device.type == "cpu" else 50
    outcomes = [_Outcome(metrics) for _ in range(E)]
    active = [True] * E
    recorded: list[torch.Tensor] = []  # (E,) detached losses, one per iteration
    host: list[list[float]] = []  # the same on the host, up to the last check
    times: list[float] = []
    done = -1  # last iteration whose callbacks / metrics / target checks have run
    silent_until = -1  # iterations below this replay towards a restored state: no bookkeeping
    freeze_at: tuple[int, list[int], list[float]] | None = None  # (step, members, expected)
    snap_step, snap = -1, engine.snapshot()  # -1: the state before any forward pass
    shown, last_postfix = 0, -_POSTFIX_EVERY
    bar = tqdm(total=steps, desc=desc, disable=not progress, dynamic_ncols=True)
    start = perf_counter()
    k = 0
    try:
        with torch.enable_grad():
            while True:
                loss = engine.forward()  # (E,)
                if k < silent_until:  # replay: the same operations, nothing recorded
                    engine.backward(loss)
                    engine.step()
                    k += 1
                    continue
                if k == len(recorded):
                    recorded.append(loss.detach())
                    times.append(perf_counter() - start)
                else:  # an iteration re-run after a rollback
                    recorded[k] = loss.detach()
                if freeze_at is not None and freeze_at[0] == k:
                    diverged = _freeze_replayed(engine, outcomes, freeze_at, loss, k)
                    freeze_at = None
                    if diverged:  # fall back to the snapshot itself for those members
                        k = _rollback(engine, snap, snap_step, diverged, outcomes, host)
                        silent_until = k
                        if not any(active):
                            break
                        continue
                if k < steps and any(active):
                    engine.backward(loss)
                callbacks_due = bool(callbacks) and k > done
                metrics_due = bool(metrics) and k > done and (k % metric_every == 0 or k == steps)
                if (k == steps or callbacks_due or metrics_due or not any(active)
                        or len(recorded) - len(host) >= check_every):
                    first_new = len(host)
                    fresh = (recorded[k] if first_new == k
                             else torch.stack(recorded[first_new:k + 1]))  # (steps, E)
                    host.extend(fresh.reshape(-1, E).tolist())  # one host sync
                    bad = _first_non_finite(host, first_new, active)
                    if bad is not None:
                        step, members = bad
                        expected = [host[step - 1][e] if step > 0 else math.nan for e in members]
                        for e in members:
                            outcomes[e].loss = [row[e] for row in host[:step + 1]]
                            outcomes[e].stop_reason = "non-finite"
                            outcomes[e].failed_step = step
                            active[e] = False
                        if step == 0:  # nothing finite to return to: restore the initial model
                            k = _rollback(engine, snap, snap_step, members, outcomes, host)
                            silent_until = k
                        else:  # restore the snapshot and replay up to step - 1
                            engine.restore(snap)
                            k = max(snap_step, 0)
                            del host[k:]
                            silent_until = step - 1
                            freeze_at = (step - 1, members, expected)
                        if not any(active) and freeze_at is None:
                            break
                        continue
                    if k > done:
                        _bookkeeping(engine, outcomes, active, host, k, steps, target_loss,
                                     callbacks if callbacks_due else (), metrics, metric_every)
                        done = k
                        bar.update(k - shown)
                        shown = k
                        if progress and k - last_postfix >= _POSTFIX_EVERY:
                            bar.set_postfix_str(_postfix(host[k], active), refresh=False)
                            last_postfix = k
                    if any(active) and (snap_step < 0 or k - snap_step >= _SNAPSHOT_EVERY):
                        snap_step, snap = k, engine.snapshot()
                if k == steps or not any(active):
                    break
                engine.step()
                k += 1
    finally:
        bar.close()
    for e, outcome in enumerate(outcomes):
        if outcome.loss is None:  # ran to the end
            outcome.loss = [row[e] for row in host[:k + 1]]
    engine.finish()
    return outcomes, times


def _rollback(engine, snap, snap_step, members, outcomes, host) -> int:
    """Restore the snapshot, freeze ``members`` there, and return the step to resume at."""
    engine.restore(snap)
    for e in members:
        outcomes[e].restored_step = snap_step if snap_step >= 0 else None
        engine.freeze(e)
    resume = max(snap_step, 0)
    del host[resume:]
    return resume


def _first_non_finite(host: list[list[float]], first: int,
                      active: list[bool]) -> tuple[int, list[int]] | None:
    for step in range(first, len(host)):
        members = [e for e, v in enumerate(host[step]) if active[e] and not math.isfinite(v)]
        if members:
            return step, members
    return None


def _freeze_replayed(engine, outcomes, freeze_at, loss, k) -> list[int]:
    """Freeze the members that failed at step k + 1 at the replayed state of step k.

    Returns the members whose replay did not give a finite loss (possible only if a callback
    changed the model, since callbacks are not replayed); they fall back to the snapshot.
    """
    _, members, expected = freeze_at
    values = loss.detach().tolist()
    diverged = []
    for e, want in zip(members, expected, strict=True):
        got = values[e]
        if not math.isfinite(got):
            warnings.warn(
                f"replaying member {e} to step {k} did not give a finite loss (a callback may "
                "have changed the model); it is restored to its last snapshot instead",
                RuntimeWarning, stacklevel=4)
            diverged.append(e)
            continue
        if not math.isclose(got, want, rel_tol=1e-9, abs_tol=0.0):
            warnings.warn(
                f"replaying member {e} to step {k} gave loss {got:.6e} instead of the recorded "
                f"{want:.6e} (a callback may have changed the model); the model holds the "
                "replayed state", RuntimeWarning, stacklevel=4)
        outcomes[e].restored_step = k
        engine.freeze(e)
    return diverged


def _bookkeeping(engine, outcomes, active, host, k, steps, target_loss, callbacks, metrics,
                 metric_every) -> None:
    """Metrics, target loss and callbacks for every active member at step k."""
    for e in range(engine.n_members):
        if not active[e]:
            continue
        value = host[k][e]
        outcome = outcomes[e]
        stop = None
        if target_loss is not None and value <= target_loss:
            stop = "target_loss"
        if callbacks:
            model = engine.member_model(e)
            for callback in callbacks:
                if callback(k, value, model) is True:
                    stop = stop or "callback"
            engine.write_back(e)
        if metrics and (k % metric_every == 0 or k == steps or stop):  # incl. a member's last
            model = engine.member_model(e)
            for name, metric in metrics.items():
                outcome.metrics[name].append(float(metric(model)))
            outcome.metric_steps.append(k)
        if stop and k < steps:
            outcome.loss = [row[e] for row in host[:k + 1]]
            outcome.stop_reason = stop
            active[e] = False
            engine.freeze(e)


def _postfix(values: list[float], active: list[bool]) -> str:
    live = sorted(v for v, a in zip(values, active, strict=True) if a)
    if not live:
        return ""
    if len(values) == 1:
        return f"loss={live[0]:.3e}"
    return f"best={live[0]:.3e} median={live[len(live) // 2]:.3e}"


# --------------------------------------------------------------------------------------------
# One model
# --------------------------------------------------------------------------------------------


class _SingleEngine(_Engine):
    def __init__(self, model: nn.Module, problem: Problem, method: str, optimizer: str, lr: float,
                 optimizer_options, lstsq_method: str, rcond, ridge: float) -> None:
        self.model, self.problem, self.lsgd = model, problem, method == "lsgd"
        self.head = _head_of(model)
        self.n_members = 1
        self.device = self.head.weight.device
        self.solve = dict(method=lstsq_method, rcond=rcond, ridge=ridge)
        self.params = [p for p in model.parameters()]
        self.trained = _trained_parameters(model, self.head, method)
        self.optimizer = make_optimizer(optimizer, self.trained, lr, optimizer_options)
        # LSGD's head is a function of the hidden parameters, recomputed every iteration; it is
        # written into the model only when someone looks (callbacks, metrics, snapshots, the
        # end), which saves two copies per iteration.
        self.theta: torch.Tensor | None = None
        self.frozen = False

    def forward(self) -> torch.Tensor:
        A, b = self.problem.rows(self.model)  # (N, w + 1), (N, m)
        if self.lsgd:
            theta = solve_head(A.detach(), b, **self.solve)  # (w + 1, m)
            self.theta = None if self.frozen else theta
        else:
            theta = head_parameters(self.head)  # (w + 1, m)
        return problem_loss(A, b, theta).reshape(1)  # (1,)

    def _write_head(self) -> None:
        if self.theta is not None:
            set_head_(self.head, self.theta)
            self.theta = None

    def backward(self, loss: torch.Tensor) -> None:
        loss.sum().backward()

    def step(self) -> None:
        self.optimizer.step()
        for p in self.trained:  # what zero_grad(set_to_none=True) does, without its profiler hooks
            p.grad = None

    def snapshot(self):
        self._write_head()
        with torch.no_grad():
            params = [p.detach().clone() for p in self.params]
        return params, copy.deepcopy(self.optimizer.state_dict())

    def restore(self, state) -> None:
        params, optimizer_state = state
        self.theta = None
        with torch.no_grad():
            for p, saved in zip(self.params, params, strict=True):
                p.copy_(saved)
        self.optimizer.load_state_dict(copy.deepcopy(optimizer_state))
        for p in self.trained:
            p.grad = None

    def freeze(self, member: int) -> None:
        self._write_head()
        self.frozen = True

    def member_model(self, member: int) -> nn.Module:
        self._write_head()
        return self.model

    def finish(self) -> None:
        self._write_head()


def _trained_parameters(model: nn.Module, head: nn.Linear, method: str) -> list[nn.Parameter]:
    head_ids = {id(p) for p in head.parameters()}
    trained = [p for p in model.parameters() if p.requires_grad
               and (method == "gd" or id(p) not in head_ids)]
    if not trained:
        what = "hidden " if method == "lsgd" else ""
        raise ValueError(
            f"{type(model).__name__} has no trainable {what}parameters (requires_grad=True); "
            "for a least-squares fit of the head alone use deepbasis.fit_head_")
    return trained


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def fit(
    model: nn.Module,
    x: torch.Tensor | Problem,
    y: torch.Tensor | None = None,
    *,
    method: str = "lsgd",
    steps: int = 1000,
    lr: float = 5e-3,
    optimizer: str = "adam",
    optimizer_options: Mapping[str, Any] | None = None,
    generator: GeneratorLike = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    target_loss: float | None = None,
    lstsq_method: str = "auto",
    rcond: float | None = None,
    ridge: float = 0.0,
    metrics: Mapping[str, Metric] | None = None,
    metric_every: int = 1,
    check_every: int | None = None,
) -> History:
    r"""Train a basis network with LSGD (Cyr et al. 2020, Algorithm 1) or plain GD, in place.

    From "Robust Training and Initialization of Deep Neural Networks: An Adaptive Basis
    Viewpoint" - Cyr, E. C. et al. (2020).

    Minimizes :math:`J = \|A(ξ^H)\,θ − b\|^2` (eq. 1; for ``fit(model, x, y)`` the mean squared
    error, summed over outputs for an ``(N, m)`` target, eq. 18). Each iteration makes one
    forward pass. With ``method="lsgd"`` the head is replaced by the least-squares solution
    θ = LS(A) of that pass (eq. 7; minimum-norm when the basis is rank deficient, see
    :func:`solve_head`) and the optimizer steps the hidden parameters only; with
    ``method="gd"`` it steps every parameter.

    Args:
        model: a basis network (``features(x)`` and ``head: nn.Linear``), e.g.
            :class:`deepbasis.MLP`, already initialized. Changed in place.
        x: inputs ``(N, d)`` — or a problem (anything with ``rows(model)`` and
            ``validate(model)``, e.g. :class:`deepbasis.train.LinearProblem`), then ``y`` is
            omitted. Data are moved to the model's dtype and device.
        y: targets ``(N,)`` or ``(N, m)``; ``m`` must equal the head's outputs.
        method: ``"lsgd"`` or ``"gd"``.
        steps: number of iterations (optimizer steps); ``0`` only evaluates (LSGD: one solve).
        lr: learning rate (> 0). The paper uses 5e-3 for LSGD and 5e-4 for GD with Adam.
        optimizer: ``"adam"`` (default), ``"adamw"``, ``"sgd"`` or ``"rmsprop"``.
        optimizer_options: extra keyword arguments for the optimizer.
        generator: accepted for symmetry with the initializers; full-batch training draws no
            random numbers, so a fit is determined by the model's initial state.
        callbacks: callables ``callback(step, loss, model)`` run after the loss of each step is
            known and before that step's update; returning ``True`` stops training (the model
            keeps the state whose loss was passed). They force a host sync every step.
        progress: show a tqdm progress bar (loss in the postfix every 50 steps).
        target_loss: stop as soon as the loss is ≤ this value.
        lstsq_method: ``"auto"`` (default; see :func:`solve_head`), or ``"svd"``, ``"qr"``,
            ``"ridge"`` for :func:`deepbasis.lstsq` unchanged.
        rcond: relative singular-value cutoff of the LS solve (default ``eps · max(N, w)``).
        ridge: Tikhonov parameter for ``lstsq_method="ridge"``.
        metrics: name → ``metric(model) -> float``, evaluated every ``metric_every`` steps and
            at the last step (stored in ``history.metrics`` with ``history.metric_steps``).
        metric_every: evaluation interval of ``metrics`` (≥ 1).
        check_every: host-sync interval for target-loss, non-finite checks and the progress
            bar (default 1 on the CPU, 50 on other devices; training may run up to
            ``check_every − 1`` steps past a reached target there).

    Returns:
        :class:`History` with ``steps + 1`` losses (fewer if it stopped early); ``loss[0]`` is
        the loss before any update (for LSGD: after the first LS solve, which equals
        :func:`deepbasis.analysis.initial_basis_loss` for a regression).

    Raises:
        ValueError: invalid settings, shapes or non-finite data — before any work.
        TypeError: ``model`` is not a basis network.
        FloatingPointError: the loss became non-finite; the message names the step, the
            model is restored to the last finite state (the step before), and the exception's
            ``history`` attribute holds the history up to and including the non-finite loss.

    Examples:
        >>> import math, torch
        >>> from deepbasis import MLP, fit, init
        >>> x = torch.linspace(0, 1, 64, dtype=torch.float64)[:, None]
        >>> model = init.box_(MLP(1, 16, 2, dtype=torch.float64), generator=0)
        >>> history = fit(model, x, torch.sin(2 * math.pi * x), steps=50, progress=False)
        >>> history.loss[-1] < history.loss[0]
        True
    """
    settings = _check_settings(method=method, steps=steps, lr=lr, optimizer=optimizer,
                               generator=generator, callbacks=callbacks, target_loss=target_loss,
                               lstsq_method=lstsq_method, rcond=rcond, ridge=ridge,
                               metrics=metrics, metric_every=metric_every,
                               check_every=check_every, optimizer_options=optimizer_options)
    head = _head_of(model)
    _check_model_finite(model)
    problem = as_problem(model, x, y)
    from .stacked import StackedMLPEngine, stackable  # imports this module

    options = (problem, method, optimizer, float(lr), optimizer_options, lstsq_method, rcond,
               ridge)
    if stackable(model, problem):  # the MLP fast path, one member (deepbasis.train.stacked)
        engine = StackedMLPEngine([model], *options)
    else:
        engine = _SingleEngine(model, *options)
    settings.update(_model_settings(model, head, problem))
    outcomes, times = _train(engine, steps=steps, target_loss=target_loss,
                             callbacks=tuple(callbacks), metrics=dict(metrics or {}),
                             metric_every=metric_every, check_every=check_every,
                             progress=progress, desc=method.upper())
    history = make_history(outcomes[0], times, method, settings)
    if outcomes[0].stop_reason == "non-finite":
        raise _non_finite_error(outcomes[0], history, lr)
    return history


def make_history(outcome: _Outcome, times: list[float], method: str,
                 settings: dict[str, Any]) -> History:
    return History(loss=list(outcome.loss), time=list(times[:len(outcome.loss)]),
                   metrics={k: list(v) for k, v in outcome.metrics.items()},
                   metric_steps=list(outcome.metric_steps), method=method,
                   settings=dict(settings), stop_reason=outcome.stop_reason)


def _non_finite_error(outcome: _Outcome, history: History, lr: float) -> FloatingPointError:
    step = outcome.failed_step
    if outcome.restored_step is None:
        where = "the model is unchanged (its initial state)"
    else:
        where = (f"the model was restored to step {outcome.restored_step} "
                 f"(loss {history.loss[outcome.restored_step]:.6e})")
    error = FloatingPointError(
        f"the training loss became non-finite ({history.loss[-1]}) at step {step}; {where}. "
        f"Lower the learning rate (lr={lr}), check the data scaling, or use float64.")
    error.step = step
    error.history = history
    return error


# --------------------------------------------------------------------------------------------
# Validation (once, at the entry point, before any work)
# --------------------------------------------------------------------------------------------


def _check_settings(*, method, steps, lr, optimizer, generator, callbacks, target_loss,
                    lstsq_method, rcond, ridge, metrics, metric_every, check_every,
                    optimizer_options) -> dict[str, Any]:
    check_choice("method", method, METHODS)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_choice("lstsq_method", lstsq_method, LSTSQ_METHODS)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) \
            or lr <= 0:
        raise ValueError(f"Invalid learning rate: {lr!r}; lr must be a finite number > 0 "
                         "(the paper uses 5e-3 for LSGD and 5e-4 for GD)")
    if target_loss is not None and (isinstance(target_loss, bool)
                                    or not isinstance(target_loss, (int, float))
                                    or math.isnan(target_loss)):
        raise ValueError(f"target_loss must be a number or None, got {target_loss!r}")
    if rcond is not None and not (isinstance(rcond, (int, float)) and rcond >= 0):
        raise ValueError(f"rcond must be None or a number >= 0, got {rcond!r}")
    if not (isinstance(ridge, (int, float)) and ridge >= 0):
        raise ValueError(f"ridge must be a number >= 0, got {ridge!r}")
    if lstsq_method == "ridge" and not ridge > 0:
        raise ValueError(f"lstsq_method='ridge' needs ridge > 0, got ridge={ridge!r}")
    for name, value in (("metric_every", metric_every), ("check_every", check_every)):
        if value is None and name == "check_every":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if generator is not None and (isinstance(generator, bool)
                                  or not isinstance(generator, (int, torch.Generator))):
        raise TypeError(f"generator must be None, an int seed or a torch.Generator, got "
                        f"{generator!r}")
    if callable(callbacks) or not all(callable(c) for c in callbacks):
        raise TypeError("callbacks must be a sequence of callables callback(step, loss, model); "
                        f"got {callbacks!r} (wrap a single callback in a tuple)")
    if metrics is not None:
        if not isinstance(metrics, Mapping) or not all(
                isinstance(k, str) and callable(f) for k, f in metrics.items()):
            raise TypeError("metrics must be a dict of name -> callable(model) -> float, got "
                            f"{metrics!r}")
    if optimizer_options is not None and not isinstance(optimizer_options, Mapping):
        raise TypeError(f"optimizer_options must be a dict, got {optimizer_options!r}")
    return {
        "method": method, "steps": steps, "lr": float(lr), "optimizer": optimizer,
        "optimizer_options": {k: _jsonable(v) for k, v in (optimizer_options or {}).items()},
        "target_loss": None if target_loss is None else float(target_loss),
        "lstsq_method": lstsq_method, "rcond": rcond, "ridge": float(ridge),
        "metrics": sorted(metrics or {}), "metric_every": metric_every,
    }


def _jsonable(value):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return repr(value)


def _check_model_finite(model: nn.Module) -> None:
    for name, p in model.named_parameters():
        if p.is_floating_point() and not bool(torch.isfinite(p).all()):
            raise ValueError(f"parameter {name!r} of the model has NaN or inf entries; "
                             "re-initialize the model before fitting")


def as_problem(model: nn.Module, x, y) -> Problem:
    """``Regression(x, y)`` on the model's dtype and device, or the problem ``x``; validated."""
    head = _head_of(model)
    if isinstance(x, torch.Tensor):
        if y is None:
            raise ValueError("fit(model, x, y) needs the targets y; or pass a problem "
                             "fit(model, problem)")
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
        factory = {"dtype": head.weight.dtype, "device": head.weight.device}
        if x.ndim == 2 and y.ndim in (1, 2):
            # Shapes first, so a mismatch is reported as such and not as a dtype problem.
            as_2d_targets("y", y, x.shape[0], head.out_features)
        problem = Regression(x.to(**factory), y.to(**factory))
    else:
        if y is not None:
            raise ValueError("pass either fit(model, x, y) or fit(model, problem), not a problem "
                             "and y")
        if not (callable(getattr(x, "rows", None)) and callable(getattr(x, "validate", None))):
            raise TypeError(f"x must be a tensor of inputs or a problem with rows(model) and "
                            f"validate(model), got {type(x).__name__}")
        problem = x
    problem.validate(model)
    return problem


def _model_settings(model: nn.Module, head: nn.Linear, problem) -> dict[str, Any]:
    n_params = sum(p.numel() for p in model.parameters())
    settings: dict[str, Any] = {
        "model": type(model).__name__,
        "width": head.in_features,
        "outputs": head.out_features,
        "parameters": n_params,
        "dtype": str(head.weight.dtype).removeprefix("torch."),
        "device": str(head.weight.device),
        "problem": type(problem).__name__,
    }
    for attr in ("depth", "residual", "activation_name", "in_features"):
        if hasattr(model, attr):
            settings[attr] = getattr(model, attr)
    x = getattr(problem, "x", None)
    if isinstance(x, torch.Tensor):
        settings["points"] = int(x.shape[0])
    return settings
