"""Small dense linear algebra for kernels (numba; no BLAS/LAPACK calls, no Python objects).

State vectors here have a handful of entries, so plain loops beat library calls and stay
allocation-free inside ``prange`` loops.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Padé(13) coefficients and the 1-norm bound theta_13 (Higham 2005, SIAM J. Matrix Anal. Appl.
# 26:1179, Table 2.3 and eq. 2.3).
_PADE13 = np.array(
    [
        64764752532480000.0,
        32382376266240000.0,
        7771770303897600.0,
        1187353796428800.0,
        129060195264000.0,
        10559470521600.0,
        670442572800.0,
        33522128640.0,
        1323241920.0,
        40840800.0,
        960960.0,
        16380.0,
        182.0,
        1.0,
    ]
)
_THETA13 = 5.371920351148152


@njit(cache=True, error_model="numpy")
def lu_factor(a, piv):
    """In-place LU factorisation with partial pivoting; returns False when singular."""
    n = a.shape[0]
    for k in range(n):
        p = k
        big = abs(a[k, k])
        for i in range(k + 1, n):
            if abs(a[i, k]) > big:
                big = abs(a[i, k])
                p = i
        piv[k] = p
        if big == 0.0:
            return False
        if p != k:
            for j in range(n):
                tmp = a[k, j]
                a[k, j] = a[p, j]
                a[p, j] = tmp
        for i in range(k + 1, n):
            a[i, k] /= a[k, k]
            f = a[i, k]
            if f != 0.0:
                for j in range(k + 1, n):
                    a[i, j] -= f * a[k, j]
    return True


@njit(cache=True, error_model="numpy")
def lu_solve(lu, piv, b):
    """Solve ``A x = b`` in place of ``b`` from :func:`lu_factor` output."""
    n = lu.shape[0]
    for k in range(n):
        p = piv[k]
        if p != k:
            tmp = b[k]
            b[k] = b[p]
            b[p] = tmp
    for i in range(n):
        s = b[i]
        for j in range(i):
            s -= lu[i, j] * b[j]
        b[i] = s
    for i in range(n - 1, -1, -1):
        s = b[i]
        for j in range(i + 1, n):
            s -= lu[i, j] * b[j]
        b[i] = s / lu[i, i]


@njit(cache=True, error_model="numpy")
def matmul(a, b, out):
    n, m = a.shape
    q = b.shape[1]
    for i in range(n):
        for j in range(q):
            s = 0.0
            for k in range(m):
                s += a[i, k] * b[k, j]
            out[i, j] = s


# (n, n) work matrices :func:`expm_into` needs
EXPM_WORK = 7


@njit(cache=True, error_model="numpy")
def expm(a):
    """Matrix exponential of ``a`` (a new array); see :func:`expm_into`."""
    n = a.shape[0]
    out = np.empty((n, n))
    expm_into(a, 1.0, np.empty((EXPM_WORK, n, n)), np.empty(n, dtype=np.int64), np.empty(n), out)
    return out


# sinh(x)/x = sum x^(2k) / (2k+1)!, k = 0..7: below x = 0.5 the first omitted term is
# x^16 / 17! < 1e-19 of the sum
_SINHC = (
    1.0,
    1.0 / 6.0,
    1.0 / 120.0,
    1.0 / 5040.0,
    1.0 / 362880.0,
    1.0 / 39916800.0,
    1.0 / 6227020800.0,
    1.0 / 1307674368000.0,
)


@njit(cache=True, error_model="numpy", inline="always")
def _times(value, weight):
    """``value * weight``, 0 for a zero ``weight`` whatever ``value`` (also inf)."""
    return 0.0 if weight == 0.0 else value * weight


@njit(cache=True, error_model="numpy")
def _expm2_into(p, q, r, t, out):
    """``out = expm([[p, q], [r, t]])`` for ``q * r >= 0`` (real eigenvalues ``s ± x``),
    in closed form: ``e^s (cosh(x) I + sinh(x)/x B)`` with ``s`` the mean of the diagonal
    and ``B`` the matrix less ``s I`` (Putzer; e.g. Moler & Van Loan 2003, method 8).

    Written so that no entry loses digits to cancellation: for ``x >= 0.5`` through
    ``e^(s+x)`` and ``e^(s-x)`` weighted by ``x ± d`` (``d = (p - t)/2``), the smaller of
    which is ``q r / (x ∓ d)``, since ``x^2 = d^2 + q r``; below, ``sinh(x)/x`` by its
    series. Each entry is then accurate to a few ulps relative to itself, also the tiny
    ones of a stiff matrix (``expm([[-100, 0], [1, 0]])[0, 0] = e^-100``), and every
    entry of the exponential of a Metzler matrix (the rate matrices here: non-negative
    off-diagonal) comes out non-negative, which Padé's normwise error does not promise.
    """
    s = 0.5 * (p + t)
    d = 0.5 * (p - t)
    qr = q * r
    x = np.sqrt(d * d + qr)
    if x >= 0.5:
        ep = np.exp(s + x)
        em = np.exp(s - x)
        if d >= 0.0:
            xpd = x + d
            xmd = qr / xpd
        else:
            xmd = x - d
            xpd = qr / xmd
        half = 0.5 / x
        # a zero weight gives 0 even where e^(s+x) overflowed: with no switching, an empty
        # fast-growing state must not turn the other state's entries into inf x 0 = NaN
        out[0, 0] = (_times(ep, xpd) + _times(em, xmd)) * half
        out[1, 1] = (_times(ep, xmd) + _times(em, xpd)) * half
        odd = (ep - em) * half
        out[0, 1] = _times(odd, q)
        out[1, 0] = _times(odd, r)
        return
    x2 = x * x
    sinhc = _SINHC[7]
    for k in range(6, -1, -1):
        sinhc = sinhc * x2 + _SINHC[k]
    es = np.exp(s)
    ch = es * np.cosh(x)
    sh = es * sinhc
    out[0, 0] = ch + d * sh
    out[1, 1] = ch - d * sh
    out[0, 1] = q * sh
    out[1, 0] = r * sh


@njit(cache=True, error_model="numpy")
def expm_into(a, scale, work, piv, col, out):
    """``out = expm(a * scale)`` by scaling and squaring with a Padé(13) approximant, with no
    allocation: ``work`` is ``(EXPM_WORK, n, n)``, ``piv`` ``(n,)`` int64, ``col`` ``(n,)``.

    A 2x2 matrix with real eigenvalues (``a[0, 1] * a[1, 0] >= 0``, as every two-state rate
    matrix here) takes the closed form of :func:`_expm2_into` instead: two exponentials
    instead of six matrix products and a solve, and each entry accurate relative to itself.

    Otherwise Higham (2005), "The scaling and squaring method for the matrix exponential
    revisited";
    the degree-13 branch is used for every norm (accurate to unit roundoff; the matrices here
    are tiny, so the cheaper low-degree branches are not worth their code). The exact ODE path
    calls it once per piece and output spacing inside its parallel loop, where an allocation
    per temporary cost more than the arithmetic.
    """
    n = a.shape[0]
    if n == 2 and a[0, 1] * a[1, 0] >= 0.0:  # real eigenvalues: two exponentials suffice
        _expm2_into(a[0, 0] * scale, a[0, 1] * scale, a[1, 0] * scale, a[1, 1] * scale, out)
        return
    x, a2, a4, a6, u, v, tmp = (
        work[0], work[1], work[2], work[3], work[4], work[5], work[6]
    )  # fmt: skip
    norm1 = 0.0
    for j in range(n):
        column = 0.0
        for i in range(n):
            x[i, j] = a[i, j] * scale
            column += abs(x[i, j])
        norm1 = max(norm1, column)
    s = 0
    if norm1 > _THETA13:
        s = int(np.ceil(np.log2(norm1 / _THETA13)))
    divisor = 2.0**s
    for i in range(n):
        for j in range(n):
            x[i, j] = x[i, j] / divisor
    # The odd and even sums below are written out rather than one helper with the
    # coefficients as arguments: the helper (inlined or not) made a 2x2 expm 13-70% slower,
    # since LLVM no longer folds the coefficients into the loops.
    b = _PADE13
    matmul(x, x, a2)
    matmul(a2, a2, a4)
    matmul(a4, a2, a6)
    for i in range(n):
        for j in range(n):
            tmp[i, j] = b[13] * a6[i, j] + b[11] * a4[i, j] + b[9] * a2[i, j]
    matmul(a6, tmp, v)
    for i in range(n):
        for j in range(n):
            eye = 1.0 if i == j else 0.0
            v[i, j] += b[7] * a6[i, j] + b[5] * a4[i, j] + b[3] * a2[i, j] + b[1] * eye
    matmul(x, v, u)
    for i in range(n):
        for j in range(n):
            tmp[i, j] = b[12] * a6[i, j] + b[10] * a4[i, j] + b[8] * a2[i, j]
    matmul(a6, tmp, v)
    for i in range(n):
        for j in range(n):
            eye = 1.0 if i == j else 0.0
            v[i, j] += b[6] * a6[i, j] + b[4] * a4[i, j] + b[2] * a2[i, j] + b[0] * eye
    # solve (V - U) R = V + U: the factors in tmp, the right-hand sides in x
    for i in range(n):
        for j in range(n):
            tmp[i, j] = v[i, j] - u[i, j]
            x[i, j] = v[i, j] + u[i, j]
    lu_factor(tmp, piv)
    for j in range(n):
        for i in range(n):
            col[i] = x[i, j]
        lu_solve(tmp, piv, col)
        for i in range(n):
            out[i, j] = col[i]
    for _ in range(s):
        matmul(out, out, tmp)
        for i in range(n):
            for j in range(n):
                out[i, j] = tmp[i, j]
