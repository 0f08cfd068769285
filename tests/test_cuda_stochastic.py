"""Tau-leaping on the GPU against the CPU kernel, under numba's CUDA simulator (conftest
chooses it; ``TOLSIM_TEST_CUDA=device`` runs the same tests on a GPU).

Every path draws from the stream of its (seed, sample, path) on either device, and the GPU
kernel is compiled from the CPU's functions, so the paths are the same: the tests ask for
equal counts at every output day and equal per-path summaries, bit for bit. On a GPU the
rates' ``exp`` under pharmacokinetics comes from libdevice, not the C library; there the
days derived from event times (extinction, recurrence) are compared to 1e-12 relative (see
:mod:`tolsim.cuda_stochastic`), everything else still exactly.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit

import tolsim
from tolsim import cuda, cuda_stochastic
from tolsim.kernels import random
from tolsim.kernels.random import draw_poisson, draw_uniform
from tolsim.schedule import OralDoses

pytestmark = pytest.mark.skipif(
    not cuda.is_available(), reason="numba-cuda is not importable here (see tolsim.cuda)"
)

MODEL = tolsim.models.TwoState()
ON_DEVICE = os.environ.get("TOLSIM_TEST_CUDA") == "device"
COUNTS = ("S", "T", "N", "status", "n_events", "n_steps", "n_rejected_steps")
DAYS = ("extinction_day_S", "extinction_day_T", "extinction_day", "time_to_recurrence")


def in_vitro():
    """Tamoxifen, then withdrawal: leaps while tamoxifen shrinks the culture, critical
    transitions and exact bursts for the few tolerant cells, recurrence after day 6."""
    return tolsim.Schedule.from_phases(
        [{"days": 6, "tamoxifen": 1.0, "inhibitor": 2.0}, {"days": 6}]
    )


def oral():
    """Daily oral tamoxifen with PK: propensities vary within pieces (quadrature, hazard
    roots for the critical transitions)."""
    dose = OralDoses(
        "tamoxifen", dose_mg=0.5, start_day=0, stop_day=4, every_days=1,
        pk=tolsim.PK.tamoxifen_mouse(),
    )  # fmt: skip
    return tolsim.Schedule(8.0, oral_doses=(dose,))


def random_table(n, seed):
    """Tamoxifen kills sensitive cells, the inhibitor the few tolerant ones (critical
    transitions while the sensitive population leaps); off drug the culture regrows. The
    last row never makes tolerant cells, so they die out for good."""
    rng = np.random.default_rng(seed)
    table = {
        "kappa_S": rng.uniform(0.2, 0.6, n),
        "kappa_T": rng.uniform(0.0, 0.6, n),
        "mu_0": np.full(n, 1e-4),
        "mu_E": 10 ** rng.uniform(-3, -1, n),
        "S0": np.round(rng.uniform(300, 5000, n)),
        "T0": np.round(rng.uniform(0, 6, n)),
    }
    last = {"kappa_S": 0.3, "kappa_T": 1.5, "mu_0": 0.0, "mu_E": 0.0, "S0": 2000.0, "T0": 4.0}
    return {name: np.append(values, last[name]) for name, values in table.items()}


def assert_same_paths(gpu, cpu, pk=False):
    for name in COUNTS:
        np.testing.assert_array_equal(gpu[name].values, cpu[name].values, err_msg=name)
    for name in DAYS:
        if pk and ON_DEVICE:
            np.testing.assert_allclose(gpu[name].values, cpu[name].values, rtol=1e-12)
        else:
            np.testing.assert_array_equal(gpu[name].values, cpu[name].values, err_msg=name)


@pytest.mark.parametrize(
    ("schedule", "seed", "pk"), [(in_vitro(), 1, False), (oral(), 2, True)], ids=["vitro", "oral"]
)
def test_tau_paths_on_cuda_are_the_cpu_paths(schedule, seed, pk):
    params = random_table(2, seed)
    times = np.linspace(0.0, schedule.duration_days, 5)
    kwargs = {"method": "tau", "paths": 3, "seed": 2026 + seed}
    gpu = tolsim.simulate(MODEL, params, schedule, times, device="cuda", **kwargs)
    cpu = tolsim.simulate(MODEL, params, schedule, times, **kwargs)
    assert gpu.attrs["device"] == "cuda" and "device" not in cpu.attrs
    assert_same_paths(gpu, cpu, pk)
    # the paths did what the test is for: leaps, exact steps, and recurrences in and out
    assert (cpu.n_steps < cpu.n_events).any() and (cpu.n_events > 0).all()
    if not pk:
        assert (
            np.isfinite(cpu.time_to_recurrence).any() and np.isfinite(cpu.extinction_day_T).any()
        )


def test_path_start_and_launch_splits_give_the_same_paths(monkeypatch):
    schedule = in_vitro()
    params = random_table(2, 3)
    times = [0.0, 6.0, 12.0]
    kwargs = {"method": "tau", "seed": 11, "device": "cuda"}
    whole = tolsim.simulate(MODEL, params, schedule, times, paths=3, **kwargs)
    tail = tolsim.simulate(MODEL, params, schedule, times, paths=1, path_start=2, **kwargs)
    assert tail.path.values.tolist() == [2]
    assert_same_paths(tail, whole.isel(path=[2]))
    original = cuda_stochastic.simulate_batch

    def one_sample_per_launch(*args, **options):
        return original(*args, **options, samples_per_launch=1)

    monkeypatch.setattr(cuda_stochastic, "simulate_batch", one_sample_per_launch)
    split = tolsim.simulate(MODEL, params, schedule, times, paths=3, **kwargs)
    assert_same_paths(split, whole)


@njit
def draw_exponential(seed, sample, path, n):
    state = np.empty(random.STATE_WORDS, dtype=np.uint64)
    random.seed_stream(seed, sample, path, state)
    out = np.empty(n)
    for i in range(n):
        out[i] = random.exponential(state)
    return out


@njit
def exponential_branches(seed, sample, path, n):
    """For each of ``n`` exponential draws: the ziggurat layer of its last try, how many tries
    it took, and how it ended (0 fast path, 1 tail, 2 wedge accepted) — the CPU's choices, to
    say where a device that disagrees left them."""
    state = np.empty(random.STATE_WORDS, dtype=np.uint64)
    random.seed_stream(seed, sample, path, state)
    out = np.zeros((n, 3), dtype=np.int64)
    for i in range(n):
        while True:
            out[i, 1] += 1
            bits = random.next_u64(state) >> np.uint64(3)
            index = int(bits & np.uint64(0xFF))
            bits >>= np.uint64(8)
            x = float(bits) * random._ZIG_W[index]
            out[i, 0] = index
            if bits < random._ZIG_K[index]:
                break
            if index == 0:
                random.uniform_open(state)
                out[i, 2] = 1
                break
            f = random._ZIG_F
            if (f[index - 1] - f[index]) * random.uniform(state) + f[index] < random.ieee_exp(-x):
                out[i, 2] = 2
                break
    return out


def test_raw_streams_are_the_cpu_streams():
    """Uniforms, ziggurat exponentials (600 draws reach the slow path: tail and wedges) and
    Poisson variates by both samplers (multiplication below a mean of 10, PTRS above). Every
    stream is compared before failing; a differing exponential stream names its first
    differing draw and the CPU's ziggurat branches around it."""
    keys = [(0, 0, 0), (2026, 3, 17), (2**62, 5, 9)]
    means = [0.7, 9.99, 35.0, 2.5e4]
    uniforms, exponentials, poissons = cuda_stochastic.draw_streams(keys, 600, means)
    differences = []
    for k, key in enumerate(keys):
        if not np.array_equal(uniforms[k], draw_uniform(*key, 600)):
            differences.append(f"uniforms of key {key}")
        expected = draw_exponential(*key, 600)
        if not np.array_equal(exponentials[k], expected):
            first = int(np.flatnonzero(exponentials[k] != expected)[0])
            branches = exponential_branches(*key, 600)
            around = range(max(first - 2, 0), min(first + 3, 600))
            differences.append(
                f"exponentials of key {key} from draw {first} on "
                f"(GPU {exponentials[k][first]!r}, CPU {expected[first]!r}); CPU draws "
                + ", ".join(
                    f"{i}: layer {branches[i, 0]}, {branches[i, 1]} tries, "
                    f"{('fast', 'tail', 'wedge')[branches[i, 2]]}"
                    for i in around
                )
            )
        for m, mean in enumerate(means):
            if not np.array_equal(poissons[k, m], draw_poisson(*key, mean, 600)):
                differences.append(f"Poisson({mean}) of key {key}")
    assert not differences, "; ".join(differences)
    expected = draw_exponential(0, 0, 0, 600)
    branches = exponential_branches(0, 0, 0, 600)
    assert (branches[:, 2] == 2).any() and (branches[:, 1] > 1).any()  # wedges hit and missed
    np.testing.assert_array_equal(branches[:, 1] >= 1, True)
    assert np.isfinite(expected).all()
    bits = np.floor(draw_uniform(0, 0, 0, 600) * 2**53).astype(np.uint64) >> np.uint64(3)
    assert (bits & np.uint64(0xFF) == 0).any()  # the base layer (tail test) was drawn


def test_failed_paths_fail_as_on_the_cpu():
    schedule = in_vitro()
    times = [0.0, 6.0, 12.0]
    kwargs = {"method": "tau", "paths": 2, "seed": 5, "max_events": 3}
    gpu = tolsim.simulate(MODEL, random_table(2, 4), schedule, times, device="cuda",
                          throw=False, **kwargs)  # fmt: skip
    cpu = tolsim.simulate(MODEL, random_table(2, 4), schedule, times, throw=False, **kwargs)
    assert (cpu.status == -2).all()
    assert_same_paths(gpu, cpu)
    np.testing.assert_array_equal(gpu.message.values, cpu.message.values)
    with pytest.raises(tolsim.SolverError, match="event budget reached") as error:
        tolsim.simulate(MODEL, random_table(2, 4), schedule, times, device="cuda", **kwargs)
    assert error.value.dataset.attrs["device"] == "cuda"


def test_only_tau_runs_on_the_gpu_and_a_missing_gpu_is_explained(monkeypatch):
    import numba.cuda

    schedule = in_vitro()
    for method in ("ssa", "hybrid"):
        with pytest.raises(ValueError, match=f"`method` = '{method}' with `device` = 'cuda': "
                           "among the stochastic methods only 'tau' runs on the GPU"):  # fmt: skip
            tolsim.simulate(MODEL, {}, schedule, [0.0, 1.0], method=method, device="cuda",
                            seed=1)  # fmt: skip
    monkeypatch.setattr(numba.cuda, "is_available", lambda: False)
    with pytest.raises(cuda.CudaUnavailableError, match="no CUDA GPU is usable here"):
        tolsim.simulate(MODEL, {}, schedule, [0.0, 1.0], method="tau", device="cuda", seed=1)


_PTX_CHECK = textwrap.dedent(
    """
    import types
    import numba.cuda.dispatcher
    from numba import boolean, cuda, float64, int64, uint64
    from numba.cuda.cudadrv.error import NvvmSupportError
    # device functions ask the current GPU for its compute capability while compiling
    numba.cuda.dispatcher.get_current_device = lambda: types.SimpleNamespace(
        compute_capability=(9, 0))
    import tolsim
    from tolsim import cuda_stochastic
    from tolsim.kernels.specialise import specialised

    model = tolsim.models.TwoState()
    constants = dict(N_STATES="2", N_TRANSITIONS="6", N_PACKED=str(model.pack({}).size),
                     N_DRUGS="2", N_CHANNELS="1",
                     SOURCE_DIGEST=repr(cuda_stochastic._source_digest()))
    kernels = specialised("cuda_stochastic_template", model.rates, constants)
    a1, a2, i1 = float64[::1], float64[:, ::1], int64[::1]
    signature = (a2, a2, a1, a2, i1, a1, a1, a1, a2, a2, a2, a2, a1, int64, int64, int64, int64,
                 int64, a1, int64[:, :, :, ::1], float64[:, :, ::1], int64[:, :, ::1])
    leap = (a1, a1, a2, boolean[::1])
    try:
        with cuda_stochastic.exact_arithmetic():
            kernel, _ = cuda.compile_ptx(kernels._tau_paths, signature, cc=(9, 0))
            leap_exact, _ = cuda.compile_ptx(kernels.leap_size.py_func, leap, device=True,
                                             cc=(9, 0))
            samplers = [
                cuda.compile_ptx(kernels.exponential.py_func, (uint64[::1],), device=True,
                                 cc=(9, 0))[0],
                cuda.compile_ptx(kernels.poisson.py_func, (uint64[::1], float64), device=True,
                                 cc=(9, 0))[0],
            ]
    except (NvvmSupportError, RuntimeError) as error:  # no CUDA toolkit (NVVM, NVRTC) here
        if not isinstance(error, NvvmSupportError) and "libnv" not in str(error):
            raise
        print("NO-NVVM", type(error).__name__, str(error).splitlines()[0])
        raise SystemExit(0)
    leap_default, _ = cuda.compile_ptx(kernels.leap_size.py_func, leap, device=True, cc=(9, 0))
    print("kernel", len(kernel), "samplers fma", *(ptx.count("fma.rn") for ptx in samplers),
          "samplers float ops", *(ptx.count(".f64") for ptx in samplers),
          "leap fma", leap_exact.count("fma.rn"), leap_default.count("fma.rn"))
    """
)


def test_kernel_compiles_for_the_gpu_without_fma_contraction():
    """The simulator runs Python, so it checks no CUDA typing: compile the real kernel (PK
    variant) to PTX, and check that :func:`exact_arithmetic` keeps NVVM from fusing the
    CPU's separately rounded multiply and add (in the leap size, fused by default). The
    exponential and Poisson samplers compile to PTX with no fused multiply-add at all: they
    take no libdevice ``log``, ``exp`` or ``lgamma`` (whose polynomials are written with
    fused multiply-adds, and which round differently from the CPU's C library), only the
    correctly rounded operations of :mod:`tolsim.kernels.elementary`."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run(
        [sys.executable, "-c", _PTX_CHECK], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    if done.stdout.startswith("NO-NVVM"):
        pytest.skip(f"no libNVVM here: {done.stdout}")
    words = done.stdout.split()
    assert words[0] == "kernel" and int(words[1]) > 0
    assert words[2:6] == ["samplers", "fma", "0", "0"], done.stdout
    assert words[6:9] == ["samplers", "float", "ops"] and min(map(int, words[9:11])) > 50
    assert words[-2] == "0" and int(words[-1]) > 0  # fused by default, not here
