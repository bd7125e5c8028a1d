r"""Ensembles: E independently seeded members trained as one batched computation.

The papers report means over 10–16 seeds per curve. Training them one after another repeats
small, overhead-bound operations E times; here every iteration makes one batched forward pass,
one batched least-squares solve (the batch dimensions of
:func:`deepbasis.train.lstsq.solve_head`), one backward pass of the summed loss and one
optimizer step for all members.

**Two engines.** :class:`~deepbasis.MLP` regressions (what the experiments train) take the
stacked fast path of :mod:`deepbasis.train.engines.stacked`, which :func:`deepbasis.fit` uses
as well, with one member. Any other basis network or problem (e.g. the physics-informed
:class:`~deepbasis.train.LinearProblem`) takes the generic engine of
:mod:`deepbasis.train.engines.vmap`, which vmaps ``problem.rows`` over the stacked parameters.

**Each member gets what a separate run gives.** Members do not interact: the summed loss has a
block-diagonal gradient, the LS solves are per matrix, and every optimizer offered is
elementwise, so a batched step is E separate steps. On the fast path it is so bit for bit:
every kernel gives member e the same bits whatever E is, so a member's losses and parameters
*equal* those of ``fit(make_model(seed), …)`` (tested with one thread over activations, depths,
input and output dimensions and optimizers; where MKL picks a processor-specific code path, as
on AMD EPYC, only with ``MKL_CBWR=COMPATIBLE``; see :mod:`deepbasis.train.engines.stacked`).
That matters because LSGD with Adam amplifies rounding: a separate run with x moved by one ulp
ends O(1) away within tens of steps
(``benchmarks/bench_ensemble.py`` prints both). The generic engine's vmapped kernels round
differently from a separate run's, so there members agree only up to that rounding and what
the training run makes of it (tests: 1e-10 for GD; up to ~1e-9 in the loss for LSGD with SGD).

**Levenberg–Marquardt members are trained one after another** (``method="lm"``), not as a
batch: an LM iteration is dominated by the dense P × P (or rows × rows) Gram matrix and its
Cholesky factorization, BLAS-3 work that already runs at the core's speed for one member (on the
2-D Poisson PINN, 2,805 rows × 2,208 parameters, the Gram matrix and the factorization are ~80 %
of an iteration), so a batch would save only the Python overhead, while the members accept and
reject steps at different iterations and E Jacobians would have to be held at once. A member
equals ``fit(make_model(seed), …, method="lm")`` bit for bit.

**A member whose loss goes non-finite is frozen**, not the whole ensemble: it is restored to
its last finite state exactly as :func:`deepbasis.fit` restores a single model (snapshot and
replay), its history ends with the non-finite loss, ``result.failed`` maps its index to the
step, and the other members carry on unchanged. Members that reach ``target_loss`` or whose
callback returns ``True`` are frozen the same way; the loop ends when every member has stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import GeneratorLike
from .checks import as_problem, check_model_finite, check_settings, model_settings
from .engines.stacked import StackedMLPEngine, stackable
from .engines.vmap import VmapEngine
from .history import History
from .lm import fit_lm, lm_options, lm_settings
from .loop import Callback, Metric, make_history, run_loop
from .lstsq import head_of
from .problem import Problem
from .threads import check_threads, model_work, problem_rows, thread_policy


@dataclass
class EnsembleResult:
    """The trained members of :func:`fit_ensemble`, in the order of ``seeds``.

    Attributes:
        models: the fitted models (each ``make_model(seed)``, trained in place).
        histories: one :class:`History` per member.
        seeds: the seeds the members were built from.
        failed: member index → step at which its loss became non-finite (that member is at
            its last finite state, the step before).
        losses: ``(E, steps + 1)`` array of every member's loss curve, NaN after a member
            stopped (a failed member's non-finite loss is kept at its step).
    """

    models: list[nn.Module]
    histories: list[History]
    seeds: list[int]
    failed: dict[int, int] = field(default_factory=dict)
    losses: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


def fit_ensemble(
    make_model: Callable[[int], nn.Module],
    x: torch.Tensor | Problem,
    y: torch.Tensor | None = None,
    *,
    seeds: Sequence[int],
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
) -> EnsembleResult:
    """Train ``make_model(seed)`` for every seed as one batched computation.

    Every keyword has the meaning it has in :func:`deepbasis.fit`, applied to each member, and
    each member ends exactly as a separate ``fit(make_model(seed), x, y, ...)`` would leave it
    (bit for bit for :class:`~deepbasis.MLP` regressions; see the module docstring, also for
    non-finite losses, which freeze the member instead of raising). Callbacks and metrics
    receive each member's own model; a callback may change it (the change is copied back into
    the batch).

    Args:
        make_model: ``seed -> initialized basis network``; all members must have the same
            architecture, dtype and device.
        x, y: inputs and targets, or a problem (then ``y`` is omitted), as for ``fit``.
        seeds: one seed per member (at least one).
        threads: as for ``fit``; ``"auto"`` counts the work of every member.

    Returns:
        :class:`EnsembleResult` with ``models``, ``histories``, ``losses`` and ``failed``.

    Raises:
        KeyboardInterrupt: Ctrl-C (or any other exception from inside the training loop,
            re-raised unchanged): every member is left at its last completed step with a
            matching head, and the exception's ``result`` attribute holds the
            :class:`EnsembleResult` so far (``stop_reason="interrupted"`` in the histories of
            the members that were still training; see :mod:`deepbasis.train.loop`).

    Examples:
        >>> import math, torch
        >>> from deepbasis import MLP, fit_ensemble, init
        >>> x = torch.linspace(0, 1, 64, dtype=torch.float64)[:, None]
        >>> make = lambda seed: init.box_(MLP(1, 8, 2, dtype=torch.float64), generator=seed)
        >>> result = fit_ensemble(make, x, torch.sin(2 * math.pi * x), seeds=[0, 1, 2],
        ...                       steps=20, progress=False)
        >>> result.losses.shape
        (3, 21)
    """
    settings = check_settings(method=method, steps=steps, lr=lr, optimizer=optimizer,
                              generator=generator, callbacks=callbacks, target_loss=target_loss,
                              lstsq_method=lstsq_method, rcond=rcond, ridge=ridge,
                              metrics=metrics, metric_every=metric_every,
                              check_every=check_every, optimizer_options=optimizer_options)
    check_threads(threads)
    if not callable(make_model):
        raise TypeError(f"make_model must be a callable seed -> model, got {make_model!r}")
    seeds = _check_seeds(seeds)
    models = [make_model(seed) for seed in seeds]
    _check_members(models)
    problem = as_problem(models[0], x, y)
    if method == "lm":
        return _fit_lm_members(models, seeds, problem, settings, steps=steps,
                               options=optimizer_options, threads=threads,
                               target_loss=target_loss, callbacks=callbacks, metrics=metrics,
                               metric_every=metric_every, progress=progress,
                               lstsq_method=lstsq_method, rcond=rcond, ridge=ridge)
    engine_type = StackedMLPEngine if stackable(models[0], problem) else VmapEngine
    engine = engine_type(models, problem, method, optimizer, float(lr), optimizer_options,
                         lstsq_method, rcond, ridge)
    settings.update(model_settings(models[0], head_of(models[0]), problem))
    settings["ensemble"] = len(models)
    try:
        with thread_policy(threads, work=model_work(problem_rows(problem), *models),
                           device=head_of(models[0]).weight.device):
            outcomes, times = run_loop(engine, steps=steps, target_loss=target_loss,
                                       callbacks=tuple(callbacks), metrics=dict(metrics or {}),
                                       metric_every=metric_every, check_every=check_every,
                                       progress=bool(progress),
                                       desc=progress if isinstance(progress, str)
                                       else f"{method.upper()} ×{len(models)}")
    except BaseException as error:  # the members are at their last completed step
        if hasattr(error, "_deepbasis_loop"):
            outcomes, times = error._deepbasis_loop
            error.result = _result(models, seeds, outcomes, times, method, settings, steps)
        raise
    return _result(models, seeds, outcomes, times, method, settings, steps)


def _fit_lm_members(models, seeds, problem, settings, *, steps, options, threads,
                    **keywords) -> EnsembleResult:
    """Levenberg–Marquardt member by member (module docstring: why not batched)."""
    options = lm_options(options)
    for model in models[1:]:
        problem.validate(model)
    settings = {**lm_settings(settings, models[0], problem, options), "ensemble": len(models)}
    histories: list[History] = []
    progress = keywords.pop("progress")
    try:
        with thread_policy(threads, work=model_work(problem_rows(problem), models[0]),
                           device=head_of(models[0]).weight.device):
            for e, (model, seed) in enumerate(zip(models, seeds, strict=True)):
                label = progress if isinstance(progress, str) else f"LM {e + 1}/{len(models)}"
                histories.append(fit_lm(model, problem, steps=steps, options=options,
                                        settings={**settings, "seed": seed},
                                        progress=label if progress else False, **keywords))
    except BaseException as error:
        if hasattr(error, "history"):  # the member in training is at its last accepted step
            histories.append(error.history)
            error.result = _lm_result(models[:len(histories)], seeds, histories, steps)
        raise
    return _lm_result(models, seeds, histories, steps)


def _lm_result(models, seeds, histories, steps) -> EnsembleResult:
    failed = {e: h.steps for e, h in enumerate(histories) if h.stop_reason == "non-finite"}
    return _ensemble_result(models, list(seeds[:len(models)]), histories, failed, steps)


def _result(models, seeds, outcomes, times, method, settings, steps) -> EnsembleResult:
    histories = [make_history(outcome, times, method, {**settings, "seed": seed})
                 for seed, outcome in zip(seeds, outcomes, strict=True)]
    failed = {e: o.failed_step for e, o in enumerate(outcomes) if o.failed_step is not None}
    return _ensemble_result(models, seeds, histories, failed, steps)


def _ensemble_result(models, seeds, histories, failed, steps) -> EnsembleResult:
    """The result, with every member's loss curve in one ``(E, steps + 1)`` array."""
    losses = np.full((len(models), steps + 1), np.nan)
    for e, history in enumerate(histories):
        losses[e, :len(history.loss)] = history.loss
    return EnsembleResult(models=models, histories=histories, seeds=seeds, failed=failed,
                          losses=losses)


def _check_seeds(seeds) -> list[int]:
    if isinstance(seeds, (int, str)) or not isinstance(seeds, Sequence):
        raise TypeError(f"seeds must be a sequence of ints, got {seeds!r}")
    if len(seeds) == 0:
        raise ValueError("seeds is empty; an ensemble needs at least one member")
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in seeds):
        raise TypeError(f"seeds must be ints, got {list(seeds)!r}")
    return [int(s) for s in seeds]


def _check_members(models: list[nn.Module]) -> None:
    first = models[0]
    if not isinstance(first, nn.Module):
        raise TypeError(f"make_model must return an nn.Module, got {type(first).__name__}")
    signature = _signature(first)
    for e, model in enumerate(models):
        head_of(model)
        if _signature(model) != signature:
            raise ValueError(
                f"member {e} does not have the architecture of member 0 (parameter names, "
                "shapes, dtypes and devices must match); make_model must build the same "
                "network for every seed")
        check_model_finite(model)


def _signature(model: nn.Module) -> list[tuple]:
    return [(name, tuple(t.shape), t.dtype, t.device, t.requires_grad)
            for name, t in [*model.named_parameters(), *model.named_buffers()]]
