"""Schedule-design benchmark: how many candidate schedules per second ``optimize_schedule``
scores, against a plain ``simulate`` + ``time_to_recurrence`` loop in the same run.

Scenario: the two-state logistic model with default parameters, the template
``tolsim.design.inhibitor_course(tamoxifen_days=120, follow_up_days=240)`` (360 days), a
Sobol sample of inhibitor start day (0-300), course length (0-120 days) and dose
(0.5-10 µM); objective recurrence-free days after withdrawal (threshold 1e6 cells), burden
inhibitor days with a 56-day budget. Every candidate is its own schedule, so each is one
kernel call.

Timed after a warm-up whose time (numba compile or cache load) is reported separately:
``optimize_schedule`` over ``--candidates`` points (median of ``--repeats``), and the
baseline — the same candidates' first ``--baseline`` points through the public
``simulate(...)`` + ``time_to_recurrence`` one schedule at a time, as a user would write it
(daily output). Their recurrence days are compared (they must agree: same kernel, same
tolerances; the baseline's output grid is daily plus breakpoints, like the optimiser's).

Run::

    python benchmarks/optimize.py                       # 2**17 = 131,072 candidates
    python benchmarks/optimize.py --candidates 16384 --repeats 1

Prints a markdown table and writes ``benchmarks/results/optimize.json``.
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # no spinning BLAS threads stealing the cores

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

import tolsim  # noqa: E402
from tolsim.design import inhibitor_course  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "optimize.json"
THRESHOLD = 1e6
SPACE = {
    "inhibitor_start_day": (0.0, 300.0),
    "inhibitor_days": (0.0, 120.0),
    "inhibitor_um": (0.5, 10.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=2**17, help="a power of two")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", type=int, default=300, help="candidates in the loop")
    args = parser.parse_args()

    model = tolsim.models.TwoState()
    params = model.default_params()
    template = inhibitor_course(tamoxifen_days=120.0, follow_up_days=240.0)
    options = dict(budget=56.0, threshold=THRESHOLD, seed=1)

    start = time.perf_counter()
    optimize = tolsim.optimize_schedule
    optimize(model, params, template, SPACE, candidates=8, **options)
    warm_up_s = time.perf_counter() - start

    timings = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        result = optimize(model, params, template, SPACE, candidates=args.candidates, **options)
        timings.append(time.perf_counter() - start)
    optimize_s = statistics.median(timings)

    # the baseline: the public API, one schedule at a time
    n_base = min(args.baseline, args.candidates)
    start = time.perf_counter()
    baseline_days = []
    for i in range(n_base):
        slots = {name: float(result[name][i]) for name in SPACE}
        schedule = template(**slots)
        times = np.union1d(np.arange(0.0, schedule.duration_days), schedule.breakpoints())
        ds = tolsim.simulate(model, params, schedule, times)
        days = float(tolsim.time_to_recurrence(ds, threshold=THRESHOLD))
        baseline_days.append(min(days, 240.0))
    baseline_s = time.perf_counter() - start
    difference = np.max(np.abs(np.array(baseline_days) - result.benefit.values[:n_base]))

    rate = args.candidates / optimize_s
    base_rate = n_base / baseline_s
    best = int(result.best)
    record = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.node()} ({os.cpu_count()} CPUs), numba threads "
        f"{numba.get_num_threads()}",
        "tolsim": tolsim.__version__,
        "candidates": args.candidates,
        "warm_up_s": warm_up_s,
        "optimize_s_median": optimize_s,
        "optimize_s_all": timings,
        "candidates_per_s": rate,
        "baseline_candidates": n_base,
        "baseline_s": baseline_s,
        "baseline_candidates_per_s": base_rate,
        "speed_up": rate / base_rate,
        "max_abs_difference_days": float(difference),
        "best": {name: float(result[name][best]) for name in SPACE},
        "best_recurrence_free_days": float(result.benefit[best]),
        "front_size": int(result.on_front.sum()),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print("| what | candidates | time (s) | candidates/s |\n| --- | --- | --- | --- |")
    print(f"| optimize_schedule | {args.candidates} | {optimize_s:.2f} | {rate:,.0f} |")
    print(
        f"| simulate + time_to_recurrence loop | {n_base} | {baseline_s:.2f} | {base_rate:,.0f} |"
    )
    print(
        f"\nspeed-up {rate / base_rate:.1f}x; warm-up (compile or cache load) {warm_up_s:.1f} s; "
        f"max |difference| of recurrence-free days {difference:.2e}; best {record['best']} -> "
        f"{record['best_recurrence_free_days']:.1f} days; {record['front_size']} on the front"
    )


if __name__ == "__main__":
    main()
