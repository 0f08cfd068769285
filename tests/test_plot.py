"""Figures: what each function draws equals the dataset it reads (lines, bands, drug spans,
heatmap cells, Pareto front), axes carry units, and a wrong dataset is refused by name."""

import doctest
import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.colors import to_rgba

import tolsim
from tolsim import plot
from tolsim.design import grid
from tolsim.observe import LogNormal
from tolsim.sweep import sweep

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

MODEL = tolsim.models.TwoState()
# tamoxifen days 0-28, inhibitor days 28-38, then nothing until day 58
SCHEDULE = tolsim.Schedule.from_phases(
    [{"days": 28, "tamoxifen": 1.0}, {"days": 10, "inhibitor": 5.0}, {"days": 20}]
)
TIMES = np.linspace(0.0, 58.0, 24)  # neither day 28 nor day 38 is an output day


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def band_edges(collection, n, step=False):
    """Lower and upper edge of a ``fill_between`` band over ``n`` points (its polygon runs
    along the lower edge, then back along the upper one)."""
    vertices = collection.get_paths()[0].vertices[:, 1]
    if step:  # each step adds a corner: 2n - 1 points per edge
        return vertices[1 : 2 * n : 2], vertices[2 * n + 1 : 4 * n][::-1][::2]
    return vertices[1 : n + 1], vertices[n + 2 : 2 * n + 2][::-1]


def spans_by_drug(ax):
    """``{drug: (start, stop)}`` of the labelled (first) span of each drug."""
    return {
        p.get_label(): (p.get_x(), p.get_x() + p.get_width())
        for p in ax.patches
        if not p.get_label().startswith("_")
    }


# -- trajectories -----------------------------------------------------------------------------
def test_trajectories_of_one_run_draw_its_cells_and_shade_the_exact_phases():
    ds = tolsim.simulate(MODEL, MODEL.default_params(), SCHEDULE, TIMES)
    ax = plot.trajectories(ds, states=True)
    n_line, s_line, t_line = ax.lines
    for line, name in ((n_line, "N"), (s_line, "S"), (t_line, "T")):
        np.testing.assert_array_equal(line.get_xdata(), ds.time.values)
        np.testing.assert_array_equal(line.get_ydata(), ds[name].values)
    assert [line.get_label() for line in ax.lines] == ["N", "S", "T"]
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "time (days)" and ax.get_ylabel() == "cells"
    # one span per phase that gives a drug, edges at the phase boundaries (not output days)
    expected = {
        drug: (phase.start_day, phase.stop_day)
        for phase in SCHEDULE.phases
        for drug in phase.drugs
    }
    assert spans_by_drug(ax) == expected == {"tamoxifen": (0.0, 28.0), "inhibitor": (28.0, 38.0)}
    assert len(ax.patches) == 2
    colours = {p.get_label(): p.get_facecolor()[:3] for p in ax.patches}
    assert colours["tamoxifen"] == to_rgba("tab:blue")[:3]
    assert colours["inhibitor"] == to_rgba("tab:red")[:3]

    linear = plot.trajectories(ds, log=False, drugs=False)
    assert linear.get_yscale() == "linear" and len(linear.patches) == 0
    assert len(linear.lines) == 1


def test_without_a_recorded_schedule_spans_follow_the_output_days():
    ds = tolsim.simulate(MODEL, MODEL.default_params(), SCHEDULE, TIMES)
    ds.attrs.pop("schedule")
    spans = spans_by_drug(plot.drug_shading(ds))
    first_off = TIMES[TIMES >= 28.0][0]  # the first output day without tamoxifen
    assert spans["tamoxifen"] == (0.0, first_off)


def test_oral_doses_shade_from_the_first_dose_until_the_drug_is_negligible():
    """Weekly doses from day 0, outputs every 5 days: the concentration is 0 at the dose
    itself, so reading presence at output days started the span at day 5 (and a decaying
    tail of 1e-24 µM kept it to the schedule's end)."""
    mouse = tolsim.PK.tamoxifen_mouse()
    oral = tolsim.Schedule.oral(
        "tamoxifen", dose_mg=0.5, every_days=7.0, stop_day=50.0, pk=mouse, duration_days=120.0
    )
    ds = tolsim.simulate(MODEL, MODEL.default_params(), oral, np.arange(0.0, 121.0, 5.0))
    spans = [(p.get_x(), p.get_x() + p.get_width()) for p in plot.drug_shading(ds).patches]
    # the mouse half-life is 6 hours: each dose washes out (below 0.1% of the peak) before
    # the next, so one span per dose, from its dose day to the next grid day past washout
    assert [start for start, _ in spans] == oral.oral_doses[0].dose_days.tolist()
    assert all(stop <= start + 5.0 for start, stop in spans)
    assert spans[-1][1] < 120.0


def test_arms_are_shaded_one_at_a_time():
    arms = {"a": SCHEDULE, "b": tolsim.Schedule.from_phases([{"days": 10, "tamoxifen": 1.0},
                                                             {"days": 50}])}  # fmt: skip
    ds = tolsim.simulate_arms(MODEL, MODEL.default_params(), arms, TIMES)
    with pytest.raises(ValueError, match="holds 2 schedules .*ds.isel\\(arm=0\\)"):
        plot.drug_shading(ds)
    assert spans_by_drug(plot.drug_shading(ds.sel(arm="b"))) == {"tamoxifen": (0.0, 10.0)}
    ax = plot.trajectories(ds)
    assert len(ax.patches) == 0  # several schedules: none shaded
    # one line per arm (they were pooled into one median), each the arm's own N
    assert [line.get_label() for line in ax.get_lines()] == ["a", "b"]
    for line, name in zip(ax.get_lines(), arms, strict=True):
        np.testing.assert_array_equal(line.get_ydata(), ds.N.sel(arm=name).values)
    fraction = plot.tolerant_fraction(ds)
    for line, name in zip(fraction.get_lines(), arms, strict=True):
        np.testing.assert_array_equal(line.get_ydata(), ds.tolerant_fraction.sel(arm=name))


def test_recurrence_times_of_failed_solves_and_of_text_say_so():
    ax = plot.recurrence_times(xr.DataArray([np.nan, np.nan], dims="sample"))
    assert ax.get_legend_handles_labels()[1] == ["all 2 failed"]  # was "100.0% no recurrence"
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    with pytest.raises(TypeError, match="`days` holds <U1 values"):
        plot.recurrence_times(np.array(["x"]))
    assert plt.get_fignums() == before  # no figure opened for it


def test_a_condition_measured_on_one_day_shows_its_fit():
    predictions = xr.Dataset(
        {
            "condition": ("row", ["A", "B", "C", "C"]),
            "observable": ("row", ["time_to_recurrence"] * 4),
            "time": ("row", [60.0, 60.0, 10.0, 20.0]),
            "observed": ("row", [20.0, 30.0, 5.0, 6.0]),
            "predicted": ("row", [22.0, np.inf, 5.5, 6.5]),
        }
    )
    ax = plot.fit(predictions, observable="time_to_recurrence", log=False)
    fitted = {line.get_label(): line for line in ax.get_lines() if "(fit)" in line.get_label()}
    assert fitted["A (fit)"].get_marker() == "x" and fitted["C (fit)"].get_linestyle() == "-"
    assert [t.get_text() for t in ax.texts] == ["never"]  # B's fit never recurs


def test_profiles_take_one_name_and_one_axes(tmp_path):
    import matplotlib.pyplot as plt

    profiled = xr.Dataset(
        {
            "log10_value": (("parameter", "step"), [[-1.0, -0.9, -0.8], [0.0, 0.1, 0.2]]),
            "nllh": (("parameter", "step"), [[3.0, 1.0, 3.0], [4.0, 1.0, 4.0]]),
            "ci_low": ("parameter", [0.11, 1.1]),
            "ci_high": ("parameter", [0.15, 1.5]),
            "best_nllh": 1.0,
        },
        coords={"parameter": ["a", "bc"]},
        attrs={"threshold_nllh": 1.92, "level": 0.95},
    )
    _, ax = plt.subplots()
    (panel,) = plot.profiles(profiled, ax, parameters="bc")
    assert panel is ax
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), 10 ** np.array([0.0, 0.1, 0.2]))
    with pytest.raises(TypeError, match="`axes` = 3"):
        plot.profiles(profiled, 3, parameters="a")
    # a bound that is not finite: no line, and "unbounded" in the title (was "[nan, inf]")
    profiled["ci_high"].values[1] = np.inf
    profiled["ci_low"].values[1] = np.nan
    _, ax = plt.subplots()
    plot.profiles(profiled, ax, parameters="bc")
    assert ax.get_title() == "bc: [unbounded, unbounded]"
    assert [line.get_linestyle() for line in ax.get_lines()].count("--") == 0


def test_trajectories_of_an_ensemble_draw_median_and_band_or_thin_lines():
    table = {"lambda_T": np.linspace(0.1, 0.3, 5)}
    ds = tolsim.simulate(MODEL, table, SCHEDULE, TIMES)
    ax = plot.trajectories(ds, states=True, quantiles=(0.1, 0.9))
    median, s_median, t_median = ax.lines
    np.testing.assert_array_equal(median.get_ydata(), ds.N.median("sample").values)
    np.testing.assert_array_equal(s_median.get_ydata(), ds.S.median("sample").values)
    np.testing.assert_array_equal(t_median.get_ydata(), ds.T.median("sample").values)
    assert median.get_label() == "N (median, 80% band)"
    (band,) = ax.collections
    low, high = band_edges(band, TIMES.size)
    np.testing.assert_allclose(low, ds.N.quantile(0.1, "sample").values, rtol=1e-12)
    np.testing.assert_allclose(high, ds.N.quantile(0.9, "sample").values, rtol=1e-12)
    assert ax.get_yscale() == "log" and len(ax.patches) == 2

    ax = plot.trajectories(ds, spread="lines", drugs=False)
    median, *members = ax.lines
    assert len(members) == 5 and not ax.collections
    for line, values in zip(members, ds.N.values, strict=True):
        np.testing.assert_array_equal(line.get_ydata(), values)


def test_stochastic_counts_of_failed_paths_are_not_drawn():
    counts = np.array([[100, 50, 10], [100, 60, -1], [100, 70, 30]], dtype=np.int64)
    ds = xr.Dataset(
        {"N": (("path", "time"), counts, {"units": "cells"})}, coords={"time": [0.0, 1.0, 2.0]}
    )
    ax = plot.trajectories(ds)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [100.0, 60.0, 20.0])  # -1 left out


def test_burden_keeps_its_old_figure():
    ds = tolsim.simulate(MODEL, MODEL.default_params(), SCHEDULE, TIMES)
    ax = plot.burden(ds, label="control")
    assert [line.get_label() for line in ax.lines] == ["control", "S, control", "T, control"]
    assert not ax.patches and ax.get_yscale() == "log"


def test_trajectories_refuse_a_dataset_without_cells():
    ds = tolsim.simulate(MODEL, MODEL.default_params(), SCHEDULE, TIMES)
    with pytest.raises(ValueError, match="`ds` has no variable 'N': expected a Dataset from"):
        plot.trajectories(ds.drop_vars("N"))
    with pytest.raises(ValueError, match="`spread` = 'dots'"):
        plot.trajectories(ds, spread="dots")
    with pytest.raises(ValueError, match=r"`quantiles` = \(0.9, 0.1\)"):
        plot.trajectories(ds, quantiles=(0.9, 0.1))


# -- fits -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    """A small fit of two parameters to noisy cell counts of two conditions, profiled."""
    model = tolsim.models.TwoState(crowding="none")
    schedules = {
        "control": tolsim.Schedule.from_phases([{"days": 20}]),
        "tamoxifen": tolsim.Schedule.from_phases([{"days": 20, "tamoxifen": 1.0}]),
    }
    days = np.arange(4.0, 21.0, 4.0)
    rng = np.random.default_rng(1)
    rows = []
    for condition, schedule in schedules.items():
        params = model.default_params(lambda_S=0.25, eps_S=0.7)
        cells = tolsim.simulate(model, params, schedule, days).N.values
        for replicate in ("a", "b"):
            noisy = cells * np.exp(0.1 * rng.standard_normal(days.size))
            rows += [
                {
                    "condition": condition,
                    "observable": "total_cells",
                    "time": t,
                    "value": v,
                    "replicate": replicate,
                }
                for t, v in zip(days, noisy, strict=True)
            ]
    result = tolsim.fit(
        model,
        pd.DataFrame(rows),
        schedules,
        free=["lambda_S", "eps_S"],
        noise=LogNormal(),
        fixed={"total_cells.sigma": 0.1},
        starts=3,
    )
    result.profile()
    return result


def prediction(scale=1.0, quantiles=(0.05, 0.5, 0.95)):
    """A Dataset in the format of tolsim.predict: 8 draws, recurrence-free curve with bounds."""
    time = np.arange(0.0, 21.0)
    spread = {0.05: 0.8, 0.1: 0.85, 0.5: 1.0, 0.9: 1.2, 0.95: 1.25}
    n_quantiles = (
        scale
        * 1e5
        * np.exp(0.08 * time)[None, :]
        * np.array([spread[q] for q in quantiles])[:, None]
    )
    recurrence = scale * np.array([3.0, 5.0, 5.0, 9.0, 12.0, 20.0, np.inf, np.inf])
    days = np.arange(0.0, 31.0)
    free = (recurrence[:, None] > days[None, :]).mean(axis=0)
    return xr.Dataset(
        {
            "N_quantiles": (("quantile", "time"), n_quantiles, {"units": "cells"}),
            "time_to_recurrence": ("draw", recurrence, {"units": "days"}),
            "time_to_recurrence_quantiles": (
                "quantile",
                np.sort(recurrence)[(np.array(quantiles) * (recurrence.size - 1)).astype(int)],
                {"units": "days"},
            ),
            "recurrence_free_probability": ("day_since_withdrawal", free, {"units": "1"}),
            "recurrence_free_low": ("day_since_withdrawal", free * 0.8, {"units": "1"}),
            "recurrence_free_high": (
                "day_since_withdrawal",
                np.minimum(free * 1.2, 1.0),
                {"units": "1"},
            ),
            "probability_no_recurrence": ((), 0.25, {"units": "1"}),
            "eradication_probability": ((), 0.1, {"units": "1"}),
        },
        coords={
            "draw": np.arange(recurrence.size),
            "quantile": list(quantiles),
            "time": ("time", time, {"units": "days"}),
            "day_since_withdrawal": ("day_since_withdrawal", days, {"units": "days"}),
        },
        attrs={"withdrawal_day": 20.0, "horizon_days": 30.0, "level": 0.9},
    )


def test_fit_draws_observed_markers_and_predicted_lines_per_condition(fitted):
    p = fitted.predictions
    ax = plot.fit(p)
    assert len(ax.lines) == 4 and not ax.collections
    for k, condition in enumerate(["control", "tamoxifen"]):
        observed, predicted = ax.lines[2 * k : 2 * k + 2]
        rows = p.condition.values == condition
        assert observed.get_linestyle() == "None" and observed.get_marker() == "o"
        np.testing.assert_array_equal(observed.get_xdata(), p.time.values[rows])
        np.testing.assert_array_equal(observed.get_ydata(), p.observed.values[rows])
        days = np.unique(p.time.values[rows])
        at_days = [p.predicted.values[rows & (p.time.values == d)] for d in days]
        assert all(np.all(v == v[0]) for v in at_days)  # replicates share the prediction
        np.testing.assert_array_equal(predicted.get_xdata(), days)
        np.testing.assert_array_equal(predicted.get_ydata(), [v[0] for v in at_days])
        assert predicted.get_linestyle() == "-"
        assert predicted.get_color() == observed.get_color()
    assert ax.lines[0].get_color() != ax.lines[2].get_color()
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "time (days)" and ax.get_ylabel() == "total_cells (cells)"


def test_fit_band_spans_the_lowest_to_highest_quantile_with_the_median(fitted):
    band = prediction()
    ax = plot.fit(fitted.predictions, band=band)
    (shade,) = ax.collections
    low, high = band_edges(shade, band.sizes["time"])
    np.testing.assert_array_equal(low, band.N_quantiles.sel(quantile=0.05).values)
    np.testing.assert_array_equal(high, band.N_quantiles.sel(quantile=0.95).values)
    median = ax.lines[-1]
    assert len(ax.lines) == 5 and median.get_linestyle() == "--"
    np.testing.assert_array_equal(median.get_xdata(), band.time.values)
    np.testing.assert_array_equal(median.get_ydata(), band.N_quantiles.sel(quantile=0.5).values)
    assert median.get_label() == "prediction (median, 90% band)"

    # one band per condition, in that condition's colour; no 0.5 quantile: no median line
    ax = plot.fit(fitted.predictions, band={"tamoxifen": prediction(quantiles=(0.1, 0.9))})
    (shade,) = ax.collections
    assert len(ax.lines) == 4
    assert tuple(shade.get_facecolor()[0][:3]) == to_rgba(ax.lines[2].get_color())[:3]


def test_fit_marks_censored_measurements_and_chooses_an_observable(fitted):
    p = fitted.predictions.copy(deep=True)
    p["censored"].values[0] = True
    ax = plot.fit(p)
    assert len(ax.lines) == 5
    hollow = ax.lines[1]
    assert hollow.get_markerfacecolor() == "none" and hollow.get_label() == "control (censored)"
    np.testing.assert_array_equal(hollow.get_ydata(), [p.observed.values[0]])
    assert p.observed.values[0] not in ax.lines[0].get_ydata()
    p["left_censored"].values[1] = True  # below a detection limit: a downward triangle
    ax = plot.fit(p)
    assert len(ax.lines) == 6
    limit = ax.lines[2]
    assert limit.get_label() == "control (below detection limit)"
    assert limit.get_marker() == "v" and limit.get_markerfacecolor() == "none"
    np.testing.assert_array_equal(limit.get_ydata(), [p.observed.values[1]])
    assert p.observed.values[1] not in ax.lines[0].get_ydata()

    fraction = fitted.predictions.isel(row=slice(0, 3)).copy(deep=True)
    fraction["observable"] = ("row", np.full(3, "tolerant_fraction"))
    both = xr.concat([fitted.predictions, fraction], "row")
    # a fit of two observables of different units records each one's (as tolsim.fit does)
    units = {"total_cells": "cells", "tolerant_fraction": "1"}
    both["observed"].attrs["units"] = json.dumps(units)
    with pytest.raises(ValueError, match=r"holds observables \['total_cells', 'tolerant_fract"):
        plot.fit(both)
    assert plot.fit(both, observable="total_cells").get_ylabel() == "total_cells (cells)"
    ax = plot.fit(both, observable="tolerant_fraction", log=False)
    assert len(ax.lines) == 2 and ax.get_ylabel() == "tolerant_fraction"
    assert ax.get_yscale() == "linear"
    with pytest.raises(ValueError, match="`band` holds total cells, but observable 'tolerant_f"):
        plot.fit(both, observable="tolerant_fraction", band=prediction())
    with pytest.raises(ValueError, match="`observable` = 'volume'"):
        plot.fit(both, observable="volume")


def test_fit_refuses_datasets_that_are_not_predictions(fitted):
    with pytest.raises(
        ValueError,
        match=r"`predictions` has no variable 'predicted': expected the Dataset "
        r"FitResult.predictions",
    ):
        plot.fit(fitted.predictions.drop_vars("predicted"))
    with pytest.raises(TypeError, match="`predictions` is a FitResult: expected the Dataset"):
        plot.fit(fitted)
    with pytest.raises(ValueError, match="`band` has no variable 'N_quantiles'"):
        plot.fit(fitted.predictions, band=prediction().drop_vars("N_quantiles"))
    with pytest.raises(ValueError, match=r"`band` names condition\(s\) \['knockout'\]"):
        plot.fit(fitted.predictions, band={"knockout": prediction()})
    with pytest.raises(ValueError, match=r"`band\['control'\]` has quantiles \[0.5\]"):
        plot.fit(fitted.predictions, band={"control": prediction(quantiles=(0.5,))})


def test_profiles_draw_each_parameter_with_threshold_and_interval(fitted):
    profiles = fitted.profiles
    panels = plot.profiles(profiles)
    assert isinstance(panels, np.ndarray) and panels.shape == (2,)
    assert panels[0].figure is panels[1].figure
    threshold = profiles.attrs["threshold_nllh"]
    for ax, name in zip(panels, ["lambda_S", "eps_S"], strict=True):
        one = profiles.sel(parameter=name)
        drawn = np.isfinite(one.log10_value.values)
        order = np.argsort(one.log10_value.values[drawn])
        profile, threshold_line, low, high = ax.lines[:4]
        np.testing.assert_array_equal(
            profile.get_xdata(), 10.0 ** one.log10_value.values[drawn][order]
        )
        np.testing.assert_array_equal(
            profile.get_ydata(), (one.nllh.values - float(profiles.best_nllh))[drawn][order]
        )
        assert min(profile.get_ydata()) == 0.0
        assert list(threshold_line.get_ydata()) == [threshold, threshold]
        assert list(low.get_xdata()) == [float(one.ci_low)] * 2
        assert list(high.get_xdata()) == [float(one.ci_high)] * 2
        assert ax.get_xscale() == "log" and ax.get_xlabel() == name
        assert ax.get_title().startswith(name) and "not identifiable" not in ax.get_title()
        assert threshold_line.get_label() == "95% threshold"

    flat = profiles.copy(deep=True)
    flat["identifiable"].values[1] = False
    figure, axes = plt.subplots(1, 1)
    (panel,) = plot.profiles(flat, [axes], parameters=["eps_S"])
    assert panel is axes and "not identifiable" in panel.get_title()


def test_profiles_refuse_datasets_that_are_not_profiles(fitted):
    with pytest.raises(
        ValueError,
        match=r"`profiles` has no variable 'nllh': expected the Dataset from "
        r"FitResult.profile\(\)",
    ):
        plot.profiles(fitted.profiles.drop_vars("nllh"))
    with pytest.raises(ValueError, match="`profiles` has no variable 'log10_value'"):
        plot.profiles(fitted.starts)
    no_threshold = fitted.profiles.copy()
    no_threshold.attrs = {}
    with pytest.raises(ValueError, match="`profiles` has no attribute 'threshold_nllh'"):
        plot.profiles(no_threshold)
    with pytest.raises(ValueError, match=r"`parameters` = \['K'\]: expected some of"):
        plot.profiles(fitted.profiles, parameters=["K"])
    with pytest.raises(ValueError, match="`axes` has 1 Axes: expected one per parameter"):
        plot.profiles(fitted.profiles, [plt.subplots()[1]])
    with pytest.raises(TypeError, match="`profiles` is a FitResult"):
        plot.profiles(fitted)


def test_waterfall_ranks_starts_and_tells_converged_ones_apart(fitted):
    starts = xr.Dataset(
        {
            "nllh": ("start", [7.0, 5.0, np.inf, 12.0, 5.05]),
            "converged": ("start", [False, True, False, True, True]),
        }
    )
    ax = plot.waterfall(starts)
    (line,) = ax.lines
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3, 4])
    np.testing.assert_allclose(line.get_ydata(), [0.0, 0.05, 2.0, 7.0])
    converged, not_converged = ax.collections
    np.testing.assert_allclose(converged.get_offsets(), [[1, 0.0], [2, 0.05], [4, 7.0]])
    np.testing.assert_allclose(not_converged.get_offsets(), [[3, 2.0]])
    assert converged.get_label() == "converged" and not_converged.get_label() == "not converged"
    assert "1 of 5 starts failed" in ax.get_title()
    assert ax.get_yscale() == "symlog" and "nllh" in ax.get_ylabel()

    ax = plot.waterfall(fitted.starts, log=False)
    (converged,) = ax.collections  # every start converged
    expected = fitted.starts.nllh.values - fitted.starts.nllh.values.min()
    np.testing.assert_allclose(converged.get_offsets()[:, 1], expected)
    assert ax.get_yscale() == "linear"


def test_waterfall_refuses_datasets_that_are_not_starts(fitted):
    with pytest.raises(
        ValueError,
        match="`starts` has no variable 'converged': expected the Dataset FitResult.starts",
    ):
        plot.waterfall(fitted.starts.drop_vars("converged"))
    with pytest.raises(ValueError, match="`starts` has no variable 'nllh'"):
        plot.waterfall(fitted.predictions)
    with pytest.raises(ValueError, match="no start with a finite nllh"):
        plot.waterfall(xr.Dataset({"nllh": ("start", [np.inf]), "converged": ("start", [0])}))


# -- predictions ------------------------------------------------------------------------------
def test_recurrence_free_steps_with_its_band_and_overlays():
    first, second = prediction(), prediction(scale=1.5)
    ax = plot.recurrence_free(first, label="A")
    (line,) = ax.lines
    days = first.day_since_withdrawal.values
    np.testing.assert_array_equal(line.get_xdata(), days)
    np.testing.assert_array_equal(line.get_ydata(), first.recurrence_free_probability.values)
    assert line.get_drawstyle() == "steps-post" and line.get_label() == "A"
    (band,) = ax.collections
    low, high = band_edges(band, days.size, step=True)
    np.testing.assert_array_equal(low, first.recurrence_free_low.values)
    np.testing.assert_array_equal(high, first.recurrence_free_high.values)
    assert tuple(band.get_facecolor()[0][:3]) == to_rgba(line.get_color())[:3]
    bottom, top = ax.get_ylim()
    assert bottom == 0.0 and 1.0 <= top <= 1.05
    assert ax.get_xlabel() == "days since withdrawal (days)"
    assert ax.get_ylabel() == "recurrence-free probability"

    plot.recurrence_free(second, ax, label="B")
    assert len(ax.lines) == 2 and len(ax.collections) == 2
    assert ax.lines[0].get_color() != ax.lines[1].get_color()
    np.testing.assert_array_equal(
        ax.lines[1].get_ydata(), second.recurrence_free_probability.values
    )

    bare = first.drop_vars(["recurrence_free_low", "recurrence_free_high"])
    assert not plot.recurrence_free(bare).collections


def test_recurrence_free_refuses_datasets_that_are_not_predictions():
    with pytest.raises(
        ValueError,
        match="`prediction` has no variable 'recurrence_free_probability': expected a "
        "Dataset from tolsim.predict",
    ):
        plot.recurrence_free(prediction().drop_vars("recurrence_free_probability"))
    with pytest.raises(ValueError, match="'recurrence_free_low' alone: a band needs both"):
        plot.recurrence_free(prediction().drop_vars("recurrence_free_high"))
    with pytest.raises(TypeError, match="`prediction` is a DataArray: expected a Dataset"):
        plot.recurrence_free(prediction().recurrence_free_probability)


# -- sweeps -----------------------------------------------------------------------------------
LAMBDA_S = [0.05, 0.1, 0.2]
LAMBDA_T = [0.05, 0.2]
SWEEP_DAYS = [0.0, 7.0, 14.0, 21.0, 35.0, 42.0, 58.0]  # day 28 (withdrawal) left out


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A 3 x 2 grid swept into Zarr; lambda_S = lambda_T = 0.05 never regrows to 1e5 cells."""
    from distributed import Client, LocalCluster

    schedule = tolsim.Schedule.from_phases([{"days": 28, "tamoxifen": 1.0}, {"days": 30}])
    design = grid(lambda_S=LAMBDA_S, lambda_T=LAMBDA_T)
    store = tmp_path_factory.mktemp("sweep") / "grid.zarr"
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        ds = sweep(
            MODEL,
            design,
            schedule,
            store=store,
            client=client,
            outputs="both",
            times=SWEEP_DAYS,
            recurrence_threshold=1e5,
        )
    return ds.load()


def pivot(ds, x, y, variable="time_to_recurrence"):
    """The metric on the (y values, x values) grid, looked up sample by sample."""
    xs, ys = np.unique(ds[x].values), np.unique(ds[y].values)
    table = np.full((ys.size, xs.size), -1.0)
    for i in range(ds.sizes["sample"]):
        row = np.flatnonzero(ys == ds[y].values[i])[0]
        column = np.flatnonzero(xs == ds[x].values[i])[0]
        table[row, column] = ds[variable].values[i]
    return table


def test_heatmap_cells_are_the_pivoted_metric_and_inf_is_shown(swept):
    expected = pivot(swept, "lambda_S", "lambda_T")
    never = np.isposinf(expected)
    assert never.sum() == 1 and np.isfinite(expected[~never]).all()  # the test's premise
    ax = plot.heatmap(swept, "lambda_S", "lambda_T")
    (mesh,) = ax.collections
    cells = mesh.get_array()
    assert cells.shape == (len(LAMBDA_T), len(LAMBDA_S)) and not np.ma.is_masked(cells)
    np.testing.assert_array_equal(cells[~never], expected[~never])
    # inf: a value above the colour range, drawn in the (distinct) over colour
    assert np.all(cells[never] > mesh.norm.vmax)
    assert mesh.norm.vmax == expected[~never].max() and mesh.norm.vmin == expected[~never].min()
    np.testing.assert_array_equal(mesh.to_rgba(cells)[never], [to_rgba("tab:red")])
    assert not np.any(np.all(mesh.to_rgba(cells)[~never] == to_rgba("tab:red"), axis=-1))
    label = mesh.colorbar.ax.get_ylabel()
    assert "time to recurrence after withdrawal (days)" in label and "inf" in label
    assert mesh.colorbar.extend == "max"
    assert ax.get_xlabel() == "lambda_S (1/day)" and ax.get_ylabel() == "lambda_T (1/day)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.05", "0.1", "0.2"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.05", "0.2"]

    swapped = plot.heatmap(swept, "lambda_T", "lambda_S").collections[0].get_array()
    np.testing.assert_array_equal(swapped[~never.T], expected.T[~never.T])

    other = plot.heatmap(swept, "lambda_S", "lambda_T", variable="burden_at_withdrawal")
    np.testing.assert_array_equal(
        other.collections[0].get_array(),
        pivot(swept, "lambda_S", "lambda_T", variable="burden_at_withdrawal"),
    )
    assert "burden at withdrawal (cells)" == other.collections[0].colorbar.ax.get_ylabel()


def test_trajectories_of_a_sweep_store(swept):
    ax = plot.trajectories(swept, spread="lines")
    median, *members = ax.lines
    np.testing.assert_array_equal(median.get_xdata(), SWEEP_DAYS)
    np.testing.assert_array_equal(median.get_ydata(), swept.N.median("sample").values)
    assert len(members) == len(LAMBDA_S) * len(LAMBDA_T)
    assert spans_by_drug(ax) == {"tamoxifen": (0.0, 28.0)}


def test_heatmap_shows_missing_samples_in_grey(swept):
    failed = swept.copy(deep=True)
    failed["time_to_recurrence"].values[-1] = np.nan
    mesh = plot.heatmap(failed, "lambda_S", "lambda_T").collections[0]
    cells = mesh.get_array()
    assert cells.mask.sum() == 1 and cells.mask[-1, -1]
    assert "grey" in mesh.colorbar.ax.get_ylabel()


def test_heatmap_refuses_what_is_not_a_grid_of_design_columns(swept):
    with pytest.raises(
        ValueError, match=r"`x` = 'nadir_day': not a design column of `sweep_ds`; its design "
    ):
        plot.heatmap(swept, "nadir_day", "lambda_T")
    with pytest.raises(ValueError, match="`y` = 'kappa_T': not a design column"):
        plot.heatmap(swept, "lambda_S", "kappa_T")
    with pytest.raises(ValueError, match="`variable` = 'recurrence': `sweep_ds` has no such"):
        plot.heatmap(swept, "lambda_S", "lambda_T", "recurrence")
    with pytest.raises(ValueError, match="no sample has lambda_S = 0.1, lambda_T = 0.2"):
        plot.heatmap(swept.isel(sample=[0, 1, 2]), "lambda_S", "lambda_T")
    with pytest.raises(ValueError, match="2 samples share lambda_S = 0.05, lambda_T = 0.05"):
        plot.heatmap(swept.isel(sample=[0, *range(6)]), "lambda_S", "lambda_T")
    with pytest.raises(TypeError, match="`sweep_ds` is a DataArray: expected a Dataset"):
        plot.heatmap(swept.time_to_recurrence, "lambda_S", "lambda_T")
    # a hand-made table (no design attrs): columns along `sample` count as design columns
    design = grid(a=[1.0, 2.0], b=[1.0, 2.0], c=[1.0, 2.0])
    table = xr.Dataset(
        {
            **{name: ("sample", values) for name, values in design.columns.items()},
            "time_to_recurrence": ("sample", np.arange(8.0)),
        }
    )
    with pytest.raises(ValueError, match=r"other design columns vary: \['c'\]"):
        plot.heatmap(table, "a", "b")
    # a Latin hypercube: as many values of each column as samples, no grid; refused before an
    # (x values) x (y values) count array is made (65,536 samples asked for 32 GiB)
    rng = np.random.default_rng(0)
    scattered = xr.Dataset(
        {name: ("sample", rng.uniform(size=2000)) for name in ("a", "b", "time_to_recurrence")}
    )
    with pytest.raises(ValueError, match="2000 samples take 2000 values of a and 2000 of b"):
        plot.heatmap(scattered, "a", "b")


# -- schedule optimisation --------------------------------------------------------------------
def optimisation(best=None):
    """A Dataset in the format of tolsim.optimize_schedule: 12 candidates, Pareto front."""
    rng = np.random.default_rng(3)
    burden = rng.uniform(0.0, 30.0, 12)
    benefit = 40.0 * np.sqrt(burden / 30.0) * rng.uniform(0.5, 1.0, 12)
    feasible = burden <= 20.0
    dominated = [
        any(
            burden[j] <= burden[i] and benefit[j] >= benefit[i] and j != i
            for j in range(burden.size)
        )
        for i in range(burden.size)
    ]
    on_front = ~np.array(dominated)
    if best is None:
        best = int(np.flatnonzero(feasible)[np.argmax(benefit[feasible])])
    return xr.Dataset(
        {
            "benefit": (
                "candidate",
                benefit,
                {"long_name": "recurrence-free days", "units": "days"},
            ),
            "burden": (
                "candidate",
                burden,
                {"long_name": "inhibitor exposure", "units": "µM·day"},
            ),
            "feasible": ("candidate", feasible),
            "on_front": ("candidate", on_front),
            "inhibitor_start_day": ("candidate", rng.uniform(0.0, 28.0, 12)),
            "best": ((), best),
        },
        attrs={"objective": "recurrence-free days", "constraint": "burden", "budget": 20.0},
    )


def test_tradeoff_draws_candidates_front_and_best():
    result = optimisation()
    burden, benefit = result.burden.values, result.benefit.values
    feasible, on_front = result.feasible.values, result.on_front.values
    assert 2 <= on_front.sum() < on_front.size and not feasible.all()  # the test's premise
    ax = plot.tradeoff(result)
    front, budget = ax.lines
    assert budget.get_xdata()[0] == 20.0 and budget.get_label() == "budget (20)"
    order = np.argsort(burden[on_front])
    np.testing.assert_array_equal(front.get_xdata(), burden[on_front][order])
    np.testing.assert_array_equal(front.get_ydata(), benefit[on_front][order])
    assert front.get_marker() == "o" and front.get_linestyle() == "-"
    assert np.all(np.diff(front.get_xdata()) >= 0)
    candidates, infeasible, best = ax.collections
    np.testing.assert_array_equal(
        candidates.get_offsets(), np.column_stack([burden, benefit])[feasible]
    )
    np.testing.assert_array_equal(
        infeasible.get_offsets(), np.column_stack([burden, benefit])[~feasible]
    )
    assert candidates.get_alpha() < 0.5 and infeasible.get_alpha() < 0.5
    b = int(result.best)
    np.testing.assert_array_equal(best.get_offsets(), [[burden[b], benefit[b]]])
    assert best.get_label() == "best feasible"
    assert ax.get_xlabel() == "inhibitor exposure (µM·day)"
    assert ax.get_ylabel() == "recurrence-free days (days)"

    none = plot.tradeoff(optimisation(best=-1))
    assert len(none.collections) == 2  # no feasible schedule: nothing highlighted
    unconstrained = optimisation()
    unconstrained.attrs["budget"] = np.nan  # optimize_schedule(budget=None)
    assert len(plot.tradeoff(unconstrained).lines) == 1


def test_tradeoff_refuses_datasets_that_are_not_optimisations():
    with pytest.raises(
        ValueError,
        match="`result` has no variable 'on_front': expected a Dataset from "
        "tolsim.optimize_schedule",
    ):
        plot.tradeoff(optimisation().drop_vars("on_front"))
    with pytest.raises(ValueError, match=r"`result\['best'\]` = 12: expected the index"):
        plot.tradeoff(optimisation(best=12))
    with pytest.raises(ValueError, match=r"`result\['benefit'\]` has dims \('time',\)"):
        plot.tradeoff(optimisation().rename_dims(candidate="time"))


# -- all --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("function", "argument"),
    [
        (plot.trajectories, "ds"),
        (plot.drug_shading, "ds"),
        (plot.fit, "predictions"),
        (plot.profiles, "profiles"),
        (plot.waterfall, "starts"),
        (plot.recurrence_free, "prediction"),
        (plot.tradeoff, "result"),
    ],
)
def test_anything_but_a_dataset_is_a_type_error(function, argument):
    with pytest.raises(TypeError, match=f"`{argument}` is a dict: expected "):
        function({"N": [1.0]})


def test_docstring_examples():
    result = doctest.testmod(plot, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_plot_is_reachable_as_an_attribute_of_the_package():
    import subprocess
    import sys

    code = (
        "import sys, tolsim; assert 'matplotlib' not in sys.modules; "
        "print(tolsim.plot.trajectories.__module__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "tolsim.plot"


def test_recurrence_times_count_the_never_recurring_among_the_solved():
    days = xr.DataArray([3.0, 5.0, np.inf, np.nan], dims="sample")
    ax = plot.recurrence_times(days, label="arm", bins=4)
    assert sum(p.get_height() for p in ax.patches) == 2  # the finite days only
    (legend,) = [p.get_label() for p in ax.patches[:1]]
    assert legend == "arm: 33.3% no recurrence, 1 failed"  # 1 of the 3 solved; NaN apart
    assert ax.get_ylabel() == "parameter sets"
    paths = xr.DataArray([[3.0, np.inf]], dims=("sample", "path"))
    assert plot.recurrence_times(paths).get_ylabel() == "paths"
    with pytest.raises(TypeError, match="`days` is a Dataset"):
        plot.recurrence_times(days.to_dataset(name="d"))


def test_fit_never_hides_values_a_log_axis_cannot_show():
    # recurrence days of 0 (already above the threshold at withdrawal) vanished from the
    # default log axis, markers and fit alike, without a word
    predictions = xr.Dataset(
        {
            "condition": ("row", ["a", "a", "b"]),
            "observable": ("row", ["time_to_recurrence"] * 3),
            "time": ("row", [60.0, 61.0, 60.0]),
            "observed": ("row", [0.0, 0.0, 12.0]),
            "predicted": ("row", [0.0, 0.0, np.inf]),
            "censored": ("row", [False, False, True]),
        }
    )
    ax = plot.fit(predictions)
    assert ax.get_yscale() == "linear"
    with pytest.raises(ValueError, match=r"`log` = True, but 4 values drawn for observable "):
        plot.fit(predictions, log=True)
    with pytest.raises(TypeError, match=r"`log` = 'yes': expected True, False or None"):
        plot.fit(predictions, log="yes")
    # b's only measurement is censored: no empty "(observed)" entry for it
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["a (observed)", "a (fit)", "b (censored)", "b (fit)"]
    positive = predictions.assign(
        observed=("row", [1.0, 2.0, 12.0]), predicted=("row", [1.0, 2.0, np.inf])
    )
    assert plot.fit(positive).get_yscale() == "log"
