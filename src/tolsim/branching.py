"""Exact extinction probabilities of linear models: the multi-type branching process.

In a linear model (``model.linear``) every propensity is proportional to the cells it acts on,
so cells act independently and the population is a continuous-time multi-type branching
process (Kendall 1948, Ann. Math. Stat. 19:1-15; Athreya & Ney 1972, *Branching Processes*,
ch. V). A cell of type ``i`` undergoes transition ``j`` at the per-cell rate ``c[j, i]`` (the
model's propensity at the unit state ``e_i``) and is replaced by the offspring
``o[j, i] = e_i + stoichiometry[j]``.

Let ``Q_i(s)`` be the probability that the lineage of one type-``i`` cell alive on day ``s`` has
no cell in the target states on day ``T``. Conditioning on the first event after ``s`` gives the
backward Kolmogorov equations for the generating function, a Riccati system

    dQ_i/ds = -u_i(Q, s),   u_i(Q, s) = sum_j c[j, i](s) (prod_k Q_k ** o[j, i, k] - Q_i),

with ``Q_k(T) = 0`` for target states and 1 for the others. Lineages are independent, so a
population of ``n_i`` cells of each type has probability ``prod_i Q_i(0) ** n_i``.

Rates jump at the schedule's breakpoints, so the equations are integrated backwards piece by
piece, restarting at each breakpoint; within a piece the concentrations are those of the
compiled schedule (constant in vitro, the closed-form PK course otherwise).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from numbers import Real

import numpy as np
import xarray as xr
from scipy.integrate import solve_ivp

import tolsim
from tolsim.kernels.exposure import (
    PK_CENTRAL,
    PK_COLUMNS,
    PK_DEPOT,
    PK_INFUSION,
    PK_KA,
    PK_KE,
    load_piece,
    piece_concentrations,
)
from tolsim.models.base import Model
from tolsim.schedule import Schedule
from tolsim.simulate import _pack_params

__all__ = ["branching_extinction"]

METHOD = "branching process (backward Kolmogorov equations)"
RTOL = 1e-12
ATOL = 1e-15
# After a schedule whose last piece has a PK course, the course is followed until its
# transients have decayed by exp(-45) ~ 3e-20, where the rates equal their limit to round-off.
_TAIL_DECAY_CONSTANTS = 45.0
_NEWTON_MAX_ITERATIONS = 500


def branching_extinction(
    model: Model,
    params,
    schedule: Schedule,
    *,
    by_day: float | None = None,
    states=None,
    initial: Mapping[str, int] | None = None,
) -> xr.Dataset:
    """Exact probability that no cell of ``states`` is left by ``by_day`` (linear models).

    Solves the backward Kolmogorov (Riccati) equations of the multi-type branching process
    (see the module docstring) with ``scipy.integrate.solve_ivp`` (LSODA, ``rtol`` 1e-12,
    ``atol`` 1e-15), piece by piece between the schedule's breakpoints. No sampling: the
    answer is exact up to the integration's accuracy, which is absolute in each lineage's
    extinction probability ``q`` (~1e-12 per piece; ~1e-9 over 60 oral-dose pieces). So a
    survival probability ``1 - q`` near 1e-12, or ``q**n`` over a very large ``n`` (relative
    error ~``n`` times that of ``q``: 2e-3 at 1e12 cells), keeps only a few digits. Each
    parameter set costs one small ODE solve per piece of the schedule (milliseconds).

    Parameters
    ----------
    model : Model
        A linear model (``model.linear``), e.g. ``TwoState(crowding="none")``. Its rates may
        depend on the day only through the drug concentrations, as for
        ``simulate(method="exact")``.
    params : mapping or table
        One parameter set (mapping name -> value; missing names take defaults), or many: a
        ``pandas.DataFrame`` or a mapping of equal-length 1-d arrays (scalars broadcast),
        which adds a ``sample`` dimension.
    schedule : Schedule
        Dosing schedule; in-vitro phases and PK dosing (oral doses, pellets) both work.
    by_day : float, optional
        Horizon, days, within ``(0, schedule.duration_days]``; default the schedule's
        duration. ``np.inf`` gives eventual extinction of the whole population (``states``
        must then be every state): after the schedule's end the last piece's exposure goes on
        for ever (a constant level stays; a PK course continues without further doses).
    states : sequence of str, optional
        The states that must all be empty by ``by_day``; default every state (extinction of
        the whole population). ``("T",)`` gives the probability that no tolerant cell is left.
    initial : mapping of str to int, optional
        Cells of each named state on day 0 (whole numbers >= 0), overriding the model's
        initial-value parameters (e.g. ``S0``, ``T0``) for those states.

    Returns
    -------
    xarray.Dataset
        ``lineage_extinction_probability`` (dims (``sample``,) ``state``; units "1"):
        ``Q_i(0)`` for one cell of each state on day 0; ``extinction_probability``
        (``sample``,): ``prod_i Q_i(0) ** n_i``; ``initial_cells`` (``sample``,) ``state``
        (cells): the ``n_i``; ``parameters``. Attributes record the model, schedule, ``by_day``
        (days), ``target_states``, method, tolerances, ``tolsim_version`` and, for one
        parameter set, ``params``.

    Raises
    ------
    ValueError
        For a model that is not linear (use Monte Carlo instead), or whose transitions are not
        those of a branching process (a transition fired by one cell that removes another
        cell, or a transition that fires with no cells present); for unknown state names,
        initial counts that are not whole numbers >= 0, or ``by_day`` outside the schedule.

    Notes
    -----
    A type with no transitions under the final exposure never dies, so its lineage never
    dies out: its eventual extinction probability is 0 (and so is that of any type whose
    every transition leaves a cell of an immortal type). Eventual extinction is the least
    solution ``q*`` in ``[0, 1]^n`` of ``u(q) = 0`` (the fixed point of the embedded
    Galton–Watson generating function), found by Newton's method from ``q = 0`` once the
    types with ``q* = 0`` are removed; the iterates increase monotonically to ``q*``, at least
    linearly in the critical case (Esparza, Kiefer & Luttenberger 2010, J. ACM 57:33), and the
    equations are evaluated in ``1 - q`` so that a critical ``q* = 1`` is found to round-off.

    Examples
    --------
    >>> import numpy as np, tolsim
    >>> from tolsim.branching import branching_extinction
    >>> model = tolsim.models.TwoState(crowding="none")
    >>> params = model.default_params(S0=3, T0=0, lambda_S=0.2, delta_S=0.1, mu_0=0, mu_E=0)
    >>> drug_free = tolsim.Schedule.from_phases([{"days": 30}])
    >>> ds = branching_extinction(model, params, drug_free, by_day=np.inf)
    >>> round(float(ds.extinction_probability), 9)  # (death / division) ** S0
    0.125
    >>> params = model.default_params(S0=20, T0=1)
    >>> treated = tolsim.Schedule.from_phases([{"days": 60, "tamoxifen": 1.0}])
    >>> ds = branching_extinction(model, params, treated, states=("T",))
    >>> round(float(ds.extinction_probability), 3)  # no tolerant cell left on day 60
    0.152
    """
    if not isinstance(model, Model):
        raise TypeError(f"`model` = {model!r}: expected a tolsim.models.Model")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"`schedule` = {schedule!r}: expected a tolsim.Schedule")
    if not model.linear:
        options = ", ".join(f"{k}={v!r}" for k, v in model.options)
        raise ValueError(
            f"`model` {model.name!r} ({options}) is not linear: its cells interact (e.g. by "
            "crowding), so it is not a branching process and has no exact extinction "
            "equations; estimate extinction by Monte Carlo with "
            "tolsim.simulate(method='ssa', 'tau' or 'hybrid')"
        )
    target = _check_states(model, states)
    horizon = _check_by_day(by_day, schedule.duration_days, len(target) == len(model.states))
    packed, single = _pack_params(model, params)
    counts = _initial_counts(model, packed, single, initial)

    process = _BranchingProcess(model, schedule.compile(model.drugs))
    terminal = np.array([0.0 if state in target else 1.0 for state in model.states])
    lineage = np.empty((packed.shape[0], len(model.states)))
    for sample in range(packed.shape[0]):
        lineage[sample] = process.lineage_extinction(packed[sample], terminal, horizon)
    extinction = np.prod(lineage**counts, axis=1)  # 0 ** 0 = 1: no cells of that state
    return _to_dataset(
        model, schedule, packed, single, lineage, extinction, counts, target, horizon
    )


class _BranchingProcess:
    """Per-cell rates and offspring of a linear model under a compiled schedule."""

    def __init__(self, model: Model, compiled):
        n_states = len(model.states)
        self.model = model
        self.compiled = compiled
        # offspring[j, i, k]: type-k cells that replace a type-i cell when transition j fires
        offspring = np.eye(n_states, dtype=np.int64)[None, :, :] + model.stoichiometry[:, None, :]
        self.branching = np.all(offspring >= 0, axis=2)
        # a (transition, type) pair that is no branching step must never fire (checked on
        # every evaluation); it gets no offspring so that the equations stay defined
        self.offspring = np.where(self.branching[:, :, None], offspring, 0).astype(np.float64)
        self.unit_states = np.eye(n_states)
        self.no_cells = np.zeros(n_states)

    def per_cell_rates(self, day: float, conc_um: np.ndarray, packed: np.ndarray) -> np.ndarray:
        """``c[j, i]``, events per day per type-``i`` cell, shape (transitions, states)."""
        model = self.model
        n_transitions, n_states = self.offspring.shape[:2]
        empty = np.empty(n_transitions)
        model.rates(day, self.no_cells, packed, conc_um, empty)
        if np.any(empty != 0.0):
            j = int(np.flatnonzero(empty != 0.0)[0])
            raise ValueError(
                f"transition {model.transitions[j].name!r} of model {model.name!r} fires at "
                f"{float(empty[j])!r} /day with no cells present (immigration): a branching "
                "process needs propensities proportional to the cells"
            )
        by_type = np.empty((n_states, n_transitions))
        for i in range(n_states):
            model.rates(day, self.unit_states[i], packed, conc_um, by_type[i])
        rates = by_type.T
        bad = ~np.isfinite(rates) | (rates < 0.0)
        if bad.any():
            j, i = (int(x[0]) for x in np.nonzero(bad))
            raise ValueError(
                f"transition {model.transitions[j].name!r} of model {model.name!r} has "
                f"per-cell rate {float(rates[j, i])!r} /day for one {model.states[i]!r} cell on "
                f"day {day:g}: expected a finite rate >= 0"
            )
        illegal = (rates > 0.0) & ~self.branching
        if illegal.any():
            j, i = (int(x[0]) for x in np.nonzero(illegal))
            transition = model.transitions[j]
            raise ValueError(
                f"transition {transition.name!r} of model {model.name!r} fires for one "
                f"{model.states[i]!r} cell ({rates[j, i]:g} /day) and changes "
                f"{dict(transition.change)}, which would leave a negative count of offspring: "
                "the model is not a branching process (a transition fired by a cell may only "
                "replace that cell by new ones)"
            )
        return rates

    def piece_rates(
        self, piece: int, packed: np.ndarray
    ) -> tuple[Callable[[float], np.ndarray], float]:
        """Per-cell rates on ``piece`` as a function of the day, and the days after which a
        PK course running in it has settled to its limit (0 for constant concentrations)."""
        compiled = self.compiled
        level_um = np.empty(compiled.level_um.shape[1])
        pk = np.empty((compiled.channel_drug.shape[0], PK_COLUMNS))
        load_piece(compiled, piece, level_um, pk)
        start = float(compiled.breakpoints_days[piece])
        active = np.any(pk[:, [PK_DEPOT, PK_CENTRAL, PK_INFUSION]] != 0.0, axis=1)
        if not active.any():
            rates = self.per_cell_rates(start, level_um, packed)
            return (lambda day: rates), 0.0
        conc_um = np.empty_like(level_um)

        def rates_at(day: float) -> np.ndarray:
            piece_concentrations(day - start, level_um, pk, conc_um)
            return self.per_cell_rates(day, conc_um, packed)

        slowest = float(np.min(pk[active][:, [PK_KA, PK_KE]]))
        return rates_at, _TAIL_DECAY_CONSTANTS / slowest

    def lineage_extinction(
        self, packed: np.ndarray, terminal: np.ndarray, horizon: float
    ) -> np.ndarray:
        """``Q(0)`` for one parameter set: integrate back from ``horizon`` piece by piece."""
        breakpoints = self.compiled.breakpoints_days
        eventual = math.isinf(horizon)
        end = float(breakpoints[-1]) if eventual else horizon
        last = int(np.searchsorted(breakpoints, end, side="left")) - 1
        q = terminal
        for piece in range(last, -1, -1):
            start = float(breakpoints[piece])
            stop = min(float(breakpoints[piece + 1]), end)
            rates_at, settle_days = self.piece_rates(piece, packed)
            if eventual and piece == last:
                stop += settle_days
                q = _eventual_extinction(rates_at(stop), self.offspring)
            q = self._integrate(rates_at, q, stop, start)
        return q

    def _integrate(self, rates_at, q_stop, stop, start) -> np.ndarray:
        """The backward equations ``dq/dt = -u(q)`` from ``stop`` back to ``start``, solved for
        the survival probabilities ``y = 1 - q`` (``dy/dt = u(1 - y)``, without cancellation:
        :func:`_drift_of_survival`). Where extinction is nearly certain, ``y`` is tiny and the
        solver's relative tolerance applies to it; integrated in ``q`` it had an absolute error
        of ``rtol`` (1e-12) on ``1 - q``, which a later growing phase multiplies: 1e-7 relative
        on an extinction probability after 12 days at one division a day."""
        offspring = self.offspring

        # (the solver's trial states may leave [0, 1] by round-off, where log1p(-y) is NaN)
        def rhs(day, y):
            return _drift_of_survival(np.clip(y, 0.0, 1.0), rates_at(day), offspring)

        def jac(day, y):
            return -_drift_jacobian(1.0 - np.clip(y, 0.0, 1.0), rates_at(day), offspring)

        y_stop = 1.0 - np.asarray(q_stop, dtype=float)
        solution = solve_ivp(
            rhs, (stop, start), y_stop, method="LSODA", jac=jac, rtol=RTOL, atol=ATOL
        )
        if not solution.success:
            raise RuntimeError(
                f"the backward Kolmogorov equations failed on days {start:g} to {stop:g}: "
                f"{solution.message}"
            )
        return np.clip(1.0 - solution.y[:, -1], 0.0, 1.0)


def _drift(q: np.ndarray, rates: np.ndarray, offspring: np.ndarray) -> np.ndarray:
    """``u_i(q) = sum_j c[j, i] (prod_k q_k ** o[j, i, k] - q_i)``, shape (states,)."""
    products = np.prod(q**offspring, axis=2)
    return np.einsum("ji,ji->i", rates, products) - rates.sum(axis=0) * q


def _drift_jacobian(q: np.ndarray, rates: np.ndarray, offspring: np.ndarray) -> np.ndarray:
    """``du_i/dq_k``, shape (states, states)."""
    powers = q**offspring
    derivative = np.empty_like(powers)
    for k in range(q.size):
        others = np.prod(np.delete(powers, k, axis=2), axis=2)
        own = offspring[:, :, k]
        derivative[:, :, k] = own * q[k] ** np.maximum(own - 1.0, 0.0) * others
    return np.einsum("ji,jik->ik", rates, derivative) - np.diag(rates.sum(axis=0))


def _drift_of_survival(y: np.ndarray, rates: np.ndarray, offspring: np.ndarray) -> np.ndarray:
    """``u(1 - y)`` without cancellation near ``y = 0`` (survival probabilities ``y``).

    ``prod_k (1 - y_k) ** o_k - (1 - y_i) = expm1(sum_k o_k log1p(-y_k)) + y_i``: its terms
    keep full relative precision as ``y -> 0``, where ``u`` itself is round-off.
    """
    with np.errstate(divide="ignore", invalid="ignore"):  # log1p(-1) = -inf, 0 * -inf
        log_terms = np.where(offspring > 0.0, offspring * np.log1p(-y), 0.0)
    return np.einsum("ji,ji->i", rates, np.expm1(log_terms.sum(axis=2)) + y[None, :])


def _eventual_extinction(rates: np.ndarray, offspring: np.ndarray) -> np.ndarray:
    """Least solution ``q*`` in ``[0, 1]^n`` of ``u(q) = 0`` for constant per-cell rates.

    Types whose lineage cannot die out (``q* = 0``) are found first: a type can die out if
    one of its transitions fires and leaves only offspring types that can (induction on the
    depth of the lineage). A type with no transitions never dies, so its ``q* = 0``. On the
    remaining types Newton's method from ``q = 0`` increases monotonically to ``q*``; it is
    run in the survival probabilities ``y = 1 - q`` (see :func:`_drift_of_survival`).
    """
    n_states = rates.shape[1]
    fires = rates > 0.0
    mortal = np.zeros(n_states, dtype=bool)
    for _ in range(n_states):
        offspring_mortal = np.all((offspring == 0.0) | mortal[None, None, :], axis=2)
        mortal = np.any(fires & offspring_mortal, axis=0)
    survival = np.ones(n_states)
    variables = np.ix_(mortal, mortal)
    for _ in range(_NEWTON_MAX_ITERATIONS):
        if not mortal.any():
            break
        drift = _drift_of_survival(survival, rates, offspring)[mortal]
        jacobian = _drift_jacobian(1.0 - survival, rates, offspring)[variables]
        try:
            step = np.linalg.solve(jacobian, drift)  # Newton in y: du/dy = -du/dq
        except np.linalg.LinAlgError:  # singular only at a critical q* = 1, reached already
            break
        if not np.all(np.isfinite(step)):
            break
        updated = np.clip(survival[mortal] + step, 0.0, 1.0)
        change = float(np.max(np.abs(updated - survival[mortal])))
        survival[mortal] = updated
        # quadratic convergence stops at round-off of y; the linear convergence of a critical
        # q* = 1 (y halves each step) stops once 1 - y rounds to 1
        if change <= 1e-17 + 1e-15 * float(np.max(updated)):
            break
    return 1.0 - survival


# --------------------------------------------------------------------------------------------
# checks at the public edge


def _check_states(model: Model, states) -> tuple[str, ...]:
    """The target states, in the model's order."""
    if states is None:
        return model.states
    if isinstance(states, str):
        raise TypeError(
            f"`states` = {states!r}: expected a sequence of state names, e.g. ({states!r},)"
        )
    try:
        names = list(states)
    except TypeError:
        raise TypeError(f"`states` = {states!r}: expected a sequence of state names") from None
    if not names:
        raise ValueError(
            f"`states` is empty: expected at least one of the states {list(model.states)}"
        )
    unknown = [name for name in names if name not in model.states]
    if unknown:
        raise ValueError(
            f"`states` names unknown state(s) {unknown}: the states of model {model.name!r} "
            f"are {list(model.states)}"
        )
    return tuple(state for state in model.states if state in names)


def _check_by_day(by_day, duration_days: float, whole_population: bool) -> float:
    if by_day is None:
        return duration_days
    if isinstance(by_day, bool) or not isinstance(by_day, Real):
        raise TypeError(f"`by_day` = {by_day!r}: expected a day (a number) or np.inf")
    value = float(by_day)
    if value == math.inf:
        if not whole_population:
            raise ValueError(
                "`by_day` = inf (eventual extinction) is computed for the whole population "
                "only: leave `states` at its default (every state) or give a finite day"
            )
        return value
    if not 0.0 < value <= duration_days:
        raise ValueError(
            f"`by_day` = {value!r}: expected a day in (0, {duration_days:g}] (the schedule's "
            "`duration_days`), or np.inf for eventual extinction"
        )
    return value


def _initial_counts(model: Model, packed: np.ndarray, single: bool, initial) -> np.ndarray:
    """Cells of each state on day 0, shape (samples, states), whole numbers as float64."""
    counts = model.initial_state(packed).astype(np.float64)
    given = {}
    if initial is not None:
        if not isinstance(initial, Mapping):
            raise TypeError(f"`initial` = {initial!r}: expected a mapping of state name to cells")
        unknown = [name for name in initial if name not in model.states]
        if unknown:
            raise ValueError(
                f"`initial` names unknown state(s) {unknown}: the states of model "
                f"{model.name!r} are {list(model.states)}"
            )
        for state, value in initial.items():
            label = f"initial[{state!r}]"
            if isinstance(value, bool) or not isinstance(value, Real):
                raise TypeError(f"`{label}` = {value!r}: expected a whole number of cells >= 0")
            if not _is_count(float(value)):
                raise ValueError(f"`{label}` = {value!r}: expected a whole number of cells >= 0")
            given[state] = float(value)
    for i, state in enumerate(model.states):
        if state in given:
            counts[:, i] = given[state]
            continue
        bad = np.flatnonzero([not _is_count(v) for v in counts[:, i]])
        if bad.size:
            name = dict(model.initial)[state]
            label = f"params.{name}" if single else f"params.{name}[{bad[0]}]"
            raise ValueError(
                f"`{label}` = {float(counts[bad[0], i])!r} cells: a branching process starts "
                f"from whole cells; expected a whole number >= 0 (or give `initial`)"
            )
    return counts


def _is_count(value: float) -> bool:
    return math.isfinite(value) and value >= 0.0 and value == math.floor(value)


# --------------------------------------------------------------------------------------------
# result


def _to_dataset(model, schedule, packed, single, lineage, extinction, counts, target, horizon):
    sample_dims = () if single else ("sample",)
    index = 0 if single else slice(None)
    where = "+".join(target)
    if math.isinf(horizon):
        lineage_text = "probability that the lineage of one cell of this state on day 0 dies out"
        total_text = "probability that the population dies out"
    else:
        lineage_text = (
            f"probability that the lineage of one cell of this state on day 0 has no {where} "
            f"cell on day {horizon:g}"
        )
        total_text = f"probability that no {where} cell is left on day {horizon:g}"
    n_params = len(model.parameters)
    data_vars = {
        "lineage_extinction_probability": (
            (*sample_dims, "state"),
            lineage[index],
            {"units": "1", "long_name": lineage_text},
        ),
        "extinction_probability": (
            sample_dims,
            extinction[index],
            {"units": "1", "long_name": total_text},
        ),
        "initial_cells": (
            (*sample_dims, "state"),
            counts[index],
            {"units": "cells", "long_name": "cells of each state on day 0"},
        ),
        "parameters": (
            (*sample_dims, "parameter"),
            packed[index, :n_params],
            {"units": json.dumps({p.name: p.unit for p in model.parameters})},
        ),
    }
    coords = {
        "state": ("state", list(model.states)),
        "parameter": ("parameter", list(model.parameter_names)),
    }
    if not single:
        coords["sample"] = ("sample", np.arange(packed.shape[0]))
    attrs = {
        "title": f"tolsim extinction probabilities of {model.name} (branching process)",
        "model": json.dumps(model.describe()),
        "schedule": json.dumps(schedule.to_dict()),
        "by_day": horizon,
        "by_day_units": "days",
        "target_states": json.dumps(list(target)),
        "method": METHOD,
        "rtol": RTOL,
        "atol": ATOL,
        "tolsim_version": tolsim.__version__,
    }
    if single:
        attrs["params"] = json.dumps(
            dict(zip(model.parameter_names, packed[0, :n_params].tolist(), strict=True))
        )
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
