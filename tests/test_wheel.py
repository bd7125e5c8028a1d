"""The package builds into an sdist and a wheel that install and run outside the source tree.

``python -m build`` (no isolation: the backend is the test extra's setuptools, so it needs no
network) writes both; ``twine check`` passes their metadata; the wheel goes into a fresh virtual
environment, whose dependencies (torch, ...) are this environment's, linked in by a ``.pth``
path line rather than downloaded; there ``deepbasis --version`` answers with the one version of
the package and a ``quick`` experiment runs from the installed copy, not from ``src/``.
About 30-60 s, most of it building and starting Python.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

import deepbasis

ROOT = Path(__file__).resolve().parents[1]
CHECK_REQUIREMENTS = """
from importlib.metadata import requires, version
from packaging.requirements import Requirement
unmet = [str(r) for r in map(Requirement, requires("deepbasis"))
         if (r.marker is None or r.marker.evaluate({"extra": ""}))
         and not r.specifier.contains(version(r.name), prereleases=True)]
raise SystemExit(f"unmet: {unmet}" if unmet else 0)
"""


def run(*command, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONNOUSERSITE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env,
                          timeout=300, **kwargs)
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    pytest.importorskip("build", reason="needs the test extra: pip install -e '.[test]'")
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", out,
        ROOT, cwd=out)
    return out


def test_build_gives_an_sdist_and_a_wheel_with_valid_metadata(dist):
    version = deepbasis.__version__
    wheel = dist / f"deepbasis-{version}-py3-none-any.whl"
    sdist = dist / f"deepbasis-{version}.tar.gz"
    assert wheel.is_file() and sdist.is_file(), sorted(p.name for p in dist.iterdir())
    pytest.importorskip("twine", reason="needs the test extra: pip install -e '.[test]'")
    run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(f"deepbasis-{version}.dist-info/METADATA").decode()
    assert "deepbasis/experiments/cyr2020/initial_loss.py" in names
    assert not any(name.startswith(("tests/", "docs/", "benchmarks/")) for name in names)
    assert f"Version: {version}" in metadata and "Requires-Dist: torch" in metadata
    assert "Description-Content-Type: text/markdown" in metadata
    with tarfile.open(sdist) as archive:
        assert f"deepbasis-{version}/pyproject.toml" in archive.getnames()


def test_the_wheel_installs_and_runs_in_a_fresh_environment(dist, tmp_path):
    version = deepbasis.__version__
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
                       ).stdout.strip())
    # The dependencies come from this environment (a path line: its own .pth files, among them
    # the editable install of src/, are not processed), so nothing is downloaded.
    (purelib / "_deps_from_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = dist / f"deepbasis-{version}-py3-none-any.whl"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-index", "--no-deps",
        "--quiet", wheel)
    # Every requirement of the installed metadata is met (by this environment's packages).
    run(python, "-c", CHECK_REQUIREMENTS, cwd=tmp_path)
    where = run(python, "-c", "import deepbasis; print(deepbasis.__file__)", cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout
    assert run(venv / "bin" / "deepbasis", "--version", cwd=tmp_path).stdout.strip() == \
        f"deepbasis {version}"
    out = tmp_path / "il"
    done = run(venv / "bin" / "deepbasis", "run", "cyr2020.initial_loss", "--profile", "quick",
               "--out", out, "--workers", "1", "--no-progress", cwd=tmp_path)
    assert "not judged" in done.stdout, done.stdout
    assert (out / "report.md").is_file() and (out / "initial_loss.png").is_file()
