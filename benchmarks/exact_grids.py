"""The exact (matrix exponential) path on output grids whose spacings differ in the last bits.

``np.linspace(0, 360, 1001)`` and ``np.arange(0, 360, 0.1)`` have spacings that differ by a few
ulps from one output to the next. The exact path computes one propagator per output spacing;
before it reused a propagator for spacings within ``SPACING_RTOL`` of each other (with a
first-order correction), such grids cost one matrix exponential per output. This script times
``simulate(..., method="exact")`` on such grids against a grid of the same size whose spacing
is exactly representable (one propagator per piece), in the same process, median of repeats.

Run::

    python benchmarks/exact_grids.py

Prints a markdown table; the ratio near 1 means the grids cost the same.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import tolsim  # noqa: E402

MODEL = tolsim.models.TwoState(crowding="none")
SCHEDULE = tolsim.Schedule.from_phases([{"days": 120, "tamoxifen": 1.0}, {"days": 240}])
# pairs: a grid with ulp-level spacing differences, and an exactly spaced grid of the same size
GRIDS = (
    ("np.linspace(0, 360, 1001)", np.linspace(0, 360, 1001), "np.arange(1001) * 0.3125", 0.3125),
    ("np.arange(0, 360, 0.1)", np.arange(0, 360, 0.1), "np.arange(3600) * 0.0625", 0.0625),
)


def timed(call, repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(1)
    table = {"mu_E": rng.uniform(0.0, 0.01, args.samples)}

    def run(times):
        return lambda: tolsim.simulate(MODEL, table, SCHEDULE, times, method="exact")

    print(f"exact path, TwoState(crowding='none'), {args.samples} samples, median of "
          f"{args.repeats}\n")  # fmt: skip
    print("| grid | distinct spacings | ns / output | exactly spaced grid | ns / output | ratio |")
    print("|---|---:|---:|---|---:|---:|")
    for name, grid, other_name, spacing in GRIDS:
        other = np.arange(grid.size) * spacing
        other = other[other <= SCHEDULE.duration_days]
        per_output = args.samples * grid.size
        uneven = timed(run(grid), args.repeats) / per_output
        even = timed(run(other), args.repeats) / (args.samples * other.size)
        print(
            f"| `{name}` | {np.unique(np.diff(grid)).size} | {uneven * 1e9:.0f} | "
            f"`{other_name}` | {even * 1e9:.0f} | {uneven / even:.2f} |"
        )


if __name__ == "__main__":
    main()
