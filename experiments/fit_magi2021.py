"""Fit the two-state model to MCF-7 growth under tamoxifen (Magi et al. 2021): selection or
induction of tolerance?

Data: weekly fold expansion N(week w) / N(week w - 1) at passaging, control and tamoxifen arms,
3-4 independent runs (vendored in ``src/tolsim/data/magi2021_mcf7_tamoxifen``; observable
``fold_expansion``, a ratio of cell numbers a week apart). Cells are passaged weekly and stay
sub-confluent, so the model is the linear ``TwoState(crowding="none")``; tamoxifen at 1 µM
(the files do not state the dose). The model has no delay between drug and effect, so the
tamoxifen arm's weeks 1-2 (the onset transient, fold 1.35-2.7) are left out; the control arm
keeps weeks 1-10.

Both arms are fitted jointly, sharing every parameter (``lambda_S`` from the control arm's
growth, the drug's effects from the tamoxifen arm), with log-normal noise of unknown size:

* **selection**: tolerant cells pre-exist (``T0`` free) and the drug does not induce them
  (``mu_E = 0``);
* **induction**: the same plus drug-induced switching ``mu_E`` free.

The likelihood-ratio test and AIC/BIC compare them; profile likelihoods give intervals and
say which parameters these data determine.

Writes ``<out>/fit_magi2021.nc`` (both fits' predictions, parameters and profile-likelihood
intervals, the induction fit's profiles, the likelihood-ratio test) and
``<out>/fit_magi2021.png``. Run: ``python experiments/fit_magi2021.py``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

import tolsim  # noqa: E402
from tolsim.fit import NonConvergenceWarning  # noqa: E402
from tolsim.observe import LogNormal  # noqa: E402

TAMOXIFEN_UM = 1.0
WEEKS = 10
FIRST_TAMOXIFEN_WEEK = 3  # weeks 1-2: drug-onset transient the model does not describe
SHARED_FREE = ["lambda_S", "eps_S", "eps_T", "T0", "fold_expansion.sigma"]


def measurements() -> pd.DataFrame:
    """The vendored weekly folds as a tidy measurement table."""
    data = tolsim.datasets.magi2021_weekly_fold()
    rows = []
    for condition in ("control", "tamoxifen"):
        first = 1 if condition == "control" else FIRST_TAMOXIFEN_WEEK
        for run in data.run.values:
            for week in range(first, WEEKS + 1):
                value = float(data.fold.sel(condition=condition, run=run, week=week))
                if np.isfinite(value):
                    rows.append(
                        {
                            "condition": condition,
                            "observable": "fold_expansion",
                            "time": 7.0 * week,
                            "value": value,
                            "replicate": str(run),
                        }
                    )
    return pd.DataFrame(rows)


def schedules() -> dict[str, tolsim.Schedule]:
    days = 7.0 * WEEKS
    return {
        "control": tolsim.Schedule.from_phases([{"days": days}]),
        "tamoxifen": tolsim.Schedule.from_phases([{"days": days, "tamoxifen": TAMOXIFEN_UM}]),
    }


def main(out: Path, starts: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model = tolsim.models.TwoState(crowding="none")
    table = measurements()
    common = dict(noise=LogNormal(), starts=starts, seed=2026)
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NonConvergenceWarning)
        selection = tolsim.fit(
            model, table, schedules(), free=SHARED_FREE, fixed={"mu_E": 0.0}, **common
        )
        induction = tolsim.fit(
            model,
            table,
            schedules(),
            free=[*SHARED_FREE, "mu_E"],
            bounds={"mu_E": (1e-6, 1.0)},
            **common,
        )
        profiles = induction.profile()
        selection.profile()
    elapsed = time.perf_counter() - started
    test = tolsim.likelihood_ratio_test(selection, induction)

    print(f"{len(table)} weekly folds, {elapsed:.1f} s for both fits and all profiles")
    for name, result in (("selection (mu_E = 0)", selection), ("induction", induction)):
        print(f"\n{name}:\n{result.summary()}")
    print(
        f"\nlikelihood ratio {test['statistic']:.2f} (df {test['df']}), p = {test['p_value']:.3g}"
        f" ({test['null_distribution'].split(':')[0]}; chi-square {test['p_value_chi2']:.3g});"
        f" AIC {test['aic'][0]:.1f} vs {test['aic'][1]:.1f}, BIC {test['bic'][0]:.1f} vs "
        f"{test['bic'][1]:.1f} (selection vs induction)"
    )
    for warning in caught:
        print(f"warning: {warning.message}")

    result = xr.merge(
        [
            induction.predictions.rename({"predicted": "predicted_induction"}),
            selection.predictions[["predicted"]].rename({"predicted": "predicted_selection"}),
            profiles.rename({n: f"profile_{n}" for n in profiles.data_vars}),
        ],
        combine_attrs="drop",
    )
    result.attrs.update(
        title="Two-state model fitted to Magi et al. 2021 MCF-7 weekly folds",
        model=json.dumps(model.describe()),
        selection_params=json.dumps(selection.params),
        induction_params=json.dumps(induction.params),
        induction_ci=json.dumps({k: list(v) for k, v in induction.ci.items()}),
        selection_ci=json.dumps({k: list(v) for k, v in selection.ci.items()}),
        likelihood_ratio_test=json.dumps(test),
        tamoxifen_um=TAMOXIFEN_UM,
        schedules=json.dumps({name: s.to_dict() for name, s in schedules().items()}),
        starts=starts,
        tolsim_version=tolsim.__version__,
    )
    result["time"].attrs.update(units="days", long_name="day of the measurement")
    for name in ("observed", "predicted_induction", "predicted_selection"):
        if name in result:
            result[name].attrs.update(units="1", long_name=f"weekly fold expansion ({name})")
    result.to_netcdf(out / "fit_magi2021.nc")
    figure(table, selection, induction, out / "fit_magi2021.png")
    print(f"wrote {out / 'fit_magi2021.nc'} and {out / 'fit_magi2021.png'}")


def figure(table, selection, induction, path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    ax = axes[0]
    for condition, colour in (("control", "tab:grey"), ("tamoxifen", "tab:blue")):
        rows = table["condition"] == condition
        ax.plot(
            table.loc[rows, "time"] / 7,
            table.loc[rows, "value"],
            "o",
            color=colour,
            alpha=0.5,
            label=f"{condition} (data)",
        )
        for fit, style in ((induction, "-"), (selection, "--")):
            p = fit.predictions
            mask = p.condition.values == condition
            order = np.argsort(p.time.values[mask])
            ax.plot(
                p.time.values[mask][order] / 7,
                p.predicted.values[mask][order],
                style,
                color=colour,
            )
    ax.set(
        xlabel="week",
        ylabel="weekly fold expansion",
        yscale="log",
        title="fit: induction (solid), selection (dashed)",
    )
    ax.legend(fontsize=8)
    for ax, name in zip(axes[1:], ("eps_T", "mu_E"), strict=True):
        prof = induction.profiles
        values = prof.log10_value.sel(parameter=name).values
        curve = prof.nllh.sel(parameter=name).values - induction.nllh
        ok = np.isfinite(values)
        order = np.argsort(values[ok])
        ax.plot(10 ** values[ok][order], 2 * curve[ok][order], "o-")
        ax.axhline(2 * prof.attrs["threshold_nllh"], color="k", ls=":")
        ax.set(xscale="log", xlabel=name, ylabel="2 Δ nllh", title=f"profile of {name}")
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="4 starts per fit (a smoke run)")
    args = parser.parse_args()
    main(args.out, 4 if args.quick else args.starts)
