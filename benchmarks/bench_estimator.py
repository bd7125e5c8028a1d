"""BasisRegressor against the regressors people use, and against the same-size MLP.

Two suites, side by side in one run each, one thread per model:

``--suite regressors`` (the default; issue 15): BasisRegressor() against a Gaussian process
(ARD RBF + white noise), kernel ridge with a cross-validated RBF kernel, polynomial features +
RidgeCV, HistGradientBoosting and MLPRegressor (adam and lbfgs) on sin(2πx) and Franke with and
without noise σ = 0.01, make_friedman1/2/3, load_diabetes and Friedman 1 at 50,000 rows.
Prints test RMSE / std (the function error on a noise-free test set for synthetic data) and fit
time (CPU seconds of the process, which with one thread is the time on one free core even
when the machine is shared), median of 3 splits; see ``regressor_suite`` below.

  /work/venv/bin/python benchmarks/bench_estimator.py                (hours on 2 busy cores)
  /work/venv/bin/python benchmarks/bench_estimator.py --splits 1 --rows sin,franke
  /work/venv/bin/python benchmarks/bench_estimator.py --quick     (1 split, no 50,000-row row)

``--suite criteria`` (issue 26, item 2): which criterion chooses the activation best — the
held-out error (what fit uses), the Bayesian last layer's evidence on every row, or 5-fold
cross-validation — on noisy and kinked rows (``criteria_suite`` below; ≈ 5 min):

  /work/venv/bin/python benchmarks/bench_estimator.py --suite criteria

``--suite networks``: the estimator's defaults vs. the same-size MLP trained the usual ways:

  /work/venv/bin/python benchmarks/bench_estimator.py --suite networks          (≈ 8 min)
  /work/venv/bin/python benchmarks/bench_estimator.py --suite networks --quick  (1 seed, 200 steps)

The rest of this docstring describes the networks suite.

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
    parser.add_argument("--suite", choices=("regressors", "networks", "criteria"),
                        default="regressors")
    parser.add_argument("--seeds", type=int, default=3, help="networks suite: seeds")
    parser.add_argument("--steps", type=int, default=1000, help="networks suite: steps")
    parser.add_argument("--width", type=int, default=32, help="networks suite: width")
    parser.add_argument("--depth", type=int, default=4, help="networks suite: depth")
    parser.add_argument("--splits", type=int, default=3, help="regressors suite: splits")
    parser.add_argument("--rows", default=None,
                        help="regressors suite: comma-separated row keys (" + ", ".join(ROWS)
                        + "); default all")
    parser.add_argument("--models", default=None,
                        help="regressors suite: comma-separated model keys (" +
                        ", ".join(MODELS) + "); default all")
    parser.add_argument("--quick", action="store_true",
                        help="networks: one seed, 200 steps; regressors: one split, no 50k row")
    args = parser.parse_args()
    torch.set_num_threads(1)  # every contestant on one core, like-for-like
    if args.suite == "regressors":
        regressor_suite(args)
        return
    if args.suite == "criteria":
        criteria_suite(args)
        return
    if args.quick:
        args.seeds, args.steps = 1, 200
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


# --- the regressors suite (issue 15) ----------------------------------------------------------


def _sin_data(noise: float):
    def make(seed):
        rng = np.random.default_rng(seed)
        X = rng.uniform(0.0, 1.0, size=(256, 1))
        f = lambda x: np.sin(2 * np.pi * x[:, 0])  # noqa: E731
        test = np.linspace(0.0, 1.0, 2001)[:, None]
        return X, f(X) + noise * rng.standard_normal(len(X)), test, f(test)
    return make


def _franke_data(noise: float):
    def make(seed):
        rng = np.random.default_rng(seed)
        X = rng.uniform(0.0, 1.0, size=(500, 2))
        g = np.linspace(0.0, 1.0, 71)
        test = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
        return X, franke(X) + noise * rng.standard_normal(len(X)), test, franke(test)
    return make


def _friedman_data(which: int, n: int, noise: float, **options):
    from sklearn import datasets

    maker = getattr(datasets, f"make_friedman{which}")

    def make(seed):
        X, y = maker(n_samples=n, noise=noise, random_state=seed, **options)
        test, truth = maker(n_samples=min(n, 10000), noise=0.0, random_state=10_000 + seed,
                            **options)
        return X, y, test, truth  # the test targets are the noise-free function
    return make


def _kink_data(seed):
    """|x − 0.3| + 0.5 sin(6πx) on 256 random points, noise-free: a kink on a smooth wave."""
    rng = np.random.default_rng(seed)
    f = lambda x: np.abs(x[:, 0] - 0.3) + 0.5 * np.sin(6 * np.pi * x[:, 0])  # noqa: E731
    X = rng.uniform(0.0, 1.0, size=(256, 1))
    test = np.linspace(0.0, 1.0, 2001)[:, None]
    return X, f(X), test, f(test)


def _pendulum(X: np.ndarray, steps: int = 400) -> np.ndarray:
    """Angle θ(t) of a damped pendulum θ'' + c θ' + g sin θ = 0 from θ(0) = θ0, θ'(0) = ω0:
    rows of X are (θ0, ω0, c, t), integrated by classical RK4 with ``steps`` steps of t / steps
    (all rows at once; error ~1e-9 of the range)."""
    theta, omega, c, t = (X[:, j].copy() for j in range(4))
    h = t / steps

    def rate(th, om):
        return om, -c * om - 9.81 * np.sin(th)

    for _ in range(steps):
        k1 = rate(theta, omega)
        k2 = rate(theta + h / 2 * k1[0], omega + h / 2 * k1[1])
        k3 = rate(theta + h / 2 * k2[0], omega + h / 2 * k2[1])
        k4 = rate(theta + h * k3[0], omega + h * k3[1])
        theta = theta + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        omega = omega + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
    return theta


def _pendulum_data(seed):
    """The damped pendulum's θ(t) on 1,000 random (θ0, ω0, c, t) in [−1, 1]² × [0.1, 1] ×
    [0, 2], noise-free (a 4-input smooth simulation)."""
    rng = np.random.default_rng(seed)
    low, high = np.array([-1.0, -1.0, 0.1, 0.0]), np.array([1.0, 1.0, 1.0, 2.0])
    X = low + (high - low) * rng.uniform(size=(1000, 4))
    test = low + (high - low) * np.random.default_rng(10_000 + seed).uniform(size=(4000, 4))
    return X, _pendulum(X), test, _pendulum(test)


def _diabetes_data(seed):
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    X, y = load_diabetes(return_X_y=True)
    X, test, y, truth = train_test_split(X, y, test_size=0.25, random_state=seed)
    return X, y, test, truth  # real data: the test targets are noisy observations


def _step_data(seed):
    """A jump of 1 at x = 0.4 on a line 0.3 x, 300 random points, noise-free."""
    rng = np.random.default_rng(seed)
    f = lambda x: np.where(x[:, 0] > 0.4, 1.0, 0.0) + 0.3 * x[:, 0]  # noqa: E731
    X = rng.uniform(size=(300, 1))
    test = np.linspace(0.0, 1.0, 2001)[:, None]
    return X, f(X), test, f(test)


def _steps_2d_data(seed):
    """floor(3 x0) + sin(3 x1) on 800 random points + noise 0.05: steps along one input."""
    rng = np.random.default_rng(seed)
    f = lambda x: np.floor(3 * x[:, 0]) + np.sin(3 * x[:, 1])  # noqa: E731
    X = rng.uniform(size=(800, 2))
    test = np.random.default_rng(99 + seed).uniform(size=(4000, 2))
    return X, f(X) + 0.05 * rng.standard_normal(len(X)), test, f(test)


def _noisy_kink_data(seed):
    """|x − 0.3| + 0.5 sin(6πx) on 400 random points + noise 0.02."""
    rng = np.random.default_rng(seed)
    f = lambda x: np.abs(x[:, 0] - 0.3) + 0.5 * np.sin(6 * np.pi * x[:, 0])  # noqa: E731
    X = rng.uniform(size=(400, 1))
    test = np.linspace(0.0, 1.0, 2001)[:, None]
    return X, f(X) + 0.02 * rng.standard_normal(len(X)), test, f(test)


def _heavy_tails_data(seed):
    """A smooth function of 4 of 10 inputs on 1,500 rows + 0.1 × Student-t(2) noise."""
    rng = np.random.default_rng(seed)
    f = lambda x: (np.sin(np.pi * x[:, 0] * x[:, 1]) + 2 * (x[:, 2] - 0.5) ** 2  # noqa: E731
                   + x[:, 3])
    X = rng.uniform(size=(5500, 10))
    y = f(X) + 0.1 * rng.standard_t(2, size=len(X))
    return X[:1500], y[:1500], X[1500:], f(X[1500:])


def _linnerud_data(seed):
    """load_linnerud: 3 exercises → 3 body measurements, 15 training rows, 5 held out."""
    from sklearn.datasets import load_linnerud

    X, Y = load_linnerud(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(X))
    return X[order[:15]], Y[order[:15]], X[order[15:]], Y[order[15:]]


# key: (label, make(seed) -> (X, y, X_test, y_test), what the error is measured against)
ROWS = {
    "sin": ("sin(2πx), 256 rows", _sin_data(0.0), "function"),
    "sin-noise": ("sin(2πx) + noise 0.01", _sin_data(0.01), "function"),
    "franke": ("Franke, 500 rows", _franke_data(0.0), "function"),
    "franke-noise": ("Franke + noise 0.01", _franke_data(0.01), "function"),
    "friedman1": ("make_friedman1 (1000, noise 1)", _friedman_data(1, 1000, 1.0), "function"),
    "friedman2": ("make_friedman2 (1000)", _friedman_data(2, 1000, 0.0), "function"),
    "friedman3": ("make_friedman3 (1000)", _friedman_data(3, 1000, 0.0), "function"),
    "diabetes": ("load_diabetes (331 train rows)", _diabetes_data, "held-out y"),
    # issue 26's targets: irrelevant inputs, noisy 1-D, a kink, a 4-input simulation
    "friedman1-1500": ("make_friedman1 (1500, noise-free)", _friedman_data(1, 1500, 0.0),
                       "function"),
    "friedman1-1500-noise": ("make_friedman1 (1500, noise 1)", _friedman_data(1, 1500, 1.0),
                             "function"),
    "friedman1-2000": ("make_friedman1 (2000, noise-free)", _friedman_data(1, 2000, 0.0),
                       "function"),
    "friedman1-600": ("make_friedman1 (600, noise 1)", _friedman_data(1, 600, 1.0), "function"),
    "sin-noise-0.1": ("sin(2πx) + noise 0.1", _sin_data(0.1), "function"),
    "kink": ("|x − 0.3| + 0.5 sin(6πx), 256 rows", _kink_data, "function"),
    "pendulum": ("damped pendulum θ(θ0, ω0, c, t), 1000 rows", _pendulum_data, "function"),
    # tables first measured in issue 26's third round, after the changes were designed
    "step": ("a jump in 1-D, 300 rows", _step_data, "function"),
    "steps-2d": ("steps in 2-D + noise 0.05, 800 rows", _steps_2d_data, "function"),
    "kink-noise": ("|x − 0.3| + 0.5 sin(6πx) + noise 0.02, 400 rows", _noisy_kink_data,
                   "function"),
    "heavy-tails": ("4 of 10 inputs + Student-t(2) noise, 1500 rows", _heavy_tails_data,
                    "function"),
    "linnerud": ("load_linnerud (3 outputs, 15 train rows)", _linnerud_data, "held-out y"),
    "friedman1-50k": ("Friedman 1, 50,000 × 8, noise 1",
                      _friedman_data(1, 50_000, 1.0, n_features=8), "function"),
}
LARGE = 20_000  # rows above which the O(n²)-memory kernel methods are not run


def _scaled(model):
    return TransformedTargetRegressor(make_pipeline(StandardScaler(), model),
                                      transformer=StandardScaler())


def _gp(X, y, seed):
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    d = X.shape[1]
    kernel = (ConstantKernel(1.0) * RBF(length_scale=np.ones(d), length_scale_bounds=(1e-3, 1e3))
              + WhiteKernel(1e-3, noise_level_bounds=(1e-12, 1e1)))
    gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2,
                                  random_state=seed)
    return make_pipeline(StandardScaler(), gp).fit(X, y)


def _kernel_ridge(X, y, seed):
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.model_selection import GridSearchCV

    grid = {"regressor__kernelridge__alpha": np.logspace(-8, 0, 9),
            "regressor__kernelridge__gamma": np.logspace(-3, 1, 9) / X.shape[1]}
    search = GridSearchCV(_scaled(KernelRidge(kernel="rbf")), grid, cv=5)
    return search.fit(X, y)


def _polynomial(X, y, seed):
    from math import comb

    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GridSearchCV
    from sklearn.preprocessing import PolynomialFeatures

    d = X.shape[1]
    limit = min(2000, 2 * len(X)) if len(X) <= 10_000 else 500  # features; bounds the cost
    degrees = [k for k in range(1, 16) if comb(d + k, k) <= limit]
    pipeline = make_pipeline(StandardScaler(), PolynomialFeatures(), StandardScaler(),
                             RidgeCV(alphas=np.logspace(-10, 3, 27)))
    search = GridSearchCV(pipeline, {"polynomialfeatures__degree": degrees}, cv=5)
    return search.fit(X, y)


def _hist_gradient_boosting(X, y, seed):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(random_state=seed).fit(X, y)


def _mlp(solver):
    def run(X, y, seed):
        mlp = MLPRegressor(solver=solver, max_iter=2000, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return _scaled(mlp).fit(X, y)
    return run


def _basis(X, y, seed):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = BasisRegressor(random_state=seed).fit(X, y)
    model.warned_ = [str(w.message)[:60] for w in caught]
    return model


MODELS = {
    "basis": ("BasisRegressor()", _basis),
    "gp": ("GP (ARD RBF + White)", _gp),
    "krr": ("KernelRidge (CV RBF)", _kernel_ridge),
    "poly": ("poly + RidgeCV", _polynomial),
    "hgb": ("HistGradientBoosting", _hist_gradient_boosting),
    "adam": ("MLPRegressor adam", _mlp("adam")),
    "lbfgs": ("MLPRegressor lbfgs", _mlp("lbfgs")),
}


def regressor_suite(args) -> None:
    rows = list(ROWS) if args.rows is None else args.rows.split(",")
    models = list(MODELS) if args.models is None else args.models.split(",")
    if args.quick:
        args.splits = 1
        rows = [r for r in rows if r != "friedman1-50k"] if args.rows is None else rows
    for key in rows + models:
        if key not in ROWS and key not in MODELS:
            raise SystemExit(f"unknown row or model {key!r}")
    start = time.perf_counter()
    table = []
    with threadpool_limits(1):
        for row in rows:
            label, make, against = ROWS[row]
            errors = {key: [] for key in models}
            seconds = {key: [] for key in models}
            notes = {key: "" for key in models}
            for split in range(args.splits):
                X, y, test, truth = make(split)
                spread = float(np.std(truth))
                for key in models:
                    if key in ("gp", "krr") and len(X) > LARGE:
                        notes[key] = "not run (O(n²) memory)"
                        continue
                    tic = time.process_time()  # CPU time: the machine may be shared
                    model = MODELS[key][1](X, y, split)
                    seconds[key].append(time.process_time() - tic)
                    errors[key].append(rmse(model.predict(test), truth) / spread)
                    if getattr(model, "warned_", None):
                        notes[key] = "warned"
                    print(f"  {row} split {split} {key}: {errors[key][-1]:.3e} "
                          f"({seconds[key][-1]:.1f} s){' ' + notes[key] if notes[key] else ''}",
                          flush=True)
            table.append((row, label, against, errors, seconds, notes))
    print()
    print(f"Test RMSE / std of the test targets (noise-free function for synthetic rows), median "
          f"of {args.splits} split(s); median fit time in CPU seconds; one thread each.\n")
    print("| data | " + " | ".join(MODELS[k][0] for k in models) + " | ours / best |")
    print("|---|" + "---|" * (len(models) + 1))
    for _, label, _, errors, seconds, notes in table:
        cells, medians = [], {}
        for key in models:
            if errors[key]:
                medians[key] = float(np.median(errors[key]))
                cells.append(f"{medians[key]:.2e} ({np.median(seconds[key]):.1f} s)")
            else:
                cells.append(notes[key] or "–")
        best = min(medians.values()) if medians else math.nan
        ours = medians.get("basis", math.nan)
        ratio = f"{ours / best:.2f}×" if best > 0 else "–"
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
    print(f"\ntotal wall time: {time.perf_counter() - start:.0f} s")


# --- the criteria suite (issue 26, item 2) -----------------------------------------------------

CRITERIA_ROWS = "sin-noise,sin-noise-0.1,kink,franke-noise,friedman1-600,diabetes"


def criteria_suite(args) -> None:
    """Which criterion picks the activation best: for each row, split and activation (ReLU,
    tanh), BasisRegressor(activation=[a]) is fitted as usual (early stopping on 20 % held-out
    rows, head re-solved on every row) and judged by (1) its held-out MSE (what fit uses), (2)
    the log evidence of the Bayesian last layer on every row (the basis taken as fixed), and
    (3) 5-fold cross-validation (five more fits, each on 4/5 of the rows). Prints the test
    error of what each criterion picks beside the better of the two ("oracle")."""
    from sklearn.model_selection import KFold

    from deepbasis.estimator.calibration import log_evidence
    from deepbasis.train.lstsq import design_matrix

    rows = (args.rows or CRITERIA_ROWS).split(",")
    picks = {c: [] for c in ("held-out", "evidence", "5-fold", "oracle")}
    start = time.perf_counter()
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for row in rows:
            for split in range(args.splits):
                X, y, test, truth = ROWS[row][1](split)
                spread = float(np.std(truth))
                scores = {}
                for activation in ("relu", "tanh"):
                    settings = {"activation": [activation], "random_state": split}
                    model = BasisRegressor(**settings).fit(X, y)
                    error = rmse(model.predict(test), truth) / spread
                    with torch.no_grad():
                        A = design_matrix(model.model_.features(
                            torch.as_tensor(X, dtype=torch.float64))).numpy()
                    evidence = log_evidence(A, (y - y.mean()) / y.std())
                    folds = []
                    for train, held in KFold(5, shuffle=True, random_state=split).split(X):
                        fold = BasisRegressor(**settings).fit(X[train], y[train])
                        folds.append(np.mean((fold.predict(X[held]) - y[held]) ** 2))
                    scores[activation] = (error, float(model.validation_mse_[0]), evidence,
                                          float(np.mean(folds)))
                errors = {a: v[0] for a, v in scores.items()}
                chosen = {"held-out": min(scores, key=lambda a: scores[a][1]),
                          "evidence": max(scores, key=lambda a: scores[a][2]),
                          "5-fold": min(scores, key=lambda a: scores[a][3]),
                          "oracle": min(errors, key=errors.get)}
                for criterion, activation in chosen.items():
                    picks[criterion].append((row, errors[activation]))
                print(f"  {row} split {split}: " + ", ".join(
                    f"{a} test {v[0]:.2e} held-out {v[1]:.2e} evidence {v[2]:.1f} "
                    f"5-fold {v[3]:.2e}" for a, v in scores.items())
                    + " | picks " + ", ".join(f"{c} {a}" for c, a in chosen.items()),
                    flush=True)
    print("\nTest RMSE / std of the activation each criterion picks, median over "
          f"{args.splits} split(s):\n")
    print("| data | " + " | ".join(picks) + " |")
    print("|---|" + "---|" * len(picks))
    for row in rows:
        cells = [f"{np.median([e for r, e in picks[c] if r == row]):.2e}" for c in picks]
        print(f"| {ROWS[row][0]} | " + " | ".join(cells) + " |")
    print(f"\ntotal wall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
