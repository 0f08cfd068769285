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
    for s in prange(out_x.shape[0]):
        sample_totals(out_x[s], tolerant_columns, total[s], fraction[s])


@njit(cache=True, nogil=True, error_model="numpy")
def sample_totals(x, tolerant_columns, total, fraction):
    """One sample's total cells and tolerant fraction at each output: ``x`` (n_times,
    n_states) cells into ``total`` and ``fraction`` (n_times,).

    The ODE kernels call this as each sample (or lockstep group) finishes, while its rows are
    still in cache: a separate pass over a whole ensemble's outputs reads them back from
    memory, which cost about as much as the rest of ``simulate()``'s work outside the kernel.
    """
    n_times, n_states = x.shape
    if n_states == 2 and tolerant_columns.shape[0] == 1:
        # the two-state models: one loop, 3x as fast as the general one below (the same
        # sums: 0.0 + a + b is a + b, 0.0 + t is t)
        c = tolerant_columns[0]
        for j in range(n_times):
            acc = x[j, 0] + x[j, 1]
            share = x[j, c] / acc
            total[j] = acc
            fraction[j] = share if acc > 0.0 else np.nan
        return
    # loops over the outputs innermost, so that LLVM vectorises them (the division above all):
    # twice as fast as a loop over states per output, the same sums in the same order
    for j in range(n_times):
        total[j] = 0.0
        fraction[j] = 0.0
    for i in range(n_states):
        for j in range(n_times):
            total[j] += x[j, i]
    for c in tolerant_columns:
        for j in range(n_times):
            fraction[j] += x[j, c]
    for j in range(n_times):
        share = fraction[j] / total[j]
        fraction[j] = share if total[j] > 0.0 else np.nan
