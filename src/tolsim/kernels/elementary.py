"""Logarithm, exponential and log-factorial from IEEE basic operations only (numba).

``math.log`` and ``math.exp`` are not required to round correctly, and they do not round
alike everywhere: the CPU calls the C library (glibc), a CUDA device calls libdevice, and the
two differ in the last bit for some arguments. A sampler that uses them (the exponential
ziggurat's tail, its wedge test, the Poisson samplers) then gives a GPU stream that is not the
CPU's. The functions here use only ``+ - * /``, comparisons, ``math.floor``, ``math.frexp``
and multiplication by exact powers of two. IEEE 754 rounds each of those correctly, so the
results are the same bit for bit on every device, provided the compiler fuses no multiply-add
(numba's CPU target does not contract without ``fastmath``; the CUDA host compiles the
stochastic kernel with NVVM's FMA contraction off, see :mod:`tolsim.cuda_stochastic`).

Algorithms: fdlibm's ``__ieee754_log`` and ``__ieee754_exp`` (Sun Microsystems, 1993; the
polynomials and the hi/lo split of ln 2), with the exponent read by ``frexp`` and set by a
table of powers of two (both exact). Both are within one unit in the last place of the C
library's (measured in ``tests/test_elementary.py``). ``log_factorial`` reads a table below
256 (built on the host, so both devices read the same numbers) and takes Stirling's series
above.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_LN2_HI = 6.93147180369123816490e-01  # ln 2 to 32 bits: k * _LN2_HI is exact for |k| < 2**20
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_SQRT_HALF = 0.7071067811865476

_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01

_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08

_EXP_OVERFLOW = 7.09782712893383973096e02  # exp(x) = inf above
_EXP_UNDERFLOW = -7.45133219101941108420e02  # exp(x) = 0 below

_POW2_MIN = -1021  # 2**k for k in [-1021, 1023], exact: scales exp's result
_POW2 = np.array([2.0**k for k in range(_POW2_MIN, 1024)])

_HALF_LOG_2PI = 0.91893853320467274178  # ln(2 pi) / 2
_FACTORIAL_TABLE_SIZE = 256
# ln(k!) for k < 256, computed once on the host: both devices read these same numbers
_LOG_FACTORIAL = np.array([math.lgamma(k + 1.0) for k in range(_FACTORIAL_TABLE_SIZE)])


@njit(cache=True, error_model="numpy", inline="always")
def _normalise(x):
    """``(m, k)`` with ``x = m * 2**k`` exactly and ``m`` in [sqrt(1/2), sqrt(2)), for finite
    ``x > 0`` (``frexp`` reads the exponent: exact, subnormals included)."""
    m, e = math.frexp(x)  # m in [1/2, 1)
    if m < _SQRT_HALF:
        m *= 2.0
        e -= 1
    return m, float(e)


@njit(cache=True, error_model="numpy", inline="always")
def log(x):
    """Natural logarithm (fdlibm's algorithm); ``-inf`` at 0, NaN below 0 and for NaN."""
    if not x > 0.0:
        if x == 0.0:
            return -math.inf
        return math.nan  # x < 0 or NaN
    if x == math.inf:
        return x
    m, k = _normalise(x)
    f = m - 1.0  # exact (Sterbenz)
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    r = t2 + t1
    hfsq = 0.5 * f * f
    if k == 0.0:
        return f - (hfsq - s * (hfsq + r))
    return k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)


@njit(cache=True, error_model="numpy", inline="always")
def _exp_parts(x):
    """``(y, k)`` with ``exp(x) = y * 2**k`` (fdlibm's reduction and polynomial), for finite
    ``x`` with ``|x| >= 2**-28``; ``k`` is an integer."""
    k = math.floor(x * _INV_LN2 + 0.5)  # nearest integer to x / ln 2 (an int on the CPU,
    # a float holding one on CUDA: the same value)
    hi = x - k * _LN2_HI  # exact: k has at most 11 bits, _LN2_HI 32
    lo = k * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
    if k == 0:
        return 1.0 - ((r * c) / (c - 2.0) - r), k
    return 1.0 - ((lo - (r * c) / (2.0 - c)) - hi), k


@njit(cache=True, error_model="numpy", inline="always")
def exp_moderate(x):
    """:func:`exp` for ``-708 <= x <= 709`` (the result is a normal number), without the
    special cases: small enough to inline into a sampler's rarely taken branch (a larger
    body there slowed every draw). Equal to :func:`exp` on that range."""
    if abs(x) < 2.0**-28:
        return 1.0 + x
    y, k = _exp_parts(x)
    return y * _POW2[int(k) - _POW2_MIN]  # exact: the result is a normal number


@njit(cache=True, error_model="numpy", inline="always")
def exp(x):
    """Exponential (fdlibm's algorithm); 0 below -745.13, ``inf`` above 709.78."""
    if x != x:
        return x
    if x > _EXP_OVERFLOW:
        return math.inf
    if x < _EXP_UNDERFLOW:
        return 0.0
    if abs(x) < 2.0**-28:
        return 1.0 + x
    y, k = _exp_parts(x)
    if k < -1021:  # a subnormal result: scale in two steps, rounding once at the end
        return (y * _POW2[int(k) + 1000 - _POW2_MIN]) * _POW2[-1000 - _POW2_MIN]
    if k > 1023:  # 2**1024 overflows: y < 1 here, so y * 2 * 2**1023 is finite
        return (y * 2.0) * _POW2[1023 - _POW2_MIN]
    return y * _POW2[int(k) - _POW2_MIN]  # exact: the result is a normal number


@njit(cache=True, error_model="numpy", inline="always")
def log_factorial(k):
    """``ln(k!)`` for an integer-valued ``k >= 0`` (a table below 256, Stirling's series
    with four terms above: truncation error below 1e-21)."""
    if k < _FACTORIAL_TABLE_SIZE:
        return _LOG_FACTORIAL[int(k)]
    x = k + 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    series = inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 / 1680.0)))
    return (x - 0.5) * log(x) - x + _HALF_LOG_2PI + series
