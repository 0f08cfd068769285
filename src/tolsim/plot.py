"""Figures that read tolsim datasets (matplotlib is imported only when a function is called).

Result objects never plot; each function here takes the ``xarray.Dataset`` an analysis
returned, draws on an optional matplotlib ``Axes`` (a new figure when ``ax`` is None) and
returns what it drew on. A dataset that lacks what a figure needs is refused with a message
naming the argument and the dataset expected.

=========================  ===================================================================
:func:`trajectories`       burden ``N`` (and states) against days, drug phases shaded
:func:`burden`             the same without shading, states drawn (kept for older scripts)
:func:`drug_shading`       days each drug is present, one colour per drug
:func:`tolerant_fraction`  fraction of tolerant cells against days
:func:`recurrence_times`   histogram of recurrence times of an ensemble
:func:`fit`                measurements and a fit's predictions (``FitResult.predictions``)
:func:`profiles`           profile likelihoods (``FitResult.profile()``), one panel each
:func:`waterfall`          multi-start waterfall (``FitResult.starts``)
:func:`recurrence_free`    Kaplan–Meier-style recurrence-free curve of a prediction
:func:`heatmap`            a sweep metric over two design columns (:func:`tolsim.sweep`)
:func:`tradeoff`           schedule candidates, Pareto front and best schedule
=========================  ===================================================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "burden",
    "drug_shading",
    "fit",
    "heatmap",
    "profiles",
    "recurrence_free",
    "recurrence_times",
    "tolerant_fraction",
    "tradeoff",
    "trajectories",
    "waterfall",
]

_DRUG_COLOURS = {"tamoxifen": "tab:blue", "inhibitor": "tab:red"}
_SIMULATION = "a Dataset from tolsim.simulate"
_PREDICTIONS = "the Dataset FitResult.predictions"
_PREDICTION = "a Dataset from tolsim.predict"
_PROFILES = "the Dataset from FitResult.profile()"
_STARTS = "the Dataset FitResult.starts"
_SWEEP = "a Dataset from tolsim.sweep"
_OPTIMISATION = "a Dataset from tolsim.optimize_schedule"
_NEVER_COLOUR = "tab:red"  # heatmap cells whose metric is +inf (e.g. never recurs)
_MISSING_COLOUR = "lightgrey"  # heatmap cells whose metric is NaN (failed or not computed)


# -- checking the datasets handed in -----------------------------------------------------------
def _dataset(value, argument: str, expected: str) -> xr.Dataset:
    if isinstance(value, xr.DataTree):  # a group of a fit file, with the root's coordinates
        value = value.to_dataset(inherit=True)
    if not isinstance(value, xr.Dataset):
        raise TypeError(f"`{argument}` is a {type(value).__name__}: expected {expected}")
    return value


def _require(
    ds: xr.Dataset,
    argument: str,
    expected: str,
    variables: Mapping[str, tuple[str, ...] | None],
) -> None:
    """Each of ``variables`` must be in ``ds``; a tuple of dims (checked as a set) where
    given. Raises ValueError naming the argument, the variable and the dataset expected."""
    for name, dims in variables.items():
        if name not in ds.variables:
            raise ValueError(f"`{argument}` has no variable {name!r}: expected {expected}")
        if dims is not None and set(ds[name].dims) != set(dims):
            raise ValueError(
                f"`{argument}[{name!r}]` has dims {ds[name].dims}: expected {dims} in {expected}"
            )


def _require_attrs(ds: xr.Dataset, argument: str, expected: str, names: Sequence[str]) -> None:
    for name in names:
        if name not in ds.attrs:
            raise ValueError(f"`{argument}` has no attribute {name!r}: expected {expected}")


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    return ax


def _units(da: xr.DataArray, default: str = "") -> str:
    return str(da.attrs.get("units", default))


def _time_label(da: xr.DataArray, what: str = "time") -> str:
    return f"{what} ({_units(da, 'days')})"


def _quantity_label(da: xr.DataArray, name: str) -> str:
    """``long_name (units)``; dimensionless units ("1") are left out."""
    text = str(da.attrs.get("long_name", name))
    units = _units(da)
    return f"{text} ({units})" if units not in ("", "1") else text


# -- simulations ------------------------------------------------------------------------------
def _schedule_of(ds: xr.Dataset):
    """The Schedule recorded in ``ds.attrs["schedule"]``, or None (not recorded, or a
    schedule template of a sweep, whose samples each have their own schedule)."""
    from tolsim.schedule import Schedule

    text = ds.attrs.get("schedule")
    if text is None and "schedule" in ds and ds["schedule"].ndim == 0:
        text = ds["schedule"].item()  # one arm of a tolsim.simulate_arms result
    if not isinstance(text, str):
        return None
    try:
        return Schedule.from_json(text)
    except (ValueError, TypeError, KeyError):
        return None


def _drug_spans(ds: xr.Dataset) -> dict[str, list[tuple[float, float]]]:
    """Each drug's intervals of presence (days).

    From the recorded schedule: the days are the output days plus its breakpoints, and a drug
    is present on the interval between two of them where its concentration at the midpoint
    exceeds 0.1% of its peak. Phase edges and dose days are then exact whatever the output
    spacing (an oral dose's concentration is 0 at the dose itself), and a pharmacokinetic
    tail ends where the drug is negligible rather than never. Otherwise from the ``<drug>_um``
    variables at the output days (concentration > 0; edges as fine as the output spacing).
    """
    time = np.asarray(ds["time"].values, dtype=float)
    schedule = _schedule_of(ds)
    spans: dict[str, list[tuple[float, float]]] = {}
    if schedule is not None and time.size and time[0] >= 0 and time[-1] <= schedule.duration_days:
        breakpoints = schedule.breakpoints()
        days = np.union1d(time, breakpoints[(breakpoints >= time[0]) & (breakpoints <= time[-1])])
        if days.size < 2:
            return spans
        middle = 0.5 * (days[:-1] + days[1:])
        levels = schedule.concentrations(np.union1d(middle, days))
        peak = levels.max(axis=0)
        at_middle = schedule.concentrations(middle)
        for d, drug in enumerate(schedule.drugs):
            present = at_middle[:, d] > 1e-3 * peak[d]
            spans[drug] = _runs(present, days[:-1], days[1:])
        return spans
    for name in ds.data_vars:
        if str(name).endswith("_um") and ds[name].dims == ("time",):
            present = np.asarray(ds[name].values, dtype=float) > 0
            stops = np.r_[time[1:], time[-1]]  # a run ends at the next output day
            spans[str(name)[: -len("_um")]] = _runs(present, time, stops)
    return spans


def _runs(present: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> list:
    """``(start, stop)`` of each run of True in ``present`` (``starts[i]`` to ``stops[j]``)."""
    edges = np.flatnonzero(np.diff(np.r_[0, present.astype(int), 0]))
    return [
        (float(starts[a]), float(stops[b - 1]))
        for a, b in zip(edges[::2], edges[1::2], strict=True)
    ]


def _arm_dim(ds: xr.Dataset) -> str | None:
    """The dim along which a :func:`tolsim.simulate_arms` result holds its schedules."""
    if "schedule" in ds and ds["schedule"].ndim == 1:
        return ds["schedule"].dims[0]
    return None


def drug_shading(ds: xr.Dataset, ax: Axes | None = None, *, alpha: float = 0.12) -> Axes:
    """Shade the days each drug is present (concentration > 0), one colour per drug.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`tolsim.simulate` (or any dataset with a ``time`` coordinate in
        days), or one arm of a :func:`tolsim.simulate_arms` result. Where it records its
        schedule, spans start and end exactly at the schedule's breakpoints (oral doses from
        their dose day), and a drug with pharmacokinetics counts as present on an interval
        between output days (or breakpoints) whose midpoint is above 0.1% of its peak
        concentration: a washout tail ends at an output day, as fine as their spacing;
        otherwise spans follow the ``<drug>_um`` variables at the output days (edges then
        only as fine as the output spacing).
    ax : matplotlib.axes.Axes, optional
    alpha : float
        Opacity of the spans.

    Returns
    -------
    matplotlib.axes.Axes
        With one ``axvspan`` per interval of presence (tamoxifen blue, inhibitor red, other
        drugs grey), the first of each drug labelled with its name.

    Examples
    --------
    >>> import numpy as np, tolsim
    >>> model = tolsim.models.TwoState()
    >>> schedule = tolsim.Schedule.from_phases([{"days": 28, "tamoxifen": 1.0}, {"days": 30}])
    >>> ds = tolsim.simulate(model, model.default_params(), schedule, np.linspace(0, 58, 9))
    >>> [(span.get_x(), span.get_width()) for span in drug_shading(ds).patches]
    [(0.0, 28.0)]
    """
    ds = _dataset(ds, "ds", _SIMULATION)
    _require(ds, "ds", _SIMULATION, {"time": ("time",)})
    if "schedule" in ds and ds["schedule"].ndim > 0:
        (dim,) = ds["schedule"].dims
        raise ValueError(
            f"`ds` holds {ds.sizes[dim]} schedules (dim {dim!r}, a tolsim.simulate_arms result): "
            f"shade one at a time, e.g. drug_shading(ds.isel({dim}=0))"
        )
    ax = _axes(ax)
    for drug, spans in _drug_spans(ds).items():
        for i, (start, stop) in enumerate(spans):
            ax.axvspan(
                start,
                stop,
                color=_DRUG_COLOURS.get(drug, "tab:gray"),
                alpha=alpha,
                lw=0,
                label=drug if i == 0 else None,
            )
    return ax


def _model_states(ds: xr.Dataset) -> list[str]:
    """State variables of the model recorded in the attrs (else S, T, R where present)."""
    try:
        states = json.loads(ds.attrs["model"])["states"]
    except (KeyError, TypeError, ValueError):
        states = ["S", "T", "R"]
    return [str(s) for s in states if s in ds.data_vars]


def _cells(da: xr.DataArray) -> xr.DataArray:
    """Float cells; stochastic counts mark a failed path's unreached days with -1."""
    if np.issubdtype(da.dtype, np.integer):
        return da.where(da >= 0)
    return da


def trajectories(
    ds: xr.Dataset,
    ax: Axes | None = None,
    *,
    log: bool = True,
    states: bool = False,
    spread: str = "band",
    quantiles: tuple[float, float] = (0.05, 0.95),
    drugs: bool = True,
    label: str | None = None,
    **line_kwargs,
) -> Axes:
    """Total cells ``N`` (and optionally each state) against days, drug phases shaded.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`tolsim.simulate`: one run (``N`` over ``time``), a parameter table
        (``sample``), stochastic paths (``path``), or a sweep stored with
        ``outputs="trajectories"``. Every dim of ``N`` other than ``time`` is an ensemble
        dim, summarised per day by its median and quantiles (or drawn path by path).
    ax : matplotlib.axes.Axes, optional
    log : bool
        Logarithmic cell axis (default).
    states : bool
        Also draw each model state (dashed, dotted, dash-dotted; medians for an ensemble).
    spread : {"band", "lines"}
        For an ensemble: a shaded band between ``quantiles`` around the median line, or one
        thin line per member under the median line.
    quantiles : (float, float)
        Lower and upper quantile of the band.
    drugs : bool
        Shade the days each drug is present (:func:`drug_shading`). A
        :func:`tolsim.simulate_arms` result is drawn arm by arm (a line, and band, per arm,
        labelled with its name), without shading: select one arm to shade its schedule.
    label : str, optional
        Legend label of the ``N`` line (default ``"N"``, or ``"N (median, 90% band)"``).
    **line_kwargs
        Passed to ``Axes.plot`` for the ``N`` line (e.g. ``color``).

    Returns
    -------
    matplotlib.axes.Axes
        The ``N`` line is drawn first (after any drug spans); x axis in days, y in cells.

    Examples
    --------
    >>> import numpy as np, tolsim
    >>> model = tolsim.models.TwoState()
    >>> schedule = tolsim.Schedule.from_phases([{"days": 28, "tamoxifen": 1.0}, {"days": 30}])
    >>> table = {"lambda_T": np.linspace(0.1, 0.3, 5)}
    >>> ds = tolsim.simulate(model, table, schedule, np.arange(59.0))
    >>> ax = trajectories(ds, states=True)
    >>> ax.get_yscale(), ax.get_xlabel(), ax.get_ylabel()
    ('log', 'time (days)', 'cells')
    """
    ds = _dataset(ds, "ds", _SIMULATION)
    _require(ds, "ds", _SIMULATION, {"time": ("time",), "N": None})
    if "time" not in ds["N"].dims:
        raise ValueError(f"`ds['N']` has dims {ds['N'].dims}: expected a `time` dim")
    if spread not in ("band", "lines"):
        raise ValueError(f"`spread` = {spread!r}: expected 'band' or 'lines'")
    low, high = _check_quantiles(quantiles)
    ax = _axes(ax)
    arm_dim = _arm_dim(ds)
    if arm_dim is not None:  # one line (and band) per arm, in its own colour; no shading
        for value in ds[arm_dim].values:
            one = ds.sel({arm_dim: value}).drop_vars(["schedule", "withdrawal_day"])
            text = f"{value}" if label is None else f"{label}, {value}"
            trajectories(
                one, ax, log=log, states=states, spread=spread, quantiles=quantiles,
                drugs=False, label=text, **line_kwargs,
            )  # fmt: skip
        return ax
    if drugs:
        drug_shading(ds, ax)
    time = ds["time"].values
    members = [dim for dim in ds["N"].dims if dim != "time"]
    n = _cells(ds["N"])
    if members:
        n = n.stack(member=members).transpose("member", "time")
        median = n.median("member")
        text = f"N (median, {high - low:.0%} band)" if spread == "band" else "N (median)"
        (line,) = ax.plot(time, median, label=label or text, **line_kwargs)
        colour = line.get_color()
        if spread == "band":
            ax.fill_between(
                time,
                n.quantile(low, "member").values,
                n.quantile(high, "member").values,
                color=colour,
                alpha=0.25,
                lw=0,
            )
        else:
            for values in n.values:
                ax.plot(time, values, color=colour, lw=0.5, alpha=0.3)
    else:
        (line,) = ax.plot(time, n, label=label or "N", **line_kwargs)
        colour = line.get_color()
    if states:
        styles = ("--", ":", "-.", (0, (5, 1, 1, 1)))
        for style, state in zip(styles, _model_states(ds), strict=False):
            values = _cells(ds[state])
            text = state
            if members:
                values = values.stack(member=members).median("member")
                text = f"{state} (median)"
            ax.plot(
                time,
                values,
                linestyle=style,
                color=colour,
                lw=1,
                label=f"{text}, {label}" if label else text,
            )
    ax.set_yscale("log" if log else "linear")
    ax.set_xlabel(_time_label(ds["time"]))
    ax.set_ylabel(_units(ds["N"], "cells"))
    return ax


def burden(
    ds: xr.Dataset, ax: Axes | None = None, *, states: bool = True, label=None, **kwargs
) -> Axes:
    """:func:`trajectories` with states drawn and no drug shading (as older scripts expect).

    Examples
    --------
    >>> import numpy as np, tolsim
    >>> model = tolsim.models.TwoState()
    >>> schedule = tolsim.Schedule.from_phases([{"days": 28, "tamoxifen": 1.0}, {"days": 30}])
    >>> ds = tolsim.simulate(model, model.default_params(), schedule, np.arange(59.0))
    >>> [line.get_label() for line in burden(ds).lines]
    ['N', 'S', 'T']
    """
    return trajectories(ds, ax, states=states, drugs=False, label=label, **kwargs)


def _check_quantiles(quantiles) -> tuple[float, float]:
    try:
        low, high = (float(q) for q in quantiles)
    except (TypeError, ValueError):
        raise ValueError(
            f"`quantiles` = {quantiles!r}: expected two numbers (low, high) in [0, 1]"
        ) from None
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"`quantiles` = {quantiles!r}: expected 0 <= low < high <= 1")
    return low, high


def tolerant_fraction(
    ds: xr.Dataset, ax: Axes | None = None, *, label: str | None = None, **kwargs
) -> Axes:
    """Fraction of tolerant (NF-κB-high) cells against days (the median of an ensemble; one
    line per arm of a :func:`tolsim.simulate_arms` result)."""
    ds = _dataset(ds, "ds", _SIMULATION)
    _require(ds, "ds", _SIMULATION, {"time": ("time",), "tolerant_fraction": None})
    ax = _axes(ax)
    arm_dim = _arm_dim(ds)
    if arm_dim is not None:  # a simulate_arms result: one line per arm
        for value in ds[arm_dim].values:
            one = ds.sel({arm_dim: value}).drop_vars(["schedule", "withdrawal_day"])
            text = f"{value}" if label is None else f"{label}, {value}"
            tolerant_fraction(one, ax, label=text, **kwargs)
        return ax
    fraction = ds["tolerant_fraction"]
    members = [dim for dim in fraction.dims if dim != "time"]
    if members:
        fraction = fraction.median(members)
    ax.plot(ds["time"], fraction, label=label, **kwargs)
    ax.set_xlabel(_time_label(ds["time"]))
    ax.set_ylabel("tolerant fraction")
    ax.set_ylim(0, 1)
    return ax


def recurrence_times(
    days: xr.DataArray, ax: Axes | None = None, *, label: str | None = None, bins=30, **kwargs
) -> Axes:
    """Histogram of finite recurrence times; the label gives the share that never recurs
    (``inf``) among those solved, and how many failed (NaN: a failed solve or path, counted
    as neither). The y axis counts paths for a stochastic result (a ``path`` dim), else
    parameter sets."""
    if isinstance(days, xr.Dataset):
        raise TypeError(
            f"`days` is a {type(days).__name__}: expected the DataArray from "
            "tolsim.time_to_recurrence"
        )
    try:
        values = np.asarray(days, dtype=float).ravel()
    except (TypeError, ValueError):
        raise TypeError(
            f"`days` holds {np.asarray(days).dtype} values: expected recurrence times (days) "
            "from tolsim.time_to_recurrence"
        ) from None
    ax = _axes(ax)
    finite = values[np.isfinite(values)]
    solved = int(np.count_nonzero(~np.isnan(values)))
    text = f"{label}: " if label else ""
    if solved:
        text += f"{1.0 - finite.size / solved:.1%} no recurrence"
        if solved < values.size:
            text += f", {values.size - solved} failed"
    else:
        text += f"all {values.size} failed"
    ax.hist(finite, bins=bins, alpha=0.6, label=text, **kwargs)
    ax.set_xlabel("days from withdrawal to recurrence")
    ax.set_ylabel("paths" if "path" in getattr(days, "dims", ()) else "parameter sets")
    return ax


# -- fits -------------------------------------------------------------------------------------
def _observable_unit(predictions: xr.Dataset, observable: str) -> str:
    """Unit of an observable: the ``observed`` variable's ``units`` (one unit, or a JSON map of
    each observable's where they differ, as :func:`tolsim.fit` writes them), else a built-in's
    unit."""
    units = predictions["observed"].attrs.get("units")
    if units is not None:
        units = str(units)
        if units.startswith("{"):
            units = json.loads(units).get(observable)
        if units is not None:
            return units
    from tolsim.fit import BUILTIN_OBSERVABLES

    if observable in BUILTIN_OBSERVABLES:
        return BUILTIN_OBSERVABLES[observable]().unit
    return ""


def _check_band(band: xr.Dataset, argument: str) -> xr.Dataset:
    band = _dataset(band, argument, _PREDICTION)
    _require(band, argument, _PREDICTION, {"N_quantiles": ("quantile", "time")})
    if band.sizes["quantile"] < 2:
        raise ValueError(
            f"`{argument}` has quantiles {band['quantile'].values.tolist()}: a band needs at "
            "least two"
        )
    return band


def _draw_band(ax, band: xr.Dataset, colour, label: str) -> None:
    """Shade between the lowest and highest quantile of ``N``; median (0.5) dashed."""
    quantile = np.asarray(band["quantile"].values, dtype=float)
    n = band["N_quantiles"].transpose("quantile", "time").values
    time = band["time"].values
    low, high = int(np.argmin(quantile)), int(np.argmax(quantile))
    ax.fill_between(time, n[low], n[high], color=colour, alpha=0.2, lw=0)
    middle = np.flatnonzero(np.isclose(quantile, 0.5))
    if middle.size:
        width = quantile[high] - quantile[low]
        ax.plot(
            time,
            n[middle[0]],
            "--",
            color=colour,
            lw=1,
            label=f"{label} (median, {width:.0%} band)",
        )


def fit(
    predictions: xr.Dataset,
    ax: Axes | None = None,
    *,
    band: xr.Dataset | Mapping[str, xr.Dataset] | None = None,
    observable: str | None = None,
    log: bool | None = None,
) -> Axes:
    """Measurements (markers) and a fit's predictions (lines), one colour per condition.

    Parameters
    ----------
    predictions : xarray.Dataset
        ``FitResult.predictions``: per measurement ``row`` the ``condition``,
        ``observable``, ``time`` (days), ``observed`` and ``predicted`` values (and
        ``censored``: censored measurements are drawn as open markers; ``left_censored``:
        measurements below a detection limit as open downward triangles at the limit).
    ax : matplotlib.axes.Axes, optional
    band : xarray.Dataset or mapping condition -> xarray.Dataset, optional
        Prediction(s) from :func:`tolsim.predict`: their ``N_quantiles`` (quantile, time),
        total cells, are shaded between the lowest and highest quantile, with the median
        (quantile 0.5, where present) dashed. One Dataset is drawn in grey; a mapping draws
        each in its condition's colour. Cells: pair a band with a cell-count observable.
    observable : str, optional
        Which observable to draw; required when ``predictions`` holds several.
    log : bool, optional
        Logarithmic y axis; default where every value drawn (observed, and predicted where
        finite) is > 0. True with a value <= 0 is an error: it would vanish from the axis.

    Returns
    -------
    matplotlib.axes.Axes
        Per condition, in order of first appearance: one marker line of observed values
        (times as measured; absent where every measurement is censored), one line of
        predictions at the distinct measurement days.

    Examples
    --------
    >>> import numpy as np, pandas as pd, tolsim
    >>> model = tolsim.models.TwoState(crowding="none")
    >>> schedule = tolsim.Schedule.from_phases([{"days": 20}])
    >>> days = np.arange(2.0, 21.0, 2.0)
    >>> cells = tolsim.simulate(model, model.default_params(lambda_S=0.3), schedule, days).N
    >>> data = pd.DataFrame({"condition": "control", "observable": "total_cells",
    ...                      "time": days, "value": cells.values * 1.05})
    >>> result = tolsim.fit(model, data, {"control": schedule}, free=["lambda_S"],
    ...                     noise=tolsim.observe.LogNormal(), starts=2)
    >>> ax = fit(result.predictions)
    >>> ax.get_ylabel()
    'total_cells (cells)'
    """
    predictions = _dataset(predictions, "predictions", _PREDICTIONS)
    _require(
        predictions,
        "predictions",
        _PREDICTIONS,
        {name: ("row",) for name in ("condition", "observable", "time", "observed", "predicted")},
    )
    observables = list(dict.fromkeys(predictions["observable"].values.tolist()))
    if observable is None:
        if len(observables) != 1:
            raise ValueError(
                f"`predictions` holds observables {observables}: choose one with `observable`"
            )
        observable = observables[0]
    elif observable not in observables:
        raise ValueError(
            f"`observable` = {observable!r}: `predictions` holds observables {observables}"
        )
    unit = _observable_unit(predictions, observable)
    keep = predictions["observable"].values == observable
    conditions = list(dict.fromkeys(predictions["condition"].values[keep].tolist()))
    colours = {condition: f"C{i}" for i, condition in enumerate(conditions)}
    if band is not None:
        if unit not in ("", "cells"):
            raise ValueError(
                f"`band` holds total cells, but observable {observable!r} is in {unit!r}: "
                "draw a band only with a cell-count observable"
            )
        if isinstance(band, Mapping) and not isinstance(band, xr.Dataset):
            unknown = [name for name in band if name not in colours]
            if unknown:
                raise ValueError(
                    f"`band` names condition(s) {unknown}: `predictions` has {conditions}"
                )
            bands = {name: _check_band(b, f"band[{name!r}]") for name, b in band.items()}
        else:
            bands = {None: _check_band(band, "band")}
    ax = _axes(ax)
    time = predictions["time"].values
    observed = predictions["observed"].values
    predicted = predictions["predicted"].values
    censored, below = (
        predictions[name].values.astype(bool)
        if name in predictions
        else np.zeros(time.size, dtype=bool)
        for name in ("censored", "left_censored")
    )
    drawn = np.concatenate([observed[keep], predicted[keep][np.isfinite(predicted[keep])]])
    if log is None:
        log = bool(np.all(drawn > 0))
    elif not isinstance(log, bool | np.bool_):
        raise TypeError(f"`log` = {log!r}: expected True, False or None (automatic)")
    elif log and np.any(drawn <= 0):
        shown = np.unique(drawn[drawn <= 0])[:5].tolist()
        raise ValueError(
            f"`log` = True, but {int(np.sum(drawn <= 0))} values drawn for observable "
            f"{observable!r} are <= 0 ({shown}), which a logarithmic axis cannot show: pass "
            "log=False (or leave `log` unset to choose by the values)"
        )
    for condition in conditions:
        rows = keep & (predictions["condition"].values == condition)
        colour = colours[condition]
        plain = rows & ~censored & ~below
        if plain.any():
            ax.plot(
                time[plain], observed[plain], "o", color=colour, label=f"{condition} (observed)"
            )
        for cut, marker, what in ((rows & censored, "o", "censored"), (rows & below, "v",
                                  "below detection limit")):  # fmt: skip
            if cut.any():
                ax.plot(
                    time[cut],
                    observed[cut],
                    marker,
                    mfc="none",
                    color=colour,
                    label=f"{condition} ({what})",
                )
        days, first = np.unique(time[rows], return_index=True)
        values = predicted[rows][first]
        # a condition measured on one day (an event time, an endpoint) gets a marker: a
        # one-point line draws nothing
        style = "-" if days.size > 1 else "x"
        ax.plot(days, values, style, color=colour, label=f"{condition} (fit)")
        never = np.isposinf(values)
        if never.any():  # e.g. a recurrence predicted never: an arrow at the axes' top
            for day in days[never]:
                ax.annotate(
                    "never", (day, 1.0), xycoords=("data", "axes fraction"), color=colour,
                    ha="center", va="top", fontsize="small",
                )  # fmt: skip
    if band is not None:
        for name, prediction in bands.items():
            colour = "0.4" if name is None else colours[name]
            _draw_band(ax, prediction, colour, "prediction" if name is None else name)
    ax.set_yscale("log" if log else "linear")
    ax.set_xlabel(_time_label(predictions["time"]))
    ax.set_ylabel(f"{observable} ({unit})" if unit not in ("", "1") else observable)
    return ax


def profiles(
    profiles: xr.Dataset,
    axes: Sequence[Axes] | None = None,
    *,
    parameters: Sequence[str] | None = None,
) -> np.ndarray:
    """Profile likelihoods, one panel per parameter: Δnllh against the parameter's value.

    Parameters
    ----------
    profiles : xarray.Dataset
        From :meth:`tolsim.FitResult.profile`: ``log10_value`` and ``nllh``
        (parameter, step), ``ci_low``, ``ci_high``, ``identifiable`` (parameter),
        ``best_nllh``; attrs ``level`` and ``threshold_nllh``.
    axes : sequence of matplotlib.axes.Axes, optional
        One per parameter drawn (a single Axes for one parameter); default a new figure, up
        to four panels a row. (Named ``axes``, not ``ax``: it takes several.)
    parameters : str or sequence of str, optional
        Which parameters, in order (default all).

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes
        1-d, one per parameter in order (``axes[0].figure`` is the figure). Each has the
        profile (``nllh - best_nllh`` against ``10**log10_value``, log x axis) as its first
        line, then a dotted line at ``threshold_nllh``, then dashed lines at ``ci_low`` and
        ``ci_high`` (where finite; the title says "unbounded" otherwise); the best fit is
        marked; a practically non-identifiable parameter
        says so in its title.

    Examples
    --------
    >>> import numpy as np, pandas as pd, tolsim
    >>> model = tolsim.models.TwoState(crowding="none")
    >>> schedule = tolsim.Schedule.from_phases([{"days": 20}])
    >>> days = np.arange(2.0, 21.0, 2.0)
    >>> cells = tolsim.simulate(model, model.default_params(lambda_S=0.3), schedule, days).N
    >>> noisy = cells.values * np.exp(0.1 * np.random.default_rng(1).standard_normal(10))
    >>> data = pd.DataFrame({"condition": "control", "observable": "total_cells",
    ...                      "time": days, "value": noisy})
    >>> result = tolsim.fit(model, data, {"control": schedule}, free=["lambda_S"],
    ...                     noise=tolsim.observe.LogNormal(), starts=2)
    >>> panels = profiles(result.profile())
    >>> panels.shape, panels[0].get_xscale()
    ((1,), 'log')
    """
    profiles = _dataset(profiles, "profiles", _PROFILES)
    _require(
        profiles,
        "profiles",
        _PROFILES,
        {
            "log10_value": ("parameter", "step"),
            "nllh": ("parameter", "step"),
            "ci_low": ("parameter",),
            "ci_high": ("parameter",),
            "best_nllh": (),
        },
    )
    _require_attrs(profiles, "profiles", _PROFILES, ("threshold_nllh",))
    known = [str(p) for p in profiles["parameter"].values]
    if isinstance(parameters, str):  # one name, not its letters
        parameters = [parameters]
    names = known if parameters is None else list(parameters)
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(
            f"`parameters` = {parameters!r}: expected some of the profiled parameters {known}"
        )
    if axes is None:
        import matplotlib.pyplot as plt

        columns = min(len(names), 4)
        rows = -(-len(names) // columns)
        figure, grid = plt.subplots(
            rows,
            columns,
            figsize=(3.2 * columns, 2.8 * rows),
            squeeze=False,
            constrained_layout=True,
        )
        grid = grid.ravel()
        for spare in grid[len(names) :]:
            figure.delaxes(spare)
        panels = np.array(grid[: len(names)], dtype=object)
    else:
        from matplotlib.axes import Axes as _Axes

        if isinstance(axes, _Axes):  # one Axes for one parameter
            axes = [axes]
        try:
            panels = np.array(list(axes), dtype=object)
        except TypeError:
            raise TypeError(
                f"`axes` = {axes!r}: expected a sequence of matplotlib Axes, one per parameter"
            ) from None
        if panels.size != len(names):
            raise ValueError(
                f"`axes` has {panels.size} Axes: expected one per parameter ({len(names)})"
            )
    threshold = float(profiles.attrs["threshold_nllh"])
    level = profiles.attrs.get("level")
    best = float(profiles["best_nllh"])
    for ax, name in zip(panels, names, strict=True):
        one = profiles.sel(parameter=name)
        log10_value = np.asarray(one["log10_value"].values, dtype=float)
        rise = np.asarray(one["nllh"].values, dtype=float) - best
        drawn = np.isfinite(log10_value) & np.isfinite(rise)
        order = np.argsort(log10_value[drawn])
        value = 10.0 ** log10_value[drawn][order]
        ax.plot(value, rise[drawn][order], "o-", ms=3, color="C0", label="profile")
        ax.axhline(
            threshold,
            ls=":",
            color="k",
            lw=1,
            label=f"{level:.0%} threshold" if level is not None else "threshold",
        )
        low, high = float(one["ci_low"]), float(one["ci_high"])
        label = "confidence interval"
        for bound in (low, high):
            if np.isfinite(bound):  # (a NaN or infinite bound has no place on the axis)
                ax.axvline(bound, ls="--", color="C1", lw=1, label=label)
                label = "_nolegend_"
        if value.size:
            centre = int(np.argmin(rise[drawn][order]))
            ax.plot(value[centre], rise[drawn][order][centre], "*", ms=10, color="C3")
        shown = [f"{bound:.3g}" if np.isfinite(bound) else "unbounded" for bound in (low, high)]
        title = f"{name}: [{shown[0]}, {shown[1]}]"
        if "identifiable" in profiles and not bool(one["identifiable"]):
            title += "\nnot identifiable"
        ax.set_title(title, fontsize="medium")
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        ax.set_xlabel(name)
        ax.set_ylabel("Δ negative log-likelihood")
    return panels


def _plain_log_ticks(axis) -> None:
    """Within less than a decade a log axis labels its minor ticks in crowded powers of ten;
    a few plainly written ticks read better."""
    low, high = axis.get_view_interval()
    if not 0 < low < high < 10 * low:
        return
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

    axis.set_major_locator(MaxNLocator(4))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
    axis.set_minor_formatter(NullFormatter())


def waterfall(starts: xr.Dataset, ax: Axes | None = None, *, log: bool = True) -> Axes:
    """Multi-start waterfall: each start's final nllh above the best, in rank order.

    Parameters
    ----------
    starts : xarray.Dataset
        ``FitResult.starts``: ``nllh`` and ``converged`` per ``start``.
    ax : matplotlib.axes.Axes, optional
    log : bool
        Symmetric-log y axis, linear within 0.1 of the best (the distance within which
        :func:`tolsim.fit` counts a start as reaching the best optimum); else linear.

    Returns
    -------
    matplotlib.axes.Axes
        A grey line through all starts, then the converged starts as round markers and the
        others (if any) as red crosses, at rank 1, 2, ... (sorted by nllh). Starts with a
        non-finite nllh cannot be drawn; the title counts them.

    Examples
    --------
    >>> import numpy as np, pandas as pd, tolsim
    >>> model = tolsim.models.TwoState(crowding="none")
    >>> schedule = tolsim.Schedule.from_phases([{"days": 20}])
    >>> days = np.arange(2.0, 21.0, 2.0)
    >>> cells = tolsim.simulate(model, model.default_params(lambda_S=0.3), schedule, days).N
    >>> data = pd.DataFrame({"condition": "control", "observable": "total_cells",
    ...                      "time": days, "value": cells.values * 1.05})
    >>> result = tolsim.fit(model, data, {"control": schedule}, free=["lambda_S"],
    ...                     noise=tolsim.observe.LogNormal(), starts=3)
    >>> waterfall(result.starts).get_xlabel()
    'start (rank by nllh)'
    """
    starts = _dataset(starts, "starts", _STARTS)
    _require(starts, "starts", _STARTS, {"nllh": ("start",), "converged": ("start",)})
    nllh = np.asarray(starts["nllh"].values, dtype=float)
    converged = np.asarray(starts["converged"].values, dtype=bool)
    order = np.argsort(nllh, kind="stable")
    nllh, converged = nllh[order], converged[order]
    finite = np.isfinite(nllh)
    if not finite.any():
        raise ValueError("`starts` has no start with a finite nllh: nothing to draw")
    ax = _axes(ax)
    rank = np.arange(1, nllh.size + 1)[finite]
    rise = nllh[finite] - nllh[finite].min()
    converged = converged[finite]
    ax.plot(rank, rise, "-", color="0.7", lw=1, zorder=1)
    ax.scatter(rank[converged], rise[converged], marker="o", color="C0", label="converged")
    if (~converged).any():
        ax.scatter(
            rank[~converged], rise[~converged], marker="x", color="tab:red", label="not converged"
        )
    if log:
        ax.set_yscale("symlog", linthresh=0.1)
    if rise.max() < 0.1:  # every start at the best: no autoscaled range of round-off
        ax.set_ylim(-0.01, 0.1)
    failed = int((~finite).sum())
    if failed:
        ax.set_title(f"{failed} of {nllh.size} starts failed (infinite nllh, not drawn)")
    ax.set_xlabel("start (rank by nllh)")
    ax.set_ylabel("nllh − best nllh")
    return ax


# -- predictions ------------------------------------------------------------------------------
def recurrence_free(
    prediction: xr.Dataset, ax: Axes | None = None, *, label: str | None = None, **kwargs
) -> Axes:
    """Kaplan–Meier-style recurrence-free curve of a prediction; call again to overlay.

    Parameters
    ----------
    prediction : xarray.Dataset
        From :func:`tolsim.predict`: ``recurrence_free_probability`` over
        ``day_since_withdrawal`` (days), and optionally ``recurrence_free_low`` and
        ``recurrence_free_high`` (both, or neither), drawn as a band.
    ax : matplotlib.axes.Axes, optional
    label : str, optional
        Legend label of the curve (e.g. the schedule).
    **kwargs
        Passed to ``Axes.step`` (e.g. ``color``).

    Returns
    -------
    matplotlib.axes.Axes
        One step line (steps after each day) and, with the bounds, one band in its colour;
        y axis from 0 to 1 (a small margin above 1 keeps a curve at 1 visible).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> days = np.arange(0.0, 61.0, 10.0)
    >>> prediction = xr.Dataset(
    ...     {"recurrence_free_probability": ("day_since_withdrawal",
    ...                                      [1.0, 1.0, 0.9, 0.7, 0.6, 0.6, 0.5])},
    ...     coords={"day_since_withdrawal": days})
    >>> ax = recurrence_free(prediction, label="tamoxifen 60 days")
    >>> ax.get_ylabel(), float(ax.lines[0].get_ydata()[-1])
    ('recurrence-free probability', 0.5)
    """
    prediction = _dataset(prediction, "prediction", _PREDICTION)
    dim = ("day_since_withdrawal",)
    _require(prediction, "prediction", _PREDICTION, {"recurrence_free_probability": dim})
    bounds = [n for n in ("recurrence_free_low", "recurrence_free_high") if n in prediction]
    if len(bounds) == 1:
        raise ValueError(
            f"`prediction` has {bounds[0]!r} alone: a band needs both 'recurrence_free_low' "
            "and 'recurrence_free_high'"
        )
    if bounds:
        _require(prediction, "prediction", _PREDICTION, dict.fromkeys(bounds, dim))
    ax = _axes(ax)
    days = prediction["day_since_withdrawal"].values
    (line,) = ax.step(
        days, prediction["recurrence_free_probability"].values, where="post", label=label, **kwargs
    )
    if bounds:
        ax.fill_between(
            days,
            prediction["recurrence_free_low"].values,
            prediction["recurrence_free_high"].values,
            step="post",
            color=line.get_color(),
            alpha=0.2,
            lw=0,
        )
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel(_time_label(prediction["day_since_withdrawal"], "days since withdrawal"))
    ax.set_ylabel("recurrence-free probability")
    return ax


# -- sweeps -----------------------------------------------------------------------------------
def _design_columns(ds: xr.Dataset) -> list[str]:
    """The sweep's design columns: named in ``attrs["design"]``, else every variable along
    ``sample`` alone that is not a known output."""
    try:
        names = json.loads(ds.attrs["design"])["names"]
        return [str(name) for name in names if name in ds.variables]
    except (KeyError, TypeError, ValueError):
        pass
    from tolsim.sweep import METRICS, STOCHASTIC_METRICS

    outputs = {*METRICS, *STOCHASTIC_METRICS}
    return [
        str(name)
        for name, values in ds.variables.items()
        if values.dims == ("sample",) and name not in outputs and name != "sample"
    ]


def _column_label(ds: xr.Dataset, name: str) -> str:
    """A design column's name with its unit: from its attrs, else from the built-in model
    recorded in the sweep (e.g. ``kappa_T (1/day)``)."""
    unit = _units(ds[name])
    if not unit:
        try:
            import tolsim.models

            record = json.loads(ds.attrs["model"])
            if record["name"] in ("TwoState", "ThreeState"):
                model = getattr(tolsim.models, record["name"])(**record["options"])
                unit = model.parameter(name).unit
        except (KeyError, TypeError, ValueError, AttributeError):
            unit = ""
    return f"{name} ({unit})" if unit not in ("", "1") else name


def _grid_ticks(axis, values: np.ndarray) -> None:
    """Ticks at cell centres labelled with the design values (at most about ten)."""
    step = max(1, -(-values.size // 10))
    positions = np.arange(0, values.size, step)
    axis.set_ticks(positions, [f"{values[i]:g}" for i in positions])


def heatmap(
    sweep_ds: xr.Dataset,
    x: str,
    y: str,
    variable: str = "time_to_recurrence",
    ax: Axes | None = None,
    *,
    cmap: str = "viridis",
) -> Axes:
    """A sweep metric over two design columns, one cell per grid point.

    Parameters
    ----------
    sweep_ds : xarray.Dataset
        From :func:`tolsim.sweep`: dim ``sample``, the design columns and the metrics as
        variables along it. The samples must form a full grid over ``x`` and ``y``, one
        sample per cell (select one value of any other design column first).
    x, y : str
        Design columns on the horizontal and vertical axis; cells are evenly spaced, labelled
        with the design values in increasing order.
    variable : str
        The metric coloured, e.g. ``"time_to_recurrence"`` (days).
    ax : matplotlib.axes.Axes, optional
    cmap : str
        Colormap of the finite values.

    Returns
    -------
    matplotlib.axes.Axes
        With one ``pcolormesh`` (its array is the metric pivoted to shape
        ``(len(y values), len(x values))``) and a colorbar. ``inf`` (e.g. no recurrence
        within the horizon) is never dropped: such cells hold a value above the colour range
        and are drawn in red, the colorbar's "over" colour (an arrow at its top), and the
        colorbar label says so; ``-inf`` likewise below the range. NaN (a failed or
        not yet computed sample) is light grey.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> design = {"tamoxifen_days": [30.0, 30.0, 60.0, 60.0], "kappa_T": [0.1, 0.5, 0.1, 0.5]}
    >>> ds = xr.Dataset(
    ...     {**{k: ("sample", v) for k, v in design.items()},
    ...      "time_to_recurrence": ("sample", [5.0, 9.0, 12.0, np.inf], {"units": "days"})},
    ...     attrs={"design": '{"names": ["tamoxifen_days", "kappa_T"]}'})
    >>> ax = heatmap(ds, "tamoxifen_days", "kappa_T")
    >>> ax.collections[0].get_array().shape
    (2, 2)
    """
    sweep_ds = _dataset(sweep_ds, "sweep_ds", _SWEEP)
    if "sample" not in sweep_ds.dims:
        raise ValueError(f"`sweep_ds` has no `sample` dim: expected {_SWEEP}")
    columns = _design_columns(sweep_ds)
    for argument, name in (("x", x), ("y", y)):
        if name not in columns:
            raise ValueError(
                f"`{argument}` = {name!r}: not a design column of `sweep_ds`; its design "
                f"columns are {columns}"
            )
    if x == y:
        raise ValueError(f"`x` = `y` = {x!r}: expected two different design columns")
    if variable not in sweep_ds.data_vars or sweep_ds[variable].dims != ("sample",):
        outputs = [
            str(name)
            for name, values in sweep_ds.data_vars.items()
            if values.dims == ("sample",) and name not in columns
        ]
        raise ValueError(
            f"`variable` = {variable!r}: `sweep_ds` has no such metric along `sample`; its "
            f"metrics are {outputs}"
        )
    x_values = np.asarray(sweep_ds[x].values, dtype=float)
    y_values = np.asarray(sweep_ds[y].values, dtype=float)
    metric = np.asarray(sweep_ds[variable].values, dtype=float)
    x_axis, column = np.unique(x_values, return_inverse=True)
    y_axis, row = np.unique(y_values, return_inverse=True)
    if x_axis.size * y_axis.size > max(x_values.size, 10**6):  # before allocating the cells
        raise ValueError(
            f"`sweep_ds` is not a grid over `x` = {x!r} and `y` = {y!r}: {x_values.size} samples "
            f"take {x_axis.size} values of {x} and {y_axis.size} of {y}, so a grid would hold "
            f"{x_axis.size * y_axis.size} (a Latin hypercube or Sobol design: plot it as points "
            "or sweep a tolsim.design.grid)"
        )
    count = np.zeros((y_axis.size, x_axis.size), dtype=int)
    np.add.at(count, (row, column), 1)
    if (count > 1).any():
        i, j = np.argwhere(count > 1)[0]
        others = [name for name in columns if name not in (x, y)]
        hint = f" (other design columns vary: {others}; select one value of each)"
        raise ValueError(
            f"`sweep_ds` is not a grid over `x` = {x!r} and `y` = {y!r}: {count[i, j]} samples "
            f"share {x} = {x_axis[j]:g}, {y} = {y_axis[i]:g}" + (hint if others else "")
        )
    if (count == 0).any():
        i, j = np.argwhere(count == 0)[0]
        raise ValueError(
            f"`sweep_ds` is not a grid over `x` = {x!r} and `y` = {y!r}: no sample has "
            f"{x} = {x_axis[j]:g}, {y} = {y_axis[i]:g} ({int((count == 0).sum())} cells empty)"
        )
    pivot = np.empty((y_axis.size, x_axis.size))
    pivot[row, column] = metric
    finite = pivot[np.isfinite(pivot)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    margin = max(high - low, 1.0)
    shown = np.where(np.isposinf(pivot), high + margin, pivot)
    shown = np.where(np.isneginf(pivot), low - margin, shown)
    import matplotlib
    from matplotlib.colors import Normalize

    colours = matplotlib.colormaps[cmap].with_extremes(
        over=_NEVER_COLOUR, under=_NEVER_COLOUR, bad=_MISSING_COLOUR
    )
    ax = _axes(ax)
    mesh = ax.pcolormesh(
        np.arange(x_axis.size + 1) - 0.5,
        np.arange(y_axis.size + 1) - 0.5,
        np.ma.masked_invalid(shown),
        cmap=colours,
        norm=Normalize(low, high),
    )
    _grid_ticks(ax.xaxis, x_axis)
    _grid_ticks(ax.yaxis, y_axis)
    ax.set_xlabel(_column_label(sweep_ds, x))
    ax.set_ylabel(_column_label(sweep_ds, y))
    over, under = bool(np.isposinf(pivot).any()), bool(np.isneginf(pivot).any())
    notes = []
    if over:
        never = " (no recurrence within the horizon)" if variable == "time_to_recurrence" else ""
        notes.append(f"red ▲: inf{never}")
    if under:
        notes.append("red ▼: -inf")
    if np.isnan(pivot).any():
        notes.append("grey: failed or not computed")
    text = _quantity_label(sweep_ds[variable], variable)
    colorbar = ax.figure.colorbar(
        mesh,
        ax=ax,
        extend={(True, True): "both", (True, False): "max", (False, True): "min"}.get(
            (over, under), "neither"
        ),
    )
    colorbar.set_label("\n".join([text, *notes]))
    return ax


# -- schedule optimisation --------------------------------------------------------------------
def tradeoff(result: xr.Dataset, ax: Axes | None = None) -> Axes:
    """Schedule trade-off: every candidate's burden and benefit, the Pareto front, the best.

    Parameters
    ----------
    result : xarray.Dataset
        From :func:`tolsim.optimize_schedule`: per ``candidate`` the ``benefit`` and
        ``burden`` (with ``long_name`` and ``units`` attrs), ``feasible`` and ``on_front``
        (bool); scalar ``best`` (index of the best feasible candidate; negative for none).
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        Burden on x, benefit on y: feasible candidates as faint grey points (first
        collection), infeasible ones as faint crosses (next, if any), the front as a line
        with markers through the ``on_front`` candidates in order of burden, and the best
        schedule as a red star (last collection).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> result = xr.Dataset(
    ...     {"benefit": ("candidate", [10.0, 25.0, 20.0, 40.0],
    ...                  {"long_name": "recurrence-free days", "units": "days"}),
    ...      "burden": ("candidate", [5.0, 10.0, 15.0, 30.0],
    ...                 {"long_name": "inhibitor days", "units": "days"}),
    ...      "feasible": ("candidate", [True, True, True, False]),
    ...      "on_front": ("candidate", [True, True, False, True]),
    ...      "best": ((), 1)})
    >>> ax = tradeoff(result)
    >>> ax.lines[0].get_xdata().tolist(), ax.get_xlabel()
    ([5.0, 10.0, 30.0], 'inhibitor days (days)')
    """
    result = _dataset(result, "result", _OPTIMISATION)
    dim = ("candidate",)
    _require(
        result,
        "result",
        _OPTIMISATION,
        {"benefit": dim, "burden": dim, "feasible": dim, "on_front": dim, "best": ()},
    )
    benefit = np.asarray(result["benefit"].values, dtype=float)
    burden_ = np.asarray(result["burden"].values, dtype=float)
    feasible = np.asarray(result["feasible"].values, dtype=bool)
    on_front = np.asarray(result["on_front"].values, dtype=bool)
    best = int(result["best"])
    if best >= benefit.size:
        raise ValueError(
            f"`result['best']` = {best}: expected the index of a candidate (there are "
            f"{benefit.size})"
        )
    ax = _axes(ax)
    ax.scatter(
        burden_[feasible], benefit[feasible], s=12, color="0.5", alpha=0.3, label="candidates"
    )
    if (~feasible).any():
        ax.scatter(
            burden_[~feasible],
            benefit[~feasible],
            s=12,
            marker="x",
            color="0.5",
            alpha=0.3,
            label="infeasible",
        )
    order = np.argsort(burden_[on_front], kind="stable")
    ax.plot(
        burden_[on_front][order],
        benefit[on_front][order],
        "o-",
        color="C0",
        ms=4,
        label="Pareto front",
    )
    if best >= 0:
        ax.scatter(
            [burden_[best]],
            [benefit[best]],
            marker="*",
            s=200,
            color="tab:red",
            zorder=3,
            label="best feasible",
        )
    budget = float(result.attrs.get("budget", np.nan))
    if np.isfinite(budget):  # the constraint: candidates right of it are infeasible
        ax.axvline(budget, ls=":", color="k", lw=1, label=f"budget ({budget:g})")
    ax.set_xlabel(_quantity_label(result["burden"], "burden"))
    ax.set_ylabel(_quantity_label(result["benefit"], "benefit"))
    if "objective" in result.attrs:
        ax.set_title(str(result.attrs["objective"]), fontsize="medium")
    return ax
