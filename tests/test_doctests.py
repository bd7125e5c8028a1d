"""Every docstring example (``>>>``) of the package runs and prints what it shows.

One test per module of ``deepbasis``, so a failing example names its module. Examples run in a
fresh folder (some write files) with one torch thread; ``# doctest: +SKIP`` marks the few that
need files or data the example does not make. New modules are picked up automatically.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest
import torch

import deepbasis

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _docstring_tests(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    found = doctest.DocTestFinder().find(module, name, globs=dict(vars(module)))
    return [test for test in found if test.examples]


MODULES = sorted(
    info.name for info in pkgutil.walk_packages(deepbasis.__path__, prefix="deepbasis.")
    if not info.name.endswith("__main__") and _docstring_tests(info.name)
)


def test_the_package_has_doctests():
    assert len(MODULES) >= 25


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    tests = _docstring_tests(name)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    report: list[str] = []
    try:
        for test in tests:
            runner.run(test, out=report.append)
    finally:
        torch.set_num_threads(threads)
    assert runner.failures == 0, "".join(report)
