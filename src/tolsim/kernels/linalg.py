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


@njit(cache=True, error_model="numpy")
def expm(a):
    """Matrix exponential by scaling and squaring with a Padé(13) approximant.

    Higham (2005), "The scaling and squaring method for the matrix exponential revisited";
    the degree-13 branch is used for every norm (accurate to unit roundoff; the matrices here
    are tiny, so the cheaper low-degree branches are not worth their code).
    """
    n = a.shape[0]
    norm1 = 0.0
    for j in range(n):
        col = 0.0
        for i in range(n):
            col += abs(a[i, j])
        norm1 = max(norm1, col)
    s = 0
    if norm1 > _THETA13:
        s = int(np.ceil(np.log2(norm1 / _THETA13)))
    scaled = a / (2.0**s)
    b = _PADE13
    a2 = np.empty((n, n))
    a4 = np.empty((n, n))
    a6 = np.empty((n, n))
    matmul(scaled, scaled, a2)
    matmul(a2, a2, a4)
    matmul(a4, a2, a6)
    inner_u = b[13] * a6 + b[11] * a4 + b[9] * a2
    tmp = np.empty((n, n))
    matmul(a6, inner_u, tmp)
    eye = np.eye(n)
    tmp += b[7] * a6 + b[5] * a4 + b[3] * a2 + b[1] * eye
    u = np.empty((n, n))
    matmul(scaled, tmp, u)
    inner_v = b[12] * a6 + b[10] * a4 + b[8] * a2
    v = np.empty((n, n))
    matmul(a6, inner_v, v)
    v += b[6] * a6 + b[4] * a4 + b[2] * a2 + b[0] * eye
    lu = v - u
    rhs = v + u
    piv = np.empty(n, dtype=np.int64)
    lu_factor(lu, piv)
    result = np.empty((n, n))
    col = np.empty(n)
    for j in range(n):
        for i in range(n):
            col[i] = rhs[i, j]
        lu_solve(lu, piv, col)
        for i in range(n):
            result[i, j] = col[i]
    for _ in range(s):
        matmul(result, result, tmp)
        result[:, :] = tmp
    return result
