"""Fitting benchmark: a multi-start fit and every profile likelihood, on the issue's scenario.

Scenario: the two-state model with logistic crowding, 6 free parameters, fitted to synthetic
total cell counts from known parameters (seed 2026): 3 conditions x 20 measurement days x 4
replicates, log-normal noise with sigma 0.1 (fixed, so the fit uses least squares). Conditions
over 60 days: no drug; tamoxifen 1 µM; tamoxifen 1 µM with an NF-κB inhibitor (5 µM) added
from day 40, once the tolerant cells have grown.

Free parameters: ``lambda_S, eps_S, lambda_T, kappa_T, T0, K``; every other parameter keeps its
default (the truth). Two choices make all six identifiable (every profile closes):

* the inhibitor is added at day 40, not from day 0: given with tamoxifen from the start, it
  only kills a tolerant population that is still ~0.1% of the cells, and ``kappa_T`` stays
  undetermined;
* ``K`` (logistic crowding, seen as the control's plateau) replaces drug-induced switching
  ``mu_E``: with one tamoxifen schedule ``mu_E`` and ``T0`` enter the data only as the number
  of tolerant cells the drug starts from, and neither profile closes.

Timed, after a warm-up whose time (numba compile or cache load) is reported separately:
``tolsim.fit(..., starts=50)`` and ``result.profile()`` of all six parameters (medians of 3);
the model evaluations each used; the starts that reached the best optimum; the estimates
against the truth with their 95% profile intervals.

Run::

    python benchmarks/fit.py                # 50 starts, fit and profiles x 3 (~25 s)
    python benchmarks/fit.py --quick        # 10 starts, fit x 1 (~5 s)
    python benchmarks/fit.py --cprofile     # also: where one fit's time goes (cProfile)
    python benchmarks/fit.py --wait-quiet 120   # wait for an idle CPU before each timing

Prints markdown tables and writes the numbers to ``benchmarks/results/fit.json``.
"""

from __future__ import annotations

import os

# Single-threaded BLAS before numpy is imported: OpenBLAS's worker threads spin while waiting
# for work and steal the (few) cores from numba's threads. Nothing timed here needs a threaded
# BLAS (least_squares' small SVDs are faster single-threaded).
for _name in (
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import cProfile  # noqa: E402
import datetime  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy  # noqa: E402

import tolsim  # noqa: E402
from tolsim.fit import NonConvergenceWarning, fit  # noqa: E402
from tolsim.observe import LogNormal  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "fit.json"

CROWDING = "logistic"
DURATION_DAYS = 60.0
DAYS = np.linspace(3.0, DURATION_DAYS, 20)  # every 3 days
REPLICATES = 4
SIGMA = 0.1  # log-normal noise of cell counts (sd of log N), fixed in the fit
SEED = 2026  # data; the fit's Sobol starts use it too
TAMOXIFEN_UM = 1.0
INHIBITOR_UM = 5.0
INHIBITOR_FROM_DAY = 40.0
STARTS = 50
QUICK_STARTS = 10
FREE = ("lambda_S", "eps_S", "lambda_T", "kappa_T", "T0", "K")
# Search box (log10 scale inside it): about two decades around each default, a plausible prior
# range; tolsim's default box (1e-3 x default up to the admissible maximum, e.g. 10/day) is
# wider.
BOUNDS = {
    "lambda_S": (0.01, 2.0),
    "eps_S": (0.01, 1.0),
    "lambda_T": (0.01, 2.0),
    "kappa_T": (0.003, 10.0),
    "T0": (1.0, 1e4),
    "K": (1e5, 1e10),
}
TARGETS_S = {"fit": 20.0, "profiles": 60.0}  # on 2 cores
TARGET_CORES = 2


# --------------------------------------------------------------------------------------------
# the scenario


def model():
    return tolsim.models.TwoState(crowding=CROWDING)


def schedules() -> dict[str, tolsim.Schedule]:
    return {
        "control": tolsim.Schedule.from_phases([{"days": DURATION_DAYS}]),
        "tamoxifen": tolsim.Schedule.from_phases(
            [{"days": DURATION_DAYS, "tamoxifen": TAMOXIFEN_UM}]
        ),
        "tamoxifen_then_inhibitor": tolsim.Schedule.from_phases(
            [
                {"days": INHIBITOR_FROM_DAY, "tamoxifen": TAMOXIFEN_UM},
                {
                    "days": DURATION_DAYS - INHIBITOR_FROM_DAY,
                    "tamoxifen": TAMOXIFEN_UM,
                    "inhibitor": INHIBITOR_UM,
                },
            ]
        ),
    }


def truth() -> dict[str, float]:
    defaults = model().default_params()
    return {name: float(defaults[name]) for name in FREE}


def synthetic_data() -> pd.DataFrame:
    """Tidy table of total cells with log-normal noise, simulated at the default parameters."""
    m = model()
    rng = np.random.default_rng(SEED)
    rows = []
    for condition, schedule in schedules().items():
        ds = tolsim.simulate(m, m.default_params(), schedule, DAYS)
        for r in range(REPLICATES):
            noisy = ds.N.values * np.exp(SIGMA * rng.standard_normal(DAYS.size))
            rows += [
                {
                    "condition": condition,
                    "observable": "total_cells",
                    "time": float(t),
                    "value": float(v),
                    "replicate": str(r),
                }
                for t, v in zip(DAYS, noisy, strict=True)
            ]
    return pd.DataFrame(rows)


def run_fit(data: pd.DataFrame, starts: int, workers: int | None):
    return fit(
        model(),
        data,
        schedules(),
        free=list(FREE),
        noise=LogNormal(),
        fixed={"total_cells.sigma": SIGMA},
        bounds=BOUNDS,
        starts=starts,
        seed=SEED,
        workers=workers,
    )


# --------------------------------------------------------------------------------------------
# helpers


class OtherLoad:
    """CPU used by other processes while a section runs, in cores (Linux ``/proc/stat``: busy
    time of all CPUs minus this process's CPU time); None for sections under 1 s."""

    def __enter__(self):
        self.start = (self._busy(), self._own(), time.perf_counter())
        return self

    def __exit__(self, *exc):
        busy, own, wall = self._busy(), self._own(), time.perf_counter()
        self.cores = None  # also for sections too short for /proc/stat's 10 ms ticks
        if busy is not None and self.start[0] is not None and wall - self.start[2] >= 1.0:
            other = (busy - self.start[0]) - (own - self.start[1])
            self.cores = max(0.0, other) / (wall - self.start[2])
        return False

    @staticmethod
    def _busy() -> float | None:
        try:
            with open("/proc/stat") as fh:
                fields = [int(v) for v in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system


def wait_quiet(limit_s: float, window_s: float = 5.0, cores: float = 0.2) -> dict[str, float]:
    """Wait until other processes use < ``cores`` over a ``window_s`` window (at most
    ``limit_s``); return how long that took and the last window's figure."""
    start = time.perf_counter()
    while True:
        with OtherLoad() as load:
            time.sleep(window_s)
        waited = time.perf_counter() - start
        if load.cores is None or load.cores < cores or waited >= limit_s:
            cores_text = "not measured" if load.cores is None else f"{load.cores:.2f} cores"
            print(f"  other processes: {cores_text} (waited {waited:.0f} s)", flush=True)
            return {"waited_s": waited, "other_processes_cores": load.cores}


def machine_facts() -> dict[str, object]:
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel function has run yet
        layer = None
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": layer,
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "numba": numba.__version__,
        "tolsim": tolsim.__version__,
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }


def n_conditions() -> int:
    return len(schedules())


# --------------------------------------------------------------------------------------------
# the parts of the benchmark


def warm_up(workers: int | None) -> tuple[dict[str, float], pd.DataFrame]:
    """Simulate the data twice and run a one-start fit twice: the first simulation loads (or
    compiles) the ODE kernels, which the fit then shares; the second calls are warm."""
    start = time.perf_counter()
    data = synthetic_data()
    first_data_s = time.perf_counter() - start
    start = time.perf_counter()
    again = synthetic_data()
    warm_data_s = time.perf_counter() - start
    assert again.equals(data)
    start = time.perf_counter()
    run_fit(data, 1, workers)
    first_fit_s = time.perf_counter() - start
    start = time.perf_counter()
    run_fit(data, 1, workers)
    warm_fit_s = time.perf_counter() - start
    facts = {
        "first_data_simulation_s": first_data_s,
        "warm_data_simulation_s": warm_data_s,
        "first_one_start_fit_s": first_fit_s,
        "warm_one_start_fit_s": warm_fit_s,
        "compile_or_cache_load_s": max(first_data_s - warm_data_s, 0.0)
        + max(first_fit_s - warm_fit_s, 0.0),
    }
    return facts, data


def time_fits(data: pd.DataFrame, args) -> tuple[dict[str, object], object]:
    """``fit(starts=args.starts)`` ``args.repeats`` times: median wall time and evaluations."""
    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet)
    runs, result = [], None
    for r in range(args.repeats):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NonConvergenceWarning)
            with OtherLoad() as load:
                start = time.perf_counter()
                result = run_fit(data, args.starts, args.workers)
                seconds = time.perf_counter() - start
        kernel_calls = int(result.objective.evaluations)
        nllh = result.starts.nllh.values
        runs.append(
            {
                "wall_s": seconds,
                "kernel_calls": kernel_calls,
                "likelihood_evaluations": kernel_calls / n_conditions(),
                "optimizer_nfev_sum": int(result.starts.n_evaluations.values.sum()),
                "starts_reaching_best": int(np.sum(nllh <= nllh.min() + 0.1)),
                "starts_reporting_success": int(result.starts.converged.values.sum()),
                "best_nllh": float(result.nllh),
                "converged": bool(result.converged),
                "warnings": [str(w.message) for w in caught],
                "other_processes_cores": load.cores,
            }
        )
        print(
            f"  fit {r + 1}/{args.repeats}: {seconds:.2f} s, {kernel_calls:,} kernel calls, "
            f"best nllh {result.nllh:.4f}",
            flush=True,
        )
    theta_truth = np.log10([truth()[n] for n in FREE])
    before = result.objective.evaluations
    nllh_truth = float(result.objective.nllh(theta_truth))
    result.objective.evaluations = before  # not part of the fit's count
    last = runs[-1]
    summary = {
        "starts": args.starts,
        "repeats": args.repeats,
        "workers": args.workers if args.workers is not None else numba.get_num_threads(),
        "method": result.method,
        "wall_s_median": statistics.median(r["wall_s"] for r in runs),
        "wall_s_all": [r["wall_s"] for r in runs],
        "kernel_calls": last["kernel_calls"],
        "likelihood_evaluations": last["likelihood_evaluations"],
        "optimizer_nfev_sum": last["optimizer_nfev_sum"],
        "starts_reaching_best": last["starts_reaching_best"],
        "starts_reporting_success": last["starts_reporting_success"],
        "best_nllh": last["best_nllh"],
        "nllh_at_truth": nllh_truth,
        "converged": last["converged"],
        "runs": runs,
    }
    return summary, result


def time_profiles(result, args) -> dict[str, object]:
    """``result.profile()`` of every free parameter ``args.profile_repeats`` times."""
    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet)
    runs = []
    for r in range(args.profile_repeats):
        before = result.objective.evaluations
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NonConvergenceWarning)
            with OtherLoad() as load:
                start = time.perf_counter()
                profiles = result.profile()
                seconds = time.perf_counter() - start
        kernel_calls = int(result.objective.evaluations - before)
        runs.append(
            {
                "wall_s": seconds,
                "kernel_calls": kernel_calls,
                "likelihood_evaluations": kernel_calls / n_conditions(),
                "points_per_parameter": {
                    name: int(np.isfinite(profiles.nllh.sel(parameter=name).values).sum())
                    for name in FREE
                },
                "warnings": [str(w.message) for w in caught],
                "other_processes_cores": load.cores,
            }
        )
        print(
            f"  profiles {r + 1}/{args.profile_repeats}: {seconds:.2f} s, "
            f"{kernel_calls:,} kernel calls",
            flush=True,
        )
    last = runs[-1]
    return {
        "repeats": args.profile_repeats,
        "level": float(result.profiles.attrs["level"]),
        "wall_s_median": statistics.median(r["wall_s"] for r in runs),
        "wall_s_all": [r["wall_s"] for r in runs],
        "kernel_calls": last["kernel_calls"],
        "likelihood_evaluations": last["likelihood_evaluations"],
        "points_per_parameter": last["points_per_parameter"],
        "all_identifiable": all(bool(result.identifiable[n]) for n in FREE),
        "warnings": last["warnings"],
        "runs": runs,
    }


def recovered(result) -> list[dict[str, object]]:
    rows = []
    for name, true_value in truth().items():
        estimate = float(result.params[name])
        low, high = (float(v) for v in result.ci[name])
        rows.append(
            {
                "parameter": name,
                "truth": true_value,
                "estimate": estimate,
                "relative_error": estimate / true_value - 1.0,
                "ci_low": low,
                "ci_high": high,
                "truth_in_ci": bool(low <= true_value <= high),
                "identifiable": bool(result.identifiable[name]),
                "bounds": list(BOUNDS[name]),
            }
        )
    return rows


def nllh_cost(result, repeats: int = 200) -> dict[str, object]:
    """One likelihood evaluation (all conditions) at the best fit, on the main thread: median
    of ``repeats`` calls with numba's default thread count and with 1 thread (each condition's
    kernel call is a parallel region over one parameter set)."""
    obj = result.objective
    theta = np.log10([result.params[n] for n in FREE])
    before = obj.evaluations
    default_threads = numba.get_num_threads()
    out: dict[str, object] = {"repeats": repeats}
    for threads in sorted({default_threads, 1}, reverse=True):
        numba.set_num_threads(threads)  # this thread only
        seconds = []
        try:
            with OtherLoad() as load:
                for _ in range(repeats):
                    start = time.perf_counter()
                    obj.nllh(theta)
                    seconds.append(time.perf_counter() - start)
        finally:
            numba.set_num_threads(default_threads)
        out[f"median_s_numba_threads_{threads}"] = statistics.median(seconds)
        out[f"other_processes_cores_numba_threads_{threads}"] = load.cores
    out["median_s"] = out[f"median_s_numba_threads_{default_threads}"]
    obj.evaluations = before
    return out


class _SerialExecutor:
    """Stands in for ``tolsim.fit``'s thread pool under cProfile, so that every start runs on
    the profiled (main) thread."""

    def __init__(self, max_workers=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, func, *iterables):
        return list(map(func, *iterables))


def cprofile_fit(data: pd.DataFrame, args, top: int = 15) -> dict[str, object]:
    """cProfile of one fit, its starts run one after another on the main thread (cProfile sees
    one thread), and of one profile (``T0``)."""
    fit_module = sys.modules["tolsim.fit"]  # the module (``tolsim.fit`` is the function)
    out = {}
    pool = fit_module.ThreadPoolExecutor
    fit_module.ThreadPoolExecutor = _SerialExecutor
    try:
        profiler = cProfile.Profile()
        profiler.enable()
        result = run_fit(data, args.starts, 1)
        profiler.disable()
    finally:
        fit_module.ThreadPoolExecutor = pool
    out["fit_serial"] = _top(profiler, top)
    profiler = cProfile.Profile()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonConvergenceWarning)
        profiler.enable()
        result.profile(["T0"])
        profiler.disable()
    out["profile_T0"] = _top(profiler, top)
    return out


def _top(profiler: cProfile.Profile, top: int) -> dict[str, object]:
    stats = pstats.Stats(profiler, stream=io.StringIO())
    total = stats.total_tt
    rows = []
    for (path, line, func), (_cc, calls, tottime, cumtime, _) in sorted(
        stats.stats.items(), key=lambda item: item[1][2], reverse=True
    )[:top]:
        rows.append(
            {
                "function": f"{Path(path).name}:{line}({func})",
                "calls": calls,
                "tottime_s": tottime,
                "cumtime_s": cumtime,
            }
        )
    return {"total_s": total, "top_by_tottime": rows}


# --------------------------------------------------------------------------------------------
# report


def report(results: dict[str, object]) -> str:
    facts = results["machine"]
    sc = results["scenario"]
    wu = results["warm_up"]
    ft = results["fit"]
    lines = [
        "## Fit: two-state logistic model, 6 free parameters, 3 conditions x 20 days x 4 "
        "replicates",
        "",
        f"Conditions over {sc['duration_days']:g} days: "
        + "; ".join(f"{k} ({v})" for k, v in sc["conditions"].items())
        + f". Total cells at days {sc['days'][0]:g}, {sc['days'][1]:g}, ..., "
        f"{sc['days'][-1]:g}, log-normal noise sigma {sc['sigma']:g} (fixed), data seed "
        f"{sc['seed']}. Free: {', '.join(sc['free'])} (log10 scale within the bounds below); "
        f"{ft['method']}, {ft['workers']} worker threads.",
        "",
        f"Machine: {facts['cpu_count']} CPUs, numba {facts['numba']} with "
        f"{facts['numba_threads']} threads ({facts['numba_threading_layer']}), numpy "
        f"{facts['numpy']}, scipy {facts['scipy']}, Python {facts['python']}, {facts['date']}, "
        f"load average at start {facts['load_average_1_5_15'][0]:.2f}.",
        "",
        "| step | wall time (s) | kernel calls | likelihood evaluations | target (2 cores) |",
        "|---|---:|---:|---:|---:|",
        f"| warm-up: simulate the data, first time (kernel compile or cache load) | "
        f"{wu['first_data_simulation_s']:.2f} | | | |",
        f"| warm-up: simulate the data again | {wu['warm_data_simulation_s']:.2f} | | | |",
        f"| warm-up: 1-start fit, first / second | {wu['first_one_start_fit_s']:.2f} / "
        f"{wu['warm_one_start_fit_s']:.2f} | | | |",
        f"| fit, {ft['starts']} starts (median of {ft['repeats']}) | {ft['wall_s_median']:.2f} | "
        f"{ft['kernel_calls']:,} | {ft['likelihood_evaluations']:,.0f} | "
        f"< {results['targets_s']['fit']:g} s |",
    ]
    pr = results.get("profiles")
    if pr is not None:
        lines.append(
            f"| all {len(sc['free'])} profiles (median of {pr['repeats']}) | "
            f"{pr['wall_s_median']:.2f} | {pr['kernel_calls']:,} | "
            f"{pr['likelihood_evaluations']:,.0f} | < {results['targets_s']['profiles']:g} s |"
        )
    cost = results["nllh_cost"]
    per_fit_ms = ft["wall_s_median"] / ft["likelihood_evaluations"] * 1e3
    threads_text = ", ".join(
        f"{cost[key] * 1e3:.2f} ms with {key.rsplit('_', 1)[1]} numba thread(s)"
        for key in cost
        if key.startswith("median_s_numba_threads_")
    )
    lines += [
        "",
        f"Fit: {ft['starts_reaching_best']} of {ft['starts']} starts within 0.1 of the best "
        f"nllh ({ft['best_nllh']:.4f}; at the truth {ft['nllh_at_truth']:.4f}), "
        f"{ft['starts_reporting_success']} reported success; converged: {ft['converged']}. "
        f"Per likelihood evaluation: fit {per_fit_ms:.2f} ms "
        f"of wall time with {ft['workers']} workers"
        + (
            f", profiles {pr['wall_s_median'] / pr['likelihood_evaluations'] * 1e3:.2f} ms"
            if pr is not None
            else ""
        )
        + "; one evaluation alone on the main thread (median of "
        f"{cost['repeats']}): {threads_text}.",
        "",
        f"Fit wall times: {', '.join(f'{s:.2f}' for s in ft['wall_s_all'])} s; other "
        "processes' CPU during each: "
        + ", ".join(
            "n/a" if r["other_processes_cores"] is None else f"{r['other_processes_cores']:.2f}"
            for r in ft["runs"]
        )
        + " cores.",
    ]
    if pr is not None:
        other = pr["runs"][-1]["other_processes_cores"]
        lines += [
            "Profiles: points per parameter "
            + ", ".join(f"{k} {v}" for k, v in pr["points_per_parameter"].items())
            + "; other processes' CPU meanwhile "
            + ("n/a" if other is None else f"{other:.2f} cores")
            + ".",
            "",
            "| parameter | truth | estimate | 95% profile interval | truth inside | "
            "identifiable | bounds |",
            "|---|---:|---:|---|:---:|:---:|---|",
        ]
        for row in results["parameters"]:
            lines.append(
                f"| {row['parameter']} | {row['truth']:.4g} | {row['estimate']:.4g} | "
                f"[{row['ci_low']:.4g}, {row['ci_high']:.4g}] | "
                f"{'yes' if row['truth_in_ci'] else 'no'} | "
                f"{'yes' if row['identifiable'] else 'no'} | "
                f"[{row['bounds'][0]:g}, {row['bounds'][1]:g}] |"
            )
    verdict = results["targets_met"]
    lines += [
        "",
        "Targets (on 2 cores; this machine has "
        f"{facts['cpu_count']}): fit < {results['targets_s']['fit']:g} s: "
        f"{'met' if verdict['fit'] else 'MISSED'}"
        + (
            ""
            if verdict["profiles"] is None
            else f"; all profiles < {results['targets_s']['profiles']:g} s: "
            f"{'met' if verdict['profiles'] else 'MISSED'}"
        )
        + ".",
    ]
    prof = results.get("cprofile")
    if prof is not None:
        for key, title in (
            ("fit_serial", f"one fit, {ft['starts']} starts one after another"),
            ("profile_T0", "profile of T0"),
        ):
            block = prof[key]
            lines += [
                "",
                f"### cProfile: {title} ({block['total_s']:.2f} s)",
                "",
                "| function | calls | own time (s) | cumulative (s) |",
                "|---|---:|---:|---:|",
            ]
            for row in block["top_by_tottime"]:
                lines.append(
                    f"| `{row['function']}` | {row['calls']:,} | {row['tottime_s']:.3f} | "
                    f"{row['cumtime_s']:.3f} |"
                )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 starts, each step timed once")
    parser.add_argument("--starts", type=int, default=None, help="starts per fit (50)")
    parser.add_argument("--repeats", type=int, default=None, help="timed fits (3)")
    parser.add_argument("--profile-repeats", type=int, default=None, help="timed profiles (3)")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiles")
    parser.add_argument("--workers", type=int, default=None, help="fit's worker threads")
    parser.add_argument("--cprofile", action="store_true", help="cProfile one fit, one profile")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="before each timed block, wait up to S s for other processes to go quiet",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file to write")
    args = parser.parse_args(argv)
    quick = args.quick
    args.starts = args.starts or (QUICK_STARTS if quick else STARTS)
    args.repeats = args.repeats or (1 if quick else 3)
    args.profile_repeats = args.profile_repeats or (1 if quick else 3)

    facts = machine_facts()
    sc = schedules()
    results: dict[str, object] = {
        "machine": facts,
        "quick": quick,
        "scenario": {
            "model": f"TwoState(crowding={CROWDING!r})",
            "duration_days": DURATION_DAYS,
            "conditions": {
                "control": "no drug",
                "tamoxifen": f"tamoxifen {TAMOXIFEN_UM:g} µM",
                "tamoxifen_then_inhibitor": f"tamoxifen {TAMOXIFEN_UM:g} µM, NF-κB inhibitor "
                f"{INHIBITOR_UM:g} µM from day {INHIBITOR_FROM_DAY:g}",
            },
            "schedules": {name: s.to_dict() for name, s in sc.items()},
            "days": DAYS.tolist(),
            "replicates": REPLICATES,
            "observable": "total_cells",
            "noise": f"LogNormal, sigma {SIGMA:g} fixed",
            "sigma": SIGMA,
            "seed": SEED,
            "free": list(FREE),
            "truth": truth(),
            "bounds": {k: list(v) for k, v in BOUNDS.items()},
            "n_data": len(sc) * DAYS.size * REPLICATES,
        },
        "targets_s": TARGETS_S,
        "target_cores": TARGET_CORES,
    }
    print("Warm-up (data simulation, 1-start fits) ...", flush=True)
    results["warm_up"], data = warm_up(args.workers)
    print(
        f"  compile or cache load {results['warm_up']['compile_or_cache_load_s']:.2f} s",
        flush=True,
    )
    print(f"Fit, {args.starts} starts x {args.repeats} ...", flush=True)
    results["fit"], result = time_fits(data, args)
    results["nllh_cost"] = nllh_cost(result)
    if not args.no_profile:
        print(f"Profiles of {len(FREE)} parameters x {args.profile_repeats} ...", flush=True)
        results["profiles"] = time_profiles(result, args)
        results["parameters"] = recovered(result)
    results["targets_met"] = {
        "fit": results["fit"]["wall_s_median"] < TARGETS_S["fit"],
        "profiles": None
        if args.no_profile
        else results["profiles"]["wall_s_median"] < TARGETS_S["profiles"],
    }
    if args.cprofile:
        print("cProfile of one fit (starts in series) and of the T0 profile ...", flush=True)
        results["cprofile"] = cprofile_fit(data, args)
    facts["numba_threading_layer"] = machine_facts()["numba_threading_layer"]
    facts["load_average_1_5_15_at_end"] = machine_facts()["load_average_1_5_15"]
    print()
    print(report(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, allow_nan=True) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
