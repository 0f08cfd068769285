"""Dormand–Prince 5(4) on lanes: several trajectories (parameter sets) per thread, in two
kernels.

This file is a *template* like :mod:`tolsim.kernels.ode_template`; its copies import a model's
``lane_rates`` (:class:`tolsim.models.Model`) where it is marked ``TOLSIM-RATES``, and set
:data:`STOICH` to the model's stoichiometry (:func:`tolsim.simulate.lane_kernels`). Both
kernels need piecewise-constant concentrations (no PK channels): the exposures are then
constant over a piece, computed once per piece and lane rather than in every right-hand side.
Methods ``dopri5`` and ``auto``.

Lanes with their own steps (:func:`solve_batch`, the default CPU path)
----------------------------------------------------------------------
A thread holds ``LANES`` samples. Each has its own time, step size, schedule piece, step
controller and output index, and makes the same accept/reject decisions with the same
floating-point operations, in the same order, as
:func:`tolsim.kernels.ode_template.integrate_adaptive`: a trajectory is the same, bit for
bit, whichever samples share its lanes (``tests/test_lanes.py``). A lane whose sample is done
takes the next sample of its block. Measured (``benchmarks/work_precision.py``), the gain
over the one-trajectory kernel comes from the exposures computed per piece and from the
stages and rates, which run over all lanes at once in AVX registers (see the note on the
lane count in :func:`block`); the per-lane accept/reject, step control and dense output stay
scalar, and 8 or 16 lanes run at about the same speed.
A sample the ``auto`` stiffness test flags ends with status :data:`STIFF_DETECTED`; the
caller solves it again with the one-trajectory kernel, which then switches to the Rosenbrock
method exactly as it would have from the start.

Lockstep groups (:func:`solve_lockstep`, ``simulate(..., lockstep=True)``)
-------------------------------------------------------------------------
``LOCKSTEP_LANES`` consecutive samples take the same steps, controlled by the largest of
their error norms, so every sample meets the tolerance at every step. With one time, step
and piece for the group, every loop of a step runs over the lanes with no per-lane branch,
and LLVM vectorises the stages, the rates and the dense output (outputs go to lane-major
buffers first). Several times faster than one trajectory at a time, at the price of results
that depend, within the tolerance, on the group. A group that fails or turns stiff ends with
status :data:`REDO_ALONE` for all its samples, which the caller solves one by one.
"""

from __future__ import annotations

import numpy as np
from numba import int64, njit, prange

from tolsim.kernels.exposure import hill
from tolsim.kernels.ode_template import (
    CUT_FRACTION,
    EPS,
    FAC_MAX,
    FAC_MIN,
    LOG_1E_4,
    MAX_STEPS_REACHED,
    METHOD_AUTO,
    NON_FINITE_STATE,
    PI_BETA,
    PI_EXPO1,
    SAFETY,
    STAT_REJECTED,
    STAT_RHS,
    STAT_STATUS,
    STAT_STEPS,
    STEP_SIZE_TOO_SMALL,
    STIFF_CHECK_EVERY,
    STIFF_LIMIT,
    STIFF_STEPS,
    SUCCESS,
)
from tolsim.kernels.placeholder import lane_rates as model_rates  # TOLSIM-RATES
from tolsim.kernels.summary import sample_totals
from tolsim.kernels.tableau import DENSE_P, DP_A, DP_C, DP_E

LANES = 8  # TOLSIM-CONSTANT: 16 measured the same
# The model's stoichiometry (transitions x states), set in each model's copy
# (:func:`tolsim.simulate.lane_kernels`); the template's own is a placeholder.
STOICH = ((0.0,),)  # TOLSIM-CONSTANT
N_TRANSITIONS = len(STOICH)
N_STATES = len(STOICH[0])
STIFF_DETECTED = 1  # a status of this kernel only: solve the sample again without lanes

lane_rates = njit(error_model="numpy", inline="always")(model_rates.py_func)


@njit(cache=True, error_model="numpy", inline="always")
def lane_rhs(t, x, p, e, rate_buf, k, stage):
    """``k[stage, :, lane] = STOICH.T @ lane_rates(...)[:, lane]`` for every lane.

    The stoichiometry is a constant of this copy, so the sum over transitions unrolls and
    stays in registers; each lane's sum is in the order of the one-trajectory kernel's, from
    0.0, zero coefficients included, so the numbers are the same."""
    lane_rates(t, x, p, e, rate_buf)
    w = x.shape[1]
    for i in range(N_STATES):
        for lane in range(w):
            acc = 0.0
            for j in range(N_TRANSITIONS):
                acc += STOICH[j][i] * rate_buf[j, lane]
            k[stage, i, lane] = acc


@njit(cache=True, error_model="numpy")
def rhs_of_lane(lane, t, x, p, e, rate_buf, scratch_t, scratch_x, dx):
    """The right-hand side of one lane at ``(t, x)`` (``x`` of length n_states), into the
    1-d ``dx``: evaluated for all lanes on scratch copies, one column kept (rare calls)."""
    for other in range(scratch_t.shape[0]):
        scratch_t[other] = t
        for i in range(x.shape[0]):
            scratch_x[i, other] = x[i]
    lane_rates(scratch_t, scratch_x, p, e, rate_buf)
    for i in range(dx.shape[0]):
        acc = 0.0
        for j in range(N_TRANSITIONS):
            acc += STOICH[j][i] * rate_buf[j, lane]
        dx[i] = acc


@njit(cache=True, error_model="numpy", inline="always")
def load_exposures(lane, level, piece, p, exposure_index, e):
    """Exposures of lane ``lane`` over a piece: column ``lane`` of ``e``. ``exposure_index``
    rows are (drug column, EC50 parameter, Hill parameter)."""
    for x in range(e.shape[0]):
        drug = exposure_index[x, 0]
        e[x, lane] = hill(
            level[piece, drug], p[exposure_index[x, 1], lane], p[exposure_index[x, 2], lane]
        )


@njit(cache=True, error_model="numpy")
def block(
    first,
    stop,
    params,
    x0,
    breakpoints,
    level,
    exposure_index,
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
    """Solve samples ``first .. stop - 1`` on ``LANES`` lanes; see the module docstring."""
    n = x0.shape[1]
    n_packed = params.shape[1]
    n_transitions = N_TRANSITIONS
    n_pieces = breakpoints.shape[0] - 1
    n_out = t_out.shape[0]
    n_exposures = exposure_index.shape[0]
    # The lane count, hidden from LLVM behind a branch never taken (a shape is never
    # negative). With the constant, LLVM emitted scalar code for the lane loops (perf: 0.3%
    # of samples in ymm instructions); with this count known only to be 1 or LANES, the
    # stages and the rates run in AVX registers (21% of samples in ymm) and the kernel is
    # ~20% faster in interleaved timings, the numbers unchanged. A lane count passed at run
    # time (8, 16 or 32 lanes) measured no faster than the constant.
    w = LANES if n_out >= 0 else 1

    p = np.empty((n_packed, w))
    e = np.empty((n_exposures, w))
    e_next = np.empty((n_exposures, w))
    y = np.zeros((n, w))
    y_new = np.zeros((n, w))
    y_stiff = np.zeros((n, w))
    k = np.zeros((7, n, w))
    rate_buf = np.empty((n_transitions, w))
    t_stage = np.zeros(w)
    err_norm = np.zeros(w)
    acc_lanes = np.zeros(w)
    scratch_t = np.empty(w)
    scratch_x = np.empty((n, w))
    x_one = np.empty(n)
    dx_one = np.empty(n)
    f1_one = np.empty(n)
    q = np.empty((4, n))

    # per-lane state of the one-trajectory kernel's loop
    sample = np.full(w, -1, dtype=np.int64)
    t = np.zeros(w)
    t_end = np.zeros(w)
    h = np.zeros(w)
    h_uncut = np.zeros(w)  # the proposal a piece's last step was cut from
    h_min = np.zeros(w)
    log_err_old = np.zeros(w)
    piece = np.zeros(w, dtype=np.int64)
    j_out = np.zeros(w, dtype=np.int64)
    n_stiff = np.zeros(w, dtype=np.int64)
    n_nonstiff = np.zeros(w, dtype=np.int64)
    overflowing = np.zeros(w, dtype=np.bool_)
    last = np.zeros(w, dtype=np.bool_)
    starting = np.zeros(w, dtype=np.bool_)  # the lane's next piece has not been set up
    stepping = np.zeros(w, dtype=np.bool_)  # the lane takes part in this round's step

    for q_ in range(n_packed):  # idle lanes compute on a valid parameter set
        for lane in range(w):
            p[q_, lane] = params[first, q_]
    for lane in range(w):
        for x in range(n_exposures):
            e[x, lane] = 0.0

    next_sample = first
    n_busy = 0
    for lane in range(w):
        if next_sample < stop:
            _take(lane, next_sample, params, x0, breakpoints, level, exposure_index,
                  t_out, p, e, y, rate_buf, scratch_t, scratch_x, x_one, dx_one, out_x, out_dn,
                  sample, h, log_err_old, piece, j_out, n_stiff, n_nonstiff, overflowing,
                  starting)  # fmt: skip
            next_sample += 1
            n_busy += 1

    while n_busy > 0:
        # -- before the step: piece set-up, limits, the step that ends a piece --------------
        for lane in range(w):
            stepping[lane] = False
            while sample[lane] >= 0:
                s = sample[lane]
                status = SUCCESS
                if starting[lane]:
                    if piece[lane] == n_pieces:
                        status = SUCCESS
                    else:
                        pc = piece[lane]
                        t[lane] = breakpoints[pc]
                        t_end[lane] = breakpoints[pc + 1]
                        load_exposures(lane, level, pc, p, exposure_index, e)
                        for i in range(n):
                            x_one[i] = y[i, lane]
                        rhs_of_lane(lane, t[lane], x_one, p, e, rate_buf, scratch_t,
                                    scratch_x, dx_one)  # fmt: skip
                        for i in range(n):
                            k[0, i, lane] = dx_one[i]
                        stats[s, STAT_RHS] += 1
                        if h[lane] == 0.0:
                            h[lane] = _initial_step(lane, t[lane], x_one, dx_one, p, e,
                                                    rate_buf, scratch_t, scratch_x, f1_one,
                                                    rtol, atol)  # fmt: skip
                            stats[s, STAT_RHS] += 1
                            # as the one-trajectory kernel: never below the smallest step
                            h[lane] = max(h[lane], 16.0 * EPS * max(abs(t[lane]), 1.0))
                        starting[lane] = False
                        continue
                elif not t[lane] < t_end[lane]:
                    # the piece is done: the one-trajectory kernel's end-of-piece check
                    for i in range(n):
                        if not np.isfinite(y[i, lane]):
                            status = NON_FINITE_STATE
                    if status == SUCCESS:
                        piece[lane] += 1
                        starting[lane] = True
                        continue
                elif stats[s, STAT_STEPS] + stats[s, STAT_REJECTED] >= max_steps:
                    status = MAX_STEPS_REACHED
                else:
                    h_min[lane] = 16.0 * EPS * max(abs(t[lane]), 1.0)
                    if not h[lane] >= h_min[lane]:  # (also NaN, from NaN rates)
                        nan_step = h[lane] != h[lane]
                        status = (
                            NON_FINITE_STATE
                            if overflowing[lane] or nan_step
                            else STEP_SIZE_TOO_SMALL
                        )
                    else:
                        last[lane] = False
                        if t[lane] + h[lane] >= t_end[lane] - h_min[lane]:
                            h_uncut[lane] = h[lane]
                            h[lane] = t_end[lane] - t[lane]
                            last[lane] = True
                        stepping[lane] = True
                        break
                # the sample is finished (status) unless it is still set up above
                _finish(s, status, j_out[lane], out_x, out_dn, stats, tolerant_columns,
                        out_total, out_fraction)  # fmt: skip
                sample[lane] = -1
                n_busy -= 1
                if next_sample < stop:
                    _take(lane, next_sample, params, x0, breakpoints, level,
                          exposure_index, t_out, p, e, y, rate_buf, scratch_t, scratch_x,
                          x_one, dx_one, out_x, out_dn, sample, h, log_err_old, piece, j_out,
                          n_stiff, n_nonstiff, overflowing, starting)  # fmt: skip
                    next_sample += 1
                    n_busy += 1
        if n_busy == 0:
            break

        # -- the six stages, every lane at once ----------------------------------------------
        for stage in range(1, 7):
            for i in range(n):
                for lane in range(w):
                    acc_lanes[lane] = 0.0
                for m in range(stage):
                    a = DP_A[stage, m]
                    for lane in range(w):
                        acc_lanes[lane] += a * k[m, i, lane]
                for lane in range(w):
                    y_new[i, lane] = y[i, lane] + h[lane] * acc_lanes[lane]
            if stage == 5:
                for i in range(n):
                    for lane in range(w):
                        y_stiff[i, lane] = y_new[i, lane]
            for lane in range(w):
                t_stage[lane] = t[lane] + DP_C[stage] * h[lane]
            lane_rhs(t_stage, y_new, p, e, rate_buf, k, stage)
        for lane in range(w):
            err_norm[lane] = 0.0
        for i in range(n):
            for lane in range(w):
                acc_lanes[lane] = 0.0
            for m in range(7):
                a = DP_E[m]
                for lane in range(w):
                    acc_lanes[lane] += a * k[m, i, lane]
            for lane in range(w):
                scale = atol + rtol * max(abs(y[i, lane]), abs(y_new[i, lane]))
                err_norm[lane] += (h[lane] * acc_lanes[lane] / scale) ** 2
        for lane in range(w):
            err_norm[lane] = np.sqrt(err_norm[lane] / n)

        # -- after the step: accept or reject, outputs, step-size control ---------------------
        for lane in range(w):
            if not stepping[lane]:
                continue
            s = sample[lane]
            stats[s, STAT_RHS] += 6
            err = err_norm[lane]
            negative = False
            for i in range(n):
                if y_new[i, lane] < -atol:
                    negative = True
            overflowing[lane] = not np.isfinite(err)
            if overflowing[lane]:
                finite = True
                for i in range(n):
                    if not np.isfinite(y[i, lane]):
                        finite = False
                if not finite:
                    _finish(s, NON_FINITE_STATE, j_out[lane], out_x, out_dn, stats,
                            tolerant_columns, out_total, out_fraction)  # fmt: skip
                    sample[lane] = -1
                    n_busy -= 1
                    if next_sample < stop:
                        _take(lane, next_sample, params, x0, breakpoints, level,
                              exposure_index, t_out, p, e, y, rate_buf, scratch_t, scratch_x,
                              x_one, dx_one, out_x, out_dn, sample, h, log_err_old, piece,
                              j_out, n_stiff, n_nonstiff, overflowing, starting)  # fmt: skip
                        next_sample += 1
                        n_busy += 1
                    continue
                h[lane] *= 0.25
                stats[s, STAT_REJECTED] += 1
                continue
            if err > 1.0 or negative:
                fac = 1.0 / min(1.0 / FAC_MIN, err**PI_EXPO1 / SAFETY)
                if negative:
                    fac = min(fac, 0.5)
                h[lane] *= fac
                stats[s, STAT_REJECTED] += 1
                continue
            # accepted
            stats[s, STAT_STEPS] += 1
            hl = h[lane]
            if method == METHOD_AUTO and (
                n_stiff[lane] > 0 or stats[s, STAT_STEPS] % STIFF_CHECK_EVERY == 0
            ):
                num = 0.0
                den = 0.0
                for i in range(n):
                    num += (k[6, i, lane] - k[5, i, lane]) ** 2
                    den += (y_new[i, lane] - y_stiff[i, lane]) ** 2
                if den > 0.0 and hl * np.sqrt(num / den) > STIFF_LIMIT:
                    n_nonstiff[lane] = 0
                    n_stiff[lane] += 1
                    if n_stiff[lane] == STIFF_STEPS:
                        _finish(s, STIFF_DETECTED, j_out[lane], out_x, out_dn, stats,
                                tolerant_columns, out_total, out_fraction)  # fmt: skip
                        sample[lane] = -1
                        n_busy -= 1
                        if next_sample < stop:
                            _take(lane, next_sample, params, x0, breakpoints, level,
                                  exposure_index, t_out, p, e, y, rate_buf, scratch_t,
                                  scratch_x, x_one, dx_one, out_x, out_dn, sample, h,
                                  log_err_old, piece, j_out, n_stiff, n_nonstiff, overflowing,
                                  starting)  # fmt: skip
                            next_sample += 1
                            n_busy += 1
                        continue
                else:
                    n_nonstiff[lane] += 1
                    if n_nonstiff[lane] == 6:
                        n_stiff[lane] = 0
            t_new = t_end[lane] if last[lane] else t[lane] + hl
            j = j_out[lane]
            if j < n_out and t_out[j] <= t_new:
                for m in range(4):
                    for i in range(n):
                        acc = 0.0
                        for stage in range(7):
                            acc += k[stage, i, lane] * DENSE_P[stage, m]
                        q[m, i] = hl * acc
                while j < n_out and t_out[j] <= t_new:
                    sj = (t_out[j] - t[lane]) / hl
                    rate = 0.0
                    for i in range(n):
                        value = y[i, lane] + sj * (
                            q[0, i] + sj * (q[1, i] + sj * (q[2, i] + sj * q[3, i]))
                        )
                        out_x[s, j, i] = max(value, 0.0)
                        rate += q[0, i] + sj * (
                            2.0 * q[1, i] + sj * (3.0 * q[2, i] + sj * 4.0 * q[3, i])
                        )
                    out_dn[s, j] = rate / hl
                    if t_out[j] >= t_end[lane] and piece[lane] + 1 < n_pieces:
                        # right-hand derivative at a breakpoint: rates of the next piece
                        for x in range(n_exposures):
                            for other in range(w):
                                e_next[x, other] = e[x, other]
                        load_exposures(lane, level, piece[lane] + 1, p, exposure_index, e_next)
                        for i in range(n):
                            x_one[i] = max(out_x[s, j, i], 0.0)
                            out_x[s, j, i] = x_one[i]
                        rhs_of_lane(lane, t_out[j], x_one, p, e_next, rate_buf,
                                    scratch_t, scratch_x, dx_one)  # fmt: skip
                        total = 0.0
                        for i in range(n):
                            total += dx_one[i]
                        out_dn[s, j] = total
                    j += 1
                j_out[lane] = j
            clipped = False
            for i in range(n):
                if y_new[i, lane] < 0.0:
                    y_new[i, lane] = 0.0
                    clipped = True
                y[i, lane] = y_new[i, lane]
            t[lane] = t_new
            log_err = np.log(max(err, 1e-10))
            fac = np.exp(PI_EXPO1 * log_err - PI_BETA * log_err_old[lane])
            h[lane] = hl / max(1.0 / FAC_MAX, min(1.0 / FAC_MIN, fac / SAFETY))
            log_err_old[lane] = max(log_err, LOG_1E_4)
            if last[lane]:
                if hl < CUT_FRACTION * h_uncut[lane]:  # as the one-trajectory kernel
                    h[lane] = max(h[lane], h_uncut[lane])
                continue  # the piece is done: checked before the next round
            if clipped:
                for i in range(n):
                    x_one[i] = y[i, lane]
                rhs_of_lane(lane, t[lane], x_one, p, e, rate_buf, scratch_t, scratch_x,
                            dx_one)  # fmt: skip
                for i in range(n):
                    k[0, i, lane] = dx_one[i]
                stats[s, STAT_RHS] += 1
            else:
                for i in range(n):  # f(t + h, y_new): first same as last
                    k[0, i, lane] = k[6, i, lane]


@njit(cache=True, error_model="numpy")
def _take(lane, s, params, x0, breakpoints, level, exposure_index, t_out, p, e, y,
          rate_buf, scratch_t, scratch_x, x_one, dx_one, out_x, out_dn, sample, h, log_err_old,
          piece, j_out, n_stiff, n_nonstiff, overflowing, starting):  # fmt: skip
    """Put sample ``s`` on lane ``lane``: its parameters and initial state, and the outputs
    at or before the schedule's start (as ``store_rhs_output`` of the one-trajectory kernel)."""
    n = y.shape[0]
    for q_ in range(p.shape[0]):
        p[q_, lane] = params[s, q_]
    for i in range(n):
        y[i, lane] = x0[s, i]
    sample[lane] = s
    h[lane] = 0.0
    log_err_old[lane] = LOG_1E_4
    piece[lane] = 0
    n_stiff[lane] = 0
    n_nonstiff[lane] = 0
    overflowing[lane] = False
    starting[lane] = True
    j = 0
    if t_out.shape[0] > 0 and t_out[0] <= breakpoints[0]:
        load_exposures(lane, level, 0, p, exposure_index, e)
    while j < t_out.shape[0] and t_out[j] <= breakpoints[0]:
        for i in range(n):
            x_one[i] = max(y[i, lane], 0.0)
            out_x[s, j, i] = x_one[i]
        rhs_of_lane(lane, t_out[j], x_one, p, e, rate_buf, scratch_t, scratch_x, dx_one)
        total = 0.0
        for i in range(n):
            total += dx_one[i]
        out_dn[s, j] = total
        j += 1
    j_out[lane] = j


@njit(cache=True, error_model="numpy")
def _finish(s, status, j, out_x, out_dn, stats, tolerant_columns, out_total, out_fraction):
    """Record a sample's status; outputs it did not reach are NaN. Its totals, while its rows
    are in cache (none for a sample the stiff kernel solves again)."""
    stats[s, STAT_STATUS] = status
    if status != SUCCESS:
        for jj in range(j, out_x.shape[1]):
            out_dn[s, jj] = np.nan
            for i in range(out_x.shape[2]):
                out_x[s, jj, i] = np.nan
    if out_total.shape[0] > 0 and status != STIFF_DETECTED:
        sample_totals(out_x[s], tolerant_columns, out_total[s], out_fraction[s])


@njit(cache=True, error_model="numpy")
def _initial_step(lane, t, x, f0, p, e, rate_buf, scratch_t, scratch_x, f1, rtol, atol):
    """:func:`tolsim.kernels.ode_template.initial_step` (order 4) for one lane."""
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
    work = np.empty(n)
    for i in range(n):
        work[i] = x[i] + h0 * f0[i]
    rhs_of_lane(lane, t + h0, work, p, e, rate_buf, scratch_t, scratch_x, f1)
    d2 = 0.0
    for i in range(n):
        scale = atol + rtol * abs(x[i])
        d2 += ((f1[i] - f0[i]) / scale) ** 2
    d2 = np.sqrt(d2 / n) / h0
    if max(d1, d2) <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / 5.0)
    return min(100.0 * h0, h1)


@njit(cache=True, error_model="numpy")
def _check_copy(x0):
    """Refuse a copy whose :data:`STOICH` is not the model's (the template's placeholder,
    for one): its rate buffers would not fit the model's transitions."""
    if x0.shape[1] != N_STATES:
        raise ValueError(
            "this copy of the lane kernels has another model's stoichiometry: build it with "
            "tolsim.simulate.lane_kernels(model)"
        )


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def solve_batch(
    params,
    x0,
    breakpoints,
    level,
    exposure_index,
    t_out,
    rtol,
    atol,
    max_steps,
    method,
    block_size,
    out_x,
    out_dn,
    stats,
    tolerant_columns,
    out_total,
    out_fraction,
):
    """Solve every parameter set (rows of ``params``), blocks of ``block_size`` samples in
    parallel, each block on ``LANES`` lanes.

    Arguments as :func:`tolsim.kernels.ode_template.solve_batch`, except the stoichiometry,
    which is this copy's :data:`STOICH`, and the schedule: its ``breakpoints``
    (n_pieces + 1,) days and ``level`` (n_pieces, n_drugs) µM only (no PK), and
    ``exposure_index`` (n_exposures, 3) int64: for each of the model's exposures, the
    drug column, EC50 parameter and Hill parameter. ``stats`` is zeroed by the caller; status
    :data:`STIFF_DETECTED` marks samples to solve again without lanes.
    """
    _check_copy(x0)
    n_samples = params.shape[0]
    n_blocks = (n_samples + block_size - 1) // block_size
    for b in prange(n_blocks):
        first = b * block_size
        stop = min(first + block_size, n_samples)
        block(
            first,
            stop,
            params,
            x0,
            breakpoints,
            level,
            exposure_index,
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
        )


# -- lockstep: lanes that share their steps --------------------------------------------------

# 64 lanes were fastest once the stages were written out (2026-11-27, in one process,
# interleaved: 32 lanes 2-8% slower, 128 no faster); 32 before (8: 1.8x, 64: 1.4x slower)
LOCKSTEP_LANES = 64  # TOLSIM-CONSTANT
REDO_ALONE = 1  # lockstep status: stiff, or failed as a group; solve each sample alone


@njit(cache=True, error_model="numpy")
def lockstep_group(
    first,
    stop,
    params,
    x0,
    breakpoints,
    level,
    exposure_index,
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
    """Samples ``first .. stop - 1`` (at most ``LOCKSTEP_LANES``) on lanes that take the
    same steps: Dormand–Prince with the one-trajectory kernel's step control applied to the
    largest error norm among the lanes, so every lane meets the tolerance at every step.

    Returns nothing; a group that fails (any status but success) or that the ``auto``
    stiffness test flags in any lane marks all its samples :data:`REDO_ALONE`.
    """
    n = x0.shape[1]
    n_packed = params.shape[1]
    n_pieces = breakpoints.shape[0] - 1
    n_out = t_out.shape[0]
    n_exposures = exposure_index.shape[0]
    w = stop - first

    p = np.empty((n_packed, w))
    e = np.empty((n_exposures, w))
    e_next = np.empty((n_exposures, w))
    y = np.empty((n, w))
    y_new = np.empty((n, w))
    y_stiff = np.empty((n, w))
    scratch = np.empty((n, w))
    k = np.empty((7, n, w))
    q = np.empty((4, n, w))
    # outputs lane-major (contiguous over lanes, so their loops vectorise), copied to the
    # sample-major results at the end
    buf_x = np.empty((n_out, n, w))
    buf_dn = np.empty((n_out, w))
    rate_buf = np.empty((N_TRANSITIONS, w))
    t_lanes = np.empty(w)
    acc_lanes = np.empty(w)
    err_lanes = np.empty(w)
    n_stiff = np.zeros(w, dtype=np.int64)
    n_nonstiff = np.zeros(w, dtype=np.int64)
    for q_ in range(n_packed):
        for lane in range(w):
            p[q_, lane] = params[first + lane, q_]
    for i in range(n):
        for lane in range(w):
            y[i, lane] = x0[first + lane, i]

    n_steps = 0
    n_rejected = 0
    n_rhs = 0
    status = SUCCESS
    j = 0
    if n_out > 0 and t_out[0] <= breakpoints[0]:
        for lane in range(w):
            load_exposures(lane, level, 0, p, exposure_index, e)
    while j < n_out and t_out[j] <= breakpoints[0]:
        _lockstep_store_rhs(j, t_out[j], y, p, e, rate_buf, t_lanes, scratch, k, buf_x,
                            buf_dn)  # fmt: skip
        j += 1

    h = 0.0
    h_uncut = 0.0
    h_cut = 0.0
    log_err_old = LOG_1E_4
    for piece in range(n_pieces):
        t = breakpoints[piece]
        t_end = breakpoints[piece + 1]
        for lane in range(w):
            load_exposures(lane, level, piece, p, exposure_index, e)
            t_lanes[lane] = t
        lane_rhs(t_lanes, y, p, e, rate_buf, k, 0)
        n_rhs += 1
        if h == 0.0:
            h = _lockstep_initial_step(t, y, p, e, rate_buf, t_lanes, y_new, k, rtol,
                                       atol)  # fmt: skip
            n_rhs += 1
            h = max(h, 16.0 * EPS * max(abs(t), 1.0))  # as the one-trajectory kernel
        while t < t_end:
            if n_steps + n_rejected >= max_steps:
                status = MAX_STEPS_REACHED
                break
            h_min = 16.0 * EPS * max(abs(t), 1.0)
            if not h >= h_min:  # (also NaN, from NaN rates)
                status = NON_FINITE_STATE if h != h else STEP_SIZE_TOO_SMALL
                break
            last = False
            if t + h >= t_end - h_min:
                h_uncut = h
                h = t_end - t
                last = True
            # the six stages written out, each with a constant stage number, so that the
            # sums over the earlier stages unroll and the loops over lanes, innermost,
            # vectorise with the sums in registers
            _lockstep_stage(int64(1), t, h, y, p, e, rate_buf, t_lanes, k, y_new, y_stiff)
            _lockstep_stage(int64(2), t, h, y, p, e, rate_buf, t_lanes, k, y_new, y_stiff)
            _lockstep_stage(int64(3), t, h, y, p, e, rate_buf, t_lanes, k, y_new, y_stiff)
            _lockstep_stage(int64(4), t, h, y, p, e, rate_buf, t_lanes, k, y_new, y_stiff)
            _lockstep_stage(int64(5), t, h, y, p, e, rate_buf, t_lanes, k, y_new, y_stiff)
            _lockstep_stage(int64(6), t, h, y, p, e, rate_buf, t_lanes, k, y_new, y_stiff)
            n_rhs += 6
            for lane in range(w):
                err_lanes[lane] = 0.0
            for i in range(n):
                for lane in range(w):
                    acc = 0.0
                    for m in range(7):
                        acc += DP_E[m] * k[m, i, lane]
                    scale = atol + rtol * max(abs(y[i, lane]), abs(y_new[i, lane]))
                    err_lanes[lane] += (h * acc / scale) ** 2
            # the largest lane's norm, NaN as soon as one lane's is NaN; one square root,
            # the same number as the largest of the lanes' roots (both maps are monotone)
            err_max = 0.0
            for lane in range(w):
                value = err_lanes[lane]
                if value > err_max or value != value:
                    err_max = value
            err_norm = np.sqrt(err_max / n)
            negative = False
            for i in range(n):
                for lane in range(w):
                    if y_new[i, lane] < -atol:
                        negative = True
            if not np.isfinite(err_norm):
                finite = True
                for i in range(n):
                    for lane in range(w):
                        if not np.isfinite(y[i, lane]):
                            finite = False
                if not finite:
                    status = NON_FINITE_STATE
                    break
                h *= 0.25
                n_rejected += 1
                continue
            if err_norm > 1.0 or negative:
                fac = 1.0 / min(1.0 / FAC_MIN, err_norm**PI_EXPO1 / SAFETY)
                if negative:
                    fac = min(fac, 0.5)
                h *= fac
                n_rejected += 1
                continue
            n_steps += 1
            if method == METHOD_AUTO:
                for lane in range(w):
                    if n_stiff[lane] > 0 or n_steps % STIFF_CHECK_EVERY == 0:
                        num = 0.0
                        den = 0.0
                        for i in range(n):
                            num += (k[6, i, lane] - k[5, i, lane]) ** 2
                            den += (y_new[i, lane] - y_stiff[i, lane]) ** 2
                        if den > 0.0 and h * np.sqrt(num / den) > STIFF_LIMIT:
                            n_nonstiff[lane] = 0
                            n_stiff[lane] += 1
                            if n_stiff[lane] == STIFF_STEPS:
                                status = REDO_ALONE
                        else:
                            n_nonstiff[lane] += 1
                            if n_nonstiff[lane] == 6:
                                n_stiff[lane] = 0
                if status != SUCCESS:
                    break
            t_new = t_end if last else t + h
            if j < n_out and t_out[j] <= t_new:
                for m in range(4):
                    for i in range(n):
                        for lane in range(w):
                            acc = 0.0
                            for stage in range(7):
                                acc += k[stage, i, lane] * DENSE_P[stage, m]
                            q[m, i, lane] = h * acc
                while j < n_out and t_out[j] <= t_new:
                    sj = (t_out[j] - t) / h
                    for lane in range(w):
                        acc_lanes[lane] = 0.0
                    for i in range(n):
                        for lane in range(w):
                            value = y[i, lane] + sj * (
                                q[0, i, lane]
                                + sj * (q[1, i, lane] + sj * (q[2, i, lane] + sj * q[3, i, lane]))
                            )
                            buf_x[j, i, lane] = max(value, 0.0)
                            acc_lanes[lane] += q[0, i, lane] + sj * (
                                2.0 * q[1, i, lane]
                                + sj * (3.0 * q[2, i, lane] + sj * 4.0 * q[3, i, lane])
                            )
                    for lane in range(w):
                        buf_dn[j, lane] = acc_lanes[lane] / h
                    if t_out[j] >= t_end and piece + 1 < n_pieces:
                        # right-hand derivative at a breakpoint: rates of the next piece
                        for lane in range(w):
                            load_exposures(lane, level, piece + 1, p, exposure_index, e_next)
                            for i in range(n):
                                y_stiff[i, lane] = buf_x[j, i, lane]
                        _lockstep_store_rhs(j, t_out[j], y_stiff, p, e_next, rate_buf,
                                            t_lanes, scratch, k, buf_x, buf_dn)  # fmt: skip
                    j += 1
            clipped = False
            for i in range(n):
                for lane in range(w):
                    if y_new[i, lane] < 0.0:
                        y_new[i, lane] = 0.0
                        clipped = True
                    y[i, lane] = y_new[i, lane]
            t = t_new
            h_cut = h
            log_err = np.log(max(err_norm, 1e-10))
            fac = np.exp(PI_EXPO1 * log_err - PI_BETA * log_err_old)
            h /= max(1.0 / FAC_MAX, min(1.0 / FAC_MIN, fac / SAFETY))
            log_err_old = max(log_err, LOG_1E_4)
            if last:
                if h_cut < CUT_FRACTION * h_uncut:  # as the one-trajectory kernel
                    h = max(h, h_uncut)
                break
            if clipped:
                for lane in range(w):
                    t_lanes[lane] = t
                lane_rhs(t_lanes, y, p, e, rate_buf, k, 0)
                n_rhs += 1
            else:
                for i in range(n):
                    for lane in range(w):
                        k[0, i, lane] = k[6, i, lane]
        if status == SUCCESS:
            for i in range(n):
                for lane in range(w):
                    if not np.isfinite(y[i, lane]):
                        status = NON_FINITE_STATE
        if status != SUCCESS:
            break
    if status == SUCCESS:
        _lockstep_copy_out(first, buf_x, buf_dn, tolerant_columns, out_x, out_dn, out_total,
                           out_fraction)  # fmt: skip
    for lane in range(w):
        s = first + lane
        stats[s, STAT_STATUS] = SUCCESS if status == SUCCESS else REDO_ALONE
        stats[s, STAT_STEPS] = n_steps
        stats[s, STAT_REJECTED] = n_rejected
        stats[s, STAT_RHS] = n_rhs


@njit(cache=True, error_model="numpy", inline="always")
def _lockstep_stage(stage, t, h, y, p, e, rate_buf, t_lanes, k, y_new, y_stiff):
    """Stage ``stage`` (1-6) of a lockstep Dormand-Prince step for every lane: its state
    from ``k[:stage]`` (the one-trajectory kernel's sums, in its order) and ``k[stage]``;
    the fifth stage's state kept in ``y_stiff`` for the stiffness test. Inlined with a
    constant ``stage``."""
    n, w = y.shape
    for i in range(n):
        for lane in range(w):
            acc = 0.0
            for m in range(stage):
                acc += DP_A[stage, m] * k[m, i, lane]
            y_new[i, lane] = y[i, lane] + h * acc
    if stage == 5:
        for i in range(n):
            for lane in range(w):
                y_stiff[i, lane] = y_new[i, lane]
    t_stage = t + DP_C[stage] * h
    for lane in range(w):
        t_lanes[lane] = t_stage
    lane_rhs(t_lanes, y_new, p, e, rate_buf, k, stage)


@njit(cache=True, error_model="numpy")
def _lockstep_copy_out(first, buf_x, buf_dn, tolerant_columns, out_x, out_dn, out_total,
                       out_fraction):  # fmt: skip
    """A group's lane-major outputs into the sample-major results, one sample's rows at a
    time (the writes are contiguous), with the totals when ``out_total`` has rows.

    Two states and one tolerant column (the two-state models): the totals from the values
    being copied, :func:`~tolsim.kernels.summary.sample_totals`'s arithmetic in the same
    loop (20-25% less time for the copy and the totals than reading the rows back)."""
    n_out, n, w = buf_x.shape
    with_totals = out_total.shape[0] > 0
    fused = with_totals and n == 2 and tolerant_columns.shape[0] == 1
    c = tolerant_columns[0] if fused else 0
    for lane in range(w):
        s = first + lane
        if fused:
            for jj in range(n_out):
                out_dn[s, jj] = buf_dn[jj, lane]
                a = buf_x[jj, 0, lane]
                b = buf_x[jj, 1, lane]
                out_x[s, jj, 0] = a
                out_x[s, jj, 1] = b
                acc = a + b
                share = buf_x[jj, c, lane] / acc
                out_total[s, jj] = acc
                out_fraction[s, jj] = share if acc > 0.0 else np.nan
            continue
        for jj in range(n_out):
            out_dn[s, jj] = buf_dn[jj, lane]
            for i in range(n):
                out_x[s, jj, i] = buf_x[jj, i, lane]
        if with_totals:
            sample_totals(out_x[s], tolerant_columns, out_total[s], out_fraction[s])


@njit(cache=True, error_model="numpy")
def _lockstep_store_rhs(j, t_j, x, p, e, rate_buf, t_lanes, scratch, k, buf_x,
                        buf_dn):  # fmt: skip
    """Outputs ``j`` of every lane (lane-major buffers): the clipped states ``x`` and dN/dt
    from the rates
    (``scratch`` and ``k[6]`` are overwritten: called before a step's stages, or after a
    step that ends its piece, whose ``k`` is not used again)."""
    n, w = x.shape
    for i in range(n):
        for lane in range(w):
            scratch[i, lane] = max(x[i, lane], 0.0)
            buf_x[j, i, lane] = scratch[i, lane]
    for lane in range(w):
        t_lanes[lane] = t_j
    lane_rhs(t_lanes, scratch, p, e, rate_buf, k, 6)
    for lane in range(w):
        total = 0.0
        for i in range(n):
            total += k[6, i, lane]
        buf_dn[j, lane] = total


@njit(cache=True, error_model="numpy")
def _lockstep_initial_step(t, x, p, e, rate_buf, t_lanes, work, k, rtol, atol):
    """The smallest of the lanes' initial steps (``ode_template.initial_step``, order 4);
    ``k[0]`` holds f(t, x); ``work`` and ``k[1]`` are overwritten."""
    n, w = x.shape
    h0 = np.empty(w)
    d1 = np.empty(w)
    for lane in range(w):
        d0_lane = 0.0
        d1_lane = 0.0
        for i in range(n):
            scale = atol + rtol * abs(x[i, lane])
            d0_lane += (x[i, lane] / scale) ** 2
            d1_lane += (k[0, i, lane] / scale) ** 2
        d0_lane = np.sqrt(d0_lane / n)
        d1[lane] = np.sqrt(d1_lane / n)
        h0[lane] = 1e-6 if (d0_lane < 1e-5 or d1[lane] < 1e-5) else 0.01 * d0_lane / d1[lane]
        for i in range(n):
            work[i, lane] = x[i, lane] + h0[lane] * k[0, i, lane]
        t_lanes[lane] = t + h0[lane]
    lane_rhs(t_lanes, work, p, e, rate_buf, k, 1)
    h = np.inf
    for lane in range(w):
        d2 = 0.0
        for i in range(n):
            scale = atol + rtol * abs(x[i, lane])
            d2 += ((k[1, i, lane] - k[0, i, lane]) / scale) ** 2
        d2 = np.sqrt(d2 / n) / h0[lane]
        if max(d1[lane], d2) <= 1e-15:
            h1 = max(1e-6, h0[lane] * 1e-3)
        else:
            h1 = (0.01 / max(d1[lane], d2)) ** (1.0 / 5.0)
        h = min(h, min(100.0 * h0[lane], h1))
    return h


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def solve_lockstep(
    params,
    x0,
    breakpoints,
    level,
    exposure_index,
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
    """Groups of ``LOCKSTEP_LANES`` consecutive samples in parallel, each group's lanes
    sharing steps (:func:`lockstep_group`); arguments as :func:`solve_batch`."""
    _check_copy(x0)
    n_samples = params.shape[0]
    n_groups = (n_samples + LOCKSTEP_LANES - 1) // LOCKSTEP_LANES
    for g in prange(n_groups):
        first = g * LOCKSTEP_LANES
        lockstep_group(
            first,
            min(first + LOCKSTEP_LANES, n_samples),
            params,
            x0,
            breakpoints,
            level,
            exposure_index,
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
        )
