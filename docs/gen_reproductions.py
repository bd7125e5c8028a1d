"""Write the Reproductions pages of the site from stored experiment runs.

    python docs/gen_reproductions.py results/          # every experiment folder under results/
    python docs/gen_reproductions.py results/ --out docs/reproductions

For each paper (package of ``deepbasis.experiments``) one page, ``docs/reproductions/<paper>.md``,
with every experiment of that paper: the claims table (our number, the paper's, the verdict), the
experiment's tables and its figures (copied to ``docs/reproductions/<paper>/``), read from the
report files that ``deepbasis run`` stored in each output folder (``report.json`` and the PNGs
beside it). An experiment folder holds the report of the most thorough profile run there
(``paper`` > ``default`` > ``quick``); each page says which profile every experiment comes from,
and a ``quick`` run's claims are shown as *not judged*. Experiments with no stored run are
listed as such (a paper with none gets no page, only its row in the index). The pages are
regenerated, never edited by hand.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROFILE_ORDER = ("paper", "default", "quick")


def find_reports(roots: list[Path]) -> dict[str, tuple[Path, dict]]:
    """experiment id -> (its folder, its report.json), the most thorough profile per id (the
    ledger's choice, :func:`deepbasis.runner.ledger.best_reports`)."""
    from deepbasis.runner.ledger import best_reports

    found: dict[str, tuple[Path, dict]] = {}
    for experiment, report in best_reports(roots).items():
        path = report.folder / "report.json"
        if path.is_file():  # not an older run's claims.json alone: the page needs the report
            found[experiment] = (report.folder, json.loads(path.read_text(encoding="utf-8")))
    return found


def _cell(value: object) -> str:
    if isinstance(value, dict):
        value = ", ".join(f"{k}: {_cell(v)}" for k, v in value.items())
    elif isinstance(value, float):
        value = f"{value:.3g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def experiment_section(experiment_id: str, folder: Path, report: dict, figures: Path,
                       link: str) -> str:
    """The markdown of one experiment, its figures copied to ``figures`` (linked as ``link``)."""
    lines = [f"## {experiment_id} {{ #{anchor(experiment_id)} }}", "",
             f"**{report['title']}** — {report.get('paper', '')}", ""]
    if report.get("description"):
        lines += [report["description"], ""]
    profile = report.get("profile", "?")
    lines += [f"Profile `{profile}`, deepbasis {report.get('deepbasis_version', '?')}, "
              f"written {report.get('written_at', '?')[:10]}. "
              f"Rerun: `deepbasis run {experiment_id} --profile {profile}`.", ""]
    if not report.get("judged", True):
        lines += ["!!! note \"Claims not judged\"", f"    {report.get('note', '')}", ""]
    figures.mkdir(parents=True, exist_ok=True)
    names = list(report.get("figures", []))
    for name in names:
        if (folder / name).is_file():
            shutil.copyfile(folder / name, figures / name)
    if report["claims"]:
        lines += ["| verdict | claim | ours | paper | figure |", "|---|---|---|---|---|"]
        for claim in report["claims"]:
            fig = claim.get("figure")
            fig_cell = f"[{fig}]({link}/{fig})" if fig and fig in names else _cell(fig or "")
            lines.append(f"| {claim.get('verdict', '?')} | {_cell(claim['claim'])} | "
                         f"{_cell(claim.get('value', ''))} | {_cell(claim.get('paper', ''))} | "
                         f"{fig_cell} |")
        lines.append("")
    body = report.get("markdown", "").strip()
    if body:
        # The experiment's own tables and notes; its headings go below this section's.
        body = "\n".join("##" + line if line.startswith("#") else line
                         for line in body.splitlines())
        lines += [body, ""]
    for name in names:
        if (figures / name).is_file():
            lines += [f"![{experiment_id}: {name}]({link}/{name})", ""]
    return "\n".join(lines)


def anchor(experiment_id: str) -> str:
    return experiment_id.replace(".", "-")


def paper_title(paper: str) -> str:
    """The paper's citation: the first sentences of its package docstring, before the code notes."""
    module = importlib.import_module(f"deepbasis.experiments.{paper}")
    text = " ".join((module.__doc__ or paper).split("\n\n")[0].split())
    for code_note in (" One module per", " ``_common``", " Formulas and reference"):
        text = text.split(code_note)[0]
    return text


def write_pages(roots: list[Path], out: Path) -> list[Path]:
    """Write one page per paper and the index into ``out``; return the pages written."""
    from deepbasis.runner.registry import experiment_titles

    titles = experiment_titles()  # id -> title, every registered experiment
    reports = find_reports(roots)
    by_paper: dict[str, list[str]] = defaultdict(list)
    for experiment_id in sorted(titles):
        by_paper[experiment_id.split(".")[0]].append(experiment_id)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    index = ["# Reproductions", "",
             "Every claim-bearing figure and table of the papers deepbasis implements is an "
             "experiment (`deepbasis list`). These pages show the stored runs: for each "
             "experiment its claims (our number beside the paper's, with the verdict), its "
             "tables and its figures. They are generated, never edited: "
             "`python docs/gen_reproductions.py results/` after `deepbasis run` "
             "([tutorial](../tutorials/reproduce.md)).", ""]
    profiles = sorted({r.get("profile", "?") for _, r in reports.values()},
                      key=lambda p: PROFILE_ORDER.index(p) if p in PROFILE_ORDER else 9)
    if reports and profiles == ["quick"]:
        index += ["!!! warning \"Smoke runs only\"",
                  "    No `default` or `paper` runs are stored yet, so these pages show the "
                  "`quick` profile: seconds-long smoke runs that show each experiment runs end "
                  "to end and what it draws. Their numbers are far from the paper's settings and "
                  "their claims are **not judged**. Run `deepbasis run ID --profile default` "
                  "and regenerate to judge them.", ""]
    elif reports:
        index += [f"Profiles stored: {', '.join(f'`{p}`' for p in profiles)}.", ""]
    else:
        index += ["No stored runs were found: every experiment is listed as not run.", ""]
    index += ["| paper | experiments | stored | profiles |", "|---|---|---|---|"]
    for paper, ids in sorted(by_paper.items()):
        title = paper_title(paper)
        page = [f"# {paper}", "", title, "",
                "Generated by `python docs/gen_reproductions.py` from stored runs; do not edit.",
                ""]
        stored = [i for i in ids if i in reports]
        if not stored:  # no page for a paper with nothing stored: a row in the index says so
            index.append(f"| {paper} | {_cell(paper_title(paper))} | 0 of {len(ids)} | not run |")
            continue
        page += ["| experiment | what | profile | claims |", "|---|---|---|---|"]
        for experiment_id in ids:
            if experiment_id in reports:
                report = reports[experiment_id][1]
                verdicts = [c.get("verdict", "?") for c in report["claims"]]
                summary = (", ".join(f"{verdicts.count(v)} {v}" for v in dict.fromkeys(verdicts))
                           or "figure only")
                page.append(f"| [{experiment_id}](#{anchor(experiment_id)}) | "
                            f"{_cell(titles[experiment_id])} | {report.get('profile')} | "
                            f"{summary} |")
            else:
                page.append(f"| {experiment_id} | {_cell(titles[experiment_id])} | not run | |")
        page.append("")
        figures = out / paper
        if figures.exists():
            shutil.rmtree(figures)
        for experiment_id in stored:
            folder, report = reports[experiment_id]
            page += [experiment_section(experiment_id, folder, report, figures, paper), ""]
        path = out / f"{paper}.md"
        path.write_text("\n".join(page).rstrip() + "\n", encoding="utf-8")
        written.append(path)
        used = sorted({reports[i][1].get("profile", "?") for i in stored})
        index.append(f"| [{paper}]({paper}.md) | {_cell(title)} | {len(stored)} of {len(ids)} | "
                     f"{', '.join(used) or '—'} |")
    (out / "index.md").write_text("\n".join(index) + "\n", encoding="utf-8")
    return [out / "index.md", *written]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path,
                        help="experiment output folders, or folders of them (results/)")
    parser.add_argument("--out", type=Path, default=HERE / "reproductions")
    args = parser.parse_args(argv)
    for page in write_pages(args.results, args.out):
        print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
