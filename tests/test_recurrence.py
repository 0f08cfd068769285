"""time_to_recurrence against closed forms and root-finding on exact solutions."""

import numpy as np
import pytest
import scipy.linalg
from conftest import inhibitor_after_withdrawal, linear_two_state_matrix
from scipy.optimize import brentq
from user_models import GrowthSwitch

import tolsim

MODEL = GrowthSwitch()
SCHEDULE = tolsim.Schedule.from_phases([{"days": 20.0, "tamoxifen": 1.0}, {"days": 80.0}])
TIMES = np.arange(0.0, 101.0)


def test_exponential_regrowth_through_absolute_threshold():
    params = dict(
        birth_A=0.3, death_A=0.1, kill_A=0.5, switch_AB=0.0, switch_BA=0.0, A0=1000.0, B0=0.0
    )
    ds = tolsim.simulate(MODEL, params, SCHEDULE, TIMES, method="dopri5", rtol=1e-10, atol=1e-10)
    at_withdrawal = 1000.0 * np.exp(-0.3 * 20.0)
    expected = np.log(5000.0 / at_withdrawal) / 0.2
    got = tolsim.time_to_recurrence(ds, threshold=5000.0)
    assert got.attrs["units"] == "days"
    assert float(got) == pytest.approx(expected, abs=1e-4)
    # regrowing at withdrawal: recurrence back to the withdrawal size is immediate, and said
    with pytest.warns(UserWarning, match=r"1 of 1 sample\(s\) grow from withdrawal \(day 20\)"):
        assert float(tolsim.time_to_recurrence(ds)) == 0.0
    # a threshold never reached within the horizon is censored: inf
    assert np.isinf(float(tolsim.time_to_recurrence(ds, threshold=1e12)))


def test_dip_then_regrowth_to_size_at_withdrawal():
    """Tolerant B dominates at withdrawal and dies off; sensitive A regrows: N dips first."""
    params = dict(
        birth_A=0.3,
        death_A=0.1,
        kill_A=0.6,
        birth_B=0.0,
        death_B=0.2,
        switch_AB=0.0,
        switch_BA=0.0,
        A0=1e4,
        B0=1e4,
    )
    ds = tolsim.simulate(MODEL, params, SCHEDULE, TIMES)
    assert ds.attrs["method"] == "exact"

    def total(t):
        a = 1e4 * np.exp(-0.4 * min(t, 20.0)) * np.exp(0.2 * max(t - 20.0, 0.0))
        b = 1e4 * np.exp(-0.2 * t)
        return a + b

    level = total(20.0)
    t_min = 20.0 + np.log(0.2 * (1e4 * np.exp(-0.2 * 20)) / (0.2 * 1e4 * np.exp(-8.0))) / 0.4
    crossing = brentq(lambda t: total(t) - level, t_min, 100.0, xtol=1e-12)
    got = float(tolsim.time_to_recurrence(ds))
    assert ds.N.sel(time=25.0) < level  # the dip
    assert got == pytest.approx(crossing - 20.0, abs=1e-4)


def test_samples_with_exact_linear_solution():
    model = tolsim.models.TwoState(crowding="none")
    kill = np.array([0.0, 0.05, 0.5])
    table = {"kappa_T": kill, "nu_off": np.full(3, 0.2)}
    schedule = tolsim.Schedule.from_phases(
        [{"days": 60.0, "tamoxifen": 1.0, "inhibitor": 2.0}, {"days": 120.0, "inhibitor": 2.0}]
    )
    times = np.arange(0.0, 181.0)
    ds = tolsim.simulate(model, table, schedule, times)
    threshold = 2e5
    got = tolsim.time_to_recurrence(ds, threshold=threshold)
    assert got.dims == ("sample",)
    params = model.default_params()
    for i, kappa in enumerate(kill):
        p = dict(params, kappa_T=kappa, nu_off=0.2)
        on = linear_two_state_matrix(p, 1.0, 2.0)
        after = linear_two_state_matrix(p, 0.0, 2.0)
        x_w = scipy.linalg.expm(on * 60.0) @ [p["S0"], p["T0"]]

        def excess(t, x_w=x_w, after=after):
            return (scipy.linalg.expm(after * t) @ x_w).sum() - threshold

        assert excess(0.0) < 0 < excess(120.0)  # below at withdrawal, recurs in the horizon
        expected = brentq(excess, 0.0, 120.0, xtol=1e-12)
        assert got.values[i] == pytest.approx(expected, abs=1e-4)
    # stronger NF-kB inhibition delays regrowth
    assert np.all(np.diff(got.values) > 0)


def test_failed_sample_gives_nan_and_errors():
    ds = tolsim.simulate(
        MODEL,
        {"kill_A": np.array([0.1, 0.2])},
        SCHEDULE,
        TIMES,
        method="dopri5",
        max_steps=3,
        throw=False,
    )
    assert np.all(np.isnan(tolsim.time_to_recurrence(ds, threshold=10.0).values))
    with pytest.raises(ValueError, match="`threshold` = 'baseline'"):
        tolsim.time_to_recurrence(ds, threshold="baseline")
    with pytest.raises(ValueError, match="`threshold` = -1.0 cells"):
        tolsim.time_to_recurrence(ds, threshold=-1.0)
    for threshold in (None, np.array([1.0, 2.0]), object()):
        with pytest.raises(TypeError, match="`threshold` = .*expected 'size_at_withdrawal'"):
            tolsim.time_to_recurrence(ds, threshold=threshold)
    with pytest.raises(ValueError, match="`withdrawal_day` = 200.0"):
        tolsim.time_to_recurrence(ds, withdrawal_day=200.0)
    no_drug = tolsim.simulate(
        MODEL, {}, tolsim.Schedule.from_phases([{"days": 5.0}]), np.arange(6.0)
    )
    with pytest.raises(ValueError, match="never gives tamoxifen"):
        tolsim.time_to_recurrence(no_drug)
    assert float(tolsim.time_to_recurrence(no_drug, withdrawal_day=0.0, threshold=1.0)) == 0.0


def test_warns_when_a_breakpoint_falls_between_outputs():
    schedule = tolsim.Schedule.from_phases(
        [{"days": 20.0, "tamoxifen": 1.0}, {"days": 10.5, "inhibitor": 1.0}, {"days": 69.5}]
    )
    ds = tolsim.simulate(MODEL, {}, schedule, TIMES)
    with pytest.warns(UserWarning, match=r"level step\(s\) at day\(s\) \[30.5\]"):
        tolsim.time_to_recurrence(ds, threshold=1e4)


def test_warns_when_withdrawal_falls_between_outputs():
    ds = tolsim.simulate(MODEL, {}, SCHEDULE, np.arange(0.0, 101.0, 3.0))  # day 20 not an output
    with pytest.warns(UserWarning, match=r"the withdrawal day 20 is not an output day"):
        tolsim.time_to_recurrence(ds, threshold=1e4)


def test_derivative_jumps_mark_level_steps_not_doses():
    oral = tolsim.Schedule.oral(
        "tamoxifen",
        dose_mg=0.5,
        every_days=1.0,
        stop_day=5.0,
        pk=tolsim.PK.tamoxifen_mouse(),
        duration_days=10.0,
    )
    course = tolsim.Schedule.from_phases(
        [{"start_day": 3.0, "stop_day": 6.0, "inhibitor": 2.0}], duration_days=10.0
    )
    times = np.arange(11.0)
    jumps = tolsim.recurrence.derivative_jumps(oral | course, times)
    assert times[jumps].tolist() == [3.0, 6.0]  # not the dose days 1-4, nor days 0 and 10
    assert not tolsim.recurrence.derivative_jumps(oral, times).any()


def test_a_level_step_on_an_output_day_does_not_bend_the_interval_before_it():
    """The inhibitor starts at day 40, an output day, 12 days after withdrawal; N rises until
    then and falls after. dN/dt stored at day 40 is the falling right-hand one: as the end
    slope of [39, 40] it made the interpolant overshoot, and found a recurrence at day 39.5
    that never happens (3.97 days early; up to 0.5 days off for thresholds crossed in [39, 40])."""
    model = tolsim.models.TwoState(crowding="none")
    p = model.default_params(mu_E=1e-3, kappa_T=2.0, T0=1e4)
    schedule = inhibitor_after_withdrawal()
    pieces = [(0.0, 28.0, 1.0, 0.0), (28.0, 40.0, 0.0, 0.0), (40.0, 60.0, 0.0, 50.0),
              (60.0, 100.0, 0.0, 0.0)]  # fmt: skip

    def total(t):
        x = np.array([p["S0"], p["T0"]])
        for start, stop, tamoxifen, inhibitor in pieces:
            a = linear_two_state_matrix(p, tamoxifen, inhibitor)
            if t <= stop:
                return (scipy.linalg.expm(a * (t - start)) @ x).sum()
            x = scipy.linalg.expm(a * (stop - start)) @ x

    ds = tolsim.simulate(model, p, schedule, np.arange(101.0))
    assert ds.attrs["method"] == "exact"
    assert total(39.0) < total(40.0) and total(41.0) < total(40.0)  # the kink
    # thresholds crossed first in [39, 40] (the quadratic: O(h^3)) and after the dip (cubic)
    for level, crossed_in, tolerance in (
        (total(39.5), (39.0, 40.0), 2e-3),
        (total(39.9), (39.0, 40.0), 2e-3),
        (3.2e6, (43.0, 44.0), 1e-3),
    ):
        expected = brentq(lambda t, level=level: total(t) - level, *crossed_in, xtol=1e-12)
        got = float(tolsim.time_to_recurrence(ds, threshold=level))
        assert got + 28.0 == pytest.approx(expected, abs=tolerance)


def test_an_arms_result_keeps_each_arms_level_steps_when_the_withdrawal_day_is_given():
    """Passing `withdrawal_day` to an arms result skipped the per-arm path, so its schedules'
    level steps were lost: the interval ending at the inhibitor's start (a kink) took the
    right-hand slope and found a recurrence that never happens (day 39.5, not 43.x)."""
    model = tolsim.models.TwoState(crowding="none")
    p = model.default_params(mu_E=1e-3, kappa_T=2.0, T0=1e4)
    inhibitor = inhibitor_after_withdrawal()
    plain = tolsim.Schedule.from_phases([{"days": 28, "tamoxifen": 1.0}, {"days": 72}])
    times = np.arange(101.0)
    single = tolsim.simulate(model, p, inhibitor, times)
    level = 1.0005 * float(single.N.sel(time=40.0))  # not reached before the kink at day 40
    arms = tolsim.simulate_arms(model, p, {"inhibitor": inhibitor, "plain": plain}, times)
    by_arm = tolsim.time_to_recurrence(arms, threshold=level)
    given = tolsim.time_to_recurrence(arms, threshold=level, withdrawal_day=28.0)
    alone = float(tolsim.time_to_recurrence(single, threshold=level))
    assert float(by_arm.sel(arm="inhibitor")) == alone and alone > 12.0
    np.testing.assert_array_equal(given.values, by_arm.values)
    # a given day overrides each arm's own (here 30 instead of 28)
    later = tolsim.time_to_recurrence(arms, threshold=level, withdrawal_day=30.0)
    alone_later = float(tolsim.time_to_recurrence(single, threshold=level, withdrawal_day=30.0))
    assert float(later.sel(arm="inhibitor")) == alone_later
