"""The seed's experiments in silico (``experiments/*.py``), run in quick mode.

Each experiment runs once per module into a temporary folder; the tests read back what it
wrote and check the science, recomputing key numbers from the files with tolsim.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import tolsim

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"experiment_{name}", EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(name: str, tmp_path_factory) -> dict[str, Path]:
    paths = _load(name).run(tmp_path_factory.mktemp(name), quick=True)
    for path in paths.values():
        assert path.is_file() and path.stat().st_size > 0
    return paths


def _open(path: Path) -> xr.Dataset:
    with xr.open_dataset(path) as ds:
        return ds.load()


def _params(ds: xr.Dataset) -> dict[str, float]:
    return dict(zip(ds.parameter.values.tolist(), ds.parameters.values.tolist(), strict=True))


def _check_records(ds: xr.Dataset, experiment: str) -> None:
    assert ds.attrs["experiment"] == experiment
    assert ds.attrs["tolsim_version"] == tolsim.__version__
    assert ds.attrs["mode"] == "quick"
    assert json.loads(ds.attrs["model"])["name"] == "TwoState"


# -- (a) in vitro: selection versus induction ----------------------------------------------


@pytest.fixture(scope="module")
def invitro(tmp_path_factory):
    paths = _run("invitro_tolerance", tmp_path_factory)
    return _open(paths["mean_field"]), _open(paths["wells"])


def test_invitro_files_record_model_schedule_and_experiment(invitro):
    for ds in invitro:
        _check_records(ds, "invitro_tolerance")
        schedule = tolsim.Schedule.from_json(ds.attrs["schedule"])
        assert schedule.withdrawal_day() == ds.time.values[-1] == 70.0


def test_tolerant_fraction_rises_towards_one_in_both_mechanisms(invitro):
    ds, _ = invitro
    reference = ds.where(
        (ds.mechanism == "selection") & (ds.parameters.sel(parameter="T0") >= 100.0)
        | (ds.mechanism == "induction")
        & (ds.parameters.sel(parameter="mu_E") >= ds.attrs["matched_mu_E_per_day"] * 0.99),
        drop=True,
    )
    assert set(reference.mechanism.values) == {"selection", "induction"}
    fraction = reference.tolerant_fraction
    assert (fraction.sel(time=70.0) > 0.85).all()
    assert (fraction.sel(time=70.0) > fraction.sel(time=35.0)).all()
    assert (fraction.sel(time=35.0) > fraction.sel(time=7.0)).all()


def test_selection_scales_with_t0_and_induction_needs_none(invitro):
    ds, _ = invitro
    t0 = ds.parameters.sel(parameter="T0")
    final = ds["T"].sel(time=70.0)
    selection = ds.mechanism == "selection"
    per_cell = (final / t0).where(selection, drop=True).values
    assert per_cell.size == 3
    np.testing.assert_allclose(per_cell, per_cell[0], rtol=1e-6)  # linear: T(70) ∝ T0
    induction = final.where(~selection, drop=True)
    assert (t0.where(~selection, drop=True) == 0).all()
    assert (induction > 1e4).all()
    # kinetics: a pre-existing population grows no faster than it divides; induced cells do
    lambda_t = float(ds.parameters.isel(sample=0).sel(parameter="lambda_T"))
    rate = ds.early_tolerant_growth_rate
    assert (rate.where(selection, drop=True) < lambda_t).all()
    assert (rate.where(~selection, drop=True) > lambda_t).all()


def test_dose_scan_distinguishes_the_mechanisms(invitro):
    ds, _ = invitro
    cells = ds.dose_tolerant_cells
    assert float(cells.sel(dose_um=0.0, reference_mechanism="induction")) == 0.0
    selection = cells.sel(reference_mechanism="selection")
    at_1um = float(selection.sel(dose_um=1.0))
    assert (abs(np.log(selection / at_1um)) < np.log(1.5)).all()  # nearly dose independent


def test_fluctuation_test_matches_the_exact_branching_probability(invitro):
    _, wells = invitro
    observed = wells.no_tolerant_fraction
    exact = wells.no_tolerant_probability_exact
    n = wells.sizes["well"]
    se = np.sqrt(exact * (1 - exact) / n) + 1.0 / n
    assert (abs(observed - exact) < 4 * se).all()
    assert float(observed.sel(mechanism="selection")) > 0.25  # no pre-existing clone
    assert float(observed.sel(mechanism="induction")) < 0.05
    # the selection wells drew their pre-existing tolerant cells from Poisson(1)
    t0 = wells.parameters.sel(mechanism="selection", parameter="T0")
    assert 0.6 < float(t0.mean()) < 1.4
    assert (wells["T"].sel(mechanism="selection", time=0.0) == t0).all()


# -- (b) xenograft on tamoxifen with mouse PK --------------------------------------------


@pytest.fixture(scope="module")
def xenograft(tmp_path_factory):
    return _open(_run("xenograft_recurrence", tmp_path_factory)["ensemble"])


def test_xenograft_file_records_mouse_pk_schedules(xenograft):
    ds = xenograft
    _check_records(ds, "xenograft_recurrence")
    assert (ds.withdrawal_day == 56.0).all()  # per regimen
    for regimen in ("oral", "pellet"):
        schedule = tolsim.Schedule.from_json(str(ds.schedule.sel(regimen=regimen).values))
        (channel,) = (*schedule.oral_doses, *schedule.pellets)
        assert channel.pk.species == "mouse"
        assert schedule.withdrawal_day() == 56.0
    # half-life 6 h: four days after withdrawal the drug is practically gone (2**-16)
    conc = ds.tamoxifen_um
    assert (conc.sel(time=60.0) < 1e-3 * conc.sel(time=slice(0, 55)).max("time")).all()


def test_burden_falls_on_tamoxifen_and_regrows_after_withdrawal(xenograft):
    nominal = xenograft.isel(sample=0)
    n = nominal.N
    assert (n.sel(time=56.0) < 0.5 * n.sel(time=0.0)).all()
    assert (n.isel(time=-1) > 10 * n.sel(time=56.0)).all()
    days = nominal.time_to_recurrence
    assert np.isfinite(days).all() and (days > 0).all()
    np.testing.assert_allclose(
        nominal.tumour_volume, n * nominal.tumour_volume.attrs["v_cell_mm3_per_cell"]
    )


def test_recurrence_times_match_those_recomputed_from_the_file(xenograft):
    ds = xenograft
    assert ds.sizes["sample"] > 1 and ds.parameters.std("sample").max() > 0
    for regimen in ds.regimen.values:
        one = ds.sel(regimen=regimen)
        recomputed = tolsim.time_to_recurrence(one, threshold=ds.attrs["threshold_cells"])
        np.testing.assert_allclose(recomputed.values, one.time_to_recurrence.values, rtol=1e-12)
        finite = one.time_to_recurrence.values[np.isfinite(one.time_to_recurrence.values)]
        assert finite.size > 0.9 * one.sizes["sample"]
        assert finite.std() > 1.0  # parameter uncertainty spreads the recurrence time


# -- (c) NF-κB inhibition and knockout -----------------------------------------------------


@pytest.fixture(scope="module")
def inhibition(tmp_path_factory):
    paths = _run("nfkb_inhibition", tmp_path_factory)
    return _open(paths["arms"]), _open(paths["timing"])


def test_knockout_prevents_recurrence(inhibition):
    arms, _ = inhibition
    _check_records(arms, "nfkb_inhibition")
    knockout = arms.sel(arm="knockout")
    assert np.isinf(float(knockout.time_to_recurrence))
    assert float(knockout.cure_probability) > 0.99
    assert float(knockout.reservoir_eradication_probability) > 0.99
    params = _params(knockout)
    assert params["iota"] == params["kappa_T"] == 0.0
    assert params["delta_T"] > float(arms.parameters.sel(arm="tamoxifen", parameter="delta_T"))
    assert float(arms.cure_probability.sel(arm="tamoxifen")) < 0.01


def test_inhibitor_arms_recur_later_than_tamoxifen_alone(inhibition):
    arms, _ = inhibition
    days = arms.time_to_recurrence
    alone = float(days.sel(arm="tamoxifen"))
    assert np.isfinite(alone)
    for arm in ("inhibitor during tamoxifen", "inhibitor after withdrawal"):
        assert float(days.sel(arm=arm)) > alone + 5.0
    # during tamoxifen the reservoir is caught small; after withdrawal it is not
    cure = arms.cure_probability
    assert float(cure.sel(arm="inhibitor during tamoxifen")) > 0.9
    assert float(cure.sel(arm="inhibitor after withdrawal")) < 0.01


@pytest.mark.parametrize("arm", ["inhibitor during tamoxifen", "knockout"])
def test_eradication_probability_matches_tolsim_recomputed_from_the_file(inhibition, arm):
    arms, _ = inhibition
    one = arms.sel(arm=arm)
    options = json.loads(arms.attrs["model"])["options"]
    model = tolsim.models.TwoState(**options)
    schedule = tolsim.Schedule.from_json(str(one.schedule.values))
    params = _params(one)
    reservoir = tolsim.extinction_probability(model, params, schedule, states=["T"])
    cure = tolsim.extinction_probability(model, params, schedule, by_day=np.inf)
    np.testing.assert_allclose(
        float(reservoir.extinction_probability),
        float(one.reservoir_eradication_probability),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        float(cure.extinction_probability), float(one.cure_probability), rtol=1e-12
    )


def test_timing_scan_early_inhibition_beats_late(inhibition):
    arms, timing = inhibition
    withdrawal = arms.attrs["withdrawal_day"]
    start = timing.inhibitor_start_day
    cure = timing.cure_probability
    assert float(cure.sel(inhibitor_start_day=0.0)) > 0.9
    assert (cure.where(start >= withdrawal, drop=True) < 0.01).all()
    days = timing.time_to_recurrence
    alone = float(arms.time_to_recurrence.sel(arm="tamoxifen"))
    assert (days >= alone - 1e-9).all()  # an inhibitor course never hastens recurrence
    scanned = tolsim.Schedule.from_json(str(timing.schedule.sel(inhibitor_start_day=28.0).values))
    assert scanned.concentrations([30.0], ("tamoxifen", "inhibitor")).tolist() == [[1.0, 5.0]]


# -- the withdrawal experiment (README's main job), end to end through the command line ------


def test_tamoxifen_withdrawal_runs_quick_from_the_command_line(tmp_path):
    """It crashed once on results of two schedules combined into one Dataset (a coordinate
    of each run's provenance clashed): run it whole, as `tolsim experiment` does."""
    from tolsim.cli import main

    out = tmp_path / "withdrawal"
    arguments = ["experiment", "tamoxifen_withdrawal", "--path", str(EXPERIMENTS)]
    assert main([*arguments, "--out", str(out), "--quick"]) == 0
    written = sorted(path.name for path in out.iterdir())
    assert written == [
        "recurrence_ensemble.nc",
        "tamoxifen_withdrawal.nc",
        "tamoxifen_withdrawal.png",
    ]
    arms = _open(out / "tamoxifen_withdrawal.nc")
    assert arms.sizes["arm"] >= 2 and "time_to_recurrence" in arms
