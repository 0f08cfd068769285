"""Work–precision benchmark: tolsim against scipy ``solve_ivp`` on the issue's scenario.

Scenario: the two-state logistic model over 360 days, 120 days of tamoxifen at 1 µM then 240
days off, daily output, 10,000 parameter sets with eight rates jittered by uniform(0.8, 1.2).

For a subset of M samples a tight reference (``solve_ivp`` DOP853, rtol 1e-13, atol 1e-12,
piece by piece, with a plain-Python right-hand side written from the model equations) gives
the error metric: the maximum over the subset and over time of ``|N - N_ref| / N_ref``.
Baselines (``solve_ivp`` RK45 and LSODA in a Python loop over the subset) and tolsim (the whole
ensemble in one call) are timed in the same run, after tolsim's JIT warm-up; compile or
cache-load time is reported separately. Extras: the exact (matrix exponential) path against
DOPRI5 on the linear model, and an oral-PK scenario.

Run::

    python benchmarks/work_precision.py              # 10,000 samples, a few minutes
    python benchmarks/work_precision.py --quick      # 500 samples, a sanity run

Prints markdown tables and writes the numbers to ``benchmarks/results/work_precision.json``.
"""

from __future__ import annotations

import os

# Single-threaded BLAS before numpy is imported: OpenBLAS's worker threads spin while waiting
# for work and steal the (few) cores from numba's parallel threads, which makes the ensemble
# timings slow and noisy. Nothing timed here needs a threaded BLAS.
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
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

import tolsim  # noqa: E402
from tolsim.simulate import lane_kernels, ode_kernels, solve_batch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "work_precision.json"

DURATION_DAYS = 360.0
TAMOXIFEN_DAYS = 120.0
TAMOXIFEN_UM = 1.0
JITTERED = ("lambda_S", "lambda_T", "delta_S", "delta_T", "kappa_S", "mu_E", "nu_off", "K")
SEED = 2026
ATOL_CELLS = 1e-6
REFERENCE_TOLERANCES = {"rtol": 1e-13, "atol": 1e-12}
IVP_METHODS = ("RK45", "LSODA")
IVP_RTOLS = (1e-3, 1e-6, 1e-8)
TOLSIM_RTOLS = (1e-3, 1e-5, 3e-6, 2e-6, 1e-6, 1e-7, 1e-8, 1e-10)
LOCKSTEP_RTOLS = (1e-3, 1e-5, 3e-6, 2e-6, 1e-6, 1e-8, 1e-10)
KERNEL_RTOL = 1e-6
HEADLINE_RTOL = 1e-6  # the RK45 setting of the interleaved rounds
EXACT_VS_RK_RTOL = 1e-8
EXACT_VS_RK_TIGHT_RTOL = 1e-12
PK_RTOL = 1e-6
# tolsim also at tighter tolerances, to find the one matching the baseline's accuracy.
PK_TOLSIM_RTOLS = (1e-6, 1e-7, 1e-8, 1e-9)
PK_REFERENCE_TOLERANCES = {"rtol": 1e-12, "atol": 1e-12}
PK_DOSE_MG = 0.1
# Absolute tolerances of the augmented PK system for the baseline: cells, cells, mg, mg. 1e-9 mg
# of tamoxifen in the mouse's central compartment is ~4e-9 µM, far below any EC50.
PK_BASELINE_ATOL = (ATOL_CELLS, ATOL_CELLS, 1e-9, 1e-9)


# --------------------------------------------------------------------------------------------
# the model equations, written independently of the kernels (scalar Python)


def hill(concentration_um: float, ec50_um: float, hill_coefficient: float) -> float:
    """Emax exposure ``C^h / (C^h + EC50^h)``; 0 without drug."""
    if concentration_um <= 0.0:
        return 0.0
    return 1.0 / (1.0 + (ec50_um / concentration_um) ** hill_coefficient)


def two_state_rhs(t, y, p, c_tam_um, c_inh_um, logistic):
    """dS/dt, dT/dt of the two-state model (issue 2's equations) at constant concentrations."""
    s, tol = y
    e_tam = hill(c_tam_um, p["EC50_tam"], p["h_tam"])
    e_inh = hill(c_inh_um, p["EC50_inh"], p["h_inh"])
    g = 1.0 - (s + tol) / p["K"] if logistic else 1.0
    switch = p["mu_0"] + p["mu_E"] * e_tam
    revert = p["nu_0"] + p["nu_off"] * (1.0 - e_tam)
    net_s = p["lambda_S"] * (1.0 - p["eps_S"] * e_tam) * g - p["delta_S"] - p["kappa_S"] * e_tam
    net_t = (
        p["lambda_T"] * (1.0 - p["eps_T"] * e_tam) * (1.0 - p["iota"] * e_inh) * g
        - p["delta_T"]
        - p["kappa_T"] * e_inh
    )
    ds = (net_s - switch) * s + revert * tol
    dt = (net_t - revert) * tol + switch * s
    return [ds, dt]


def pk_augmented_rhs(t, y, p, pk):
    """Two-state logistic model plus depot and central tamoxifen amounts (mg) as states."""
    s, tol, depot_mg, central_mg = y
    c_tam_um = central_mg * 1000.0 / (pk.volume_l * pk.molar_mass_g_per_mol)
    ds, dt = two_state_rhs(t, (s, tol), p, c_tam_um, 0.0, True)
    absorption = pk.ka_per_day * depot_mg
    return [ds, dt, -absorption, absorption - pk.ke_per_day * central_mg]


# --------------------------------------------------------------------------------------------
# solve_ivp piece by piece


def ivp_phases(p, breakpoints, tamoxifen_um, times, method, logistic=True, **tolerances):
    """N(t) (cells) at ``times`` from ``solve_ivp`` over constant-concentration pieces."""
    y = np.array([p["S0"], p["T0"]])
    out = np.empty((times.size, 2))
    out[times == 0.0] = y
    for a, b, c_tam in zip(breakpoints[:-1], breakpoints[1:], tamoxifen_um, strict=True):
        mask = (times > a) & (times <= b)
        sol = solve_ivp(
            two_state_rhs,
            (a, b),
            y,
            method=method,
            t_eval=np.unique(np.r_[times[mask], b]),
            args=(p, c_tam, 0.0, logistic),
            **tolerances,
        )
        if sol.status != 0:
            raise RuntimeError(f"solve_ivp {method} failed on [{a}, {b}]: {sol.message}")
        out[mask] = sol.y[:, : mask.sum()].T
        y = sol.y[:, -1]
    return out.sum(axis=1)


def ivp_oral(p, pk, dose_days, dose_mg, times, method, **tolerances):
    """N(t) (cells) from ``solve_ivp`` of the augmented system with dose jumps at breakpoints."""
    y = np.array([p["S0"], p["T0"], 0.0, 0.0])
    breakpoints = np.unique(np.r_[0.0, dose_days, times[-1]])
    doses = set(dose_days.tolist())
    out = np.empty((times.size, 4))
    out[times == 0.0] = y
    for a, b in zip(breakpoints[:-1], breakpoints[1:], strict=True):
        if a in doses:
            y[2] += pk.bioavailability * dose_mg
        mask = (times > a) & (times <= b)
        sol = solve_ivp(
            pk_augmented_rhs,
            (a, b),
            y,
            method=method,
            t_eval=np.unique(np.r_[times[mask], b]),
            args=(p, pk),
            **tolerances,
        )
        if sol.status != 0:
            raise RuntimeError(f"solve_ivp {method} failed on [{a}, {b}]: {sol.message}")
        out[mask] = sol.y[:, : mask.sum()].T
        y = sol.y[:, -1]
    return out[:, :2].sum(axis=1)


# --------------------------------------------------------------------------------------------
# helpers


def jittered_table(model, n_samples: int) -> dict[str, np.ndarray]:
    """Parameter table: the eight rates of :data:`JITTERED` times uniform(0.8, 1.2)."""
    rng = np.random.default_rng(SEED)
    defaults = model.default_params()
    return {name: defaults[name] * rng.uniform(0.8, 1.2, n_samples) for name in JITTERED}


def row_params(model, table: dict[str, np.ndarray], i: int) -> dict[str, float]:
    params = model.default_params()
    params.update({name: float(values[i]) for name, values in table.items()})
    return params


def max_relative_error(n_cells: np.ndarray, n_reference: np.ndarray) -> float:
    return float(np.max(np.abs(n_cells - n_reference) / np.abs(n_reference)))


def timed(call, repeats: int) -> tuple[float, object]:
    """Median wall time (s) of ``repeats`` calls, and the last call's result."""
    seconds = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


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
        "numba": numba.__version__,
        "tolsim": tolsim.__version__,
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }


def fmt_err(x: float) -> str:
    return f"{x:.1e}"


def fmt_us(seconds: float) -> str:
    us = seconds * 1e6
    return f"{us:,.0f}" if us >= 100 else f"{us:.3g}"


def fmt_rate(per_second: float) -> str:
    return f"{per_second:,.0f}"


# --------------------------------------------------------------------------------------------
# the parts of the benchmark


def work_precision(args) -> dict[str, object]:
    model = tolsim.models.TwoState()
    schedule = tolsim.Schedule.from_phases(
        [{"days": TAMOXIFEN_DAYS, "tamoxifen": TAMOXIFEN_UM}, {"days": DURATION_DAYS - 120.0}]
    )
    times = np.arange(DURATION_DAYS + 1.0)
    table = jittered_table(model, args.samples)
    subset = [row_params(model, table, i) for i in range(args.subset)]
    breakpoints = schedule.breakpoints()
    tamoxifen_um = schedule.concentrations(breakpoints[:-1], ("tamoxifen",))[:, 0]

    print(f"Reference: solve_ivp DOP853 {REFERENCE_TOLERANCES} on {args.subset} samples ...")
    start = time.perf_counter()
    reference = np.stack(
        [
            ivp_phases(p, breakpoints, tamoxifen_um, times, "DOP853", **REFERENCE_TOLERANCES)
            for p in subset
        ]
    )
    reference_s = time.perf_counter() - start

    def ivp_loop(method, rtol):
        return np.stack(
            [
                ivp_phases(p, breakpoints, tamoxifen_um, times, method, rtol=rtol, atol=ATOL_CELLS)
                for p in subset
            ]
        )

    rows = []
    for method in IVP_METHODS:
        for rtol in IVP_RTOLS:
            seconds, n_cells = timed(
                lambda method=method, rtol=rtol: ivp_loop(method, rtol), args.ivp_repeats
            )
            per = seconds / args.subset
            rows.append(
                {
                    "solver": f"solve_ivp {method} (Python loop)",
                    "rtol": rtol,
                    "error": max_relative_error(n_cells, reference),
                    "time_per_trajectory_s": per,
                    "trajectories_per_s": 1.0 / per,
                    "mean_accepted_steps": None,
                    "n_timed": args.subset,
                }
            )
            print(f"  {rows[-1]['solver']} rtol {rtol:g}: {per * 1e6:,.0f} µs/trajectory")

    def run(rtol, method="auto", m=model, lockstep=False):
        return tolsim.simulate(
            m, table, schedule, times, method=method, rtol=rtol, atol=ATOL_CELLS,
            lockstep=lockstep,
        )  # fmt: skip

    start = time.perf_counter()
    run(TOLSIM_RTOLS[0])
    first_call_s = time.perf_counter() - start
    warm_s, _ = timed(lambda: run(TOLSIM_RTOLS[0]), 1)
    run(TOLSIM_RTOLS[0], lockstep=True)  # compile or load the lockstep kernel
    modes = (("independent", False, TOLSIM_RTOLS), ("lockstep", True, LOCKSTEP_RTOLS))
    for mode, lockstep, rtols in modes:
        for rtol in rtols:
            seconds, ds = timed(
                lambda rtol=rtol, lockstep=lockstep: run(rtol, lockstep=lockstep),
                args.tolsim_repeats,
            )
            per = seconds / args.samples
            n_cells = ds.N.values[: args.subset]
            rows.append(
                {
                    "solver": "tolsim.simulate auto"
                    + (", lockstep=True" if lockstep else "")
                    + " (ensemble)",
                    "mode": mode,
                    "rtol": rtol,
                    "error": max_relative_error(n_cells, reference),
                    "time_per_trajectory_s": per,
                    "trajectories_per_s": 1.0 / per,
                    "mean_accepted_steps": float(ds.n_steps.mean()),
                    "n_timed": args.samples,
                    "method_used": ds.attrs["method"],
                    "switched_to_stiff": int(ds.switched_to_stiff.sum()),
                }
            )
            print(f"  tolsim {mode} rtol {rtol:g}: {per * 1e6:.3g} µs/trajectory")

    ratios = []
    for mode, _, _ in modes:
        tolsim_rows = [r for r in rows if r.get("mode") == mode]
        for r in rows:
            if r["solver"].startswith("tolsim"):
                continue
            candidates = [t for t in tolsim_rows if t["error"] <= r["error"]]
            best = min(candidates, key=lambda t: t["time_per_trajectory_s"], default=None)
            ratios.append(
                {
                    "mode": mode,
                    "solve_ivp": r["solver"],
                    "solve_ivp_rtol": r["rtol"],
                    "solve_ivp_error": r["error"],
                    "tolsim_rtol": best["rtol"] if best else None,
                    "tolsim_error": best["error"] if best else None,
                    "speedup": r["time_per_trajectory_s"] / best["time_per_trajectory_s"]
                    if best
                    else None,
                }
            )
    # The headline ratio again, timed back to back in rounds: the machine's speed can change
    # between the minutes in which the tables above time the baseline and tolsim.
    headline = []
    for mode, lockstep, _ in modes:
        pick = next(
            q
            for q in ratios
            if q["mode"] == mode
            and q["solve_ivp"].startswith("solve_ivp RK45")
            and q["solve_ivp_rtol"] == HEADLINE_RTOL
        )
        if pick["tolsim_rtol"] is None:
            continue
        per_round = []
        for _ in range(args.rounds):
            ivp_s, _ = timed(lambda: ivp_loop("RK45", HEADLINE_RTOL), 1)
            tolsim_s, _ = timed(
                lambda pick=pick, lockstep=lockstep: run(pick["tolsim_rtol"], lockstep=lockstep),
                1,
            )
            per_round.append((ivp_s / args.subset) / (tolsim_s / args.samples))
        headline.append(
            {
                "mode": mode,
                "solve_ivp_rtol": HEADLINE_RTOL,
                "tolsim_rtol": pick["tolsim_rtol"],
                "rounds": args.rounds,
                "speedup_median": statistics.median(per_round),
                "speedup_min": min(per_round),
                "speedup_max": max(per_round),
                "speedups": per_round,
            }
        )
        print(f"  interleaved {mode}: median {headline[-1]['speedup_median']:,.0f}×")
    kernel_rows = kernel_comparison(model, table, schedule, times, args.tolsim_repeats)

    linear = tolsim.models.TwoState(crowding="none")
    start = time.perf_counter()
    run(EXACT_VS_RK_RTOL, "exact", linear)
    exact_first_s = time.perf_counter() - start
    run(EXACT_VS_RK_RTOL, "dopri5", linear)
    exact_s, exact = timed(lambda: run(EXACT_VS_RK_RTOL, "exact", linear), args.tolsim_repeats)
    rk_s, rk = timed(lambda: run(EXACT_VS_RK_RTOL, "dopri5", linear), args.tolsim_repeats)
    linear_reference = np.stack(
        [
            ivp_phases(
                row_params(linear, table, i),
                breakpoints,
                tamoxifen_um,
                times,
                "DOP853",
                logistic=False,
                **REFERENCE_TOLERANCES,
            )
            for i in range(args.subset)
        ]
    )
    exact_vs_rk = {
        "model": "TwoState(crowding='none')",
        "rtol_dopri5": EXACT_VS_RK_RTOL,
        "n_samples": args.samples,
        "exact_first_call_s": exact_first_s,
        "exact_time_per_trajectory_s": exact_s / args.samples,
        "dopri5_time_per_trajectory_s": rk_s / args.samples,
        "speedup_exact_over_dopri5": rk_s / exact_s,
        "max_relative_difference": max_relative_error(rk.N.values, exact.N.values),
        "exact_error_vs_dop853_subset": max_relative_error(
            exact.N.values[: args.subset], linear_reference
        ),
        "dopri5_error_vs_dop853_subset": max_relative_error(
            rk.N.values[: args.subset], linear_reference
        ),
        "dopri5_mean_accepted_steps": float(rk.n_steps.mean()),
    }
    # the tightest Runge-Kutta setting, closest to the exact path's accuracy
    tight_s, tight = timed(
        lambda: run(EXACT_VS_RK_TIGHT_RTOL, "dopri5", linear), args.tolsim_repeats
    )
    exact_vs_rk.update(
        {
            "rtol_dopri5_tight": EXACT_VS_RK_TIGHT_RTOL,
            "dopri5_tight_time_per_trajectory_s": tight_s / args.samples,
            "dopri5_tight_error_vs_dop853_subset": max_relative_error(
                tight.N.values[: args.subset], linear_reference
            ),
            "dopri5_tight_mean_accepted_steps": float(tight.n_steps.mean()),
            "speedup_exact_over_dopri5_tight": tight_s / exact_s,
        }
    )
    # both ratios through simulate() again, back to back in rounds (as the headline above)
    for key, rtol in (("", EXACT_VS_RK_RTOL), ("_tight", EXACT_VS_RK_TIGHT_RTOL)):
        per_round = []
        for _ in range(args.rounds):
            rk_round_s, _ = timed(lambda rtol=rtol: run(rtol, "dopri5", linear), 1)
            exact_round_s, _ = timed(lambda: run(EXACT_VS_RK_RTOL, "exact", linear), 1)
            per_round.append(rk_round_s / exact_round_s)
        exact_vs_rk[f"interleaved{key}"] = {
            "rounds": args.rounds,
            "speedup_median": statistics.median(per_round),
            "speedup_min": min(per_round),
            "speedup_max": max(per_round),
            "speedups": per_round,
        }
    # the kernels alone (a direct call into preallocated arrays: no validation, no Dataset)
    kernels = ode_kernels(linear, 0)  # constants and sizes; each call takes its code's copy
    packed = linear.pack_table(table)
    x0 = linear.initial_state(packed)
    compiled = tuple(schedule.compile(linear.drugs))
    stoich = linear.stoichiometry.astype(np.float64)
    out_x = np.empty((args.samples, times.size, len(linear.states)))
    out_dn = np.empty((args.samples, times.size))
    stats = np.zeros((args.samples, kernels.N_STATS), dtype=np.int64)
    no_columns, no_totals = np.zeros(0, dtype=np.int64), np.empty((0, times.size))

    def kernel(code, rtol):
        stats[:] = 0
        ode_kernels(linear, code).solve_batch(
            packed,
            x0,
            compiled,
            stoich,
            times,
            rtol,
            ATOL_CELLS,
            1_000_000,
            code,
            out_x,
            out_dn,
            stats,
            no_columns,
            no_totals,
            no_totals,
        )

    kernel_exact_s, _ = timed(lambda: kernel(kernels.METHOD_EXACT, 1e-6), args.tolsim_repeats)
    kernel_rk_s, _ = timed(
        lambda: kernel(kernels.METHOD_DOPRI5, EXACT_VS_RK_RTOL), args.tolsim_repeats
    )
    kernel_tight_s, _ = timed(
        lambda: kernel(kernels.METHOD_DOPRI5, EXACT_VS_RK_TIGHT_RTOL), args.tolsim_repeats
    )
    exact_vs_rk.update(
        {
            "kernel_exact_time_per_trajectory_s": kernel_exact_s / args.samples,
            "kernel_dopri5_time_per_trajectory_s": kernel_rk_s / args.samples,
            "kernel_dopri5_tight_time_per_trajectory_s": kernel_tight_s / args.samples,
        }
    )
    return {
        "scenario": {
            "model": "TwoState(crowding='logistic')",
            "schedule": schedule.describe(),
            "output_days": f"np.arange({DURATION_DAYS + 1:g})",
            "n_samples": args.samples,
            "jittered": list(JITTERED),
            "jitter": "uniform(0.8, 1.2) factor",
            "seed": SEED,
            "atol_cells": ATOL_CELLS,
            "reference": f"solve_ivp DOP853 {REFERENCE_TOLERANCES}, piece by piece",
            "reference_samples": args.subset,
            "reference_time_s": reference_s,
            "error_metric": "max over subset and time of |N - N_ref| / N_ref",
            "ivp_repeats": args.ivp_repeats,
            "tolsim_repeats": args.tolsim_repeats,
        },
        "first_call_s": first_call_s,
        "warm_call_s": warm_s,
        "rows": rows,
        "ratios": ratios,
        "interleaved": headline,
        "kernels": kernel_rows,
        "exact_vs_rk": exact_vs_rk,
    }


def kernel_comparison(model, table, schedule, times, repeats) -> dict[str, object]:
    """The CPU kernels alone (``solve_batch``: no validation, no Dataset) at rtol
    ``KERNEL_RTOL``: one trajectory at a time, on lanes (the default), lockstep groups.
    Interleaved rounds, medians, so that a slow minute hits all three alike."""
    packed = model.pack_table(table)
    compiled = schedule.compile(model.drugs)
    variants = {
        "one trajectory per thread (lanes=False)": {"lanes": False},
        "lanes, own steps (default)": {},
        "lockstep groups": {"lockstep": True},
    }
    seconds = {name: [] for name in variants}
    steps = {}
    for _ in range(repeats + 1):  # the first round warms up
        for name, options in variants.items():
            start = time.perf_counter()
            _, _, stats = solve_batch(
                model, packed, compiled, times, KERNEL_RTOL, ATOL_CELLS, 100_000, 1, **options
            )
            seconds[name].append(time.perf_counter() - start)
            steps[name] = float(stats[:, 1].mean())
    n = packed.shape[0]
    return {
        "rtol": KERNEL_RTOL,
        "rows": [
            {
                "kernel": name,
                "time_per_trajectory_s": statistics.median(seconds[name][1:]) / n,
                "mean_accepted_steps": steps[name],
            }
            for name in variants
        ],
    }


def pk_scenario(args) -> dict[str, object]:
    model = tolsim.models.TwoState()
    pk = tolsim.PK.tamoxifen_mouse()
    schedule = tolsim.Schedule.oral(
        "tamoxifen",
        dose_mg=PK_DOSE_MG,
        every_days=1.0,
        stop_day=TAMOXIFEN_DAYS,
        pk=pk,
        duration_days=DURATION_DAYS,
    )
    dose_days = np.arange(0.0, TAMOXIFEN_DAYS, 1.0)
    np.testing.assert_array_equal(dose_days, schedule.oral_doses[0].dose_days)
    fine = np.linspace(0.0, TAMOXIFEN_DAYS + 2.0, 200_001)
    c_tam = schedule.concentrations(fine, ("tamoxifen",))[:, 0]
    steady = fine >= TAMOXIFEN_DAYS - 10.0
    times = np.arange(DURATION_DAYS + 1.0)
    table = jittered_table(model, args.samples)
    subset = [row_params(model, table, i) for i in range(args.pk_subset)]

    reference = np.stack(
        [
            ivp_oral(p, pk, dose_days, PK_DOSE_MG, times, "DOP853", **PK_REFERENCE_TOLERANCES)
            for p in subset
        ]
    )

    def loop():
        return np.stack(
            [
                ivp_oral(
                    p,
                    pk,
                    dose_days,
                    PK_DOSE_MG,
                    times,
                    "RK45",
                    rtol=PK_RTOL,
                    atol=np.array(PK_BASELINE_ATOL),
                )
                for p in subset
            ]
        )

    ivp_s, ivp_n = timed(loop, args.ivp_repeats)

    def run(rtol):
        return tolsim.simulate(model, table, schedule, times, rtol=rtol, atol=ATOL_CELLS)

    start = time.perf_counter()
    run(PK_RTOL)
    first_s = time.perf_counter() - start
    ivp_per = ivp_s / args.pk_subset
    ivp_error = max_relative_error(ivp_n, reference)
    rows = []
    for rtol in PK_TOLSIM_RTOLS:
        seconds, ds = timed(lambda rtol=rtol: run(rtol), args.pk_repeats)
        per = seconds / args.samples
        rows.append(
            {
                "rtol": rtol,
                "error": max_relative_error(ds.N.values[: args.pk_subset], reference),
                "time_per_trajectory_s": per,
                "speedup": ivp_per / per,
                "mean_accepted_steps": float(ds.n_steps.mean()),
                "method_used": ds.attrs["method"],
                "switched_to_stiff": int(ds.switched_to_stiff.sum()),
            }
        )
        print(f"  tolsim PK rtol {rtol:g}: {per * 1e6:,.0f} µs/trajectory")
    headline = next(r for r in rows if r["rtol"] == PK_RTOL)
    matched = [r for r in rows if r["error"] <= ivp_error]
    best = min(matched, key=lambda r: r["time_per_trajectory_s"]) if matched else None
    return {
        "scenario": schedule.describe(),
        "note": "extra scenario, not the issue's: oral PK in a mouse",
        "dose_mg": PK_DOSE_MG,
        "peak_um": float(c_tam.max()),
        "steady_state_peak_um": float(c_tam[steady & (fine < TAMOXIFEN_DAYS)].max()),
        "steady_state_trough_um": float(c_tam[steady & (fine < TAMOXIFEN_DAYS)].min()),
        "rtol": PK_RTOL,
        "baseline_atol": list(PK_BASELINE_ATOL),
        "reference": f"solve_ivp DOP853 {PK_REFERENCE_TOLERANCES}, augmented system",
        "n_baseline_samples": args.pk_subset,
        "n_tolsim_samples": args.samples,
        "baseline_repeats": args.ivp_repeats,
        "tolsim_repeats": args.pk_repeats,
        "tolsim_first_call_s": first_s,
        "ivp_rk45_time_per_trajectory_s": ivp_per,
        "ivp_rk45_error": ivp_error,
        "tolsim_time_per_trajectory_s": headline["time_per_trajectory_s"],
        "tolsim_error": headline["error"],
        "speedup": headline["speedup"],
        "tolsim_rows": rows,
        "equal_accuracy": None
        if best is None
        else {
            "tolsim_rtol": best["rtol"],
            "tolsim_error": best["error"],
            "speedup": best["speedup"],
        },
    }


# --------------------------------------------------------------------------------------------
# report


def _spread(rounds: dict[str, object]) -> str:
    """``median× (min–max×)`` of back-to-back rounds."""
    return (
        f"{rounds['speedup_median']:,.1f}× "
        f"({rounds['speedup_min']:,.1f}–{rounds['speedup_max']:,.1f}×)"
    )


def report(results: dict[str, object]) -> str:
    facts = results["machine"]
    wp = results["work_precision"]
    sc = wp["scenario"]
    lines = [
        "## Work–precision: two-state logistic model, 120 days tamoxifen 1 µM + 240 days off",
        "",
        f"{sc['n_samples']:,} jittered parameter sets (seed {sc['seed']}), daily output, "
        f"atol {sc['atol_cells']:g} cells. Error: max over {sc['reference_samples']} samples "
        "and 361 days of |N - N_ref| / N_ref, reference solve_ivp DOP853 rtol 1e-13, "
        "atol 1e-12. solve_ivp: Python loop over the subset, median of "
        f"{sc['ivp_repeats']}; tolsim: one call on all samples, median of "
        f"{sc['tolsim_repeats']}, after warm-up.",
        "",
        f"Machine: {facts['cpu_count']} CPUs, numba {facts['numba']} with "
        f"{facts['numba_threads']} threads ({facts['numba_threading_layer']}), numpy "
        f"{facts['numpy']}, scipy {facts['scipy']}, Python {facts['python']}, {facts['date']}, "
        f"load average at start {facts['load_average_1_5_15'][0]:.2f}.",
        "",
        "| solver | rtol | error | µs / trajectory | trajectories / s | mean accepted steps |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in wp["rows"]:
        steps = "" if r["mean_accepted_steps"] is None else f"{r['mean_accepted_steps']:.1f}"
        lines.append(
            f"| {r['solver']} | {r['rtol']:g} | {fmt_err(r['error'])} | "
            f"{fmt_us(r['time_per_trajectory_s'])} | {fmt_rate(r['trajectories_per_s'])} | "
            f"{steps} |"
        )
    lines += [
        "",
        f"tolsim first call incl. compile/cache load: {wp['first_call_s']:.2f} s "
        f"(the same call warm: {wp['warm_call_s']:.2f} s, {sc['n_samples']:,} samples).",
        "",
        "### Ratios at equal or better accuracy",
        "",
        "Fastest tolsim row of each mode whose error is <= the solve_ivp row's error "
        "(independent: every sample on its own steps, the default; lockstep: "
        "`simulate(..., lockstep=True)`, groups of "
        f"{lane_kernels(tolsim.models.TwoState()).LOCKSTEP_LANES} "
        "samples on shared steps).",
        "",
        "| tolsim mode | solve_ivp | rtol | error | tolsim rtol | tolsim error | "
        "speed-up (time ratio) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for q in wp["ratios"]:
        if q["tolsim_rtol"] is None:
            tail = "none | | |"
        else:
            tail = f"{q['tolsim_rtol']:g} | {fmt_err(q['tolsim_error'])} | {q['speedup']:,.0f}× |"
        lines.append(
            f"| {q.get('mode', 'independent')} | "
            f"{q['solve_ivp'].removeprefix('solve_ivp ').removesuffix(' (Python loop)')} | "
            f"{q['solve_ivp_rtol']:g} | {fmt_err(q['solve_ivp_error'])} | {tail}"
        )
    headline = wp.get("interleaved")
    if headline:
        lines += [
            "",
            f"The same ratio against RK45 at rtol {HEADLINE_RTOL:g}, timed back to back: each "
            f"round one RK45 loop over the subset, then one tolsim call on all samples "
            f"({headline[0]['rounds']} rounds):",
            "",
            "| tolsim mode | tolsim rtol | speed-up, median | min | max |",
            "|---|---:|---:|---:|---:|",
        ]
        for q in headline:
            lines.append(
                f"| {q['mode']} | {q['tolsim_rtol']:g} | {q['speedup_median']:,.0f}× | "
                f"{q['speedup_min']:,.0f}× | {q['speedup_max']:,.0f}× |"
            )
    kernels = wp.get("kernels")
    if kernels is not None:
        lines += [
            "",
            f"CPU kernels alone (`solve_batch`, no Dataset), rtol {kernels['rtol']:g}, "
            "interleaved rounds, medians:",
            "",
            "| kernel | µs / trajectory | mean accepted steps |",
            "|---|---:|---:|",
        ]
        for k in kernels["rows"]:
            lines.append(
                f"| {k['kernel']} | {fmt_us(k['time_per_trajectory_s'])} | "
                f"{k['mean_accepted_steps']:.1f} |"
            )
    ex = wp["exact_vs_rk"]
    kernel_exact = ex["kernel_exact_time_per_trajectory_s"]
    kernel_ratio = ex["kernel_dopri5_time_per_trajectory_s"] / kernel_exact
    kernel_tight_ratio = ex["kernel_dopri5_tight_time_per_trajectory_s"] / kernel_exact
    lines += [
        "",
        "### Exact linear path vs Runge–Kutta path",
        "",
        f"Same ensemble, TwoState(crowding='none'), {ex['n_samples']:,} samples, median of "
        f"{sc['tolsim_repeats']}:",
        "",
        "| method | simulate(): µs / trajectory | kernel alone: µs / trajectory | "
        "error vs DOP853 (subset) |",
        "|---|---:|---:|---:|",
        f"| exact (matrix exponential) | {fmt_us(ex['exact_time_per_trajectory_s'])} | "
        f"{fmt_us(ex['kernel_exact_time_per_trajectory_s'])} | "
        f"{fmt_err(ex['exact_error_vs_dop853_subset'])} |",
        f"| dopri5 rtol {ex['rtol_dopri5']:g} ({ex['dopri5_mean_accepted_steps']:.0f} steps) | "
        f"{fmt_us(ex['dopri5_time_per_trajectory_s'])} | "
        f"{fmt_us(ex['kernel_dopri5_time_per_trajectory_s'])} | "
        f"{fmt_err(ex['dopri5_error_vs_dop853_subset'])} |",
        f"| dopri5 rtol {ex['rtol_dopri5_tight']:g} "
        f"({ex['dopri5_tight_mean_accepted_steps']:.0f} steps) | "
        f"{fmt_us(ex['dopri5_tight_time_per_trajectory_s'])} | "
        f"{fmt_us(ex['kernel_dopri5_tight_time_per_trajectory_s'])} | "
        f"{fmt_err(ex['dopri5_tight_error_vs_dop853_subset'])} |",
        "",
        f"exact vs dopri5 rtol {ex['rtol_dopri5']:g}: "
        f"{ex['speedup_exact_over_dopri5']:.1f}× (simulate), "
        f"{kernel_ratio:.1f}× (kernels); vs dopri5 rtol {ex['rtol_dopri5_tight']:g}: "
        f"{ex['speedup_exact_over_dopri5_tight']:.1f}× (simulate), "
        f"{kernel_tight_ratio:.1f}× (kernels). Back to back through simulate(), "
        f"{ex['interleaved']['rounds']} rounds of one dopri5 call then one exact call, "
        f"median (min–max): {_spread(ex['interleaved'])} against rtol {ex['rtol_dopri5']:g}, "
        f"{_spread(ex['interleaved_tight'])} against rtol {ex['rtol_dopri5_tight']:g}. "
        "Max relative difference of N, exact vs dopri5 rtol "
        f"{ex['rtol_dopri5']:g} (all samples, all days): "
        f"{fmt_err(ex['max_relative_difference'])}.",
    ]
    pk = results.get("pk")
    if pk is not None:
        lines += [
            "",
            "## Extra (not the issue's scenario): daily oral tamoxifen in a mouse",
            "",
            "; ".join(line.strip() for line in pk["scenario"].splitlines()),
            "",
            f"Dose {pk['dose_mg']:g} mg/day: peak {pk['peak_um']:.3f} µM; over the last 10 "
            f"dosing days {pk['steady_state_trough_um']:.3f}–{pk['steady_state_peak_um']:.3f} "
            f"µM. Baseline: solve_ivp RK45 at rtol {pk['rtol']:g} of the system augmented with "
            "depot and central amounts (mg) as states, dose jumps piece by piece, atol "
            f"{pk['baseline_atol'][0]:g} cells / {pk['baseline_atol'][2]:g} mg. Error against "
            "solve_ivp DOP853 rtol 1e-12 of the same augmented system, on "
            f"{pk['n_baseline_samples']} samples.",
            "",
            "| solver | rtol | error | µs / trajectory | mean accepted steps | speed-up |",
            "|---|---:|---:|---:|---:|---:|",
            f"| solve_ivp RK45, augmented system (Python loop, {pk['n_baseline_samples']} "
            f"samples) | {pk['rtol']:g} | {fmt_err(pk['ivp_rk45_error'])} | "
            f"{fmt_us(pk['ivp_rk45_time_per_trajectory_s'])} | | 1× |",
        ]
        for r in pk["tolsim_rows"]:
            lines.append(
                f"| tolsim.simulate auto, closed-form PK ({pk['n_tolsim_samples']:,} samples) | "
                f"{r['rtol']:g} | {fmt_err(r['error'])} | {fmt_us(r['time_per_trajectory_s'])} | "
                f"{r['mean_accepted_steps']:.0f} | {r['speedup']:,.0f}× |"
            )
        lines += [
            "",
            f"At the same rtol ({pk['rtol']:g}): speed-up {pk['speedup']:,.0f}×, tolsim error "
            f"{fmt_err(pk['tolsim_error'])} vs {fmt_err(pk['ivp_rk45_error'])}.",
        ]
        eq = pk["equal_accuracy"]
        if eq is None:
            lines.append("No tolsim row reached the baseline's error.")
        else:
            lines.append(
                f"At equal or better accuracy (tolsim rtol {eq['tolsim_rtol']:g}, error "
                f"{fmt_err(eq['tolsim_error'])}): speed-up {eq['speedup']:,.0f}×."
            )
        lines.append(
            f"tolsim first call incl. compile/cache load {pk['tolsim_first_call_s']:.2f} s."
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=None, help="ensemble size (10000)")
    parser.add_argument("--subset", type=int, default=None, help="reference samples M (50)")
    parser.add_argument("--quick", action="store_true", help="500 samples, M = 10, fewer repeats")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (9)")
    parser.add_argument("--no-pk", action="store_true", help="skip the extra PK scenario")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file to write")
    args = parser.parse_args(argv)
    quick = args.quick
    args.samples = args.samples or (500 if quick else 10_000)
    args.subset = min(args.subset or (10 if quick else 50), args.samples)
    args.pk_subset = min(3 if quick else 10, args.samples)
    args.ivp_repeats = 1 if quick else 3
    args.tolsim_repeats = 3 if quick else 5
    args.pk_repeats = 1 if quick else 3
    args.rounds = args.rounds or (3 if quick else 9)

    facts = machine_facts()
    results: dict[str, object] = {"machine": facts, "quick": quick}
    results["work_precision"] = work_precision(args)
    if not args.no_pk:
        print("PK scenario ...")
        results["pk"] = pk_scenario(args)
    facts["numba_threading_layer"] = machine_facts()["numba_threading_layer"]
    facts["load_average_1_5_15_at_end"] = machine_facts()["load_average_1_5_15"]
    print()
    print(report(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, allow_nan=True) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
