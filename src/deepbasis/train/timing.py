r"""Wall time of LSGD relative to GD (Cyr et al. 2020, Table 1).

Table 1 of the paper reports the wall time of 1000 LSGD iterations over that of 1000 GD
iterations (Adam, plain ReLU network, He initialization, sin(2πx) on 256 points, i.e. the setup
of Fig. 3) for widths and depths {4, 16, 64, 256}; TensorFlow on an Intel i7-8700 CPU measured
1.33–2.08. :func:`lsgd_gd_time_ratio` measures the same ratio for :func:`deepbasis.fit`.

Timings on a shared machine drift with its load, so the two methods are timed alternately
(LSGD, GD, GD, LSGD, …), every run from the same initial network, and medians are compared:
load changes then affect both alike.
"""

from __future__ import annotations

import copy
import math
import statistics
from time import perf_counter
from typing import Any

import torch

from ..init import he_
from ..nn import MLP
from .fit import fit
from .optim import make_optimizer

TABLE1_SIZES = (4, 16, 64, 256)

# The paper's Table 1: PAPER_TABLE1[width][depth] = wall time LSGD / GD for 1000 iterations.
PAPER_TABLE1: dict[int, dict[int, float]] = {
    4: {4: 1.67, 16: 1.60, 64: 1.43, 256: 1.36},
    16: {4: 2.08, 16: 1.50, 64: 1.44, 256: 1.41},
    64: {4: 1.68, 16: 1.37, 64: 1.37, 256: 1.33},
    256: {4: 2.00, 16: 1.65, 64: 1.52, 256: 1.49},
}


def lsgd_gd_time_ratio(
    width: int,
    depth: int,
    steps: int,
    n_points: int = 256,
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    repeats: int = 3,
    lr_lsgd: float = 5e-3,
    lr_gd: float = 5e-4,
    optimizer: str = "adam",
    lstsq_method: str = "auto",
    seed: int = 0,
    threads: int | None = None,
    bare: bool = True,
) -> dict[str, Any]:
    """Median wall time per iteration of LSGD and GD, and their ratio, for one Table 1 cell.

    The network is a plain ReLU :class:`~deepbasis.MLP` (``width`` × ``depth``), uniform He
    initialization with zero biases (seed ``seed``), trained on sin(2πx) at ``n_points`` evenly
    spaced points of [0, 1] with the paper's learning rates (GD 5e-4, LSGD 5e-3, Fig. 3). Each of
    ``repeats`` rounds times one ``fit(method="lsgd")`` and one ``fit(method="gd")`` of
    ``steps`` iterations from the same initial network, alternating which goes first; one
    short untimed run of each warms up allocations first.

    Args:
        width, depth: network size (the Table 1 grid is :data:`TABLE1_SIZES`).
        steps: iterations per timed run (the paper: 1000; fewer keep large cells affordable —
            the per-iteration cost does not depend on it beyond the first few steps).
        n_points: number of data points.
        dtype, device: of the network and data.
        repeats: timed rounds per method.
        lr_lsgd, lr_gd, optimizer, lstsq_method: training settings.
        seed: initialization seed.
        threads: ``torch.set_num_threads`` for the measurement (restored afterwards).
        bare: also time a minimal PyTorch GD loop (``((model(x) − y)²).mean()``, backward,
            optimizer step) as a reference for the library's GD.

    Returns:
        A JSON-able dict with the settings, ``lsgd_seconds`` / ``gd_seconds`` (per iteration,
        one per round), their medians ``lsgd`` / ``gd``, ``ratio`` = median LSGD / median GD,
        ``pair_ratio`` (median of the per-round ratios), ``bare_gd`` and ``gd_vs_bare`` when
        ``bare``, and ``paper`` (the paper's ratio for this cell, or None).

    Examples:
        >>> result = lsgd_gd_time_ratio(4, 4, steps=20, repeats=1, bare=False)
        >>> result["ratio"] > 0
        True
    """
    for name, value in (("width", width), ("depth", depth), ("steps", steps),
                        ("n_points", n_points), ("repeats", repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        x = torch.linspace(0.0, 1.0, n_points, dtype=dtype, device=device)[:, None]  # (N, 1)
        y = torch.sin(2.0 * math.pi * x)  # (N, 1)
        initial = he_(MLP(1, width, depth, dtype=dtype, device=device), generator=seed)

        def run(method: str, n: int) -> float:
            model = copy.deepcopy(initial)
            lr = lr_lsgd if method == "lsgd" else lr_gd
            _synchronize(device)
            start = perf_counter()
            if method == "bare":
                _bare_gd(model, x, y, n, lr_gd, optimizer)
            else:
                try:
                    fit(model, x, y, method=method, steps=n, lr=lr, optimizer=optimizer,
                        lstsq_method=lstsq_method, progress=False, threads=None)
                except FloatingPointError:
                    pass  # a diverged run still cost its iterations; time is what we measure
            _synchronize(device)
            return (perf_counter() - start) / n

        methods = ["lsgd", "gd"] + (["bare"] if bare else [])
        for method in methods:  # warm-up: first-call allocations and dispatch caches
            run(method, min(steps, 5))
        times: dict[str, list[float]] = {m: [] for m in methods}
        for r in range(repeats):
            order = methods if r % 2 == 0 else methods[::-1]
            for method in order:
                times[method].append(run(method, steps))
    finally:
        torch.set_num_threads(previous_threads)
    lsgd, gd = statistics.median(times["lsgd"]), statistics.median(times["gd"])
    result: dict[str, Any] = {
        "width": width, "depth": depth, "steps": steps, "n_points": n_points,
        "dtype": str(dtype).removeprefix("torch."), "device": str(device), "repeats": repeats,
        "optimizer": optimizer, "lstsq_method": lstsq_method, "threads": torch.get_num_threads()
        if threads is None else threads,
        "lsgd_seconds": times["lsgd"], "gd_seconds": times["gd"],
        "lsgd": lsgd, "gd": gd, "ratio": lsgd / gd,
        "pair_ratio": statistics.median(a / b for a, b in zip(times["lsgd"], times["gd"],
                                                              strict=True)),
        "paper": PAPER_TABLE1.get(width, {}).get(depth),
    }
    if bare:
        result["bare_gd"] = statistics.median(times["bare"])
        result["gd_vs_bare"] = gd / result["bare_gd"]
    return result


def _bare_gd(model: MLP, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float,
             optimizer: str) -> None:
    opt = make_optimizer(optimizer, list(model.parameters()), lr)
    for _ in range(steps):
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def _synchronize(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
