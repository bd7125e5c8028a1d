"""The ``deepbasis`` command line: thin wrappers that parse, call the library and print."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer

from . import __version__
from .estimator.cli import register as _register_estimator_commands

app = typer.Typer(
    name="deepbasis",
    help="Train deep ReLU/tanh networks to scientific-computing accuracy and rerun the papers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help (click's): rich markup would eat every "[default: ...]" written in a help
    # text and label flags "<bool>"; and not importing rich keeps `deepbasis --help` fast.
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"deepbasis {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """deepbasis: adaptive-basis training of deep networks."""


@app.command("list")
def list_experiments() -> None:
    """List the experiments (paper figures and tables) that `deepbasis run` reproduces."""
    from .runner.registry import experiment_titles

    for experiment_id, title in experiment_titles().items():  # without importing torch
        typer.echo(f"{experiment_id:<28} {title}")


@app.command("run")
def run(
    experiment_id: str = typer.Argument(..., metavar="ID", help="Experiment id (deepbasis list)."),
    profile: str = typer.Option("default", "--profile", "-p", metavar="NAME",
                                help="quick (seconds; a smoke check, claims not judged), "
                                     "default (minutes) or paper (full)."),
    out: Path = typer.Option(None, "--out", "-o", metavar="DIR",
                             help="Output folder (default: results/ID)."),
    workers: int = typer.Option(None, "--workers", "-w", metavar="N", min=1,
                                help="Local worker processes (default: one per core); "
                                     "1 runs in-process."),
    executor: str = typer.Option("local", "--executor", metavar="NAME", help="local or ray."),
    address: str = typer.Option(None, "--address", metavar="ADDRESS",
                                help="Ray cluster address, with --executor ray "
                                     "(default: start a local Ray)."),
    fresh: bool = typer.Option(False, "--fresh",
                               help="Forget this experiment's stored records and start over."),
    threads: int = typer.Option(1, "--threads", metavar="N", min=1,
                                help="Torch threads per cell (the same for every executor, so "
                                     "records do not depend on how they were run)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Run one experiment: resume from the records stored in OUT, write figures and the report.

    Every finished cell is stored at once in OUT/results.sqlite; rerunning the same command
    after an interruption runs only what is missing.
    """
    from .runner.executors import ExecutorError, MissingDependencyError
    from .runner.runner import CellsFailed, format_value, run_experiment, smoke_note
    from .runner.spec import verdict
    from .runner.store import StoreError

    if address is not None and executor != "ray":
        _fail("--address is only used with --executor ray", 2)
    try:
        result = run_experiment(experiment_id, profile, out, progress=progress, workers=workers,
                                executor=executor, address=address, fresh=fresh,
                                threads=threads)
    except (ValueError, MissingDependencyError) as error:
        _fail(str(error), 2)
    except (StoreError, CellsFailed, ExecutorError) as error:
        _fail(str(error), 1)
    except OSError as error:  # writing the report files (full disk, read-only folder)
        _fail(f"{error}. The records are stored; rerun the same command to write the report "
              "again.", 1)
    except KeyboardInterrupt:
        _fail("interrupted; every finished cell is stored, rerun the same command to resume", 130)
    if result.reused:
        typer.echo(f"resumed: {result.reused} record(s) were already stored, "
                   f"{result.computed} computed now")
    # The experiment's own tables (our numbers), then every claim with its verdict.
    tables = [line for line in result.report.markdown.splitlines() if line.startswith("|")]
    if tables:
        typer.echo("\n".join(tables) + "\n")
    claims = result.report.claims
    if claims and not result.judged:  # a smoke run: say so before the claims
        typer.echo(smoke_note(profile).replace("`", "") + "\n")
    for claim in claims:
        typer.echo(f"[{verdict(claim.passed, result.judged)}] {claim.claim}  "
                   f"(ours: {format_value(claim.value)})")
    folder = result.folder or result.out
    typer.echo(f"report: {folder / 'report.md'}")
    for figure in result.report.figures:
        typer.echo(f"figure: {folder / figure}")


@app.command("status")
def status(
    dirs: list[Path] = typer.Argument(..., metavar="DIR...",
                                      help="Experiment folders, or a folder of them (results/)."),
) -> None:
    """Show what result folders hold: cells and seeds done vs planned, what is missing, claims."""
    from .runner.reporting import (
        experiment_folders,
        folder_status,
        format_status,
        unrun_experiments,
    )

    try:
        folders = experiment_folders(dirs)
    except (FileNotFoundError, ValueError) as error:
        _fail(str(error), 2)
    statuses = [folder_status(folder) for folder in folders]
    typer.echo(format_status(statuses, not_run=unrun_experiments(dirs)))
    if any(s.error for s in statuses):
        raise typer.Exit(1)


@app.command("report")
def report(
    dirs: list[Path] = typer.Argument(..., metavar="DIR...",
                                      help="Experiment folders, or a folder of them (results/)."),
    html: bool = typer.Option(False, "--html",
                              help="Write one self-contained HTML page (figures embedded)."),
    out: Path = typer.Option(None, "--out", "-o",
                             help="File to write (default: DIR/index.md or DIR/index.html)."),
    force: bool = typer.Option(False, "--force",
                               help="Overwrite --out even if it is not an earlier report (a "
                                    "result store or a run's own files are never replaced)."),
    ledger: bool = typer.Option(False, "--ledger",
                                help="Write the claims ledger instead: every registered claim "
                                     "with its verdict and, for a failure, its class (default "
                                     "--out: DIR/claims.md, with claims.json beside it)."),
) -> None:
    """Build one report over every experiment in the folders: all claims first, then each one."""
    from ._files import UnwritableError
    from .runner.reporting import write_combined_report

    try:
        if ledger:
            if html:
                _fail("--ledger writes markdown (and JSON); leave out --html", 2)
            from .experiments.reviews import REVIEWS
            from .runner.ledger import write_ledger

            target = out if out is not None else dirs[0] / "claims.md"
            command = " ".join(["deepbasis report", *map(str, dirs), "--ledger", "-o",
                                str(target)])
            path = write_ledger(dirs, target, REVIEWS, command=command, force=force)
        else:
            path = write_combined_report(dirs, out, html=html, force=force)
    except (FileNotFoundError, ValueError) as error:
        _fail(str(error), 2)
    except UnwritableError as error:  # nothing is left behind; an existing report is intact
        _fail(str(error), 1)
    except OSError as error:
        _fail(f"cannot write the report: {error}", 1)
    typer.echo(f"report: {path}")


def _fail(message: str, code: int) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code`` (2: bad input, 1: failure)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


_register_estimator_commands(app)  # `deepbasis fit` and `deepbasis predict`


def main() -> None:
    import sys

    if sys.argv[1:] == ["list"]:
        # Running any command through typer imports pydantic to coerce parameters (~0.3 s);
        # `deepbasis list` has none, so it answers directly (tests/test_cli_fast.py).
        list_experiments()
        return
    app()


if __name__ == "__main__":
    main()
