"""`deepbasis --help`, `list`, `--version` import no torch; help text reads well."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from deepbasis.runner import registry
from deepbasis.runner.registry import experiment_titles

_PROBE = """
import json, sys
sys.argv = ["deepbasis", *json.loads(sys.argv[1])]
from deepbasis.cli import main
try:
    main()
except SystemExit as done:
    code = done.code
else:
    code = 0
heavy = sorted(m for m in ("torch", "scipy", "sklearn", "matplotlib", "rich", "pydantic")
               if m in sys.modules)
print("HEAVY=" + json.dumps(heavy), "CODE=" + str(code))
"""


def _probe(*args: str) -> tuple[str, list[str], str]:
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(args)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    output, _, last = done.stdout.rstrip().rpartition("\n")
    heavy, code = last.split(" ")
    # `deepbasis` alone prints the help and exits with 2, as click does for a missing command.
    assert code in ("CODE=0", "CODE=None") or (code == "CODE=2" and not args), done.stdout
    return output, json.loads(heavy.removeprefix("HEAVY=")), done.stderr


@pytest.mark.parametrize("args", [("--help",), ("list",), ("--version",), ()])
def test_light_commands_import_no_torch(args):
    output, heavy, stderr = _probe(*args)
    assert heavy == [], f"deepbasis {' '.join(args)} imported {heavy}"
    assert ("cyr2020." if args == ("list",) else "deepbasis") in output + stderr


def test_list_without_importing_agrees_with_the_registry():
    output, _, _ = _probe("list")
    listed = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in output.splitlines()}
    assert listed == {eid: e.title for eid, e in registry().items()}


def test_static_scan_matches_the_registry(monkeypatch):
    monkeypatch.setattr(registry, "cache_info", lambda: type("I", (), {"currsize": 0})())
    assert experiment_titles() == {eid: e.title for eid, e in registry().items()}


def test_help_keeps_brackets_and_has_no_bool_labels():
    output, _, _ = _probe("fit", "--help")
    assert "[every other column, except row identifiers" in " ".join(output.split())
    assert "[DATA-name.model.safetensors]" in output.replace("\n", "").replace(" ", "")
    output_run, _, _ = _probe("run", "--help")
    for text in (output, output_run):
        assert "<bool>" not in text and "<int range>" not in text
    assert "--fresh " in output_run and "[default: 1; x>=1]" in output_run
