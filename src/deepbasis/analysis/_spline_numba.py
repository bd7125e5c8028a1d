"""The ReLU step of :func:`deepbasis.analysis.spline_of`, compiled with Numba.

Imported only when Numba is installed (``pip install deepbasis[fast]``); otherwise
:mod:`deepbasis.analysis.spline` runs the same step in NumPy (``spline._split_numpy``). Both
do the same arithmetic in the same order (tests/test_analysis_spline.py compares them; the
matrix products between steps may round an ulp differently, as MKL's result depends on the
buffers' alignment). The step's cost is not its arithmetic but NumPy's per-call overhead, some
thirty array operations per layer, which one compiled loop removes.

See ``spline._split_numpy`` for the layout of ``x`` (slopes of the P − 1 intervals, then the
values at every ``anchor``-th point) and of what it returns (``cols``: the units the ReLU
leaves nonzero somewhere; only their columns are returned)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def relu_split(t, x, origin, anchor, next_id):  # pragma: no cover - compiled
    p = t.shape[0]
    d = x.shape[1]
    # Values at every point, summed from the anchor of its block (as _State.values does).
    z = np.empty((p, d))
    for k in range(p):
        if k % anchor == 0:
            z[k] = x[p - 1 + k // anchor]
        else:
            dt = t[k] - t[k - 1]
            for c in range(d):
                z[k, c] = z[k - 1, c] + x[k - 1, c] * dt
    alive = np.zeros(d, np.bool_)  # > 0 at some old point (a crossing has one on its interval)
    for k in range(p):
        for c in range(d):
            if z[k, c] > 0.0:
                alive[c] = True
    cols = np.nonzero(alive)[0]
    # Strict sign changes per interval (a zero at a point is no crossing).
    per = np.zeros(p - 1, np.int64)
    count = 0
    for k in range(p - 1):
        n = 0
        for c in range(d):
            if z[k, c] * z[k + 1, c] < 0.0:
                n += 1
        per[k] = n
        count += n
    j = np.empty(count, np.int64)
    u = np.empty(count, np.int64)
    lam = np.empty(count)
    tc = np.empty(count)
    i = 0
    for k in range(p - 1):
        if per[k] == 0:
            continue
        start = i
        tj, tk = t[k], t[k + 1]
        for c in range(d):
            a, b = z[k, c], z[k + 1, c]
            if a * b < 0.0:
                lk = a / (a - b)
                v = min(max(tj + lk * (tk - tj), tj), tk)
                r = i  # insertion sort by x within the interval (few crossings per interval)
                while r > start and tc[r - 1] > v:
                    tc[r], u[r], lam[r] = tc[r - 1], u[r - 1], lam[r - 1]
                    r -= 1
                tc[r], u[r], lam[r] = v, c, lk
                j[i] = k
                i += 1
    # The new points in order: each old point, then the crossings inside its interval. A unit
    # is on on a new interval iff it is > 0 at either end; its slope there is its slope on the
    # parent interval, or 0. Anchors take the ReLU of the values.
    q = p + count
    out = np.empty((q - 1 + (q + anchor - 1) // anchor, cols.shape[0]))
    new_t = np.empty(q)
    new_origin = np.empty(q, np.int64)
    prev = np.empty(d)
    cur = np.empty(d)
    w = 0
    i = 0
    for k in range(p):
        for c in range(d):
            cur[c] = z[k, c]
        new_t[w], new_origin[w] = t[k], origin[k]
        if w > 0:
            for i_c, c in enumerate(cols):
                out[w - 1, i_c] = x[k - 1, c] if (prev[c] > 0.0 or cur[c] > 0.0) else 0.0
        if w % anchor == 0:
            for i_c, c in enumerate(cols):
                out[q - 1 + w // anchor, i_c] = max(cur[c], 0.0)
        prev[:] = cur
        w += 1
        if k == p - 1:
            break
        for _ in range(per[k]):
            lk = lam[i]
            for c in range(d):
                cur[c] = z[k, c] + lk * (z[k + 1, c] - z[k, c])
            cur[u[i]] = 0.0
            new_t[w], new_origin[w] = tc[i], next_id + i
            for i_c, c in enumerate(cols):
                out[w - 1, i_c] = x[k, c] if (prev[c] > 0.0 or cur[c] > 0.0) else 0.0
            if w % anchor == 0:
                for i_c, c in enumerate(cols):
                    out[q - 1 + w // anchor, i_c] = max(cur[c], 0.0)
            prev[:] = cur
            w += 1
            i += 1
    return new_t, out, cols, new_origin, j, u, lam, tc
