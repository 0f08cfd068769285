"""Model descriptions: states, parameters, transitions and one numba rate function.

A :class:`Model` is a small frozen object. Everything a solver needs derives from it:

* ``stoichiometry`` — integer matrix (transitions x states): the change of each state when a
  transition fires once;
* ``rates(t, x, p, c, out)`` — a ``numba.njit`` function defined at module top level that fills
  ``out[j]`` with the propensity (events per day) of transition ``j`` at day ``t``, state ``x``
  (cells), packed parameter vector ``p`` (see :meth:`Model.pack`) and drug concentrations
  ``c`` (µM, in the order of :attr:`Model.drugs`).

The ODE right-hand side is ``stoichiometry.T @ rates``; the stochastic solvers fire the same
transitions at the same propensities. Solvers never know a model's name.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Real

import numpy as np

__all__ = ["Constraint", "Exposure", "Model", "Parameter", "Transition"]


@dataclass(frozen=True)
class Parameter:
    """One model parameter.

    Attributes
    ----------
    name : str
        Name used in parameter mappings and datasets.
    unit : str
        Physical unit, e.g. ``"1/day"``, ``"cells"``, ``"µM"``, ``"1"`` (dimensionless).
    default : float
        Default value.
    bounds : tuple of float
        Closed interval of admissible values; values outside are rejected by
        :meth:`Model.pack` and are the search box of fitting.
    description : str
        What the parameter means.
    source : str
        Where the default comes from.
    """

    name: str
    unit: str
    default: float
    bounds: tuple[float, float]
    description: str = ""
    source: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"`Parameter.name` = {self.name!r}: expected a non-empty string")
        if not isinstance(self.unit, str):
            raise TypeError(f"`{self.name}.unit` = {self.unit!r}: expected a string, e.g. '1/day'")
        try:
            low, high = self.bounds
        except (TypeError, ValueError):
            raise TypeError(
                f"`{self.name}.bounds` = {self.bounds!r}: expected a pair (low, high)"
            ) from None
        low, high = (
            _plain_real(low, f"{self.name}.bounds[0]"),
            _plain_real(high, f"{self.name}.bounds[1]"),
        )
        if math.isnan(low) or math.isnan(high) or low > high:
            raise ValueError(
                f"`{self.name}.bounds` = {self.bounds!r}: expected low <= high, not NaN"
            )
        default = _plain_real(self.default, f"{self.name}.default")
        if not (math.isfinite(default) and low <= default <= high):
            raise ValueError(
                f"`{self.name}.default` = {self.default!r} {self.unit}: expected a finite value "
                f"within its bounds [{low}, {high}]"
            )
        object.__setattr__(self, "bounds", (low, high))
        object.__setattr__(self, "default", default)


@dataclass(frozen=True)
class Transition:
    """A transition (reaction) with its change of each state when it fires once."""

    name: str
    change: tuple[tuple[str, int], ...]
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"`Transition.name` = {self.name!r}: expected a non-empty string")
        try:
            pairs = [(state, delta) for state, delta in self.change]
        except (TypeError, ValueError):
            raise TypeError(
                f"transition {self.name!r}: `change` = {self.change!r}: expected (state, "
                "change) pairs"
            ) from None
        change = []
        for state, delta in pairs:
            whole = (
                isinstance(delta, int | np.integer | float | np.floating)
                and not isinstance(delta, bool | np.bool_)
                and math.isfinite(delta)
                and float(delta) == int(delta)
            )
            if not isinstance(state, str) or not whole:
                raise ValueError(
                    f"transition {self.name!r} changes {state!r} by {delta!r}: expected a state "
                    "name and a whole number of cells (the stochastic solvers fire whole "
                    "transitions)"
                )
            change.append((state, int(delta)))
        object.__setattr__(self, "change", tuple(change))

    @classmethod
    def of(cls, name: str, description: str = "", **change: int) -> Transition:
        """Build a transition from keyword changes, e.g. ``Transition.of("division_S", S=1)``."""
        return cls(name, tuple(sorted(change.items())), description)


@dataclass(frozen=True)
class Exposure:
    """An Emax (Hill) exposure ``E = C^h / (C^h + EC50^h)`` recorded in results."""

    name: str
    drug: str
    ec50: str
    hill: str


@dataclass(frozen=True)
class Constraint:
    """A condition on several parameters, checked whenever parameters are packed.

    ``holds`` takes a mapping name -> 1-d array (one entry per parameter set) and returns a
    boolean array; ``description`` says what must hold and why.
    """

    description: str
    holds: object = field(compare=False)


@dataclass(frozen=True)
class Model:
    """A population model: the single description every solver reads.

    Parameters
    ----------
    name : str
        Model name, recorded in results.
    states : tuple of str
        State (compartment) names, in the order of the state vector.
    parameters : tuple of Parameter
        Parameters, in the order of the packed vector.
    transitions : tuple of Transition
        Transitions, in the order in which ``rates`` fills its output.
    rates : numba dispatcher
        ``rates(t, x, p, c, out)``; must be a top-level ``@numba.njit`` function so that the
        solvers specialised on it can be cached on disk.
    initial : tuple of (state, parameter) pairs
        The parameter that holds each state's initial value (cells).
    drugs : tuple of str
        Drugs whose concentrations (µM) ``rates`` reads, in this order.
    exposures : tuple of Exposure
        Hill exposures to report in results.
    constants : tuple of float
        Values appended to the packed parameter vector after the parameters (model options
        such as the crowding law), so one rate function serves every option.
    options : tuple of (name, value) pairs
        Model options, recorded in results.
    linear : bool
        True when every propensity is linear in the state (no crowding): solutions are then
        matrix exponentials per piece of constant exposure, and the stochastic process is a
        multi-type branching process.
    tolerant_states : tuple of str
        States counted in the ``tolerant_fraction`` observable.
    constraints : tuple of Constraint
        Conditions on several parameters at once (e.g. a capacity above the initial size).
    lane_rates : numba dispatcher, optional
        ``lane_rates(t, x, p, e, out)``: ``rates`` for many parameter sets at once, for the
        CPU's vectorised ODE kernel (:mod:`tolsim.kernels.ode_lanes_template`). Column
        ``lane`` of ``x`` (states x lanes), ``p`` (packed parameters x lanes) and ``e``
        (the Hill values of :attr:`exposures` x lanes) is one parameter set; ``t`` holds each
        lane's day; ``out[:, lane]`` must be what ``rates`` gives for that set, with the same
        floating-point operations (so that results do not depend on the kernel), which
        needs ``rates`` to read the drugs through the declared exposures only. Optional:
        without it the one-trajectory kernel solves every sample.
    """

    name: str
    states: tuple[str, ...]
    parameters: tuple[Parameter, ...]
    transitions: tuple[Transition, ...]
    rates: object = field(compare=False)
    initial: tuple[tuple[str, str], ...]
    drugs: tuple[str, ...] = ("tamoxifen", "inhibitor")
    exposures: tuple[Exposure, ...] = ()
    constants: tuple[float, ...] = ()
    options: tuple[tuple[str, object], ...] = ()
    linear: bool = False
    tolerant_states: tuple[str, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    lane_rates: object = field(default=None, compare=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"`name` = {self.name!r}: expected a non-empty string")
        for label in ("states", "drugs", "tolerant_states"):
            value = getattr(self, label)
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise TypeError(
                    f"`{label}` = {value!r} of model {self.name!r}: expected a tuple of "
                    "non-empty names (strings)"
                )
            object.__setattr__(self, label, tuple(value))
        for label, kind in (
            ("parameters", Parameter),
            ("transitions", Transition),
            ("exposures", Exposure),
        ):
            value = getattr(self, label)
            if not all(isinstance(v, kind) for v in value):
                raise TypeError(
                    f"`{label}` of model {self.name!r}: expected a tuple of {kind.__name__}"
                )
            object.__setattr__(self, label, tuple(value))
        if not isinstance(self.linear, bool | np.bool_):
            raise TypeError(f"`linear` = {self.linear!r} of model {self.name!r}: expected a bool")
        names = [p.name for p in self.parameters]
        for pair in self.initial:
            if isinstance(pair, str) or len(tuple(pair)) != 2:
                raise TypeError(
                    f"`initial` = {self.initial!r} of model {self.name!r}: expected pairs "
                    "(state, initial-value parameter)"
                )
        try:
            json.dumps(dict(self.options))
        except (TypeError, ValueError):
            raise TypeError(
                f"`options` = {self.options!r} of model {self.name!r}: expected pairs (name, "
                "value) of plain JSON values (str, int, float, bool), as results record them"
            ) from None
        if not self.states or not self.transitions:
            raise ValueError(
                f"model {self.name!r} has {len(self.states)} states and "
                f"{len(self.transitions)} transitions: expected at least one of each"
            )
        for label, values in (
            ("states", self.states),
            ("parameters", names),
            ("transitions", [tr.name for tr in self.transitions]),
            ("drugs", self.drugs),
            ("exposures", [exp.name for exp in self.exposures]),
            ("tolerant_states", self.tolerant_states),
            ("initial", [state for state, _ in self.initial]),
        ):
            repeated = sorted({v for v in values if list(values).count(v) > 1})
            if repeated:
                raise ValueError(
                    f"`{label}` of model {self.name!r} names {repeated} more than once"
                )
        self._check_result_names()
        for tr in self.transitions:
            for state, _ in tr.change:
                if state not in self.states:
                    raise ValueError(
                        f"transition {tr.name!r} changes unknown state {state!r}; "
                        f"states are {list(self.states)}"
                    )
        for state, param in self.initial:
            if state not in self.states or param not in names:
                raise ValueError(
                    f"`initial` pair ({state!r}, {param!r}) must name a state and a parameter"
                )
        if {s for s, _ in self.initial} != set(self.states):
            raise ValueError("`initial` must give an initial-value parameter for every state")
        by_name = {p.name: p for p in self.parameters}
        for state, param in self.initial:
            if by_name[param].bounds[0] < 0.0:
                raise ValueError(
                    f"initial-value parameter {param!r} of state {state!r} (model "
                    f"{self.name!r}) has bounds {by_name[param].bounds}: expected a lower bound "
                    ">= 0 (cells cannot be negative)"
                )
        for exp in self.exposures:
            if exp.ec50 in by_name and not by_name[exp.ec50].bounds[0] > 0.0:
                raise ValueError(
                    f"EC50 parameter {exp.ec50!r} of exposure {exp.name!r} (model "
                    f"{self.name!r}) has bounds {by_name[exp.ec50].bounds}: expected a lower "
                    "bound > 0 (an EC50 <= 0 puts the exposure outside [0, 1])"
                )
        for exp in self.exposures:
            if exp.drug not in self.drugs or exp.ec50 not in names or exp.hill not in names:
                raise ValueError(f"exposure {exp.name!r} names an unknown drug or parameter")
        for state in self.tolerant_states:
            if state not in self.states:
                raise ValueError(f"`tolerant_states` names unknown state {state!r}")
        _check_kernel_function(self.rates, "rates", "(t, x, p, c, out)")
        if self.lane_rates is not None:
            _check_kernel_function(self.lane_rates, "lane_rates", "(t, x, p, e, out)")
        constants = []
        for value in self.constants:
            if isinstance(value, bool | np.bool_ | str | bytes) or not isinstance(value, Real):
                raise TypeError(
                    f"`constants` = {self.constants!r} of model {self.name!r}: expected real "
                    "numbers"
                )
            if not math.isfinite(value):
                raise ValueError(
                    f"`constants` = {self.constants!r} of model {self.name!r}: expected finite "
                    "numbers"
                )
            constants.append(float(value))
        object.__setattr__(self, "constants", tuple(constants))
        self._check_rate_sizes()
        if self.lane_rates is not None:
            self._check_lane_rates()
        if self.linear:
            self._check_linear()

    def _drawn_parameters(self, rng, n: int) -> list[np.ndarray]:
        """Packed parameter vectors for the construction checks: the defaults, then ``n``
        drawn uniformly within the bounds (clipped to +-1e6), constants as they are (no
        constraint is checked: a draw may break one)."""
        defaults = self.pack({})
        drawn = [defaults]
        for _ in range(n):
            p = defaults.copy()
            for i, q in enumerate(self.parameters):
                low, high = (max(b, -1e6) if b < 0 else min(b, 1e6) for b in q.bounds)
                p[i] = rng.uniform(low, high) if low < high else q.default
            drawn.append(p)
        return drawn

    def _check_lane_rates(self) -> None:
        """``lane_rates`` must give what ``rates`` gives, lane by lane (the CPU's ODE methods
        use one or the other by method and table size: a difference made the answer depend
        on the method, 626 cells against 38.5 in review). Checked on three lanes (the
        defaults, and two parameter sets drawn within the bounds) of other states, days and
        drug levels (0, 1 and 5 µM), by the Python sources of both; not checked where either
        cannot run as Python."""
        from tolsim.kernels.exposure import hill

        rates = getattr(self.rates, "py_func", self.rates)
        lane_rates = getattr(self.lane_rates, "py_func", self.lane_rates)
        hill = getattr(hill, "py_func", hill)
        n_tr, lanes = len(self.transitions), 3
        names = self.parameter_names
        rng = np.random.default_rng(1)
        x = rng.uniform(10.0, 1e3, (len(self.states), lanes))
        p = np.column_stack(self._drawn_parameters(rng, lanes - 1))  # defaults, then drawn
        t = np.array([0.0, 3.5, 40.0])
        levels = np.array([0.0, 1.0, 5.0])
        e = np.array(
            [
                [hill(levels[lane], p[names.index(ex.ec50), lane], p[names.index(ex.hill), lane])
                 for lane in range(lanes)]
                for ex in self.exposures
            ]
        ).reshape(len(self.exposures), lanes)  # fmt: skip
        by_lane = np.empty((n_tr, lanes))
        alone = np.empty((n_tr, lanes))
        try:
            with np.errstate(all="ignore"):
                lane_rates(t, x, p, e, by_lane)
                for lane in range(lanes):
                    c = np.full(len(self.drugs), levels[lane])
                    rates(t[lane], x[:, lane].copy(), p[:, lane].copy(), c, alone[:, lane])
        except Exception:  # noqa: BLE001 - not callable as Python: not checked here
            return
        differ = ~np.isclose(by_lane, alone, rtol=1e-12, atol=0.0, equal_nan=True)
        if differ.any():
            j, lane = (int(i[0]) for i in np.nonzero(differ))
            raise ValueError(
                f"`lane_rates` of model {self.name!r} gives {float(by_lane[j, lane])!r} for "
                f"the propensity of transition {self.transitions[j].name!r} where `rates` "
                f"gives {float(alone[j, lane])!r} (parameters "
                f"{dict(zip(names, p[: len(names), lane].tolist(), strict=True))}, "
                f"{levels[lane]:g} µM of each drug, day {t[lane]:g}): it must give what "
                "`rates` gives, reading the drugs through the declared exposures only"
            )

    def day_dependent_transition(self) -> str | None:
        """The first transition whose propensity depends on the day ``t`` itself (not only
        through the concentrations), at the defaults, 100 cells of each state and 1 µM of
        each drug (days 0, 17.25 and 365.5); None if none does, or if the rate function
        cannot run as Python. The exact solver, the branching process and the stochastic
        methods take propensities as constant between the schedule's breakpoints."""
        rates = getattr(self.rates, "py_func", self.rates)
        x = np.full(len(self.states), 100.0)
        p, c = self.pack({}), np.ones(len(self.drugs))
        first, later = np.empty(len(self.transitions)), np.empty(len(self.transitions))
        try:
            rates(0.0, x, p, c, first)
            for day in (17.25, 365.5):
                rates(day, x, p, c, later)
                changed = np.flatnonzero(np.abs(later - first) > 1e-12 * (np.abs(first) + 1e-300))
                if changed.size:
                    return self.transitions[changed[0]].name
        except Exception:  # noqa: BLE001 - not callable as Python: the kernels will tell
            return None
        return None

    def _check_rate_sizes(self) -> None:
        """Run the rate function's Python source once, at the defaults, on arrays of exactly
        the model's sizes followed by NaN guard cells: the kernels do not check bounds, so a
        rate function that reads or writes beyond them (a transition too many or too few, a
        drug or constant the model does not declare) would give garbage with status 0. An
        index past an array raises in Python; one inside a jitted helper reads a NaN guard
        (a NaN propensity) or writes one. One that cannot run as Python is not checked."""
        rates = getattr(self.rates, "py_func", self.rates)
        guard = 8
        n_tr = len(self.transitions)

        def guarded(values):
            buffer = np.full(len(values) + guard, np.nan)
            buffer[: len(values)] = values
            return buffer, buffer[: len(values)]

        sizes = (
            f"x: {len(self.states)} states, p: {len(self.parameters) + len(self.constants)} "
            f"parameters and constants, c: {len(self.drugs)} drugs, out: {n_tr} transitions"
        )
        _, x = guarded(np.full(len(self.states), 100.0))
        _, p = guarded(np.concatenate([[q.default for q in self.parameters], self.constants]))
        _, c = guarded(np.ones(len(self.drugs)))
        out_buffer, out = guarded(np.full(n_tr, np.nan))
        where = f"the rate function {_function_name(self.rates)!r} of model {self.name!r}"
        try:
            with np.errstate(all="ignore"):
                rates(0.0, x, p, c, out)
        except IndexError as error:
            raise ValueError(
                f"{where} indexes beyond its arrays ({error}); expected {sizes}"
            ) from None
        except Exception:  # noqa: BLE001 - not callable as Python: not checked here
            return
        if not np.all(np.isnan(out_buffer[n_tr:])):
            raise ValueError(f"{where} writes beyond `out`; expected {sizes}")
        unset = [self.transitions[j].name for j in np.flatnonzero(np.isnan(out))]
        if unset:
            raise ValueError(
                f"{where} leaves the propensity of transition(s) {unset} unset or NaN at the "
                f"defaults (1 µM of each drug, 100 cells of each state): it must fill every "
                f"entry of `out` with a number, and read only {sizes}"
            )

    def _check_result_names(self) -> None:
        """States, exposures and parameters (a sweep's design columns) become variables of
        the results: their names must differ from one another and from those of the results'
        other variables and coordinates."""
        taken = set(RESULT_NAMES) | {f"{drug}_um" for drug in self.drugs}
        taken |= {f"extinction_day_{state}" for state in self.states}
        groups = (
            ("states", self.states),
            ("exposures", [exp.name for exp in self.exposures]),
            ("parameters", [p.name for p in self.parameters]),
        )
        for label, values in groups:
            clash = sorted(set(values) & taken)
            if clash:
                raise ValueError(
                    f"`{label}` of model {self.name!r} names {clash}, which results use for "
                    f"other variables or coordinates; rename {'it' if len(clash) == 1 else 'them'}"
                )
        for i, (label, values) in enumerate(groups):
            for other, others in groups[i + 1 :]:
                clash = sorted(set(values) & set(others))
                if clash:
                    raise ValueError(
                        f"model {self.name!r} has {label} and {other} both named {clash}: "
                        "results hold each as a variable of its own"
                    )

    def _check_linear(self) -> None:
        """``linear=True`` is trusted by the exact solver and the branching process: check it.

        At the default parameters and at three parameter sets drawn within the bounds (a
        propensity can be linear at the default of a parameter, such as a crowding
        coefficient of 0, only), with each drug absent or at 1 µM, the propensities of two
        random states must add (``r(x + y) = r(x) + r(y)``) and scale (``r(2x) = 2 r(x)``) to
        1e-9 relative, and not depend on the day ``t`` itself. Runs the rate function's
        Python source (no compile); one that cannot run as Python is not checked.
        """
        changing = self.day_dependent_transition()
        if changing is not None:
            raise ValueError(
                f"`linear` = True, but the propensity of transition {changing!r} of model "
                f"{self.name!r} depends on the day `t` itself (rates at day 0 and later days "
                "differ at the same state and drug levels): the exact solver and the branching "
                "process take rates as constant between the schedule's breakpoints; set "
                "linear=False"
            )
        rates = getattr(self.rates, "py_func", self.rates)
        rng = np.random.default_rng(0)
        drawn = self._drawn_parameters(rng, 3)
        n_states, n_transitions = len(self.states), len(self.transitions)
        out = [np.empty(n_transitions) for _ in range(4)]
        for p, level in ((p, level) for p in drawn for level in (0.0, 1.0)):
            c = np.full(len(self.drugs), level)
            x = rng.uniform(1.0, 1e3, n_states)
            y = rng.uniform(1.0, 1e3, n_states)
            try:
                for state, buffer in zip((x, y, x + y, 2.0 * x), out, strict=True):
                    rates(0.0, state, p, c, buffer)
            except Exception:  # noqa: BLE001 - not callable as Python: the kernels will tell
                return
            r_x, r_y, r_sum, r_twice = out
            scale = np.abs(r_sum) + np.abs(r_twice) + 1e-300
            bad = np.flatnonzero(
                (np.abs(r_sum - r_x - r_y) > 1e-9 * scale)
                | (np.abs(r_twice - 2.0 * r_x) > 1e-9 * scale)
            )
            if bad.size:
                raise ValueError(
                    f"`linear` = True, but the propensity of transition "
                    f"{self.transitions[bad[0]].name!r} of model {self.name!r} is not linear in "
                    f"the state (at {level:g} µM of each drug and parameters "
                    f"{dict(zip(self.parameter_names, p.tolist(), strict=False))}, rates(x + y) "
                    "!= rates(x) + rates(y) or rates(2 x) != 2 rates(x)): the exact solver and "
                    "the branching process would give wrong answers; set linear=False"
                )

    # -- derived arrays ----------------------------------------------------------------
    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def stoichiometry(self) -> np.ndarray:
        """Integer matrix (transitions x states)."""
        matrix = np.zeros((len(self.transitions), len(self.states)), dtype=np.int64)
        for j, tr in enumerate(self.transitions):
            for state, delta in tr.change:
                matrix[j, self.states.index(state)] += delta
        return matrix

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def default_params(self, **overrides: float) -> dict[str, float]:
        """Default parameters as a dict of floats, with keyword overrides (validated as
        :meth:`pack` does: a bool, complex number or string is a ``TypeError``)."""
        params = {p.name: p.default for p in self.parameters}
        self._check_names(overrides, "params")
        params.update(overrides)
        vector = self.pack(params)
        return {name: float(vector[i]) for i, name in enumerate(self.parameter_names)}

    # -- packing and validation ------------------------------------------------------
    def _check_names(self, params: Mapping, argument: str) -> None:
        unknown = [k for k in params if k not in self.parameter_names]
        if unknown:
            raise ValueError(
                f"`{argument}` has unknown parameter name(s) {unknown} for model "
                f"{self.name!r}; valid names are {list(self.parameter_names)}"
            )

    def pack(self, params: Mapping[str, float], argument: str = "params") -> np.ndarray:
        """Validate one parameter mapping and return the packed float64 vector.

        Missing names take their defaults; unknown names, NaN and values outside a
        parameter's bounds raise ``ValueError`` naming the parameter, the value and the
        admissible range. Values must be real numbers (int or float, Python or NumPy): a
        bool, complex number or string raises ``TypeError``, as a table column of such
        values does in :meth:`pack_table`.
        """
        self._check_names(params, argument)
        vector = np.empty(len(self.parameters) + len(self.constants))
        for i, p in enumerate(self.parameters):
            value = _real_number(params.get(p.name, p.default), f"{argument}.{p.name}", p)
            _check_value(f"{argument}.{p.name}", value, p)
            vector[i] = value
        vector[len(self.parameters) :] = self.constants
        self._check_constraints(vector[None, :], argument, table=False)
        return vector

    def pack_table(self, table: Mapping[str, np.ndarray], argument: str = "params") -> np.ndarray:
        """Validate a table of parameter sets; return a ``(n_samples, n_packed)`` array."""
        return self.pack_columns(table, argument).packed()

    def pack_columns(self, table: Mapping[str, np.ndarray], argument: str = "params") -> Columns:
        """Validate a table of parameter sets as :meth:`pack_table` does, but keep it as its
        given columns (:class:`Columns`): no ``(n_samples, n_packed)`` matrix is built, for
        callers that send only the columns that vary (the GPU backend)."""
        self._check_names(table, argument)
        lengths = {k: np.shape(v) for k, v in table.items()}
        sizes = {s[0] for s in lengths.values() if len(s) == 1}
        if any(len(s) > 1 for s in lengths.values()) or len(sizes) > 1:
            raise ValueError(
                f"`{argument}` columns must be 1-d arrays of equal length; got shapes {lengths}"
            )
        if not sizes:
            given = "no columns" if not table else f"only single values (shapes {lengths})"
            raise ValueError(
                f"`{argument}` is a table with {given}: expected at least one 1-d column "
                "(one entry per parameter set); give one parameter set as a mapping of values"
            )
        (n,) = sizes
        if n == 0:
            raise ValueError(f"`{argument}` is an empty table: expected at least one row")
        from tolsim.kernels.columns import first_outside

        base = np.empty(len(self.parameters) + len(self.constants))
        for i, p in enumerate(self.parameters):
            base[i] = p.default  # a default lies within its bounds (checked once)
        base[len(self.parameters) :] = np.asarray(self.constants, dtype=np.float64)
        index, given = [], []
        for i, p in enumerate(self.parameters):
            if p.name not in table:
                continue
            column = np.asarray(table[p.name])
            if column.dtype.kind not in _REAL_KINDS:  # not bool, complex, str or object
                raise TypeError(
                    f"`{argument}.{p.name}` has dtype {column.dtype}: expected real numbers "
                    f"({p.unit})"
                )
            column = np.ascontiguousarray(column, dtype=np.float64)  # no copy if it is one
            bad = first_outside(column, float(p.bounds[0]), float(p.bounds[1]))
            if bad >= 0:
                label, value = f"{argument}.{p.name}[{bad}]", float(column[bad])
                if math.isinf(value):
                    raise ValueError(f"`{label}` = {value!r} {p.unit}: expected a finite number")
                _check_value(label, value, p)
            index.append(i)
            given.append(column)
        if self.constraints:
            named = {name: base[i] for i, name in enumerate(self.parameter_names)}
            named.update({self.parameter_names[i]: c for i, c in zip(index, given, strict=True)})
            self._check_named_constraints(named, n, argument, table=True)
        return Columns(base, np.array(index, dtype=np.int64), tuple(given), n)

    def _check_constraints(self, matrix: np.ndarray, argument: str, table: bool) -> None:
        if not self.constraints:
            return
        columns = {name: matrix[:, i] for i, name in enumerate(self.parameter_names)}
        self._check_named_constraints(columns, matrix.shape[0], argument, table)

    def _check_named_constraints(self, columns: Mapping, n: int, argument: str, table: bool):
        """``columns``: parameter name -> array of ``n`` rows or one value for every row."""
        for constraint in self.constraints:
            holds = np.broadcast_to(np.asarray(constraint.holds(columns), dtype=bool), (n,))
            bad = np.flatnonzero(~holds)
            if bad.size:
                row = f" (row {bad[0]})" if table else ""
                raise ValueError(f"`{argument}`{row} violates {constraint.description}")

    def initial_state(self, packed: np.ndarray) -> np.ndarray:
        """Initial states (cells) from packed parameters, shape ``(..., n_states)``."""
        names = self.parameter_names
        index = [names.index(dict(self.initial)[s]) for s in self.states]
        return np.ascontiguousarray(packed[..., index])

    def exposure_values(self, conc_um: np.ndarray, packed: np.ndarray) -> dict[str, np.ndarray]:
        """Hill exposures for concentrations ``(n_times, n_drugs)`` and packed params.

        ``packed`` is ``(n_packed,)`` or ``(n_samples, n_packed)``; results broadcast to
        ``(n_times,)`` or ``(n_samples, n_times)``.
        """
        names = self.parameter_names
        table = np.atleast_2d(packed)
        out = {}
        for exp in self.exposures:
            c = conc_um[:, self.drugs.index(exp.drug)]
            ec50 = table[:, names.index(exp.ec50)]
            hill = table[:, names.index(exp.hill)]
            shared = bool(np.all(ec50 == ec50[0]) and np.all(hill == hill[0]))
            if shared:  # the usual case: evaluate once, broadcast as a read-only view
                ec50, hill = ec50[:1], hill[:1]
            with np.errstate(divide="ignore", over="ignore"):  # ratio -> inf gives E = 0
                ratio = np.where(
                    c > 0, (ec50[:, None] / np.where(c > 0, c, 1.0)) ** hill[:, None], np.inf
                )
            values = 1.0 / (1.0 + ratio)
            if packed.ndim == 1:
                out[exp.name] = values[0]
            elif shared:
                out[exp.name] = np.broadcast_to(values[0], (table.shape[0], c.shape[0]))
            else:
                out[exp.name] = values
        return out

    def parameter_table(self):
        """The parameters as a :class:`pandas.DataFrame`, one row each in packed order (index
        ``parameter``): ``default``, ``unit``, ``low`` and ``high`` (the bounds),
        ``description`` and ``source``.

        >>> import tolsim
        >>> table = tolsim.models.TwoState().parameter_table()
        >>> table.loc["K", "unit"], float(table.loc["K", "default"])
        ('cells', 10000000.0)
        """
        import pandas as pd

        rows = [
            (p.name, p.default, p.unit, p.bounds[0], p.bounds[1], p.description, p.source)
            for p in self.parameters
        ]
        columns = ["parameter", "default", "unit", "low", "high", "description", "source"]
        return pd.DataFrame(rows, columns=columns).set_index("parameter")

    def __repr__(self) -> str:
        """A summary, a line per part (``parameter_table()`` has every parameter in full)."""
        import textwrap

        def line(label: str, items: list[str]) -> str:  # lines break between items only
            text = ", ".join(item.replace(" ", "\0") for item in items) or "(none)"
            return textwrap.fill(
                text,
                width=99,
                initial_indent=f"  {label:<12} ",
                subsequent_indent=" " * 15,
                break_on_hyphens=False,
            ).replace("\0", " ")

        def change(t: Transition) -> str:
            return ", ".join(f"{state}{delta:+d}" for state, delta in t.change)

        def value(p: Parameter) -> str:
            return f"{p.name}={p.default:g}" + ("" if p.unit == "1" else f" {p.unit}")

        options = ", ".join(f"{k}={v!r}" for k, v in self.options)
        hills = {e.drug: e.name for e in self.exposures}
        rates = f"{self.rates.py_func.__module__}.{self.rates.py_func.__qualname__}"
        return "\n".join(
            [
                f"<tolsim Model {self.name!r}{f' ({options})' if options else ''}: "
                f"{len(self.states)} states, {len(self.parameters)} parameters, "
                f"{len(self.transitions)} transitions{', linear' if self.linear else ''}>",
                line("states", list(self.states)),
                line("tolerant", list(self.tolerant_states)),
                line(
                    "drugs",
                    [f"{d} (µM{f' → {hills[d]}' if d in hills else ''})" for d in self.drugs],
                ),
                line("transitions", [f"{t.name} ({change(t)})" for t in self.transitions]),
                line("parameters", [value(p) for p in self.parameters]),
                line(
                    "rates", [rates + (" and lane_rates" if self.lane_rates is not None else "")]
                ),
            ]
        )

    def describe(self) -> dict:
        """A JSON-able description recorded in result attrs."""
        return {
            "name": self.name,
            "states": list(self.states),
            "transitions": [t.name for t in self.transitions],
            "options": {k: v for k, v in self.options},
            "rates": f"{self.rates.py_func.__module__}.{self.rates.py_func.__qualname__}",
            "linear": self.linear,
        }


def _function_name(function) -> str:
    function = getattr(function, "py_func", function)
    return getattr(function, "__qualname__", repr(function))


def _check_kernel_function(function, name: str, signature: str) -> None:
    """``function`` must be a top-level ``numba.njit`` function taking ``signature``, so that
    the kernels specialised on it can be cached on disk."""
    py_func = getattr(function, "py_func", None)
    if py_func is None or not hasattr(function, "targetoptions"):
        raise TypeError(f"`{name}` = {function!r}: expected a function decorated with @numba.njit")
    if "<locals>" in py_func.__qualname__:
        raise ValueError(
            f"`{name}` = {py_func.__qualname__}: the function must be defined at module top "
            "level (not inside another function) so its solvers can be cached"
        )
    if len(inspect.signature(py_func).parameters) != 5:
        raise TypeError(f"`{name}` must take exactly {signature}")


# dtype kinds of real numbers: signed and unsigned integers, floats (not bool, complex, str)
_REAL_KINDS = "iuf"

# Names the results of simulate, simulate_arms, the stochastic methods and sweeps use for
# variables and coordinates (besides each state, each exposure and "<drug>_um"): a model's
# states and exposures may not take them (tests/test_models.py checks the list is complete).
RESULT_NAMES = (
    "time",
    "sample",
    "path",
    "parameter",
    "parameters",
    "arm",
    "schedule",
    "withdrawal_day",
    "recorded_sha256",
    "N",
    "tolerant_fraction",
    "dN_dt",
    "status",
    "message",
    "n_steps",
    "n_rejected_steps",
    "n_rhs_evaluations",
    "switched_to_stiff",
    "n_events",
    "extinction_day",
    "time_to_recurrence",
    "burden_at_withdrawal",
    "tolerant_fraction_at_withdrawal",
    "nadir_cells",
    "nadir_day",
    "extinction_probability",
    "tolerant_extinction_probability",
    "recurrence_probability",
    "chunk_done",
)


def _plain_real(value, label: str) -> float:
    """``float(value)`` for a real number (not a bool or a string), else ``TypeError``."""
    if isinstance(value, bool | np.bool_ | str | bytes) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise TypeError(f"`{label}` = {value!r}: expected a real number")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"`{label}` = {value!r}: too large for a float") from None


def _real_number(value, label: str, p: Parameter) -> float:
    """``float(value)`` for a real number; ``TypeError`` naming ``label`` for a bool, a
    complex number, a string or anything else ``float`` cannot take."""
    dtype = getattr(value, "dtype", None)  # numpy scalars, 0-d arrays and DataArrays
    refused = isinstance(value, bool | str | bytes | complex) or (
        isinstance(dtype, np.dtype) and dtype.kind not in _REAL_KINDS
    )
    if not refused:
        try:
            return float(value)
        except OverflowError:
            raise ValueError(
                f"`{label}` = {value!r}: too large for a float; expected a number in "
                f"[{p.bounds[0]}, {p.bounds[1]}] ({p.unit})"
            ) from None
        except (TypeError, ValueError):
            pass
    raise TypeError(f"`{label}` = {value!r}: expected a real number ({p.unit})")


def _check_value(label: str, value: float, p: Parameter) -> None:
    if math.isnan(value):
        raise ValueError(f"`{label}` is NaN: expected a number in [{p.bounds[0]}, {p.bounds[1]}]")
    if math.isinf(value):
        raise ValueError(f"`{label}` = {value!r} {p.unit}: expected a finite number")
    low, high = p.bounds
    if value < low or value > high:
        what = "rates" if p.unit.startswith("1/day") else "values"
        kind = (
            f"{what} must be >= {low}"
            if value < low and low == 0
            else f"expected a value within [{low}, {high}]"
        )
        raise ValueError(f"`{label}` = {value!r} {p.unit}: {kind}")


@dataclass(frozen=True)
class Columns:
    """A validated table of parameter sets kept as its given columns (from
    :meth:`Model.pack_columns`): row ``r`` packs to ``base`` with ``base[index[k]]`` replaced
    by ``columns[k][r]``."""

    base: np.ndarray  # (n_packed,) float64: defaults and constants
    index: np.ndarray  # (k,) int64: the packed column of each given column
    columns: tuple[np.ndarray, ...]  # k contiguous float64 arrays of n_samples (not copied)
    n: int  # samples

    def __len__(self) -> int:
        return self.n

    @property
    def values(self) -> np.ndarray:
        """The given columns side by side, ``(n_samples, k)`` (built at each call)."""
        out = np.empty((self.n, len(self.columns)))
        for k, column in enumerate(self.columns):
            out[:, k] = column
        return out

    def rows(self, rows) -> np.ndarray:
        """The packed rows ``rows`` (an index array or slice), ``(len(rows), n_packed)``."""
        count = np.arange(self.n)[rows].size
        out = np.repeat(self.base[None, :], count, axis=0)
        for i, column in zip(self.index, self.columns, strict=True):
            out[:, i] = column[rows]
        return out

    def packed(self) -> np.ndarray:
        """Every row packed, ``(n_samples, n_packed)`` (C-contiguous)."""
        # filled as the rows of its transpose (contiguous writes; writing the columns of a
        # row-major matrix strides through all of it once per column, ~3x slower for a
        # million rows), then transposed in one pass
        n = len(self)
        transposed = np.empty((self.base.size, n))
        transposed[:] = self.base[:, None]
        for i, column in zip(self.index, self.columns, strict=True):
            transposed[i] = column
        return np.ascontiguousarray(transposed.T)
