"""In vitro 4-OHT exposure gives rise to an NF-κB-high tolerant population: selection or induction?

Continuous 4-hydroxytamoxifen (4-OHT, 1 µM) for 10 weeks on MCF-7-like cells, with the default
two-state parameters (Magi et al. 2021 calibration) and no crowding (``crowding="none"``: a
culture passaged before confluence, counts cumulative as if no cell were discarded), under two
pure mechanisms of tolerance:

* **selection**: the tolerant (T) cells pre-exist and the drug only selects them:
  ``mu_0 = mu_E = 0``, ``T0`` = 10, 100 (0.1 % of 1e5 seeded cells, the default) or 1000;
* **induction**: the drug switches sensitive cells into the tolerant state: ``T0 = 0``,
  ``mu_0 = 0`` and ``mu_E`` = m/10, m, 10 m, where m is chosen so that induction gives the
  same number of tolerant cells on day 70 as selection from ``T0 = 100``.

Both give a tolerant-dominated survivor population (from 0.1 % tolerant cells, or the matched
induction rate, a tolerant fraction of ~0.9 by week 10, with the same curve), so the end point
alone cannot tell them apart. Signatures that can:

* **kinetics**: under selection the tolerant count grows from ``T0`` at the tolerant cells' net
  rate (< their division rate ``lambda_T``); under induction it rises from zero, in the first
  week faster than tolerant cells can divide (apparent rate > ``lambda_T``): cells convert;
* **initial tolerant cells**: the final tolerant count is proportional to ``T0`` under selection
  (none without pre-existing cells) while induction needs none;
* **dose**: a 4-OHT dose scan (0 to 3 µM) of the tolerant count and fraction on day 70. The
  fraction rises with dose under both (the drug holds back sensitive cells), but the tolerant
  count is nearly dose independent under selection, while under induction it is zero without
  drug and largest at low doses, where more sensitive cells survive to be switched;
* **a fluctuation test** (Luria & Delbrück 1943, stochastic): 1000-cell wells (a 0.1 %
  tolerant frequency is then one tolerant cell per well on average), exact SSA, one path per
  well. Under selection the number of pre-existing tolerant cells per well is Poisson(1), so
  ~44 % of wells have no tolerant cell after 10 weeks (no clone, or its lineage died out);
  under induction with the same mean outcome almost every well has some. The exact
  probability (multi-type branching process, :func:`tolsim.extinction_probability`) is
  ``Q_S ** S0 * exp(-m_T0 (1 - Q_T))`` with ``Q_i`` the probability that the lineage of one
  cell of type ``i`` has no tolerant cell on day 70 and ``m_T0`` the Poisson mean.

Writes ``<out>/invitro_tolerance.nc`` (mean-field runs, ``sample`` dim with a ``mechanism``
coordinate, plus the dose scan), ``<out>/invitro_tolerance_wells.nc`` (stochastic wells,
``mechanism`` × ``sample`` = well) and ``<out>/invitro_tolerance.png``.
Run: ``python experiments/invitro_tolerance.py [--out results] [--quick]``.
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

TAMOXIFEN_UM = 1.0
EXPOSURE_DAYS = 70.0
SEEDED_CELLS = 1e5
SELECTION_T0 = (10.0, 100.0, 1000.0)
REFERENCE_T0 = 100.0  # the default: 0.1 % of the seeded cells
INDUCTION_FACTORS = (0.1, 1.0, 10.0)  # times the matched induction rate
DOSES_UM = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
QUICK_DOSES_UM = (0.0, 0.1, 1.0)
WELL_CELLS = 1000.0
WELL_TOLERANT_MEAN = 1.0  # 0.1 % of 1000 cells
WELLS, QUICK_WELLS = 1000, 200
EARLY_DAYS = (1.0, 7.0)  # window of the apparent early growth rate of the tolerant count
COLOURS = {"selection": "tab:blue", "induction": "tab:red"}


def exposure_schedule(tamoxifen_um: float = TAMOXIFEN_UM) -> tolsim.Schedule:
    """Continuous 4-OHT at ``tamoxifen_um`` µM for ``EXPOSURE_DAYS`` (0 µM: vehicle)."""
    return tolsim.Schedule.from_phases([{"days": EXPOSURE_DAYS, "tamoxifen": tamoxifen_um}])


def selection_params(t0) -> dict:
    """Pure selection: pre-existing tolerant cells ``T0``, no switching S→T."""
    return {"S0": SEEDED_CELLS, "T0": t0, "mu_0": 0.0, "mu_E": 0.0}


def induction_params(mu_e) -> dict:
    """Pure induction: no tolerant cell at the start, drug-induced switching at ``mu_E``."""
    return {"S0": SEEDED_CELLS, "T0": 0.0, "mu_0": 0.0, "mu_E": mu_e}


def matched_induction_rate(model) -> float:
    """``mu_E`` (1/day) giving the tolerant count on day 70 of selection from ``T0 = 100``.

    The tolerant count is linear in ``mu_E`` up to the (negligible, ~1e-4 relative) loss of
    sensitive cells to switching, so one reference run and one correction suffice.
    """
    schedule = exposure_schedule()
    target = float(
        tolsim.simulate(model, selection_params(REFERENCE_T0), schedule, [0.0, EXPOSURE_DAYS])
        .T.isel(time=-1)
        .item()
    )
    mu_e = 1e-4
    for _ in range(2):
        ds = tolsim.simulate(model, induction_params(mu_e), schedule, [0.0, EXPOSURE_DAYS])
        mu_e *= target / float(ds.T.isel(time=-1).item())
    return mu_e


def _early_growth_rate(tolerant: xr.DataArray) -> xr.DataArray:
    first, last = (tolerant.sel(time=day) for day in EARLY_DAYS)
    rate = np.log(last / first) / (EARLY_DAYS[1] - EARLY_DAYS[0])
    return rate.assign_attrs(
        units="1/day",
        long_name=(
            f"apparent growth rate of the tolerant count, days {EARLY_DAYS[0]:g}-"
            f"{EARLY_DAYS[1]:g}: ln(T(7)/T(1))/6"
        ),
    )


def mean_field(model, mu_e: float, doses_um) -> xr.Dataset:
    """Mean-field runs of both mechanisms at 1 µM (``sample`` dim) and a dose scan."""
    n_sel, n_ind = len(SELECTION_T0), len(INDUCTION_FACTORS)
    table = {
        "S0": SEEDED_CELLS,
        "T0": np.array([*SELECTION_T0, *([0.0] * n_ind)]),
        "mu_0": 0.0,
        "mu_E": np.array([*([0.0] * n_sel), *(f * mu_e for f in INDUCTION_FACTORS)]),
    }
    times = np.arange(EXPOSURE_DAYS + 1.0)
    ds = tolsim.simulate(model, table, exposure_schedule(), times)
    mechanisms = ["selection"] * n_sel + ["induction"] * n_ind
    labels = [f"selection, T0 = {t0:g}" for t0 in SELECTION_T0] + [
        f"induction, mu_E = {f * mu_e:.2g}/day" for f in INDUCTION_FACTORS
    ]
    ds = ds.assign_coords(mechanism=("sample", mechanisms), label=("sample", labels))
    ds["early_tolerant_growth_rate"] = _early_growth_rate(ds["T"])

    # dose scan: one schedule per dose, both mechanisms' reference sets as two samples
    reference = {
        "S0": SEEDED_CELLS,
        "T0": np.array([REFERENCE_T0, 0.0]),
        "mu_0": 0.0,
        "mu_E": np.array([0.0, mu_e]),
    }
    final_t, final_fraction = [], []
    for dose in doses_um:
        run = tolsim.simulate(model, reference, exposure_schedule(dose), [0.0, EXPOSURE_DAYS])
        final_t.append(run["T"].isel(time=-1).values)
        final_fraction.append(run["tolerant_fraction"].isel(time=-1).values)
    dims = ("dose_um", "reference_mechanism")
    ds["dose_tolerant_cells"] = (
        dims,
        np.array(final_t),
        {"units": "cells", "long_name": f"tolerant cells on day {EXPOSURE_DAYS:g}"},
    )
    ds["dose_tolerant_fraction"] = (
        dims,
        np.array(final_fraction),
        {"units": "1", "long_name": f"tolerant fraction on day {EXPOSURE_DAYS:g}"},
    )
    ds = ds.assign_coords(
        dose_um=("dose_um", np.asarray(doses_um, float), {"units": "µM", "long_name": "4-OHT"}),
        reference_mechanism=("reference_mechanism", ["selection", "induction"]),
    )
    ds.attrs.update(
        title="tolsim: in vitro 4-OHT exposure, selection versus induction of tolerance",
        experiment="invitro_tolerance",
        mechanisms=(
            "selection: mu_0 = mu_E = 0, T0 > 0 (pre-existing tolerant cells); induction: "
            "T0 = 0, mu_0 = 0, mu_E > 0 (drug-induced switching)"
        ),
        matched_mu_E_per_day=mu_e,
        matched_on=f"tolerant cells on day {EXPOSURE_DAYS:g} of selection from T0 = "
        f"{REFERENCE_T0:g}",
        tamoxifen_um=TAMOXIFEN_UM,
        dose_scan_reference="selection: T0 = 100; induction: T0 = 0, mu_E = matched_mu_E",
        culture="passaged: crowding 'none', counts cumulative",
    )
    return ds


def wells(model, mu_e: float, n_wells: int, seed: int) -> xr.Dataset:
    """Stochastic fluctuation test: exact SSA in ``n_wells`` wells of 1000 cells per mechanism."""
    schedule = exposure_schedule()
    times = np.arange(0.0, EXPOSURE_DAYS + 1.0, 7.0)
    rng = np.random.default_rng(seed)
    t0 = rng.poisson(WELL_TOLERANT_MEAN, n_wells).astype(np.float64)
    tables = {
        "selection": {"S0": WELL_CELLS, "T0": t0, "mu_0": 0.0, "mu_E": 0.0},
        "induction": {
            "S0": WELL_CELLS,
            "T0": np.zeros(n_wells),
            "mu_0": 0.0,
            "mu_E": np.full(n_wells, mu_e),
        },
    }
    runs = [
        tolsim.simulate(model, table, schedule, times, method="ssa", paths=1, seed=seed)
        for table in tables.values()
    ]
    ds = xr.concat(
        runs,
        dim=xr.Variable("mechanism", list(tables)),
        data_vars="all",
        coords="different",
        compat="equals",
        join="outer",
        combine_attrs="drop_conflicts",
    ).isel(path=0, drop=True)
    ds = ds.rename({"sample": "well"})

    # exact: lineage probabilities of no tolerant cell on the last day (branching process)
    exact = []
    for name in tables:
        one = {
            "S0": WELL_CELLS,
            "T0": 1.0,
            "mu_0": 0.0,
            "mu_E": 0.0 if name == "selection" else mu_e,
        }
        lineage = tolsim.extinction_probability(model, one, schedule, states=["T"])
        q = lineage["lineage_extinction_probability"]
        q_s, q_t = float(q.sel(state="S")), float(q.sel(state="T"))
        mean_t0 = WELL_TOLERANT_MEAN if name == "selection" else 0.0
        exact.append(q_s**WELL_CELLS * np.exp(-mean_t0 * (1.0 - q_t)))
    no_tolerant = (ds["T"].isel(time=-1) == 0).mean("well")
    ds["no_tolerant_fraction"] = no_tolerant.assign_attrs(
        units="1", long_name=f"fraction of wells without tolerant cells on day {times[-1]:g}"
    )
    ds["no_tolerant_probability_exact"] = (
        ("mechanism",),
        np.array(exact),
        {
            "units": "1",
            "long_name": f"exact probability of no tolerant cell on day {times[-1]:g}",
            "method": "multi-type branching process: Q_S**S0 * exp(-mean_T0 * (1 - Q_T))",
        },
    )
    ds.attrs.update(
        title="tolsim: fluctuation test of tolerance, selection versus induction (SSA wells)",
        experiment="invitro_tolerance",
        cells_per_well=WELL_CELLS,
        pre_existing_tolerant_per_well="Poisson, mean 1 (selection); 0 (induction)",
        matched_mu_E_per_day=mu_e,
        seed=seed,
        wells=n_wells,
    )
    return ds


def figure(ds: xr.Dataset, wells_ds: xr.Dataset, path: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    shades = {
        "selection": ("#9ecae1", "#3182bd", "#08519c"),
        "induction": ("#fcae91", "#de2d26", "#a50f15"),
    }
    counters = {"selection": 0, "induction": 0}
    for i in range(ds.sizes["sample"]):
        one = ds.isel(sample=i)
        mechanism = str(one.mechanism.values)
        colour = shades[mechanism][counters[mechanism]]
        counters[mechanism] += 1
        label = str(one.label.values)
        style = "-" if mechanism == "selection" else "--"
        plot.tolerant_fraction(one, axes[0, 0], label=label, color=colour, ls=style)
        axes[0, 1].plot(one.time, one["T"], style, color=colour, label=label)
    axes[0, 1].plot(ds.time, ds.N.isel(sample=1), "k:", lw=1.5, label="all cells (T0 = 100)")
    axes[0, 0].set_title(f"tolerant fraction under {TAMOXIFEN_UM:g} µM 4-OHT")
    axes[0, 0].legend(fontsize=7)
    axes[0, 1].set_yscale("log")
    axes[0, 1].set_ylim(1.0, None)
    axes[0, 1].set_xlabel("time (days)")
    axes[0, 1].set_ylabel("cells")
    axes[0, 1].set_title("tolerant cells and burden")
    axes[0, 1].legend(fontsize=7)

    doses = ds.dose_um.values
    positive = doses > 0
    ax = axes[1, 0]
    ax2 = ax.twinx()
    for mechanism in ("selection", "induction"):
        cells = ds.dose_tolerant_cells.sel(reference_mechanism=mechanism).values
        fraction = ds.dose_tolerant_fraction.sel(reference_mechanism=mechanism).values
        ax.plot(
            doses[positive],
            cells[positive],
            "o-",
            color=COLOURS[mechanism],
            label=f"{mechanism}: tolerant cells (vehicle: {cells[~positive][0]:.3g})",
        )
        ax2.plot(doses[positive], fraction[positive], "s--", color=COLOURS[mechanism], alpha=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("4-OHT (µM)")
    ax.set_ylabel(f"tolerant cells on day {EXPOSURE_DAYS:g} (o)")
    ax2.set_ylabel("tolerant fraction (s, dashed)")
    ax2.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper center")
    ax.set_title("dose: the tolerant count is flat under selection")

    ax = axes[1, 1]
    final = wells_ds["T"].isel(time=-1)
    bins = np.linspace(0.0, float(np.log10(final.max() + 1.0)) + 0.2, 30)
    for mechanism in ("selection", "induction"):
        values = np.log10(final.sel(mechanism=mechanism).values + 1.0)
        mc = float(wells_ds.no_tolerant_fraction.sel(mechanism=mechanism))
        exact = float(wells_ds.no_tolerant_probability_exact.sel(mechanism=mechanism))
        ax.hist(
            values,
            bins=bins,
            alpha=0.6,
            color=COLOURS[mechanism],
            label=f"{mechanism}: no tolerant cell in {mc:.1%} of wells (exact {exact:.1%})",
        )
    ax.set_xlabel(f"log10(tolerant cells + 1) per well, day {EXPOSURE_DAYS:g}")
    ax.set_ylabel("wells")
    ax.set_title(f"fluctuation test: {wells_ds.sizes['well']} wells of {WELL_CELLS:g} cells (SSA)")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(out: Path, quick: bool = False, seed: int = 2026) -> dict[str, Path]:
    """Run the experiment, write NetCDF files and a figure into ``out``; return their paths.

    ``quick`` scans fewer doses and simulates fewer wells (for tests).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = tolsim.models.TwoState(crowding="none")
    started = time.perf_counter()
    mu_e = matched_induction_rate(model)
    ds = mean_field(model, mu_e, QUICK_DOSES_UM if quick else DOSES_UM)
    wells_ds = wells(model, mu_e, QUICK_WELLS if quick else WELLS, seed)
    for d in (ds, wells_ds):
        d.attrs["mode"] = "quick" if quick else "full"
    elapsed = time.perf_counter() - started

    paths = {
        "mean_field": out / "invitro_tolerance.nc",
        "wells": out / "invitro_tolerance_wells.nc",
        "figure": out / "invitro_tolerance.png",
    }
    ds.to_netcdf(paths["mean_field"])
    wells_ds.to_netcdf(paths["wells"])
    figure(ds, wells_ds, paths["figure"])

    print(f"in vitro tolerance ({elapsed:.1f} s of simulation): matched mu_E = {mu_e:.3g}/day")
    end = ds.isel(time=-1)
    for i in range(ds.sizes["sample"]):
        print(
            f"  {str(ds.label.values[i]):34s} tolerant fraction day 7 "
            f"{float(ds.tolerant_fraction.isel(sample=i).sel(time=7.0)):.3f}, day 70 "
            f"{float(end.tolerant_fraction.isel(sample=i)):.3f}; tolerant cells "
            f"{float(end['T'].isel(sample=i)):9.3g}; early rate "
            f"{float(ds.early_tolerant_growth_rate.isel(sample=i)):.3f}/day"
        )
    lambda_t = model.default_params()["lambda_T"]
    print(f"  (tolerant cells divide at most at lambda_T = {lambda_t:g}/day)")
    for mechanism in ("selection", "induction"):
        cells = ds.dose_tolerant_cells.sel(reference_mechanism=mechanism).values
        print(
            f"  dose scan {mechanism:9s}: tolerant cells on day 70 "
            + ", ".join(f"{d:g} µM {c:.3g}" for d, c in zip(ds.dose_um.values, cells, strict=True))
        )
        print(
            f"  wells {mechanism:9s}: no tolerant cell in "
            f"{float(wells_ds.no_tolerant_fraction.sel(mechanism=mechanism)):.1%} of "
            f"{wells_ds.sizes['well']} wells (exact "
            f"{float(wells_ds.no_tolerant_probability_exact.sel(mechanism=mechanism)):.1%})"
        )
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return paths


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    parser.add_argument("--quick", action="store_true", help="fewer doses and wells")
    parser.add_argument("--seed", type=int, default=2026, help="seed of wells and SSA paths")
    args = parser.parse_args(argv)
    return run(args.out, quick=args.quick, seed=args.seed)


if __name__ == "__main__":
    main()
