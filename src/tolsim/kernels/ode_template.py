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
* Rosenbrock 2(3) ``ode23s`` (Shampine & Reichelt 1997, SIAM J. Sci. Comput. 18:1), L-stable,
  with a numerical Jacobian and time derivative, for stiff problems; ``auto`` switches to it
  when DOPRI5's detector fires.
* Exact per-piece solution ``x(t) = expm(A (t - t_k)) x(t_k)`` for linear models with
  piecewise-constant exposures; ``A`` is assembled from the rate function at unit vectors.

Every method integrates piece by piece between the schedule's breakpoints, never steps over
one, and keeps populations non-negative.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tolsim.kernels.exposure import CompiledSchedule, concentrations
from tolsim.kernels.linalg import expm, lu_factor, lu_solve
from tolsim.kernels.placeholder import rates  # TOLSIM-RATES

SUCCESS = 0
STEP_SIZE_TOO_SMALL = -1
MAX_STEPS_REACHED = -2
NON_FINITE_STATE = -3

METHOD_DOPRI5 = 0
METHOD_AUTO = 1
METHOD_ROSENBROCK = 2
METHOD_EXACT = 3

# stats columns
STAT_STATUS = 0
STAT_STEPS = 1
STAT_REJECTED = 2
STAT_RHS = 3
STAT_STIFF = 4
N_STATS = 5

# Dormand-Prince 5(4) tableau.
C2, C3, C4, C5 = 1 / 5, 3 / 10, 4 / 5, 8 / 9
A21 = 1 / 5
A31, A32 = 3 / 40, 9 / 40
A41, A42, A43 = 44 / 45, -56 / 15, 32 / 9
A51, A52, A53, A54 = 19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729
A61, A62, A63, A64, A65 = 9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656
B1, B3, B4, B5, B6 = 35 / 384, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84
E1, E3, E4, E5, E6, E7 = (
    -71 / 57600,
    71 / 16695,
    -71 / 1920,
    17253 / 339200,
    -22 / 525,
    1 / 40,
)
# Dense output: y(t + s h) = y + h sum_i k_i sum_m P[i, m] s^(m+1)  (scipy RK45.P).
DENSE_P = np.array(
    [
        [1.0, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432],
        [0.0, 0.0, 0.0, 0.0],
        [0.0, 131558114200 / 32700410799, -68118460800 / 10900136933, 87487479700 / 32700410799],
        [0.0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072],
        [0.0, 127303824393 / 49829197408, -318862633887 / 49829197408, 701980252875 / 199316789632],
        [0.0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844],
        [0.0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423],
    ]
)
# Rosenbrock ode23s constants.
ROS_D = 1.0 / (2.0 + np.sqrt(2.0))
ROS_E32 = 6.0 + np.sqrt(2.0)

SAFETY = 0.9
# PI controller of DOPRI5 (Hairer, Norsett & Wanner, Solving ODEs I, II.4).
PI_BETA = 0.04
PI_EXPO1 = 0.2 - PI_BETA * 0.75
FAC_MIN = 0.2  # after an accepted step h may shrink at most 5x
FAC_MAX = 10.0  # and grow at most 10x
STIFF_LIMIT = 3.25  # |h lambda| bound of DOPRI5's stability region
STIFF_STEPS = 15


@njit(cache=True)
def rhs(t, piece, x, p, sched, stoich, conc, rate_buf, dx):
    """``dx = stoich.T @ rates(t, x, p, c(t))`` with the piece's concentrations."""
    concentrations(t, piece, sched, conc)
    rates(t, x, p, conc, rate_buf)
    for i in range(dx.shape[0]):
        dx[i] = 0.0
    for j in range(stoich.shape[0]):
        r = rate_buf[j]
        for i in range(stoich.shape[1]):
            s = stoich[j, i]
            if s != 0:
                dx[i] += s * r


@njit(cache=True)
def error_norm(err, y, y_new, rtol, atol):
    acc = 0.0
    for i in range(err.shape[0]):
        scale = atol + rtol * max(abs(y[i]), abs(y_new[i]))
        acc += (err[i] / scale) ** 2
    return np.sqrt(acc / err.shape[0])


@njit(cache=True)
def initial_step(t, piece, x, f0, p, sched, stoich, conc, rate_buf, work, f1, rtol, atol, order):
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
    rhs(t + h0, piece, work, p, sched, stoich, conc, rate_buf, f1)
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


@njit(cache=True)
def write_output(j, t_j, piece, x_j, p, sched, stoich, conc, rate_buf, dx, out_x, out_dn):
    """Store a (clipped, non-negative) state and dN/dt at output index ``j``.

    At a breakpoint the derivative is the right-hand one (the breakpoint belongs to the piece
    it starts), so interpolation after a switch of exposure uses the new rates.
    """
    n = x_j.shape[0]
    if piece + 2 < sched.breakpoints_days.shape[0] and t_j >= sched.breakpoints_days[piece + 1]:
        piece += 1
    for i in range(n):
        if x_j[i] < 0.0:
            x_j[i] = 0.0
        out_x[j, i] = x_j[i]
    rhs(t_j, piece, x_j, p, sched, stoich, conc, rate_buf, dx)
    total = 0.0
    for i in range(n):
        total += dx[i]
    out_dn[j] = total


@njit(cache=True)
def dopri5_dense(y, k, h, s, out):
    n = y.shape[0]
    s2 = s * s
    s3 = s2 * s
    s4 = s3 * s
    for i in range(n):
        acc = 0.0
        for stage in range(7):
            q = (
                DENSE_P[stage, 0] * s
                + DENSE_P[stage, 1] * s2
                + DENSE_P[stage, 2] * s3
                + DENSE_P[stage, 3] * s4
            )
            acc += k[stage, i] * q
        out[i] = y[i] + h * acc


@njit(cache=True)
def dopri5_step(t, piece, y, h, p, sched, stoich, conc, rate_buf, k, y_stage, y_new, err):
    """One Dormand-Prince step from ``(t, y)`` with ``k[0] = f(t, y)``; fills ``k[1:7]``.

    Leaves in ``y_stage`` the argument of the sixth stage (used by stiffness detection).
    """
    n = y.shape[0]
    for i in range(n):
        y_stage[i] = y[i] + h * A21 * k[0, i]
    rhs(t + C2 * h, piece, y_stage, p, sched, stoich, conc, rate_buf, k[1])
    for i in range(n):
        y_stage[i] = y[i] + h * (A31 * k[0, i] + A32 * k[1, i])
    rhs(t + C3 * h, piece, y_stage, p, sched, stoich, conc, rate_buf, k[2])
    for i in range(n):
        y_stage[i] = y[i] + h * (A41 * k[0, i] + A42 * k[1, i] + A43 * k[2, i])
    rhs(t + C4 * h, piece, y_stage, p, sched, stoich, conc, rate_buf, k[3])
    for i in range(n):
        y_stage[i] = y[i] + h * (A51 * k[0, i] + A52 * k[1, i] + A53 * k[2, i] + A54 * k[3, i])
    rhs(t + C5 * h, piece, y_stage, p, sched, stoich, conc, rate_buf, k[4])
    for i in range(n):
        y_stage[i] = y[i] + h * (
            A61 * k[0, i] + A62 * k[1, i] + A63 * k[2, i] + A64 * k[3, i] + A65 * k[4, i]
        )
    rhs(t + h, piece, y_stage, p, sched, stoich, conc, rate_buf, k[5])
    for i in range(n):
        y_new[i] = y[i] + h * (
            B1 * k[0, i] + B3 * k[2, i] + B4 * k[3, i] + B5 * k[4, i] + B6 * k[5, i]
        )
    rhs(t + h, piece, y_new, p, sched, stoich, conc, rate_buf, k[6])
    for i in range(n):
        err[i] = h * (
            E1 * k[0, i]
            + E3 * k[2, i]
            + E4 * k[3, i]
            + E5 * k[4, i]
            + E6 * k[5, i]
            + E7 * k[6, i]
        )


@njit(cache=True)
def rosenbrock_step(t, piece, y, h, p, sched, stoich, conc, rate_buf, k, jac, piv, y_new, err):
    """One ode23s step from ``(t, y)`` with ``k[0] = f(t, y)``.

    Workspace rows: ``k[1]`` = k1, ``k[2]`` = k2, ``k[3]`` = F1, ``k[4]`` = F2,
    ``k[5]`` = df/dt, ``k[6]`` scratch. Returns False if ``I - h d J`` is singular.
    """
    n = y.shape[0]
    eps = 1.4901161193847656e-08  # sqrt(machine epsilon)
    # Jacobian by forward differences (columns), and df/dt.
    for j in range(n):
        delta = eps * max(abs(y[j]), 1.0)
        for i in range(n):
            y_new[i] = y[i]
        y_new[j] += delta
        rhs(t, piece, y_new, p, sched, stoich, conc, rate_buf, k[6])
        for i in range(n):
            jac[i, j] = -h * ROS_D * (k[6, i] - k[0, i]) / delta
    dt = eps * max(abs(t), 1.0)
    rhs(t + dt, piece, y, p, sched, stoich, conc, rate_buf, k[6])
    for i in range(n):
        k[5, i] = (k[6, i] - k[0, i]) / dt
        jac[i, i] += 1.0
    if not lu_factor(jac, piv):
        return False
    hd = h * ROS_D
    for i in range(n):
        k[1, i] = k[0, i] + hd * k[5, i]
    lu_solve(jac, piv, k[1])
    for i in range(n):
        y_new[i] = y[i] + 0.5 * h * k[1, i]
    rhs(t + 0.5 * h, piece, y_new, p, sched, stoich, conc, rate_buf, k[3])
    for i in range(n):
        k[2, i] = k[3, i] - k[1, i]
    lu_solve(jac, piv, k[2])
    for i in range(n):
        k[2, i] += k[1, i]
        y_new[i] = y[i] + h * k[2, i]
    rhs(t + h, piece, y_new, p, sched, stoich, conc, rate_buf, k[4])
    for i in range(n):
        k[6, i] = (
            k[4, i] - ROS_E32 * (k[2, i] - k[3, i]) - 2.0 * (k[1, i] - k[0, i]) + hd * k[5, i]
        )
    lu_solve(jac, piv, k[6])
    for i in range(n):
        err[i] = h / 6.0 * (k[1, i] - 2.0 * k[2, i] + k[6, i])
    return True


@njit(cache=True)
def rosenbrock_dense(y, k, h, s, out):
    d = ROS_D
    a = s * (1.0 - s) / (1.0 - 2.0 * d)
    b = s * (s - 2.0 * d) / (1.0 - 2.0 * d)
    for i in range(y.shape[0]):
        out[i] = y[i] + h * (a * k[1, i] + b * k[2, i])


@njit(cache=True)
def integrate_adaptive(
    x, p, sched, stoich, t_out, rtol, atol, max_steps, method, out_x, out_dn, stats
):
    """Adaptive integration over all pieces; writes outputs; returns the status."""
    n = x.shape[0]
    n_tr = stoich.shape[0]
    breakpoints = sched.breakpoints_days
    n_pieces = breakpoints.shape[0] - 1
    n_out = t_out.shape[0]
    conc = np.empty(sched.level_um.shape[1])
    rate_buf = np.empty(n_tr)
    k = np.empty((7, n))
    y = x.copy()
    y_new = np.empty(n)
    y_stage = np.empty(n)
    err = np.empty(n)
    dx = np.empty(n)
    jac = np.empty((n, n))
    piv = np.empty(n, dtype=np.int64)
    stiff = method == METHOD_ROSENBROCK

    j = 0
    while j < n_out and t_out[j] <= breakpoints[0]:
        for i in range(n):
            y_new[i] = y[i]
        write_output(j, t_out[j], 0, y_new, p, sched, stoich, conc, rate_buf, dx, out_x, out_dn)
        j += 1

    h = 0.0
    err_old = 1e-4
    n_stiff = 0
    n_nonstiff = 0
    for piece in range(n_pieces):
        t = breakpoints[piece]
        t_end = breakpoints[piece + 1]
        rhs(t, piece, y, p, sched, stoich, conc, rate_buf, k[0])
        stats[STAT_RHS] += 1
        if h == 0.0:
            h = initial_step(
                t, piece, y, k[0], p, sched, stoich, conc, rate_buf, y_stage, k[1], rtol, atol,
                2 if stiff else 4,
            )
            stats[STAT_RHS] += 1
        while t < t_end:
            if stats[STAT_STEPS] + stats[STAT_REJECTED] >= max_steps:
                return MAX_STEPS_REACHED
            h_min = 16.0 * np.finfo(np.float64).eps * max(abs(t), 1.0)
            if h < h_min:
                return STEP_SIZE_TOO_SMALL
            last = False
            if t + h >= t_end - h_min:
                h = t_end - t
                last = True
            if stiff:
                ok = rosenbrock_step(
                    t, piece, y, h, p, sched, stoich, conc, rate_buf, k, jac, piv, y_new, err
                )
                stats[STAT_RHS] += n + 3
                if not ok:
                    h *= 0.25
                    stats[STAT_REJECTED] += 1
                    continue
            else:
                dopri5_step(
                    t, piece, y, h, p, sched, stoich, conc, rate_buf, k, y_stage, y_new, err
                )
                stats[STAT_RHS] += 6
            err_norm = error_norm(err, y, y_new, rtol, atol)
            negative = False
            for i in range(n):
                if y_new[i] < -atol:
                    negative = True
            if not np.isfinite(err_norm):
                if not np.all(np.isfinite(y)):
                    return NON_FINITE_STATE
                h *= 0.25
                stats[STAT_REJECTED] += 1
                continue
            if err_norm > 1.0 or negative:
                if stiff:
                    fac = max(0.1, SAFETY * err_norm ** (-1.0 / 3.0))
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
            if not stiff and method == METHOD_AUTO:
                # DOPRI5 stiffness detection: h |lambda| estimated from the last two stages,
                # both evaluated at t + h (y_stage still holds the sixth stage's argument).
                num = 0.0
                den = 0.0
                for i in range(n):
                    num += (k[6, i] - k[5, i]) ** 2
                    den += (y_new[i] - y_stage[i]) ** 2
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
            while j < n_out and t_out[j] <= t_new:
                s = (t_out[j] - t) / h
                if step_was_stiff:
                    rosenbrock_dense(y, k, h, s, y_stage)
                else:
                    dopri5_dense(y, k, h, s, y_stage)
                write_output(
                    j, t_out[j], piece, y_stage, p, sched, stoich, conc, rate_buf, dx, out_x,
                    out_dn,
                )
                j += 1
            clipped = False
            for i in range(n):
                if y_new[i] < 0.0:
                    y_new[i] = 0.0
                    clipped = True
                y[i] = y_new[i]
            t = t_new
            if step_was_stiff:
                h *= min(5.0, max(0.2, SAFETY * max(err_norm, 1e-10) ** (-1.0 / 3.0)))
            else:
                err_norm = max(err_norm, 1e-10)
                fac = err_norm**PI_EXPO1 / err_old**PI_BETA
                h /= max(1.0 / FAC_MAX, min(1.0 / FAC_MIN, fac / SAFETY))
                err_old = max(err_norm, 1e-4)
            if last:
                break
            if clipped:
                rhs(t, piece, y, p, sched, stoich, conc, rate_buf, k[0])
                stats[STAT_RHS] += 1
            else:
                last_stage = 4 if step_was_stiff else 6  # f(t + h, y_new), first same as last
                for i in range(n):
                    k[0, i] = k[last_stage, i]
        if not np.all(np.isfinite(y)):
            return NON_FINITE_STATE
    return SUCCESS


@njit(cache=True)
def integrate_exact(x, p, sched, stoich, t_out, out_x, out_dn, stats):
    """Exact solution of a linear model with piecewise-constant concentrations."""
    n = x.shape[0]
    breakpoints = sched.breakpoints_days
    n_pieces = breakpoints.shape[0] - 1
    n_out = t_out.shape[0]
    conc = np.empty(sched.level_um.shape[1])
    rate_buf = np.empty(stoich.shape[0])
    unit = np.zeros(n)
    column = np.empty(n)
    a = np.empty((n, n))
    y = x.copy()
    y_out = np.empty(n)
    dx = np.empty(n)
    j = 0
    while j < n_out and t_out[j] <= breakpoints[0]:
        for i in range(n):
            y_out[i] = y[i]
        write_output(j, t_out[j], 0, y_out, p, sched, stoich, conc, rate_buf, dx, out_x, out_dn)
        j += 1
    for piece in range(n_pieces):
        t = breakpoints[piece]
        t_end = breakpoints[piece + 1]
        for c in range(n):
            unit[c] = 1.0
            rhs(t, piece, unit, p, sched, stoich, conc, rate_buf, column)
            unit[c] = 0.0
            for i in range(n):
                a[i, c] = column[i]
        stats[STAT_RHS] += n
        dt_cached = -1.0
        propagator = np.eye(n)
        while True:
            is_output = j < n_out and t_out[j] <= t_end
            t_next = t_out[j] if is_output else t_end
            dt = t_next - t
            if dt > 0.0:
                if dt != dt_cached:
                    propagator = expm(a * dt)
                    dt_cached = dt
                for i in range(n):
                    acc = 0.0
                    for c in range(n):
                        acc += propagator[i, c] * y[c]
                    y_out[i] = max(acc, 0.0)
                for i in range(n):
                    y[i] = y_out[i]
                stats[STAT_STEPS] += 1
            t = t_next
            if not is_output:
                break
            for i in range(n):
                y_out[i] = y[i]
            write_output(j, t, piece, y_out, p, sched, stoich, conc, rate_buf, dx, out_x, out_dn)
            j += 1
    return SUCCESS


@njit(cache=True)
def fixed_step(x, p, sched, stoich, t_end, n_steps, method):
    """Integrate from day 0 to ``t_end`` inside the schedule's first piece with ``n_steps``
    equal steps of DOPRI5 (``method`` 0) or ode23s (2), no error control.

    For measuring the convergence order; solvers use :func:`integrate_adaptive`.
    """
    n = x.shape[0]
    conc = np.empty(sched.level_um.shape[1])
    rate_buf = np.empty(stoich.shape[0])
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
        rhs(t, 0, y, p, sched, stoich, conc, rate_buf, k[0])
        if method == METHOD_ROSENBROCK:
            rosenbrock_step(t, 0, y, h, p, sched, stoich, conc, rate_buf, k, jac, piv, y_new, err)
        else:
            dopri5_step(t, 0, y, h, p, sched, stoich, conc, rate_buf, k, y_stage, y_new, err)
        for i in range(n):
            y[i] = y_new[i]
    return y


@njit(cache=True)
def solve_one(x0, p, sched, stoich, t_out, rtol, atol, max_steps, method, out_x, out_dn, stats):
    """Solve one parameter set; returns the status code."""
    if method == METHOD_EXACT:
        return integrate_exact(x0, p, sched, stoich, t_out, out_x, out_dn, stats)
    return integrate_adaptive(
        x0, p, sched, stoich, t_out, rtol, atol, max_steps, method, out_x, out_dn, stats
    )


@njit(cache=True, parallel=True)
def solve_batch(
    params, x0, schedule_arrays, stoich, t_out, rtol, atol, max_steps, method, out_x, out_dn,
    stats,
):
    """Solve every parameter set (rows of ``params``) in parallel.

    Parameters
    ----------
    params : (n_samples, n_packed) float64
    x0 : (n_samples, n_states) float64, initial cells
    schedule_arrays : tuple
        The fields of a :class:`~tolsim.kernels.exposure.CompiledSchedule` as a plain tuple
        (numba's parallel lowering mishandles a named tuple passed next to many arguments).
    stoich : (n_transitions, n_states) int64
    t_out : (n_times,) float64, sorted output days within the schedule
    rtol, atol : float
    max_steps : int, accepted plus rejected steps allowed per sample
    method : int, one of the ``METHOD_*`` codes
    out_x : (n_samples, n_times, n_states) float64, filled with NaN by the caller
    out_dn : (n_samples, n_times) float64, dN/dt (cells/day) at the outputs
    stats : (n_samples, N_STATS) int64, zeroed by the caller
    """
    bp, level, drug, ka, ke, um_per_mg, depot, central, infusion = schedule_arrays
    for sample in prange(params.shape[0]):
        sched = CompiledSchedule(bp, level, drug, ka, ke, um_per_mg, depot, central, infusion)
        stats[sample, STAT_STATUS] = solve_one(
            x0[sample], params[sample], sched, stoich, t_out, rtol, atol, max_steps, method,
            out_x[sample], out_dn[sample], stats[sample],
        )
