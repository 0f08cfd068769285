"""Exact solutions: exponential and logistic growth, linear switching via scipy's expm."""

import numpy as np
import pytest
import scipy.linalg
from conftest import linear_two_state_matrix
from hypothesis import example, given, settings
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
    # a 2x2 matrix with complex eigenvalues takes the Padé branch too
    a = np.array([[0.3, -2.0], [1.5, -0.4]])
    np.testing.assert_allclose(expm(a), scipy.linalg.expm(a), rtol=1e-13)


def expm_2x2_decimal(a) -> np.ndarray:
    """``expm(a)`` of a float 2x2 matrix to 60 digits (Taylor series with scaling and
    squaring in ``decimal``): a reference for every entry, tiny ones included."""
    from decimal import Decimal, localcontext

    with localcontext() as ctx:
        ctx.prec = 60
        x = [[Decimal(float(a[i, j])) for j in range(2)] for i in range(2)]
        norm = max(abs(x[0][0]) + abs(x[1][0]), abs(x[0][1]) + abs(x[1][1]))
        squarings = 0
        while norm > Decimal("0.01"):
            norm /= 2
            squarings += 1
        x = [[v / 2**squarings for v in row] for row in x]
        term = [[Decimal(1), Decimal(0)], [Decimal(0), Decimal(1)]]
        total = [row[:] for row in term]
        for k in range(1, 30):
            term = [[sum(term[i][m] * x[m][j] for m in range(2)) / k for j in range(2)]
                    for i in range(2)]  # fmt: skip
            total = [[total[i][j] + term[i][j] for j in range(2)] for i in range(2)]
        for _ in range(squarings):
            total = [[sum(total[i][m] * total[m][j] for m in range(2)) for j in range(2)]
                     for i in range(2)]  # fmt: skip
        return np.array([[float(v) for v in row] for row in total])


magnitudes = st.one_of(
    st.just(0.0), st.floats(1e-9, 300.0).flatmap(lambda m: st.sampled_from([m, -m]))
)


@settings(max_examples=60, deadline=None)
@given(p=magnitudes, q=magnitudes, r=magnitudes, t=magnitudes)
@example(p=-100.0, q=1e-3, r=1e-3, t=0.0)  # x + d = 1e-8 from x = 50.00000001: cancels
@example(p=0.0, q=2e-3, r=1e-3, t=-100.0)  # the same with d > 0
@example(p=0.3, q=0.1, r=0.05, t=-0.2)  # x below 0.5: the series
@example(p=-0.35, q=0.002, r=0.001, t=0.02)  # a two-state rate matrix, one day
def test_2x2_expm_closed_form_is_accurate_in_every_entry(p, q, r, t):
    """The closed form for 2x2 matrices with real eigenvalues (q r >= 0) against a 60-digit
    reference, entry by entry: relative error within the rounding of the exponents
    (eps * (|s| + x), times a few), where Padé's error is normwise only; and every entry of
    the exponential of a Metzler matrix (off-diagonal >= 0: a rate matrix) non-negative."""
    from tolsim.kernels.linalg import expm

    if q * r < 0:
        q = -q
    a = np.array([[p, q], [r, t]])
    expected = expm_2x2_decimal(a)
    got = expm(a)
    norm = np.abs(a).sum(axis=0).max()
    tolerance = 1e-15 * (16.0 + 4.0 * norm)
    nonzero = expected != 0.0
    np.testing.assert_array_less(
        np.abs(got - expected)[nonzero], tolerance * np.abs(expected[nonzero]) + 1e-300
    )
    assert (got[~nonzero] == 0.0).all()
    if q >= 0.0 and r >= 0.0:
        assert (got >= 0.0).all()


def test_2x2_expm_keeps_the_tiny_entries_of_a_stiff_matrix():
    """exp([[-100, 0], [1, 0]]) has e^-100 in its corner: the closed form gets it to the
    last bits; a normwise method may return anything of size 1e-16 there."""
    from tolsim.kernels.linalg import expm

    got = expm(np.array([[-100.0, 0.0], [1.0, 0.0]]))
    np.testing.assert_allclose(got[0, 0], np.exp(-100.0), rtol=1e-14)
    np.testing.assert_allclose(got[1, 0], -np.expm1(-100.0) / 100.0, rtol=1e-14)
    assert got[0, 1] == 0.0 and got[1, 1] == 1.0


def test_an_empty_state_whose_growth_overflows_leaves_the_others_exact():
    """S = 0 with no switching and one 4,200-day output spacing: S's own growth factor
    overflows (e^1260), and inf x 0 made every entry NaN, so the exact path reported a
    non-finite state where T(t) = T0 e^((lambda_T - delta_T) t) and S stays 0."""
    from tolsim.kernels.linalg import expm

    got = expm(np.array([[0.3, 0.0], [0.0, 0.01]]) * 4200.0)
    assert got[0, 0] == np.inf and got[0, 1] == 0.0 and got[1, 0] == 0.0
    assert got[1, 1] == pytest.approx(np.exp(42.0), rel=1e-14)
    model = tolsim.models.TwoState(crowding="none")
    params = model.default_params(
        S0=0.0, T0=5.0, mu_0=0.0, mu_E=0.0, nu_0=0.0, nu_off=0.0, lambda_T=0.03
    )
    ds = tolsim.simulate(model, params, tolsim.Schedule(4200.0), [0.0, 4200.0], method="exact")
    net = params["lambda_T"] - params["delta_T"]
    assert ds.S.values.tolist() == [0.0, 0.0]
    assert float(ds.T[-1]) == pytest.approx(5.0 * np.exp(net * 4200.0), rel=1e-12)
