"""Stochastic simulation front end: exact SSA, tau-leaping and hybrid paths as Datasets, and
the probabilities users ask of them (extinction, recurrence) with binomial intervals.

:func:`tolsim.simulate` calls :func:`simulate_paths` for ``method="ssa" | "tau" | "hybrid"``.
"""

from __future__ import annotations

import functools
import json
import numbers
import operator
import warnings

import numpy as np
import xarray as xr
from scipy.special import betaincinv

import tolsim
from tolsim import buffers
from tolsim.branching import branching_extinction
from tolsim.kernels.specialise import specialised
from tolsim.models.base import Model
from tolsim.recurrence import (
    PROVENANCE,
    SOURCE_ATTRS,
    _arms_only,
    check_provenance,
    check_threshold,
    provenance_digest,
    source_record,
    threshold_text,
)
from tolsim.simulate import drug_variables

__all__ = [
    "STOCHASTIC_METHODS",
    "extinction_probability",
    "kernel_module",
    "recurrence_probability",
    "simulate_paths",
]

STOCHASTIC_METHODS = ("ssa", "tau", "hybrid")
_METHOD_CODES = {"ssa": 0, "tau": 1, "hybrid": 2}
STATUS_MESSAGES = {
    0: "success",
    -1: "step size underflow in the hybrid method's ODE part",
    -2: "event budget reached (raise `max_events`, or use method='tau' or 'hybrid')",
    -4: "negative or NaN propensity from the model's rate function",
}
_MAX_SEED = 2**63
DEFAULT_MAX_EVENTS = 10**8


def kernel_module(model: Model, method: str):
    """The model's stochastic kernels (a copy of :mod:`tolsim.kernels.stochastic_template`)
    with ``method`` ("ssa", "tau" or "hybrid") compiled in: its ``simulate_batch`` runs that
    method alone, and compiles that method's path alone (on 2 cores, a fresh cache's first
    call: SSA 34-38 s, tau 25-28 s, hybrid 22-23 s, against 62 s for one copy holding all
    three methods)."""
    if method not in _METHOD_CODES:
        raise ValueError(f"`method` = {method!r}: expected one of {list(_METHOD_CODES)}")
    check_day_independent(model, method)
    return specialised("stochastic_template", model.rates, {"METHOD": str(_METHOD_CODES[method])})


def check_day_independent(model: Model, method: str) -> None:
    """The stochastic methods take propensities as constant between breakpoints (but for
    the concentrations): refuse a model whose rates read the day itself, which they would
    run with status 0 and a wrong answer (SSA 11 standard errors off in review)."""
    changing = model.day_dependent_transition()
    if changing is not None:
        raise ValueError(
            f"`method` = {method!r}: the propensity of transition {changing!r} of model "
            f"{model.name!r} depends on the day `t` itself, which the stochastic methods "
            "take as constant between the schedule's breakpoints (they read time only through "
            "the drug concentrations `c`); use an ODE method"
        )


def check_seed(seed) -> int:
    """An integer seed in [0, 2**63), or one drawn from a ``numpy.random.Generator``."""
    if seed is None:
        raise ValueError(
            "`seed` = None: stochastic methods need an explicit seed so that results can be "
            "reproduced; pass an integer (e.g. seed=2026) or a numpy.random.Generator (one "
            "seed is drawn from it and recorded in the result's attrs)"
        )
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(_MAX_SEED))
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"`seed` = {seed!r}: expected an integer in [0, 2**63) or a numpy.random.Generator"
        )
    if not 0 <= int(seed) < _MAX_SEED:
        raise ValueError(f"`seed` = {seed!r}: expected an integer in [0, 2**63)")
    return int(seed)


def _check_count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"`{name}` = {value!r}: expected an integer >= {minimum}")
    return int(value)


def _check_initial_counts(model: Model, packed: np.ndarray) -> np.ndarray:
    x0 = model.initial_state(packed)
    bad = ~np.isfinite(x0) | (x0 < 0) | (x0 != np.round(x0))
    if np.any(bad):
        row, column = (int(v) for v in np.argwhere(bad)[0])
        parameter = dict(model.initial)[model.states[column]]
        where = f"params.{parameter}" + (f"[{row}]" if packed.shape[0] > 1 else "")
        raise ValueError(
            f"`{where}` = {float(x0[row, column])!r} cells: stochastic methods need a whole, "
            "non-negative number of cells"
        )
    return x0


def simulate_paths(
    model: Model,
    packed: np.ndarray,
    single: bool,
    schedule,
    t_out: np.ndarray,
    method: str,
    *,
    paths: int,
    seed,
    path_start: int,
    max_events: int,
    threshold: float,
    recurrence_threshold,
    throw: bool,
    device: str = "cpu",
) -> xr.Dataset:
    """Run the stochastic kernels; see :func:`tolsim.simulate` for the arguments
    (``device="cuda"``: method "tau" on the GPU, :mod:`tolsim.cuda_stochastic`)."""
    from tolsim.simulate import SolverError, _check_memory, simulate

    paths = _check_count(paths, "paths", 1)
    path_start = _check_count(path_start, "path_start", 0)
    max_events = _check_count(max_events, "max_events", 1)
    seed = check_seed(seed)
    if path_start + paths > 2**63:
        raise ValueError(
            f"`path_start` = {path_start} with `paths` = {paths}: path indices must stay below "
            "2**63"
        )
    given = threshold
    if isinstance(given, bool | np.bool_ | str) or np.ndim(given) != 0:
        raise TypeError(f"`threshold` = {given!r}: expected one number of cells >= 1")
    threshold = float(given)
    if not np.isfinite(threshold) or threshold < 1:
        raise ValueError(f"`threshold` = {threshold!r} cells: expected a finite number >= 1")
    x0 = _check_initial_counts(model, packed)
    n_samples, n_times, n_states = packed.shape[0], t_out.shape[0], len(model.states)
    _check_memory(n_samples * paths, n_times, n_states, len(model.exposures))

    try:
        withdrawal_day = schedule.withdrawal_day("tamoxifen")
    except ValueError:
        withdrawal_day = None
    # recurrence is armed at the start of a piece: the withdrawal day must be a boundary (an
    # oral regimen's stop day is none of the schedule's own)
    compiled = schedule.compile(model.drugs, extra_days=_arm_days(withdrawal_day))
    breakpoints = compiled.breakpoints_days
    arm_piece = -1
    if withdrawal_day is not None and withdrawal_day <= t_out[-1]:
        arm_piece = int(np.searchsorted(breakpoints, withdrawal_day))
    arm_level = check_threshold(recurrence_threshold, "recurrence_threshold")
    kernels = kernel_module(model, method)
    if method == "ssa":
        expected = _expected_events(model, packed, schedule, t_out, kernels, simulate)
        worst = int(np.argmax(expected))
        if expected[worst] > max_events:
            which = "" if single else f" (sample {worst})"
            raise ValueError(
                f"exact SSA would fire about {expected[worst]:.2g} events per path{which} up to "
                f"day {t_out[-1]:g} (estimated from the mean-field solution), more than "
                f"`max_events` = {max_events:,}: use method='tau' or method='hybrid' for "
                "populations this large, or raise `max_events`"
            )
    out = buffers.empty((n_samples, paths, n_times, n_states), dtype=np.int64)
    summary = np.empty((n_samples, paths, n_states + 2))
    path_stats = np.zeros((n_samples, paths, kernels.N_STATS), dtype=np.int64)
    if device == "cuda":
        from tolsim import cuda_stochastic

        cuda_stochastic.simulate_batch(
            model,
            packed,
            x0,
            compiled,
            model.stoichiometry.astype(np.float64),
            t_out,
            seed,
            path_start,
            max_events,
            arm_piece,
            np.full(n_samples, arm_level),
            out,
            summary,
            path_stats,
        )
    else:
        kernels.simulate_batch(
            kernels.METHOD,
            packed,
            x0,
            tuple(compiled),
            model.stoichiometry.astype(np.float64),
            t_out,
            seed,
            0,
            path_start,
            max_events,
            arm_piece,
            np.full(n_samples, arm_level),
            threshold,
            out,
            summary,
            path_stats,
        )
    ds = _to_dataset(
        model,
        packed,
        single,
        schedule,
        compiled,
        t_out,
        out,
        summary,
        path_stats,
        method=method,
        seed=seed,
        path_start=path_start,
        max_events=max_events,
        threshold=threshold,
        recurrence_threshold=recurrence_threshold,
        withdrawal_day=withdrawal_day,
        armed=arm_piece >= 0,
    )
    if device == "cuda":
        ds.attrs["device"] = "cuda"
    failed = np.argwhere(path_stats[..., 0] != 0)
    if failed.size and throw:
        sample, path = (int(v) for v in failed[0])
        code = int(path_stats[sample, path, 0])
        message = STATUS_MESSAGES[code]
        if code == -2 and method != "ssa":  # the advice to leave the SSA does not apply
            message = "event budget reached (raise `max_events`)"
        raise SolverError(
            f"{failed.shape[0]} of {n_samples * paths} path(s) failed, first sample {sample} "
            f"path {path_start + path}: {message}. "
            "The partial result is in `error.dataset`; pass throw=False to get it returned.",
            ds,
        )
    return ds


def _arm_days(withdrawal_day: float | None) -> tuple[float, ...]:
    """The piece boundary recurrence counting needs (none without a withdrawal)."""
    return () if withdrawal_day is None else (withdrawal_day,)


def _expected_events(model, packed, schedule, t_out, kernels, simulate) -> np.ndarray:
    """Events per path the exact SSA would fire: the integral of the total propensity along
    the mean-field solution (trapezoidal rule on a fine grid)."""
    grid = np.union1d(t_out, np.linspace(0.0, t_out[-1], 2001))
    grid = np.union1d(grid, schedule.breakpoints()[schedule.breakpoints() <= t_out[-1]])
    table = {
        name: packed[:, i] for i, name in enumerate(model.parameter_names)
    }  # already validated
    ode = simulate(model, table, schedule, grid, method="dopri5", rtol=1e-4, throw=False)
    states = np.stack([ode[s].values for s in model.states], axis=-1)
    states = np.nan_to_num(states, nan=0.0)
    compiled = schedule.compile(model.drugs)
    return kernels.expected_events(packed, states, grid, tuple(compiled), len(model.transitions))


def _to_dataset(
    model,
    packed,
    single,
    schedule,
    compiled,
    t_out,
    out,
    summary,
    path_stats,
    *,
    method,
    seed,
    path_start,
    max_events,
    threshold,
    recurrence_threshold,
    withdrawal_day,
    armed,
):
    n_states = len(model.states)
    sample_dims = () if single else ("sample",)
    index = 0 if single else slice(None)
    dims = (*sample_dims, "path", "time")
    path_dims = (*sample_dims, "path")
    data_vars = {}
    missing = {"missing_value": -1}
    for i, state in enumerate(model.states):
        data_vars[state] = (
            dims,
            out[index, :, :, i],
            {"units": "cells", "long_name": f"{state} cells", **missing},
        )
    total = out.sum(axis=-1)
    total[np.any(out < 0, axis=-1)] = -1
    data_vars["N"] = (
        dims,
        total[index],
        {"units": "cells", "long_name": "total cells", **missing},
    )
    tolerant = out[..., [model.states.index(s) for s in model.tolerant_states]].sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(total > 0, tolerant / np.where(total > 0, total, 1), np.nan)
    data_vars["tolerant_fraction"] = (
        dims,
        fraction[index],
        {"units": "1", "long_name": f"fraction of cells in {'+'.join(model.tolerant_states)}"},
    )
    data_vars.update(drug_variables(model, packed, compiled, t_out, sample_dims, index))
    status = path_stats[..., 0]
    data_vars["status"] = (
        path_dims,
        status[index].astype(np.int32),
        {"long_name": "solver status", "flag_meanings": json.dumps(STATUS_MESSAGES)},
    )
    messages = np.vectorize(lambda s: STATUS_MESSAGES[int(s)], otypes=[str])(status)
    data_vars["message"] = (path_dims, messages[index])
    for column, name, long_name in (
        (1, "n_events", "transitions fired"),
        (2, "n_steps", "exact events, leaps and ODE steps taken"),
        (3, "n_rejected_steps", "halved leaps and rejected ODE steps"),
    ):
        data_vars[name] = (path_dims, path_stats[index, :, column], {"long_name": long_name})
    failed = status != 0
    for i, state in enumerate(model.states):
        days = np.where(failed, np.nan, summary[..., i])
        data_vars[f"extinction_day_{state}"] = (
            path_dims,
            days[index],
            {
                "units": "days",
                "long_name": f"day {state} became 0 for good (NaN: {state} > 0 at the end)",
            },
        )
    days = np.where(failed, np.nan, summary[..., n_states])
    data_vars["extinction_day"] = (
        path_dims,
        days[index],
        {"units": "days", "long_name": "day the whole population died out (NaN: it did not)"},
    )
    recurrence = summary[..., n_states + 1].copy()
    if armed:
        recurrence[np.isnan(recurrence)] = np.inf  # right-censored at the last output day
    recurrence[failed] = np.nan
    data_vars["time_to_recurrence"] = (
        path_dims,
        recurrence[index],
        {
            "units": "days",
            "long_name": "days from tamoxifen withdrawal until the burden first exceeds the "
            "threshold (inf: not by the last output day)",
            "threshold": threshold_text(recurrence_threshold),
        },
    )
    n_params = len(model.parameters)
    data_vars["parameters"] = (
        (*sample_dims, "parameter"),
        packed[index, :n_params],
        {"units": json.dumps({p.name: p.unit for p in model.parameters})},
    )
    coords = {
        "time": ("time", t_out, {"units": "days", "long_name": "time since start of schedule"}),
        "path": ("path", np.arange(path_start, path_start + out.shape[1])),
        "parameter": ("parameter", list(model.parameter_names)),
    }
    if not single:
        coords["sample"] = ("sample", np.arange(packed.shape[0]))
    attrs = {
        "title": f"tolsim stochastic simulation of {model.name}",
        "model": json.dumps(model.describe()),
        "schedule": json.dumps(schedule.to_dict()),
        "method": method,
        "seed": seed,
        "random_streams": "xoshiro256** per path, seeded from (seed, sample, path)",
        "max_events": max_events,
        "recurrence_threshold": threshold_text(recurrence_threshold),
        "tolsim_version": tolsim.__version__,
    }
    if method == "hybrid":
        attrs["threshold_cells"] = threshold
    if single:
        attrs["params"] = json.dumps(
            dict(zip(model.parameter_names, packed[0, :n_params].tolist(), strict=True))
        )
    if withdrawal_day is not None:
        attrs["withdrawal_day"] = withdrawal_day
    data_vars[PROVENANCE] = (
        (),
        provenance_digest(attrs),
        {"long_name": "SHA-256 of the schedule, withdrawal_day and recurrence_threshold attrs"},
    )
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


# -- probabilities -----------------------------------------------------------------------------
def _binomial_interval(successes, trials, level):
    """Clopper–Pearson (exact) interval for a binomial proportion."""
    alpha = 1.0 - level
    successes = np.asarray(successes, dtype=float)
    trials = np.asarray(trials, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(
            successes > 0, betaincinv(successes, trials - successes + 1, alpha / 2), 0.0
        )
        high = np.where(
            successes < trials,
            betaincinv(successes + 1, trials - successes, 1 - alpha / 2),
            1.0,
        )
    return low, high


def _number(value, name: str, what: str) -> float:
    """``value`` as a float, or a TypeError naming ``name``."""
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"`{name}` = {value!r}: expected {what}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` = {value!r}: expected {what}") from None


def _check_level(level) -> float:
    level = _number(level, "level", "a confidence level in (0, 1)")
    if not 0.0 < level < 1.0:
        raise ValueError(f"`level` = {level!r}: expected a confidence level in (0, 1)")
    return level


def _check_paths_dataset(ds) -> xr.Dataset:
    """``ds`` checked as a stochastic result; a simulate_arms one with its per-arm variables
    along the arm dim only (concatenated along ``path``, they have that dim too)."""
    if not isinstance(ds, xr.Dataset) or "path" not in ds.dims:
        raise TypeError(
            "`ds` is not a stochastic result: expected the Dataset of tolsim.simulate(..., "
            "method='ssa' | 'tau' | 'hybrid'), which has a `path` dimension"
        )
    check_provenance(ds)
    if "withdrawal_day" in ds.variables and "withdrawal_day" not in ds.attrs:
        ds = _arms_only(ds)
    return ds


# what a probability estimated from paths keeps of the paths' result: enough to run them again
_SOURCE_ATTRS = (
    *SOURCE_ATTRS, "random_streams", "max_events", "threshold_cells", "recurrence_threshold",
    "withdrawal_day", "device",
)  # fmt: skip


def _proportion(
    event: xr.DataArray,
    ok: xr.DataArray,
    failed: xr.DataArray,
    level: float,
    name: str,
    long_name: str,
    source: xr.Dataset,
):
    def bare(array):  # counts: none of the paths' variables' attrs (units, flags)
        return array.drop_attrs(deep=False)

    successes = bare((event & ok).sum("path"))
    trials = bare(ok.sum("path"))
    failed = bare(failed.sum("path"))
    # A failed path's outcome is unknown, and failures need not be independent of the event
    # (a path that exhausts its event budget is a large one): the interval counts them both
    # ways, as without the event for its lower end and as with it for its upper end. With no
    # failed path this is the plain Clopper-Pearson interval.
    everything = trials.values + failed.values
    low, _ = _binomial_interval(successes.values, everything, level)
    _, high = _binomial_interval(successes.values + failed.values, everything, level)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = bare(successes / trials)
    dims = successes.dims
    data = {
        name: estimate.assign_attrs(units="1", long_name=long_name),
        "ci_low": (dims, low, {"units": "1", "long_name": f"{level:.0%} interval, lower"}),
        "ci_high": (dims, high, {"units": "1", "long_name": f"{level:.0%} interval, upper"}),
        "n_paths": trials.assign_attrs(
            units="1", long_name="paths counted (failed paths excluded)"
        ),
        "n_events": successes.assign_attrs(units="1", long_name="paths with the event"),
        "n_failed": failed.assign_attrs(
            units="1", long_name="failed paths (outcome unknown; see the paths' `status`)"
        ),
    }
    if "parameters" in source.variables:  # a table of parameter sets: its values
        data["parameters"] = source["parameters"]
    attrs = source_record(source.attrs, _SOURCE_ATTRS)
    attrs |= {
        "interval": "Clopper-Pearson (exact binomial); failed paths counted as without the "
        "event for ci_low and as with it for ci_high",
        "level": level,
    }
    return xr.Dataset(data, attrs=attrs)


def _successful(ds) -> tuple[xr.DataArray, xr.DataArray]:
    """The paths that succeeded, and those that failed; a NaN status (a path that does not
    exist, padded where results of different path counts were concatenated) is neither."""
    status = ds["status"]
    ok = status == 0
    failed = status.notnull() & (status != 0)
    n_failed = int(failed.sum())
    if n_failed:
        warnings.warn(
            f"{n_failed} failed path(s) are left out of the estimate and counted both ways in "
            "its interval (see `status` and `n_failed`)",
            UserWarning,
            stacklevel=3,
        )
    return ok, failed


def extinction_probability(
    source,
    params=None,
    schedule=None,
    *,
    states=None,
    by_day=None,
    initial=None,
    level: float = 0.95,
) -> xr.Dataset:
    """Probability that the cells of ``states`` (default: all) are gone by a day.

    Two ways to the same number:

    * ``extinction_probability(ds, states=..., by_day=...)`` — Monte Carlo, from a stochastic
      result ``ds`` (any model): the fraction of paths with no cell of ``states`` on day
      ``by_day`` (an output day; default the last), with a Clopper–Pearson interval at
      confidence ``level``. Failed paths (``status`` != 0, possible with ``throw=False``)
      are left out of the fraction and counted both ways in the interval: as without the
      event for ``ci_low``, as with it for ``ci_high``.
    * ``extinction_probability(model, params, schedule, states=..., by_day=..., initial=...)``
      — exact, for linear models: the multi-type branching process (see
      :func:`tolsim.branching.branching_extinction`; ``by_day=np.inf`` gives eventual
      extinction).

    Returns
    -------
    xarray.Dataset
        Monte Carlo: ``extinction_probability``, ``ci_low``, ``ci_high``, ``n_paths`` (paths
        counted), ``n_events`` and ``n_failed`` (per sample). Exact: see
        :func:`~tolsim.branching.branching_extinction`.

    Examples
    --------
    >>> import numpy as np, tolsim
    >>> model = tolsim.models.TwoState(crowding="none")
    >>> p = model.default_params(S0=0, T0=5, kappa_T=0.3)
    >>> schedule = tolsim.Schedule.from_phases([{"days": 30, "inhibitor": 10.0}])
    >>> exact = tolsim.extinction_probability(model, p, schedule, states=["T"])
    >>> ds = tolsim.simulate(model, p, schedule, [0.0, 30.0], method="ssa", paths=2000, seed=1)
    >>> mc = tolsim.extinction_probability(ds, states=["T"])
    >>> bool(mc.ci_low <= exact.extinction_probability <= mc.ci_high)
    True
    """
    if isinstance(source, Model):
        if level != 0.95:
            raise ValueError("`level` applies to Monte Carlo estimates, not exact results")
        return branching_extinction(
            source, params, schedule, by_day=by_day, states=states, initial=initial
        )
    source = _check_paths_dataset(source)
    if params is not None or schedule is not None or initial is not None:
        raise TypeError(
            "`params`, `schedule` and `initial` are for the exact (model) form; a stochastic "
            "result already holds them"
        )
    level = _check_level(level)
    model_states = json.loads(source.attrs["model"])["states"]
    if states is None:
        states = model_states
    if isinstance(states, str):
        raise TypeError(f"`states` = {states!r}: expected a list of state names, e.g. ['T']")
    unknown = [s for s in states if s not in model_states]
    if unknown or not states:
        raise ValueError(f"`states` = {list(states)!r}: expected names among {model_states}")
    times = source["time"].values
    if by_day is None:
        by_day = float(times[-1])
    by_day = _number(by_day, "by_day", "an output day of the result (days)")
    if by_day not in times:
        raise ValueError(
            f"`by_day` = {by_day!r}: expected one of the result's output days (simulate with "
            "that day in `times`)"
        )
    at = source.sel(time=float(by_day))
    extinct = functools.reduce(operator.and_, [at[s] == 0 for s in states])  # keeps its dims
    ok, failed = _successful(source)
    result = _proportion(
        extinct,
        ok,
        failed,
        level,
        "extinction_probability",
        f"probability of no {'+'.join(states)} cells on day {by_day:g}",
        source,
    )
    result.attrs.update(by_day=float(by_day), target_states=json.dumps(list(states)))
    return result


def recurrence_probability(ds: xr.Dataset, horizon: float, *, level: float = 0.95):
    """Probability that the burden recurs within ``horizon`` days of tamoxifen withdrawal.

    The fraction of paths whose ``time_to_recurrence`` (computed exactly inside the kernel for
    the threshold given to :func:`tolsim.simulate`) is at most ``horizon``, with a
    Clopper–Pearson interval at confidence ``level``; ``n_paths``, ``n_events`` and
    ``n_failed`` as for :func:`extinction_probability`, whose interval also counts failed
    paths both ways.

    Examples
    --------
    >>> import tolsim
    >>> model = tolsim.models.TwoState(crowding="none")
    >>> p = model.default_params(S0=0, T0=3)
    >>> schedule = tolsim.Schedule.from_phases(
    ...     [{"days": 10, "tamoxifen": 1.0, "inhibitor": 10.0}, {"days": 60}]
    ... )
    >>> ds = tolsim.simulate(model, p, schedule, [0.0, 70.0], method="ssa", paths=500, seed=3,
    ...                      recurrence_threshold=200)
    >>> result = tolsim.recurrence_probability(ds, horizon=60)
    >>> bool(0 < result.recurrence_probability < 1)
    True
    """
    ds = _check_paths_dataset(ds)
    horizon = _number(horizon, "horizon", "a number of days")
    if "withdrawal_day" in ds.attrs:
        withdrawal = xr.DataArray(float(ds.attrs["withdrawal_day"]))
    elif "withdrawal_day" in ds.variables:  # per arm (tolsim.simulate_arms); NaN: none
        withdrawal = ds["withdrawal_day"]
    else:
        withdrawal = xr.DataArray(np.nan)
    if np.isnan(withdrawal.values).all():
        raise ValueError("`ds` records no tamoxifen withdrawal: there is no recurrence to count")
    latest = float(np.nanmax(withdrawal.values))
    last = float(ds["time"].values[-1]) - latest
    if last < 0:
        raise ValueError(
            f"`ds` ends on day {float(ds['time'].values[-1]):g}, before tamoxifen is withdrawn "
            f"(day {latest:g}): simulate past the withdrawal"
        )
    if not 0 <= horizon <= last:
        raise ValueError(
            f"`horizon` = {horizon!r} days: expected a number of days after withdrawal within "
            f"the simulated follow-up [0, {last:g}]"
        )
    level = _check_level(level)
    ok, failed = _successful(ds)
    result = _proportion(
        ds["time_to_recurrence"] <= horizon,
        ok,
        failed,
        level,
        "recurrence_probability",
        f"probability of recurrence within {horizon:g} days of withdrawal",
        ds,
    )
    result.attrs.update(horizon_days=horizon, threshold=ds.attrs["recurrence_threshold"])
    if withdrawal.ndim:  # an arm that gives no tamoxifen has nothing to recur from
        given = np.isfinite(withdrawal)
        for name in ("recurrence_probability", "ci_low", "ci_high"):
            result[name] = result[name].where(given)
    return result
