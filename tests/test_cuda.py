"""The CUDA backend against the CPU kernels, under numba's CUDA simulator (conftest chooses it;
``TOLSIM_TEST_CUDA=device`` runs the same tests on a GPU).

The GPU kernel is the CPU's Dormand–Prince method step for step, so on the same step sequence
the results agree to rounding: the tests ask for the same step counts and 1e-9 relative
agreement. (The GPU kernel takes its stages' PK decay factors from one exponential per rate
and step, ``DECAY_POWERS``; with the CPU's two per stage, the simulator, which evaluates the
same Python arithmetic, gives bit equality.)
"""

import math

import numpy as np
import pytest
from conftest import inhibitor_after_withdrawal
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

import tolsim
from tolsim import cuda
from tolsim.design import grid, inhibitor_course
from tolsim.recurrence import metric_grid
from tolsim.schedule import OralDoses, Pellet
from tolsim.simulate import solve_batch
from tolsim.sweep import METRICS, _evaluate, sweep

MODEL = tolsim.models.TwoState()


@njit
def _inner(x):
    return np.exp(-x) + np.log1p(x) + np.power(x, 1.5)


@njit
def _outer(x):
    return _inner(x) * np.sqrt(x) + np.maximum(x, 2.0)


MOUSE = tolsim.PK.tamoxifen_mouse()
# PK channel rows of one piece, as the schedule table holds them before cuda.pk_factors
PK_ROWS = np.array(
    [  # depot, central, infusion, ka, ke, µM per mg, drug
        [5.0, 1.0, 0.0, 24.0, 3.0, 1.0, 0.0],  # oral dose
        [5.0, 1.0, 0.0, 3.0, 3.0 + 1e-10, 1.0, 0.0],  # ka = ke: the analytic limit
        [0.0, 2.0, 0.2, 24.0, 0.5, 1.0, 1.0],  # pellet
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # padding channel
    ]
)
RTOL_AGREE = 1e-9


def schedules():
    """In-vitro phases, oral doses with PK plus an inhibitor pellet, and no tamoxifen."""
    in_vitro = tolsim.Schedule.from_phases(
        [
            {"days": 8, "tamoxifen": 1.0},
            {"days": 5, "tamoxifen": 1.0, "inhibitor": 2.0},
            {"days": 12},
        ]  # fmt: skip
    )
    mouse = tolsim.Schedule(
        25.0,
        oral_doses=(
            OralDoses("tamoxifen", dose_mg=0.5, start_day=0, stop_day=7, every_days=1, pk=MOUSE),
        ),
        pellets=(Pellet("inhibitor", start_day=9, stop_day=16, release_mg_per_day=0.2, pk=MOUSE),),
    )
    untreated = tolsim.Schedule.from_phases([{"days": 25, "inhibitor": 0.5}])
    return [in_vitro, mouse, untreated]


def random_table(n, seed):
    rng = np.random.default_rng(seed)
    return {
        "lambda_S": rng.uniform(0.02, 0.06, n),
        "lambda_T": rng.uniform(0.005, 0.03, n),
        "kappa_T": rng.uniform(0.0, 0.5, n),
        "mu_E": 10 ** rng.uniform(-4, -2, n),
        "S0": rng.uniform(1e3, 1e5, n),
    }


def cpu_batch(packed, schedule, t_out, method=0):
    compiled = schedule.compile(MODEL.drugs)
    return solve_batch(MODEL, packed, compiled, t_out, 1e-6, 1e-6, 100_000, method)


def test_trajectories_and_steps_equal_the_cpu_kernel_on_random_sets_and_schedules():
    scheds = schedules()
    packed = MODEL.pack_table(random_table(9, seed=1))
    schedule_of = np.arange(9) % 3
    grids = [metric_grid(s, None) for s in scheds]
    common = np.array([0.0, 3.5, 8.0, 12.25, 25.0])  # on every grid's schedule
    grids = [np.union1d(g, common) for g in grids]
    table = cuda.schedule_table(MODEL, scheds, grids, traj_times=common)
    result = cuda.solve(
        MODEL, packed, table, schedule_of, stats=True, n_traj=common.size, method="dopri5"
    )
    assert np.all(result.status == 0)
    for g, schedule in enumerate(scheds):
        rows = np.flatnonzero(schedule_of == g)
        out_x, out_dn, stats = cpu_batch(packed[rows], schedule, common)
        np.testing.assert_array_equal(result.stats[rows], stats[:, 1:4])  # same steps
        np.testing.assert_allclose(result.out_x[rows], out_x, rtol=RTOL_AGREE, atol=1e-9)
        np.testing.assert_allclose(result.out_dn[rows], out_dn, rtol=RTOL_AGREE, atol=1e-9)


@pytest.mark.parametrize("threshold", [None, 2e4])
def test_device_metrics_equal_the_cpu_sweep_reduction(threshold):
    scheds = schedules()
    packed = MODEL.pack_table(random_table(12, seed=2))
    schedule_of = np.arange(12) % 3
    grids = [metric_grid(s, None) for s in scheds]
    table = cuda.schedule_table(MODEL, scheds, grids)
    result = cuda.solve(
        MODEL,
        packed,
        table,
        schedule_of,
        threshold=np.nan if threshold is None else threshold,
        method="auto",
    )
    spec = {
        "times": None,
        "rtol": 1e-6,
        "atol": 1e-6,
        "max_steps": 100_000,
        "method": "auto",
        "outputs": "metrics",
        "recurrence_threshold": threshold,
    }
    for g, schedule in enumerate(scheds):
        rows = np.flatnonzero(schedule_of == g)
        expected = _evaluate(MODEL, packed[rows], schedule, spec)
        for i, name in enumerate(cuda.METRIC_NAMES):
            np.testing.assert_allclose(
                result.metrics[rows, i], expected[name], rtol=RTOL_AGREE, err_msg=name
            )
    finite = np.isfinite(result.metrics[:, 0])
    assert finite.any() and not finite.all()  # some regrow within the schedule, some not
    assert np.isnan(result.metrics[schedule_of == 2, 1]).all()  # no tamoxifen: no withdrawal


def test_a_level_step_on_an_output_day_after_withdrawal_is_treated_like_the_cpu():
    """The inhibitor starts on day 40, 12 days after withdrawal, while N rises: the interval
    ending there is the quadratic of its left end on the device too (kernels/events.py)."""
    schedule = inhibitor_after_withdrawal()
    table = {"kappa_T": np.linspace(1.5, 2.5, 6), "mu_E": np.full(6, 1e-3), "T0": np.full(6, 1e4)}
    packed = MODEL.pack_table(table)
    fine = tolsim.simulate(MODEL, {k: v[0] for k, v in table.items()}, schedule, [39.0, 39.5])
    level = float(fine.N.sel(time=39.5))
    table_ = cuda.schedule_table(MODEL, [schedule], [metric_grid(schedule, None)])
    result = cuda.solve(
        MODEL, packed, table_, np.zeros(6, dtype=np.int64), threshold=level, method="dopri5"
    )
    spec = {"times": None, "rtol": 1e-6, "atol": 1e-6, "max_steps": 100_000,
            "method": "dopri5", "outputs": "metrics", "recurrence_threshold": level}  # fmt: skip
    expected = _evaluate(MODEL, packed, schedule, spec)
    for i, name in enumerate(cuda.METRIC_NAMES):
        np.testing.assert_allclose(
            result.metrics[:, i], expected[name], rtol=RTOL_AGREE, err_msg=name
        )
    ttr = result.metrics[:, 0]
    assert 39.0 < 28.0 + ttr[0] < 40.0  # crossed in the interval that ends at the step
    assert abs(28.0 + ttr[0] - 39.5) < 2e-3


def test_decay_factors_as_powers_agree_with_an_exponential_per_stage(monkeypatch):
    """The kernel's two ways to the PK decay factors of a step's stages (``DECAY_POWERS``:
    one exp per rate and step, r = exp(-k h / 90), then r^n, the step's factor carried between
    steps; or two exps per stage) take the same steps and agree to 1e-11 on oral doses
    (depot), a pellet (infusion) and in-vitro phases; the second is the CPU's to the bit
    under the simulator without PK, and to 1e-13 with it (the CPU takes the absorbed dose's
    term with expm1, the GPU as a difference of exponentials)."""
    scheds = schedules()
    packed = MODEL.pack_table(random_table(6, seed=5))
    schedule_of = np.arange(6) % 3
    common = np.array([0.0, 3.5, 8.0, 12.25, 25.0])
    grids = [np.union1d(metric_grid(s, None), common) for s in scheds]
    table = cuda.schedule_table(MODEL, scheds, grids, traj_times=common)
    original = cuda.kernel_constants
    results = {}
    for powers in (True, False):
        monkeypatch.setattr(
            cuda, "kernel_constants", lambda *a, v=powers: original(*a) | {"DECAY_POWERS": str(v)}
        )
        results[powers] = cuda.solve(
            MODEL, packed, table, schedule_of, stats=True, n_traj=common.size, method="dopri5"
        )
        assert cuda.kernel_module(MODEL, table.n_channels).DECAY_POWERS is powers
    powers, exps = results[True], results[False]
    np.testing.assert_array_equal(powers.stats, exps.stats)
    np.testing.assert_allclose(powers.out_x, exps.out_x, rtol=1e-11, atol=0)
    np.testing.assert_allclose(powers.metrics, exps.metrics, rtol=RTOL_AGREE)
    pk_rows = schedule_of == 1
    assert not np.array_equal(powers.out_x[pk_rows], exps.out_x[pk_rows])  # another way
    np.testing.assert_array_equal(powers.out_x[~pk_rows], exps.out_x[~pk_rows])  # no PK
    if cuda._simulated():
        for g, schedule in enumerate(scheds):
            rows = np.flatnonzero(schedule_of == g)
            cpu = cpu_batch(packed[rows], schedule, common)[0]
            if schedule.oral_doses:
                np.testing.assert_allclose(exps.out_x[rows], cpu, rtol=1e-13, atol=0)
            else:
                np.testing.assert_array_equal(exps.out_x[rows], cpu)


@pytest.mark.skipif(not cuda._simulated(), reason="calls a device function from the host")
@settings(max_examples=200, deadline=None)
@given(r=st.floats(0.5, 1.0), n=st.integers(0, 90))
def test_power_by_squaring_is_the_power_to_a_few_ulps_per_factor(r, n):
    module = cuda.kernel_module(MODEL, 1)
    assert module.power(r, n) == pytest.approx(r**n, rel=max(n, 1) * 2.3e-16, abs=0)
    assert module.power(r, 0) == 1.0 and module.power(r, 1) == r


def test_constant_parameters_compiled_into_the_kernel_change_no_bit():
    """``specialise=True`` compiles the parameters that are the same in every row into the
    kernel: every metric, step count and status is the generic kernel's, for packed rows and
    for columns; and the compiled constants are the design's values (two designs that differ
    only in a constant parameter give the generic kernel's results for each, and differ)."""
    scheds = schedules()
    schedule_of = np.arange(9) % 3
    table = cuda.schedule_table(MODEL, scheds, [metric_grid(s, None) for s in scheds])
    for capacity in (1e6, 5e5):
        columns = random_table(9, seed=3) | {"K": np.full(9, capacity)}
        packed = MODEL.pack_table(columns)
        base, _, slot = cuda.parameter_slots(packed)
        assert slot[MODEL.parameter_names.index("K")] == -1  # constant: compiled in
        generic = cuda.solve(MODEL, packed, table, schedule_of, stats=True)
        compiled = cuda.solve(MODEL, packed, table, schedule_of, stats=True, specialise=True)
        kept = cuda.solve(MODEL, MODEL.pack_columns(random_table(9, seed=3) | {"K": capacity}),
                          table, schedule_of, stats=True, specialise=True)  # fmt: skip
        for result in (compiled, kept):
            for name in ("status", "stats", "metrics"):
                np.testing.assert_array_equal(getattr(result, name), getattr(generic, name))
        module = cuda.kernel_module(MODEL, table.n_channels, fixed=(base, slot))
        assert module.SPEC_BASE.tolist() == base.tolist()  # the values, bit for bit
        if capacity == 1e6:
            first = generic.metrics
    assert not np.array_equal(first, generic.metrics, equal_nan=True)


def test_launches_compile_in_their_method_and_whether_they_store_trajectories(monkeypatch):
    """``solve`` asks for a kernel with its method compiled in, and, for metrics only, one
    without trajectory slots (the results of both are checked against the CPU above)."""
    built = []
    original = cuda.kernel_module
    monkeypatch.setattr(
        cuda, "kernel_module", lambda *a, **k: built.append(k) or original(*a, **k)
    )
    scheds = schedules()
    table = cuda.schedule_table(MODEL, scheds, [metric_grid(s, None) for s in scheds],
                                traj_times=np.array([5.0]))  # fmt: skip
    rows = MODEL.pack({})[None]
    cuda.solve(MODEL, rows, table, np.zeros(1, np.int32), method="dopri5")
    with_paths = cuda.solve(MODEL, rows, table, np.zeros(1, np.int32), method="auto", n_traj=1)
    assert [(k["method"], k["trajectories"]) for k in built] == [("dopri5", False), ("auto", True)]
    assert np.isfinite(with_paths.out_x).all()
    metrics_only = original(MODEL, 1, method="dopri5", trajectories=False)
    assert metrics_only.FIXED_METHOD == metrics_only.METHOD_DOPRI5 and metrics_only.NO_TRAJECTORIES
    generic = original(MODEL, 1)
    assert generic.FIXED_METHOD == -1 and not generic.NO_TRAJECTORIES
    assert original(MODEL, 1, method="auto").FIXED_METHOD == generic.METHOD_AUTO
    with pytest.raises(ValueError, match="`method` = 'rk4'"):
        original(MODEL, 1, method="rk4")


def test_specialised_constants_are_exact_and_refuse_what_has_no_source_text():
    base = np.array([0.1, 1 / 3, 2.0**-1074, 1e300])
    slot = np.array([-1, 0, -1, -1])
    text = cuda.specialised_constants(base, slot)
    assert eval(text["SPEC_BASE"], {"np": np}).tolist() == base.tolist()  # round trip
    assert eval(text["SPEC_SLOT"], {"np": np}).dtype == np.int64
    with pytest.raises(ValueError, match="`base` = .*expected finite"):
        cuda.specialised_constants(np.array([1.0, np.nan]), np.array([-1, -1]))
    scheds = schedules()
    table = cuda.schedule_table(MODEL, scheds, [metric_grid(s, None) for s in scheds])
    with pytest.raises(ValueError, match="`specialise` = 'yes': expected True or False"):
        cuda.solve(MODEL, MODEL.pack({})[None], table, np.zeros(1, np.int32), specialise="yes")


def test_solve_reports_where_the_host_time_goes():
    scheds = schedules()
    table = cuda.schedule_table(MODEL, scheds, [metric_grid(s, None) for s in scheds])
    profile = {}
    cuda.solve(MODEL, MODEL.pack_table(random_table(5, seed=1)), table, np.arange(5) % 3,
               chunk_size=2, profile=profile)  # fmt: skip
    phases = ("slots", "kernel_module", "setup", "fill", "enqueue", "wait", "collect")
    assert set(profile) == {*phases, "total", "chunks", "kernel_source"}
    expected = {"simulator"} if cuda._simulated() else {"prebuilt", "in memory", "compile"}
    assert profile["kernel_source"] in expected
    assert profile["chunks"] == len(cuda.chunk_bounds(5, 2)) == 4
    assert all(profile[name] > 0.0 for name in phases)  # every phase was timed
    accounted = sum(profile[name] for name in phases)  # the call's time, to what returning costs
    assert 0.0 <= profile["total"] - accounted < 1e-3


def test_a_table_kept_as_columns_gives_the_packed_results():
    """``cuda.solve`` on :meth:`Model.pack_columns` (the design's columns sent as they are)
    equals it on the packed matrix: same slots rebuilt by the kernel, same numbers."""
    scheds = schedules()
    columns = random_table(7, seed=4)
    schedule_of = np.array([2, 0, 1, 1, 0, 2, 1])
    table = cuda.schedule_table(MODEL, scheds, [metric_grid(s, None) for s in scheds])
    packed = cuda.solve(MODEL, MODEL.pack_table(columns), table, schedule_of, stats=True)
    kept = cuda.solve(MODEL, MODEL.pack_columns(columns), table, schedule_of, stats=True,
                      chunk_size=3)  # fmt: skip
    for name in ("metrics", "stats", "status"):
        np.testing.assert_array_equal(getattr(kept, name), getattr(packed, name))
    defaults = cuda.solve(MODEL, MODEL.pack_columns({"T0": np.full(3, 100.0)}), table,
                          np.zeros(3, np.int32))  # fmt: skip
    single = cuda.solve(MODEL, MODEL.pack({})[None], table, np.zeros(1, np.int32))
    np.testing.assert_array_equal(defaults.metrics, np.repeat(single.metrics, 3, axis=0))


def test_chunks_and_streams_do_not_change_results():
    scheds = schedules()
    packed = MODEL.pack_table(random_table(7, seed=3))
    schedule_of = np.array([1, 0, 2, 1, 1, 0, 2])
    table = cuda.schedule_table(MODEL, scheds, [metric_grid(s, None) for s in scheds])
    whole = cuda.solve(MODEL, packed, table, schedule_of, stats=True)
    pieces = cuda.solve(MODEL, packed, table, schedule_of, stats=True, chunk_size=2)
    np.testing.assert_array_equal(whole.metrics, pieces.metrics)
    np.testing.assert_array_equal(whole.stats, pieces.stats)
    np.testing.assert_array_equal(whole.status, pieces.status)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 5000), chunk_size=st.integers(1, 600))
def test_chunk_bounds_cover_the_rows_in_order_within_the_chunk_size(n, chunk_size):
    bounds = cuda.chunk_bounds(n, chunk_size)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds[:-1], bounds[1:], strict=True))  # in order
    assert all(0 < hi - lo <= chunk_size for lo, hi in bounds)
    if n > chunk_size:  # small first and last chunks; about n / chunk_size + 2 chunks
        edge = max(1, chunk_size // 4)
        assert bounds[0][1] - bounds[0][0] <= edge and bounds[-1][1] - bounds[-1][0] <= edge
        assert len(bounds) <= -(-n // chunk_size) + 2


def test_simulate_on_cuda_equals_cpu_and_records_the_device():
    schedule = schedules()[1]
    params = random_table(4, seed=4)
    times = np.linspace(0.0, 25.0, 11)
    gpu = tolsim.simulate(MODEL, params, schedule, times, method="dopri5", device="cuda")
    cpu = tolsim.simulate(MODEL, params, schedule, times, method="dopri5")
    assert gpu.attrs["device"] == "cuda" and "device" not in cpu.attrs
    for name in ("S", "T", "N", "dN_dt", "tolerant_fraction"):
        np.testing.assert_allclose(gpu[name].values, cpu[name].values, rtol=RTOL_AGREE)
    for name in ("n_steps", "n_rejected_steps", "n_rhs_evaluations", "status"):
        np.testing.assert_array_equal(gpu[name].values, cpu[name].values)


def test_failed_samples_keep_what_they_reached_and_raise_like_the_cpu():
    schedule = schedules()[0]
    times = np.linspace(0.0, 25.0, 6)
    kwargs = {"method": "dopri5", "max_steps": 8, "throw": False}
    gpu = tolsim.simulate(MODEL, random_table(3, seed=5), schedule, times, device="cuda", **kwargs)
    cpu = tolsim.simulate(MODEL, random_table(3, seed=5), schedule, times, **kwargs)
    np.testing.assert_array_equal(gpu.status.values, cpu.status.values)
    assert np.all(gpu.status.values == -2)
    np.testing.assert_array_equal(np.isnan(gpu.N.values), np.isnan(cpu.N.values))
    assert np.isnan(gpu.N.values[:, -1]).all() and not np.isnan(gpu.N.values[:, 0]).any()
    with pytest.raises(tolsim.SolverError, match="maximum number of steps") as error:
        tolsim.simulate(MODEL, random_table(3, seed=5), schedule, times, device="cuda",
                        method="dopri5", max_steps=8)  # fmt: skip
    assert error.value.dataset.attrs["device"] == "cuda"


def test_a_stiff_sample_is_handed_to_the_cpu_rosenbrock_switch():
    """Switching at 10/day both ways against growth of 0.19/day: once the transient has
    decayed DOPRI5's steps are stability-limited, its detector fires on the GPU, and that
    sample is redone with the CPU's "auto" (which switches to the Rosenbrock method)."""
    schedule = tolsim.Schedule.from_phases([{"days": 100}])
    params = {"mu_0": np.array([1e-4, 10.0]), "nu_0": np.array([1e-3, 10.0]), "K": 1e12}
    times = np.linspace(0.0, 100.0, 5)
    table = cuda.schedule_table(MODEL, [schedule], [times])
    packed = MODEL.pack_table(params)
    raw = cuda.solve(MODEL, packed, table, np.zeros(2, np.int32), method="auto")
    assert raw.status.tolist() == [0, cuda.STIFF_DETECTED]
    gpu = tolsim.simulate(MODEL, params, schedule, times, method="auto", device="cuda")
    cpu = tolsim.simulate(MODEL, params, schedule, times, method="auto")
    assert gpu.switched_to_stiff.values.tolist() == [False, True]
    for name in ("N", "n_steps", "n_rejected_steps"):
        np.testing.assert_allclose(gpu[name].values, cpu[name].values, rtol=RTOL_AGREE)


def test_sweep_on_cuda_equals_the_cpu_sweep_with_schedule_slots(tmp_path):
    from distributed import Client, LocalCluster

    template = inhibitor_course(tamoxifen_days=10.0, follow_up_days=15.0, inhibitor_days=4.0)
    design = grid(inhibitor_start_day=[0.0, 6.0, 12.0], kappa_T=[0.1, 0.5])
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0")
    with cluster, Client(cluster) as client:
        kwargs = {"client": client, "chunk_size": 4, "outputs": "both", "times": [5.0, 25.0]}
        gpu = sweep(MODEL, design, template, store=tmp_path / "g.zarr", device="cuda", **kwargs)
        cpu = sweep(MODEL, design, template, store=tmp_path / "c.zarr", **kwargs)
        for name in (*METRICS, "S", "T", "N"):
            np.testing.assert_allclose(gpu[name].values, cpu[name].values, rtol=RTOL_AGREE)
        assert gpu.attrs["device"] == "cuda" and cpu.attrs["device"] == "cpu"


def test_in_memory_sweep_on_cuda_equals_the_cpu():
    """``sweep(store=None, device="cuda")``: no Dask, no store, the GPU in this process."""
    template = inhibitor_course(tamoxifen_days=10.0, follow_up_days=15.0, inhibitor_days=4.0)
    design = grid(inhibitor_start_day=[0.0, 12.0], kappa_T=[0.1, 0.5])
    kwargs = {"store": None, "outputs": "both", "times": [5.0, 25.0]}
    gpu = sweep(MODEL, design, template, device="cuda", chunk_size=3, **kwargs)
    cpu = sweep(MODEL, design, template, **kwargs)
    for name in (*METRICS, "S", "T", "N"):
        np.testing.assert_allclose(gpu[name].values, cpu[name].values, rtol=RTOL_AGREE)
    assert gpu.attrs["device"] == "cuda" and "chunk_done" not in gpu
    whole = sweep(MODEL, design, template, device="cuda", **kwargs)  # default batch: 2**20
    assert whole.attrs["chunk_size"] == 2**20 and cpu.attrs["chunk_size"] == 10_000
    for name in (*METRICS, "S", "T", "N"):
        np.testing.assert_array_equal(whole[name].values, gpu[name].values)
    compiled = sweep(MODEL, design, template, device="cuda", chunk_size=3, gpu_specialise=True,
                     **kwargs)  # fmt: skip
    for name in (*METRICS, "S", "T", "N"):
        np.testing.assert_array_equal(compiled[name].values, gpu[name].values)


@pytest.mark.filterwarnings("ignore:.*under-utilization")  # a one-thread launch, on purpose
def test_rate_helpers_become_device_functions_with_numpy_math_as_math():
    """numba-cuda does not lower np.exp (and most numpy ufuncs): a model's njit helpers are
    recompiled for the GPU with numpy's scalar math bound to ``math``, recursively."""
    from numba import cuda as numba_cuda

    from tolsim.kernels import cuda_template

    device = cuda_template.device_function(_outer)
    namespace = device.py_func.__globals__
    assert namespace["np"] is cuda_template._NUMPY and namespace["_inner"] is not _inner
    assert namespace["_inner"].py_func.__globals__["np"] is cuda_template._NUMPY

    @numba_cuda.jit
    def kernel(x, out):
        for i in range(x.size):
            out[i] = device(x[i])

    x = np.array([0.25, 1.0, 3.5])
    out = numba_cuda.device_array(3)
    kernel[1, 1](numba_cuda.to_device(x), out)
    np.testing.assert_allclose(out.copy_to_host(), [_outer(v) for v in x], rtol=1e-14)


@pytest.mark.filterwarnings("ignore:.*under-utilization")  # a one-thread launch, on purpose
def test_the_kernels_pk_factors_reproduce_the_cpu_central_amount():
    """The kernel takes ``depot ka / (ka - ke)`` and ``infusion / ke`` from the host's table
    (computed as the CPU computes them) instead of dividing at every right-hand side."""
    from numba import cuda as numba_cuda

    from tolsim.kernels import exposure

    kernels = cuda.kernel_module(MODEL, 1)
    device = kernels.central_amount
    rows = PK_ROWS
    table = cuda.pk_factors(rows)
    assert table.shape == (4, cuda.PK_COLUMNS) and np.isnan(table[1, 7])
    taus = np.array([0.0, 0.1, 0.7, 3.0])

    @numba_cuda.jit
    def kernel(table, taus, out):
        for r in range(table.shape[0]):
            for j in range(taus.size):
                out[r, j] = device(
                    taus[j], table[r, 0], table[r, 1], table[r, 2], table[r, 3], table[r, 4],
                    table[r, 7], table[r, 8],
                )  # fmt: skip

    out = numba_cuda.device_array((rows.shape[0], taus.size))
    kernel[1, 1](numba_cuda.to_device(table), numba_cuda.to_device(taus), out)
    expected = [[exposure.central_amount(tau, *row[:5]) for tau in taus] for row in rows]
    np.testing.assert_allclose(out.copy_to_host(), expected, rtol=1e-14, atol=0.0)


@pytest.mark.filterwarnings("ignore:.*under-utilization")  # a one-thread launch, on purpose
@pytest.mark.parametrize("tau0, h", [(0.0, 0.3), (2.5, 0.01), (1.0, 4.0)])
def test_the_stages_decay_powers_reproduce_the_cpu_central_amount_at_every_node(tau0, h):
    """With ``DECAY_POWERS``, a step from ``tau0`` of size ``h`` reaches each stage's node
    ``tau0 + c h`` by multiplying the decay factors by powers of exp(-k h / 90): the central
    amounts there are the CPU's closed form to 1e-12 (oral dose, ka = ke, pellet, padding)."""
    from numba import cuda as numba_cuda

    from tolsim.kernels import exposure
    from tolsim.kernels.tableau import DP_C

    kernels = cuda.kernel_module(MODEL, 1)
    assert kernels.DECAY_POWERS and kernels.N_CHANNELS == 1
    start, advance = kernels.start_decays, kernels.advance_decays
    amount = kernels.amount_from_decays
    rows = PK_ROWS
    table = cuda.pk_factors(rows)
    steps = np.array(kernels.STAGE_POWER_STEPS, dtype=np.int64)

    @numba_cuda.jit
    def kernel(table, steps, nodes, tau0, h, ratio, decay, base, out):
        for r in range(table.shape[0]):
            pk = table[r : r + 1]
            base[0, 0] = math.exp(-pk[0, 4] * tau0)  # the factors at the step's start
            base[0, 1] = math.exp(-pk[0, 3] * tau0)
            start(h, pk, ratio, decay, base)
            for stage in range(1, 6):
                advance(ratio, decay, steps[stage])
                out[r, stage - 1] = amount(
                    tau0 + nodes[stage] * h, decay[0, 0], decay[0, 1], pk[0, 0], pk[0, 1],
                    pk[0, 2], pk[0, 3], pk[0, 4], pk[0, 7], pk[0, 8],
                )  # fmt: skip

    out = numba_cuda.device_array((rows.shape[0], 5))
    scratch = [numba_cuda.device_array((1, 2)) for _ in range(3)]  # ratio, decay, base
    # explicit copies: a host array passed to a kernel warns on a GPU (an error under pytest)
    device = [numba_cuda.to_device(a) for a in (table, steps, DP_C)]
    kernel[1, 1](*device, tau0, h, *scratch, out)
    expected = [
        [exposure.central_amount(tau0 + c * h, *row[:5]) for c in DP_C[1:6]] for row in rows
    ]
    np.testing.assert_allclose(out.copy_to_host(), expected, rtol=1e-12, atol=1e-300)
    np.testing.assert_array_equal(DP_C[1:6] * 90, np.cumsum(steps)[1:])  # the nodes are n/90


def test_varying_columns_are_found_across_the_host_blocks(monkeypatch):
    monkeypatch.setattr(cuda, "HOST_BLOCK_ROWS", 8)
    monkeypatch.setattr(cuda, "_host_threads", lambda: 4)
    rng = np.random.default_rng(6)
    packed = np.tile(rng.uniform(1.0, 2.0, 7), (100, 1))
    packed[0, 1] = 3.0  # the first row only
    packed[50:, 2] = 4.0  # constant inside each block, not across the boundary at row 50
    packed[73, 4] = np.nan
    packed[99, 5] += 1e-12  # the last row only
    packed[:, 6] = -0.0
    packed[40, 6] = 0.0  # equal to -0.0
    assert cuda.varying_columns(packed).tolist() == [1, 2, 4, 5]
    base, varying, slot = cuda.parameter_slots(packed[:, [0, 6]])
    assert varying.tolist() == [0] and slot.tolist() == [0, -1]  # nothing varies: one column
    # the kernel rebuilds each row from the first and the columns that vary
    values = packed[:, varying]
    rebuilt = np.where(slot >= 0, values[:, np.maximum(slot, 0)], base)
    np.testing.assert_array_equal(rebuilt, packed[:, [0, 6]])


def test_bad_device_arguments_are_clear_errors(tmp_path):
    schedule = schedules()[0]
    times = [0.0, 5.0]
    with pytest.raises(ValueError, match="`device` = 'gpu'"):
        tolsim.simulate(MODEL, {}, schedule, times, device="gpu")
    with pytest.raises(ValueError, match="`method` = 'rosenbrock' with `device` = 'cuda'"):
        tolsim.simulate(MODEL, {}, schedule, times, method="rosenbrock", device="cuda")
    with pytest.raises(ValueError, match="`method` = 'ssa' with `device` = 'cuda'"):
        tolsim.simulate(MODEL, {}, schedule, times, method="ssa", device="cuda", seed=1)
    with pytest.raises(ValueError, match="`method` = 'exact' with `device` = 'cuda'"):
        sweep(MODEL, grid(kappa_T=[0.1]), schedule, store=tmp_path / "x", method="exact",
              device="cuda")  # fmt: skip
    with pytest.raises(ValueError, match="`gpu_chunk_size` = 0"):
        sweep(MODEL, grid(kappa_T=[0.1]), schedule, store=tmp_path / "x", device="cuda",
              gpu_chunk_size=0)  # fmt: skip
    with pytest.raises(TypeError, match="`gpu_specialise` = 1: expected True or False"):
        sweep(MODEL, grid(kappa_T=[0.1]), schedule, store=tmp_path / "x", device="cuda",
              gpu_specialise=1)  # fmt: skip
    assert not (tmp_path / "x").exists()  # refused before anything was written


@pytest.mark.parametrize(
    ("schedule_of", "chunk_size", "match"),
    [
        ([0], None, r"`schedule_of` has shape \(1,\) and dtype int64: expected 3 integer"),
        ([0, 0], None, r"`schedule_of` has shape \(2,\)"),
        ([0.0, 0.0, 0.0], None, r"`schedule_of` has shape \(3,\) and dtype float64"),
        (
            [0, 0, 5],
            None,
            r"`schedule_of\[2\]` = np.int64\(5\): expected an index of the "
            r"table's 2 schedule\(s\), 0 to 1",
        ),  # fmt: skip
        ([0, -1, 0], None, r"`schedule_of\[1\]` = np.int64\(-1\)"),
        ([0, 1, 0], 0.5, r"`chunk_size` = 0.5: expected an integer >= 1"),
        ([0, 1, 0], 2.5, r"`chunk_size` = 2.5"),
        ([0, 1, 0], True, r"`chunk_size` = True"),
    ],
)
def test_solve_names_bad_schedule_indices_and_chunk_sizes(schedule_of, chunk_size, match):
    """``cuda.solve`` is public: a schedule index per sample, each one of the table's (a
    short array was broadcast, -1 took the last schedule, one too large read past it)."""
    scheds = schedules()[:2]
    table = cuda.schedule_table(MODEL, scheds, [metric_grid(s, None) for s in scheds])
    rows = np.repeat(MODEL.pack({})[None], 3, axis=0)
    with pytest.raises(ValueError, match=match):
        cuda.solve(MODEL, rows, table, np.array(schedule_of), chunk_size=chunk_size)


def test_without_a_gpu_the_error_says_why(monkeypatch, tmp_path, capsys):
    import numba.cuda

    monkeypatch.setattr(numba.cuda, "is_available", lambda: False)
    assert not cuda.is_available()
    with pytest.raises(cuda.CudaUnavailableError, match="no CUDA GPU is usable here"):
        tolsim.simulate(MODEL, {}, schedules()[0], [0.0, 1.0], device="cuda")
    with pytest.raises(cuda.CudaUnavailableError, match="NUMBA_ENABLE_CUDASIM"):
        sweep(MODEL, grid(kappa_T=[0.1]), schedules()[0], store=tmp_path / "x", device="cuda")
    assert not (tmp_path / "x").exists()
    # the command line: exit status 2 and the key, no traceback
    from tolsim.cli import main

    config = tmp_path / "run.toml"
    config.write_text(
        '[model]\nname = "TwoState"\n[schedule]\nphases = [{ days = 2, tamoxifen = 1.0 }]\n'
        '[run]\nmethod = "dopri5"\ndevice = "cuda"\n'
    )
    assert main(["simulate", str(config), "--out", str(tmp_path / "out.nc")]) == 2
    assert not (tmp_path / "out.nc").exists()
    err = capsys.readouterr().err
    assert f"`run.device` = 'cuda' in {config}: " in err and "Traceback" not in err


def test_missing_numba_cuda_and_the_numpy_trap_are_explained(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "numba.cuda", None)  # import fails
    with pytest.raises(cuda.CudaUnavailableError, match="pip install 'tolsim\\[cuda\\]'"):
        cuda.require()
    message = cuda._numpy_trap_message(
        AttributeError("module 'numpy' has no attribute 'row_stack'")
    )
    assert "numpy 2.5 removed" in message and "numpy<2.5" in message


def test_numba_cuda_030_under_numpy_25_is_refused_before_any_work(monkeypatch):
    # numba-cuda 0.30 imports under numpy 2.5 and fails only on its first compile, with
    # numpy's AttributeError (seen on a GPU image): the check must come first.
    pytest.importorskip("numba.cuda")
    monkeypatch.delattr(np, "row_stack", raising=False)
    monkeypatch.setattr(cuda, "_numba_cuda_version", lambda: "0.30.4")
    monkeypatch.setattr(cuda, "_simulated", lambda: False)  # as on a GPU
    with pytest.raises(
        cuda.CudaUnavailableError,
        match=r"numba-cuda 0\.30\.4 does not work "
        r"with numpy .*np\.row_stack.*'tolsim\[cuda\]' \(numpy<2\.5\)",
    ):
        cuda.require()
    assert not cuda.is_available()
    monkeypatch.setattr(cuda, "_numba_cuda_version", lambda: "0.31.0")  # assumed mended
    assert cuda._import_cuda() is not None
    monkeypatch.setattr(cuda, "_numba_cuda_version", lambda: "(unknown version)")
    with pytest.raises(cuda.CudaUnavailableError, match="row_stack"):
        cuda.require()
    monkeypatch.setattr(cuda, "_simulated", lambda: True)  # the simulator compiles nothing
    assert cuda._import_cuda() is not None


def test_each_worker_owns_one_gpu(monkeypatch):
    monkeypatch.delenv("TOLSIM_CUDA_DEVICE", raising=False)
    assert cuda.worker_device_index(4) == 0  # not on a Dask worker
    monkeypatch.setenv("TOLSIM_CUDA_DEVICE", "3")
    assert cuda.worker_device_index(4) == 3
    monkeypatch.setenv("TOLSIM_CUDA_DEVICE", "4")
    with pytest.raises(ValueError, match="TOLSIM_CUDA_DEVICE = 4"):
        cuda.worker_device_index(4)
    monkeypatch.setenv("TOLSIM_CUDA_DEVICE", "first")
    with pytest.raises(ValueError, match="expected a GPU index"):
        cuda.worker_device_index(4)


def test_worker_names_map_to_gpus(monkeypatch):
    import types

    import distributed

    monkeypatch.delenv("TOLSIM_CUDA_DEVICE", raising=False)
    for name, expected in ((0, 0), (5, 1), ("6", 2), ("tcp-worker", 0)):
        fake = types.SimpleNamespace(name=name)
        monkeypatch.setattr(distributed, "get_worker", lambda fake=fake: fake)
        assert cuda.worker_device_index(4) == expected
