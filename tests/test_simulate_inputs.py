"""What simulate() takes at its edge: options of the wrong method, parameter tables without
columns, times as timedeltas, and values that are no real numbers."""

import datetime

import numpy as np
import pandas as pd
import pytest

import tolsim

MODEL = tolsim.models.TwoState()
SCHEDULE = tolsim.Schedule.from_phases([{"days": 3, "tamoxifen": 1.0}, {"days": 3}])


@pytest.mark.parametrize("path_start", [0, 123])
def test_path_start_given_to_an_ode_method_is_an_error(path_start):
    # it was silently ignored (its default was 0, so no one could tell it was given)
    with pytest.raises(ValueError, match="`path_start` applies to stochastic methods"):
        tolsim.simulate(MODEL, {}, SCHEDULE, [0.0, 1.0], path_start=path_start)


@pytest.mark.parametrize(
    ("method", "option", "message"),
    [
        ("ssa", {"rtol": 1e-8}, "`rtol` applies to the ODE methods, not `method` = 'ssa'"),
        ("tau", {"atol": 1e-3}, "`atol` applies to the ODE methods"),
        ("hybrid", {"max_steps": 10}, "`max_steps` applies to the ODE methods"),
    ],
)
def test_options_of_another_method_are_errors(method, option, message):
    linear = tolsim.models.TwoState(crowding="none")
    with pytest.raises(ValueError, match=message):
        tolsim.simulate(linear, {}, SCHEDULE, [0.0, 1.0], method=method, seed=1, **option)


@pytest.mark.parametrize("throw", ["no", 0, None])
def test_throw_is_true_or_false(throw):
    with pytest.raises(TypeError, match="`throw` = .*expected True or False"):
        tolsim.simulate(MODEL, {}, SCHEDULE, [0.0, 1.0], throw=throw)


def test_max_steps_is_an_integer_not_a_flag():
    with pytest.raises(ValueError, match="`max_steps` = True"):
        tolsim.simulate(MODEL, {}, SCHEDULE, [0.0, 1.0], max_steps=True)


def test_a_table_of_rows_without_columns_runs_each_row_at_the_defaults():
    ds = tolsim.simulate(MODEL, pd.DataFrame(index=range(3)), SCHEDULE, [0.0, 1.0, 2.0])
    alone = tolsim.simulate(MODEL, {}, SCHEDULE, [0.0, 1.0, 2.0])
    assert ds.N.dims == ("sample", "time") and ds.sizes["sample"] == 3
    for sample in range(3):
        np.testing.assert_array_equal(ds.N.isel(sample=sample).values, alone.N.values)
    with pytest.raises(ValueError, match="`params` is an empty table: expected at least one row"):
        tolsim.simulate(MODEL, pd.DataFrame(), SCHEDULE, [0.0, 1.0])


@pytest.mark.parametrize(
    "times",
    [
        np.array([0, 24, 48, 132], dtype="timedelta64[h]"),
        pd.to_timedelta([0.0, 1.0, 2.0, 5.5], unit="D"),
        [datetime.timedelta(0), datetime.timedelta(days=1), datetime.timedelta(hours=48),
         datetime.timedelta(days=5, hours=12)],
    ],
    ids=["timedelta64[h]", "pandas TimedeltaIndex", "datetime.timedelta"],
)  # fmt: skip
def test_timedelta_times_are_days_since_the_start(times):
    # 24 h was read as day 24
    ds = tolsim.simulate(MODEL, {}, SCHEDULE, times)
    assert ds.time.values.tolist() == [0.0, 1.0, 2.0, 5.5]
    days = tolsim.simulate(MODEL, {}, SCHEDULE, [0.0, 1.0, 2.0, 5.5])
    np.testing.assert_array_equal(ds.N.values, days.N.values)


@pytest.mark.parametrize(
    ("times", "message"),
    [
        (np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[D]"), "dtype datetime64"),
        ([False, True], "dtype bool"),
        ([0, 1j], "dtype complex128"),
        (["0", "1"], "dtype <U1"),
        (np.array([0, "1"], dtype=object), r"`times\[1\]` = '1'"),
    ],
    ids=["dates", "bool", "complex", "str", "object with a str"],
)
def test_times_that_are_not_days_are_refused(times, message):
    with pytest.raises(TypeError, match=f"{message}.*expected real numbers of days"):
        tolsim.simulate(MODEL, {}, SCHEDULE, times)


def test_timedelta_times_with_nat_are_named():
    times = np.array([0, "NaT", 48], dtype="timedelta64[h]")
    with pytest.raises(ValueError, match=r"`times` contains NaT \(not a time\) at indices \[1\]"):
        tolsim.simulate(MODEL, {}, SCHEDULE, times)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lambda_S": True}, "`params.lambda_S` = True: expected a real number"),
        ({"lambda_S": "0.1"}, "`params.lambda_S` = '0.1': expected a real number"),
        ({"lambda_S": 0.1 + 0j}, r"`params.lambda_S` = \(0.1\+0j\): expected a real number"),
        ({"lambda_S": np.array([0.1, 0.2 + 1j])}, "`params.lambda_S` has dtype complex128"),
        ({"lambda_S": np.array([True, False])}, "`params.lambda_S` has dtype bool"),
        ({"lambda_S": np.array([0.1, 0.2]), "K": "1e7"}, "`params.K` has dtype <U3"),
        (pd.DataFrame({"lambda_S": [0.1, 0.2 + 1j]}), "`params.lambda_S` has dtype complex128"),
        (pd.Series({"lambda_S": "0.1"}), "`params.lambda_S` = '0.1': expected a real number"),
    ],
    ids=[
        "bool", "str", "complex", "complex column", "bool column", "str broadcast",
        "complex DataFrame column", "str in a Series",
    ],
)  # fmt: skip
def test_parameter_values_that_are_no_real_numbers_are_refused_alike(params, message):
    with pytest.raises(TypeError, match=message):
        tolsim.simulate(MODEL, params, SCHEDULE, [0.0, 1.0])
