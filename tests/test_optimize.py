"""Schedule design: the optimiser against closed-form optima, the Pareto front against a
brute-force definition, drug burdens against exact integrals, and input errors."""

import json
import math

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

import tolsim
from tolsim.design import ScheduleTemplate, inhibitor_course, intermittent_tamoxifen
from tolsim.optimize import drug_burden, optimize_schedule, pareto_front

MODEL = tolsim.models.TwoState(crowding="none")
# tolerant cells only, no switching: log T is piecewise linear in time, with the rate
# r(E_tam, E_inh) = lambda_T (1 - eps_T E_tam)(1 - iota E_inh) - delta_T - kappa_T E_inh
PARAMS = MODEL.default_params(S0=0.0, T0=1000.0, mu_0=0.0, mu_E=0.0, nu_0=0.0, nu_off=0.0)
THRESHOLD = 1e9  # cells
TEMPLATE = inhibitor_course(tamoxifen_days=60.0, follow_up_days=200.0, inhibitor_um=5.0)


def rate(tamoxifen_um: float, inhibitor_um: float) -> float:
    p = PARAMS
    e_tam = tamoxifen_um / (tamoxifen_um + p["EC50_tam"]) if tamoxifen_um else 0.0
    e_inh = inhibitor_um / (inhibitor_um + p["EC50_inh"]) if inhibitor_um else 0.0
    growth = p["lambda_T"] * (1 - p["eps_T"] * e_tam) * (1 - p["iota"] * e_inh)
    return growth - p["delta_T"] - p["kappa_T"] * e_inh


def closed_form_recurrence_days(schedule: tolsim.Schedule) -> float:
    """Days from withdrawal until T first reaches THRESHOLD: walk the pieces of log T."""
    log_t = math.log(PARAMS["T0"])
    target = math.log(THRESHOLD)
    withdrawal = schedule.withdrawal_day("tamoxifen")
    edges = schedule.breakpoints()
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        levels = schedule.concentrations([start], ["tamoxifen", "inhibitor"])[0]
        r = rate(*levels)
        if start >= withdrawal and r > 0 and log_t + r * (stop - start) >= target:
            return start + (target - log_t) / r - withdrawal
        log_t += r * (stop - start)
    return math.inf


def test_best_inhibitor_duration_under_a_budget_is_the_whole_budget():
    """Every day of inhibitor under tamoxifen lowers log T at withdrawal by the same amount,
    so recurrence-free days grow linearly with the course: the optimum spends the budget,
    and every candidate lies on the Pareto front."""
    durations = np.arange(0.0, 61.0, 4.0)
    result = optimize_schedule(
        MODEL,
        PARAMS,
        TEMPLATE,
        {"inhibitor_days": list(durations)},
        budget=30.0,
        threshold=THRESHOLD,
    )
    expected = [
        closed_form_recurrence_days(TEMPLATE(inhibitor_days=d, inhibitor_start_day=0.0))
        for d in durations
    ]
    assert np.all(np.diff(expected) > 0) and max(expected) < 200.0
    np.testing.assert_allclose(result.benefit, expected, rtol=1e-5)
    np.testing.assert_array_equal(result.burden, durations)
    assert result.inhibitor_days[result.best] == 28.0  # the longest course within 30 days
    np.testing.assert_array_equal(result.feasible, durations <= 30.0)
    assert result.on_front.all()
    assert result.ranking.values.tolist()[:3] == [7, 6, 5]
    best_schedule = tolsim.Schedule.from_dict(json.loads(result.attrs["best_schedule"]))
    assert best_schedule == TEMPLATE(inhibitor_days=28.0)


def test_best_inhibitor_timing_is_just_after_withdrawal():
    """The inhibitor kills more (per day) off tamoxifen, where tolerant cells divide faster,
    but only if it starts before the tumour has regrown: the closed form puts the optimum
    from withdrawal (day 60) to just before the recurrence it prevents."""
    starts = np.arange(0.0, 121.0, 5.0)
    result = optimize_schedule(
        MODEL,
        PARAMS,
        TEMPLATE,
        {"inhibitor_start_day": list(starts), "inhibitor_days": [14.0]},
        threshold=THRESHOLD,
        top=5,
    )
    expected = np.array(
        [
            closed_form_recurrence_days(TEMPLATE(inhibitor_start_day=s, inhibitor_days=14.0))
            for s in starts
        ]
    )
    np.testing.assert_allclose(result.benefit, expected, rtol=1e-5)
    optimal = starts[expected >= expected.max() - 1e-6]
    assert optimal.min() == 60.0 and optimal.max() < 100.0
    assert float(result.inhibitor_start_day[result.best]) in optimal
    # equal burden everywhere: the front is the single best candidate
    assert result.on_front.sum() == 1 and result.on_front[result.best]


def test_benefit_over_a_parameter_table_is_the_mean_of_its_rows():
    table = {name: np.full(3, value) for name, value in PARAMS.items()}
    table["lambda_T"] = np.array([0.17, 0.19, 0.21])
    space = {"inhibitor_days": [0.0, 14.0]}
    both = optimize_schedule(MODEL, table, TEMPLATE, space, threshold=THRESHOLD)
    each = [
        optimize_schedule(
            MODEL, {**PARAMS, "lambda_T": value}, TEMPLATE, space, threshold=THRESHOLD
        ).benefit.values
        for value in table["lambda_T"]
    ]
    np.testing.assert_allclose(both.benefit, np.mean(each, axis=0), rtol=1e-12)
    assert both.attrs["n_parameter_sets"] == 3
    # the result records the sets it averaged over, as it records one set in its attrs
    np.testing.assert_array_equal(both.parameters.sel(parameter="lambda_T"), table["lambda_T"])
    assert both.parameters.sel(parameter="K").values.tolist() == [PARAMS["K"]] * 3


def test_eradication_objective_is_the_branching_probability():
    small = {**PARAMS, "T0": 5.0}
    result = optimize_schedule(
        MODEL,
        small,
        TEMPLATE,
        {"inhibitor_days": [0.0, 10.0, 20.0, 40.0]},
        objective="eradication_probability",
        budget=25.0,
    )
    schedule = TEMPLATE(inhibitor_days=20.0)
    exact = tolsim.extinction_probability(
        MODEL, small, schedule, states=["T"], by_day=60.0
    ).extinction_probability.item()
    assert result.benefit[2] == pytest.approx(exact, rel=1e-12)
    assert np.all(np.diff(result.benefit) > 0)
    assert result.best == 2 and result.benefit.attrs["units"] == "1"
    assert result.attrs["eradication_day"] == "the end of each candidate's treatment"
    on_day_30 = optimize_schedule(
        MODEL, small, TEMPLATE, {"inhibitor_days": [10.0]},
        objective="eradication_probability", eradication_day=30.0,
    )  # fmt: skip
    assert on_day_30.attrs["eradication_day"] == 30.0
    # the recurrence objectives' options are recorded as not taken (were a threshold and NaN)
    assert on_day_30.attrs["threshold"] == "none" and on_day_30.attrs["horizon_days"] == "none"


def test_sobol_ranges_are_crossed_with_grid_values():
    result = optimize_schedule(
        MODEL,
        PARAMS,
        TEMPLATE,
        {"inhibitor_days": [7.0, 14.0], "inhibitor_start_day": (0.0, 100.0)},
        candidates=8,
        threshold=THRESHOLD,
    )
    assert result.sizes["candidate"] == 16
    assert sorted(set(result.inhibitor_days.values)) == [7.0, 14.0]
    starts = result.inhibitor_start_day.values
    assert np.all((starts >= 0) & (starts <= 100)) and np.unique(starts).size == 8
    # the attrs say which slot was a range and which a grid, with the search's settings:
    # running it again from them gives the same candidates and benefits
    space = {
        k: tuple(v["range"]) if isinstance(v, dict) else v
        for k, v in json.loads(result.attrs["space"]).items()
    }
    assert space == {"inhibitor_days": [7.0, 14.0], "inhibitor_start_day": (0.0, 100.0)}
    again = optimize_schedule(
        MODEL, json.loads(result.attrs["params"]), TEMPLATE, space,
        candidates=result.attrs["candidates"], seed=result.attrs["seed"],
        rtol=result.attrs["rtol"], threshold=result.attrs["threshold"],
    )  # fmt: skip
    xr.testing.assert_equal(again.benefit, result.benefit)


# small integers (many ties), infinities (a callable burden can give inf) and NaN
VALUES = st.sampled_from([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, math.inf, -math.inf, math.nan])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(VALUES, VALUES), min_size=1, max_size=25))
def test_pareto_front_is_the_set_of_undominated_points(points):
    benefit = np.array([p[0] for p in points])
    burden = np.array([p[1] for p in points])
    mask = pareto_front(benefit, burden)
    valid = ~np.isnan(benefit) & ~np.isnan(burden)
    for i in range(len(points)):
        if not valid[i]:
            assert not mask[i]
            continue
        dominated = np.any(
            valid
            & (benefit >= benefit[i])
            & (burden <= burden[i])
            & ((benefit > benefit[i]) | (burden < burden[i]))
        )
        duplicate_before = np.any((benefit[:i] == benefit[i]) & (burden[:i] == burden[i]))
        assert mask[i] == (not dominated and not duplicate_before)


@pytest.mark.parametrize(
    ("benefit", "burden", "error", "match"),
    [
        ([1.0, 2.0], [1.0], ValueError, "`benefit` has 2 values and `burden` 1"),
        ([[1.0]], [1.0], ValueError, r"`benefit` has shape \(1, 1\): expected a 1-d array"),
        ([1.0], "x", TypeError, "`burden` = 'x': expected numbers"),
    ],
)
def test_pareto_front_names_bad_input(benefit, burden, error, match):
    with pytest.raises(error, match=match):
        pareto_front(benefit, burden)


def test_a_nan_burden_is_infeasible_with_or_without_a_budget():
    """A callable burden that gives NaN: that candidate is neither feasible nor on the front,
    whether a budget is set or not (the best was such a candidate without one)."""

    def burden(schedule):
        days = drug_burden(schedule, "inhibitor")
        return math.nan if days > 20 else days

    space = {"inhibitor_days": [7.0, 14.0, 28.0]}
    for budget in (None, 1e9):
        options = {"burden": burden, "budget": budget, "top": np.int64(3)}
        result = optimize_schedule(MODEL, PARAMS, TEMPLATE, space, threshold=THRESHOLD, **options)
        assert result.feasible.values.tolist() == [True, True, False]
        assert int(result.best) == 1 and not result.on_front.values[2]
        assert result.sizes["rank"] == 2


def test_drug_burden_in_vitro_is_exact():
    schedule = tolsim.Schedule.from_phases(
        [{"days": 10, "inhibitor": 2.0}, {"days": 5}, {"days": 3, "inhibitor": 0.5}]
    )
    assert drug_burden(schedule, "inhibitor") == 13.0
    assert drug_burden(schedule, "inhibitor", "um_days") == 21.5
    assert drug_burden(schedule, "tamoxifen") == 0.0


def test_drug_burden_with_pk_matches_adaptive_quadrature():
    pk = tolsim.PK.from_half_life(0.25, ka_per_day=24.0, volume_l=1.0, molar_mass_g_per_mol=300.0)
    doses = tolsim.OralDoses(
        "inhibitor", dose_mg=1.0, start_day=0.0, stop_day=10.0, every_days=1.0, pk=pk
    )
    schedule = tolsim.Schedule(duration_days=20.0, oral_doses=(doses,))
    exact = sum(
        integrate.quad(
            lambda t: schedule.concentrations([t], ["inhibitor"])[0, 0], a, a + 1.0, limit=200
        )[0]
        for a in np.arange(0.0, 20.0)
    )
    assert drug_burden(schedule, "inhibitor", "um_days") == pytest.approx(exact, rel=1e-4)
    assert drug_burden(schedule, "inhibitor") == 10.0


def test_drug_burden_of_a_pk_drug_beside_another_drug():
    # the concentrations were asked for the one drug, which the schedule's compile refuses
    # when it names another: "um_days" of oral tamoxifen with an inhibitor course raised
    schedule = tolsim.Schedule.oral(
        "tamoxifen", dose_mg=20.0, every_days=1.0, stop_day=28.0,
        pk=tolsim.PK.tamoxifen_human(), duration_days=56.0,
    ).with_inhibitor(start_day=0.0, stop_day=10.0, dose_um=2.0)  # fmt: skip
    column = schedule.drugs.index("tamoxifen")
    exact = sum(
        integrate.quad(
            lambda t: schedule.concentrations([t], schedule.drugs)[0, column], a, a + 1.0,
            limit=200,
        )[0]
        for a in np.arange(0.0, 56.0)
    )  # fmt: skip
    assert drug_burden(schedule, "tamoxifen", "um_days") == pytest.approx(exact, rel=1e-4)
    assert drug_burden(schedule, "inhibitor", "um_days") == pytest.approx(20.0, rel=1e-12)
    assert drug_burden(schedule, "inhibitor") == 10.0


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("inhibitor", "inhibitor"), TypeError, r"`schedule` = 'inhibitor': expected a tolsim"),
        ((None, 5), TypeError, r"`drug` = 5: expected a drug name \(str\)"),
        ((None, "inhibitor", "mg"), ValueError, r"`kind` = 'mg'"),
    ],
)
def test_drug_burden_names_bad_input(args, error, match):
    schedule = tolsim.Schedule.from_phases([{"days": 10, "inhibitor": 2.0}])
    args = (schedule if args[0] is None else args[0], *args[1:])
    with pytest.raises(error, match=match):
        drug_burden(*args)


def test_candidates_that_recur_at_once_under_the_default_threshold_are_named():
    """With the default parameters the burden grows from withdrawal on: under the default
    threshold 7 of these 9 candidates scored 0 days and the other two were ranked, silently."""
    model = tolsim.models.TwoState(crowding="none")
    template = inhibitor_course(tamoxifen_days=60.0, follow_up_days=120.0)
    space = {"inhibitor_start_day": [0.0, 30.0, 60.0], "inhibitor_days": [0.0, 14.0, 28.0]}
    with pytest.warns(UserWarning, match=r"7 of 9 candidates recur at once \(0 days\)"):
        result = optimize_schedule(model, model.default_params(), template, space, workers=1)
    assert int(np.sum(result.benefit.values == 0.0)) == 7
    optimize_schedule(model, model.default_params(), template, space, workers=1, threshold=1e7)


def test_burdens_and_the_record_of_the_space_come_before_the_solves(monkeypatch):
    import tolsim.optimize as optimize

    def no_solve(*args, **kwargs):
        raise AssertionError("a candidate was solved before the burden failed")

    def failing(schedule):
        raise ZeroDivisionError("burden")

    with monkeypatch.context() as patched:
        patched.setattr(optimize, "_evaluate", no_solve)
        with pytest.raises(ZeroDivisionError, match="burden"):
            optimize_schedule(MODEL, PARAMS, TEMPLATE, {"inhibitor_days": [7.0]}, burden=failing)
    # numpy numbers in a range: json.dumps of the space failed after every solve
    result = optimize_schedule(
        MODEL, PARAMS, TEMPLATE, {"inhibitor_days": (np.int64(0), np.int64(28))},
        candidates=2, threshold=THRESHOLD,
    )  # fmt: skip
    assert json.loads(result.attrs["space"]) == {"inhibitor_days": {"range": [0.0, 28.0]}}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"space": {"inhibitor_dayz": [1.0]}}, ValueError, "unknown slot"),
        ({"space": {}}, ValueError, "`space`"),
        ({"space": {"inhibitor_days": (1.0, 2.0, 3.0)}}, ValueError, "range"),
        ({"space": {"inhibitor_days": [-5.0]}}, ValueError, "candidate 0"),
        ({"burden": "inhibitor"}, ValueError, "`burden` = 'inhibitor'"),
        ({"objective": "cure"}, ValueError, "`objective` = 'cure'"),
        ({"budget": -1.0}, ValueError, "`budget` = -1.0"),
        ({"budget": True}, ValueError, "`budget` = True"),
        # options of the recurrence objectives were ignored (and recorded) for eradication
        (
            {"horizon_days": 5.0, "objective": "eradication_probability"},
            ValueError,
            r"`horizon_days` = 5.0 with `objective` = 'eradication_probability'",
        ),
        (
            {"threshold": 1e6, "objective": "eradication_probability"},
            ValueError,
            r"`threshold` = 1000000.0 with `objective` = 'eradication_probability'",
        ),
        ({"top": 0}, ValueError, "`top` = 0"),
        ({"threshold": "twice"}, ValueError, "`threshold` = 'twice'"),
        # these three used to run, scoring every candidate 0 or nonsense
        ({"burden": "aspirin_days"}, ValueError, r"`burden` = 'aspirin_days': 'aspirin' is not"),
        ({"burden": "aspirin_um_days"}, ValueError, r"drug in \['tamoxifen', 'inhibitor'\]"),
        ({"threshold": -5.0}, ValueError, r"`threshold` = -5.0 cells: expected a finite number"),
        ({"threshold": float("inf")}, ValueError, r"`threshold` = inf cells"),
        ({"rtol": -1.0}, ValueError, r"`rtol` = -1.0: expected a finite relative tolerance"),
        ({"rtol": 0.0}, ValueError, r"`rtol` = 0.0"),
        ({"horizon_days": 500.0}, ValueError, "`horizon_days` = 500.0"),
        ({"horizon_days": "6o"}, ValueError, "`horizon_days` = '6o': expected a number"),
        ({"top": 2.0}, ValueError, r"`top` = 2.0: expected an integer >= 1"),
        ({"template": TEMPLATE(), "space": {"x": [1.0]}}, TypeError, "`template`"),
        ({"rtol": 10.0}, ValueError, r"`rtol` = 10.0: expected a finite relative tolerance in"),
        ({"workers": 0}, ValueError, r"`workers` = 0: expected an integer >= 1"),
        ({"workers": "a"}, ValueError, r"`workers` = 'a': expected an integer >= 1"),
        ({"seed": -1}, ValueError, r"`seed` = -1: expected an integer in \[0, 2\*\*63\)"),
        ({"seed": "x"}, TypeError, r"`seed` = 'x'"),
        ({"eradication_day": 30.0}, ValueError, r"`eradication_day` = 30.0 with `objective`"),
        (
            {"eradication_day": -5.0, "objective": "eradication_probability"},
            ValueError,
            r"`eradication_day` = -5.0: expected a day > 0",
        ),
        (
            {"eradication_day": 1e4, "objective": "eradication_probability"},
            ValueError,
            r"`eradication_day` = 10000.0: after the end of candidate 0's schedule",
        ),
    ],
)
def test_bad_input_is_named(kwargs, error, match):
    options = {"template": TEMPLATE, "space": {"inhibitor_days": [7.0]}, **kwargs}
    template, space = options.pop("template"), options.pop("space")
    with pytest.raises(error, match=match):
        optimize_schedule(MODEL, PARAMS, template, space, **options)


def test_xarray_params_are_refused_with_the_way_to_give_draws():
    """predict's ``parameter_value`` (free parameters only) passed as it is gave numpy's
    "truth value of an array is ambiguous"."""
    draws = xr.DataArray([[0.2], [0.3]], dims=("draw", "parameter"),
                         coords={"parameter": ["kappa_T"]})  # fmt: skip
    with pytest.raises(TypeError, match=r"`params` is an xarray DataArray: .*model_params"):
        optimize_schedule(MODEL, draws, TEMPLATE, {"inhibitor_days": [7.0]})


def test_different_follow_ups_need_a_horizon():
    def fixed_end(tamoxifen_days):  # a longer course leaves less follow-up
        return tolsim.Schedule.from_phases(
            [{"days": tamoxifen_days, "tamoxifen": 1.0}], duration_days=200.0
        )

    template = ScheduleTemplate(fixed_end, {"tamoxifen_days": 60.0}, "fixed_end")
    space = {"tamoxifen_days": [30.0, 60.0]}
    with pytest.raises(ValueError, match="pass horizon_days"):
        optimize_schedule(MODEL, PARAMS, template, space, burden="tamoxifen_days")
    result = optimize_schedule(
        MODEL, PARAMS, template, space, burden="tamoxifen_days", horizon_days=100.0,
        threshold=THRESHOLD,
    )  # fmt: skip
    assert result.attrs["horizon_days"] == 100.0
    template = intermittent_tamoxifen(follow_up_days=100.0)
    result = optimize_schedule(
        MODEL, PARAMS, template, {"cycles": [1.0, 2.0]}, burden="tamoxifen_days",
        threshold=THRESHOLD,
    )  # fmt: skip
    np.testing.assert_array_equal(result.burden, [28.0, 56.0])


def test_eradication_needs_a_linear_model():
    model = tolsim.models.TwoState(crowding="logistic")
    with pytest.raises(ValueError, match="needs a linear model"):
        optimize_schedule(
            model,
            model.default_params(),
            TEMPLATE,
            {"inhibitor_days": [7.0]},
            objective="eradication_probability",
        )


def test_eradication_names_a_candidate_without_an_end_of_treatment():
    template = inhibitor_course(tamoxifen_days=60.0, follow_up_days=100.0)
    space = {"tamoxifen_um": [1.0, 0.0], "inhibitor_um": [0.0]}
    with pytest.raises(ValueError, match=r"candidate 1 \(\{'tamoxifen_um': 0.0, 'inhibitor_um'"):
        optimize_schedule(MODEL, PARAMS, template, space, objective="eradication_probability")


def test_a_slot_named_seed_can_be_sampled():
    def seeded(seed):  # a slot whose name is also optimize_schedule's argument
        return TEMPLATE(inhibitor_days=seed)

    template = ScheduleTemplate(seeded, {"seed": 7.0}, "seeded")
    result = optimize_schedule(MODEL, PARAMS, template, {"seed": (0.0, 28.0)}, candidates=2,
                               threshold=THRESHOLD, seed=3)  # fmt: skip
    assert result.sizes["candidate"] == 2
    assert ((result.seed >= 0.0) & (result.seed <= 28.0)).all()
