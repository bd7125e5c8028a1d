"""Executors: where an experiment's cells run.

A cell (complete settings + the seeds trained together as one batched ensemble) is the unit of
work. An executor takes :class:`CellTask` objects and yields one :class:`CellOutcome` per task,
in whatever order they finish. Executors never touch the result store: the outcomes go back to
the driver process, which alone writes them (:mod:`.store`), so a crashed worker can never leave
half a record behind.

- :class:`SerialExecutor` runs cells one after another in this process (``--workers 1``).
- :class:`ProcessPoolExecutor` runs N cells at a time (``--workers N``): N - 1 in local
  worker processes, started with the ``spawn`` method (a forked child of a process that has
  used torch's thread pools can deadlock), and one in this process, which starts at once.
  Each cell uses one torch thread by default, so N cells use N cores, not N².
- :class:`RayExecutor` runs cells as Ray tasks (``--executor ray [--address ADDR]``), on a
  local Ray instance or a cluster. Ray is optional: ``pip install 'deepbasis[ray]'``.

Examples:
    >>> from deepbasis.runner.executors import make_executor
    >>> make_executor("local", workers=1)
    SerialExecutor()
"""

from __future__ import annotations

import collections
import concurrent.futures
import copy
import json
import multiprocessing
import os
import pickle
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from .._checks import check_choice
from .store import Stamp, utc_now

EXECUTORS = ("local", "ray")

RunFunction = Callable[[Mapping[str, Any], tuple[int, ...]], list[dict[str, Any]]]


class ExecutorError(RuntimeError):
    """An executor could not run the cells (a worker died, Ray is missing, ...)."""


class MissingDependencyError(ExecutorError):
    """The executor needs an optional package that is not installed (the message says which)."""


@dataclass(frozen=True)
class CellTask:
    """One cell to run: which experiment, its run function, settings and (missing) seeds.

    Attributes:
        index: position of the cell in the run's plan (lets the driver match outcomes).
        experiment: the experiment id (for messages).
        run: the experiment's run function; sent to workers by reference, so it must be a
            module-level function of an importable module.
        settings: the cell's complete settings.
        seeds: the seeds to run now (a subset of the cell's seeds when resuming).
        threads: torch intra-op threads for this cell, set for its duration and restored
            after (``None``: leave the process's setting; 1 in pool workers).
    """

    index: int
    experiment: str
    run: RunFunction
    settings: Mapping[str, Any]
    seeds: tuple[int, ...]
    threads: int | None = None


@dataclass(frozen=True)
class CellOutcome:
    """What running a cell gave: one JSON record per seed (in the task's seed order) and a stamp,
    or the formatted traceback of the exception the run raised."""

    index: int
    records: list[str] = field(default_factory=list)
    stamp: Stamp = field(default_factory=Stamp)
    error: str | None = None


def run_cell(task: CellTask) -> CellOutcome:
    """Run one cell and encode its records as JSON; never raises for a failing run.

    This is the function every executor calls, in whatever process runs the cell. The records
    are checked against the contract (one dict per requested seed, each with its ``"seed"``)
    and turned into JSON here, so the driver receives plain text and the report sees exactly
    what the store will hold.
    """
    import torch

    from .. import __version__

    threads = torch.get_num_threads()
    if task.threads is not None:
        # The thread count changes how BLAS/LAPACK split their reductions, hence the last
        # bits of results (and more for ill-conditioned least squares): one fixed count for
        # every cell makes records identical whichever executor ran them.
        torch.set_num_threads(task.threads)
    start = time.perf_counter()
    try:
        # A deep copy, so that the run function sees the same fresh settings whether it runs
        # here or in a worker process (it must not be able to alter the plan).
        records = task.run(copy.deepcopy(dict(task.settings)), tuple(task.seeds))
        texts = _encode_records(task, records)
    except Exception:
        return CellOutcome(task.index, error=traceback.format_exc())
    finally:
        torch.set_num_threads(threads)
    elapsed = time.perf_counter() - start
    first = records[0] if records else {}
    stamp = Stamp(
        deepbasis_version=__version__,
        torch_version=torch.__version__,
        device=str(first.get("device", task.settings.get("device", "cpu"))),
        dtype=str(first.get("dtype", task.settings.get("dtype", _default_dtype(torch)))),
        wall_time=elapsed / max(len(texts), 1),
        finished_at=utc_now(),
    )
    return CellOutcome(task.index, texts, stamp)


def _default_dtype(torch: Any) -> str:
    return str(torch.get_default_dtype()).removeprefix("torch.")


def _encode_records(task: CellTask, records: Any) -> list[str]:
    where = f"{task.experiment}: run(settings={dict(task.settings)}, seeds={task.seeds})"
    if not isinstance(records, list | tuple) or not all(isinstance(r, Mapping) for r in records):
        raise TypeError(f"{where} must return a list of dicts (one per seed), "
                        f"got {type(records).__name__}")
    by_seed: dict[int, str] = {}
    for record in records:
        if "seed" not in record:
            raise ValueError(f"{where} returned a record without a 'seed' key: keys "
                             f"{sorted(record)}; add the seed the record belongs to")
        text = json.dumps(record, sort_keys=True, default=jsonable)
        seed = json.loads(text)["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or seed in by_seed:
            raise ValueError(f"{where} returned seed {record['seed']!r} "
                             f"{'twice' if seed in by_seed else 'that is not an int'}")
        by_seed[seed] = text
    if sorted(by_seed) != sorted(task.seeds):
        raise ValueError(f"{where} returned records for seeds {sorted(by_seed)}; "
                         f"it must return exactly one record per requested seed")
    return [by_seed[seed] for seed in task.seeds]


def jsonable(value: Any) -> Any:
    """JSON fallback for records: tensors and arrays become lists, numpy scalars numbers."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


class SerialExecutor:
    """Run cells one after another in this process (``--workers 1``)."""

    name = "local"
    workers = 1

    def map(self, tasks: Sequence[CellTask]) -> Iterator[CellOutcome]:
        for task in tasks:
            yield run_cell(task)

    def __repr__(self) -> str:
        return "SerialExecutor()"


def _init_worker(parent: int) -> None:
    import torch

    # One intra-op thread per worker: N workers on N cores, instead of N workers each
    # spreading over every core and fighting for them.
    torch.set_num_threads(1)
    # Progress bars in a worker are silent, but tqdm still creates its default lock, a
    # multiprocessing semaphore registered with the driver's resource tracker; the driver stops
    # its workers with SIGTERM, so the semaphore is never released and Python warns about a
    # "leaked semaphore" at exit. A thread lock does for bars that draw nothing.
    from tqdm.auto import tqdm

    tqdm.set_lock(threading.RLock())
    # If the driver is killed (kill -9, OOM killer) the pool cannot tell its workers, and
    # they would wait for work forever (each holds the task queue open) or finish a cell
    # nobody will store. Exit as soon as the parent is gone.
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int, interval: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(interval)
    os._exit(1)


class ProcessPoolExecutor:
    """Run ``workers`` cells at a time on this machine (``--workers N``).

    ``workers - 1`` cells run in worker processes and one in this process, in a background
    thread, so work starts at once instead of after the workers have started (each one imports
    torch, a few seconds) and the driver's core is used too. Every cell gets the thread count
    of its task, wherever it runs, so its records do not depend on where that was.

    Args:
        workers: number of cells run at a time (processes are started only as needed).
        context: multiprocessing start method; ``"spawn"`` (default) or ``"forkserver"``.
            Not ``"fork"``: forking a process that has used torch's thread pools can deadlock.
        in_process: also run cells in this process (default); ``False`` uses ``workers``
            processes and keeps this process free.
    """

    name = "local"

    def __init__(self, workers: int, *, context: str = "spawn", in_process: bool = True) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        self.workers = workers
        self.context = check_choice("start method", context, ("spawn", "forkserver"))
        self.in_process = in_process

    def __repr__(self) -> str:
        return (f"ProcessPoolExecutor(workers={self.workers}, context={self.context!r}, "
                f"in_process={self.in_process})")

    def map(self, tasks: Sequence[CellTask]) -> Iterator[CellOutcome]:
        queue = collections.deque(tasks)
        local_slots = 1 if self.in_process else 0
        processes = min(self.workers - local_slots, len(queue) - local_slots)
        pool = None
        if processes > 0:
            _check_picklable(queue[0])
            pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=processes,
                mp_context=multiprocessing.get_context(self.context),
                initializer=_init_worker,
                initargs=(os.getpid(),),
            )
        local: concurrent.futures.Future | None = None
        remote: set[concurrent.futures.Future] = set()
        # A worker gets a cell only once it is ready (torch imported): until then the cells
        # stay in `queue`, where the in-process slot takes them. A short sweep thus never
        # waits for a worker that is still starting, and a long one gains a core per worker.
        probes = {pool.submit(os.getpid) for _ in range(processes)} if pool else set()
        ready = 0
        try:
            while queue or remote or local is not None:
                if local_slots and local is None and queue:
                    local = _run_in_thread(queue.popleft())
                while pool is not None and queue and len(remote) < ready:
                    remote.add(pool.submit(run_cell, queue.popleft()))
                waiting = remote | probes | ({local} if local is not None else set())
                done, _ = concurrent.futures.wait(
                    waiting, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    if future in probes:
                        probes.discard(future)
                        _outcome(future)  # raises if the worker died while starting
                        ready += 1
                        continue
                    if future is local:
                        local = None
                    else:
                        remote.discard(future)
                    yield _outcome(future)
        finally:
            if pool is not None:
                # Every cell is done (or the run is abandoned): stop the workers now rather
                # than wait for one that is still importing torch, or for cells nobody stores.
                _stop_workers(pool)
                pool.shutdown(wait=True, cancel_futures=True)


def _run_in_thread(task: CellTask) -> concurrent.futures.Future:
    """Run one cell in a daemon thread of this process (never keeps the process alive)."""
    future: concurrent.futures.Future = concurrent.futures.Future()

    def target() -> None:
        try:
            future.set_result(run_cell(task))
        except BaseException as error:  # run_cell catches Exception; this is the rest
            future.set_exception(error)

    threading.Thread(target=target, name=f"deepbasis-cell-{task.index}", daemon=True).start()
    return future


def _outcome(future: concurrent.futures.Future) -> Any:
    try:
        return future.result()
    except BrokenProcessPool as error:
        raise ExecutorError(
            "a worker process died while running cells (killed, or out of memory?); "
            "the cells finished before are stored, rerun the same command to resume"
        ) from error


def _check_picklable(task: CellTask) -> None:
    try:
        pickle.dumps(task)
    except Exception as error:
        raise ExecutorError(
            f"the cells of {task.experiment} cannot be sent to worker processes ({error}); "
            "its run function must be a module-level function of an importable module. "
            "Use --workers 1 to run it in this process."
        ) from error


def _stop_workers(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Stop the workers now instead of waiting for the cells they are running."""
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()


class RayExecutor:
    """Run cells as Ray tasks, one CPU each, on a local Ray instance or a cluster.

    Only the driver (this process) writes results. Worker nodes need deepbasis (and the
    experiment's module) installed. If Ray is not initialized yet, :meth:`map` starts it
    (``ray.init(address=address)``; ``None`` starts a local instance) and shuts it down again
    when done; an instance the caller started is left running. Each cell reserves
    ``task.threads`` CPUs (1 when unset) and uses that many torch threads.

    Connecting is bounded: a ``host:port`` address is first tried with a plain TCP connection
    (``connect_timeout`` seconds), and ``ray.init`` itself must return within
    ``connect_timeout``; otherwise :class:`ExecutorError` says so, instead of Ray retrying for
    minutes.

    Args:
        address: Ray cluster address (``"auto"``, ``"ray://host:10001"``, ...), or ``None``.
        connect_timeout: seconds to wait for the cluster (default :data:`RAY_CONNECT_TIMEOUT`).
    """

    name = "ray"

    def __init__(self, address: str | None = None, *,
                 connect_timeout: float | None = None) -> None:
        self.address = address
        self.connect_timeout = RAY_CONNECT_TIMEOUT if connect_timeout is None \
            else float(connect_timeout)
        self._ray = import_ray()

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r})"

    def map(self, tasks: Sequence[CellTask]) -> Iterator[CellOutcome]:
        ray = self._ray
        tasks = [_with_threads(task, task.threads or 1) for task in tasks]
        if not tasks:
            return
        started = False
        if not ray.is_initialized():
            self._connect()
            started = True
        remote = ray.remote(max_retries=0)(run_cell)
        pending = {remote.options(num_cpus=task.threads).remote(task): task for task in tasks}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    task = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as error:
                        # The task never returned (worker died, node lost, ...): report it
                        # as a failed cell; it is retried by the next run.
                        outcome = CellOutcome(task.index, error=f"Ray: {error}")
                    yield outcome
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()


    def _connect(self) -> None:
        """``ray.init`` within ``connect_timeout`` seconds, or an ExecutorError saying why."""
        address, timeout = self.address, self.connect_timeout
        endpoint = _host_port(address)
        if endpoint is not None:
            try:
                socket.create_connection(endpoint, timeout=timeout).close()
            except OSError as error:
                raise ExecutorError(
                    f"cannot reach the Ray cluster at {address!r} ({error.strerror or error}, "
                    f"waited up to {timeout:g} s); check that its head node is running "
                    "(`ray status` there prints the address) or drop --address to start a "
                    "local Ray") from None
        failure: list[BaseException] = []

        def init() -> None:
            try:
                self._ray.init(address=address, include_dashboard=False)
            except BaseException as error:  # re-raised in the caller's thread
                failure.append(error)

        thread = threading.Thread(target=init, name="deepbasis-ray-init", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            raise ExecutorError(
                f"Ray did not connect to {address or 'a new local instance'!r} within "
                f"{timeout:g} s; check the address and that the cluster is up (`ray status`), "
                "or use --executor local")
        if failure:
            error = failure[0]
            if isinstance(error, (ConnectionError, RuntimeError, ValueError, OSError)):
                raise ExecutorError(f"cannot connect to Ray at {address!r}: {error}") from error
            raise error


#: Seconds ``deepbasis run --executor ray`` waits for a Ray cluster to answer.
RAY_CONNECT_TIMEOUT = 60.0


def _host_port(address: str | None) -> tuple[str, int] | None:
    """``(host, port)`` of an address like ``"host:6379"`` or ``"ray://host:10001"``; None for
    ``None``, ``"auto"``, ``"local"`` and anything without a port."""
    if not address or address in ("auto", "local"):
        return None
    rest = address.split("://", 1)[-1]
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _with_threads(task: CellTask, threads: int) -> CellTask:
    return CellTask(task.index, task.experiment, task.run, task.settings, task.seeds, threads)


def import_ray() -> Any:
    """Import Ray, or explain how to install it."""
    try:
        import ray
    except ImportError as error:
        raise MissingDependencyError(
            "the Ray executor needs Ray, which is not installed; install it with "
            "pip install 'deepbasis[ray]' (or pip install ray), or use --executor local"
        ) from error
    return ray


def default_workers() -> int:
    """The number of local workers ``deepbasis run`` uses by default: the machine's cores."""
    return os.cpu_count() or 1


def make_executor(kind: str = "local", *, workers: int | None = 1,
                  address: str | None = None) -> SerialExecutor | ProcessPoolExecutor | RayExecutor:
    """The executor for ``deepbasis run --executor KIND --workers N [--address ADDR]``.

    Args:
        kind: ``"local"`` (this machine) or ``"ray"``.
        workers: local worker processes; ``None`` means one per core; 1 runs cells in this
            process. Ignored by Ray, which schedules one cell per free CPU.
        address: Ray cluster address; only for ``kind="ray"``.
    """
    check_choice("executor", kind, EXECUTORS)
    if kind == "ray":
        return RayExecutor(address)
    if address is not None:
        raise ValueError(f"address={address!r} is only used by the Ray executor; "
                         "pass executor='ray' (--executor ray) or drop the address")
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int (or None for one per core), "
                         f"got {workers!r}")
    return SerialExecutor() if workers == 1 else ProcessPoolExecutor(workers)


__all__ = [
    "EXECUTORS",
    "CellOutcome",
    "CellTask",
    "ExecutorError",
    "MissingDependencyError",
    "ProcessPoolExecutor",
    "RayExecutor",
    "SerialExecutor",
    "default_workers",
    "make_executor",
    "run_cell",
]
