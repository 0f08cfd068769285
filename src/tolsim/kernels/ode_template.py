"""ODE solver kernels, written once against the model interface ``rates(t, x, p, c, out)``.

This file is a *template*: :mod:`tolsim.kernels.specialise` writes a copy per rate function
with the import marked ``TOLSIM-RATES`` pointing at that function, so every kernel calls the
model's rates as a plain global. Numba then inlines them, and the on-disk cache (keyed on the
copy's file) survives across processes — passing the rate function as an argument would
recompile in every process.

Methods
-------
* Dormand–Prince 5(4) (Dormand & Prince 1980) with the PI step-size controller and the
  stiffness detection of Hairer & Wanner's DOPRI5, dense output of order 4 (Shampine 1986,
  coefficients as in ``scipy.integrate.RK45``).
* Rosenbrock 4(3) with Shampine's parameters (A-stable; Shampine 1982), numerical Jacobian
  and time derivative, cubic Hermite dense output, for stiff problems; ``auto`` switches to
  it when DOPRI5's detector fires.
* Exact per-piece solution ``x(t) = expm(A (t - t_k)) x(t_k)`` for linear models with
  piecewise-constant exposures; ``A`` is assembled from the rate function at unit vectors.

Every method integrates piece by piece between the schedule's breakpoints, never steps over
one, and keeps populations non-negative.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tolsim.kernels.exposure import (
    PK_COLUMNS,
    PK_DEPOT,
    PK_KA,
    CompiledSchedule,
    load_piece,
    piece_concentrations,
)
from tolsim.kernels.linalg import EXPM_WORK, expm_into, lu_factor, lu_solve, matmul
from tolsim.kernels.placeholder import rates as model_rates  # TOLSIM-RATES
from tolsim.kernels.summary import sample_totals
from tolsim.kernels.tableau import DENSE_P, DP_A, DP_C, DP_E

# The model's rate function is compiled again here and inlined (at numba IR level) into the
# right-hand side: a plain call would cost a reference-count round trip per array argument,
# several times the arithmetic of a small model. It is never compiled on its own, only inside
# the cached kernels below, so it needs no cache of its own.
rates = njit(error_model="numpy", inline="always")(model_rates.py_func)

SUCCESS = 0
STEP_SIZE_TOO_SMALL = -1
MAX_STEPS_REACHED = -2
NON_FINITE_STATE = -3

METHOD_DOPRI5 = 0
METHOD_AUTO = 1
METHOD_ROSENBROCK = 2
METHOD_EXACT = 3

SOLVER_ADAPTIVE = 0  # METHOD_DOPRI5, METHOD_AUTO, METHOD_ROSENBROCK: integrate_adaptive
SOLVER_EXACT = 1  # METHOD_EXACT: integrate_exact
# The solver compiled into this copy (a SOLVER_* code; tolsim.simulate.ode_kernels); -1, the
# template's own value: none, and solve_one / solve_batch refuse every call. Numba prunes the
# branches on this constant before typing, so a copy compiles one solver's code alone (a fresh
# cache's first call on 2 cores: 33 s when one copy held both, 14.5 s exact and 15 s adaptive)
SOLVER = -1  # TOLSIM-CONSTANT

# stats columns
STAT_STATUS = 0
STAT_STEPS = 1
STAT_REJECTED = 2
STAT_RHS = 3
STAT_STIFF = 4
N_STATS = 5

# Rosenbrock 4(3) with Shampine's parameters (Kaps-Rentrop form; Shampine 1982, ACM TOMS 8:93;
# as in Press et al., Numerical Recipes, "stiff"): A-stable, order 4, embedded order 3, three
# function evaluations and one LU factorisation per step.
ROS_GAMMA = 1 / 2
ROS_A21 = 2.0
ROS_A31, ROS_A32 = 48 / 25, 6 / 25
ROS_C21 = -8.0
ROS_C31, ROS_C32 = 372 / 25, 12 / 5
ROS_C41, ROS_C42, ROS_C43 = -112 / 125, -54 / 125, -2 / 5
ROS_B = np.array([19 / 9, 1 / 2, 25 / 108, 125 / 108])
ROS_E = np.array([17 / 54, 7 / 36, 0.0, 125 / 108])
ROS_GX = np.array([1 / 2, -3 / 2, 121 / 50, 29 / 250])  # gamma_i: weights of df/dt
ROS_AX2, ROS_AX3 = 1.0, 3 / 5  # stage nodes

SAFETY = 0.9
# The exact path reuses its propagator for an output spacing within this relative distance of
# the cached one, with a first-order correction (the neglected term is ~(|A| dt 1e-12)^2).
SPACING_RTOL = 1e-12
# outputs the exact path propagates at once along a run of equal spacings
EXACT_BLOCK = 4
# PI controller of DOPRI5 (Hairer, Norsett & Wanner, Solving ODEs I, II.4).
PI_BETA = 0.04
PI_EXPO1 = 0.2 - PI_BETA * 0.75
FAC_MIN = 0.2  # after an accepted step h may shrink at most 5x
FAC_MAX = 10.0  # and grow at most 10x
STIFF_LIMIT = 3.25  # |h lambda| bound of DOPRI5's stability region
STIFF_STEPS = 15
EPS = np.finfo(np.float64).eps
LOG_1E_4 = np.log(1e-4)
ABSORPTION_STEP = 0.25  # first step after an oral dose, in units of 1/ka
STIFF_CHECK_EVERY = 10  # accepted steps between stiffness tests while none is suspected
CUT_FRACTION = 1e-3  # a last step cut below this fraction of the proposal: resume from it


def _rhs(t, t0, level, pk, x, p, stoich, conc, rate_buf, dx):
    """``dx = stoich.T @ rates(t, x, p, c(t))``; the piece started on day ``t0`` and its
    inputs are loaded in ``level`` and ``pk`` (:func:`~tolsim.kernels.exposure.load_piece`)."""
    piece_concentrations(t - t0, level, pk, conc)
    rates(t, x, p, conc, rate_buf)
    for i in range(dx.shape[0]):
        acc = 0.0
        for j in range(stoich.shape[0]):
            acc += stoich[j, i] * rate_buf[j]  # float stoichiometry: no branches, no casts
        dx[i] = acc


# Inlined into the Dormand-Prince stage loop (the hot path); called as a function elsewhere,
# which keeps compile time down.
rhs_inline = njit(cache=True, error_model="numpy", inline="always")(_rhs)
rhs = njit(cache=True, error_model="numpy")(_rhs)


@njit(cache=True, error_model="numpy", inline="always")
def error_norm(err, y, y_new, rtol, atol):
    acc = 0.0
    for i in range(err.shape[0]):
        scale = atol + rtol * max(abs(y[i]), abs(y_new[i]))
        acc += (err[i] / scale) ** 2
    return np.sqrt(acc / err.shape[0])


@njit(cache=True, error_model="numpy")
def initial_step(t, t0, level, pk, x, f0, p, stoich, conc, rate_buf, work, f1, rtol, atol, order):
    """Initial step size (Hairer, Norsett & Wanner, Solving ODEs I, II.4)."""
    n = x.shape[0]
    d0 = 0.0
    d1 = 0.0
    for i in range(n):
        scale = atol + rtol * abs(x[i])
        d0 += (x[i] / scale) ** 2
        d1 += (f0[i] / scale) ** 2
    d0 = np.sqrt(d0 / n)
    d1 = np.sqrt(d1 / n)
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    for i in range(n):
        work[i] = x[i] + h0 * f0[i]
    rhs(t + h0, t0, level, pk, work, p, stoich, conc, rate_buf, f1)
    d2 = 0.0
    for i in range(n):
        scale = atol + rtol * abs(x[i])
        d2 += ((f1[i] - f0[i]) / scale) ** 2
    d2 = np.sqrt(d2 / n) / h0
    if max(d1, d2) <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / (order + 1))
    return min(100.0 * h0, h1)


@njit(cache=True, error_model="numpy")
def store_rhs_output(j, t_j, t0, level, pk, x_j, p, stoich, conc, rate_buf, dx, out_x, out_dn):
    """Store a (clipped) state at output ``j`` with dN/dt from the right-hand side."""
    n = x_j.shape[0]
    for i in range(n):
        x_j[i] = max(x_j[i], 0.0)
        out_x[j, i] = x_j[i]
    rhs(t_j, t0, level, pk, x_j, p, stoich, conc, rate_buf, dx)
    total = 0.0
    for i in range(n):
        total += dx[i]
    out_dn[j] = total


@njit(cache=True, error_model="numpy", inline="always")
def dopri5_step(t, t0, level, pk, y, h, p, stoich, conc, rate_buf, k, y_stiff, y_new, err):
    """One Dormand-Prince step from ``(t, y)`` with ``k[0] = f(t, y)``; fills ``k[1:7]``,
    the new state ``y_new``, the error estimate ``err`` and, for stiffness detection, the
    argument ``y_stiff`` of the sixth stage."""
    n = y.shape[0]
    for stage in range(1, 7):
        for i in range(n):
            acc = 0.0
            for m in range(stage):
                acc += DP_A[stage, m] * k[m, i]
            y_new[i] = y[i] + h * acc
        if stage == 5:
            for i in range(n):
                y_stiff[i] = y_new[i]
        rhs_inline(t + DP_C[stage] * h, t0, level, pk, y_new, p, stoich, conc, rate_buf, k[stage])
    for i in range(n):
        acc = 0.0
        for m in range(7):
            acc += DP_E[m] * k[m, i]
        err[i] = h * acc


@njit(cache=True, error_model="numpy", inline="always")
def dopri5_dense_coefficients(k, h, q):
    """``q[m, i]`` such that ``y(t + s h) = y + sum_m q[m, i] s^(m+1)``."""
    for m in range(4):
        for i in range(k.shape[1]):
            acc = 0.0
            for stage in range(7):
                acc += k[stage, i] * DENSE_P[stage, m]
            q[m, i] = h * acc


@njit(cache=True, error_model="numpy")
def rosenbrock_step(
    t, t0, level, pk, y, h, p, stoich, conc, rate_buf, rate_base, k, jac, piv, y_new, err
):
    """One Rosenbrock 4(3) step from ``(t, y)`` with ``k[0] = f(t, y)``.

    Solves ``(I / (gamma h) - J) g_i = f_i + h gamma_i df/dt + sum_j c_ij g_j / h`` for the
    four increments ``g_i`` (rows 1-4 of ``k``); ``k[5]`` holds df/dt, ``k[6]`` is scratch.
    df/dt is a forward difference; the Jacobian is ``stoich.T`` times forward differences of
    each transition's rate (``rate_base``: scratch of one rate per transition). Differencing
    the rates, not the right-hand side, keeps a small state's column exact where large fluxes
    do not depend on it: the right-hand side's rounding (eps times its largest flux) divided
    by a small state's step cost 5e-6 of the Jacobian, and a stiff problem's order fell from
    4 to 1. Returns False if the matrix is singular.
    """
    n = y.shape[0]
    n_tr = stoich.shape[0]
    eps = 1.4901161193847656e-08  # sqrt(machine epsilon)
    piece_concentrations(t - t0, level, pk, conc)
    rates(t, y, p, conc, rate_base)
    for i in range(n):
        y_new[i] = y[i]
    for j in range(n):
        y_new[j] = y[j] + eps * max(abs(y[j]), 1.0)
        delta = y_new[j] - y[j]  # the step as represented
        rates(t, y_new, p, conc, rate_buf)
        y_new[j] = y[j]
        for i in range(n):
            acc = 0.0
            for m in range(n_tr):
                acc += stoich[m, i] * (rate_buf[m] - rate_base[m])
            jac[i, j] = -acc / delta
    dt = eps * max(abs(t), 1.0)
    rhs(t + dt, t0, level, pk, y, p, stoich, conc, rate_buf, k[6])
    for i in range(n):
        k[5, i] = (k[6, i] - k[0, i]) / dt
        jac[i, i] += 1.0 / (ROS_GAMMA * h)
    if not lu_factor(jac, piv):
        return False
    for i in range(n):
        k[1, i] = k[0, i] + h * ROS_GX[0] * k[5, i]
    lu_solve(jac, piv, k[1])
    for i in range(n):
        y_new[i] = y[i] + ROS_A21 * k[1, i]
    rhs(t + ROS_AX2 * h, t0, level, pk, y_new, p, stoich, conc, rate_buf, k[6])
    for i in range(n):
        k[2, i] = k[6, i] + h * ROS_GX[1] * k[5, i] + ROS_C21 * k[1, i] / h
    lu_solve(jac, piv, k[2])
    for i in range(n):
        y_new[i] = y[i] + ROS_A31 * k[1, i] + ROS_A32 * k[2, i]
    rhs(t + ROS_AX3 * h, t0, level, pk, y_new, p, stoich, conc, rate_buf, k[6])
    for i in range(n):
        k[3, i] = k[6, i] + h * ROS_GX[2] * k[5, i] + (ROS_C31 * k[1, i] + ROS_C32 * k[2, i]) / h
        k[4, i] = k[6, i] + h * ROS_GX[3] * k[5, i] + (ROS_C41 * k[1, i] + ROS_C42 * k[2, i]) / h
    lu_solve(jac, piv, k[3])
    for i in range(n):
        k[4, i] += ROS_C43 * k[3, i] / h
    lu_solve(jac, piv, k[4])
    for i in range(n):
        y_new[i] = y[i]
        err[i] = 0.0
        for m in range(4):
            y_new[i] += ROS_B[m] * k[m + 1, i]
            err[i] += ROS_E[m] * k[m + 1, i]
    return True


@njit(cache=True, error_model="numpy")
def hermite_dense_coefficients(y, y_new, f0, f1, h, q):
    """Cubic Hermite interpolant between the step ends, as powers of ``s``: the dense output
    of the Rosenbrock method (order 3, matching its error estimate)."""
    for i in range(y.shape[0]):
        delta = y_new[i] - y[i]
        q[0, i] = h * f0[i]
        q[1, i] = 3.0 * delta - 2.0 * h * f0[i] - h * f1[i]
        q[2, i] = -2.0 * delta + h * f0[i] + h * f1[i]
        q[3, i] = 0.0


@njit(cache=True, error_model="numpy")
def integrate_adaptive(
    x, p, sched, stoich, t_out, rtol, atol, max_steps, method, out_x, out_dn, stats
):
    """Adaptive integration over all pieces; writes outputs; returns the status.

    Outputs inside a step come from the step's dense output, with dN/dt the derivative of
    that polynomial; an output on a breakpoint (other than the last) takes dN/dt from the
    right-hand side of the piece it starts, so interpolation after a switch uses the new rates.
    """
    n = x.shape[0]
    breakpoints = sched.breakpoints_days
    n_pieces = breakpoints.shape[0] - 1
    n_out = t_out.shape[0]
    n_drugs = sched.level_um.shape[1]
    conc = np.empty(n_drugs)
    level = np.empty(n_drugs)
    pk = np.empty((sched.channel_drug.shape[0], PK_COLUMNS))
    rate_buf = np.empty(stoich.shape[0])
    rate_base = np.empty(stoich.shape[0])
    k = np.empty((7, n))
    q = np.empty((4, n))
    y = x.copy()
    y_new = np.empty(n)
    y_stiff = np.empty(n)
    err = np.empty(n)
    dx = np.empty(n)
    jac = np.empty((n, n))
    piv = np.empty(n, dtype=np.int64)
    stiff = method == METHOD_ROSENBROCK

    load_piece(sched, 0, level, pk)
    j = 0
    while j < n_out and t_out[j] <= breakpoints[0]:
        for i in range(n):
            y_new[i] = y[i]
        store_rhs_output(
            j,
            t_out[j],
            breakpoints[0],
            level,
            pk,
            y_new,
            p,
            stoich,
            conc,
            rate_buf,
            dx,
            out_x,
            out_dn,
        )
        j += 1

    h = 0.0
    h_uncut = 0.0  # the proposal a piece's last step was cut from
    h_cut = 0.0  # the step just accepted
    overflowing = False
    log_err_old = LOG_1E_4
    n_stiff = 0
    n_nonstiff = 0
    for piece in range(n_pieces):
        t = breakpoints[piece]
        t_end = breakpoints[piece + 1]
        t0 = t
        load_piece(sched, piece, level, pk)
        rhs(t, t0, level, pk, y, p, stoich, conc, rate_buf, k[0])
        stats[STAT_RHS] += 1
        for ch in range(pk.shape[0]):
            if pk[ch, PK_DEPOT] > 0.0 and h > 0.0:
                # An oral dose is a known jump of the input: the concentration rises over
                # ~1/ka (an hour in a mouse). A step carried over from the smooth tail of the
                # last piece would jump the absorption peak with no stage on it, where the
                # cells' error estimate cannot see it; restart below the absorption time.
                h = min(h, ABSORPTION_STEP / pk[ch, PK_KA])
        if h == 0.0:
            h = initial_step(
                t,
                t0,
                level,
                pk,
                y,
                k[0],
                p,
                stoich,
                conc,
                rate_buf,
                y_new,
                k[1],
                rtol,
                atol,
                3 if stiff else 4,
            )
            stats[STAT_RHS] += 1
            # Hairer's estimate can fall below the smallest step (a state at 0 with a large
            # inflow, divided by atol): start there instead of failing before the first step
            h = max(h, 16.0 * EPS * max(abs(t), 1.0))
        while t < t_end:
            if stats[STAT_STEPS] + stats[STAT_REJECTED] >= max_steps:
                return MAX_STEPS_REACHED
            h_min = 16.0 * EPS * max(abs(t), 1.0)
            if not h >= h_min:  # (also a NaN step, from NaN rates at the piece's start)
                # a step size driven to zero by overflow or NaN is reported as such
                return NON_FINITE_STATE if overflowing or h != h else STEP_SIZE_TOO_SMALL
            last = False
            if t + h >= t_end - h_min:
                h_uncut = h
                h = t_end - t
                last = True
            if stiff:
                ok = rosenbrock_step(t, t0, level, pk, y, h, p, stoich, conc, rate_buf,
                                     rate_base, k, jac, piv, y_new, err)  # fmt: skip
                stats[STAT_RHS] += n + 3
                if not ok:
                    h *= 0.25
                    stats[STAT_REJECTED] += 1
                    continue
            else:
                dopri5_step(
                    t, t0, level, pk, y, h, p, stoich, conc, rate_buf, k, y_stiff, y_new, err
                )
                stats[STAT_RHS] += 6
            err_norm = error_norm(err, y, y_new, rtol, atol)
            negative = False
            for i in range(n):
                if y_new[i] < -atol:
                    negative = True
            overflowing = not np.isfinite(err_norm)
            if overflowing:
                for i in range(n):
                    if not np.isfinite(y[i]):
                        return NON_FINITE_STATE
                h *= 0.25
                stats[STAT_REJECTED] += 1
                continue
            if err_norm > 1.0 or negative:
                if stiff:
                    fac = max(0.1, SAFETY * err_norm ** (-1.0 / 3.0))  # embedded order 3
                else:
                    fac = 1.0 / min(1.0 / FAC_MIN, err_norm**PI_EXPO1 / SAFETY)
                if negative:
                    fac = min(fac, 0.5)
                h *= fac
                stats[STAT_REJECTED] += 1
                continue
            # accepted
            stats[STAT_STEPS] += 1
            step_was_stiff = stiff
            if step_was_stiff:  # f at the new point: Hermite dense output, first same as last
                rhs(
                    t_end if last else t + h, t0, level, pk, y_new, p, stoich, conc, rate_buf, k[6]
                )
                stats[STAT_RHS] += 1
            if (
                not stiff
                and method == METHOD_AUTO
                and (n_stiff > 0 or stats[STAT_STEPS] % STIFF_CHECK_EVERY == 0)
            ):
                # DOPRI5 stiffness detection: h |lambda| estimated from the last two stages,
                # both evaluated at t + h; tested every few steps until it first fires.
                num = 0.0
                den = 0.0
                for i in range(n):
                    num += (k[6, i] - k[5, i]) ** 2
                    den += (y_new[i] - y_stiff[i]) ** 2
                if den > 0.0 and h * np.sqrt(num / den) > STIFF_LIMIT:
                    n_nonstiff = 0
                    n_stiff += 1
                    if n_stiff == STIFF_STEPS:
                        stiff = True
                        stats[STAT_STIFF] = 1
                else:
                    n_nonstiff += 1
                    if n_nonstiff == 6:
                        n_stiff = 0
            t_new = t_end if last else t + h
            if j < n_out and t_out[j] <= t_new:
                if step_was_stiff:
                    hermite_dense_coefficients(y, y_new, k[0], k[6], h, q)
                else:
                    dopri5_dense_coefficients(k, h, q)
                while j < n_out and t_out[j] <= t_new:
                    s = (t_out[j] - t) / h
                    rate = 0.0
                    for i in range(n):
                        value = y[i] + s * (q[0, i] + s * (q[1, i] + s * (q[2, i] + s * q[3, i])))
                        out_x[j, i] = max(value, 0.0)
                        rate += q[0, i] + s * (
                            2.0 * q[1, i] + s * (3.0 * q[2, i] + s * 4.0 * q[3, i])
                        )
                    out_dn[j] = rate / h
                    if t_out[j] >= t_end and piece + 1 < n_pieces:
                        # right-hand derivative at a breakpoint: rates of the next piece
                        for i in range(n):
                            y_stiff[i] = out_x[j, i]
                        load_piece(sched, piece + 1, level, pk)
                        store_rhs_output(
                            j,
                            t_out[j],
                            t_end,
                            level,
                            pk,
                            y_stiff,
                            p,
                            stoich,
                            conc,
                            rate_buf,
                            dx,
                            out_x,
                            out_dn,
                        )
                        load_piece(sched, piece, level, pk)
                    j += 1
            clipped = False
            for i in range(n):
                if y_new[i] < 0.0:
                    y_new[i] = 0.0
                    clipped = True
                y[i] = y_new[i]
            t = t_new
            h_cut = h
            if step_was_stiff:
                h *= min(5.0, max(0.2, SAFETY * max(err_norm, 1e-10) ** (-1.0 / 4.0)))
            else:
                log_err = np.log(max(err_norm, 1e-10))
                fac = np.exp(PI_EXPO1 * log_err - PI_BETA * log_err_old)
                h /= max(1.0 / FAC_MAX, min(1.0 / FAC_MIN, fac / SAFETY))
                log_err_old = max(log_err, LOG_1E_4)
            if last:
                if h_cut < CUT_FRACTION * h_uncut:
                    # a step cut to a sliver of the proposal (a piece a few ulps long, from
                    # rounded breakpoints) says nothing of the next piece, and growing from it
                    # by at most FAC_MAX could fall below the smallest step: resume from the
                    # proposal (as diffrax's ClipStepSizeController does after a jump)
                    h = max(h, h_uncut)
                break
            if clipped:
                rhs(t, t0, level, pk, y, p, stoich, conc, rate_buf, k[0])
                stats[STAT_RHS] += 1
            else:
                for i in range(n):  # f(t + h, y_new): first same as last
                    k[0, i] = k[6, i]
        for i in range(n):
            if not np.isfinite(y[i]):
                return NON_FINITE_STATE
    return SUCCESS


@njit(cache=True, error_model="numpy")
def _spaced_run(t_out, j, t, spacing, t_end, last_piece):
    """Whether outputs ``j .. j + EXACT_BLOCK - 1`` exist, lie in the piece ending at
    ``t_end`` and each is ``spacing`` after the one before (output ``j`` after ``t``)."""
    last = j + EXACT_BLOCK - 1
    if last >= t_out.shape[0]:
        return False
    if not (t_out[last] < t_end or (last_piece and t_out[last] <= t_end)):
        return False
    before = t
    for m in range(j, last + 1):
        if t_out[m] - before != spacing:
            return False
        before = t_out[m]
    return True


EXACT_CHUNK = 16  # samples per parallel task of the exact method: its work arrays are the task's


@njit(cache=True, error_model="numpy")
def exact_workspace(n, n_drugs, n_transitions):
    """The work arrays of :func:`integrate_exact` for ``n`` states: allocated once and reused
    for many samples (14 allocations cost ~0.6 µs, half of a sample's own work with two
    output days)."""
    return (
        np.empty(n_drugs),  # conc
        np.empty(n_drugs),  # level
        np.empty((0, PK_COLUMNS)),  # pk: the exact method takes no PK channels
        np.empty(n_transitions),  # rate_buf
        np.zeros(n),  # unit: zero between uses
        np.empty(n),  # column
        np.empty((n, n)),  # a
        np.empty(n),  # growth
        np.empty((EXACT_BLOCK, n, n)),  # powers
        np.empty((EXACT_BLOCK, n)),  # block
        np.empty((EXPM_WORK, n, n)),  # work
        np.empty(n, dtype=np.int64),  # piv
        np.empty(n),  # y
        np.empty(n),  # y_next
    )


@njit(cache=True, error_model="numpy")
def integrate_exact(x, p, sched, stoich, t_out, out_x, out_dn, stats, workspace):
    """Exact solution of a linear model with piecewise-constant concentrations.

    Per piece, ``A[:, c] = stoich.T @ rates(e_c)`` (the propensities are linear in the state)
    and ``x(t) = expm(A (t - t_k)) x(t_k)``; one propagator is computed per distinct output
    spacing, and a spacing within ``SPACING_RTOL`` of the last one (``np.linspace`` grids
    differ in the last bits) reuses it with a first-order correction. Runs of equally spaced
    outputs go ``EXACT_BLOCK`` at a time, each output from the run's last state with its own
    power of the propagator. dN/dt is ``sum(A x)`` with the ``A`` of the piece an output
    starts. ``workspace`` is :func:`exact_workspace`'s.
    """
    n = x.shape[0]
    breakpoints = sched.breakpoints_days
    n_pieces = breakpoints.shape[0] - 1
    n_out = t_out.shape[0]
    conc, level, pk, rate_buf, unit, column, a, growth = workspace[:8]
    # propagators over 1 .. EXACT_BLOCK output spacings: a run of equally spaced outputs is
    # propagated EXACT_BLOCK at a time from the run's last state, so the outputs of a block
    # do not wait for each other (one after the other, each waits for the last: latency)
    powers, block, work, piv, y, y_next = workspace[8:]
    propagator = powers[0]
    for i in range(n):
        y[i] = x[i]
    n_propagations = 0
    j = 0
    for piece in range(n_pieces):
        t = breakpoints[piece]
        t_end = breakpoints[piece + 1]
        load_piece(sched, piece, level, pk)
        for c in range(n):
            unit[c] = 1.0
            rhs(t, t, level, pk, unit, p, stoich, conc, rate_buf, column)
            unit[c] = 0.0
            growth[c] = 0.0  # dN/dt per cell in state c: the column sum of A
            for i in range(n):
                a[i, c] = column[i]
                growth[c] += column[i]
        stats[STAT_RHS] += n
        dt_cached = -1.0
        last_piece = piece == n_pieces - 1
        while True:
            if dt_cached > 0.0 and _spaced_run(t_out, j, t, dt_cached, t_end, last_piece):
                finite = True
                for m in range(EXACT_BLOCK):
                    for i in range(n):
                        acc = 0.0
                        for c in range(n):
                            acc += powers[m, i, c] * y[c]
                        block[m, i] = acc
                        finite = finite and np.isfinite(acc)
                if finite:  # else the one-output path below finds where it overflows
                    for m in range(EXACT_BLOCK):
                        rate = 0.0
                        for i in range(n):
                            value = max(block[m, i], 0.0)
                            out_x[j + m, i] = value
                            rate += growth[i] * value
                        out_dn[j + m] = rate
                    for i in range(n):
                        y[i] = max(block[EXACT_BLOCK - 1, i], 0.0)
                    j += EXACT_BLOCK
                    t = t_out[j - 1]
                    n_propagations += EXACT_BLOCK
                    continue
            # outputs in [t, t_end) belong to this piece; the schedule's end to the last one
            is_output = j < n_out and (t_out[j] < t_end or (last_piece and t_out[j] <= t_end))
            t_next = t_out[j] if is_output else t_end
            dt = t_next - t
            if dt > 0.0:
                near = 0.0
                if dt != dt_cached:
                    if abs(dt - dt_cached) <= SPACING_RTOL * dt_cached:
                        near = dt - dt_cached  # exact (Sterbenz)
                    else:
                        expm_into(a, dt, work, piv, column, propagator)
                        for m in range(1, EXACT_BLOCK):
                            matmul(powers[m - 1], propagator, powers[m])
                        dt_cached = dt
                for i in range(n):
                    acc = 0.0
                    for c in range(n):
                        if y[c] != 0.0:  # an empty state adds nothing, even where its own
                            acc += propagator[i, c] * y[c]  # growth overflowed (inf x 0)
                    y_next[i] = acc
                if near != 0.0:
                    # a spacing a few ulps from the cached one (np.linspace grids):
                    # expm(A dt) = (I + A near + O(near^2)) expm(A dt_cached)
                    for i in range(n):
                        acc = 0.0
                        for c in range(n):
                            acc += a[i, c] * y_next[c]
                        column[i] = y_next[i] + near * acc
                    for i in range(n):
                        y_next[i] = column[i]
                for i in range(n):
                    if not np.isfinite(y_next[i]):  # overflow: report it, never a silent inf
                        stats[STAT_STEPS] += n_propagations
                        out_x[j:, :] = np.nan
                        out_dn[j:] = np.nan
                        return NON_FINITE_STATE
                    y[i] = max(y_next[i], 0.0)
                n_propagations += 1
            t = t_next
            if not is_output:
                break
            rate = 0.0
            for i in range(n):
                out_x[j, i] = y[i]
                rate += growth[i] * y[i]
            out_dn[j] = rate
            j += 1
    out_x[j:, :] = np.nan  # outputs past the schedule's end (none from simulate's checks)
    out_dn[j:] = np.nan
    stats[STAT_STEPS] += n_propagations
    return SUCCESS


@njit(cache=True, error_model="numpy")
def fixed_step(x, p, sched, stoich, t_end, n_steps, method):
    """Integrate from day 0 to ``t_end`` inside the schedule's first piece with ``n_steps``
    equal steps of DOPRI5 (``method`` 0) or the Rosenbrock method (2), no error control.

    For measuring the convergence order; solvers use :func:`integrate_adaptive`.
    """
    n = x.shape[0]
    conc = np.empty(sched.level_um.shape[1])
    level = np.empty(sched.level_um.shape[1])
    pk = np.empty((sched.channel_drug.shape[0], PK_COLUMNS))
    load_piece(sched, 0, level, pk)
    t0 = sched.breakpoints_days[0]
    rate_buf = np.empty(stoich.shape[0])
    rate_base = np.empty(stoich.shape[0])
    k = np.empty((7, n))
    y = x.copy()
    y_new = np.empty(n)
    y_stage = np.empty(n)
    err = np.empty(n)
    jac = np.empty((n, n))
    piv = np.empty(n, dtype=np.int64)
    h = t_end / n_steps
    for step in range(n_steps):
        t = step * h
        rhs(t, t0, level, pk, y, p, stoich, conc, rate_buf, k[0])
        if method == METHOD_ROSENBROCK:
            rosenbrock_step(t, t0, level, pk, y, h, p, stoich, conc, rate_buf, rate_base, k,
                            jac, piv, y_new, err)  # fmt: skip
        else:
            dopri5_step(t, t0, level, pk, y, h, p, stoich, conc, rate_buf, k, y_stage, y_new, err)
        for i in range(n):
            y[i] = y_new[i]
    return y


_WRONG_SOLVER = "`method` is not solved by the solver compiled into this copy of the kernels"


@njit(cache=True, nogil=True, error_model="numpy")
def solve_one(x0, p, sched, stoich, t_out, rtol, atol, max_steps, method, out_x, out_dn, stats):
    """Solve one parameter set; returns the status code. Outputs a failed solve did not
    reach stay NaN. ``method`` must be one this copy's :data:`SOLVER` solves."""
    if SOLVER == SOLVER_EXACT:  # writes every output itself (NaN past a failure)
        if method != METHOD_EXACT:
            raise ValueError(_WRONG_SOLVER)
        workspace = exact_workspace(x0.shape[0], sched.level_um.shape[1], stoich.shape[0])
        return integrate_exact(x0, p, sched, stoich, t_out, out_x, out_dn, stats, workspace)
    elif SOLVER == SOLVER_ADAPTIVE:
        if method == METHOD_EXACT:
            raise ValueError(_WRONG_SOLVER)
        out_x[:, :] = np.nan
        out_dn[:] = np.nan
        return integrate_adaptive(
            x0, p, sched, stoich, t_out, rtol, atol, max_steps, method, out_x, out_dn, stats
        )
    else:
        raise ValueError(_WRONG_SOLVER)


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def solve_batch(
    params,
    x0,
    schedule_arrays,
    stoich,
    t_out,
    rtol,
    atol,
    max_steps,
    method,
    out_x,
    out_dn,
    stats,
    tolerant_columns,
    out_total,
    out_fraction,
):
    """Solve every parameter set (rows of ``params``) in parallel.

    Parameters
    ----------
    params : (n_samples, n_packed) float64
    x0 : (n_samples, n_states) float64, initial cells
    schedule_arrays : tuple
        The fields of a :class:`~tolsim.kernels.exposure.CompiledSchedule` as a plain tuple
        (numba's parallel lowering mishandles a named tuple passed next to many arguments).
    stoich : (n_transitions, n_states) float64
    t_out : (n_times,) float64, sorted output days within the schedule
    rtol, atol : float
    max_steps : int, accepted plus rejected steps allowed per sample
    method : int, one of the ``METHOD_*`` codes, solved by this copy's :data:`SOLVER`
    out_x : (n_samples, n_times, n_states) float64
    out_dn : (n_samples, n_times) float64, dN/dt (cells/day) at the outputs
    stats : (n_samples, N_STATS) int64, zeroed by the caller
    tolerant_columns : (n_tolerant,) int64, the states counted as tolerant
    out_total, out_fraction : (n_samples, n_times) float64, or (0, n_times) for none
        Total cells and tolerant fraction (:func:`~tolsim.kernels.summary.sample_totals`),
        computed as each sample finishes, while its outputs are in cache.
    """
    if (SOLVER == SOLVER_EXACT) != (method == METHOD_EXACT) or SOLVER < 0:
        raise ValueError(_WRONG_SOLVER)
    bp, level, drug, ka, ke, um_per_mg, depot, central, infusion = schedule_arrays
    if SOLVER == SOLVER_EXACT:  # tasks of EXACT_CHUNK samples that share work arrays
        n_samples, n_states = x0.shape
        for task in prange((n_samples + EXACT_CHUNK - 1) // EXACT_CHUNK):
            sched = CompiledSchedule(bp, level, drug, ka, ke, um_per_mg, depot, central,
                                     infusion)  # fmt: skip
            workspace = exact_workspace(n_states, level.shape[1], stoich.shape[0])
            local_stoich = stoich.copy()
            x_local = np.empty(n_states)
            p_local = np.empty(params.shape[1])
            for sample in range(task * EXACT_CHUNK, min((task + 1) * EXACT_CHUNK, n_samples)):
                for i in range(n_states):
                    x_local[i] = x0[sample, i]
                for q in range(params.shape[1]):
                    p_local[q] = params[sample, q]
                stats[sample, STAT_STATUS] = integrate_exact(
                    x_local, p_local, sched, local_stoich, t_out, out_x[sample],
                    out_dn[sample], stats[sample], workspace,
                )  # fmt: skip
                if out_total.shape[0] > 0:
                    sample_totals(out_x[sample], tolerant_columns, out_total[sample],
                                  out_fraction[sample])  # fmt: skip
        return
    # the adaptive solver (an exact copy's numba prunes this loop, unreachable past its return)
    for sample in prange(params.shape[0]):
        sched = CompiledSchedule(bp, level, drug, ka, ke, um_per_mg, depot, central, infusion)
        # thread-local copies: passing views of shared arrays to the step functions would
        # make the threads contend for the shared arrays' reference counts
        # integrate_adaptive itself, not solve_one: one compiled function fewer in the first call
        out_x[sample, :, :] = np.nan
        out_dn[sample, :] = np.nan
        stats[sample, STAT_STATUS] = integrate_adaptive(
            x0[sample].copy(),
            params[sample].copy(),
            sched,
            stoich.copy(),
            t_out,
            rtol,
            atol,
            max_steps,
            method,
            out_x[sample],
            out_dn[sample],
            stats[sample],
        )
        if out_total.shape[0] > 0:
            sample_totals(out_x[sample], tolerant_columns, out_total[sample], out_fraction[sample])
