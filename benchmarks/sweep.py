"""Sweep benchmark: a metrics-only sweep on local Dask workers against the batched kernel.

Scenario (issue 5): two-state logistic model, 120 days of tamoxifen (1 µM) then 240 days off,
a Latin hypercube over ``kappa_T``, ``mu_E`` (log) and ``lambda_T``; metrics only (time to
recurrence, burden and tolerant fraction at withdrawal, nadir). Reported:

- samples per second of ``tolsim.sweep`` on 2 local workers (one thread each) and on 1;
- the same samples through ``tolsim.sweep(..., store=None)`` in this process (the same chunks,
  kernel and metric reductions, no Dask, no Zarr, 2 numba threads): Dask + Zarr overhead =
  sweep time / in-process time - 1 at equal parallelism;
- and through the bare kernel call (``solve_batch`` on the same chunks, with only the totals
  and the recurrence days, not the other metrics): the cost of the metrics and of Dask + Zarr
  together = sweep time / direct time - 1;
- peak resident memory of the workers and of this process (``ru_maxrss``) at two sample
  counts, to show it does not grow with the number of samples.

Run: ``python benchmarks/sweep.py`` (1e6 samples, a few minutes) or ``--samples 100000``.
Writes ``benchmarks/results/sweep.json``.
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

import tolsim  # noqa: E402
from tolsim.design import lhs  # noqa: E402
from tolsim.recurrence import metric_grid  # noqa: E402

MODEL = tolsim.models.TwoState()
SCHEDULE = tolsim.Schedule.from_phases([{"days": 120, "tamoxifen": 1.0}, {"days": 240}])
CHUNK = 20_000


def design(n):
    return lhs(n, seed=2026, kappa_T=(0.0, 0.6), mu_E=(1e-5, 1e-2, "log"), lambda_T=(0.1, 0.3))


def direct(d):
    """The same chunks through the kernel in this process (numba threads), no Dask/Zarr: the
    kernel call and reductions the sweep's tasks make (``solve_batch``, which picks the lane
    kernel, with the totals computed in it)."""
    from tolsim.kernels.events import recurrence_days
    from tolsim.recurrence import derivative_jumps
    from tolsim.simulate import solve_batch

    columns = {k: np.asarray(v) for k, v in d.columns.items()}
    grid = metric_grid(SCHEDULE, None)
    compiled = SCHEDULE.compile(MODEL.drugs)
    start = time.perf_counter()
    for lo in range(0, len(d), CHUNK):
        table = {k: v[lo : lo + CHUNK] for k, v in columns.items()}
        packed = MODEL.pack_table(table)
        n = packed.shape[0]
        _, out_dn, _, total, _ = solve_batch(
            MODEL, packed, compiled, grid, 1e-6, 1e-6, 100_000, 1, totals=True
        )
        jumps = derivative_jumps(compiled, grid)
        recurrence_days(grid, total, out_dn, jumps, 120.0, np.full(n, np.nan))
        total.min(axis=1)
    return time.perf_counter() - start


def in_process(d):
    """``tolsim.sweep(store=None)``: the sweep's own chunks, kernel and metrics in this
    process (numba threads), without Dask or Zarr."""
    start = time.perf_counter()
    tolsim.sweep(MODEL, d, SCHEDULE, store=None, chunk_size=CHUNK)
    return time.perf_counter() - start


def swept(d, workers, store):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as cluster:
        with Client(cluster) as client:
            # warm the workers (kernel cache load) outside the timing
            warm = design(8)
            tolsim.sweep(MODEL, warm, SCHEDULE, store=store + ".warm", client=client, chunk_size=8)
            start = time.perf_counter()
            tolsim.sweep(MODEL, d, SCHEDULE, store=store, client=client, chunk_size=CHUNK)
            elapsed = time.perf_counter() - start
            rss = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return elapsed, max(rss.values()) / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.samples
    folder = tempfile.mkdtemp(prefix="tolsim-sweep-bench-")
    try:
        d = design(n)
        direct(design(64))  # compile / cache load
        t_direct = min(direct(d) for _ in range(2))
        t_memory = min(in_process(d) for _ in range(2))
        t2, rss2 = swept(d, 2, f"{folder}/two.zarr")
        t1, rss1 = swept(d, 1, f"{folder}/one.zarr")
        small = design(n // 10)
        t2_small, rss2_small = swept(small, 2, f"{folder}/small.zarr")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result = {
        "samples": n,
        "chunk_size": CHUNK,
        "direct_kernel_s": t_direct,
        "in_process_sweep_s": t_memory,
        "sweep_2_workers_s": t2,
        "sweep_1_worker_s": t1,
        "samples_per_s_2_workers": n / t2,
        "overhead_vs_direct": t2 / t_direct - 1,
        "dask_zarr_overhead_vs_in_process": t2 / t_memory - 1,
        "speedup_2_vs_1_worker": t1 / t2,
        "worker_peak_rss_mib": {str(n): rss2, str(n // 10): rss2_small},
        "numba_threads_direct": numba.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "versions": {"tolsim": tolsim.__version__, "numba": numba.__version__},
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).resolve().parent / "results" / "sweep.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
