"""Overhead of watching breakpoints during training (deepbasis.analysis.watch.BreakpointWatch).

A plain ReLU MLP of width 8 and depth 5 (the network of Sahs et al. 2020, Fig. 2) is trained by
GD on sin(x), 256 points on [−3, 3], float64, one thread; the watch records the exact spline
every k steps. Timed alternately from the same initial network (medians of ``--repeats``
rounds):

- ``deepbasis.fit(method="gd")`` without callbacks, with a no-op callback (what any callback
  costs in fit: a host sync and the member's model every step), with the watch as a callback,
  and with the watch as a metric (``metrics={"pieces": watch.metric}, metric_every=k``: fit
  then touches the model only every k steps);
- a bare PyTorch loop (MSE, backward, SGD step) without and with ``watch(step, loss, model)``.

Prints the overhead of the watch relative to the training time without it. Never fails on
timing.

    python benchmarks/bench_watch.py             # k = 10, 2000 steps
    python benchmarks/bench_watch.py --every 1 10 100
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from deepbasis import MLP, fit
from deepbasis.analysis.watch import BreakpointWatch


def _noop(step, loss, model):
    return None


def time_fit(model, x, y, steps, callbacks, metric_watch=None) -> float:
    m = copy.deepcopy(model)
    metrics = {} if metric_watch is None else {"pieces": metric_watch.metric}
    every = 1 if metric_watch is None else metric_watch.every
    start = time.perf_counter()
    fit(m, x, y, method="gd", optimizer="sgd", lr=1e-3, steps=steps, callbacks=callbacks,
        metrics=metrics, metric_every=every, progress=False)
    return time.perf_counter() - start


def time_loop(model, x, y, steps, watch) -> float:
    m = copy.deepcopy(model)
    opt = torch.optim.SGD(m.parameters(), lr=1e-3)
    start = time.perf_counter()
    for step in range(steps + 1):
        opt.zero_grad(set_to_none=True)
        loss = ((m(x) - y) ** 2).mean()
        if watch is not None:
            watch(step, loss.item(), m)
        if step == steps:
            break
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=int, nargs="+", default=[10])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--points", type=int, default=256)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MLP(1, args.width, args.depth, dtype=torch.float64)
    x = torch.linspace(-3, 3, args.points, dtype=torch.float64)[:, None]
    y = torch.sin(x)
    time_fit(model, x, y, 50, [])  # warm-up
    time_loop(model, x, y, 50, BreakpointWatch(-3.0, 3.0, every=10))
    results = {}
    for k in args.every:
        runs = {"fit": [], "fit+noop": [], "fit+watch": [], "fit+metric": [], "loop": [],
                "loop+watch": []}
        records = 0
        for _ in range(args.repeats):
            runs["fit"].append(time_fit(model, x, y, args.steps, []))
            runs["fit+noop"].append(time_fit(model, x, y, args.steps, [_noop]))
            watch = BreakpointWatch(-3.0, 3.0, every=k)
            runs["fit+watch"].append(time_fit(model, x, y, args.steps, [watch]))
            records = len(watch.records)
            runs["fit+metric"].append(time_fit(model, x, y, args.steps, [],
                                               BreakpointWatch(-3.0, 3.0, every=k)))
            runs["loop"].append(time_loop(model, x, y, args.steps, None))
            runs["loop+watch"].append(time_loop(model, x, y, args.steps,
                                                BreakpointWatch(-3.0, 3.0, every=k)))
        med = {name: statistics.median(v) for name, v in runs.items()}
        per_record = (med["loop+watch"] - med["loop"]) / max(records, 1)
        results[k] = {**med, "records": records, "per_record_s": per_record,
                      "fit_overhead": med["fit+watch"] / med["fit"] - 1,
                      "fit_overhead_vs_noop": med["fit+watch"] / med["fit+noop"] - 1,
                      "fit_metric_overhead": med["fit+metric"] / med["fit"] - 1,
                      "loop_overhead": med["loop+watch"] / med["loop"] - 1}
        print(f"width {args.width}, depth {args.depth}, {args.points} points, {args.steps} GD "
              f"steps, k = {k} ({records} records), {args.threads} thread(s), medians of "
              f"{args.repeats}:")
        print(f"  fit:                 {med['fit']:.3f} s")
        print(f"  fit + no-op callback {med['fit+noop']:.3f} s")
        print(f"  fit + watch:         {med['fit+watch']:.3f} s   overhead "
              f"{100 * results[k]['fit_overhead']:+.1f} % vs fit, "
              f"{100 * results[k]['fit_overhead_vs_noop']:+.1f} % vs fit + no-op callback")
        print(f"  fit + watch metric:  {med['fit+metric']:.3f} s   overhead "
              f"{100 * results[k]['fit_metric_overhead']:+.1f} % vs fit")
        print(f"  PyTorch loop:        {med['loop']:.3f} s")
        print(f"  loop + watch:        {med['loop+watch']:.3f} s   overhead "
              f"{100 * results[k]['loop_overhead']:+.1f} %")
        print(f"  one record: {1e3 * per_record:.2f} ms; target: overhead < 20 % at k = 10")
    return results


if __name__ == "__main__":
    main()
