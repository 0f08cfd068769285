"""CUDA kernel for ensembles of ODE solves, one thread per trajectory (numba-cuda).

A *template* like :mod:`tolsim.kernels.ode_template`: :mod:`tolsim.kernels.specialise` writes
a copy per model with the ``TOLSIM-RATES`` import naming the model's rate function and the
``TOLSIM-CONSTANT`` lines holding the model's sizes and stoichiometry, which CUDA needs at
compile time (per-thread arrays live in registers only with constant sizes). Nothing here is
written per model: the rate function and the numba functions it calls (``hill``, ...) are
compiled again as CUDA device functions from their Python source (:func:`device_function`).

The solver is the CPU kernel's Dormand–Prince 5(4) step for step: the same tableau, PI
controller, initial step, breakpoint handling (every piece integrated separately, the step
after an oral dose shortened below the absorption time), clipping at zero, dense output and
stiffness detector. Where the CPU method ``"auto"`` would switch to the Rosenbrock method,
the thread stops with :data:`STIFF_DETECTED` and the host redoes that sample on the CPU.
One thing is computed another way: the PK decay factors exp(-k tau) of a step's stages come
from one exponential per rate and step (:data:`DECAY_POWERS`), where the CPU takes two per
channel and stage; the two agree to about 1e-12, on the same steps.

Each thread reduces its trajectory to sweep metrics as the outputs are produced (time to
recurrence by the cubic Hermite crossing of :mod:`tolsim.kernels.events`, burden and tolerant
fraction at withdrawal, nadir), so only a few numbers per trajectory cross the bus; states are
stored only at the output slots asked for.
"""

from __future__ import annotations

import math
import types

import numba
import numpy as np
from numba import cuda, float64, int64
from numba.core.registry import CPUDispatcher

from tolsim.kernels import events
from tolsim.kernels.placeholder import rates as model_rates  # TOLSIM-RATES
from tolsim.kernels.tableau import DENSE_P, DP_A, DP_C, DP_E

N_STATES = 2  # TOLSIM-CONSTANT
N_TRANSITIONS = 6  # TOLSIM-CONSTANT
N_PACKED = 20  # TOLSIM-CONSTANT
N_DRUGS = 2  # TOLSIM-CONSTANT
N_CHANNELS = 0  # TOLSIM-CONSTANT
STOICH = np.zeros((6, 2))  # TOLSIM-CONSTANT
TOLERANT = np.zeros(2)  # TOLSIM-CONSTANT
# packed column holding each initial state
INITIAL = np.zeros(2, dtype=np.int64)  # TOLSIM-CONSTANT
# register cap per thread (0: the compiler's choice); fewer registers, more resident threads
MAX_REGISTERS = 0  # TOLSIM-CONSTANT
# Parameters fixed when the kernel is compiled (tolsim.cuda.solve(..., specialise=True)):
# packed parameter i is column SPEC_SLOT[i] of var_values where that is >= 0, else the
# constant SPEC_BASE[i], so the compiler folds the constant ones into the arithmetic; empty
# (the default): var_slot and base_params at run time
SPEC_SLOT = np.zeros(0, dtype=np.int64)  # TOLSIM-CONSTANT
SPEC_BASE = np.zeros(0)  # TOLSIM-CONSTANT
# the method compiled in (METHOD_DOPRI5 or METHOD_AUTO; -1: the `method` argument), and a
# kernel for metrics only, with no trajectory slots (tolsim.cuda.kernel_module)
FIXED_METHOD = -1  # TOLSIM-CONSTANT
NO_TRAJECTORIES = False  # TOLSIM-CONSTANT
# How a step's stages get the PK decay factors exp(-k tau) (k = ke, ka) of each channel.
# True: one exp per rate and step, r = exp(-k h / 90); the Dormand-Prince nodes are n/90
# (n = 18, 27, 72, 80, 90), so each stage's factor is the step's times r^n (a few multiplies),
# and the step's own factor is carried from the last accepted step (1 at a piece's start).
# False: two exps per channel and stage, as the CPU kernels. The two agree to about 1e-12
# relative, on the same steps (tests/test_cuda.py); True is 10% faster (H200, constants
# compiled in, 36.2 -> 32.6 ms: benchmarks/results/gpu_h200_decay_variants.json)
DECAY_POWERS = True  # TOLSIM-CONSTANT
# source line tables in the cubin, for a profiler (benchmarks/gpu_profile.py); same machine code
LINEINFO = False  # TOLSIM-CONSTANT
_KERNEL_OPTIONS = (
    {"cache": True}
    | ({"max_registers": MAX_REGISTERS} if MAX_REGISTERS else {})
    | ({"lineinfo": True} if LINEINFO else {})
)

# inlined by NVVM whatever its size (numba's CUDA simulator takes no such option)
_FORCE_INLINE = {} if numba.config.ENABLE_CUDASIM else {"forceinline": True}

NC_ALLOC = max(N_CHANNELS, 1)  # CUDA has no zero-length local arrays

SUCCESS = 0
STEP_SIZE_TOO_SMALL = -1
MAX_STEPS_REACHED = -2
NON_FINITE_STATE = -3
STIFF_DETECTED = -4  # method "auto" found the problem stiff: the host solves it on the CPU

METHOD_DOPRI5 = 0
METHOD_AUTO = 1

# metric columns
M_TIME_TO_RECURRENCE = 0
M_BURDEN_AT_WITHDRAWAL = 1
M_TOLERANT_FRACTION_AT_WITHDRAWAL = 2
M_NADIR_CELLS = 3
M_NADIR_DAY = 4
N_METRICS = 5

# stats columns
S_STEPS = 0
S_REJECTED = 1
S_RHS = 2
N_STATS = 3

SAFETY = 0.9
PI_BETA = 0.04
PI_EXPO1 = 0.2 - PI_BETA * 0.75
FAC_MIN = 0.2
FAC_MAX = 10.0
CUT_FRACTION = 1e-3  # ode_template.CUT_FRACTION
STIFF_LIMIT = 3.25
STIFF_STEPS = 15
STIFF_CHECK_EVERY = 10
EPS = 2.220446049250313e-16
LOG_1E_4 = math.log(1e-4)
ABSORPTION_STEP = 0.25


def _scalar_numpy() -> types.ModuleType:
    """A stand-in for ``numpy`` in device functions: numpy's scalar math as the ``math``
    functions CUDA compiles (numba-cuda lowers few numpy ufuncs; ``np.exp`` is not one)."""
    module = types.ModuleType("tolsim_cuda_numpy")
    aliases = dict(
        arcsin="asin", arccos="acos", arctan="atan", arctan2="atan2", power="pow",
        arcsinh="asinh", arccosh="acosh", arctanh="atanh",
    )  # fmt: skip
    names = (
        "exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "sin", "cos", "tan", "sinh",
        "cosh", "tanh", "floor", "ceil", "fabs", "copysign", "hypot", "isfinite", "isnan",
        "isinf", "pi", "e", "inf", "nan",
    )  # fmt: skip
    for name in names:
        setattr(module, name, getattr(math, name))
    for name, target in aliases.items():
        setattr(module, name, getattr(math, target))
    module.abs = abs
    module.minimum = min
    module.maximum = max
    return module


_NUMPY = _scalar_numpy()


def device_function(dispatcher, _done=None):
    """A CUDA device function compiled from a ``numba.njit`` function's Python source, with
    the njit functions it calls (by global name) converted the same way and ``numpy``'s
    scalar math mapped to ``math``."""
    done = {} if _done is None else _done
    if dispatcher in done:
        return done[dispatcher]
    func = dispatcher.py_func
    namespace = dict(func.__globals__)
    for name in func.__code__.co_names:
        value = namespace.get(name)
        if isinstance(value, CPUDispatcher):
            namespace[name] = device_function(value, done)
        elif value is np:
            namespace[name] = _NUMPY
    clone = types.FunctionType(
        func.__code__, namespace, func.__name__, func.__defaults__, func.__closure__
    )
    done[dispatcher] = cuda.jit(device=True)(clone)
    return done[dispatcher]


rates = device_function(model_rates)


@cuda.jit(device=True)
def stage_state(y, h, k, stage, y_new):
    """The state at which Dormand-Prince stage ``stage`` evaluates the rates (as the CPU
    kernel sums it: coefficients in order, zeros included)."""
    for i in range(N_STATES):
        dot = 0.0
        for m in range(stage):
            dot += DP_A[stage, m] * k[m, i]
        y_new[i] = y[i] + h * dot


@cuda.jit(device=True)
def store_stage(dx, k, stage):
    for i in range(N_STATES):
        k[stage, i] = dx[i]


# Columns of the per-piece PK rows: tolsim.kernels.exposure.load_piece's seven, then two
# factors of tolsim.kernels.exposure.central_amount that are constant over a piece, computed
# on the host as the CPU computes them (so the GPU divides less, with the same values)
PK_DEPOT, PK_CENTRAL, PK_INFUSION, PK_KA, PK_KE, PK_UM_PER_MG, PK_DRUG = range(7)
PK_ABSORBED = 7  # depot * ka / (ka - ke), NaN where ka and ke are within 1e-9 of each other
PK_INFUSED = 8  # infusion / ke
PK_COLUMNS = 9


@cuda.jit(device=True)
def central_amount(tau, depot0, central0, infusion, ka, ke, absorbed, infused):
    """:func:`tolsim.kernels.exposure.central_amount` with its per-piece factors given."""
    decay_e = math.exp(-ke * tau)
    amount = central0 * decay_e
    if depot0 != 0.0:
        if absorbed != absorbed:  # ka == ke (to 1e-9): the series, to its second term
            amount += depot0 * ka * tau * decay_e * (1.0 - 0.5 * (ka - ke) * tau)
        else:
            amount += absorbed * (decay_e - math.exp(-ka * tau))
    if infusion != 0.0:
        amount += infused * (1.0 - decay_e)
    return amount


# the Dormand-Prince nodes (tolsim.kernels.tableau.DP_C) as n/90, and what each stage
# multiplies the last stage's decay factors by: r^18, r^9, r^45, r^8, r^10
NODE_DENOMINATOR = 90.0
STAGE_POWER_STEPS = (0, 18, 9, 45, 8, 10)


@cuda.jit(device=True)
def power(r, n):
    """``r**n`` for a small whole ``n`` by repeated squaring (a constant ``n``, inlined, unrolls
    to a few multiplies)."""
    result = 1.0
    while n > 0:
        if n & 1:
            result *= r
        r *= r
        n >>= 1
    return result


@cuda.jit(device=True)
def start_decays(h, pk, ratio, decay, base):
    """Before a step's stages (:data:`DECAY_POWERS`): per channel ``ch`` and rate ``m`` (0: ke,
    1: ka, where the piece has a depot), ``ratio`` = exp(-k h / 90), and ``decay`` = ``base``,
    the factors at the step's start."""
    for ch in range(N_CHANNELS):
        for m in range(2):
            if m == 0 or pk[ch, PK_DEPOT] != 0.0:
                k = pk[ch, PK_KE] if m == 0 else pk[ch, PK_KA]
                ratio[ch, m] = math.exp(-k * (h / NODE_DENOMINATOR))
                decay[ch, m] = base[ch, m]


@cuda.jit(device=True)
def advance_decays(ratio, decay, n):
    """Multiply the decay factors by ``ratio**n``: from one stage's node to the next."""
    for ch in range(N_CHANNELS):
        for m in range(2):
            decay[ch, m] *= power(ratio[ch, m], n)


@cuda.jit(device=True)
def amount_from_decays(
    tau, decay_e, decay_a, depot0, central0, infusion, ka, ke, absorbed, infused
):
    """:func:`central_amount` with its factors exp(-ke tau) and exp(-ka tau) given."""
    amount = central0 * decay_e
    if depot0 != 0.0:
        if absorbed != absorbed:  # ka == ke (to 1e-9): the series, to its second term
            amount += depot0 * ka * tau * decay_e * (1.0 - 0.5 * (ka - ke) * tau)
        else:
            amount += absorbed * (decay_e - decay_a)
    if infusion != 0.0:
        amount += infused * (1.0 - decay_e)
    return amount


@cuda.jit(device=True)
def stage_concentrations(tau, level, pk, decay, conc):
    """:func:`concentrations` ``tau`` days into the piece from the stage's decay factors."""
    for d in range(N_DRUGS):
        conc[d] = level[d]
    for ch in range(N_CHANNELS):
        amount = amount_from_decays(
            tau, decay[ch, 0], decay[ch, 1], pk[ch, PK_DEPOT], pk[ch, PK_CENTRAL],
            pk[ch, PK_INFUSION], pk[ch, PK_KA], pk[ch, PK_KE], pk[ch, PK_ABSORBED],
            pk[ch, PK_INFUSED],
        )  # fmt: skip
        for d in range(N_DRUGS):
            if pk[ch, PK_DRUG] == d:
                conc[d] += pk[ch, PK_UM_PER_MG] * amount


@cuda.jit(device=True)
def concentrations(t, t0, level, pk, conc):
    """``conc`` = the drug concentrations (µM) on day ``t`` of the loaded piece (started on
    day ``t0``): its constant levels plus each PK channel's central amount."""
    tau = t - t0
    for d in range(N_DRUGS):
        conc[d] = level[d]
    for ch in range(N_CHANNELS):
        amount = central_amount(
            tau, pk[ch, PK_DEPOT], pk[ch, PK_CENTRAL], pk[ch, PK_INFUSION], pk[ch, PK_KA],
            pk[ch, PK_KE], pk[ch, PK_ABSORBED], pk[ch, PK_INFUSED],
        )  # fmt: skip
        for d in range(N_DRUGS):  # constant indices: conc stays in registers
            if pk[ch, PK_DRUG] == d:
                conc[d] += pk[ch, PK_UM_PER_MG] * amount


@cuda.jit(device=True)
def field(t, x, p, conc, rate_buf, dx):
    """``dx = STOICH.T @ rates(t, x, p, conc)``. Returns dN/dt, the sum of ``dx`` (where a
    caller ignores it, the compiler drops the sum)."""
    rates(t, x, p, conc, rate_buf)
    for i in range(N_STATES):
        acc = 0.0
        for j in range(N_TRANSITIONS):
            acc += STOICH[j, i] * rate_buf[j]
        dx[i] = acc
    total = 0.0
    for i in range(N_STATES):
        total += dx[i]
    return total


@cuda.jit(device=True)
def rhs(t, t0, level, pk, x, p, conc, rate_buf, dx):
    """:func:`field` at the concentrations of day ``t`` (:func:`concentrations`)."""
    concentrations(t, t0, level, pk, conc)
    return field(t, x, p, conc, rate_buf, dx)


@cuda.jit(device=True, **_FORCE_INLINE)
def dp_stage(stage, y, h, k, y_new, y_stiff, t, t0, level, pk, decay_ratio, decay, p, conc,
             rate_buf, work):  # fmt: skip
    """Dormand-Prince stage ``stage`` (1-6) of the step from ``(t, y)`` with size ``h``: its
    state, decay factors, concentrations (stage 6 reuses stage 5's: both are at t + h) and
    rates into ``k[stage]``. Inlined with a constant ``stage``, so ``k`` stays in registers."""
    stage_state(y, h, k, stage, y_new)
    if stage == 5:
        for i in range(N_STATES):
            y_stiff[i] = y_new[i]
    c_stage = DP_C[stage]
    if stage != 6:
        if DECAY_POWERS:
            advance_decays(decay_ratio, decay, STAGE_POWER_STEPS[stage])
            stage_concentrations(t + c_stage * h - t0, level, pk, decay, conc)
        else:
            concentrations(t + c_stage * h, t0, level, pk, conc)
    field(t + c_stage * h, y_new, p, conc, rate_buf, work)
    store_stage(work, k, stage)


@cuda.jit(device=True)
def load_piece(level_tab, pk_tab, s, piece, level, pk):
    """Copy schedule ``s``'s piece into the thread's ``level`` and ``pk`` arrays."""
    for d in range(N_DRUGS):
        level[d] = level_tab[s, piece, d]
    for ch in range(N_CHANNELS):
        for col in range(PK_COLUMNS):
            pk[ch, col] = pk_tab[s, piece, ch, col]


# the cubic Hermite interpolant of tolsim.kernels.events, as device functions
hermite_cubic = device_function(events._cubic)
cubic_value = device_function(events._eval)
end_slope = device_function(events._end_slope)


@cuda.jit(device=True)
def upcrossing(y0, y1, d0, d1, h, level):
    """First ``s`` in [0, 1] where the cubic Hermite interpolant of the interval rises
    through ``level`` (as :func:`tolsim.kernels.events.first_upcrossing`); -1 if none."""
    c0, c1, c2, c3 = hermite_cubic(y0, y1, d0, d1, h)
    r1 = 2.0  # critical points inside (0, 1), sorted; 2 = none
    r2 = 2.0
    a = 3.0 * c3
    b = 2.0 * c2
    c = c1
    if a != 0.0:
        disc = b * b - 4.0 * a * c
        if disc > 0.0:
            r = math.sqrt(disc)
            q1 = (-b - r) / (2.0 * a)
            q2 = (-b + r) / (2.0 * a)
            if q1 > q2:
                q1, q2 = q2, q1
            if 0.0 < q1 < 1.0:
                r1 = q1
                if 0.0 < q2 < 1.0:
                    r2 = q2
            elif 0.0 < q2 < 1.0:
                r1 = q2
    elif b != 0.0:
        q1 = -c / b
        if 0.0 < q1 < 1.0:
            r1 = q1
    lo = 0.0
    for piece in range(3):
        if piece == 0:
            hi = r1 if r1 < 2.0 else 1.0
        elif piece == 1:
            if r1 >= 2.0:
                break
            hi = r2 if r2 < 2.0 else 1.0
        else:
            if r2 >= 2.0:
                break
            hi = 1.0
        f_lo = cubic_value(c0, c1, c2, c3, lo) - level
        f_hi = cubic_value(c0, c1, c2, c3, hi) - level
        if f_lo <= 0.0 < f_hi:
            if f_lo == 0.0:
                return lo
            for _ in range(100):
                mid = 0.5 * (lo + hi)
                if cubic_value(c0, c1, c2, c3, mid) - level > 0.0:
                    hi = mid
                else:
                    lo = mid
                if hi - lo <= 1e-15:
                    break
            return 0.5 * (lo + hi)
        lo = hi
    return -1.0


@cuda.jit(device=True)
def trajectory_slot(traj_slot, s, j):
    """The trajectory slot of output ``j`` of schedule ``s`` (-1: none; always -1 in a
    metrics-only kernel, which then has no trajectory code)."""
    return -1 if NO_TRAJECTORIES else traj_slot[s, j]


@cuda.jit(device=True)
def needs_rate(slot, j, w_index, acc, want_metrics):
    """Whether output ``j`` needs dN/dt: a stored trajectory slot, or (for the metrics) the
    withdrawal output and those after it until the recurrence is found (the crossing is
    sought on the cubic Hermite interpolant of the outputs' values and derivatives)."""
    return slot >= 0 or (want_metrics and 0 <= w_index <= j and acc[0] != acc[0])


@cuda.jit(device=True)
def emit(sample, j, t_j, x, dn, jump, slot, w_index, w_day, threshold, acc, want_metrics,
         out_x, out_dn):  # fmt: skip
    """Output ``j`` (day ``t_j``, states ``x``, dN/dt ``dn``, NaN where not needed; ``jump``:
    a drug's level steps at ``t_j``, so ``dn`` is the right-hand derivative, as in
    :mod:`tolsim.kernels.events`): store it if it is a trajectory slot, and fold it into the
    metrics held in ``acc``."""
    if slot >= 0:
        for i in range(N_STATES):
            out_x[sample, slot, i] = x[i]
        out_dn[sample, slot] = dn
    if not want_metrics:
        return
    total = 0.0
    for i in range(N_STATES):
        total += x[i]
    if total < acc[3]:
        acc[3] = total
        acc[4] = t_j
    if w_index >= 0:
        if j == w_index:
            tolerant = 0.0
            for i in range(N_STATES):
                tolerant += TOLERANT[i] * x[i]
            acc[1] = total
            acc[2] = tolerant / total if total > 0.0 else math.nan
            level = threshold if threshold == threshold else total
            acc[7] = level
            if total > level:
                acc[0] = 0.0
        elif j > w_index and acc[0] != acc[0]:  # recurrence not yet found (NaN)
            h = t_j - acc[5]
            d1 = end_slope(acc[6], total, acc[8], dn, h, jump)
            crossing = upcrossing(acc[6], total, acc[8], d1, h, acc[7])
            if crossing >= 0.0:
                acc[0] = acc[5] + crossing * h - w_day
    acc[5] = t_j
    acc[6] = total
    acc[8] = dn


@cuda.jit(**_KERNEL_OPTIONS)
def solve_kernel(
    base_params,
    var_slot,
    var_values,
    schedule_of,
    breakpoints,
    n_pieces,
    level_tab,
    pk_tab,
    grid,
    n_grid,
    w_index,
    w_day,
    traj_slot,
    threshold,
    rtol,
    atol,
    max_steps,
    method,
    want_metrics,
    want_stats,
    metrics,
    status,
    stats,
    out_x,
    out_dn,
):
    """Solve sample ``cuda.grid(1)``: parameter ``i`` is column ``var_slot[i]`` of its row of
    ``var_values``, or ``base_params[i]`` where the slot is -1 (initial cells are parameters),
    schedule ``schedule_of`` (index into the padded per-schedule tables), outputs on that
    schedule's ``grid``; ``threshold`` is the recurrence level in cells (NaN: the burden at
    withdrawal). Writes ``status``, ``metrics`` (:data:`N_METRICS` columns) if
    ``want_metrics``, ``stats`` if ``want_stats``, and the trajectory slots (``traj_slot >=
    0``) of ``out_x``/``out_dn``."""
    sample = cuda.grid(1)
    if sample >= schedule_of.shape[0]:
        return
    p = cuda.local.array(N_PACKED, float64)
    for i in range(N_PACKED):  # constant indices: p stays in registers
        if SPEC_SLOT.shape[0] == 0:
            c = var_slot[i]
            p[i] = var_values[sample, c] if c >= 0 else base_params[i]
        else:
            c = SPEC_SLOT[i]
            p[i] = var_values[sample, c] if c >= 0 else SPEC_BASE[i]
    s = schedule_of[sample]
    level = cuda.local.array(N_DRUGS, float64)
    conc = cuda.local.array(N_DRUGS, float64)
    pk = cuda.local.array((NC_ALLOC, PK_COLUMNS), float64)
    rate_buf = cuda.local.array(N_TRANSITIONS, float64)
    y = cuda.local.array(N_STATES, float64)
    y_new = cuda.local.array(N_STATES, float64)
    y_stiff = cuda.local.array(N_STATES, float64)
    work = cuda.local.array(N_STATES, float64)
    k = cuda.local.array((7, N_STATES), float64)
    q = cuda.local.array((4, N_STATES), float64)
    acc = cuda.local.array(9, float64)
    # PK decay factors exp(-k tau) per channel and rate (ke, ka) with DECAY_POWERS: at the
    # step's start, its ratio exp(-k h / 90), and at the current stage
    decay_base = cuda.local.array((NC_ALLOC, 2), float64)
    decay_ratio = cuda.local.array((NC_ALLOC, 2), float64)
    decay = cuda.local.array((NC_ALLOC, 2), float64)
    # acc: 0 time to recurrence (NaN: not found), 1 burden and 2 tolerant fraction at
    # withdrawal, 3 nadir cells, 4 nadir day, 5-6-8 previous output (day, cells, dN/dt),
    # 7 recurrence level
    for m in range(9):
        acc[m] = math.nan
    acc[3] = math.inf
    for i in range(N_STATES):
        y[i] = p[INITIAL[i]]
    wi = w_index[s]
    wd = w_day[s]
    ng = n_grid[s]
    n_steps = 0
    n_rejected = 0
    n_rhs = 0

    # Integer constants passed to device functions are written int64(...): numba types a bare
    # literal as Literal[int], and compiles the callee once more for each literal value (and
    # for j, once for Literal[int](0) while it types the loop); the PTX is the same either
    # way, but the extra copies cost about a second of compile time
    load_piece(level_tab, pk_tab, s, int64(0), level, pk)
    t_first = breakpoints[s, 0]
    j = int64(0)
    while j < ng and grid[s, j] <= t_first:
        for i in range(N_STATES):
            work[i] = max(y[i], 0.0)
        slot = trajectory_slot(traj_slot, s, j)
        dn = math.nan
        if needs_rate(slot, j, wi, acc, want_metrics):
            dn = rhs(grid[s, j], t_first, level, pk, work, p, conc, rate_buf, y_stiff)
        emit(sample, j, grid[s, j], work, dn, False, slot, wi, wd, threshold, acc, want_metrics,
             out_x, out_dn)  # fmt: skip
        j += 1

    code = SUCCESS
    auto = method == METHOD_AUTO if FIXED_METHOD < 0 else FIXED_METHOD == METHOD_AUTO
    h = 0.0
    h_uncut = 0.0
    h_cut = 0.0
    overflowing = False
    log_err_old = LOG_1E_4
    n_stiff = 0
    n_nonstiff = 0
    np_s = n_pieces[s]
    for piece in range(np_s):
        t = breakpoints[s, piece]
        t_end = breakpoints[s, piece + 1]
        t0 = t
        load_piece(level_tab, pk_tab, s, piece, level, pk)
        for ch in range(N_CHANNELS):
            for m in range(2):
                decay_base[ch, m] = 1.0  # tau = 0
                decay_ratio[ch, m] = 1.0
                decay[ch, m] = 1.0
        rhs(t, t0, level, pk, y, p, conc, rate_buf, k[0])
        n_rhs += 1
        for ch in range(N_CHANNELS):
            if pk[ch, PK_DEPOT] > 0.0 and h > 0.0:
                h = min(h, ABSORPTION_STEP / pk[ch, PK_KA])
        if h == 0.0:
            # initial step (Hairer, Norsett & Wanner), as ode_template.initial_step
            d0 = 0.0
            d1 = 0.0
            for i in range(N_STATES):
                scale = atol + rtol * abs(y[i])
                d0 += (y[i] / scale) ** 2
                d1 += (k[0, i] / scale) ** 2
            d0 = math.sqrt(d0 / N_STATES)
            d1 = math.sqrt(d1 / N_STATES)
            h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
            for i in range(N_STATES):
                y_new[i] = y[i] + h0 * k[0, i]
            rhs(t + h0, t0, level, pk, y_new, p, conc, rate_buf, k[1])
            d2 = 0.0
            for i in range(N_STATES):
                scale = atol + rtol * abs(y[i])
                d2 += ((k[1, i] - k[0, i]) / scale) ** 2
            d2 = math.sqrt(d2 / N_STATES) / h0
            if max(d1, d2) <= 1e-15:
                h1 = max(1e-6, h0 * 1e-3)
            else:
                h1 = (0.01 / max(d1, d2)) ** (1.0 / 5.0)
            h = min(100.0 * h0, h1)
            n_rhs += 1
            h = max(h, 16.0 * EPS * max(abs(t), 1.0))  # as ode_template: not below the smallest
        while t < t_end:
            if n_steps + n_rejected >= max_steps:
                code = MAX_STEPS_REACHED
                break
            h_min = 16.0 * EPS * max(abs(t), 1.0)
            if not h >= h_min:  # (also a NaN step, from NaN rates at the piece's start)
                code = NON_FINITE_STATE if overflowing or h != h else STEP_SIZE_TOO_SMALL
                break
            last = False
            if t + h >= t_end - h_min:
                h_uncut = h
                h = t_end - t
                last = True
            # The six stages written out, each an inlined dp_stage with a constant stage, so
            # that k stays in registers (indexed at run time, it would live in local memory).
            # Written as a loop over the stages (one right-hand side in the code), the kernel
            # spent ~16 register moves per stage merging k at the loop's head; with the decay
            # factors below the stages are small enough to write out: H200, constants compiled
            # in, 32.5 -> 28.7 ms (benchmarks/results/gpu_h200_unrolled_variants.json); when
            # each stage still held two exps, writing them out overflowed the instruction
            # cache. int64(1) ... rather than literals compiles dp_stage once, not six times
            if DECAY_POWERS:
                start_decays(h, pk, decay_ratio, decay, decay_base)
            dp_stage(int64(1), y, h, k, y_new, y_stiff, t, t0, level, pk, decay_ratio, decay, p,
                     conc, rate_buf, work)  # fmt: skip
            dp_stage(int64(2), y, h, k, y_new, y_stiff, t, t0, level, pk, decay_ratio, decay, p,
                     conc, rate_buf, work)  # fmt: skip
            dp_stage(int64(3), y, h, k, y_new, y_stiff, t, t0, level, pk, decay_ratio, decay, p,
                     conc, rate_buf, work)  # fmt: skip
            dp_stage(int64(4), y, h, k, y_new, y_stiff, t, t0, level, pk, decay_ratio, decay, p,
                     conc, rate_buf, work)  # fmt: skip
            dp_stage(int64(5), y, h, k, y_new, y_stiff, t, t0, level, pk, decay_ratio, decay, p,
                     conc, rate_buf, work)  # fmt: skip
            dp_stage(int64(6), y, h, k, y_new, y_stiff, t, t0, level, pk, decay_ratio, decay, p,
                     conc, rate_buf, work)  # fmt: skip
            n_rhs += 6
            err_sq = 0.0
            negative = False
            for i in range(N_STATES):
                dot = 0.0
                for m in range(7):
                    dot += DP_E[m] * k[m, i]
                scale = atol + rtol * max(abs(y[i]), abs(y_new[i]))
                err_sq += (h * dot / scale) ** 2
                if y_new[i] < -atol:
                    negative = True
            err_norm = math.sqrt(err_sq / N_STATES)
            overflowing = not math.isfinite(err_norm)
            if overflowing:
                for i in range(N_STATES):
                    if not math.isfinite(y[i]):
                        code = NON_FINITE_STATE
                if code != SUCCESS:
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
            if auto and (n_stiff > 0 or n_steps % STIFF_CHECK_EVERY == 0):
                num = 0.0
                den = 0.0
                for i in range(N_STATES):
                    num += (k[6, i] - k[5, i]) ** 2
                    den += (y_new[i] - y_stiff[i]) ** 2
                if den > 0.0 and h * math.sqrt(num / den) > STIFF_LIMIT:
                    n_nonstiff = 0
                    n_stiff += 1
                    if n_stiff == STIFF_STEPS:
                        code = STIFF_DETECTED
                        break
                else:
                    n_nonstiff += 1
                    if n_nonstiff == 6:
                        n_stiff = 0
            t_new = t_end if last else t + h
            if j < ng and grid[s, j] <= t_new:
                for m in range(4):
                    for i in range(N_STATES):
                        dot = 0.0
                        for stage in range(7):
                            dot += k[stage, i] * DENSE_P[stage, m]
                        q[m, i] = h * dot
                while j < ng and grid[s, j] <= t_new:
                    t_j = grid[s, j]
                    sj = (t_j - t) / h
                    for i in range(N_STATES):
                        poly = q[0, i] + sj * (q[1, i] + sj * (q[2, i] + sj * q[3, i]))
                        value = y[i] + sj * poly
                        work[i] = max(value, 0.0)
                    slot = trajectory_slot(traj_slot, s, j)
                    dn = math.nan
                    jump = False
                    if needs_rate(slot, j, wi, acc, want_metrics):
                        if t_j >= t_end and piece + 1 < np_s:
                            # right-hand derivative at a breakpoint: rates of the next piece
                            for d in range(N_DRUGS):
                                if level_tab[s, piece + 1, d] != level[d]:
                                    jump = True
                            load_piece(level_tab, pk_tab, s, piece + 1, level, pk)
                            dn = rhs(t_j, t_end, level, pk, work, p, conc, rate_buf, y_stiff)
                            load_piece(level_tab, pk_tab, s, piece, level, pk)
                        else:
                            dn = 0.0
                            for i in range(N_STATES):
                                dn += q[0, i] + sj * (
                                    2.0 * q[1, i] + sj * (3.0 * q[2, i] + sj * 4.0 * q[3, i])
                                )
                            dn = dn / h
                    emit(sample, j, t_j, work, dn, jump, slot, wi, wd, threshold, acc,
                         want_metrics, out_x, out_dn)  # fmt: skip
                    j += 1
            clipped = False
            for i in range(N_STATES):
                if y_new[i] < 0.0:
                    y_new[i] = 0.0
                    clipped = True
                y[i] = y_new[i]
            t = t_new
            if DECAY_POWERS:  # carried: the factors at the new t are stage 5's (n = 90)
                for ch in range(N_CHANNELS):
                    for m in range(2):
                        decay_base[ch, m] = decay[ch, m]
            h_cut = h
            log_err = math.log(max(err_norm, 1e-10))
            fac = math.exp(PI_EXPO1 * log_err - PI_BETA * log_err_old)
            h /= max(1.0 / FAC_MAX, min(1.0 / FAC_MIN, fac / SAFETY))
            log_err_old = max(log_err, LOG_1E_4)
            if last:
                if h_cut < CUT_FRACTION * h_uncut:  # as ode_template
                    h = max(h, h_uncut)
                break
            if clipped:
                rhs(t, t0, level, pk, y, p, conc, rate_buf, k[0])
                n_rhs += 1
            else:
                for i in range(N_STATES):
                    k[0, i] = k[6, i]
        if code != SUCCESS:
            break
        for i in range(N_STATES):
            if not math.isfinite(y[i]):
                code = NON_FINITE_STATE
        if code != SUCCESS:
            break

    if code != SUCCESS:  # outputs a failed solve did not reach are NaN, as on the CPU
        while j < ng:
            slot = trajectory_slot(traj_slot, s, j)
            if slot >= 0:
                for i in range(N_STATES):
                    out_x[sample, slot, i] = math.nan
                out_dn[sample, slot] = math.nan
            j += 1
    status[sample] = code
    if want_stats:
        stats[sample, S_STEPS] = n_steps
        stats[sample, S_REJECTED] = n_rejected
        stats[sample, S_RHS] = n_rhs
    if want_metrics:
        if code != SUCCESS:
            for m in range(N_METRICS):
                metrics[sample, m] = math.nan
        else:
            if wi >= 0 and acc[0] != acc[0]:
                acc[0] = math.inf  # never regrows through the level within the schedule
            for m in range(N_METRICS):
                metrics[sample, m] = acc[m]
