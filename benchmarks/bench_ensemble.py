"""Ensemble throughput: E members trained as one batched computation vs a loop of single runs.

Default: E = 16, plain ReLU width 32, depth 4, Box initialization, sin(2πx) on 256 points,
float64, LSGD with Adam (lr 5e-3). The batched run (deepbasis.fit_ensemble) and the loop of
deepbasis.fit runs are timed alternately; medians are compared. Also prints how far the batched
members' losses are from the loop's (zero for MLPs, whose members are bit-identical to separate
runs; see deepbasis.train.ensemble) beside how far one ulp in x moves a run. Never fails on
timing.

    python benchmarks/bench_ensemble.py [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import numpy as np
import torch

from deepbasis import MLP, fit, fit_ensemble, init


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--points", type=int, default=256)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--method", default="lsgd", choices=["lsgd", "gd"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1, see bench_lsgd_vs_gd.py)")
    args = parser.parse_args(argv)
    steps = args.steps or (40 if args.quick else 200)
    dtype = getattr(torch, args.dtype)
    torch.set_num_threads(args.threads)
    seeds = list(range(args.members))
    x = torch.linspace(0.0, 1.0, args.points, dtype=dtype, device=args.device)[:, None]
    y = torch.sin(2.0 * math.pi * x)

    def make(seed: int) -> MLP:
        model = MLP(1, args.width, args.depth, dtype=dtype, device=args.device)
        return init.box_(model, generator=seed)

    settings = dict(method=args.method, steps=steps, lr=5e-3, progress=False)

    def sync() -> None:
        if torch.device(args.device).type == "cuda":
            torch.cuda.synchronize()

    def batched() -> tuple[float, np.ndarray]:
        sync()
        start = time.perf_counter()
        result = fit_ensemble(make, x, y, seeds=seeds, **settings)
        sync()
        return time.perf_counter() - start, result.losses

    def loop() -> tuple[float, np.ndarray]:
        sync()
        start = time.perf_counter()
        curves = [_curve(fit, make(seed), x, y, settings, steps) for seed in seeds]
        sync()
        return time.perf_counter() - start, np.asarray(curves)

    print(f"Ensemble throughput: E = {args.members}, width {args.width}, depth {args.depth}, "
          f"{args.points} points, {args.dtype}, {args.method.upper()}, {steps} steps, "
          f"{args.device}, threads={args.threads}", flush=True)
    fit_ensemble(make, x, y, seeds=seeds[:2], **{**settings, "steps": 3})  # warm-up
    fit(make(0), x, y, **{**settings, "steps": 3})
    times = {"batched": [], "loop": []}
    losses = {}
    for r in range(args.repeats):
        order = [("batched", batched), ("loop", loop)]
        for name, run in order if r % 2 == 0 else order[::-1]:
            seconds, curves = run()
            times[name].append(seconds)
            losses[name] = curves
    t_batched, t_loop = statistics.median(times["batched"]), statistics.median(times["loop"])
    a, b = losses["batched"], losses["loop"]
    rel = np.nanmax(np.abs(a - b) / np.abs(b))
    # What rounding alone does to these trajectories: the loop again with x moved by one ulp.
    x_ulp = torch.nextafter(x, torch.full_like(x, 2.0))
    nudged = np.asarray([_curve(fit, make(seed), x_ulp, y, settings, steps) for seed in seeds])
    rel_ulp = np.nanmax(np.abs(nudged - b) / np.abs(b))
    print(f"  batched: {t_batched:.3f} s ({t_batched / steps * 1e3:.2f} ms/iteration for all "
          f"{args.members})")
    print(f"  loop   : {t_loop:.3f} s ({t_loop / steps * 1e3:.2f} ms/iteration)")
    print(f"  speed-up batched vs loop: {t_loop / t_batched:.2f}x (target ≥ 4x on the 2-core CPU)")
    print(f"  largest relative loss difference over {steps} steps, batched vs loop: {rel:.1e}; "
          f"loop vs the loop with x moved by one ulp: {rel_ulp:.1e} (the training dynamics "
          "amplify rounding differences, so only bit-identical members agree; see "
          "deepbasis.train.ensemble)")
    return {"batched": t_batched, "loop": t_loop, "speedup": t_loop / t_batched,
            "max_rel_loss_diff": float(rel), "max_rel_loss_diff_one_ulp": float(rel_ulp),
            "steps": steps, "members": args.members}


def _curve(fit, model, x, y, settings, steps) -> list[float]:
    try:
        return fit(model, x, y, **settings).loss
    except FloatingPointError as error:
        return error.history.loss + [math.nan] * (steps + 1 - len(error.history.loss))


if __name__ == "__main__":
    main(sys.argv[1:])
