"""How many CPU threads a fit uses: one for small problems, set only for the call.

PyTorch's CPU kernels split large operations over ``torch.get_num_threads()`` threads. The
networks and data of scientific regression are mostly small — a 32-wide network on a thousand
points — and for them more threads only add synchronization: each of the thousands of small
kernels of a training run waits for the slowest thread, and on a machine whose cores are
shared with other work that thread is often descheduled.

Measured on the 2-core development machine while it was shared with other jobs (load average
~12; ``python benchmarks/bench_threads.py``, LSGD steps, residual depth 4, float64, median of
3 interleaved runs), two threads against one:

=====  ======  ===========  ========  =========  ========
width  rows    rows×params  1 thread  2 threads  speed-up
=====  ======  ===========  ========  =========  ========
32     256     8.4e5        42 ms     1108 ms    0.04×
32     4096    1.3e7        249 ms    2139 ms    0.12×
32     65536   2.1e8        1296 ms   3709 ms    0.35×
128    1024    5.1e7        558 ms    3035 ms    0.18×
128    16384   8.2e8        6644 ms   11294 ms   0.59×
=====  ======  ===========  ========  =========  ========

Two threads never won there: the speed-up grows with the size but stays below 1 up to
rows × parameters ≈ 8e8, so the crossover on that machine lies above it (see the table in
``benchmarks/README.md`` for the largest size). An idle machine with more cores crosses over
earlier; that was not measured. The README's estimator snippet took 90 s with two threads
against 11 s with one there (issue 16).

So every entry point that trains — :func:`deepbasis.fit`, :func:`deepbasis.fit_ensemble`,
:class:`deepbasis.BasisRegressor` and ``deepbasis fit`` — takes ``threads``:

- ``"auto"`` (the default): one thread when the work per step, ``rows × parameters`` (summed
  over ensemble members), is below :data:`AUTO_SINGLE_THREAD_WORK`; otherwise the thread count
  is left as it is (PyTorch's default, or what the program set);
- an int ``T ≥ 1``: exactly ``T`` threads;
- ``None``: leave the thread count alone.

The setting holds only for the duration of the call: the previous ``torch.get_num_threads()``
is restored afterwards, also when the call raises. Only CPU work is affected; on other devices
``"auto"`` changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: ``rows × parameters`` below which ``threads="auto"`` uses one thread: above every size at
#: which two threads lost on the shared 2-core development machine (8e8, module docstring), so
#: problems that small always run on one thread, and larger ones keep PyTorch's threads.
AUTO_SINGLE_THREAD_WORK = 1e9


def check_threads(threads: object) -> int | str | None:
    """``threads`` if it is ``"auto"``, ``None`` or a positive int, else a ``ValueError``."""
    if threads is None or threads == "auto":
        return threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be 'auto', None or a positive int, got {threads!r}")
    return threads


def auto_threads(work: float, device: torch.device | str | None = "cpu") -> int | None:
    """The thread count ``threads="auto"`` picks: 1 for CPU work below
    :data:`AUTO_SINGLE_THREAD_WORK` (``rows × parameters``), else ``None`` (leave it)."""
    if device is not None and torch.device(device).type != "cpu":
        return None
    return 1 if work < AUTO_SINGLE_THREAD_WORK else None


@contextmanager
def thread_policy(threads: int | str | None = "auto", *, work: float = 0.0,
                  device: torch.device | str | None = "cpu") -> Iterator[int]:
    """Apply a ``threads`` setting for the body of a ``with`` block; restore it afterwards.

    Args:
        threads: ``"auto"``, ``None`` or a positive int (see the module docstring).
        work: ``rows × parameters`` of one training step (for ``"auto"``).
        device: where the work runs (``"auto"`` only acts on the CPU).

    Yields:
        The thread count in effect inside the block.

    Examples:
        >>> import torch
        >>> before = torch.get_num_threads()
        >>> with thread_policy("auto", work=1000) as used:
        ...     used
        1
        >>> torch.get_num_threads() == before
        True
    """
    threads = check_threads(threads)
    wanted = auto_threads(work, device) if threads == "auto" else threads
    previous = torch.get_num_threads()
    if wanted is not None and wanted != previous:
        torch.set_num_threads(wanted)
    try:
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def model_work(rows: int, *models: torch.nn.Module) -> float:
    """``rows × parameters`` summed over ``models``: the size measure of ``threads="auto"``."""
    return float(rows) * sum(p.numel() for m in models for p in m.parameters())


def problem_rows(problem: object) -> int:
    """Rows of a problem's design matrix: its points (``x``), or the points of its terms."""
    x = getattr(problem, "x", None)
    if isinstance(x, torch.Tensor):
        return int(x.shape[0])
    terms = getattr(problem, "terms", None) or ()
    rows = sum(int(t.points.shape[0]) for t in terms
               if isinstance(getattr(t, "points", None), torch.Tensor))
    return rows or 1
