"""Validate tolsim on real on/off data: predict PSA regrowth after the third withdrawal of
intermittent androgen suppression (Bruchovsky et al. 2006, 2007).

Data: serum PSA at clinic visits of the Canadian phase II trial of intermittent androgen
suppression (vendored in ``src/tolsim/data/bruchovsky_intermittent_adt``; loaded by
:func:`tolsim.datasets.bruchovsky_psa`). Each cycle gives 36 weeks of androgen suppression, then
stops treatment until PSA regrows; in 82% of the off-periods ended by retreatment PSA had
reached 10 ng/mL, the trial's retreatment level (see the data's PROVENANCE.md). Prostate cancer
under hormone therapy is the closest public clinical analogue of tamoxifen exposure, withdrawal
and recurrence.

**Question.** Fitted to a patient's history up to the third withdrawal, does the two-state
model predict when PSA will regrow to the retreatment trigger better than extrapolating the
previous off-period's regrowth rate?

**Periods.** A patient's visits split into alternating on- and off-treatment periods (the
files' on/off column). Treatment stops at the last on-treatment visit (the withdrawal day) and
resumes at the first visit of the next on-treatment period; the PSA drawn at that visit (before
the new treatment can act) counts as the last value of the off-period. One PSA of 0 (patient
100, below detection) counts as missing: every method works with log PSA.

**Event.** The *regrowth day* of an off-period is the number of days from withdrawal until PSA
first reaches ``--threshold`` (default 10 ng/mL, the trial's trigger), log-linearly
interpolated between the last visit below and the first visit at or above it (visits are about
four weeks apart).

**Inclusion.** Patients with at least three off-treatment periods after an on-treatment
period, each of the first three with at least three PSA values, whose third off-period starts
below the threshold and reaches it (the observed regrowth day is then known, not censored).

**Information used.** Both predictions use the patient's visits up to and including the first
PSA of the third off-period (the first off-treatment visit).

* **tolsim**: the linear ``TwoState(crowding="none")`` model, androgen suppression entered as
  the model's ``"tamoxifen"`` exposure in in-vitro-style phases (full exposure on treatment,
  none off). The tamoxifen story of tolsim, induced tolerance that fades after withdrawal:
  sensitive cells divide at ``lambda_S`` off treatment, stop dividing and die at ``kappa_S`` on
  it (``eps_S = 1``), and switch to the tolerant state at ``mu_E`` on it; tolerant cells survive
  treatment, divide at ``lambda_T`` on and off it, and revert to sensitive at ``nu_off`` off it.
  No basal death, no pre-existing tolerant cells. This gives PSA's shape through a cycle: a fast
  fall to a plateau of tolerant cells on treatment, and a lag while they revert, then
  exponential regrowth, off it. PSA = ``scale * (S + T)`` with log-normal noise. Six free
  parameters (``lambda_S``, ``lambda_T``, ``kappa_S``, ``mu_E``, ``nu_off``, ``scale``),
  fitted by multi-start least squares (noise size fixed at ``SIGMA_LOG``, which does not move
  the optimum; the residual scatter is reported). The fitted model is then run through the
  third off-period without retreatment; its regrowth day is when predicted PSA reaches the
  threshold.
* **naive**: the slope of log PSA against day over the second (previous) off-period
  (ordinary least squares), extrapolated from the third off-period's first PSA value.

Errors are predicted minus observed regrowth days; a method that predicts no regrowth within
``HORIZON_DAYS`` has an infinite error.

**Other model configurations** were tried on the same 23 patients while this script was
written (20 starts each; median absolute error, median RMS of log residuals): no reversion
(``nu_off = 0``, the five-parameter model of the issue) 73 days, 0.72; selection (``T0`` free,
``mu_E = 0``, tolerant cells quiescent on treatment, no reversion) 54 days, 0.71; this model
with logistic crowding (``K`` free) 67 days, 0.45. This model was kept for its mechanism and
fit, not its prediction error; none of them beat the naive method (48 days).

Writes ``<out>/bruchovsky_validation.nc`` (per-patient results and model trajectories) and
``<out>/bruchovsky_validation.png``. Run: ``python experiments/bruchovsky_validation.py``
(``--patients 3`` for a quick run).
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

import tolsim  # noqa: E402
from tolsim.fit import NonConvergenceWarning  # noqa: E402
from tolsim.models.base import Parameter  # noqa: E402
from tolsim.observe import LogNormal, Observable, Trajectory  # noqa: E402

THRESHOLD_NG_PER_ML = 10.0  # the trial's retreatment trigger
TARGET_OFF_PERIOD = 3  # predict the regrowth after the third withdrawal
MIN_PSA_PER_OFF_PERIOD = 3
HORIZON_DAYS = 1500.0  # predictions run this long after the withdrawal without retreatment
SIGMA_LOG = 0.3  # fixed noise scale of log PSA in the fit (least squares: no effect on optimum)
S0_CELLS = 1e9  # initial tumour size: sets the unit of `scale` only (the model is linear)
WITHIN_DAYS = (30.0, 60.0)
STARTS = 20

MODEL = tolsim.models.TwoState(crowding="none")
SCALE = "psa.ng_per_ml_per_cell"
FREE = ["lambda_S", "lambda_T", "kappa_S", "mu_E", "nu_off", SCALE]
BOUNDS = {  # PSA doubles in weeks to years off treatment and halves in days to months on it
    "lambda_S": (1e-3, 0.5),
    "lambda_T": (1e-5, 0.1),
    "kappa_S": (1e-3, 1.0),
    "mu_E": (1e-7, 0.1),
    "nu_off": (1e-4, 1.0),
    SCALE: (1e-13, 1e-5),  # ng/mL per cell: 1e-4 to 1e4 ng/mL at S0_CELLS
}
STARTING = {"lambda_S": 0.02, "lambda_T": 2e-3, "kappa_S": 0.1, "mu_E": 2e-3, "nu_off": 0.02}
FIXED = {
    # androgen suppression is on (exposure 1) or off: E = 1 / (1 + 1e-6) on treatment
    "EC50_tam": 1e-6,
    "h_tam": 1.0,
    "eps_S": 1.0,
    "eps_T": 0.0,
    "delta_S": 0.0,
    "delta_T": 0.0,
    "mu_0": 0.0,
    "nu_0": 0.0,
    "S0": S0_CELLS,
    "T0": 0.0,
}


def _psa_formula(trajectory: Trajectory, days: np.ndarray, params) -> np.ndarray:
    return params["ng_per_ml_per_cell"] * trajectory.at("N", days)


PSA = Observable(
    "psa",
    "ng/mL",
    _psa_formula,
    parameters=(
        Parameter(
            "ng_per_ml_per_cell",
            "ng/mL per cell",
            1e-8,
            (0.0, math.inf),
            "serum PSA per tumour cell",
            "fitted per patient",
        ),
    ),
    description="serum PSA, proportional to the total number of tumour cells S + T",
)


# -- periods and events ------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    """An on- or off-treatment period of one patient.

    ``start_day`` and ``stop_day`` (days since the first visit): an on-period runs from its
    first visit to its last (the withdrawal); an off-period from the withdrawal to the first
    visit of the next on-period (or its own last visit). ``psa_days`` and ``psa_ng_per_ml`` are
    the period's PSA values; an off-period's include the one drawn at the visit where treatment
    resumed.
    """

    on_treatment: bool
    start_day: float
    stop_day: float
    psa_days: np.ndarray
    psa_ng_per_ml: np.ndarray
    resumed: bool  # an off-period ended by retreatment (not by the end of follow-up)

    @property
    def days_since_start(self) -> np.ndarray:
        return self.psa_days - self.start_day


def treatment_periods(visits: pd.DataFrame) -> list[Period]:
    """Alternating on/off periods of one patient's visits (sorted by day)."""
    on = visits["on_treatment"].to_numpy(dtype=bool)
    days = visits["day"].to_numpy(dtype=float)
    psa = visits["psa_ng_per_ml"].to_numpy(dtype=float)
    breaks = np.flatnonzero(np.diff(on.astype(int)) != 0) + 1
    blocks = np.split(np.arange(on.size), breaks)
    periods: list[Period] = []
    for k, rows in enumerate(blocks):
        nxt = blocks[k + 1] if k + 1 < len(blocks) else None
        if on[rows[0]]:
            start, stop = days[rows[0]], days[rows[-1]]
            keep = rows
        else:
            start = days[blocks[k - 1][-1]] if k > 0 else days[rows[0]]
            stop = days[nxt[0]] if nxt is not None else days[rows[-1]]
            keep = np.append(rows, nxt[0]) if nxt is not None else rows
        measured = keep[psa[keep] > 0]  # NaN: not measured; one 0: below detection
        periods.append(
            Period(
                bool(on[rows[0]]),
                float(start),
                float(stop),
                days[measured],
                psa[measured],
                resumed=not on[rows[0]] and nxt is not None,
            )
        )
    return periods


def off_periods(periods: list[Period]) -> list[Period]:
    """Off-treatment periods that follow an on-treatment period."""
    return [p for k, p in enumerate(periods) if not p.on_treatment and k > 0]


def crossing_day(days: np.ndarray, values: np.ndarray, level: float) -> float:
    """Days (on the scale of ``days``) at which ``values`` first reach ``level``, log-linearly
    interpolated between the visit before and the first visit at or above it; NaN if they
    never do, or already do at the first visit."""
    above = np.flatnonzero(values >= level)
    if above.size == 0 or above[0] == 0:
        return math.nan
    i = int(above[0])
    low, high = math.log(values[i - 1]), math.log(values[i])
    return float(days[i - 1] + (math.log(level) - low) / (high - low) * (days[i] - days[i - 1]))


def inclusion(visits: pd.DataFrame, threshold: float = THRESHOLD_NG_PER_ML) -> str:
    """Why a patient is excluded, as "<reason> (<detail>)", or "" when included (see the module
    docstring)."""
    offs = off_periods(treatment_periods(visits))
    if len(offs) < TARGET_OFF_PERIOD:
        return f"fewer than {TARGET_OFF_PERIOD} off-treatment periods ({len(offs)})"
    for k, period in enumerate(offs[:TARGET_OFF_PERIOD], start=1):
        if period.psa_ng_per_ml.size < MIN_PSA_PER_OFF_PERIOD:
            return (
                f"an off-period with fewer than {MIN_PSA_PER_OFF_PERIOD} PSA values "
                f"(off-period {k}: {period.psa_ng_per_ml.size})"
            )
    target = offs[TARGET_OFF_PERIOD - 1]
    if target.psa_ng_per_ml[0] >= threshold:
        return (
            f"off-period {TARGET_OFF_PERIOD} starts at or above {threshold:g} ng/mL "
            f"({target.psa_ng_per_ml[0]:g})"
        )
    if not np.any(target.psa_ng_per_ml >= threshold):
        return (
            f"off-period {TARGET_OFF_PERIOD} never reaches {threshold:g} ng/mL: censored "
            f"(highest {target.psa_ng_per_ml.max():g})"
        )
    return ""


def naive_prediction(previous: Period, target: Period, threshold: float) -> tuple[float, float]:
    """Regrowth day of ``target`` from ``previous``'s log-linear PSA slope (per day),
    extrapolated from ``target``'s first PSA value; inf for a slope <= 0."""
    slope = float(np.polyfit(previous.days_since_start, np.log(previous.psa_ng_per_ml), 1)[0])
    first_day = float(target.days_since_start[0])
    first_value = float(target.psa_ng_per_ml[0])
    if first_value >= threshold:
        return first_day, slope
    if slope <= 0:
        return math.inf, slope
    return first_day + math.log(threshold / first_value) / slope, slope


# -- the model ---------------------------------------------------------------------------------
def schedule_through(periods: list[Period], target: Period) -> tuple[tolsim.Schedule, float]:
    """Treatment in each on-period before ``target``, none after; the schedule ends
    ``HORIZON_DAYS`` after ``target``'s withdrawal, which is returned with it."""
    withdrawal = target.start_day
    phases = [
        {"start_day": p.start_day, "stop_day": p.stop_day, "tamoxifen": 1.0}
        for p in periods
        if p.on_treatment and p.stop_day <= withdrawal and p.stop_day > p.start_day
    ]
    schedule = tolsim.Schedule.from_phases(phases, duration_days=withdrawal + HORIZON_DAYS)
    return schedule, withdrawal


def fit_patient(visits: pd.DataFrame, *, starts: int, seed: int, threshold: float) -> dict:
    """Fit the model to one patient's history up to the first PSA of the target off-period
    and predict its regrowth day (see the module docstring)."""
    periods = treatment_periods(visits)
    offs = off_periods(periods)
    previous, target = offs[TARGET_OFF_PERIOD - 2], offs[TARGET_OFF_PERIOD - 1]
    schedule, withdrawal = schedule_through(periods, target)
    first_off_day = float(target.psa_days[0])
    measured = visits[visits["psa_ng_per_ml"] > 0]
    fitted = measured[measured["day"] <= first_off_day]
    table = pd.DataFrame(
        {
            "condition": "patient",
            "observable": "psa",
            "time": fitted["day"].to_numpy(dtype=float),
            "value": fitted["psa_ng_per_ml"].to_numpy(dtype=float),
        }
    )
    first_psa = float(fitted["psa_ng_per_ml"].iloc[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NonConvergenceWarning)
        result = tolsim.fit(
            MODEL,
            table,
            {"patient": schedule},
            free=FREE,
            fixed={**FIXED, **STARTING, SCALE: first_psa / S0_CELLS, "psa.sigma": SIGMA_LOG},
            bounds=BOUNDS,
            observables={"psa": PSA},
            noise=LogNormal(),
            starts=starts,
            seed=seed,
        )
    params = {k: v for k, v in result.all_params.items() if k in MODEL.parameter_names}
    scale = result.all_params[SCALE]
    times = np.union1d(np.arange(0.0, withdrawal + HORIZON_DAYS, 1.0), [withdrawal])
    ds = tolsim.simulate(MODEL, params, schedule, times)
    predicted_day = float(
        tolsim.time_to_recurrence(ds, threshold=threshold / scale, withdrawal_day=withdrawal)
    )
    log_residuals = np.log(
        result.predictions.observed.values / result.predictions.predicted.values
    )
    naive_day, naive_slope = naive_prediction(previous, target, threshold)
    return {
        "observed_day": crossing_day(target.days_since_start, target.psa_ng_per_ml, threshold),
        "tolsim_day": predicted_day,
        "naive_day": naive_day,
        "naive_slope_per_day": naive_slope,
        "withdrawal_day": withdrawal,
        "first_off_day": first_off_day - withdrawal,
        "first_off_psa": float(target.psa_ng_per_ml[0]),
        "off_period_days": target.stop_day - target.start_day,
        "n_fitted": len(table),
        "rms_log_residual": float(np.sqrt(np.mean(log_residuals**2))),
        "converged": bool(result.converged),
        "warnings": [str(w.message) for w in caught],
        "params": {name: result.all_params[name] for name in FREE},
        "nllh": result.nllh,
        "model_day": ds.time.values,
        "model_psa": ds.N.values * scale,
        "periods": periods,
    }


# -- the cohort --------------------------------------------------------------------------------
def patient_seed(seed: int, patient: int) -> int:
    """The fit's seed for one patient: independent of which other patients run."""
    return int(np.random.SeedSequence([seed, patient]).generate_state(1)[0])


def validate(
    psa: pd.DataFrame,
    patients: list[int],
    *,
    starts: int = STARTS,
    seed: int = 2026,
    threshold: float = THRESHOLD_NG_PER_ML,
) -> xr.Dataset:
    """Fit and predict for each patient; per-patient results as a Dataset (dim ``patient``).

    Parameters
    ----------
    psa : pandas.DataFrame
        Visits as returned by :func:`tolsim.datasets.bruchovsky_psa`.
    patients : list of int
        Patients to run; each must pass :func:`inclusion`.
    starts, seed : int
        Multi-start optimisations per fit and the seed (per patient via
        :func:`patient_seed`).
    threshold : float
        PSA (ng/mL) whose crossing defines regrowth.
    """
    results = {}
    for patient in patients:
        visits = psa[psa["patient"] == patient]
        why = inclusion(visits, threshold)
        if why:
            raise ValueError(f"patient {patient} does not meet the inclusion rule: {why}")
        results[patient] = fit_patient(
            visits, starts=starts, seed=patient_seed(seed, patient), threshold=threshold
        )
        for message in results[patient]["warnings"]:
            print(f"patient {patient}: {message}")
    return _dataset(psa, results, starts=starts, seed=seed, threshold=threshold)


def _dataset(psa, results: dict, *, starts: int, seed: int, threshold: float) -> xr.Dataset:
    patients = list(results)
    rows = [results[p] for p in patients]

    def column(key, dtype=float):
        return np.array([r[key] for r in rows], dtype=dtype)

    observed = column("observed_day")
    n_days = int(max(r["model_day"][-1] for r in rows)) + 1
    model_psa = np.full((len(rows), n_days), np.nan)
    for i, r in enumerate(rows):
        whole = np.isclose(r["model_day"], np.round(r["model_day"]))
        model_psa[i, np.round(r["model_day"][whole]).astype(int)] = r["model_psa"][whole]
    visits = [psa[psa["patient"] == p] for p in patients]
    n_visits = max(len(v) for v in visits)
    visit_day = np.full((len(rows), n_visits), np.nan)
    visit_psa = np.full((len(rows), n_visits), np.nan)
    visit_on = np.zeros((len(rows), n_visits), dtype=bool)
    for i, v in enumerate(visits):
        visit_day[i, : len(v)] = v["day"]
        visit_psa[i, : len(v)] = v["psa_ng_per_ml"]
        visit_on[i, : len(v)] = v["on_treatment"]
    days_since = {"units": "days", "long_name": "days from the third withdrawal"}
    ds = xr.Dataset(
        {
            "observed_day": ("patient", observed, {**days_since, "description": "observed"}),
            "tolsim_day": ("patient", column("tolsim_day"), {**days_since, "method": "tolsim"}),
            "naive_day": ("patient", column("naive_day"), {**days_since, "method": "naive"}),
            "tolsim_error_days": ("patient", column("tolsim_day") - observed, {"units": "days"}),
            "naive_error_days": ("patient", column("naive_day") - observed, {"units": "days"}),
            "withdrawal_day": (
                "patient",
                column("withdrawal_day"),
                {"units": "days", "long_name": "third withdrawal, days since the first visit"},
            ),
            "first_off_day": ("patient", column("first_off_day"), days_since),
            "first_off_psa": ("patient", column("first_off_psa"), {"units": "ng/mL"}),
            "off_period_days": (
                "patient",
                column("off_period_days"),
                {"units": "days", "long_name": "length of the third off-period"},
            ),
            "naive_slope_per_day": (
                "patient",
                column("naive_slope_per_day"),
                {"units": "1/day", "long_name": "slope of log PSA in the second off-period"},
            ),
            "fitted": (
                ("patient", "parameter"),
                np.array([[r["params"][n] for n in FREE] for r in rows]),
                {"units": json.dumps({n: _unit(n) for n in FREE})},
            ),
            "nllh": ("patient", column("nllh")),
            "rms_log_residual": (
                "patient",
                column("rms_log_residual"),
                {"long_name": "root mean square of log(observed / fitted PSA)"},
            ),
            "n_fitted": ("patient", column("n_fitted", int)),
            "converged": ("patient", column("converged", bool)),
            "model_psa": (
                ("patient", "day"),
                model_psa,
                {"units": "ng/mL", "long_name": "fitted and predicted PSA, no retreatment"},
            ),
            "visit_day": (
                ("patient", "visit"),
                visit_day,
                {"units": "days", "long_name": "every clinic visit, days since the first"},
            ),
            "visit_psa": (("patient", "visit"), visit_psa, {"units": "ng/mL"}),
            "visit_on_treatment": (("patient", "visit"), visit_on),
        },
        coords={
            "patient": np.array(patients, dtype=int),
            "parameter": [n.replace(".", "_") for n in FREE],
            "day": (
                "day",
                np.arange(float(n_days)),
                {"units": "days", "long_name": "days since the first visit"},
            ),
        },
    )
    ds.attrs.update(
        title="Regrowth after the third withdrawal of intermittent androgen suppression: "
        "tolsim against a naive extrapolation",
        experiment="bruchovsky_validation",
        source=psa.attrs.get("source", ""),
        threshold_ng_per_ml=threshold,
        inclusion=(
            f">= {TARGET_OFF_PERIOD} off-treatment periods, each of the first "
            f"{TARGET_OFF_PERIOD} with >= {MIN_PSA_PER_OFF_PERIOD} PSA values; off-period "
            f"{TARGET_OFF_PERIOD} starts below the threshold and reaches it"
        ),
        model=json.dumps(MODEL.describe()),
        free=json.dumps(FREE),
        fixed=json.dumps(FIXED),
        bounds=json.dumps(BOUNDS),
        sigma_log_fixed=SIGMA_LOG,
        horizon_days=HORIZON_DAYS,
        starts=starts,
        seed=seed,
        summary=json.dumps(summary(_errors(observed, rows))),
        tolsim_version=tolsim.__version__,
    )
    return ds


def _unit(name: str) -> str:
    if name == SCALE:
        return "ng/mL per cell"
    return {p.name: p.unit for p in MODEL.parameters}[name]


def _errors(observed: np.ndarray, rows: list[dict]) -> dict[str, np.ndarray]:
    return {
        method: np.array([r[f"{method}_day"] for r in rows]) - observed
        for method in ("tolsim", "naive")
    }


def summary(errors: dict[str, np.ndarray]) -> dict:
    """Cohort metrics per method: median and mean absolute error (days), fraction within
    each of ``WITHIN_DAYS``, median signed error (bias), predictions without regrowth; and how
    often tolsim is closer than the naive method, with a Wilcoxon signed-rank test."""
    from scipy import stats

    out = {}
    for method, error in errors.items():
        absolute = np.abs(error)
        out[method] = {
            "median_abs_error_days": float(np.median(absolute)),
            "mean_abs_error_days": float(np.mean(absolute)),
            "median_error_days": float(np.median(error)),
            "no_regrowth_predicted": int(np.sum(~np.isfinite(error))),
            **{f"within_{w:g}_days": float(np.mean(absolute <= w)) for w in WITHIN_DAYS},
        }
    a, b = np.abs(errors["tolsim"]), np.abs(errors["naive"])
    out["tolsim_closer"] = int(np.sum(a < b))
    out["n_patients"] = int(a.size)
    finite = np.isfinite(a) & np.isfinite(b)
    if finite.sum() >= 5 and np.any(a[finite] != b[finite]):
        out["wilcoxon_p_value"] = float(stats.wilcoxon(a[finite], b[finite]).pvalue)
    return out


# -- output ------------------------------------------------------------------------------------
def print_table(ds: xr.Dataset) -> None:
    print(
        f"{'patient':>7} {'n':>3} {'rms':>5} {'observed':>8} {'tolsim':>7} {'naive':>7} "
        f"{'err tolsim':>10} {'err naive':>9}"
    )
    for p in ds.patient.values:
        r = ds.sel(patient=p)
        print(
            f"{p:7d} {int(r.n_fitted):3d} {float(r.rms_log_residual):5.2f} "
            f"{float(r.observed_day):8.0f} {float(r.tolsim_day):7.0f} {float(r.naive_day):7.0f} "
            f"{float(r.tolsim_error_days):+10.0f} {float(r.naive_error_days):+9.0f}"
        )
    s = json.loads(ds.attrs["summary"])
    print(
        f"\nregrowth day (PSA reaches {ds.attrs['threshold_ng_per_ml']:g} ng/mL after the third "
        f"withdrawal), {s['n_patients']} patients:"
    )
    print(
        f"{'method':>7} {'median |err|':>12} {'mean |err|':>10} {'bias':>6} "
        + " ".join(f"{f'within {w:g} d':>11}" for w in WITHIN_DAYS)
    )
    for method in ("tolsim", "naive"):
        m = s[method]
        print(
            f"{method:>7} {m['median_abs_error_days']:12.0f} {m['mean_abs_error_days']:10.0f} "
            f"{m['median_error_days']:+6.0f} "
            + " ".join(f"{m[f'within_{w:g}_days']:11.0%}" for w in WITHIN_DAYS)
        )
    line = f"tolsim closer in {s['tolsim_closer']} of {s['n_patients']}"
    if "wilcoxon_p_value" in s:
        line += f" (Wilcoxon signed-rank on |errors|: p = {s['wilcoxon_p_value']:.2g})"
    print(line)


def figure(ds: xr.Dataset, path: Path) -> None:
    """Predicted against observed regrowth days, the error distributions, and up to four
    patients (best, middle and worst tolsim predictions) with data and model."""
    threshold = ds.attrs["threshold_ng_per_ml"]
    fig = plt.figure(figsize=(15, 8.5), constrained_layout=True)
    grid = fig.add_gridspec(2, 4)
    ax = fig.add_subplot(grid[0, 0:2])
    observed = ds.observed_day.values
    predicted = np.concatenate([ds.tolsim_day.values, ds.naive_day.values])
    top = 1.1 * max(observed.max(), predicted[np.isfinite(predicted)].max())
    ax.fill_between([0, top], [-30, top - 30], [30, top + 30], color="0.9", label="±30 days")
    ax.plot([0, top], [0, top], "k:", lw=1)
    for method, marker, colour in (("tolsim", "o", "tab:blue"), ("naive", "s", "tab:orange")):
        predicted = np.minimum(ds[f"{method}_day"].values, top)
        ax.plot(observed, predicted, marker, color=colour, alpha=0.8, label=method, ls="none")
    ax.set(
        xlim=(0, top),
        ylim=(0, top),
        xlabel="observed regrowth day (from the third withdrawal)",
        ylabel="predicted regrowth day",
        title=f"PSA reaches {threshold:g} ng/mL: predicted vs observed",
    )
    ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[0, 2:4])
    for method, colour in (("tolsim", "tab:blue"), ("naive", "tab:orange")):
        error = np.sort(np.abs(ds[f"{method}_error_days"].values))
        fraction = np.arange(error.size + 1) / error.size
        ax.step(
            np.append(0.0, error),
            fraction,
            where="post",
            color=colour,
            label=f"{method} (median {np.median(error):.0f} d)",
        )
    for w in WITHIN_DAYS:
        ax.axvline(w, color="0.6", ls=":")
    ax.set(
        xlim=(0, None),
        ylim=(0, 1),
        xlabel="|predicted - observed| (days); no regrowth predicted: off the axis",
        ylabel="fraction of patients",
        title="absolute errors (cumulative)",
    )
    ax.legend(fontsize=8)
    order = np.argsort(np.abs(ds.tolsim_error_days.values))
    picks = order[
        np.unique(np.linspace(0, order.size - 1, min(4, order.size)).round().astype(int))
    ]
    for k, i in enumerate(picks):
        ax = fig.add_subplot(grid[1, k])
        _patient_panel(ax, ds.isel(patient=int(i)), threshold)
        if k == 0:
            ax.legend(fontsize=6, loc="lower left")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _patient_panel(ax, r: xr.Dataset, threshold: float) -> None:
    days = r.visit_day.values
    ok = np.isfinite(days)
    days, values, on = days[ok], r.visit_psa.values[ok], r.visit_on_treatment.values[ok]
    withdrawal = float(r.withdrawal_day)
    edges = np.flatnonzero(np.diff(on.astype(int)) != 0) + 1
    for block in np.split(np.arange(on.size), edges):
        if on[block[0]]:
            ax.axvspan(days[block[0]], days[block[-1]], color="0.92", lw=0)
    measured = np.isfinite(values)
    days, values = days[measured], values[measured]
    used = days <= withdrawal + float(r.first_off_day)
    ax.semilogy(days[used], values[used], "o", color="k", ms=3, label="fitted data")
    ax.semilogy(days[~used], values[~used], "o", mfc="none", color="k", ms=3, label="later data")
    model = r.model_psa.values
    fitted = r.day.values <= withdrawal
    ax.semilogy(r.day.values[fitted], model[fitted], "-", color="tab:blue", label="tolsim fit")
    ax.semilogy(
        r.day.values[~fitted], model[~fitted], "--", color="tab:blue", label="tolsim prediction"
    )
    ax.axhline(threshold, color="tab:red", lw=0.8, ls=":")
    for name, colour in (("observed", "k"), ("tolsim", "tab:blue"), ("naive", "tab:orange")):
        day = float(r[f"{name}_day"])
        if np.isfinite(day):
            style = "-" if name == "observed" else "--"
            ax.axvline(
                withdrawal + day, color=colour, lw=1, ls=style, label=f"{name} regrowth day"
            )
    ax.set(
        xlim=(0, min(days.max(), withdrawal + 1.5 * float(r.observed_day) + 60)),
        ylim=(max(0.01, 0.5 * np.nanmin(values)), 3 * np.nanmax(values)),
        xlabel="day",
        ylabel="PSA (ng/mL)",
        title=f"patient {int(r.patient)}: error tolsim {float(r.tolsim_error_days):+.0f} d, "
        f"naive {float(r.naive_error_days):+.0f} d",
    )
    ax.title.set_fontsize(9)


def main(out: Path, patients: int | None, seed: int, starts: int, threshold: float) -> xr.Dataset:
    out.mkdir(parents=True, exist_ok=True)
    psa = tolsim.datasets.bruchovsky_psa()
    reasons = {
        int(p): inclusion(visits, threshold) for p, visits in psa.groupby("patient", sort=True)
    }
    included = [p for p, why in reasons.items() if not why]
    print(
        f"{len(reasons)} patients; {len(included)} meet the inclusion rule "
        f"(PSA {threshold:g} ng/mL); excluded:"
    )
    counts: dict[str, int] = {}
    for why in reasons.values():
        if why:
            key = why.split(" (")[0]
            counts[key] = counts.get(key, 0) + 1
    for why, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {n:3d}  {why}")
    chosen = included if patients is None else included[:patients]
    started = time.perf_counter()
    ds = validate(psa, chosen, starts=starts, seed=seed, threshold=threshold)
    elapsed = time.perf_counter() - started
    ds.attrs["mode"] = "full" if patients is None else f"first {patients} patients"
    ds.attrs["elapsed_s"] = elapsed
    print(f"\n{len(chosen)} patients fitted in {elapsed:.0f} s ({starts} starts each)\n")
    print_table(ds)
    if not ds.converged.all():
        print(f"fits not converged: patients {ds.patient.values[~ds.converged.values].tolist()}")
    ds.to_netcdf(out / "bruchovsky_validation.nc")
    figure(ds, out / "bruchovsky_validation.png")
    print(f"wrote {out / 'bruchovsky_validation.nc'} and {out / 'bruchovsky_validation.png'}")
    return ds


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--patients", type=int, default=None, help="only the first N included")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--starts", type=int, default=STARTS)
    parser.add_argument("--threshold", type=float, default=THRESHOLD_NG_PER_ML, help="ng/mL")
    parser.add_argument(
        "--quick", action="store_true", help="the first 3 included patients, 4 starts each"
    )
    args = parser.parse_args()
    if args.quick:
        args.patients, args.starts = 3, 4
    main(args.out, args.patients, args.seed, args.starts, args.threshold)
