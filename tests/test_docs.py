"""The documentation site builds strictly, offline, with an API entry for every public name;
the Python examples of its pages run and draw the figures the pages show.

The site is built once per session with ``mkdocs build --strict`` (a broken link, anchor or
API reference is an error); the examples of each page run in a fresh folder, in one namespace
per page, as ``docs/run_examples.py`` runs them to make the figures.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SUBPACKAGES = ("nn", "init", "train", "analysis", "reference", "problems", "estimator", "runner")

sys.path.insert(0, str(DOCS))
import run_examples  # noqa: E402  (docs/run_examples.py: the same runner that makes the figures)

sys.path.remove(str(DOCS))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocs", reason="the site needs the test extra: pip install -e '.[test]'")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(out)], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_the_site_builds_strictly(site):
    for page in ("index.html", "getting-started.html", "tutorials/pinn.html",
                 "reproductions/index.html", "api/train.html", "architecture.html",
                 "changelog.html"):
        assert (site / page).is_file(), page


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_the_api_reference_has_every_public_name(site, name):
    module = importlib.import_module(f"deepbasis.{name}")
    html = (site / "api" / f"{name}.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'id="(deepbasis\.[\w.]+)"', html))
    missing = [n for n in module.__all__ if not any(i.endswith(f".{n}") for i in ids)]
    assert not missing, f"docs/api/{name}.md shows no entry for {missing}: add them"


def test_the_top_level_names_are_in_the_api_index():
    import deepbasis

    text = (DOCS / "api" / "index.md").read_text(encoding="utf-8")
    missing = [n for n in deepbasis.__all__ if f"`db.{n}`" not in text and f"`db.{n}," not in text
               and f" `db.{n}`" not in text]
    assert not missing, f"docs/api/index.md does not list {missing}"


def test_the_site_needs_no_network(site):
    """No page loads a script, style sheet, font or image from another host."""
    external = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*(?:src|href)=["']?(?:https?:)?//""")
    fonts = re.compile(r"fonts\.(?:googleapis|gstatic)\.com")
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not external.search(text), f"{page.relative_to(site)} loads something from the web"
        assert not fonts.search(text), f"{page.relative_to(site)} uses web fonts"


PAGES = sorted(p for p in DOCS.rglob("*.md") if run_examples.python_blocks(p))


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_the_examples_of_a_page_run(page, tmp_path, capsys):
    if "results/cyr2020.initial_loss" in page.read_text(encoding="utf-8"):
        from deepbasis.runner.runner import run_experiment

        run_experiment("cyr2020.initial_loss", "quick", tmp_path / "results/cyr2020.initial_loss",
                       progress=False)
    drawn = {p.name for p in run_examples.run_page(page, tmp_path)}
    capsys.readouterr()
    shown = set(run_examples.shown_figures(page))
    local = {name for name in shown if (page.parent / name).is_file()}
    assert local <= drawn, f"{page.name} shows {sorted(local - drawn)} but does not draw them"


def test_every_tutorial_shows_a_figure():
    for page in sorted((DOCS / "tutorials").glob("*.md")):
        figures = run_examples.shown_figures(page)
        assert figures, f"{page.name} shows no figure"
        for name in figures:
            assert (page.parent / name).is_file(), f"{page.name}: {name} is missing"
