"""Vendored experimental data sets (see ``tolsim/data/*/PROVENANCE.md`` for sources)."""

from __future__ import annotations

from importlib import resources

import numpy as np
import xarray as xr

__all__ = ["magi2021_weekly_fold"]


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
