"""Every error the deterministic core promises, triggered; failures kept as data."""

import importlib

import numpy as np
import pytest

import tolsim
from tolsim.models import Model, Parameter, Transition

MODEL = tolsim.models.TwoState()
SCHEDULE = tolsim.Schedule.from_phases([{"days": 30, "tamoxifen": 1.0}, {"days": 30}])
TIMES = np.arange(0.0, 61.0)


def run(params=None, schedule=SCHEDULE, times=TIMES, **kwargs):
    params = MODEL.default_params() if params is None else params
    return tolsim.simulate(MODEL, params, schedule, times, **kwargs)


def test_unknown_parameter_lists_valid_names():
    with pytest.raises(
        ValueError,
        match=r"`params` has unknown parameter name\(s\) \['lambda'\]"
        r".*valid names are \['lambda_S', 'lambda_T'",
    ):
        run({"lambda": 0.2})
    with pytest.raises(ValueError, match="unknown parameter name"):
        MODEL.default_params(rS=0.1)


def test_negative_rate():
    with pytest.raises(ValueError, match=r"`params.lambda_S` = -0.1 1/day: rates must be >= 0"):
        run(MODEL.default_params() | {"lambda_S": -0.1})


def test_out_of_bounds_fraction():
    with pytest.raises(
        ValueError, match=r"`params.eps_S` = 1.5 1: expected a value within \[0.0, 1.0\]"
    ):
        run(MODEL.default_params() | {"eps_S": 1.5})


def test_nan_parameter_and_nan_in_table():
    with pytest.raises(ValueError, match="`params.kappa_T` is NaN"):
        run(MODEL.default_params() | {"kappa_T": float("nan")})
    with pytest.raises(ValueError, match=r"`params.mu_E\[2\]` is NaN"):
        run({"mu_E": np.array([0.0, 0.1, np.nan])})


def test_non_numeric_parameter():
    with pytest.raises(TypeError, match="`params.K` = 'big': expected a real number"):
        run(MODEL.default_params() | {"K": "big"})


def test_table_with_unequal_columns():
    with pytest.raises(ValueError, match="scalars or 1-d arrays of one length"):
        run({"mu_E": np.zeros(3), "kappa_T": np.zeros(4)})


@pytest.mark.parametrize(
    ("times", "message"),
    [
        (np.array([0.0, 2.0, 1.0]), r"`times` is not strictly increasing: times\[1\] = 2.0"),
        (np.array([0.0, 1.0, 1.0]), "not strictly increasing"),
        (np.array([-1.0, 1.0]), r"`times` starts at day -1.0: expected days >= 0"),
        (np.array([0.0, np.nan]), "`times` contains NaN"),
        (
            np.array([0.0, 61.0]),
            r"`times` ends at day 61.0, after the schedule's end \(day 60.0\)",
        ),
        (np.zeros((2, 2)), r"`times` has shape \(2, 2\)"),
    ],
)
def test_bad_times(times, message):
    with pytest.raises(ValueError, match=message):
        run(times=times)


def test_bad_solver_options():
    with pytest.raises(ValueError, match="`method` = 'rk4': expected one of"):
        run(method="rk4")
    with pytest.raises(ValueError, match="`rtol` = 0.0: expected a finite relative tolerance"):
        run(rtol=0.0)
    for rtol in (1.0, 1e6, float("nan")):  # no digit asked for: refused, not a silent answer
        with pytest.raises(ValueError, match=r"`rtol` = .*: expected a finite relative tol"):
            run(rtol=rtol)
    with pytest.raises(TypeError, match=r"`rtol` = True: expected a finite relative tolerance"):
        run(rtol=True)
    with pytest.raises(ValueError, match="`atol` = -1.0"):
        run(atol=-1.0)
    for atol in (True, "1e-3"):  # float() read them as 1 cell and 0.001
        with pytest.raises(TypeError, match=r"`atol` = .*: expected a positive real number"):
            run(atol=atol)
    with pytest.raises(ValueError, match="`max_steps` = 0"):
        run(max_steps=0)
    with pytest.raises(ValueError, match="'exact' needs a linear model"):
        run(method="exact")
    linear = tolsim.models.TwoState(crowding="none")
    oral = tolsim.Schedule.oral(
        "tamoxifen", dose_mg=1.0, every_days=1.0, stop_day=10.0, pk=tolsim.PK.tamoxifen_mouse()
    )
    with pytest.raises(ValueError, match="the schedule has PK dosing"):
        tolsim.simulate(linear, linear.default_params(), oral, np.arange(10.0), method="exact")
    with pytest.raises(ValueError, match="`crowding` = 'exponential'"):
        tolsim.models.TwoState(crowding="exponential")


def test_gompertz_needs_capacity_above_initial_size():
    model = tolsim.models.TwoState(crowding="gompertz")
    with pytest.raises(ValueError, match=r"`params` violates K > S0 \+ T0"):
        model.default_params(K=1e4)
    with pytest.raises(ValueError, match=r"`params` \(row 1\) violates K > S0 \+ T0"):
        tolsim.simulate(model, {"K": np.array([1e7, 5e4])}, SCHEDULE, TIMES)


def test_a_table_kept_as_columns_is_checked_and_packs_as_pack_table():
    model = tolsim.models.TwoState(crowding="gompertz")
    table = {"K": np.array([1e7, 2e7, 3e7]), "mu_E": np.array([0.0, 1e-3, 2e-3])}
    columns = model.pack_columns(table)
    np.testing.assert_array_equal(columns.packed(), model.pack_table(table))
    np.testing.assert_array_equal(columns.rows(np.array([2, 0])), model.pack_table(table)[[2, 0]])
    assert len(columns) == 3 and columns.values.shape == (3, 2)
    by_hand = np.repeat(model.pack({})[None], 3, axis=0)
    names = model.parameter_names
    by_hand[:, names.index("K")], by_hand[:, names.index("mu_E")] = table["K"], table["mu_E"]
    np.testing.assert_array_equal(columns.packed(), by_hand)
    np.testing.assert_array_equal(columns.rows(slice(1, 3)), by_hand[1:])
    assert any(c is table["K"] for c in columns.columns)  # float64 columns are not copied
    # the first bad row is named, whatever the order the parallel check finds them in
    many = np.full(50_000, 1e-3)
    many[[40_000, 7, 30_000]] = [np.nan, -1.0, np.inf]
    with pytest.raises(ValueError, match=r"`design.mu_E\[7\]` = -1.0"):
        model.pack_columns({"mu_E": many}, "design")
    many[7] = 1e-3
    with pytest.raises(ValueError, match=r"`design.mu_E\[30000\]` = inf 1/day: expected a fin"):
        model.pack_columns({"mu_E": many}, "design")
    many[30_000] = 1e-3
    with pytest.raises(ValueError, match=r"`design.mu_E\[40000\]` is NaN"):
        model.pack_columns({"mu_E": many}, "design")
    with pytest.raises(ValueError, match=r"`design` \(row 1\) violates K > S0 \+ T0"):
        model.pack_columns({"K": np.array([1e7, 5e4])}, "design")
    with pytest.raises(ValueError, match=r"`design.mu_E\[1\]` = -1.0"):
        model.pack_columns({"mu_E": np.array([0.0, -1.0])}, "design")
    with pytest.raises(ValueError, match="unknown parameter name"):
        model.pack_columns({"kappa": np.zeros(2)})
    with pytest.raises(ValueError, match="1-d arrays of equal length"):
        model.pack_columns({"K": np.full(2, 1e7), "mu_E": np.zeros(3)})


def test_result_too_large_for_memory_is_refused_before_computing(monkeypatch):
    module = importlib.import_module("tolsim.simulate")  # the module, not the function
    monkeypatch.setattr(module, "_available_memory_bytes", lambda: 4 * 2**20)
    with pytest.raises(MemoryError, match=r"1,000 parameter sets x 61 output times needs"):
        run({"mu_E": np.zeros(1000)})


def test_wrong_argument_types():
    with pytest.raises(TypeError, match="`model`"):
        tolsim.simulate("TwoState", {}, SCHEDULE, TIMES)
    with pytest.raises(TypeError, match="`schedule`"):
        tolsim.simulate(MODEL, {}, [{"days": 3}], TIMES)
    with pytest.raises(TypeError, match="`params` is a list"):
        run([0.1, 0.2])


@pytest.mark.parametrize(
    ("phases", "message"),
    [
        ([{"days": 10, "tamoxifen": 1.0}, {"days": 0}], r"`phases\[1\]` lasts 0 days.*> 0 days"),
        ([{"days": -5}], r"`phases\[0\]`"),
        ([{"days": 10, "tamoxifen": -1.0}], r"tamoxifen.*-1.0.*>= 0"),
        ([{"days": 10, "tamoxifen": float("nan")}], r"`phases\[0\].tamoxifen` = nan"),
        (
            [
                {"start_day": 0, "stop_day": 20, "tamoxifen": 1.0},
                {"start_day": 10, "stop_day": 30, "tamoxifen": 2.0},
            ],
            "overlap",
        ),
    ],
)
def test_bad_phases(phases, message):
    with pytest.raises(ValueError, match=message):
        tolsim.Schedule.from_phases(phases)


def test_dose_after_schedule_end():
    with pytest.raises(ValueError, match="after the schedule's end"):
        tolsim.Schedule.oral(
            "tamoxifen",
            dose_mg=1.0,
            every_days=1.0,
            stop_day=20.0,
            pk=tolsim.PK.tamoxifen_mouse(),
            duration_days=10.0,
        )


def test_schedule_drug_unknown_to_model():
    schedule = tolsim.Schedule.from_phases([{"days": 5, "fulvestrant": 1.0}])
    with pytest.raises(ValueError, match="fulvestrant"):
        run(schedule=schedule, times=np.arange(5.0))


def test_solver_failure_is_data_and_raises_with_partial_result():
    table = {"kappa_T": np.array([0.1, 0.2, 0.3])}
    with pytest.raises(tolsim.SolverError, match="3 of 3 sample.*maximum number of steps") as info:
        run(table, max_steps=5)
    partial = info.value.dataset
    assert np.all(partial.status.values == -2)
    assert np.isfinite(partial.N.values[:, 0]).all()  # outputs reached before failing are kept
    assert np.isnan(partial.N.values[:, -1]).all()
    ds = run(table, max_steps=5, throw=False)
    assert list(ds.message.values) == ["maximum number of steps reached (raise `max_steps`)"] * 3


def test_step_size_underflow_is_reported():
    """A rate that blows up in finite time (dx/dt = x^2) drives the step size to zero."""
    model = Model(
        name="Blowup",
        states=("S", "T"),
        parameters=(
            Parameter("S0", "cells", 1.0, (0.0, 1e9)),
            Parameter("T0", "cells", 0.0, (0.0, 1e9)),
        ),
        transitions=(Transition.of("autocatalysis", S=1),),
        rates=blowup_rates,
        initial=(("S", "S0"), ("T", "T0")),
        tolerant_states=("T",),
    )
    schedule = tolsim.Schedule.from_phases([{"days": 2.0}])
    ds = tolsim.simulate(
        model, model.default_params(), schedule, np.linspace(0, 2, 5), throw=False
    )
    assert int(ds.status) == -1
    assert str(ds.message.values).startswith("step size underflow")
    assert ds.S.values[1] == pytest.approx(1 / (1 - 0.5), rel=1e-5)  # before the blow-up at t=1
    assert np.isnan(ds.S.values[-1])


@pytest.mark.parametrize("method", ["exact", "dopri5", "rosenbrock"])
def test_overflow_is_reported_not_returned_as_inf(method):
    """10/day net growth for 360 days overflows float64 (e^3600): a failure, never inf."""
    model = tolsim.models.TwoState(crowding="none")
    schedule = tolsim.Schedule.from_phases([{"days": 360.0}])
    params = model.default_params(lambda_S=10.0, lambda_T=10.0)
    ds = tolsim.simulate(model, params, schedule, np.arange(361.0), method=method, throw=False)
    assert int(ds.status) == -3
    assert str(ds.message.values).startswith("non-finite state")
    assert np.isfinite(ds.N.values[:10]).all()  # the outputs before the overflow are kept
    assert not np.isinf(ds.N.values).any()
    # the outputs the solver did not reach are NaN, never left as uninitialised memory
    reached = np.isfinite(ds.N.values)
    assert not reached[-1] and np.isnan(ds.N.values[~reached]).all()
    assert np.isnan(ds.dN_dt.values[~reached]).all()
    with pytest.raises(tolsim.SolverError, match="non-finite state"):
        tolsim.simulate(model, params, schedule, np.arange(361.0), method=method)


def test_user_rate_function_must_be_top_level_njit():
    def plain(t, x, p, c, out):
        out[0] = 0.0

    with pytest.raises(TypeError, match="expected a function decorated with @numba.njit"):
        Model(
            name="M",
            states=("S",),
            parameters=(Parameter("S0", "cells", 1.0, (0, 1)),),
            transitions=(Transition.of("birth", S=1),),
            rates=plain,
            initial=(("S", "S0"),),
        )


from numba import njit  # noqa: E402


@njit(cache=True)
def blowup_rates(t, x, p, c, out):
    out[0] = x[0] * x[0]


def test_api_arguments_are_named_in_their_errors():
    """Values the API review found accepted silently or failing with raw library errors."""
    import pandas as pd

    from tolsim.fit import likelihood_ratio_test
    from tolsim.observe import LogNormal, Normal, tumour_volume

    linear = tolsim.models.TwoState(crowding="none")
    grow = tolsim.Schedule.from_phases([{"days": 10}])
    days = np.arange(1.0, 11.0)
    cells = tolsim.simulate(linear, linear.default_params(), grow, days).N.values
    data = pd.DataFrame(
        {"condition": "c", "observable": "total_cells", "time": days, "value": cells}
    )
    options = dict(free=["lambda_S"], noise=LogNormal(), fixed={"total_cells.sigma": 0.1})
    for workers in (0, -1, 1.5):
        with pytest.raises(ValueError, match=f"`workers` = {workers!r}: expected an integer"):
            tolsim.fit(linear, data, {"c": grow}, workers=workers, **options)
    for seed in (-1, 1.5):
        with pytest.raises((TypeError, ValueError), match=f"`seed` = {seed!r}"):
            tolsim.fit(linear, data, {"c": grow}, seed=seed, **options)
    with pytest.raises(TypeError, match=r"`observables\['total_cells'\]` = 3: expected"):
        tolsim.fit(linear, data, {"c": grow}, observables={"total_cells": 3}, **options)
    result = tolsim.fit(linear, data, {"c": grow}, starts=1, **options)
    with pytest.raises(TypeError, match="`full` = 3: expected a tolsim.FitResult"):
        likelihood_ratio_test(result, 3)
    with pytest.raises(
        ValueError, match=r"`seed` = 4294967296: expected an integer in \[0, 2\*\*32\)"
    ):
        result.sample(seed=2**32, steps=2)

    ds = run()
    with pytest.raises(TypeError, match="`ds` is a DataArray: expected the Dataset"):
        tolsim.time_to_recurrence(ds.N, threshold=1e6)
    with pytest.raises(TypeError, match="`withdrawal_day` = 'a': expected a day"):
        tolsim.time_to_recurrence(ds, 1e6, withdrawal_day="a")
    paths = tolsim.simulate(
        linear, {"S0": 5, "T0": 2}, SCHEDULE, [0.0, 30.0, 60.0], method="ssa", paths=3, seed=1
    )
    with pytest.raises(TypeError, match="`level` = 'a': expected a confidence level"):
        tolsim.recurrence_probability(paths, 3.0, level="a")
    with pytest.raises(TypeError, match="`by_day` = 'a': expected an output day"):
        tolsim.extinction_probability(paths, by_day="a")
    with pytest.raises(TypeError, match="`params.sigma` = 'a': expected a finite number > 0"):
        Normal().nllh([1.0], [1.0], params={"sigma": "a"})
    trajectory = tolsim.observe.Trajectory(days, {"N": cells}, None)
    with pytest.raises(ValueError, match=r"`params.v_cell` = -1.0 .*expected a value within"):
        tumour_volume().predict(trajectory, [1.0], {"v_cell": -1.0})
    with pytest.raises(ValueError, match="`off_days` = -1.0 days: expected a finite number >= 0"):
        tolsim.Schedule.in_vitro(off_days=-1.0)
    with pytest.raises(ValueError, match="`stop_day` = -1.0: expected a day > 0"):
        tolsim.Schedule.oral(
            "tamoxifen", dose_mg=1.0, every_days=1.0, stop_day=-1.0, pk=tolsim.PK.tamoxifen_mouse()
        )
    template = tolsim.design.inhibitor_course()
    for candidates, message in ((0, "expected a power of two"), (3, "use 4")):
        with pytest.raises(ValueError, match=f"`candidates` = {candidates}: .*{message}"):
            tolsim.optimize_schedule(
                linear, linear.default_params(), template, {"inhibitor_days": (0.0, 28.0)},
                candidates=candidates, threshold=1e6,
            )  # fmt: skip
