"""Confidence intervals and power for the experiments' claims (instead of sign tests on means).

A claim such as "uniform breakpoints lower the test loss" used to pass when one mean was below
another, whatever the seed noise. These helpers turn it into an interval: the claim passes when
the whole confidence interval lies on the paper's side, and the report states the interval (and,
where the paper gives means and standard deviations, the power our number of seeds has to see the
paper's own effect).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``values`` and its two-sided Student-t confidence interval ``(mean, lo, hi)``.

    One value gives an unbounded interval (−inf, inf): it cannot support a claim.
    """
    a = np.asarray(list(values), dtype=float)
    m = float(a.mean())
    if a.size < 2:
        return m, -math.inf, math.inf
    half = float(stats.t.ppf(0.5 + level / 2, a.size - 1) * a.std(ddof=1) / math.sqrt(a.size))
    return m, m - half, m + half


def welch_ci(a: Sequence[float], b: Sequence[float],
             level: float = 0.95) -> tuple[float, float, float]:
    """Difference of means ``mean(b) − mean(a)`` and its Welch (unequal variances) two-sided
    confidence interval ``(diff, lo, hi)``. Fewer than two values on a side: unbounded."""
    x, y = np.asarray(list(a), dtype=float), np.asarray(list(b), dtype=float)
    diff = float(y.mean() - x.mean())
    if x.size < 2 or y.size < 2:
        return diff, -math.inf, math.inf
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(vx + vy)
    if se == 0.0:
        return diff, diff, diff
    df = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))  # Welch–Satterthwaite
    half = float(stats.t.ppf(0.5 + level / 2, df) * se)
    return diff, diff - half, diff + half


def two_sample_power(effect_size: float, n: int, alpha: float = 0.05) -> float:
    """Power of a two-sided two-sample t-test at level ``alpha`` with ``n`` runs per arm to
    detect a standardized difference ``effect_size`` (Cohen's d; noncentral t)."""
    if n < 2:
        return 0.0
    df = 2 * n - 2
    nc = abs(effect_size) * math.sqrt(n / 2)
    crit = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def cohens_d(mean_a: float, sd_a: float, mean_b: float, sd_b: float) -> float:
    """Standardized difference of two published means (pooled sd of equal-sized arms)."""
    return (mean_b - mean_a) / math.sqrt((sd_a**2 + sd_b**2) / 2)
