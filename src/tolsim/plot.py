"""Figures that read tolsim datasets (matplotlib is imported only when a function is called).

Result objects never plot; these functions take a :func:`tolsim.simulate` dataset (or a
:func:`tolsim.time_to_recurrence` array) and an optional matplotlib ``Axes``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["burden", "drug_shading", "recurrence_times", "tolerant_fraction"]

_DRUG_COLOURS = {"tamoxifen": "tab:blue", "inhibitor": "tab:red"}


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    return ax


def drug_shading(ds: xr.Dataset, ax=None, *, alpha: float = 0.12):
    """Shade the days each drug is present (concentration > 0), one colour per drug."""
    ax = _axes(ax)
    time = ds["time"].values
    for name in ds.data_vars:
        if not str(name).endswith("_um") or "time" not in ds[name].dims:
            continue
        drug = str(name)[: -len("_um")]
        present = ds[name].values > 0
        if not present.any():
            continue
        edges = np.flatnonzero(np.diff(np.r_[0, present.astype(int), 0]))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            ax.axvspan(
                time[start],
                time[min(stop, time.size - 1)],
                color=_DRUG_COLOURS.get(drug, "tab:gray"),
                alpha=alpha,
                lw=0,
                label=drug if start == edges[0] else None,
            )
    return ax


def burden(ds: xr.Dataset, ax=None, *, states: bool = True, label: str | None = None, **kwargs):
    """Total cells ``N`` (and each state) against days, log scale, drugs shaded."""
    ax = _axes(ax)
    if "sample" in ds["N"].dims:
        n = ds["N"]
        ax.fill_between(
            ds["time"], n.quantile(0.05, "sample"), n.quantile(0.95, "sample"), alpha=0.3
        )
        ax.plot(ds["time"], n.median("sample"), label=label or "N (median, 90% band)", **kwargs)
    else:
        (line,) = ax.plot(ds["time"], ds["N"], label=label or "N", **kwargs)
        if states:
            model_states = [v for v in ("S", "T", "R") if v in ds]
            for style, state in zip(("--", ":", "-."), model_states, strict=False):
                ax.plot(
                    ds["time"],
                    ds[state],
                    style,
                    color=line.get_color(),
                    lw=1,
                    label=f"{state} ({label})" if label else state,
                )
    ax.set_yscale("log")
    ax.set_xlabel("time (days)")
    ax.set_ylabel("cells")
    return ax


def tolerant_fraction(ds: xr.Dataset, ax=None, *, label: str | None = None, **kwargs):
    """Fraction of tolerant (NF-κB-high) cells against days."""
    ax = _axes(ax)
    fraction = ds["tolerant_fraction"]
    if "sample" in fraction.dims:
        fraction = fraction.median("sample")
    ax.plot(ds["time"], fraction, label=label, **kwargs)
    ax.set_xlabel("time (days)")
    ax.set_ylabel("tolerant fraction")
    ax.set_ylim(0, 1)
    return ax


def recurrence_times(days: xr.DataArray, ax=None, *, label: str | None = None, bins=30, **kwargs):
    """Histogram of finite recurrence times; the share never recurring is given in the label."""
    ax = _axes(ax)
    values = np.asarray(days.values, dtype=float).ravel()
    finite = values[np.isfinite(values)]
    censored = 1.0 - finite.size / max(values.size, 1)
    text = f"{label}: " if label else ""
    ax.hist(finite, bins=bins, alpha=0.6, label=f"{text}{censored:.0%} no recurrence", **kwargs)
    ax.set_xlabel("days from withdrawal to recurrence")
    ax.set_ylabel("parameter sets")
    return ax
