"""The ``deepbasis`` command line: thin wrappers that parse, call the library and print."""

from __future__ import annotations

from pathlib import Path

import typer

from . import __version__

app = typer.Typer(
    name="deepbasis",
    help="Train deep ReLU/tanh networks to scientific-computing accuracy and rerun the papers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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
    from .experiments import registry

    for experiment in registry().values():
        typer.echo(f"{experiment.id:<28} {experiment.title}")


@app.command("run")
def run(
    experiment_id: str = typer.Argument(..., metavar="ID", help="Experiment id (deepbasis list)."),
    profile: str = typer.Option("default", "--profile", "-p",
                                help="quick (seconds), default (minutes) or paper (full)."),
    out: Path = typer.Option(None, "--out", "-o", help="Output folder [results/ID]."),
) -> None:
    """Run one experiment and write its records, figures, report.md and claims.json."""
    from .experiments.runner import format_value, run_experiment

    try:
        result = run_experiment(experiment_id, profile, out)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    claims = result.report.claims
    for claim in claims:
        verdict = "PASS" if claim.passed else "FAIL"
        typer.echo(f"[{verdict}] {claim.claim}  (ours: {format_value(claim.value)})")
    typer.echo(f"report: {result.out / 'report.md'}")
    for figure in result.report.figures:
        typer.echo(f"figure: {result.out / figure}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
