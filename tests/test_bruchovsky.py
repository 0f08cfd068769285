"""The vendored Bruchovsky et al. PSA data (intermittent androgen suppression) and the
validation experiment that predicts regrowth after the third withdrawal."""

import functools
import importlib.util
import json
import math
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import tolsim
from tolsim.datasets import bruchovsky_psa

FOLDER = resources.files("tolsim") / "data" / "bruchovsky_intermittent_adt"
EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "bruchovsky_validation.py"
COLUMNS = [
    "patient",
    "date",
    "day",
    "psa_ng_per_ml",
    "testosterone_nmol_per_l",
    "on_treatment",
    "cycle",
    "cpa_dose",
    "leuprolide_dose",
    "trial_day",
]


@functools.cache
def _experiment():
    spec = importlib.util.spec_from_file_location("experiment_bruchovsky_validation", EXPERIMENT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up while being built
    spec.loader.exec_module(module)
    return module


# -- the loader ----------------------------------------------------------------------------------
def test_one_row_per_line_of_every_patient_file():
    psa = bruchovsky_psa()
    files = sorted(
        f for f in (FOLDER / "Bruchovsky_et_al").iterdir() if f.name.startswith("patient")
    )
    assert len(files) == 72 and psa["patient"].nunique() == 72
    counts = psa.groupby("patient").size()
    for f in files:
        lines = [line for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        patient = int(f.name[len("patient") : -len(".txt")])
        assert counts[patient] == len(lines), f.name
        assert {int(line.split(",")[0]) for line in lines} == {patient}
    assert len(psa) == 4787
    for name in ("LICENSE", "PROVENANCE.md", "readme_original.txt"):
        assert (FOLDER / name).is_file()


def test_columns_types_and_known_values():
    psa = bruchovsky_psa()
    assert list(psa.columns) == COLUMNS
    assert psa["on_treatment"].dtype == bool and psa["day"].dtype == np.float64
    assert "ng/mL" in psa.attrs["units"] and "Bruchovsky" in psa.attrs["source"]
    # every patient starts on treatment, at day 0; days increase
    first = psa.groupby("patient").head(1)
    assert first["on_treatment"].all() and (first["day"] == 0).all()
    assert (psa.groupby("patient")["day"].diff().dropna() > 0).all()
    one = bruchovsky_psa(1)
    row = one.iloc[0]  # 1,1995/6/27 0:00:00,200,,29,16,1,1,9308,16
    assert row["date"] == pd.Timestamp("1995-06-27")
    assert (row["psa_ng_per_ml"], row["testosterone_nmol_per_l"]) == (29.0, 16.0)
    assert (row["cpa_dose"], row["leuprolide_dose"], row["trial_day"]) == ("200", "", 16)
    assert row["cycle"] == 1 and row["on_treatment"]
    row = one.iloc[10]  # 1,1996/4/2 0:00:00,,,1.3,0.7,1,0,9588,296: first visit off treatment
    assert row["day"] == 280.0 and row["psa_ng_per_ml"] == 1.3 and not row["on_treatment"]
    assert math.isnan(one.iloc[4]["psa_ng_per_ml"])  # 1,1995/10/17 0:00:00,100,7.5,,,1,1,...
    eleven = bruchovsky_psa(11)  # its first visit is trial day 39, its last 1983
    assert len(eleven) == 61 and eleven["day"].iloc[-1] == 1983 - 39
    assert eleven["psa_ng_per_ml"].iloc[-1] == 4.8
    assert "FLU 750" in set(psa["cpa_dose"])  # other drugs are kept as written


def test_patient_selection_errors():
    with pytest.raises(ValueError, match=r"`patient` = 5: no such patient .* \[1, 2, 3, 4, 6, "):
        bruchovsky_psa(5)
    with pytest.raises(TypeError, match="`patient` = '1': expected an int"):
        bruchovsky_psa("1")
    with pytest.raises(TypeError, match="`patient` = True"):
        bruchovsky_psa(True)
    # a copy: changing it does not change the next call
    psa = bruchovsky_psa(1)
    psa.loc[0, "psa_ng_per_ml"] = -1.0
    assert bruchovsky_psa(1)["psa_ng_per_ml"].iloc[0] == 29.0


# -- the experiment ------------------------------------------------------------------------------
def _off_period_by_cycle(visits: pd.DataFrame, cycle: int):
    """An off-period's days since withdrawal and PSA, from the files' cycle column: the
    cycle's off-treatment visits plus the first visit of the next cycle (retreatment)."""
    on = visits[(visits["cycle"] == cycle) & visits["on_treatment"]]
    off = visits[(visits["cycle"] == cycle) & ~visits["on_treatment"]]
    resumed = visits[visits["cycle"] == cycle + 1].head(1)
    rows = pd.concat([off, resumed])
    rows = rows[rows["psa_ng_per_ml"].notna()]
    withdrawal = on["day"].iloc[-1]
    return rows["day"].to_numpy() - withdrawal, rows["psa_ng_per_ml"].to_numpy()


def test_inclusion_rule_keeps_23_patients():
    bv = _experiment()
    psa = bruchovsky_psa()
    reasons = {p: bv.inclusion(v) for p, v in psa.groupby("patient")}
    included = [p for p, why in reasons.items() if not why]
    assert included == [1, 11, 13, 15, 17, 19, 24, 26, 28, 36, 37, 39, 46, 50, 55, 58, 60] + [
        75,
        77,
        81,
        87,
        100,
        101,
    ]
    assert reasons[2] == "fewer than 3 off-treatment periods (2)"
    # patient 4's third off-period tops out at 8.96 ng/mL, and 9.56 at retreatment
    assert reasons[4] == "off-period 3 never reaches 10 ng/mL: censored (highest 9.56)"


def test_naive_baseline_and_observed_day_by_hand():
    bv = _experiment()
    visits = bruchovsky_psa(1)
    days, values = _off_period_by_cycle(visits, 2)
    x, y = days, np.log(values)
    slope = np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2)
    target_days, target_values = _off_period_by_cycle(visits, 3)
    assert (target_days[0], target_values[0]) == (28.0, 1.7)
    expected = 28.0 + math.log(10.0 / 1.7) / slope
    offs = bv.off_periods(bv.treatment_periods(visits))
    day, fitted_slope = bv.naive_prediction(offs[1], offs[2], 10.0)
    assert fitted_slope == pytest.approx(slope, rel=1e-12)
    assert day == pytest.approx(expected, rel=1e-12)
    # observed: 7.1 ng/mL on trial day 1233, 11 on 1255, withdrawn on 1094 (day 1078)
    observed = 1233 + math.log(10 / 7.1) / math.log(11 / 7.1) * 22 - 1094
    assert bv.crossing_day(target_days, target_values, 10.0) == pytest.approx(observed)
    assert bv.crossing_day(target_days, target_values, 100.0) != bv.crossing_day(
        target_days, target_values, 100.0
    )  # NaN: never reached


def test_validation_on_two_patients(tmp_path):
    """The first two included patients (1 and 11): the fitted model follows the fitted PSA
    within its noise, and the predicted regrowth is where the predicted PSA crosses 10 ng/mL,
    inside the off-period, within 60 days of the observed one."""
    bv = _experiment()
    bv.main(tmp_path, patients=2, seed=2026, starts=bv.STARTS, threshold=10.0)
    with xr.open_dataset(tmp_path / "bruchovsky_validation.nc") as file:
        ds = file.load()
    assert (tmp_path / "bruchovsky_validation.png").stat().st_size > 0
    assert ds.patient.values.tolist() == [1, 11]
    assert ds.converged.values.all()
    assert (ds.rms_log_residual < 0.4).all()  # PSA scatters ~0.2-0.5 in log units
    assert ds.withdrawal_day.sel(patient=1) == 1078.0
    tolsim_day = ds.tolsim_day.values
    assert np.all(np.isfinite(tolsim_day))
    assert np.all((tolsim_day > ds.first_off_day.values) & (tolsim_day < ds.off_period_days))
    assert np.all(np.abs(ds.tolsim_error_days.values) <= 60)
    for p in (1, 11):
        r = ds.sel(patient=p)
        withdrawal, crossing = float(r.withdrawal_day), float(r.tolsim_day)
        model = r.model_psa.dropna("day")
        before = model.sel(day=slice(withdrawal, withdrawal + math.floor(crossing)))
        after = model.sel(day=withdrawal + math.ceil(crossing))
        assert float(before.max()) < 10.0 <= float(after)
    summary = json.loads(ds.attrs["summary"])
    assert summary["n_patients"] == 2
    expected = np.median(np.abs(ds.naive_error_days.values))
    assert summary["naive"]["median_abs_error_days"] == pytest.approx(expected)
    assert ds.attrs["tolsim_version"] == tolsim.__version__
