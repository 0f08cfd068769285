"""GPU benchmark (issue 7): trajectories per second of the CUDA kernel, alone and end to end.

Scenario: two-state logistic model, tamoxifen by mouth every 10 days, 19 doses from day 0
(human PK, 200 mg), withdrawn at day 190: 19 schedule pieces, 360 days, adaptive
Dormand–Prince at rtol = atol = 1e-6, outputs daily (361 times) reduced to the sweep
metrics (time to recurrence, burden and tolerant fraction at withdrawal, nadir). Parameter
sets: five parameters jittered by a uniform(0.8, 1.2) factor. Reported, medians of
``--repeats`` runs in one process:

- ``compile_s``: first call minus a warm call of the same size (numba-cuda compile + load,
  or the prebuilt kernel's load: ``first_call_kernel_source``);
  ``first_call_small_s_fresh_process``: the first call of fresh processes with empty caches,
  with the prebuilt kernels (:mod:`tolsim.cuda_prebuilt`) and without them (a cold
  compile), and of one that finds the kernel in numba's on-disk cache;
  ``compile_phases_s`` splits the first call's compile into numba typing and lowering (to
  LLVM IR), NVVM (LLVM IR to PTX) and the link (PTX to cubin: ptxas, through nvJitLink or
  the driver);
- kernel alone: one launch over ``--samples`` device-resident parameter sets, metrics only;
- end to end: host packed parameters -> host metrics through :func:`tolsim.cuda.solve`
  (chunks over two streams, transfers included), and the same with ``pack_table`` from the
  design columns; ``end_to_end_s_by_input``: from packed rows or from the design's columns as
  given (``Model.pack_columns``, what ``sweep`` sends), each with the generic kernel and with
  the design's constant parameters compiled in (``specialise=True``; its compile is timed
  apart), with the host's phases (``profile``) of one call each; with ``--sweep``,
  ``tolsim.sweep(device="cuda")`` into a Zarr store;
  ``host_column_scan_s``: the part of the end to end spent finding the varying columns;
- CPU ensemble: ``solve_batch`` on all cores plus the same metric reduction (``--cpu-samples``);
- diffrax ``jit(vmap(diffeqsolve))`` (Dopri5, PID controller at the same tolerances, dose days
  as jump times, daily SaveAt) on the same GPU when diffrax is importable.

Also checks that the GPU metrics agree with the CPU's on the CPU samples (max relative error).

Run: ``python benchmarks/gpu.py`` (1e6 samples) on a machine with an NVIDIA GPU and
``pip install "tolsim[cuda]"``. Writes ``benchmarks/results/gpu.json``. Without a GPU,
``python benchmarks/gpu.py --compile-only`` compiles the kernel for ``--cc`` (default 9.0,
an H100/H200) in this process and prints the same phases, and a digest of the PTX (with
``--ptx-out``, the PTX itself): run it in fresh processes, as compile time is per process.
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave the GPU to numba

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

import tolsim  # noqa: E402
from tolsim import cuda  # noqa: E402
from tolsim.recurrence import metric_grid
from tolsim.sweep import _evaluate  # noqa: E402

MODEL = tolsim.models.TwoState()
PK = tolsim.PK.tamoxifen_human()
SCHEDULE = tolsim.Schedule.oral(
    "tamoxifen", dose_mg=200.0, every_days=10.0, stop_day=190.0, pk=PK, duration_days=360.0
)
JITTERED = ("lambda_S", "lambda_T", "kappa_T", "mu_E", "T0")
RTOL = ATOL = 1e-6
# the kernel cuda.solve launches for this scenario: DOPRI5 compiled in, metrics only
METRICS_KERNEL = {"method": "dopri5", "trajectories": False}


def table(n: int, seed: int = 2026) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    defaults = MODEL.default_params()
    return {name: defaults[name] * rng.uniform(0.8, 1.2, n) for name in JITTERED}


def median_time(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


@contextlib.contextmanager
def compile_phases():
    """Seconds spent, while the block runs, in numba-cuda's compile phases: ``typing_lowering``
    (numba's front end for the kernel and its device functions, to LLVM IR), ``nvvm`` (LLVM IR
    to PTX) and ``link`` (PTX to cubin). Yields the dict, filled when the block ends (empty
    under numba's simulator, which compiles nothing)."""
    if numba.config.ENABLE_CUDASIM:
        yield {}
        return
    import numba.cuda.compiler as compiler
    import numba.cuda.dispatcher as dispatcher
    from numba.cuda.cudadrv import driver, nvvm

    phases = {"typing_lowering": 0.0, "nvvm": 0.0, "link": 0.0}
    depth = [0]
    originals = [
        (dispatcher, "compile_cuda", dispatcher.compile_cuda),
        (compiler, "compile_cuda", compiler.compile_cuda),
        (nvvm, "compile_ir", nvvm.compile_ir),
        (driver._Linker, "complete", driver._Linker.complete),
    ]

    def timed(name, function, outermost_only=False):
        def wrapper(*args, **kwargs):
            depth[0] += 1
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                depth[0] -= 1
                if not outermost_only or depth[0] == 0:
                    phases[name] += time.perf_counter() - start

        return wrapper

    # device functions are compiled while the kernel is typed: count the outermost call only
    front_end = timed("typing_lowering", compiler.compile_cuda, outermost_only=True)
    dispatcher.compile_cuda = compiler.compile_cuda = front_end
    nvvm.compile_ir = timed("nvvm", originals[2][2])
    driver._Linker.complete = timed("link", originals[3][2])
    try:
        yield phases
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def kernel_argument_types(tab, n: int = 16) -> tuple:
    """numba types of ``solve_kernel``'s arguments as :func:`tolsim.cuda.solve` passes them
    (metrics, no stats, no trajectories)."""
    packed = MODEL.pack_table(table(n))
    base, varying, slot = cuda.parameter_slots(packed)
    values = np.ascontiguousarray(packed[:, varying])
    host = (np.empty((n, 5)), np.empty(n, np.int32), np.empty((1, 3), np.int64))
    unused = (np.empty((1, 1, len(MODEL.states))), np.empty((1, 1)))
    args = [base, slot, values, np.zeros(n, np.int32), *tab.arrays()]
    args += [np.nan, RTOL, ATOL, 100_000, 0, True, False, *host, *unused]
    return tuple(numba.typeof(a) for a in args)


def compile_only(args, grid) -> dict:
    """Compile the kernel to PTX and a cubin for compute capability ``args.cc`` without a GPU
    (numba-cuda's steps for a kernel, with the device functions told that compute capability),
    timing the phases of :func:`compile_phases`."""
    import numba.cuda.compiler as compiler
    import numba.cuda.dispatcher as dispatcher
    from numba.cuda import types as cuda_types

    from tolsim.kernels.specialise import specialised

    cc = tuple(int(v) for v in args.cc.split("."))
    arch = (*cc, "a" if cc >= (9, 0) else "")  # what numba-cuda builds for the current device

    class Device:  # device functions ask for the current device's compute capability
        compute_capability = cc

    tab = cuda.schedule_table(MODEL, [SCHEDULE], [grid])
    cap = args.max_registers[0]
    start = time.perf_counter()
    kernels = specialised(
        "cuda_template", MODEL.rates, cuda.kernel_constants(MODEL, tab.n_channels, cap)
    )
    specialise_s = time.perf_counter() - start
    current_device, dispatcher.get_current_device = dispatcher.get_current_device, Device
    try:
        with compile_phases() as phases:
            start = time.perf_counter()
            result = compiler.compile_cuda(  # (looked up here: compile_phases wraps it)
                kernels.solve_kernel.py_func, cuda_types.void, kernel_argument_types(tab),
                nvvm_options={"fastmath": False, "opt": 3}, cc=cc, max_registers=cap or None,
            )  # fmt: skip
            library = result.library
            compiler.kernel_fixup(library.get_function(result.fndesc.llvm_func_name), False)
            library._entry_name = result.fndesc.llvm_func_name
            ptx = library.get_asm_str(cc=arch)
            cubin = library.get_cubin(cc=arch)
            total = time.perf_counter() - start
    finally:
        dispatcher.get_current_device = current_device
    if args.ptx_out:
        args.ptx_out.write_text(ptx)
    return {
        "compute_capability": list(cc),
        "max_registers": cap,
        "specialise_s": specialise_s,
        "compile_s": total,
        "compile_phases_s": phases,
        "llvm_ir_chars": len(library.get_llvm_str()),
        "ptx_lines": ptx.count("\n"),
        "ptx_sha256": hashlib.sha256(ptx.encode()).hexdigest(),
        "cubin_bytes": len(bytes(getattr(cubin, "code", cubin))),
    }


def _name(device) -> str:
    name = getattr(device, "name", "numba CUDA simulator")
    return name.decode() if isinstance(name, bytes) else str(name)


def fresh_process_first_call_s(n: int, env: dict | None = None) -> dict:
    """First call of a fresh process (process start and imports excluded), with ``env``
    added to its environment: the seconds and how it got its kernel (``kernel_source``)."""
    import os
    import subprocess
    import sys

    script = (
        "import sys, time, numpy as np\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import gpu as b\n"
        "from tolsim import cuda\n"
        "grid = b.metric_grid(b.SCHEDULE, None)\n"
        "tab = cuda.schedule_table(b.MODEL, [b.SCHEDULE], [grid])\n"
        f"rows = b.MODEL.pack_table(b.table({n}, seed=1))\n"
        "profile = {}\n"
        "start = time.perf_counter()\n"
        f"cuda.solve(b.MODEL, rows, tab, np.zeros({n}, np.int32), profile=profile)\n"
        "print(time.perf_counter() - start, profile['kernel_source'])\n"
    )
    env = os.environ | (env or {})
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    seconds, source = out.stdout.split()[-2:]
    return {"s": float(seconds), "kernel_source": source}


def cold_first_calls(n: int) -> dict:
    """First calls of fresh processes with empty kernel caches (tolsim's and numba's): with
    the prebuilt kernels (:mod:`tolsim.cuda_prebuilt`) and without them (a cold compile);
    then one that finds the kernel in numba's disk cache the second wrote."""
    import tempfile

    found = {}
    with tempfile.TemporaryDirectory() as fresh, tempfile.TemporaryDirectory() as cold:
        found["prebuilt"] = fresh_process_first_call_s(
            n, {"TOLSIM_CACHE_DIR": fresh, "NUMBA_CACHE_DIR": fresh + "/numba"}
        )
        no_prebuilt = {
            "TOLSIM_CACHE_DIR": cold,
            "NUMBA_CACHE_DIR": cold + "/numba",
            "TOLSIM_CUDA_PREBUILT": "0",
        }
        found["compile"] = fresh_process_first_call_s(n, no_prebuilt)
        found["numba_disk_cache"] = fresh_process_first_call_s(n, no_prebuilt)
    return found


def kernel_launcher(module, tab, packed: np.ndarray, stats: bool = False, columns=None):
    """The "kernel alone" launch of this scenario's rows ``packed`` (schedule 0 of ``tab``):
    inputs copied to the device once, metrics only (and the step counts with ``stats``).
    ``columns`` (packed indices) are sent as the varying columns instead of those that vary.
    Returns ``(launch, status, metrics, stats)``: ``launch(kernels, threads)`` runs one
    launch of ``kernels.solve_kernel`` and waits for it; the rest are its device outputs.
    Under numba's simulator blocks have one thread (a smoke run)."""
    n = packed.shape[0]
    base, varying, slot = cuda.parameter_slots(packed)
    if columns is not None:
        varying = np.asarray(columns, dtype=np.int64)
        slot = np.full(packed.shape[1], -1, dtype=np.int64)
        slot[varying] = np.arange(varying.size)
    d_in = [module.to_device(a) for a in (base, slot, np.ascontiguousarray(packed[:, varying]))]
    d_sched = module.to_device(np.zeros(n, np.int32))
    d_tab = [module.to_device(a) for a in tab.arrays()]
    d_metrics = module.device_array((n, 5))
    d_status = module.device_array(n, dtype=np.int32)
    d_stats = module.device_array((n if stats else 1, 3), dtype=np.int64)
    d_x = module.device_array((1, 1, len(MODEL.states)))
    d_dn = module.device_array((1, 1))

    def launch(kernels, threads):
        if cuda._simulated():
            threads = 1
        kernels.solve_kernel[-(-n // threads), threads](
            *d_in, d_sched, *d_tab, np.nan, RTOL, ATOL, 100_000, 0, True, stats,
            d_metrics, d_status, d_stats, d_x, d_dn,
        )  # fmt: skip
        module.synchronize()

    return launch, d_status, d_metrics, d_stats


def gpu_figures(args, grid) -> dict:
    module = cuda.require()
    device = module.get_current_device()
    tab = cuda.schedule_table(MODEL, [SCHEDULE], [grid])
    small = MODEL.pack_table(table(min(1024, args.samples), seed=1))
    zeros_small = np.zeros(small.shape[0], np.int32)
    first_profile = {}
    with compile_phases() as phases:
        start = time.perf_counter()
        cuda.solve(MODEL, small, tab, zeros_small, profile=first_profile)
        first = time.perf_counter() - start
    warm_small, _ = median_time(lambda: cuda.solve(MODEL, small, tab, zeros_small), 3)
    cold_first = {} if cuda._simulated() else cold_first_calls(small.shape[0])

    columns = table(args.samples)
    packed = MODEL.pack_table(columns)
    schedule_of = np.zeros(args.samples, np.int32)

    # kernel alone: inputs already on the device, one launch, metrics only; for each cap on
    # registers per thread (0: the compiler's choice) and block size
    launch, d_status, _, _ = kernel_launcher(module, tab, packed)
    timings, registers = {}, {}

    for cap in [0] if cuda._simulated() else args.max_registers:
        kernels = cuda.kernel_module(MODEL, tab.n_channels, cap, **METRICS_KERNEL)
        for threads in (64, 128, 256):
            launch(kernels, threads)
            timings[f"{cap}/{threads}"], _ = median_time(
                lambda k=kernels, t=threads: launch(k, t), args.repeats
            )
        if not cuda._simulated():
            try:
                found = kernels.solve_kernel.get_regs_per_thread()
                registers[cap] = list(found.values()) if isinstance(found, dict) else found
            except Exception as error:  # noqa: BLE001 - informational only
                registers[cap] = repr(error)
    best = min(timings, key=timings.get)
    best_cap, best_threads = (int(v) for v in best.split("/"))
    kernel_s = timings[best]
    status = d_status.copy_to_host()

    def end_to_end():
        return cuda.solve(
            MODEL, packed, tab, schedule_of, rtol=RTOL, atol=ATOL, method="dopri5",
            threads_per_block=best_threads, chunk_size=args.gpu_chunk, max_registers=best_cap,
        )  # fmt: skip

    result = end_to_end()
    e2e_s, e2e_all = median_time(end_to_end, args.repeats)

    # the design's constant parameters compiled into the kernel (specialise=True)
    base, _, slot = cuda.parameter_slots(packed)
    start = time.perf_counter()
    fixed = cuda.kernel_module(
        MODEL, tab.n_channels, best_cap, fixed=(base, slot), **METRICS_KERNEL
    )
    launch(fixed, best_threads)
    specialise_first_s = time.perf_counter() - start
    spec_kernel_s, _ = median_time(lambda: launch(fixed, best_threads), args.repeats)
    spec_status = d_status.copy_to_host()

    # end to end by input (packed rows, or the design's columns as given) and kernel
    given = MODEL.pack_columns(columns)
    variants, profiles = {}, {}
    for name, rows, specialise in (
        ("packed", packed, False),
        ("packed_specialised", packed, True),
        ("columns", given, False),
        ("columns_specialised", given, True),
    ):
        profile = {}

        def run(rows=rows, specialise=specialise, profile=profile):
            return cuda.solve(
                MODEL, rows, tab, schedule_of, rtol=RTOL, atol=ATOL, method="dopri5",
                threads_per_block=best_threads, chunk_size=args.gpu_chunk,
                max_registers=best_cap, specialise=specialise, profile=profile,
            )  # fmt: skip

        same = run()
        for field in ("metrics", "status"):
            assert np.array_equal(getattr(same, field), getattr(result, field), equal_nan=True)
        variants[name], _ = median_time(run, args.repeats)
        profiles[name] = dict(profile)  # of the last repeat
    best_e2e = min(variants, key=variants.get)

    def from_design():
        rows = MODEL.pack_table(columns, "design")
        return cuda.solve(
            MODEL, rows, tab, schedule_of, rtol=RTOL, atol=ATOL, method="dopri5",
            threads_per_block=best_threads, chunk_size=args.gpu_chunk, max_registers=best_cap,
        )  # fmt: skip

    design_s, _ = median_time(from_design, args.repeats)
    scan_s, _ = median_time(lambda: cuda.parameter_slots(packed), args.repeats)
    figures = {
        "device_name": _name(device),
        "compute_capability": list(getattr(device, "compute_capability", ())),
        "compile_s": first - warm_small,
        "compile_phases_s": phases,
        "first_call_small_s": first,
        "first_call_kernel_source": first_profile.get("kernel_source"),
        "first_call_small_s_fresh_process": cold_first,
        "warm_call_small_s": warm_small,
        "small_samples": int(small.shape[0]),
        "kernel_s_by_max_registers_and_threads_per_block": timings,
        "registers_per_thread": registers,
        "max_registers": best_cap,
        "threads_per_block": best_threads,
        "kernel_s": kernel_s,
        "kernel_trajectories_per_s": args.samples / kernel_s,
        "end_to_end_s": e2e_s,
        "end_to_end_all_s": e2e_all,
        "end_to_end_trajectories_per_s": args.samples / e2e_s,
        "end_to_end_with_pack_s": design_s,
        "end_to_end_with_pack_trajectories_per_s": args.samples / design_s,
        "host_column_scan_s": scan_s,
        "failed_samples": int(np.count_nonzero(status != 0)),
        "specialised_compile_and_first_launch_s": specialise_first_s,
        "specialised_kernel_s": spec_kernel_s,
        "specialised_kernel_trajectories_per_s": args.samples / spec_kernel_s,
        "specialised_failed_samples": int(np.count_nonzero(spec_status != 0)),
        "end_to_end_s_by_input": variants,
        "end_to_end_host_phases_s": profiles,
        "end_to_end_best": best_e2e,
        "end_to_end_best_s": variants[best_e2e],
        "end_to_end_best_trajectories_per_s": args.samples / variants[best_e2e],
    }
    return figures, result, packed


def sweep_figures(args) -> dict:
    import shutil
    import tempfile

    from distributed import Client, LocalCluster

    design = tolsim.design.Design(table(args.samples), "table")
    directory = tempfile.mkdtemp()
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0")
    try:
        with Client(cluster) as client:
            warm = tolsim.design.Design(table(min(4096, args.samples), seed=5), "table")
            tolsim.sweep(MODEL, warm, SCHEDULE, store=f"{directory}/warm.zarr", client=client,
                         device="cuda", chunk_size=args.sweep_chunk)  # fmt: skip
            start = time.perf_counter()
            tolsim.sweep(MODEL, design, SCHEDULE, store=f"{directory}/s.zarr", client=client,
                         device="cuda", chunk_size=args.sweep_chunk)  # fmt: skip
            elapsed = time.perf_counter() - start
    finally:
        cluster.close()
        shutil.rmtree(directory, ignore_errors=True)
    # in memory (store=None): no Dask, no Zarr; the kernel is warm from the runs above
    in_memory_s, _ = median_time(
        lambda: tolsim.sweep(
            MODEL, design, SCHEDULE, store=None, device="cuda", chunk_size=args.samples
        ),
        args.repeats,
    )
    return {
        "sweep_s": elapsed,
        "sweep_trajectories_per_s": args.samples / elapsed,
        "sweep_chunk_size": args.sweep_chunk,
        "sweep_in_memory_s": in_memory_s,
        "sweep_in_memory_trajectories_per_s": args.samples / in_memory_s,
    }


def cpu_figures(args, gpu_result) -> dict:
    n = args.cpu_samples
    columns = table(args.samples)
    packed = MODEL.pack_table({k: v[:n] for k, v in columns.items()})
    spec = {
        "times": None,
        "rtol": RTOL,
        "atol": ATOL,
        "max_steps": 100_000,
        "method": "dopri5",
        "outputs": "metrics",
        "recurrence_threshold": None,
    }
    _evaluate(MODEL, packed[:64], SCHEDULE, spec)  # compile / load the cache
    cpu_s, _ = median_time(lambda: _evaluate(MODEL, packed, SCHEDULE, spec), args.cpu_repeats)
    expected = _evaluate(MODEL, packed, SCHEDULE, spec)
    agreement = {}
    for i, name in enumerate(cuda.METRIC_NAMES):
        got, want = gpu_result.metrics[:n, i], expected[name]
        both = np.isfinite(got) & np.isfinite(want)
        same_nonfinite = bool(np.array_equal(np.isfinite(got), np.isfinite(want)))
        rel = np.abs(got[both] - want[both]) / np.maximum(np.abs(want[both]), 1e-300)
        agreement[name] = {
            "max_relative_error": float(rel.max()) if rel.size else 0.0,
            "identical_fraction": float(np.mean(got[both] == want[both])) if rel.size else 1.0,
            "same_finite_pattern": same_nonfinite,
        }
    return {
        "cpu_threads": numba.get_num_threads(),
        "cpu_samples": n,
        "cpu_s": cpu_s,
        "cpu_trajectories_per_s": n / cpu_s,
        "gpu_vs_cpu_metrics": agreement,
    }


def diffrax_figures(args, grid) -> dict | None:
    try:
        import diffrax
        import jax
        import jax.numpy as jnp
    except ImportError as error:
        return {"skipped": f"diffrax not importable: {error}"}
    jax.config.update("jax_enable_x64", True)
    compiled = SCHEDULE.compile(MODEL.drugs)
    ka = float(compiled.channel_ka_per_day[0])
    ke = float(compiled.channel_ke_per_day[0])
    um_per_mg = float(compiled.channel_um_per_mg[0])
    dose_amount = float(compiled.depot_mg[0, 0])
    dose_days = jnp.asarray(SCHEDULE.oral_doses[0].dose_days)
    stoich = MODEL.stoichiometry.astype(float)
    assert stoich.tolist() == [[1, 0], [-1, 0], [-1, 1], [0, 1], [0, -1], [1, -1]], stoich
    names = MODEL.parameter_names
    defaults = MODEL.pack({})

    def concentration(t):
        tau = t - dose_days
        bateman = ka / (ka - ke) * (jnp.exp(-ke * tau) - jnp.exp(-ka * tau))
        return um_per_mg * dose_amount * jnp.sum(jnp.where(tau >= 0.0, bateman, 0.0))

    def field(t, y, p):
        s, tc = y[0], y[1]
        c = concentration(t)
        e_tam = c / (c + p[names.index("EC50_tam")])  # h_tam = 1
        g = 1.0 - (s + tc) / p[names.index("K")]
        out0 = p[0] * (1.0 - p[2] * e_tam) * g * s
        out1 = (p[4] + p[6] * e_tam) * s
        out2 = (p[8] + p[9] * e_tam) * s
        out3 = p[1] * (1.0 - p[3] * e_tam) * g * tc  # no inhibitor
        out4 = p[5] * tc
        out5 = (p[10] + p[11] * (1.0 - e_tam)) * tc
        return jnp.stack([out0 - out1 - out2 + out5, out2 + out3 - out4 - out5])

    ts = jnp.asarray(grid)
    term = diffrax.ODETerm(field)
    controller = diffrax.PIDController(rtol=RTOL, atol=ATOL, jump_ts=dose_days)

    def solve_one(p):
        y0 = jnp.stack([p[names.index("S0")], p[names.index("T0")]])
        sol = diffrax.diffeqsolve(
            term, diffrax.Dopri5(), 0.0, float(grid[-1]), None, y0, args=p,
            saveat=diffrax.SaveAt(ts=ts), stepsize_controller=controller, max_steps=16_384,
        )  # fmt: skip
        return sol.ys

    solve = jax.jit(jax.vmap(solve_one))
    n = args.diffrax_samples
    cols = table(args.samples)
    packed = np.repeat(defaults[None, :], n, axis=0)
    for name, values in cols.items():
        packed[:, names.index(name)] = values[:n]
    params = jnp.asarray(packed)
    start = time.perf_counter()
    ys = solve(params).block_until_ready()
    first = time.perf_counter() - start
    warm, _ = median_time(lambda: solve(params).block_until_ready(), max(1, args.repeats // 2))
    first_rows = {name: values[:8] for name, values in cols.items()}
    ours = tolsim.simulate(MODEL, first_rows, SCHEDULE, [float(grid[-1])], method="dopri5")
    theirs = np.asarray(ys[:8, -1, :].sum(axis=1))
    return {
        "diffrax_version": diffrax.__version__,
        "jax_version": jax.__version__,
        "diffrax_samples": n,
        "diffrax_compile_s": first - warm,
        "diffrax_s": warm,
        "diffrax_trajectories_per_s": n / warm,
        "final_cells": theirs.tolist(),
        "final_cells_max_relative_difference_vs_tolsim": float(
            np.max(np.abs(theirs - ours.N.values[:, -1]) / ours.N.values[:, -1])
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--cpu-samples", type=int, default=20_000)
    parser.add_argument("--diffrax-samples", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cpu-repeats", type=int, default=3)
    parser.add_argument("--gpu-chunk", type=int, default=None)
    parser.add_argument("--max-registers", type=int, nargs="+", default=[0, 128, 96, 64])
    parser.add_argument("--sweep", action="store_true", help="also time tolsim.sweep on GPU")
    parser.add_argument("--sweep-chunk", type=int, default=250_000)
    parser.add_argument("--no-diffrax", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results/gpu.json")
    parser.add_argument(
        "--compile-only", action="store_true",
        help="no GPU needed: time the kernel's compile for --cc (first --max-registers)",
    )  # fmt: skip
    parser.add_argument("--cc", default="9.0", help="compute capability for --compile-only")
    parser.add_argument("--ptx-out", type=Path, default=None, help="--compile-only: PTX file")
    args = parser.parse_args()

    grid = metric_grid(SCHEDULE, None)
    if args.compile_only:
        print(json.dumps(compile_only(args, grid), indent=1))
        return
    assert SCHEDULE.compile(MODEL.drugs).breakpoints_days.size - 1 == 19
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": platform.node(),
        "cpu_count": os.cpu_count(),
        "versions": {
            "tolsim": tolsim.__version__,
            "numba": numba.__version__,
            "numpy": np.__version__,
        },
        "scenario": {
            "model": "TwoState (logistic)",
            "schedule": (
                "oral tamoxifen 200 mg every 10 days, days 0-180 (19 doses), human PK; "
                "off to day 360"
            ),
            "pieces": 19,
            "outputs": int(grid.size),
            "rtol": RTOL,
            "atol_cells": ATOL,
            "samples": args.samples,
            "jittered": list(JITTERED),
        },
    }
    try:
        from importlib.metadata import version

        report["versions"]["numba_cuda"] = version("numba-cuda")
    except Exception:  # noqa: BLE001 - informational only
        pass
    gpu, result, _ = gpu_figures(args, grid)
    report["gpu"] = gpu
    print(json.dumps(gpu, indent=1), flush=True)
    if args.sweep:
        report["sweep"] = sweep_figures(args)
        print(json.dumps(report["sweep"], indent=1), flush=True)
    report["cpu"] = cpu_figures(args, result)
    print(json.dumps(report["cpu"], indent=1), flush=True)
    if not args.no_diffrax:
        report["diffrax"] = diffrax_figures(args, grid)
        print(json.dumps(report["diffrax"], indent=1), flush=True)
    ratios = {
        "kernel_vs_cpu": gpu["kernel_trajectories_per_s"]
        / report["cpu"]["cpu_trajectories_per_s"],
        "end_to_end_vs_cpu": gpu["end_to_end_trajectories_per_s"]
        / report["cpu"]["cpu_trajectories_per_s"],
    }
    diffrax_rate = (report.get("diffrax") or {}).get("diffrax_trajectories_per_s")
    ratios["end_to_end_best_vs_cpu"] = (
        gpu["end_to_end_best_trajectories_per_s"] / report["cpu"]["cpu_trajectories_per_s"]
    )
    if diffrax_rate:
        ratios["end_to_end_vs_diffrax"] = gpu["end_to_end_trajectories_per_s"] / diffrax_rate
        ratios["end_to_end_best_vs_diffrax"] = (
            gpu["end_to_end_best_trajectories_per_s"] / diffrax_rate
        )
        ratios["kernel_vs_diffrax"] = gpu["kernel_trajectories_per_s"] / diffrax_rate
    report["ratios"] = ratios
    print(json.dumps(ratios, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
