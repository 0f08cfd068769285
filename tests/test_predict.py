"""Recurrence prediction: coverage of prediction intervals on synthetic data, the draws'
agreement with the profile likelihood, the exact branching mixture against stochastic paths,
reproducibility, the quantile rule, and input errors."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tolsim
from tolsim.branching import branching_extinction
from tolsim.observe import LogNormal
from tolsim.predict import PredictionWarning, weighted_quantile

MODEL = tolsim.models.TwoState(crowding="none")
TRUE = {"lambda_S": 0.25, "eps_S": 0.7, "mu_E": 2e-2}
SCHEDULES = {
    "control": tolsim.Schedule.from_phases([{"days": 30}]),
    "tamoxifen": tolsim.Schedule.from_phases([{"days": 30, "tamoxifen": 1.0}]),
}
DAYS = np.arange(3.0, 31.0, 3.0)
SIGMA = 0.1
# a schedule the data never saw: twice as long on tamoxifen, then withdrawal
NEW = tolsim.Schedule.from_phases([{"days": 60, "tamoxifen": 1.0}, {"days": 60}])
THRESHOLD = 1e9  # cells: recurrence is regrowth to 1e9 cells after withdrawal


def synthetic(rng, params=TRUE):
    rows = []
    for condition, schedule in SCHEDULES.items():
        ds = tolsim.simulate(MODEL, MODEL.default_params(**params), schedule, DAYS)
        for replicate in range(2):
            noisy = ds.N.values * np.exp(SIGMA * rng.standard_normal(DAYS.size))
            rows += [
                {
                    "condition": condition,
                    "observable": "total_cells",
                    "time": t,
                    "value": v,
                    "replicate": str(replicate),
                }
                for t, v in zip(DAYS, noisy, strict=True)
            ]
    return pd.DataFrame(rows)


def fitted(rng, **options):
    return tolsim.fit(
        MODEL,
        synthetic(rng),
        SCHEDULES,
        free=list(TRUE),
        bounds={"mu_E": (1e-5, 1.0)},
        noise=LogNormal(),
        fixed={"total_cells.sigma": SIGMA},
        starts=2,
        seed=1,
        **options,
    )


@pytest.fixture(scope="module")
def one_fit():
    return fitted(np.random.default_rng(11))


def test_prediction_intervals_cover_the_truth_at_the_nominal_rate():
    """90% intervals of the recurrence day contain the true day in 40-49 of 50 synthetic
    data sets (expected 45; outside [40, 49] has probability 4% for exact coverage)."""
    truth_ds = tolsim.simulate(MODEL, MODEL.default_params(**TRUE), NEW, np.arange(121.0))
    truth = float(tolsim.time_to_recurrence(truth_ds, threshold=THRESHOLD))
    assert 0 < truth < 60
    rng = np.random.default_rng(3)
    covered = 0
    widths = []
    for case in range(50):
        prediction = fitted(rng).predict(
            NEW, draws=200, demographic="none", threshold=THRESHOLD, level=0.9, seed=case
        )
        low, high = prediction.time_to_recurrence_interval.values
        covered += low <= truth <= high
        widths.append(high - low)
    assert 40 <= covered <= 49, covered
    assert 0.2 < np.median(widths) < 5.0  # informative, not trivially wide


def test_laplace_draws_match_the_profile_likelihood_intervals(one_fit):
    """For a near-Gaussian likelihood the Laplace draws' central 95% range reproduces the
    95% profile-likelihood interval of each parameter (within 15% of its width)."""
    one_fit.profile(level=0.95)
    prediction = one_fit.predict(NEW, draws=4000, demographic="none", threshold=THRESHOLD)
    for name in TRUE:
        draws = np.log10(prediction.parameter_value.sel(parameter=name).values)
        low, high = np.log10(one_fit.ci[name])
        q_low, q_high = np.quantile(draws, [0.025, 0.975])
        assert abs(q_low - low) < 0.15 * (high - low), name
        assert abs(q_high - high) < 0.15 * (high - low), name


class _FakeFit:
    """What :func:`laplace_draws` reads of a fit, with a likelihood known in closed form."""

    def __init__(self, nllh, bounds, best):
        self.free = list(bounds)
        self.params = {name: 10.0**x for name, x in zip(self.free, best, strict=True)}
        self.objective = type("Objective", (), {"nllh": staticmethod(nllh), "bounds": bounds})
        self.nllh = nllh(np.asarray(best, dtype=float))


def test_laplace_draws_follow_a_one_sided_likelihood():
    """log10 x in [-3, 1] with a likelihood flat below 0 and a half-normal (sd 0.1) above:
    the normal approximation at the best fit (0) sees only the right side. The draws follow
    the likelihood: P(log10 x < 0) = 3 / (3 + 0.1 sqrt(pi/2)) = 0.960 and the right side's
    mean 0.1 sqrt(2/pi) = 0.0798, within 4 standard errors of the importance sampling's
    effective sample size (the draws repeat candidates: it, not their number, sets them)."""
    from tolsim.predict import _laplace_importance

    def nllh(theta):
        return 0.5 * (max(theta[0], 0.0) / 0.1) ** 2

    fit = _FakeFit(nllh, {"x": (1e-3, 10.0)}, [0.0])
    x, info = _laplace_importance(fit, 4000, np.random.default_rng(1))
    x = x[:, 0]
    effective = info["effective_sample_size"]
    assert effective > 500
    left = 3.0 / (3.0 + 0.1 * np.sqrt(np.pi / 2))
    assert abs(np.mean(x < 0) - left) < 4 * np.sqrt(left * (1 - left) / effective)
    right = x[x >= 0]
    assert abs(right.mean() - 0.1 * np.sqrt(2 / np.pi)) < 4 * 0.06 / np.sqrt(
        effective * (1 - left)
    )
    assert x.min() >= -3.0 and x.max() <= 1.0


def test_laplace_draws_follow_a_correlated_normal_likelihood():
    """A correlated bivariate normal (log10 sds 0.05 and 0.2, correlation 0.9) well inside
    its bounds: the draws' means, sds and correlation are the likelihood's within 5 standard
    errors of the effective sample size."""
    from tolsim.predict import _laplace_importance

    sd = np.array([0.05, 0.2])
    correlation = 0.9
    covariance = np.array([[1.0, correlation], [correlation, 1.0]]) * np.outer(sd, sd)
    precision = np.linalg.inv(covariance)
    centre = np.array([0.0, 1.0])

    def nllh(theta):
        d = theta - centre
        return 0.5 * d @ precision @ d

    fit = _FakeFit(nllh, {"a": (1e-3, 1e3), "b": (1e-2, 1e4)}, centre)
    theta, info = _laplace_importance(fit, 2000, np.random.default_rng(2))
    n = info["effective_sample_size"]
    assert n > 1000
    np.testing.assert_allclose(theta.mean(axis=0), centre, atol=5 * sd.max() / np.sqrt(n))
    np.testing.assert_allclose(theta.std(axis=0), sd, rtol=5 / np.sqrt(2 * n))
    assert abs(np.corrcoef(theta.T)[0, 1] - correlation) < 5 * (1 - correlation**2) / np.sqrt(n)


def test_laplace_draws_with_an_undetermined_direction_stay_where_the_data_allow():
    """mu_E beside T0 from total cells only: the best mu_E sits on its lower bound and the
    likelihood is flat towards it, steep above. Uniform draws along that direction put 57%
    of the draws outside the joint 95% likelihood-ratio region (and a recurrence interval
    25x too wide); weighted by the likelihood (or from the posterior, where the importance
    sampling falls back to it), at most about 5% are (here: below 12%)."""
    from scipy.stats import chi2

    truth = {"lambda_S": 0.25, "T0": 100.0, "mu_E": 1e-4}
    fixed = {"eps_S": 0.7, "kappa_S": 0.15}
    schedules = {
        "control": tolsim.Schedule.from_phases([{"days": 30}]),
        "tamoxifen": tolsim.Schedule.from_phases([{"days": 60, "tamoxifen": 1.0}]),
    }
    rng = np.random.default_rng(21)
    rows = []
    for condition, schedule in schedules.items():
        days = np.arange(3.0, schedule.duration_days + 1, 3.0)
        cells = tolsim.simulate(MODEL, MODEL.default_params(**truth, **fixed), schedule, days).N
        noisy = cells.values * np.exp(SIGMA * rng.standard_normal(days.size))
        rows += [(condition, "total_cells", d, v) for d, v in zip(days, noisy, strict=True)]
    data = pd.DataFrame(rows, columns=["condition", "observable", "time", "value"])
    result = tolsim.fit(
        MODEL,
        data,
        schedules,
        free=list(truth),
        noise=LogNormal(),
        fixed={"total_cells.sigma": SIGMA, **fixed},
        starts=6,
        seed=1,
    )
    assert result.params["mu_E"] < 2e-6  # on its lower bound (1e-6)
    with pytest.warns(PredictionWarning) as caught:
        prediction = result.predict(
            tolsim.Schedule.from_phases([{"days": 45, "tamoxifen": 1.0}, {"days": 90}]),
            draws=300,
            demographic="none",
            threshold=1e6,
            seed=1,
        )
    messages = [str(w.message) for w in caught]
    assert any("flat or curved the wrong way in 1 direction" in m for m in messages)
    # through FitResult.predict, each warning names this line, not tolsim's internals
    assert {w.filename for w in caught if w.category is PredictionWarning} == {__file__}
    # T0 and mu_E trade off along a curved ridge: the importance sampling's effective sample
    # size varies with the seed, and where it stays below 100 the posterior is sampled
    # instead; either way the draws stay where the data allow
    fell_back = any("draws come from the posterior sampled with emcee" in m for m in messages)
    assert fell_back == (prediction.attrs["uncertainty"] == "posterior")
    assert fell_back == (prediction.attrs["laplace_effective_sample_size"] < 75)
    theta = np.log10(prediction.parameter_value.sel(parameter=list(result.free)).values)
    ratio = np.array([2 * (result.objective.nllh(t) - result.nllh) for t in theta])
    assert np.mean(ratio > chi2.ppf(0.95, 3)) < 0.12
    low, high = prediction.time_to_recurrence_interval.values
    assert 13.5 < low < high < 15.5  # the true day is 14.785 (uniform draws: 1.1 to 14.8)


def test_no_uncertainty_is_the_best_fit_exactly(one_fit):
    prediction = one_fit.predict(NEW, uncertainty="none", demographic="none", threshold=THRESHOLD)
    best = tolsim.simulate(
        MODEL,
        one_fit.model_params,
        NEW,
        prediction.time.values,
    )
    expected = float(tolsim.time_to_recurrence(best, threshold=THRESHOLD))
    assert prediction.sizes["draw"] == 1
    assert prediction.time_to_recurrence.item() == expected
    np.testing.assert_array_equal(prediction.time_to_recurrence_quantiles, expected)
    np.testing.assert_allclose(prediction.N_quantiles.sel(quantile=0.5), best.N, rtol=1e-12)
    days = prediction.day_since_withdrawal.values
    np.testing.assert_array_equal(prediction.recurrence_free_probability, days < expected)


# -- demographic noise ---------------------------------------------------------------------
SMALL = {"S0": 0.0, "T0": 4.0, "kappa_T": 0.25, "lambda_T": 0.3}
# an NF-κB inhibitor course against four tolerant cells, then tamoxifen is stopped
SMALL_SCHEDULE = tolsim.Schedule.from_phases(
    [{"days": 10, "tamoxifen": 1.0, "inhibitor": 5.0}, {"days": 40}]
)


@pytest.fixture(scope="module")
def small_fit():
    """A fit of the tolerant growth rate to a few counts of a small tolerant population."""
    days = np.arange(2.0, 21.0, 2.0)
    schedule = tolsim.Schedule.from_phases([{"days": 20}])
    params = MODEL.default_params(**{**SMALL, "T0": 1000.0})
    cells = tolsim.simulate(MODEL, params, schedule, days).N.values
    noisy = cells * np.exp(0.05 * np.random.default_rng(5).standard_normal(days.size))
    data = pd.DataFrame(
        {"condition": "grow", "observable": "total_cells", "time": days, "value": noisy}
    )
    return tolsim.fit(
        MODEL,
        data,
        {"grow": schedule},
        free=["lambda_T"],
        fixed={**SMALL, "T0": 1000.0, "total_cells.sigma": 0.05},
        noise=LogNormal(),
        starts=2,
    )


def test_posterior_draws_agree_with_laplace_draws(small_fit):
    """With one well-determined parameter the posterior (emcee) and the Laplace approximation
    give the same prediction interval, to within a quarter of its width."""
    posterior = small_fit.sample(steps=400, walkers=8, seed=2)
    options = dict(draws=2000, demographic="none", params={"T0": 4.0}, threshold=100.0)
    by_posterior = small_fit.predict(SMALL_SCHEDULE, posterior=posterior, **options)
    by_laplace = small_fit.predict(SMALL_SCHEDULE, **options)
    assert by_posterior.attrs["uncertainty"] == "posterior"
    chain = 10.0 ** posterior.log10_value.values[:, 0]
    assert np.isin(by_posterior.parameter_value.values[:, 0], chain).all()
    low_p, high_p = by_posterior.time_to_recurrence_interval.values
    low_l, high_l = by_laplace.time_to_recurrence_interval.values
    width = high_l - low_l
    assert width > 0
    assert abs(low_p - low_l) < 0.25 * width and abs(high_p - high_l) < 0.25 * width


def test_branching_mixture_is_exact_for_the_best_fit(small_fit):
    """Without parameter uncertainty, the probability of no recurrence by the horizon is the
    exact extinction probability (the mean field recurs), and eradication is the branching
    probability of no tolerant cell at the end of treatment."""
    with pytest.warns(PredictionWarning, match=r"dies out with probability 0.50"):
        prediction = small_fit.predict(
            SMALL_SCHEDULE,
            uncertainty="none",
            demographic="branching",
            params={"T0": 4.0},
            threshold=100.0,
        )
    params = {**small_fit.model_params, "T0": 4.0}
    whole = branching_extinction(MODEL, params, SMALL_SCHEDULE)
    reservoir = branching_extinction(MODEL, params, SMALL_SCHEDULE, by_day=10.0, states=["T"])
    assert np.isfinite(prediction.time_to_recurrence.item())
    assert prediction.probability_no_recurrence.item() == pytest.approx(
        whole.extinction_probability.item(), rel=1e-12
    )
    assert prediction.eradication_probability.item() == pytest.approx(
        reservoir.extinction_probability.item(), rel=1e-12
    )
    assert prediction.attrs["eradication_day"] == 10.0
    q = whole.extinction_probability.item()
    assert 0.05 < q < 0.95  # a case where demographic noise matters
    days = prediction.day_since_withdrawal.values
    expected = np.where(days < prediction.time_to_recurrence.item(), 1.0, q)
    np.testing.assert_allclose(prediction.recurrence_free_probability, expected, rtol=1e-12)


def test_paths_agree_with_the_branching_mixture(small_fit):
    """Hybrid stochastic paths and the exact branching probabilities give the same chance
    of no recurrence and of eradication: |difference| < 4 Monte Carlo standard errors."""
    options = dict(uncertainty="none", params={"T0": 4.0}, threshold=100.0, seed=4)
    with pytest.warns(PredictionWarning, match="surviving lineages"):  # (about their days)
        exact = small_fit.predict(SMALL_SCHEDULE, demographic="branching", **options)
    paths = small_fit.predict(SMALL_SCHEDULE, demographic="paths", paths=2000, **options)
    assert paths.time_to_recurrence.dims == ("draw", "path")
    for name in ("probability_no_recurrence", "eradication_probability"):
        p = exact[name].item()
        standard_error = np.sqrt(p * (1 - p) / 2000)
        assert abs(paths[name].item() - p) < 4 * standard_error, name

    # the Monte Carlo interval of one draw is its binomial interval (it had zero width: the
    # spread across draws of the paths' fractions, of which there was one)
    estimate = paths.eradication_probability.item()
    z = 1.6448536269514722  # level 0.9
    half = z * np.sqrt(estimate * (1 - estimate) / 2000)
    low, high = paths.eradication_probability.attrs["interval"]
    assert high - low == pytest.approx(2 * half, rel=1e-9)
    assert low < exact.eradication_probability.item() < high


def test_auto_takes_paths_where_survivors_recur_but_the_mean_field_does_not(small_fit):
    """The README's case: 5 tolerant cells under an inhibitor, then 30 days off. The mean
    field (23 cells on the last day) never reaches 300 cells, but surviving lineages (1 in
    ~12) do: the branching mixture said P(no recurrence) = 1, direct SSA 0.971."""
    course = tolsim.Schedule.from_phases(
        [{"days": 21, "tamoxifen": 1.0, "inhibitor": 5.0}, {"days": 30}]
    )
    options = dict(uncertainty="none", threshold=300.0, seed=1)
    overrides = {"S0": 0.0, "T0": 5.0, "kappa_T": 0.3}
    auto = small_fit.predict(course, params=overrides, paths=2000, **options)
    assert auto.attrs["demographic"] == "paths"
    params = {**small_fit.model_params, **overrides}
    ssa = tolsim.simulate(MODEL, params, course, [0.0, 51.0], method="ssa", paths=4000,
                          seed=7, recurrence_threshold=300.0)  # fmt: skip
    recurred = np.isfinite(ssa.time_to_recurrence.values).mean()
    p = auto.probability_no_recurrence.item()
    standard_error = np.sqrt(p * (1 - p) / 2000 + p * (1 - p) / 4000)
    assert p < 1.0 and abs(p - (1.0 - recurred)) < 4 * standard_error
    with pytest.warns(PredictionWarning, match="or where the mean field never does"):
        small_fit.predict(course, params=overrides, demographic="branching", **options)


def test_what_a_prediction_cannot_know_is_said(one_fit):
    """A fit that did not converge warns (it was taken silently) and is recorded; a follow-up
    shorter than the recurrence gives inf, which the attrs call censored at the follow-up
    (it read as "never recurs"); an oral regimen stopping after the schedule's end is named
    as such (it was called the schedule's end)."""
    import dataclasses

    stuck = dataclasses.replace(one_fit, converged=False)
    with pytest.warns(PredictionWarning, match="`fit` did not converge") as caught:
        result = stuck.predict(NEW, draws=20, demographic="none", threshold=THRESHOLD)
    assert caught[0].filename == __file__  # attributed to the caller, not to tolsim
    assert json.loads(result.attrs["fit"])["converged"] is False
    short = tolsim.Schedule.from_phases([{"days": 60, "tamoxifen": 1.0}, {"days": 10}])
    censored = one_fit.predict(short, draws=20, demographic="none", threshold=THRESHOLD)
    assert np.isinf(censored.time_to_recurrence_interval.values).all()
    assert censored.attrs["follow_up_days"] == 10.0
    assert "censored" in censored.time_to_recurrence_quantiles.attrs["comment"]
    assert "10 days of follow-up" in censored.time_to_recurrence_interval.attrs["comment"]
    pk = tolsim.schedule.PK.tamoxifen_human()
    oral = tolsim.Schedule.oral(
        "tamoxifen", dose_mg=20, every_days=30, stop_day=70, pk=pk, duration_days=65
    )
    with pytest.raises(ValueError, match=r"until day 70, after its end \(day 65\)"):
        one_fit.predict(oral, draws=20, demographic="none", threshold=THRESHOLD)


def test_auto_takes_paths_for_a_few_cells_however_unlikely_their_extinction(small_fit):
    """Four tolerant cells, 10 days of tamoxifen, 10 of an inhibitor, 25 off: every draw's
    extinction probability is under the 0.1 of the branching mixture, which put every
    surviving lineage on the mean field's day (P(no recurrence within 25 days) 0.005 here,
    SSA 0.133; 0.05 against 0.28 in a review's fit). A population that small spreads its
    recurrence over weeks: "auto" takes paths, and keeps the mixture for a population of
    thousands."""
    course = tolsim.Schedule.from_phases(
        [{"days": 10, "tamoxifen": 1.0}, {"days": 10, "inhibitor": 5.0}, {"days": 25}]
    )
    overrides = {"S0": 0.0, "T0": 4.0, "kappa_T": 0.25}
    options = dict(uncertainty="none", threshold=200.0, horizon_days=25.0, seed=3)
    auto = small_fit.predict(course, params=overrides, paths=2000, **options)
    mixture = small_fit.predict(course, params=overrides, demographic="branching", **options)
    assert auto.attrs["demographic"] == "paths"
    params = {**small_fit.model_params, **overrides}
    ssa = tolsim.simulate(MODEL, params, course, [0.0, 45.0], method="ssa", paths=4000,
                          seed=7, recurrence_threshold=200.0)  # fmt: skip
    truth = float(np.mean(~(ssa.time_to_recurrence.values <= 25.0)))
    p, q = auto.probability_no_recurrence.item(), mixture.probability_no_recurrence.item()
    standard_error = np.sqrt(truth * (1 - truth) * (1 / 2000 + 1 / 4000))
    assert abs(p - truth) < 4 * standard_error and abs(q - truth) > 8 * standard_error
    large = small_fit.predict(course, params={**overrides, "T0": 1e5}, **options)
    assert large.attrs["demographic"] == "branching"


def test_auto_judges_the_tolerant_reservoir_before_the_recurrence(small_fit):
    """5,000 quiescent sensitive cells keep the total large while 4 tolerant cells set the
    recurrence: the mixture said recurrence for certain on day 25.0, SSA 53% none within 40
    days. A bottleneck after the recurrence (an inhibitor course once regrown) does not
    matter: there the mixture is kept (a review's cases)."""
    quiet = {"S0": 5000.0, "T0": 4.0, "lambda_S": 0.0, "delta_S": 0.0, "kappa_S": 0.0,
             "mu_0": 0.0, "mu_E": 0.0, "nu_0": 0.0, "nu_off": 0.0, "kappa_T": 0.25}  # fmt: skip
    course = tolsim.Schedule.from_phases(
        [{"days": 10, "tamoxifen": 1.0, "inhibitor": 5.0}, {"days": 40}]
    )
    options = dict(uncertainty="none", threshold=6000.0, seed=3)
    auto = small_fit.predict(course, params=quiet, paths=2000, **options)
    assert auto.attrs["demographic"] == "paths"
    params = {**small_fit.model_params, **quiet}
    ssa = tolsim.simulate(MODEL, params, course, [0.0, 50.0], method="ssa", paths=4000, seed=7,
                          recurrence_threshold=6000.0)  # fmt: skip
    truth = float(np.mean(~np.isfinite(ssa.time_to_recurrence.values)))
    standard_error = np.sqrt(truth * (1 - truth) * (1 / 2000 + 1 / 4000))
    assert abs(auto.probability_no_recurrence.item() - truth) < 4 * standard_error
    again = tolsim.Schedule.from_phases(
        [{"days": 10, "tamoxifen": 1.0}, {"days": 20}, {"days": 20, "inhibitor": 5.0}]
    )
    regrown = {"S0": 0.0, "T0": 1e5, "kappa_T": 1.0, "nu_0": 0.0, "nu_off": 0.0}
    kept = small_fit.predict(again, params=regrown, uncertainty="none", threshold=2e6)
    assert kept.attrs["demographic"] == "branching"


def test_paths_intervals_cover_at_the_nominal_rate(small_fit):
    """Twelve seeds of 200 paths each: a 90% binomial interval covers the exact branching
    probability of eradication in about 11 (at least 8: P(fewer) < 1e-3 at 90% coverage)."""
    options = dict(uncertainty="none", params={"T0": 4.0}, threshold=100.0)
    with pytest.warns(PredictionWarning, match="surviving lineages"):
        exact = small_fit.predict(SMALL_SCHEDULE, demographic="branching", seed=0, **options)
    truth = exact.eradication_probability.item()
    covered = 0
    for seed in range(12):
        paths = small_fit.predict(SMALL_SCHEDULE, demographic="paths", paths=200, seed=seed,
                                  **options)  # fmt: skip
        low, high = paths.eradication_probability.attrs["interval"]
        covered += low <= truth <= high
    assert covered >= 8


def test_quantiles_hold_each_level_once(one_fit):
    prediction = one_fit.predict(NEW, draws=20, threshold=THRESHOLD, seed=1)
    quantile = prediction["quantile"].values
    assert 0.05 in quantile and 0.95 in quantile  # level 0.9's ends, as written
    assert np.all(np.diff(quantile) > 1e-9)  # no 0.04999999999999999 beside 0.05


@pytest.fixture(scope="module")
def initial_count_fit():
    """T0 fitted, as in the selection model of the Magi workflow: its draws are not whole."""
    selection = {"lambda_S": 0.25, "eps_S": 0.7, "T0": 3000.0}  # pre-existing tolerant cells
    return tolsim.fit(
        MODEL,
        synthetic(np.random.default_rng(21), params=selection),
        SCHEDULES,
        free=["lambda_S", "eps_S", "T0"],
        noise=LogNormal(),
        fixed={"total_cells.sigma": SIGMA},
        starts=2,
        seed=1,
    )


def test_a_fitted_initial_count_is_rounded_to_whole_cells(initial_count_fit):
    """The branching process and the paths start from whole cells: each draw's T0 rounded
    down or up (stochastically, keeping the expected count), the whole S0 left as it is."""
    options = dict(draws=200, threshold=THRESHOLD, seed=3)
    prediction = initial_count_fit.predict(NEW, demographic="branching", **options)
    drawn = prediction.parameter_value.sel(parameter="T0").values
    assert np.any(drawn != np.round(drawn))
    cells = prediction.initial_cells.sel(state="T").values
    assert np.all((cells == np.floor(drawn)) | (cells == np.ceil(drawn)))
    # mean rounding error: sd <= 0.5 / sqrt(200) = 0.035 under stochastic rounding
    assert abs(np.mean(cells - drawn)) < 0.15
    np.testing.assert_array_equal(
        prediction.initial_cells.sel(state="S"), MODEL.default_params()["S0"]
    )
    assert np.all(
        (prediction.extinction_probability >= 0) & (prediction.extinction_probability < 1e-6)
    )
    low, high = prediction.time_to_recurrence_interval.values
    assert 0 < low < high < 60
    again = initial_count_fit.predict(NEW, demographic="branching", **options)
    np.testing.assert_array_equal(again.initial_cells, prediction.initial_cells)
    paths = initial_count_fit.predict(NEW, demographic="paths", paths=4, **{**options, "draws": 4})
    assert paths.time_to_recurrence.shape == (4, 4)
    assert np.all(np.isfinite(paths.time_to_recurrence))
    cells = paths.initial_cells.sel(state="T").values
    drawn = paths.parameter_value.sel(parameter="T0").values
    assert np.all((cells == np.floor(drawn)) | (cells == np.ceil(drawn)))


def test_a_best_fit_on_a_bound_still_gets_laplace_draws():
    """eps_S = 1 is the parameter's admissible limit: the curvature is taken just inside."""
    rng = np.random.default_rng(8)
    result = tolsim.fit(
        MODEL,
        synthetic(rng, params={**TRUE, "eps_S": 1.0}),
        SCHEDULES,
        free=list(TRUE),
        bounds={"mu_E": (1e-5, 1.0), "eps_S": (0.1, 1.0)},
        noise=LogNormal(),
        fixed={"total_cells.sigma": SIGMA},
        starts=2,
        seed=1,
    )
    assert result.params["eps_S"] > 0.95
    prediction = result.predict(NEW, draws=200, demographic="none", threshold=THRESHOLD)
    eps = prediction.parameter_value.sel(parameter="eps_S").values
    assert np.all(eps <= 1.0) and np.ptp(eps) > 0


def test_same_seed_same_prediction_and_seeds_differ(one_fit):
    options = dict(draws=50, threshold=THRESHOLD, demographic="none")
    a = one_fit.predict(NEW, seed=7, **options)
    b = one_fit.predict(NEW, seed=7, **options)
    c = one_fit.predict(NEW, seed=8, **options)
    np.testing.assert_array_equal(a.parameter_value, b.parameter_value)
    np.testing.assert_array_equal(a.time_to_recurrence, b.time_to_recurrence)
    assert not np.array_equal(a.parameter_value, c.parameter_value)


def test_output_times_choose_the_bands_not_the_recurrence_days(one_fit):
    """`times` are the days of the trajectory bands: the recurrence days come from their own
    grid. They were read from a solution on `times` (median 85 days on [0, 60, 120] against
    the daily grid's 30)."""
    options = dict(draws=30, threshold=THRESHOLD, demographic="none", seed=3)
    daily = one_fit.predict(NEW, **options)
    sparse = one_fit.predict(NEW, times=[0.0, 60.0, 120.0], **options)
    np.testing.assert_array_equal(sparse.time_to_recurrence, daily.time_to_recurrence)
    for name in ("time_to_recurrence_quantiles", "probability_no_recurrence"):
        np.testing.assert_array_equal(sparse[name], daily[name])
    assert sparse.time.values.tolist() == [0.0, 60.0, 120.0]
    np.testing.assert_array_equal(
        sparse.N_quantiles, daily.N_quantiles.sel(time=[0.0, 60.0, 120.0])
    )
    with pytest.raises(ValueError, match=r"`times` ends at day 150.0, after the schedule's end"):
        one_fit.predict(NEW, times=[0.0, 150.0], **options)


def test_result_records_what_it_is(one_fit):
    prediction = tolsim.predict(one_fit, NEW, draws=20, threshold=THRESHOLD, level=0.8)
    assert json.loads(prediction.attrs["schedule"]) == NEW.to_dict()
    assert json.loads(prediction.attrs["fit"])["params"] == one_fit.params
    assert prediction.attrs["tolsim_version"] == tolsim.__version__
    assert prediction.attrs["withdrawal_day"] == 60.0
    assert {0.1, 0.9} <= set(prediction["quantile"].values.round(12))
    assert prediction.time_to_recurrence.attrs["units"] == "days"
    assert prediction.day_since_withdrawal[-1] == 60.0


# -- quantiles -------------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=30),
    q=st.floats(0.001, 0.999),
)
def test_weighted_quantile_with_equal_weights_is_the_inverted_cdf(values, q):
    # (a q within 1e-12 of a step of the CDF counts as reaching it, as documented: there
    # the two answers differ by round-off, e.g. q = 4/6 + 7e-15 over 6 values)
    steps = q * len(values)
    assume(abs(steps - round(steps)) > 1e-9 * len(values))
    expected = np.quantile(values, q, method="inverted_cdf")
    assert weighted_quantile(values, np.ones(len(values)), q)[0] == expected


def test_weighted_quantile_puts_mass_at_infinity():
    values, weights = [3.0, 1.0, np.inf], [0.3, 0.2, 0.5]
    np.testing.assert_array_equal(
        weighted_quantile(values, weights, [0.1, 0.2, 0.45, 0.51, 0.99]),
        [1.0, 1.0, 3.0, np.inf, np.inf],
    )


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("schedule", "options", "error", "match"),
    [
        (SCHEDULES["control"], {}, ValueError, "never gives tamoxifen"),
        (SCHEDULES["tamoxifen"], {}, ValueError, "no follow-up"),
        (NEW, {"uncertainty": "bootstrap"}, ValueError, "`uncertainty` = 'bootstrap'"),
        (NEW, {"demographic": "yes"}, ValueError, "`demographic` = 'yes'"),
        (NEW, {"draws": 0}, ValueError, "`draws` = 0"),
        (NEW, {"params": {"lambda_S": 0.2}}, ValueError, "overrides free parameter"),
        (NEW, {"params": {"lamda_T": 0.2}}, ValueError, "lamda_T"),
        (NEW, {"horizon_days": 90.0}, ValueError, r"`horizon_days` = 90.0"),
        (NEW, {"eradication_day": -1.0}, ValueError, "`eradication_day` = -1.0"),
        (NEW, {"level": 1.5}, ValueError, "`level` = 1.5"),
        (NEW, {"quantiles": [0.5, 1.0]}, ValueError, "`quantiles`"),
        (NEW, {"posterior": {"a": 1}}, TypeError, "`posterior`"),
        # conflicting options were resolved silently (the explicit one lost)
        (NEW, {"uncertainty": "laplace", "posterior": {"a": 1}}, ValueError, "with `posterior`"),
        (NEW, {"demographic": "branching", "paths": 7}, ValueError, "`paths` = 7 with"),
        (NEW, {"demographic": "none", "paths": 7}, ValueError, "`paths` = 7 with"),
        ("schedule.toml", {}, TypeError, "`schedule`"),
    ],
)
def test_bad_input_is_named(one_fit, schedule, options, error, match):
    with pytest.raises(error, match=match):
        one_fit.predict(schedule, **options)


def test_branching_needs_a_linear_model():
    model = tolsim.models.TwoState(crowding="logistic")
    days = np.arange(2.0, 11.0, 2.0)
    schedule = tolsim.Schedule.from_phases([{"days": 10}])
    cells = tolsim.simulate(model, model.default_params(), schedule, days).N.values
    data = pd.DataFrame(
        {"condition": "grow", "observable": "total_cells", "time": days, "value": cells}
    )
    result = tolsim.fit(
        model, data, {"grow": schedule}, free=["lambda_S"], noise=LogNormal(), starts=2
    )
    with pytest.raises(ValueError, match="needs a linear model"):
        result.predict(NEW, demographic="branching")
    with pytest.raises(TypeError, match="`fit`"):
        tolsim.predict(result.params, NEW)


def test_failed_draws_are_left_out_with_a_warning(one_fit, monkeypatch):
    real = tolsim.predict.__globals__["simulate"]

    def first_draw_fails(*args, **kwargs):
        ds = real(*args, **kwargs)
        ds["status"][0] = 1
        return ds

    monkeypatch.setitem(tolsim.predict.__globals__, "simulate", first_draw_fails)
    with pytest.warns(PredictionWarning, match="1 of 5 draws failed"):
        prediction = one_fit.predict(NEW, draws=5, demographic="none", threshold=THRESHOLD)
    assert prediction.draw_ok.values.tolist() == [False, True, True, True, True]
    assert np.isnan(prediction.time_to_recurrence[0])
    finite = prediction.time_to_recurrence.values[1:]
    assert prediction.time_to_recurrence_quantiles.max() <= finite.max()
