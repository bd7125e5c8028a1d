"""Wall and CPU time of the README's Python examples and of `deepbasis --help`.

Each example (a ```python block of README.md that trains: the ten-line example and the
estimator snippet) runs in a fresh interpreter, in a temporary folder, as a user would run it:
imports included. ``--threads 1`` calls ``torch.set_num_threads(1)`` first; without it the
example runs with whatever the library does by default (``threads="auto"`` in deepbasis ≥ the
thread policy; PyTorch's default thread count before). CPU time (user + system of the child) is
what the run costs on an idle core; wall time is what it took on this machine, load included.
Run it against another checkout with ``PYTHONPATH=/other/src``. Never fails on timing.

    python benchmarks/time_readme.py [--threads 1] [--readme README.md] [--timeout 900]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def examples(readme: Path) -> dict[str, str]:
    blocks = re.findall(r"^```python\n(.*?)^```", readme.read_text(encoding="utf-8"),
                        flags=re.MULTILINE | re.DOTALL)
    found = {}
    for code in blocks:
        if "db.fit(" in code:
            found["ten-line example"] = code
        elif "BasisRegressor(" in code:
            found["estimator snippet"] = code
    return found


def timed(argv: list[str], timeout: float, cwd: str) -> tuple[float, float, str]:
    """(wall s, CPU s, status) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        status = "ok" if done.returncode == 0 else f"exit {done.returncode}: {done.stderr[-300:]}"
    except subprocess.TimeoutExpired:
        status = f"timed out after {timeout:.0f} s"
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, status


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads(N) before each example (default: none)")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--help-only", action="store_true", help="time `deepbasis --help` only")
    args = parser.parse_args(argv)
    import deepbasis

    print(f"deepbasis from {Path(deepbasis.__file__).parent}, {os.cpu_count()} cores, load "
          f"average {os.getloadavg()[0]:.1f}, threads: "
          f"{args.threads if args.threads else 'default'}")
    prefix = (f"import torch; torch.set_num_threads({args.threads})\n" if args.threads else "")
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(3):
            wall, cpu, status = timed([sys.executable, "-m", "deepbasis", "--help"],
                                      args.timeout, folder)
            print(f"  {'deepbasis --help':<18} wall {wall:7.2f} s   CPU {cpu:7.2f} s   {status}")
        if args.help_only:
            return
        for label, code in examples(args.readme).items():
            wall, cpu, status = timed([sys.executable, "-c", prefix + code], args.timeout,
                                      folder)
            print(f"  {label:<18} wall {wall:7.1f} s   CPU {cpu:7.1f} s   {status}", flush=True)


if __name__ == "__main__":
    main()
