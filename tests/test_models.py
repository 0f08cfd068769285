"""What models and schedules show of themselves: summaries and the parameter table."""

import dataclasses
import math
import re

import numpy as np
import pytest
from user_models import GrowthSwitch

import tolsim


@pytest.mark.parametrize(
    "model",
    [tolsim.models.TwoState(), tolsim.models.ThreeState(crowding="none"), GrowthSwitch()],
    ids=["two-state", "three-state linear", "user model"],
)
def test_parameter_table_is_the_parameters_in_packed_order(model):
    table = model.parameter_table()
    assert list(table.index) == list(model.parameter_names)
    defaults = model.default_params()
    np.testing.assert_array_equal(table["default"], [defaults[n] for n in table.index])
    for p in model.parameters:
        row = table.loc[p.name]
        assert (row["unit"], row["low"], row["high"]) == (p.unit, *p.bounds)
        assert (row["description"], row["source"]) == (p.description, p.source)


@pytest.mark.parametrize(
    "model",
    [tolsim.models.TwoState(), tolsim.models.ThreeState(crowding="none"), GrowthSwitch()],
    ids=["two-state", "three-state linear", "user model"],
)
def test_summary_names_every_part_in_lines_of_at_most_99_characters(model):
    text = repr(model)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 99
    assert lines[0] == (
        f"<tolsim Model {model.name!r} ({', '.join(f'{k}={v!r}' for k, v in model.options)}): "
        f"{len(model.states)} states, {len(model.parameters)} parameters, "
        f"{len(model.transitions)} transitions{', linear' if model.linear else ''}>"
    )
    flat = " ".join(line.strip() for line in lines)  # wrapped items rejoined
    for p in model.parameters:
        assert f"{p.name}={p.default:g}" in flat
    for t in model.transitions:
        assert f"{t.name} (" in flat
    states = next(line for line in lines if line.startswith("  states "))
    assert states.split(None, 1)[1] == ", ".join(model.states)
    hills = [e.name for e in model.exposures]
    assert all(f"→ {name})" in flat for name in hills)
    assert model.rates.py_func.__qualname__ in lines[-1]
    assert ("and lane_rates" in lines[-1]) == (model.lane_rates is not None)


def test_summary_says_none_for_what_a_model_lacks():
    from user_models import AgeingGrowth  # (GrowthSwitch's rates read a drug: it needs one)

    bare = AgeingGrowth()
    assert bare.drugs == () and bare.tolerant_states == () and bare.options == ()
    lines = repr(bare).splitlines()
    assert lines[0].startswith("<tolsim Model 'AgeingGrowth': 1 state")
    assert "  drugs        (none)" in lines and "  tolerant     (none)" in lines


def test_schedule_summary_counts_its_parts_and_says_what_is_given_when():
    pk = tolsim.PK.tamoxifen_mouse()
    oral = tolsim.Schedule.oral(
        "tamoxifen", dose_mg=0.5, every_days=1.0, stop_day=60.0, duration_days=120.0, pk=pk
    )
    course = tolsim.Schedule.from_phases(
        [{"start_day": 30, "stop_day": 60, "inhibitor": 5.0}], duration_days=120.0
    )
    lines = repr(oral | course).splitlines()
    assert lines == [
        "<tolsim Schedule over 120 days: 1 phase, 1 oral regimen, 0 pellets>",
        "  days 30-60: inhibitor 5 µM",
        "  tamoxifen orally 0.5 mg every 1 days, days 0-60 (60 doses; mouse, half-life 0.25 days)",
    ]
    washout = tolsim.Schedule.from_phases([{"days": 60, "tamoxifen": 1.0}, {"days": 30}])
    assert str(washout).splitlines()[0] == (
        "<tolsim Schedule over 90 days: 2 phases, 0 oral regimens, 0 pellets>"
    )
    assert str(washout).splitlines()[1:] == [
        "  days 0-60: tamoxifen 1 µM",
        "  days 60-90: no drug",
    ]


def test_pk_shows_its_constants_in_one_line():
    pk = tolsim.PK.from_half_life(
        7.0, ka_per_day=24.0, volume_l=1700.0, molar_mass_g_per_mol=371.5, species="human"
    )
    assert repr(pk) == (
        "<tolsim PK (human): ka 24/day, ke 0.09902/day (half-life 7 days), V 1700 L, "
        "M 371.5 g/mol, F 1>"
    )
    assert "\n" not in repr(tolsim.PK.tamoxifen_mouse())  # its long note is left out


@pytest.mark.parametrize(
    "value", [True, np.bool_(False), "0.1", b"0.1", 0.1 + 0j, np.complex128(0.1), None],
    ids=["bool", "numpy bool", "str", "bytes", "complex", "numpy complex", "None"],
)  # fmt: skip
def test_single_parameter_values_must_be_real_numbers(value):
    model = tolsim.models.TwoState()
    message = re.escape(f"`params.lambda_S` = {value!r}: expected a real number (1/day)")
    with pytest.raises(TypeError, match=message):
        model.pack({"lambda_S": value})
    with pytest.raises(TypeError, match=message):
        model.default_params(lambda_S=value)


@pytest.mark.parametrize(
    "column",
    [np.array([0.1, 0.2 + 1j]), np.array([True, False]), np.array(["0.1", "0.2"])],
    ids=["complex", "bool", "str"],
)
def test_parameter_columns_must_be_real_numbers(column):
    model = tolsim.models.TwoState()
    # a complex column was accepted with only a ComplexWarning (its imaginary part dropped)
    with pytest.raises(TypeError, match=rf"`params.lambda_S` has dtype {column.dtype}: expected"):
        model.pack_table({"lambda_S": column})


def test_default_params_are_floats_and_integers_and_numpy_numbers_are_accepted():
    model = tolsim.models.TwoState()
    params = model.default_params(K=10**7, S0=np.int64(1000), T0=np.float32(5.0))
    assert all(type(value) is float for value in params.values())
    assert (params["K"], params["S0"], params["T0"]) == (1e7, 1000.0, 5.0)
    np.testing.assert_array_equal(model.pack(params), model.pack({"K": 1e7, "S0": 1e3, "T0": 5}))


def test_a_table_without_columns_is_named():
    model = tolsim.models.TwoState()
    with pytest.raises(ValueError, match="`params` is a table with no columns: expected"):
        model.pack_table({})
    with pytest.raises(ValueError, match=r"`design` is a table with only single values \(sh"):
        model.pack_columns({"K": 1e7}, "design")


def test_linear_true_is_checked_against_the_rate_function():
    """A logistic model declared linear would be solved by matrix exponentials and branching
    processes that assume what its rates break: refused at construction."""
    import dataclasses

    from user_models import GrowthSwitch

    linear = GrowthSwitch(logistic=False)
    assert linear.linear
    crowded = GrowthSwitch(logistic=True)
    with pytest.raises(ValueError, match="transition 'division_A' of model 'GrowthSwitch' is not"):
        dataclasses.replace(crowded, linear=True)
    assert tolsim.models.TwoState(crowding="none").linear  # the built-in linear models pass
    with pytest.raises(ValueError, match="not linear in the state"):
        dataclasses.replace(tolsim.models.TwoState(crowding="gompertz"), linear=True)


def test_linear_true_refuses_rates_that_depend_on_the_day():
    """The exact solver would freeze the day-0 rates: A(20) = 10 instead of 10 e^(2 - 1)."""
    from user_models import AgeingGrowth

    with pytest.raises(ValueError, match=r"'division_A' of model 'AgeingGrowth' depends on the"):
        AgeingGrowth(linear=True)
    model = AgeingGrowth()
    ds = tolsim.simulate(model, {}, tolsim.Schedule(20.0), [0.0, 20.0], rtol=1e-10, atol=1e-10)
    assert float(ds.A[-1]) == pytest.approx(10.0 * np.exp(0.01 * 200 - 0.05 * 20), rel=1e-8)


@pytest.mark.parametrize("method", ["ssa", "tau", "hybrid"])
def test_stochastic_methods_refuse_rates_that_depend_on_the_day(method):
    """They take propensities as constant between breakpoints: SSA ran AgeingGrowth with
    status 0 and a mean 11 standard errors off the exact one."""
    from user_models import AgeingGrowth

    model = AgeingGrowth()
    assert model.day_dependent_transition() == "division_A"
    assert GrowthSwitch().day_dependent_transition() is None
    with pytest.raises(ValueError, match=r"`method` = '\w+': the propensity of transition "):
        tolsim.simulate(
            model, {}, tolsim.Schedule(20.0), [0.0, 20.0], method=method, paths=2, seed=1
        )
    with pytest.raises(ValueError, match=r"'division_A' of model 'AgeingGrowth' depends on"):
        tolsim.sweep(
            model, {"a": [0.01]}, tolsim.Schedule(20.0), store=None, method=method, seed=1
        )


def test_lane_rates_must_give_what_rates_gives():
    """dopri5 (lanes) gave A(10) = 626 where rosenbrock (rates) gave 38.5: the answer
    depended on the method. kill_A defaults to 0, so only drawn parameters show it."""
    from user_models import growth_switch_lane_rates_without_the_drug

    with pytest.raises(
        ValueError, match=r"`lane_rates` of model 'GrowthSwitch' gives .* transition 'death_A'"
    ):
        dataclasses.replace(GrowthSwitch(), lane_rates=growth_switch_lane_rates_without_the_drug)
    for crowding in ("none", "logistic", "gompertz"):  # the built-in models pass
        assert tolsim.models.ThreeState(crowding).lane_rates is not None


def test_linear_true_is_checked_beyond_the_default_parameters():
    """Death (d + q A) A is linear at the default q = 0 only: with q = 1e-3 the exact solver
    gave A(60) = 1.5e7 where the logistic answer is 200."""
    from user_models import CrowdedDeath

    with pytest.raises(ValueError, match=r"'death' of model 'CrowdedDeath' is not linear .*'q'"):
        CrowdedDeath()


def _growth_switch(logistic=False, **change):
    return dataclasses.replace(GrowthSwitch(logistic), **change)


def _two_state(**change):
    return dataclasses.replace(tolsim.models.TwoState(), **change)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        # a transition the rates never fill: its propensity was whatever memory held
        (
            lambda: _growth_switch(
                linear=False,
                transitions=GrowthSwitch().transitions + (tolsim.models.Transition.of("x", B=1),),
            ),
            r"leaves the propensity of transition\(s\) \['x'\] unset or NaN",
        ),
        # one transition too few: the rates wrote past `out`
        (
            lambda: _growth_switch(linear=False, transitions=GrowthSwitch().transitions[:5]),
            r"'growth_switch_rates' of model 'GrowthSwitch' indexes beyond its arrays .* out: 5",
        ),
        # a drug or a constant the model does not declare: read past `c` or `p`
        (lambda: _growth_switch(drugs=()), r"indexes beyond its arrays .* c: 0 drugs"),
        (lambda: _growth_switch(True, constants=()), r"indexes beyond .* p: 10 parameters"),
        # the same inside a jitted helper (no bounds check there): the guard cells tell
        (
            lambda: _two_state(transitions=tolsim.models.TwoState().transitions[:5]),
            r"'two_state_rates' of model 'TwoState' writes beyond `out`",
        ),
        (
            lambda: _two_state(
                transitions=tolsim.models.TwoState().transitions
                + (tolsim.models.Transition.of("x", T=1),)
            ),
            r"leaves the propensity of transition\(s\) \['x'\] unset",
        ),
        (lambda: _growth_switch(constants=("1",)), r"`constants` = \('1',\) .* real numbers"),
        (lambda: _growth_switch(constants=(math.nan,)), r"`constants` = \(nan,\) .* finite"),
    ],
)
def test_rate_functions_must_fit_the_models_sizes(make, message):
    """The kernels do not check bounds: each of these was solved with status 0 (three runs
    of the first gave A(20) = 356, 3e191 and 5e162)."""
    with pytest.raises((TypeError, ValueError), match=message):
        make()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"states": ("A", "N")}, r"`states` of model 'GrowthSwitch' names \['N'\], which results"),
        ({"states": ("A", "tamoxifen_um")}, r"names \['tamoxifen_um'\]"),
        ({"states": ("A", "capacity")}, r"has states and parameters both named \['capacity'\]"),
        ({"states": ("A", 1)}, r"`states` = \('A', 1\) of model 'GrowthSwitch': expected"),
        ({"states": "AB"}, r"`states` = 'AB'"),
        (
            {"tolerant_states": ("B", "B")},
            r"`tolerant_states` of model 'GrowthSwitch' names \['B'\] more",
        ),
        ({"initial": (("A", "A0"), ("A", "B0"), ("B", "B0"))}, r"`initial` .* names \['A'\] more"),
        ({"drugs": "tamoxifen"}, r"`drugs` = 'tamoxifen'"),
        ({"drugs": ("tamoxifen", "tamoxifen")}, r"`drugs` .* names \['tamoxifen'\] more"),
        ({"linear": "no"}, r"`linear` = 'no' of model 'GrowthSwitch': expected a bool"),
        (
            {"exposures": (tolsim.models.Exposure("A", "tamoxifen", "kill_A", "kill_A"),)},
            r"has states and exposures both named \['A'\]",
        ),
        # (each of these was accepted; review found them)
        ({"initial": (("A",), ("B", "B0"))}, r"`initial` = .* expected pairs \(state, "),
        ({"options": (("logistic", np.bool_(False)),)}, r"`options` = .* plain JSON values"),
        (
            {
                "parameters": tuple(
                    dataclasses.replace(p, bounds=(-1e3, 1e15)) if p.name == "A0" else p
                    for p in GrowthSwitch().parameters
                )
            },
            r"initial-value parameter 'A0' of state 'A' .* expected a lower bound >= 0",
        ),
        (
            {"exposures": (tolsim.models.Exposure("E", "tamoxifen", "kill_A", "death_A"),)},
            r"EC50 parameter 'kill_A' of exposure 'E' .* expected a lower bound > 0",
        ),
    ],
)
def test_model_definitions_are_checked(change, message):
    from user_models import GrowthSwitch

    with pytest.raises((TypeError, ValueError), match=message):
        dataclasses.replace(GrowthSwitch(), **change)


def test_transitions_and_parameters_are_checked():
    Transition, Parameter = tolsim.models.Transition, tolsim.models.Parameter
    with pytest.raises(ValueError, match=r"transition 'split' changes 'A' by 0.5: expected"):
        Transition.of("split", A=0.5)
    assert Transition.of("two", A=2.0).change == (("A", 2),)
    with pytest.raises(ValueError, match=r"changes 'A' by True"):
        Transition.of("flag", A=True)
    from user_models import GrowthSwitch

    model = GrowthSwitch()
    twice = (*model.transitions[:-1], model.transitions[0])
    with pytest.raises(ValueError, match=r"`transitions` .* names \['division_A'\] more"):
        dataclasses.replace(model, transitions=twice)
    for bounds, error in [(5, TypeError), ((0, 1, 2), TypeError), (("0", "9"), TypeError)]:
        with pytest.raises(error, match=r"`g.bounds"):
            Parameter("g", "1/day", 0.2, bounds)
    for default in ("0.2", True, float("nan"), float("inf")):
        with pytest.raises((TypeError, ValueError), match=r"`g.default` = "):
            Parameter("g", "1/day", default, (0.0, float("inf")))
    with pytest.raises(ValueError, match=r"`g.bounds` = \(1.0, 0.0\): expected low <= high"):
        Parameter("g", "1/day", 0.5, (1.0, 0.0))


@pytest.mark.parametrize("method", ["dopri5", "rosenbrock", "auto"])
def test_nan_rates_are_reported_as_such_not_as_too_many_steps(method):
    """sqrt of a negative parameter: NaN rates from the first step. The step size computed
    from them is NaN, which no comparison with the smallest step caught."""
    from user_models import RootDeath

    model = RootDeath()
    ds = tolsim.simulate(model, {"s": -0.5}, tolsim.Schedule(10.0), [0.0, 10.0], method=method,
                         throw=False)  # fmt: skip
    assert int(ds.status) == -3 and "non-finite" in str(ds.message.values)
    assert int(ds.n_rejected_steps) < 100
    fine = tolsim.simulate(model, {"s": 0.04}, tolsim.Schedule(10.0), [0.0, 10.0], method=method)
    assert float(fine.A[-1]) == pytest.approx(100.0 * np.exp(0.1 * 10.0), rel=1e-5)


def test_infinite_and_huge_values_are_refused_for_one_set_as_for_a_table():
    model = tolsim.models.TwoState()
    for value in (np.inf, 10**400):
        with pytest.raises(ValueError, match=r"`params.S0` = .*(finite|too large)"):
            model.pack({"S0": value})
    with pytest.raises(ValueError, match=r"`params.S0\[1\]` = inf cells: expected a finite"):
        model.pack_table({"S0": np.array([1.0, np.inf])})


def test_result_names_list_every_variable_and_coordinate():
    """A state or exposure may not take a name the results use (it would be overwritten):
    every name in the results of the built-in model is a state, an exposure, a drug's
    concentration or in RESULT_NAMES."""
    from tolsim.models.base import RESULT_NAMES

    model = tolsim.models.TwoState(crowding="none")
    schedule = tolsim.Schedule.from_phases([{"days": 10, "tamoxifen": 1.0}, {"days": 10}])
    table = {"S0": np.array([100.0, 200.0])}
    results = [
        tolsim.simulate(model, {}, schedule, [0.0, 20.0]),
        tolsim.simulate(model, table, schedule, [0.0, 20.0]),
        tolsim.simulate(model, table, schedule, [0.0, 20.0], method="ssa", paths=2, seed=1),
        tolsim.simulate_arms(model, {}, {"a": schedule, "b": schedule}, [0.0, 20.0]),
        tolsim.sweep(model, table, schedule, store=None, outputs="both", times=[0.0, 20.0]),
        tolsim.sweep(model, table, schedule, store=None, method="tau", paths=2, seed=1),
    ]
    own = {*model.states, *(e.name for e in model.exposures), *model.parameter_names}
    own |= {f"{drug}_um" for drug in model.drugs}
    own |= {f"extinction_day_{state}" for state in model.states}
    for ds in results:
        names = set(map(str, ds.variables)) | set(map(str, ds.dims))
        assert names - own <= set(RESULT_NAMES), names - own - set(RESULT_NAMES)


def test_a_model_without_states_or_transitions_is_refused():
    import dataclasses

    from user_models import GrowthSwitch

    model = GrowthSwitch()
    with pytest.raises(ValueError, match="has 0 states and 6 transitions: expected at least"):
        dataclasses.replace(model, states=(), initial=(), tolerant_states=())
    with pytest.raises(ValueError, match="has 2 states and 0 transitions"):
        dataclasses.replace(model, transitions=())
