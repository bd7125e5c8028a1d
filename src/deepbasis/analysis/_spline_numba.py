"""The propagation of :func:`deepbasis.analysis.spline_of`, compiled with Numba: one call
reads the whole network (a ``spline._Program``) and returns the output spline's arrays.

Imported only when Numba is installed (``pip install deepbasis[fast]``); otherwise
:mod:`deepbasis.analysis.spline` runs the same propagation in NumPy (``spline._propagate``,
``spline._split_numpy``, ``spline._output_arrays``). Both do the same arithmetic in the same
order (tests/test_analysis_spline.py compares them); only the matrix products may round an
ulp differently (here SciPy's BLAS through Numba, there torch's). What this saves is not
arithmetic but per-call overhead: some thirty NumPy operations per layer and the Python
between them, which cost more than the products on networks of a few hundred pieces.

See ``spline._split_numpy`` for the layout of ``x`` (slopes of the P − 1 intervals, then the
values at every ``anchor``-th point) and of what a ReLU step returns (``cols``: the units the
ReLU leaves nonzero somewhere; only their columns are returned)."""

from __future__ import annotations

import contextlib
import logging

import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401 - the BLAS Numba's np.dot calls, loaded now
import torch
from numba.core import event
from threadpoolctl import ThreadpoolController

from ._spline_ops import LINEAR, OPEN_SKIP, RELU

_BLAS = ThreadpoolController().select(user_api="blas")


def propagate_on_torch_threads(*args):
    """:func:`propagate` with the BLAS libraries on ``torch.get_num_threads()`` threads, like
    every other product in deepbasis (OpenBLAS would otherwise start one thread per core even
    for these small products, doubling the CPU time on 2 cores for no gain in wall time)."""
    global _LOADED
    threads = torch.get_num_threads()
    with contextlib.ExitStack() as stack:
        if not _LOADED:  # the first call of the process compiles, or loads Numba's cache
            stack.enter_context(event.install_listener("numba:compile", _CompileNotice()))
        if any(lib.num_threads != threads for lib in _BLAS.lib_controllers):
            stack.enter_context(_BLAS.limit(limits=threads))
        result = propagate(*args)
    _LOADED = True
    return result


_LOADED = False


class _CompileNotice(event.Listener):
    """Says once, when Numba starts compiling (it does not when it loads its cache), why the
    first spline_of waits."""

    said = False

    def on_start(self, ev) -> None:
        if not _CompileNotice.said:
            _CompileNotice.said = True
            logging.getLogger(__name__).warning(
                "deepbasis: compiling spline_of's propagation with Numba, once (about half a "
                "minute); later runs load it from Numba's cache")

    def on_end(self, ev) -> None:
        pass


@numba.njit(cache=True, nogil=True)
def values(t, x, anchor):  # pragma: no cover - compiled
    """Values at every point, summed from the anchor of its block (as ``spline._values``)."""
    p = t.shape[0]
    d = x.shape[1]
    z = np.empty((p, d))
    for k in range(p):
        if k % anchor == 0:
            z[k] = x[p - 1 + k // anchor]
        else:
            dt = t[k] - t[k - 1]
            for c in range(d):
                z[k, c] = z[k - 1, c] + x[k - 1, c] * dt
    return z


@numba.njit(cache=True, nogil=True)
def relu_split(t, x, origin, anchor, next_id):  # pragma: no cover - compiled
    p = t.shape[0]
    d = x.shape[1]
    # One pass over the points: values (as `values` computes them, written out again here: a
    # shared routine per row costs this step 15-20 %), which units are > 0 at some old point
    # (a crossing has one on its interval), and the strict sign changes on each interval (a
    # zero at a point is no crossing).
    z = np.empty((p, d))
    alive = np.zeros(d, np.bool_)
    per = np.zeros(p - 1, np.int64)
    count = 0
    for k in range(p):
        if k % anchor == 0:
            z[k] = x[p - 1 + k // anchor]
        else:
            dt = t[k] - t[k - 1]
            for c in range(d):
                z[k, c] = z[k - 1, c] + x[k - 1, c] * dt
        for c in range(d):
            alive[c] |= z[k, c] > 0.0
        if k > 0:
            n = 0
            for c in range(d):
                n += z[k - 1, c] * z[k, c] < 0.0
            per[k - 1] = n
            count += n
    cols = np.nonzero(alive)[0]
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
                if per[k] > 16:  # many (the first layer's): sorted below
                    tc[i], u[i], lam[i] = v, c, lk
                else:  # insertion sort by x within the interval (stable, as np.lexsort)
                    r = i
                    while r > start and tc[r - 1] > v:
                        tc[r], u[r], lam[r] = tc[r - 1], u[r - 1], lam[r - 1]
                        r -= 1
                    tc[r], u[r], lam[r] = v, c, lk
                j[i] = k
                i += 1
        if per[k] > 16:
            order = start + _stable_order(tc[start:i])
            tc[start:i], u[start:i], lam[start:i] = tc[order], u[order], lam[order]
    # The new points in order: each old point, then the crossings inside its interval. A
    # unit's slope on a new interval is its slope on the parent interval where it is on, else
    # 0; it is on where it is > 0 at either end of an interval between old points, and at the
    # midpoint of a piece of a split interval (as spline._split_numpy). Anchors take the ReLU
    # of the values.
    q = p + count
    out = np.empty((q - 1 + (q + anchor - 1) // anchor, cols.shape[0]))
    new_t = np.empty(q)
    new_origin = np.empty(q, np.int64)
    cur = np.empty(d)  # values at an anchor that is a crossing
    w = 0
    i = 0
    for k in range(p):
        new_t[w], new_origin[w] = t[k], origin[k]
        if w > 0:
            if per[k - 1] > 0:  # the last piece of split interval k − 1
                _relu_slopes_at(out[w - 1], x[k - 1], z[k - 1], z[k], (lam[i - 1] + 1.0) * 0.5,
                                cols)
            else:
                _relu_slopes(out[w - 1], x[k - 1], z[k - 1], z[k], cols)
        if w % anchor == 0:
            _relu_values(out[q - 1 + w // anchor], z[k], cols)
        w += 1
        if k == p - 1:
            break
        for r in range(per[k]):
            lk = lam[i]
            new_t[w], new_origin[w] = tc[i], next_id + i
            left = 0.0 if r == 0 else lam[i - 1]
            _relu_slopes_at(out[w - 1], x[k], z[k], z[k + 1], (left + lk) * 0.5, cols)
            if w % anchor == 0:
                for c in range(d):
                    cur[c] = z[k, c] + lk * (z[k + 1, c] - z[k, c])
                cur[u[i]] = 0.0
                _relu_values(out[q - 1 + w // anchor], cur, cols)
            w += 1
            i += 1
    return new_t, out, cols, new_origin, j, u, lam, tc


@numba.njit(cache=True, nogil=True)
def _stable_order(keys):  # pragma: no cover - compiled
    """``np.argsort(keys, kind="stable")`` by a bottom-up merge sort (Numba compiles NumPy's
    stable argsort in seconds; this in a fraction of one)."""
    n = keys.shape[0]
    order = np.arange(n)
    spare = np.empty(n, np.int64)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid, hi = min(lo + width, n), min(lo + 2 * width, n)
            a, b = lo, mid
            for r in range(lo, hi):  # take from the left run on ties: stable
                if a < mid and (b >= hi or keys[order[a]] <= keys[order[b]]):
                    spare[r] = order[a]
                    a += 1
                else:
                    spare[r] = order[b]
                    b += 1
        order, spare = spare, order
        width *= 2
    return order


@numba.njit(cache=True, nogil=True)
def _relu_slopes(out, slopes, left, right, cols):  # pragma: no cover - compiled
    """Slopes after the ReLU on an interval: a unit's own where it is > 0 at either end."""
    for i_c in range(cols.shape[0]):
        c = cols[i_c]
        out[i_c] = slopes[c] if (left[c] > 0.0 or right[c] > 0.0) else 0.0


@numba.njit(cache=True, nogil=True)
def _relu_slopes_at(out, slopes, left, right, mid, cols):  # pragma: no cover - compiled
    """Slopes after the ReLU on a piece of an interval: a unit's own where it is > 0 at the
    fraction ``mid`` of the way from ``left`` to ``right``."""
    for i_c in range(cols.shape[0]):
        c = cols[i_c]
        out[i_c] = slopes[c] if left[c] + mid * (right[c] - left[c]) > 0.0 else 0.0


@numba.njit(cache=True, nogil=True)
def _relu_values(out, values, cols):  # pragma: no cover - compiled
    for i_c in range(cols.shape[0]):
        out[i_c] = max(values[cols[i_c]], 0.0)


@numba.njit(cache=True, nogil=True)
def _expand(x, cols, width):  # pragma: no cover - compiled
    """Put back the all-zero columns of the units a ReLU left off everywhere."""
    full = np.zeros((x.shape[0], width))
    for k in range(x.shape[0]):
        for i_c in range(cols.shape[0]):
            full[k, cols[i_c]] = x[k, i_c]
    return full


@numba.njit(cache=True, nogil=True)
def _onto_new_points(v, s, j, lam):  # pragma: no cover - compiled
    """A residual input's values ``v`` and slopes ``s`` on the points after a ReLU inserted
    the crossings (interval ``j``, fraction ``lam``; sorted) — as ``spline._relu_split``."""
    p, d = v.shape
    count = j.shape[0]
    moved_v = np.empty((p + count, d))
    moved_s = np.empty((p + count - 1, d))
    w = 0
    i = 0
    for k in range(p):
        moved_v[w] = v[k]
        if k < p - 1:
            moved_s[w] = s[k]
        w += 1
        while i < count and j[i] == k:
            for c in range(d):
                moved_v[w, c] = v[k, c] + lam[i] * (v[k + 1, c] - v[k, c])
            moved_s[w] = s[k]
            w += 1
            i += 1
    return moved_v, moved_s


@numba.njit(cache=True, nogil=True)
def propagate(codes, shapes, params, lower, upper, anchor, jump_rtol,
              sliver):  # pragma: no cover - compiled
    """``spline._propagate`` and ``spline._output_arrays`` in one compiled call: the same
    arithmetic in the same order, but the matrix products call SciPy's BLAS (through Numba)
    instead of torch's.

    ``codes``, ``shapes`` and ``params`` are a ``spline._Program``'s. Returns what
    ``_output_arrays`` does, then each ReLU layer's crossing count, and all crossings' units
    and locations in id order."""
    t = np.array([lower, upper])
    x = np.empty((2, 1))
    x[0, 0] = 1.0  # slope 1; value at the anchor t[0]
    x[1, 0] = lower
    origin = np.full(2, -1, np.int64)
    cols = np.zeros(1, np.int64)
    partial = False  # x holds only the columns `cols` of a `width`-wide state
    width = 1
    next_id = 0
    skip_v = [np.empty((0, 0))]  # stacks of open residual inputs (a sentinel at the bottom)
    skip_s = [np.empty((0, 0))]
    counts = [0]
    units = [np.empty(0, np.int64)]
    places = [np.empty(0)]
    layer = 0
    terms = -1.0
    for op in range(codes.shape[0]):
        code = codes[op]
        if code == LINEAR:
            out, into, w_at, b_at = shapes[layer]
            layer += 1
            w = params[w_at:w_at + out * into].reshape((out, into))
            if partial:  # the columns of the units the last ReLU kept
                kept = np.empty((out, cols.shape[0]))
                for r in range(out):
                    for i_c in range(cols.shape[0]):
                        kept[r, i_c] = w[r, cols[i_c]]
                w = kept
            p = t.shape[0]
            if x.shape[1] == 0:  # every unit of the last ReLU is off everywhere
                x = np.zeros((x.shape[0], out))
                if op == codes.shape[0] - 1:
                    terms = 0.0
            else:
                if op == codes.shape[0] - 1:
                    terms = np.dot(np.abs(x[: p - 1]), np.abs(w).T).max()
                x = np.dot(x, w.T)
            for k in range(p - 1, x.shape[0]):
                for c in range(out):
                    x[k, c] += params[b_at + c]
            partial = False
            width = out
        elif code == RELU:
            if partial:
                x = _expand(x, cols, width)
            p = t.shape[0]
            new_t, x, cols, new_origin, j, u, lam, tc = relu_split(t, x, origin, anchor,
                                                                   next_id)
            count = j.shape[0]
            if count:
                for k in range(1, len(skip_v)):
                    skip_v[k], skip_s[k] = _onto_new_points(skip_v[k], skip_s[k], j, lam)
            t, origin = new_t, new_origin
            partial = cols.shape[0] != width
            counts.append(count)
            units.append(u)
            places.append(tc)
            next_id += count
        elif code == OPEN_SKIP:
            if partial:
                x = _expand(x, cols, width)
                partial = False
            p = t.shape[0]
            skip_v.append(values(t, x, anchor))
            skip_s.append(x[: p - 1].copy())
        else:  # _spline_ops.CLOSE_SKIP: add the block's input
            if partial:
                x = _expand(x, cols, width)
                partial = False
            p = t.shape[0]
            v = skip_v.pop()
            s = skip_s.pop()
            x[: p - 1] += s
            k = 0
            while k < p:
                x[p - 1 + k // anchor] += v[k]
                k += anchor
    if partial:
        x = _expand(x, cols, width)
    if terms < 0.0:
        terms = np.abs(x[: t.shape[0] - 1]).max()
    total = next_id
    all_units = np.empty(total, np.int64)
    all_places = np.empty(total)
    at = 0
    for k in range(1, len(units)):
        n = units[k].shape[0]
        all_units[at:at + n] = units[k]
        all_places[at:at + n] = places[k]
        at += n
    counts = np.array(counts[1:], np.int64)
    points, vals, slopes, knot_layer, knot_unit, active = output_arrays(
        t, values(t, x, anchor), x[: t.shape[0] - 1], origin, counts, all_units,
        jump_rtol * terms, sliver)
    return points, vals, slopes, knot_layer, knot_unit, active, counts, all_units, all_places


@numba.njit(cache=True, nogil=True)
def output_arrays(t, values, slopes, origin, counts, units, atol, sliver):  # pragma: no cover
    """``spline._output_arrays``, compiled."""
    p, m = values.shape
    kept = np.nonzero(t[1:] - t[:-1] > sliver)[0]  # left point of each piece kept
    if kept.shape[0] == 0:
        kept = np.array([np.argmax(t[1:] - t[:-1])])
    q = kept.shape[0]
    bend = np.zeros(q, np.bool_)  # bend[r]: a knot between kept pieces r − 1 and r
    for r in range(1, q):
        for c in range(m):
            if abs(slopes[kept[r], c] - slopes[kept[r - 1], c]) > atol:
                bend[r] = True
                break
    knots = np.nonzero(bend)[0]
    k = knots.shape[0]
    points = np.empty(k + 2)
    vals = np.empty((k + 2, m))
    piece_slopes = np.empty((k + 1, m))
    points[0], vals[0], piece_slopes[0] = t[0], values[0], slopes[kept[0]]
    points[k + 1], vals[k + 1] = t[p - 1], values[p - 1]
    layer_by_id = np.empty(units.shape[0], np.int64)
    at = 0
    for layer in range(counts.shape[0]):
        layer_by_id[at:at + counts[layer]] = layer + 1
        at += counts[layer]
    active = np.zeros(units.shape[0], np.bool_)
    knot_layer = np.empty(k, np.int64)
    knot_unit = np.empty(k, np.int64)
    for i in range(k):
        point = kept[knots[i]]
        points[i + 1], vals[i + 1] = t[point], values[point]
        piece_slopes[i + 1] = slopes[point]
        crossing = origin[point]
        active[crossing] = True
        knot_layer[i], knot_unit[i] = layer_by_id[crossing], units[crossing]
    return points, vals, piece_slopes, knot_layer, knot_unit, active
