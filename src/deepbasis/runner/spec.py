"""The experiment contract (DESIGN.md, "Experiments are data").

An :class:`Experiment` is a spec plus three pure functions:

- ``cells(params) -> list[Cell]``: the grid of one profile's parameters. Each :class:`Cell`
  holds the *complete* settings of one unit of work (everything the run depends on, so that
  (experiment id, settings, seed) identifies a record) and the seeds it runs — several seeds
  in one cell are trained together as a batched ensemble where that applies.
- ``run(settings, seeds) -> list[dict]``: one JSON-serializable record per seed, each with a
  ``"seed"`` key. Pure: no files written, no global state; randomness from the seeds only.
- ``report(records, params, out) -> Report``: figures (PNG, written into ``out``), markdown
  tables with our numbers beside the paper's, and the claims evaluated as pass / fail.

Profiles: ``quick`` (seconds, CI), ``default`` (minutes on a laptop CPU), ``paper`` (the paper's
full settings). A ``quick`` run is a smoke run: far too small to support or refute a paper's
claims, so its claims are *not judged* (:attr:`Experiment.smoke_profiles`); the checks still run
and their outcome is kept, but reports show "not judged", never PASS or FAIL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PROFILES = ("quick", "default", "paper")  # from the smallest run to the most thorough

#: The verdict shown for a claim evaluated at a smoke profile.
NOT_JUDGED = "not judged"


def verdict(passed: bool, judged: bool = True) -> str:
    """``"PASS"`` / ``"FAIL"``, or ``"not judged"`` for a claim checked at a smoke profile."""
    if not judged:
        return NOT_JUDGED
    return "PASS" if passed else "FAIL"


@dataclass(frozen=True)
class Cell:
    """One unit of work: complete settings and the seeds run together."""

    settings: Mapping[str, Any]
    seeds: tuple[int, ...]

    def key(self) -> str:
        """Canonical JSON of the settings, the stable part of every record's key."""
        return settings_key(self.settings)


def settings_key(settings: Mapping[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)


@dataclass
class Claim:
    """One claim of a paper, evaluated on our numbers.

    Attributes:
        claim: the paper's statement, in words.
        passed: whether our run supports it.
        value: our number(s) the verdict rests on (JSON-serializable).
        paper: the paper's number or wording for the same quantity.
        figure: file name of the figure the claim was judged on.
    """

    claim: str
    passed: bool
    value: Any
    paper: str = ""
    figure: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Report:
    """What an experiment's report function returns."""

    claims: list[Claim] = field(default_factory=list)
    markdown: str = ""
    figures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Experiment:
    """A reproducible figure or table of a paper."""

    id: str
    title: str
    paper: str
    profiles: Mapping[str, Mapping[str, Any]]
    cells: Callable[[Mapping[str, Any]], Sequence[Cell]]
    run: Callable[[Mapping[str, Any], tuple[int, ...]], list[dict[str, Any]]]
    report: Callable[[list[dict[str, Any]], Mapping[str, Any], Path], Report]
    description: str = ""
    #: Profiles whose runs are smoke checks: their claims are reported as not judged.
    smoke_profiles: tuple[str, ...] = ("quick",)

    def __post_init__(self) -> None:
        missing = [p for p in PROFILES if p not in self.profiles]
        if missing:
            raise ValueError(f"experiment {self.id!r} lacks profile(s) {missing}")

    def params(self, profile: str) -> Mapping[str, Any]:
        if profile not in self.profiles:
            valid = ", ".join(repr(p) for p in self.profiles)
            raise ValueError(f"unknown profile {profile!r} for {self.id}; valid profiles: {valid}")
        return self.profiles[profile]

    def judged(self, profile: str) -> bool:
        """Whether a run at ``profile`` judges the paper's claims (not a smoke profile)."""
        return profile not in self.smoke_profiles
