"""A xenograft on tamoxifen (mouse PK), withdrawal and recurrence, with parameter uncertainty.

An MCF-7-like xenograft of 1e8 cells (~100 mm³) is treated with tamoxifen for 8 weeks, then
followed for 200 days without drug. Two ways of giving the drug, both through the one-compartment
mouse PK model (:meth:`tolsim.PK.tamoxifen_mouse`: half-life 6 h, ~0.6 L apparent volume; the
concentrations are exact closed forms between doses):

* ``oral``: 0.5 mg by gavage once a day (20 mg/kg for a 25 g mouse), days 0-55;
* ``pellet``: a 25 mg, 60-day slow-release pellet (0.417 mg/day), implanted on day 0 and
  removed on day 56.

Model: two-state, logistic crowding. Cell parameters are the defaults except for the xenograft
(assumptions): ``S0 = 1e8``, ``T0 = 1e5`` (0.1 % tolerant), capacity ``K = 1e10`` cells, and
division rates ``lambda_S = lambda_T = 0.08``/day (net untreated growth 0.06/day, doubling in
~12 days, slower than in culture). Tumour volume is ``v_cell * N`` with the default ``v_cell``
of :func:`tolsim.observe.tumour_volume` (1e-6 mm³ per cell).

Recurrence: the first day after withdrawal on which the tumour regrows to its size at the start
of treatment (:func:`tolsim.time_to_recurrence`, right-censored at day 256). Its spread: an
ensemble of parameter sets (a ``sample`` dim, one parallel ``simulate`` call per regimen) with
every rate jittered uniformly by ±25 % and the initial tolerant cells by a factor 10**U(-1, 1);
sample 0 holds the nominal parameters.

Writes ``<out>/xenograft_recurrence.nc`` (dims ``regimen``, ``sample``, ``time``) and
``<out>/xenograft_recurrence.png``.
Run: ``python experiments/xenograft_recurrence.py [--out results] [--quick]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

import tolsim  # noqa: E402
from tolsim import plot  # noqa: E402

TREATMENT_DAYS, FOLLOW_UP_DAYS = 56.0, 200.0
HORIZON_DAYS = TREATMENT_DAYS + FOLLOW_UP_DAYS
ORAL_DOSE_MG = 0.5
PELLET_MG, PELLET_LIFETIME_DAYS = 25.0, 60.0
XENOGRAFT = {"S0": 1e8, "T0": 1e5, "K": 1e10, "lambda_S": 0.08, "lambda_T": 0.08}
RATE_JITTER = 0.25
T0_DECADES = 1.0
SAMPLES, QUICK_SAMPLES = 1000, 64
COLOURS = {"oral": "tab:purple", "pellet": "tab:green"}


def regimens(pk: tolsim.PK | None = None) -> dict[str, tolsim.Schedule]:
    """Daily oral tamoxifen and a slow-release pellet, each for ``TREATMENT_DAYS``."""
    pk = tolsim.PK.tamoxifen_mouse() if pk is None else pk
    return {
        "oral": tolsim.Schedule.oral(
            "tamoxifen",
            dose_mg=ORAL_DOSE_MG,
            every_days=1.0,
            stop_day=TREATMENT_DAYS,
            pk=pk,
            duration_days=HORIZON_DAYS,
        ),
        "pellet": tolsim.Schedule.pellet(
            "tamoxifen",
            release_mg_per_day=PELLET_MG / PELLET_LIFETIME_DAYS,
            stop_day=TREATMENT_DAYS,
            pk=pk,
            duration_days=HORIZON_DAYS,
        ),
    }


def jittered_parameters(model, n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` parameter sets around :data:`XENOGRAFT`; row 0 is the nominal set."""
    rng = np.random.default_rng(seed)
    base = model.default_params(**XENOGRAFT)
    rates = [p.name for p in model.parameters if p.unit == "1/day"]
    table = {name: base[name] * rng.uniform(1 - RATE_JITTER, 1 + RATE_JITTER, n) for name in rates}
    table["T0"] = base["T0"] * 10.0 ** rng.uniform(-T0_DECADES, T0_DECADES, n)
    for name, values in table.items():
        values[0] = base[name]
    for name in ("S0", "K"):
        table[name] = np.full(n, base[name])
    return table


def simulate_regimens(model, table, schedules, threshold: float) -> xr.Dataset:
    """One ensemble ``simulate`` per regimen, stacked along ``regimen``, with recurrence."""
    times = np.arange(HORIZON_DAYS + 1.0)  # daily: holds every dose day and the withdrawal
    ds = tolsim.simulate_arms(model, table, schedules, times, dim="regimen")
    ds["time_to_recurrence"] = tolsim.time_to_recurrence(ds, threshold=threshold)
    v_cell = {p.name: p.default for p in tolsim.observe.tumour_volume().parameters}["v_cell"]
    ds["tumour_volume"] = (ds["N"] * v_cell).assign_attrs(
        units="mm^3", long_name="tumour volume v_cell * N", v_cell_mm3_per_cell=v_cell
    )
    return ds


def mean_exposure(schedule: tolsim.Schedule, params) -> float:
    """Time-averaged tamoxifen exposure ``E_tam`` (Hill) over the treatment, on a fine grid.

    Daily outputs sample an oral regimen at its dose times only (troughs), hence the grid.
    """
    days = np.linspace(0.0, TREATMENT_DAYS, 56001)[:-1]
    conc = schedule.concentrations(days, ("tamoxifen",))[:, 0]
    ratio = (conc / params["EC50_tam"]) ** params["h_tam"]
    return float(np.mean(ratio / (1.0 + ratio)))


def figure(ds: xr.Dataset, path: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    withdrawal = float(ds.withdrawal_day.max())  # the same day in both regimens
    threshold = float(ds.attrs["threshold_cells"])
    v_cell = float(ds["tumour_volume"].attrs["v_cell_mm3_per_cell"])

    ax = axes[0, 0]
    for regimen in ds.regimen.values:
        one = ds.sel(regimen=regimen)
        colour = COLOURS[regimen]
        plot.burden(one, ax, states=False, label=f"{regimen}: N (median, 90% band)", color=colour)
        ax.plot(
            one.time,
            one["T"].median("sample"),
            "--",
            color=colour,
            lw=1,
            label=f"{regimen}: tolerant cells (median)",
        )
    ax.axvspan(0.0, withdrawal, color="tab:blue", alpha=0.1, lw=0, label="tamoxifen")
    ax.axhline(threshold, color="k", lw=0.8, ls="--", label="size at start (recurrence)")
    ax.set_title("tumour burden")
    ax.legend(fontsize=7)
    volume = ax.secondary_yaxis("right", functions=(lambda n: n * v_cell, lambda v: v / v_cell))
    volume.set_ylabel("tumour volume (mm³)")

    ax = axes[0, 1]
    fine = np.linspace(0.0, withdrawal + 14.0, 3501)
    for regimen in ds.regimen.values:
        schedule = tolsim.Schedule.from_json(str(ds.schedule.sel(regimen=regimen).values))
        ax.plot(
            fine,
            schedule.concentrations(fine, ("tamoxifen",))[:, 0],
            lw=0.8,
            color=COLOURS[regimen],
            label=regimen,
        )
    ec50 = float(ds.parameters.isel(sample=0).sel(parameter="EC50_tam"))
    ax.axhline(ec50, color="k", lw=0.8, ls=":", label=f"EC50 ({ec50:g} µM)")
    ax.set_xlabel("time (days)")
    ax.set_ylabel("tamoxifen (µM, mouse PK)")
    ax.set_title("drug concentration (half-life 6 h)")
    ax.legend(fontsize=7)

    ax = axes[1, 0]
    for regimen in ds.regimen.values:
        plot.recurrence_times(
            ds.time_to_recurrence.sel(regimen=regimen),
            ax,
            label=regimen,
            bins=40,
            color=COLOURS[regimen],
        )
    ax.set_title(f"time to recurrence, {ds.sizes['sample']} parameter sets")
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    for regimen in ds.regimen.values:
        plot.tolerant_fraction(
            ds.sel(regimen=regimen), ax, label=f"{regimen} (median)", color=COLOURS[regimen]
        )
    ax.axvspan(0.0, withdrawal, color="tab:blue", alpha=0.1, lw=0)
    ax.set_title("NF-κB-high tolerant fraction")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(out: Path, quick: bool = False, seed: int = 2026) -> dict[str, Path]:
    """Run the experiment, write the NetCDF file and the figure into ``out``; return paths.

    ``quick`` simulates 64 parameter sets per regimen instead of 1000 (for tests).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = tolsim.models.TwoState(crowding="logistic")
    n = QUICK_SAMPLES if quick else SAMPLES
    table = jittered_parameters(model, n, seed)
    threshold = XENOGRAFT["S0"] + XENOGRAFT["T0"]
    started = time.perf_counter()
    schedules = regimens()
    ds = simulate_regimens(model, table, schedules, threshold)
    elapsed = time.perf_counter() - started
    ds.attrs.update(
        title="tolsim: xenograft on tamoxifen (mouse PK), withdrawal and recurrence",
        experiment="xenograft_recurrence",
        regimens=(
            f"oral: {ORAL_DOSE_MG:g} mg once a day, days 0-{TREATMENT_DAYS - 1:g}; pellet: "
            f"{PELLET_MG:g} mg / {PELLET_LIFETIME_DAYS:g} days, removed on day "
            f"{TREATMENT_DAYS:g}"
        ),
        xenograft_parameters=str(XENOGRAFT),
        threshold_cells=threshold,
        recurrence="first day after withdrawal with N >= the burden at the start of treatment",
        jitter=(
            f"rates x U({1 - RATE_JITTER:g}, {1 + RATE_JITTER:g}), T0 x 10**U(-{T0_DECADES:g}, "
            f"{T0_DECADES:g}); sample 0 is nominal"
        ),
        nominal_sample=0,
        seed=seed,
        mode="quick" if quick else "full",
    )
    paths = {
        "ensemble": out / "xenograft_recurrence.nc",
        "figure": out / "xenograft_recurrence.png",
    }
    encoding = {
        name: {"zlib": True, "complevel": 4}
        for name, variable in ds.data_vars.items()
        if variable.dtype.kind == "f" and variable.ndim > 1
    }
    ds.to_netcdf(paths["ensemble"], encoding=encoding)
    figure(ds, paths["figure"])

    print(f"xenograft: {2 * n} trajectories with mouse PK in {elapsed:.2f} s")
    nominal_params = model.default_params(**XENOGRAFT)
    for regimen in ds.regimen.values:
        one = ds.sel(regimen=regimen)
        nominal = one.isel(sample=0)
        days = one.time_to_recurrence.values
        finite = days[np.isfinite(days)]
        q = np.percentile(finite, [5, 50, 95]) if finite.size else [np.nan] * 3
        print(
            f"  {regimen:6s} mean exposure on drug "
            f"{mean_exposure(schedules[regimen], nominal_params):.2f}; nominal: "
            f"{float(nominal.tumour_volume.sel(time=0.0)):.0f} -> "
            f"{float(nominal.tumour_volume.sel(time=TREATMENT_DAYS)):.1f} mm³ at withdrawal "
            f"(tolerant fraction {float(nominal.tolerant_fraction.sel(time=TREATMENT_DAYS)):.2f}"
            f"), recurrence {float(nominal.time_to_recurrence):.1f} days after withdrawal; "
            f"ensemble median {q[1]:.1f} d (90% {q[0]:.1f}-{q[2]:.1f}), none within "
            f"{FOLLOW_UP_DAYS:g} d in {1 - finite.size / days.size:.1%}"
        )
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return paths


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    parser.add_argument("--quick", action="store_true", help="64 parameter sets, not 1000")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the parameter jitter")
    args = parser.parse_args(argv)
    return run(args.out, quick=args.quick, seed=args.seed)


if __name__ == "__main__":
    main()
