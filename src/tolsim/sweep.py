"""Parameter and schedule sweeps on Dask, written chunk by chunk to a Zarr store.

A sweep evaluates a :class:`~tolsim.design.Design` (rows = samples) in chunks. Each chunk is
one Dask task that calls the batched numba kernel on its samples (no per-sample Python),
reduces the trajectories to the requested outputs, and writes its region of the store; it
then sets its entry of ``chunk_done``. Rerunning on the same store skips finished chunks and
redoes a chunk whose marker is unset (it may be half-written), so an interrupted sweep loses
nothing and computes nothing twice. Each sample's result depends only on its own row, so the
store is bit-identical whatever the chunk size or number of workers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import xarray as xr

import tolsim
from tolsim.kernels.events import recurrence_days
from tolsim.kernels.specialise import _function_fingerprint
from tolsim.models.base import Columns, Model
from tolsim.recurrence import (
    check_threshold,
    derivative_jumps,
    metric_grid,
    withdrawal_within,
)
from tolsim.schedule import Schedule
from tolsim.simulate import (
    _METHOD_CODES,
    STATUS_MESSAGES,
    _check_times,
    _positive_float,
    check_rtol,
    lanes_apply,
    method_code,
    solve_batch,
)
from tolsim.stochastic import STATUS_MESSAGES as STOCHASTIC_STATUS_MESSAGES
from tolsim.stochastic import (
    STOCHASTIC_METHODS,
    _arm_days,
    _check_count,
    _check_initial_counts,
    kernel_module,
)

__all__ = ["METRICS", "StoreMismatchError", "sweep"]

METRICS = (
    "time_to_recurrence",
    "burden_at_withdrawal",
    "tolerant_fraction_at_withdrawal",
    "nadir_cells",
    "nadir_day",
    "status",
)


class StoreMismatchError(ValueError):
    """The store holds a different sweep (model, schedule, design or outputs)."""


STOCHASTIC_METRICS = (
    "extinction_probability",
    "tolerant_extinction_probability",
    "recurrence_probability",
    "time_to_recurrence",
    "burden_at_withdrawal",
    "status",
)


def _evaluate_paths(model, packed, schedule, spec, sample_ids) -> dict:
    """Stochastic metrics per sample over ``spec["paths"]`` paths; sample ``i`` draws from the
    streams of its global index ``sample_ids[i]`` (so chunking does not change them)."""
    kernels = kernel_module(model, spec["method"])
    w = withdrawal_within(schedule)
    end = schedule.duration_days
    t_out = np.array([end] if w is None or w == end else [w, end])
    compiled = schedule.compile(model.drugs, extra_days=_arm_days(w))
    arm_piece = -1 if w is None else int(np.searchsorted(compiled.breakpoints_days, w))
    level = spec["recurrence_threshold"]
    n, paths, n_states = packed.shape[0], spec["paths"], len(model.states)
    out = np.empty((n, paths, t_out.size, n_states), dtype=np.int64)
    summary = np.empty((n, paths, n_states + 2))
    stats = np.zeros((n, paths, kernels.N_STATS), dtype=np.int64)
    x0 = _check_initial_counts(model, packed)
    stoich = model.stoichiometry.astype(np.float64)
    for i in range(n):  # one call per sample: its streams follow its global index
        kernels.simulate_batch(
            kernels.METHOD,
            packed[i : i + 1],
            x0[i : i + 1],
            tuple(compiled),
            stoich,
            t_out,
            spec["seed"],
            int(sample_ids[i]),
            0,
            spec["max_events"],
            arm_piece,
            np.full(1, np.nan if level is None else level),
            spec["threshold"],
            out[i : i + 1],
            summary[i : i + 1],
            stats[i : i + 1],
        )
    final = out[:, :, -1, :]
    tolerant = [model.states.index(s) for s in model.tolerant_states]
    recurrence = summary[:, :, n_states + 1]
    if w is not None:
        recurrence = np.where(np.isnan(recurrence), np.inf, recurrence)
    data = {
        "status": stats[:, :, 0].min(axis=1).astype(np.int32),
        "extinction_probability": (final.sum(axis=2) == 0).mean(axis=1),
        "tolerant_extinction_probability": (final[:, :, tolerant].sum(axis=2) == 0).mean(axis=1),
        "recurrence_probability": np.isfinite(recurrence).mean(axis=1),
        "time_to_recurrence": np.median(recurrence, axis=1),
        "burden_at_withdrawal": (
            np.full(n, np.nan) if w is None else out[:, :, 0, :].sum(axis=2).mean(axis=1)
        ),
    }
    failed = data["status"] != 0  # a failed path's counts stop part-way: no estimate holds
    for name, values in data.items():
        if name != "status":
            values[failed] = np.nan
    return data


def _evaluate(model: Model, packed: np.ndarray, schedule: Schedule, spec: dict) -> dict:
    """Outputs of the samples ``packed`` under one schedule (batched kernel, then reduced)."""
    grid = metric_grid(schedule, spec["times"])
    compiled = schedule.compile(model.drugs)
    n = packed.shape[0]
    # totals in the kernel, as each sample finishes (numpy's two sums over a last axis of 2
    # states took ~80 ms for 10,000 samples, a separate parallel pass ~14 ms)
    out_x, out_dn, stats, total, fraction = solve_batch(
        model,
        packed,
        compiled,
        grid,
        spec["rtol"],
        spec["atol"],
        spec["max_steps"],
        method_code(model, compiled, spec["method"]),  # "auto": as tolsim.simulate
        lockstep=spec.get("lockstep", False),
        totals=True,
    )
    data = {"status": stats[:, 0].astype(np.int32)}
    if spec["outputs"] in ("metrics", "both"):
        w = withdrawal_within(schedule)
        if w is not None:
            k = int(np.searchsorted(grid, w))
            level = spec["recurrence_threshold"]
            levels = np.full(n, np.nan if level is None else level)
            data["time_to_recurrence"] = recurrence_days(
                grid,
                np.ascontiguousarray(total),
                np.ascontiguousarray(out_dn),
                derivative_jumps(compiled, grid),
                w,
                levels,
            )
            # copies: a column view would keep the chunk's whole (samples, days) arrays alive
            # for as long as the metric is (an in-memory sweep holds every chunk's metrics)
            data["burden_at_withdrawal"] = total[:, k].copy()
            data["tolerant_fraction_at_withdrawal"] = fraction[:, k].copy()
        else:
            for name in ("time_to_recurrence", "burden_at_withdrawal"):
                data[name] = np.full(n, np.nan)
            data["tolerant_fraction_at_withdrawal"] = np.full(n, np.nan)
        safe = np.where(np.isnan(total), np.inf, total)
        lowest = np.argmin(safe, axis=1)
        data["nadir_cells"] = total[np.arange(n), lowest]
        data["nadir_day"] = grid[lowest]
        failed = stats[:, 0] != 0  # partial trajectories: no metric is trustworthy
        for name, values in data.items():
            if name != "status":
                values[failed] = np.nan
    if spec["outputs"] in ("trajectories", "both"):
        index = np.searchsorted(grid, spec["times"])
        for i, state in enumerate(model.states):
            data[state] = out_x[:, index, i]
        data["N"] = total[:, index]
    return data


def _evaluate_cuda(model: Model, packed: Columns, schedules, schedule_of, spec: dict) -> dict:
    """The outputs of :func:`_evaluate` from one GPU launch over all of a chunk's schedules:
    metrics reduced on the device; samples found stiff are redone on the CPU."""
    from tolsim import cuda

    module = cuda.require()
    grids = [metric_grid(schedule, spec["times"]) for schedule in schedules]
    want_metrics = spec["outputs"] in ("metrics", "both")
    traj = spec["times"] if spec["outputs"] != "metrics" else None
    table = cuda.schedule_table(model, schedules, grids, traj_times=traj)
    level = spec["recurrence_threshold"]
    with module.gpus[cuda.worker_device_index(len(module.gpus))]:
        result = cuda.solve(
            model,
            packed,
            table,
            schedule_of,
            metrics=want_metrics,
            n_traj=0 if traj is None else traj.size,
            threshold=np.nan if level is None else level,
            rtol=spec["rtol"],
            atol=spec["atol"],
            max_steps=spec["max_steps"],
            method=spec["method"],
            chunk_size=spec["gpu_chunk_size"],
            specialise=spec.get("gpu_specialise", False),
        )
    data = {"status": result.status}
    if want_metrics:
        for i, name in enumerate(cuda.METRIC_NAMES):
            data[name] = result.metrics[:, i]
    if traj is not None:
        for i, state in enumerate(model.states):
            data[state] = result.out_x[:, :, i]
        data["N"] = result.out_x.sum(axis=2)
    stiff = result.status == cuda.STIFF_DETECTED
    for g in np.unique(schedule_of[stiff]):
        rows = np.flatnonzero(stiff & (schedule_of == g))
        for name, values in _evaluate(model, packed.rows(rows), schedules[g], spec).items():
            data[name][rows] = values
    return data


def _chunk_task(spec: dict, start: int, stop: int, columns: dict) -> int:
    """Compute samples ``[start, stop)`` and write them into the store (runs on a worker)."""
    _match_numba_threads_to_worker()
    data = _compute_chunk(spec, start, stop, columns)
    region = {"sample": slice(start, stop)}
    chunk = xr.Dataset({name: (_dims(values), values) for name, values in data.items()})
    chunk.to_zarr(spec["store"], region=region, mode="r+", consolidated=False)
    marker = xr.Dataset({"chunk_done": ("chunk", np.array([True]))})
    index_ = start // spec["chunk_size"]
    marker.to_zarr(
        spec["store"], region={"chunk": slice(index_, index_ + 1)}, mode="r+", consolidated=False
    )
    return stop - start


def _dims(values: np.ndarray) -> tuple[str, ...]:
    return ("sample",) if values.ndim == 1 else ("sample", "time")


def _compute_chunk(
    spec: dict, start: int, stop: int, columns: dict, packed_columns: Columns | None = None
) -> dict:
    """The outputs of samples ``[start, stop)``, one array per variable.

    With a schedule template, the chunk's rows are grouped by their slot values and each
    group runs as one batched kernel call under its own schedule. ``packed_columns``: the
    chunk's parameter columns already packed by :meth:`Model.pack_columns` (the GPU's input),
    if the caller has them.
    """
    model: Model = spec["model"]
    columns = {name: np.asarray(column) for name, column in columns.items()}
    slots = spec["slots"]
    table = {name: values for name, values in columns.items() if name not in slots}
    n = stop - start
    if spec["device"] == "cuda":  # the GPU is sent the design's columns, never a packed matrix
        if packed_columns is not None:
            packed = packed_columns
        elif table:
            packed = model.pack_columns(table, "design")
        else:
            packed = Columns(model.pack({}), np.zeros(0, dtype=np.int64), (), n)
    elif table:
        packed = model.pack_table(table, "design")
    else:
        packed = model.pack({})[None].repeat(n, 0)
    stochastic = spec["method"] in STOCHASTIC_METHODS

    def evaluate(packed_rows, schedule, rows):
        if stochastic:
            return _evaluate_paths(model, packed_rows, schedule, spec, start + rows)
        return _evaluate(model, packed_rows, schedule, spec)

    # the chunk's distinct schedules (one without slots) and each row's schedule
    if slots:
        keys = np.stack([columns[name] for name in slots], axis=1)
        unique, group = np.unique(keys, axis=0, return_inverse=True)
        group = group.ravel()
        schedules = []
        for g, values in enumerate(unique):
            try:
                schedules.append(
                    spec["schedule"](**dict(zip(slots, values.tolist(), strict=True)))
                )
            except (TypeError, ValueError) as error:  # name the design row, not the template
                row = start + int(np.flatnonzero(group == g)[0])
                given = ", ".join(
                    f"{s}={v!r}" for s, v in zip(slots, values.tolist(), strict=True)
                )
                raise type(error)(f"`design` row {row} ({given}): {error}") from None
    else:  # a schedule, or a template whose slots the design leaves at their defaults
        fixed = spec["schedule"]
        schedules = [fixed if isinstance(fixed, Schedule) else fixed()]
        group = np.zeros(n, dtype=np.int64)
    if spec["device"] == "cuda":  # all schedules in one launch
        data = _evaluate_cuda(model, packed, schedules, group, spec)
    elif len(schedules) == 1:
        data = evaluate(packed, schedules[0], np.arange(n))
    else:  # one batched kernel call per schedule
        data = {}
        for g, schedule in enumerate(schedules):
            rows = np.flatnonzero(group == g)
            part = evaluate(packed[rows], schedule, rows)
            for name, value in part.items():
                if name not in data:
                    data[name] = np.empty((n, *value.shape[1:]), dtype=value.dtype)
                data[name][rows] = value
    return data


def _identity(value):
    return value


def _match_numba_threads_to_worker() -> None:
    """Give the kernel as many numba threads as the Dask worker has threads: every worker
    running a parallel kernel on all cores would oversubscribe the machine."""
    import numba

    try:
        from distributed import get_worker

        threads = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        return  # not on a Dask worker
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def _check_lockstep(model: Model, schedule: Schedule, method: str, device: str) -> None:
    """Refuse ``lockstep=True`` where the lockstep kernel cannot run (before any work)."""
    if device != "cpu" or method not in ("auto", "dopri5"):
        raise ValueError(
            f"`lockstep` = True applies to CPU sweeps with method 'auto' or 'dopri5', not "
            f"`method` = {method!r} with `device` = {device!r}"
        )
    if model.lane_rates is None:
        raise ValueError(
            f"`lockstep` = True needs a model with `lane_rates`; {model.name!r} has none"
        )
    compiled = schedule.compile(model.drugs)
    if compiled.channel_drug.shape[0]:
        raise ValueError("`lockstep` = True needs a schedule without PK dosing")
    if not lanes_apply(model, compiled, method_code(model, compiled, method)):
        raise ValueError(
            f"`lockstep` = True needs the Dormand-Prince kernel on lanes, but `method` = "
            f"{method!r} solves {model.name!r} with the exact method (as tolsim.simulate "
            "does); pass method='dopri5' or lockstep=False"
        )


def _model_fingerprint(model: Model) -> str:
    """What the model computes, beyond :meth:`Model.describe`: its parameters (defaults and
    bounds), constants, stoichiometry, initial values, exposures, and the code of its rate
    function and of the jitted functions and constants that function uses."""
    digest = hashlib.sha256()
    text = json.dumps(
        {
            "parameters": [[p.name, p.unit, p.default, list(p.bounds)] for p in model.parameters],
            "constants": list(model.constants),
            "stoichiometry": model.stoichiometry.tolist(),
            "initial": [list(pair) for pair in model.initial],
            "drugs": list(model.drugs),
            "exposures": [[e.name, e.drug, e.ec50, e.hill] for e in model.exposures],
            "tolerant_states": list(model.tolerant_states),
        },
        sort_keys=True,
        default=str,
    )
    digest.update(text.encode())
    _function_fingerprint(model.rates.py_func, digest)
    return digest.hexdigest()


def _design_points(design) -> str | None:
    """A hash of the design's points when its spec cannot make them again (a table built
    directly as ``Design(columns, "table")``), else None (the spec is recorded)."""
    from tolsim.design import points_sha256

    if design.spec.get("sha256") or design.kind != "table" and design.spec:
        return None
    return points_sha256(design.columns)


def _template_fingerprint(template) -> str | None:
    """What a schedule template builds, beyond its recorded name and slots: the schedule at
    its default slots, and the code of its build function (with the values it captured)."""
    from tolsim.design import ScheduleTemplate

    if not isinstance(template, ScheduleTemplate):
        return None
    digest = hashlib.sha256(json.dumps(template().to_dict(), sort_keys=True).encode())
    build = template.build
    while isinstance(build, functools.partial):
        digest.update(repr((build.args, sorted(build.keywords.items()))).encode())
        build = build.func
    # (tolsim's own templates: the schedule at the defaults stands for their versioned code)
    if hasattr(build, "__code__") and not build.__module__.startswith("tolsim."):
        _function_fingerprint(build, digest)
        for cell in build.__closure__ or ():
            try:
                digest.update(repr(cell.cell_contents).encode())
            except ValueError:  # an empty cell
                pass
    return digest.hexdigest()


def _fingerprint_fields(model, schedule, design, outputs, times, settings) -> dict:
    """What the fingerprint covers but the design's points (cheap; checked before any work)."""
    return {
        "model": model.describe(),
        "model_code": _model_fingerprint(model),
        "schedule": schedule.to_dict(),
        "template_code": _template_fingerprint(schedule),
        "design": design.to_dict(),
        "outputs": outputs,
        "times": None if times is None else np.asarray(times).tolist(),
        "settings": settings,
    }


def _plain_settings(settings: dict) -> dict:
    """``settings`` with numbers as Python's int or float (JSON, and one fingerprint per
    sweep however a number was given)."""
    plain = {}
    for name, value in settings.items():
        if isinstance(value, bool | np.bool_):
            plain[name] = bool(value)
        elif isinstance(value, str) or value is None:
            plain[name] = value
        elif isinstance(value, int | np.integer) and name in _INTEGER_SETTINGS:
            plain[name] = int(value)
        elif isinstance(value, int | float | np.integer | np.floating):
            plain[name] = float(value)
        else:
            plain[name] = value
    return plain


_INTEGER_SETTINGS = ("max_steps", "paths", "seed", "max_events", "chunk_size")


def _differences(existing: xr.Dataset, model, schedule, design, outputs, settings, times) -> str:
    """What differs between the sweep a store records and this one, in words."""
    ours = {
        "model": json.dumps(model.describe()),
        "schedule": json.dumps(schedule.to_dict()),
        "design": json.dumps(design.to_dict(), default=str),
        "outputs": outputs,
    }
    parts = [name for name, text in ours.items() if existing.attrs.get(name) != text]
    stored_times = existing["time"].values if "time" in existing.coords else None
    if (stored_times is None) != (times is None) or (
        times is not None and not np.array_equal(stored_times, times)
    ):
        parts.append("times")
    try:
        stored = json.loads(existing.attrs.get("settings", "{}"))
    except (TypeError, ValueError):
        stored = {}
    for name in sorted(set(stored) | set(settings)):
        there, here = json.dumps(stored.get(name)), json.dumps(settings.get(name))
        if there != here:  # as text: 1000 (an older store's) is not 1000.0 here
            parts.append(f"{name} {there} there, {here} here")
    if not parts:
        return (
            "its model, schedule, design, outputs and settings read the same: the code of the "
            "model's rates or of the schedule template, or the design's points, differ"
        )
    return "it differs in " + "; ".join(parts)


def _check_resume(
    store: Path, existing: xr.Dataset, columns: dict, device: str, expected: list[str]
) -> None:
    """Refuse to resume a store (of this sweep's fingerprint) whose design columns hold other
    points (a design with the same spec made again, by another scipy, say) or that was
    started on another device (the results differ within the tolerance; a store holds one)."""
    where = existing.attrs.get("device")
    if where is not None and where != device:
        raise StoreMismatchError(
            f"`store` = {str(store)!r} was computed with `device` = {where!r}, not {device!r}: "
            "results of different devices agree only within the tolerance; resume it with "
            f"device={where!r}, or choose a new store path"
        )
    for name, values in columns.items():
        if name not in existing:
            raise StoreMismatchError(
                f"`store` = {str(store)!r} has no design column {name!r} (edited?): choose a "
                "new store path"
            )
        stored = existing[name].values
        if stored.shape != values.shape or not np.array_equal(stored, values, equal_nan=True):
            rows = np.flatnonzero(stored != values) if stored.shape == values.shape else [0]
            raise StoreMismatchError(
                f"`store` = {str(store)!r} holds other design points than `design` (column "
                f"{name!r}, first at sample {int(rows[0])}: {stored.flat[rows[0]]!r} there, "
                f"{values.flat[rows[0]]!r} here), though their specs agree; choose a new store "
                "path"
            )
    for name in expected:
        if name not in existing:
            raise StoreMismatchError(
                f"`store` = {str(store)!r} has no variable {name!r} (edited?): it cannot be "
                "resumed; choose a new store path"
            )


def _fingerprint_of(fields: dict, design_points: str | None) -> str:
    text = json.dumps(fields | {"design_points": design_points}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


DEFAULT_CHUNK = 10_000  # samples per task, Zarr chunk or in-memory batch
NOT_COMPUTED = -99  # `status` of a sample whose chunk is not computed yet
IN_MEMORY_GPU_CHUNK = 2**20  # samples per batch of sweep(store=None, device="cuda")


def sweep(
    model: Model,
    design,
    schedule: Schedule,
    *,
    store: str | os.PathLike | None,
    outputs: str = "metrics",
    times: Sequence[float] | None = None,
    client=None,
    chunk_size: int | None = None,
    method: str = "auto",
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int | None = None,
    recurrence_threshold: str | float = "size_at_withdrawal",
    max_chunks: int | None = None,
    paths: int | None = None,
    seed: int | None = None,
    max_events: int | None = None,
    threshold: float | None = None,
    device: str = "cpu",
    gpu_chunk_size: int | None = None,
    gpu_specialise: bool = False,
    lockstep: bool = False,
) -> xr.Dataset:
    """Evaluate a design of parameter sets on Dask, chunk by chunk into a Zarr store, or in
    this process into memory (``store=None``).

    Parameters
    ----------
    model : Model
    design : tolsim.design.Design, pandas.DataFrame or mapping of columns
        Rows are samples; every column is a model parameter or a slot of ``schedule``. A table
        is taken as :func:`tolsim.design.from_table` takes it.
    schedule : Schedule or tolsim.design.ScheduleTemplate
        With a template, design columns named after its slots (e.g. ``inhibitor_start_day``)
        are schedule parameters: each distinct combination builds its schedule, and the
        chunk's samples that share it run as one batched kernel call.
    store : path or None
        Zarr store. A new path is created; an existing store of the *same* sweep (same model,
        schedule, design, outputs and settings, recorded as a fingerprint in its attrs) is
        resumed: finished chunks are skipped, unfinished ones (marker unset) are redone. A
        store of a different sweep is refused (:class:`StoreMismatchError`), never overwritten.
        ``None``: no store and no Dask; the chunks run one after another in this process (on
        numba's threads, or the GPU) and the result is an in-memory Dataset with the same
        variables and attrs (no ``chunk_done``). For designs whose outputs fit in memory:
        a metrics-only sweep keeps 44 bytes per sample, and 8 per design column.
    outputs : {"metrics", "trajectories", "both"}
        ``metrics``: per sample ``time_to_recurrence`` (days after tamoxifen withdrawal,
        ``inf`` if not within the schedule), ``burden_at_withdrawal``,
        ``tolerant_fraction_at_withdrawal``, ``nadir_cells`` and ``nadir_day`` (lowest burden
        on the daily grid with breakpoints) and ``status``; a sample whose solve failed
        (``status`` < 0) has NaN metrics. Memory and disk per sample are constant.
        ``trajectories``: states and ``N`` at ``times``.
    recurrence_threshold : "size_at_withdrawal" or float
        The level ``time_to_recurrence`` times regrowth through, as for
        :func:`tolsim.time_to_recurrence`: each sample's own burden at withdrawal (default;
        a sample that grows from withdrawal on, its tolerant cells already regrowing under
        tamoxifen, scores 0 days, as it never falls below that size) or a number of cells,
        e.g. a detection limit, which times regrowth to a size for every sample.
    client : distributed.Client, cluster, scheduler address, or None
        Where to run. None starts a local cluster sized to the machine (one single-threaded
        worker per core) and closes it afterwards; a scheduler address
        (``"tcp://host:8786"``), a cluster object (e.g. ``dask_jobqueue.SLURMCluster``) or a
        client of any cluster runs there unchanged. Each task sets its kernel's numba threads
        to its worker's thread count.
    chunk_size : int, optional
        Samples per task (and per Zarr chunk); with ``store=None``, per batch (the CPU holds
        one batch's trajectories on the metric grid, ~6 kB per sample for two states).
        Default 10,000; for an in-memory sweep on the GPU (``store=None``,
        ``device="cuda"``), 2**20: a batch of 10,000 would fill a small part of a GPU.
    max_chunks : int, optional
        Compute at most this many pending chunks, then return (the rest stay pending for a
        later call on the same store, which must use the same ``chunk_size``); 0 creates the
        store only.
    method : str
        ODE methods as in :func:`tolsim.simulate`, or ``"ssa"``, ``"tau"``, ``"hybrid"``:
        each sample then runs ``paths`` stochastic paths (default 100; streams from
        ``(seed, sample index, path)``, so the store does not depend on chunking) and stores
        ``extinction_probability`` and ``tolerant_extinction_probability`` (no cell, no
        tolerant cell at the schedule's end), ``recurrence_probability``, the median
        ``time_to_recurrence`` over paths, the mean ``burden_at_withdrawal`` and the worst
        path ``status`` (where a path failed, every metric of the sample is NaN: its counts
        stopped part-way). ``seed`` is required; ``max_events`` and ``threshold`` as in
        :func:`tolsim.simulate`.
    rtol, atol, max_steps : float, float, int, optional
        ODE methods, as in :func:`tolsim.simulate` (defaults 1e-6, 1e-6 cells, 100,000).
        As there, options of the other kind of method (``rtol`` for ``"ssa"``,
        ``max_events`` for ``"dopri5"``...) are an error, not silently unused.

    device : {"cpu", "cuda"}
        ``"cuda"``: ODE methods "dopri5" and "auto" on NVIDIA GPUs (:mod:`tolsim.cuda`),
        launched in chunks of ``gpu_chunk_size`` samples (default: what fits a quarter of the
        free GPU memory). The GPU has no closed form: under "auto" a linear model is
        integrated (within the tolerance of the CPU's exact solution), not solved exactly.
    gpu_specialise : bool
        ``device="cuda"``: compile the parameters that are the same in every sample (those
        the design does not set) into the GPU kernel as constants. The same results bit for
        bit and a kernel about 30% faster, for one compile (5–10 s, then cached on disk) per
        distinct set of constant values: for large sweeps (see
        :func:`tolsim.cuda.solve`). Not part of the store's fingerprint.
    lockstep : bool
        CPU ODE sweeps: solve the samples in groups that share their steps, as
        ``tolsim.simulate(..., lockstep=True)`` does (a model with ``lane_rates``, method
        "auto" or "dopri5", no PK dosing): about 1.5x faster for a metrics sweep of the
        two-state model (the metrics take a fixed share of the time). Groups are formed within
        each chunk (and within each schedule of a template), so the values then depend,
        within the tolerance, on ``chunk_size``: it becomes part of the sweep's settings,
        and a store resumes only with the same one. Workers and resumption still give the
        same bits.

    Returns
    -------
    xarray.Dataset
        The store opened lazily (in memory with ``store=None``), dims ``sample`` (and
        ``time``), with the design's columns as variables and attrs recording the model,
        schedule, design, outputs, settings, device and tolsim version.
    """
    from distributed import Client, LocalCluster, as_completed

    if not isinstance(model, Model):
        raise TypeError(f"`model` = {model!r}: expected a tolsim.models.Model")
    from tolsim.design import Design, ScheduleTemplate, from_table

    if not isinstance(design, Design):
        if not (isinstance(design, Mapping) or hasattr(design, "columns")):
            raise TypeError(
                f"`design` is a {type(design).__name__}: expected a tolsim.design.Design (lhs, "
                "sobol, grid, from_csv, ...), a pandas.DataFrame or a mapping of columns"
            )
        design = from_table(design)
    if not isinstance(schedule, Schedule | ScheduleTemplate):
        raise TypeError(
            f"`schedule` = {schedule!r}: expected a tolsim.Schedule or a "
            "tolsim.design.ScheduleTemplate"
        )
    template = schedule if isinstance(schedule, ScheduleTemplate) else None
    slots = tuple(n for n in design.names if template is not None and n in template.slots)
    reference = template() if template is not None else schedule  # defaults: checks, times
    if outputs not in ("metrics", "trajectories", "both"):
        raise ValueError(f"`outputs` = {outputs!r}: expected 'metrics', 'trajectories' or 'both'")
    if method not in _METHOD_CODES and method not in STOCHASTIC_METHODS:
        raise ValueError(
            f"`method` = {method!r}: expected one of "
            f"{list(_METHOD_CODES) + list(STOCHASTIC_METHODS)}"
        )
    stochastic = method in STOCHASTIC_METHODS
    if device not in ("cpu", "cuda"):
        raise ValueError(f"`device` = {device!r}: expected 'cpu' or 'cuda'")
    if gpu_chunk_size is not None:
        gpu_chunk_size = _check_count(gpu_chunk_size, "gpu_chunk_size", 1)
    if not isinstance(gpu_specialise, bool | np.bool_):
        raise TypeError(f"`gpu_specialise` = {gpu_specialise!r}: expected True or False")
    if device != "cuda":  # silently unused otherwise
        for name, value, default in (
            ("gpu_chunk_size", gpu_chunk_size, None),
            ("gpu_specialise", gpu_specialise, False),
        ):
            if value is not default and value != default:
                raise ValueError(
                    f"`{name}` = {value!r} with `device` = {device!r}: `{name}` applies to "
                    "device='cuda'"
                )
    if device == "cuda":
        from tolsim import cuda

        if method not in cuda.METHODS:
            raise ValueError(
                f"`method` = {method!r} with `device` = 'cuda': the GPU kernel runs "
                f"{list(cuda.METHODS)}; use device='cpu' for other methods"
            )
        n_gpus = cuda.device_count()  # raises CudaUnavailableError here, before any work
    if stochastic:
        from tolsim.stochastic import check_seed

        seed = check_seed(seed)
        paths = _check_count(100 if paths is None else paths, "paths", 1)
        if outputs != "metrics":
            raise ValueError(
                f"`outputs` = {outputs!r}: stochastic sweeps store metrics only (per-sample "
                "probabilities over paths); use tolsim.simulate for paths"
            )
    else:
        for name, value in (("paths", paths), ("seed", seed)):
            if value is not None:  # silently unused otherwise
                raise ValueError(
                    f"`{name}` = {value!r} with `method` = {method!r}: `{name}` applies to the "
                    f"stochastic methods {list(STOCHASTIC_METHODS)}"
                )
    # options of the other kind of method are refused, not silently unused (as in simulate)
    ode_options = (("rtol", rtol), ("atol", atol), ("max_steps", max_steps))
    stochastic_options = (("max_events", max_events), ("threshold", threshold))
    for name, value in stochastic_options if not stochastic else ode_options:
        if value is not None:
            kind = "stochastic methods" if not stochastic else "ODE methods"
            raise ValueError(
                f"`{name}` = {value!r} with `method` = {method!r}: `{name}` applies to the {kind}"
            )
    rtol = 1e-6 if rtol is None else rtol  # (recorded for stochastic sweeps too, unused)
    atol = 1e-6 if atol is None else atol
    max_steps = 100_000 if max_steps is None else max_steps
    max_events = 10**8 if max_events is None else max_events
    threshold = 1000.0 if threshold is None else threshold
    if outputs == "metrics" and times is not None:
        raise ValueError(
            "`times` is given with `outputs` = 'metrics': the metrics come from their own "
            "daily grid; `times` chooses stored trajectories (outputs 'trajectories' or 'both')"
        )
    if chunk_size is None:
        chunk_size = IN_MEMORY_GPU_CHUNK if store is None and device == "cuda" else DEFAULT_CHUNK
    chunk_size = _check_count(chunk_size, "chunk_size", 1)
    if not isinstance(lockstep, bool | np.bool_):
        raise TypeError(f"`lockstep` = {lockstep!r}: expected True or False")
    if lockstep:
        _check_lockstep(model, reference, method, device)
    if not stochastic and device == "cpu":  # e.g. 'exact' for a non-linear model
        method_code(model, reference.compile(model.drugs), method)
    rtol = check_rtol(rtol)
    atol = _positive_float(atol, "atol")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int | np.integer) or max_steps < 1:
        raise ValueError(f"`max_steps` = {max_steps!r}: expected an integer >= 1")
    check_threshold(recurrence_threshold, "recurrence_threshold")
    if stochastic:
        threshold = _positive_float(threshold, "threshold")
        if threshold < 1.0:
            raise ValueError(f"`threshold` = {threshold!r} cells: expected a finite number >= 1")
        max_events = _check_count(max_events, "max_events", 1)
    if max_chunks is not None:
        max_chunks = _check_count(max_chunks, "max_chunks", 0)
    t_out = None
    if outputs != "metrics":
        if times is None:
            raise ValueError("`times` is required when `outputs` includes trajectories")
        t_out = np.array(_check_times(times, reference.duration_days))
    columns = {name: np.asarray(values, dtype=float) for name, values in design.columns.items()}
    parameter_columns = {k: v for k, v in columns.items() if k not in slots}
    packed_columns = None
    if parameter_columns:  # every row, as columns (no packed matrix): errors name the row
        packed_columns = model.pack_columns(parameter_columns, "design")
    if stochastic:  # whole numbers of cells, checked before any store exists
        for _, name in model.initial:
            values = parameter_columns.get(name)
            if values is None:
                values = np.array([model.parameter(name).default])
            bad = np.flatnonzero((values < 0) | (values != np.round(values)))
            if bad.size:
                where = f"design.{name}[{bad[0]}]" if name in parameter_columns else name
                raise ValueError(
                    f"`{where}` = {float(values[bad[0]])!r} cells: stochastic methods need a "
                    "whole, non-negative number of cells"
                )
    n_samples = len(design)
    n_chunks = -(-n_samples // chunk_size)
    settings = {
        "method": method,
        "rtol": rtol,
        "atol": atol,
        "max_steps": max_steps,
        "recurrence_threshold": recurrence_threshold,
    }
    if stochastic:
        settings.update(paths=paths, seed=seed, max_events=max_events, threshold=threshold)
    if lockstep:  # the groups, and so the values, depend on the chunks
        settings.update(lockstep=True, chunk_size=int(chunk_size))
    given_settings = settings  # as given: the fingerprints of stores made before 2026-11-27
    settings = _plain_settings(settings)  # 1000 and 1000.0, np.int64 and int: the same sweep
    spec = {
        "model": model,
        "schedule": schedule,
        "slots": slots,
        "times": t_out,
        "outputs": outputs,
        "method": method,
        "rtol": float(rtol),
        "atol": float(atol),
        "max_steps": int(max_steps),
        "recurrence_threshold": (
            None if isinstance(recurrence_threshold, str) else float(recurrence_threshold)
        ),
        "chunk_size": chunk_size,
        "paths": paths,
        "seed": seed,
        "max_events": int(max_events),
        "threshold": float(threshold),
        "device": device,
        "gpu_chunk_size": None if gpu_chunk_size is None else int(gpu_chunk_size),
        "gpu_specialise": bool(gpu_specialise),
        "lockstep": bool(lockstep),
    }
    fields = _fingerprint_fields(model, schedule, design, outputs, t_out, settings)
    legacy = fields | {"settings": given_settings}  # (the fields of older stores)
    if store is None:
        if client is not None:
            raise ValueError(
                f"`client` = {client!r} with `store` = None: an in-memory sweep runs in this "
                "process; give a Zarr `store` to run on a Dask cluster"
            )
        if max_chunks is not None:
            raise ValueError(
                f"`max_chunks` = {max_chunks!r} with `store` = None: only a sweep into a store "
                "can stop part-way and resume"
            )
        # the design's points are hashed (tens of ms per 1e6 samples) while the samples run
        with ThreadPoolExecutor(1, thread_name_prefix="tolsim-sweep-hash") as pool:
            points = pool.submit(_design_points, design)
            return _in_memory(
                spec, design, columns, stochastic, settings,
                lambda: _fingerprint_of(fields, points.result()), packed_columns,
            )  # fmt: skip
    fingerprint = _fingerprint_of(fields, _design_points(design))
    store = Path(store)

    def resumed() -> np.ndarray:
        """The chunks done in the existing ``store``, once it is known to hold this sweep."""
        try:
            existing = xr.open_zarr(store, consolidated=False)
        except Exception as error:  # zarr's errors differ by version: name the argument
            raise StoreMismatchError(
                f"`store` = {str(store)!r} exists but is not a Zarr store of a sweep "
                f"({type(error).__name__}: {error}), or one whose creation was interrupted "
                "before any metadata was written: choose a new store path (or remove it)"
            ) from error
        found = existing.attrs.get("tolsim_sweep_fingerprint")
        if found is None and "chunk_done" in existing:
            if not bool(existing["chunk_done"].values.any()):
                found = _CREATING  # interrupted before its attrs were written
            else:
                raise StoreMismatchError(
                    f"`store` = {str(store)!r} has computed chunks but no fingerprint (its "
                    "attrs were edited?): it cannot be told which sweep it holds; choose a new "
                    "store path"
                )
        if found == _CREATING:
            raise StoreMismatchError(
                f"`store` = {str(store)!r} was left half-created (interrupted before its design "
                "columns were written); nothing was computed in it: remove it and run again"
            )
        if found != fingerprint and found != _fingerprint_of(legacy, _design_points(design)):
            what = _differences(existing, model, schedule, design, outputs, settings, t_out)
            raise StoreMismatchError(
                f"`store` = {str(store)!r} holds a different sweep ({what}); choose a new "
                "store path"
            )
        expected = ["chunk_done", "status"]
        if outputs != "trajectories":
            expected += list((STOCHASTIC_METRICS if stochastic else METRICS)[:-1])
        if outputs != "metrics":
            expected += [*model.states, "N"]
        _check_resume(store, existing, columns, device, expected)
        written = existing.attrs.get("chunk_size")
        if written is None:
            raise StoreMismatchError(
                f"`store` = {str(store)!r} records no `chunk_size` (its attrs were edited?): "
                "it cannot be resumed; choose a new store path"
            )
        if existing.sizes["chunk"] != n_chunks or written != chunk_size:
            raise StoreMismatchError(
                f"`store` = {str(store)!r} was written in chunks of {written} samples "
                f"({existing.sizes['chunk']} chunks), not `chunk_size` = {chunk_size!r}: pass "
                "the same `chunk_size` as before to resume it"
            )
        done = existing["chunk_done"].values.copy()
        return done

    created = not store.exists() and _create_store(
        store, model, stochastic, schedule, design, columns, outputs, t_out, chunk_size,
        n_chunks, fingerprint, settings, device,
    )  # fmt: skip
    # (another process's store may have taken the path first: resumed like any other)
    done = np.zeros(n_chunks, dtype=bool) if created else resumed()
    pending = [int(i) for i in np.flatnonzero(~done)]
    if max_chunks is not None:
        pending = pending[:max_chunks]
    if pending:
        spec = {**spec, "store": str(store)}
        own_cluster = None
        own_client = False
        if client is None:
            own_cluster = LocalCluster(
                n_workers=n_gpus if device == "cuda" else (os.cpu_count() or 1),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
            )
            client = Client(own_cluster)
        elif isinstance(client, str) or not isinstance(client, Client):
            client = Client(client)  # an address, or a cluster object (dask_jobqueue, ...)
            own_client = True
        try:
            # The settings travel once, as the result of a task rather than as scattered
            # data: if the worker holding them dies, the scheduler recomputes them (scattered
            # data would be lost, and a broadcast fails outright when a worker dies during it)
            shared = client.submit(_identity, spec, pure=False, retries=3)
            futures = []
            for i in pending:  # each task carries only its own rows: worker memory per chunk
                lo, hi = i * chunk_size, min((i + 1) * chunk_size, n_samples)
                rows = {name: values[lo:hi] for name, values in columns.items()}
                futures.append(
                    client.submit(_chunk_task, shared, lo, hi, rows, retries=3, pure=False)
                )
            for future in as_completed(futures):
                future.result()
        finally:
            if own_cluster is not None or own_client:
                client.close()
            if own_cluster is not None:
                own_cluster.close()
    return xr.open_zarr(store, consolidated=False)


def _create_store(
    store,
    model,
    stochastic,
    schedule,
    design,
    columns,
    outputs,
    t_out,
    chunk_size,
    n_chunks,
    fingerprint,
    settings,
    device="cpu",
) -> bool:
    """Create the store, whole, at ``store``: built in a hidden folder beside it and renamed
    into place, so that no process ever sees a half-created store (an interrupted creation
    leaves nothing; a disk that fills leaves nothing). False if another process's store
    took the path first (then resume it)."""
    import uuid

    final = Path(store)
    # (a name of at most 255 bytes: the store's own may take all of them)
    building = final.parent / f".{final.name[:200]}.creating-{uuid.uuid4().hex[:12]}"
    try:
        _build_store(
            building, model, stochastic, schedule, design, columns, outputs, t_out,
            chunk_size, n_chunks, fingerprint, settings, device,
        )  # fmt: skip
        try:
            os.rename(building, final)  # atomic; refused onto an existing folder
        except OSError:
            if not final.exists():
                raise
            shutil.rmtree(building, ignore_errors=True)
            return False
    except OSError as error:
        shutil.rmtree(building, ignore_errors=True)
        if error.errno is None:
            raise
        raise type(error)(
            error.errno, f"`store` = {str(store)!r} could not be created: {error.strerror}",
            error.filename,
        ) from error  # fmt: skip
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return True


def _build_store(
    store, model, stochastic, schedule, design, columns, outputs, t_out, chunk_size, n_chunks,
    fingerprint, settings, device,
):  # fmt: skip
    import dask.array as da

    n = len(design)
    chunks = (min(chunk_size, n),)
    data_vars = {}

    def empty(shape, dtype, fill):
        chunking = chunks + tuple(shape[1:])
        return da.full(shape, fill, dtype=dtype, chunks=chunking)

    if outputs in ("metrics", "both"):
        for name in (STOCHASTIC_METRICS if stochastic else METRICS)[:-1]:
            data_vars[name] = (("sample",), empty((n,), np.float64, np.nan))
    data_vars["status"] = (("sample",), empty((n,), np.int32, NOT_COMPUTED))
    if outputs in ("trajectories", "both"):
        for name in (*model.states, "N"):
            data_vars[name] = (("sample", "time"), empty((n, t_out.size), np.float64, np.nan))
    for name, values in columns.items():
        data_vars[name] = (("sample",), da.from_array(values, chunks=chunks))
    data_vars["chunk_done"] = (("chunk",), da.zeros(n_chunks, dtype=bool, chunks=1))
    coords = {"sample": np.arange(n)}
    if t_out is not None:
        coords["time"] = ("time", t_out, {"units": "days"})
    ds = xr.Dataset(data_vars, coords=coords)
    # the fingerprint goes in last: a store whose creation was interrupted (its design columns
    # or statuses not yet written) is never taken for one to resume
    _describe(ds, model, schedule, design, outputs, settings, chunk_size, device, _CREATING)
    # Metadata only: outputs nobody has computed yet read as their fill value (NaN) without
    # writing n NaNs first; then the small arrays that must hold real values are written.
    # The known values are written from numpy here: computing the dask arrays above would
    # send them through the Dask client (the design's columns to a worker and back).
    # a lost chunk file of `status` reads as "not computed", not as 0, success
    encoding = {"status": {"fill_value": NOT_COMPUTED}}
    ds.to_zarr(store, compute=False, mode="w-", consolidated=False, encoding=encoding)
    known = {"status": (("sample",), np.full(n, NOT_COMPUTED, dtype=np.int32))}
    known.update({name: (("sample",), values) for name, values in columns.items()})
    xr.Dataset(known).to_zarr(store, region={"sample": slice(0, n)}, mode="r+", consolidated=False)
    xr.Dataset({"chunk_done": (("chunk",), np.zeros(n_chunks, dtype=bool))}).to_zarr(
        store, region={"chunk": slice(0, n_chunks)}, mode="r+", consolidated=False
    )
    _seal_store(store, fingerprint)


def _seal_store(store, fingerprint: str) -> None:
    """Write the fingerprint of a store whose creation has finished."""
    import zarr

    zarr.open_group(store, mode="r+").attrs["tolsim_sweep_fingerprint"] = fingerprint


# the fingerprint of a store while it is created
_CREATING = "incomplete: the store's creation did not finish"


_UNITS = {
    "extinction_probability": "1",
    "tolerant_extinction_probability": "1",
    "recurrence_probability": "1",
    "time_to_recurrence": "days",
    "burden_at_withdrawal": "cells",
    "tolerant_fraction_at_withdrawal": "1",
    "nadir_cells": "cells",
    "nadir_day": "days",
    "N": "cells",
}


_LONG_NAMES = {  # short: they label axes and colorbars (tolsim.plot)
    "extinction_probability": "extinction probability",
    "tolerant_extinction_probability": "tolerant extinction probability",
    "recurrence_probability": "recurrence probability",
    "time_to_recurrence": "time to recurrence after withdrawal",
    "burden_at_withdrawal": "burden at withdrawal",
    "tolerant_fraction_at_withdrawal": "tolerant fraction at withdrawal",
    "nadir_cells": "nadir burden",
    "nadir_day": "day of the nadir",
    "N": "total cells",
    "status": "solver status",
}


def _describe(ds, model, schedule, design, outputs, settings, chunk_size, device, fingerprint):
    """Units, long names and the attrs that record what a sweep computed (in place)."""
    for name in (*_UNITS, *model.states):
        if name in ds:
            ds[name].attrs["units"] = _UNITS.get(name, "cells")
    for name, text in _LONG_NAMES.items():
        if name in ds:
            ds[name].attrs["long_name"] = text
    parameters = {p.name: p for p in model.parameters}
    for name in design.names:  # design columns: a model parameter's unit, or a slot's
        if name not in ds:
            continue
        if name in parameters:
            ds[name].attrs["units"] = parameters[name].unit
            if parameters[name].description:
                ds[name].attrs["long_name"] = parameters[name].description
        elif name.endswith(("_day", "_days")):
            ds[name].attrs["units"] = "days"
        elif name.endswith("_um"):
            ds[name].attrs["units"] = "µM"
    messages = (
        STOCHASTIC_STATUS_MESSAGES if settings["method"] in STOCHASTIC_METHODS else STATUS_MESSAGES
    )
    ds["status"].attrs["flag_meanings"] = json.dumps(
        {**messages, NOT_COMPUTED: "not computed (its chunk is pending)"}
    )
    ds.attrs.update(
        title=f"tolsim sweep of {model.name}",
        model=json.dumps(model.describe()),
        # the values of the parameters the design does not set
        params=json.dumps(
            {p.name: p.default for p in model.parameters if p.name not in design.names}
        ),
        schedule=json.dumps(schedule.to_dict()),
        design=json.dumps(design.to_dict(), default=str),
        outputs=outputs,
        settings=json.dumps(settings),
        chunk_size=chunk_size,
        device=device,  # where the sweep was started (results agree up to rounding)
        tolsim_version=tolsim.__version__,
        tolsim_sweep_fingerprint=fingerprint,
    )


def _in_memory(
    spec, design, columns, stochastic, settings, fingerprint, packed_columns=None
) -> xr.Dataset:
    """``sweep(store=None)``: every chunk in this process, one after another (numba's threads
    or the GPU within each), assembled into an in-memory Dataset shaped like a store's.
    ``fingerprint()`` gives the sweep's fingerprint once the samples are computed;
    ``packed_columns``: all samples' parameter columns as the check before any work packed
    them (reused by a single chunk on the GPU)."""
    n, size = len(design), spec["chunk_size"]
    whole = packed_columns if n <= size else None
    parts = [
        _compute_chunk(
            spec,
            lo,
            min(lo + size, n),
            {k: v[lo : lo + size] for k, v in columns.items()},
            whole,
        )  # fmt: skip
        for lo in range(0, n, size)
    ]
    data_vars = {  # (one chunk: its arrays as they are, contiguous)
        name: (
            _dims(parts[0][name]),
            np.ascontiguousarray(parts[0][name])
            if len(parts) == 1
            else np.concatenate([part[name] for part in parts]),
        )
        for name in parts[0]
    }
    data_vars.update({name: (("sample",), values) for name, values in columns.items()})
    coords = {"sample": np.arange(n)}
    if spec["times"] is not None:
        coords["time"] = ("time", spec["times"], {"units": "days"})
    ds = xr.Dataset(data_vars, coords=coords)
    metrics = (STOCHASTIC_METRICS if stochastic else METRICS)[:-1]
    first = [name for name in (*metrics, "status") if name in ds]  # the store's order
    ds = ds[[*first, *(name for name in ds.data_vars if name not in first)]]
    _describe(
        ds, spec["model"], spec["schedule"], design, spec["outputs"], settings, size,
        spec["device"], fingerprint(),
    )  # fmt: skip
    return ds
