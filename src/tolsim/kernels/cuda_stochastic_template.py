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
the model's. The path itself is the CPU's ``tau_leaps``, which allocates nothing: the CPU's
``tau_path`` gives it ``np.empty`` work arrays, this kernel's per-thread local arrays.

Path ``q`` of sample ``s`` draws from the stream seeded by ``(seed, sample_start + s,
path_start + q)``, as on the CPU, so a path is the same on either device. The host
(:mod:`tolsim.cuda_stochastic`) compiles this kernel with NVVM's FMA contraction off: a fused
multiply-add rounds once where the CPU rounds twice.
"""

from __future__ import annotations

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
# Device functions converted so far, seeded so that the CPU helpers' ``rates`` (the template's
# placeholder) becomes this model's.
_CONVERTED = {
    cpu.rates: device_function(model_rates),
    cpu_random.next_u64: next_u64,
    cpu_random.uniform: uniform,
    cpu_random.uniform_open: uniform_open,
    cpu_random.seed_stream: seed_stream,
}


def _device(dispatcher):
    return device_function(dispatcher, _CONVERTED)


exponential = _device(cpu_random.exponential)
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
tau_leaps = _device(cpu.tau_leaps)


@cuda.jit(device=True)
def tau_path(
    x, p, sched, stoich, t_out, max_events, rng, arm_piece, arm_level, out, summary, stats
):
    """:func:`tolsim.kernels.stochastic_template.tau_path`: the CPU's :func:`tau_leaps` on
    per-thread local arrays."""
    critical = cuda.local.array(N_TRANSITIONS, numba.boolean)
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
        cuda.local.array(ND_ALLOC, float64)[:N_DRUGS],
        cuda.local.array(ND_ALLOC, float64)[:N_DRUGS],
        cuda.local.array((NC_ALLOC, PK_COLUMNS), float64)[:N_CHANNELS],
        cuda.local.array(N_TRANSITIONS, float64),
        cuda.local.array(N_TRANSITIONS, float64),
        cuda.local.array(N_TRANSITIONS, float64),
        cuda.local.array(N_TRANSITIONS, float64),
        critical,
        critical[:0],
        cuda.local.array(N_STATES, float64),
        cuda.local.array(N_STATES, float64),
        cuda.local.array(N_TRANSITIONS, float64),
        cuda.local.array(3, float64),
    )


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
