"""Exact solutions: exponential and logistic growth, linear switching via scipy's expm."""

import numpy as np
import pytest
import scipy.linalg
from conftest import linear_two_state_matrix
from hypothesis import given, settings
from hypothesis import strategies as st
from user_models import GrowthSwitch

import tolsim

DRUG_FREE = tolsim.Schedule.from_phases([{"days": 40.0}])


def single_population(**overrides):
    params = dict(birth_A=0.4, death_A=0.1, switch_AB=0.0, switch_BA=0.0, A0=50.0, B0=0.0)
    params.update(overrides)
    return params


@pytest.mark.parametrize(
    ("method", "rtol", "tolerance"),
    [("exact", 1e-6, 1e-12), ("dopri5", 1e-8, 1e-6), ("rosenbrock", 1e-8, 5e-7)],
)
def test_exponential_growth(method, rtol, tolerance):
    model = GrowthSwitch()
    times = np.linspace(0, 40, 81)
    ds = tolsim.simulate(model, single_population(), DRUG_FREE, times, method=method, rtol=rtol)
    expected = 50.0 * np.exp(0.3 * times)
    np.testing.assert_allclose(ds.A.values, expected, rtol=tolerance)
    np.testing.assert_allclose(ds.dN_dt.values, 0.3 * expected, rtol=tolerance)
    assert ds.attrs["method"] == method


def test_exact_path_on_output_spacings_that_differ_in_the_last_bits():
    """Spacings alternating h (1 ± 4e-13), as np.linspace grids differ: the exact path reuses
    its propagator with a first-order correction and stays exact (reusing it uncorrected
    would be off by ~r t 4e-13 = 3e-11 here)."""
    model = GrowthSwitch()
    spacing = 0.25 * (1.0 + 4e-13 * (-1.0) ** np.arange(160))
    times = np.concatenate([[0.0], np.cumsum(spacing)])
    assert np.unique(np.diff(times)).size > 1  # the case this test is about
    params = single_population(birth_A=2.0, death_A=0.1)
    ds = tolsim.simulate(model, params, DRUG_FREE, times, method="exact")
    np.testing.assert_allclose(ds.A.values, 50.0 * np.exp(1.9 * times), rtol=2e-13)


@pytest.mark.parametrize("method", ["auto", "dopri5", "rosenbrock"])
def test_logistic_growth(method):
    model = GrowthSwitch(logistic=True)
    birth, death, capacity, a0 = 0.5, 0.1, 1e6, 10.0
    params = single_population(birth_A=birth, death_A=death, capacity=capacity, A0=a0)
    times = np.linspace(0, 40, 161)
    ds = tolsim.simulate(model, params, DRUG_FREE, times, method=method, rtol=1e-9, atol=1e-9)
    # division b (1 - A/K) A minus death d A is logistic with rate b - d and capacity K (1 - d/b)
    rate, limit = birth - death, capacity * (1 - death / birth)
    expected = limit / (1 + (limit / a0 - 1) * np.exp(-rate * times))
    tolerance = 1e-7
    np.testing.assert_allclose(ds.A.values, expected, rtol=tolerance)


def phase_schedule():
    return tolsim.Schedule.from_phases(
        [
            {"days": 30.0, "tamoxifen": 1.0},
            {"days": 20.0, "tamoxifen": 1.0, "inhibitor": 3.0},
            {"days": 50.0},
        ]
    )


def expm_reference(params, schedule, times):
    """Propagate phase by phase with scipy.linalg.expm of the hand-written rate matrix."""
    out = []
    x_start = np.array([params["S0"], params["T0"]])
    phases = schedule.phases
    for t in times:
        x = x_start.copy()
        elapsed = 0.0
        for phase in phases:
            levels = phase.levels_um
            span = min(t, phase.stop_day) - phase.start_day
            if span <= 0:
                break
            a = linear_two_state_matrix(
                params, levels.get("tamoxifen", 0.0), levels.get("inhibitor", 0.0)
            )
            x = scipy.linalg.expm(a * span) @ x
            elapsed += span
        out.append(x)
    return np.array(out)


def test_linear_switching_matches_expm_per_phase():
    model = tolsim.models.TwoState(crowding="none")
    params = model.default_params(mu_E=0.01, nu_off=0.2)
    schedule = phase_schedule()
    times = np.linspace(0, 100, 201)
    expected = expm_reference(params, schedule, times)
    exact = tolsim.simulate(model, params, schedule, times)
    assert exact.attrs["method"] == "exact"
    np.testing.assert_allclose(exact.S.values, expected[:, 0], rtol=1e-11)
    np.testing.assert_allclose(exact.T.values, expected[:, 1], rtol=1e-11)
    rk = tolsim.simulate(model, params, schedule, times, method="dopri5", rtol=1e-9, atol=1e-9)
    # the exact path equals the Runge-Kutta path
    np.testing.assert_allclose(rk.S.values, exact.S.values, rtol=1e-6)
    np.testing.assert_allclose(rk.T.values, exact.T.values, rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0.25, 0.5, 0.5 * (1 + 3e-13), 1.0, 1.7]), st.integers(1, 9)),
        min_size=1,
        max_size=12,
    ),
    st.floats(0.0, 0.02),
)
def test_exact_path_matches_expm_on_mixed_output_grids(runs, mu_e):
    """Runs of equal spacings (propagated in blocks), spacings a few ulps apart (the corrected
    propagator) and changes of spacing, across the phases' breakpoints: every output equals
    scipy's expm from the phase start to 1e-11."""
    model = tolsim.models.TwoState(crowding="none")
    params = model.default_params(mu_E=mu_e, nu_off=0.2)
    steps = np.concatenate([np.full(count, spacing) for spacing, count in runs])
    times = np.concatenate([[0.0], np.cumsum(steps)])
    times = times[times <= 100.0]
    ds = tolsim.simulate(model, params, phase_schedule(), times, method="exact")
    expected = expm_reference(params, phase_schedule(), times)
    np.testing.assert_allclose(ds.S.values, expected[:, 0], rtol=1e-11)
    np.testing.assert_allclose(ds.T.values, expected[:, 1], rtol=1e-11)


def test_exact_three_state_matches_expm():
    model = tolsim.models.ThreeState(crowding="none")
    params = model.default_params(rho=0.01, R0=10.0)
    schedule = phase_schedule()
    times = np.array([0.0, 10.0, 30.0, 45.0, 100.0])
    ds = tolsim.simulate(model, params, schedule, times)
    x = np.array([params["S0"], params["T0"], params["R0"]])
    expected = [x]
    clock = 0.0
    for t in times[1:]:
        for phase in schedule.phases:
            lo, hi = max(phase.start_day, clock), min(phase.stop_day, t)
            if hi <= lo:
                continue
            levels = phase.levels_um
            a = np.zeros((3, 3))
            a[:2, :2] = linear_two_state_matrix(
                params, levels.get("tamoxifen", 0.0), levels.get("inhibitor", 0.0)
            )
            a[1, 1] -= params["rho"]
            a[2, 1] = params["rho"]
            a[2, 2] = params["lambda_R"] - params["delta_R"]
            x = scipy.linalg.expm(a * (hi - lo)) @ x
        clock = t
        expected.append(x)
    got = np.stack([ds.S.values, ds.T.values, ds.R.values], axis=1)
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-11)


def test_kernel_expm_matches_scipy():
    from tolsim.kernels.linalg import expm

    rng = np.random.default_rng(7)
    for scale in (1e-3, 1.0, 30.0, 400.0):
        a = rng.normal(size=(3, 3)) * scale
        np.testing.assert_allclose(expm(a), scipy.linalg.expm(a), rtol=1e-10, atol=1e-300)
