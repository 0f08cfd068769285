"""Stochastic solver kernels, written once against the model interface ``rates(t, x, p, c, out)``.

Like :mod:`tolsim.kernels.ode_template`, this file is a *template*: a per-model copy whose
``TOLSIM-RATES`` import names the model's rate function is written and cached by
:mod:`tolsim.kernels.specialise`. A transition ``j`` fires at propensity ``out[j]`` (events per
day) and changes the state by row ``j`` of the stoichiometry.

Methods
-------
* ``ssa`` — Gillespie's direct method (Gillespie 1977).
* ``tau`` — adaptive explicit tau-leaping with the step selection of Cao, Gillespie & Petzold
  (2006): leaps bound the expected relative change of every state by ``TAU_EPSILON``;
  *critical* transitions (those fewer than ``N_CRITICAL`` firings from exhausting a state) are
  not leapt but fire at most once per leap, at an exactly drawn time, and a leap that would
  still make a count negative is halved and redrawn; when a leap would be shorter than a few
  exact steps, ``SSA_BURST`` exact steps are taken instead.
* ``hybrid`` — states below a threshold (``threshold`` cells) are *discrete*: every transition
  that changes one of them fires exactly, as a jump; the others change only large states and
  are integrated as the mean-field ODE (Dormand–Prince 5(4)). The jump times follow the
  integrated propensity ``G(t) = ∫ a_discrete``, carried as an extra ODE component, firing
  when it reaches an Exp(1) draw (Haseltine & Rawlings 2002; Salis & Kaznessis 2005). A
  continuous state that falls below half the threshold becomes discrete (rounded
  stochastically, which keeps the mean); a discrete one that reaches the threshold becomes
  continuous.

Exposures: within a piece of constant concentrations (in vitro) propensities change only when
a transition fires. Within a piece with pharmacokinetics, propensities change continuously
with time, and the next firing time solves ``∫ a0(s) ds = Exp(1)`` with the state fixed (5-point
Gauss–Legendre quadrature on sub-intervals no longer than ``PK_SUBSTEP / max(ka, ke)``, then a
safeguarded Newton iteration); tau-leaping draws Poisson counts with the integrated
propensities as means; the hybrid method integrates ``G`` with the ODE. No method freezes
rates over a step.

Every path draws from its own stream (:mod:`tolsim.kernels.random`) seeded by
``(seed, sample, path)``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from tolsim.kernels.exposure import (
    PK_CENTRAL,
    PK_COLUMNS,
    PK_DEPOT,
    PK_INFUSION,
    PK_KA,
    PK_KE,
    CompiledSchedule,
    load_piece,
    piece_concentrations,
)
from tolsim.kernels.placeholder import rates as model_rates  # TOLSIM-RATES
from tolsim.kernels.random import STATE_WORDS, exponential, poisson, seed_stream, uniform
from tolsim.kernels.tableau import DP_A, DP_C, DP_E

# Inlined into the event loops (see ode_template for why the rate function is re-jitted).
rates = njit(error_model="numpy", inline="always")(model_rates.py_func)

METHOD_SSA = 0
METHOD_TAU = 1
METHOD_HYBRID = 2
# The method compiled into this copy (a METHOD_* code; tolsim.stochastic.kernel_module); -1,
# the template's own value: none, and simulate_batch refuses every call. Numba prunes the
# branches on this constant before typing, so a copy compiles its own method's path alone (a
# fresh cache's first SSA call on 2 cores: 62 s when one copy held all three, 34-38 s now)
METHOD = -1  # TOLSIM-CONSTANT

SUCCESS = 0
EVENT_BUDGET_REACHED = -2
BAD_PROPENSITY = -4
STEP_SIZE_TOO_SMALL = -1

# stats columns
STAT_STATUS = 0
STAT_EVENTS = 1  # transitions fired
STAT_STEPS = 2  # exact events, leaps and ODE steps taken
STAT_REJECTED = 3  # halved leaps and rejected ODE steps
N_STATS = 4

TAU_EPSILON = 0.03  # Cao, Gillespie & Petzold (2006): bound on relative change per leap
N_CRITICAL = 10  # firings from exhausting a state that make a transition critical
SSA_FACTOR = 10.0  # leap only when tau > SSA_FACTOR / a0 ...
SSA_BURST = 100  # ... otherwise take this many exact steps
PK_SUBSTEP = 0.5  # quadrature sub-interval, in units of 1/max(ka, ke)
HYBRID_RTOL = 1e-6
HYBRID_ATOL_HAZARD = 1e-6

# 5-point Gauss-Legendre rule on [0, 1] (exact for polynomials of degree 9).
GL_NODES = np.array(
    [
        0.046910077030668,
        0.2307653449471585,
        0.5,
        0.7692346550528415,
        0.953089922969332,
    ]
)
GL_WEIGHTS = np.array(
    [
        0.11846344252809454,
        0.23931433524968324,
        0.28444444444444444,
        0.23931433524968324,
        0.11846344252809454,
    ]
)


# -- exposures within a piece ----------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def pk_substep(pk):
    """Longest sub-interval (days) over which quadrature of the propensities is trusted;
    ``inf`` when no PK channel holds drug in this piece (concentrations are constant)."""
    fastest = 0.0
    for ch in range(pk.shape[0]):
        if pk[ch, PK_DEPOT] != 0.0 or pk[ch, PK_CENTRAL] != 0.0 or pk[ch, PK_INFUSION] != 0.0:
            fastest = max(fastest, pk[ch, PK_KA], pk[ch, PK_KE])
    if fastest == 0.0:
        return np.inf
    return PK_SUBSTEP / fastest


@njit(cache=True, error_model="numpy", inline="always")
def total_rates(t, t0, level, pk, x, p, conc, a):
    """Fill ``a`` with the propensities at day ``t`` (piece started at ``t0``); return their
    sum, or -1 if any is negative or NaN."""
    piece_concentrations(t - t0, level, pk, conc)
    rates(t, x, p, conc, a)
    a0 = 0.0
    for j in range(a.shape[0]):
        if not a[j] >= 0.0:
            return -1.0
        a0 += a[j]
    return a0


@njit(cache=True, error_model="numpy")
def integrated_rates(t_start, width, t0, level, pk, x, p, conc, a, mask, acc):
    """``acc[j] = ∫ a_j`` over ``[t_start, t_start + width]`` (state fixed) by 5-point
    Gauss–Legendre; returns the sum over transitions with ``mask[j]`` (all when ``mask`` is
    empty), or -1 for a negative propensity. The width must not exceed the piece's quadrature
    sub-step. (The width is passed, not the end: a difference of two nearby days would lose
    its relative precision.)"""
    for j in range(acc.shape[0]):
        acc[j] = 0.0
    for q in range(GL_NODES.shape[0]):
        if total_rates(t_start + GL_NODES[q] * width, t0, level, pk, x, p, conc, a) < 0.0:
            return -1.0
        for j in range(acc.shape[0]):
            acc[j] += GL_WEIGHTS[q] * width * a[j]
    total = 0.0
    for j in range(acc.shape[0]):
        if mask.shape[0] == 0 or mask[j]:
            total += acc[j]
    return total


@njit(cache=True, error_model="numpy")
def hazard_time(target, t, t_stop, substep, t0, level, pk, x, p, conc, a, mask, acc):
    """Day at which the integrated propensity of the ``mask``-ed transitions (all if empty),
    from day ``t`` with the state fixed, reaches ``target``; ``inf`` if not before ``t_stop``;
    NaN for a negative propensity. For pieces with time-varying concentrations.

    The window searched is at most a quadrature sub-step, and twice the time the current
    propensity needs to reach the target: events are usually far more frequent than the
    concentrations change, so the root lies in a short window where the first Newton
    iterate ``target / a0(t)`` is already close.
    """
    remaining = target
    while t < t_stop:
        rate = masked_rate(t, t0, level, pk, x, p, conc, a, mask)
        if rate < 0.0:
            return np.nan
        window = min(substep, t_stop - t)
        if rate > 0.0:
            window = min(window, 2.0 * remaining / rate)
        area = integrated_rates(t, window, t0, level, pk, x, p, conc, a, mask, acc)
        if area < 0.0:
            return np.nan
        if area >= remaining:
            lo, hi = 0.0, window  # bracket of the offset from t
            w = remaining / rate if rate > 0.0 else window * remaining / area
            if not (lo < w < hi):
                w = window * remaining / area
            for _ in range(50):
                f = integrated_rates(t, w, t0, level, pk, x, p, conc, a, mask, acc) - remaining
                if abs(f) <= 1e-13 * remaining:
                    break
                if f > 0.0:
                    hi = w
                else:
                    lo = w
                rate_w = masked_rate(t + w, t0, level, pk, x, p, conc, a, mask)
                w_new = w - f / rate_w if rate_w > 0.0 else 0.5 * (lo + hi)
                if not (lo < w_new < hi):
                    w_new = 0.5 * (lo + hi)
                close = abs(w_new - w) <= 1e-14 * w
                w = w_new
                if close or hi - lo <= 1e-14 * hi:
                    break
            return t + w
        remaining -= area
        t = t + window
    return np.inf


@njit(cache=True, error_model="numpy")
def masked_rate(t, t0, level, pk, x, p, conc, a, mask):
    """Total propensity of the ``mask``-ed transitions (all if empty) at day ``t``, or -1."""
    if total_rates(t, t0, level, pk, x, p, conc, a) < 0.0:
        return -1.0
    rate = 0.0
    for j in range(a.shape[0]):
        if mask.shape[0] == 0 or mask[j]:
            rate += a[j]
    return rate


# -- bookkeeping shared by the methods -------------------------------------------------------
@njit(cache=True, error_model="numpy", inline="always")
def choose(a, total, u, mask):
    """Index of the transition chosen with probability ``a[j] / total`` (among ``mask``-ed
    ones when ``mask`` is non-empty), from a uniform ``u`` in [0, 1)."""
    target = u * total
    acc = 0.0
    last = -1
    for j in range(a.shape[0]):
        if mask.shape[0] != 0 and not mask[j]:
            continue
        if a[j] > 0.0:
            last = j
            acc += a[j]
            if acc > target:
                return j
    return last  # round-off: u * total reached the sum


@njit(cache=True, error_model="numpy", inline="always")
def choose_all(a, total, u):
    """:func:`choose` over all transitions, without data-dependent branches: the index is the
    number of partial sums not above ``u * total`` (a mispredicted branch per event would cost
    as much as the rest of the event)."""
    target = u * total
    acc = 0.0
    index = 0
    for j in range(a.shape[0] - 1):
        acc += a[j]
        index += acc <= target
    while a[index] == 0.0 and index > 0:  # round-off pushed the target past the last sum
        index -= 1
    return index


@njit(cache=True, error_model="numpy", inline="always")
def record(t_event, x, t_out, next_out, out):
    """Store ``x`` at every output day before ``t_event``; return the next output index."""
    while next_out < t_out.shape[0] and t_out[next_out] < t_event:
        for i in range(x.shape[0]):
            out[next_out, i] = round(x[i])
        next_out += 1
    return next_out


@njit(cache=True, error_model="numpy")
def init_summary(x, summary):
    """Extinction days start at 0 for states that start empty, NaN otherwise; the recurrence
    time starts NaN ("not yet")."""
    n = x.shape[0]
    total = 0.0
    for i in range(n):
        summary[i] = 0.0 if x[i] == 0.0 else np.nan
        total += x[i]
    summary[n] = 0.0 if total == 0.0 else np.nan
    summary[n + 1] = np.nan


@njit(cache=True, error_model="numpy", inline="always")
def update_summary(t, x, stoich, j, summary, recurrence):
    """After a jump at day ``t`` by transition ``j`` (``-1``: any states may have changed):
    extinction days and the recurrence time.

    ``recurrence`` = (armed, withdrawal day, level): once armed, the first day the burden
    exceeds the level gives the recurrence time.
    """
    n = x.shape[0]
    total = 0.0
    for i in range(n):
        total += x[i]
        if j < 0 or stoich[j, i] != 0.0:
            if x[i] <= 0.0:
                if np.isnan(summary[i]):
                    summary[i] = t
            else:
                summary[i] = np.nan
    if total <= 0.0:
        if np.isnan(summary[n]):
            summary[n] = t
    else:
        summary[n] = np.nan
    if recurrence[0] == 1.0 and total > recurrence[2] and np.isnan(summary[n + 1]):
        summary[n + 1] = t - recurrence[1]


@njit(cache=True, error_model="numpy")
def leap_recurrence(t_start, total_start, t, x, summary, recurrence):
    """After a leap from ``t_start`` (``total_start`` cells) to ``t`` (state ``x``): if it took
    the burden above the recurrence threshold first, record the crossing at the day where the
    straight line between the two totals crosses it (a leap's events have no days of their
    own; :func:`update_summary` keeps a time already recorded)."""
    n = x.shape[0]
    if recurrence[0] != 1.0 or not np.isnan(summary[n + 1]):
        return
    total = 0.0
    for i in range(n):
        total += x[i]
    if total > recurrence[2]:
        fraction = 0.0
        if total_start < recurrence[2]:
            fraction = (recurrence[2] - total_start) / (total - total_start)
        summary[n + 1] = t_start + fraction * (t - t_start) - recurrence[1]


@njit(cache=True, error_model="numpy")
def arm_recurrence(t, x, level, recurrence, summary):
    """At withdrawal (day ``t``): fix the threshold (``level``, or the burden now if NaN)."""
    total = 0.0
    for i in range(x.shape[0]):
        total += x[i]
    recurrence[0] = 1.0
    recurrence[1] = t
    recurrence[2] = total if np.isnan(level) else level
    if total > recurrence[2]:
        summary[x.shape[0] + 1] = 0.0


@njit(cache=True, error_model="numpy", inline="always")
def finish(stats, events, steps, rejected, status):
    """Record a path's counters and return its status (every exit of a path goes here)."""
    stats[STAT_EVENTS] = events
    stats[STAT_STEPS] = steps
    stats[STAT_REJECTED] = rejected
    return status


@njit(cache=True, error_model="numpy", inline="always")
def fire(j, x, stoich, times=1.0):
    for i in range(x.shape[0]):
        x[i] += times * stoich[j, i]


# -- exact SSA -------------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def ssa_event(t, t_stop, substep, t0, level, pk, x, p, stoich, conc, a, acc, no_mask, rng):
    """One step of the direct method from day ``t``: returns ``(t_next, j)`` with ``j`` the
    transition that fires at ``t_next`` (the caller applies it), or ``(t_stop, -1)`` if none
    fires before ``t_stop``, or ``(t, -2)`` for a negative or NaN propensity."""
    if substep == np.inf:
        a0 = total_rates(t, t0, level, pk, x, p, conc, a)
        if a0 < 0.0:
            return t, -2
        if a0 == 0.0:
            return t_stop, -1
        t_next = t + exponential(rng) / a0
        if t_next >= t_stop:
            return t_stop, -1
    else:
        t_next = hazard_time(
            exponential(rng), t, t_stop, substep, t0, level, pk, x, p, conc, a, no_mask, acc
        )
        if np.isnan(t_next):
            return t, -2
        if t_next >= t_stop:
            return t_stop, -1
        a0 = total_rates(t_next, t0, level, pk, x, p, conc, a)
    return t_next, choose(a, a0, uniform(rng), no_mask)


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract", "arcp"})
def ssa_path(
    x, p, sched, stoich, t_out, max_events, rng, arm_piece, arm_level, out, summary, stats
):
    """Gillespie's direct method over the schedule up to ``t_out[-1]``; returns the status."""
    n_pieces = sched.breakpoints_days.shape[0] - 1
    n_out = t_out.shape[0]
    t_end = t_out[n_out - 1]
    n_tr = stoich.shape[0]
    n_drugs = sched.level_um.shape[1]
    conc = np.empty(n_drugs)
    level = np.empty(n_drugs)
    pk = np.empty((sched.channel_drug.shape[0], PK_COLUMNS))
    a = np.empty(n_tr)
    acc = np.empty(n_tr)
    no_mask = np.empty(0, dtype=np.bool_)
    recurrence = np.zeros(3)
    init_summary(x, summary)
    next_out = 0
    events = 0
    t = 0.0
    for k in range(n_pieces):
        t0 = sched.breakpoints_days[k]
        if t0 > t_end:
            break
        t1 = min(sched.breakpoints_days[k + 1], t_end)
        load_piece(sched, k, level, pk)
        if k == arm_piece:
            arm_recurrence(t0, x, arm_level, recurrence, summary)
        substep = pk_substep(pk)
        t = t0
        if substep == np.inf:
            # Constant concentrations: the hot loop, with everything inlined (a call per
            # event would cost more than the event).
            piece_concentrations(0.0, level, pk, conc)
            while True:
                rates(t, x, p, conc, a)
                a0 = 0.0
                for j in range(n_tr):
                    if not a[j] >= 0.0:
                        a0 = -1.0
                        break
                    a0 += a[j]
                if a0 < 0.0:
                    return finish(stats, events, events, 0, BAD_PROPENSITY)
                if a0 == 0.0:
                    break
                t_next = t + exponential(rng) / a0
                if t_next >= t1:
                    break
                j = choose_all(a, a0, uniform(rng))
                if next_out < n_out and t_out[next_out] < t_next:
                    next_out = record(t_next, x, t_out, next_out, out)
                t = t_next
                events += 1
                low = False  # a state reaching or leaving 0 needs the full bookkeeping
                total = 0.0
                for i in range(x.shape[0]):
                    x[i] += stoich[j, i]
                    total += x[i]
                    low |= x[i] <= 1.0
                if low:
                    update_summary(t, x, stoich, j, summary, recurrence)
                elif recurrence[0] == 1.0 and total > recurrence[2]:
                    if np.isnan(summary[x.shape[0] + 1]):
                        summary[x.shape[0] + 1] = t - recurrence[1]
                if events >= max_events:
                    return finish(stats, events, events, 0, EVENT_BUDGET_REACHED)
            continue
        while True:
            t_next, j = ssa_event(
                t, t1, substep, t0, level, pk, x, p, stoich, conc, a, acc, no_mask, rng
            )
            if j == -2:
                return finish(stats, events, events, 0, BAD_PROPENSITY)
            if j == -1:
                t = t1
                break
            next_out = record(t_next, x, t_out, next_out, out)
            fire(j, x, stoich)
            t = t_next
            events += 1
            update_summary(t, x, stoich, j, summary, recurrence)
            if events >= max_events:
                return finish(stats, events, events, 0, EVENT_BUDGET_REACHED)
    record(np.inf, x, t_out, next_out, out)
    return finish(stats, events, events, 0, SUCCESS)


# -- tau-leaping -----------------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def leap_size(x, a, stoich, critical):
    """Cao–Gillespie–Petzold bound on the leap from the non-critical transitions (``inf``
    if they change nothing); flags critical transitions in ``critical``."""
    n_tr, n = stoich.shape
    for j in range(n_tr):
        critical[j] = False
        if a[j] > 0.0:
            firings = np.inf
            for i in range(n):
                if stoich[j, i] < 0.0:
                    firings = min(firings, math.floor(x[i] / -stoich[j, i]))
            critical[j] = firings < N_CRITICAL
    tau = np.inf
    for i in range(n):
        mean = 0.0
        variance = 0.0
        for j in range(n_tr):
            if not critical[j]:
                mean += stoich[j, i] * a[j]
                variance += stoich[j, i] * stoich[j, i] * a[j]
        bound = max(TAU_EPSILON * x[i], 1.0)
        if mean != 0.0:
            tau = min(tau, bound / abs(mean))
        if variance > 0.0:
            tau = min(tau, bound * bound / variance)
    return tau


@njit(cache=True, error_model="numpy")
def tau_path(
    x, p, sched, stoich, t_out, max_events, rng, arm_piece, arm_level, out, summary, stats
):
    """Adaptive tau-leaping (Cao, Gillespie & Petzold 2006) up to ``t_out[-1]``; returns the
    status. Leaps end at breakpoints and output days, so outputs are exact states. Allocates
    the work arrays of :func:`tau_leaps`."""
    n_tr, n = stoich.shape
    n_drugs = sched.level_um.shape[1]
    return tau_leaps(
        x,
        p,
        sched,
        stoich,
        t_out,
        max_events,
        rng,
        arm_piece,
        arm_level,
        out,
        summary,
        stats,
        np.empty(n_drugs),
        np.empty(n_drugs),
        np.empty((sched.channel_drug.shape[0], PK_COLUMNS)),
        np.empty(n_tr),
        np.empty(n_tr),
        np.empty(n_tr),
        np.empty(n_tr),
        np.empty(n_tr, dtype=np.bool_),
        np.empty(0, dtype=np.bool_),
        np.empty(n),
        np.empty(n),
        np.empty(n_tr),
        np.empty(3),
    )


@njit(cache=True, error_model="numpy")
def tau_leaps(
    x,
    p,
    sched,
    stoich,
    t_out,
    max_events,
    rng,
    arm_piece,
    arm_level,
    out,
    summary,
    stats,
    conc,
    level,
    pk,
    a,
    acc,
    means,
    counts,
    critical,
    no_mask,
    x_new,
    x_mid,
    a_mid,
    recurrence,
):
    """The body of :func:`tau_path` on caller-provided work arrays (it allocates nothing, so
    the GPU kernel compiles this same function with per-thread arrays): ``conc``, ``level``
    (n_drugs,), ``pk`` (n_channels, PK_COLUMNS), ``a``, ``acc``, ``means``, ``counts``,
    ``a_mid`` (n_transitions,), ``critical`` (n_transitions,) bool, ``no_mask`` (0,) bool,
    ``x_new``, ``x_mid`` (n_states,), ``recurrence`` (3,)."""
    n_pieces = sched.breakpoints_days.shape[0] - 1
    n_out = t_out.shape[0]
    t_end = t_out[n_out - 1]
    n_tr, n = stoich.shape
    for m in range(3):
        recurrence[m] = 0.0
    init_summary(x, summary)
    next_out = 0
    events = 0
    steps = 0
    rejected = 0
    for k in range(n_pieces):
        t0 = sched.breakpoints_days[k]
        if t0 > t_end:
            break
        t1 = min(sched.breakpoints_days[k + 1], t_end)
        load_piece(sched, k, level, pk)
        if k == arm_piece:
            arm_recurrence(t0, x, arm_level, recurrence, summary)
        substep = pk_substep(pk)
        t = t0
        fresh = False  # `a` and a0 already hold the rates at (t, x) (from the last leap's check)
        a0 = 0.0
        while t < t1:
            while next_out < n_out and t_out[next_out] <= t:
                for i in range(n):
                    out[next_out, i] = round(x[i])
                next_out += 1
            t_stop = t1
            if next_out < n_out and t_out[next_out] < t_stop:
                t_stop = t_out[next_out]
            if not fresh:
                a0 = total_rates(t, t0, level, pk, x, p, conc, a)
            fresh = False
            if a0 < 0.0:
                return finish(stats, events, steps, rejected, BAD_PROPENSITY)
            if a0 == 0.0:
                t = t_stop
                continue
            tau_bound = leap_size(x, a, stoich, critical)
            if tau_bound < SSA_FACTOR / a0:
                for _ in range(SSA_BURST):  # exact steps where leaping would not pay
                    t_next, j = ssa_event(
                        t, t_stop, substep, t0, level, pk, x, p, stoich, conc, a, acc, no_mask, rng
                    )
                    steps += 1
                    if j == -2:
                        return finish(stats, events, steps, rejected, BAD_PROPENSITY)
                    t = t_next
                    if j == -1:
                        break
                    fire(j, x, stoich)
                    events += 1
                    update_summary(t, x, stoich, j, summary, recurrence)
                if steps >= max_events:
                    return finish(stats, events, steps, rejected, EVENT_BUDGET_REACHED)
                continue
            halvings = 0
            # draw a leap; halve it while it would make a count or a propensity negative (a
            # logistic division rate beyond the capacity, say, where no exact path can go)
            while True:
                tau = min(tau_bound, t_stop - t, substep)
                lands = tau == t_stop - t
                a0_critical = 0.0
                for j in range(n_tr):
                    if critical[j]:
                        a0_critical += a[j]
                t_critical = np.inf
                if a0_critical > 0.0:
                    if substep == np.inf:
                        t_critical = t + exponential(rng) / a0_critical
                    else:
                        t_critical = hazard_time(  # (a_mid as scratch: `a` stays the start's)
                            exponential(rng),
                            t,
                            t + tau,
                            substep,
                            t0,
                            level,
                            pk,
                            x,
                            p,
                            conc,
                            a_mid,
                            critical,
                            acc,
                        )
                fire_critical = t_critical < t + tau
                if fire_critical:
                    tau = t_critical - t
                    lands = False
                # Poisson means from the propensities at the estimated midpoint state
                # (Gillespie 2001): frozen start-of-leap propensities bias the mean of a
                # growing population by about -(a tau)^2 / 2 per leap.
                for i in range(n):
                    change = 0.0
                    for j in range(n_tr):
                        change += stoich[j, i] * a[j]
                    x_mid[i] = max(x[i] + 0.5 * tau * change, 0.0)
                if substep == np.inf:
                    total_rates(t, t0, level, pk, x_mid, p, conc, a_mid)
                    for j in range(n_tr):
                        means[j] = a_mid[j] * tau
                else:
                    integrated_rates(t, tau, t0, level, pk, x_mid, p, conc, a_mid, no_mask, means)
                for i in range(n):
                    x_new[i] = x[i]
                fired = 0.0
                for j in range(n_tr):
                    counts[j] = 0.0 if critical[j] else poisson(rng, means[j])
                    fired += counts[j]
                    for i in range(n):
                        x_new[i] += counts[j] * stoich[j, i]
                if fire_critical:
                    if substep == np.inf:
                        j = choose(a, a0_critical, uniform(rng), critical)
                    else:  # which one fires: their propensities at its time, not the start's
                        total_rates(t + tau, t0, level, pk, x, p, conc, a_mid)
                        at_firing = 0.0
                        for k in range(n_tr):
                            if critical[k]:
                                at_firing += a_mid[k]
                        if at_firing > 0.0:
                            j = choose(a_mid, at_firing, uniform(rng), critical)
                        else:  # (none could fire at that instant: round-off in its root)
                            j = choose(a, a0_critical, uniform(rng), critical)
                    fired += 1.0
                    for i in range(n):
                        x_new[i] += stoich[j, i]
                negative = False
                for i in range(n):
                    if x_new[i] < 0.0:
                        negative = True
                t_new = t_stop if lands else t + tau  # land exactly on outputs and breakpoints
                if not negative:
                    # the rates the next leap starts from (`a` is rebuilt below if refused)
                    a0 = total_rates(t_new, t0, level, pk, x_new, p, conc, a)
                    if a0 >= 0.0:
                        break
                rejected += 1
                halvings += 1
                if halvings > 60:  # no leap of any length keeps the propensities valid
                    return finish(stats, events, steps, rejected, BAD_PROPENSITY)
                tau_bound = 0.5 * tau
                if substep != np.inf or not negative:  # quadrature or the check overwrote `a`
                    total_rates(t, t0, level, pk, x, p, conc, a)
            t_start = t
            total_start = 0.0
            for i in range(n):
                total_start += x[i]
                x[i] = x_new[i]
            t = t_new
            fresh = True
            steps += 1
            events += int(fired)
            if fired > 0.0:
                leap_recurrence(t_start, total_start, t, x, summary, recurrence)
                update_summary(t, x, stoich, -1, summary, recurrence)
            if steps >= max_events:
                return finish(stats, events, steps, rejected, EVENT_BUDGET_REACHED)
    while next_out < n_out:
        for i in range(n):
            out[next_out, i] = round(x[i])
        next_out += 1
    return finish(stats, events, steps, rejected, SUCCESS)


# -- hybrid: exact jumps of small states, mean-field ODE of large ones ------------------------
@njit(cache=True, error_model="numpy")
def record_rounded(x, out_row, rng):
    """Store whole counts: continuous states are rounded up with probability equal to their
    fractional part, so the mean over paths is unbiased."""
    for i in range(x.shape[0]):
        whole = math.floor(x[i])
        out_row[i] = int(whole) + (1 if uniform(rng) < x[i] - whole else 0)


@njit(cache=True, error_model="numpy")
def hybrid_derivative(t, t0, level, pk, x, p, stoich, conc, a, discrete_tr, dx):
    """Mean-field derivative of the continuous transitions into ``dx``; returns the total
    propensity of the discrete ones (the derivative of the hazard ``G``), or -1."""
    if total_rates(t, t0, level, pk, x, p, conc, a) < 0.0:
        return -1.0
    hazard_rate = 0.0
    for i in range(dx.shape[0]):
        dx[i] = 0.0
    for j in range(a.shape[0]):
        if discrete_tr[j]:
            hazard_rate += a[j]
        else:
            for i in range(dx.shape[0]):
                dx[i] += stoich[j, i] * a[j]
    return hazard_rate


@njit(cache=True, error_model="numpy")
def hybrid_step(t, t0, level, pk, x, hazard, h, p, stoich, conc, a, discrete_tr, k, kg, xs, x_new):
    """One Dormand–Prince step of the continuous states and the hazard from ``(t, x,
    hazard)``, with ``k[0]``, ``kg[0]`` the derivatives at the start. Returns ``(hazard_new,
    error_norm)``; the error norm is ``inf`` for a negative state or propensity. ``a`` holds
    the propensities at the new point afterwards."""
    n = x.shape[0]
    for s in range(1, 7):
        for i in range(n):
            acc = 0.0
            for m in range(s):
                acc += DP_A[s, m] * k[m, i]
            xs[i] = x[i] + h * acc
            if xs[i] < 0.0:
                return hazard, np.inf
        kg[s] = hybrid_derivative(
            t + DP_C[s] * h, t0, level, pk, xs, p, stoich, conc, a, discrete_tr, k[s]
        )
        if kg[s] < 0.0:
            return hazard, np.inf
    hazard_new = hazard
    for m in range(6):
        hazard_new += h * DP_A[6, m] * kg[m]
    for i in range(n):
        x_new[i] = xs[i]
    acc = 0.0
    count = 0
    for i in range(n):
        if x[i] > 0.0 or x_new[i] > 0.0:
            err = 0.0
            for m in range(7):
                err += DP_E[m] * k[m, i]
            scale = HYBRID_RTOL * max(abs(x[i]), abs(x_new[i])) + 1e-6
            acc += (h * err / scale) ** 2
            count += 1
    err = 0.0
    for m in range(7):
        err += DP_E[m] * kg[m]
    acc += (h * err / (HYBRID_ATOL_HAZARD + HYBRID_RTOL * abs(hazard_new))) ** 2
    count += 1
    return hazard_new, math.sqrt(acc / count)


@njit(cache=True, error_model="numpy")
def partition(x, stoich, threshold, discrete_state, discrete_tr, rng):
    """Update which states are discrete (below ``threshold``, with hysteresis: continuous
    ones turn discrete below half of it, rounded stochastically so the mean is kept) and flag
    the transitions that change a discrete state. Returns True if anything changed."""
    changed = False
    for i in range(x.shape[0]):
        if discrete_state[i] and x[i] >= threshold:
            discrete_state[i] = False
            changed = True
        elif not discrete_state[i] and x[i] < 0.5 * threshold:
            whole = math.floor(x[i])
            x[i] = whole + (1.0 if uniform(rng) < x[i] - whole else 0.0)
            discrete_state[i] = True
            changed = True
    for j in range(stoich.shape[0]):
        flag = False
        for i in range(x.shape[0]):
            if stoich[j, i] != 0.0 and discrete_state[i]:
                flag = True
        discrete_tr[j] = flag
    return changed


@njit(cache=True, error_model="numpy")
def hermite_root(y0, y1, d0, d1, h, level):
    """Fraction ``s`` in (0, 1] of the step where the cubic Hermite interpolant of
    ``(y0, d0) -> (y1, d1)`` first reaches ``level`` (bisection; ``y0 < level <= y1``)."""
    c1 = h * d0
    c2 = -3.0 * y0 - 2.0 * h * d0 + 3.0 * y1 - h * d1
    c3 = 2.0 * y0 + h * d0 - 2.0 * y1 + h * d1
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if y0 + mid * (c1 + mid * (c2 + mid * c3)) >= level:
            hi = mid
        else:
            lo = mid
    return hi


@njit(cache=True, error_model="numpy")
def hybrid_path(
    x,
    p,
    sched,
    stoich,
    t_out,
    max_events,
    rng,
    arm_piece,
    arm_level,
    threshold,
    out,
    summary,
    stats,
):
    """Hybrid simulation up to ``t_out[-1]``; returns the status."""
    n_pieces = sched.breakpoints_days.shape[0] - 1
    n_out = t_out.shape[0]
    t_end = t_out[n_out - 1]
    n_tr, n = stoich.shape
    n_drugs = sched.level_um.shape[1]
    conc = np.empty(n_drugs)
    level = np.empty(n_drugs)
    pk = np.empty((sched.channel_drug.shape[0], PK_COLUMNS))
    a = np.empty(n_tr)
    acc = np.empty(n_tr)
    k = np.empty((7, n))
    kg = np.empty(7)
    xs = np.empty(n)
    x_new = np.empty(n)
    discrete_state = np.zeros(n, dtype=np.bool_)
    discrete_tr = np.zeros(n_tr, dtype=np.bool_)
    no_mask = np.empty(0, dtype=np.bool_)
    recurrence = np.zeros(3)
    for i in range(n):
        discrete_state[i] = x[i] < threshold
    partition(x, stoich, threshold, discrete_state, discrete_tr, rng)
    init_summary(x, summary)
    next_out = 0
    events = 0
    steps = 0
    rejected = 0
    status = SUCCESS
    for piece in range(n_pieces):
        t0 = sched.breakpoints_days[piece]
        if t0 > t_end:
            break
        t1 = min(sched.breakpoints_days[piece + 1], t_end)
        load_piece(sched, piece, level, pk)
        if piece == arm_piece:
            arm_recurrence(t0, x, arm_level, recurrence, summary)
        substep = pk_substep(pk)
        t = t0
        hazard = 0.0
        target = exponential(rng)
        fresh = True  # derivatives at (t, x) must be computed
        h = 0.0
        while t < t1:
            while next_out < n_out and t_out[next_out] <= t:
                record_rounded(x, out[next_out], rng)
                next_out += 1
            t_stop = t1
            if next_out < n_out and t_out[next_out] < t_stop:
                t_stop = t_out[next_out]
            any_continuous = False
            for j in range(n_tr):
                if not discrete_tr[j]:
                    any_continuous = True
            if not any_continuous:  # every transition is exact: plain SSA events
                t_next, j = ssa_event(
                    t, t_stop, substep, t0, level, pk, x, p, stoich, conc, a, acc, no_mask, rng
                )
                steps += 1
                if j == -2:
                    status = BAD_PROPENSITY
                    break
                t = t_next
                if j >= 0:
                    fire(j, x, stoich)
                    events += 1
                    update_summary(t, x, stoich, j, summary, recurrence)
                    if partition(x, stoich, threshold, discrete_state, discrete_tr, rng):
                        update_summary(t, x, stoich, -1, summary, recurrence)  # (rounded)
                        hazard = 0.0
                        target = exponential(rng)
                        fresh = True
                    if events >= max_events:
                        status = EVENT_BUDGET_REACHED
                        break
                continue
            if fresh:
                kg[0] = hybrid_derivative(
                    t, t0, level, pk, x, p, stoich, conc, a, discrete_tr, k[0]
                )
                if kg[0] < 0.0:
                    status = BAD_PROPENSITY
                    break
                if h == 0.0:  # first step of the piece: a small fraction of the fastest scale
                    h = min(t1 - t, substep)
                    for i in range(n):
                        if k[0, i] != 0.0 and x[i] > 0.0:
                            h = min(h, 0.01 * x[i] / abs(k[0, i]))
                    if kg[0] > 0.0:
                        h = min(h, 0.1 / kg[0])
                fresh = False
            h = min(h, t_stop - t)
            hazard_new, err = hybrid_step(
                t, t0, level, pk, x, hazard, h, p, stoich, conc, a, discrete_tr, k, kg, xs, x_new
            )
            if not err <= 1.0:
                rejected += 1
                h *= max(0.2, 0.9 * err**-0.2) if err < np.inf else 0.2
                if h <= 1e-14 * max(1.0, t):
                    status = STEP_SIZE_TOO_SMALL
                    break
                continue
            steps += 1
            factor = min(5.0, max(0.2, 0.9 * err**-0.2)) if err > 0.0 else 5.0
            lands = h == t_stop - t
            if hazard_new >= target:  # a discrete transition fires inside this step
                s = hermite_root(hazard, hazard_new, kg[0], kg[6], h, target)
                h_event = s * h
                hazard_new, err = hybrid_step(
                    t,
                    t0,
                    level,
                    pk,
                    x,
                    hazard,
                    h_event,
                    p,
                    stoich,
                    conc,
                    a,
                    discrete_tr,
                    k,
                    kg,
                    xs,
                    x_new,
                )
                check_recurrence(t, h_event, x, x_new, k, recurrence, summary)
                for i in range(n):
                    x[i] = x_new[i]
                t = t + h_event
                total = 0.0
                for j in range(n_tr):
                    if discrete_tr[j]:
                        total += a[j]
                j = choose(a, total, uniform(rng), discrete_tr)
                if j >= 0:
                    fire(j, x, stoich)
                    events += 1
                    update_summary(t, x, stoich, j, summary, recurrence)
                if partition(x, stoich, threshold, discrete_state, discrete_tr, rng):
                    update_summary(t, x, stoich, -1, summary, recurrence)  # (rounded)
                hazard = 0.0
                target = exponential(rng)
                fresh = True
                if events >= max_events:
                    status = EVENT_BUDGET_REACHED
                    break
                continue
            check_recurrence(t, h, x, x_new, k, recurrence, summary)
            for i in range(n):
                x[i] = x_new[i]
                k[0, i] = k[6, i]  # first same as last
            kg[0] = kg[6]
            hazard = hazard_new
            t = t_stop if lands else t + h
            h *= factor
            if partition(x, stoich, threshold, discrete_state, discrete_tr, rng):
                # a state turned discrete is rounded, to 0 cells too where threshold < 2:
                # its extinction day is then (the jumps' summary never sees it)
                update_summary(t, x, stoich, -1, summary, recurrence)
                hazard = 0.0
                target = exponential(rng)
                fresh = True
        if status != SUCCESS:
            break
    if status == SUCCESS:
        while next_out < n_out:
            record_rounded(x, out[next_out], rng)
            next_out += 1
    return finish(stats, events, steps, rejected, status)


@njit(cache=True, error_model="numpy")
def check_recurrence(t, h, x, x_new, k, recurrence, summary):
    """Recurrence inside a continuous step: the burden's cubic Hermite interpolant crossing
    the level (its derivative at the ends is the sum of the stage derivatives 1 and 7)."""
    if recurrence[0] != 1.0 or not np.isnan(summary[x.shape[0] + 1]):
        return
    n_old = 0.0
    n_new = 0.0
    d_old = 0.0
    d_new = 0.0
    for i in range(x.shape[0]):
        n_old += x[i]
        n_new += x_new[i]
        d_old += k[0, i]
        d_new += k[6, i]
    if n_old <= recurrence[2] < n_new:
        s = hermite_root(n_old, n_new, d_old, d_new, h, np.nextafter(recurrence[2], np.inf))
        summary[x.shape[0] + 1] = t + s * h - recurrence[1]


# -- batch driver ----------------------------------------------------------------------------
@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def simulate_batch(
    method,
    params,
    x0,
    schedule_arrays,
    stoich,
    t_out,
    seed,
    sample_start,
    path_start,
    max_events,
    arm_piece,
    arm_levels,
    threshold,
    out,
    summary,
    stats,
):
    """Simulate every (sample, path) pair in parallel.

    Parameters
    ----------
    method : int, this copy's :data:`METHOD` (checked: a copy runs its own method alone)
    params : (n_samples, n_packed) float64
    x0 : (n_samples, n_states) float64, whole initial counts
    schedule_arrays : tuple, the fields of a CompiledSchedule
    stoich : (n_transitions, n_states) float64
    t_out : (n_times,) float64, sorted output days; the simulation stops at ``t_out[-1]``
    seed : int >= 0; path ``q`` of sample ``s`` draws from stream
        ``(seed, sample_start + s, path_start + q)``
    max_events : int, transitions allowed per path
    arm_piece : int, index of the piece starting at withdrawal (-1: none)
    arm_levels : (n_samples,) float64, recurrence threshold (cells; NaN: burden at withdrawal)
    threshold : float, hybrid method's discrete/continuous threshold (cells)
    out : (n_samples, n_paths, n_times, n_states) int64; -1 where a failed path did not reach
    summary : (n_samples, n_paths, n_states + 2) float64: extinction day of each state, of
        the whole population, and days from withdrawal to recurrence
    stats : (n_samples, n_paths, N_STATS) int64
    """
    if method != METHOD:
        raise ValueError("simulate_batch: `method` is not the method compiled into this copy")
    n_samples = out.shape[0]
    n_paths = out.shape[1]
    bp, level, drug, ka, ke, um_per_mg, depot, central, infusion = schedule_arrays
    for flat in prange(n_samples * n_paths):
        s = flat // n_paths
        q = flat - s * n_paths
        sched = CompiledSchedule(bp, level, drug, ka, ke, um_per_mg, depot, central, infusion)
        rng = np.empty(STATE_WORDS, dtype=np.uint64)
        seed_stream(seed, sample_start + s, path_start + q, rng)
        path_out = out[s, q]
        path_out[:, :] = -1
        x = x0[s].copy()
        p = params[s].copy()
        st = stoich.copy()
        if METHOD == METHOD_SSA:
            status = ssa_path(
                x,
                p,
                sched,
                st,
                t_out,
                max_events,
                rng,
                arm_piece,
                arm_levels[s],
                path_out,
                summary[s, q],
                stats[s, q],
            )
        elif METHOD == METHOD_TAU:
            status = tau_path(
                x,
                p,
                sched,
                st,
                t_out,
                max_events,
                rng,
                arm_piece,
                arm_levels[s],
                path_out,
                summary[s, q],
                stats[s, q],
            )
        else:
            status = hybrid_path(
                x,
                p,
                sched,
                st,
                t_out,
                max_events,
                rng,
                arm_piece,
                arm_levels[s],
                threshold,
                path_out,
                summary[s, q],
                stats[s, q],
            )
        stats[s, q, STAT_STATUS] = status


@njit(cache=True, error_model="numpy")
def expected_events(params, states, grid, schedule_arrays, n_transitions):
    """Integral over ``grid`` (days) of the total propensity along given trajectories
    ``states`` (n_samples, n_grid, n_states): the expected number of exact SSA events, for
    the event-budget check (trapezoidal rule)."""
    n_samples = states.shape[0]
    totals = np.zeros(n_samples)
    bp, level, drug, ka, ke, um_per_mg, depot, central, infusion = schedule_arrays
    sched = CompiledSchedule(bp, level, drug, ka, ke, um_per_mg, depot, central, infusion)
    for s in range(n_samples):
        conc = np.empty(level.shape[1])
        lev = np.empty(level.shape[1])
        pk = np.empty((drug.shape[0], PK_COLUMNS))
        a = np.empty(n_transitions)
        p = params[s].copy()
        previous = 0.0
        for g in range(grid.shape[0]):
            piece = np.searchsorted(bp, grid[g], side="right") - 1
            piece = min(max(piece, 0), bp.shape[0] - 2)
            load_piece(sched, piece, lev, pk)
            x = states[s, g].copy()
            a0 = total_rates(grid[g], bp[piece], lev, pk, x, p, conc, a)
            a0 = max(a0, 0.0)
            if g > 0:
                totals[s] += 0.5 * (a0 + previous) * (grid[g] - grid[g - 1])
            previous = a0
    return totals
