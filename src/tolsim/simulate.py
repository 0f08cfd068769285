"""The front door: validate, pick a kernel, pack the solution into an ``xarray.Dataset``."""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping

import numpy as np
import xarray as xr

import tolsim
from tolsim import buffers
from tolsim.kernels import summary
from tolsim.kernels.exposure import concentrations_at
from tolsim.kernels.specialise import specialised
from tolsim.models.base import Model
from tolsim.recurrence import _ARM_VARIABLES, PROVENANCE, provenance_digest
from tolsim.schedule import Schedule

__all__ = ["METHODS", "ODE_METHODS", "SolverError", "simulate", "simulate_arms"]

ODE_METHODS = ("auto", "dopri5", "rosenbrock", "exact")
METHODS = (*ODE_METHODS, "ssa", "tau", "hybrid")
_METHOD_CODES = {"dopri5": 0, "auto": 1, "rosenbrock": 2, "exact": 3}
STATUS_MESSAGES = {
    0: "success",
    -1: "step size underflow: the step size fell below 16 ulp of the current time",
    -2: "maximum number of steps reached (raise `max_steps`)",
    -3: "non-finite state (overflow or NaN in the rates)",
}


class SolverError(RuntimeError):
    """Raised by :func:`simulate` when a sample fails and ``throw=True``.

    The partial result (successful samples, and every output a failed sample reached) is
    kept in :attr:`dataset`, so no computed data is lost.
    """

    def __init__(self, message: str, dataset: xr.Dataset):
        super().__init__(message)
        self.dataset = dataset


def simulate(
    model: Model,
    params,
    schedule: Schedule,
    times,
    *,
    method: str = "auto",
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int | None = None,
    throw: bool = True,
    paths: int | None = None,
    seed=None,
    path_start: int | None = None,
    max_events: int | None = None,
    threshold: float | None = None,
    recurrence_threshold: str | float | None = None,
    device: str = "cpu",
    lockstep: bool = False,
) -> xr.Dataset:
    """Solve the model under a dosing schedule: the mean-field ODE, or stochastic paths.

    Parameters
    ----------
    model : Model
        e.g. ``tolsim.models.TwoState()``.
    params : mapping or table
        One parameter set (mapping name -> value, or a ``pandas.Series`` such as a row of a
        table; missing names take defaults), or many: a ``pandas.DataFrame`` or a mapping of
        equal-length 1-d arrays (scalars broadcast).
        Many sets add a ``sample`` dimension (numbered 0, 1, ...: a data frame's index is not
        kept; its rows are in order) and are solved in parallel (``numba.prange``); the
        result holds them as the ``parameters`` variable (a single set also as the ``params``
        attr).
    schedule : Schedule
        Dosing schedule; exposures switch exactly at its breakpoints.
    times : array_like, shape (n_times,)
        Output days: finite, >= 0, strictly increasing, within the schedule's duration.
        Real numbers (int or float) are days; ``numpy.timedelta64`` values (or a pandas
        ``TimedeltaIndex``) are converted to days since the schedule's start (``24 h`` is day
        1). Dates (``datetime64``), booleans, complex numbers and strings are refused.
    method : {"auto", "dopri5", "rosenbrock", "exact", "ssa", "tau", "hybrid"}
        ODE methods — ``"auto"``: the exact matrix-exponential solution for a linear model
        with piecewise-constant concentrations, otherwise Dormand–Prince 5(4) switching to the
        Rosenbrock method when the problem is detected to be stiff.
        Stochastic methods (whole cells, the same transitions at the same propensities; see
        :mod:`tolsim.kernels.stochastic_template`) — ``"ssa"``: Gillespie's exact direct
        method; ``"tau"``: adaptive tau-leaping (Cao, Gillespie & Petzold 2006) with critical
        transitions fired exactly; ``"hybrid"``: transitions that change a state below
        ``threshold`` cells fire exactly, the rest follow the mean-field ODE — for tumours of
        1e9 cells with a few tolerant cells.
    rtol, atol : float
        ODE methods: relative tolerance (default 1e-6) and absolute tolerance (cells; default
        1e-6) of the adaptive methods. The absolute floor of 1e-6 cells keeps a last tolerant
        cell accurately resolved.
    max_steps : int
        ODE methods: steps (accepted plus rejected) allowed per sample (default 100,000).
    throw : bool
        Raise :class:`SolverError` if a sample fails (default); with ``False`` the failure is
        recorded in ``status`` and ``message`` only.
    paths : int
        Stochastic methods: number of paths per parameter set (adds a ``path`` dim).
    seed : int or numpy.random.Generator
        Stochastic methods (required): path ``q`` of sample ``s`` draws from its own stream
        seeded by ``(seed, s, q)``, so results do not depend on threads or batching.
    path_start : int
        Stochastic methods: index of the first path (default 0): ``paths=50,
        path_start=50`` gives paths 50-99 of the same run, identical to those of
        ``paths=100``.
    max_events : int
        Stochastic methods: events allowed per path (SSA and hybrid: exact events; tau: leaps
        and exact steps); default 1e8. SSA refuses up front a run whose mean-field estimate
        exceeds it.
    threshold : float
        Hybrid method: states below this many cells are simulated exactly (default 1000).
        Accepted (and checked: a number >= 1) but unused by "ssa" and "tau", so one set of
        stochastic options serves all three methods.
    recurrence_threshold : "size_at_withdrawal" or float
        Stochastic methods: burden (cells) whose first exceedance after tamoxifen withdrawal
        gives each path's ``time_to_recurrence``, computed exactly in the kernel (default
        ``"size_at_withdrawal"``; for ODE results use :func:`tolsim.time_to_recurrence`).
        Stochastic options given to an ODE method are an error, not silently ignored.
    device : {"cpu", "cuda"}
        ``"cuda"`` solves the ODE on an NVIDIA GPU (:mod:`tolsim.cuda`; needs numba-cuda),
        one thread per parameter set, with the CPU kernel's Dormand–Prince method step for
        step: ``method`` ``"dopri5"`` or ``"auto"`` (DOPRI5 with stiffness detection; a
        sample found stiff is redone on the CPU with the Rosenbrock switch, as the CPU's
        ``"auto"`` would; a linear model is integrated, not solved exactly); or ``"tau"``:
        tau-leaping, one GPU thread per path, each drawing from the same random stream as
        on the CPU, so the paths are the CPU's (:mod:`tolsim.cuda_stochastic` says where
        the GPU's ``exp``/``log``/``pow`` can change last bits).
    lockstep : bool
        Solve consecutive parameter sets in groups of 64 that take the same Dormand–Prince
        steps (CPU, ``method`` "dopri5" or "auto", a model with ``lane_rates`` such as the
        built-in ones, no PK dosing; "auto" solves a linear model exactly instead, so
        lockstep there needs ``method="dopri5"``): several times faster for large tables. The step
        control takes the largest error estimate of the group, so every sample meets the
        tolerance at every step (and is usually more accurate than alone), but a sample's
        values then depend, within the tolerance, on the others in its group: the same table
        gives the same bits, a reordered or subset table may not. ``n_steps`` and the other
        counts are the group's. A group that fails or that the stiffness test flags is
        solved again one sample at a time. Default ``False``: every sample is solved on its
        own steps, and its values do not depend on the others.

    Returns
    -------
    xarray.Dataset
        Variables per state (cells), ``N``, ``tolerant_fraction``, ``dN_dt``, drug
        concentrations ``<drug>_um``, exposures (e.g. ``E_tam``), per-sample ``status``,
        ``n_steps``, ``n_rejected_steps``, ``n_rhs_evaluations``, ``switched_to_stiff``, and
        ``parameters``; dims ``time`` (days) and, for a table, ``sample``. Attributes record
        the model, schedule, method, tolerances, tolsim version and ``withdrawal_day``.
        Stochastic methods add a ``path`` dim (coordinate ``path_start ...``) and give int64
        counts (-1 where a failed path did not reach), no ``dN_dt``; per path ``status``,
        ``message``, ``n_events``, ``n_steps``, ``extinction_day_<state>``,
        ``extinction_day`` and ``time_to_recurrence`` (days after withdrawal; ``inf`` when
        not within the simulated days); attrs add ``seed`` and ``max_events``. Hybrid
        results round mean-field states to whole cells stochastically (unbiased).

    Examples
    --------
    >>> import numpy as np, tolsim
    >>> model = tolsim.models.TwoState()
    >>> schedule = tolsim.Schedule.from_phases([{"days": 60, "tamoxifen": 1.0}, {"days": 60}])
    >>> ds = tolsim.simulate(model, model.default_params(), schedule, np.arange(121.0))
    >>> bool(ds.N.sel(time=60) < ds.N.sel(time=120))
    True
    """
    if not isinstance(model, Model):
        raise TypeError(f"`model` = {model!r}: expected a tolsim.models.Model")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"`schedule` = {schedule!r}: expected a tolsim.Schedule")
    if method not in METHODS:
        raise ValueError(f"`method` = {method!r}: expected one of {list(METHODS)}")
    stochastic = method in ("ssa", "tau", "hybrid")
    if not stochastic:
        given = [
            name
            for name, value in (
                ("paths", paths),
                ("seed", seed),
                ("path_start", path_start),
                ("max_events", max_events),
                ("threshold", threshold),
                ("recurrence_threshold", recurrence_threshold),
            )
            if value is not None
        ]
        if given:
            raise ValueError(
                f"`{given[0]}` applies to stochastic methods ('ssa', 'tau', 'hybrid'), not "
                f"`method` = {method!r}"
            )
    else:
        given = [
            name
            for name, value in (("rtol", rtol), ("atol", atol), ("max_steps", max_steps))
            if value is not None
        ]
        if given:
            raise ValueError(
                f"`{given[0]}` applies to the ODE methods, not `method` = {method!r} (whose "
                "budget is `max_events`)"
            )
    if not isinstance(throw, bool | np.bool_):
        raise TypeError(f"`throw` = {throw!r}: expected True or False")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"`device` = {device!r}: expected 'cpu' or 'cuda'")
    if not isinstance(lockstep, bool | np.bool_):
        raise TypeError(f"`lockstep` = {lockstep!r}: expected True or False")
    if lockstep and (stochastic or device != "cpu"):
        raise ValueError(
            f"`lockstep` = True applies to the CPU's ODE methods, not `method` = {method!r} "
            f"with `device` = {device!r}"
        )
    if device == "cuda" and method in ("ssa", "hybrid"):
        raise ValueError(
            f"`method` = {method!r} with `device` = 'cuda': among the stochastic methods only "
            "'tau' runs on the GPU; use device='cpu' for 'ssa' and 'hybrid'"
        )
    if device == "cuda" and method not in ("auto", "dopri5", "tau"):
        raise ValueError(
            f"`method` = {method!r} with `device` = 'cuda': the GPU kernel runs 'dopri5' and "
            "'auto' (DOPRI5 with stiffness detection), and 'tau' for stochastic paths; use "
            "device='cpu' for other methods"
        )
    rtol = check_rtol(1e-6 if rtol is None else rtol)
    atol = _positive_float(1e-6 if atol is None else atol, "atol")
    max_steps = 100_000 if max_steps is None else max_steps
    if isinstance(max_steps, bool) or not isinstance(max_steps, int | np.integer) or max_steps < 1:
        raise ValueError(f"`max_steps` = {max_steps!r}: expected a positive integer")
    t_out = _check_times(times, schedule.duration_days)
    packed, single = _pack_params(model, params)
    if stochastic:
        from tolsim.stochastic import DEFAULT_MAX_EVENTS, simulate_paths

        return simulate_paths(
            model,
            packed,
            single,
            schedule,
            t_out,
            method,
            paths=1 if paths is None else paths,
            seed=seed,
            path_start=0 if path_start is None else path_start,
            max_events=DEFAULT_MAX_EVENTS if max_events is None else max_events,
            threshold=1000.0 if threshold is None else threshold,
            recurrence_threshold=(
                "size_at_withdrawal" if recurrence_threshold is None else recurrence_threshold
            ),
            throw=throw,
            device=device,
        )
    compiled = schedule.compile(model.drugs)
    if device == "cuda":
        return _simulate_cuda(
            model, packed, single, schedule, t_out, compiled, method, rtol, atol, max_steps, throw
        )

    constant_exposure = compiled.channel_drug.shape[0] == 0
    code = method_code(model, compiled, method)

    if lockstep and not lanes_apply(model, compiled, code):
        if model.lane_rates is None:
            why = "the model has no `lane_rates`"
        elif not constant_exposure:
            why = "the schedule has PK dosing"
        else:
            used = "exact" if code == _METHOD_CODES["exact"] else "Rosenbrock"
            why = f"`method` = {method!r} solves this model with the {used} method"
        raise ValueError(
            f"`lockstep` = True needs the Dormand-Prince kernel on lanes, but {why}; pass "
            "lockstep=False"
        )
    n_samples, n_times, n_states = packed.shape[0], t_out.shape[0], len(model.states)
    _check_memory(n_samples, n_times, n_states, len(model.exposures))
    solution = solve_batch(
        model, packed, compiled, t_out, rtol, atol, max_steps, code, lockstep=lockstep, totals=True
    )
    ds = _to_dataset(model, packed, single, schedule, t_out, compiled, solution, code, rtol, atol)
    if lockstep:
        kernels = lane_kernels(model)
        ds.attrs["lockstep_lanes"] = kernels.LOCKSTEP_LANES
        for name in ("n_steps", "n_rejected_steps", "n_rhs_evaluations"):
            ds[name].attrs["long_name"] += " (of the sample's lockstep group)"
    return _checked(ds, solution[2][:, 0], throw)


def simulate_arms(
    model: Model,
    params,
    schedules: Mapping[str, Schedule],
    times,
    *,
    dim: str = "arm",
    **options,
) -> xr.Dataset:
    """:func:`simulate` under each schedule of ``schedules`` (name -> Schedule), the results
    stacked along ``dim`` (one entry per arm, in the mapping's order).

    ``params``, ``times`` and ``options`` (``method``, ``rtol``, ``paths``, ``seed``, ...)
    are the same in every arm. Stochastic arms with one ``seed`` share their random streams
    (keyed by seed, sample and path): common random numbers, so that differences between
    arms are the schedules', not the draws'. Every arm's times must lie within its schedule.

    Returns
    -------
    xarray.Dataset
        :func:`simulate`'s variables with the ``dim`` dimension where they differ between
        arms; ``schedule`` (``dim``): each arm's schedule as JSON (``Schedule.from_json``);
        ``withdrawal_day`` (``dim``): each arm's tamoxifen withdrawal day (NaN where it
        gives none), which :func:`tolsim.time_to_recurrence` reads. Attributes: those all
        arms share (model, parameters, method, version, ...); an attribute that differs
        between arms (e.g. ``method``: ``"exact"`` for a linear in-vitro arm, ``"auto"`` for
        an arm with PK dosing) is a variable along ``dim`` instead, one value per arm.
        ``dim`` may not be ``"schedule"`` or ``"withdrawal_day"``.

    Examples
    --------
    >>> import numpy as np, tolsim
    >>> model = tolsim.models.TwoState()
    >>> arms = {
    ...     "tamoxifen": tolsim.Schedule.from_phases([{"days": 56, "tamoxifen": 1.0},
    ...                                               {"days": 120}]),
    ...     "with inhibitor": tolsim.Schedule.from_phases(
    ...         [{"days": 56, "tamoxifen": 1.0, "inhibitor": 5.0}, {"days": 120}]),
    ... }
    >>> ds = tolsim.simulate_arms(model, model.default_params(), arms, np.arange(177.0))
    >>> ds.N.dims, ds.arm.values.tolist()
    (('arm', 'time'), ['tamoxifen', 'with inhibitor'])
    >>> tolsim.time_to_recurrence(ds, threshold=1e6).round(1).values.tolist()  # days
    [8.6, 18.9]
    """
    if not isinstance(schedules, Mapping) or not schedules:
        what = "an empty mapping" if isinstance(schedules, Mapping) else type(schedules).__name__
        raise TypeError(
            f"`schedules` is {what}: expected a non-empty mapping of arm names to tolsim.Schedule"
        )
    for name, schedule in schedules.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"`schedules` has arm name {name!r}: expected a non-empty str")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"`schedules[{name!r}]` = {schedule!r}: expected a tolsim.Schedule")
    if not isinstance(dim, str) or not dim:
        raise TypeError(f"`dim` = {dim!r}: expected a non-empty str")
    if dim in _PER_ARM_NAMES:
        raise ValueError(
            f"`dim` = {dim!r} is the name of a per-arm variable of the result (the arms' "
            f"{', '.join(repr(n) for n in _PER_ARM_NAMES)}): choose another, e.g. 'arm'"
        )
    runs = []
    for name, schedule in schedules.items():
        try:
            ds = simulate(model, params, schedule, times, **options)
        except (TypeError, ValueError) as error:  # say which arm
            raise type(error)(f"arm {name!r}: {error}") from error
        if dim in ds.dims or dim in ds.variables:
            raise ValueError(f"`dim` = {dim!r} is already a name in the result: choose another")
        runs.append(ds)
    stacked = xr.concat(
        runs,
        dim=xr.Variable(dim, list(schedules)),
        data_vars="different",
        coords="different",
        compat="equals",
        join="exact",
        combine_attrs="drop_conflicts",  # what differs is kept as a variable below
    )
    stacked["schedule"] = (
        dim,
        [schedule.to_json() for schedule in schedules.values()],
        {"long_name": "the arm's tolsim.Schedule as JSON (Schedule.from_json)"},
    )
    stacked["withdrawal_day"] = (
        dim,
        [float(ds.attrs.get("withdrawal_day", np.nan)) for ds in runs],
        {"units": "days", "long_name": "day tamoxifen is withdrawn (NaN: the arm gives none)"},
    )
    stacked.attrs.pop("withdrawal_day", None)  # per arm, in the variable
    stacked = stacked.drop_vars(PROVENANCE, errors="ignore")  # per arm: the variables
    for name, values in _differing_attrs(runs).items():
        if name in _PER_ARM_NAMES:
            continue  # the variables above
        if name == dim:
            raise ValueError(
                f"`dim` = {dim!r}: the arms differ in their {name!r}, which the result keeps "
                "per arm under that name: choose another `dim`, e.g. 'arm'"
            )
        stacked.attrs.pop(name, None)  # drop_conflicts keeps one an arm lacks
        variable = name if name not in stacked.variables else f"{name}_of_arm"  # e.g. a state
        stacked[variable] = (dim, values, {"long_name": f"the arm's {name!r} attribute"})
    return stacked


# variables simulate_arms always adds along its `dim`: no arm dimension may take these names
_PER_ARM_NAMES = _ARM_VARIABLES


def _differing_attrs(runs: list[xr.Dataset]) -> dict[str, list]:
    """Attributes not the same in every run (e.g. ``method``: "exact" for an in-vitro arm,
    "auto" for an arm with PK dosing), each as its values, one per run: a missing one is
    NaN among numbers, else ""."""
    names = dict.fromkeys(name for ds in runs for name in ds.attrs)
    differing = {}
    for name in names:
        values = [ds.attrs.get(name, _MISSING) for ds in runs]
        if all(_same_attr(values[0], v) for v in values[1:]):
            continue
        present = [v for v in values if v is not _MISSING]
        numeric = all(
            isinstance(v, int | float | np.integer | np.floating)
            and not isinstance(v, bool | np.bool_)
            for v in present
        )
        fill = np.nan if numeric else ""
        if numeric:
            differing[name] = [float(v) if v is not _MISSING else fill for v in values]
        else:
            differing[name] = [
                v
                if isinstance(v, str)
                else (fill if v is _MISSING else json.dumps(_plain(v), default=str))
                for v in values
            ]
    return differing


_MISSING = object()


def _same_attr(a, b) -> bool:
    """Whether two attribute values are equal (NaN equal to NaN, as xarray compares)."""
    if a is _MISSING or b is _MISSING:
        return a is b
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "biuf" and b.dtype.kind in "biuf":
        return bool(np.array_equal(a, b, equal_nan=True))
    if a.dtype.kind in "biuf" or b.dtype.kind in "biuf":
        return False  # a number and something else
    return a.shape == b.shape and bool(np.all(a == b))


def _plain(value):
    """``value`` as JSON-able data (numpy scalars and arrays as Python numbers and lists)."""
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else value


def method_code(model: Model, compiled, method: str) -> int:
    """The kernel code of an ODE ``method`` for ``model`` under ``compiled``: "auto" is the
    exact path for a linear model with piecewise-constant concentrations (the matrix
    exponential of each piece), DOPRI5 with stiffness detection otherwise; "exact" is
    refused where it does not apply. Every CPU route (simulate, sweeps, fits' predictions,
    schedule optimisation) takes its method from here."""
    constant_exposure = compiled.channel_drug.shape[0] == 0
    if method == "exact" and not (model.linear and constant_exposure):
        why = "the model is not linear" if not model.linear else "the schedule has PK dosing"
        raise ValueError(
            f"`method` = 'exact' needs a linear model with piecewise-constant concentrations; "
            f"{why} (use 'auto', 'dopri5' or 'rosenbrock')"
        )
    if method == "auto" and model.linear and constant_exposure:
        return _METHOD_CODES["exact"]
    return _METHOD_CODES[method]


def solve_batch(
    model: Model,
    packed,
    compiled,
    t_out,
    rtol,
    atol,
    max_steps,
    code,
    lanes=None,
    lockstep=False,
    totals=False,
):
    """The CPU ODE kernel over the rows of ``packed`` under one compiled schedule.

    Returns ``out_x`` (samples, times, states) cells, ``out_dn`` (samples, times) dN/dt and
    ``stats`` (samples, N_STATS): status, accepted and rejected steps, right-hand sides,
    stiffness switch; with ``totals=True`` also ``total`` cells and ``tolerant_fraction``
    (samples, times), computed in the kernel as each sample finishes (as
    :func:`tolsim.kernels.summary.totals` would from ``out_x``, without reading the whole
    ensemble's outputs back from memory). Inputs are trusted (checked by the callers).

    ``lanes``: ``None`` uses the lane kernel (:mod:`~tolsim.kernels.
    ode_lanes_template`) where it applies — a model with ``lane_rates``, method "dopri5" or
    "auto", no PK dosing — and the one-trajectory kernel otherwise; both give the same
    numbers. ``False`` forces the one-trajectory kernel, ``True`` the lanes (an error where
    they do not apply). ``lockstep``: groups of lanes that share their steps
    (:func:`~tolsim.kernels.ode_lanes_template.lockstep_group`; needs what the lanes need).
    """
    kernels = ode_kernels(model, code)
    packed, t_out = kernel_array(packed), kernel_array(t_out)
    usable = lanes_apply(model, compiled, code)
    if (lanes or lockstep) and not usable:
        raise ValueError(
            f"`{'lockstep' if lockstep else 'lanes'}` = True: the lane kernels need a model "
            "with `lane_rates`, method 'dopri5' or 'auto' and a schedule without PK dosing"
        )
    n_samples, n_times = packed.shape[0], t_out.shape[0]
    out_x = buffers.empty((n_samples, n_times, len(model.states)))
    out_dn = buffers.empty((n_samples, n_times))
    stats = np.zeros((n_samples, kernels.N_STATS), dtype=np.int64)
    out_total = buffers.empty((n_samples if totals else 0, n_times))
    out_fraction = buffers.empty(out_total.shape)
    columns = tolerant_index(model)
    stoich = model.stoichiometry.astype(np.float64)
    x0 = model.initial_state(packed)
    if usable and (lanes is not False or lockstep):
        lanes_module = lane_kernels(model)
        arguments = (
            packed,
            x0,
            compiled.breakpoints_days,
            np.ascontiguousarray(compiled.level_um),
            exposure_index(model),
            t_out,
            rtol,
            atol,
            int(max_steps),
            code,
        )
        outputs = (out_x, out_dn, stats, columns, out_total, out_fraction)
        if lockstep:
            lanes_module.solve_lockstep(*arguments, *outputs)
            redo = np.flatnonzero(stats[:, 0] == lanes_module.REDO_ALONE)
        else:
            block_size = _lane_block_size(n_samples, lanes_module.LANES)
            lanes_module.solve_batch(*arguments, block_size, *outputs)
            redo = np.flatnonzero(stats[:, 0] == lanes_module.STIFF_DETECTED)
        if redo.size == 0:
            return (out_x, out_dn, stats, out_total, out_fraction) if totals else outputs[:3]
        packed, x0 = packed[redo], x0[redo]
        full = out_x, out_dn, stats, out_total, out_fraction
        out_x, out_dn = out_x[redo], out_dn[redo]
        stats = np.zeros((redo.size, kernels.N_STATS), dtype=np.int64)
        out_total = np.empty((redo.size if totals else 0, n_times))
        out_fraction = np.empty_like(out_total)
    else:
        redo = None
    kernels.solve_batch(  # the kernel fills NaN first
        packed,
        x0,
        tuple(compiled),
        stoich,
        t_out,
        rtol,
        atol,
        int(max_steps),
        code,
        out_x,
        out_dn,
        stats,
        columns,
        out_total,
        out_fraction,
    )
    if redo is not None:
        full[0][redo], full[1][redo], full[2][redo] = out_x, out_dn, stats
        if totals:
            full[3][redo], full[4][redo] = out_total, out_fraction
        out_x, out_dn, stats, out_total, out_fraction = full
    return (out_x, out_dn, stats, out_total, out_fraction) if totals else (out_x, out_dn, stats)


def ode_kernels(model: Model, code: int):
    """The model's copy of :mod:`~tolsim.kernels.ode_template` for method code ``code``.

    There are two copies per model: one compiles the exact solver alone ("exact"), the other
    the adaptive ones alone ("dopri5", "auto", "rosenbrock"). A first call compiles only the
    code it runs, about half the compile of one copy holding both. Each copy refuses the
    other's method codes.
    """
    if code not in _METHOD_CODES.values():
        raise ValueError(f"`code` = {code!r}: expected one of {sorted(_METHOD_CODES.values())}")
    solver = "SOLVER_EXACT" if code == _METHOD_CODES["exact"] else "SOLVER_ADAPTIVE"
    return specialised("ode_template", model.rates, {"SOLVER": solver})


def lane_kernels(model: Model):
    """The model's copy of :mod:`~tolsim.kernels.ode_lanes_template`: its ``lane_rates`` and
    its stoichiometry (a compile-time constant of the copy) built in."""
    stoich = tuple(tuple(float(v) for v in row) for row in model.stoichiometry)
    return specialised("ode_lanes_template", model.lane_rates, {"STOICH": repr(stoich)})


def lanes_apply(model: Model, compiled, code: int) -> bool:
    """Whether the lane kernel can solve this model, schedule and method code."""
    return (
        model.lane_rates is not None
        and compiled.channel_drug.shape[0] == 0
        and code in (_METHOD_CODES["dopri5"], _METHOD_CODES["auto"])
    )


def tolerant_index(model: Model) -> np.ndarray:
    """State indices (int64) counted in the tolerant fraction."""
    return np.array([model.states.index(s) for s in model.tolerant_states], dtype=np.int64)


def exposure_index(model: Model) -> np.ndarray:
    """Rows (drug column, EC50 parameter, Hill parameter) of the model's exposures."""
    names = model.parameter_names
    rows = [
        (model.drugs.index(e.drug), names.index(e.ec50), names.index(e.hill))
        for e in model.exposures
    ]
    return np.array(rows, dtype=np.int64).reshape(len(rows), 3)


def _lane_block_size(n_samples: int, lanes: int) -> int:
    """Samples per parallel block: enough blocks for every thread to balance the load,
    blocks long enough that lanes rarely wait for the last sample of their block."""
    import numba

    per_thread = -(-n_samples // (4 * numba.get_num_threads()))
    return max(lanes, min(1024, per_thread))


def _checked(ds: xr.Dataset, status: np.ndarray, throw: bool) -> xr.Dataset:
    """``ds``, or :class:`SolverError` carrying it if a sample failed and ``throw``."""
    failed = np.flatnonzero(status != 0)
    if failed.size and throw:
        first = int(failed[0])
        raise SolverError(
            f"{failed.size} of {status.size} sample(s) failed, first sample {first}: "
            f"{STATUS_MESSAGES[int(status[first])]}. The partial result is in "
            "`error.dataset`; pass throw=False to get it returned.",
            ds,
        )
    return ds


def _simulate_cuda(
    model, packed, single, schedule, t_out, compiled, method, rtol, atol, max_steps, throw
):
    """:func:`simulate` on the GPU: trajectories at ``t_out``, per-sample step counts; samples
    the kernel finds stiff (method "auto") are redone on the CPU."""
    from tolsim import cuda

    cuda.require()  # a clear error before any work
    n_samples, n_times, n_states = packed.shape[0], t_out.shape[0], len(model.states)
    _check_memory(n_samples, n_times, n_states, len(model.exposures))
    table = cuda.schedule_table(model, [schedule], [t_out], traj_times=t_out)
    result = cuda.solve(
        model,
        packed,
        table,
        np.zeros(n_samples, dtype=np.int32),
        metrics=False,
        stats=True,
        n_traj=n_times,
        rtol=rtol,
        atol=atol,
        max_steps=int(max_steps),
        method=method,
    )
    out_x, out_dn = result.out_x, result.out_dn
    stats = np.zeros((n_samples, 5), dtype=np.int64)
    stats[:, 0] = result.status
    stats[:, 1:4] = result.stats
    stiff = np.flatnonzero(result.status == cuda.STIFF_DETECTED)
    if stiff.size:
        out_x[stiff], out_dn[stiff], stats[stiff] = solve_batch(
            model, packed[stiff], compiled, t_out, rtol, atol, max_steps, _METHOD_CODES["auto"]
        )
    solution = (out_x, out_dn, stats)
    code = _METHOD_CODES[method]
    ds = _to_dataset(model, packed, single, schedule, t_out, compiled, solution, code, rtol, atol)
    ds.attrs["device"] = "cuda"
    ds["switched_to_stiff"].attrs["long_name"] = (
        "stiffness detected on the GPU: solved on the CPU, Rosenbrock method from then on"
    )
    return _checked(ds, stats[:, 0], throw)


def _check_memory(n_samples: int, n_times: int, n_states: int, n_exposures: int) -> None:
    """Refuse a result that cannot fit in memory before computing anything."""
    # states, N, tolerant fraction, dN/dt and exposures, float64, per sample and time
    needed = 8 * n_samples * n_times * (n_states + 3 + n_exposures)
    available = _available_memory_bytes()
    if available is not None and needed > 0.8 * available:
        raise MemoryError(
            f"the result for {n_samples:,} parameter sets x {n_times:,} output times needs "
            f"about {needed / 2**30:.1f} GiB, more than the {available / 2**30:.1f} GiB "
            "available: pass fewer `times` or split `params` into chunks"
        )


def _available_memory_bytes() -> int | None:
    """Memory the kernel can still use: Linux's MemAvailable (free plus reclaimable cache),
    else free pages; None where neither is known."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_rtol(value, name: str = "rtol") -> float:
    """A relative tolerance in [1e-13, 1): below, round-off dominates; from 1 on, it asks for
    no correct digit. ``TypeError``/``ValueError`` naming ``name`` otherwise."""
    expected = "expected a finite relative tolerance in [1e-13, 1)"
    if isinstance(value, bool | np.bool_ | str | bytes):
        raise TypeError(f"`{name}` = {value!r}: {expected}")
    try:
        rtol = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` = {value!r}: {expected}") from None
    if not 1e-13 <= rtol < 1.0:  # (NaN too)
        raise ValueError(
            f"`{name}` = {value!r}: {expected} (below 1e-13 round-off dominates; from 1 on no "
            "digit is asked for)"
        )
    return rtol


def _positive_float(value, name: str) -> float:
    if isinstance(value, bool | np.bool_ | str | bytes):  # (float() reads True and "1e-3")
        raise TypeError(f"`{name}` = {value!r}: expected a positive real number")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` = {value!r}: expected a positive real number") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` = {value!r}: expected a finite number > 0")
    return value


def _check_times(times, duration_days: float) -> np.ndarray:
    t = _as_days(times)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"`times` has shape {t.shape}: expected a non-empty 1-d array of days")
    if not np.all(np.isfinite(t)):
        where = np.flatnonzero(~np.isfinite(t))[:5].tolist()
        raise ValueError(f"`times` contains NaN or infinite values at indices {where}")
    if t[0] < 0:
        raise ValueError(f"`times` starts at day {float(t[0])!r}: expected days >= 0")
    steps = np.diff(t)
    if np.any(steps <= 0):
        i = int(np.flatnonzero(steps <= 0)[0])
        raise ValueError(
            f"`times` is not strictly increasing: times[{i}] = {float(t[i])!r}, "
            f"times[{i + 1}] = {float(t[i + 1])!r}; expected sorted, distinct days"
        )
    if t[-1] > duration_days:
        raise ValueError(
            f"`times` ends at day {float(t[-1])!r}, after the schedule's end "
            f"(day {duration_days!r}); extend the schedule (e.g. a final drug-free phase) to "
            "simulate further"
        )
    return kernel_array(t)


def _as_days(times) -> np.ndarray:
    """``times`` as float64 days: real numbers as they are, timedeltas converted to days;
    dates, booleans, complex numbers and strings refused with a ``TypeError``."""
    raw = np.asarray(times)
    if (
        raw.dtype.kind == "O"
        and raw.size
        and all(isinstance(x, datetime.timedelta) for x in raw.ravel())
    ):
        raw = raw.astype("timedelta64[us]")  # datetime.timedelta, pandas.Timedelta
    kind = raw.dtype.kind
    if kind == "m":  # timedelta64: days since the start, whatever the unit
        if np.isnat(raw).any():
            where = np.flatnonzero(np.isnat(raw.ravel()))[:5].tolist()
            raise ValueError(f"`times` contains NaT (not a time) at indices {where}")
        return raw / np.timedelta64(1, "D")
    expected = "expected real numbers of days (int or float) or timedeltas"
    if kind == "M":
        raise TypeError(
            f"`times` has dtype {raw.dtype}: {expected}, not dates (subtract the start date)"
        )
    if kind in "bcSUV":
        raise TypeError(f"`times` has dtype {raw.dtype}: {expected}")
    if kind == "O":
        for i, value in enumerate(raw.ravel()):
            if isinstance(value, bool | np.bool_ | str | bytes | complex | np.complexfloating):
                raise TypeError(f"`times[{i}]` = {value!r}: {expected}")
    try:
        return np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`times` holds values of dtype {raw.dtype}: {expected}") from None


def kernel_array(a) -> np.ndarray:
    """``a`` as the kernels take it: C-contiguous, float64 and writeable (copied if not).

    numba compiles a new specialisation for a read-only array (``ds.time.values``, a view
    of xarray's index, is one); the ODE kernels take tens of seconds to compile.
    """
    return np.require(a, np.float64, ("C", "W"))


def _pack_params(model: Model, params) -> tuple[np.ndarray, bool]:
    """Packed parameters ``(n_samples, n_packed)`` and whether one set was given."""
    if hasattr(params, "to_dict") and hasattr(params, "columns"):  # pandas DataFrame
        if len(params.columns) == 0:  # rows without columns: every row at the defaults
            if len(params) == 0:
                raise ValueError("`params` is an empty table: expected at least one row")
            return np.repeat(model.pack({})[None, :], len(params), axis=0), False
        table = {str(c): np.asarray(params[c]) for c in params.columns}
        return model.pack_table(table), False
    if hasattr(params, "to_dict") and hasattr(params, "index"):  # a Series: one set (a row)
        params = {str(name): value for name, value in params.items()}
    if not isinstance(params, Mapping):
        raise TypeError(
            f"`params` is a {type(params).__name__}: expected a mapping of parameter names "
            "(e.g. model.default_params()) or a table of parameter sets"
        )
    shapes = {k: np.shape(v) for k, v in params.items()}
    if all(s == () for s in shapes.values()):
        return model.pack(params)[None, :], True
    lengths = {s[0] for s in shapes.values() if len(s) == 1}
    if len(lengths) != 1 or any(len(s) > 1 for s in shapes.values()):
        raise ValueError(
            f"`params` columns must be scalars or 1-d arrays of one length; got shapes {shapes}"
        )
    (n,) = lengths
    table = {k: np.broadcast_to(np.asarray(v), (n,)) for k, v in params.items()}
    return model.pack_table(table), False


def drug_variables(model, packed, compiled, t_out, sample_dims, index) -> dict:
    """Concentrations (``<drug>_um``, per time) and Hill exposures (per sample and time) at
    the output days, as Dataset variables; shared by the ODE and stochastic results."""
    variables = {}
    conc = concentrations_at(t_out, compiled, len(model.drugs))
    for d, drug in enumerate(model.drugs):
        variables[f"{drug}_um"] = (
            ("time",),
            conc[:, d],
            {"units": "µM", "long_name": f"{drug} concentration"},
        )
    for name, values in model.exposure_values(conc, packed).items():
        exp = next(e for e in model.exposures if e.name == name)
        variables[name] = (
            (*sample_dims, "time"),
            values[index],
            {"units": "1", "long_name": f"{exp.drug} exposure (Hill, {exp.ec50}, {exp.hill})"},
        )
    return variables


def _messages(status: np.ndarray) -> np.ndarray:
    """The message of each status code (one dict lookup per distinct code)."""
    codes, inverse = np.unique(status, return_inverse=True)
    return np.array([STATUS_MESSAGES[int(c)] for c in codes], dtype=str)[inverse]


def _to_dataset(model, packed, single, schedule, t_out, compiled, solution, code, rtol, atol):
    """The ODE result as a Dataset. ``solution`` is :func:`solve_batch`'s: ``(out_x, out_dn,
    stats)``, or with ``(total, fraction)`` after them when the kernel computed the totals
    (else they are computed here from ``out_x``)."""
    out_x, out_dn, stats = solution[:3]
    sample_dims = () if single else ("sample",)
    index = 0 if single else slice(None)
    dims = (*sample_dims, "time")
    data_vars = {}
    for i, state in enumerate(model.states):
        data_vars[state] = (
            dims,
            out_x[index, :, i],
            {"units": "cells", "long_name": f"{state} cells"},
        )
    if len(solution) == 5:
        total, fraction = solution[3:]
    else:
        total, fraction = summary.totals(out_x, tolerant_index(model))
    data_vars["N"] = (dims, total[index], {"units": "cells", "long_name": "total cells"})
    data_vars["tolerant_fraction"] = (
        dims,
        fraction[index],
        {"units": "1", "long_name": f"fraction of cells in {'+'.join(model.tolerant_states)}"},
    )
    data_vars["dN_dt"] = (
        dims,
        out_dn[index],
        {
            "units": "cells/day",
            "long_name": "rate of change of total cells",
            "comment": "derivative of the solver's dense output (less accurate than N "
            "between breakpoints)",
        },
    )
    data_vars.update(drug_variables(model, packed, compiled, t_out, sample_dims, index))
    status = stats[:, 0]
    data_vars["status"] = (
        sample_dims,
        status[index].astype(np.int32),
        {"long_name": "solver status", "flag_meanings": json.dumps(STATUS_MESSAGES)},
    )
    data_vars["message"] = (
        sample_dims,
        _messages(status)[index],
    )
    for column, name, long_name in (
        (1, "n_steps", "accepted steps (exact method: propagations)"),
        (2, "n_rejected_steps", "rejected steps"),
        (3, "n_rhs_evaluations", "right-hand-side evaluations"),
    ):
        data_vars[name] = (sample_dims, stats[index, column], {"long_name": long_name})
    data_vars["switched_to_stiff"] = (
        sample_dims,
        stats[index, 4].astype(bool),
        {"long_name": "stiffness detected: Rosenbrock method used from then on"},
    )
    n_params = len(model.parameters)
    data_vars["parameters"] = (
        (*sample_dims, "parameter"),
        packed[index, :n_params],
        {"units": json.dumps({p.name: p.unit for p in model.parameters})},
    )
    coords = {
        "time": ("time", t_out, {"units": "days", "long_name": "time since start of schedule"}),
        "parameter": ("parameter", list(model.parameter_names)),
    }
    if not single:
        coords["sample"] = ("sample", np.arange(packed.shape[0]))
    method_name = {v: k for k, v in _METHOD_CODES.items()}[code]
    attrs = {
        "title": f"tolsim simulation of {model.name}",
        "model": json.dumps(model.describe()),
        "schedule": json.dumps(schedule.to_dict()),
        "method": method_name,
        "rtol": rtol,
        "atol_cells": atol,
        "tolsim_version": tolsim.__version__,
    }
    if single:
        attrs["params"] = json.dumps(
            dict(zip(model.parameter_names, packed[0, :n_params].tolist(), strict=True))
        )
    try:
        attrs["withdrawal_day"] = schedule.withdrawal_day("tamoxifen")
    except ValueError:
        pass  # tamoxifen is never given: there is no withdrawal
    data_vars[PROVENANCE] = (
        (),
        provenance_digest(attrs),
        {"long_name": "SHA-256 of the schedule, withdrawal_day and recurrence_threshold attrs"},
    )
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
