"""Coverage of BasisRegressor's 95 % intervals, predict(X, return_std=True), on held-out points.

Two noisy sets, default settings, each fitted once per seed and judged on 4,000 fresh noisy
points: sin(2πx) + N(0, 0.1²) on 200 rows, and make_friedman1 (10 inputs, 5 unused) with noise
1 on 500 rows. A point is covered when |y − mean| ≤ 1.96 std. Prints, per set and seed, the
coverage, the fitted noise_std_ beside the noise actually drawn on the training rows (no
estimate from those rows can do better than that), the test RMSE beside the mean predicted std,
and the fit time; then each set's mean coverage. Target: 93–97 %.

Two things spread the coverage of one fit around its expectation: the test points (binomial,
√(0.95·0.05/4000) = 0.34 %) and σ's estimate from ν residual degrees of freedom: σ̂/σ varies by
1/√(2ν), which moves the coverage by 2·1.96·φ(1.96)/√(2ν) ≈ 0.23/√(2ν): ±1.2 % at ν ≈ 190 (the
sine, pooled rows), ±1.6 % at ν = 100 (Friedman 1, held-out rows only).

    .venv/bin/python benchmarks/bench_intervals.py [--seeds 0,1,2] [--sets sin,friedman1]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import make_friedman1

from deepbasis.estimator import BasisRegressor

TEST_ROWS = 4000


def _sin(seed: int):
    """sin(2πx) + N(0, 0.1²): 200 training rows, TEST_ROWS test rows; also the training noise."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(200 + TEST_ROWS, 1))
    noise = 0.1 * rng.standard_normal(len(X))
    y = np.sin(2 * np.pi * X[:, 0]) + noise
    return X[:200], y[:200], X[200:], y[200:], noise[:200]


def _friedman1(seed: int):
    """make_friedman1, noise 1: 500 training rows, TEST_ROWS test rows."""
    X, y = make_friedman1(n_samples=500 + TEST_ROWS, noise=1.0, random_state=seed)
    truth = make_friedman1(n_samples=500 + TEST_ROWS, noise=0.0, random_state=seed)[1]
    return X[:500], y[:500], X[500:], y[500:], (y - truth)[:500]


SETS = {"sin": _sin, "friedman1": _friedman1}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {list(SETS)}")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, list[float]] = {}
    print(f"{'set':10s} {'seed':>4s} {'coverage':>8s} {'noise_std_':>10s} {'drawn':>7s} "
          f"{'test RMSE':>9s} {'mean std':>8s} {'fit s':>6s}")
    for name in args.sets.split(","):
        for seed in seeds:
            X, y, X_test, y_test, drawn = SETS[name](seed)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # PoorFitWarning is not what is measured here
                model = BasisRegressor(random_state=seed).fit(X, y)
            seconds = time.perf_counter() - start
            mean, std = model.predict(X_test, return_std=True)
            coverage = float(np.mean(np.abs(y_test - mean) <= 1.96 * std))
            results.setdefault(name, []).append(coverage)
            rmse = float(np.sqrt(np.mean((y_test - mean) ** 2)))
            print(f"{name:10s} {seed:4d} {coverage:8.3f} {float(model.noise_std_[0]):10.4f} "
                  f"{float(np.std(drawn)):7.4f} {rmse:9.4f} {float(std.mean()):8.4f} "
                  f"{seconds:6.1f}", flush=True)
    for name, values in results.items():
        inside = sum(0.93 <= v <= 0.97 for v in values)
        print(f"{name}: mean coverage {np.mean(values):.3f} over {len(values)} seeds, "
              f"{inside}/{len(values)} in 93-97 %")
    return results


if __name__ == "__main__":
    main()
