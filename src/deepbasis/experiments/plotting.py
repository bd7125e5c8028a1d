"""Figure helpers shared by the experiments: paper-like PNGs without pyplot's global state."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._files import atomic_write

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
          "#17becf", "#7f7f7f", "#bcbd22"]


def new_figure(ncols: int = 1, nrows: int = 1, *, width: float = 5.0, height: float = 3.8,
               **kwargs) -> tuple[Figure, np.ndarray]:
    """A ``Figure`` (no pyplot, no global state) and a 2-D array of its axes."""
    figure = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False, **kwargs)
    return figure, axes


def save_figure(figure: Figure, out: Path, name: str) -> str:
    """Save ``figure`` as ``out/name`` (PNG, 150 dpi) and return ``name``."""
    path = Path(out) / name
    with atomic_write(path) as tmp:  # a failed save leaves no half-written PNG
        figure.savefig(tmp, dpi=150, format=path.suffix.removeprefix(".") or "png")
    return name


def log10_band(ax: Axes, curves: Sequence[Sequence[float]], *, label: str, color: str,
               x: Sequence[float] | None = None) -> None:
    """Mean ± one standard deviation of log10 of several curves (the papers' loss plots)."""
    values = np.log10(np.maximum(np.asarray(curves, dtype=float), np.finfo(float).tiny))
    mean, std = values.mean(axis=0), values.std(axis=0)
    steps = np.arange(values.shape[1]) if x is None else np.asarray(x)
    ax.plot(steps, mean, color=color, label=label, lw=1.4)
    ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2, lw=0)


def log10_stats(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard deviation of log10(values) (zeros clipped to the smallest float)."""
    logs = np.log10(np.maximum(np.asarray(values, dtype=float), np.finfo(float).tiny))
    return float(logs.mean()), float(logs.std())


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
