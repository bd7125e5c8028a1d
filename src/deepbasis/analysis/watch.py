r"""Watch the spline of a 1-D ReLU network while it trains (Sahs et al. 2020, §3 and Figs. 2–3).

:class:`BreakpointWatch` is a callback for :func:`deepbasis.fit` (``callbacks=[watch]``) that
also works in a plain PyTorch loop (call ``watch(step, loss, model)`` every step, or
``watch.record(model, step)`` when you want a record). Every ``every`` steps it computes the
exact spline of the network on ``[lower, upper]`` (:func:`deepbasis.analysis.spline_of`) and
keeps:

- each ReLU layer's induced breakpoints (every zero crossing of every unit's pre-activation,
  active or not) with the unit that induced each;
- the number of linear pieces of the output, its roughness in total and per layer
  (:meth:`Spline.roughness_by_layer`: the squared slope jumps of the output at the active
  breakpoints each layer induced; they sum to the total);
- optionally a Gaussian kernel density of all induced breakpoints on a grid
  (:func:`breakpoint_density`).

**Matching breakpoints between records** (so that births, deaths and speeds are defined). A
breakpoint belongs to a (layer, unit). Between two consecutive records, the crossings of each
(layer, unit) are matched: if the unit induces as many breakpoints as before, in order along x
(zero crossings of one continuous pre-activation cannot pass each other without meeting); if
the number changed, by the assignment that minimizes the total |Δx|
(``scipy.optimize.linear_sum_assignment``). Unmatched old breakpoints are *deaths*, unmatched
new ones *births* (this includes crossings that leave or enter ``[lower, upper]``). The speed of
a matched breakpoint is |Δx| / Δstep. A shallow unit has at most one breakpoint, so it is
matched to itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from torch import nn

from .spline import spline_of


@dataclass(frozen=True)
class WatchRecord:
    """The spline's state at one step.

    Attributes:
        step: the training step.
        loss: the loss passed by the training loop (NaN if none).
        breakpoints: per ReLU layer (1-based key), ``(C,)`` float64 locations of every zero
            crossing, sorted.
        units: per layer, ``(C,)`` int64 unit that induced each.
        active: per layer, ``(C,)`` bool, whether the output bends there.
        pieces: linear pieces of the output on the interval.
        roughness: total roughness (sum of squared slope jumps of the output).
        roughness_by_layer: layer → roughness of the output knots that layer induced.
        density: kernel density of all breakpoints on ``BreakpointWatch.density_grid`` (or
            ``None``).
    """

    step: int
    loss: float
    breakpoints: dict[int, np.ndarray]
    units: dict[int, np.ndarray]
    active: dict[int, np.ndarray]
    pieces: int
    roughness: float
    roughness_by_layer: dict[int, float]
    density: np.ndarray | None = None


@dataclass(frozen=True)
class LayerChange:
    """How one layer's breakpoints changed between two records.

    Attributes:
        layer: 1-based layer.
        steps: the step difference between the records.
        before, after: the number of breakpoints.
        births, deaths: unmatched new / old breakpoints.
        displacement: ``(M,)`` |Δx| of the matched breakpoints.
        speed: ``(M,)`` |Δx| / steps.
        moved_from, moved_to: ``(M,)`` the matched locations.
        units: ``(M,)`` the unit of each matched pair.
    """

    layer: int
    steps: int
    before: int
    after: int
    births: int
    deaths: int
    displacement: np.ndarray
    speed: np.ndarray
    moved_from: np.ndarray
    moved_to: np.ndarray
    units: np.ndarray

    @property
    def mean_speed(self) -> float:
        """Mean speed of the matched breakpoints (0 when none matched)."""
        return float(self.speed.mean()) if self.speed.size else 0.0


def match_breakpoints(x_old: np.ndarray, unit_old: np.ndarray, x_new: np.ndarray,
                      unit_new: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(i_old, i_new)`` of matched breakpoints of one layer (see the module docstring:
    per unit, in order along x when the count is unchanged, else the optimal assignment)."""
    from scipy.optimize import linear_sum_assignment

    pairs_old, pairs_new = [], []
    for u in np.union1d(unit_old, unit_new):
        io = np.nonzero(unit_old == u)[0]
        jn = np.nonzero(unit_new == u)[0]
        if io.size == 0 or jn.size == 0:
            continue
        io = io[np.argsort(x_old[io], kind="stable")]
        jn = jn[np.argsort(x_new[jn], kind="stable")]
        if io.size == jn.size:
            pairs_old.append(io)
            pairs_new.append(jn)
        else:
            cost = np.abs(x_old[io][:, None] - x_new[jn][None, :])
            r, c = linear_sum_assignment(cost)
            pairs_old.append(io[r])
            pairs_new.append(jn[c])
    if not pairs_old:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(pairs_old), np.concatenate(pairs_new)


def breakpoint_density(points, grid, bandwidth: float | None = None) -> np.ndarray:
    """Gaussian kernel density of ``points`` on ``grid`` (integrates to 1 over the real line).

    ``bandwidth`` defaults to Scott's rule, 1.06 σ n^{−1/5} (σ: the points' standard
    deviation); a density of fewer than two points is 0 (none) or one kernel of width 1 · scale
    of the grid (one point).
    """
    pts = np.asarray(points, dtype=float).reshape(-1)
    grid = np.asarray(grid, dtype=float).reshape(-1)
    if pts.size == 0:
        return np.zeros_like(grid)
    if bandwidth is None:
        sd = float(pts.std()) if pts.size > 1 else 0.0
        bandwidth = 1.06 * sd * pts.size ** (-0.2) if sd > 0 else 0.05 * float(np.ptp(grid) or 1)
    z = (grid[:, None] - pts[None, :]) / bandwidth
    return np.exp(-0.5 * z * z).sum(axis=1) / (pts.size * bandwidth * math.sqrt(2 * math.pi))


@dataclass
class BreakpointWatch:
    """Record a 1-D ReLU network's breakpoints, pieces and roughness every ``every`` steps.

    Args:
        lower, upper: the interval on which the spline is computed.
        every: record when ``step % every == 0`` (k of the issue; 1 = every step).
        density_grid: points at which to evaluate the breakpoints' kernel density (None: no
            density).
        bandwidth: the kernel's bandwidth (None: Scott's rule per record).

    Use with :func:`deepbasis.fit`::

        watch = BreakpointWatch(-3.0, 3.0, every=10)
        fit(model, x, y, method="gd", callbacks=[watch])
        watch.changes()  # births, deaths, speeds per layer between consecutive records

    or in any loop: ``watch(step, loss.item(), model)`` once per step (it returns ``None``, so
    it never stops :func:`fit`). Records live in ``watch.records``.

    **Cheaper with fit: as a metric.** :func:`deepbasis.fit` runs *every* callback at every step
    (copying the member's parameters into its model and back, and reading the loss on the
    host), which costs a few tens of percent on small networks whatever the callback does.
    Its ``metrics`` run only every ``metric_every`` steps::

        history = fit(model, x, y, method="gd", metrics={"pieces": watch.metric},
                      metric_every=watch.every)
        watch.sync(history)  # the records' steps and losses from the history

    ``benchmarks/bench_watch.py`` measures both ways.
    """

    lower: float
    upper: float
    every: int = 10
    density_grid: np.ndarray | None = None
    bandwidth: float | None = None
    records: list[WatchRecord] = field(default_factory=list)
    _metric_records: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"every must be a positive integer (record every k steps), got "
                             f"{self.every!r}")
        if not (math.isfinite(self.lower) and math.isfinite(self.upper)) \
                or not self.lower < self.upper:
            raise ValueError(f"need a finite interval lower < upper, got [{self.lower}, "
                             f"{self.upper}]")

    def __call__(self, step: int, loss: float, model: nn.Module) -> None:
        if step % self.every == 0:
            self.record(model, step, loss)

    def record(self, model: nn.Module, step: int, loss: float = math.nan) -> WatchRecord:
        """Compute and store one record now."""
        spline = spline_of(model, self.lower, self.upper)
        xs, units, active = {}, {}, {}
        for c in spline.crossings:
            xs[c.layer] = c.x.numpy()
            units[c.layer] = c.unit.numpy()
            active[c.layer] = c.active.numpy()
        jumps = (spline.delta_slopes ** 2).sum(dim=1).numpy()  # (K,)
        knot_layer = spline.knot_layer.numpy()
        by_layer = {layer: float(jumps[knot_layer == layer].sum()) for layer in xs}
        density = None
        if self.density_grid is not None:
            every_x = np.concatenate(list(xs.values())) if xs else np.empty(0)
            density = breakpoint_density(every_x, self.density_grid, self.bandwidth)
        rec = WatchRecord(int(step), float(loss), xs, units, active, spline.num_pieces,
                          float(jumps.sum()), by_layer, density)
        self.records.append(rec)
        return rec

    def metric(self, model: nn.Module) -> float:
        """A ``metrics=`` entry for :func:`deepbasis.fit` (run every ``metric_every`` steps):
        records now and returns the number of pieces. The step is provisional (calls × every)
        until :meth:`sync`."""
        self._metric_records.append(len(self.records))
        step = (len(self._metric_records) - 1) * self.every
        return float(self.record(model, step).pieces)

    def sync(self, history) -> None:
        """Give the records made by :meth:`metric` the steps and losses of ``history`` (a
        :class:`deepbasis.train.History`: ``metric_steps`` and ``loss``)."""
        steps = list(history.metric_steps)
        if len(steps) != len(self._metric_records):
            raise ValueError(f"the history has {len(steps)} metric steps but the watch made "
                             f"{len(self._metric_records)} records as a metric; sync with the "
                             "history of the fit it watched")
        for index, step in zip(self._metric_records, steps, strict=True):
            loss = history.loss[step] if step < len(history.loss) else math.nan
            self.records[index] = replace(self.records[index], step=int(step),
                                          loss=float(loss))
        self._metric_records.clear()

    # --- analysis -----------------------------------------------------------------------------
    @property
    def layers(self) -> list[int]:
        return sorted(self.records[0].breakpoints) if self.records else []

    def change(self, i: int, layer: int) -> LayerChange:
        """How ``layer``'s breakpoints changed from record ``i − 1`` to record ``i``."""
        if not 1 <= i < len(self.records):
            raise ValueError(f"need 1 ≤ i < {len(self.records)} (the number of records), got {i}")
        a, b = self.records[i - 1], self.records[i]
        xa, ua = a.breakpoints[layer], a.units[layer]
        xb, ub = b.breakpoints[layer], b.units[layer]
        io, jn = match_breakpoints(xa, ua, xb, ub)
        steps = max(b.step - a.step, 1)
        disp = np.abs(xb[jn] - xa[io])
        return LayerChange(layer, steps, xa.size, xb.size, xb.size - jn.size, xa.size - io.size,
                           disp, disp / steps, xa[io], xb[jn], ua[io])

    def changes(self) -> dict[int, list[LayerChange]]:
        """Per layer, the changes between every pair of consecutive records."""
        return {layer: [self.change(i, layer) for i in range(1, len(self.records))]
                for layer in self.layers}

    def history(self) -> dict[str, np.ndarray]:
        """Arrays over records: ``step``, ``loss``, ``pieces``, ``roughness``, and per layer
        ``count_<ℓ>`` (induced breakpoints) and ``roughness_<ℓ>``."""
        out = {"step": np.array([r.step for r in self.records]),
               "loss": np.array([r.loss for r in self.records]),
               "pieces": np.array([r.pieces for r in self.records]),
               "roughness": np.array([r.roughness for r in self.records])}
        for layer in self.layers:
            out[f"count_{layer}"] = np.array([r.breakpoints[layer].size for r in self.records])
            out[f"roughness_{layer}"] = np.array([r.roughness_by_layer[layer]
                                                  for r in self.records])
        return out
