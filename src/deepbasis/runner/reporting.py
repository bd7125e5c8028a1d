"""What results folders hold: ``deepbasis status`` and the multi-experiment ``deepbasis report``.

A results folder holds one subfolder per experiment (``results/cyr2020.fig5/``), each written by
``deepbasis run``: the result store ``results.sqlite``, ``report.json`` / ``report.md`` /
``claims.json`` and PNG figures. This module reads such folders, never runs anything, and
builds:

- a **status** per folder: per experiment and profile, cells and seeds stored versus planned,
  what is missing, and the claims of the last report (:func:`folder_status`,
  :func:`format_status`);
- one **document** over every experiment found: a summary table of all claims at the top, then
  per experiment its claims (pass / fail with our number and the paper's), its tables (ours
  beside the paper's) and its figures, as markdown (:func:`combined_markdown`) or as a single
  self-contained HTML file with the figures embedded as base64 data URIs and inline CSS, which
  opens in a browser without a server (:func:`combined_html`).

The HTML is generated from the structured report (``report.json``); the markdown bodies
experiments write are converted by markdown-it-py (CommonMark and GitHub tables).

Examples:
    >>> from deepbasis.runner.reporting import write_combined_report
    >>> write_combined_report(["results"], html=True)  # doctest: +SKIP
    PosixPath('results/index.html')
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .._files import atomic_write, file_kind, is_plain_name, same_file
from .spec import PROFILES, verdict
from .store import STORE_FILENAME, ResultStore, StoreError, recovery_hint, utc_now

# -- finding and loading folders ---------------------------------------------------------------

_MARKERS = ("report.json", "claims.json", STORE_FILENAME)


def is_experiment_folder(folder: Path) -> bool:
    """Whether ``folder`` was written by ``deepbasis run`` (has a store or a report)."""
    return any((folder / name).is_file() for name in _MARKERS)


def experiment_folders(dirs: Iterable[str | Path]) -> list[Path]:
    """Experiment folders among ``dirs``: each dir itself, or else its subfolders that are.

    Raises:
        FileNotFoundError: a dir does not exist.
        ValueError: a dir holds no experiment results at all.
    """
    found: list[Path] = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise FileNotFoundError(f"no such folder: {d}")
        if is_experiment_folder(d):
            found.append(d)
            continue
        subfolders = sorted(p for p in d.iterdir() if p.is_dir() and is_experiment_folder(p))
        if not subfolders:
            raise ValueError(
                f"{d} holds no experiment results (no {', '.join(_MARKERS)} in it or its "
                "subfolders); run `deepbasis run ID --out DIR` first"
            )
        found += subfolders
    return found


@dataclass
class ExperimentReport:
    """The report of one experiment folder, as ``deepbasis run`` wrote it."""

    folder: Path
    experiment: str
    title: str = ""
    paper: str = ""
    profile: str | None = None
    description: str = ""
    claims: list[dict[str, Any]] = field(default_factory=list)
    markdown: str = ""
    figures: list[str] = field(default_factory=list)
    judged: bool = True  # False for a smoke profile (quick): its claims are not judged
    note: str = ""

    @property
    def passed(self) -> int:
        """Claims that pass (0 when the claims are not judged)."""
        return sum(bool(c.get("passed")) for c in self.claims) if self.judged else 0

    @property
    def score(self) -> str:
        """'3 of 4 claims pass', or '4 claims not judged (profile quick)'."""
        if not self.judged:
            return f"{len(self.claims)} claims not judged (profile {self.profile})"
        return f"{self.passed} of {len(self.claims)} claims pass"

    def verdict(self, claim: Mapping[str, Any]) -> str:
        return verdict(bool(claim.get("passed")), self.judged and claim.get("judged", True))


class ReportFileError(ValueError):
    """A ``report.json`` / ``claims.json`` that cannot be read; the message names the file."""


def load_report(folder: str | Path) -> ExperimentReport | None:
    """The report in ``folder`` (``report.json``, or an older ``claims.json``), or ``None``.

    Raises:
        ReportFileError: the file is not the JSON ``deepbasis run`` writes (the message names
            it; rerunning the same ``deepbasis run`` rewrites it from the stored records).
    """
    folder = Path(folder)
    path = folder / "report.json"
    try:
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            for key in ("experiment", "title", "paper", "description", "markdown", "note"):
                if key in data and not isinstance(data[key], str):
                    raise TypeError(f"{key!r} must be a string, got {data[key]!r:.60}")
            profile = data.get("profile")
            if profile is not None and not is_plain_name(profile):
                raise TypeError(f"'profile' must be a profile name, got {profile!r:.60}")
            # Reports written before smoke profiles existed: a quick run was never a judgement.
            judged = bool(data.get("judged", profile != "quick"))
            report = ExperimentReport(
                folder, data["experiment"], data.get("title", ""), data.get("paper", ""),
                profile, data.get("description", ""), list(data.get("claims", [])),
                data.get("markdown", ""), list(data.get("figures", [])), judged,
                data.get("note", ""))
        elif (path := folder / "claims.json").is_file():
            claims = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(claims, list) or not all(isinstance(c, dict) for c in claims):
                raise TypeError("claims must be a list of JSON objects")
            figures = sorted({str(c["figure"]) for c in claims if c.get("figure")})
            report = ExperimentReport(folder, folder.name, claims=list(claims), figures=figures)
        else:
            return None
        if not all(isinstance(c, dict) for c in report.claims):
            raise TypeError("claims must be JSON objects")
        if not all(isinstance(f, str) for f in report.figures):
            raise TypeError("figures must be a list of file names")
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
        raise ReportFileError(
            f"{path} is damaged ({type(error).__name__}: {error}); rerun the same "
            "`deepbasis run` to write it again from the stored records") from None
    return report


def profile_reports(folder: str | Path) -> list[ExperimentReport]:
    """Every profile's report in an experiment folder: the one in ``folder`` (the most thorough
    profile run there), then those in ``folder/<profile>/`` (see
    :func:`deepbasis.runner.runner.report_folder`)."""
    folder = Path(folder)
    found = [load_report(folder)]
    found += [load_report(folder / p) for p in reversed(PROFILES) if (folder / p).is_dir()]
    return [r for r in found if r is not None]


# -- status --------------------------------------------------------------------------------------


@dataclass
class ProfileStatus:
    """Stored versus planned records of one experiment and profile (its latest run's plan)."""

    experiment: str
    profile: str
    cells_done: int
    cells_total: int
    seeds_done: int
    seeds_total: int
    missing: list[tuple[str, tuple[int, ...]]]
    started_at: str
    finished_at: str | None

    @property
    def complete(self) -> bool:
        return self.seeds_done == self.seeds_total


@dataclass
class FolderStatus:
    """What one experiment folder holds."""

    folder: Path
    records: int = 0
    profiles: list[ProfileStatus] = field(default_factory=list)
    report: ExperimentReport | None = None
    error: str | None = None
    other_reports: list[ExperimentReport] = field(default_factory=list)  # in folder/<profile>/


def folder_status(folder: str | Path) -> FolderStatus:
    """Read one experiment folder's store and report (read-only)."""
    folder = Path(folder)
    status = FolderStatus(folder)
    errors = []
    try:
        reports = profile_reports(folder)
        status.report = load_report(folder)
        status.other_reports = [r for r in reports if r.folder != folder]
    except ReportFileError as error:
        errors.append(str(error))
    if not (folder / STORE_FILENAME).is_file():
        status.error = "; ".join(errors) or None
        return status
    try:
        with ResultStore.in_folder(folder, readonly=True) as store:
            status.records = store.count()
            latest = {}
            for run in store.runs():  # oldest first: the last one per (experiment, profile) wins
                latest[(run.experiment, run.profile)] = run
            for (experiment, profile), run in sorted(latest.items()):
                done = store.done_seeds(experiment)
                missing = []
                cells_done = seeds_done = seeds_total = 0
                for key, seeds in run.plan:
                    have = done.get(key, set())
                    lacking = tuple(s for s in seeds if s not in have)
                    seeds_total += len(seeds)
                    seeds_done += len(seeds) - len(lacking)
                    if lacking:
                        missing.append((key, lacking))
                    else:
                        cells_done += 1
                status.profiles.append(ProfileStatus(
                    experiment, profile, cells_done, len(run.plan), seeds_done, seeds_total,
                    missing, run.started_at, run.finished_at))
    except StoreError as error:
        errors.append(str(error))
    except (sqlite3.Error, ValueError, TypeError, KeyError) as error:  # anything else: say so
        errors.append(f"the result store {folder / STORE_FILENAME} is damaged ({error}). "
                      + recovery_hint(folder / STORE_FILENAME))
    status.error = "; ".join(errors) or None
    return status


def format_status(statuses: Sequence[FolderStatus], *, max_missing: int = 5,
                  not_run: Sequence[str] = ()) -> str:
    """Human-readable status of several folders (what ``deepbasis status`` prints)."""
    lines: list[str] = []
    for status in statuses:
        unreadable = status.error and not status.records and not status.profiles
        counted = "records unreadable" if unreadable else f"{status.records} records stored"
        lines.append(f"{status.folder}  ({counted})")
        if status.error:
            lines.append(f"  error: {status.error}")
        if not status.profiles and not status.error:
            lines.append("  no run plan in the store" if status.records
                         else "  no result store (report files only)")
        for p in status.profiles:
            state = "complete" if p.complete else (
                "unfinished (interrupted, failed or still running)" if p.finished_at is None
                else "incomplete")
            lines.append(f"  {p.experiment} [{p.profile}]: cells {p.cells_done}/{p.cells_total}, "
                         f"seeds {p.seeds_done}/{p.seeds_total}: {state} "
                         f"(last run started {p.started_at})")
            for key, seeds in p.missing[:max_missing]:
                lines.append(f"    missing {key} seeds {list(seeds)}")
            if len(p.missing) > max_missing:
                lines.append(f"    ... and {len(p.missing) - max_missing} more cell(s)")
        report = status.report
        for shown in [report, *status.other_reports] if report is not None else \
                status.other_reports:
            profile = f", profile {shown.profile}" if shown.profile else ""
            where = "" if shown.folder == status.folder else f" (in {shown.folder})"
            lines.append(f"  report{profile}{where}: {shown.score}")
            for c in shown.claims:
                lines.append(f"    [{shown.verdict(c)}] {c.get('claim', '')}  "
                             f"(ours: {_format_value(c.get('value'))})")
        if report is None and not status.other_reports and status.profiles:
            lines.append("  no report yet (it is written when a run completes)")
    if not_run:
        lines.append(f"not run here: {', '.join(not_run)}")
    return "\n".join(lines)


def _format_value(value: Any) -> str:
    from .runner import format_value

    return format_value(value)


# -- the combined markdown document ------------------------------------------------------------


def _summary_rows(reports: Sequence[ExperimentReport]) -> list[tuple[ExperimentReport, dict]]:
    return [(r, c) for r in reports for c in r.claims]


def combined_markdown(reports: Sequence[ExperimentReport], out: Path) -> str:
    """One markdown document over ``reports``; figure links are relative to ``out``'s folder."""
    lines = [
        "# deepbasis reproduction report",
        "",
        f"{len(reports)} experiment(s); **{_score(reports)}.** Generated {utc_now()}.",
        "",
        "| experiment | profile | verdict | claim | ours | paper |",
        "|---|---|---|---|---|---|",
    ]
    for r, c in _summary_rows(reports):
        lines.append(f"| [{r.experiment}](#{_anchor(r.experiment)}) | {r.profile or ''} | "
                     f"{r.verdict(c)} | {_cell(c.get('claim'))} | "
                     f"{_cell(_format_value(c.get('value')))} | {_cell(c.get('paper'))} |")
    for r in reports:
        rel = Path(os.path.relpath(r.folder, out.parent))
        lines += ["", f'<a id="{_anchor(r.experiment)}"></a>', "",
                  f"## {r.experiment}: {r.title}".rstrip(": "), ""]
        meta = [f"Paper: {r.paper}." if r.paper else "", f"Profile: `{r.profile}`."
                if r.profile else "", f"Folder: `{r.folder}`."]
        lines += [" ".join(m for m in meta if m), ""]
        if r.description:
            lines += [r.description, ""]
        if r.note:
            lines += [r.note, ""]
        if r.claims:
            lines += [f"**Claims: {r.score}.**", "",
                      "| verdict | claim | ours | paper | figure |", "|---|---|---|---|---|"]
            for c in r.claims:
                figure = f"[{c['figure']}]({(rel / c['figure']).as_posix()})" \
                    if c.get("figure") else ""
                lines.append(f"| {r.verdict(c)} | "
                             f"{_cell(c.get('claim'))} | {_cell(_format_value(c.get('value')))} "
                             f"| {_cell(c.get('paper'))} | {figure} |")
        else:
            lines.append("No claims are evaluated by this experiment (figure only).")
        if r.markdown:
            lines += ["", _relink(_demote_headings(r.markdown.strip()), rel)]
        for figure in r.figures:
            lines += ["", f"![{figure}]({(rel / figure).as_posix()})"]
    return "\n".join(lines) + "\n"


def _score(reports: Sequence[ExperimentReport]) -> str:
    """'5 of 8 claims pass' over the judged reports, plus how many were not judged."""
    judged = [r for r in reports if r.judged]
    total = sum(len(r.claims) for r in judged)
    text = f"{sum(r.passed for r in judged)} of {total} claims pass"
    unjudged = sum(len(r.claims) for r in reports if not r.judged)
    if unjudged:
        text += f"; {unjudged} not judged (smoke runs, profile quick)"
    return text


def _relink(markdown: str, rel: Path) -> str:
    """Make the relative links of an experiment's markdown work from another folder."""
    def fix(m: re.Match) -> str:
        target = m.group(2)
        if _is_external(target) or target.startswith("#"):
            return m.group(0)
        return f"{m.group(1)}]({(rel / target).as_posix()})"

    return re.sub(r"(!?\[[^\]]*)\]\(([^)\s]+)\)", fix, markdown)


def _cell(value: Any) -> str:
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _demote_headings(markdown: str) -> str:
    """Push an experiment's own headings below its section heading (# → ###)."""
    return re.sub(r"^(#{1,4}) ", lambda m: "#" * (len(m.group(1)) + 2) + " ", markdown,
                  flags=re.MULTILINE)


# -- the combined HTML document ----------------------------------------------------------------

_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1f24;
       max-width: 1100px; margin: 2em auto; padding: 0 1.5em; }
h1 { font-size: 1.8em; border-bottom: 2px solid #d0d7de; padding-bottom: .3em; }
h2 { font-size: 1.4em; margin-top: 2.2em; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #d0d7de; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f3f5f7; }
tr.pass td.verdict { background: #dafbe1; color: #116329; font-weight: 600; }
tr.fail td.verdict { background: #ffebe9; color: #a40e26; font-weight: 600; }
tr.not-judged td.verdict { background: #f3f5f7; color: #57606a; font-style: italic; }
.score { font-size: 1.1em; font-weight: 600; }
.meta { color: #57606a; }
code { background: #f3f5f7; padding: .1em .3em; border-radius: 4px; font-size: .9em; }
pre { background: #f3f5f7; padding: .8em; overflow-x: auto; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: .9em; }
.missing { color: #a40e26; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value if value is not None else ""), quote=True)


def _figure_id(report: ExperimentReport, figure: str) -> str:
    return f"fig-{_anchor(report.experiment)}-{_anchor(figure)}"


def _inside(folder: Path, name: str) -> Path | None:
    """``folder / name`` if it resolves to a file inside ``folder`` (links followed), else
    None: a report names its figures relative to its folder, and a self-contained page must
    not embed any other local file (an absolute path, ``../``, a link pointing out)."""
    try:
        root = folder.resolve()
        path = (folder / name).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    return path if path.is_relative_to(root) and path != root else None


def _data_uri(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    kind = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
            ".svg": "image/svg+xml", ".gif": "image/gif"}.get(path.suffix.lower())
    if kind is None:
        return None
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _verdict_row(cells: Sequence[str], verdict: str) -> str:
    tds = "".join(f"<td>{c}</td>" for c in cells)
    css = verdict.lower().replace(" ", "-")
    return f'<tr class="{css}"><td class="verdict">{_e(verdict)}</td>{tds}</tr>'


def combined_html(reports: Sequence[ExperimentReport]) -> str:
    """One self-contained HTML page over ``reports``: figures embedded, CSS inline, no links out."""
    from .. import __version__

    body = [
        "<h1>deepbasis reproduction report</h1>",
        f'<p class="score">{len(reports)} experiment(s); {_e(_score(reports))}.</p>',
        f'<p class="meta">deepbasis {_e(__version__)}, generated {_e(utc_now())}.</p>',
        "<table><thead><tr><th>experiment</th><th>title</th><th>profile</th><th>claims pass"
        "</th></tr></thead><tbody>",
        *(f'<tr><td><a href="#{_anchor(r.experiment)}">{_e(r.experiment)}</a></td>'
          f"<td>{_e(r.title)}</td><td>{_e(r.profile)}</td>"
          f"<td>{_e(r.score.removesuffix(' claims pass'))}</td></tr>" for r in reports),
        "</tbody></table>",
        "<h2 id=\"summary\">All claims</h2>",
        "<table><thead><tr><th>verdict</th><th>experiment</th><th>profile</th><th>claim</th>"
        "<th>ours</th><th>paper</th></tr></thead><tbody>",
    ]
    for r, c in _summary_rows(reports):
        body.append(_verdict_row([
            f'<a href="#{_anchor(r.experiment)}">{_e(r.experiment)}</a>', _e(r.profile),
            _e(c.get("claim")), _e(_format_value(c.get("value"))), _e(c.get("paper"))],
            r.verdict(c)))
    body.append("</tbody></table>")
    for r in reports:
        body.append(_experiment_html(r))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<title>deepbasis reproduction report</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def _experiment_html(r: ExperimentReport) -> str:
    parts = [f'<h2 id="{_anchor(r.experiment)}">{_e(r.experiment)}'
             + (f": {_e(r.title)}" if r.title else "") + "</h2>"]
    meta = []
    if r.paper:
        meta.append(f"Paper: {_e(r.paper)}.")
    if r.profile:
        meta.append(f"Profile: <code>{_e(r.profile)}</code>.")
    meta.append(f"Folder: <code>{_e(r.folder)}</code>.")
    parts.append(f'<p class="meta">{" ".join(meta)}</p>')
    if r.description:
        parts.append(markdown_to_html(r.description))
    if r.note:
        parts.append(markdown_to_html(r.note))
    if r.claims:
        parts.append(f'<p class="score">Claims: {_e(r.score)}.</p>')
        parts.append("<table><thead><tr><th>verdict</th><th>claim</th><th>ours</th>"
                     "<th>paper</th><th>figure</th></tr></thead><tbody>")
        for c in r.claims:
            figure = c.get("figure")
            link = (f'<a href="#{_figure_id(r, figure)}">{_e(figure)}</a>' if figure else "")
            parts.append(_verdict_row([_e(c.get("claim")), _e(_format_value(c.get("value"))),
                                       _e(c.get("paper")), link], r.verdict(c)))
        parts.append("</tbody></table>")
    else:
        parts.append("<p>No claims are evaluated by this experiment (figure only).</p>")
    if r.markdown:
        parts.append(markdown_to_html(
            _demote_headings(r.markdown.strip()), images=lambda name: _image_html(r, name),
            links=lambda name: f"#{_figure_id(r, name)}" if name in r.figures else None))
    for figure in r.figures:
        parts.append(_image_html(r, figure))
    return "\n".join(parts)


def _image_html(r: ExperimentReport, name: str, alt: str | None = None) -> str:
    inside = _inside(r.folder, name)
    if inside is None:
        return (f'<p class="missing">figure {_e(name)} is not a file inside {_e(r.folder)}; '
                "only the experiment's own files are embedded</p>")
    uri = _data_uri(inside)
    if uri is None:
        return f'<p class="missing">figure {_e(name)} is missing from {_e(r.folder)}</p>'
    return (f'<figure id="{_figure_id(r, name)}"><img src="{uri}" alt="{_e(alt or name)}">'
            f"<figcaption>{_e(name)}</figcaption></figure>")


# -- markdown → HTML ----------------------------------------------------------------------------


def markdown_to_html(text: str, *, images: Any = None, links: Any = None) -> str:
    """Convert the markdown experiments write into HTML (CommonMark plus GitHub tables, by
    markdown-it-py).

    Raw HTML in the markdown is escaped, never passed through. Links and images never point
    outside the document: an image of a local figure is embedded (via ``images(name)``), an
    external link is shown as text followed by its address, a link to a local file becomes an
    in-page anchor (via ``links(name)``) or plain text.

    Args:
        text: the markdown.
        images: callable ``name -> html`` for ``![alt](name)`` (default: alt text only).
        links: callable ``name -> "#anchor" | None`` for ``[text](name)`` to a local file
            (default: the text only).
    """
    return _markdown_parser().render(text, {"images": images, "links": links, "closers": []})


@cache
def _markdown_parser():
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    parser.add_render_rule("image", _render_image)
    parser.add_render_rule("link_open", _render_link_open)
    parser.add_render_rule("link_close", _render_link_close)
    return parser


def _render_image(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    target = token.attrGet("src") or ""
    alt = self.renderInlineAsText(token.children or [], options, env)
    if env["images"] is not None and not _is_external(target):
        return env["images"](unquote(target))
    return _e(alt or target)


def _render_link_open(self, tokens, idx, options, env) -> str:
    # What link_close writes is decided here and kept on a stack: links nest with their text.
    target = tokens[idx].attrGet("href") or ""
    if target.startswith("#"):
        env["closers"].append("</a>")
        return f'<a href="{_e(target)}">'
    if _is_external(target):  # no links out of the document: show where it points instead
        env["closers"].append(f" (<code>{_e(target)}</code>)")
        return ""
    # markdown-it percent-encodes link targets; figure names are looked up as written
    anchor = env["links"](unquote(target)) if env["links"] is not None else None
    env["closers"].append("</a>" if anchor else "")
    return f'<a href="{_e(anchor)}">' if anchor else ""


def _render_link_close(self, tokens, idx, options, env) -> str:
    return env["closers"].pop()


def _is_external(target: str) -> bool:
    return bool(re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", target)) or target.startswith("//")


# -- writing ------------------------------------------------------------------------------------


_RUN_FILES = ("report.md", "report.json", "claims.json", "records.jsonl", STORE_FILENAME)
_REPORT_TITLES = ("# deepbasis reproduction report",
                  "<title>deepbasis reproduction report</title>")


def check_report_target(path: Path, folders: Sequence[Path], *, force: bool = False) -> None:
    """Refuse to write a combined report over a file it would destroy: a result store or a
    model (never), a file ``deepbasis run`` wrote in an experiment folder (never), or any
    other existing file that is not a report written by ``deepbasis report`` (unless
    ``force``).

    Raises:
        ValueError: the message names the file, what it is, and the way out.
    """
    if path.is_dir():
        raise ValueError(f"--out {str(path)!r} is a folder; give a file name such as "
                         f"{str(path / 'index.md')!r}")
    if not path.exists():
        return
    kind = file_kind(path)
    for folder in folders:
        for name in _RUN_FILES:
            if same_file(path, folder / name):
                kind = kind or f"the {name} that `deepbasis run` wrote in {folder}"
    if kind is not None:
        raise ValueError(f"refusing to write the report over {str(path)!r}: it is {kind}; "
                         "choose another --out")
    try:
        with path.open("rb") as handle:
            head = handle.read(512).decode("utf-8", errors="replace")
    except OSError:
        head = ""
    ours = head.startswith(_REPORT_TITLES[0]) or (head.startswith("<!DOCTYPE html>")
                                                  and _REPORT_TITLES[1] in head)
    if not force and not ours:
        raise ValueError(f"refusing to overwrite {str(path)!r}: it is not a report written by "
                         "`deepbasis report`; choose another --out, or pass --force to "
                         "replace it")


def write_combined_report(dirs: Sequence[str | Path], out: str | Path | None = None, *,
                          html: bool = False, force: bool = False) -> Path:
    """Write one report over every experiment in ``dirs``; returns the file written.

    Args:
        dirs: experiment folders, or folders holding one subfolder per experiment.
        out: the file to write; defaults to ``index.md`` (or ``index.html``) in ``dirs[0]``.
        html: write a self-contained HTML page instead of markdown.
        force: overwrite an existing ``out`` that is not an earlier report (a store, a model
            or a file ``deepbasis run`` wrote is refused even so: :func:`check_report_target`).

    Raises:
        FileNotFoundError, ValueError: a folder is missing or holds no results, or ``out``
            is a file the report must not replace.
    """
    folders = experiment_folders(dirs)
    path = Path(out) if out is not None else Path(dirs[0]) / ("index.html" if html else "index.md")
    check_report_target(path, folders, force=force)
    reports = []
    for folder in folders:
        report = load_report(folder)
        if report is None:
            # A store without a report: an interrupted first run. Show it, claimless.
            report = ExperimentReport(folder, folder.name,
                                      description="No report yet: the run has not completed "
                                                  "(see `deepbasis status`).")
        reports.append(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = combined_html(reports) if html else combined_markdown(reports, path)
    with atomic_write(path) as tmp:  # removed again if the write or the rename fails
        tmp.write_text(text, encoding="utf-8")
    return path


def unrun_experiments(dirs: Sequence[str | Path],
                      registry: Mapping[str, Any] | None = None) -> list[str]:
    """Registered experiments with no folder under any of the results roots in ``dirs``."""
    roots = [Path(d) for d in dirs if Path(d).is_dir() and not is_experiment_folder(Path(d))]
    if not roots:
        return []
    if registry is None:
        from .registry import registry as _registry

        registry = _registry()
    present = {p.name for root in roots for p in root.iterdir() if p.is_dir()}
    return [eid for eid in registry if eid not in present]


__all__ = [
    "ExperimentReport",
    "FolderStatus",
    "ProfileStatus",
    "combined_html",
    "combined_markdown",
    "experiment_folders",
    "folder_status",
    "format_status",
    "load_report",
    "markdown_to_html",
    "unrun_experiments",
    "write_combined_report",
]
