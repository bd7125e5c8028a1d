"""BasisRegressor defaults vs. the same-size MLP trained the usual ways: test error, side by side.

Run:  /work/venv/bin/python benchmarks/bench_estimator.py            (≈ 8 min on 2 busy cores)
      /work/venv/bin/python benchmarks/bench_estimator.py --quick    (one seed, 200 steps)

Targets on [0, 1] and [0, 1]² of different character: smooth, kinked, discontinuous and
oscillatory, in 1-D (256 random training points) and 2-D (1024). Test error is the RMSE on a
dense grid (2001 points in 1-D, 71 × 71 in 2-D), median over seeds. Contestants, all with the
same width and depth (32 × 4 by default) and the same number of iterations:

- ``BasisRegressor()``: the estimator's defaults (residual Box-initialized network trained by
  LSGD in float64; ReLU or tanh, whichever is better on 20 % held-out training rows);
- ``ReLU only``: the same with ``activation="relu"`` (one network on every row), to show what
  the choice of activation contributes;
- ``Adam MLP``: ``nn.Sequential`` of ``nn.Linear`` + ReLU with PyTorch's default init, full
  batch Adam (lr 1e-3, PyTorch's default) on the MSE, float64, standardized inputs and targets;
- ``sklearn MLPRegressor``: hidden_layer_sizes = (32,) * 4, ``max_iter`` = the same number of
  *epochs* (so more steps: minibatches of 200, 2 per epoch in 1-D and 6 in 2-D), with its
  plateau stopping disabled so that every epoch runs, its other defaults (Adam, lr 1e-3,
  L2 penalty 1e-4), inside StandardScaler / TransformedTargetRegressor.

The ratio columns are baseline error / BasisRegressor error (> 1: BasisRegressor is more
accurate). Timings share the machine with whatever else runs and are only indicative.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np
import torch
from sklearn.compose import TransformedTargetRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from torch import nn

from deepbasis import BasisRegressor


def franke(x):
    a, b = 9 * x[:, 0], 9 * x[:, 1]
    return (0.75 * np.exp(-((a - 2) ** 2 + (b - 2) ** 2) / 4)
            + 0.75 * np.exp(-((a + 1) ** 2) / 49 - (b + 1) / 10)
            + 0.5 * np.exp(-((a - 7) ** 2 + (b - 3) ** 2) / 4)
            - 0.2 * np.exp(-((a - 4) ** 2) - (b - 7) ** 2))


TARGETS = {
    # name: (input dimension, character, function)
    "sin(2πx)": (1, "smooth", lambda x: np.sin(2 * np.pi * x[:, 0])),
    "|x − 1/3|": (1, "kinked", lambda x: np.abs(x[:, 0] - 1 / 3)),
    "u1 (Cyr eq. 17)": (1, "discontinuous",
                        lambda x: np.where(x[:, 0] < 0.5, x[:, 0], 1 - 0.75 * x[:, 0] ** 2)),
    "sin(10πx)": (1, "oscillatory", lambda x: np.sin(10 * np.pi * x[:, 0])),
    "Franke": (2, "smooth", franke),
    "|x + y − 0.8|": (2, "kinked", lambda x: np.abs(x[:, 0] + x[:, 1] - 0.8)),
    "disk indicator": (2, "discontinuous",
                       lambda x: (((x[:, 0] - 0.5) ** 2 + (x[:, 1] - 0.5) ** 2) < 0.09) * 1.0),
    "sin(4πx)cos(3πy)": (2, "oscillatory",
                         lambda x: np.sin(4 * np.pi * x[:, 0]) * np.cos(3 * np.pi * x[:, 1])),
}


def data(name: str, seed: int):
    d, _, f = TARGETS[name]
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, size=(256 if d == 1 else 1024, d))
    if d == 1:
        test = np.linspace(0.0, 1.0, 2001)[:, None]
    else:
        g = np.linspace(0.0, 1.0, 71)
        test = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    return X, f(X), test, f(test)


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def ours(X, y, test, seed, steps, width, depth):
    model = BasisRegressor(steps=steps, width=width, depth=depth, random_state=seed).fit(X, y)
    return model.predict(test)


def ours_relu(X, y, test, seed, steps, width, depth):
    model = BasisRegressor(steps=steps, width=width, depth=depth, activation="relu",
                           random_state=seed).fit(X, y)
    return model.predict(test)


def adam_mlp(X, y, test, seed, steps, width, depth):
    torch.manual_seed(seed)  # PyTorch's default init draws from the global generator
    layers: list[nn.Module] = [nn.Linear(X.shape[1], width), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.ReLU()]
    net = nn.Sequential(*layers, nn.Linear(width, 1)).double()
    mx, sx, my, sy = X.mean(0), X.std(0), y.mean(), y.std()
    x = torch.tensor((X - mx) / sx)
    t = torch.tensor((y - my) / sy)[:, None]
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((net(x) - t) ** 2).mean()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return net(torch.tensor((test - mx) / sx))[:, 0].numpy() * sy + my


def sklearn_mlp(X, y, test, seed, steps, width, depth):
    # n_iter_no_change=steps: run every epoch (its default stops once the training loss
    # improves by < 1e-4 for 10 epochs, after only ~20-100 epochs on these targets).
    mlp = MLPRegressor(hidden_layer_sizes=(width,) * depth, max_iter=steps,
                       n_iter_no_change=steps, random_state=seed)
    model = TransformedTargetRegressor(make_pipeline(StandardScaler(), mlp),
                                       transformer=StandardScaler())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y).predict(test)


CONTESTANTS = {"BasisRegressor": ours, "ReLU only": ours_relu, "Adam MLP": adam_mlp,
               "sklearn MLP": sklearn_mlp}
BASELINES = ("Adam MLP", "sklearn MLP")  # the ratio columns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="one seed, 200 steps")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps = 1, 200
    torch.set_num_threads(1)  # every contestant on one core, like-for-like
    start = time.perf_counter()
    rows = []
    with threadpool_limits(1):
        for name, (d, character, _) in TARGETS.items():
            errors = {key: [] for key in CONTESTANTS}
            seconds = {key: [] for key in CONTESTANTS}
            for seed in range(args.seeds):
                X, y, test, truth = data(name, seed)
                for key, run in CONTESTANTS.items():
                    tic = time.perf_counter()
                    prediction = run(X, y, test, seed, args.steps, args.width, args.depth)
                    seconds[key].append(time.perf_counter() - tic)
                    errors[key].append(rmse(prediction, truth))
            median = {key: float(np.median(v)) for key, v in errors.items()}
            times = {key: float(np.median(v)) for key, v in seconds.items()}
            rows.append((name, d, character, median, times))
            print(f"{name:<18} " + "  ".join(f"{k} {median[k]:.2e} ({times[k]:.1f}s)"
                                             for k in CONTESTANTS), flush=True)
    ratios = {key: [] for key in BASELINES}
    print()
    print(f"Test RMSE, median over {args.seeds} seed(s); width {args.width}, depth {args.depth}, "
          f"{args.steps} steps; median fit time in brackets.\n")
    print("| target | d | character | BasisRegressor() | BasisRegressor(activation='relu') | "
          "Adam MLP | sklearn MLPRegressor | Adam / ours | sklearn / ours |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, d, character, median, times in rows:
        base = median["BasisRegressor"]
        cells = [f"{median[k]:.2e} ({times[k]:.1f} s)" for k in CONTESTANTS]
        ratio = []
        for key in ratios:
            value = median[key] / base if base > 0 else math.inf
            ratios[key].append(value)
            ratio.append(f"{value:.1f}×")
        label = name.replace("|", "\\|")  # pipes inside a markdown cell
        print(f"| {label} | {d} | {character} | " + " | ".join(cells + ratio) + " |")
    print()
    for key, values in ratios.items():
        geo = float(np.exp(np.mean(np.log(values))))
        print(f"{key} / BasisRegressor: median {np.median(values):.1f}×, geometric mean "
              f"{geo:.1f}×, BasisRegressor more accurate on {sum(v > 1 for v in values)} of "
              f"{len(values)} targets")
    print(f"total wall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
