"""What a training run leaves behind: the loss of every step, wall time, and optional metrics."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._files import atomic_write

if TYPE_CHECKING:  # matplotlib is imported on first plot, not with the package
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

STOP_REASONS = ("steps", "target_loss", "callback", "non-finite", "interrupted", "tolerance")


@dataclass
class History:
    """Per-step record of one :func:`deepbasis.fit` run.

    ``loss[k]`` is the loss of the model after ``k`` iterations (for LSGD: after ``k`` gradient
    steps on the hidden parameters and the least-squares solve for the head that follows, so
    ``loss[0]`` is the loss of the first LS solve on the initial basis). A run of ``steps``
    iterations has ``steps + 1`` entries unless it stopped early (``stop_reason``).

    Attributes:
        loss: the training loss J = ‖Aθ − b‖² (for regression: the mean squared error, summed
            over outputs) at every step.
        time: cumulative wall-clock seconds since the start of the run at which each ``loss``
            entry was recorded (host time; on a GPU kernels may still be running).
        metrics: name → values of each metric, evaluated at the steps in ``metric_steps``.
        metric_steps: the steps at which ``metrics`` were evaluated.
        method: ``"lsgd"``, ``"gd"`` or ``"lm"``.
        settings: the complete, JSON-able settings of the run.
        stop_reason: ``"steps"`` (ran them all), ``"target_loss"``, ``"callback"``,
            ``"non-finite"`` or ``"interrupted"``. After ``"non-finite"`` the last loss entry
            is the non-finite value and the model holds the state of the entry before it;
            after ``"interrupted"`` (an exception left the loop, e.g. Ctrl-C) the model holds
            the state of the last entry. ``"tolerance"`` (Levenberg–Marquardt only): the
            relative decrease fell below the tolerance, or no step above rounding was left.
        trace: per-iteration solver record, for ``method="lm"``: ``damping`` (μ after the
            iteration), ``accepted`` (whether its trial step was taken), ``jacobian_s`` and
            ``solve_s`` (seconds spent on the Jacobian and on the step and trial); empty for
            the first-order methods.
        message: why the run stopped, in words (Levenberg–Marquardt).

    Examples:
        >>> h = History(loss=[1.0, 0.5, 0.25], time=[0.0, 0.1, 0.2], method="gd")
        >>> h.final_loss, h.steps
        (0.25, 2)
    """

    loss: list[float]
    time: list[float]
    metrics: dict[str, list[float]] = field(default_factory=dict)
    metric_steps: list[int] = field(default_factory=list)
    method: str = "lsgd"
    settings: dict[str, Any] = field(default_factory=dict)
    stop_reason: str = "steps"
    trace: dict[str, list] = field(default_factory=dict)
    message: str = ""

    @property
    def final_loss(self) -> float:
        """The last recorded loss (``nan`` for an empty history)."""
        return self.loss[-1] if self.loss else math.nan

    @property
    def steps(self) -> int:
        """Number of iterations recorded (``len(loss) - 1``)."""
        return len(self.loss) - 1

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON dict: non-finite floats are written as the strings 'nan', 'inf'."""
        data = asdict(self)
        data["loss"] = [_encode(v) for v in self.loss]
        data["time"] = [_encode(v) for v in self.time]
        data["metrics"] = {k: [_encode(v) for v in vals] for k, vals in self.metrics.items()}
        data["trace"] = {k: [v if isinstance(v, bool) else _encode(v) for v in vals]
                         for k, vals in self.trace.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """Inverse of :meth:`to_dict`."""
        return cls(
            loss=[float(v) for v in data["loss"]],
            time=[float(v) for v in data["time"]],
            metrics={k: [float(v) for v in vals] for k, vals in data.get("metrics", {}).items()},
            metric_steps=[int(s) for s in data.get("metric_steps", [])],
            method=data.get("method", "lsgd"),
            settings=dict(data.get("settings", {})),
            stop_reason=data.get("stop_reason", "steps"),
            trace={k: [v if isinstance(v, bool) else float(v) for v in vals]
                   for k, vals in data.get("trace", {}).items()},
            message=data.get("message", ""),
        )

    def save(self, path: str | Path) -> Path:
        """Write the history as JSON to ``path`` and return the path."""
        path = Path(path)
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False)
        with atomic_write(path) as tmp:  # a failed write leaves an existing file as it was
            tmp.write_text(text)
        return path

    @classmethod
    def load(cls, path: str | Path) -> History:
        """Read a history written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def plot(self, ax: Axes | None = None, *, x: str = "step", label: str | None = None,
             **line_kwargs) -> Figure:
        """Plot the loss on a log scale against ``"step"`` or ``"time"``; return the Figure.

        Draws into ``ax`` when given (and returns its figure), otherwise into a new
        ``matplotlib.figure.Figure`` (no pyplot, no global state).
        """
        if x not in ("step", "time"):
            raise ValueError(f"x must be 'step' or 'time', got {x!r}")
        if ax is None:
            from matplotlib.figure import Figure

            figure = Figure(figsize=(5.0, 3.8), layout="constrained")
            ax = figure.add_subplot()
        else:
            figure = ax.figure
        xs = list(range(len(self.loss))) if x == "step" else self.time
        ax.semilogy(xs, self.loss, label=label or self.method.upper(), **line_kwargs)
        ax.set_xlabel("iteration" if x == "step" else "wall time [s]")
        ax.set_ylabel("loss")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend()
        return figure


def _encode(value: float) -> float | str:
    value = float(value)
    return value if math.isfinite(value) else str(value)
