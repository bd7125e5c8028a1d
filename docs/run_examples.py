"""Run the Python examples of markdown pages, and keep the figures they draw.

    python docs/run_examples.py README.md --figures docs/img
    python docs/run_examples.py docs/tutorials/*.md

Each page's ```python blocks run in order, in one namespace, in a fresh temporary folder (a page
is one session, as a reader would type it). The PNG files a page writes are copied to
``--figures`` (default: the page's own folder), which is how the figures on the site are made:
rerun this after changing an example. The tests (tests/test_docs_tutorials.py) run the same
blocks and check that every figure a page shows is one it draws.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.MULTILINE | re.DOTALL)
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+\.png)\)")


def python_blocks(page: Path) -> list[str]:
    """The ```python blocks of a markdown page, in order."""
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def shown_figures(page: Path) -> list[str]:
    """The file names of the PNG images a page shows."""
    return [Path(target).name for target in IMAGE.findall(page.read_text(encoding="utf-8"))]


def run_page(page: Path, folder: Path) -> list[Path]:
    """Run the page's blocks in ``folder`` (the working directory); return the PNGs written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace = {"__name__": "__example__"}
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        for code in python_blocks(page):
            exec(compile(code, str(page), "exec"), namespace)
            plt.close("all")
    finally:
        os.chdir(cwd)
    return sorted(folder.glob("*.png"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="+", type=Path)
    parser.add_argument("--figures", type=Path, help="folder for the PNGs (default: the page's)")
    args = parser.parse_args(argv)
    for page in args.pages:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            figures = run_page(page.resolve(), Path(tmp))
            target = args.figures or page.parent
            target.mkdir(parents=True, exist_ok=True)
            for figure in figures:
                shutil.copyfile(figure, target / figure.name)
        names = ", ".join(f.name for f in figures) or "no figure"
        print(f"{page}: {time.perf_counter() - start:.1f} s, {names} -> {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
