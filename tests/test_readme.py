"""Every Python example of the README runs, and prints what its comments say.

Each ```python block of README.md is executed (in a fresh folder). A ``print(...)`` line whose
comment holds a number is checked against the number it printed: to half a unit in the last
digit shown (``# 2.59e-05`` means 2.585e-05 … 2.595e-05), or, when the comment says
``within F×``, to a factor F; a comment that starts with ``True`` or ``False`` must be printed
as it is. A block that reads ``results/cyr2020.initial_loss`` gets that folder from a quick run
first. The README is a landing page: its first lines are the two commands CI runs, it stays
short, and every file it links to exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"),
                    flags=re.MULTILINE | re.DOTALL)
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", re.IGNORECASE)


def expectations(code: str) -> list[tuple[str, str | None]]:
    """(print line, its comment or None) for every top-level print line, in order."""
    out = []
    for line in code.splitlines():
        if line.startswith("print("):
            _, hash_, comment = line.partition("  #")
            out.append((line, comment.strip() if hash_ else None))
    return out


def check(printed: str, comment: str) -> None:
    """``printed`` agrees with the first number of ``comment`` to the precision it states."""
    for word in ("True", "False"):
        if comment.startswith(word):
            assert printed == word, f"printed {printed!r}, the comment says {comment!r}"
            return
    expected_text = NUMBER.search(comment)
    assert expected_text, comment
    got_text = NUMBER.search(printed)
    assert got_text, f"printed {printed!r}, no number in it"
    expected, got = float(expected_text.group()), float(got_text.group())
    factor = re.search(r"within (\d+(?:\.\d+)?)\s*×", comment)
    if factor:
        f = float(factor.group(1))
        assert expected / f <= got <= expected * f, f"printed {got}, comment: {comment}"
        return
    mantissa, _, exponent = expected_text.group().lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    half_unit = 0.5 * 10.0 ** (int(exponent or 0) - decimals)
    assert abs(got - expected) <= half_unit * (1 + 1e-9), \
        f"printed {got}, the comment says {expected_text.group()} ({comment})"


def test_the_readme_has_its_examples():
    assert len(BLOCKS) >= 3
    assert any("BasisRegressor(" in block for block in BLOCKS)
    assert any("LinearProblem(" in block and "db.fit(" in block for block in BLOCKS)
    assert any("spline_of(" in block for block in BLOCKS)


def test_the_readme_is_a_landing_page():
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= 160, f"README.md has {len(lines)} lines; move long material to docs/"
    # The two commands come first, and CI (.ci/run) runs the second one exactly.
    assert lines[3].startswith("python3 -m venv .venv && ") and "deepbasis run" in lines[3]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert lines[4] in ci, "the README's second command is what .ci/run runs"
    # The second-order example of the PINN section goes right below its header (issue 22).
    assert "## A PINN\n<!-- lm-example -->\n" in text
    # Every relative link (pages, the figure) points to a file of the repository.
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (ROOT / target).is_file(), f"README.md links to {target}, which is missing"


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{k}" for k in range(len(BLOCKS))])
def test_readme_example(code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if "results/cyr2020.initial_loss" in code:
        from deepbasis.runner.runner import run_experiment

        run_experiment("cyr2020.initial_loss", "quick", "results/cyr2020.initial_loss",
                       progress=False)
        capsys.readouterr()
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out.splitlines()
    wanted = expectations(code)
    assert len(printed) == len(wanted), printed
    for line, (_, comment) in zip(printed, wanted, strict=True):
        if comment is not None and NUMBER.search(comment):
            check(line, comment)


def test_check_states_its_precision():
    check("2.5873e-05", "2.59e-05: a rich initial basis")
    with pytest.raises(AssertionError):
        check("2.5963e-05", "2.59e-05")
    check("1.9e-07", "~1.4e-07 (within 2×) after 500 LSGD steps")
    with pytest.raises(AssertionError):
        check("3.0e-07", "~1.4e-07 (within 2×)")
    check("0.9999999418", "R² on new points: 1.0000")
    check("[0.45463911]", "[0.4546] (sin(2) / 2 = 0.454649)")
    check("True", "True: the spline IS the network")
    with pytest.raises(AssertionError):
        check("False", "True: the spline IS the network")
