"""Linear PDEs to scientific accuracy: Levenberg–Marquardt against the usual PINN recipes.

Four problems with exact solutions (deepbasis.problems.pdes: Poisson, Helmholtz, space-time
heat, variable-coefficient diffusion), 51 × 51 residual grids and 51 points per boundary side,
one hidden layer of 64 tanh units, Box init, float64, ONE thread. Every method gets the same
wall-time budget; the relative L2 error on a 101 × 101 grid is printed at that time, and the
error-vs-time curves are drawn (the experiment beyond.pde_accuracy's report):

- LM (variable projection), LM (joint): fit(method="lm")
- LSGD: least-squares head + Adam (lr 5e-3) on the hidden layer
- Adam → L-BFGS: Adam (lr 1e-3) on all parameters for half the budget, then L-BFGS
- LM with the identity as damping scale (the damping-scale study; the default is the diagonal)
- DeepXDE's own recipe (Glorot normal init, Adam lr 1e-3 for 5,000 iterations, then L-BFGS
  with its defaults), on the same points and network, when `deepxde` is installed (it is a
  benchmark-only comparison, never a dependency); its wall time is its own, not the budget.

    python benchmarks/bench_pde.py                  # all four problems, 60 s per method
    python benchmarks/bench_pde.py --budget 20 --pdes poisson
    python benchmarks/bench_pde.py --jacobian       # the Jacobian timings only (2-D Poisson)
    python benchmarks/bench_pde.py --solvers        # normal vs kernel vs QR per trial step

Never fails on timing: it reports.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch

from deepbasis import fit
from deepbasis.experiments.beyond import pde_accuracy
from deepbasis.problems.pdes import PDES, pde_problem
from deepbasis.train.engines.vmap import _RowsOf
from deepbasis.train.jacobian import ResidualRows
from deepbasis.train.lm import LMOptions, _State, _System, _trial
from deepbasis.train.lstsq import solve_head


def jacobian_timings() -> None:
    """One Jacobian and one LM iteration on the 2-D Poisson PINN (2,805 rows)."""
    case = pde_problem("poisson", 51)
    print("2-D Poisson, 51 × 51 + 4 × 51 rows, float64, one thread")
    print(f"{'network':>18} {'rows × params':>14} {'Taylor streams':>15} "
          f"{'torch.func':>11} {'one LM iteration':>17}")
    for depth in (1, 2, 3):
        width = 64 if depth == 1 else 32
        model = pde_accuracy.network(width, depth, seed=0)
        rows = ResidualRows(model, case.problem)
        xi = rows.pack()
        A, b = rows.design(xi)
        theta = solve_head(A, b)
        rows.jacobian(xi, theta)  # warm-up
        tic = time.perf_counter()
        rows.jacobian(xi, theta)
        fast = time.perf_counter() - tic
        state = _State(rows, model, xi, theta, float(((A @ theta - b) ** 2).sum()))
        tic = time.perf_counter()
        system = _System(rows, state, joint=False, options=LMOptions())
        delta = system.step(1e-3 * system.max_diagonal(), None)
        system.predicted(delta)
        _trial(rows, state, delta, False, {"method": "auto", "rcond": None, "ridge": 0.0})
        iteration = time.perf_counter() - tic
        general = "—"
        if depth <= 2:  # the general path takes minutes beyond that
            rows.fast = False
            rows._skeleton = _RowsOf(model, case.problem)
            tic = time.perf_counter()
            rows.jacobian(xi, theta)
            general = f"{time.perf_counter() - tic:.2f} s"
        print(f"{f'2-{width}×{depth}-1':>18} {f'{rows.rows}×{rows.size}':>14} "
              f"{fast:>13.3f} s {general:>11} {iteration:>15.3f} s")


def solver_timings() -> None:
    """Per-trial cost and accuracy of the normal, kernel and QR solves (lm.py's table)."""
    print("one trial step after 30 LM iterations, μ = 1e-9 max diag(JᵀJ), one thread")
    for width, depth, n in ((64, 1, 51), (32, 2, 51), (32, 2, 15)):
        case = pde_problem("poisson", n)
        model = pde_accuracy.network(width, depth, seed=0)
        fit(model, case.problem, method="lm", steps=30, progress=False)
        rows = ResidualRows(model, case.problem)
        xi = rows.pack()
        A, b = rows.design(xi)
        state = _State(rows, model, xi, solve_head(A, b), 0.0)
        steps = {}
        for solver in ("normal", "kernel", "qr"):
            system = _System(rows, state, joint=False, options=LMOptions(solver=solver))
            scale = system.damping_scale(None)
            mu = 1e-9 * system.max_diagonal()
            system.step(mu, scale)  # the kernel form builds its matrix on the first call
            tic = time.perf_counter()
            steps[solver] = (system.step(mu, scale), time.perf_counter() - tic)
        reference = steps["qr"][0]
        text = " | ".join(f"{s} {t * 1e3:.1f} ms (δ off QR's by "
                          f"{float((d - reference).norm() / reference.norm()):.0e})"
                          for s, (d, t) in steps.items())
        print(f"  {rows.rows} × {rows.size}: {text}")


def deepxde_recipe(name: str, n: int, width: int, adam_steps: int) -> tuple[float, float]:
    """DeepXDE 1.x's usual recipe on the same points: (relative L2 error, wall seconds)."""
    os.environ.setdefault("DDE_BACKEND", "pytorch")
    import deepxde as dde
    import numpy as np

    dde.config.set_default_float("float64")
    case = pde_problem(name, n)
    points = np.concatenate([t.points.numpy() for t in case.problem.terms])
    geometry = dde.geometry.Rectangle([0, 0], [1, 1])
    pi, k2, kappa = math.pi, 16.0, 0.1

    def residual(x, u):
        def d(i, j=None):
            return dde.grad.jacobian(u, x, i=0, j=i) if j is None else \
                dde.grad.hessian(u, x, i=i, j=j)
        s, c = torch.sin, torch.cos
        if name == "heat":
            return d(1) - kappa * d(0, 0)
        laplace = d(0, 0) + d(1, 1)
        exact = s(pi * x[:, :1]) * s((2 if name == "helmholtz" else 1) * pi * x[:, 1:])
        if name == "poisson":
            return -laplace - 2 * pi**2 * exact
        if name == "helmholtz":
            return laplace + k2 * u - (k2 - 5 * pi**2) * exact
        a = 1 + 0.5 * (x[:, :1] + x[:, 1:])
        ux = pi * c(pi * x[:, :1]) * s(pi * x[:, 1:])
        uy = pi * s(pi * x[:, :1]) * c(pi * x[:, 1:])
        return -a * laplace - 0.5 * (d(0) + d(1)) - (a * 2 * pi**2 * exact - 0.5 * (ux + uy))

    def on_condition(x, on_boundary):
        if name == "heat":  # t = 0, x = 0, x = 1 (not t = 1)
            return on_boundary and (np.isclose(x[1], 0) or np.isclose(x[0], 0)
                                    or np.isclose(x[0], 1))
        return on_boundary

    def exact_np(x):
        return case.exact(torch.as_tensor(x)).numpy()[:, None]

    condition = dde.icbc.DirichletBC(geometry, exact_np, on_condition)
    data = dde.data.PDE(geometry, residual, [condition], num_domain=0, num_boundary=0,
                        anchors=points)
    net = dde.nn.FNN([2, width, 1], "tanh", "Glorot normal")
    model = dde.Model(data, net)
    tic = time.perf_counter()
    model.compile("adam", lr=1e-3)
    model.train(iterations=adam_steps, display_every=10**9, verbose=0)
    model.compile("L-BFGS")
    model.train(display_every=10**9, verbose=0)
    wall = time.perf_counter() - tic
    x = case.error_points.numpy()
    u = exact_np(x)
    error = float(np.linalg.norm(model.predict(x) - u) / np.linalg.norm(u))
    return error, wall


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per method")
    parser.add_argument("--pdes", nargs="+", default=list(PDES), choices=PDES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--jacobian", action="store_true", help="Jacobian timings only")
    parser.add_argument("--solvers", action="store_true", help="linear-solver timings only")
    parser.add_argument("--no-deepxde", action="store_true")
    parser.add_argument("--deepxde-adam", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path("results/bench_pde"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.jacobian or args.solvers:
        jacobian_timings() if args.jacobian else solver_timings()
        return {}
    params = {**pde_accuracy.PROFILES["default"], "pdes": args.pdes, "budget": args.budget,
              "seeds": args.seeds}
    records = []
    for cell in pde_accuracy.cells(params):
        for record in pde_accuracy.run(cell.settings, cell.seeds):
            records.append({**record, "settings": dict(cell.settings)})
            s = cell.settings
            print(f"{s['pde']:>10} {pde_accuracy.LABELS[s['method']]:>26}: error "
                  f"{record['relative_l2']:.2e} after {record['wall_time']:.0f} s, "
                  f"{record['steps']} steps", flush=True)
    other_scale = []
    for pde in args.pdes:  # the damping-scale study: LM (projection) with the identity
        settings = {**params, "pde": pde, "method": "lm", "lm_scaling": "identity"}
        record = pde_accuracy.train(settings, args.seeds[0])
        other_scale.append((pde, record["relative_l2"]))
        print(f"{pde:>10} {'LM, identity scaling':>26}: error {other_scale[-1][1]:.2e}",
              flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report = pde_accuracy.report(records, params, args.out)
    print()
    print(report.markdown)
    print("\nLM (variable projection) with the identity as damping scale, same budget:")
    for pde, error in other_scale:
        print(f"  {pde}: {error:.2e}")
    print()
    for claim in report.claims:
        print(("PASS " if claim.passed else "FAIL ") + claim.claim + f"  ({claim.value})")
    print(f"figure: {args.out / report.figures[0]}")
    if args.no_deepxde:
        return {"records": records}
    try:
        import deepxde  # noqa: F401
    except ImportError:
        print("\nDeepXDE column skipped: deepxde is not installed "
              "(pip install deepxde; a benchmark-only comparison)")
        return {"records": records}
    print(f"\nDeepXDE {deepxde.__version__} recipe (Glorot normal, Adam {args.deepxde_adam} → "
          "L-BFGS), same points and network, one thread:")
    for pde in args.pdes:
        error, wall = deepxde_recipe(pde, params["n"], params["width"], args.deepxde_adam)
        print(f"  {pde}: error {error:.2e} in {wall:.0f} s", flush=True)
    return {"records": records}


if __name__ == "__main__":
    main(sys.argv[1:])
