"""Run an experiment's cells, keep its records, and write its report."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from . import get_experiment
from .spec import Claim, Experiment, Report


@dataclass
class RunResult:
    """What :func:`run_experiment` produced."""

    experiment: Experiment
    profile: str
    out: Path
    records: list[dict[str, Any]]
    report: Report


def run_experiment(
    experiment_id: str,
    profile: str = "default",
    out: str | Path | None = None,
    *,
    progress: bool = True,
) -> RunResult:
    """Run every cell of ``experiment_id`` under ``profile`` and write the report into ``out``.

    ``out`` defaults to ``results/<experiment id>``. Written there: ``records.jsonl`` (one raw
    record per line), ``report.md``, ``claims.json`` and the experiment's PNG figures.
    """
    experiment = get_experiment(experiment_id)
    params = experiment.params(profile)
    out = Path(out) if out is not None else Path("results") / experiment.id
    out.mkdir(parents=True, exist_ok=True)
    cells = list(experiment.cells(params))
    total = sum(len(cell.seeds) for cell in cells)
    records: list[dict[str, Any]] = []
    with tqdm(total=total, desc=experiment.id, unit="run", disable=not progress) as bar:
        for cell in cells:
            start = time.perf_counter()
            new = experiment.run(cell.settings, tuple(cell.seeds))
            elapsed = time.perf_counter() - start
            for record in new:
                record.setdefault("wall_time", elapsed / max(len(new), 1))
                records.append({"settings": dict(cell.settings), **record})
            bar.update(len(cell.seeds))
    with open(out / "records.jsonl", "w") as f:
        for record in records:
            f.write(json.dumps(record, default=_jsonable) + "\n")
    report = experiment.report(records, params, out)
    write_report(experiment, profile, report, out)
    return RunResult(experiment, profile, out, records, report)


def write_report(experiment: Experiment, profile: str, report: Report, out: Path) -> Path:
    """Write ``report.md`` and ``claims.json`` for one experiment run."""
    (out / "claims.json").write_text(
        json.dumps([c.to_json() for c in report.claims], indent=2, default=_jsonable) + "\n"
    )
    lines = [
        f"# {experiment.id}: {experiment.title}",
        "",
        f"Paper: {experiment.paper}. Profile: `{profile}`.",
        "",
    ]
    if experiment.description:
        lines += [experiment.description, ""]
    lines += claims_table(report.claims)
    if report.markdown:
        lines += ["", report.markdown.strip(), ""]
    for figure in report.figures:
        lines += [f"![{figure}]({figure})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def claims_table(claims: list[Claim]) -> list[str]:
    """Markdown table of claims: verdict, claim, our value, the paper's, the figure."""
    if not claims:
        return ["No claims are evaluated by this experiment (figure only)."]
    passed = sum(c.passed for c in claims)
    lines = [
        f"**Claims: {passed} of {len(claims)} pass.**",
        "",
        "| verdict | claim | ours | paper | figure |",
        "|---|---|---|---|---|",
    ]
    for c in claims:
        verdict = "PASS" if c.passed else "FAIL"
        figure = f"[{c.figure}]({c.figure})" if c.figure else ""
        lines.append(f"| {verdict} | {c.claim} | {format_value(c.value)} | {c.paper} | {figure} |")
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


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
