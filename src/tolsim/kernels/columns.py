"""Checking parameter columns (numba, parallel over rows)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def first_outside(column, low, high):
    """The first row of ``column`` whose value is not a finite number within ``[low, high]``
    (NaN fails), or -1 when every row passes: one parallel read of the column."""
    n = column.shape[0]
    first = n
    for r in prange(n):
        x = column[r]
        if not (x >= low and x <= high and np.isfinite(x)):
            first = min(first, r)
    return first if first < n else -1
