"""Stand-in rate function so that :mod:`tolsim.kernels.ode_template` imports on its own.

The specialised copies of the template import a model's real rate function instead.
"""

from numba import njit


@njit(cache=True, error_model="numpy")
def rates(t, x, p, c, out):
    """No transitions fire (all propensities zero)."""
    for j in range(out.shape[0]):
        out[j] = 0.0
