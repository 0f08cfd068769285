"""CUDA kernel for tau-leaping paths, one thread per (sample, path) (numba-cuda).

A *template* like :mod:`tolsim.kernels.cuda_template`: :mod:`tolsim.kernels.specialise` writes
a copy per model with the ``TOLSIM-RATES`` import naming the model's rate function and the
``TOLSIM-CONSTANT`` lines holding the sizes of the per-thread arrays (CUDA needs them at
compile time).

Nothing here re-implements the algorithm's arithmetic: the helpers of the CPU kernels
(:mod:`tolsim.kernels.stochastic_template`: propensities, Gauss–Legendre quadrature of the
rates under PK, the hazard root, leap size, critical transitions, summaries; the samplers of
:mod:`tolsim.kernels.random`; the exposures of :mod:`tolsim.kernels.exposure`) are compiled
again from their Python source as CUDA device functions
(:func:`tolsim.kernels.cuda_template.device_function`), with the template's ``rates`` bound to
the model's. Two functions are transcribed, and must change with their CPU originals:

* :func:`tau_path` — the CPU ``tau_path`` line for line, with its work arrays in per-thread
  local memory instead of ``np.empty`` (device code cannot allocate);
* :func:`exponential` — the ziggurat of :func:`tolsim.kernels.random.exponential` as a loop:
  its rare slow path calls ``exponential`` again, a recursion device functions cannot make;
  the loop draws the same numbers in the same order.

Path ``q`` of sample ``s`` draws from the stream seeded by ``(seed, sample_start + s,
path_start + q)``, as on the CPU, so a path is the same on either device. The host
(:mod:`tolsim.cuda_stochastic`) compiles this kernel with NVVM's FMA contraction off: a fused
multiply-add rounds once where the CPU rounds twice.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import cuda, float64, uint64

from tolsim.kernels import random as cpu_random
from tolsim.kernels import stochastic_template as cpu
from tolsim.kernels.cuda_template import device_function
from tolsim.kernels.exposure import PK_COLUMNS, CompiledSchedule
from tolsim.kernels.placeholder import rates as model_rates  # TOLSIM-RATES

N_STATES = 2  # TOLSIM-CONSTANT
N_TRANSITIONS = 6  # TOLSIM-CONSTANT
N_PACKED = 21  # TOLSIM-CONSTANT
N_DRUGS = 2  # TOLSIM-CONSTANT
N_CHANNELS = 0  # TOLSIM-CONSTANT
# digest of the CPU sources compiled here (stochastic_template.py, cuda_template.py): the copy's
# name changes with them, so numba's on-disk cache never serves a kernel built from old code
SOURCE_DIGEST = ""  # TOLSIM-CONSTANT

NC_ALLOC = max(N_CHANNELS, 1)  # CUDA has no zero-length local arrays
ND_ALLOC = max(N_DRUGS, 1)
STATE_WORDS = cpu_random.STATE_WORDS
SIMULATED = bool(getattr(numba.config, "ENABLE_CUDASIM", False))

# the CPU kernels' constants (module globals are compile-time constants to numba)
SUCCESS = cpu.SUCCESS
EVENT_BUDGET_REACHED = cpu.EVENT_BUDGET_REACHED
BAD_PROPENSITY = cpu.BAD_PROPENSITY
STAT_STATUS = cpu.STAT_STATUS
N_STATS = cpu.N_STATS
SSA_FACTOR = cpu.SSA_FACTOR
SSA_BURST = cpu.SSA_BURST

# -- random streams -----------------------------------------------------------------------------
next_u64 = device_function(cpu_random.next_u64)
uniform = device_function(cpu_random.uniform)
uniform_open = device_function(cpu_random.uniform_open)
seed_stream = device_function(cpu_random.seed_stream)
_ZIG_R = cpu_random._ZIG_R
_ZIG_K = cpu_random._ZIG_K
_ZIG_W = cpu_random._ZIG_W
_ZIG_F = cpu_random._ZIG_F


@cuda.jit(device=True)
def exponential(state):
    """:func:`tolsim.kernels.random.exponential` with its slow path's retry as a loop."""
    while True:
        bits = next_u64(state) >> uint64(3)
        index = int(bits & uint64(0xFF))
        bits >>= uint64(8)
        x = float(bits) * _ZIG_W[index]
        if bits < _ZIG_K[index]:
            return x
        if index == 0:
            return _ZIG_R - math.log(uniform_open(state))
        if (_ZIG_F[index - 1] - _ZIG_F[index]) * uniform(state) + _ZIG_F[index] < math.exp(-x):
            return x


# Device functions converted so far, seeded so that the CPU helpers' ``rates`` (the template's
# placeholder) becomes this model's, and their ``exponential`` the loop above.
_CONVERTED = {
    cpu.rates: device_function(model_rates),
    cpu_random.exponential: exponential,
    cpu_random.next_u64: next_u64,
    cpu_random.uniform: uniform,
    cpu_random.uniform_open: uniform_open,
    cpu_random.seed_stream: seed_stream,
}


def _device(dispatcher):
    return device_function(dispatcher, _CONVERTED)


poisson = _device(cpu_random.poisson)
load_piece = _device(cpu.load_piece)
pk_substep = _device(cpu.pk_substep)
total_rates = _device(cpu.total_rates)
integrated_rates = _device(cpu.integrated_rates)
hazard_time = _device(cpu.hazard_time)
choose = _device(cpu.choose)
init_summary = _device(cpu.init_summary)
update_summary = _device(cpu.update_summary)
arm_recurrence = _device(cpu.arm_recurrence)
finish = _device(cpu.finish)
fire = _device(cpu.fire)
ssa_event = _device(cpu.ssa_event)
leap_size = _device(cpu.leap_size)


@cuda.jit(device=True)
def tau_path(
    x, p, sched, stoich, t_out, max_events, rng, arm_piece, arm_level, out, summary, stats
):
    """:func:`tolsim.kernels.stochastic_template.tau_path`, statement for statement, with
    per-thread local arrays for its work arrays."""
    n_pieces = sched.breakpoints_days.shape[0] - 1
    n_out = t_out.shape[0]
    t_end = t_out[n_out - 1]
    n_tr, n = stoich.shape
    conc = cuda.local.array(ND_ALLOC, float64)[:N_DRUGS]
    level = cuda.local.array(ND_ALLOC, float64)[:N_DRUGS]
    pk = cuda.local.array((NC_ALLOC, PK_COLUMNS), float64)[:N_CHANNELS]
    a = cuda.local.array(N_TRANSITIONS, float64)
    acc = cuda.local.array(N_TRANSITIONS, float64)
    means = cuda.local.array(N_TRANSITIONS, float64)
    counts = cuda.local.array(N_TRANSITIONS, float64)
    critical = cuda.local.array(N_TRANSITIONS, numba.boolean)
    no_mask = critical[:0]
    x_new = cuda.local.array(N_STATES, float64)
    x_mid = cuda.local.array(N_STATES, float64)
    a_mid = cuda.local.array(N_TRANSITIONS, float64)
    recurrence = cuda.local.array(3, float64)
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
        while t < t1:
            while next_out < n_out and t_out[next_out] <= t:
                for i in range(n):
                    out[next_out, i] = round(x[i])
                next_out += 1
            t_stop = t1
            if next_out < n_out and t_out[next_out] < t_stop:
                t_stop = t_out[next_out]
            a0 = total_rates(t, t0, level, pk, x, p, conc, a)
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
            while True:  # draw a leap; halve it while it would make a count negative
                tau = min(tau_bound, t_stop - t, substep)
                lands = tau == t_stop - t
                a0_critical = 0.0
                for j in range(n_tr):
                    if critical[j]:
                        a0_critical += a[j]
                t_critical = math.inf
                if a0_critical > 0.0:
                    if substep == math.inf:
                        t_critical = t + exponential(rng) / a0_critical
                    else:
                        t_critical = hazard_time(
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
                            a,
                            critical,
                            acc,
                        )
                fire_critical = t_critical < t + tau
                if fire_critical:
                    tau = t_critical - t
                    lands = False
                for i in range(n):
                    change = 0.0
                    for j in range(n_tr):
                        change += stoich[j, i] * a[j]
                    x_mid[i] = max(x[i] + 0.5 * tau * change, 0.0)
                if substep == math.inf:
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
                    if substep != math.inf:
                        total_rates(t + tau, t0, level, pk, x, p, conc, a)
                    j = choose(a, a0_critical, uniform(rng), critical)
                    fired += 1.0
                    for i in range(n):
                        x_new[i] += stoich[j, i]
                negative = False
                for i in range(n):
                    if x_new[i] < 0.0:
                        negative = True
                if not negative:
                    break
                rejected += 1
                tau_bound = 0.5 * tau
                if substep != math.inf:  # quadrature overwrote the rates at t
                    total_rates(t, t0, level, pk, x, p, conc, a)
            for i in range(n):
                x[i] = x_new[i]
            t = t_stop if lands else t + tau  # land exactly on outputs and breakpoints
            steps += 1
            events += int(fired)
            if fired > 0.0:
                update_summary(t, x, stoich, -1, summary, recurrence)
            if steps >= max_events:
                return finish(stats, events, steps, rejected, EVENT_BUDGET_REACHED)
    while next_out < n_out:
        for i in range(n):
            out[next_out, i] = round(x[i])
        next_out += 1
    return finish(stats, events, steps, rejected, SUCCESS)


def _tau_paths(
    params,
    x0,
    breakpoints_days,
    level_um,
    channel_drug,
    channel_ka_per_day,
    channel_ke_per_day,
    channel_um_per_mg,
    depot_mg,
    central_mg,
    infusion_mg_per_day,
    stoich,
    t_out,
    seed,
    sample_start,
    path_start,
    max_events,
    arm_piece,
    arm_levels,
    out,
    summary,
    stats,
):
    """Path ``q`` of sample ``s`` for thread ``s * n_paths + q``: as one iteration of the
    CPU's ``simulate_batch`` with method ``tau`` (same arguments, the schedule's fields
    given separately; its channel arrays may be padded beyond ``N_CHANNELS``)."""
    flat = cuda.grid(1)
    n_samples = out.shape[0]
    n_paths = out.shape[1]
    if flat >= n_samples * n_paths:
        return
    s = flat // n_paths
    q = flat - s * n_paths
    sched = CompiledSchedule(
        breakpoints_days,
        level_um,
        channel_drug,
        channel_ka_per_day,
        channel_ke_per_day,
        channel_um_per_mg,
        depot_mg,
        central_mg,
        infusion_mg_per_day,
    )
    rng = cuda.local.array(STATE_WORDS, uint64)
    seed_stream(seed, sample_start + s, path_start + q, rng)
    path_out = out[s, q]
    for m in range(path_out.shape[0]):
        for i in range(N_STATES):
            path_out[m, i] = -1
    x = cuda.local.array(N_STATES, float64)
    for i in range(N_STATES):
        x[i] = x0[s, i]
    p = cuda.local.array(N_PACKED, float64)
    for i in range(N_PACKED):
        p[i] = params[s, i]
    status = tau_path(
        x,
        p,
        sched,
        stoich,
        t_out,
        max_events,
        rng,
        arm_piece,
        arm_levels[s],
        path_out,
        summary[s, q],
        stats[s, q],
    )
    stats[s, q, STAT_STATUS] = status


def _draw_streams(keys, means, uniforms, exponentials, poissons):
    """Raw draws of the stream seeded by row ``keys[k]`` = (seed, sample, path), for thread
    ``k``: ``uniforms[k]``, then from a fresh stream ``exponentials[k]``, then from another
    fresh stream ``poissons[k, m]`` with mean ``means[m]`` for each ``m`` in turn (to compare
    with :func:`tolsim.kernels.random.draw_uniform` and :func:`~.random.draw_poisson`)."""
    k = cuda.grid(1)
    if k >= keys.shape[0]:
        return
    state = cuda.local.array(STATE_WORDS, uint64)
    seed_stream(keys[k, 0], keys[k, 1], keys[k, 2], state)
    for i in range(uniforms.shape[1]):
        uniforms[k, i] = uniform(state)
    seed_stream(keys[k, 0], keys[k, 1], keys[k, 2], state)
    for i in range(exponentials.shape[1]):
        exponentials[k, i] = exponential(state)
    for m in range(means.shape[0]):
        seed_stream(keys[k, 0], keys[k, 1], keys[k, 2], state)
        for i in range(poissons.shape[2]):
            poissons[k, m, i] = poisson(state, means[m])


def _kernel(body):
    """``cuda.jit`` of a kernel body. The simulator runs it as Python on numpy scalars, in
    threads of its own (numpy's error state is per thread): there uint64 products must wrap
    silently, as on the device, and float errors give inf and NaN, as error_model="numpy"
    does on the CPU."""
    if not SIMULATED:
        return cuda.jit(cache=True)(body)

    def simulated(*args):
        with np.errstate(all="ignore"):
            body(*args)

    simulated.__name__ = body.__name__
    return cuda.jit(simulated)


tau_paths = _kernel(_tau_paths)
draw_streams = _kernel(_draw_streams)
