"""Datasets: ensembles equal single runs, files explain themselves, defaults fit MCF-7 data."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import tolsim

MODEL = tolsim.models.TwoState()
SCHEDULE = tolsim.Schedule.from_phases(
    [{"days": 60, "tamoxifen": 1.0}, {"days": 20, "inhibitor": 5.0}, {"days": 40}]
)
TIMES = np.arange(0.0, 121.0)


def test_parameter_table_equals_single_runs_bit_for_bit():
    rng = np.random.default_rng(1)
    table = {"mu_E": rng.uniform(0, 0.01, 6), "kappa_T": rng.uniform(0, 1, 6), "K": 5e6}
    ensemble = tolsim.simulate(MODEL, table, SCHEDULE, TIMES)
    assert ensemble.S.dims == ("sample", "time") and ensemble.sizes["sample"] == 6
    for i in range(6):
        single = tolsim.simulate(
            MODEL,
            MODEL.default_params(mu_E=table["mu_E"][i], kappa_T=table["kappa_T"][i], K=5e6),
            SCHEDULE,
            TIMES,
        )
        np.testing.assert_array_equal(ensemble.S.values[i], single.S.values)
        np.testing.assert_array_equal(ensemble.T.values[i], single.T.values)
        assert int(ensemble.n_steps[i]) == int(single.n_steps)
    rows = pd.DataFrame({k: np.broadcast_to(v, 6) for k, v in table.items()})
    frame = tolsim.simulate(MODEL, rows, SCHEDULE, TIMES)
    xr.testing.assert_identical(frame, ensemble)
    # a row of the table (a Series) is one parameter set, the same as its mapping
    row = tolsim.simulate(MODEL, rows.iloc[4], SCHEDULE, TIMES)
    xr.testing.assert_identical(
        row, tolsim.simulate(MODEL, rows.iloc[4].to_dict(), SCHEDULE, TIMES)
    )
    np.testing.assert_array_equal(row.N.values, ensemble.N.values[4])
    np.testing.assert_array_equal(
        ensemble.parameters.sel(parameter="kappa_T").values, table["kappa_T"]
    )


@pytest.mark.parametrize(
    ("model", "kernel"),
    [(MODEL, "lanes"), (tolsim.models.TwoState(crowding="none"), "one trajectory")],
)
def test_read_only_inputs_reuse_the_compiled_kernel(model, kernel):
    """A dataset's own times (a read-only view of xarray's index) and a read-only parameter
    table give the same dataset without compiling the kernel again for read-only arrays."""
    from tolsim.simulate import _METHOD_CODES, lane_kernels, ode_kernels

    exact = _METHOD_CODES["exact"]  # "auto" on a linear model without PK
    module = lane_kernels(model) if kernel == "lanes" else ode_kernels(model, exact)
    table = {"mu_E": np.array([0.001, 0.004]), "K": np.array([5e6, 8e6])}
    first = tolsim.simulate(model, table, SCHEDULE, TIMES)
    signatures = list(module.solve_batch.signatures)
    times = first.time.values
    assert not times.flags.writeable  # the case this test is about
    for column in table.values():
        column.setflags(write=False)
    again = tolsim.simulate(model, table, SCHEDULE, times)
    xr.testing.assert_identical(again, first)
    assert module.solve_batch.signatures == signatures


@pytest.mark.parametrize(
    ("model", "method", "lockstep"),
    [
        (tolsim.models.TwoState(crowding="none"), "exact", False),
        (MODEL, "rosenbrock", False),
        (MODEL, "dopri5", False),
        (MODEL, "dopri5", True),
        (tolsim.models.ThreeState(), "auto", False),
        (tolsim.models.ThreeState(), "auto", True),
    ],
)
def test_totals_are_the_sum_of_the_states_and_nan_when_extinct(model, method, lockstep):
    """``N`` and ``tolerant_fraction`` (computed in the kernels as each sample finishes) are
    the states' sum and the tolerant states' share bit for bit; 0/0 is NaN, not 0 or 1."""
    table = {"S0": np.array([1e5, 0.0, 3e4, 0.0]), "T0": np.array([50.0, 0.0, 0.0, 200.0])}
    ds = tolsim.simulate(model, table, SCHEDULE, TIMES, method=method, lockstep=lockstep)
    states = [ds[name].values for name in model.states]
    total = states[0].copy()
    for x in states[1:]:
        total += x
    tolerant = sum(ds[name].values for name in model.tolerant_states)
    np.testing.assert_array_equal(ds.N.values, total)
    extinct = total == 0.0
    assert extinct[1].all() and not extinct[[0, 2, 3]].any()
    np.testing.assert_array_equal(
        ds.tolerant_fraction.values[~extinct], tolerant[~extinct] / total[~extinct]
    )
    assert np.isnan(ds.tolerant_fraction.values[extinct]).all()
    assert ds.tolerant_fraction.values[2, 0] == 0.0 and ds.tolerant_fraction.values[3, 0] == 1.0


def test_dataset_records_everything_and_round_trips_netcdf(tmp_path):
    ds = tolsim.simulate(MODEL, MODEL.default_params(mu_E=0.002), SCHEDULE, TIMES)
    for name in (
        "S",
        "T",
        "N",
        "tolerant_fraction",
        "dN_dt",
        "tamoxifen_um",
        "inhibitor_um",
        "E_tam",
        "E_inh",
        "status",
        "n_steps",
        "parameters",
    ):
        assert name in ds, name
    assert ds.S.attrs["units"] == "cells" and ds.time.attrs["units"] == "days"
    assert ds.tamoxifen_um.attrs["units"] == "µM"
    assert json.loads(ds.attrs["model"])["options"] == {"crowding": "logistic"}
    assert json.loads(ds.attrs["params"])["mu_E"] == 0.002
    assert tolsim.Schedule.from_json(ds.attrs["schedule"]) == SCHEDULE
    assert ds.attrs["tolsim_version"] == tolsim.__version__
    assert ds.attrs["withdrawal_day"] == 60.0
    np.testing.assert_allclose(ds.N, ds.S + ds.T)
    np.testing.assert_allclose(ds.tolerant_fraction, ds.T / ds.N)
    np.testing.assert_allclose(ds.E_tam.sel(time=10.0), 1.0 / (1.0 + 0.1 / 1.0))
    assert float(ds.E_tam.sel(time=70.0)) == 0.0
    assert float(ds.inhibitor_um.sel(time=70.0)) == 5.0
    path = tmp_path / "run.nc"
    ds.to_netcdf(path)
    with xr.open_dataset(path) as back:
        xr.testing.assert_allclose(back.load(), ds)
        assert back.attrs == ds.attrs


def test_dN_dt_is_the_derivative_of_N():
    ds = tolsim.simulate(
        MODEL,
        MODEL.default_params(),
        SCHEDULE,
        np.arange(0.0, 120.0, 0.01),
        rtol=1e-10,
        atol=1e-10,
    )
    n = ds.N.values
    central = (n[2:] - n[:-2]) / 0.02
    inside = np.abs(ds.time.values[1:-1] % 20) > 0.02  # away from the phase switches
    np.testing.assert_allclose(
        ds.dN_dt.values[1:-1][inside],
        central[inside],
        rtol=1e-5,
        atol=1e-6 * np.abs(ds.dN_dt.values).max(),
    )


def test_defaults_are_plausible_for_mcf7():
    """Weekly fold expansion of the defaults against the vendored Magi et al. 2021 data.

    Passaged cultures never crowd, so the linear model is the right comparison. Weeks 1-2
    under tamoxifen are excluded: the model has no lag between drug and effect.
    """
    data = tolsim.datasets.magi2021_weekly_fold().fold_mean
    model = tolsim.models.TwoState(crowding="none")
    weeks = np.arange(0.0, 71.0, 7.0)

    def weekly_fold(phases):
        ds = tolsim.simulate(
            model, model.default_params(), tolsim.Schedule.from_phases(phases), weeks
        )
        return ds.N.values[1:] / ds.N.values[:-1]

    control = weekly_fold([{"days": 70}])
    np.testing.assert_allclose(control, data.sel(condition="control", week=slice(1, 10)), atol=0.5)
    assert abs(control.mean() - data.sel(condition="control").mean()) < 0.1
    treated = weekly_fold([{"days": 70, "tamoxifen": 1.0}])[2:]
    observed = data.sel(condition="tamoxifen", week=slice(3, 10)).values
    assert np.all(np.abs(treated - observed) < 0.4), (treated, observed)
    assert np.sqrt(np.mean((treated - observed) ** 2)) < 0.25
    assert treated[-1] > 2 * treated[0]  # tolerant cells take over and growth recovers


def test_model_parameters_are_documented():
    for model in (tolsim.models.TwoState(), tolsim.models.ThreeState()):
        for p in model.parameters:
            assert p.unit and p.description and p.source, p.name
            assert p.bounds[0] <= p.default <= p.bounds[1]
    names = tolsim.models.TwoState().parameter_names
    assert names == (
        "lambda_S",
        "lambda_T",
        "eps_S",
        "eps_T",
        "delta_S",
        "delta_T",
        "kappa_S",
        "kappa_T",
        "mu_0",
        "mu_E",
        "nu_0",
        "nu_off",
        "iota",
        "K",
        "EC50_tam",
        "h_tam",
        "EC50_inh",
        "h_inh",
        "S0",
        "T0",
    )
    three = tolsim.models.ThreeState()
    assert set(three.parameter_names) - set(names) == {"lambda_R", "delta_R", "rho", "R0"}
    assert three.stoichiometry.shape == (9, 3)


def test_user_model_stoichiometry_and_validation():
    from user_models import GrowthSwitch

    model = GrowthSwitch()
    np.testing.assert_array_equal(
        model.stoichiometry, [[1, 0], [-1, 0], [-1, 1], [1, -1], [0, 1], [0, -1]]
    )
    with pytest.raises(ValueError, match="changes unknown state 'C'"):
        tolsim.models.Model(
            name="bad",
            states=("A",),
            parameters=model.parameters[:1],
            transitions=(tolsim.models.Transition.of("x", C=1),),
            rates=model.rates,
            initial=(("A", "birth_A"),),
        )


def test_pellet_and_oral_concentrations_reach_the_dataset():
    pk = tolsim.PK.tamoxifen_mouse()
    schedule = tolsim.Schedule.pellet(
        "tamoxifen",
        release_mg_per_day=0.2,
        start_day=5.0,
        stop_day=40.0,
        pk=pk,
        duration_days=60.0,
    ) | tolsim.Schedule.oral(
        "inhibitor",
        dose_mg=1.0,
        every_days=2.0,
        start_day=10.0,
        stop_day=30.0,
        pk=pk,
        duration_days=60.0,
    )
    times = np.linspace(0.0, 60.0, 241)
    ds = tolsim.simulate(MODEL, MODEL.default_params(), schedule, times)
    expected = schedule.concentrations(times, ("tamoxifen", "inhibitor"))
    np.testing.assert_allclose(ds.tamoxifen_um, expected[:, 0], rtol=1e-12)
    np.testing.assert_allclose(ds.inhibitor_um, expected[:, 1], rtol=1e-12)
    steady = 0.2 / (pk.ke_per_day * pk.volume_l) * 1000.0 / pk.molar_mass_g_per_mol
    np.testing.assert_allclose(ds.tamoxifen_um.sel(time=40.0), steady, rtol=1e-6)
    hill = expected[:, 0] / (expected[:, 0] + 0.1)
    np.testing.assert_allclose(ds.E_tam, hill, rtol=1e-12)
    assert int(ds.status) == 0 and ds.attrs["withdrawal_day"] == 40.0


ARMS = {
    "tamoxifen": SCHEDULE,
    "longer tamoxifen": tolsim.Schedule.from_phases(
        [{"days": 80, "tamoxifen": 1.0}, {"days": 40}]
    ),
    "control": tolsim.Schedule.from_phases([{"days": 120}]),
}


def test_arms_are_the_single_runs_stacked_with_their_schedules_and_withdrawals():
    table = {"kappa_T": np.array([0.1, 0.4]), "mu_E": 1e-3}
    arms = tolsim.simulate_arms(MODEL, table, ARMS, TIMES, rtol=1e-8)
    assert arms.arm.values.tolist() == list(ARMS) and arms.N.dims == ("arm", "sample", "time")
    for name, schedule in ARMS.items():
        single = tolsim.simulate(MODEL, table, schedule, TIMES, rtol=1e-8)
        one = arms.sel(arm=name)
        for var in ("S", "T", "N", "dN_dt", "tamoxifen_um", "inhibitor_um"):
            np.testing.assert_array_equal(one[var].values, single[var].values)
        assert tolsim.Schedule.from_json(str(one.schedule.values)) == schedule
        expected_day = single.attrs.get("withdrawal_day", np.nan)
        np.testing.assert_equal(float(one.withdrawal_day), expected_day)
        days = tolsim.time_to_recurrence(arms, threshold=1e6).sel(arm=name)
        # one arm selected out of the stack: the same, from its own withdrawal day
        alone = tolsim.time_to_recurrence(one, threshold=1e6)
        np.testing.assert_array_equal(alone.values, days.values)
        if np.isnan(expected_day):  # the control arm never withdraws tamoxifen
            assert np.isnan(days.values).all()
        else:
            expected = tolsim.time_to_recurrence(single, threshold=1e6)
            np.testing.assert_array_equal(days.values, expected.values)
    assert arms.attrs["rtol"] == 1e-8 and "schedule" not in arms.attrs
    assert "withdrawal_day" not in arms.attrs  # per arm: the variable


def test_arms_do_not_depend_on_xarray_s_coming_combine_defaults():
    """xarray will change ``concat``'s and ``merge``'s defaults (``data_vars``, ``coords``,
    ``compat``, ``join``); tolsim's own combining passes its choices, so stacked arms, their
    recurrence days and probabilities are identical under the new defaults."""
    import xarray as xr

    table = {"kappa_T": np.array([0.1, 0.4]), "mu_E": 1e-3}
    linear = tolsim.models.TwoState(crowding="none")
    stochastic = dict(method="ssa", paths=6, seed=2, recurrence_threshold=50.0)
    params = linear.default_params(S0=0, T0=5)

    def run():
        arms = tolsim.simulate_arms(MODEL, table, ARMS, TIMES)
        courses = {
            f"{days} days": tolsim.Schedule.from_phases(
                [{"days": days, "tamoxifen": 1.0}, {"days": 30 - days}]
            )
            for days in (10, 15)
        }
        paths = tolsim.simulate_arms(linear, params, courses, [0.0, 15.0, 30.0], **stochastic)
        return (
            arms, tolsim.time_to_recurrence(arms, threshold=1e6),
            tolsim.recurrence_probability(paths, horizon=15.0),
            tolsim.extinction_probability(paths, states=["T"]),
        )  # fmt: skip

    before = run()
    with xr.set_options(use_new_combine_kwarg_defaults=True):
        after = run()
    for old, new in zip(before, after, strict=True):
        xr.testing.assert_identical(old, new)


def test_stochastic_arms_share_their_random_streams():
    linear = tolsim.models.TwoState(crowding="none")
    params = linear.default_params(S0=60, T0=4)
    short = {
        "off": tolsim.Schedule.from_phases([{"days": 20}]),
        "also off": tolsim.Schedule.from_phases([{"days": 20}]),
        "tamoxifen": tolsim.Schedule.from_phases([{"days": 20, "tamoxifen": 1.0}]),
    }
    arms = tolsim.simulate_arms(
        linear, params, short, [0.0, 10.0, 20.0], method="ssa", paths=8, seed=3, dim="regimen"
    )
    assert arms.N.dims == ("regimen", "path", "time")
    # the same schedule under the same seed: the same paths (common random numbers)
    np.testing.assert_array_equal(
        arms.N.sel(regimen="off").values, arms.N.sel(regimen="also off").values
    )
    single = tolsim.simulate(
        linear, params, short["tamoxifen"], [0.0, 10.0, 20.0], method="ssa", paths=8, seed=3
    )
    np.testing.assert_array_equal(arms.N.sel(regimen="tamoxifen").values, single.N.values)


def test_arms_refuse_what_is_not_a_mapping_of_schedules():
    with pytest.raises(TypeError, match="`schedules` is list: expected a non-empty mapping"):
        tolsim.simulate_arms(MODEL, {}, [SCHEDULE], TIMES)
    with pytest.raises(TypeError, match="`schedules` is an empty mapping: expected"):
        tolsim.simulate_arms(MODEL, {}, {}, TIMES)
    with pytest.raises(TypeError, match=r"`schedules\['b'\]` = 3: expected a tolsim.Schedule"):
        tolsim.simulate_arms(MODEL, {}, {"a": SCHEDULE, "b": 3}, TIMES)
    with pytest.raises(ValueError, match="`dim` = 'time' is already a name in the result"):
        tolsim.simulate_arms(MODEL, {}, ARMS, TIMES, dim="time")
    short = {**ARMS, "short": tolsim.Schedule.from_phases([{"days": 30, "tamoxifen": 1.0}])}
    with pytest.raises(ValueError, match=r"arm 'short': `times` ends at day 120.0, after"):
        tolsim.simulate_arms(MODEL, {}, short, TIMES)


def test_arms_solved_by_different_methods_keep_each_arm_s_method():
    # a linear model: "auto" solves the in-vitro arm exactly, the arm with PK dosing by DOPRI5
    linear = tolsim.models.TwoState(crowding="none")
    pk_arm = tolsim.Schedule.oral(
        "tamoxifen", dose_mg=0.5, every_days=1.0, stop_day=60.0, duration_days=120.0,
        pk=tolsim.PK.tamoxifen_mouse(),
    )  # fmt: skip
    arms = {"in vitro": ARMS["tamoxifen"], "oral": pk_arm}
    stacked = tolsim.simulate_arms(linear, {}, arms, TIMES)
    assert stacked["method"].dims == ("arm",)
    assert stacked["method"].values.tolist() == ["exact", "auto"]
    assert "method" not in stacked.attrs and stacked.attrs["rtol"] == 1e-6
    for name, schedule in arms.items():
        single = tolsim.simulate(linear, {}, schedule, TIMES)
        assert str(stacked["method"].sel(arm=name).values) == single.attrs["method"]
    # time_to_recurrence still reads each arm's withdrawal day and schedule
    days = tolsim.time_to_recurrence(stacked, threshold=1e7)
    for name, schedule in arms.items():
        single = tolsim.simulate(linear, {}, schedule, TIMES)
        expected = float(tolsim.time_to_recurrence(single, threshold=1e7))
        assert 0.0 < expected < 60.0
        assert float(days.sel(arm=name)) == expected
    # arms that agree keep it an attribute
    same = tolsim.simulate_arms(linear, {}, {"a": pk_arm, "b": pk_arm}, TIMES)
    assert same.attrs["method"] == "auto" and "method" not in same


@pytest.mark.parametrize("dim", ["schedule", "withdrawal_day"])
def test_arms_refuse_a_dim_named_like_a_per_arm_variable(dim):
    # the arm names were replaced by the schedules' JSON or the withdrawal days
    with pytest.raises(ValueError, match=f"`dim` = '{dim}' is the name of a per-arm variable"):
        tolsim.simulate_arms(MODEL, {}, ARMS, TIMES, dim=dim)


def test_results_of_other_schedules_combined_by_xarray_are_refused_not_misread():
    """xr.concat keeps the first result's attrs: recurrence of samples of another schedule
    was measured from the first one's withdrawal day (0.86 days for 16.9, no error). Their
    ``recorded_sha256`` coordinates differ, so the combination is refused; results of one
    schedule still combine (and read back from NetCDF) with the same answers."""
    early = tolsim.Schedule.from_phases([{"days": 40, "tamoxifen": 1.0}, {"days": 80}])
    table = {"kappa_T": [0.1, 0.3]}
    a = tolsim.simulate(MODEL, table, SCHEDULE, TIMES)
    b = tolsim.simulate(MODEL, table, early, TIMES)
    mixed = xr.concat([a, b], "sample", data_vars="all", coords="different", compat="equals")
    with pytest.raises(ValueError, match="combines results of different schedules"):
        tolsim.time_to_recurrence(mixed, threshold=1e6)
    same = xr.concat([a, a], "sample", data_vars="all", coords="different", compat="equals")
    expected = tolsim.time_to_recurrence(a, threshold=1e6).values
    np.testing.assert_array_equal(
        tolsim.time_to_recurrence(same, threshold=1e6).values, np.tile(expected, 2)
    )
    relabelled = a.assign_attrs(withdrawal_day=40.0)  # attrs that are not the run's
    with pytest.raises(ValueError, match="not those it was simulated with"):
        tolsim.time_to_recurrence(relabelled, threshold=1e6)


def test_arms_results_combined_along_samples_keep_their_arms(tmp_path):
    """Two simulate_arms results concatenated along ``sample`` (xarray's default gives the
    per-arm variables a sample dim) give each arm's recurrence as one call with all samples;
    arms that differ between the parts are refused."""
    arms = {
        "late": SCHEDULE,
        "early": tolsim.Schedule.from_phases([{"days": 40, "tamoxifen": 1.0}, {"days": 80}]),
    }
    first = tolsim.simulate_arms(MODEL, {"kappa_T": [0.1, 0.3]}, arms, TIMES)
    second = tolsim.simulate_arms(MODEL, {"kappa_T": [0.5]}, arms, TIMES)
    both = xr.concat(
        [first, second], "sample", data_vars="all", coords="different", compat="equals"
    )
    assert both.withdrawal_day.dims == ("sample", "arm")
    direct = tolsim.simulate_arms(MODEL, {"kappa_T": [0.1, 0.3, 0.5]}, arms, TIMES)
    np.testing.assert_array_equal(
        tolsim.time_to_recurrence(both, threshold=1e6).transpose("arm", "sample").values,
        tolsim.time_to_recurrence(direct, threshold=1e6).transpose("arm", "sample").values,
    )
    swapped = tolsim.simulate_arms(MODEL, {"kappa_T": [0.5]}, dict(reversed(arms.items())), TIMES)
    other = xr.concat(
        [first, swapped.assign_coords(arm=list(arms))],
        "sample",
        data_vars="all",
        coords="different",
        compat="equals",
    )
    with pytest.raises(ValueError, match="differs along 'sample'"):
        tolsim.time_to_recurrence(other, threshold=1e6)


def test_dataarrays_of_different_runs_still_combine():
    """The provenance record is a data variable, not a coordinate: DataArrays taken from
    runs of different schedules go into one Dataset as before (a coordinate clashed)."""
    early = tolsim.Schedule.from_phases([{"days": 40, "tamoxifen": 1.0}, {"days": 80}])
    a = tolsim.simulate(MODEL, MODEL.default_params(), SCHEDULE, TIMES)
    b = tolsim.simulate(MODEL, MODEL.default_params(), early, TIMES)
    both = xr.Dataset({"late": a.N, "early": b.N})
    np.testing.assert_array_equal(both.early.values, b.N.values)
    assert xr.merge([a.N.rename("late"), b.N.rename("early")]).sizes == {"time": TIMES.size}
