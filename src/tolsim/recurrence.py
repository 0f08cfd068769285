"""Time to recurrence after tamoxifen withdrawal."""

from __future__ import annotations

import hashlib
import json
import math
import warnings

import numpy as np
import xarray as xr

import tolsim
from tolsim.kernels.events import recurrence_days
from tolsim.schedule import Schedule

__all__ = ["check_threshold", "derivative_jumps", "metric_grid", "time_to_recurrence"]

# A 0-d variable of every tolsim.simulate result: the digest of the attrs recurrence is
# computed from. xarray's concat keeps the first result's attrs but concatenates the data
# variables, so a result combined from runs of other schedules (or thresholds) is
# recognised instead of measured from the first run's withdrawal day. (A data variable, not
# a coordinate: a coordinate would travel with every DataArray taken from the result, and
# DataArrays of two runs could no longer be put in one Dataset.)
PROVENANCE = "recorded_sha256"
_PROVENANCE_ATTRS = ("schedule", "withdrawal_day", "recurrence_threshold")


def provenance_digest(attrs) -> str:
    """SHA-256 of a result's ``schedule``, ``withdrawal_day`` and ``recurrence_threshold``
    attrs (:data:`PROVENANCE`), as written and as read back from NetCDF or Zarr."""
    record = {}
    for name in _PROVENANCE_ATTRS:
        value = attrs.get(name)
        if name == "withdrawal_day" and value is not None:
            value = float(value)
        elif value is not None:
            value = str(value)
        record[name] = value
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def check_provenance(ds: xr.Dataset) -> None:
    """Refuse a result whose attrs are not those its data were simulated with: one combined
    (``xr.concat``, ``merge``) from runs of different schedules, withdrawal days or recurrence
    thresholds, which keeps the first run's attrs, or one whose attrs were changed."""
    if PROVENANCE not in ds.variables:
        return  # a tolsim.simulate_arms result (per-arm variables), or from before 0.1
    recorded = ds[PROVENANCE]
    values = np.unique(np.asarray(recorded.values, dtype=str))
    if values.size > 1:
        raise ValueError(
            f"`ds` combines results of different schedules, withdrawal days or recurrence "
            f"thresholds (its {PROVENANCE!r} differs along {list(recorded.dims)}): "
            "xarray keeps the first result's attrs, which would be used for all of them. "
            "Compute each part apart, or simulate the schedules together with "
            "tolsim.simulate_arms"
        )
    if values.size and values[0] != provenance_digest(ds.attrs):
        raise ValueError(
            "`ds`'s `schedule`, `withdrawal_day` or `recurrence_threshold` attrs are not those "
            f"it was simulated with (its {PROVENANCE!r} does not match them: "
            "changed, or taken from another result by xr.concat or merge)"
        )


def check_threshold(threshold, name: str = "threshold") -> float:
    """A recurrence threshold in cells, checked: NaN for ``"size_at_withdrawal"``.

    Raises ``ValueError`` for another string or a number that is not finite and >= 0, and
    ``TypeError`` for anything that is not one number (an array, None, a bool), naming
    ``name``.

    Examples
    --------
    >>> check_threshold(1e6), check_threshold("size_at_withdrawal")
    (1000000.0, nan)
    """
    expected = "expected 'size_at_withdrawal' or a number of cells"
    if isinstance(threshold, str):
        if threshold != "size_at_withdrawal":
            raise ValueError(f"`{name}` = {threshold!r}: {expected}")
        return math.nan
    if isinstance(threshold, bool | np.bool_) or np.ndim(threshold) != 0:
        raise TypeError(f"`{name}` = {threshold!r}: {expected} (one number)")
    try:
        level = float(threshold)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` = {threshold!r}: {expected}") from None
    if not (math.isfinite(level) and level >= 0):
        raise ValueError(f"`{name}` = {threshold!r} cells: expected a finite number >= 0")
    return level


def threshold_text(threshold) -> str:
    """How a stochastic result records its recurrence threshold (``attrs``), exactly:
    ``"burden at withdrawal"`` or e.g. ``"1234567 cells"`` (the shortest repr of the float).

    Examples
    --------
    >>> threshold_text(1500.0), threshold_text(1234567.5), threshold_text("size_at_withdrawal")
    ('1500 cells', '1234567.5 cells', 'burden at withdrawal')
    """
    if isinstance(threshold, str):
        return "burden at withdrawal"
    text = repr(float(threshold))
    return f"{text.removesuffix('.0')} cells"


def withdrawal_within(schedule: Schedule) -> float | None:
    """The day tamoxifen is withdrawn, if within the schedule (``None`` when it is never
    given, or its last oral regimen stops after the schedule's end: no withdrawal to count
    recurrence from). The sweep metrics of such a schedule are NaN."""
    if "tamoxifen" not in schedule.given_drugs:
        return None
    day = schedule.withdrawal_day("tamoxifen")
    return day if day <= schedule.duration_days else None


def metric_grid(schedule: Schedule, times=None) -> np.ndarray:
    """The days recurrence metrics are computed on (sweeps, fits): every day, every
    breakpoint, the schedule's end and its tamoxifen withdrawal day (an oral regimen's
    ``stop_day`` may fall between days and doses), plus any ``times``.

    Examples
    --------
    >>> s = Schedule.from_phases([{"days": 2.5, "tamoxifen": 1.0}, {"days": 1}])
    >>> metric_grid(s).tolist()
    [0.0, 1.0, 2.0, 2.5, 3.0, 3.5]
    """
    grid = np.union1d(np.arange(0.0, schedule.duration_days, 1.0), schedule.breakpoints())
    grid = np.union1d(grid, [schedule.duration_days])
    if "tamoxifen" in schedule.given_drugs:
        grid = np.union1d(grid, [schedule.withdrawal_day("tamoxifen")])
    if times is not None:
        grid = np.union1d(grid, times)
    return grid[grid <= schedule.duration_days]


def derivative_jumps(schedule: Schedule, times: np.ndarray) -> np.ndarray:
    """Which output days fall on a breakpoint where a drug's level steps, so ``dN/dt`` jumps.

    At those outputs the kernels store the right-hand derivative (the rates of the piece the
    breakpoint starts), and the crossing search of :mod:`tolsim.kernels.events` treats the
    interval ending there accordingly. Breakpoints of pharmacokinetic dosing (oral doses,
    pellets) are not jumps: their concentrations, and so ``dN/dt``, are continuous.

    Parameters
    ----------
    schedule : Schedule or CompiledSchedule
        The schedule, or its :meth:`Schedule.compile` for any order of drugs.
    times : numpy.ndarray, shape (n,)
        Output days, sorted.

    Returns
    -------
    numpy.ndarray of bool, shape (n,)

    Examples
    --------
    >>> import numpy as np, tolsim
    >>> s = tolsim.Schedule.from_phases([{"days": 2, "tamoxifen": 1.0}, {"days": 2}])
    >>> derivative_jumps(s, np.arange(5.0)).tolist()
    [False, False, True, False, False]
    """
    compiled = schedule.compile(schedule.drugs) if isinstance(schedule, Schedule) else schedule
    times = np.asarray(times, dtype=np.float64)
    inner = compiled.breakpoints_days[1:-1]
    steps = inner[np.any(compiled.level_um[1:] != compiled.level_um[:-1], axis=1)]
    jumps = np.zeros(times.size, dtype=np.bool_)
    if steps.size and times.size:  # times are sorted: a search, not np.isin (per candidate)
        index = np.minimum(np.searchsorted(times, steps), times.size - 1)
        jumps[index[times[index] == steps]] = True
    return jumps


def time_to_recurrence(
    ds: xr.Dataset,
    threshold: str | float = "size_at_withdrawal",
    *,
    withdrawal_day: float | None = None,
) -> xr.DataArray:
    """Days from withdrawal until the total burden first regrows through a threshold.

    The burden between outputs is the cubic Hermite interpolant of the stored ``N`` and
    ``dN_dt`` (error ``O(h^4)`` in the output spacing ``h``; about 1e-5 days for daily outputs
    of a tumour doubling in four days). Where a drug's level steps at an output day, ``dN/dt``
    jumps there, and the interval ending at it is the quadratic through its values and its left
    derivative (``O(h^3)``). A step between output days, and a withdrawal day that is not an
    output day, are warned about: the interpolant cannot follow the kink. The recurrence time
    is 0 when the burden already exceeds the threshold at withdrawal, and ``inf`` when it never
    rises through it within the simulated horizon (right-censored at ``ds.time[-1]``). Under
    ``"size_at_withdrawal"`` a burden that grows from withdrawal on (tolerant cells already
    regrowing under tamoxifen: no remission) recurs at once, 0 days; that is warned about, as
    a threshold in cells then times the regrowth to a size.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`tolsim.simulate`.
    threshold : "size_at_withdrawal" or float
        ``"size_at_withdrawal"`` (each sample's own burden at withdrawal: regrowth back to
        that size) or an absolute number of cells, e.g. a detection limit.
    withdrawal_day : float, optional
        Day tamoxifen is withdrawn; default ``ds.attrs["withdrawal_day"]`` (recorded by
        :func:`tolsim.simulate` from the schedule), or for a :func:`tolsim.simulate_arms`
        result each arm's own ``withdrawal_day`` (NaN for an arm without tamoxifen).

    Returns
    -------
    xarray.DataArray
        ``time_to_recurrence`` in days, with ``ds``'s ``sample`` dim if it has one.
        For a stochastic result (``path`` dim) it is the per-path time the kernel computed
        exactly at the jump that crossed the threshold given to :func:`tolsim.simulate`
        (``recurrence_threshold``); asking for another threshold is an error, since paths
        stored at output days only would locate it no better than the output spacing.

    Examples
    --------
    >>> import numpy as np, tolsim
    >>> model = tolsim.models.TwoState()
    >>> schedule = tolsim.Schedule.from_phases([{"days": 56, "tamoxifen": 1.0}, {"days": 120}])
    >>> ds = tolsim.simulate(model, model.default_params(), schedule, np.arange(177.0))
    >>> round(float(tolsim.time_to_recurrence(ds, threshold=1e6)), 1)  # days after day 56
    8.6
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(
            f"`ds` is a {type(ds).__name__}: expected the Dataset of tolsim.simulate (with "
            "`N`, `dN_dt` and its attrs), not one of its variables"
        )
    days = _recurrence(ds, threshold, withdrawal_day)
    return days.assign_attrs(source_record(ds.attrs))


# what a quantity computed from a result keeps of it (a simulate_arms result keeps each
# arm's schedule in its variables)
SOURCE_ATTRS = ("model", "params", "schedule", "method", "seed")


def source_record(attrs, names=SOURCE_ATTRS) -> dict:
    """The attrs ``names`` of a result (what was simulated), its ``tolsim_version`` as
    ``source_tolsim_version``, and this tolsim's version: the attrs of a quantity computed
    from it (:func:`time_to_recurrence`, the stochastic probabilities)."""
    record = {k: attrs[k] for k in names if k in attrs}
    if "tolsim_version" in attrs:
        record["source_tolsim_version"] = attrs["tolsim_version"]
    return record | {"tolsim_version": tolsim.__version__}


def _recurrence(ds: xr.Dataset, threshold, withdrawal_day) -> xr.DataArray:
    check_provenance(ds)
    if "withdrawal_day" not in ds.attrs and "withdrawal_day" in ds:
        # a tolsim.simulate_arms result: each arm with its own schedule's level steps (a
        # given day overrides each arm's own; the schedule still marks where dN/dt jumps)
        return _per_arm(_arms_only(ds), threshold, withdrawal_day)
    if "path" in ds.dims and "time_to_recurrence" in ds:
        return _stochastic_recurrence(ds, threshold, withdrawal_day)
    for name in ("N", "dN_dt"):
        if name not in ds:
            raise ValueError(f"`ds` has no variable {name!r}: expected a tolsim.simulate result")
    times = np.asarray(ds["time"].values, dtype=np.float64)
    if times.size < 2:
        raise ValueError(f"`ds` has {times.size} output time(s): expected at least 2")
    if withdrawal_day is None:
        if "withdrawal_day" not in ds.attrs:
            raise ValueError(
                "`withdrawal_day` is not given and `ds` records none (its schedule never gives "
                "tamoxifen): pass withdrawal_day="
            )
        withdrawal_day = ds.attrs["withdrawal_day"]
    try:
        withdrawal_day = float(withdrawal_day)
    except (TypeError, ValueError):
        raise TypeError(
            f"`withdrawal_day` = {withdrawal_day!r}: expected a day (a number)"
        ) from None
    if not (times[0] <= withdrawal_day <= times[-1]):
        raise ValueError(
            f"`withdrawal_day` = {withdrawal_day!r}: expected a day within the simulated "
            f"times [{times[0]}, {times[-1]}]"
        )
    if not np.any(times == withdrawal_day):
        warnings.warn(
            f"the withdrawal day {withdrawal_day:g} is not an output day: the burden at "
            "withdrawal and the crossings next to it are interpolated across it (a drug "
            "stops there); include it in `times`",
            UserWarning,
            stacklevel=2,
        )
    jumps = np.zeros(times.size, dtype=np.bool_)
    if "schedule" in ds.attrs:
        schedule = Schedule.from_json(ds.attrs["schedule"])
        jumps = derivative_jumps(schedule, times)
        steps = schedule.breakpoints()
        steps = steps[derivative_jumps(schedule, steps)]
        between = steps[(steps > withdrawal_day) & (steps < times[-1]) & ~np.isin(steps, times)]
        if between.size:
            warnings.warn(
                f"drug level step(s) at day(s) {between[:5].tolist()} fall between output "
                "times: the burden's derivative jumps there, so a crossing in those intervals "
                "is located less accurately; include those days in `times`",
                UserWarning,
                stacklevel=2,
            )
    sample_dims = [d for d in ds["N"].dims if d != "time"]
    n_cells = ds["N"].transpose(*sample_dims, "time").values.reshape(-1, times.size)
    dn_dt = ds["dN_dt"].transpose(*sample_dims, "time").values.reshape(-1, times.size)
    level = check_threshold(threshold)
    levels = np.full(n_cells.shape[0], level)
    description = threshold_text(threshold)  # as stochastic results record it, exactly
    days = recurrence_days(
        times,
        np.ascontiguousarray(n_cells, dtype=np.float64),
        np.ascontiguousarray(dn_dt, dtype=np.float64),
        jumps,
        withdrawal_day,
        levels,
    )
    immediate = int(np.sum(days == 0.0))
    if np.isnan(level) and immediate:
        warnings.warn(
            f"{immediate} of {days.size} sample(s) grow from withdrawal (day "
            f"{withdrawal_day:g}) on, never falling below their size at withdrawal: under "
            "threshold='size_at_withdrawal' they recur at once (0 days). Pass a threshold in "
            "cells to time their regrowth to a size",
            UserWarning,
            stacklevel=3,
        )
    shape = [ds.sizes[d] for d in sample_dims]
    return xr.DataArray(
        days.reshape(shape),
        dims=sample_dims,
        coords={d: ds[d] for d in sample_dims if d in ds.coords},
        name="time_to_recurrence",
        attrs={
            "units": "days",
            "long_name": "days from tamoxifen withdrawal to regrowth through the threshold",
            "threshold": description,
            "withdrawal_day": withdrawal_day,
        },
    )


def _arms_only(ds: xr.Dataset) -> xr.Dataset:
    """A :func:`tolsim.simulate_arms` result with its per-arm ``withdrawal_day`` and
    ``schedule`` along the arm dim only.

    Arms results concatenated along ``sample`` (xarray's default) have them along ``sample``
    too: equal there, they are reduced; different, the samples come from other schedules and
    the result is refused."""
    names = [name for name in _ARM_VARIABLES if name in ds.variables]
    sample_dims = {d for name in names for d in ds[name].dims if d in ("sample", "path")}
    for name in names:
        for dim in sample_dims & set(ds[name].dims):
            values = ds[name]
            first = values.isel({dim: 0})
            same = (values == first) | (values.isnull() & first.isnull())
            if not bool(same.all()):
                raise ValueError(
                    f"`ds` combines samples simulated with different arms: its {name!r} "
                    f"differs along {dim!r} (results concatenated along {dim!r}?): compute "
                    "each part apart"
                )
            ds = ds.assign({name: first.drop_vars(dim, errors="ignore")})
    return ds


# variables tolsim.simulate_arms adds along its arm dim
_ARM_VARIABLES = ("schedule", "withdrawal_day")


def _per_arm(ds: xr.Dataset, threshold, withdrawal_day=None) -> xr.DataArray:
    """:func:`time_to_recurrence` of each arm of a :func:`tolsim.simulate_arms` result, from
    its own withdrawal day (or ``withdrawal_day`` for every arm) and schedule; NaN for an arm
    that never gives tamoxifen (unless ``withdrawal_day`` is given)."""
    if ds["withdrawal_day"].ndim == 0:  # one arm (selected from an arms result)
        one = _per_arm(ds.expand_dims("arm"), threshold, withdrawal_day)
        return one.squeeze("arm", drop=True)
    (dim,) = ds["withdrawal_day"].dims
    parts = []
    for i in range(ds.sizes[dim]):
        arm = ds.isel({dim: i})
        day = float(arm["withdrawal_day"])
        attrs = {"withdrawal_day": day, "schedule": str(arm["schedule"].values)}
        arm = arm.drop_vars(["withdrawal_day", "schedule"]).assign_attrs(attrs)
        if withdrawal_day is not None:
            parts.append(_recurrence(arm, threshold, withdrawal_day))
        elif np.isfinite(day):
            parts.append(_recurrence(arm, threshold, None))
        else:
            shape = arm["N"].isel(time=0, drop=True)
            parts.append(xr.full_like(shape, np.nan, dtype=float).rename("time_to_recurrence"))
    parts = [part.drop_vars([c for c in part.coords if c not in part.dims]) for part in parts]
    days = xr.concat(parts, dim=ds[dim], coords="minimal", compat="override")
    days.attrs = dict(next((p.attrs for p in parts if p.attrs), {}))  # (not a NaN arm's)
    days.attrs.pop("withdrawal_day", None)  # per arm: ds.withdrawal_day
    return days


def _stochastic_recurrence(ds: xr.Dataset, threshold, withdrawal_day) -> xr.DataArray:
    recorded = ds.attrs.get("recurrence_threshold")
    check_threshold(threshold)
    if threshold_text(threshold) != recorded:
        raise ValueError(
            f"`threshold` = {threshold!r}: this stochastic result holds recurrence times for a "
            f"threshold of {recorded}; simulate again with recurrence_threshold={threshold!r}"
        )
    if withdrawal_day is not None and withdrawal_day != ds.attrs.get("withdrawal_day"):
        raise ValueError(
            f"`withdrawal_day` = {withdrawal_day!r}: a stochastic result holds recurrence times "
            f"from its schedule's withdrawal (day {ds.attrs.get('withdrawal_day')})"
        )
    return ds["time_to_recurrence"]
