"""Threshold crossings of a solution sampled with its derivative (numba).

Between two outputs the solution is the cubic Hermite interpolant of the stored values and
exact derivatives (``dN/dt`` from the right-hand side at each output): a C1 interpolant whose
error is ``O(h^4)`` in the output spacing ``h``, so crossings are located far more accurately
than by linear interpolation, without storing the solver's step-wise dense output.

At an output on a schedule breakpoint where a drug's level steps, ``dN/dt`` jumps, and the
stored value is the right-hand derivative (the rates of the piece the breakpoint starts). The
interval that *ends* there then uses the quadratic through its two values and its left
derivative instead (``O(h^3)``): the right-hand derivative there would bend the interpolant
toward the next piece's slope and can invent a crossing that never happens. ``jumps[j]`` marks
those outputs (:func:`tolsim.recurrence.derivative_jumps`).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def _cubic(y0, y1, d0, d1, h):
    """Coefficients of y(s) = c0 + c1 s + c2 s^2 + c3 s^3 on s in [0, 1]."""
    c0 = y0
    c1 = h * d0
    c2 = -3.0 * y0 - 2.0 * h * d0 + 3.0 * y1 - h * d1
    c3 = 2.0 * y0 + h * d0 - 2.0 * y1 + h * d1
    return c0, c1, c2, c3


@njit(cache=True, error_model="numpy")
def _eval(c0, c1, c2, c3, s):
    return c0 + s * (c1 + s * (c2 + s * c3))


@njit(cache=True, error_model="numpy")
def _end_slope(y0, y1, d0, d1, h, jump):
    """The derivative the interpolant of an interval takes at its right end: ``d1``, or where
    the derivative jumps there (``jump``), the one that makes it the quadratic through ``y0``,
    ``y1`` with slope ``d0`` at the left end (the cubic's ``c3`` is then 0)."""
    if jump:
        return 2.0 * (y1 - y0) / h - d0
    return d1


@njit(cache=True, error_model="numpy")
def hermite_value(times, y, dy, jumps, t):
    """Value at day ``t`` of the piecewise Hermite interpolant of ``(times, y, dy)``."""
    k = np.searchsorted(times, t, side="right") - 1
    k = min(max(k, 0), times.shape[0] - 2)
    h = times[k + 1] - times[k]
    d1 = _end_slope(y[k], y[k + 1], dy[k], dy[k + 1], h, jumps[k + 1])
    c0, c1, c2, c3 = _cubic(y[k], y[k + 1], dy[k], d1, h)
    return _eval(c0, c1, c2, c3, (t - times[k]) / h)


@njit(cache=True, error_model="numpy")
def first_upcrossing(times, y, dy, jumps, t_start, level):
    """First day ``t >= t_start`` at which the interpolant rises through ``level``.

    Returns ``t_start`` if the value there already exceeds ``level``, ``inf`` if the level is
    never crossed from below before ``times[-1]``, and NaN if any value is NaN.
    """
    n = times.shape[0]
    for i in range(n):
        if np.isnan(y[i]) or np.isnan(dy[i]):
            return np.nan
    if hermite_value(times, y, dy, jumps, t_start) > level:
        return t_start
    k0 = np.searchsorted(times, t_start, side="right") - 1
    k0 = min(max(k0, 0), n - 2)
    for k in range(k0, n - 1):
        h = times[k + 1] - times[k]
        d1 = _end_slope(y[k], y[k + 1], dy[k], dy[k + 1], h, jumps[k + 1])
        c0, c1, c2, c3 = _cubic(y[k], y[k + 1], dy[k], d1, h)
        s_lo = max((t_start - times[k]) / h, 0.0)
        # split [s_lo, 1] at the cubic's critical points into monotone pieces
        cuts = np.empty(4)
        cuts[0] = s_lo
        m = 1
        a, b, c = 3.0 * c3, 2.0 * c2, c1
        if a != 0.0:
            disc = b * b - 4.0 * a * c
            if disc > 0.0:
                r = np.sqrt(disc)
                r1 = (-b - r) / (2.0 * a)
                r2 = (-b + r) / (2.0 * a)
                if r1 > r2:
                    r1, r2 = r2, r1
                for root in (r1, r2):
                    if s_lo < root < 1.0:
                        cuts[m] = root
                        m += 1
        elif b != 0.0:
            root = -c / b
            if s_lo < root < 1.0:
                cuts[m] = root
                m += 1
        cuts[m] = 1.0
        m += 1
        for q in range(m - 1):
            lo = cuts[q]
            hi = cuts[q + 1]
            f_lo = _eval(c0, c1, c2, c3, lo) - level
            f_hi = _eval(c0, c1, c2, c3, hi) - level
            if f_lo <= 0.0 < f_hi:
                if f_lo == 0.0:
                    return times[k] + lo * h
                for _ in range(100):
                    mid = 0.5 * (lo + hi)
                    if _eval(c0, c1, c2, c3, mid) - level > 0.0:
                        hi = mid
                    else:
                        lo = mid
                    if hi - lo <= 1e-15:
                        break
                return times[k] + 0.5 * (lo + hi) * h
    return np.inf


@njit(cache=True, error_model="numpy")
def recurrence_days(times, n_cells, dn_dt, jumps, withdrawal_day, thresholds):
    """Days from withdrawal to the first regrowth through each sample's threshold.

    ``n_cells``, ``dn_dt`` are ``(n_samples, n_times)``; ``jumps`` is ``(n_times,)`` (True
    where ``dn_dt`` jumps, see the module); ``thresholds`` is ``(n_samples,)`` with NaN
    meaning "the burden at withdrawal".
    """
    n_samples = n_cells.shape[0]
    out = np.empty(n_samples)
    for s in range(n_samples):
        level = thresholds[s]
        if np.isnan(level):
            level = hermite_value(times, n_cells[s], dn_dt[s], jumps, withdrawal_day)
        crossing = first_upcrossing(times, n_cells[s], dn_dt[s], jumps, withdrawal_day, level)
        out[s] = crossing - withdrawal_day
    return out
