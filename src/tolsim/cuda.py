"""GPU ensembles: the ODE kernel on CUDA (numba-cuda), one thread per trajectory.

``tolsim.simulate(..., device="cuda")`` and ``tolsim.sweep(..., device="cuda")`` run here.
The kernel (:mod:`tolsim.kernels.cuda_template`) is generated from the same model description
as the CPU kernels: no per-model CUDA. Samples go to the GPU in chunks that bound its memory,
alternating between two CUDA streams with pinned host buffers, so one chunk's transfers
overlap the other's computation; sweep metrics are reduced on the device, so only a few
numbers per trajectory come back.

Needs numba-cuda and an NVIDIA GPU (``pip install "tolsim[cuda]"``); without a GPU,
:func:`require` raises :class:`CudaUnavailableError` saying why. With
``NUMBA_ENABLE_CUDASIM=1`` numba's CUDA simulator runs the same kernel in Python threads
(slowly): the test suite checks the kernel against the CPU that way.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from tolsim.kernels.specialise import specialised
from tolsim.models.base import Columns, Model
from tolsim.recurrence import withdrawal_within
from tolsim.schedule import Schedule

__all__ = [
    "CudaUnavailableError",
    "device_count",
    "is_available",
    "require",
    "solve",
]

METRIC_NAMES = (
    "time_to_recurrence",
    "burden_at_withdrawal",
    "tolerant_fraction_at_withdrawal",
    "nadir_cells",
    "nadir_day",
)
N_METRICS = len(METRIC_NAMES)
N_STATS = 3  # accepted steps, rejected steps, rhs evaluations
METHODS = ("auto", "dopri5")
# the kernel's codes for them (cuda_template.METHOD_AUTO, METHOD_DOPRI5)
METHOD_CODES = {"auto": 1, "dopri5": 0}
STIFF_DETECTED = -4  # the kernel's code for "auto found this sample stiff"
# Block size and register cap measured best (benchmarks/gpu.py on an H200: 254 registers
# uncapped; capped at 128, with some spilling, the kernel ran 18 % faster, at 64 to 256 threads
# per block alike)
THREADS_PER_BLOCK = 128
MAX_REGISTERS = 128
DEFAULT_CHUNK = 2**18
# Host work on large inputs (the column scan, gathers into pinned memory, copies out) runs in
# row blocks on a thread pool: numpy releases the GIL in these loops, and one core cannot
# keep up with the GPU. Blocks of fewer rows run inline.
HOST_BLOCK_ROWS = 32_768
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
# Pinned host and device buffers of recent calls, reused: allocating pinned memory costs
# more than the transfers it speeds up. Keyed by kernel, lane and shapes; a few entries.
_BUFFERS: dict = {}


class CudaUnavailableError(RuntimeError):
    """``device="cuda"`` was asked for where it cannot run (no numba-cuda, no GPU)."""


def _import_cuda():
    try:
        cuda = importlib.import_module("numba.cuda")
    except ImportError as error:
        raise CudaUnavailableError(
            "`device` = 'cuda' needs the numba-cuda package, which is not importable "
            f"({error}); install it with: pip install 'tolsim[cuda]' (CUDA 13 drivers) or "
            "'tolsim[cuda12]'"
        ) from error
    except AttributeError as error:
        raise CudaUnavailableError(_numpy_trap_message(error)) from error
    if "row_stack" not in vars(np) and _numba_cuda_series() <= (0, 30) and not _simulated():
        # numba-cuda 0.30 imports under numpy 2.5 but registers np.row_stack on its first
        # compile, which then fails with numpy's AttributeError (seen on an H100 image with
        # numpy 2.5.2): say so before any work rather than at the first launch. (Its CUDA
        # simulator compiles nothing and works.)
        raise CudaUnavailableError(
            _numpy_trap_message(AttributeError("module 'numpy' has no attribute 'row_stack'"))
        )
    return cuda


def _numba_cuda_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("numba-cuda")
    except PackageNotFoundError:
        return "(unknown version)"


def _numba_cuda_series() -> tuple[int, int]:
    """numba-cuda's (major, minor), or (0, 0) where its version cannot be read."""
    found = re.match(r"(\d+)\.(\d+)", _numba_cuda_version())
    return (int(found[1]), int(found[2])) if found else (0, 0)


def _numpy_trap_message(error: BaseException) -> str:
    """Explain numba-cuda failing under a numpy it does not support."""
    if "row_stack" in str(error):
        why = "it calls np.row_stack, which numpy 2.5 removed, when it compiles"
    else:
        why = f"{type(error).__name__}: {error}"
    return (
        f"numba-cuda {_numba_cuda_version()} does not work with numpy {np.__version__} "
        f"({why}); install the versions pinned by tolsim's extra: pip install 'tolsim[cuda]' "
        "(numpy<2.5)"
    )


def is_available() -> bool:
    """True if a CUDA GPU (or numba's CUDA simulator) can run the kernels here."""
    try:
        cuda = _import_cuda()
    except CudaUnavailableError:
        return False
    return bool(cuda.is_available())


def require():
    """The ``numba.cuda`` module, or :class:`CudaUnavailableError` saying what is missing."""
    cuda = _import_cuda()
    if not cuda.is_available():
        raise CudaUnavailableError(
            "`device` = 'cuda' but no CUDA GPU is usable here (numba.cuda.is_available() is "
            "False: no NVIDIA GPU, or its driver is missing); run on a GPU machine, use "
            "device='cpu', or set NUMBA_ENABLE_CUDASIM=1 before importing tolsim to run "
            "numba's CUDA simulator (slow; for testing)"
        )
    return cuda


def _simulated() -> bool:
    import numba

    return bool(getattr(numba.config, "ENABLE_CUDASIM", False))


def device_count() -> int:
    """Number of CUDA GPUs visible to this process (1 under the simulator)."""
    return len(require().gpus)


def worker_device_index(n_devices: int) -> int:
    """GPU a Dask worker should use: ``$TOLSIM_CUDA_DEVICE`` if set, else the worker's
    number (the names a ``LocalCluster`` gives) modulo the GPUs, else 0. One worker per GPU
    (as ``tolsim.sweep`` starts, or ``dask_cuda.LocalCUDACluster``) then owns one GPU each."""
    chosen = os.environ.get("TOLSIM_CUDA_DEVICE")
    if chosen is not None:
        try:
            index = int(chosen)
        except ValueError:
            raise ValueError(
                f"TOLSIM_CUDA_DEVICE = {chosen!r}: expected a GPU index (0, 1, ...)"
            ) from None
        if not 0 <= index < n_devices:
            raise ValueError(
                f"TOLSIM_CUDA_DEVICE = {index}: expected an index below the {n_devices} "
                "visible GPU(s)"
            )
        return index
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return 0
    if isinstance(name, int | np.integer) or (isinstance(name, str) and name.isdigit()):
        return int(name) % n_devices
    return 0


def kernel_module(
    model: Model,
    n_channels: int,
    max_registers: int = 0,
    fixed: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    method: str | None = None,
    trajectories: bool = True,
):
    """The model's CUDA kernel module (specialised copy of ``cuda_template``); a nonzero
    ``max_registers`` caps the registers per thread. ``fixed = (base, slot)`` (as from
    :func:`parameter_slots`) compiles the parameters whose slot is -1 in as the constants
    ``base`` (:func:`specialised_constants`). ``method`` (one of :data:`METHODS`) compiles
    the method in (the kernel's ``method`` argument is then ignored; None: read at run time),
    and ``trajectories=False`` a kernel that stores no trajectory slots (metrics only): each
    drops code the launch does not run, about 3% of the kernel's time each (H200,
    ``benchmarks/results/gpu_h200_fixed_variants.json``)."""
    require()
    if _simulated():
        max_registers = 0  # the simulator has no registers to cap
    constants = variant_constants(
        model, n_channels, max_registers, fixed, method=method, trajectories=trajectories
    )
    return kernel_copy(model, constants)


def variant_constants(
    model: Model,
    n_channels: int,
    max_registers: int = 0,
    fixed: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    method: str | None = None,
    trajectories: bool = True,
) -> dict[str, str]:
    """The template constants of :func:`kernel_module`'s variant (source text)."""
    constants = kernel_constants(model, n_channels, max_registers)
    if fixed is not None:
        constants |= specialised_constants(*fixed)
    if method is not None:
        if method not in METHODS:
            raise ValueError(f"`method` = {method!r}: the CUDA kernel runs {list(METHODS)}")
        constants["FIXED_METHOD"] = str(METHOD_CODES[method])
    if not trajectories:
        constants["NO_TRAJECTORIES"] = "True"
    return constants


def kernel_copy(model: Model, constants: dict[str, str]):
    """The copy of ``cuda_template`` for ``model`` with ``constants``, its
    :func:`tolsim.cuda_prebuilt.source_key` as its ``PREBUILT_SOURCE``."""
    module = specialised("cuda_template", model.rates, constants)
    if not hasattr(module, "PREBUILT_SOURCE"):
        from tolsim.cuda_prebuilt import source_key

        module.PREBUILT_SOURCE = source_key(model.rates, constants)
    return module


def kernel_constants(model: Model, n_channels: int, max_registers: int = 0) -> dict[str, str]:
    """The ``TOLSIM-CONSTANT`` values of ``model``'s copy of ``cuda_template`` (source text)."""
    tolerant = np.array([float(s in model.tolerant_states) for s in model.states])
    names = model.parameter_names
    initial = [names.index(dict(model.initial)[s]) for s in model.states]
    stoich = model.stoichiometry.astype(np.float64)
    return {
        "N_STATES": str(len(model.states)),
        "N_TRANSITIONS": str(stoich.shape[0]),
        "N_PACKED": str(model.pack({}).size),
        "N_DRUGS": str(len(model.drugs)),
        "N_CHANNELS": str(int(n_channels)),
        "STOICH": f"np.array({stoich.tolist()!r})",
        "TOLERANT": f"np.array({tolerant.tolist()!r})",
        "INITIAL": f"np.array({initial!r}, dtype=np.int64)",
        "MAX_REGISTERS": str(int(max_registers)),
    }


def specialised_constants(base: np.ndarray, slot: np.ndarray) -> dict[str, str]:
    """The template constants that compile packed parameter ``i`` in as the constant
    ``base[i]`` where ``slot[i] == -1`` (the rest stay columns of the values sent). Python
    writes each float's shortest round-trip repr, so the constants are the values, bit for
    bit."""
    base = np.asarray(base, dtype=np.float64)
    if not np.isfinite(base).all():
        raise ValueError(f"`base` = {base!r}: expected finite parameter values")
    return {
        "SPEC_SLOT": f"np.array({np.asarray(slot, dtype=np.int64).tolist()!r}, dtype=np.int64)",
        "SPEC_BASE": f"np.array({base.tolist()!r})",
    }


# The kernel's PK rows: the seven columns of tolsim.kernels.exposure.load_piece, then two
# factors of exposure.central_amount that are constant over a piece (cuda_template.PK_*)
PK_LOADED = 7
PK_COLUMNS = 9


def pk_factors(rows: np.ndarray) -> np.ndarray:
    """``rows`` (channels x :data:`PK_LOADED`, as ``exposure.load_piece`` fills them) with
    the columns ``depot * ka / (ka - ke)`` (NaN where ``|ka - ke| <= 1e-9 ka``, the limit the
    kernel takes analytically) and ``infusion / ke`` appended: the operations
    ``central_amount`` does on the CPU in the same order, so the values are the same, and the
    GPU does not repeat the divisions at every right-hand side."""
    depot, infusion, ka, ke = rows[:, 0], rows[:, 2], rows[:, 3], rows[:, 4]
    with np.errstate(divide="ignore", invalid="ignore"):
        absorbed = depot * ka / (ka - ke)
        infused = infusion / ke
    absorbed[np.abs(ka - ke) <= 1e-9 * ka] = np.nan
    return np.column_stack([rows, absorbed, infused])


@dataclass
class ScheduleTable:
    """Padded per-schedule arrays the kernel reads (one row per distinct schedule)."""

    breakpoints: np.ndarray  # (S, P + 1) days
    n_pieces: np.ndarray  # (S,) int64
    level: np.ndarray  # (S, P, n_drugs) µM
    pk: np.ndarray  # (S, P, C, PK_COLUMNS): rows of tolsim.kernels.exposure.load_piece's PK
    # table, then the per-piece factors of central_amount (see pk_factors)
    grid: np.ndarray  # (S, G) output days (padded with inf)
    n_grid: np.ndarray  # (S,) int64
    w_index: np.ndarray  # (S,) int64, grid index of tamoxifen withdrawal, -1 if none
    w_day: np.ndarray  # (S,) days
    traj_slot: np.ndarray  # (S, G) int32, trajectory slot of each output, -1 if none
    n_channels: int  # PK channels (the padded arrays hold at least one)
    # copies of arrays() on each GPU (by device id), made by the first solve there: a table
    # is not changed once built
    _on_device: dict = field(default_factory=dict, repr=False, compare=False)

    def arrays(self) -> tuple:
        return (
            self.breakpoints,
            self.n_pieces,
            self.level,
            self.pk,
            self.grid,
            self.n_grid,
            self.w_index,
            self.w_day,
            self.traj_slot,
        )


def schedule_table(
    model: Model,
    schedules: Sequence[Schedule],
    grids: Sequence[np.ndarray],
    traj_times: np.ndarray | None = None,
) -> ScheduleTable:
    """Pack schedules (compiled for ``model``'s drugs) and their output grids into padded
    arrays. ``traj_times`` (each on every grid) are the outputs stored as trajectories."""
    from tolsim.kernels.exposure import load_piece

    compiled = [s.compile(model.drugs) for s in schedules]
    n_s = len(compiled)
    n_drugs = len(model.drugs)
    pieces = [c.breakpoints_days.size - 1 for c in compiled]
    n_p = max(pieces)
    n_c = max(c.channel_drug.size for c in compiled)
    n_g = max(g.size for g in grids)
    table = ScheduleTable(
        breakpoints=np.zeros((n_s, n_p + 1)),
        n_pieces=np.array(pieces, dtype=np.int64),
        level=np.zeros((n_s, n_p, n_drugs)),
        pk=np.zeros((n_s, n_p, max(n_c, 1), PK_COLUMNS)),  # padding channels add nothing
        grid=np.full((n_s, n_g), np.inf),
        n_grid=np.array([g.size for g in grids], dtype=np.int64),
        w_index=np.full(n_s, -1, dtype=np.int64),
        w_day=np.full(n_s, np.nan),
        traj_slot=np.full((n_s, n_g), -1, dtype=np.int32),
        n_channels=n_c,
    )
    for i, (schedule, c, grid) in enumerate(zip(schedules, compiled, grids, strict=True)):
        ch = c.channel_drug.size
        table.breakpoints[i, : pieces[i] + 1] = c.breakpoints_days
        rows = np.empty((ch, PK_LOADED))
        for piece in range(pieces[i]):
            load_piece(c, piece, table.level[i, piece], rows)
            table.pk[i, piece, :ch] = pk_factors(rows)
        table.grid[i, : grid.size] = grid
        w = withdrawal_within(schedule)
        if w is not None:
            table.w_index[i] = int(np.searchsorted(grid, w))
            table.w_day[i] = w
        if traj_times is not None:
            table.traj_slot[i, np.searchsorted(grid, traj_times)] = np.arange(
                traj_times.size, dtype=np.int32
            )
    return table


def _host_threads() -> int:
    return max(1, min(16, os.cpu_count() or 1))


def _block_count(n: int) -> int:
    return max(1, min(_host_threads(), n // HOST_BLOCK_ROWS))


def _in_blocks(n: int, work: Callable[[int, int, int], object]) -> None:
    """``work(block, lo, hi)`` over :func:`_block_count` row blocks covering ``range(n)``,
    on the host thread pool."""
    global _POOL
    n_blocks = _block_count(n)
    edges = [b * n // n_blocks for b in range(n_blocks + 1)]
    if n_blocks == 1:
        work(0, 0, n)
        return
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(_host_threads(), thread_name_prefix="tolsim-cuda")
    futures = [_POOL.submit(work, b, edges[b], edges[b + 1]) for b in range(n_blocks)]
    for future in futures:
        future.result()


def _any_rows(flags: np.ndarray) -> np.ndarray:
    """``flags.any(axis=0)`` for a tall boolean matrix, as a tree of ORs of row halves: each
    a single long loop, where numpy's reduction down the rows runs one short loop per row."""
    while flags.shape[0] > 1:
        half = flags.shape[0] // 2
        folded = flags[:half] | flags[half : 2 * half]
        if flags.shape[0] % 2:
            folded[0] |= flags[-1]
        flags = folded
    return flags[0]


def varying_columns(packed: np.ndarray) -> np.ndarray:
    """Indices of the columns of ``packed`` whose values are not all equal (NaN differs from
    everything). Each row is compared with the row before it, the matrix taken as one flat
    array, in row blocks on the host threads."""
    packed = np.ascontiguousarray(packed)
    n, m = packed.shape
    flat = packed.reshape(-1)
    flags = np.zeros((_block_count(n), m), dtype=bool)

    def scan(block, lo, hi):
        start = max(lo - 1, 0)  # the block's first row against the last row before it
        if hi - start >= 2:
            differs = flat[(start + 1) * m : hi * m] != flat[start * m : (hi - 1) * m]
            flags[block] = _any_rows(differs.reshape(-1, m))

    _in_blocks(n, scan)
    return np.flatnonzero(_any_rows(flags))


def parameter_slots(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the kernel needs to rebuild each row of ``packed`` while only the columns that
    vary are sent: the first row, the varying columns, and each column's slot among them
    (-1: take the first row's value)."""
    # (packed values are finite: validated by Model.pack_table)
    varying = varying_columns(packed)
    if varying.size == 0:
        varying = np.zeros(1, dtype=np.int64)  # one (constant) column: no zero-width arrays
    slot = np.full(packed.shape[1], -1, dtype=np.int64)
    slot[varying] = np.arange(varying.size)
    return packed[0].copy(), varying, slot


def column_slots(
    columns: Columns,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """:func:`parameter_slots` for a table kept as its given columns, and the columns to send
    (each ``(n,)``; :func:`_interleave` writes them side by side into a chunk's buffer)."""
    if columns.index.size:
        index, given = columns.index, columns.columns
    else:  # nothing given: send column 0 as it is, so that no array has zero width
        index = np.zeros(1, dtype=np.int64)
        given = (np.full(len(columns), columns.base[0]),)
    slot = np.full(columns.base.size, -1, dtype=np.int64)
    slot[index] = np.arange(index.size)
    return columns.base.copy(), index, slot, given


def _interleave(columns: Sequence[np.ndarray], lo: int, out: np.ndarray) -> None:
    """``out[:, k] = columns[k][lo : lo + len(out)]`` for every ``k`` (in parallel over
    rows)."""

    def fill(_, a, b):
        for k, column in enumerate(columns):
            out[a:b, k] = column[lo + a : lo + b]

    _in_blocks(out.shape[0], fill)


def _gather(packed: np.ndarray, lo: int, varying: np.ndarray, out: np.ndarray) -> None:
    """``out[:] = packed[lo : lo + len(out)][:, varying]`` (in parallel)."""

    def gather(_, a, b):
        np.take(packed[lo + a : lo + b], varying, axis=1, out=out[a:b])

    _in_blocks(out.shape[0], gather)


def _copy_rows(source: np.ndarray, target: np.ndarray) -> None:
    """``target[:] = source`` for arrays of the same shape (in parallel over rows)."""

    def copy(_, a, b):
        target[a:b] = source[a:b]

    _in_blocks(source.shape[0], copy)


@dataclass
class Result:
    """What :func:`solve` returns (host arrays, one row per sample)."""

    status: np.ndarray  # (n,) int32; STIFF_DETECTED for samples the CPU must redo
    metrics: np.ndarray | None  # (n, 5) float64 in METRIC_NAMES order, column-major
    stats: np.ndarray | None  # (n, 3) int64: accepted steps, rejected steps, rhs evaluations
    out_x: np.ndarray | None  # (n, n_traj, n_states)
    out_dn: np.ndarray | None  # (n, n_traj)


def chunk_bounds(n: int, chunk_size: int) -> list[tuple[int, int]]:
    """Row ranges ``[lo, hi)`` covering ``range(n)`` in order, none longer than
    ``chunk_size``: the first and the last a quarter of ``chunk_size`` (the GPU starts after
    the host has filled a small chunk, and the host collects a small one after the GPU has
    finished), the rest as equal as possible."""
    if n <= chunk_size:
        return [(0, n)]
    edge = max(1, chunk_size // 4)
    inner = n - 2 * edge
    if inner <= 0:
        return [(0, n - edge), (n - edge, n)]
    k = -(-inner // chunk_size)
    cuts = [edge + (inner * i) // k for i in range(k + 1)]
    return [(0, edge), *zip(cuts[:-1], cuts[1:], strict=True), (n - edge, n)]


def _check_schedule_of(schedule_of, n: int, n_schedules: int) -> np.ndarray:
    """``schedule_of`` as the kernel reads it (int32, one per sample), or an error naming
    it: a schedule index per sample, each one of the table's."""
    array = np.asarray(schedule_of)
    if array.shape != (n,) or not (
        np.issubdtype(array.dtype, np.integer) and array.dtype != np.bool_
    ):
        raise ValueError(
            f"`schedule_of` has shape {array.shape} and dtype {array.dtype}: expected {n} "
            "integer schedule indices, one per sample"
        )
    if n and (array.min() < 0 or array.max() >= n_schedules):  # (two fast passes; 1e6: 0.3 ms)
        bad = np.flatnonzero((array < 0) | (array >= n_schedules))
        raise ValueError(
            f"`schedule_of[{bad[0]}]` = {array[bad[0]]!r}: expected an index of the table's "
            f"{n_schedules} schedule(s), 0 to {n_schedules - 1}"
        )
    return np.ascontiguousarray(array, dtype=np.int32)


def launch_arguments(
    base,
    slot,
    values,
    schedule_of,
    shared: Sequence,
    *,
    threshold: float,
    rtol: float,
    atol: float,
    max_steps: int,
    method: str,
    metrics: bool,
    stats: bool,
    out_metrics,
    status,
    out_stats,
    out_x,
    out_dn,
) -> tuple:
    """``solve_kernel``'s arguments in order, scalars as the Python types numba types them
    as (float64, int64, bool): one place for :func:`solve` and the prebuilt kernels' types."""
    return (
        base,
        slot,
        values,
        schedule_of,
        *shared,
        float(threshold),
        float(rtol),
        float(atol),
        int(max_steps),
        int(METHOD_CODES[method]),
        bool(metrics),
        bool(stats),
        out_metrics,
        status,
        out_stats,
        out_x,
        out_dn,
    )


def _kernel_source(kernels, args: tuple, simulated: bool) -> str:
    """Attach a prebuilt kernel to ``kernels.solve_kernel`` where one matches the launch
    (:mod:`tolsim.cuda_prebuilt`); how the launch gets its kernel."""
    if simulated:
        return "simulator"
    from tolsim import cuda_prebuilt

    return cuda_prebuilt.attach(kernels.solve_kernel, kernels.PREBUILT_SOURCE, args)


def solve(
    model: Model,
    packed: np.ndarray | Columns,
    table: ScheduleTable,
    schedule_of: np.ndarray,
    *,
    metrics: bool = True,
    stats: bool = False,
    n_traj: int = 0,
    threshold: float = math.nan,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    max_steps: int = 100_000,
    method: str = "dopri5",
    chunk_size: int | None = None,
    threads_per_block: int = THREADS_PER_BLOCK,
    max_registers: int = MAX_REGISTERS,
    specialise: bool = False,
    profile: dict[str, float] | None = None,
) -> Result:
    """Solve every row of ``packed`` under schedule ``schedule_of[row]`` of ``table`` on
    the current GPU, in chunks of ``chunk_size`` samples over two streams.

    Only parameter columns that differ between rows are sent; each thread rebuilds its full
    parameter vector from the first row. ``packed`` may also be a table kept as its given
    columns (:meth:`Model.pack_columns`): those columns are sent, and no packed matrix is ever
    built. ``chunk_size`` defaults to a size that keeps the two streams' buffers within a
    quarter of the GPU's free memory (at most 2**18 samples).

    ``specialise=True`` compiles the parameters that are the same in every row into the kernel
    as constants (:func:`specialised_constants`), which the compiler then folds into the
    arithmetic: the same results bit for bit, a kernel about 30% faster (1e6 samples of
    ``benchmarks/gpu.py``'s scenario on an H200, 16 of 21 parameters constant: 27.0 against
    39.4 ms), at the price of one compile (5–10 s, then in numba's disk cache) for each
    distinct set of constants. Worth it for sweeps of hundreds of millions of samples, or
    repeated sweeps of one design; not for fits, whose parameters change at every call.

    ``profile``, a dict, receives the host's seconds in each phase (``slots``: finding the
    varying columns; ``kernel_module``; ``setup``: tables and buffers; ``fill``: rows into the
    pinned buffers; ``enqueue``: copies and launches; ``wait``: the host waiting for the GPU;
    ``collect``: results out of the pinned buffers; ``total``), ``chunks``, and
    ``kernel_source``: how the launch got its kernel (``"prebuilt"``: compiled ahead of time
    and shipped, :mod:`tolsim.cuda_prebuilt`; ``"compile"``: compiled now or loaded from
    numba's disk cache; ``"in memory"``; ``"simulator"``).
    """
    cuda = require()
    simulated = _simulated()
    if method not in METHODS:
        raise ValueError(f"`method` = {method!r}: the CUDA kernel runs {list(METHODS)}")
    if not isinstance(specialise, bool | np.bool_):
        raise ValueError(f"`specialise` = {specialise!r}: expected True or False")
    clock = time.perf_counter
    phases = dict.fromkeys(
        ("slots", "kernel_module", "setup", "fill", "enqueue", "wait", "collect"), 0.0
    )
    started = mark = clock()

    def lap(name: str) -> None:
        nonlocal mark
        now = clock()
        phases[name] += now - mark
        mark = now

    if isinstance(packed, Columns):
        base, varying, slot, source = column_slots(packed)
        n = len(packed)
    else:
        packed = np.ascontiguousarray(packed, dtype=np.float64)
        n = packed.shape[0]
        base, varying, slot = parameter_slots(packed)
        source = None
    lap("slots")
    schedule_of = _check_schedule_of(schedule_of, n, table.n_pieces.size)
    if chunk_size is not None and (
        isinstance(chunk_size, bool | np.bool_)
        or not isinstance(chunk_size, int | np.integer)
        or chunk_size < 1
    ):
        raise ValueError(f"`chunk_size` = {chunk_size!r}: expected an integer >= 1")
    kernels = kernel_module(
        model,
        table.n_channels,
        max_registers,
        (base, slot) if specialise else None,
        method=method,
        trajectories=bool(n_traj),
    )
    lap("kernel_module")
    n_states = len(model.states)
    per_sample = (
        8 * varying.size
        + 4
        + 4
        + (8 * kernels.N_METRICS if metrics else 0)
        + (8 * kernels.N_STATS if stats else 0)
        + 8 * n_traj * (n_states + 1)
    )
    if chunk_size is None:
        try:
            free, _ = cuda.current_context().get_memory_info()
        except Exception:  # the simulator has no memory info
            free = 2**30
        chunk_size = int(max(1, min(DEFAULT_CHUNK, free // 4 // (2 * per_sample))))
    chunk_size = int(min(chunk_size, n))

    result = Result(
        status=np.empty(n, dtype=np.int32),
        # column-major: each metric is one contiguous array (what a sweep stores)
        metrics=np.empty((n, kernels.N_METRICS), order="F") if metrics else None,
        stats=np.empty((n, kernels.N_STATS), dtype=np.int64) if stats else None,
        out_x=np.empty((n, n_traj, n_states)) if n_traj else None,
        out_dn=np.empty((n, n_traj)) if n_traj else None,
    )
    gpu = getattr(cuda.get_current_device(), "id", 0)
    shared = table._on_device.get(gpu)
    if shared is None:
        shared = table._on_device[gpu] = [cuda.to_device(a) for a in table.arrays()]
    d_base = cuda.to_device(base)
    d_slot = cuda.to_device(slot)
    m = chunk_size

    def buffers(lane):
        key = (
            id(kernels),
            gpu,
            threading.get_ident(),  # buffers are never shared between threads
            lane,
            m,
            varying.size,
            bool(metrics),
            bool(stats),
            n_traj,
        )
        cached = _BUFFERS.get(key)
        if cached is not None:
            return cached
        host_in = {
            "values": cuda.pinned_array((m, varying.size)),
            "schedule_of": cuda.pinned_array(m, dtype=np.int32),
        }
        host_out = {"status": cuda.pinned_array(m, dtype=np.int32)}
        dev = {  # (one-element stand-ins for the outputs not asked for)
            "values": cuda.device_array((m, varying.size)),
            "schedule_of": cuda.device_array(m, dtype=np.int32),
            "status": cuda.device_array(m, dtype=np.int32),
            "metrics": cuda.device_array((1, kernels.N_METRICS)),
            "stats": cuda.device_array((1, kernels.N_STATS), dtype=np.int64),
            "out_x": cuda.device_array((1, 1, n_states)),
            "out_dn": cuda.device_array((1, 1)),
        }
        if metrics:
            host_out["metrics"] = cuda.pinned_array((m, kernels.N_METRICS))
            dev["metrics"] = cuda.device_array((m, kernels.N_METRICS))
        if stats:
            host_out["stats"] = cuda.pinned_array((m, kernels.N_STATS), dtype=np.int64)
            dev["stats"] = cuda.device_array((m, kernels.N_STATS), dtype=np.int64)
        if n_traj:
            host_out["out_x"] = cuda.pinned_array((m, n_traj, n_states))
            host_out["out_dn"] = cuda.pinned_array((m, n_traj))
            dev["out_x"] = cuda.device_array((m, n_traj, n_states))
            dev["out_dn"] = cuda.device_array((m, n_traj))
        if len(_BUFFERS) >= 8:  # keep the pool small: drop the oldest
            _BUFFERS.pop(next(iter(_BUFFERS)))
        _BUFFERS[key] = (cuda.stream(), host_in, host_out, dev)
        return _BUFFERS[key]

    bounds = chunk_bounds(n, chunk_size)
    kernel_source = None
    lanes = [buffers(lane) for lane in range(min(2, len(bounds)))]
    pending: list[tuple[int, int] | None] = [None] * len(lanes)
    lap("setup")

    def collect(lane: int) -> None:
        stream, _, host_out, _ = lanes[lane]
        lap("enqueue")
        stream.synchronize()
        lap("wait")
        lo, hi = pending[lane]
        rows = hi - lo
        for name in ("status", "metrics", "stats", "out_x", "out_dn"):
            if name in host_out:
                _copy_rows(host_out[name][:rows], getattr(result, name)[lo:hi])
        pending[lane] = None
        lap("collect")

    for c, (lo, hi) in enumerate(bounds):
        lane = c % len(lanes)
        if pending[lane] is not None:
            collect(lane)
        stream, host_in, host_out, dev = lanes[lane]
        rows = hi - lo
        if source is None:
            _gather(packed, lo, varying, host_in["values"][:rows])
        else:
            _interleave(source, lo, host_in["values"][:rows])
        host_in["schedule_of"][:rows] = schedule_of[lo:hi]
        lap("fill")
        d_values = dev["values"][:rows]
        d_schedule_of = dev["schedule_of"][:rows]
        d_values.copy_to_device(host_in["values"][:rows], stream=stream)
        d_schedule_of.copy_to_device(host_in["schedule_of"][:rows], stream=stream)
        # numba's simulator runs a block's threads concurrently in Python, where they fight
        # over the GIL: there, blocks of one thread (run one after another) are much faster
        block = 1 if simulated else min(threads_per_block, rows)
        with warnings.catch_warnings():  # a small launch (a few samples) is by design
            warnings.filterwarnings("ignore", message=".*under-utilization")
            args = launch_arguments(
                d_base,
                d_slot,
                d_values,
                d_schedule_of,
                shared,
                threshold=threshold,
                rtol=rtol,
                atol=atol,
                max_steps=max_steps,
                method=method,
                metrics=metrics,
                stats=stats,
                out_metrics=dev["metrics"][:rows] if metrics else dev["metrics"],
                status=dev["status"][:rows],
                out_stats=dev["stats"][:rows] if stats else dev["stats"],
                out_x=dev["out_x"][:rows] if n_traj else dev["out_x"],
                out_dn=dev["out_dn"][:rows] if n_traj else dev["out_dn"],
            )
            if kernel_source is None:
                kernel_source = _kernel_source(kernels, args, simulated)
            kernels.solve_kernel[-(-rows // block), block, stream](*args)
        for name, array in host_out.items():
            dev[name][:rows].copy_to_host(array[:rows], stream=stream)
        pending[lane] = (lo, hi)
    for lane in range(len(lanes)):
        if pending[lane] is not None:
            collect(lane)
    if profile is not None:
        profile.update(
            phases, total=clock() - started, chunks=len(bounds), kernel_source=kernel_source
        )
    return result
