"""Run every benchmark: ``python benchmarks/run_all.py [--quick] [--device cuda] [--threads N]``.

Benchmarks print measured ratios side by side; they never fail on timing (CI runs none of them).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_ensemble  # noqa: E402
import bench_lsgd_vs_gd  # noqa: E402
import bench_spline  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    common = ["--device", args.device, "--threads", str(args.threads)]
    common += ["--quick"] if args.quick else []
    start = time.perf_counter()
    bench_lsgd_vs_gd.main(common)
    print()
    bench_ensemble.main(common)
    print()
    bench_spline.main(["--threads", str(args.threads)] + (["--quick"] if args.quick else []))
    print(f"\nall benchmarks: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
