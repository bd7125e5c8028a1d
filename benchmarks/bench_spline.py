"""Exact splines and optimal segmentations against the reference tools, timed side by side.

1. The exact spline of a depth-8, width-64 plain ReLU network on [−3, 3]
   (``deepbasis.analysis.spline_of``: float64, slopes of every piece, the layer and unit behind
   every knot, active and inactive crossings) against ``regioncam``'s 1-D region computation of
   the same network (Rust, float32, region boundaries only). Same region count is checked.
2. Dynamic-programming segmentation of n = 2,000 noisy points into k = 20 linear pieces
   (``deepbasis.reference.optimal_segmentation``) against ``ruptures.Dynp(model="linear")``,
   same min_size and jump; the optimum (breakpoints and cost) is checked to be the same.

Timings: rounds alternate between the two tools, medians of CPU time (``time.process_time``:
on a shared machine wall time also counts other processes' turns), one torch thread. Prints
ratios (reference time / ours: > 1 means deepbasis is faster). Never fails on timing.

    python benchmarks/bench_spline.py            # spline (several inits) + DP with jump 5
    python benchmarks/bench_spline.py --jump 1   # DP over every split point (ruptures: minutes)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from deepbasis import MLP, init
from deepbasis.analysis import count_regions, spline_of
from deepbasis.analysis import spline as spline_module
from deepbasis.reference import optimal_segmentation


def _cpu_time(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def alternate(*fns, rounds: int) -> list[float]:
    """Median CPU seconds of each of ``fns``, timed in turn ``rounds`` times each."""
    for fn in fns:  # warm up
        fn()
    times = [[] for _ in fns]
    for _ in range(rounds):
        for fn, ts in zip(fns, times, strict=True):
            ts.append(_cpu_time(fn))
    return [statistics.median(ts) for ts in times]


def as_sequential(model: MLP, lower: float, upper: float) -> nn.Sequential:
    """The model as regioncam sees it, a float32 ``nn.Sequential`` of Linear/ReLU layers: the
    input box of a ``domain`` folded into the first layer, and regioncam's line
    [−size/2, size/2] shifted onto [lower, upper] by a first Linear(1, 1) if needed."""
    layers: list[nn.Module] = []
    center = (lower + upper) / 2
    if center != 0:
        shift = nn.Linear(1, 1)
        with torch.no_grad():
            shift.weight.fill_(1.0)
            shift.bias.fill_(center)
        layers.append(shift)
    for k, layer in enumerate([*model.layers, model.head]):
        linear = nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(layer.weight)
            linear.bias.copy_(layer.bias)
            if k == 0 and model.domain is not None:  # x̃ = (x − l) / (u − l)
                lo, hi = model.domain[0][0], model.domain[1][0]
                linear.bias.sub_(linear.weight[:, 0] * lo / (hi - lo))
                linear.weight.div_(hi - lo)
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers[:-1]).float()


def bench_spline(rounds: int, width: int = 64, depth: int = 8) -> list[dict]:
    import regioncam

    lower, upper = -3.0, 3.0
    settings = {
        "He normal, biases N(0, 2)": lambda m: init.he_(m, "normal", zero_bias=False,
                                                         generator=0),
        "PyTorch default": lambda m: init.torch_default_(m, generator=0),
        "Box (domain [-3, 3])": lambda m: init.box_(m, generator=0),
    }
    rows = []
    for name, initialize in settings.items():
        domain = (lower, upper) if name.startswith("Box") else None
        model = initialize(MLP(1, width, depth, domain=domain, dtype=torch.float64))
        model_rc = as_sequential(model, lower, upper)  # float32, as regioncam.nn.convert needs
        prebuilt = regioncam.nn.convert(model_rc)

        def ours(model=model):
            return spline_of(model, lower, upper)

        def ours_numpy(model=model):  # without deepbasis[fast]
            spline_module.ACCELERATE = False
            try:
                return spline_of(model, lower, upper)
            finally:
                spline_module.ACCELERATE = True

        def theirs(model_rc=model_rc):  # from the torch network, as ours
            cam = regioncam.Regioncam1D(upper - lower)
            cam.add(regioncam.nn.convert(model_rc))
            return cam.num_edges

        def theirs_prebuilt(net=prebuilt):  # regioncam's layers built beforehand
            cam = regioncam.Regioncam1D(upper - lower)
            cam.add(net)
            return cam.num_edges

        t_ours, t_rc, t_pre = alternate(ours, theirs, theirs_prebuilt, rounds=rounds)
        (t_numpy,) = alternate(ours_numpy, rounds=max(rounds // 3, 3))
        spline = ours()
        rows.append({"init": name, "pieces": spline.num_pieces,
                     "regions": count_regions(model, lower, upper), "regioncam": theirs(),
                     "ours_ms": t_ours * 1e3, "numpy_ms": t_numpy * 1e3,
                     "regioncam_ms": t_rc * 1e3, "prebuilt_ms": t_pre * 1e3,
                     "ratio": t_rc / t_ours, "ratio_prebuilt": t_pre / t_ours})
    return rows


def bench_dp(n: int, pieces: int, jump: int, rounds: int) -> dict:
    import ruptures

    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(-3, 3, n))
    y = x**2 / 2 + 0.05 * rng.standard_normal(n)
    signal = np.column_stack([y, x, np.ones(n)])
    result = {}

    def ours():
        result["ours"] = optimal_segmentation(x, y, pieces, min_size=2, jump=jump)

    def theirs():
        algo = ruptures.Dynp(model="linear", min_size=2, jump=jump).fit(signal)
        ends = algo.predict(n_bkps=pieces - 1)
        starts = [0, *ends[:-1]]
        result["ruptures"] = (ends, sum(algo.cost.error(a, b) for a, b in zip(starts, ends,
                                                                              strict=True)))

    t_ours = statistics.median(_cpu_time(ours) for _ in range(max(rounds, 3)))
    t_rpt = statistics.median(_cpu_time(theirs) for _ in range(rounds))
    ends, cost = result["ruptures"]
    fit = result["ours"]
    return {"n": n, "pieces": pieces, "jump": jump, "same_breakpoints": list(fit.ends) == ends,
            "cost_ours": fit.cost, "cost_ruptures": float(cost), "ours_s": t_ours,
            "ruptures_s": t_rpt, "ratio": t_rpt / t_ours}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21, help="alternating rounds (spline)")
    parser.add_argument("--dp-rounds", type=int, default=1, help="ruptures runs (slow)")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--pieces", type=int, default=20)
    parser.add_argument("--jump", type=int, default=5,
                        help="DP split points every `jump` samples (ruptures' default 5; 1 = all,"
                             " which takes ruptures minutes)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, n = 500")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    # One thread for every pool, as OMP_NUM_THREADS=1 would set: torch's and the BLAS that
    # spline_of's compiled products call (loaded by a first call). spline_of runs BLAS on
    # torch's thread count anyway, but switching it costs each call some 20 µs.
    torch.set_num_threads(args.threads)
    spline_of(MLP(1, 2, 1, dtype=torch.float64), 0.0, 1.0)
    threadpool_limits(args.threads)
    if args.quick:
        args.rounds, args.n = 5, 500
    compiled = spline_module._compiled() is not None
    engine = "compiled by Numba" if compiled else "NumPy: no Numba"
    print(f"Exact spline of a depth-8 width-64 plain ReLU network on [-3, 3], from the torch "
          f"network: deepbasis spline_of (float64; {engine}) vs regioncam "
          f"(nn.convert + Regioncam1D.add, float32); median CPU time of {args.rounds} rounds in "
          f"turn, threads={args.threads}. 'prebuilt': regioncam's layers converted beforehand "
          f"(spline_of still reads the torch network); 'numpy': spline_of without Numba")
    rows = bench_spline(args.rounds)
    for r in rows:
        same = "same" if r["regions"] == r["regioncam"] else "DIFFERENT"
        print(f"  {r['init']:26s} pieces {r['pieces']:4d}  regions {r['regions']:4d} "
              f"(regioncam {r['regioncam']:4d}, {same})  deepbasis {r['ours_ms']:.3f} ms "
              f"(numpy {r['numpy_ms']:.3f})  regioncam {r['regioncam_ms']:.3f} ms (prebuilt "
              f"{r['prebuilt_ms']:.3f})  regioncam/deepbasis {r['ratio']:.2f}x (target >= 1; "
              f"prebuilt {r['ratio_prebuilt']:.2f}x)")
    print()
    print(f"DP segmentation, n = {args.n}, k = {args.pieces} linear pieces, min_size 2, jump "
          f"{args.jump}: deepbasis optimal_segmentation vs ruptures.Dynp(model='linear')")
    dp = bench_dp(args.n, args.pieces, args.jump, args.dp_rounds)
    print(f"  same breakpoints: {dp['same_breakpoints']}; cost {dp['cost_ours']:.12g} "
          f"(ruptures {dp['cost_ruptures']:.12g})")
    print(f"  deepbasis {dp['ours_s']:.4f} s  ruptures {dp['ruptures_s']:.2f} s  "
          f"ruptures/deepbasis {dp['ratio']:.0f}x (target >= 10)")
    return {"spline": rows, "dp": dp}


if __name__ == "__main__":
    main(sys.argv[1:])
