"""Observables computed from solver output in parallel (numba; arrays only)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def totals(out_x, tolerant_columns):
    """Total cells and tolerant fraction, each ``(n_samples, n_times)``.

    The fraction is NaN where the population is extinct (0/0) or the state is NaN.
    """
    n_samples, n_times, n_states = out_x.shape
    total = np.empty((n_samples, n_times))
    fraction = np.empty((n_samples, n_times))
    for s in prange(n_samples):
        for j in range(n_times):
            acc = 0.0
            for i in range(n_states):
                acc += out_x[s, j, i]
            tolerant = 0.0
            for c in tolerant_columns:
                tolerant += out_x[s, j, c]
            total[s, j] = acc
            fraction[s, j] = tolerant / acc if acc > 0.0 else np.nan
    return total, fraction
