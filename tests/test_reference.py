"""Agreement with scipy.integrate.solve_ivp, measured convergence order, stiffness switching."""

import numpy as np
import pytest
import scipy.linalg
from conftest import linear_two_state_matrix, two_state_rhs
from scipy.integrate import solve_ivp
from user_models import GrowthSwitch

import tolsim
from tolsim.simulate import ode_kernels

REFERENCE = dict(rtol=1e-10, atol=1e-12)


def reference_phases(params, schedule, times, crowding):
    """solve_ivp (DOP853, rtol 1e-10) piece by piece over in-vitro phases."""
    y = np.array([params["S0"], params["T0"]], dtype=float)
    out = np.empty((times.size, 2))
    bps = schedule.breakpoints()
    out[times == 0] = y
    for a, b in zip(bps[:-1], bps[1:], strict=True):
        c_tam, c_inh = schedule.concentrations(np.array([a]), ("tamoxifen", "inhibitor"))[0]
        mask = (times > a) & (times <= b)
        sol = solve_ivp(
            lambda t, y, ct=c_tam, ci=c_inh: two_state_rhs(y, params, ct, ci, crowding),
            (a, b),
            y,
            method="DOP853",
            t_eval=np.unique(np.r_[times[mask], b]),
            **REFERENCE,
        )
        out[mask] = sol.y[:, : mask.sum()].T
        y = sol.y[:, -1]
    return out


@pytest.mark.parametrize("crowding", ["logistic", "gompertz"])
def test_in_vitro_phases_match_solve_ivp(crowding):
    model = tolsim.models.TwoState(crowding=crowding)
    params = model.default_params(K=2e6, mu_E=0.01)
    schedule = tolsim.Schedule.from_phases(
        [
            {"days": 60, "tamoxifen": 1.0},
            {"days": 30, "tamoxifen": 1.0, "inhibitor": 5.0},
            {"days": 90},
        ]
    )
    times = np.arange(0.0, 181.0)
    ds = tolsim.simulate(model, params, schedule, times, rtol=1e-8, atol=1e-8)
    expected = reference_phases(params, schedule, times, crowding)
    np.testing.assert_allclose(ds.S.values, expected[:, 0], rtol=1e-5)
    np.testing.assert_allclose(ds.T.values, expected[:, 1], rtol=1e-5)


def test_oral_pk_matches_solve_ivp_with_drug_compartments():
    """Reference integrates the depot and central amounts as ODE states with dose jumps."""
    model = tolsim.models.TwoState()
    params = model.default_params(EC50_tam=0.5)
    pk = tolsim.PK.tamoxifen_mouse()
    dose_mg, every, stop = 0.5, 1.0, 20.0
    schedule = tolsim.Schedule.oral(
        "tamoxifen", dose_mg=dose_mg, every_days=every, stop_day=stop, pk=pk, duration_days=40.0
    )
    times = np.linspace(0.0, 40.0, 161)
    ds = tolsim.simulate(model, params, schedule, times, rtol=1e-8, atol=1e-8)

    def rhs(t, y):
        s, tol, depot, central = y
        c_tam = central * 1000.0 / (pk.volume_l * pk.molar_mass_g_per_mol)
        cells = two_state_rhs(np.array([s, tol]), params, c_tam, 0.0, "logistic")
        return [
            cells[0],
            cells[1],
            -pk.ka_per_day * depot,
            pk.ka_per_day * depot - pk.ke_per_day * central,
        ]

    y = np.array([params["S0"], params["T0"], 0.0, 0.0])
    bps = np.unique(np.r_[np.arange(0.0, stop, every), 40.0])
    expected = np.empty((times.size, 2))
    expected[0] = y[:2]
    for a, b in zip(bps[:-1], bps[1:], strict=True):
        if a < stop:
            y[2] += pk.bioavailability * dose_mg
        mask = (times > a) & (times <= b)
        sol = solve_ivp(
            rhs, (a, b), y, method="DOP853", t_eval=np.unique(np.r_[times[mask], b]), **REFERENCE
        )
        expected[mask] = sol.y[:2, : mask.sum()].T
        y = sol.y[:, -1]
    np.testing.assert_allclose(ds.S.values, expected[:, 0], rtol=1e-5)
    np.testing.assert_allclose(ds.T.values, expected[:, 1], rtol=1e-5)
    assert ds.attrs["method"] == "auto" and not bool(ds.switched_to_stiff)
    # at the default rtol the error stays near it: the first step after each dose restarts
    # below the absorption time, so no absorption peak is jumped over
    loose = tolsim.simulate(model, params, schedule, times, rtol=1e-6)
    np.testing.assert_allclose(loose.N.values, expected.sum(axis=1), rtol=2e-5)


def test_three_state_matches_solve_ivp():
    model = tolsim.models.ThreeState()
    params = model.default_params(rho=0.005, R0=5.0)
    schedule = tolsim.Schedule.from_phases([{"days": 50, "tamoxifen": 1.0}, {"days": 50}])
    times = np.arange(0.0, 101.0, 2.0)
    ds = tolsim.simulate(model, params, schedule, times, rtol=1e-8, atol=1e-8)

    def rhs(t, y, c_tam):
        s, tol, r = y
        p = dict(params, K=params["K"])
        g = 1 - (s + tol + r) / p["K"]
        # two-state part with crowding on S+T+R: rescale K so g matches
        base = two_state_rhs(np.array([s, tol]), dict(p, K=(s + tol) / (1 - g)), c_tam, 0.0)
        return [
            base[0],
            base[1] - p["rho"] * tol,
            p["rho"] * tol + (p["lambda_R"] * g - p["delta_R"]) * r,
        ]

    y = np.array([params["S0"], params["T0"], params["R0"]])
    expected = [y]
    for (a, b), c_tam in (((0.0, 50.0), 1.0), ((50.0, 100.0), 0.0)):
        t_eval = times[(times > a) & (times <= b)]
        sol = solve_ivp(rhs, (a, b), y, method="DOP853", t_eval=t_eval, args=(c_tam,), **REFERENCE)
        expected.extend(sol.y.T)
        y = sol.y[:, -1]
    got = np.stack([ds.S.values, ds.T.values, ds.R.values], axis=1)
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-5)


@pytest.mark.parametrize(("method", "order"), [(0, 5.0), (2, 4.0)])
def test_measured_convergence_order(method, order):
    """Fixed-step error against the exact (expm) solution: slope of log error vs log step."""
    model = tolsim.models.TwoState(crowding="none")
    params = model.default_params(lambda_S=0.6, mu_E=0.05, nu_off=0.3)
    schedule = tolsim.Schedule.from_phases([{"days": 30, "tamoxifen": 0.3}])
    kernels = ode_kernels(model, method)
    packed = model.pack(params)
    compiled = schedule.compile(model.drugs)
    x0 = model.initial_state(packed)
    exact = scipy.linalg.expm(linear_two_state_matrix(params, 0.3, 0.0) * 30.0) @ x0
    steps = np.array([48, 64, 96, 128, 192]) if method == 0 else np.array([40, 60, 80, 120, 160])
    errors = [
        np.max(
            np.abs(
                kernels.fixed_step(
                    x0, packed, compiled, model.stoichiometry.astype(float), 30.0, int(n), method
                )
                - exact
            )
            / exact
        )
        for n in steps
    ]
    slope = np.polyfit(np.log(30.0 / steps), np.log(errors), 1)[0]
    assert abs(slope - order) < 0.3, (slope, errors)


def test_rosenbrock_keeps_its_order_on_a_stiff_problem():
    """Switching at 1e4/day (eigenvalues -1.5e4 and 0.17) from A = 1e3, B = 0: with the
    Jacobian differenced through the right-hand side, B's column carried the rounding of the
    1e7-cell/day fluxes divided by B's tiny step, and the order fell from 4 to 1."""
    model = GrowthSwitch(logistic=False)
    params = model.default_params(switch_AB=1e4, switch_BA=5e3, A0=1e3, B0=0.0)
    kernels = ode_kernels(model, 2)
    packed = model.pack(params)
    compiled = tolsim.Schedule.from_phases([{"days": 5.0}]).compile(model.drugs)
    x0 = model.initial_state(packed)
    stoich = model.stoichiometry.astype(float)
    rates = np.zeros((2, 2))
    rates[0, 0] = params["birth_A"] - params["death_A"] - params["switch_AB"]
    rates[0, 1] = params["switch_BA"]
    rates[1, 0] = params["switch_AB"]
    rates[1, 1] = params["birth_B"] - params["death_B"] - params["switch_BA"]
    exact = scipy.linalg.expm(rates * 5.0) @ x0
    errors = [
        np.max(np.abs(kernels.fixed_step(x0, packed, compiled, stoich, 5.0, n, 2) - exact) / exact)
        for n in (20, 40, 80)
    ]
    slope = np.polyfit(np.log(5.0 / np.array([20, 40, 80])), np.log(errors), 1)[0]
    assert slope > 3.5 and errors[1] < 1e-7, (slope, errors)  # was: slope 1, 4e-4
    times = np.linspace(0.0, 5.0, 6)
    ds = tolsim.simulate(model, params, tolsim.Schedule(5.0), times, method="rosenbrock",
                         rtol=1e-9, atol=1e-9)  # fmt: skip
    reference = np.array([scipy.linalg.expm(rates * t) @ x0 for t in times])
    np.testing.assert_allclose(ds.A.values, reference[:, 0], rtol=1e-8)  # was 4.9e-8 off


@pytest.mark.parametrize("method", ["dopri5", "rosenbrock", "auto"])
def test_a_piece_a_few_ulps_long_does_not_stop_the_solver(method):
    """10.1 + 20.2 is 30.299999999999997: with an inhibitor from day 30.3 the schedule has a
    piece 3.6e-15 days long. Its one step, cut to that length, used to set the next piece's
    first step below the smallest allowed one: 'step size underflow' after day 30."""
    model = tolsim.models.TwoState()
    schedule = tolsim.Schedule.from_phases(
        [{"days": 10.1}, {"days": 20.2, "tamoxifen": 1.0}, {"days": 60.0}]
    ) | tolsim.Schedule.from_phases([{"start_day": 30.3, "stop_day": 60.0, "inhibitor": 5.0}])
    assert np.diff(schedule.breakpoints()).min() < 1e-14
    times = np.arange(0.0, 90.0)
    table = {"kappa_T": np.array([0.1, 0.2])}  # (lanes for dopri5 and auto)
    for lockstep in (False, True) if method == "dopri5" else (False,):
        ds = tolsim.simulate(model, table, schedule, times, method=method, lockstep=lockstep)
        assert np.all(ds.status.values == 0) and np.isfinite(ds.N.values).all()


@pytest.mark.parametrize("rtol", [1e-2, 1e-3])
def test_a_loose_tolerance_with_an_empty_state_and_a_large_inflow_starts(rtol):
    """T = 0 under a 5e11-cell/day inflow: Hairer's initial-step estimate (d1 divided by
    atol) came out below the smallest step for loose rtol, and the solve failed before its
    first step while rtol 1e-4 succeeded."""
    model = tolsim.models.TwoState()
    params = model.default_params(S0=1e12, K=1e13, T0=0.0, mu_E=0.5)
    schedule = tolsim.Schedule.from_phases([{"days": 30, "tamoxifen": 1.0}])
    tight = tolsim.simulate(model, params, schedule, [0.0, 30.0], rtol=1e-8, atol=1e-8)
    for method in ("dopri5", "rosenbrock", "auto"):
        ds = tolsim.simulate(model, params, schedule, [0.0, 30.0], method=method, rtol=rtol)
        assert int(ds.status) == 0
        assert float(ds.N[-1]) == pytest.approx(float(tight.N[-1]), rel=50 * rtol)


def test_stiff_problem_switches_to_rosenbrock():
    """Fast switching (1e3/day) with crowding: DOPRI5 is stability-bound, auto switches."""
    model = GrowthSwitch(logistic=True)
    params = dict(
        birth_A=0.5,
        death_A=0.05,
        birth_B=0.1,
        death_B=0.02,
        switch_AB=1e3,
        switch_BA=2e3,
        capacity=1e6,
        A0=100.0,
        B0=0.0,
    )
    schedule = tolsim.Schedule.from_phases([{"days": 20.0}])
    times = np.linspace(0, 20, 41)
    auto = tolsim.simulate(model, params, schedule, times, rtol=1e-6)
    explicit = tolsim.simulate(model, params, schedule, times, method="dopri5", rtol=1e-6)
    assert bool(auto.switched_to_stiff) and not bool(explicit.switched_to_stiff)
    assert int(auto.n_rhs_evaluations) * 50 < int(explicit.n_rhs_evaluations)

    def rhs(t, y):
        a, b = y
        g = 1 - (a + b) / 1e6
        return [
            0.5 * g * a - 0.05 * a - 1e3 * a + 2e3 * b,
            0.1 * g * b - 0.02 * b + 1e3 * a - 2e3 * b,
        ]

    sol = solve_ivp(
        rhs, (0, 20), [100.0, 0.0], method="Radau", t_eval=times, rtol=1e-12, atol=1e-10
    )
    np.testing.assert_allclose(auto.N.values, sol.y.sum(axis=0), rtol=5e-6)
    np.testing.assert_allclose(explicit.N.values, sol.y.sum(axis=0), rtol=1e-9)
