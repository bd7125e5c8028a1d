"""Where do more torch threads start to pay? One vs several threads for LSGD steps by size.

For each network size (width, depth 4, residual Box init, float64) and number of rows (1-D
sin(2πx) regression), times ``deepbasis.fit(method="lsgd")`` with one thread and with
``--threads`` threads (default: every core), alternately, ``--repeats`` rounds, and prints the
median time per step of each, their ratio and ``rows × parameters`` (the size measure of
``threads="auto"``, :mod:`deepbasis.train.threads`). Steps per timed run are chosen so one run
lasts about ``--budget`` seconds. Never fails on timing.

    python benchmarks/bench_threads.py [--quick] [--threads 2]

The README's examples are timed by ``benchmarks/time_readme.py``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch

from deepbasis import MLP, fit, init


def step_time(width: int, rows: int, threads: int, steps: int) -> float:
    x = torch.linspace(0.0, 1.0, rows, dtype=torch.float64)[:, None]
    y = torch.sin(2.0 * math.pi * x)
    model = init.box_(MLP(1, width, 4, residual=True, dtype=torch.float64), generator=0)
    start = time.perf_counter()
    fit(model, x, y, steps=steps, progress=False, threads=threads)
    return (time.perf_counter() - start) / steps


def sizes(quick: bool) -> list[tuple[int, int]]:
    rows = [256, 4096, 16384] if quick else [256, 1024, 4096, 16384, 65536]
    widths = [32, 128]
    return [(w, n) for w in widths for n in rows]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                        help="the thread count compared with one (default: every core)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per timed run")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; LSGD, depth 4, residual, float64; "
          f"1 thread vs {args.threads}")
    print(f"{'width':>5} {'rows':>7} {'params':>7} {'rows×params':>11} "
          f"{'1 thread':>10} {f'{args.threads} threads':>10} {'speed-up':>8}")
    for width, rows in sizes(args.quick):
        probe = step_time(width, rows, 1, 2)
        steps = max(3, min(200, round(args.budget / max(probe, 1e-4))))
        times: dict[int, list[float]] = {1: [], args.threads: []}
        for r in range(args.repeats):
            order = [1, args.threads] if r % 2 == 0 else [args.threads, 1]
            for t in order:
                times[t].append(step_time(width, rows, t, steps))
        one, many = statistics.median(times[1]), statistics.median(times[args.threads])
        params = sum(p.numel() for p in MLP(1, width, 4, residual=True).parameters())
        print(f"{width:>5} {rows:>7} {params:>7} {rows * params:>11.2e} {one * 1e3:>8.2f}ms "
              f"{many * 1e3:>8.2f}ms {one / many:>7.2f}×", flush=True)


if __name__ == "__main__":
    main()
