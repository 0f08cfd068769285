"""Stochastic benchmark: tolsim's SSA, tau-leaping and hybrid against GillesPy2's C++ solvers.

Scenarios (the issue's), two-state logistic model with the default rates:

- ``ssa_1e4``: exact SSA from S0 = 1e4, T0 = 100 (K = 1e7), 30 days of tamoxifen 1 µM then 30
  days off, output on days 0, 30, 60 (the phase end points, as GillesPy2's peer writes them).
  Events per second of tolsim's SSA on all numba threads and on one, against GillesPy2's
  ``SSACSolver`` (built -O3 -march=native and, in the full run, with GillesPy2's own -O0
  build), whose trajectories per second are converted to events per second with tolsim's mean
  events per path and with the ODE integral of the total propensity.
- ``tumour_1e9``: S0 = 1e9, T0 = 100, K = 1e10, 120 days of tamoxifen 1 µM then 240 days off,
  daily output (361 days). tolsim's tau-leaping and hybrid: ms per path and trajectories per
  second. GillesPy2's ``TauLeapingCSolver`` cannot run it (32-bit state, see
  ``gillespy2_peer``), so it is recorded as infeasible; its ``TauHybridCSolver`` in
  ``discrete`` mode (a tau-leaping method with double state) does run it.
- ``tumour_1e8``: the same 10x smaller (S0 = 1e8, K = 1e9), which GillesPy2's tau-leaping
  solver can run: the like-for-like tau-leaping ratio.

tolsim is timed end to end (``tolsim.simulate``, including building the Dataset) and as the
kernel alone (``simulate_batch`` into preallocated arrays), after a warm-up call whose time
(numba compile or on-disk cache load) is reported separately; the full run also measures a cold
compile in a fresh process with empty cache folders. Timings are medians of repeats with
different seeds; ratios compare numbers measured in the same run. GillesPy2 runs one process
at a time and relaunches its executable for every phase of every path (``gillespy2_peer``
documents how and why): its figures include those launches, and an estimate without them is
recorded too. Agreement: mean S, T, N at withdrawal (day 120) and at the end against the ODE
(``tolsim.simulate`` deterministic, rtol 1e-10) and between tolsim and GillesPy2.

Run::

    python benchmarks/stochastic.py            # ~4 minutes on 2 cores
    python benchmarks/stochastic.py --quick    # smoke run, under a minute

Prints markdown tables and writes ``benchmarks/results/stochastic.json``.
"""

from __future__ import annotations

import os

# Single-threaded BLAS before numpy is imported (as in the other benchmarks).
for _name in (
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

import tolsim  # noqa: E402
from tolsim.stochastic import kernel_module  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    import gillespy2_peer as gp  # noqa: E402
except ImportError as error:  # gillespy2 (or its build tools) missing: tolsim figures only
    gp = None
    GILLESPY2_MISSING = f"{type(error).__name__}: {error}"
else:
    GILLESPY2_MISSING = None

RESULTS = Path(__file__).resolve().parent / "results" / "stochastic.json"

SEED = 2026
TAMOXIFEN_UM = 1.0
TAU_TOL = 0.03  # GillesPy2's default tau_tol; tolsim's TAU_EPSILON is the same bound
HYBRID_THRESHOLD = 1000.0  # tolsim's default: states below this many cells are discrete
GILLESPY2_TIMEOUT_S = 120
TARGET_SSA_EVENTS_PER_S = 5e7  # on 2 cores
TARGET_HYBRID_PATH_S = 0.020  # one hybrid path of tumour_1e9
ODE_RTOL = 1e-10

SSA_CASE = {"S0": 10_000, "T0": 100, "K": 1e7, "phase_days": (30.0, 30.0)}
TUMOUR_CASES = {
    "tumour_1e9": {"S0": 10**9, "T0": 100, "K": 1e10, "phase_days": (120.0, 240.0)},
    "tumour_1e8": {"S0": 10**8, "T0": 100, "K": 1e9, "phase_days": (120.0, 240.0)},
}


# --------------------------------------------------------------------------------------------
# helpers


QUIET = {"limit_s": 0.0}  # set by --wait-quiet


def gate() -> None:
    """With ``--wait-quiet``: before a timed block, wait while another process is busy."""
    if QUIET["limit_s"] > 0:
        with OtherLoad() as load:
            time.sleep(1.0)
        if load.cores is not None and load.cores >= BUSY_CORES:
            wait_quiet(QUIET["limit_s"])


def timed(call, repeats: int) -> tuple[float, list[float], list[object], float | None]:
    """Median wall time (s) of ``repeats`` calls ``call(r)``, all times, all results, and the
    CPU (cores) other processes used meanwhile."""
    gate()
    seconds, results = [], []
    with OtherLoad() as load:
        for r in range(repeats):
            start = time.perf_counter()
            results.append(call(r))
            seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), seconds, results, load.cores


class OtherLoad:
    """CPU used by other processes while a section runs, in cores (Linux ``/proc/stat``: busy
    time of all CPUs minus this process's and its waited-for children's CPU time); None for
    sections under 1 s."""

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
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "numba_threading_layer": layer,
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "tolsim": tolsim.__version__,
        "gillespy2": gp.gillespy2_version() if gp else None,
        "gillespy2_missing": GILLESPY2_MISSING,
        "gillespy2_cxxflags": gp.PEER_CXXFLAGS if gp else None,
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "tolsim_source": source_revision(),
    }


def source_revision() -> dict[str, object] | None:
    """The checkout's commit and whether ``src/`` differs from it (read-only git calls)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "src_changed_files": [ln[3:] for ln in changed if ln.strip()]}


def thread_counts() -> list[int]:
    """All numba threads first, then one (the per-core figure; GillesPy2 runs on one core)."""
    return sorted({numba.config.NUMBA_NUM_THREADS, 1}, reverse=True)


def schedule_for(phase_days: tuple[float, float]) -> tolsim.Schedule:
    on, off = phase_days
    return tolsim.Schedule.from_phases([{"days": on, "tamoxifen": TAMOXIFEN_UM}, {"days": off}])


def peer_phases(phase_days: tuple[float, float]) -> list[tuple[float, float, float]]:
    on, off = phase_days
    return [(on, gp.E_TAM_1UM, 0.0), (off, 0.0, 0.0)]


def check_same_model(model) -> None:
    """The GillesPy2 peer writes the default rates out itself: make sure they are tolsim's."""
    if gp is None:
        return
    defaults = model.default_params()
    differ = {k: (v, defaults[k]) for k, v in gp.DEFAULT_PARAMS.items() if defaults[k] != v}
    e_tam = 1.0 / (1.0 + (defaults["EC50_tam"] / TAMOXIFEN_UM) ** defaults["h_tam"])
    if differ or abs(e_tam - gp.E_TAM_1UM) > 1e-15:
        raise RuntimeError(f"GillesPy2 peer's model differs from tolsim's: {differ}, {e_tam}")


class Kernel:
    """A direct call of the specialised stochastic kernel into preallocated arrays, with the
    arguments ``tolsim.stochastic.simulate_paths`` gives it (no validation, no Dataset)."""

    def __init__(self, model, params, schedule, times, method, paths, max_events, threshold):
        self.kernels = kernel_module(model, method)
        self.packed = model.pack(params)[None, :]
        self.x0 = model.initial_state(self.packed)
        compiled = schedule.compile(model.drugs)
        self.schedule = tuple(compiled)
        self.arm_piece = int(
            np.searchsorted(compiled.breakpoints_days, schedule.withdrawal_day("tamoxifen"))
        )
        self.stoich = model.stoichiometry.astype(np.float64)
        self.times = np.ascontiguousarray(times, dtype=np.float64)
        self.max_events, self.threshold = max_events, threshold
        n_states = len(model.states)
        self.out = np.empty((1, paths, self.times.size, n_states), dtype=np.int64)
        self.summary = np.empty((1, paths, n_states + 2))
        self.stats = np.zeros((1, paths, self.kernels.N_STATS), dtype=np.int64)

    def __call__(self, seed: int) -> np.ndarray:
        self.stats[:] = 0
        self.kernels.simulate_batch(
            self.kernels.METHOD,
            self.packed,
            self.x0,
            self.schedule,
            self.stoich,
            self.times,
            seed,
            0,
            0,
            self.max_events,
            self.arm_piece,
            np.full(1, np.nan),
            self.threshold,
            self.out,
            self.summary,
            self.stats,
        )
        if np.any(self.stats[..., 0] != 0):
            raise RuntimeError(f"kernel paths failed: status {np.unique(self.stats[..., 0])}")
        return self.stats[0, :, 1].copy()  # events per path


def mean_se(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size))


def compare(a: tuple[float, float], b: tuple[float, float]) -> dict[str, float]:
    """Relative difference a/b - 1 and z-score of two (mean, standard error) pairs."""
    se = float(np.hypot(a[1], b[1]))
    return {"rel_diff": a[0] / b[0] - 1.0, "z": (a[0] - b[0]) / se if se > 0 else float("nan")}


def state_means(final: np.ndarray) -> dict[str, tuple[float, float]]:
    """(mean, se) of S, T and N from a (paths, 2) array of final S, T."""
    final = np.asarray(final, dtype=np.float64)
    return {
        "S": mean_se(final[:, 0]),
        "T": mean_se(final[:, 1]),
        "N": mean_se(final.sum(axis=1)),
    }


# --------------------------------------------------------------------------------------------
# ssa_1e4


def ssa_1e4(args) -> dict[str, object]:
    model = tolsim.models.TwoState()
    case = SSA_CASE
    params = model.default_params(S0=case["S0"], T0=case["T0"], K=case["K"])
    schedule = schedule_for(case["phase_days"])
    times = np.array([0.0, case["phase_days"][0], sum(case["phase_days"])])
    max_events = 10**9
    paths = args.ssa_paths

    def run(seed, n=paths):
        return tolsim.simulate(
            model, params, schedule, times, method="ssa", paths=n, seed=seed, max_events=max_events
        )

    start = time.perf_counter()
    run(SEED, 2)
    first_call_s = time.perf_counter() - start
    kernel = Kernel(model, params, schedule, times, "ssa", paths, max_events, HYBRID_THRESHOLD)
    kernel(SEED)

    rows, finals, events = [], None, None
    for threads in thread_counts():
        numba.set_num_threads(threads)
        # the same seeds for every thread count: identical paths, identical work
        wall, walls, dss, other = timed(lambda r: run(SEED + r), args.ssa_repeats)
        per_repeat = [int(ds.n_events.sum()) for ds in dss]
        rates = [n / s for n, s in zip(per_repeat, walls, strict=True)]
        rows.append(
            {
                "timing": "simulate",
                "threads": threads,
                "paths": paths,
                "repeats": args.ssa_repeats,
                "wall_s_median": wall,
                "wall_s_all": walls,
                "events_per_s_median": statistics.median(rates),
                "events_per_s_all": rates,
                "other_processes_cores": other,
            }
        )
        if finals is None:
            finals = np.concatenate(
                [np.stack([ds.S.values[:, -1], ds.T.values[:, -1]], axis=1) for ds in dss]
            )
            events = np.concatenate([ds.n_events.values for ds in dss])
        kwall, kwalls, kevents, kother = timed(lambda r: kernel(SEED + r), args.ssa_repeats)
        krates = [int(n.sum()) / s for n, s in zip(kevents, kwalls, strict=True)]
        rows.append(
            {
                "timing": "kernel",
                "threads": threads,
                "paths": paths,
                "repeats": args.ssa_repeats,
                "wall_s_median": kwall,
                "wall_s_all": kwalls,
                "events_per_s_median": statistics.median(krates),
                "events_per_s_all": krates,
                "other_processes_cores": kother,
            }
        )
        print(
            f"  tolsim SSA {threads} thread(s): {rows[-2]['events_per_s_median']:.3g} events/s "
            f"(simulate), {rows[-1]['events_per_s_median']:.3g} (kernel)",
            flush=True,
        )
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    mean_events = float(events.mean())

    ode = tolsim.simulate(model, params, schedule, times, rtol=ODE_RTOL, atol=1e-8)
    ode_final = {"S": float(ode.S[-1]), "T": float(ode.T[-1]), "N": float(ode.N[-1])}
    tolsim_means = state_means(finals)
    result: dict[str, object] = {
        "scenario": {
            "model": "TwoState(crowding='logistic'), default rates",
            "S0": case["S0"],
            "T0": case["T0"],
            "K": case["K"],
            "schedule": schedule.describe(),
            "output_days": times.tolist(),
            "max_events": max_events,
            "seeds": f"{SEED} + repeat (the same for every thread count)",
        },
        "tolsim": {
            "first_call_s": first_call_s,
            "rows": rows,
            "mean_events_per_path": mean_events,
            "sd_events_per_path": float(events.std(ddof=1)),
            "n_paths_pooled": int(events.size),
            "mean_final": {k: v[0] for k, v in tolsim_means.items()},
            "se_final": {k: v[1] for k, v in tolsim_means.items()},
        },
        "ode_final": ode_final,
        "tolsim_vs_ode": {
            k: compare(tolsim_means[k], (ode_final[k], 0.0)) for k in ("S", "T", "N")
        },
        "gillespy2": [],
    }
    if gp is None:
        result["gillespy2_missing"] = GILLESPY2_MISSING
        return result
    ode_events = gp.ode_mean({"K": case["K"]}, peer_phases(case["phase_days"]), **_s0t0(case))
    result["expected_events_per_path_ode"] = ode_events["events"]
    builds = [(gp.PEER_CXXFLAGS, args.gp_ssa_paths)]
    if not args.quick:
        builds.append((None, args.gp_ssa_paths_o0))
    for flags, gp_paths in builds:
        gp.get_peer("ssa", None, flags)  # build first: the build is not timed
        gate()
        with OtherLoad() as load:
            r = gp.scenario_ssa_1e4(
                paths=gp_paths, repeats=args.gp_repeats, seed=SEED, cxxflags=flags
            )
        r["other_processes_cores"] = load.cores
        r["events_per_s_tolsim_events"] = mean_events * r["trajectories_per_s"]
        r["events_per_s_ode_events"] = ode_events["events"] * r["trajectories_per_s"]
        rest = r["s_per_trajectory_minus_launches"]
        r["events_per_s_minus_launches"] = mean_events / rest if rest > 0 else float("nan")
        gp_means = {
            "S": (r["mean_final_S"], r["sd_final_S"] / np.sqrt(r["n_final"])),
            "T": (r["mean_final_T"], r["sd_final_T"] / np.sqrt(r["n_final"])),
        }
        r["tolsim_vs_gillespy2"] = {k: compare(tolsim_means[k], gp_means[k]) for k in ("S", "T")}
        result["gillespy2"].append(r)
        print(
            f"  GillesPy2 {r['solver']}: {r['s_per_trajectory'] * 1e3:.0f} ms/trajectory, "
            f"~{r['events_per_s_tolsim_events']:.3g} events/s (compile {r['compile_s']:.1f} s)",
            flush=True,
        )
    return result


def _s0t0(case) -> dict[str, int]:
    return {"S0": case["S0"], "T0": case["T0"]}


# --------------------------------------------------------------------------------------------
# tumour_1e9 and tumour_1e8


def tumour(args, name: str) -> dict[str, object]:
    model = tolsim.models.TwoState()
    case = TUMOUR_CASES[name]
    params = model.default_params(S0=case["S0"], T0=case["T0"], K=case["K"])
    schedule = schedule_for(case["phase_days"])
    withdrawal = case["phase_days"][0]
    times = np.arange(sum(case["phase_days"]) + 1.0)
    i_withdrawal = int(np.searchsorted(times, withdrawal))
    max_events = 10**9
    paths = args.tumour_paths

    ode = tolsim.simulate(model, params, schedule, times, rtol=ODE_RTOL, atol=1e-6)
    ode_at = {
        day: {"S": float(ode.S[i]), "T": float(ode.T[i]), "N": float(ode.N[i])}
        for day, i in (("withdrawal", i_withdrawal), ("end", -1))
    }
    result: dict[str, object] = {
        "scenario": {
            "model": "TwoState(crowding='logistic'), default rates",
            "S0": case["S0"],
            "T0": case["T0"],
            "K": case["K"],
            "schedule": schedule.describe(),
            "output_days": f"np.arange({times[-1] + 1:g}) ({times.size} days)",
            "withdrawal_day": withdrawal,
            "hybrid_threshold_cells": HYBRID_THRESHOLD,
            "tau_epsilon": TAU_TOL,
            "seeds": f"{SEED} + repeat (the same for every thread count)",
        },
        "ode": ode_at,
        "tolsim": {},
        "gillespy2": [],
    }
    if gp is not None:
        independent = gp.ode_mean({"K": case["K"]}, peer_phases(case["phase_days"]), **_s0t0(case))
        result["ode_max_count"] = independent["max_count"]
        result["ode_vs_independent_ode_rel_diff"] = {
            s: ode_at["end"][s] / float(independent["final"][i]) - 1.0
            for i, s in enumerate(("S", "T"))
        }

    for method in ("tau", "hybrid"):

        def run(seed, n=paths, method=method):
            return tolsim.simulate(
                model,
                params,
                schedule,
                times,
                method=method,
                paths=n,
                seed=seed,
                max_events=max_events,
                **({"threshold": HYBRID_THRESHOLD} if method == "hybrid" else {}),
            )

        start = time.perf_counter()
        run(SEED, 2)
        first_call_s = time.perf_counter() - start
        kernel = Kernel(
            model, params, schedule, times, method, paths, max_events, HYBRID_THRESHOLD
        )
        single = Kernel(model, params, schedule, times, method, 1, max_events, HYBRID_THRESHOLD)
        kernel(SEED)
        single(SEED)
        rows, pooled = [], None
        for threads in thread_counts():
            numba.set_num_threads(threads)
            for timing in ("simulate", "kernel"):
                call = (lambda r: run(SEED + r)) if timing == "simulate" else kernel_call(kernel)
                wall, walls, outs, other = timed(call, args.tumour_repeats)
                rows.append(
                    {
                        "timing": timing,
                        "threads": threads,
                        "paths": paths,
                        "repeats": args.tumour_repeats,
                        "wall_s_median": wall,
                        "wall_s_all": walls,
                        "s_per_path": wall / paths,
                        "trajectories_per_s": paths / wall,
                        "other_processes_cores": other,
                    }
                )
                if timing == "simulate" and pooled is None:
                    pooled = outs
            # one path alone: its latency. The work is one thread's; with more threads numba's
            # fork-join also waits for the idle ones (slow when another process holds a core).
            for timing, call in (
                ("simulate", lambda r: run(SEED + r, 1)),
                ("kernel", kernel_call(single)),
            ):
                wall, walls, _, other = timed(call, args.single_repeats)
                rows.append(
                    {
                        "timing": f"{timing} (1 path)",
                        "threads": threads,
                        "paths": 1,
                        "repeats": args.single_repeats,
                        "wall_s_median": wall,
                        "wall_s_min": min(walls),
                        "s_per_path": wall,
                        "trajectories_per_s": 1.0 / wall,
                        "other_processes_cores": other,
                    }
                )
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        at = {
            day: np.concatenate(
                [np.stack([ds.S.values[:, i], ds.T.values[:, i]], axis=1) for ds in pooled]
            )
            for day, i in (("withdrawal", i_withdrawal), ("end", -1))
        }
        means = {day: state_means(v) for day, v in at.items()}
        result["tolsim"][method] = {
            "first_call_s": first_call_s,
            "rows": rows,
            "mean_steps_per_path": float(np.mean([ds.n_steps.values.mean() for ds in pooled])),
            "mean_events_per_path": float(np.mean([ds.n_events.values.mean() for ds in pooled])),
            "mean_rejected_per_path": float(
                np.mean([ds.n_rejected_steps.values.mean() for ds in pooled])
            ),
            "n_paths_pooled": int(sum(ds.sizes["path"] for ds in pooled)),
            "mean": {d: {k: v[0] for k, v in m.items()} for d, m in means.items()},
            "se": {d: {k: v[1] for k, v in m.items()} for d, m in means.items()},
            "vs_ode": {
                d: {k: compare(v, (ode_at[d][k], 0.0)) for k, v in m.items()}
                for d, m in means.items()
            },
        }
        best = min(r["s_per_path"] for r in rows if r["timing"] == "simulate")
        print(
            f"  tolsim {method} {name}: {best * 1e3:.3g} ms/path (simulate, best threads), "
            f"first call {first_call_s:.2f} s",
            flush=True,
        )

    if gp is None:
        result["gillespy2_missing"] = GILLESPY2_MISSING
        return result
    phases = peer_phases(case["phase_days"])
    for solver, mode in (("tau", None), ("hybrid", "discrete")):
        gp.get_peer(solver, mode, gp.PEER_CXXFLAGS)  # build first: the build is not timed
        gate()
        with OtherLoad() as load:
            r = gp.scenario_tau_1e9(
                solver,
                mode,
                paths=args.gp_tumour_paths,
                repeats=args.gp_repeats,
                seed=SEED,
                tau_tol=TAU_TOL,
                S0=case["S0"],
                T0=case["T0"],
                K=case["K"],
                name=name,
            )
        r["other_processes_cores"] = load.cores
        if r["feasible"]:
            # GillesPy2's peer only returns the final state: the state at withdrawal from a
            # separate one-phase run (one launch, independent seeds), for the agreement check.
            w_final, _, _ = gp.run(
                solver,
                {"K": case["K"]},
                phases[:1],
                case["S0"],
                case["T0"],
                args.gp_tumour_paths * args.gp_repeats,
                SEED + 1000,
                species_mode=mode,
                tau_tol=TAU_TOL,
                timeout=GILLESPY2_TIMEOUT_S,
            )
            n = r["n_final"]
            gp_means = {
                "withdrawal": state_means(w_final),
                "end": {
                    "S": (r["mean_final_S"], r["sd_final_S"] / np.sqrt(n)),
                    "T": (r["mean_final_T"], r["sd_final_T"] / np.sqrt(n)),
                },
            }
            gp_means["end"]["N"] = (
                r["mean_final_S"] + r["mean_final_T"],
                float("nan"),  # S and T are correlated: no se from their marginals
            )
            r["mean"] = {d: {k: v[0] for k, v in m.items()} for d, m in gp_means.items()}
            r["se"] = {d: {k: v[1] for k, v in m.items()} for d, m in gp_means.items()}
            r["vs_ode"] = {
                d: {k: compare(v, (ode_at[d][k], 0.0)) for k, v in m.items()}
                for d, m in gp_means.items()
            }
            r["tolsim_vs_this"] = {
                method: {
                    d: {
                        k: compare(
                            (
                                result["tolsim"][method]["mean"][d][k],
                                result["tolsim"][method]["se"][d][k],
                            ),
                            v,
                        )
                        for k, v in m.items()
                    }
                    for d, m in gp_means.items()
                }
                for method in ("tau", "hybrid")
            }
            print(
                f"  GillesPy2 {r['solver']} {name}: {r['s_per_trajectory'] * 1e3:.3g} "
                f"ms/trajectory (compile {r['compile_s']:.1f} s)",
                flush=True,
            )
        else:
            print(f"  GillesPy2 {r['solver']} {name}: infeasible ({r['reason']})", flush=True)
        result["gillespy2"].append(r)
    return result


def kernel_call(kernel: Kernel):
    return lambda r: kernel(SEED + r)


# --------------------------------------------------------------------------------------------
# cold compile

CHILD = """\
import json, time
start = time.perf_counter()
import numpy as np
import tolsim
out = {"import_s": time.perf_counter() - start}
model = tolsim.models.TwoState()
p = model.default_params(S0=1000, T0=10)
schedule = tolsim.Schedule.from_phases([{"days": 3, "tamoxifen": 1.0}, {"days": 3}])
for method in ("ssa", "tau", "hybrid"):
    t = time.perf_counter()
    tolsim.simulate(model, p, schedule, np.array([0.0, 6.0]), method=method, paths=2, seed=1)
    out[method + "_first_call_s"] = time.perf_counter() - t
out["total_s"] = time.perf_counter() - start
print("RESULT " + json.dumps(out))
"""


def cold_compile() -> dict[str, object]:
    """Fresh processes with empty NUMBA_CACHE_DIR / TOLSIM_CACHE_DIR: compile, then load."""
    root = Path(tempfile.mkdtemp(prefix="tolsim-stochastic-cold-"))
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(root / "numba")
    env["TOLSIM_CACHE_DIR"] = str(root / "tolsim")
    runs = []
    try:
        for kind in ("cold (compile, fill cache)", "warm (load cache)"):
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=False
            )
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(f"child process failed ({proc.returncode}):\n{proc.stderr}")
            line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
            run = json.loads(line.removeprefix("RESULT "))
            run.update(kind=kind, process_wall_s=wall)
            runs.append(run)
            print(f"  {kind}: first SSA call {run['ssa_first_call_s']:.1f} s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "child": "import tolsim; SSA, tau, hybrid on a 6-day TwoState case (2 paths each)",
        "note": "the first SSA call compiles the stochastic kernel and the ODE kernel (SSA "
        "estimates its event count from the mean-field solution first)",
        "runs": runs,
    }


# --------------------------------------------------------------------------------------------
# report


def _row(rows, timing, threads):
    return next(r for r in rows if r["timing"] == timing and r["threads"] == threads)


def _revision(source) -> str:
    if not source:
        return ""
    dirty = " + local changes in src/" if source["src_changed_files"] else ""
    return f" (commit {source['commit'][:7]}{dirty})"


BUSY_CORES = 0.2


def _busy(row) -> str:
    """A mark on timings taken while other processes used the CPU."""
    cores = row.get("other_processes_cores")
    return " †" if cores is not None and cores >= BUSY_CORES else ""


def _other(section) -> str:
    cores = section.get("other_processes_cores")
    if cores is None:
        return "(CPU use of other processes during this section: not measured.)"
    return (
        f"(Other processes used {cores:.2f} cores on average during this section; † marks "
        f"timings taken while they used >= {BUSY_CORES:g} cores.)"
    )


def _pct(x: float) -> str:
    return f"{x:+.1e}"


def report(results: dict[str, object]) -> str:
    facts = results["machine"]
    all_threads = facts["numba_threads"]
    lines = [
        f"Machine: {facts['cpu_count']} CPUs, numba {facts['numba']} "
        f"({all_threads} threads, {facts['numba_threading_layer']}), numpy {facts['numpy']}, "
        f"tolsim {facts['tolsim']}{_revision(facts['tolsim_source'])}, GillesPy2 "
        f"{facts['gillespy2']} "
        f"(C++ peers built {facts['gillespy2_cxxflags']} unless marked -O0), Python "
        f"{facts['python']}, {facts['date']}, load average at start "
        f"{facts['load_average_1_5_15'][0]:.2f}, at end "
        f"{facts['load_average_1_5_15_at_end'][0]:.2f}."
        + (" QUICK RUN (smoke test, few paths)." if results["quick"] else "")
        + (
            f" GillesPy2 not available ({facts['gillespy2_missing']}): tolsim figures only."
            if facts["gillespy2_missing"]
            else ""
        ),
    ]

    s = results["ssa_1e4"]
    t = s["tolsim"]
    sc = s["scenario"]
    lines += [
        "",
        "## ssa_1e4: exact SSA, S0 = 1e4, T0 = 100, K = 1e7, 30 d tamoxifen 1 µM + 30 d off",
        "",
        _other(s),
        f"Output days {sc['output_days']}. tolsim: {_row(t['rows'], 'simulate', 1)['paths']} "
        f"paths per call, median of {_row(t['rows'], 'simulate', 1)['repeats']} calls (same "
        f"seeds for every thread count); {t['mean_events_per_path']:.4g} events per path "
        f"(mean of {t['n_paths_pooled']} paths; ODE integral of the total propensity "
        f"{s.get('expected_events_per_path_ode', float('nan')):.4g}). GillesPy2: "
        "trajectories/s × tolsim's mean events per path (× ODE estimate in brackets); its "
        "time includes 1 + paths process launches per run (one for phase 1, one per path for "
        "phase 2; third column: without them, estimated from a near-empty launch).",
        "",
        "| solver | threads | events / s | events / s w/o launches | tolsim ÷ this |",
        "|---|---:|---:|---:|---:|",
    ]
    tolsim_all = _row(t["rows"], "simulate", all_threads)["events_per_s_median"]
    tolsim_one = _row(t["rows"], "simulate", 1)["events_per_s_median"]
    for r in t["rows"]:
        lines.append(
            f"| tolsim SSA, {r['timing']} | {r['threads']} | {r['events_per_s_median']:.3g}"
            f"{_busy(r)} | | |"
        )
    for g in s["gillespy2"]:
        lines.append(
            f"| GillesPy2 {g['solver']} ({g['paths']} × {g['repeats']}) | 1 | "
            f"{g['events_per_s_tolsim_events']:.3g} ({g['events_per_s_ode_events']:.3g})"
            f"{_busy(g)} | "
            f"{g['events_per_s_minus_launches']:.3g} | "
            f"{tolsim_all / g['events_per_s_tolsim_events']:.1f}× ({all_threads} threads), "
            f"{tolsim_one / g['events_per_s_tolsim_events']:.1f}× (1 thread) |"
        )
    target = results["targets"]["ssa_events_per_s"]
    lines += [
        "",
        f"Target ≥ {target:.0e} events/s on {all_threads} threads: "
        + ("met" if tolsim_all >= target else "NOT met")
        + f" ({tolsim_all:.3g}). tolsim first call (compile or cache load, 2 paths): "
        f"{t['first_call_s']:.2f} s.",
    ]
    if "tolsim_vs_ode" in s:
        mean = t["mean_final"]
        parts = [
            f"{k} {mean[k]:.4g} (vs ODE {_pct(s['tolsim_vs_ode'][k]['rel_diff'])}, "
            f"z {s['tolsim_vs_ode'][k]['z']:+.1f})"
            for k in ("S", "T", "N")
        ]
        lines.append("Mean final, tolsim SSA: " + ", ".join(parts) + ".")
        for g in s["gillespy2"]:
            lines.append(
                f"Mean final, GillesPy2 {g['solver']} ({g['n_final']} paths) vs ODE: S "
                f"{_pct(g['rel_err_S'])} (z {g['z_S']:+.1f}), T {_pct(g['rel_err_T'])} "
                f"(z {g['z_T']:+.1f})."
            )
        for g in s["gillespy2"]:
            c = g["tolsim_vs_gillespy2"]
            lines.append(
                f"tolsim vs GillesPy2 {g['solver']} (seeds {SEED} + repeat for every build) mean "
                f"final: S {_pct(c['S']['rel_diff'])} "
                f"(z {c['S']['z']:+.1f}), T {_pct(c['T']['rel_diff'])} (z {c['T']['z']:+.1f})."
            )

    for name in ("tumour_1e9", "tumour_1e8"):
        tu = results[name]
        sc = tu["scenario"]
        lines += [
            "",
            f"## {name}: S0 = {sc['S0']:.0e}, T0 = {sc['T0']}, K = {sc['K']:.0e}, 120 d "
            "tamoxifen 1 µM + 240 d off, daily output (361 days)",
            "",
            _other(tu),
            "",
            "tolsim: median of repeats (same seeds for every thread count); '1 path': one path "
            "per call, its latency. GillesPy2: one process at a time, 1 + paths launches per "
            "run; last column: GillesPy2's time per path ÷ tolsim's (simulate).",
            "",
            "| solver | timing | threads | paths × repeats | ms / path | trajectories / s | "
            "speed-up of tolsim |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        peers = {g["solver"]: g for g in tu["gillespy2"] if g.get("feasible")}
        for method, m in tu["tolsim"].items():
            for r in m["rows"]:
                lines.append(
                    f"| tolsim {method} | {r['timing']} | {r['threads']} | {r['paths']} × "
                    f"{r['repeats']} | {r['s_per_path'] * 1e3:.3g}{_busy(r)} | "
                    f"{r['trajectories_per_s']:,.0f} | |"
                )
        for g in tu["gillespy2"]:
            if not g.get("feasible"):
                lines.append(f"| GillesPy2 {g['solver']} | infeasible: {g['reason']} | | | | | |")
                continue
            speedups = [
                (method, th, g["s_per_trajectory"] / _row(m["rows"], "simulate", th)["s_per_path"])
                for method, m in tu["tolsim"].items()
                for th in thread_counts_of(m["rows"])
            ]
            ratios = ", ".join(f"{k} {x:,.0f}× ({th} thr)" for k, th, x in speedups)
            lines.append(
                f"| GillesPy2 {g['solver']} | run (w/o launches "
                f"{g['s_per_trajectory_minus_launches'] * 1e3:.3g} ms) | 1 | {g['paths']} × "
                f"{g['repeats']} | {g['s_per_trajectory'] * 1e3:.3g}{_busy(g)} | "
                f"{g['trajectories_per_s']:,.0f} | {ratios} |"
            )
        lines.append("")
        for method, m in tu["tolsim"].items():
            lines.append(
                f"tolsim {method}: {m['mean_steps_per_path']:.4g} steps, "
                f"{m['mean_events_per_path']:.4g} events, {m['mean_rejected_per_path']:.3g} "
                f"rejected per path; first call {m['first_call_s']:.2f} s."
            )
        if name == "tumour_1e9":
            hybrid_rows = tu["tolsim"]["hybrid"]["rows"]
            batch = _row(hybrid_rows, "simulate", all_threads)["s_per_path"]
            alone = {
                th: _row(hybrid_rows, "simulate (1 path)", th)["s_per_path"]
                for th in thread_counts_of(hybrid_rows)
            }
            target = results["targets"]["hybrid_path_s"]
            lines.append(
                f"Target: one hybrid path < {target * 1e3:.0f} ms: "
                + ("met" if max(batch, min(alone.values())) < target else "NOT met")
                + f" ({batch * 1e3:.3g} ms per path in a batch of "
                f"{_row(hybrid_rows, 'simulate', 1)['paths']}; "
                "one path alone through simulate(): "
                + ", ".join(f"{v * 1e3:.3g} ms on {th} thread(s)" for th, v in alone.items())
                + ")."
            )
        odes = tu.get("ode_vs_independent_ode_rel_diff")
        lines += [
            "",
            "Agreement (mean over pooled paths; relative difference, z-score). ODE: tolsim "
            f"rtol {ODE_RTOL:g}"
            + (
                ""
                if odes is None
                else f" (vs solve_ivp DOP853 of the peer's equations at the end: S "
                f"{_pct(odes['S'])}, T {_pct(odes['T'])})"
            )
            + ". GillesPy2 at withdrawal: a separate one-phase run.",
            "",
            "| solver | paths | T at withdrawal | vs ODE | N at withdrawal | vs ODE | "
            "T at end | vs ODE | N at end | vs ODE |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| ODE (tolsim, rtol {ODE_RTOL:g}) | | {tu['ode']['withdrawal']['T']:.5g} | | "
            f"{tu['ode']['withdrawal']['N']:.6g} | | {tu['ode']['end']['T']:.5g} | | "
            f"{tu['ode']['end']['N']:.6g} | |",
        ]
        entries = [(f"tolsim {k}", m, m["n_paths_pooled"]) for k, m in tu["tolsim"].items()]
        entries += [(f"GillesPy2 {g['solver']}", g, g["n_final"]) for g in peers.values()]
        for label, m, n in entries:
            cells = []
            for d in ("withdrawal", "end"):
                for k in ("T", "N"):
                    c = m["vs_ode"][d][k]
                    z = "" if not np.isfinite(c["z"]) else f", z {c['z']:+.1f}"
                    cells += [f"{m['mean'][d][k]:.5g}", f"{_pct(c['rel_diff'])}{z}"]
            lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
        for g in peers.values():
            for method, cmp in g["tolsim_vs_this"].items():
                parts = [
                    f"{k} at {d} {_pct(cmp[d][k]['rel_diff'])}"
                    + ("" if not np.isfinite(cmp[d][k]["z"]) else f" (z {cmp[d][k]['z']:+.1f})")
                    for d in ("withdrawal", "end")
                    for k in ("T", "N")
                ]
                lines.append(f"tolsim {method} vs GillesPy2 {g['solver']}: " + ", ".join(parts))

    cold = results.get("cold_compile")
    if cold:
        lines += [
            "",
            "## Compile time (fresh processes, empty cache folders)",
            "",
            "| process | import tolsim (s) | first SSA call (s) | then tau (s) | then hybrid (s) "
            "| process wall (s) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in cold["runs"]:
            lines.append(
                f"| {r['kind']} | {r['import_s']:.2f} | {r['ssa_first_call_s']:.2f} | "
                f"{r['tau_first_call_s']:.3f} | {r['hybrid_first_call_s']:.3f} | "
                f"{r['process_wall_s']:.2f} |"
            )
    if results.get("gillespy2_compile_s"):
        lines.append(
            "GillesPy2 build time per solver (excluded from its timings): "
            + ", ".join(f"{k} {v:.1f} s" for k, v in results["gillespy2_compile_s"].items())
            + "."
        )
    return "\n".join(lines)


def thread_counts_of(rows) -> list[int]:
    return sorted({r["threads"] for r in rows if r["timing"] == "simulate"}, reverse=True)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few paths, no -O0")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-compile processes")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="before each section wait up to S seconds for other processes to use < 0.2 cores",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file to write")
    args = parser.parse_args(argv)
    quick = args.quick
    QUIET["limit_s"] = args.wait_quiet
    args.ssa_paths = 4 if quick else 16
    args.ssa_repeats = 3 if quick else 5
    args.gp_ssa_paths = 4 if quick else 16
    args.gp_ssa_paths_o0 = 6
    args.gp_repeats = 2 if quick else 3
    args.tumour_paths = 20 if quick else 100
    args.tumour_repeats = 3 if quick else 5
    args.single_repeats = 5 if quick else 100
    args.gp_tumour_paths = 10 if quick else 50
    cold = not (quick or args.no_cold)
    logging.getLogger("GillesPy2").setLevel(logging.ERROR)

    model = tolsim.models.TwoState()
    check_same_model(model)
    facts = machine_facts()
    results: dict[str, object] = {
        "machine": facts,
        "quick": quick,
        "targets": {
            "ssa_events_per_s": TARGET_SSA_EVENTS_PER_S,
            "ssa_threads": 2,
            "hybrid_path_s": TARGET_HYBRID_PATH_S,
        },
    }
    for name in ("ssa_1e4", *TUMOUR_CASES):
        print(f"{name} ...", flush=True)
        waited = wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else None
        with OtherLoad() as load:
            results[name] = ssa_1e4(args) if name == "ssa_1e4" else tumour(args, name)
        results[name]["other_processes_cores"] = load.cores
        results[name]["waited_for_quiet"] = waited
    if gp is not None:
        peers = [*results["ssa_1e4"]["gillespy2"]]
        peers += [g for name in TUMOUR_CASES for g in results[name]["gillespy2"]]
        results["gillespy2_compile_s"] = {
            g["solver"]: g["compile_s"] for g in peers if g.get("compile_s") is not None
        }
    if cold:
        print("cold compile ...", flush=True)
        if args.wait_quiet > 0:
            wait_quiet(args.wait_quiet)
        results["cold_compile"] = cold_compile()
    facts["numba_threading_layer"] = machine_facts()["numba_threading_layer"]
    facts["load_average_1_5_15_at_end"] = machine_facts()["load_average_1_5_15"]
    print()
    print(report(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(results, indent=2, allow_nan=True, default=_json_default) + "\n"
    )
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
