r"""Train a basis network: hybrid least squares / gradient descent (LSGD) or plain GD.

A basis network (``features(x) -> Φ (N, w)`` and a linear ``head``) is linear in its head, so
every training problem is :math:`J(ξ^H, θ) = \|A(ξ^H)\,θ − b\|^2` with the design rows A built
from the basis and θ = [headᵀ weight; head bias] (Cyr et al. 2020, eqs. 6–7; see
:mod:`deepbasis.train.problem`). :func:`fit` minimizes it

- with ``method="lsgd"`` (Algorithm 1): the head is the least-squares solution for the current
  basis, and the optimizer steps the hidden parameters only;
- with ``method="gd"``: the optimizer steps every parameter;
- with ``method="lm"``: Levenberg–Marquardt — the hidden layers by a damped Gauss–Newton step
  with the head eliminated by least squares (variable projection), or every parameter at once
  (``optimizer_options={"variant": "joint"}``); :mod:`deepbasis.train.lm`. For small and
  mid-size problems (up to ~10⁴ rows × 10⁴ parameters on a CPU) it reaches 6–8 digits where
  LSGD stops at 2–4; LSGD is the one that scales to large data.

**One forward pass per iteration.** Algorithm 1 alternates ``ξ^H = GD(ξ)`` and
``ξ^L = LS(ξ^H)``. Iteration k here computes A once, solves θ_k = LS(A) on that A (detached),
records J(A, θ_k), and backpropagates the same J to the hidden parameters. Because θ_k is the
exact minimizer for this A, the gradient with respect to the hidden parameters is the gradient
of the reduced (variable-projection) loss, and the iterates are those of Algorithm 1 without a
second forward pass per iteration (specs/paper-notes.md).

**Two engines.** A :class:`~deepbasis.MLP` on a regression is trained by the stacked engine of
:mod:`deepbasis.train.engines.stacked` (as a one-member ensemble, so that :func:`fit_ensemble`
members equal separate runs bit for bit); any other basis network or problem by
:class:`~deepbasis.train.engines.single.SingleEngine`, which calls ``problem.rows(model)``. Both
compute the same iterations up to rounding. The loop that drives them (snapshots, rollback and
replay on a non-finite loss, host synchronization) is :mod:`deepbasis.train.loop`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .._checks import GeneratorLike
from .checks import as_problem, check_model_finite, check_settings, model_settings
from .engines.single import SingleEngine
from .engines.stacked import StackedMLPEngine, stackable
from .history import History
from .lm import fit_lm, lm_options, lm_settings
from .loop import Callback, Metric, Outcome, make_history, run_loop
from .lstsq import head_of
from .problem import Problem
from .threads import check_threads, model_work, problem_rows, thread_policy


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
    threads: int | str | None = "auto",
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
        method: ``"lsgd"``, ``"gd"`` or ``"lm"`` (Levenberg–Marquardt,
            :mod:`deepbasis.train.lm`).
        steps: number of iterations (optimizer steps; for LM, trial steps, accepted or
            rejected); ``0`` only evaluates (LSGD, LM: one solve).
        lr: learning rate (> 0). The paper uses 5e-3 for LSGD and 5e-4 for GD with Adam.
            Not used by LM, whose step length is set by its damping.
        optimizer: ``"adam"`` (default), ``"adamw"``, ``"sgd"`` or ``"rmsprop"`` (not used
            by LM).
        optimizer_options: extra keyword arguments for the optimizer; for ``method="lm"``
            the fields of :class:`deepbasis.train.lm.LMOptions` (``variant``, ``scaling``,
            ``solver``, ``damping``, ``tol``, ``max_memory``).
        generator: accepted for symmetry with the initializers; full-batch training draws no
            random numbers, so a fit is determined by the model's initial state.
        callbacks: callables ``callback(step, loss, model)`` run after the loss of each step is
            known and before that step's update; returning ``True`` stops training (the model
            keeps the state whose loss was passed). They force a host sync every step.
        progress: show a tqdm progress bar (loss in the postfix every 50 steps); a string
            shows it with that label (default label: the method, e.g. ``"LSGD"``).
        target_loss: stop as soon as the loss is ≤ this value.
        lstsq_method: the head's solver for LSGD and LM: ``"auto"`` (default; see
            :func:`solve_head`), ``"gcv"`` (a ridge
            head with λ chosen by generalized cross-validation on every solve, for noisy
            data: :func:`deepbasis.train.lstsq.gcv_lstsq`), or ``"svd"``, ``"qr"``,
            ``"ridge"`` for :func:`deepbasis.lstsq` unchanged.
        rcond: relative singular-value cutoff of the LS solve (default ``eps · max(N, w)``).
        ridge: Tikhonov parameter for ``lstsq_method="ridge"``.
        metrics: name → ``metric(model) -> float``, evaluated every ``metric_every`` steps and
            at the last step (stored in ``history.metrics`` with ``history.metric_steps``).
        metric_every: evaluation interval of ``metrics`` (≥ 1).
        check_every: host-sync interval for target-loss, non-finite checks and the progress
            bar (default 1 on the CPU, 50 on other devices; training may run up to
            ``check_every − 1`` steps past a reached target there).
        threads: CPU threads for the call: ``"auto"`` (default; one thread when
            ``rows × parameters`` is below 1e9, where more threads do not help, see
            :mod:`deepbasis.train.threads`), a positive int, or ``None`` (leave
            ``torch.get_num_threads()`` as it is). The previous setting is restored on return.

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
        KeyboardInterrupt: Ctrl-C (or any other exception from inside the loop, e.g. from a
            callback, re-raised unchanged): the model is left at its last completed step, with
            an LS head that matches its hidden layers, and the exception's ``history``
            attribute holds the history up to that step (``stop_reason="interrupted"``;
            see :mod:`deepbasis.train.loop`).

    Examples:
        >>> import math, torch
        >>> from deepbasis import MLP, fit, init
        >>> x = torch.linspace(0, 1, 64, dtype=torch.float64)[:, None]
        >>> model = init.box_(MLP(1, 16, 2, dtype=torch.float64), generator=0)
        >>> history = fit(model, x, torch.sin(2 * math.pi * x), steps=50, progress=False)
        >>> history.loss[-1] < history.loss[0]
        True
    """
    settings = check_settings(method=method, steps=steps, lr=lr, optimizer=optimizer,
                              generator=generator, callbacks=callbacks, target_loss=target_loss,
                              lstsq_method=lstsq_method, rcond=rcond, ridge=ridge,
                              metrics=metrics, metric_every=metric_every,
                              check_every=check_every, optimizer_options=optimizer_options)
    check_threads(threads)
    head = head_of(model)
    check_model_finite(model)
    problem = as_problem(model, x, y)
    if method == "lm":
        return _fit_lm(model, head, problem, settings, steps=steps, target_loss=target_loss,
                       callbacks=callbacks, metrics=metrics, metric_every=metric_every,
                       progress=progress, lstsq_method=lstsq_method, rcond=rcond,
                       ridge=ridge, options=optimizer_options, threads=threads)
    options = (problem, method, optimizer, float(lr), optimizer_options, lstsq_method, rcond,
               ridge)
    if stackable(model, problem):  # the MLP fast path, one member (deepbasis.train.engines.stacked)
        engine = StackedMLPEngine([model], *options)
    else:
        engine = SingleEngine(model, *options)
    settings.update(model_settings(model, head, problem))
    try:
        with thread_policy(threads, work=model_work(problem_rows(problem), model),
                           device=head.weight.device):
            outcomes, times = run_loop(engine, steps=steps, target_loss=target_loss,
                                       callbacks=tuple(callbacks), metrics=dict(metrics or {}),
                                       metric_every=metric_every, check_every=check_every,
                                       progress=bool(progress),
                                       desc=progress if isinstance(progress, str)
                                       else method.upper())
    except BaseException as error:  # the model is at its last completed step: say how far
        if hasattr(error, "_deepbasis_loop"):
            outcomes, times = error._deepbasis_loop
            error.history = make_history(outcomes[0], times, method, settings)
        raise
    history = make_history(outcomes[0], times, method, settings)
    if outcomes[0].stop_reason == "non-finite":
        raise _non_finite_error(outcomes[0], history, lr)
    return history


def _fit_lm(model, head, problem, settings, *, options, threads, **keywords) -> History:
    options = lm_options(options)
    settings = lm_settings(settings, model, problem, options)
    with thread_policy(threads, work=model_work(problem_rows(problem), model),
                       device=head.weight.device):
        history = fit_lm(model, problem, options=options, settings=settings, **keywords)
    if history.stop_reason == "non-finite":
        error = FloatingPointError(
            f"Levenberg–Marquardt stopped at iteration {history.steps}: {history.message}; "
            f"the model holds its last accepted state (loss {history.final_loss:.6e}). Check "
            "the data scaling, or use float64.")
        error.step, error.history = history.steps, history
        raise error
    return history


def _non_finite_error(outcome: Outcome, history: History, lr: float) -> FloatingPointError:
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

