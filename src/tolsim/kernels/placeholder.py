"""Stand-in rate functions so that the kernel templates import on their own.

The specialised copies of the template import a model's real rate function instead.
"""

from numba import njit


@njit(cache=True, error_model="numpy")
def rates(t, x, p, c, out):
    """No transitions fire (all propensities zero)."""
    for j in range(out.shape[0]):
        out[j] = 0.0


@njit(cache=True, error_model="numpy")
def lane_rates(t, x, p, e, out):
    """No transitions fire in any lane."""
    for j in range(out.shape[0]):
        for lane in range(out.shape[1]):
            out[j, lane] = 0.0
