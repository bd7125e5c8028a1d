"""Wall time of `deepbasis run` with 1 vs N local workers, and the speed-up.

Runs the same experiment and profile once per worker count, each into a fresh output folder,
one after the other (never at the same time, so they do not compete for cores), through the real
command line (`python -m deepbasis run ... --workers N`), and prints the wall times side by side
and the speed-up of each over ``--workers 1``. It also compares the records the runs stored:
with one worker the cells run in this process with torch's default thread count, with N > 1 each
worker uses one thread, so floating-point reductions may differ in the last bits; the largest
relative difference is printed, never asserted.

The target (issue "Runner: sweeps that never lose a run"): a speed-up of at least 1.6 with 2
workers on 2 cores for ``cyr2020.initial_loss --profile default``. This prints ratios and never
fails on timing. Read them with two facts in mind:

- Only the cells run in parallel. Starting Python and torch (about 2 s) and drawing the report
  are serial, so a sweep of a few seconds cannot gain much (Amdahl); ``initial_loss --profile
  default`` is such a sweep (about 4 s), ``cyr2020.fig3 --profile default`` (about 70 s) is not.
- On a shared machine Linux gives each login session an equal share of the cores (CFS
  autogroups): while another session keeps a core busy, two workers get no more CPU than one.
  Measure on an otherwise idle machine (the load average is printed before and after).

Usage:
    python benchmarks/bench_workers.py                       # cyr2020.initial_loss, default, 1 vs 2
    python benchmarks/bench_workers.py --profile quick --workers 1 2 4
    python benchmarks/bench_workers.py --experiment cyr2020.fig5 --keep /tmp/bench
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deepbasis.runner.store import ResultStore


def run_once(experiment: str, profile: str, workers: int, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one `deepbasis run` (process start to exit, as a user sees it).

    CPU seconds add up the driver and its workers: their excess over ``--workers 1`` is the
    price of parallelism (each worker process imports torch, a few CPU seconds).
    """
    cmd = [sys.executable, "-m", "deepbasis", "run", experiment, "--profile", profile,
           "--workers", str(workers), "--out", str(out), "--no-progress", "--fresh"]
    cpu_before = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return elapsed, _children_cpu() - cpu_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for descendants
    return usage.ru_utime + usage.ru_stime


def records(out: Path, experiment: str) -> dict[tuple[str, int], dict]:
    with ResultStore.in_folder(out, readonly=True) as store:
        return {(str(r.settings), r.seed): r.record for r in store.records(experiment)}


def max_relative_difference(a: object, b: object) -> float:
    """Largest relative difference between the numbers of two JSON values (inf if shapes differ)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return math.inf
        return max((max_relative_difference(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return math.inf
        return max((max_relative_difference(x, y) for x, y in zip(a, b, strict=True)),
                   default=0.0)
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, int | float):
        return 0.0 if a == b else math.inf
    if not isinstance(b, int | float):
        return math.inf
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="cyr2020.initial_loss")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the output folders here (default: a temporary folder)")
    args = parser.parse_args()
    workers = sorted(set(args.workers) | {1})

    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        print(f"{args.experiment} --profile {args.profile}; {os.cpu_count()} cores; "
              f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        times, cpu = {}, {}
        for n in workers:
            times[n], cpu[n] = run_once(args.experiment, args.profile, n, root / f"workers{n}")
            print(f"  --workers {n}: {times[n]:8.1f} s wall, {cpu[n]:8.1f} s CPU")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print()
        print("| workers | wall time (s) | CPU time (s) | speed-up vs 1 |")
        print("|---|---|---|---|")
        for n in workers:
            print(f"| {n} | {times[n]:.1f} | {cpu[n]:.1f} | {times[1] / times[n]:.2f}x |")
        reference = records(root / "workers1", args.experiment)
        for n in workers[1:]:
            other = records(root / f"workers{n}", args.experiment)
            if other.keys() != reference.keys():
                print(f"--workers {n} stored different keys than --workers 1!")
                continue
            diff = max(max_relative_difference(reference[k], other[k]) for k in reference)
            print(f"records of --workers {n} vs 1: {len(other)} records, largest relative "
                  f"difference {diff:.2g}")


if __name__ == "__main__":
    main()
