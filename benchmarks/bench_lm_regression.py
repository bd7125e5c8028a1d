"""Regression at equal wall time: Levenberg–Marquardt against LSGD, beside a tuned GP.

Noise-free Franke on 500 random points of [0, 1]² (error on a 71 × 71 grid) and sin(2πx) +
0.3 sin(10πx) on 128 random points of [0, 1] (error on 2,001 points between the outermost two:
beyond them every method extrapolates, and a network's extrapolation can be off by 1e2). The
same network for every network method — MLP(d, 32, 2, tanh), Box init (seeded), float64, one
thread — given the same wall-time budget:

- LSGD: least-squares head, Adam (lr 5e-3) on the hidden layers;
- LM: fit(method="lm"), the head eliminated by least squares;
- LM + GCV head: the same with lstsq_method="gcv" (a ridge head, λ by generalized CV);
- LM + held-out stop: 20 % of the training rows held out; the state with the best held-out error
  is kept (LM fits the other 80 %).

and a Gaussian process with an ARD RBF + white-noise kernel (scikit-learn, 2 optimizer restarts),
the strongest classical baseline on smooth data. Printed: test RMSE / std(y) and wall seconds.
The question is whether a second-order step overfits between the points where LSGD does not.

    python benchmarks/bench_lm_regression.py [--budget 20] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_estimator import _gp, franke  # noqa: E402

from deepbasis import MLP, fit, init  # noqa: E402


def _targets():
    def franke_data(seed):
        rng = np.random.default_rng(seed)
        X = rng.uniform(0, 1, (500, 2))
        g = np.linspace(0, 1, 71)
        test = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
        return X, franke(X), test, franke(test)

    def wave(x):
        return np.sin(2 * np.pi * x[:, 0]) + 0.3 * np.sin(10 * np.pi * x[:, 0])

    def wave_data(seed):
        rng = np.random.default_rng(seed)
        X = rng.uniform(0, 1, (128, 1))
        # between the points only: past the outermost ones every method extrapolates
        test = np.linspace(X.min(), X.max(), 2001)[:, None]
        return X, wave(X), test, wave(test)

    return {"Franke, 500 points": franke_data, "sin 2πx + 0.3 sin 10πx, 128 points": wave_data}


def _network(d: int, seed: int) -> MLP:
    model = MLP(d, 32, 2, activation="tanh", dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return init.box_(model, generator=seed)


def _train(method, X, y, seed, budget):
    x_t, y_t = torch.from_numpy(X), torch.from_numpy(y)[:, None]
    model = _network(X.shape[1], seed)
    start = time.perf_counter()

    def out_of_time(step, loss, model) -> bool:
        return time.perf_counter() - start > budget

    common = {"steps": 10**7, "progress": False}
    if method == "LSGD":
        fit(model, x_t, y_t, method="lsgd", lr=5e-3, callbacks=[out_of_time], **common)
    elif method == "LM":
        fit(model, x_t, y_t, method="lm", callbacks=[out_of_time], **common)
    elif method == "LM + GCV head":
        fit(model, x_t, y_t, method="lm", lstsq_method="gcv", callbacks=[out_of_time], **common)
    else:  # held-out stop: fit 80 %, keep the state with the best error on the other 20 %
        order = np.random.default_rng(seed).permutation(len(X))
        cut = int(0.8 * len(X))
        fit_rows, held = order[:cut], order[cut:]
        x_h, y_h = x_t[held], y_t[held]
        best = {"error": np.inf, "state": None}

        def keep_best(step, loss, model) -> bool:
            with torch.no_grad():
                error = float(((model(x_h) - y_h) ** 2).mean())
            if error < best["error"]:
                best["error"], best["state"] = error, copy.deepcopy(model.state_dict())
            return out_of_time(step, loss, model)

        fit(model, x_t[fit_rows], y_t[fit_rows], method="lm", callbacks=[keep_best], **common)
        model.load_state_dict(best["state"])
    return model, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per network method")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    methods = ["LSGD", "LM", "LM + GCV head", "LM + held-out stop"]
    for name, make in _targets().items():
        print(f"\n{name}: test RMSE / std(y) (median over seeds {args.seeds}), wall seconds")
        results: dict[str, list[tuple[float, float]]] = {m: [] for m in [*methods, "GP"]}
        for seed in args.seeds:
            X, y, test, truth = make(seed)
            scale = truth.std()
            for method in methods:
                model, wall = _train(method, X, y, seed, args.budget)
                with torch.no_grad():
                    pred = model(torch.from_numpy(test))[:, 0].numpy()
                results[method].append((np.sqrt(np.mean((pred - truth) ** 2)) / scale, wall))
            tic = time.perf_counter()
            gp = _gp(X, y, seed)
            wall = time.perf_counter() - tic
            results["GP"].append((np.sqrt(np.mean((gp.predict(test) - truth) ** 2)) / scale,
                                  wall))
        for method, values in results.items():
            errors = [e for e, _ in values]
            walls = [w for _, w in values]
            print(f"  {method:>20}: {np.median(errors):.2e}  (range {min(errors):.1e}–"
                  f"{max(errors):.1e}), {np.median(walls):.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
