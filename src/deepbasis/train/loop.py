r"""The training loop shared by :func:`deepbasis.fit` (one member) and
:func:`deepbasis.fit_ensemble` (E members), and the :class:`Engine` protocol it drives.

An engine (:mod:`deepbasis.train.engines`) computes the iterations of E members; the loop
decides when to check the losses on the host, when to snapshot, when to stop a member, and
how to return a member to its last finite state.

**Recovery from a non-finite loss, without per-step copies.** The loss of step k is checked on
the host before step k's optimizer update, so parameters that produced a non-finite loss are
never stepped. The *last finite state* is then the state of step k − 1, which has already been
updated away from. Instead of copying every parameter every step (a few percent of the step
time for wide nets, and paid by GD as well), the trainer keeps a snapshot of the parameters and
optimizer state every ``_SNAPSHOT_EVERY`` steps (at a step whose loss is known finite); on a
non-finite loss at step k it restores the snapshot and replays the deterministic iterations up
to k − 1 (callbacks and metrics are not re-run), so the model is left exactly at its last
finite state and the loss entry before the non-finite one describes it.

**Host synchronization.** Losses are kept as tensors and copied to the host every
``check_every`` steps (default: every step on the CPU, where the values are already computed
synchronously and reading one costs about a microsecond; every 50 steps on accelerators, so
the GPU queue is not drained every step). Target-loss stopping, non-finite detection and the
progress bar act at those checks; callbacks and metrics force a check on the steps they run.

**Interrupts and exceptions.** When the loop is left by an exception (Ctrl-C's
``KeyboardInterrupt``, or an error in a callback, a metric or a forward pass), every member is
left at its last completed step with a head that matches its hidden layers, and the histories
so far go with the exception (:func:`deepbasis.fit` attaches ``error.history``,
:func:`deepbasis.fit_ensemble` ``error.result``; ``stop_reason="interrupted"``). A Ctrl-C that
arrives during an optimizer step is held until the step is complete (only in the main thread,
and only while Python's default SIGINT handler is installed), so the hidden layers are never
half stepped. If the last completed step's loss had not been computed yet (the interrupt came
during its forward pass), one more forward pass computes it, and the LS head; if that pass
fails too, is interrupted again, or gives a non-finite loss, the members fall back to the last
snapshot (at most ``_SNAPSHOT_EVERY`` steps back) and the histories end there.
"""

from __future__ import annotations

import math
import signal
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from time import perf_counter
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .history import History

_SNAPSHOT_EVERY = 64  # steps between snapshots: bounds the replay after a non-finite loss
_POSTFIX_EVERY = 50  # steps between progress-bar loss updates

Callback = Callable[[int, float, nn.Module], Any]
Metric = Callable[[nn.Module], float]


class Engine:
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


class Outcome:
    """Per-member result of the loop."""

    def __init__(self, metric_names: Iterable[str]) -> None:
        self.loss: list[float] | None = None  # set when the member stops
        self.stop_reason = "steps"
        self.failed_step: int | None = None  # step whose loss was non-finite
        self.restored_step: int | None = None  # step whose state the model holds after that
        self.metrics: dict[str, list[float]] = {name: [] for name in metric_names}
        self.metric_steps: list[int] = []


def trained_parameters(model: nn.Module, head: nn.Linear, method: str) -> list[nn.Parameter]:
    """The parameters an engine's optimizer steps: every trainable one for GD, all but the
    head's for LSGD (whose head is the least-squares solution)."""
    head_ids = {id(p) for p in head.parameters()}
    trained = [p for p in model.parameters() if p.requires_grad
               and (method == "gd" or id(p) not in head_ids)]
    if not trained:
        what = "hidden " if method == "lsgd" else ""
        raise ValueError(
            f"{type(model).__name__} has no trainable {what}parameters (requires_grad=True); "
            "for a least-squares fit of the head alone use deepbasis.fit_head_")
    return trained



def run_loop(
    engine: Engine,
    *,
    steps: int,
    target_loss: float | None,
    callbacks: Sequence[Callback],
    metrics: Mapping[str, Metric],
    metric_every: int,
    check_every: int | None,
    progress: bool,
    desc: str,
) -> tuple[list[Outcome], list[float]]:
    """Run ``engine`` for up to ``steps`` iterations; each member's outcome and the times.

    The keywords are those of :func:`deepbasis.fit`; ``desc`` labels the progress bar. Every
    member ends in its model (``engine.finish()``), at its last finite state if it failed.
    """
    E = engine.n_members
    if check_every is None:  # see the module docstring, "Host synchronization"
        check_every = 1 if engine.device.type == "cpu" else 50
    outcomes = [Outcome(metrics) for _ in range(E)]
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
    forwarded = -1  # the last iteration whose forward pass completed (its loss is recorded)
    stepping = False  # inside engine.step(): the trained parameters may be half updated
    hold = _HeldInterrupt()
    try:
        with torch.enable_grad(), hold:
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
                forwarded = k
                if freeze_at is not None and freeze_at[0] == k:
                    diverged = _freeze_replayed(engine, outcomes, freeze_at, loss, k)
                    freeze_at = None
                    if diverged:  # fall back to the snapshot itself for those members
                        k = _rollback(engine, snap, snap_step, diverged, outcomes, host)
                        silent_until = k
                        forwarded = -1
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
                            forwarded = -1
                        else:  # restore the snapshot and replay up to step - 1
                            engine.restore(snap)
                            k = max(snap_step, 0)
                            forwarded = -1
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
                stepping = hold.holding = True
                engine.step()
                k += 1
                stepping = hold.holding = False
                hold.raise_held()
    except BaseException as error:
        clean = not stepping and freeze_at is None and k >= silent_until
        _settle(engine, outcomes, active, recorded, host, times, start, k, forwarded, clean,
                snap, snap_step, freeze_at)
        error._deepbasis_loop = (outcomes, times)  # fit / fit_ensemble make the histories
        raise
    finally:
        bar.close()
    for e, outcome in enumerate(outcomes):
        if outcome.loss is None:  # ran to the end
            outcome.loss = [row[e] for row in host[:k + 1]]
    engine.finish()
    return outcomes, times


class _HeldInterrupt:
    """Holds a Ctrl-C that arrives while ``holding`` (an optimizer step) until ``raise_held``.

    Installed only in the main thread over Python's default SIGINT handler; anywhere else (or
    under a handler of the caller's) signals are left alone.
    """

    def __init__(self) -> None:
        self.holding = False
        self.held = False
        self.installed = False

    def __enter__(self) -> _HeldInterrupt:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            signal.signal(signal.SIGINT, self._handler)
            self.installed = True
        return self

    def __exit__(self, *exc_info) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _handler(self, signum, frame) -> None:
        if self.holding:
            self.held = True
        else:
            signal.default_int_handler(signum, frame)

    def raise_held(self) -> None:
        if self.held:
            self.held = False
            raise KeyboardInterrupt


def _settle(engine, outcomes, active, recorded, host, times, start, k, forwarded, clean, snap,
            snap_step, freeze_at) -> None:
    """After an exception: leave every member at its last completed step (see the module
    docstring, "Interrupts and exceptions") and end the histories of the active ones there."""
    try:
        if not clean:  # half a step, or a replay towards a restored state
            raise _FallBack
        E = engine.n_members
        known = k + 1 if forwarded == k else k  # losses recorded for the current state's path
        if len(host) < known:
            host.extend(torch.stack(recorded[len(host):known]).reshape(-1, E).tolist())
        if forwarded != k:  # the loss of step k (and LSGD's head for it) is not computed yet
            with torch.enable_grad():
                values = engine.forward().detach().tolist()
            host.append(values)
            times.append(perf_counter() - start)
        if any(active[e] and not math.isfinite(row[e]) for row in host[:k + 1]
               for e in range(E)):
            raise _FallBack
        for e, outcome in enumerate(outcomes):
            if active[e]:
                outcome.loss = [row[e] for row in host[:k + 1]]
                outcome.stop_reason = "interrupted"
        engine.finish()
    except BaseException:  # incl. a second Ctrl-C: the snapshot needs no computation
        _fall_back(engine, outcomes, active, recorded, times, snap, snap_step, freeze_at)


class _FallBack(Exception):
    """The current state is not a completed step: return to the snapshot."""


def _fall_back(engine, outcomes, active, recorded, times, snap, snap_step, freeze_at) -> None:
    engine.restore(snap)
    E = engine.n_members
    rows = (torch.stack(recorded[:snap_step + 1]).reshape(-1, E).tolist()
            if snap_step >= 0 else [])
    pending = freeze_at[1] if freeze_at is not None else []
    for e, outcome in enumerate(outcomes):
        if active[e]:
            outcome.loss = [row[e] for row in rows]
            outcome.stop_reason = "interrupted"
        elif e in pending:  # failed, and was being replayed to the step before: at the snapshot
            outcome.restored_step = snap_step if snap_step >= 0 else None
    del times[len(rows):]
    engine.finish()


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



def make_history(outcome: Outcome, times: list[float], method: str,
                 settings: dict[str, Any]) -> History:
    return History(loss=list(outcome.loss), time=list(times[:len(outcome.loss)]),
                   metrics={k: list(v) for k, v in outcome.metrics.items()},
                   metric_steps=list(outcome.metric_steps), method=method,
                   settings=dict(settings), stop_reason=outcome.stop_reason)

