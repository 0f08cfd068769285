"""Tamoxifen, withdrawal and recurrence, with and without NF-κB inhibition (in vitro).

Four arms of a 240-day in-vitro experiment with the default two-state model (MCF-7-like):

* ``control``: no drug;
* ``tamoxifen``: 1 µM tamoxifen (4-OHT) for 8 weeks, then withdrawn;
* ``tamoxifen + inhibitor``: the same, with 5 µM NF-κB inhibitor during the last 4 weeks of
  tamoxifen (days 28-56), when the tolerant cells have been selected;
* ``inhibitor after withdrawal``: tamoxifen for 8 weeks, then the inhibitor for 4 weeks.

Recurrence is the regrowth of the total burden past a detection threshold of 1e6 cells
(10x the seeded 1e5), counted in days from withdrawal. A second part propagates parameter
uncertainty: 2,000 parameter sets with every rate jittered by ±25 % (a stand-in for the
posterior the fitting issue will provide), solved as one parallel ensemble per arm, give a
distribution of recurrence times. A third
sweeps how long the inhibitor is given before withdrawal.

Writes ``<out>/tamoxifen_withdrawal.nc`` (arms), ``<out>/recurrence_ensemble.nc`` and
``<out>/tamoxifen_withdrawal.png``. Run: ``python experiments/tamoxifen_withdrawal.py``.
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

ON_DAYS, HORIZON_DAYS = 56.0, 240.0
INHIBITOR_DAYS = 28.0
TAMOXIFEN_UM, INHIBITOR_UM = 1.0, 5.0
DETECTION_CELLS = 1e6
COLOURS = {
    "control": "tab:gray",
    "tamoxifen": "tab:blue",
    "tamoxifen + inhibitor": "tab:green",
    "inhibitor after withdrawal": "tab:orange",
}


def arms() -> dict[str, tolsim.Schedule]:
    off = HORIZON_DAYS - ON_DAYS
    return {
        "control": tolsim.Schedule.from_phases([{"days": HORIZON_DAYS}]),
        "tamoxifen": tolsim.Schedule.from_phases(
            [{"days": ON_DAYS, "tamoxifen": TAMOXIFEN_UM}, {"days": off}]
        ),
        "tamoxifen + inhibitor": tolsim.Schedule.from_phases(
            [
                {"days": ON_DAYS - INHIBITOR_DAYS, "tamoxifen": TAMOXIFEN_UM},
                {"days": INHIBITOR_DAYS, "tamoxifen": TAMOXIFEN_UM, "inhibitor": INHIBITOR_UM},
                {"days": off},
            ]
        ),
        "inhibitor after withdrawal": tolsim.Schedule.from_phases(
            [
                {"days": ON_DAYS, "tamoxifen": TAMOXIFEN_UM},
                {"days": INHIBITOR_DAYS, "inhibitor": INHIBITOR_UM},
                {"days": off - INHIBITOR_DAYS},
            ]
        ),
    }


def jittered_parameters(model, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = model.default_params()
    rates = [p.name for p in model.parameters if p.unit == "1/day"]
    return {name: base[name] * rng.uniform(0.75, 1.25, n) for name in rates}


def main(out: Path, samples: int, seed: int, quick: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model = tolsim.models.TwoState()
    params = model.default_params()
    threshold = DETECTION_CELLS
    times = np.arange(HORIZON_DAYS + 1.0)
    schedules = arms()

    started = time.perf_counter()
    combined = tolsim.simulate_arms(model, params, schedules, times)  # withdrawal_day per arm
    days = tolsim.time_to_recurrence(combined, threshold=threshold)  # NaN: no tamoxifen
    runs = {name: combined.sel(arm=name) for name in schedules}
    recurrence = {name: float(days.sel(arm=name)) for name in schedules if name != "control"}
    print(f"single runs: {time.perf_counter() - started:.2f} s (incl. compile or cache load)")
    for name, value in recurrence.items():
        print(f"  {name:28s} recurrence {value:7.1f} days after withdrawal")

    combined["time_to_recurrence"] = days.assign_attrs(threshold_cells=threshold)
    combined.attrs.update(
        title="tolsim: tamoxifen withdrawal and recurrence, four arms",
        experiment="tamoxifen_withdrawal",
        mode="quick" if quick else "full",
    )
    combined.to_netcdf(out / "tamoxifen_withdrawal.nc")

    # parameter uncertainty: one parallel ensemble per treated arm
    table = jittered_parameters(model, samples, seed)
    started = time.perf_counter()
    ensembles = {
        name: tolsim.simulate(model, table, schedules[name], times)
        for name in ("tamoxifen", "tamoxifen + inhibitor", "inhibitor after withdrawal")
    }
    elapsed = time.perf_counter() - started
    print(f"ensembles: {3 * samples} trajectories in {elapsed:.2f} s")
    ensemble_recurrence = {
        name: tolsim.time_to_recurrence(ds, threshold=threshold, withdrawal_day=ON_DAYS)
        for name, ds in ensembles.items()
    }
    # a set already above the threshold at withdrawal progressed on tamoxifen: its
    # time_to_recurrence is 0, and it is no recurrence after withdrawal
    progressed = {name: ds.N.sel(time=ON_DAYS) > threshold for name, ds in ensembles.items()}

    # inhibitor given during the last `days` of the tamoxifen course
    durations = np.arange(0.0, ON_DAYS + 1.0, 7.0)
    sweep = []
    for days in durations:
        phases = [{"days": ON_DAYS - days, "tamoxifen": TAMOXIFEN_UM}] if days < ON_DAYS else []
        if days > 0:
            phases.append({"days": days, "tamoxifen": TAMOXIFEN_UM, "inhibitor": INHIBITOR_UM})
        phases.append({"days": HORIZON_DAYS - ON_DAYS})
        ds = tolsim.simulate(model, params, tolsim.Schedule.from_phases(phases), times)
        sweep.append(
            float(tolsim.time_to_recurrence(ds, threshold=threshold, withdrawal_day=ON_DAYS))
        )
    print(
        "  inhibitor days before withdrawal -> recurrence days: "
        + ", ".join(f"{d:.0f}: {r:.1f}" for d, r in zip(durations, sweep, strict=True))
    )

    summary = xr.Dataset(
        {
            "time_to_recurrence": xr.concat(
                list(ensemble_recurrence.values()), dim=xr.Variable("arm", list(ensembles))
            ),
            "progressed_on_treatment": xr.concat(
                list(progressed.values()), dim=xr.Variable("arm", list(ensembles))
            ).assign_attrs(
                long_name="above the threshold at withdrawal (time_to_recurrence 0): "
                "progression on tamoxifen, not recurrence"
            ),
            "recurrence_by_inhibitor_days": (
                "inhibitor_days",
                sweep,
                {
                    "units": "days",
                    "long_name": "days from withdrawal to the threshold, default parameters, "
                    "inhibitor during the last days of the tamoxifen course",
                },
            ),
            "parameters": ensembles["tamoxifen"]["parameters"],
            "schedule": ("arm", [schedules[name].to_json() for name in ensembles]),
            "withdrawal_day": ("arm", [ON_DAYS] * len(ensembles), {"units": "days"}),
        },
        coords={"inhibitor_days": ("inhibitor_days", durations, {"units": "days"})},
        attrs={
            "experiment": "tamoxifen_withdrawal",
            "mode": "quick" if quick else "full",
            "title": "recurrence times under ±25 % jitter of every rate",
            "seed": seed,
            "threshold_cells": threshold,
            "tolsim_version": tolsim.__version__,
            "model": ensembles["tamoxifen"].attrs["model"],
        },
    )
    summary.to_netcdf(out / "recurrence_ensemble.nc")
    for name, days in ensemble_recurrence.items():
        after = days.values[~progressed[name].values]  # recurrence after withdrawal only
        finite = after[np.isfinite(after)]
        q = np.percentile(finite, [5, 50, 95]) if finite.size else [np.nan] * 3
        print(
            f"  {name:28s} median {q[1]:6.1f} d (90% {q[0]:.1f}-{q[2]:.1f}), "
            f"no recurrence in {1 - finite.size / max(after.size, 1):.1%}, "
            f"progressed on tamoxifen {float(progressed[name].mean()):.1%}"
        )

    figure, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    for name, ds in runs.items():
        plot.burden(ds, axes[0, 0], states=False, label=name, color=COLOURS[name])
        plot.tolerant_fraction(ds, axes[0, 1], label=name, color=COLOURS[name])
    plot.drug_shading(runs["tamoxifen + inhibitor"], axes[0, 0])
    axes[0, 0].axhline(threshold, color="k", lw=0.8, ls=":")
    axes[0, 0].set_title("total cells (shading: tamoxifen, inhibitor of arm 3)")
    axes[0, 0].legend(fontsize=7)
    axes[0, 1].set_title("NF-κB-high tolerant fraction")
    axes[0, 1].legend(fontsize=7)
    for name, days in ensemble_recurrence.items():  # the recurrences after withdrawal
        after = days.where(~progressed[name], drop=True)
        plot.recurrence_times(after, axes[1, 0], label=name, bins=40, color=COLOURS[name])
    axes[1, 0].set_title(f"recurrence under parameter jitter ({samples} sets)")
    axes[1, 0].legend(fontsize=7)
    axes[1, 1].plot(durations, sweep, "o-")
    axes[1, 1].set_xlabel("days of inhibitor before withdrawal")
    axes[1, 1].set_ylabel(f"days from withdrawal to {threshold:.0e} cells")
    axes[1, 1].set_title("NF-κB inhibition during tamoxifen delays recurrence")
    figure.savefig(out / "tamoxifen_withdrawal.png", dpi=120)
    print(
        f"wrote {out / 'tamoxifen_withdrawal.nc'}, {out / 'recurrence_ensemble.nc'}, "
        f"{out / 'tamoxifen_withdrawal.png'}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    parser.add_argument("--samples", type=int, default=2000, help="parameter sets per arm")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the parameter jitter")
    parser.add_argument("--quick", action="store_true", help="200 parameter sets per arm")
    args = parser.parse_args()
    main(args.out, 200 if args.quick else args.samples, args.seed, quick=args.quick)
