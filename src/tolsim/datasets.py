"""Vendored experimental data sets (see ``tolsim/data/*/PROVENANCE.md`` for sources)."""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["bruchovsky_psa", "magi2021_weekly_fold"]


def magi2021_weekly_fold() -> xr.Dataset:
    """Weekly fold expansion of MCF-7 cells, control and under tamoxifen (Magi et al. 2021).

    Returns
    -------
    xarray.Dataset
        ``fold`` (condition, run, week): per-run fold expansion N(w)/N(w-1), NaN where a run
        has no value; ``fold_mean`` and ``fold_se`` (condition, week): the authors' summary.
        ``condition`` is ``["control", "tamoxifen"]``; ``week`` is 0-10.

    Examples
    --------
    >>> ds = magi2021_weekly_fold()
    >>> float(ds.fold_mean.sel(condition="tamoxifen", week=4))
    1.04
    """
    folder = resources.files("tolsim") / "data" / "magi2021_mcf7_tamoxifen"
    raw = np.genfromtxt(
        str(folder / "growthdata.csv"), delimiter=",", names=True, dtype=None, encoding="utf-8"
    )
    summary = np.genfromtxt(
        str(folder / "growth_rate_mean_se_from_observable_py.csv"), delimiter=",", names=True
    )
    conditions = {"Ctrl": "control", "TAM": "tamoxifen"}
    runs = sorted(set(raw["run"].tolist()))
    weeks = np.arange(11)
    fold = np.full((2, len(runs), weeks.size), np.nan)
    for row in raw:
        c = list(conditions).index(str(row["Condition"]))
        fold[c, runs.index(str(row["run"])), int(row["Week"])] = float(row["Value"])
    mean = np.stack([summary["ctrl_mean"], summary["tam_mean"]])
    se = np.stack([summary["ctrl_se"], summary["tam_se"]])
    return xr.Dataset(
        {
            "fold": (("condition", "run", "week"), fold, {"units": "1"}),
            "fold_mean": (("condition", "week"), mean, {"units": "1"}),
            "fold_se": (("condition", "week"), se, {"units": "1"}),
        },
        coords={
            "condition": list(conditions.values()),
            "run": runs,
            "week": ("week", weeks, {"units": "weeks"}),
        },
        attrs={
            "title": "MCF-7 weekly fold expansion under tamoxifen",
            "source": "Magi et al. 2021, Sci Rep 11:18511, doi:10.1038/s41598-021-97887-z",
            "licence": "MIT (SHMAKI/2021_TamoxifenResistance)",
            "observable": "N(week w) / N(week w - 1) at passaging",
        },
    )


_BRUCHOVSKY_COLUMNS = (
    "patient",
    "date",
    "cpa_dose",
    "leuprolide_dose",
    "psa_ng_per_ml",
    "testosterone_nmol_per_l",
    "cycle",
    "on_treatment",
    "unix_day",
    "trial_day",
)


def bruchovsky_psa(patient: int | None = None) -> pd.DataFrame:
    """PSA through intermittent androgen suppression: the Canadian phase II trial (Bruchovsky
    et al. 2006, 2007), one row per clinic visit.

    Cycles of 36 weeks of androgen suppression (cyproterone acetate, CPA, with leuprolide),
    then treatment stopped until PSA regrew (retreatment at about 10 ng/mL), 72 patients.

    Parameters
    ----------
    patient : int, optional
        A patient number (1-109; 72 of them are in the data, see ``bruchovsky_psa().patient``);
        default every patient.

    Returns
    -------
    pandas.DataFrame
        One row per visit (also visits without a PSA value), sorted by patient and day, with
        columns

        - ``patient`` (int): patient number;
        - ``date`` (datetime64): date of the visit;
        - ``day`` (float, days): days since the patient's first visit in the trial;
        - ``psa_ng_per_ml`` (float, ng/mL): serum PSA, NaN where not measured;
        - ``testosterone_nmol_per_l`` (float, nmol/L): serum testosterone, NaN where not
          measured;
        - ``on_treatment`` (bool): the visit falls in an on-treatment period;
        - ``cycle`` (int): treatment cycle (an on-treatment period and the off-treatment period
          after it), from 1;
        - ``cpa_dose``, ``leuprolide_dose`` (str): doses as distributed, usually mg of CPA
          (daily) and of leuprolide (monthly depot), some naming another drug ("FLU 750":
          flutamide, "NIL", "CAS", "ZOL"); "" where empty;
        - ``trial_day`` (int, days): the file's day number, days since 1995-06-11 for every
          patient.

        Units and the source are in ``attrs``.

    Raises
    ------
    ValueError
        If ``patient`` is not a patient of the data.

    Examples
    --------
    >>> psa = bruchovsky_psa(1)
    >>> len(psa), float(psa.psa_ng_per_ml.iloc[0]), int(psa.cycle.max())
    (84, 29.0, 5)
    >>> bool(psa.on_treatment.iloc[0])
    True
    """
    table = _bruchovsky_table()
    if patient is not None:
        if isinstance(patient, bool) or not isinstance(patient, int | np.integer):
            raise TypeError(f"`patient` = {patient!r}: expected an int patient number or None")
        if int(patient) not in set(table["patient"]):
            known = sorted(set(table["patient"]))
            raise ValueError(
                f"`patient` = {patient!r}: no such patient in the Bruchovsky et al. data; "
                f"the {len(known)} patients are {known}"
            )
        table = table[table["patient"] == int(patient)].reset_index(drop=True)
    else:
        table = table.copy()
    table.attrs = dict(_BRUCHOVSKY_ATTRS)
    return table


_BRUCHOVSKY_ATTRS = {
    "title": "PSA through intermittent androgen suppression (Canadian phase II trial)",
    "source": (
        "Bruchovsky et al. 2006, Cancer 107:389-395, doi:10.1002/cncr.21989; Bruchovsky et al. "
        "2007, Cancer 109:858-867, doi:10.1002/cncr.22474; files from "
        "Michaelrising/PPOProstateCancer data/dataTanaka (commit ab3d168a)"
    ),
    "licence": "CC0 1.0",
    "units": "day: days since the first visit; psa_ng_per_ml: ng/mL; "
    "testosterone_nmol_per_l: nmol/L; trial_day: days since 1995-06-11",
}


@functools.cache
def _bruchovsky_table() -> pd.DataFrame:
    folder = (
        resources.files("tolsim") / "data" / "bruchovsky_intermittent_adt" / "Bruchovsky_et_al"
    )
    frames = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not (entry.name.startswith("patient") and entry.name.endswith(".txt")):
            continue
        with entry.open("r", encoding="utf-8") as handle:
            frames.append(
                pd.read_csv(
                    handle,
                    header=None,
                    names=list(_BRUCHOVSKY_COLUMNS),
                    dtype={"cpa_dose": str, "leuprolide_dose": str},
                    keep_default_na=False,
                    na_values={"psa_ng_per_ml": [""], "testosterone_nmol_per_l": [""]},
                )
            )
    raw = pd.concat(frames, ignore_index=True)
    table = pd.DataFrame(
        {
            "patient": raw["patient"].astype(np.int64),
            "date": pd.to_datetime(raw["date"], format="%Y/%m/%d %H:%M:%S"),
            "day": (
                raw["trial_day"] - raw.groupby("patient")["trial_day"].transform("min")
            ).astype(np.float64),
            "psa_ng_per_ml": raw["psa_ng_per_ml"].astype(np.float64),
            "testosterone_nmol_per_l": raw["testosterone_nmol_per_l"].astype(np.float64),
            "on_treatment": raw["on_treatment"].astype(np.int64) == 1,
            "cycle": raw["cycle"].astype(np.int64),
            "cpa_dose": raw["cpa_dose"].str.strip(),
            "leuprolide_dose": raw["leuprolide_dose"].str.strip(),
            "trial_day": raw["trial_day"].astype(np.int64),
        }
    )
    return table.sort_values(["patient", "day"], kind="stable").reset_index(drop=True)
