"""The claims ledger: every claim of every registered experiment on one page, with its verdict
from the stored runs and, for a failure, what the failure means.

    deepbasis report results/ --ledger -o docs/claims.md

For each experiment of the registry (:func:`deepbasis.runner.registry`), the report of the most
thorough profile stored in the folders (``paper`` > ``default`` > ``quick``) gives the claims:
our number, the paper's, the verdict and the profile it comes from (a ``quick`` run's claims are
*not judged*). An experiment with no stored run gets one row that says so, so the page lists
every registered experiment whatever was run. Each claim is matched with its review (a class
such as *refuted* with the test that shows it, *needs the paper profile*, *ambiguous in the
paper*; :mod:`deepbasis.experiments.reviews` for the experiments, passed in as ``reviews``).

Beside the markdown page, the same rows are written as JSON (``claims.json`` next to it), which
``tests/test_ledger.py`` reads to check that the page names every registered claim.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._files import atomic_write
from .registry import registry
from .reporting import experiment_folders, profile_reports
from .spec import NOT_JUDGED, PROFILES

#: First line of every ledger page; an existing file without it is not replaced unless forced.
TITLE = "# Claims ledger"
NO_RUN = "no stored run"


@dataclass
class LedgerRow:
    """One claim of one experiment (or, with ``claim`` empty, an experiment without a run)."""

    experiment: str
    number: int  # 1-based position of the claim in its experiment's report; 0: no run
    claim: str
    ours: str
    paper: str
    verdict: str  # PASS, FAIL, not judged, or "no stored run"
    profile: str  # the profile the verdict comes from ("" without a run)
    cls: str = ""  # the review's class (deepbasis.experiments.reviews.CLASSES)
    note: str = ""
    evidence: str = ""


def _short(value: Any, limit: int = 160) -> str:
    from .runner import format_value

    text = format_value(value) if not isinstance(value, str) else value
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def best_reports(dirs: Sequence[str | Path]) -> dict[str, Any]:
    """experiment id -> the report of the most thorough profile stored in ``dirs``."""
    rank = {name: k for k, name in enumerate(PROFILES)}
    best: dict[str, Any] = {}
    for folder in experiment_folders(dirs):
        for report in profile_reports(folder):
            old = best.get(report.experiment)
            if old is None or rank.get(report.profile, -1) > rank.get(old.profile, -1):
                best[report.experiment] = report
    return best


def ledger_rows(dirs: Sequence[str | Path],
                reviews: Mapping[str, Sequence[Any]] | None = None) -> list[LedgerRow]:
    """The ledger's rows: every registered experiment's claims, from the runs in ``dirs``.

    Args:
        dirs: results folders (one subfolder per experiment) or experiment folders.
        reviews: experiment id -> reviews (objects with ``match``, ``cls``, ``note`` and
            ``evidence``); a claim takes the first review whose ``match`` is in its text.
    """
    reviews = reviews or {}
    reports = best_reports(dirs)
    rows: list[LedgerRow] = []
    for experiment_id in registry():
        report = reports.get(experiment_id)
        if report is None or not report.claims:
            rows.append(LedgerRow(experiment_id, 0, "", "", "",
                                  NO_RUN if report is None else "figure only (no claims)",
                                  "" if report is None else str(report.profile)))
            continue
        for k, claim in enumerate(report.claims, start=1):
            text = str(claim.get("claim", ""))
            review = next((r for r in reviews.get(experiment_id, ()) if r.match in text), None)
            rows.append(LedgerRow(
                experiment_id, k, text, _short(claim.get("value")), _short(claim.get("paper")),
                report.verdict(claim), str(report.profile),
                review.cls if review else "", review.note if review else "",
                review.evidence if review else ""))
    return rows


def counts(rows: Sequence[LedgerRow]) -> dict[str, Counter]:
    """Claims by verdict, by class, and by profile (rows without a claim left out)."""
    claims = [r for r in rows if r.number]
    return {"verdict": Counter(r.verdict for r in claims),
            "class": Counter(r.cls for r in claims if r.cls),
            "profile": Counter(r.profile for r in claims),
            "no run": Counter(r.verdict for r in rows if not r.number)}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def ledger_markdown(rows: Sequence[LedgerRow], *, command: str) -> str:
    """The ledger page (markdown) for ``rows``; ``command`` is how it was generated."""
    c = counts(rows)
    verdicts = ", ".join(f"{n} {v}" for v, n in sorted(c["verdict"].items()))
    classes = ", ".join(f"{n} {k}" for k, n in sorted(c["class"].items()))
    profiles = ", ".join(f"{n} from `{p}`" for p, n in sorted(c["profile"].items()))
    missing = sorted({r.experiment for r in rows if r.verdict == NO_RUN})
    claims = [r for r in rows if r.number]
    settled = sum(r.verdict == "PASS" or (r.cls == "refuted" and r.evidence.startswith("tests/"))
                  for r in claims)
    lines = [
        TITLE, "",
        f"Generated by `{command}` from the stored runs; do not edit by hand.", "",
        "Every claim of every registered experiment, with our number, the paper's, and the "
        "verdict at the most thorough profile stored (the *profile* column). A `quick` run is a "
        "smoke run: its claims are **not judged** — rerun at `default` to judge them. The "
        "*class* column comes from the line-by-line review of the claims that failed at "
        "`default` (issue 23: milkert, sahs and go first, then cyr2020 and the changed "
        "checks): *refuted* (a faithful run disagrees with the paper; the evidence names the "
        "test that shows it), *needs the paper profile*, *ambiguous in the paper*, *setup "
        "deviation*, *check rewritten* (the old check measured something else; the verdict "
        "shown is the new check's, at the profile shown), *inconclusive* (an interval that "
        "straddles the claim's margin), or *our target* (a stricter target of ours, not the "
        "paper's statement, missed; the paper's statement is a claim beside it). A row's "
        "class says what the review found at `default`, whatever profile its verdict comes "
        "from.", "",
        f"**{sum(c['verdict'].values())} claims** in {len({r.experiment for r in rows})} "
        f"experiments: {verdicts}; {profiles}.",
        f"**Classes (review of `default`):** {classes or 'none'}.",
        f"**Passing, or refuted with a test:** {settled} of {len(claims)} claims "
        f"({settled / max(len(claims), 1):.0%}; issue 23's target: 90 %).",
    ]
    if missing:
        lines.append(f"**No stored run:** {', '.join(missing)}.")
    if c["no run"].get("figure only (no claims)"):
        lines.append(f"**Figure only (no claims):** "
                     f"{', '.join(r.experiment for r in rows if not r.number and r.profile)}.")
    lines.append("")
    by_paper: dict[str, list[LedgerRow]] = {}
    for r in rows:
        by_paper.setdefault(r.experiment.split(".")[0], []).append(r)
    for paper, paper_rows in by_paper.items():
        lines += [f"## {paper}", "",
                  "| experiment | # | claim | ours | paper | verdict | profile | class | "
                  "why / evidence |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in paper_rows:
            why = r.note + (f" Evidence: `{r.evidence}`" if r.evidence.startswith("tests/")
                            else f" Evidence: {r.evidence}." if r.evidence else "")
            lines.append("| " + " | ".join(_cell(x) for x in (
                r.experiment, str(r.number or "—"), r.claim or "—", r.ours, r.paper,
                r.verdict if r.verdict != NOT_JUDGED else "not judged", r.profile or "—",
                r.cls or "—", why.strip() or "—")) + " |")
        lines.append("")
    return "\n".join(lines)


def write_ledger(dirs: Sequence[str | Path], out: str | Path,
                 reviews: Mapping[str, Sequence[Any]] | None = None, *,
                 command: str = "deepbasis report results/ --ledger -o docs/claims.md",
                 force: bool = False) -> Path:
    """Write the ledger page to ``out`` and its rows as JSON beside it (``.json``).

    Raises:
        FileNotFoundError, ValueError: a folder is missing or holds no results, or ``out``
            exists and is not a ledger (pass ``force`` to replace it).
    """
    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out {str(path)!r} is a folder; give a file name such as "
                         f"{str(path / 'claims.md')!r}")
    for target in (path, path.with_suffix(".json")):
        if target.exists() and not force and not _is_ledger(target):
            raise ValueError(f"refusing to overwrite {str(target)!r}: it is not a claims "
                             "ledger; choose another --out, or pass --force to replace it")
    rows = ledger_rows(dirs, reviews)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        tmp.write_text(ledger_markdown(rows, command=command) + "\n", encoding="utf-8")
    data = {"title": TITLE[2:], "command": command, "rows": [asdict(r) for r in rows]}
    with atomic_write(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _is_ledger(path: Path) -> bool:
    try:
        head = path.read_text(encoding="utf-8")[:200]
    except (OSError, UnicodeDecodeError):
        return False
    return head.startswith(TITLE) or head.startswith('{\n "title": "Claims ledger"')
