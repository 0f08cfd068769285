"""NF-κB inhibition (small molecule or knockout) prevents or delays recurrence: when to give it.

In vitro, 1e5 MCF-7-like cells (100 of them tolerant) get 1 µM 4-OHT for 16 weeks, then are
followed for 16 weeks without tamoxifen. Arms:

* ``tamoxifen``: tamoxifen, then withdrawal;
* ``inhibitor during tamoxifen``: plus 5 µM NF-κB inhibitor for the first 8 weeks (days 0-56);
* ``inhibitor after withdrawal``: plus the inhibitor for 8 weeks after withdrawal (days
  112-168);
* ``knockout``: tamoxifen, then withdrawal, in cells without NF-κB (RELA/p65 knockout);
* a **timing scan**: the 8-week inhibitor course started on day 0, 7, ..., 168 (days from the
  start of tamoxifen; from day 112 on it starts after withdrawal).

Schedules come from the :func:`tolsim.design.inhibitor_course` template.

**Knockout** is modelled as NF-κB permanently and fully absent in tolerant cells: their
division and death rates are those of full inhibition (exposure ``E_inh = 1``) on every day,
with no drug involved — ``lambda_T -> lambda_T (1 - iota)``, ``delta_T -> delta_T + kappa_T`` —
and ``iota = kappa_T = 0`` afterwards, so that an inhibitor would add nothing. Sensitive cells
are untouched and still enter the tolerant (NF-κB-dependent) state, where they cannot survive.

**Model and scenario.** The linear two-state model (``crowding="none"``: a passaged culture),
so that the exact branching-process results apply. The default parameters (Magi et al. 2021
calibration) have 4-OHT halting most division but killing few sensitive cells: after 16 weeks
~20 % of them are alive and regrow after withdrawal whatever happens to the tolerant cells, so
neither the inhibitor nor the knockout can prevent recurrence (the run prints this contrast;
tolerant cells, dividing at 77 % of their rate under 1 µM, even outgrow it by week 16).
This experiment therefore uses the scenario in which the seed's finding is possible — 4-OHT
clears the sensitive cells and the tolerant cells are the reservoir of recurrence:
``kappa_S = 0.25``/day (net sensitive-cell loss 0.20/day at 1 µM) and ``eps_T = 0.7``
(tolerant cells divide slowly under the drug: net growth +0.04/day). Both are assumptions.

**Per arm and start day.**

* ``time_to_recurrence``: days from withdrawal until the mean-field burden regrows through 1e6
  cells (10x the seeded cells), ``inf`` when not within follow-up
  (:func:`tolsim.time_to_recurrence`).
  In a linear model the mean field is the expected burden; once it falls below one cell it is
  the chance of a surviving lineage times its size, so it can still cross the threshold late
  when recurrence has become improbable — read it together with:
* ``reservoir_eradication_probability``: exact probability that no tolerant cell is left at the
  end of follow-up (:func:`tolsim.extinction_probability` with ``states=["T"]``, multi-type
  branching process);
* ``cure_probability``: exact probability that the whole population dies out eventually
  (``by_day=inf``): recurrence never happens.

Writes ``<out>/nfkb_inhibition.nc`` (arms), ``<out>/nfkb_inhibition_timing.nc`` (timing
scan) and ``<out>/nfkb_inhibition.png``.
Run: ``python experiments/nfkb_inhibition.py [--out results] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

import tolsim  # noqa: E402
from tolsim import plot  # noqa: E402

TAMOXIFEN_DAYS, FOLLOW_UP_DAYS = 112.0, 112.0
HORIZON_DAYS = TAMOXIFEN_DAYS + FOLLOW_UP_DAYS
TAMOXIFEN_UM, INHIBITOR_UM = 1.0, 5.0
INHIBITOR_DAYS = 56.0
DETECTION_CELLS = 1e6
SCENARIO = {"kappa_S": 0.25, "eps_T": 0.7}
START_DAYS = np.arange(0.0, TAMOXIFEN_DAYS + INHIBITOR_DAYS + 1.0, 7.0)
QUICK_START_DAYS = np.arange(0.0, TAMOXIFEN_DAYS + INHIBITOR_DAYS + 1.0, 28.0)
COLOURS = {
    "tamoxifen": "tab:blue",
    "inhibitor during tamoxifen": "tab:green",
    "inhibitor after withdrawal": "tab:orange",
    "knockout": "tab:red",
}


def knockout_params(params: dict) -> dict:
    """Parameters of NF-κB knockout cells: tolerant cells as under full inhibition, always.

    ``E_inh = 1`` in the tolerant division ``lambda_T (1 - eps_T E_tam)(1 - iota E_inh) g`` and
    death ``delta_T + kappa_T E_inh`` gives ``lambda_T (1 - iota)`` and ``delta_T + kappa_T``;
    ``iota`` and ``kappa_T`` are then 0 (an inhibitor has no NF-κB left to act on).
    """
    knockout = dict(params)
    knockout["lambda_T"] = params["lambda_T"] * (1.0 - params["iota"])
    knockout["delta_T"] = params["delta_T"] + params["kappa_T"]
    knockout["iota"] = 0.0
    knockout["kappa_T"] = 0.0
    return knockout


def course():
    """The schedule template: tamoxifen, withdrawal, an 8-week inhibitor course."""
    return tolsim.design.inhibitor_course(
        tamoxifen_days=TAMOXIFEN_DAYS,
        follow_up_days=FOLLOW_UP_DAYS,
        inhibitor_days=INHIBITOR_DAYS,
        inhibitor_um=INHIBITOR_UM,
        tamoxifen_um=TAMOXIFEN_UM,
    )


def arms(params: dict) -> dict[str, tuple[tolsim.Schedule, dict]]:
    """Arm name -> (schedule, parameters)."""
    template = course()
    tamoxifen_alone = template(inhibitor_days=0.0)
    return {
        "tamoxifen": (tamoxifen_alone, params),
        "inhibitor during tamoxifen": (template(inhibitor_start_day=0.0), params),
        "inhibitor after withdrawal": (template(inhibitor_start_day=TAMOXIFEN_DAYS), params),
        "knockout": (tamoxifen_alone, knockout_params(params)),
    }


def outcomes(model, params: dict, schedule: tolsim.Schedule, times) -> xr.Dataset:
    """Mean-field run plus recurrence time and the exact eradication probabilities."""
    ds = tolsim.simulate(model, params, schedule, times)
    ds["time_to_recurrence"] = tolsim.time_to_recurrence(ds, threshold=DETECTION_CELLS)
    reservoir = tolsim.extinction_probability(model, params, schedule, states=["T"])
    cure = tolsim.extinction_probability(model, params, schedule, by_day=np.inf)
    ds["reservoir_eradication_probability"] = reservoir["extinction_probability"].assign_attrs(
        long_name=f"exact probability of no tolerant cell on day {schedule.duration_days:g}",
        method=reservoir.attrs["method"],
    )
    ds["cure_probability"] = cure["extinction_probability"].assign_attrs(
        long_name="exact probability that every lineage dies out (no recurrence, ever)",
        method=cure.attrs["method"],
    )
    ds["schedule"] = ((), schedule.to_json(), {"long_name": "tolsim.Schedule as JSON"})
    return ds


def _stack(runs: list[xr.Dataset], dim: xr.Variable) -> xr.Dataset:
    return xr.concat(
        runs,
        dim=dim,
        data_vars="all",
        coords="different",
        compat="equals",
        join="outer",
        combine_attrs="drop_conflicts",  # schedules (and knockout parameters) differ
    )


def _experiment_attrs(quick: bool) -> dict:
    return {
        "experiment": "nfkb_inhibition",
        "scenario_parameters": json.dumps(SCENARIO),
        "scenario": "4-OHT clears sensitive cells; tolerant cells divide slowly under it",
        "knockout": (
            "tolerant cells as under full NF-κB inhibition on every day: lambda_T -> "
            "lambda_T (1 - iota), delta_T -> delta_T + kappa_T, then iota = kappa_T = 0"
        ),
        "threshold_cells": DETECTION_CELLS,
        "tamoxifen_um": TAMOXIFEN_UM,
        "inhibitor_um": INHIBITOR_UM,
        "inhibitor_days": INHIBITOR_DAYS,
        "mode": "quick" if quick else "full",
    }


def default_contrast(model, times) -> dict[str, float]:
    """Recurrence with the default (calibrated) parameters, tamoxifen alone and knockout."""
    base = model.default_params()
    result = {}
    for name, (schedule, params) in arms(base).items():
        if name in ("tamoxifen", "knockout"):
            ds = tolsim.simulate(model, params, schedule, times)
            result[name] = float(tolsim.time_to_recurrence(ds, threshold=DETECTION_CELLS))
            result[f"{name} sensitive cells at withdrawal"] = float(ds.S.sel(time=TAMOXIFEN_DAYS))
    return result


def figure(arms_ds: xr.Dataset, timing: xr.Dataset, path: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    withdrawal = float(arms_ds.attrs["withdrawal_day"])
    for ax, variable, title in (
        (axes[0, 0], "N", "burden (mean field)"),
        (axes[0, 1], "T", "tolerant cells (mean field)"),
    ):
        for arm in arms_ds.arm.values:
            one = arms_ds.sel(arm=arm)
            if variable == "N":
                plot.burden(one, ax, states=False, label=str(arm), color=COLOURS[str(arm)])
            else:
                ax.plot(one.time, one["T"], label=str(arm), color=COLOURS[str(arm)])
        ax.axvspan(0.0, withdrawal, color="tab:blue", alpha=0.08, lw=0)
        ax.axhline(1.0, color="gray", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_ylim(1e-6, None)
        ax.set_xlabel("time (days)")
        ax.set_ylabel("cells (expected)")
        ax.set_title(f"{title}; shading: tamoxifen")
    axes[0, 0].axhline(float(arms_ds.attrs["threshold_cells"]), color="k", lw=0.8, ls="--")
    axes[0, 0].legend(fontsize=7)

    start = timing.inhibitor_start_day.values
    days = timing.time_to_recurrence.values
    follow_up = float(timing.time.values[-1]) - withdrawal
    ax = axes[1, 0]
    finite = np.where(np.isfinite(days), days, np.nan)  # breaks the line where none recurs
    ax.plot(start, finite, "o-", color="tab:green", label="8-week inhibitor course")
    ax.plot(
        start[~np.isfinite(days)],
        np.full((~np.isfinite(days)).sum(), follow_up),
        "^",
        color="tab:green",
        label=f"no recurrence within {follow_up:g} days",
    )
    ax.axhline(
        float(arms_ds.time_to_recurrence.sel(arm="tamoxifen")),
        color="tab:blue",
        ls="--",
        label="tamoxifen alone",
    )
    ax.axvline(withdrawal, color="k", lw=0.8, ls=":")
    ax.set_xlabel("inhibitor start (days from start of tamoxifen; dotted: withdrawal)")
    ax.set_ylabel("days from withdrawal to recurrence")
    ax.set_title("timing: time to recurrence")
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    ax.plot(start, timing.cure_probability, "o-", color="tab:green", label="cure (no recurrence)")
    ax.plot(
        start,
        timing.reservoir_eradication_probability,
        "s--",
        color="tab:olive",
        label=f"no tolerant cell on day {timing.time.values[-1]:g}",
    )
    ax.axhline(
        float(arms_ds.cure_probability.sel(arm="knockout")),
        color="tab:red",
        ls="--",
        label="knockout",
    )
    ax.axvline(withdrawal, color="k", lw=0.8, ls=":")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("inhibitor start (days from start of tamoxifen)")
    ax.set_ylabel("probability (exact, branching process)")
    ax.set_title("timing: eradication of the tolerant reservoir")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(out: Path, quick: bool = False) -> dict[str, Path]:
    """Run the experiment, write NetCDF files and the figure into ``out``; return paths.

    ``quick`` scans the inhibitor start every 28 days instead of every 7 (for tests).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = tolsim.models.TwoState(crowding="none")
    params = model.default_params(**SCENARIO)
    times = np.arange(HORIZON_DAYS + 1.0)
    started = time.perf_counter()

    arm_runs = {name: outcomes(model, p, s, times) for name, (s, p) in arms(params).items()}
    arms_ds = _stack(list(arm_runs.values()), xr.Variable("arm", list(arm_runs)))
    template = course()
    start_days = QUICK_START_DAYS if quick else START_DAYS
    timing = _stack(
        [
            outcomes(model, params, template(inhibitor_start_day=float(day)), times)
            for day in start_days
        ],
        xr.Variable("inhibitor_start_day", start_days, {"units": "days from tamoxifen start"}),
    )
    contrast = default_contrast(model, times)
    elapsed = time.perf_counter() - started

    arms_ds.attrs.update(
        title="tolsim: NF-κB inhibition and knockout against recurrence after tamoxifen",
        **_experiment_attrs(quick),
        default_parameters_time_to_recurrence_tamoxifen=contrast["tamoxifen"],
        default_parameters_time_to_recurrence_knockout=contrast["knockout"],
    )
    timing.attrs.update(
        title="tolsim: timing of an 8-week NF-κB inhibitor course against recurrence",
        **_experiment_attrs(quick),
        schedule_template=json.dumps(template.to_dict()),
    )
    paths = {
        "arms": out / "nfkb_inhibition.nc",
        "timing": out / "nfkb_inhibition_timing.nc",
        "figure": out / "nfkb_inhibition.png",
    }
    arms_ds.to_netcdf(paths["arms"])
    timing.to_netcdf(paths["timing"])
    figure(arms_ds, timing, paths["figure"])

    print(f"NF-κB inhibition: {len(arm_runs) + len(start_days)} schedules in {elapsed:.2f} s")
    for arm in arms_ds.arm.values:
        one = arms_ds.sel(arm=arm)
        tolerant = float(one["T"].sel(time=TAMOXIFEN_DAYS))
        print(
            f"  {str(arm):27s} recurrence {float(one.time_to_recurrence):6.1f} d after "
            f"withdrawal; tolerant cells at withdrawal {tolerant:9.3g}"
            f"; P(no tolerant cell on day {HORIZON_DAYS:g}) "
            f"{float(one.reservoir_eradication_probability):.4f}; P(cure) "
            f"{float(one.cure_probability):.4f}"
        )
    print("  inhibitor start day -> recurrence days, P(cure):")
    for day, ttr, cure in zip(
        start_days, timing.time_to_recurrence.values, timing.cure_probability.values, strict=True
    ):
        print(f"    {day:5.0f}: {ttr:6.1f}  {cure:.4f}")
    on_drug = " (tolerant cells outgrow the drug)" if contrast["tamoxifen"] == 0.0 else ""
    print(
        "  default parameters instead of the scenario: recurrence "
        f"{contrast['tamoxifen']:.1f} d after withdrawal with tamoxifen alone{on_drug}, "
        f"{contrast['knockout']:.1f} d with the knockout: "
        f"{contrast['knockout sensitive cells at withdrawal']:.3g} sensitive cells survive "
        "4-OHT and regrow"
    )
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return paths


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    parser.add_argument("--quick", action="store_true", help="inhibitor start every 28 days")
    args = parser.parse_args(argv)
    return run(args.out, quick=args.quick)


if __name__ == "__main__":
    main()
