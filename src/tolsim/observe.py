"""Observation: what a measurement sees of a simulation, and how measurements scatter.

An :class:`Observable` turns one condition's simulated :class:`Trajectory` into predicted
measurements at given days (total cells, tumour volume, luminescence, the weekly fold
expansion N(t)/N(t - 7), the time to recurrence after withdrawal, or any user formula). A
:class:`NoiseModel` (:class:`Normal`, :class:`LogNormal`, :class:`Proportional`,
:class:`Combined`) gives the negative log-likelihood of observed values around predictions,
with right-censored rows and rows below a detection limit (left-censored). Everything here
works on plain numpy arrays, for the inner loop of fitting; :meth:`Trajectory.from_dataset`
converts a :func:`tolsim.simulate` result once.

Parameter names
---------------
Observable and noise parameters have *local* names inside their objects (``alpha``,
``offset``, ``sigma``); an observable's formula and :meth:`NoiseModel.nllh` receive mappings
keyed by local names. Across a fit every one of them is *qualified* by the observable's name:
``"<observable>.<local>"``, e.g. ``"luminescence.alpha"`` and ``"luminescence.sigma"`` for the
luminescence observable and its noise model. :attr:`Observable.parameter_names`,
:meth:`Observable.fit_parameters` and :meth:`Observable.local_params` apply this rule.
Observable names and local names may not contain ``"."`` (checked when built), and model
parameter names are identifiers without one, so a qualified name never collides with a model
parameter, and two observables never share a parameter by accident.

Examples
--------
>>> import numpy as np
>>> days = np.array([0.0, 7.0, 14.0])
>>> traj = Trajectory(days, {"N": np.array([100.0, 300.0, 600.0])}, None)
>>> fold = fold_expansion(lag_days=7.0)
>>> fold.predict(traj, np.array([7.0, 14.0]))
array([3., 2.])
>>> noise = LogNormal()
>>> round(noise.nllh([2.9, 2.1], [3.0, 2.0], None, None, {"sigma": 0.1}), 6)
-0.784155
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import NamedTuple

import numpy as np
from scipy.special import log_ndtr

from tolsim.kernels.events import recurrence_days
from tolsim.models.base import Parameter, _check_value, _real_number
from tolsim.recurrence import check_threshold, derivative_jumps
from tolsim.schedule import Schedule

__all__ = [
    "OBSERVABLE_KINDS",
    "Combined",
    "LogNormal",
    "NoiseModel",
    "Normal",
    "Observable",
    "Proportional",
    "Trajectory",
    "fold_expansion",
    "luminescence",
    "tolerant_fraction",
    "time_to_recurrence",
    "total_cells",
    "tumour_volume",
]

OBSERVABLE_KINDS = ("value", "event")
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


# -- trajectories ---------------------------------------------------------------------------


class Trajectory(NamedTuple):
    """One condition's simulation at sorted output days.

    Attributes
    ----------
    times : numpy.ndarray, shape (n,)
        Output days, strictly increasing.
    values : mapping of str to numpy.ndarray, shape (n,)
        Each state name (cells), ``"N"`` (cells), ``"tolerant_fraction"`` (1) and ``"dN_dt"``
        (cells/day) at ``times``.
    withdrawal_day : float or None
        Day tamoxifen is withdrawn; None when the schedule never gives it.
    jumps : numpy.ndarray of bool, shape (n,), optional
        True at output days where a drug's level steps, so ``dN_dt`` (stored from the right)
        jumps (:func:`tolsim.recurrence.derivative_jumps`); None: nowhere.

    Examples
    --------
    >>> import numpy as np
    >>> traj = Trajectory(np.array([0.0, 1.0, 2.0]), {"N": np.array([1.0, 2.0, 4.0])}, None)
    >>> traj.at("N", np.array([2.0, 0.0]))
    array([4., 1.])
    """

    times: np.ndarray
    values: Mapping[str, np.ndarray]
    withdrawal_day: float | None = None
    jumps: np.ndarray | None = None

    def at(self, name: str, days: np.ndarray) -> np.ndarray:
        """Values of ``name`` at output days exactly (no interpolation).

        Parameters
        ----------
        name : str
            A key of :attr:`values`, e.g. ``"N"``.
        days : numpy.ndarray, shape (m,)
            Days, each one of :attr:`times` (simulate at :meth:`Observable.required_days`).

        Returns
        -------
        numpy.ndarray, shape (m,)

        Raises
        ------
        ValueError
            If ``name`` is not in :attr:`values` or a day is not an output day.
        """
        try:
            column = self.values[name]
        except KeyError:
            raise ValueError(
                f"`name` = {name!r}: the trajectory has no such values; it has {list(self.values)}"
            ) from None
        days = np.asarray(days, dtype=np.float64)
        times = self.times
        index = np.minimum(np.searchsorted(times, days), times.shape[0] - 1)
        found = times[index] == days
        if not np.all(found):
            missing = np.unique(days[~found])
            raise ValueError(
                f"day(s) {missing[:5].tolist()} are not output days of the trajectory (which "
                f"has {times.shape[0]} days from {times[0]} to {times[-1]}): simulate at "
                "`Observable.required_days(days)`"
            )
        return column[index]

    @classmethod
    def from_dataset(cls, ds) -> Trajectory:
        """The trajectory of a single-sample ODE result of :func:`tolsim.simulate`.

        Examples
        --------
        >>> import numpy as np, tolsim
        >>> model = tolsim.models.TwoState()
        >>> schedule = tolsim.Schedule.from_phases([{"days": 10, "tamoxifen": 1.0}, {"days": 5}])
        >>> ds = tolsim.simulate(model, model.default_params(), schedule, np.arange(16.0))
        >>> traj = Trajectory.from_dataset(ds)
        >>> sorted(traj.values), traj.withdrawal_day
        (['N', 'S', 'T', 'dN_dt', 'tolerant_fraction'], 10.0)
        """
        if "N" not in ds or ds["N"].dims != ("time",):
            raise ValueError(
                "`ds` must be a single-sample tolsim.simulate result (variable 'N' with the "
                "only dim 'time'); select one sample first, e.g. ds.isel(sample=0)"
            )
        names = [*json.loads(ds.attrs["model"])["states"], "N", "tolerant_fraction", "dN_dt"]
        values = {n: np.ascontiguousarray(ds[n].values, dtype=np.float64) for n in names}
        withdrawal = ds.attrs.get("withdrawal_day")
        times = np.ascontiguousarray(ds["time"].values, dtype=np.float64)
        jumps = None
        if "schedule" in ds.attrs:
            jumps = derivative_jumps(Schedule.from_json(ds.attrs["schedule"]), times)
        return cls(times, values, None if withdrawal is None else float(withdrawal), jumps)


# -- observables ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Observable:
    """What a measurement sees of a trajectory.

    Parameters
    ----------
    name : str
        Name of the observable (no ``"."``); it qualifies the parameter names in a fit.
    unit : str
        Unit of the predicted values, e.g. ``"cells"``, ``"mm^3"``, ``"RLU"``, ``"days"``.
    formula : callable
        ``formula(trajectory, days, params) -> predicted`` with ``days`` a float64 array of
        shape ``(m,)`` and ``params`` a mapping of local parameter names to values; returns an
        array of shape ``(m,)``. Read values with :meth:`Trajectory.at`. A top-level function
        (or a ``functools.partial`` of one) keeps the observable picklable for process pools.
    parameters : tuple of Parameter
        Observation parameters (scale, offset...) with local names, defaults and bounds.
    lags_days : tuple of float
        Extra days needed: for each measurement day ``t`` the simulation must include
        ``t - lag`` for every lag (e.g. 7 for a weekly fold expansion).
    kind : {"value", "event"}
        ``"value"``: a quantity at each measurement day. ``"event"``: a time to event in days
        after withdrawal (possibly ``inf``), the same for every row of a condition; the
        condition must then be simulated densely up to the end of its schedule.
    description : str
        What is measured, and how.
    domain : (float, float)
        The values a measurement can take, in :attr:`unit`: ``(0, 1)`` for a fraction,
        ``(0, inf)`` for counts and sizes; default unrestricted. :func:`tolsim.fit` warns
        about data outside it, naming the rows (noise can put a measurement there, a unit
        error too), and refuses a fraction whose values look like percentages.

    Examples
    --------
    A user-defined observable, the ratio of sensitive to tolerant cells:

    >>> import numpy as np
    >>> def ratio(trajectory, days, params):
    ...     return trajectory.at("S", days) / trajectory.at("T", days)
    >>> st = Observable("sensitive_to_tolerant", "1", ratio)
    >>> traj = Trajectory(np.array([0.0, 1.0]), {"S": np.array([9.0, 8.0]),
    ...                                          "T": np.array([1.0, 2.0])}, None)
    >>> st.predict(traj, np.array([1.0]))
    array([4.])
    """

    name: str
    unit: str
    formula: Callable[[Trajectory, np.ndarray, Mapping[str, float]], np.ndarray] = field(
        compare=False
    )
    parameters: tuple[Parameter, ...] = ()
    lags_days: tuple[float, ...] = ()
    kind: str = "value"
    description: str = ""
    domain: tuple[float, float] = (-math.inf, math.inf)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or "." in self.name:
            raise ValueError(
                f"`name` = {self.name!r}: expected a non-empty string without '.' (the dot "
                "separates observable and parameter in qualified names like 'luminescence.alpha')"
            )
        if not callable(self.formula):
            raise TypeError(
                f"`formula` = {self.formula!r}: expected a callable "
                "formula(trajectory, days, params) -> predicted values"
            )
        parameters = tuple(self.parameters)
        for p in parameters:
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"`parameters` of observable {self.name!r} contains {p!r}: expected "
                    "tolsim.models.base.Parameter objects"
                )
            if not p.name or "." in p.name:
                raise ValueError(
                    f"parameter name {p.name!r} of observable {self.name!r}: expected a "
                    "non-empty local name without '.' (it is qualified as "
                    f"'{self.name}.<name>' in a fit)"
                )
        names = [p.name for p in parameters]
        if len(set(names)) != len(names):
            raise ValueError(f"`parameters` of observable {self.name!r} has duplicate names")
        try:
            lags = tuple(float(lag) for lag in self.lags_days)
        except (TypeError, ValueError):
            raise TypeError(
                f"`lags_days` = {self.lags_days!r}: expected a tuple of numbers of days"
            ) from None
        if any(not (math.isfinite(lag) and lag > 0) for lag in lags):
            raise ValueError(
                f"`lags_days` = {self.lags_days!r}: lags must be finite numbers of days > 0"
            )
        if self.kind not in OBSERVABLE_KINDS:
            raise ValueError(f"`kind` = {self.kind!r}: expected one of {list(OBSERVABLE_KINDS)}")
        if self.kind == "event" and lags:
            raise ValueError(
                f"`lags_days` = {lags!r}: an 'event' observable reads the whole trajectory "
                "after withdrawal and takes no lags"
            )
        try:
            low, high = (float(v) for v in self.domain)
        except (TypeError, ValueError):
            raise TypeError(
                f"`domain` = {self.domain!r}: expected (low, high), the values a measurement "
                "can take"
            ) from None
        if not low <= high:  # (NaN too)
            raise ValueError(f"`domain` = {self.domain!r}: expected (low, high) with low <= high")
        object.__setattr__(self, "parameters", parameters)
        object.__setattr__(self, "lags_days", lags)
        object.__setattr__(self, "domain", (low, high))

    def outside(self, values: np.ndarray) -> np.ndarray:
        """Where ``values`` (measurements, or bounds of censored ones) lie outside
        :attr:`domain`."""
        values = np.asarray(values, dtype=np.float64)
        low, high = self.domain
        return (values < low) | (values > high)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Qualified names ``"<observable>.<local>"`` of the observable's parameters."""
        return tuple(f"{self.name}.{p.name}" for p in self.parameters)

    def fit_parameters(self, noise: NoiseModel | None = None) -> tuple[Parameter, ...]:
        """The observable's parameters, then ``noise``'s, renamed to qualified names.

        Examples
        --------
        >>> [p.name for p in luminescence().fit_parameters(Normal())]
        ['luminescence.alpha', 'luminescence.offset', 'luminescence.sigma']
        """
        noise_parameters = () if noise is None else _noise_parameters(noise)
        local = [p.name for p in (*self.parameters, *noise_parameters)]
        shared = sorted({n for n in local if local.count(n) > 1})
        if shared:
            raise ValueError(
                f"observable {self.name!r} and its noise model {type(noise).__name__} both "
                f"have parameter(s) {shared}: rename the observable's"
            )
        return tuple(
            replace(p, name=f"{self.name}.{p.name}") for p in (*self.parameters, *noise_parameters)
        )

    def local_params(
        self, values: Mapping[str, float], noise: NoiseModel | None = None
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Split qualified ``values`` into local mappings for the formula and ``noise``.

        Names of other observables or of the model are ignored; a missing name takes its
        parameter's default.

        Examples
        --------
        >>> luminescence().local_params({"luminescence.alpha": 2.0, "lambda_S": 0.5}, Normal())
        ({'alpha': 2.0, 'offset': 0.0}, {'sigma': 1.0})
        """
        prefix = self.name + "."
        observable = {
            p.name: float(values.get(prefix + p.name, p.default)) for p in self.parameters
        }
        noise_values = (
            {}
            if noise is None
            else {p.name: float(values.get(prefix + p.name, p.default)) for p in noise.parameters}
        )
        return observable, noise_values

    def required_days(self, days: np.ndarray) -> np.ndarray:
        """Days the simulation must output to predict at measurement ``days``.

        ``days`` together with ``days - lag`` for each lag, sorted and unique. An ``"event"``
        observable needs no particular day (an empty array): its condition is simulated
        densely to the end of its schedule, including the withdrawal day.

        Raises
        ------
        ValueError
            If a day is negative or not finite, or earlier than a lag (``t - lag < 0``).

        Examples
        --------
        >>> fold_expansion(lag_days=7.0).required_days([14.0, 7.0, 21.0])
        array([ 0.,  7., 14., 21.])
        """
        t = _check_days(days)
        if self.kind == "event":
            return np.empty(0)
        parts = [t]
        for lag in self.lags_days:
            _check_lag(self.name, t, lag)
            parts.append(t - lag)
        return np.unique(np.concatenate(parts))

    def predict(
        self,
        trajectory: Trajectory,
        days: np.ndarray,
        params: Mapping[str, float] | None = None,
    ) -> np.ndarray:
        """Predicted values at measurement ``days``; ``params`` by local name (default if
        missing).

        Returns
        -------
        numpy.ndarray, shape (m,)
            In :attr:`unit`; for an ``"event"`` observable, days after withdrawal (``inf``
            when the event does not happen within the trajectory) repeated for every day.

        Raises
        ------
        ValueError
            On an unknown parameter name, bad days or a formula returning the wrong shape.
        """
        t = _check_days(days)
        values = {p.name: p.default for p in self.parameters}
        if params:
            unknown = [k for k in params if k not in values]
            if unknown:
                raise ValueError(
                    f"`params` has unknown parameter name(s) {unknown} for observable "
                    f"{self.name!r}; its (local) names are {list(values)}"
                )
            declared = {p.name: p for p in self.parameters}
            for key, raw in params.items():  # within the parameter's declared bounds
                value = _real_number(raw, f"params.{key}", declared[key])
                _check_value(f"params.{key}", value, declared[key])
                values[key] = value
        predicted = np.asarray(self.formula(trajectory, t, values), dtype=np.float64)
        if predicted.shape != t.shape:
            raise ValueError(
                f"the formula of observable {self.name!r} returned shape {predicted.shape} for "
                f"{t.shape[0]} days: expected one value per day"
            )
        return predicted


def _check_days(days) -> np.ndarray:
    t = np.asarray(days, dtype=np.float64)
    if t.ndim != 1:
        raise ValueError(f"`days` has shape {t.shape}: expected a 1-d array of days")
    bad = ~np.isfinite(t) | (t < 0)
    if np.any(bad):
        raise ValueError(
            f"`days` contains {t[bad][:5].tolist()}: expected finite days >= 0 (days since the "
            "start of the schedule)"
        )
    return t


def _check_lag(name: str, days: np.ndarray, lag: float) -> None:
    early = days < lag
    if np.any(early):
        raise ValueError(
            f"measurement day(s) {np.unique(days[early])[:5].tolist()} of observable {name!r} "
            f"are earlier than its lag of {lag:g} days: it needs the value at day t - {lag:g}, "
            "before the start of the schedule"
        )


def _total_cells(trajectory, days, params):
    return trajectory.at("N", days)


def _tumour_volume(trajectory, days, params):
    return params["v_cell"] * trajectory.at("N", days)


def _luminescence(trajectory, days, params):
    return params["alpha"] * trajectory.at("N", days) + params["offset"]


def _tolerant_fraction(trajectory, days, params):
    return trajectory.at("tolerant_fraction", days)


def _fold_expansion(trajectory, days, params, *, name, lag_days):
    _check_lag(name, days, lag_days)
    with np.errstate(divide="ignore", invalid="ignore"):  # N = 0 gives inf/NaN -> nllh inf
        return trajectory.at("N", days) / trajectory.at("N", days - lag_days)


def _time_to_recurrence(trajectory, days, params, *, name, level):
    withdrawal = trajectory.withdrawal_day
    if withdrawal is None:
        raise ValueError(
            f"observable {name!r} needs the trajectory's `withdrawal_day`, but this condition's "
            "schedule never gives tamoxifen"
        )
    times = np.ascontiguousarray(trajectory.times, dtype=np.float64)
    if times.shape[0] < 2 or not (times[0] <= withdrawal <= times[-1]):
        raise ValueError(
            f"observable {name!r}: `withdrawal_day` = {withdrawal!r} must lie within the "
            f"trajectory's days [{times[0]}, {times[-1]}] (at least 2 days)"
        )
    n_cells = np.ascontiguousarray(trajectory.values["N"], dtype=np.float64)[None, :]
    dn_dt = np.ascontiguousarray(trajectory.values["dN_dt"], dtype=np.float64)[None, :]
    jumps = trajectory.jumps
    if jumps is None:
        jumps = np.zeros(times.shape[0], dtype=np.bool_)
    jumps = np.ascontiguousarray(jumps, dtype=np.bool_)
    after = recurrence_days(times, n_cells, dn_dt, jumps, float(withdrawal), np.array([level]))[0]
    return np.full(days.shape, after)


def total_cells(name: str = "total_cells") -> Observable:
    """Total cells ``N`` (cells).

    Examples
    --------
    >>> import numpy as np
    >>> traj = Trajectory(np.array([0.0, 1.0]), {"N": np.array([10.0, 20.0])}, None)
    >>> total_cells().predict(traj, np.array([1.0]))
    array([20.])
    """
    return Observable(
        name, "cells", _total_cells, description="total cells N", domain=(0.0, math.inf)
    )


def tumour_volume(name: str = "tumour_volume") -> Observable:
    """Tumour volume ``v_cell * N`` (mm^3), with ``v_cell`` the volume per cell.

    Examples
    --------
    >>> import numpy as np
    >>> traj = Trajectory(np.array([0.0]), {"N": np.array([1e9])}, None)
    >>> tumour_volume().predict(traj, np.array([0.0]), {"v_cell": 2e-6})
    array([2000.])
    """
    v_cell = Parameter(
        "v_cell",
        "mm^3/cell",
        1e-6,
        (1e-9, 1e-3),
        "volume per cell, including stroma (1 mm^3 ~ 1e6 cells)",
        "order of magnitude: 1 cm^3 of tumour ~ 1e9 cells",
    )
    return Observable(
        name,
        "mm^3",
        _tumour_volume,
        (v_cell,),
        description="tumour volume v_cell * N",
        domain=(0.0, math.inf),
    )


def luminescence(name: str = "luminescence") -> Observable:
    """Bioluminescence ``alpha * N + offset`` (RLU): a linear signal with a background.

    Examples
    --------
    >>> import numpy as np
    >>> traj = Trajectory(np.array([0.0]), {"N": np.array([1000.0])}, None)
    >>> luminescence().predict(traj, np.array([0.0]), {"alpha": 0.5, "offset": 20.0})
    array([520.])
    """
    alpha = Parameter("alpha", "RLU/cell", 1.0, (1e-12, 1e12), "light per cell")
    offset = Parameter("offset", "RLU", 0.0, (0.0, 1e9), "background signal without cells")
    return Observable(
        name,
        "RLU",
        _luminescence,
        (alpha, offset),
        description="luminescence alpha * N + offset",
    )


def tolerant_fraction(name: str = "tolerant_fraction") -> Observable:
    """Fraction of cells in the model's tolerant states (1), e.g. by flow cytometry.

    Examples
    --------
    >>> import numpy as np
    >>> traj = Trajectory(np.array([0.0]), {"tolerant_fraction": np.array([0.25])}, None)
    >>> tolerant_fraction().predict(traj, np.array([0.0]))
    array([0.25])
    """
    return Observable(
        name,
        "1",
        _tolerant_fraction,
        description="fraction of cells in tolerant states",
        domain=(0.0, 1.0),
    )


def fold_expansion(lag_days: float = 7.0, name: str = "fold_expansion") -> Observable:
    """Fold expansion ``N(t) / N(t - lag_days)`` (1), e.g. weekly at passaging.

    This is the observable of the MCF-7 data of Magi et al. 2021
    (:func:`tolsim.datasets.magi2021_weekly_fold`). Measurement days must be ``>= lag_days``.

    Examples
    --------
    >>> import numpy as np
    >>> traj = Trajectory(np.array([0.0, 7.0]), {"N": np.array([1e5, 3.3e5])}, None)
    >>> fold_expansion().predict(traj, np.array([7.0]))
    array([3.3])
    """
    try:
        lag = float(lag_days)
    except (TypeError, ValueError):
        raise TypeError(f"`lag_days` = {lag_days!r}: expected a number of days > 0") from None
    if not (math.isfinite(lag) and lag > 0):
        raise ValueError(f"`lag_days` = {lag_days!r}: expected a finite number of days > 0")
    return Observable(
        name,
        "1",
        partial(_fold_expansion, name=name, lag_days=lag),
        lags_days=(lag,),
        description=f"fold expansion N(t) / N(t - {lag:g} days)",
        domain=(0.0, math.inf),
    )


def time_to_recurrence(
    threshold: str | float = "size_at_withdrawal", name: str = "time_to_recurrence"
) -> Observable:
    """Days from tamoxifen withdrawal until the burden ``N`` regrows through a threshold.

    An ``"event"`` observable: computed from the whole trajectory's ``N`` and ``dN_dt`` with
    their cubic Hermite interpolant (:func:`tolsim.kernels.events.recurrence_days`, as
    :func:`tolsim.time_to_recurrence`), 0 if the burden already exceeds the threshold at
    withdrawal, and ``inf`` if it is not reached by the last simulated day (so simulate to the
    end of the schedule, with outputs at least daily and at every breakpoint). Every
    measurement row of a condition gets the same prediction; NaN if the trajectory has NaN.

    Parameters
    ----------
    threshold : "size_at_withdrawal" or float
        The burden at withdrawal (regrowth back to that size), or a number of cells >= 0.
    name : str
        Name of the observable.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(0.0, 31.0)
    >>> n = 100.0 * np.exp(0.1 * np.maximum(t - 10.0, 0.0))  # regrowth from day 10
    >>> traj = Trajectory(t, {"N": n, "dN_dt": 0.1 * n * (t >= 10)}, 10.0)
    >>> ttr = time_to_recurrence(threshold=200.0)
    >>> bool(abs(ttr.predict(traj, np.array([0.0]))[0] - 10 * np.log(2)) < 1e-4)
    True
    """
    level = check_threshold(threshold)
    description = "the burden at withdrawal" if math.isnan(level) else f"{level:g} cells"
    return Observable(
        name,
        "days",
        partial(_time_to_recurrence, name=name, level=level),
        kind="event",
        description=f"days from tamoxifen withdrawal to regrowth through {description}",
        domain=(0.0, math.inf),
    )


# -- noise models ---------------------------------------------------------------------------


def _noise_parameters(noise) -> tuple[Parameter, ...]:
    if not isinstance(noise, NoiseModel):
        raise TypeError(f"`noise` = {noise!r}: expected a tolsim.observe.NoiseModel")
    return noise.parameters


def _sigma(name: str, unit: str, default: float, description: str) -> Parameter:
    return Parameter(name, unit, default, (1e-12, 1e12), description)


@dataclass(frozen=True)
class NoiseModel:
    """Base class: observations scatter around predictions as a (log-)normal distribution.

    Each model describes an observation ``y`` through a transformed value ``g(y)`` (``y`` or
    ``log y``) that is normal with a location and a standard deviation ``sd`` per row. Rows
    carry an optional noise scale ``sigma_row`` from the data (e.g. a reported standard
    error): where it is finite it is the row's ``sd`` (on the model's scale: for
    :class:`LogNormal`, of ``log y``); where NaN, the model's own noise parameters set it.

    Notes
    -----
    *Censoring and non-finite predictions.* A censored row is right-censored: the true value
    exceeds ``observed`` (e.g. no recurrence seen by the end of follow-up), contributing
    ``-log S(observed)`` with ``S`` the survival function. A left-censored row is below a
    limit of detection, which ``observed`` holds: the true value is at most ``observed``,
    contributing ``-log F(observed)`` with ``F`` the distribution function. Predictions that
    are not finite are handled by their meaning, not by formulas:

    * NaN (a failed simulation) gives ``nllh = inf`` whether censored or not;
    * ``+inf`` (an event that never happens) gives ``inf`` for an uncensored row (an event was
      seen that the model says never happens) and exactly 0 for a censored row: the event time
      is then infinite for every noise realisation, so ``S(observed) = 1``. For
      :class:`Normal` and :class:`LogNormal` this is also the limit ``pred -> inf``; for
      :class:`Proportional` and :class:`Combined` the limit is ``log Phi(1 / sigma_rel)``
      (the scatter grows with the prediction), and the convention deliberately differs;
    * ``+inf`` gives ``inf`` for a left-censored row (a value below the limit is impossible);
    * for a left-censored row, a prediction below the limit for every noise realisation gives
      exactly 0 (``F(observed) = 1``): ``-inf``, ``pred <= 0`` under :class:`LogNormal` (a
      population or fraction of exactly 0 below a detection limit), and a prediction at or
      below the limit whose ``sd`` is 0 (:class:`Proportional` at ``pred = 0``);
    * otherwise ``-inf``, and a prediction whose ``sd`` is 0 (a proportional model at
      ``pred = 0``) or whose log is undefined (:class:`LogNormal` at ``pred <= 0``), give
      ``inf``.

    Noise parameters are local names (``sigma``...) with defaults and bounds in
    :attr:`parameters`; ``params`` may give any of them (missing ones take defaults) and
    must not name others. Values must be finite and > 0; bounds are left to the fit.
    """

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        """The noise parameters (local names)."""
        return ()

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Local names of the noise parameters."""
        return tuple(p.name for p in self.parameters)

    # The transformed scale: subclasses override these three.
    def refused(self, observed: np.ndarray) -> tuple[np.ndarray, str, str] | None:
        """Observations this noise model cannot describe: ``(positions, what, reason)``, e.g.
        ``"values <= 0"`` under log-normal noise, or None when it takes them all."""
        return None

    def _observed_scale(self, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray | float]:
        """``g(observed)`` and ``log |g'(observed)|`` (the density's Jacobian term)."""
        refused = self.refused(observed)
        if refused is not None:
            rows, what, reason = refused
            raise ValueError(
                f"`observed` has {what} at rows {rows[:5].tolist()} "
                f"({observed[rows[:5]].tolist()}): {reason}"
            )
        return self._transform(observed)

    def _transform(self, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray | float]:
        return observed, 0.0

    def _location_scale(self, predicted, sigma_row, params) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _inverse(self, transformed: np.ndarray) -> np.ndarray:
        return transformed

    _gaussian_residuals = False

    def sd(
        self,
        predicted: np.ndarray,
        sigma_row: np.ndarray | None = None,
        params: Mapping[str, float] | None = None,
    ) -> np.ndarray:
        """Standard deviation of each row's transformed observation, shape ``(n,)``.

        Examples
        --------
        >>> Combined().sd([0.0, 100.0], None, {"sigma_abs": 3.0, "sigma_rel": 0.04})
        array([3., 5.])
        """
        predicted = np.atleast_1d(np.asarray(predicted, dtype=np.float64))
        sigma_row = _sigma_rows(sigma_row, predicted.shape)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return self._location_scale(predicted, sigma_row, self._resolve(params))[1]

    def nllh(
        self,
        observed: np.ndarray,
        predicted: np.ndarray,
        censored: np.ndarray | None = None,
        sigma_row: np.ndarray | None = None,
        params: Mapping[str, float] | None = None,
        *,
        left_censored: np.ndarray | None = None,
    ) -> float:
        """Negative log-likelihood of observed rows, summed (normalising constants included).

        Parameters
        ----------
        observed : array_like, shape (n,)
            Observed values, finite.
        predicted : array_like, shape (n,)
            Predictions (any values; see the class notes for non-finite ones).
        censored : array_like of bool, shape (n,), optional
            True where the row is right-censored (the true value exceeds ``observed``).
        sigma_row : array_like, shape (n,), optional
            Per-row noise scale from the data (> 0), NaN where not given.
        params : mapping, optional
            Noise parameters by local name.
        left_censored : array_like of bool, shape (n,), optional
            True where the row is below a limit of detection held in ``observed`` (the true
            value is at most ``observed``). A row cannot be censored both ways.

        Returns
        -------
        float
            ``-sum log p(observed | predicted)`` over uncensored rows plus
            ``-sum log S(observed | predicted)`` over censored rows and
            ``-sum log F(observed | predicted)`` over left-censored rows; ``inf`` when a row
            is impossible.

        Examples
        --------
        A value below a detection limit of 0.5, predicted at 1 with sd 0.5: ``-log Phi(-1)``.

        >>> round(Normal().nllh([0.5], [1.0], None, None, {"sigma": 0.5},
        ...                     left_censored=[True]), 6)
        1.841022
        """
        obs, pred, censored, sigma_row = _rows(observed, predicted, censored, sigma_row)
        left = _flags(left_censored, "left_censored", obs.shape)
        if np.any(left & censored):
            rows = np.flatnonzero(left & censored)
            raise ValueError(
                f"rows {rows[:5].tolist()} are both `censored` (the true value is above "
                "`observed`) and `left_censored` (at most `observed`): expected one or neither"
            )
        p = self._resolve(params)
        y, log_jacobian = self._observed_scale(obs)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            loc, sd = self._location_scale(pred, sigma_row, p)
            z = (y - loc) / sd
            ok = np.isfinite(loc) & np.isfinite(sd) & (sd > 0)
            density = 0.5 * z * z + np.log(sd) + _LOG_SQRT_2PI + log_jacobian
            survival = -log_ndtr(-z)
            below = -log_ndtr(z)
            contribution = np.where(censored, survival, np.where(left, below, density))
        contribution = np.where(ok, contribution, np.inf)
        contribution[censored & (pred == np.inf)] = 0.0
        # below the limit for every noise realisation: the prediction is -inf (or <= 0 on a
        # log scale), or the noise is a point mass (sd = 0) at or below the limit: F = 1;
        # above a right-censored bound for every realisation: a point mass above it, S = 1
        with np.errstate(invalid="ignore"):
            certain = (loc == -np.inf) & ~np.isnan(sd) | (sd == 0) & (loc <= y)
            certain_above = (sd == 0) & (loc > y)
        contribution[left & certain] = 0.0
        contribution[censored & certain_above] = 0.0
        return float(np.sum(contribution))

    def residuals(
        self,
        observed: np.ndarray,
        predicted: np.ndarray,
        sigma_row: np.ndarray | None = None,
        params: Mapping[str, float] | None = None,
        *,
        censored: np.ndarray | None = None,
        left_censored: np.ndarray | None = None,
    ) -> np.ndarray | None:
        """Weighted residuals ``r`` with ``nllh = 0.5 * sum(r**2) + c``, shape ``(n,)``.

        ``c`` depends on the observations and noise parameters but not on the predictions, so
        least squares on ``r`` maximises the likelihood over the simulation for fixed noise
        parameters. Rows where ``nllh`` is ``inf`` get ``r = inf``.

        Returns None where no such ``r`` exists: for models whose ``sd`` depends on the
        prediction (:class:`Proportional`, :class:`Combined`), whose ``sum log sd`` term then
        depends on the simulation too (dropping it would bias the fit towards large
        predictions), and whenever a row is ``censored`` or ``left_censored`` (``-log S`` and
        ``-log F`` are not squares); minimise :meth:`nllh` instead.

        Examples
        --------
        >>> Normal().residuals([3.0, 5.0], [1.0, 4.0], [np.nan, 0.5], {"sigma": 2.0})
        array([1., 2.])
        """
        obs, pred, censored, sigma_row = _rows(observed, predicted, censored, sigma_row)
        left = _flags(left_censored, "left_censored", obs.shape)
        p = self._resolve(params)
        y, _ = self._observed_scale(obs)
        if not self._gaussian_residuals or np.any(censored) or np.any(left):
            return None
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            loc, sd = self._location_scale(pred, sigma_row, p)
            r = (y - loc) / sd
        return np.where(np.isfinite(loc) & np.isfinite(r), r, np.inf)

    def sample(
        self,
        predicted: np.ndarray,
        rng: np.random.Generator | int,
        sigma_row: np.ndarray | None = None,
        params: Mapping[str, float] | None = None,
    ) -> np.ndarray:
        """Draw one synthetic observation per row (for tests of fits on known truth).

        Examples
        --------
        >>> y = Normal().sample(np.zeros(1000), 1, None, {"sigma": 2.0})
        >>> bool(1.8 < y.std() < 2.2)
        True
        """
        predicted = np.atleast_1d(np.asarray(predicted, dtype=np.float64))
        if not np.all(np.isfinite(predicted)):
            raise ValueError("`predicted` must be finite to sample observations")
        sigma_row = _sigma_rows(sigma_row, predicted.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            loc, sd = self._location_scale(predicted, sigma_row, self._resolve(params))
        if not (np.all(np.isfinite(loc)) and np.all(np.isfinite(sd))):
            raise ValueError(
                f"`predicted` has values for which {type(self).__name__} is undefined "
                "(e.g. <= 0 for LogNormal)"
            )
        rng = np.random.default_rng(rng)
        return self._inverse(loc + sd * rng.standard_normal(predicted.shape))

    def _resolve(self, params: Mapping[str, float] | None) -> dict[str, float]:
        values = {p.name: p.default for p in self.parameters}
        if params:
            unknown = [k for k in params if k not in values]
            if unknown:
                raise ValueError(
                    f"`params` has unknown noise parameter(s) {unknown} for "
                    f"{type(self).__name__}; expected names from {list(values)}"
                )
            for key, raw in params.items():
                try:
                    value = float(raw)
                except (TypeError, ValueError):
                    raise TypeError(
                        f"`params.{key}` = {raw!r}: expected a finite number > 0"
                    ) from None
                if not (math.isfinite(value) and value > 0):
                    raise ValueError(f"`params.{key}` = {value!r}: expected a finite number > 0")
                values[key] = value
        return values


def _check_parameter(noise: NoiseModel, attribute: str) -> None:
    p = getattr(noise, attribute)
    if not isinstance(p, Parameter) or p.name != attribute:
        raise ValueError(
            f"`{attribute}` of {type(noise).__name__} = {p!r}: expected a Parameter named "
            f"{attribute!r} (change its default, bounds or unit, not its name)"
        )
    if not p.bounds[0] > 0:
        raise ValueError(
            f"`{attribute}.bounds` = {p.bounds}: a noise scale must have a lower bound > 0"
        )


@dataclass(frozen=True)
class Normal(NoiseModel):
    """Additive normal noise: ``y ~ N(pred, sd)``, ``sd = sigma`` (unit of the observable).

    Examples
    --------
    >>> bool(Normal().nllh([1.0], [1.0], None, None, {"sigma": 1.0}) == 0.5 * np.log(2 * np.pi))
    True
    """

    sigma: Parameter = _sigma("sigma", "observable unit", 1.0, "standard deviation of y")

    _gaussian_residuals = True

    def __post_init__(self):
        _check_parameter(self, "sigma")

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return (self.sigma,)

    def _location_scale(self, predicted, sigma_row, params):
        return predicted, np.where(np.isnan(sigma_row), params["sigma"], sigma_row)


@dataclass(frozen=True)
class LogNormal(NoiseModel):
    """Multiplicative noise: ``log y ~ N(log pred, sigma)``; observations must be > 0.

    ``sigma`` (and a given ``sigma_row``) is the standard deviation of ``log y``, roughly the
    coefficient of variation of ``y`` when small. Predictions ``<= 0`` are impossible
    (``nllh = inf``).

    Examples
    --------
    >>> round(LogNormal().nllh([np.e], [np.e], None, None, {"sigma": 1.0}), 6)
    1.918939
    """

    sigma: Parameter = _sigma("sigma", "1", 0.1, "standard deviation of log y")

    _gaussian_residuals = True

    def __post_init__(self):
        _check_parameter(self, "sigma")

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return (self.sigma,)

    def refused(self, observed):
        bad = np.flatnonzero(~(np.asarray(observed) > 0))
        if bad.size == 0:
            return None
        return (
            bad,
            "values <= 0",
            "the log-normal noise model needs positive observations (use Normal or Combined "
            "for values that can be 0; a measurement below a detection limit takes the limit "
            "as its value and `left_censored` = true)",
        )

    def _transform(self, observed):
        log_observed = np.log(observed)
        return log_observed, log_observed

    def _location_scale(self, predicted, sigma_row, params):
        loc = np.where(predicted > 0, np.log(np.where(predicted > 0, predicted, 1.0)), -np.inf)
        loc = np.where(np.isnan(predicted), np.nan, loc)
        return loc, np.where(np.isnan(sigma_row), params["sigma"], sigma_row)

    def _inverse(self, transformed):
        return np.exp(transformed)


@dataclass(frozen=True)
class Proportional(NoiseModel):
    """Noise proportional to the prediction: ``y ~ N(pred, sigma_rel * |pred|)``.

    :meth:`residuals` returns None (the ``log sd`` term depends on the prediction); a
    prediction of exactly 0 has ``sd = 0``, a point mass at 0: an observed value is then
    impossible (``nllh = inf``), a bound certain (0) or impossible as 0 lies beyond it or not.

    Examples
    --------
    >>> Proportional().sd([10.0, -20.0], None, {"sigma_rel": 0.1})
    array([1., 2.])
    """

    sigma_rel: Parameter = _sigma("sigma_rel", "1", 0.1, "standard deviation of y / pred")

    def __post_init__(self):
        _check_parameter(self, "sigma_rel")

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return (self.sigma_rel,)

    def _location_scale(self, predicted, sigma_row, params):
        sd = params["sigma_rel"] * np.abs(predicted)
        return predicted, np.where(np.isnan(sigma_row), sd, sigma_row)


@dataclass(frozen=True)
class Combined(NoiseModel):
    """Additive plus proportional noise: ``sd = sqrt(sigma_abs^2 + (sigma_rel * pred)^2)``.

    :meth:`residuals` returns None (the ``log sd`` term depends on the prediction).

    Examples
    --------
    >>> Combined().sd([30.0], None, {"sigma_abs": 4.0, "sigma_rel": 0.1})
    array([5.])
    """

    sigma_abs: Parameter = _sigma("sigma_abs", "observable unit", 1.0, "additive sd of y")
    sigma_rel: Parameter = _sigma("sigma_rel", "1", 0.1, "relative sd of y")

    def __post_init__(self):
        _check_parameter(self, "sigma_abs")
        _check_parameter(self, "sigma_rel")

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        return (self.sigma_abs, self.sigma_rel)

    def _location_scale(self, predicted, sigma_row, params):
        sd = np.hypot(params["sigma_abs"], params["sigma_rel"] * predicted)
        return predicted, np.where(np.isnan(sigma_row), sd, sigma_row)


def _sigma_rows(sigma_row, shape) -> np.ndarray:
    if sigma_row is None:
        return np.full(shape, np.nan)
    sigma_row = np.asarray(sigma_row, dtype=np.float64)
    if sigma_row.shape != shape:
        raise ValueError(f"`sigma_row` has shape {sigma_row.shape}: expected {shape}, one per row")
    bad = ~np.isnan(sigma_row) & ~(np.isfinite(sigma_row) & (sigma_row > 0))
    if np.any(bad):
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"`sigma_row` has values {sigma_row[rows[:5]].tolist()} at rows {rows[:5].tolist()}: "
            "expected finite numbers > 0, or NaN to use the noise model's parameter"
        )
    return sigma_row


def _rows(observed, predicted, censored, sigma_row):
    obs = np.asarray(observed, dtype=np.float64)
    if obs.ndim != 1:
        raise ValueError(f"`observed` has shape {obs.shape}: expected a 1-d array of rows")
    pred = np.asarray(predicted, dtype=np.float64)
    if pred.shape != obs.shape:
        raise ValueError(
            f"`predicted` has shape {pred.shape}: expected {obs.shape}, like `observed`"
        )
    if not np.all(np.isfinite(obs)):
        rows = np.flatnonzero(~np.isfinite(obs))
        raise ValueError(
            f"`observed` has NaN or infinite values at rows {rows[:5].tolist()}: drop missing "
            "observations; mark values known only as a lower bound as `censored`"
        )
    censored = _flags(censored, "censored", obs.shape)
    return obs, pred, censored, _sigma_rows(sigma_row, obs.shape)


def _flags(flags, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Per-row booleans ``flags`` (None: all False), checked against the rows' ``shape``."""
    if flags is None:
        return np.zeros(shape, dtype=bool)
    flags = np.asarray(flags)
    if flags.dtype != np.bool_:
        raise TypeError(f"`{name}` has dtype {flags.dtype}: expected booleans")
    if flags.shape != shape:
        raise ValueError(f"`{name}` has shape {flags.shape}: expected {shape}, like `observed`")
    return flags
