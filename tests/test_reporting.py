"""Tests of status and the multi-experiment report (experiments/reporting.py), HTML included."""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import numpy as np
import pytest
from matplotlib import image as mpimg

import runner_fakes
from deepbasis.experiments import Report, registry
from deepbasis.runner.reporting import (
    experiment_folders,
    folder_status,
    format_status,
    load_report,
    markdown_to_html,
    unrun_experiments,
    write_combined_report,
)
from deepbasis.runner.runner import run_experiment
from deepbasis.runner.store import STORE_FILENAME, ResultStore, Stamp

EXTRA_MARKDOWN = """
## Details

See the [paper](https://arxiv.org/abs/2001.00000) and [the figure](loss_vs_width.png).

- first *point* with `code <x>`
- second **point**

```
raw <block>
```

![external](http://example.com/x.png)
"""


def chatty_report(records, params, out):
    report = runner_fakes.report(records, params, out)
    return Report(report.claims, report.markdown + "\n" + EXTRA_MARKDOWN, report.figures)


@pytest.fixture
def results(tmp_path, monkeypatch):
    """results/ with two complete experiments and one interrupted before its report."""
    runner_fakes.register(monkeypatch)
    monkeypatch.setitem(registry(), "fake.second", dataclasses.replace(
        runner_fakes.QUICK, id="fake.second", title="The second fake <b>", report=chatty_report))
    root = tmp_path / "results"
    run_experiment("fake.quick", "quick", root / "fake.quick", progress=False)
    run_experiment("fake.second", "paper", root / "fake.second", progress=False)
    with ResultStore.in_folder(root / "fake.partial") as store:
        store.start_run("fake.partial", "quick", {}, [('{"w":1}', (0, 1)), ('{"w":2}', (0,))],
                        "local")
        store.put_cell("fake.partial", {"w": 1}, [{"seed": 0}], Stamp())
    (root / "notes").mkdir()  # not an experiment folder: ignored
    return root


def test_experiment_folders(results, tmp_path):
    names = [p.name for p in experiment_folders([results])]
    assert names == ["fake.partial", "fake.quick", "fake.second"]
    assert experiment_folders([results / "fake.quick"]) == [results / "fake.quick"]
    with pytest.raises(FileNotFoundError, match="no such folder"):
        experiment_folders([tmp_path / "nowhere"])
    with pytest.raises(ValueError, match="holds no experiment results.*deepbasis run"):
        experiment_folders([results / "notes"])


def test_status_counts_done_and_missing(results):
    partial = folder_status(results / "fake.partial")
    (p,) = partial.profiles
    assert (p.cells_done, p.cells_total, p.seeds_done, p.seeds_total) == (0, 2, 1, 3)
    assert p.missing == [('{"w":1}', (1,)), ('{"w":2}', (0,))]
    assert not p.complete and p.finished_at is None and partial.report is None
    done = folder_status(results / "fake.quick")
    (q,) = done.profiles
    assert (q.cells_done, q.cells_total, q.seeds_done, q.seeds_total) == (4, 4, 12, 12)
    assert q.complete and q.finished_at is not None
    assert (done.report.passed, len(done.report.claims)) == (1, 2)
    text = format_status([partial, done], max_missing=1, not_run=["fake.badseeds"])
    assert 'fake.partial [quick]: cells 0/2, seeds 1/3: unfinished' in text
    assert 'missing {"w":1} seeds [1]' in text and "... and 1 more cell(s)" in text
    assert "fake.quick [quick]: cells 4/4, seeds 12/12: complete" in text
    assert "report, profile quick: 1 of 2 claims pass" in text
    assert "[FAIL] the mean loss is below 0 (fails on purpose)" in text
    assert "not run here: fake.badseeds" in text


def test_status_of_an_unreadable_store_is_an_error_line(tmp_path):
    (tmp_path / STORE_FILENAME).write_bytes(b"garbage" * 200)
    status = folder_status(tmp_path)
    assert "not a deepbasis result store" in status.error
    assert "error: " in format_status([status])


def test_unrun_experiments(results):
    fake_registry = {"fake.quick": None, "fake.second": None, "fake.third": None}
    assert unrun_experiments([results], fake_registry) == ["fake.third"]
    assert unrun_experiments([results / "fake.quick"], fake_registry) == []


def test_combined_markdown_has_every_claim_and_working_figure_links(results, tmp_path):
    out = tmp_path / "docs" / "all.md"
    path = write_combined_report([results], out)
    text = path.read_text()
    reports = [load_report(f) for f in experiment_folders([results])]
    for report in filter(None, reports):
        for claim in report.claims:
            assert claim["claim"] in text
    assert "**2 of 4 claims pass.**" in text  # fake.quick and fake.second: 1 of 2 each
    assert "#### Details" in text  # the experiment's own "##" is pushed below its section
    links = re.findall(r"\]\(([^)#:]+)\)", text)  # relative links, to figures
    assert len(links) == 7  # 2 claims x 2 experiments, 2 embedded figures, 1 body link
    assert all((out.parent / link).is_file() for link in links), links
    assert "](https://arxiv.org/abs/2001.00000)" in text  # external links left alone
    assert "No report yet" in text  # fake.partial, interrupted before its first report


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text, self.styles = [], [], []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        (self.styles if self._in_style else self.text).append(data)


def test_html_is_self_contained_and_complete(results, tmp_path):
    path = write_combined_report([results], tmp_path / "report.html", html=True)
    parser = _Collector()
    parser.feed(path.read_text(encoding="utf-8"))
    text = " ".join(parser.text)
    # Every claim of every experiment, with its verdict and our number.
    for folder in ("fake.quick", "fake.second"):
        for claim in load_report(results / folder).claims:
            assert claim["claim"] in text
    assert text.count("PASS") >= 2 and text.count("FAIL") >= 2
    assert "2 of 4 claims pass" in text
    # Every figure embedded, byte for byte.
    images = [attrs["src"] for tag, attrs in parser.tags if tag == "img"]
    png = (results / "fake.quick" / "loss_vs_width.png").read_bytes()
    embedded = [base64.b64decode(src.split(",", 1)[1]) for src in images]
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert embedded.count(png) == 1
    assert (results / "fake.second" / "loss_vs_width.png").read_bytes() in embedded
    # Nothing outside the file is referenced: no scripts, stylesheets or external addresses.
    assert not {tag for tag, _ in parser.tags} & {"script", "link", "iframe", "object",
                                                  "embed", "base"}
    for tag, attrs in parser.tags:
        for name, value in attrs.items():
            if name in ("src", "href", "srcset", "action", "poster", "data"):
                assert value.startswith(("#", "data:")), f"<{tag} {name}={value[:60]}>"
    assert "url(" not in " ".join(parser.styles) and "@import" not in " ".join(parser.styles)
    # Every in-page link has its target.
    ids = {attrs["id"] for _, attrs in parser.tags if "id" in attrs}
    hrefs = {attrs["href"][1:] for _, attrs in parser.tags if "href" in attrs}
    assert hrefs <= ids
    # The markdown body: headings, lists, code, an external link shown but not linked.
    assert "The second fake <b>" in text  # escaped, shown as text
    assert ("h4", {}) in parser.tags and ("ul", {}) in parser.tags
    assert "raw <block>" in text and "https://arxiv.org/abs/2001.00000" in text
    figure_links = [a["href"] for tag, a in parser.tags if tag == "a" and "loss" in a["href"]]
    assert len(figure_links) == 5  # 4 claims, 1 body link "[the figure](loss_vs_width.png)"


def _tags_only(html_text: str) -> str:
    """HTML without the whitespace between tags and without table alignment styles."""
    html_text = re.sub(r' style="text-align:\w+"', "", html_text)
    return re.sub(r">\s+<", "><", html_text).replace("\n", " ")


def test_markdown_to_html_subset():
    html_text = _tags_only(markdown_to_html(
        "# Title\n\nSome *em* and **strong** text\nwrapped, `a<b>`.\n\n"
        "| a | b \\| c |\n|---|:-:|\n| 1 | <x> |\n\n1. one\n2. two\n"
    ))
    assert "<h1>Title</h1>" in html_text
    assert "<p>Some <em>em</em> and <strong>strong</strong> text wrapped, <code>a&lt;b&gt;</code>"\
        ".</p>" in html_text
    assert ("<table><thead><tr><th>a</th><th>b | c</th></tr></thead><tbody><tr><td>1</td>"
            "<td>&lt;x&gt;</td></tr></tbody></table>") in html_text
    assert "<ol><li>one</li><li>two</li></ol>" in html_text
    assert "<script>" not in markdown_to_html("<script>alert(1)</script>")


def test_markdown_links_stay_inside_the_document():
    html_text = markdown_to_html(
        "[paper](https://arxiv.org/abs/1) [fig](a.png) [top](#top) [gone](b.png) "
        "![plot](a.png) ![remote](https://example.org/x.png) [js](javascript:alert(1))",
        images=lambda name: f"<img src=\"data:{name}\">",
        links=lambda name: "#fig-a" if name == "a.png" else None)
    assert "paper (<code>https://arxiv.org/abs/1</code>)" in html_text
    assert '<a href="#fig-a">fig</a>' in html_text and '<a href="#top">top</a>' in html_text
    assert "gone" in html_text and "b.png" not in html_text
    assert '<img src="data:a.png">' in html_text and "remote" in html_text
    assert "example.org" not in html_text  # an external image: its alt text only
    assert 'href="javascript' not in html_text and 'href="http' not in html_text


def test_report_needs_results(tmp_path):
    with pytest.raises(ValueError, match="holds no experiment results"):
        write_combined_report([tmp_path])


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                                             "(Debian: apt-get install chromium)")
def test_html_renders_in_headless_chromium(results, tmp_path):
    path = write_combined_report([results], tmp_path / "report.html", html=True)
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={shot}",
             "--window-size=1200,1600", path.resolve().as_uri()],
            check=True, capture_output=True, timeout=120, env=dict(os.environ, HOME=profile))
    pixels = mpimg.imread(shot)[..., :3]  # (1600, 1200, 3) in [0, 1]
    assert pixels.shape[:2] == (1600, 1200)
    dark = (pixels.max(axis=-1) < 0.3).mean()  # text
    green = ((pixels[..., 1] > 0.9) & (pixels[..., 0] < 0.9) & (pixels[..., 2] < 0.9)).mean()
    red = ((pixels[..., 0] > 0.95) & (pixels[..., 1] < 0.95) & (pixels[..., 2] < 0.95)).mean()
    assert dark > 0.002, "no text rendered"
    assert green > 0 and red > 0, "PASS / FAIL cells not coloured"
    assert np.std(pixels) > 0.05
