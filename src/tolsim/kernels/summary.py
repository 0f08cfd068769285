"""Observables computed from solver output in parallel (numba; arrays only)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


def totals(out_x: np.ndarray, tolerant_columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Total cells and tolerant fraction, each ``(n_samples, n_times)``.

    The fraction is NaN where the population is extinct (0/0) or the state is NaN. The
    outputs are allocated by numpy, which asks Linux for huge pages for large arrays: about
    half the time of numba's allocation for a result of a few tens of MB, most of which is
    spent faulting fresh pages in.
    """
    n_samples, n_times, _ = out_x.shape
    total = np.empty((n_samples, n_times))
    fraction = np.empty((n_samples, n_times))
    totals_into(out_x, tolerant_columns, total, fraction)
    return total, fraction


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def totals_into(out_x, tolerant_columns, total, fraction):
    """Fill ``total`` and ``fraction`` (see :func:`totals`)."""
    n_samples, n_times, n_states = out_x.shape
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
