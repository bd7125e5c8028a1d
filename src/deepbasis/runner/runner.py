"""Run an experiment's cells, keep every record in the result store, and write its report.

``run_experiment`` is what ``deepbasis run`` calls. It plans the profile's cells, asks the
store (:mod:`.store`, ``OUT/results.sqlite``) which (settings, seed) pairs are already there,
runs only the missing seeds on an executor (:mod:`.executors`: in this process, a local process
pool or Ray), commits each cell's records in one transaction as it finishes, and finally builds
the report from the stored records. A sweep killed at any moment and started again therefore
ends with exactly the records of one uninterrupted run.

Written into ``OUT``: ``results.sqlite`` (the store), ``records.jsonl`` (this profile's records,
one per line, for reading), ``report.md``, ``report.json`` (the same, structured, for
``deepbasis report``), ``claims.json`` and the experiment's PNG figures.

**Several profiles in one folder.** The store keys records by settings, so profiles share it;
the report files and figures are per profile. ``OUT`` itself holds those of the most thorough
profile run there (``paper`` > ``default`` > ``quick``), and every other profile's are in
``OUT/<profile>/`` (:func:`report_folder`): a quick run in the folder of a default run writes
``OUT/quick/report.md`` and leaves the default report alone; a default run after a quick one
moves the quick report into ``OUT/quick/`` first. A ``quick`` run's claims are smoke checks,
reported as "not judged" (:attr:`~.spec.Experiment.smoke_profiles`).

**One experiment per folder.** Another experiment's report in ``OUT`` (its files have the same
names) makes the run stop before writing anything, with a message naming both. Names read
back from ``report.json`` (the profile) are used as folder names only when they are plain
names, so nothing a run writes can land outside ``OUT``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .._files import atomic_write, is_plain_name
from .executors import CellTask, ExecutorError, jsonable, make_executor
from .registry import get_experiment
from .spec import PROFILES, Cell, Claim, Experiment, Report, settings_key, verdict
from .store import STORE_FILENAME, ResultStore, StoreError, folder_lock, utc_now

__all__ = [
    "CellsFailed",
    "ExecutorError",
    "RunResult",
    "StoreError",
    "claims_table",
    "format_value",
    "plan_cells",
    "report_folder",
    "run_experiment",
    "write_report",
]


class CellsFailed(RuntimeError):
    """Some cells raised; every other cell's records are stored, and a rerun retries the rest.

    Attributes:
        experiment: the experiment id.
        failures: ``(settings, seeds, traceback text)`` of each failed cell.
    """

    def __init__(self, experiment: str, failures: list[tuple[Mapping[str, Any], tuple[int, ...],
                                                             str]], cells: int) -> None:
        self.experiment = experiment
        self.failures = failures
        settings, seeds, trace = failures[0]
        super().__init__(
            f"{len(failures)} of {cells} cell(s) of {experiment} failed; the records of every "
            "other cell are stored, and rerunning the same command runs only what is missing. "
            f"First failure, settings {dict(settings)} seeds {list(seeds)}:\n{trace.rstrip()}"
        )


@dataclass
class RunResult:
    """What :func:`run_experiment` produced.

    Attributes:
        experiment: the experiment.
        profile: the profile run.
        out: the output folder (the store).
        folder: where this profile's report and figures were written: ``out``, or
            ``out/<profile>`` when a more thorough profile's report is in ``out``.
        records: every record of the profile (``{"settings": ..., **record}``), in plan order.
        report: what the experiment's report function returned.
        computed: records computed by this call.
        reused: records found in the store (a resumed or repeated run).
    """

    experiment: Experiment
    profile: str
    out: Path
    records: list[dict[str, Any]]
    report: Report
    computed: int = 0
    reused: int = 0
    folder: Path | None = None

    @property
    def judged(self) -> bool:
        """Whether the claims were judged (False for a smoke profile such as ``quick``)."""
        return self.experiment.judged(self.profile)


def run_experiment(
    experiment_id: str,
    profile: str = "default",
    out: str | Path | None = None,
    *,
    progress: bool = True,
    workers: int | None = 1,
    executor: str = "local",
    address: str | None = None,
    fresh: bool = False,
    threads: int | None = 1,
) -> RunResult:
    """Run every missing (settings, seed) of ``experiment_id`` under ``profile``; write the report.

    Args:
        experiment_id: an id from ``deepbasis list``.
        profile: ``"quick"``, ``"default"`` or ``"paper"``.
        out: output folder; defaults to ``results/<experiment id>``.
        progress: show a progress bar (cells and seeds, with an ETA).
        workers: local worker processes (``executor="local"``): 1 runs the cells in this
            process, ``None`` uses one per core (``os.cpu_count()``).
        executor: ``"local"`` or ``"ray"``.
        address: Ray cluster address (``executor="ray"``); ``None`` starts a local Ray.
        fresh: forget this experiment's stored records first and run everything again.
        threads: torch threads per cell, whatever the executor. The thread count changes the
            last bits of BLAS/LAPACK results, so one fixed count (default 1) makes the records
            identical whichever executor and worker count computed them, including a sweep
            resumed with other settings. ``None`` keeps this process's torch setting for
            in-process cells (pool and Ray workers then use 1).

    Returns:
        A :class:`RunResult`; its ``records`` come from the store, so a resumed run and an
        uninterrupted one give the report the same records.

    Raises:
        ValueError: unknown experiment, profile or executor (the message lists valid ones).
        StoreError: the store cannot be written (read-only folder, full disk), is damaged
            (the message names what and how to recover it), belongs to another schema
            version, or another run holds the folder's lock ("already running in PID …");
            what was stored before is intact.
        CellsFailed: some cells raised; the others are stored.
        ExecutorError: a worker died, or Ray is not installed.

    Examples:
        >>> result = run_experiment("cyr2020.initial_loss", "quick", "/tmp/il")  # doctest: +SKIP
        >>> [claim.passed for claim in result.report.claims]  # doctest: +SKIP
    """
    experiment = get_experiment(experiment_id)
    params = experiment.params(profile)
    runner = make_executor(executor, workers=workers, address=address)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    out = Path(out) if out is not None else Path("results") / experiment.id
    cells = plan_cells(experiment, params)

    _check_one_experiment(out, experiment.id)  # before anything is written into ``out``
    for name in experiment.profiles:  # checked now, not after the sweep
        _own_folder(out / name)
    store_path = out / STORE_FILENAME
    if store_path.is_symlink():  # SQLite would follow it and write wherever it points
        raise StoreError(f"{store_path} is a symbolic link; deepbasis does not follow it. Copy "
                         "the store into the folder (or remove the link) and run again.")
    with folder_lock(out), ResultStore.in_folder(out) as store:
        _check_one_experiment(out, experiment.id)  # again, under the lock
        if fresh:
            store.delete_experiment(experiment.id)
        run_id = store.start_run(experiment.id, profile, params,
                                 [(cell.key(), cell.seeds) for cell in cells], runner.name)
        done = store.done_seeds(experiment.id)
        tasks = []
        for index, cell in enumerate(cells):
            missing = tuple(s for s in cell.seeds if s not in done.get(cell.key(), ()))
            if missing:
                tasks.append(CellTask(index, experiment.id, experiment.run, cell.settings,
                                      missing, threads))
        total = sum(len(cell.seeds) for cell in cells)
        computed = sum(len(task.seeds) for task in tasks)
        failures = _run_tasks(store, experiment, cells, tasks, runner, total - computed,
                              progress=progress)
        if failures:
            raise CellsFailed(experiment.id, failures, len(cells))
        store.finish_run(run_id)
        records = _profile_records(store, experiment, cells)
        # Still under the lock: a second run must not write the same report files.
        folder = report_folder(out, profile)
        folder.mkdir(parents=True, exist_ok=True)
        _write_jsonl(folder / "records.jsonl", records)
        report = experiment.report(records, params, folder)
        write_report(experiment, profile, report, folder)
    return RunResult(experiment, profile, out, records, report, computed, total - computed,
                     folder)


_REPORT_FILES = ("report.md", "report.json", "claims.json", "records.jsonl")


def report_folder(out: str | Path, profile: str) -> Path:
    """Where a ``profile`` run writes its report and figures in the output folder ``out``.

    ``out`` holds the report of the most thorough profile run there (:data:`~.spec.PROFILES`
    order); a less thorough profile writes into ``out/<profile>``. When ``profile`` is more
    thorough than the one whose report is in ``out``, that report (its files and every PNG in
    ``out``) is first moved into ``out/<its profile>``, so no profile's report is lost.
    """
    out = Path(out)
    top = _report_field(out, "profile")
    if not is_plain_name(top):
        # No report yet, an unreadable one (rewritten), or a profile that is not a plain name
        # ("../V", "/tmp", a list): it names the folder the report would move to, so it
        # must never lead outside ``out``.
        top = None
    if top is None or top == profile:
        return out
    rank = {name: k for k, name in enumerate(PROFILES)}
    if rank.get(profile, -1) <= rank.get(top, -1):
        return _own_folder(out / profile)
    target = _own_folder(out / top)
    target.mkdir(parents=True, exist_ok=True)
    for path in [*(out / name for name in _REPORT_FILES), *sorted(out.glob("*.png"))]:
        if path.is_file():
            path.replace(target / path.name)
    return out


def _own_folder(folder: Path) -> Path:
    """``folder`` (a profile's subfolder), unless it is a symbolic link: what is written into
    it would land wherever the link points."""
    if folder.is_symlink():
        raise StoreError(f"{folder} is a symbolic link; deepbasis writes reports only into "
                         "folders of its own. Remove the link and run the command again.")
    return folder


def _report_field(folder: Path, key: str) -> Any:
    """``report.json[key]`` in ``folder``, or None when there is no readable report (a file
    nested too deep for the parser, or not a JSON object, counts as unreadable)."""
    try:
        data = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data.get(key) if isinstance(data, dict) else None


def _check_one_experiment(out: Path, experiment: str) -> None:
    """Refuse to run ``experiment`` into a folder holding another experiment's report: its
    report, claims and records files have the same names and would be replaced. (The store
    itself keys records by experiment and holds several safely.)"""
    others = set()
    for folder in (out, *(out / p for p in PROFILES)):
        found = _report_field(folder, "experiment")
        if isinstance(found, str) and found != experiment:
            others.add(found)
    if others:
        listed = ", ".join(sorted(repr(o)[:80] for o in others))
        raise StoreError(
            f"{out} holds the results of {listed}; running {experiment} there would replace "
            f"their report, claims and records files. Give each experiment its own folder: "
            f"--out {out.parent / experiment}")


def plan_cells(experiment: Experiment, params: Mapping[str, Any]) -> list[Cell]:
    """The profile's cells, checked: settings JSON-able, seeds ints, no (settings, seed) twice."""
    cells = list(experiment.cells(params))
    seen: set[tuple[str, int]] = set()
    for cell in cells:
        if not isinstance(cell, Cell):
            raise TypeError(f"{experiment.id}: cells() must return Cell objects, "
                            f"got {type(cell).__name__}")
        try:
            json.dumps(dict(cell.settings), allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{experiment.id}: the settings {dict(cell.settings)!r} are not "
                             f"plain JSON ({error}); records are keyed by their JSON") from error
        for seed in cell.seeds:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise TypeError(f"{experiment.id}: seed {seed!r} of cell {cell.key()} is not an "
                                "int")
            if (cell.key(), seed) in seen:
                raise ValueError(f"{experiment.id}: (settings {cell.key()}, seed {seed}) appears "
                                 "in two cells; every record needs a unique key")
            seen.add((cell.key(), seed))
    return cells


def _run_tasks(store: ResultStore, experiment: Experiment, cells: Sequence[Cell],
               tasks: Sequence[CellTask], runner: Any, reused: int, *,
               progress: bool) -> list[tuple[Mapping[str, Any], tuple[int, ...], str]]:
    """Run ``tasks``, committing each finished cell at once; return the failed cells."""
    total = sum(len(cell.seeds) for cell in cells)
    cells_done = len(cells) - len(tasks)
    failures = []
    by_index = {task.index: task for task in tasks}
    with tqdm(total=total, initial=reused, desc=experiment.id, unit="seed",
              disable=not progress, dynamic_ncols=True) as bar:
        bar.set_postfix_str(f"cells {cells_done}/{len(cells)}")
        # closing(): if storing fails (full disk) the executor stops its workers at once.
        with closing(runner.map(tasks)) as outcomes:
            for outcome in outcomes:
                task = by_index[outcome.index]
                if outcome.error is not None:
                    failures.append((task.settings, task.seeds, outcome.error))
                    if progress:  # the full traceback is in the CellsFailed raised at the end
                        last = outcome.error.rstrip().splitlines()[-1]
                        bar.write(f"{experiment.id}: cell {settings_key(task.settings)} seeds "
                                  f"{list(task.seeds)} failed: {last}")
                else:
                    store.put_cell(experiment.id, settings_key(task.settings), outcome.records,
                                   outcome.stamp)
                    cells_done += 1
                bar.update(len(task.seeds))
                bar.set_postfix_str(f"cells {cells_done}/{len(cells)}")
    return failures


def _profile_records(store: ResultStore, experiment: Experiment,
                     cells: Sequence[Cell]) -> list[dict[str, Any]]:
    """The profile's records from the store, in plan order (cells, then their seeds)."""
    stored = {(settings_key(r.settings), r.seed): r for r in store.records(experiment.id)}
    records = []
    for cell in cells:
        for seed in cell.seeds:
            entry = stored[(cell.key(), seed)]
            record = {"settings": dict(cell.settings), **entry.record}
            record.setdefault("wall_time", entry.stamp.wall_time)
            records.append(record)
    return records


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    _write_text(path, "".join(json.dumps(r, default=jsonable) + "\n" for r in records))


def _write_text(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so a reader never sees half a file."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def write_report(experiment: Experiment, profile: str, report: Report, out: Path) -> Path:
    """Write ``report.md``, ``report.json`` and ``claims.json`` for one experiment run.

    At a smoke profile (``quick``) each claim gets ``"judged": false`` and the verdict
    ``"not judged"`` (``"passed"`` keeps what the check gave on the smoke numbers).
    """
    out = Path(out)
    judged = experiment.judged(profile)
    claims = [{**c.to_json(), "judged": judged, "verdict": verdict(c.passed, judged)}
              for c in report.claims]
    _write_text(out / "claims.json", json.dumps(claims, indent=2, default=jsonable) + "\n")
    from .. import __version__

    structured = {
        "experiment": experiment.id,
        "title": experiment.title,
        "paper": experiment.paper,
        "description": experiment.description,
        "profile": profile,
        "judged": judged,
        "note": "" if judged else smoke_note(profile),
        "claims": claims,
        "markdown": report.markdown,
        "figures": list(report.figures),
        "deepbasis_version": __version__,
        "written_at": utc_now(),
    }
    _write_text(out / "report.json", json.dumps(structured, indent=2, default=jsonable) + "\n")
    lines = [
        f"# {experiment.id}: {experiment.title}",
        "",
        f"Paper: {experiment.paper}. Profile: `{profile}`.",
        "",
    ]
    if experiment.description:
        lines += [experiment.description, ""]
    lines += claims_table(report.claims, judged=judged, profile=profile)
    if report.markdown:
        lines += ["", report.markdown.strip(), ""]
    for figure in report.figures:
        lines += [f"![{figure}]({figure})", ""]
    path = out / "report.md"
    _write_text(path, "\n".join(lines) + "\n")
    return path


def smoke_note(profile: str) -> str:
    """What a report at a smoke profile says about its claims."""
    return (f"Profile `{profile}` is a smoke run (seconds): it shows that the experiment runs "
            "end to end, not whether the paper's claims hold, so its claims are not judged "
            "at this profile. Run `--profile default` (or `paper`) to judge them.")


def claims_table(claims: list[Claim], *, judged: bool = True,
                 profile: str = "default") -> list[str]:
    """Markdown table of claims: verdict, claim, our value, the paper's, the figure."""
    if not claims:
        return ["No claims are evaluated by this experiment (figure only)."]
    passed = sum(c.passed for c in claims)
    summary = (f"**Claims: {passed} of {len(claims)} pass.**" if judged else
               f"**Claims: not judged at profile `{profile}` ({len(claims)}).** "
               + smoke_note(profile))
    lines = [
        summary,
        "",
        "| verdict | claim | ours | paper | figure |",
        "|---|---|---|---|---|",
    ]
    for c in claims:
        figure = f"[{c.figure}]({c.figure})" if c.figure else ""
        lines.append(f"| {verdict(c.passed, judged)} | {c.claim} | {format_value(c.value)} | "
                     f"{c.paper} | {figure} |")
    return lines


def format_value(value: Any) -> str:
    """Short human form of a claim's value for tables."""
    if isinstance(value, float):
        return _fmt_float(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {format_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def _fmt_float(x: float) -> str:
    if math.isnan(x) or math.isinf(x):
        return str(x)
    return f"{x:.3g}"


# Kept for callers of the first runner.
_jsonable = jsonable
