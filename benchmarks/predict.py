"""Prediction benchmark: the cost of ``predict``'s Laplace draws (importance sampling).

Scenario: the fit of ``benchmarks/fit.py`` (two-state logistic model, 6 free parameters, 240
measurements; ``starts=10``), then a prediction of recurrence under a schedule the data never
saw (tamoxifen 1 µM for 60 days, withdrawn, 120 days of follow-up), ``draws=500``,
``demographic="none"`` (the mean field only, so the draws are what is timed).

Timed, medians of ``--repeats`` in one process after a warm-up:

- ``predict(uncertainty="laplace")``: Hessian, 2,000 candidates' likelihoods, resampling,
  the 500 draws' solves and summaries;
- its draws alone (``tolsim.predict._laplace_importance``), and one likelihood evaluation;
- ``predict(uncertainty="none")``: the summaries of one solve, the floor.

Also reports the importance sampling's effective sample size, and the draws' central 95%
ranges against the 95% profile-likelihood intervals (``--profiles``: they take ~30 s).

Run: ``python benchmarks/predict.py`` (writes ``benchmarks/results/predict.json``).
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fit as scenario  # noqa: E402  (benchmarks/fit.py: the same fit)

import tolsim  # noqa: E402
from tolsim.predict import _laplace_importance  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "predict.json"
DRAWS = 500
NEW = tolsim.Schedule.from_phases([{"days": 60, "tamoxifen": 1.0}, {"days": 120}])


def median_time(function, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profiles", action="store_true", help="compare with profile CIs")
    args = parser.parse_args()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = tolsim.fit(
            scenario.model(),
            scenario.synthetic_data(),
            scenario.schedules(),
            free=list(scenario.FREE),
            bounds=scenario.BOUNDS,
            noise=tolsim.observe.LogNormal(),
            fixed={"total_cells.sigma": scenario.SIGMA},
            starts=scenario.QUICK_STARTS,
            seed=scenario.SEED,
        )
    options = {"draws": DRAWS, "demographic": "none", "threshold": 1e6, "seed": 1}
    result.predict(NEW, **options)  # warm-up (compile or cache load)
    best = np.log10([result.params[n] for n in result.free])
    nllh_s, _ = median_time(lambda: result.objective.nllh(best), 200)
    laplace_s, laplace_all = median_time(lambda: result.predict(NEW, **options), args.repeats)
    draws_s, _ = median_time(
        lambda: _laplace_importance(result, DRAWS, np.random.default_rng(1)), args.repeats
    )
    none_s, _ = median_time(
        lambda: result.predict(NEW, **{**options, "uncertainty": "none"}), args.repeats
    )
    theta, info = _laplace_importance(result, DRAWS, np.random.default_rng(1))
    prediction = result.predict(NEW, **options)
    out = {
        "date": datetime.datetime.now().isoformat(timespec="minutes"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "tolsim": tolsim.__version__,
        "draws": DRAWS,
        "candidates": info["candidates"],
        "effective_sample_size": info["effective_sample_size"],
        "nllh_evaluation_ms": 1e3 * nllh_s,
        "predict_laplace_s": laplace_s,
        "predict_laplace_all_s": laplace_all,
        "laplace_draws_s": draws_s,
        "predict_none_s": none_s,
        "interval_days": prediction.time_to_recurrence_interval.values.tolist(),
    }
    if args.profiles:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result.profile(level=0.95)
        out["ranges"] = {
            name: {
                "draws_95": (10 ** np.quantile(theta[:, k], [0.025, 0.975])).tolist(),
                "profile_95": list(result.ci[name]),
            }
            for k, name in enumerate(result.free)
        }
    print(json.dumps(out, indent=1))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
