"""Observables and noise models (issue 4, items 2 and 3): exact values, scipy.stats likelihoods,
censoring, residuals, and the errors they promise."""

import doctest
import math
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import tolsim
from tolsim import observe
from tolsim.models.base import Parameter
from tolsim.observe import (
    Combined,
    LogNormal,
    Normal,
    Observable,
    Proportional,
    Trajectory,
    fold_expansion,
    luminescence,
    time_to_recurrence,
    tolerant_fraction,
    total_cells,
    tumour_volume,
)

DAYS = np.array([0.0, 7.0, 14.0, 21.0, 28.0])
S = np.array([1000.0, 2500.0, 4000.0, 9000.0, 15000.0])
T = np.array([10.0, 40.0, 250.0, 300.0, 1000.0])


@pytest.fixture
def traj():
    n = S + T
    values = {"S": S, "T": T, "N": n, "tolerant_fraction": T / n, "dN_dt": np.zeros(5)}
    return Trajectory(DAYS, values, None)


# -- observables on a hand-made trajectory ------------------------------------------------


def test_total_cells_and_tolerant_fraction(traj):
    days = np.array([28.0, 7.0])
    np.testing.assert_array_equal(total_cells().predict(traj, days), [16000.0, 2540.0])
    np.testing.assert_array_equal(tolerant_fraction().predict(traj, days), [1 / 16, 40 / 2540])


def test_tumour_volume_and_luminescence(traj):
    days = np.array([0.0, 14.0])
    cells = np.array([1010.0, 4250.0])
    np.testing.assert_array_equal(tumour_volume().predict(traj, days), 1e-6 * cells)
    np.testing.assert_array_equal(
        tumour_volume().predict(traj, days, {"v_cell": 2e-6}), 2e-6 * cells
    )
    lum = luminescence()
    np.testing.assert_array_equal(
        lum.predict(traj, days, {"alpha": 3.0, "offset": 50.0}), [3080.0, 12800.0]
    )
    np.testing.assert_array_equal(lum.predict(traj, days), [1010.0, 4250.0])  # defaults 1, 0


def test_fold_expansion_by_hand(traj):
    n = S + T
    days = np.array([7.0, 14.0, 21.0, 28.0])
    expected = [n[1] / n[0], n[2] / n[1], n[3] / n[2], n[4] / n[3]]
    np.testing.assert_allclose(fold_expansion().predict(traj, days), expected, rtol=1e-15)
    two_weeks = fold_expansion(lag_days=14.0, name="fold_two_weeks")
    np.testing.assert_allclose(two_weeks.predict(traj, [28.0]), [n[4] / n[2]], rtol=1e-15)


def test_required_days():
    fold = fold_expansion(lag_days=7.0)
    np.testing.assert_array_equal(fold.required_days([21.0, 7.0, 14.0, 14.0]), [0, 7, 14, 21])
    np.testing.assert_array_equal(fold.required_days([10.5]), [3.5, 10.5])
    np.testing.assert_array_equal(total_cells().required_days([5.0, 1.0, 5.0]), [1.0, 5.0])
    two = Observable("two_lags", "1", lambda tr, d, p: d, lags_days=(1, 3))
    np.testing.assert_array_equal(two.required_days([4.0, 6.0]), [1, 3, 4, 5, 6])
    assert time_to_recurrence().required_days([10.0]).shape == (0,)


def test_required_days_cover_what_predict_reads(traj):
    fold = fold_expansion()
    days = np.array([14.0, 28.0])
    needed = fold.required_days(days)
    n = S + T
    sub = Trajectory(needed, {"N": n[np.searchsorted(DAYS, needed)]}, None)
    np.testing.assert_array_equal(fold.predict(sub, days), fold.predict(traj, days))


def test_trajectory_at_missing_day_and_name(traj):
    with pytest.raises(ValueError, match=r"day\(s\) \[3.5, 30.0\] are not output days"):
        traj.at("N", np.array([7.0, 3.5, 30.0]))
    with pytest.raises(ValueError, match="`name` = 'R': the trajectory has no such values"):
        traj.at("R", np.array([7.0]))
    with pytest.raises(ValueError, match="not output days"):
        fold_expansion().predict(traj, [10.0])


def test_user_defined_observable(traj):
    def ratio(trajectory, days, params):
        return params["scale"] * trajectory.at("S", days) / trajectory.at("T", days)

    scale = Parameter("scale", "1", 1.0, (0.1, 10.0))
    st_ratio = Observable("sensitive_to_tolerant", "1", ratio, (scale,))
    np.testing.assert_array_equal(st_ratio.predict(traj, [0.0, 14.0]), [100.0, 16.0])
    np.testing.assert_array_equal(st_ratio.predict(traj, [0.0], {"scale": 2.0}), [200.0])
    assert st_ratio.parameter_names == ("sensitive_to_tolerant.scale",)
    with pytest.raises(ValueError, match=r"unknown parameter name\(s\) \['alpha'\]"):
        st_ratio.predict(traj, [0.0], {"alpha": 1.0})
    wrong_shape = Observable("bad", "1", lambda tr, d, p: np.zeros(2))
    with pytest.raises(ValueError, match="returned shape"):
        wrong_shape.predict(traj, [0.0, 7.0, 14.0])


def test_parameter_naming_rule():
    lum = luminescence()
    assert lum.parameter_names == ("luminescence.alpha", "luminescence.offset")
    names = [p.name for p in lum.fit_parameters(Combined())]
    assert names == [
        "luminescence.alpha",
        "luminescence.offset",
        "luminescence.sigma_abs",
        "luminescence.sigma_rel",
    ]
    plate2 = luminescence(name="luminescence_plate2")
    assert set(plate2.parameter_names).isdisjoint(lum.parameter_names)
    model = tolsim.models.ThreeState()
    for obs in (lum, tumour_volume(), fold_expansion(), time_to_recurrence()):
        qualified = {p.name for p in obs.fit_parameters(Normal())}
        assert qualified.isdisjoint(model.parameter_names)
    values = {"luminescence.alpha": 2.5, "luminescence.sigma": 0.3, "lambda_S": 0.7}
    assert lum.local_params(values, Normal()) == (
        {"alpha": 2.5, "offset": 0.0},
        {"sigma": 0.3},
    )
    clash = Observable(
        "clash", "1", lambda tr, d, p: d, (Parameter("sigma", "1", 1.0, (0.0, 2.0)),)
    )
    with pytest.raises(ValueError, match=r"both have parameter\(s\) \['sigma'\]"):
        clash.fit_parameters(Normal())
    with pytest.raises(ValueError, match="without '.'"):
        Observable("lum.plate", "RLU", lambda tr, d, p: d)
    with pytest.raises(ValueError, match="local name without '.'"):
        Observable("x", "1", lambda tr, d, p: d, (Parameter("a.b", "1", 1.0, (0.0, 2.0)),))


def test_observables_pickle(traj):
    for obs in (luminescence(), fold_expansion(3.5), time_to_recurrence(1e3), total_cells()):
        again = pickle.loads(pickle.dumps(obs))
        assert again == obs
    fold = pickle.loads(pickle.dumps(fold_expansion()))
    np.testing.assert_array_equal(
        fold.predict(traj, [14.0]), fold_expansion().predict(traj, [14.0])
    )


# -- time to recurrence -------------------------------------------------------------------


def _regrowth(t, withdrawal, n_w, decay, rate):
    """Decline before withdrawal, exponential regrowth after, with exact derivatives."""
    n = np.where(t < withdrawal, n_w * np.exp(decay * (withdrawal - t)), n_w)
    n = np.where(t >= withdrawal, n_w * np.exp(rate * (t - withdrawal)), n)
    dn = np.where(t >= withdrawal, rate * n, -decay * n)
    return n, dn


def test_time_to_recurrence_exponential_regrowth():
    withdrawal, n_w, rate = 30.0, 1e5, 0.23
    t = np.arange(0.0, 90.05, 0.1)
    n, dn = _regrowth(t, withdrawal, n_w, 0.05, rate)
    traj = Trajectory(t, {"N": n, "dN_dt": dn}, withdrawal)
    threshold = 3.7e6
    exact = math.log(threshold / n_w) / rate
    got = time_to_recurrence(threshold=threshold).predict(traj, np.array([40.0, 90.0]))
    assert got.shape == (2,) and got[0] == got[1]
    assert abs(got[0] - exact) < 1e-6
    assert time_to_recurrence(threshold=1e3).predict(traj, [0.0])[0] == 0.0  # exceeded already
    assert time_to_recurrence(threshold=1e12).predict(traj, [0.0])[0] == np.inf


def test_time_to_recurrence_size_at_withdrawal_after_a_dip():
    # N = N_w (1 - 0.01 tau (10 - tau)) after withdrawal: back to N_w at tau = 10 exactly;
    # a quadratic is reproduced exactly by the cubic Hermite interpolant.
    withdrawal, n_w = 21.0, 5e4
    t = np.arange(0.0, 60.0, 0.3)
    tau = t - withdrawal
    n = np.where(tau >= 0, n_w * (1 - 0.01 * tau * (10 - tau)), n_w)
    dn = np.where(tau >= 0, n_w * 0.01 * (2 * tau - 10), 0.0)
    traj = Trajectory(t, {"N": n, "dN_dt": dn}, withdrawal)
    got = time_to_recurrence().predict(traj, [31.0])[0]
    assert abs(got - 10.0) < 1e-9


def test_time_to_recurrence_matches_simulate_result():
    model = tolsim.models.TwoState()
    schedule = tolsim.Schedule.from_phases([{"days": 56, "tamoxifen": 1.0}, {"days": 120}])
    ds = tolsim.simulate(model, model.default_params(), schedule, np.arange(177.0))
    traj = Trajectory.from_dataset(ds)
    for threshold in (1e6, 3e6):
        expected = float(tolsim.time_to_recurrence(ds, threshold=threshold))
        got = time_to_recurrence(threshold).predict(traj, [100.0])[0]
        assert got == expected and 5.0 < expected < 60.0
    # at the default the burden grows from withdrawal on: 0 days both ways (and a warning)
    with pytest.warns(UserWarning, match=r"1 of 1 sample\(s\) grow from withdrawal"):
        expected = float(tolsim.time_to_recurrence(ds))
    assert time_to_recurrence().predict(traj, [100.0])[0] == expected == 0.0
    weeks = np.arange(7.0, 120.0, 7.0)
    n = ds.N.values
    np.testing.assert_allclose(
        fold_expansion().predict(traj, weeks), n[weeks.astype(int)] / n[weeks.astype(int) - 7]
    )


def test_time_to_recurrence_needs_withdrawal(traj):
    with pytest.raises(ValueError, match="needs the trajectory's `withdrawal_day`"):
        time_to_recurrence().predict(traj, [0.0])
    late = traj._replace(withdrawal_day=40.0)
    with pytest.raises(ValueError, match="must lie within the trajectory's days"):
        time_to_recurrence().predict(late, [0.0])


def test_time_to_recurrence_nan_trajectory_gives_nan_and_infinite_nllh():
    t = np.arange(10.0)
    n = np.full(10, 1e3)
    n[3] = np.nan
    traj = Trajectory(t, {"N": n, "dN_dt": np.zeros(10)}, 5.0)
    predicted = time_to_recurrence().predict(traj, [5.0])
    assert np.isnan(predicted[0])
    assert Normal().nllh([12.0], predicted) == np.inf
    assert Normal().nllh([12.0], predicted, np.array([True])) == np.inf


# -- noise models against scipy.stats -----------------------------------------------------

OBS = np.array([1.3, 2.7, 0.4, 8.0, 5.5, 3.1])
PRED = np.array([1.0, 3.0, 0.5, 6.5, 5.0, 2.0])
SIGMA_ROW = np.array([np.nan, 0.3, np.nan, 1.5, np.nan, 0.05])


def _scipy_logpdf(noise, obs, pred, sigma_row, params):
    """logpdf and logsf per row from scipy.stats, written independently of tolsim."""
    given_row = ~np.isnan(sigma_row)
    if isinstance(noise, LogNormal):
        sd = np.where(given_row, sigma_row, params["sigma"])
        dist = stats.lognorm(s=sd, scale=pred)
        return dist.logpdf(obs), dist.logsf(obs)
    if isinstance(noise, Normal):
        sd = np.where(given_row, sigma_row, params["sigma"])
    elif isinstance(noise, Proportional):
        sd = np.where(given_row, sigma_row, params["sigma_rel"] * np.abs(pred))
    else:
        model_sd = np.sqrt(params["sigma_abs"] ** 2 + (params["sigma_rel"] * pred) ** 2)
        sd = np.where(given_row, sigma_row, model_sd)
    dist = stats.norm(loc=pred, scale=sd)
    return dist.logpdf(obs), dist.logsf(obs)


NOISE_CASES = [
    (Normal(), {"sigma": 0.7}),
    (LogNormal(), {"sigma": 0.2}),
    (Proportional(), {"sigma_rel": 0.15}),
    (Combined(), {"sigma_abs": 0.4, "sigma_rel": 0.1}),
]
NOISE_IDS = ["normal", "lognormal", "proportional", "combined"]


@pytest.mark.parametrize(("noise", "params"), NOISE_CASES, ids=NOISE_IDS)
@pytest.mark.parametrize("with_rows", [False, True], ids=["model_sigma", "row_sigma"])
def test_nllh_equals_scipy_logpdf(noise, params, with_rows):
    sigma_row = SIGMA_ROW if with_rows else np.full(OBS.shape, np.nan)
    logpdf, _ = _scipy_logpdf(noise, OBS, PRED, sigma_row, params)
    got = noise.nllh(OBS, PRED, None, sigma_row if with_rows else None, params)
    assert got == pytest.approx(-logpdf.sum(), rel=1e-12)


@pytest.mark.parametrize(("noise", "params"), NOISE_CASES, ids=NOISE_IDS)
def test_censored_rows_follow_the_survival_function(noise, params):
    logpdf, logsf = _scipy_logpdf(noise, OBS, PRED, SIGMA_ROW, params)
    censored = np.array([False, True, False, False, True, False])
    got = noise.nllh(OBS, PRED, censored, SIGMA_ROW, params)
    expected = -(np.where(censored, logsf, logpdf)).sum()
    assert got == pytest.approx(expected, rel=1e-12)
    for row in range(OBS.size):
        one = np.zeros(OBS.size, dtype=bool)
        one[row] = True
        difference = noise.nllh(OBS, PRED, one, SIGMA_ROW, params) - noise.nllh(
            OBS, PRED, None, SIGMA_ROW, params
        )
        assert difference == pytest.approx(logpdf[row] - logsf[row], rel=1e-10, abs=1e-12)


@pytest.mark.parametrize(("noise", "params"), NOISE_CASES, ids=NOISE_IDS)
def test_non_finite_predictions(noise, params):
    obs = np.array([4.0, 5.0])
    uncensored = np.array([False, False])
    censored = np.array([False, True])
    base = noise.nllh(obs[:1], [4.5], None, None, params)
    for bad in (np.nan, np.inf, -np.inf):
        assert noise.nllh(obs, [4.5, bad], uncensored, None, params) == np.inf
    assert noise.nllh(obs, [4.5, np.nan], censored, None, params) == np.inf
    assert noise.nllh(obs, [4.5, -np.inf], censored, None, params) == np.inf
    # no event predicted, none observed by the end of follow-up: S = 1, contribution 0
    assert noise.nllh(obs, [4.5, np.inf], censored, None, params) == base
    assert noise.nllh(obs, [4.5, np.inf], censored, [np.nan, 0.2], params) == base


@pytest.mark.parametrize(("noise", "params"), NOISE_CASES, ids=NOISE_IDS)
def test_left_censored_rows_follow_the_distribution_function(noise, params):
    """A row below a detection limit (``observed`` holds the limit) contributes -log F at the
    limit: scipy's logcdf, written independently (the sd at the prediction, as for rows
    measured)."""
    logpdf, logsf = _scipy_logpdf(noise, OBS, PRED, SIGMA_ROW, params)
    given_row = ~np.isnan(SIGMA_ROW)
    if isinstance(noise, LogNormal):
        sd = np.where(given_row, SIGMA_ROW, params["sigma"])
        logcdf = stats.lognorm(s=sd, scale=PRED).logcdf(OBS)
    else:
        sd = np.where(given_row, SIGMA_ROW, noise.sd(PRED, None, params))
        logcdf = stats.norm(loc=PRED, scale=sd).logcdf(OBS)
    left = np.array([True, False, True, False, False, True])
    right = np.array([False, True, False, False, True, False])
    got = noise.nllh(OBS, PRED, right, SIGMA_ROW, params, left_censored=left)
    expected = -np.where(left, logcdf, np.where(right, logsf, logpdf)).sum()
    assert got == pytest.approx(expected, rel=1e-12)
    # far below the limit: F -> 1, nothing learnt; far above it: impossible in the limit
    assert 0.0 <= noise.nllh([5.0], [1e-3], None, None, params, left_censored=[True]) < 1e-9
    assert noise.nllh([5.0], [np.inf], None, None, params, left_censored=[True]) == np.inf
    assert noise.nllh([5.0], [np.nan], None, None, params, left_censored=[True]) == np.inf
    # below the limit for every noise realisation: F = 1, exactly 0 (the formula's limit)
    assert noise.nllh([5.0], [-np.inf], None, None, params, left_censored=[True]) == 0.0
    zero = noise.nllh([5.0], [0.0], None, None, params, left_censored=[True])
    assert zero == (
        0.0
        if isinstance(noise, LogNormal | Proportional)
        else pytest.approx(
            -stats.norm.logcdf(5.0, 0.0, noise.sd([0.0], None, params)[0]), rel=1e-12
        )
    )
    assert noise.residuals(OBS, PRED, SIGMA_ROW, params, left_censored=left) is None


def test_a_point_mass_above_the_limit_is_impossible():
    """Proportional noise at a prediction of 0 is a point mass at 0: below a limit of 1, not
    below a limit of -1."""
    params = {"sigma_rel": 0.2}
    assert Proportional().nllh([1.0], [0.0], None, None, params, left_censored=[True]) == 0.0
    assert Proportional().nllh([-1.0], [0.0], None, None, params, left_censored=[True]) == np.inf
    # and right-censored the other way round: certainly above a bound of -1, never above 1
    # (it gave inf above -1, where a prediction of 1e-300 gives 0: a jump at 0)
    assert Proportional().nllh([-1.0], [0.0], [True], None, params) == 0.0
    assert Proportional().nllh([-1.0], [1e-300], [True], None, params) == 0.0
    assert Proportional().nllh([1.0], [0.0], [True], None, params) == np.inf
    assert Proportional().nllh([0.0], [0.0], [True], None, params) == np.inf  # P(y > 0) = 0


def test_a_row_censored_both_ways_is_refused():
    both = np.array([True, False])
    with pytest.raises(ValueError, match=r"rows \[0\] are both `censored`.*`left_censored`"):
        Normal().nllh([1.0, 2.0], [1.0, 2.0], both, None, {"sigma": 1.0}, left_censored=both)
    with pytest.raises(TypeError, match=r"`left_censored` has dtype int64: expected booleans"):
        Normal().nllh([1.0], [1.0], None, None, {"sigma": 1.0}, left_censored=np.array([1]))
    with pytest.raises(ValueError, match=r"`left_censored` has shape \(2,\): expected \(1,\)"):
        Normal().nllh([1.0], [1.0], None, None, {"sigma": 1.0}, left_censored=both)


@pytest.mark.parametrize(("noise", "params"), NOISE_CASES[:2], ids=NOISE_IDS[:2])
def test_censored_limit_is_continuous_for_normal_and_lognormal(noise, params):
    far = noise.nllh([5.0], [1e6], np.array([True]), None, params)
    assert 0.0 <= far < 1e-12


def test_degenerate_predictions():
    assert LogNormal().nllh([1.0, 2.0], [1.0, 0.0]) == np.inf
    assert LogNormal().nllh([1.0, 2.0], [1.0, -3.0], np.array([False, True])) == np.inf
    assert Proportional().nllh([1.0, 2.0], [1.0, 0.0]) == np.inf
    assert np.isfinite(Combined().nllh([1.0, 2.0], [1.0, 0.0]))


# -- residuals ----------------------------------------------------------------------------


@pytest.mark.parametrize("with_rows", [False, True], ids=["model_sigma", "row_sigma"])
def test_residuals_normal(with_rows):
    sigma_row = SIGMA_ROW if with_rows else None
    sd = np.where(np.isnan(SIGMA_ROW), 0.7, SIGMA_ROW) if with_rows else np.full(OBS.size, 0.7)
    r = Normal().residuals(OBS, PRED, sigma_row, {"sigma": 0.7})
    np.testing.assert_allclose(r, (OBS - PRED) / sd, rtol=1e-14)
    constant = np.log(sd).sum() + 0.5 * OBS.size * np.log(2 * np.pi)
    nllh = Normal().nllh(OBS, PRED, None, sigma_row, {"sigma": 0.7})
    assert 0.5 * np.sum(r**2) + constant == pytest.approx(nllh, rel=1e-13)


@pytest.mark.parametrize("with_rows", [False, True], ids=["model_sigma", "row_sigma"])
def test_residuals_lognormal(with_rows):
    sigma_row = SIGMA_ROW if with_rows else None
    sd = np.where(np.isnan(SIGMA_ROW), 0.2, SIGMA_ROW) if with_rows else np.full(OBS.size, 0.2)
    r = LogNormal().residuals(OBS, PRED, sigma_row, {"sigma": 0.2})
    constant = np.log(sd).sum() + np.log(OBS).sum() + 0.5 * OBS.size * np.log(2 * np.pi)
    nllh = LogNormal().nllh(OBS, PRED, None, sigma_row, {"sigma": 0.2})
    assert 0.5 * np.sum(r**2) + constant == pytest.approx(nllh, rel=1e-13)
    # the constant does not depend on the prediction
    other = PRED * 1.7
    r2 = LogNormal().residuals(OBS, other, sigma_row, {"sigma": 0.2})
    nllh2 = LogNormal().nllh(OBS, other, None, sigma_row, {"sigma": 0.2})
    assert 0.5 * np.sum(r2**2) + constant == pytest.approx(nllh2, rel=1e-13)


def test_residuals_none_where_not_least_squares():
    assert Proportional().residuals(OBS, PRED) is None
    assert Combined().residuals(OBS, PRED) is None
    censored = np.zeros(OBS.size, dtype=bool)
    assert Normal().residuals(OBS, PRED, censored=censored) is not None
    censored[2] = True
    assert Normal().residuals(OBS, PRED, censored=censored) is None
    assert LogNormal().residuals(OBS, PRED, censored=censored) is None


def test_residuals_infinite_where_nllh_infinite():
    r = LogNormal().residuals([1.0, 2.0, 3.0], [1.0, -1.0, np.nan])
    assert r[0] == 0.0 and np.all(r[1:] == np.inf)
    r = Normal().residuals([1.0, 2.0], [np.inf, np.nan])
    assert np.all(r == np.inf)


# -- properties ---------------------------------------------------------------------------

positive = st.floats(1e-3, 1e6, allow_nan=False, allow_infinity=False)
sigmas = st.floats(1e-3, 10.0)
perturbations = st.floats(-0.5, 0.5).filter(lambda x: abs(x) > 1e-6)


@given(st.lists(positive, min_size=1, max_size=8), sigmas, perturbations, st.data())
def test_nllh_minimised_at_observed(observed, sigma, delta, data):
    obs = np.array(observed)
    row = data.draw(st.integers(0, obs.size - 1))
    normal_pred = obs.copy()
    normal_pred[row] += delta * max(obs[row], 1.0)
    best = Normal().nllh(obs, obs, None, None, {"sigma": sigma})
    assert best <= Normal().nllh(obs, normal_pred, None, None, {"sigma": sigma})
    log_pred = obs.copy()
    log_pred[row] *= math.exp(delta)
    best = LogNormal().nllh(obs, obs, None, None, {"sigma": sigma})
    assert best <= LogNormal().nllh(obs, log_pred, None, None, {"sigma": sigma})
    assert np.isfinite(best)


@given(
    st.lists(st.floats(-1e6, 1e6).filter(lambda x: abs(x) > 1e-3), min_size=1, max_size=8),
    sigmas,
    sigmas,
)
def test_proportional_and_combined_finite_with_positive_sd(predicted, sigma_abs, sigma_rel):
    pred = np.array(predicted)
    obs = pred * 1.1 + 0.5
    for noise, params in (
        (Proportional(), {"sigma_rel": sigma_rel}),
        (Combined(), {"sigma_abs": sigma_abs, "sigma_rel": sigma_rel}),
    ):
        sd = noise.sd(pred, None, params)
        assert np.all(sd > 0) and np.all(np.isfinite(sd))
        assert np.isfinite(noise.nllh(obs, pred, None, None, params))


@pytest.mark.parametrize(("noise", "params"), NOISE_CASES, ids=NOISE_IDS)
def test_sample_matches_the_model(noise, params):
    pred = np.full(20_000, 40.0)
    y = noise.sample(pred, 7, None, params)
    assert y.shape == pred.shape
    if isinstance(noise, LogNormal):
        assert stats.kstest(np.log(y), stats.norm(np.log(40.0), params["sigma"]).cdf).pvalue > 1e-3
    else:
        sd = noise.sd(pred[:1], None, params)[0]
        assert stats.kstest(y, stats.norm(40.0, sd).cdf).pvalue > 1e-3
    np.testing.assert_array_equal(y, noise.sample(pred, 7, None, params))


# -- errors -------------------------------------------------------------------------------


def test_bad_lag():
    for lag in (0.0, -7.0, np.nan, np.inf):
        with pytest.raises(
            ValueError, match="`lag_days` = .*: expected a finite number of days > 0"
        ):
            fold_expansion(lag_days=lag)
    with pytest.raises(TypeError, match="`lag_days` = 'week'"):
        fold_expansion(lag_days="week")
    with pytest.raises(ValueError, match="lags must be finite numbers of days > 0"):
        Observable("x", "1", lambda tr, d, p: d, lags_days=(-1.0,))
    with pytest.raises(ValueError, match="'event' observable .* takes no lags"):
        Observable("x", "days", lambda tr, d, p: d, lags_days=(1.0,), kind="event")
    with pytest.raises(ValueError, match="`kind` = 'count'"):
        Observable("x", "1", lambda tr, d, p: d, kind="count")


def test_fold_expansion_days_before_lag(traj):
    fold = fold_expansion(lag_days=7.0)
    message = r"measurement day\(s\) \[0.0, 3.0\] of observable 'fold_expansion' are earlier"
    with pytest.raises(ValueError, match=message):
        fold.required_days([0.0, 3.0, 14.0])
    with pytest.raises(ValueError, match=r"measurement day\(s\) \[0.0\]"):
        fold.predict(traj, [0.0, 7.0])


def test_bad_threshold():
    with pytest.raises(
        ValueError, match=r"`threshold` = -5.0 cells: expected a finite number >= 0"
    ):
        time_to_recurrence(threshold=-5.0)
    with pytest.raises(ValueError, match="`threshold` = 'baseline'"):
        time_to_recurrence(threshold="baseline")


def test_bad_days(traj):
    with pytest.raises(ValueError, match=r"`days` contains \[-1.0\]"):
        total_cells().predict(traj, [-1.0, 7.0])
    with pytest.raises(ValueError, match=r"`days` has shape \(1, 2\)"):
        total_cells().required_days([[0.0, 7.0]])


def test_lognormal_needs_positive_observations():
    with pytest.raises(ValueError, match=r"`observed` has values <= 0 at rows \[1, 2\]"):
        LogNormal().nllh([1.0, 0.0, -2.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="`observed` has values <= 0"):
        LogNormal().residuals([0.0], [1.0])


def test_unknown_and_bad_noise_parameters():
    with pytest.raises(
        ValueError, match=r"unknown noise parameter\(s\) \['sigma_rel'\] for Normal"
    ):
        Normal().nllh([1.0], [1.0], None, None, {"sigma_rel": 0.1})
    with pytest.raises(ValueError, match=r"unknown noise parameter\(s\) \['sigma'\] for Combined"):
        Combined().residuals([1.0], [1.0], None, {"sigma": 0.1})
    with pytest.raises(ValueError, match=r"`params.sigma` = 0.0: expected a finite number > 0"):
        Normal().nllh([1.0], [1.0], None, None, {"sigma": 0.0})
    with pytest.raises(ValueError, match="expected a Parameter named 'sigma'"):
        Normal(sigma=Parameter("s", "1", 1.0, (0.1, 2.0)))
    wide = Normal(sigma=Parameter("sigma", "cells", 1e3, (1.0, 1e9)))
    assert wide.parameters[0].default == 1e3


def test_bad_rows():
    with pytest.raises(ValueError, match=r"`observed` has NaN or infinite values at rows \[1\]"):
        Normal().nllh([1.0, np.nan], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"`predicted` has shape \(3,\): expected \(2,\)"):
        Normal().nllh([1.0, 2.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"`sigma_row` has values \[-1.0\] at rows \[1\]"):
        Normal().nllh([1.0, 2.0], [1.0, 1.0], None, [np.nan, -1.0])
    with pytest.raises(TypeError, match="`censored` has dtype int64"):
        Normal().nllh([1.0, 2.0], [1.0, 1.0], np.array([0, 1]))


def test_docstring_examples():
    result = doctest.testmod(observe, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_observable_domains():
    assert tolerant_fraction().domain == (0.0, 1.0)
    for make in (total_cells, tumour_volume, fold_expansion, time_to_recurrence):
        assert make().domain == (0.0, math.inf)
    assert luminescence().domain == (-math.inf, math.inf)  # background-subtracted signals
    np.testing.assert_array_equal(
        tolerant_fraction().outside([-0.1, 0.0, 0.5, 1.0, 1.5]), [True, False, False, False, True]
    )
    with pytest.raises(ValueError, match=r"`domain` = \(1, 0\): expected \(low, high\) with"):
        Observable("x", "1", lambda traj, days, params: days, domain=(1, 0))
    with pytest.raises(TypeError, match=r"`domain` = 'positive': expected \(low, high\)"):
        Observable("x", "1", lambda traj, days, params: days, domain="positive")
