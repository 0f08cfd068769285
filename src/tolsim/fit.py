"""Fitting models to measurements: likelihood, multi-start estimation, profile likelihood,
posterior sampling and model comparison.

The pieces (:mod:`tolsim.data` for measurement tables, :mod:`tolsim.observe` for observables
and noise models) are composed here into one negative log-likelihood of the free parameters,
evaluated by calling the ODE kernels directly (one call per condition, no Dataset in the hot
path). Parameters are estimated on a log10 scale inside their bounds.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from scipy import optimize
from scipy.special import chdtrc, chdtri

import tolsim
from tolsim.data import Measurements, _where, read_measurements
from tolsim.models.base import Model, Parameter, _check_value, _real_number
from tolsim.observe import (
    NoiseModel,
    Normal,
    Observable,
    Trajectory,
    fold_expansion,
    luminescence,
    time_to_recurrence,
    tolerant_fraction,
    total_cells,
    tumour_volume,
)
from tolsim.recurrence import derivative_jumps, metric_grid
from tolsim.schedule import Schedule
from tolsim.simulate import _METHOD_CODES, kernel_array, ode_kernels
from tolsim.stochastic import _check_count, check_seed

__all__ = ["FitResult", "NonConvergenceWarning", "fit", "likelihood_ratio_test"]

BUILTIN_OBSERVABLES = {
    "total_cells": total_cells,
    "tumour_volume": tumour_volume,
    "luminescence": luminescence,
    "tolerant_fraction": tolerant_fraction,
    "fold_expansion": fold_expansion,
    "time_to_recurrence": time_to_recurrence,
}
_RTOL = 1e-8
_ATOL = 1e-8
_AUTO = _METHOD_CODES["auto"]
_CONVERGED_WITHIN = 0.1  # nllh units: starts this close to the best count as reaching it


class NonConvergenceWarning(UserWarning):
    """A fit or profile that did not converge, or a parameter the data cannot identify."""


# -- the objective ---------------------------------------------------------------------------
class _Objective:
    """Negative log-likelihood of the free parameters (log10 scale), from measurements."""

    def __init__(
        self,
        model: Model,
        data: Measurements,
        schedules: Mapping[str, Schedule],
        observables: Mapping[str, Observable],
        noise: Mapping[str, object],
        free: Sequence[str],
        values: Mapping[str, float],
        bounds: Mapping[str, tuple[float, float]],
        condition_params: Mapping[str, Mapping[str, float]],
    ):
        self.model = model
        self.data = data
        self.schedules = dict(schedules)
        self.observables = observables
        self.noise = noise
        self.free = tuple(free)
        self.values = dict(values)
        self.bounds = bounds
        self.condition_params = {k: dict(v) for k, v in condition_params.items()}
        self.kernels = ode_kernels(model, _AUTO)
        self.stoich = model.stoichiometry.astype(np.float64)
        self.model_names = model.parameter_names
        table = data.table
        self.conditions = []
        unobservable = []  # rows a noise model cannot take, reported together
        outside = []  # rows outside their observable's domain, reported together
        for name in data.conditions:
            rows = table.index[table["condition"] == name].to_numpy()
            schedule = schedules[name]
            overrides = dict(condition_params.get(name, {}))
            groups = []
            days = [np.asarray(table.loc[rows, "time"], dtype=float)]
            for obs_name in dict.fromkeys(table.loc[rows, "observable"]):
                obs_rows = rows[(table.loc[rows, "observable"] == obs_name).to_numpy()]
                observable = observables[obs_name]
                obs_days = np.asarray(table.loc[obs_rows, "time"], dtype=float)
                if observable.kind == "event":  # the grid of sweep metrics
                    days.append(metric_grid(schedule))
                else:
                    days.append(observable.required_days(obs_days))
                obs_values = np.asarray(table.loc[obs_rows, "value"], dtype=float)
                beyond = observable.outside(obs_values)
                if beyond.any():
                    outside.append((name, obs_name, observable, obs_rows, beyond))
                problem = noise[obs_name].refused(obs_values)
                if problem is not None:
                    unobservable.append((name, obs_name, noise[obs_name], obs_rows, *problem))
                groups.append(
                    (
                        observable,
                        noise[obs_name],
                        obs_rows,
                        obs_days,
                        np.asarray(table.loc[obs_rows, "value"], dtype=float),
                        np.asarray(table.loc[obs_rows, "censored"], dtype=bool),
                        np.asarray(table.loc[obs_rows, "sigma"], dtype=float),
                        np.asarray(table.loc[obs_rows, "left_censored"], dtype=bool),
                    )
                )
            t_out = np.unique(np.concatenate(days))
            if t_out[-1] > schedule.duration_days:
                raise ValueError(
                    f"condition {name!r} has measurements up to day {t_out[-1]:g}, after its "
                    f"schedule's end (day {schedule.duration_days:g})"
                )
            try:
                withdrawal = schedule.withdrawal_day("tamoxifen")
            except ValueError:
                withdrawal = None
            model_values = {k: v for k, v in values.items() if k in self.model_names}
            base = model.pack({**model_values, **overrides}, f"condition_params[{name!r}]")
            self.conditions.append(
                {
                    "name": name,
                    "base": base,
                    "free_model": [
                        (n, self.model_names.index(n))
                        for n in free
                        if n in self.model_names and n not in overrides
                    ],
                    "schedule": schedule.compile(model.drugs),
                    "t_out": kernel_array(t_out),
                    "jumps": derivative_jumps(schedule, t_out),
                    "groups": groups,
                    "withdrawal": withdrawal,
                }
            )
        if outside:
            _report_outside(outside, table, data.file_lines, observables)
        if unobservable:
            raise ValueError(_unobservable_message(unobservable, table, data.file_lines))
        self.n_data = len(table)
        self.evaluations = 0
        self._gaussian = None

    def __getstate__(self) -> dict:
        # the kernels are a module generated in this process (by name in sys.modules): a
        # pickle, a deep copy or a Dask worker makes them again from the model
        state = self.__dict__.copy()
        del state["kernels"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.kernels = ode_kernels(self.model, _AUTO)

    # parameters ---------------------------------------------------------------------------
    def full_params(self, theta: np.ndarray) -> dict[str, float]:
        params = dict(self.values)
        for name, value in zip(self.free, theta, strict=True):
            params[name] = float(10.0**value)
        return params

    def _packed(self, params: Mapping[str, float], cond) -> np.ndarray | None:
        """The condition's packed vector with the free model parameters set (validated once
        at construction; free values stay inside their admissible box); None if a
        cross-parameter constraint fails (the likelihood is then zero)."""
        packed = cond["base"].copy()
        for name, index in cond["free_model"]:
            packed[index] = params[name]
        if self.model.constraints:
            try:
                self.model._check_constraints(packed[None, :], "params", table=False)
            except ValueError:
                return None
        return packed

    # simulation ---------------------------------------------------------------------------
    def trajectories(self, params: Mapping[str, float]):
        """One Trajectory per condition, or None for a failed solve."""
        out = []
        for cond in self.conditions:
            packed = self._packed(params, cond)
            if packed is None:
                out.append(None)
                continue
            n_times = cond["t_out"].size
            n_states = len(self.model.states)
            out_x = np.empty((n_times, n_states))
            out_dn = np.empty(n_times)
            stats_ = np.zeros(self.kernels.N_STATS, dtype=np.int64)
            # the serial single-sample entry: a parallel call for one sample would wait for
            # a second thread, which a loaded machine may not schedule for milliseconds
            status = self.kernels.solve_one(
                self.model.initial_state(packed),
                packed,
                cond["schedule"],
                self.stoich,
                cond["t_out"],
                _RTOL,
                _ATOL,
                100_000,
                _AUTO,  # DOPRI5 switching to Rosenbrock when stiff
                out_x,
                out_dn,
                stats_,
            )
            self.evaluations += 1
            if status != 0:
                out.append(None)
                continue
            values = {st: out_x[:, i] for i, st in enumerate(self.model.states)}
            total = out_x.sum(axis=1)
            tolerant = sum(values[st] for st in self.model.tolerant_states)
            values["N"] = total
            with np.errstate(invalid="ignore", divide="ignore"):
                values["tolerant_fraction"] = np.where(total > 0, tolerant / total, np.nan)
            values["dN_dt"] = out_dn
            out.append(Trajectory(cond["t_out"], values, cond["withdrawal"], cond["jumps"]))
        return out

    def predictions(self, params: Mapping[str, float]) -> np.ndarray:
        predicted = np.full(self.n_data, np.nan)
        for cond, traj in zip(self.conditions, self.trajectories(params), strict=True):
            if traj is None:
                continue
            for observable, noise, rows, days, *_ in cond["groups"]:
                local, _ = observable.local_params(params, noise)
                predicted[rows] = observable.formula(traj, days, local)
        return predicted

    # likelihood ---------------------------------------------------------------------------
    def nllh(self, theta: np.ndarray) -> float:
        params = self.full_params(theta)
        total = 0.0
        for cond, traj in zip(self.conditions, self.trajectories(params), strict=True):
            if traj is None:
                return np.inf
            for observable, noise, _, days, observed, censored, sigma, left in cond["groups"]:
                local, noise_local = observable.local_params(params, noise)
                predicted = observable.formula(traj, days, local)
                total += noise.nllh(
                    observed, predicted, censored, sigma, noise_local, left_censored=left
                )
                if not np.isfinite(total):
                    return np.inf
        return float(total)

    def bounded_nllh(self, theta: np.ndarray) -> float:
        """:meth:`nllh` capped at 1e100, for optimisers whose finite differences would turn
        an infinite value into NaN."""
        return min(self.nllh(theta), _CAPPED)

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        params = self.full_params(theta)
        parts = []
        for cond, traj in zip(self.conditions, self.trajectories(params), strict=True):
            for observable, noise, _, days, observed, censored, sigma, left in cond["groups"]:
                if traj is None:
                    parts.append(np.full(observed.size, 1e10))
                    continue
                local, noise_local = observable.local_params(params, noise)
                predicted = observable.formula(traj, days, local)
                r = noise.residuals(
                    observed, predicted, sigma, noise_local, censored=censored, left_censored=left
                )
                parts.append(np.where(np.isfinite(r), r, 1e10))
        return np.concatenate(parts)

    def gaussian(self) -> bool:
        """Residual form available: every row's noise is Gaussian-type, no row censored (either
        way) and no noise parameter free (their normalising terms would depend on the
        parameters)."""
        if self._gaussian is not None:
            return self._gaussian
        params = self.full_params(np.zeros(len(self.free)))
        self._gaussian = True
        for cond in self.conditions:
            for observable, noise, _, _, observed, censored, sigma, left in cond["groups"]:
                noise_names = [p.name for p in observable.fit_parameters(noise)]
                noise_names = noise_names[len(noise_names) - len(noise.parameters) :]
                _, noise_local = observable.local_params(params, noise)
                residual = noise.residuals(
                    observed,
                    np.abs(observed) + 1.0,
                    sigma,
                    noise_local,
                    censored=censored,
                    left_censored=left,
                )
                if set(noise_names) & set(self.free) or residual is None:
                    self._gaussian = False
        return self._gaussian


def _report_outside(problems, table, file_lines, observables) -> None:
    """Values outside their observable's domain, named by the table's own rows (and the
    file's lines): an error where a fraction's values look like percentages (most of them in
    (1, 100]), else a warning, as noise can put a measurement there (a small fraction under
    Normal noise, say), but a unit error can too."""
    values = table["value"].to_numpy(dtype=float)
    kinds = table["observable"].to_numpy()
    percent = any(
        observables[name].domain[1] == 1.0
        and np.mean((values[kinds == name] > 1.0) & (values[kinds == name] <= 100.0)) > 0.5
        for name in {problem[1] for problem in problems}
    )
    message = _outside_message(problems, table, file_lines)
    if percent:
        raise ValueError(f"{message} (percentages? give fractions: divide by 100)")
    warnings.warn(
        f"{message}: kept, as noise can put a measurement there; if it cannot, check the data's "
        "units",
        UserWarning,
        stacklevel=4,
    )


def _outside_message(problems, table, file_lines) -> str:
    """The values outside the observables' domains, by condition and observable."""
    parts = []
    for condition, obs_name, observable, rows, bad in problems:
        table_rows = [int(table.index.get_loc(row)) for row in rows[bad]]
        values = table["value"].to_numpy(dtype=float)[table_rows]
        low, high = observable.domain
        unit = "" if observable.unit == "1" else f" {observable.unit}"
        parts.append(
            f"{values[:5].tolist()}{', ...' if len(values) > 5 else ''} at "
            f"{_where(table_rows, file_lines)}, condition {condition!r}: observable "
            f"{obs_name!r} measures values in [{low:g}, {high:g}]{unit}"
        )
    return f"`data` has values outside what its observables measure: {'; '.join(parts)}"


def _unobservable_message(problems, table, file_lines) -> str:
    """One error for every condition and observable with values its noise model refuses,
    naming the table's own rows (and the file's lines)."""
    parts = []
    for condition, observable, noise, rows, bad, what, _ in problems:
        table_rows = [int(table.index.get_loc(row)) for row in rows[bad]]
        values = table["value"].to_numpy(dtype=float)[table_rows]
        parts.append(
            f"{what} {values[:5].tolist()}{', ...' if len(values) > 5 else ''} at "
            f"{_where(table_rows, file_lines)}, condition {condition!r}, observable "
            f"{observable!r} ({type(noise).__name__} noise)"
        )
    reason = problems[0][-1]
    return f"`data` has values its noise model cannot take ({'; '.join(parts)}): {reason}"


# -- results ---------------------------------------------------------------------------------
@dataclass
class FitResult:
    """What :func:`fit` found.

    Attributes
    ----------
    params : dict
        Best value of each free parameter.
    nllh : float
        Negative log-likelihood at the best fit.
    all_params : dict
        Every parameter (free, fixed and defaults) at the best fit.
    starts : xarray.Dataset
        Every start: ``initial`` and ``final`` log10 values, ``nllh``, ``converged``,
        ``n_evaluations``, sorted by ``nllh`` (the waterfall plot's data).
    predictions : xarray.Dataset
        Per measurement row: ``condition``, ``observable``, ``time``, ``replicate``,
        ``observed``, ``predicted``, ``residual`` (observed - predicted), ``sigma`` (given per
        row; NaN: none), ``censored`` and ``left_censored``.
    converged : bool
        The best start converged and was reached by at least two starts (or there was one).
    ci : dict
        Likelihood-ratio confidence intervals ``name -> (low, high)`` once :meth:`profile`
        has run (bounds where the profile stays below the threshold).
    identifiable : dict
        ``name -> bool`` from the profiles.
    """

    params: dict
    nllh: float
    all_params: dict
    starts: xr.Dataset
    predictions: xr.Dataset
    converged: bool
    n_data: int
    free: tuple
    objective: _Objective = field(repr=False)
    ci: dict = field(default_factory=dict)
    identifiable: dict = field(default_factory=dict)
    profiles: xr.Dataset | None = None
    n_evaluations: int = 0
    method: str = ""

    @property
    def model_params(self) -> dict[str, float]:
        """The model's parameters at the best fit (``all_params`` without the observables'
        and noise models'), ready for :func:`tolsim.simulate` or a new schedule."""
        names = self.objective.model.parameter_names
        return {name: value for name, value in self.all_params.items() if name in names}

    # information criteria ---------------------------------------------------------------
    @property
    def n_free(self) -> int:
        return len(self.free)

    @property
    def aic(self) -> float:
        return 2.0 * self.nllh + 2.0 * self.n_free

    @property
    def aicc(self) -> float:
        k, n = self.n_free, self.n_data
        if n - k - 1 <= 0:
            return np.inf
        return self.aic + 2.0 * k * (k + 1) / (n - k - 1)

    @property
    def bic(self) -> float:
        return 2.0 * self.nllh + self.n_free * math.log(self.n_data)

    # profiles ---------------------------------------------------------------------------
    def profile(
        self,
        names: str | Sequence[str] | None = None,
        *,
        level: float = 0.95,
        points: int = 20,
    ) -> xr.Dataset:
        """Profile likelihood of each free parameter, with likelihood-ratio intervals.

        For each parameter, steps away from the optimum on its log10 scale in both
        directions, re-optimising the other free parameters at every step, until
        ``2 (nllh - nllh_best)`` exceeds the chi-square quantile at ``level`` (1 degree of
        freedom) or the bound is reached. A profile that stays below the threshold on a side
        leaves the interval open there (the bound is reported) and marks the parameter
        *practically non-identifiable*, with a warning.

        Parameters
        ----------
        names : str or sequence of str, optional
            Free parameter(s) to profile (a single string is one name); default all.
        level : float
            Confidence level of the intervals, in (0, 1).
        points : int
            Most steps on each side of the optimum, >= 3 (a step rises by at most half the
            threshold, so fewer could never cross it).

        Returns
        -------
        xarray.Dataset
            ``log10_value`` and ``nllh`` (parameter, step), with ``ci_low``, ``ci_high``,
            ``identifiable`` per parameter of this call. The result keeps them
            (``profiles``, ``ci``, ``identifiable``): a later call at the same ``level``
            adds its parameters (or redoes them), one at another level replaces them all.
        """
        if names is None:
            names = list(self.free)
        else:  # one name, not its letters
            names = [names] if isinstance(names, str) else list(names)
        if isinstance(points, bool) or not isinstance(points, int | np.integer) or points < 3:
            raise ValueError(
                f"`points` = {points!r}: expected an integer >= 3 steps each side (each step "
                "rises at most half the threshold, so fewer cannot cross it)"
            )
        unknown = [n for n in names if n not in self.free]
        if unknown:
            raise ValueError(f"`names` = {unknown}: expected free parameters {list(self.free)}")
        if not 0 < level < 1:
            raise ValueError(f"`level` = {level!r}: expected a confidence level in (0, 1)")
        threshold = chdtri(1, 1.0 - level) / 2.0  # chi-square quantile, in nllh units
        best = np.log10([self.params[n] for n in self.free])
        obj = self.objective
        n_steps = 2 * points + 1
        values = np.full((len(names), n_steps), np.nan)
        profile_nllh = np.full((len(names), n_steps), np.nan)
        for row, name in enumerate(names):
            k = self.free.index(name)
            low, high = np.log10(obj.bounds[name])
            values[row, points] = best[k]
            profile_nllh[row, points] = self.nllh
            for direction in (-1, 1):
                theta = best.copy()
                step = 0.02
                last_rise = 0.0
                accepted = 0
                while accepted < points:
                    target = min(max(theta[k] + direction * step, low), high)
                    trial = theta.copy()
                    trial[k] = target
                    trial = _optimise_others(obj, trial, k)
                    rise = obj.nllh(trial) - self.nllh
                    # keep successive points within half the threshold of each other, so
                    # that interpolating the crossing between two of them is accurate
                    if rise - last_rise > threshold / 2 and step > 1e-4:
                        step /= 3.0
                        continue
                    accepted += 1
                    column = points + direction * accepted
                    values[row, column] = target
                    profile_nllh[row, column] = self.nllh + rise
                    if rise > threshold or target in (low, high):
                        break
                    if rise - last_rise < threshold / 8:  # flat: take longer steps
                        step = min(step * 2.0, 1.0)
                    theta = trial
                    last_rise = max(rise, last_rise)
        ci, identifiable = {}, {}
        for row, name in enumerate(names):
            grid, curve = values[row], profile_nllh[row]
            # +inf (a zero likelihood) is above any threshold: the profile crosses it there
            ok = np.isfinite(grid) & ~np.isnan(curve)
            grid, curve = grid[ok], curve[ok]
            order = np.argsort(grid)
            grid, curve = grid[order], curve[order] - self.nllh
            centre = int(np.argmin(np.abs(grid - np.log10(self.params[name]))))
            low_end = _crossing(grid[: centre + 1][::-1], curve[: centre + 1][::-1], threshold)
            high_end = _crossing(grid[centre:], curve[centre:], threshold)
            identifiable[name] = low_end is not None and high_end is not None
            bounds = np.log10(obj.bounds[name])
            ci[name] = (
                10.0 ** (bounds[0] if low_end is None else low_end),
                10.0 ** (bounds[1] if high_end is None else high_end),
            )
            if not identifiable[name]:
                sides = [s for s, end in (("lower", low_end), ("upper", high_end)) if end is None]
                warnings.warn(
                    f"parameter {name!r} is practically non-identifiable: its profile "
                    "likelihood stays below the "
                    f"{level:.0%} threshold up to its bound on the "
                    f"{' and '.join(sides)} side{'s' if len(sides) > 1 else ''}; the data do "
                    "not determine it",
                    NonConvergenceWarning,
                    stacklevel=2,
                )
        units = {"units": _parameter_units(obj, self.free)}  # (of every free parameter)
        profiles = xr.Dataset(
            {
                "log10_value": (("parameter", "step"), values),
                "nllh": (("parameter", "step"), profile_nllh, {"long_name": "profile nllh"}),
                "ci_low": ("parameter", [ci[n][0] for n in names], units),
                "ci_high": ("parameter", [ci[n][1] for n in names], units),
                "identifiable": ("parameter", [identifiable[n] for n in names]),
                "best_nllh": ((), self.nllh),
            },
            coords={"parameter": names, "step": np.arange(-points, points + 1)},
            attrs={
                "level": level,
                "threshold_nllh": threshold,
                "parameter_units": units["units"],
                "tolsim_version": tolsim.__version__,
            },
        )
        self._store_profiles(profiles)
        return profiles

    def _store_profiles(self, profiles: xr.Dataset) -> None:
        """Keep ``profiles`` on the result: added to the stored ones at the same level
        (replacing those of the same parameters), replacing them at another level, with
        ``ci`` and ``identifiable`` kept to the stored profiles' level."""
        stored = self.profiles
        if stored is not None and stored.attrs.get("level") == profiles.attrs["level"]:
            kept = [n for n in stored["parameter"].values if n not in profiles["parameter"]]
            if kept:
                profiles = xr.concat(
                    [stored.sel(parameter=kept), profiles],
                    "parameter",
                    data_vars="minimal",
                    coords="minimal",
                    compat="equals",
                    join="outer",
                    combine_attrs="override",
                )
        order = [n for n in self.free if n in profiles["parameter"]]
        self.profiles = profiles.sel(parameter=order)
        self.ci = {
            n: (
                float(self.profiles["ci_low"].sel(parameter=n)),
                float(self.profiles["ci_high"].sel(parameter=n)),
            )
            for n in order
        }
        self.identifiable = {
            n: bool(self.profiles["identifiable"].sel(parameter=n)) for n in order
        }

    # posterior --------------------------------------------------------------------------
    def sample(
        self,
        *,
        steps: int = 2000,
        walkers: int | None = None,
        seed: int = 0,
        burn: int | None = None,
    ) -> xr.Dataset:
        """Posterior samples (emcee's affine-invariant ensemble) with flat priors on the
        log10 parameters within their bounds, walkers started in a small ball around the
        best fit. Returns ``log10_value`` (draw, parameter) after discarding ``burn`` steps
        (default: half), with the acceptance fraction and autocorrelation time in attrs.

        ``steps`` >= 1, ``walkers`` >= twice the number of free parameters (default
        ``max(2 n + 2, 16)``), ``0 <= burn < steps``."""
        import emcee

        n = self.n_free
        steps = _check_count(steps, "steps", 1)
        walkers = max(2 * n + 2, 16) if walkers is None else walkers
        # emcee's stretch move moves one half of the ensemble using the other: it needs at
        # least twice as many walkers as dimensions
        walkers = _check_count(walkers, "walkers", 2 * n)
        burn = steps // 2 if burn is None else _check_count(burn, "burn", 0)
        if burn >= steps:
            raise ValueError(
                f"`burn` = {burn}: expected fewer than `steps` = {steps}, or no draw is left"
            )
        obj = self.objective
        lower = np.log10([obj.bounds[name][0] for name in self.free])
        upper = np.log10([obj.bounds[name][1] for name in self.free])

        interrupted = False

        def log_probability(theta):
            # Ctrl-C inside emcee's call prints emcee's traceback of it: note it, and raise it
            # between steps instead (the remaining calls of the step return at once)
            nonlocal interrupted
            if interrupted or np.any(theta < lower) or np.any(theta > upper):
                return -np.inf
            try:
                return -obj.nllh(theta)
            except KeyboardInterrupt:
                interrupted = True
                return -np.inf

        seed = check_seed(seed)
        if seed >= 2**32:  # emcee's moves draw from a numpy RandomState
            raise ValueError(f"`seed` = {seed!r}: expected an integer in [0, 2**32) for emcee")
        rng = np.random.default_rng(seed)
        best = np.log10([self.params[name] for name in self.free])
        start = best + 1e-3 * rng.standard_normal((walkers, n))
        start = np.clip(start, lower, upper)
        sampler = emcee.EnsembleSampler(walkers, n, log_probability)
        sampler.random_state = np.random.RandomState(seed).get_state()  # reproducible moves
        for _ in sampler.sample(start, iterations=steps):
            if interrupted:
                raise KeyboardInterrupt
        chain = sampler.get_chain(discard=burn, flat=True)
        try:
            tau = sampler.get_autocorr_time(discard=burn, quiet=True)
        except emcee.autocorr.AutocorrError:  # pragma: no cover - quiet=True returns instead
            tau = np.full(n, np.nan)
        return xr.Dataset(
            {"log10_value": (("draw", "parameter"), chain)},
            coords={"parameter": list(self.free)},
            attrs={
                "sampler": f"emcee {emcee.__version__} EnsembleSampler",
                "walkers": walkers,
                "steps": steps,
                "burn": burn,
                "acceptance_fraction": float(np.mean(sampler.acceptance_fraction)),
                "autocorrelation_time_steps": json.dumps(np.asarray(tau).tolist()),
                "prior": "flat in log10 within bounds",
                "seed": seed,
                "parameter_units": _parameter_units(self.objective, self.free),
                "model": json.dumps(self.objective.model.describe()),
                "params": json.dumps(self.all_params),
                "tolsim_version": tolsim.__version__,
            },
        )

    # prediction -------------------------------------------------------------------------
    def predict(self, schedule: Schedule, **options) -> xr.Dataset:
        """Recurrence under a new schedule with this fit's uncertainty: see
        :func:`tolsim.predict` for the options and the returned Dataset."""
        from tolsim.predict import predict

        return predict(self, schedule, **options)

    def __repr__(self) -> str:
        """:meth:`summary` (the starts, predictions and profiles are attributes of their own)."""
        return self.summary()

    def to_datatree(self, posterior: xr.Dataset | None = None) -> xr.DataTree:
        """The fit as an :class:`xarray.DataTree`, to keep with ``.to_netcdf(path)`` and read
        back with :func:`xarray.open_datatree` (``tolsim fit`` writes the same groups). The
        groups share the root's ``parameter`` coordinate; to read one group alone with
        ``xarray.open_dataset(path, group=...)``, write with
        ``.to_netcdf(path, write_inherited_coords=True)``, as ``tolsim fit`` does.

        ``/``: ``value`` (the best fit of each free ``parameter``), ``nllh``, ``aic``,
        ``aicc``, ``bic``, ``converged``, ``n_data``, ``lower_bound`` and ``upper_bound``
        (the search box), and ``ci_low``, ``ci_high``, ``identifiable``, ``profiled`` once
        :meth:`profile` has run (NaN intervals for the parameters not profiled); attrs
        record the model, every parameter (``params``) and those not fitted
        (``fixed``), the noise model of each observable (``noise``), the schedules of the
        conditions and their overrides (``condition_params``), the data's source, the method
        and tolsim's version; variables along ``parameter`` have each parameter's unit in a
        JSON ``units`` attr, and ``predictions`` keeps each row's given ``sigma``. Groups:
        ``starts``, ``predictions``, ``profiles`` (after :meth:`profile`) and ``posterior``
        (the draws of :meth:`sample`, when given).
        """
        objective = self.objective
        units = {"units": _parameter_units(objective, self.free)}  # JSON: one per parameter
        root = xr.Dataset(
            {
                "value": (
                    "parameter",
                    [self.params[name] for name in self.free],
                    {"long_name": "best-fit value"} | units,
                ),
                "nllh": ((), self.nllh, {"long_name": "negative log-likelihood at the best fit"}),
                "aic": ((), self.aic, {"long_name": "Akaike information criterion"}),
                "aicc": ((), self.aicc, {"long_name": "AIC with small-sample correction"}),
                "bic": ((), self.bic, {"long_name": "Bayesian information criterion"}),
                "converged": (
                    (),
                    self.converged,
                    {"long_name": "the best start converged and was reached by two starts"},
                ),
                "n_data": ((), self.n_data, {"long_name": "measurements fitted"}),
                "lower_bound": (
                    "parameter",
                    [objective.bounds[name][0] for name in self.free],
                    {"long_name": "lower end of the search box"} | units,
                ),
                "upper_bound": (
                    "parameter",
                    [objective.bounds[name][1] for name in self.free],
                    {"long_name": "upper end of the search box"} | units,
                ),
            },
            coords={"parameter": list(self.free)},
            attrs={
                "title": f"tolsim fit of {objective.model.name}",
                "model": json.dumps(objective.model.describe()),
                "params": json.dumps(self.all_params),
                "fixed": json.dumps(
                    {k: v for k, v in self.all_params.items() if k not in self.free}
                ),
                "noise": json.dumps(
                    {name: type(model).__name__ for name, model in objective.noise.items()}
                ),
                "schedules": json.dumps(
                    {name: schedule.to_dict() for name, schedule in objective.schedules.items()}
                ),
                "condition_params": json.dumps(objective.condition_params, default=float),
                "data": objective.data.source,
                "method": self.method,
                "tolsim_version": tolsim.__version__,
            },
        )
        groups = {"/": root, "starts": self.starts, "predictions": self.predictions}
        if self.profiles is not None:
            # every free parameter, those not profiled with NaN intervals (a tree's groups
            # share the root's `parameter` coordinate)
            profiles = self.profiles.reindex(parameter=list(self.free))
            profiled = np.isin(list(self.free), self.profiles["parameter"].values)
            profiles["identifiable"] = (
                "parameter",
                profiles["identifiable"].fillna(False).astype(bool).values,
            )
            for name in ("ci_low", "ci_high", "identifiable"):
                root[name] = profiles[name]
            root["profiled"] = ("parameter", profiled)
            groups["profiles"] = profiles
        if posterior is not None:
            groups["posterior"] = posterior
        return xr.DataTree.from_dict(groups)

    def summary(self) -> str:
        """The best fit in a few lines: likelihood, information criteria, convergence, and
        each free parameter with its confidence interval once :meth:`profile` has run."""
        lines = [
            f"tolsim fit: nllh {self.nllh:.4g}, {self.n_free} free parameters, "
            f"{self.n_data} data, AIC {self.aic:.4g}, BIC {self.bic:.4g}, "
            f"converged: {self.converged}"
            + (
                ""
                if self.profiles is None
                else f"; {self.profiles.attrs['level']:.0%} profile-likelihood intervals"
            )
        ]
        for name in self.free:
            text = f"  {name} = {self.params[name]:.4g}"
            if name in self.ci:
                low, high = self.ci[name]
                text += f"  [{low:.3g}, {high:.3g}]"
                if not self.identifiable[name]:
                    text += "  (practically non-identifiable)"
            lines.append(text)
        return "\n".join(lines)


def _crossing(grid, curve, threshold):
    """First log10 value along ``grid`` (moving away from the optimum) where ``curve`` rises
    through ``threshold`` (linear interpolation), or None."""
    for i in range(1, grid.size):
        if curve[i] >= threshold > curve[i - 1]:
            w = (threshold - curve[i - 1]) / (curve[i] - curve[i - 1])
            return grid[i - 1] + w * (grid[i] - grid[i - 1])
    return None


def _optimise_others(obj: _Objective, theta: np.ndarray, k: int) -> np.ndarray:
    """Re-optimise every free parameter but ``k`` (held at ``theta[k]``)."""
    others = [i for i in range(theta.size) if i != k]
    if not others:
        return theta
    lower = np.log10([obj.bounds[obj.free[i]][0] for i in others])
    upper = np.log10([obj.bounds[obj.free[i]][1] for i in others])

    def full(sub):
        t = theta.copy()
        t[others] = sub
        return t

    x0 = np.clip(theta[others], lower, upper)
    if obj.gaussian():
        result = optimize.least_squares(
            lambda sub: obj.residuals(full(sub)),
            x0,
            bounds=(lower, upper),
            method="trf",
            x_scale=1.0,
        )
    else:
        result = _minimize(lambda sub: obj.bounded_nllh(full(sub)), x0, lower, upper)
    return full(result.x)


_CAPPED = 1e100  # bounded_nllh's stand-in for an infinite negative log-likelihood


def _parameter_units(objective: _Objective, names) -> str:
    """JSON of each named parameter's unit (a noise scale in its observable's unit): the
    ``units`` attr of a variable along ``parameter``."""
    units = {p.name: p.unit for p in objective.model.parameters}
    for observable_name in objective.data.observables:
        observable = objective.observables[observable_name]
        for p in observable.fit_parameters(objective.noise[observable_name]):
            units[p.name] = observable.unit if p.unit == "observable unit" else p.unit
    return json.dumps({name: units.get(name, "") for name in names}, ensure_ascii=False)


def _row_units(objective: _Objective, observables, noise_scale: bool = False) -> str:
    """The ``units`` attr of values along ``row``: the observables' one unit, or JSON of each
    observable's unit where they differ. ``noise_scale``: of a given noise standard deviation,
    which under log-normal noise is that of ``log y`` (unit "1")."""
    from tolsim.observe import LogNormal

    units = {}
    for name in dict.fromkeys(observables):
        log_scale = noise_scale and isinstance(objective.noise[name], LogNormal)
        units[name] = "1" if log_scale else objective.observables[name].unit
    if len(set(units.values())) == 1:
        return next(iter(units.values()))
    return json.dumps(units, ensure_ascii=False)


def _minimize(function, x0, lower, upper):
    """L-BFGS-B with finite-difference gradients; where it makes no progress from a start
    (far from the optimum the likelihood is steep and badly scaled, and its line search can
    stall at once), Powell's derivative-free method takes over (Nelder-Mead's simplex where
    Powell ends on a zero likelihood) and L-BFGS-B polishes. Returns the best point found,
    never worse than L-BFGS-B's."""
    box = list(zip(lower, upper, strict=True))
    result = optimize.minimize(function, x0, bounds=box, method="L-BFGS-B")
    if result.nit > 1:
        return _confirmed(function, result, box)
    rough = optimize.minimize(function, x0, bounds=box, method="Powell")
    if rough.fun >= _CAPPED:  # Powell's line searches ran into a zero likelihood: a simplex
        simplex = optimize.minimize(function, x0, bounds=box, method="Nelder-Mead")
        simplex.nfev += rough.nfev
        rough = simplex
    polished = optimize.minimize(function, rough.x, bounds=box, method="L-BFGS-B")
    # the best of the three: the derivative-free search can end where L-BFGS-B's first step
    # was better (on a capped infinity at a corner of the box, say)
    best = min((polished, rough, result), key=lambda r: float(r.fun))
    best.nfev = result.nfev + rough.nfev + polished.nfev
    return _confirmed(function, best, box)


_NO_BETTER = 1e-6  # nllh: a search from a stalled end that gains less has found nothing


def _confirmed(function, result, box):
    """A search that stopped without converging, checked. L-BFGS-B's line search often fails
    near an optimum ("ABNORMAL"): its finite-difference gradients of a likelihood computed
    through an ODE solver carry the solver's error. From the end point, Nelder-Mead's
    derivative-free simplex searches on: if it gains less than 1e-6 in the negative
    log-likelihood (statistically nothing: profile thresholds are ~1.9), the point is the
    optimum and is reported converged; else the simplex's point is kept, converged if the
    simplex says so."""
    if result.success or not result.fun < _CAPPED:
        return result
    # scipy's default first simplex steps 5% of each coordinate away from it and clips at the
    # box: a coordinate on a bound would never move. Step 5% of the box inwards instead.
    x = np.asarray(result.x, dtype=float)
    simplex = [x]
    for i, (low, high) in enumerate(box):
        step = 0.05 * (high - low)
        vertex = x.copy()
        vertex[i] = x[i] + step if x[i] + step <= high else x[i] - step
        simplex.append(vertex)
    check = optimize.minimize(
        function, x, bounds=box, method="Nelder-Mead",
        options={"xatol": 1e-6, "fatol": _NO_BETTER / 10, "initial_simplex": np.array(simplex)},
    )  # fmt: skip
    nfev = result.nfev + check.nfev
    if check.fun > result.fun - _NO_BETTER:
        result.success = True
        result.message = (
            f"{result.message}; a Nelder-Mead search from the end point gained "
            f"{max(result.fun - check.fun, 0.0):.1e} (< {_NO_BETTER:g}): converged"
        )
        result.nfev = nfev
        return result
    check.nfev = nfev
    check.message = f"Nelder-Mead from where L-BFGS-B stalled ({result.message}): {check.message}"
    return check


# -- the front door --------------------------------------------------------------------------
def fit(
    model: Model,
    data,
    schedules: Mapping[str, Schedule],
    *,
    free: str | Sequence[str],
    fixed: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    observables: Mapping[str, Observable] | None = None,
    noise=None,
    condition_params: Mapping[str, Mapping[str, float]] | None = None,
    starts: int = 20,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
) -> FitResult:
    """Maximum-likelihood fit of model, observable and noise parameters to measurements.

    Parameters
    ----------
    model : Model
    data : Measurements, path or DataFrame
        Measurement table (see :func:`tolsim.read_measurements`).
    schedules : mapping condition -> Schedule
        The schedule of every condition in the data.
    free : str or sequence of str
        Parameters to estimate (a single string is one name): the model's (``"lambda_S"``),
        the observables' and the noise models', named after the observable they belong to
        (``"tumour_volume.v_cell"``, ``"total_cells.sigma"``). Each is estimated on a log10
        scale within its bounds.
    fixed : mapping, optional
        Values of parameters that are not estimated (others keep their defaults); also the
        starting point of the first start for free ones.
    bounds : mapping name -> (low, high), optional
        Search box of free parameters (the Sobol starts fill it; profiles end at it); a name
        that is not in ``free`` is an error. Default: two decades either
        side of the parameter's default (``fixed`` does not move it), within the parameter's
        admissible range.
    observables : mapping name -> Observable, optional
        Observables by the names used in the data; built-ins (``total_cells``,
        ``tumour_volume``, ``luminescence``, ``tolerant_fraction``, ``fold_expansion``,
        ``time_to_recurrence``) are found by name.
    noise : noise model or mapping observable -> noise model, optional
        Default :class:`tolsim.observe.Normal` for every observable.
    condition_params : mapping condition -> mapping, optional
        Per-condition fixed overrides, e.g. ``{"knockout": {"kappa_T": 5.0}}``.
    starts : int
        Number of local optimisations: the first from ``fixed``/defaults, the rest from a
        scrambled Sobol sequence over the log-scaled box (``seed``).
    workers : int, optional
        Threads running starts in parallel (the ODE kernels release the GIL); default the
        number of numba threads.
    progress : bool
        Show a progress bar of finished starts (tqdm, on stderr).

    Returns
    -------
    FitResult
        With ``params``, ``nllh``, every start, predictions; call ``.profile()`` for
        intervals and identifiability, ``.sample()`` for posterior draws.

    Uses ``scipy.optimize.least_squares`` (trust region reflective) when every residual is
    Gaussian with known scale, ``scipy.optimize.minimize`` (L-BFGS-B) otherwise. A fit whose
    best start did not converge, or whose best optimum was reached by a single start, warns
    with :class:`NonConvergenceWarning` and says so in ``converged``.

    Examples
    --------
    >>> import numpy as np, pandas as pd, tolsim
    >>> model = tolsim.models.TwoState(crowding="none")
    >>> schedule = tolsim.Schedule.from_phases([{"days": 20}])
    >>> days = np.arange(2.0, 21.0, 2.0)
    >>> cells = tolsim.simulate(model, model.default_params(lambda_S=0.3), schedule, days).N
    >>> data = pd.DataFrame({"condition": "control", "observable": "total_cells",
    ...                      "time": days, "value": cells.values})
    >>> result = fit(model, data, {"control": schedule}, free=["lambda_S"],
    ...              noise=tolsim.observe.LogNormal(), starts=3)
    >>> round(result.params["lambda_S"], 6)
    0.3
    """
    if not isinstance(model, Model):
        raise TypeError(f"`model` = {model!r}: expected a tolsim.models.Model")
    data = data if isinstance(data, Measurements) else read_measurements(data)
    if not isinstance(schedules, Mapping):
        raise TypeError(
            f"`schedules` is a {type(schedules).__name__}: expected a mapping of each "
            "condition name to a tolsim.Schedule, e.g. {'control': schedule}"
        )
    data.check(conditions=list(schedules))
    for name, schedule in schedules.items():
        if not isinstance(schedule, Schedule):
            raise TypeError(f"`schedules[{name!r}]` = {schedule!r}: expected a tolsim.Schedule")
    observables = dict(observables or {})
    for name in data.observables:
        if name not in observables and name in BUILTIN_OBSERVABLES:
            observables[name] = BUILTIN_OBSERVABLES[name]()
    try:
        data.check(observables=list(observables))
    except ValueError as error:  # (`observables` holds the built-ins the data name)
        raise ValueError(
            f"{error}\n(nor is it a built-in observable: {list(BUILTIN_OBSERVABLES)})"
        ) from None
    if noise is None:
        noise = {name: Normal() for name in data.observables}
    elif not isinstance(noise, Mapping):
        noise = {name: noise for name in data.observables}
    missing = [name for name in data.observables if name not in noise]
    if missing:
        raise ValueError(f"`noise` has no noise model for observable(s) {missing}")
    for argument, table, kind in (
        ("observables", observables, Observable),
        ("noise", noise, NoiseModel),
    ):
        for name, value in table.items():
            if not isinstance(value, kind):
                raise TypeError(
                    f"`{argument}[{name!r}]` = {value!r}: expected a tolsim.observe."
                    f"{kind.__name__}"
                )
    condition_params = dict(condition_params or {})
    for condition, overrides in condition_params.items():
        if condition not in schedules:
            raise ValueError(
                f"`condition_params` names condition {condition!r}, which has no schedule"
            )
        model._check_names(overrides, f"condition_params[{condition!r}]")

    catalogue: dict[str, Parameter] = {p.name: p for p in model.parameters}
    for name in data.observables:  # qualified names, e.g. "luminescence.alpha"
        for p in observables[name].fit_parameters(noise[name]):
            catalogue[p.name] = p
    free = [free] if isinstance(free, str) else list(free)  # one name, not its letters
    if not free:
        raise ValueError("`free` is empty: name at least one parameter to estimate")
    unknown = [n for n in free if n not in catalogue]
    if unknown:
        raise ValueError(f"`free` has unknown parameter(s) {unknown}; known: {sorted(catalogue)}")
    if len(set(free)) != len(free):
        raise ValueError(f"`free` = {free}: names must be distinct")
    fixed = dict(fixed or {})
    unknown = [n for n in fixed if n not in catalogue]
    if unknown:
        raise ValueError(f"`fixed` has unknown parameter(s) {unknown}")
    for name, value in fixed.items():  # checked as a parameter set's values are
        label = f"fixed[{name!r}]"
        fixed[name] = _real_number(value, label, catalogue[name])
        _check_value(label, fixed[name], catalogue[name])
    values = {name: p.default for name, p in catalogue.items()}
    values.update(fixed)
    bounds = _check_bounds(bounds, free)
    box = {}
    for name in free:
        p = catalogue[name]
        if name in bounds:
            low, high = bounds[name]
        else:  # two decades either side of the default, within the admissible range
            low = max(p.bounds[0], p.default * 1e-2)
            high = min(p.bounds[1], p.default * 1e2)
        if not (0 < low < high and np.isfinite(high)):
            raise ValueError(
                f"`bounds[{name!r}]` = ({low}, {high}) {p.unit}: a log10 search needs "
                "0 < low < high < inf; pass bounds={...}"
            )
        if not (p.bounds[0] <= low and high <= p.bounds[1]):
            raise ValueError(
                f"`bounds[{name!r}]` = ({low}, {high}): outside the parameter's admissible "
                f"range {p.bounds}"
            )
        box[name] = (float(low), float(high))
    if not isinstance(starts, int | np.integer) or starts < 1:
        raise ValueError(f"`starts` = {starts!r}: expected an integer >= 1")
    seed = check_seed(seed)
    if workers is not None:
        workers = _check_count(workers, "workers", 1)

    objective = _Objective(
        model, data, schedules, observables, noise, free, values, box, condition_params
    )
    lower = np.log10([box[n][0] for n in free])
    upper = np.log10([box[n][1] for n in free])
    first = np.clip(np.log10(np.maximum([values[n] for n in free], 1e-300)), lower, upper)
    initial = [first]
    if starts > 1:
        m = max(0, math.ceil(math.log2(starts - 1)))  # draw a balanced 2**m set, use a prefix
        from scipy.stats import qmc  # here, not at import: scipy.stats loads slowly

        sobol = qmc.Sobol(len(free), scramble=True, seed=seed).random_base2(m)[: starts - 1]
        initial.extend(qmc.scale(sobol, lower, upper))
    gaussian = objective.gaussian()
    method = "least_squares (trf)" if gaussian else "minimize (L-BFGS-B)"

    def run(theta0):
        if gaussian:
            result = optimize.least_squares(
                objective.residuals, theta0, bounds=(lower, upper), method="trf"
            )
            value = objective.nllh(result.x)
            return result.x, value, bool(result.success), int(result.nfev), result.message
        result = _minimize(objective.bounded_nllh, theta0, lower, upper)
        value = float(result.fun)
        if value >= _CAPPED:  # ended where the likelihood is zero: nothing was found
            return result.x, math.inf, False, int(result.nfev), "the likelihood is zero there"
        return result.x, value, bool(result.success), int(result.nfev), result.message

    import numba

    workers = numba.get_num_threads() if workers is None else int(workers)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(run, theta0) for theta0 in initial]
        if progress:
            from concurrent.futures import as_completed

            from tqdm import tqdm

            for _ in tqdm(as_completed(futures), total=len(futures), desc="fit", unit="start"):
                pass
        outcomes = [future.result() for future in futures]
    finals = np.array([o[0] for o in outcomes])
    nllhs = np.array([o[1] for o in outcomes])
    success = np.array([o[2] for o in outcomes])
    nfev = np.array([o[3] for o in outcomes])
    order = np.argsort(nllhs)
    best = int(order[0])
    if not np.isfinite(nllhs[best]):
        raise RuntimeError("every start failed: the likelihood is infinite everywhere tried")
    reached = int(np.sum(nllhs <= nllhs[best] + _CONVERGED_WITHIN))
    converged = bool(success[best]) and (reached >= 2 or starts == 1)
    if not converged:
        why = (
            f"the best start did not converge ({outcomes[best][4]})"
            if not success[best]
            else f"only 1 of {starts} starts reached the best optimum (it may not be global)"
        )
        warnings.warn(f"fit not converged: {why}", NonConvergenceWarning, stacklevel=2)
    theta = finals[best]
    all_params = objective.full_params(theta)
    params = {name: all_params[name] for name in free}
    predicted = objective.predictions(all_params)
    table = data.table
    units = {"units": _row_units(objective, table["observable"])}
    predictions = xr.Dataset(
        {
            "condition": ("row", table["condition"].to_numpy(dtype=str)),
            "observable": ("row", table["observable"].to_numpy(dtype=str)),
            "time": ("row", table["time"].to_numpy(dtype=float), {"units": "days"}),
            "replicate": ("row", table["replicate"].to_numpy(dtype=str)),
            "observed": ("row", table["value"].to_numpy(dtype=float), units),
            "predicted": ("row", predicted, units),
            "residual": ("row", table["value"].to_numpy(dtype=float) - predicted, units),
            "sigma": (
                "row",
                table["sigma"].to_numpy(dtype=float),
                {
                    "units": _row_units(objective, table["observable"], noise_scale=True),
                    "long_name": "noise standard deviation given per row (NaN: none)",
                },
            ),
            "censored": ("row", table["censored"].to_numpy(dtype=bool)),
            "left_censored": ("row", table["left_censored"].to_numpy(dtype=bool)),
        },
        attrs={"model": json.dumps(model.describe()), "tolsim_version": tolsim.__version__},
    )
    starts_ds = xr.Dataset(
        {
            "initial": (("start", "parameter"), np.array(initial)[order]),
            "final": (("start", "parameter"), finals[order]),
            "nllh": ("start", nllhs[order]),
            "converged": ("start", success[order]),
            "n_evaluations": ("start", nfev[order]),
        },
        coords={"start": np.arange(starts), "parameter": list(free)},
        attrs={"scale": "log10", "method": method, "seed": seed},
    )
    return FitResult(
        params=params,
        nllh=float(nllhs[best]),
        all_params=all_params,
        starts=starts_ds,
        predictions=predictions,
        converged=converged,
        n_data=objective.n_data,
        free=tuple(free),
        objective=objective,
        n_evaluations=objective.evaluations,
        method=method,
    )


def _check_bounds(bounds, free: Sequence[str]) -> dict[str, tuple[float, float]]:
    """``bounds`` as ``name -> (low, high)`` floats; every name a free parameter (a typo or
    the bounds of a fixed parameter would otherwise be ignored without a word)."""
    if bounds is None:
        return {}
    if not isinstance(bounds, Mapping):
        raise TypeError(f"`bounds` = {bounds!r}: expected a mapping free parameter -> (low, high)")
    stray = [name for name in bounds if name not in free]
    if stray:
        raise ValueError(
            f"`bounds` names {stray}, which {'is' if len(stray) == 1 else 'are'} not free: "
            f"bounds apply to the free parameters {list(free)} only"
        )
    checked = {}
    for name, pair in bounds.items():
        try:
            low, high = pair
            checked[name] = (float(low), float(high))
        except (TypeError, ValueError):
            raise ValueError(
                f"`bounds[{name!r}]` = {pair!r}: expected a pair of numbers (low, high)"
            ) from None
    return checked


def likelihood_ratio_test(restricted: FitResult, full: FitResult) -> dict:
    """Likelihood-ratio test of a nested (restricted) model against the full one, e.g.
    selection (``mu_E = 0``, fixed) against induction (``mu_E`` free).

    Returns ``statistic`` = 2 (nllh_restricted - nllh_full), ``df`` (difference in free
    parameters), ``p_value``, ``null_distribution`` (what ``p_value`` is from),
    ``boundary`` (the parameters fixed on the edge of ``full``'s box), ``p_value_chi2``
    (chi-square with ``df`` degrees of freedom, whatever the boundary), and both models' AIC,
    AICc and BIC.

    *Parameters fixed on a boundary.* Where ``restricted`` fixes a parameter at or beyond an
    edge of ``full``'s search box, e.g. ``mu_E = 0`` against a box ``(1e-6, 1)`` (the limit
    of the log10 scale: no switching at all), the null value is not inside the full model's
    parameter space, and the statistic is not chi-square with ``df`` degrees of freedom: the
    full fit can only move the parameter to one side. For ``k`` such parameters ``p_value``
    is then the chi-bar-square mixture of Self & Liang (1987),
    ``sum_j C(k, j) 2**-k P(chi2_{df-k+j} >= statistic)`` (``chi2_0`` the point mass at 0):
    for one parameter, half the chi-square tail. It assumes the boundary parameters'
    estimates are asymptotically uncorrelated; ``p_value_chi2`` is the conservative bound.

    Both fits must be to the same data: the same measurement rows (condition, observable,
    time, value, censoring, per-row sigma, in the same order) under the same schedules;
    a ``ValueError`` names the first difference otherwise. They must be nested: the same
    model, observables, noise models and per-condition parameters, the free parameters of
    ``restricted`` among those of ``full``, and every parameter ``full`` does not estimate
    fixed at the same value in both; a ``ValueError`` says which part differs otherwise.

    A ``full`` fit worse than ``restricted`` (by more than 1e-6 in nllh) did not reach its
    optimum: a :class:`NonConvergenceWarning` says so and the statistic is 0.
    """
    for argument, value in (("restricted", restricted), ("full", full)):
        if not isinstance(value, FitResult):
            raise TypeError(f"`{argument}` = {value!r}: expected a tolsim.FitResult (tolsim.fit)")
    df = full.n_free - restricted.n_free
    if df <= 0:
        raise ValueError(
            f"`full` has {full.n_free} free parameters and `restricted` {restricted.n_free}: "
            "the full model must have more"
        )
    difference = _data_difference(restricted.objective, full.objective)
    if difference:
        raise ValueError(
            f"`restricted` and `full` were fitted to different data ({difference}): a "
            "likelihood-ratio test compares two models of the same measurements"
        )
    difference = _nesting_difference(restricted, full)
    if difference:
        raise ValueError(
            f"`restricted` is not nested in `full`: {difference}; a likelihood-ratio test "
            "compares a model with the same model with some free parameters fixed"
        )
    for argument, result in (("restricted", restricted), ("full", full)):
        if not result.converged:
            warnings.warn(
                f"`{argument}` did not converge (its `converged` is False; see its `starts`): "
                "the likelihood ratio compares optima, and may be wrong",
                NonConvergenceWarning,
                stacklevel=2,
            )
    boundary = _boundary_parameters(restricted, full)
    # where `restricted` fixes a parameter beyond `full`'s box (mu_E = 0 against 1e-6 and up),
    # `full` cannot reach `restricted`: its best is at most the likelihood of `restricted`'s
    # optimum with those parameters moved to the edge, which it may lose to a little. Only a
    # loss beyond that point's is a failure to converge.
    worse = full.nllh - restricted.nllh
    edge = _edge_nllh(restricted, full, boundary) if worse > 1e-6 and boundary else None
    if worse > 1e-6 and (edge is None or full.nllh > edge + 1e-6):
        warnings.warn(
            f"`full` fits worse than `restricted` (nllh {full.nllh:.8g} against "
            f"{restricted.nllh:.8g}), which a nested model cannot: its fit did not reach the "
            "optimum (try more `starts`); the statistic is set to 0",
            NonConvergenceWarning,
            stacklevel=2,
        )
    elif worse > _EDGE_SLACK:
        edges = ", ".join(
            f"{n} = {full.params[n]:.4g} in ({_edge_text(full, n)})" for n in boundary
        )
        fixed = ", ".join(f"{n} = {restricted.all_params[n]:g}" for n in boundary)
        warnings.warn(
            f"`full` fits worse than `restricted` by {worse:.3g} in nllh: its box ({edges}) "
            f"cannot reach `restricted`'s {fixed}; widen `full`'s bounds towards those values; "
            "the statistic is set to 0",
            NonConvergenceWarning,
            stacklevel=2,
        )
    statistic = max(2.0 * (restricted.nllh - full.nllh), 0.0)
    chi2 = float(chdtrc(df, statistic))  # chi-square survival function
    k = len(boundary)
    if k:
        p_value = sum(
            math.comb(k, j) / 2**k * _chi2_tail(df - k + j, statistic) for j in range(k + 1)
        )
        null = (
            f"chi-bar-square: the mixture of chi-square with {df - k} to {df} degrees of "
            f"freedom, weights C({k}, j) / 2**{k} ({k} parameter(s) fixed on a boundary)"
        )
    else:
        p_value, null = chi2, f"chi-square with {df} degrees of freedom"
    return {
        "statistic": statistic,
        "df": df,
        "p_value": float(p_value),
        "null_distribution": null,
        "boundary": boundary,
        "p_value_chi2": chi2,
        "aic": (restricted.aic, full.aic),
        "aicc": (restricted.aicc, full.aicc),
        "bic": (restricted.bic, full.bic),
    }


_COMPARED_COLUMNS = (
    "condition", "observable", "time", "value", "censored", "left_censored", "sigma",
)  # fmt: skip


_EDGE_SLACK = 0.1  # nllh lost at the edge of full's box beyond which the box is named


def _edge_nllh(restricted: FitResult, full: FitResult, boundary: list[str]) -> float | None:
    """``full``'s negative log-likelihood at ``restricted``'s optimum with the ``boundary``
    parameters moved to the edge of ``full``'s box nearest their fixed values (a point of
    ``full``'s space), or None where that point is outside ``full``'s box."""
    objective = full.objective
    theta = []
    for name in objective.free:
        low, high = objective.bounds[name]
        value = restricted.all_params[name]
        if name in boundary:
            value = low if value <= low else high
        elif not low <= value <= high:
            return None
        theta.append(math.log10(value))
    return objective.nllh(np.array(theta))


def _edge_text(full: FitResult, name: str) -> str:
    low, high = full.objective.bounds[name]
    return f"{low:g}, {high:g}"


def _chi2_tail(df: int, statistic: float) -> float:
    """P(chi2_df >= statistic); chi2_0 is the point mass at 0."""
    if df == 0:
        return 1.0 if statistic <= 0.0 else 0.0
    return float(chdtrc(df, statistic))


def _boundary_parameters(restricted: FitResult, full: FitResult) -> list[str]:
    """The parameters ``full`` estimates that ``restricted`` fixes at or beyond an edge of
    ``full``'s search box."""
    found = []
    for name in full.free:
        if name in restricted.free:
            continue
        low, high = full.objective.bounds[name]
        if not low < restricted.all_params[name] < high:
            found.append(name)
    return found


def _nesting_difference(restricted: FitResult, full: FitResult) -> str | None:
    """Why ``restricted`` is not ``full`` with some free parameters fixed, or None."""
    from tolsim.sweep import _model_fingerprint  # (what a model computes, not only its names)

    a, b = restricted.objective, full.objective
    if a.model.describe() != b.model.describe() or _model_fingerprint(
        a.model
    ) != _model_fingerprint(b.model):
        return f"they fit different models ({a.model.name!r} and {b.model.name!r})"
    for name in b.observables:
        if a.observables.get(name) != b.observables[name]:
            return f"observable {name!r} differs"
        if a.noise.get(name) != b.noise[name]:
            return (
                f"the noise models of {name!r} differ ({a.noise.get(name)!r} and "
                f"{b.noise[name]!r})"
            )
    if a.condition_params != b.condition_params:
        return "their `condition_params` differ"
    extra = [name for name in restricted.free if name not in full.free]
    if extra:
        return f"it estimates {extra}, which `full` does not"
    for name, value in full.all_params.items():
        if name not in full.free and restricted.all_params.get(name) != value:
            return (
                f"{name!r}, not estimated by `full`, is {restricted.all_params.get(name)!r} in "
                f"`restricted` and {value!r} in `full`"
            )
    return None


def _data_difference(a: _Objective, b: _Objective) -> str | None:
    """The first difference between the data two objectives were built from (measurement
    rows and the schedules of their conditions), or None when they are the same."""
    table_a, table_b = a.data.table, b.data.table
    if len(table_a) != len(table_b):
        return f"{len(table_a)} and {len(table_b)} measurement rows"
    for column in _COMPARED_COLUMNS:
        x, y = table_a[column].to_numpy(), table_b[column].to_numpy()
        same = x == y
        if column == "sigma":  # NaN: not given, in both
            same |= np.isnan(x.astype(float)) & np.isnan(y.astype(float))
        if not np.all(same):
            row = int(np.flatnonzero(~same)[0])
            first, second = (
                v.item() if isinstance(v, np.generic) else v for v in (x[row], y[row])
            )
            return f"row {row} has {column} {first!r} and {second!r}"
    for condition in a.data.conditions:
        if a.schedules[condition] != b.schedules[condition]:
            return f"condition {condition!r} has different schedules"
    return None
