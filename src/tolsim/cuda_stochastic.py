"""Tau-leaping paths on the GPU (numba-cuda), one thread per (sample, path).

``tolsim.simulate(..., method="tau", device="cuda")`` runs here. The kernel
(:mod:`tolsim.kernels.cuda_stochastic_template`) is compiled from the same Python functions
as the CPU's tau-leaping kernel, and every path draws from the same xoshiro256** stream,
seeded by ``(seed, sample, path)``, so a path is the same on either device: the same counts
at every output day, the same events, steps, extinction days and recurrence time.

Same, that is, up to two things a GPU does differently, one of which this module removes:

* **Fused multiply-add.** NVVM contracts ``a * b + c`` into one FMA instruction (rounded
  once) unless told not to, and numba-cuda gives no switch for it (its ``fastmath=False``
  leaves NVVM's default ``-fma=1``). :func:`exact_arithmetic` compiles the kernel with
  ``-fma=0``; additions, multiplications, divisions and square roots are then IEEE-rounded
  as on the CPU.
* **Transcendental functions.** ``exp``, ``log``, ``pow`` and ``lgamma`` come from CUDA's
  libdevice on the GPU and from the C library on the CPU; both are accurate to an ulp or
  a few, not always to the same last bit. The samplers use them only in comparisons (the
  ziggurat's rare wedges and tail, the Poisson acceptance tests), where a last-bit
  difference changes a draw with probability about 1e-15. The model's rates use them
  under pharmacokinetics (``exp`` of the Bateman function), with Hill coefficients other
  than 1 (``pow``) and with Gompertz crowding (``log``): there, event times and the days
  derived from them (extinction, recurrence) may differ in the last bits; counts at output
  days differ only if a comparison lands within those bits.

Under numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``; how the test suite runs it) the
kernel is the same Python evaluated with the C library's math, so the paths are
bit-identical to the CPU's, and the tests check that they are.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import warnings
from pathlib import Path

import numpy as np

from tolsim.cuda import THREADS_PER_BLOCK, _simulated, require
from tolsim.kernels.exposure import CompiledSchedule
from tolsim.kernels.specialise import specialised
from tolsim.models.base import Model

__all__ = ["draw_streams", "exact_arithmetic", "kernel_module", "simulate_batch"]

_KERNEL_DIR = Path(__file__).resolve().parent / "kernels"
# CPU sources the kernel compiles as device functions (the template's own file, random.py and
# exposure.py are hashed by tolsim.kernels.specialise)
_SOURCES = ("stochastic_template.py", "cuda_template.py")
# Device memory a launch may take, as a fraction of the free memory (the rest: other work)
_MEMORY_SHARE = 0.25


def _source_digest() -> str:
    digest = hashlib.sha256()
    for name in _SOURCES:
        digest.update((_KERNEL_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


def kernel_module(model: Model, n_channels: int):
    """The model's tau-leaping kernel module (a specialised copy of
    ``cuda_stochastic_template``) for schedules with ``n_channels`` PK channels."""
    require()
    constants = {
        "N_STATES": str(len(model.states)),
        "N_TRANSITIONS": str(len(model.transitions)),
        "N_PACKED": str(model.pack({}).size),
        "N_DRUGS": str(len(model.drugs)),
        "N_CHANNELS": str(int(n_channels)),
        "SOURCE_DIGEST": repr(_source_digest()),
    }
    return specialised("cuda_stochastic_template", model.rates, constants)


@contextlib.contextmanager
def exact_arithmetic():
    """Compile CUDA kernels inside this block with NVVM's FMA contraction off (``-fma=0``).

    numba-cuda passes NVVM no ``fma`` option unless ``fastmath=True`` (which turns it *on*),
    so NVVM's default, contraction, applies; there is no public switch. This wraps
    ``numba.cuda.cudadrv.nvvm.compile_ir`` for the duration, holding numba-cuda's compiler
    lock so that no other thread compiles meanwhile. Launching a kernel already compiled (or
    loaded from numba's cache, which holds what was compiled here) compiles nothing. Under
    the simulator nothing is compiled and this does nothing.
    """
    if _simulated():
        yield
        return
    from numba.cuda.core.compiler_lock import global_compiler_lock
    from numba.cuda.cudadrv import nvvm

    with global_compiler_lock:
        original = nvvm.compile_ir

        def compile_ir(llvmir, **options):
            options["fma"] = False
            return original(llvmir, **options)

        nvvm.compile_ir = compile_ir
        try:
            yield
        finally:
            nvvm.compile_ir = original


def simulate_batch(
    model: Model,
    params: np.ndarray,
    x0: np.ndarray,
    compiled: CompiledSchedule,
    stoich: np.ndarray,
    t_out: np.ndarray,
    seed: int,
    path_start: int,
    max_events: int,
    arm_piece: int,
    arm_levels: np.ndarray,
    out: np.ndarray,
    summary: np.ndarray,
    stats: np.ndarray,
    *,
    samples_per_launch: int | None = None,
    threads_per_block: int = THREADS_PER_BLOCK,
) -> None:
    """Tau-leaping paths on the GPU, filling ``out``, ``summary`` and ``stats`` as the CPU's
    ``simulate_batch(METHOD_TAU, ...)`` of :mod:`tolsim.kernels.stochastic_template` does
    (same arguments and shapes; ``compiled`` as a :class:`CompiledSchedule`).

    Samples go to the GPU in launches of ``samples_per_launch`` (default: as many as fit in
    a quarter of the free device memory), each thread running one path; a path's stream
    depends on its sample and path indices only, so the split changes nothing.
    """
    cuda = require()
    n_samples, n_paths, n_times, n_states = out.shape
    n_channels = int(compiled.channel_drug.size)
    kernels = kernel_module(model, n_channels)
    per_sample = (
        8 * (params.shape[1] + n_states + 1 + n_paths * (n_times * n_states + summary.shape[2]))
        + 8 * n_paths * stats.shape[2]
    )
    if samples_per_launch is None:
        try:
            free, _ = cuda.current_context().get_memory_info()
        except Exception:  # no memory info
            free = 2**30
        if not math.isfinite(free):  # the simulator's
            free = 2**30
        samples_per_launch = max(1, int(free * _MEMORY_SHARE) // per_sample)
    samples_per_launch = int(min(samples_per_launch, n_samples))
    if samples_per_launch < 1:
        raise ValueError(f"`samples_per_launch` = {samples_per_launch!r}: expected >= 1")

    def padded(array: np.ndarray) -> np.ndarray:
        """Channel arrays with at least one column (device arrays of size 0 are avoided)."""
        if array.shape[-1] > 0:
            return np.ascontiguousarray(array)
        return np.zeros((*array.shape[:-1], 1), dtype=array.dtype)

    schedule = [
        np.ascontiguousarray(compiled.breakpoints_days, dtype=np.float64),
        np.ascontiguousarray(compiled.level_um, dtype=np.float64),
        *(padded(np.asarray(a)) for a in tuple(compiled)[2:]),
    ]
    shared = [cuda.to_device(a) for a in (*schedule, np.ascontiguousarray(stoich), t_out)]
    simulated = _simulated()
    for lo in range(0, n_samples, samples_per_launch):
        hi = min(lo + samples_per_launch, n_samples)
        n_threads = (hi - lo) * n_paths
        d_out = cuda.device_array((hi - lo, n_paths, n_times, n_states), dtype=np.int64)
        d_summary = cuda.device_array((hi - lo, n_paths, summary.shape[2]))
        d_stats = cuda.to_device(np.zeros((hi - lo, n_paths, stats.shape[2]), dtype=np.int64))
        # numba's simulator runs a block's threads concurrently in Python, where they fight
        # over the GIL: there, blocks of one thread are much faster
        block = 1 if simulated else min(threads_per_block, n_threads)
        with exact_arithmetic(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*under-utilization")
            kernels.tau_paths[math.ceil(n_threads / block), block](
                cuda.to_device(np.ascontiguousarray(params[lo:hi], dtype=np.float64)),
                cuda.to_device(np.ascontiguousarray(x0[lo:hi], dtype=np.float64)),
                *shared[:-2],
                shared[-2],
                shared[-1],
                int(seed),
                int(lo),
                int(path_start),
                int(max_events),
                int(arm_piece),
                cuda.to_device(np.ascontiguousarray(arm_levels[lo:hi], dtype=np.float64)),
                d_out,
                d_summary,
                d_stats,
            )
        out[lo:hi] = d_out.copy_to_host()
        summary[lo:hi] = d_summary.copy_to_host()
        stats[lo:hi] = d_stats.copy_to_host()


def draw_streams(
    keys, n: int, poisson_means=(), model: Model | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw draws of the GPU's random streams, one thread per key (seed, sample, path): ``n``
    uniforms, ``n`` exponentials and ``n`` Poisson variates of each mean in
    ``poisson_means``, each sequence from the start of the key's stream. Shapes ``(keys,
    n)``, ``(keys, n)``, ``(keys, means, n)``; for comparing with the CPU's streams
    (:func:`tolsim.kernels.random.draw_uniform`, ...). ``model`` only picks the kernel copy
    (default: the two-state model)."""
    import tolsim

    cuda = require()
    kernels = kernel_module(model or tolsim.models.TwoState(), 0)
    keys = np.ascontiguousarray(keys, dtype=np.int64).reshape(-1, 3)
    means = np.ascontiguousarray(poisson_means, dtype=np.float64).reshape(-1)
    d_means = cuda.to_device(means if means.size else np.zeros(1))  # no zero-size arrays
    m = max(means.size, 1)
    uniforms = cuda.device_array((keys.shape[0], n))
    exponentials = cuda.device_array((keys.shape[0], n))
    poissons = cuda.device_array((keys.shape[0], m, n))
    block = 1 if _simulated() else min(THREADS_PER_BLOCK, keys.shape[0])
    with exact_arithmetic(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*under-utilization")
        kernels.draw_streams[math.ceil(keys.shape[0] / block), block](
            cuda.to_device(keys), d_means, uniforms, exponentials, poissons
        )
    return (
        uniforms.copy_to_host(),
        exponentials.copy_to_host(),
        poissons.copy_to_host()[:, : means.size],
    )
