"""LSGD / GD wall time per iteration on the grid of Cyr et al. (2020), Table 1.

Plain ReLU networks, widths and depths {4, 16, 64, 256}, uniform He initialization, sin(2πx)
on 256 points, Adam. LSGD and GD runs are timed alternately from the same initial network and
medians compared (deepbasis.train.timing.lsgd_gd_time_ratio). Prints our ratio grid beside the
paper's, and per-iteration times. Never fails on timing: it reports.

    python benchmarks/bench_lsgd_vs_gd.py            # full grid (a few minutes, 1 thread)
    python benchmarks/bench_lsgd_vs_gd.py --quick    # widths/depths 4, 16, 64 (< 1 minute)
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from deepbasis.train.timing import PAPER_TABLE1, TABLE1_SIZES, lsgd_gd_time_ratio

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def steps_for(width: int, depth: int, n_points: int, budget: float, dtype: torch.dtype) -> int:
    """Iterations that make one timed run last about ``budget`` seconds (3 ≤ steps ≤ 1000).

    A rough cost model of one GD iteration on one core: forward + backward ≈ 6 N w² L flops at
    ~20 GFLOP/s in float64 (twice that in float32), plus ~40 µs of dispatch per layer.
    """
    flops = 6.0 * n_points * width * width * depth
    rate = 2e10 if dtype == torch.float64 else 4e10
    per_step = flops / rate + 4e-5 * depth + 2e-4
    return int(min(1000, max(3, budget / per_step)))


def grid_text(title: str, sizes, values: dict[tuple[int, int], float | None]) -> str:
    lines = [title, "width \\ depth " + "".join(f"{d:>8d}" for d in sizes)]
    for w in sizes:
        cells = "".join(f"{values[(w, d)]:8.2f}" if values.get((w, d)) is not None
                        else f"{'—':>8s}" for d in sizes)
        lines.append(f"{w:>13d} {cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes 4, 16, 64; short runs")
    parser.add_argument("--sizes", type=int, nargs="+", help="widths = depths to run")
    parser.add_argument("--points", type=int, default=256)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float64")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per method")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds per timed run (sets the iterations per cell)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core machine a busy "
                             "sibling core makes multi-threaded timings jitter 10-30x)")
    parser.add_argument("--lstsq-method", default="auto")
    parser.add_argument("--json", help="write all measurements to this file")
    args = parser.parse_args(argv)
    sizes = args.sizes or ((4, 16, 64) if args.quick else TABLE1_SIZES)
    budget = args.budget or (0.25 if args.quick else 1.0)
    repeats = args.repeats or 3
    dtype = DTYPES[args.dtype]

    print(f"LSGD / GD wall time per iteration — Cyr et al. (2020) Table 1 setup: plain ReLU, "
          f"He init, sin(2πx), {args.points} points, Adam, {args.dtype}, {args.device}, "
          f"threads={args.threads}, lstsq_method={args.lstsq_method!r}, {repeats} alternating "
          f"rounds per cell, medians", flush=True)
    results = []
    start = time.perf_counter()
    for width in sizes:
        for depth in sizes:
            steps = steps_for(width, depth, args.points, budget, dtype)
            r = lsgd_gd_time_ratio(width, depth, steps, args.points, dtype=dtype,
                                   device=args.device, repeats=repeats, threads=args.threads,
                                   lstsq_method=args.lstsq_method)
            results.append(r)
            paper = f"{r['paper']:.2f}" if r["paper"] is not None else "—"
            print(f"  width {width:3d} depth {depth:3d}: {steps:4d} it, LSGD {r['lsgd'] * 1e3:9.3f}"
                  f" ms  GD {r['gd'] * 1e3:9.3f} ms  bare GD {r['bare_gd'] * 1e3:9.3f} ms  "
                  f"LSGD/GD {r['ratio']:.2f} (paper {paper})  GD/bare {r['gd_vs_bare']:.2f}",
                  flush=True)
    ours = {(r["width"], r["depth"]): r["ratio"] for r in results}
    paper = {(w, d): PAPER_TABLE1.get(w, {}).get(d) for w in sizes for d in sizes}
    vs_bare = {(r["width"], r["depth"]): r["lsgd"] / r["bare_gd"] for r in results}
    print()
    print(grid_text("deepbasis LSGD / GD (median wall time per iteration)", sizes, ours))
    print()
    print(grid_text("paper, Table 1 (TensorFlow, i7-8700)", sizes, paper))
    print()
    print(grid_text("deepbasis LSGD / minimal PyTorch GD loop", sizes, vs_bare))
    deep = [v for (w, d), v in ours.items() if d >= 16]
    print()
    print(f"max ratio: {max(ours.values()):.2f} (target ≤ 1.30); depth ≥ 16: "
          f"{max(deep) if deep else float('nan'):.2f} (target ≤ 1.10); "
          f"total {time.perf_counter() - start:.0f} s")
    summary = {"sizes": list(sizes), "results": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
