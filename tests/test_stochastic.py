"""Stochastic engine: exact moments, the branching process, agreement between methods,
reproducible streams, and every promised error.

Statistical tests use fixed seeds, so each runs the same paths every time; each states its
level. A test at level 1e-3 fails a correct implementation once in a thousand seeds, and a
wrong one (e.g. a 5% bias in a mean over thousands of paths) almost always.
"""

import json
import math

import numba
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import tolsim
from tolsim.kernels.random import draw_poisson, draw_uniform
from tolsim.simulate import SolverError

LEVEL = 1e-3  # significance level of every statistical test below
Z = stats.norm.ppf(1 - LEVEL / 2)  # two-sided z bound


@pytest.fixture(scope="module")
def linear():
    return tolsim.models.TwoState(crowding="none")


@pytest.fixture(scope="module")
def logistic():
    return tolsim.models.TwoState(crowding="logistic")


def birth_death(model, b, d, n0):
    """S-only linear birth-death: division b, death d per day, no switching, no drugs."""
    return model.default_params(
        S0=n0, T0=0, lambda_S=b, delta_S=d, mu_0=0.0, mu_E=0.0, nu_0=0.0, nu_off=0.0
    )


DRUG_FREE = tolsim.Schedule.from_phases([{"days": 20}])
TAM_THEN_OFF = tolsim.Schedule.from_phases([{"days": 20, "tamoxifen": 1.0}, {"days": 20}])


# -- random streams ------------------------------------------------------------------------
def _xoshiro_reference(seed, sample, path, n):
    """xoshiro256** and SplitMix64 seeding written out in Python integers (independent of
    numba's uint64 semantics)."""
    mask = (1 << 64) - 1
    golden = 0x9E3779B97F4A7C15

    def mix(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & mask

    key = mix((seed + golden) & mask)
    key = mix(key ^ ((sample * 0xD1B54A32D192ED03 + golden) & mask))
    key = mix(key ^ ((path * 0x8CB92BA72F3D8DD7 + golden) & mask))
    s = []
    for _ in range(4):
        key = (key + golden) & mask
        s.append(mix(key))
    out = []
    for _ in range(n):
        result = (rotl((s[1] * 5) & mask, 7) * 9) & mask
        t = (s[1] << 17) & mask
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        out.append((result >> 11) * 2.0**-53)
    return np.array(out)


@pytest.mark.parametrize(("seed", "sample", "path"), [(0, 0, 0), (2026, 3, 17), (2**62, 5, 9)])
def test_streams_match_reference_xoshiro(seed, sample, path):
    np.testing.assert_array_equal(
        draw_uniform(seed, sample, path, 50), _xoshiro_reference(seed, sample, path, 50)
    )


def test_streams_of_neighbouring_paths_are_unrelated():
    a = draw_uniform(7, 0, 0, 20_000)
    b = draw_uniform(7, 0, 1, 20_000)
    c = draw_uniform(7, 1, 0, 20_000)
    for other in (b, c):
        r = np.corrcoef(a, other)[0, 1]
        assert abs(r) < Z / math.sqrt(a.size)
    assert stats.kstest(a, "uniform").pvalue > LEVEL


@pytest.mark.parametrize("mean", [0.7, 4.0, 9.99, 10.0, 35.0, 2.5e4])
def test_poisson_sampler_matches_the_distribution(mean):
    draws = draw_poisson(11, 0, 0, mean, 40_000)
    assert np.all(draws == np.round(draws)) and draws.min() >= 0
    # chi-square over the central support, tails pooled
    lo, hi = stats.poisson.ppf([0.001, 0.999], mean)
    edges = np.arange(lo, hi + 2) - 0.5
    edges[0], edges[-1] = -np.inf, np.inf
    observed, _ = np.histogram(draws, bins=edges)
    expected = np.diff(stats.poisson.cdf(np.floor(edges + 0.5) - 1, mean))
    expected[0] = stats.poisson.cdf(edges[1] - 0.5, mean)
    expected = expected / expected.sum() * draws.size
    keep = expected > 5
    observed = np.append(observed[keep], observed[~keep].sum())
    expected = np.append(expected[keep], expected[~keep].sum())
    if expected[-1] == 0:
        observed, expected = observed[:-1], expected[:-1]
    assert stats.chisquare(observed, expected).pvalue > LEVEL


# -- exact SSA against exact results -------------------------------------------------------
def test_ssa_birth_death_mean_and_variance_are_exact(linear):
    b, d, n0, t = 0.5, 0.3, 10, 8.0
    ds = tolsim.simulate(
        linear,
        birth_death(linear, b, d, n0),
        DRUG_FREE,
        [0.0, t],
        method="ssa",
        paths=4000,
        seed=1,
    )
    final = ds.S.sel(time=t).values.astype(float)
    growth = math.exp((b - d) * t)
    mean = n0 * growth
    variance = n0 * (b + d) / (b - d) * growth * (growth - 1)
    assert abs(final.mean() - mean) < Z * math.sqrt(variance / final.size)
    # sample variance: normal approximation with the fourth moment estimated from the sample
    m4 = np.mean((final - final.mean()) ** 4)
    se_var = math.sqrt((m4 - variance**2) / final.size)
    assert abs(final.var(ddof=1) - variance) < Z * se_var
    assert np.all(ds.T.values == 0)


@pytest.mark.parametrize(("b", "d", "n0"), [(0.6, 0.3, 2), (0.4, 0.4, 1), (0.2, 0.5, 3)])
def test_ssa_extinction_matches_birth_death_closed_form(linear, b, d, n0):
    t = 20.0
    ds = tolsim.simulate(
        linear,
        birth_death(linear, b, d, n0),
        DRUG_FREE,
        [0.0, t],
        method="ssa",
        paths=3000,
        seed=2,
        max_events=10**7,
    )
    if b == d:
        exact = (b * t / (1 + b * t)) ** n0
    else:
        g = math.exp((b - d) * t)
        exact = (d * (g - 1) / (b * g - d)) ** n0
    mc = tolsim.extinction_probability(ds, level=1 - LEVEL)
    assert float(mc.ci_low) <= exact <= float(mc.ci_high)
    # the per-path extinction day agrees with the stored trajectory
    extinct = ds.N.sel(time=t).values == 0
    np.testing.assert_array_equal(np.isfinite(ds.extinction_day.values), extinct)
    assert np.all(ds.extinction_day.values[extinct] <= t)


def test_eventual_extinction_is_d_over_b_to_the_n0(linear):
    exact = tolsim.extinction_probability(
        linear, birth_death(linear, 0.6, 0.3, 3), DRUG_FREE, by_day=np.inf
    )
    assert float(exact.extinction_probability) == pytest.approx(0.5**3, rel=1e-10)


def test_ssa_mean_matches_linear_ode_through_a_tamoxifen_switch(linear):
    p = linear.default_params(S0=300, T0=20, mu_0=0.01, mu_E=0.05, nu_off=0.1)
    times = np.array([5.0, 20.0, 30.0, 40.0])
    ds = tolsim.simulate(linear, p, TAM_THEN_OFF, times, method="ssa", paths=3000, seed=3)
    ode = tolsim.simulate(linear, p, TAM_THEN_OFF, times, method="exact")
    bound = stats.norm.ppf(1 - LEVEL / (2 * 2 * times.size))  # Bonferroni over states, times
    for state in ("S", "T"):
        paths = ds[state].values.astype(float)
        standard_error = paths.std(axis=0, ddof=1) / math.sqrt(paths.shape[0])
        z = (paths.mean(axis=0) - ode[state].values) / standard_error
        assert np.all(np.abs(z) < bound), (state, z)


def test_ssa_matches_branching_process_for_the_tolerant_reservoir(linear):
    """Probability that no tolerant cell is left after an inhibitor course: Monte Carlo
    against the generating-function (Riccati) solution."""
    p = linear.default_params(S0=40, T0=4, mu_0=0.002, kappa_T=0.3)
    schedule = tolsim.Schedule.from_phases(
        [{"days": 15, "tamoxifen": 1.0, "inhibitor": 5.0}, {"days": 10, "tamoxifen": 1.0}]
    )
    exact = tolsim.extinction_probability(linear, p, schedule, states=["T"])
    ds = tolsim.simulate(linear, p, schedule, [0.0, 25.0], method="ssa", paths=4000, seed=4)
    mc = tolsim.extinction_probability(ds, states=["T"], level=1 - LEVEL)
    value = float(exact.extinction_probability)
    assert 0.05 < value < 0.95  # a probability the test can get wrong
    assert float(mc.ci_low) <= value <= float(mc.ci_high)


def test_ssa_with_oral_pk_matches_the_ode_mean(linear):
    """Propensities change continuously with the drug concentration: the integrated-hazard
    event times must reproduce the mean-field solution (freezing rates would not)."""
    schedule = tolsim.Schedule.oral(
        "tamoxifen",
        dose_mg=0.5,
        every_days=1.0,
        stop_day=6.0,
        pk=tolsim.PK.tamoxifen_mouse(),
        duration_days=8.0,
    )  # concentration swings between 0.17 and 1.34 µM every day
    p = linear.default_params(S0=400, T0=0, mu_0=0.0, mu_E=0.0, kappa_S=2.0, EC50_tam=1.0)
    times = np.array([2.0, 5.0, 8.0])
    ds = tolsim.simulate(linear, p, schedule, times, method="ssa", paths=3000, seed=5)
    ode = tolsim.simulate(linear, p, schedule, times, method="dopri5", rtol=1e-10, atol=1e-10)
    final = ds.S.values.astype(float)
    z = (final.mean(axis=0) - ode.S.values) / (final.std(axis=0, ddof=1) / math.sqrt(3000))
    bound = stats.norm.ppf(1 - LEVEL / 6)
    assert np.all(np.abs(z) < bound), z

    # and the test tells: with each day's rates frozen at its start (the trough before a
    # dose) the mean is far outside the SSA mean's band
    def frozen(day):
        log_s = math.log(400.0)
        for start in range(int(day)):
            c = schedule.concentrations([float(start)], ["tamoxifen"])[0][0]
            e = c ** p["h_tam"] / (c ** p["h_tam"] + p["EC50_tam"] ** p["h_tam"])
            log_s += p["lambda_S"] * (1 - p["eps_S"] * e) - p["delta_S"] - p["kappa_S"] * e
        return math.exp(log_s)

    se = final.std(axis=0, ddof=1) / math.sqrt(3000)
    z_frozen = (final.mean(axis=0) - [frozen(t) for t in times]) / se
    assert np.all(np.abs(z_frozen) > 5 * bound), z_frozen  # (|z| > 1000 here)


# -- tau-leaping and hybrid against SSA --------------------------------------------------------
@pytest.fixture(scope="module")
def reference_paths(logistic):
    """A few tolerant cells regrow under tamoxifen and seed sensitive cells after withdrawal:
    every state starts small, so the hybrid method switches each of them from exact jumps to
    the mean field (at 100 cells) along the way."""
    p = logistic.default_params(S0=0, T0=8, K=5e4)
    times = np.array([0.0, 20.0, 40.0])
    return {
        method: tolsim.simulate(
            logistic,
            p,
            TAM_THEN_OFF,
            times,
            method=method,
            seed=seed,
            threshold=100.0,
            paths=1500,
            recurrence_threshold=1500.0,
        )
        for method, seed in (("ssa", 6), ("tau", 7), ("hybrid", 8))
    }


@pytest.mark.parametrize("method", ["tau", "hybrid"])
def test_final_counts_match_ssa_distribution(reference_paths, method):
    for day in (20.0, 40.0):
        for variable in ("N", "T"):
            ssa = reference_paths["ssa"][variable].sel(time=day).values
            other = reference_paths[method][variable].sel(time=day).values
            assert stats.ks_2samp(ssa, other).pvalue > LEVEL, (variable, day)


@pytest.mark.parametrize("method", ["tau", "hybrid"])
def test_recurrence_times_match_ssa_distribution(reference_paths, method):
    ssa = reference_paths["ssa"].time_to_recurrence.values
    other = reference_paths[method].time_to_recurrence.values
    assert 0.3 < np.isfinite(ssa).mean() < 1  # most paths recur within follow-up, not all
    assert stats.ks_2samp(ssa, other).pvalue > LEVEL


def test_hybrid_tolerant_cells_beside_a_large_population_match_ssa(logistic):
    """2e4 sensitive cells (mean field in the hybrid method) feed a few tolerant cells (exact)
    by switching: the tolerant count's distribution must match the exact SSA."""
    p = logistic.default_params(S0=20_000, T0=8, K=1e6, mu_0=1e-4, mu_E=2e-4)
    schedule = tolsim.Schedule.from_phases([{"days": 20, "tamoxifen": 1.0}])
    runs = {
        method: tolsim.simulate(
            logistic, p, schedule, [0.0, 20.0], method=method, seed=seed, paths=1000
        )
        for method, seed in (("ssa", 12), ("hybrid", 13))
    }
    hybrid_t = runs["hybrid"].T.sel(time=20.0).values
    assert hybrid_t.max() < 1000  # T stayed discrete throughout
    assert stats.ks_2samp(runs["ssa"].T.sel(time=20.0).values, hybrid_t).pvalue > LEVEL
    ssa_s = runs["ssa"].S.sel(time=20.0).values.astype(float)
    hybrid_s = runs["hybrid"].S.sel(time=20.0).values.astype(float)
    standard_error = ssa_s.std(ddof=1) / math.sqrt(ssa_s.size)
    assert abs(hybrid_s.mean() - ssa_s.mean()) < Z * standard_error * math.sqrt(2)


def test_recurrence_time_agrees_with_stored_burden(reference_paths):
    ds = reference_paths["ssa"]
    withdrawal = ds.attrs["withdrawal_day"]
    recurred_by_end = ds.time_to_recurrence.values <= 40.0 - withdrawal
    # a path above the threshold at the end has recurred; the converse need not hold
    assert np.all(recurred_by_end[ds.N.sel(time=40.0).values > 1500])
    assert np.all(ds.time_to_recurrence.values >= 0)


@pytest.mark.parametrize("method", ["ssa", "tau", "hybrid"])
def test_recurrence_is_counted_from_an_oral_regimens_stop_day(linear, method):
    """Oral dosing stops on day 20, after the last dose on day 19: no boundary of the
    schedule's pieces. Recurrence is still counted from day 20."""
    p = linear.default_params(S0=200, T0=20, mu_E=0.0, mu_0=0.0)
    oral = tolsim.Schedule.oral(
        "tamoxifen",
        dose_mg=0.5,
        every_days=1.0,
        stop_day=20.0,
        pk=tolsim.PK.tamoxifen_mouse(),
        duration_days=50.0,
    )
    assert oral.withdrawal_day() == 20.0 and 20.0 not in oral.breakpoints()
    times = np.arange(0.0, 51.0)
    ode = tolsim.time_to_recurrence(tolsim.simulate(linear, p, oral, times), threshold=5000.0)
    ds = tolsim.simulate(
        linear, p, oral, times, method=method, paths=40, seed=7, recurrence_threshold=5000.0
    )
    days = ds.time_to_recurrence.values
    # each path has crossed by the first output day on which it holds more cells
    above = ds.N.sel(time=slice(20.0, None)).values > 5000.0
    assert above.any(axis=1).all()
    first_day_above = times[times >= 20.0][above.argmax(axis=1)] - 20.0
    assert np.all((days > 0.0) & (days <= first_day_above))
    assert abs(np.median(days) - float(ode)) < 1.0  # the mean field's 14.5 days


def test_tau_leaps_stay_within_the_logistic_capacity(logistic):
    """Near K a leap's Poisson divisions can overshoot it, where the division propensity turns
    negative (no exact path goes there): such a leap is refused and drawn shorter."""
    p = logistic.default_params(S0=99_000, T0=0, K=100_000, delta_S=0.0, kappa_S=0.0, mu_0=0.0)
    no_drug = tolsim.Schedule.from_phases([{"days": 100}])
    ds = tolsim.simulate(
        logistic, p, no_drug, np.arange(0.0, 101.0, 5.0), method="tau", paths=30, seed=3
    )
    assert np.all(ds.status.values == 0)
    assert int(ds.N.max()) == 100_000 and ds.N.min() >= 99_000
    assert int(ds.n_rejected_steps.sum()) > 0  # the overshooting leaps were refused


def test_tau_recurrence_time_lies_within_the_crossing_leap(logistic):
    """At 1e9 cells the demographic spread of the crossing day is ~1e-4 days: tau-leaping must
    find the mean field's day, not the end of the leap that crossed (~0.09 days later)."""
    therapy = tolsim.Schedule.from_phases(
        [{"days": 120, "tamoxifen": 1.0, "inhibitor": 5.0}, {"days": 40}]
    )
    p = logistic.default_params(S0=1e9, T0=100, K=1e10, mu_E=0.0)
    times = np.arange(161.0)
    ode = tolsim.time_to_recurrence(tolsim.simulate(logistic, p, therapy, times), threshold=1e9)
    ds = tolsim.simulate(
        logistic, p, therapy, times, method="tau", paths=5, seed=1, recurrence_threshold=1e9
    )
    assert np.abs(ds.time_to_recurrence.values - float(ode)).max() < 0.01


def test_time_to_recurrence_reads_the_exact_kernel_times(reference_paths):
    ds = reference_paths["tau"]
    days = tolsim.time_to_recurrence(ds, threshold=1500.0)
    xr.testing.assert_equal(days, ds.time_to_recurrence)
    assert days.attrs["units"] == "days" and days.attrs["threshold"] == "1500 cells"
    for name in ("model", "params", "schedule", "method", "seed"):  # what was simulated
        assert days.attrs[name] == ds.attrs[name]
    assert "model" not in ds.time_to_recurrence.attrs  # (the result's own variable unchanged)
    with pytest.raises(ValueError, match=r"holds recurrence times for a threshold of 1500 cells"):
        tolsim.time_to_recurrence(ds, threshold=2000.0)
    with pytest.raises(ValueError, match=r"`withdrawal_day` = 5.0: a stochastic result"):
        tolsim.time_to_recurrence(ds, threshold=1500.0, withdrawal_day=5.0)


def test_tau_leaping_never_gives_negative_counts_and_agrees_with_pk(linear):
    schedule = tolsim.Schedule.oral(
        "inhibitor", dose_mg=0.5, every_days=1.0, stop_day=10.0, pk=tolsim.PK.tamoxifen_mouse()
    )
    p = linear.default_params(S0=0, T0=1000, kappa_T=1.5, EC50_inh=1.0)
    times = np.array([0.0, 5.0, 10.0])
    tau = tolsim.simulate(linear, p, schedule, times, method="tau", paths=1000, seed=9)
    ssa = tolsim.simulate(linear, p, schedule, times, method="ssa", paths=1000, seed=10)
    assert tau.T.values.min() >= 0
    assert stats.ks_2samp(tau.T.values[:, -1], ssa.T.values[:, -1]).pvalue > LEVEL


@pytest.mark.parametrize("threshold", [1.0, 1.5, 3.0])
def test_hybrid_records_the_extinction_of_a_state_rounded_to_zero(threshold):
    """Below half the threshold a continuous state turns discrete, rounded stochastically:
    to 0 cells too when the threshold is under 2. That was no event, so the path's extinction
    days stayed NaN ("did not die out") for 59% of the paths at threshold 1."""
    model = tolsim.models.TwoState(crowding="none")
    p = model.default_params(S0=100, T0=0, mu_0=0.0, mu_E=0.0, lambda_S=0.0, delta_S=0.5)
    schedule = tolsim.Schedule.from_phases([{"days": 30}])
    ds = tolsim.simulate(
        model, p, schedule, [0.0, 30.0], method="hybrid", paths=200, seed=1, threshold=threshold
    )
    gone = ds.S.values[:, -1] == 0
    assert gone.sum() >= 195  # P(S = 0 by day 30) = 0.99997 for pure death at 0.5/day
    for name in ("extinction_day_S", "extinction_day"):
        days = ds[name].values[gone]
        assert np.all((days > 0.0) & (days <= 30.0)), name


def test_tau_under_pk_chooses_among_critical_transitions_at_their_firing_time():
    """Few T cells (their death and reversion to S critical, fired one at a time) beside many
    R (so that tau leaps) under a rising then falling oral inhibitor. The critical transition
    was chosen from propensities at the firing time normalised by their total at the leap's
    start: reversions (S here, which is otherwise inert) came out 49% too few by day 0.5
    (z = -72 over 20,000 paths). Exact references: the ODE mean and the branching
    probability of no reversion."""
    model = tolsim.models.ThreeState(crowding="none")
    inert = dict(lambda_S=0.0, delta_S=0.0, kappa_S=0.0, mu_0=0.0, mu_E=0.0, iota=0.0)
    p = model.default_params(
        S0=0, T0=8, R0=100_000, kappa_T=2.0, lambda_T=0.0, nu_0=0.2, nu_off=0.0, rho=0.0,
        **inert,
    )  # fmt: skip
    pk = tolsim.PK(ka_per_day=3.0, ke_per_day=0.05, volume_l=1.0, molar_mass_g_per_mol=300.0)
    schedule = tolsim.Schedule.oral(
        "inhibitor", dose_mg=3.0, every_days=100.0, stop_day=1.0, pk=pk, duration_days=3.0
    )
    times = np.array([0.0, 0.5, 3.0])
    paths = 2000
    ds = tolsim.simulate(model, p, schedule, times, method="tau", paths=paths, seed=4)
    assert ds.n_steps.values.mean() < 100  # it leaps (events number ~1e5 per path)
    ode = tolsim.simulate(model, p, schedule, times, rtol=1e-10, atol=1e-12)
    for i, day in enumerate(times[1:], start=1):
        reversions = ds.S.sel(time=day).values.astype(float)
        z = (reversions.mean() - ode.S.values[i]) / (reversions.std() / np.sqrt(paths))
        assert abs(z) < 4.0, (day, reversions.mean(), ode.S.values[i])
        none = tolsim.extinction_probability(model, p, schedule, states=["S"], by_day=day)
        q = none.extinction_probability.item()
        z = (np.mean(reversions == 0) - q) / np.sqrt(q * (1 - q) / paths)
        assert abs(z) < 4.0, (day, np.mean(reversions == 0), q)


@settings(max_examples=15, deadline=None)
@given(
    t0=st.integers(0, 60),
    kappa_t=st.floats(0.0, 3.0),
    inhibitor=st.floats(0.0, 20.0),
    seed=st.integers(0, 2**32),
)
def test_tau_counts_stay_non_negative(linear, t0, kappa_t, inhibitor, seed):
    p = linear.default_params(S0=50, T0=t0, kappa_T=kappa_t)
    schedule = tolsim.Schedule.from_phases([{"days": 10, "inhibitor": inhibitor}, {"days": 5}])
    ds = tolsim.simulate(linear, p, schedule, np.arange(16.0), method="tau", paths=20, seed=seed)
    assert ds.S.values.min() >= 0 and ds.T.values.min() >= 0
    assert np.all(ds.status.values == 0)


def test_hybrid_switches_a_dying_population_to_exact_jumps(linear):
    """5,000 sensitive cells killed by tamoxifen start in the mean field and must become
    discrete to die out: the extinction probability must match the branching process."""
    p = linear.default_params(S0=5000, T0=0, mu_0=0.0, mu_E=0.0, kappa_S=1.5, eps_S=0.9)
    schedule = tolsim.Schedule.from_phases([{"days": 6, "tamoxifen": 10.0}])
    exact = float(tolsim.extinction_probability(linear, p, schedule).extinction_probability)
    assert 0.05 < exact < 0.95
    ds = tolsim.simulate(linear, p, schedule, [0.0, 6.0], method="hybrid", paths=3000, seed=14)
    mc = tolsim.extinction_probability(ds, level=1 - LEVEL)
    assert float(mc.ci_low) <= exact <= float(mc.ci_high)


def test_hybrid_with_oral_pk_matches_ssa(linear):
    """Mean-field sensitive cells and exact tolerant cells under daily oral dosing: the
    discrete jump times follow the integrated, time-varying propensities."""
    schedule = tolsim.Schedule.oral(
        "inhibitor", dose_mg=0.5, every_days=1.0, stop_day=8.0, pk=tolsim.PK.tamoxifen_mouse()
    )
    p = linear.default_params(S0=1500, T0=30, kappa_T=1.0, EC50_inh=1.0, nu_0=0.02, mu_0=2e-3)
    runs = {
        method: tolsim.simulate(
            linear, p, schedule, [0.0, 8.0], method=method, seed=seed, paths=1500
        )
        for method, seed in (("ssa", 15), ("hybrid", 16))
    }
    ssa_t, hybrid_t = (runs[m].T.sel(time=8.0).values for m in ("ssa", "hybrid"))
    assert stats.ks_2samp(ssa_t, hybrid_t).pvalue > LEVEL
    ode = tolsim.simulate(linear, p, schedule, [0.0, 8.0], method="dopri5", rtol=1e-9)
    standard_error = hybrid_t.std(ddof=1) / math.sqrt(hybrid_t.size)
    assert abs(hybrid_t.mean() - float(ode.T.sel(time=8.0))) < Z * standard_error


def test_hybrid_tumour_of_1e9_cells_follows_the_ode(logistic):
    """Large compartments follow the mean field; the handful of tolerant cells is exact."""
    p = logistic.default_params(S0=1e9, T0=100, K=1e10)
    schedule = tolsim.Schedule.from_phases([{"days": 120, "tamoxifen": 1.0}, {"days": 240}])
    times = np.array([0.0, 60.0, 120.0, 360.0])
    ds = tolsim.simulate(logistic, p, schedule, times, method="hybrid", paths=8, seed=11)
    ode = tolsim.simulate(logistic, p, schedule, times)
    np.testing.assert_allclose(ds.N.mean("path"), ode.N, rtol=1e-3)
    assert ds.N.dtype == np.int64


# -- reproducibility ---------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["ssa", "tau", "hybrid"])
def test_same_seed_same_paths_whatever_threads_and_batches(linear, method):
    p = linear.default_params(S0=200, T0=5)
    times = np.arange(0.0, 41.0, 5.0)
    run = dict(method=method, seed=123, threshold=50.0)
    default_threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = tolsim.simulate(linear, p, TAM_THEN_OFF, times, paths=6, **run)
    finally:
        numba.set_num_threads(default_threads)
    many = tolsim.simulate(linear, p, TAM_THEN_OFF, times, paths=6, **run)
    first = tolsim.simulate(linear, p, TAM_THEN_OFF, times, paths=2, **run)
    rest = tolsim.simulate(linear, p, TAM_THEN_OFF, times, paths=4, path_start=2, **run)
    xr.testing.assert_identical(one, many)
    for name in ("S", "T", "time_to_recurrence", "n_events"):
        joined = np.concatenate([first[name].values, rest[name].values], axis=0)
        np.testing.assert_array_equal(joined, many[name].values)
    other = tolsim.simulate(linear, p, TAM_THEN_OFF, times, paths=6, **{**run, "seed": 124})
    assert not np.array_equal(other.N.values, many.N.values)


@pytest.mark.parametrize("method", ["ssa", "tau", "hybrid"])
def test_a_kernel_copy_compiles_its_own_method_alone(linear, method):
    """Each method's copy of the kernels has that method compiled in: after numba's branch
    pruning (which runs before typing) its ``simulate_batch`` calls that method's path alone,
    so no other path is compiled; and it refuses a call for another method instead of running
    the wrong one."""
    from numba.core import analysis, compiler, ir

    from tolsim.stochastic import kernel_module

    kernels = kernel_module(linear, method)
    assert kernels.METHOD == getattr(kernels, f"METHOD_{method.upper()}")
    func_ir = compiler.run_frontend(kernels.simulate_batch.py_func)
    analysis.dead_branch_prune(func_ir, [numba.types.int64] * func_ir.arg_count)
    called = {
        stmt.value.name
        for block in func_ir.blocks.values()
        for stmt in block.body
        if isinstance(stmt, ir.Assign) and isinstance(stmt.value, ir.Global)
    }
    assert called & {"ssa_path", "tau_path", "hybrid_path"} == {f"{method}_path"}

    p = linear.default_params(S0=50, T0=5)
    ds = tolsim.simulate(linear, p, TAM_THEN_OFF, [0.0, 40.0], method=method, paths=2, seed=5)
    assert ds.attrs["method"] == method
    packed = linear.pack(p)[None, :]
    compiled = TAM_THEN_OFF.compile(linear.drugs)
    t_out = np.array([0.0, 40.0])
    out = np.zeros((1, 1, 2, 2), dtype=np.int64)
    other = (kernels.METHOD + 1) % 3
    with pytest.raises(ValueError, match="not the method compiled into this copy"):
        kernels.simulate_batch(
            other, packed, linear.initial_state(packed), tuple(compiled),
            linear.stoichiometry.astype(np.float64), t_out, 1, 0, 0, 1000, -1,
            np.full(1, np.nan), 50.0, out, np.zeros((1, 1, 4)),
            np.zeros((1, 1, kernels.N_STATS), dtype=np.int64),
        )  # fmt: skip
    with pytest.raises(ValueError, match="`method` = 'gillespie'"):
        kernel_module(linear, "gillespie")


def test_samples_get_their_own_streams(linear):
    table = {"S0": np.array([200.0, 200.0]), "T0": np.array([5.0, 5.0])}
    ds = tolsim.simulate(linear, table, TAM_THEN_OFF, [0.0, 40.0], method="ssa", paths=3, seed=1)
    assert ds.N.dims == ("sample", "path", "time")
    assert not np.array_equal(ds.N.isel(sample=0).values, ds.N.isel(sample=1).values)
    single = tolsim.simulate(
        linear,
        {"S0": 200.0, "T0": 5.0},
        TAM_THEN_OFF,
        [0.0, 40.0],
        method="ssa",
        paths=3,
        seed=1,
    )
    np.testing.assert_array_equal(single.N.values, ds.N.isel(sample=0).values)


# -- results -----------------------------------------------------------------------------------
def test_dataset_records_what_was_run(linear):
    p = linear.default_params(S0=100, T0=5)
    ds = tolsim.simulate(linear, p, TAM_THEN_OFF, [0.0, 20.0, 40.0], method="tau", paths=4, seed=5)
    assert ds.S.dims == ("path", "time") and ds.S.dtype == np.int64
    assert ds.attrs["method"] == "tau" and ds.attrs["seed"] == 5
    assert ds.attrs["tolsim_version"] == tolsim.__version__
    assert ds.attrs["withdrawal_day"] == 20.0
    assert ds.S.attrs["units"] == "cells" and ds.time_to_recurrence.attrs["units"] == "days"
    np.testing.assert_array_equal(ds.N.values, ds.S.values + ds.T.values)
    assert list(ds.path.values) == [0, 1, 2, 3]
    assert "params" in ds.attrs and "schedule" in ds.attrs


def test_seed_from_a_generator_is_recorded_and_reproduces(linear):
    p = linear.default_params(S0=100, T0=5)
    ds = tolsim.simulate(
        linear, p, DRUG_FREE, [0.0, 20.0], method="ssa", paths=3, seed=np.random.default_rng(1)
    )
    again = tolsim.simulate(
        linear, p, DRUG_FREE, [0.0, 20.0], method="ssa", paths=3, seed=ds.attrs["seed"]
    )
    xr.testing.assert_identical(ds, again)


def test_event_budget_keeps_the_partial_paths(linear):
    p = linear.default_params(S0=100, T0=5)
    times = np.arange(0.0, 41.0)
    with pytest.raises(
        SolverError, match=r"event budget reached \(raise `max_events`\)\. "
    ) as error:
        tolsim.simulate(
            linear, p, TAM_THEN_OFF, times, method="hybrid", paths=2, seed=1, max_events=200
        )  # (no advice to use the hybrid method it already is)
    ds = error.value.dataset
    assert np.all(ds.status.values == -2)
    reached = ds.N.values >= 0
    assert reached[:, 0].all() and not reached[:, -1].any()  # start kept, end not reached
    kept = tolsim.simulate(
        linear,
        p,
        TAM_THEN_OFF,
        times,
        method="hybrid",
        paths=2,
        seed=1,
        max_events=200,
        throw=False,
    )
    xr.testing.assert_identical(kept, ds)


# -- errors ------------------------------------------------------------------------------------
def test_non_integer_initial_counts_are_refused(linear):
    with pytest.raises(ValueError, match=r"`params.S0` = 100.5 cells: stochastic methods need"):
        tolsim.simulate(
            linear, linear.default_params(S0=100.5), DRUG_FREE, [20.0], method="ssa", seed=1
        )
    with pytest.raises(ValueError, match=r"`params.T0\[1\]` = 2.5 cells"):
        tolsim.simulate(
            linear, {"T0": np.array([2.0, 2.5])}, DRUG_FREE, [20.0], method="tau", seed=1
        )


def test_negative_initial_counts_are_refused(linear):
    with pytest.raises(ValueError, match=r"`params.T0` = -3.0 cells"):
        tolsim.simulate(linear, {"T0": -3.0}, DRUG_FREE, [20.0], method="ssa", seed=1)


@pytest.mark.parametrize("paths", [0, -1, 2.5, True])
def test_paths_must_be_a_positive_integer(linear, paths):
    with pytest.raises(ValueError, match=r"`paths` = .*: expected an integer >= 1"):
        tolsim.simulate(linear, {}, DRUG_FREE, [20.0], method="ssa", paths=paths, seed=1)


def test_too_many_events_for_exact_ssa_suggests_tau_or_hybrid(logistic):
    p = logistic.default_params(S0=1e9, T0=100, K=1e10)
    with pytest.raises(
        ValueError,
        match=r"exact SSA would fire about .* events per path.*"
        r"use method='tau' or method='hybrid'",
    ):
        tolsim.simulate(logistic, p, TAM_THEN_OFF, [40.0], method="ssa", seed=1)


def test_missing_seed_is_refused(linear):
    with pytest.raises(ValueError, match=r"`seed` = None: stochastic methods need an explicit"):
        tolsim.simulate(linear, {}, DRUG_FREE, [20.0], method="hybrid", paths=2)
    with pytest.raises(TypeError, match=r"`seed` = 1.5: expected an integer"):
        tolsim.simulate(linear, {}, DRUG_FREE, [20.0], method="ssa", seed=1.5)
    with pytest.raises(ValueError, match=r"`seed` = -1: expected an integer in \[0, 2\*\*63\)"):
        tolsim.simulate(linear, {}, DRUG_FREE, [20.0], method="ssa", seed=-1)


def test_stochastic_options_are_refused_for_ode_methods(linear):
    with pytest.raises(ValueError, match=r"`paths` applies to stochastic methods"):
        tolsim.simulate(linear, {}, DRUG_FREE, [20.0], paths=10)
    with pytest.raises(ValueError, match=r"`seed` applies to stochastic methods"):
        tolsim.simulate(linear, {}, DRUG_FREE, [20.0], method="dopri5", seed=1)
    with pytest.raises(ValueError, match=r"`recurrence_threshold` applies to stochastic"):
        tolsim.simulate(linear, {}, DRUG_FREE, [20.0], recurrence_threshold=1e6)
    with pytest.raises(ValueError, match=r"`threshold` applies to stochastic methods"):
        tolsim.simulate(linear, {}, DRUG_FREE, [20.0], method="exact", threshold=100.0)


def test_bad_thresholds_are_refused(linear):
    with pytest.raises(ValueError, match=r"`threshold` = 0.0 cells: expected a finite number"):
        tolsim.simulate(linear, {}, DRUG_FREE, [20.0], method="hybrid", seed=1, threshold=0)
    with pytest.raises(ValueError, match=r"`recurrence_threshold` = 'nadir'"):
        tolsim.simulate(
            linear, {}, DRUG_FREE, [20.0], method="ssa", seed=1, recurrence_threshold="nadir"
        )
    with pytest.raises(ValueError, match=r"`recurrence_threshold` = -5 cells"):
        tolsim.simulate(
            linear, {}, DRUG_FREE, [20.0], method="ssa", seed=1, recurrence_threshold=-5
        )


def test_thresholds_and_path_ranges_of_the_wrong_kind_are_refused(linear):
    run = dict(method="hybrid", seed=1)
    for value in (True, np.array([5.0, 6.0]), [5.0]):
        with pytest.raises(TypeError, match=r"`recurrence_threshold` = .*\(one number\)"):
            tolsim.simulate(linear, {}, DRUG_FREE, [20.0], recurrence_threshold=value, **run)
    for value in ("a", True, [100.0]):
        with pytest.raises(TypeError, match=r"`threshold` = .*: expected one number of cells"):
            tolsim.simulate(linear, {}, DRUG_FREE, [20.0], threshold=value, **run)
    with pytest.raises(ValueError, match=r"`path_start` = 9223372036854775806 with `paths` = 3"):
        tolsim.simulate(linear, {}, DRUG_FREE, [20.0], paths=3, path_start=2**63 - 2, **run)


def test_the_recurrence_threshold_is_recorded_exactly(linear):
    ds = tolsim.simulate(
        linear,
        {},
        TAM_THEN_OFF,
        [40.0],
        method="tau",
        seed=1,
        paths=2,
        recurrence_threshold=1234567.5,
    )
    assert ds.attrs["recurrence_threshold"] == "1234567.5 cells"
    assert ds.time_to_recurrence.attrs["threshold"] == "1234567.5 cells"
    tolsim.time_to_recurrence(ds, threshold=1234567.5)  # the same threshold: accepted
    with pytest.raises(ValueError, match=r"holds recurrence times for a threshold of 1234567.5"):
        tolsim.time_to_recurrence(ds, threshold=1234570.0)  # equal to 6 digits, not the same


def test_probability_helpers_take_arms(linear):
    """simulate_arms of paths: the probabilities per arm are each arm's own (they raised:
    the withdrawal day is a per-arm variable there, and the extinction test lost its dims);
    an arm that gives no tamoxifen has no recurrence probability."""
    p = linear.default_params(S0=0, T0=5, kappa_T=0.3)
    arms = {
        "inhibitor": tolsim.Schedule.from_phases(
            [{"days": 21, "tamoxifen": 1.0, "inhibitor": 5.0}, {"days": 30}]
        ),
        "tamoxifen": tolsim.Schedule.from_phases([{"days": 21, "tamoxifen": 1.0}, {"days": 30}]),
        "none": tolsim.Schedule.from_phases([{"days": 51}]),
    }
    run = dict(method="ssa", paths=100, seed=1, recurrence_threshold=300)
    both = tolsim.simulate_arms(linear, p, arms, [0.0, 21.0, 51.0], **run)
    recurrence = tolsim.recurrence_probability(both, horizon=30)
    extinction = tolsim.extinction_probability(both, states=["T"], by_day=21.0)
    assert recurrence.recurrence_probability.dims == ("arm",)
    for name in ("inhibitor", "tamoxifen"):
        one = tolsim.simulate(linear, p, arms[name], [0.0, 21.0, 51.0], **run)
        assert float(recurrence.recurrence_probability.sel(arm=name)) == float(
            tolsim.recurrence_probability(one, horizon=30).recurrence_probability
        )
        assert float(extinction.extinction_probability.sel(arm=name)) == float(
            tolsim.extinction_probability(one, states=["T"], by_day=21.0).extinction_probability
        )
    assert np.isnan(float(recurrence.recurrence_probability.sel(arm="none")))
    # what the arms' paths' recurrence times are: days (the NaN arm's empty attrs were kept)
    days = tolsim.time_to_recurrence(both, threshold=300)
    assert days.attrs["units"] == "days" and days.attrs["threshold"] == "300 cells"
    assert days.attrs["seed"] == 1 and "schedule" not in days.attrs  # each arm's: `both`


def test_failed_paths_are_counted_both_ways_in_the_interval(linear):
    """A path that exhausts its event budget has no known outcome, and failures are not
    independent of the event (large paths fail): the estimate leaves them out, the interval
    counts them as without the event for its lower end and as with it for its upper end."""
    p = linear.default_params(S0=0, T0=5)
    run = dict(method="ssa", paths=60, seed=4, recurrence_threshold=50, max_events=3000)
    ds = tolsim.simulate(linear, p, TAM_THEN_OFF, [0.0, 20.0, 40.0], throw=False, **run)
    failed = int((ds.status != 0).sum())
    assert 5 < failed < 55  # a mix (23 of 60 with this seed)
    ok = ds.status.values == 0
    for estimate, event in (
        (lambda d: tolsim.recurrence_probability(d, horizon=15.0), ds.time_to_recurrence <= 15),
        (lambda d: tolsim.extinction_probability(d, states=["T"]), ds.T.sel(time=40.0) == 0),
    ):
        with pytest.warns(UserWarning, match=f"{failed} failed path.*counted both ways"):
            result = estimate(ds)
        k = int(event.values[ok].sum())
        n = int(ok.sum())
        assert (int(result.n_events), int(result.n_paths), int(result.n_failed)) == (k, n, failed)
        assert float(result[list(result.data_vars)[0]]) == k / n
        every = n + failed  # Clopper-Pearson ends from scipy's beta quantiles
        low = stats.beta.ppf(0.025, k, every - k + 1) if k else 0.0
        high = (
            stats.beta.ppf(0.975, k + failed + 1, every - k - failed)
            if k + failed < every
            else 1.0
        )
        assert float(result.ci_low) == pytest.approx(low, rel=1e-9)
        assert float(result.ci_high) == pytest.approx(high, rel=1e-9)
        assert float(result.ci_low) <= k / n <= float(result.ci_high)
        plain = tolsim.recurrence_probability(ds.isel(path=np.flatnonzero(ok)), horizon=15.0)
        assert int(plain.n_failed) == 0
        wider = float(result.ci_high) - float(result.ci_low)
        if "recurrence_probability" in result:
            assert wider > float(plain.ci_high) - float(plain.ci_low)  # failures widen it


def test_paths_padded_by_a_concatenation_are_not_failed_paths(linear):
    """Results of 10 and 20 paths joined along ``sample`` (xarray pads the shorter with NaN,
    ``status`` too): the padding is no path at all, not one of unknown outcome."""
    run = dict(method="ssa", seed=4, recurrence_threshold=50)
    times = [0.0, 20.0, 40.0]
    a = tolsim.simulate(linear, {"S0": [0.0], "T0": [5.0]}, TAM_THEN_OFF, times, paths=10, **run)
    b = tolsim.simulate(linear, {"S0": [0.0], "T0": [6.0]}, TAM_THEN_OFF, times, paths=20, **run)
    both = xr.concat([a, b], dim="sample", join="outer", data_vars="all")
    assert int(both.status.isnull().sum()) == 10
    joined = tolsim.extinction_probability(both, states=["T"])  # no warning (an error here)
    alone = tolsim.extinction_probability(a, states=["T"])
    assert joined.n_failed.values.tolist() == [0, 0]
    assert joined.n_paths.values.tolist() == [10, 20]
    for name in ("extinction_probability", "ci_low", "ci_high"):
        assert float(joined[name][0]) == float(alone[name][0])


def test_probabilities_record_what_was_simulated_and_count_paths(linear):
    """The estimates keep the paths' model, parameters, schedule, method and seed (enough to
    run them again), and their path counts are plain counts (they took the units of ``N`` or
    of the recurrence times, and the status flags, from the variables they were counted in)."""
    p = linear.default_params(S0=0, T0=5)
    ds = tolsim.simulate(linear, p, TAM_THEN_OFF, [0.0, 20.0, 40.0], method="ssa", paths=30,
                         seed=4, recurrence_threshold=50)  # fmt: skip
    for result in (
        tolsim.extinction_probability(ds, states=["T"]),
        tolsim.recurrence_probability(ds, horizon=10.0),
    ):
        for name in ("n_events", "n_paths"):
            assert set(result[name].attrs) == {"units", "long_name"}
            assert result[name].attrs["units"] == "1"
        for name in ("model", "params", "schedule", "method", "seed", "recurrence_threshold"):
            assert result.attrs[name] == ds.attrs[name]
        assert result.attrs["tolsim_version"] == tolsim.__version__
        again = tolsim.simulate(
            linear, json.loads(result.attrs["params"]),
            tolsim.Schedule.from_json(result.attrs["schedule"]), ds.time.values,
            method=result.attrs["method"], paths=30, seed=int(result.attrs["seed"]),
            recurrence_threshold=50,
        )  # fmt: skip
        xr.testing.assert_equal(again.N, ds.N)


def test_paths_of_other_thresholds_are_not_pooled(linear):
    """Paths concatenated from runs at recurrence thresholds of 50 and 5,000 cells took the
    first run's label (a probability "at 50 cells" of both); refused now. Paths of one run
    split by ``path_start`` still pool to the whole run's answer."""
    p = linear.default_params(S0=0, T0=3)
    run = dict(method="ssa", seed=1, recurrence_threshold=50)
    low = tolsim.simulate(linear, p, TAM_THEN_OFF, [0.0, 40.0], paths=40, **run)
    high = tolsim.simulate(
        linear, p, TAM_THEN_OFF, [0.0, 40.0], paths=40, **{**run, "recurrence_threshold": 5000}
    )
    mixed = xr.concat([low, high], "path", data_vars="all", coords="different", compat="equals")
    with pytest.raises(ValueError, match="combines results of different schedules"):
        tolsim.recurrence_probability(mixed, horizon=10)
    with pytest.raises(ValueError, match="combines results of different schedules"):
        tolsim.time_to_recurrence(mixed, threshold=50)
    halves = [
        tolsim.simulate(linear, p, TAM_THEN_OFF, [0.0, 40.0], paths=20, path_start=s, **run)
        for s in (0, 20)
    ]
    pooled = xr.concat(halves, "path", data_vars="all", coords="different", compat="equals")
    assert float(tolsim.recurrence_probability(pooled, horizon=10).recurrence_probability) == (
        float(tolsim.recurrence_probability(low, horizon=10).recurrence_probability)
    )


def test_arms_paths_concatenated_along_path_give_one_probability_per_arm(linear):
    """simulate_arms paths of two runs concatenated along ``path``: one probability per arm,
    that of all the paths (it was repeated along ``path``), and arms that differ between
    the runs are refused (they were pooled)."""
    p = linear.default_params(S0=0, T0=5, kappa_T=0.3)
    arms = {
        "inhibitor": tolsim.Schedule.from_phases(
            [{"days": 21, "tamoxifen": 1.0, "inhibitor": 5.0}, {"days": 30}]
        ),
        "tamoxifen": tolsim.Schedule.from_phases([{"days": 21, "tamoxifen": 1.0}, {"days": 30}]),
    }
    run = dict(method="ssa", seed=1, recurrence_threshold=300)
    days = [0.0, 21.0, 51.0]
    halves = [
        tolsim.simulate_arms(linear, p, arms, days, paths=50, path_start=s, **run) for s in (0, 50)
    ]
    pooled = xr.concat(halves, "path", data_vars="all", coords="different", compat="equals")
    whole = tolsim.simulate_arms(linear, p, arms, days, paths=100, **run)
    got = tolsim.recurrence_probability(pooled, horizon=30).recurrence_probability
    assert got.dims == ("arm",)
    np.testing.assert_array_equal(
        got.values, tolsim.recurrence_probability(whole, horizon=30).recurrence_probability
    )
    swapped = tolsim.simulate_arms(linear, p, dict(reversed(arms.items())), days, paths=50, **run)
    mixed = xr.concat(
        [halves[0], swapped.assign_coords(arm=list(arms))],
        "path",
        data_vars="all",
        coords="different",
        compat="equals",
    )
    with pytest.raises(ValueError, match="differs along 'path'"):
        tolsim.recurrence_probability(mixed, horizon=30)


def test_probability_helpers_check_their_input(linear):
    p = linear.default_params(S0=20, T0=2)
    ds = tolsim.simulate(linear, p, TAM_THEN_OFF, [0.0, 40.0], method="ssa", paths=5, seed=1)
    ode = tolsim.simulate(linear, p, TAM_THEN_OFF, [0.0, 40.0])
    with pytest.raises(TypeError, match="`ds` is not a stochastic result"):
        tolsim.extinction_probability(ode)
    with pytest.raises(ValueError, match=r"`by_day` = 30.0: expected one of the result's"):
        tolsim.extinction_probability(ds, by_day=30.0)
    with pytest.raises(ValueError, match=r"`states` = \['X'\]: expected names among"):
        tolsim.extinction_probability(ds, states=["X"])
    with pytest.raises(TypeError, match=r"`states` = 'T': expected a list"):
        tolsim.extinction_probability(ds, states="T")
    with pytest.raises(ValueError, match=r"`level` = 1.5: expected a confidence level"):
        tolsim.extinction_probability(ds, level=1.5)
    with pytest.raises(ValueError, match=r"`horizon` = 25.0 days: expected a number of days"):
        tolsim.recurrence_probability(ds, horizon=25.0)
    no_drug = tolsim.simulate(linear, p, DRUG_FREE, [0.0, 20.0], method="ssa", paths=2, seed=1)
    with pytest.raises(ValueError, match="records no tamoxifen withdrawal"):
        tolsim.recurrence_probability(no_drug, horizon=5.0)
    with pytest.raises(TypeError, match="`horizon` = 'x': expected a number of days"):
        tolsim.recurrence_probability(ds, horizon="x")
    with pytest.raises(TypeError, match="`horizon` = True: expected a number of days"):
        tolsim.recurrence_probability(ds, horizon=True)
    before = tolsim.simulate(linear, p, TAM_THEN_OFF, [0.0, 5.0], method="ssa", paths=2, seed=1)
    with pytest.raises(ValueError, match="ends on day 5, before tamoxifen is withdrawn"):
        tolsim.recurrence_probability(before, horizon=1.0)


def test_intervals_cover_and_bracket_the_estimate(linear):
    p = linear.default_params(S0=0, T0=2, kappa_T=0.3)
    schedule = tolsim.Schedule.from_phases(
        [{"days": 10, "tamoxifen": 1.0, "inhibitor": 10.0}, {"days": 30}]
    )
    ds = tolsim.simulate(
        linear,
        p,
        schedule,
        [0.0, 10.0, 40.0],
        method="ssa",
        paths=400,
        seed=2,
        recurrence_threshold=50.0,
    )
    result = tolsim.recurrence_probability(ds, horizon=30.0)
    estimate = float(result.recurrence_probability)
    assert float(result.ci_low) <= estimate <= float(result.ci_high)
    expected = float((ds.time_to_recurrence <= 30.0).mean())
    assert estimate == expected
    # Clopper-Pearson at 95%: the binomial tail beyond each bound is 2.5%
    k, n = int(result.n_events), int(result.n_paths)
    assert stats.binom.sf(k - 1, n, float(result.ci_low)) == pytest.approx(0.025, rel=1e-6)
    assert stats.binom.cdf(k, n, float(result.ci_high)) == pytest.approx(0.025, rel=1e-6)
