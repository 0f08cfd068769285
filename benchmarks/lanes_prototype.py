"""Exploration for issue 2 (not a tolsim feature): Dormand-Prince 5(4) on batches of ``W``
trajectories that share every step, so each stage is a loop over lanes that the compiler can
vectorise, against ``tolsim.simulate`` on the same ensemble in the same process.

Scenario of ``work_precision.py`` (two-state logistic model, 1 µM tamoxifen for 120 days then
240 days off, daily output, 10,240 jittered parameter sets). The batch takes the step every
lane accepts (the error norm is the largest lane's), with the PI controller and dense output
of tolsim's kernel, and the model's own rate function called once per lane
(``--rates model``) or the equations written out for lanes (``--rates inline``). Error: the
largest relative error of ``N`` against ``tolsim.simulate`` at rtol 1e-11.

What it leaves out, and a tolsim method would need: states only (no dN/dt), no Dataset, no
stiffness switch, no per-lane failure status, and a sample's trajectory depends on the other
samples of its batch (within the tolerance)::

    python benchmarks/lanes_prototype.py --lanes 1 8 16 --out benchmarks/results/lanes.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit, prange

sys.path.insert(0, str(Path(__file__).resolve().parent))

import work_precision as wp  # noqa: E402

import tolsim  # noqa: E402
from tolsim.kernels.tableau import DENSE_P, DP_A, DP_E  # noqa: E402
from tolsim.models.tolerance import two_state_rates  # noqa: E402

MODEL = tolsim.models.TwoState()
STOICH = MODEL.stoichiometry.astype(np.float64)
rates = njit(error_model="numpy", inline="always")(two_state_rates.py_func)
NAMES = MODEL.parameter_names
LAMBDA_S, LAMBDA_T, EPS_S, EPS_T, DELTA_S, DELTA_T, KAPPA_S = range(7)
MU_0, MU_E, NU_0, NU_OFF, K = (NAMES.index(n) for n in ("mu_0", "mu_E", "nu_0", "nu_off", "K"))
EC50_TAM = NAMES.index("EC50_tam")


def make_solver(lanes: int, inline: bool):
    """The batched solver for ``lanes`` lanes (a compile-time constant)."""
    w = lanes

    @njit(inline="always", error_model="numpy")
    def rhs_model(y, p, conc, rate_buf, out):
        for lane in range(w):
            rates(0.0, y[:, lane], p[:, lane], conc, rate_buf)
            for i in range(2):
                acc = 0.0
                for j in range(STOICH.shape[0]):
                    acc += STOICH[j, i] * rate_buf[j]
                out[i, lane] = acc

    @njit(inline="always", error_model="numpy")
    def rhs_inline(y, p, conc, rate_buf, out):
        c = conc[0]
        for lane in range(w):
            e = c / (c + p[EC50_TAM, lane]) if c > 0.0 else 0.0  # h_tam = 1, no inhibitor
            s = y[0, lane]
            t = y[1, lane]
            g = 1.0 - (s + t) / p[K, lane]
            switch = p[MU_0, lane] + p[MU_E, lane] * e
            revert = p[NU_0, lane] + p[NU_OFF, lane] * (1.0 - e)
            net_s = (
                p[LAMBDA_S, lane] * (1.0 - p[EPS_S, lane] * e) * g
                - p[DELTA_S, lane]
                - p[KAPPA_S, lane] * e
            )
            net_t = p[LAMBDA_T, lane] * (1.0 - p[EPS_T, lane] * e) * g - p[DELTA_T, lane]
            out[0, lane] = (net_s - switch) * s + revert * t
            out[1, lane] = (net_t - revert) * t + switch * s

    rhs = rhs_inline if inline else rhs_model

    @njit(parallel=True, error_model="numpy")
    def solve(params, y0, levels, breaks, t_out, rtol, atol, out):
        for b in prange(params.shape[0]):
            p = params[b]
            y = y0[b].copy()
            k = np.empty((7, 2, w))
            y_stage = np.empty((2, w))
            q = np.empty((4, 2, w))
            rate_buf = np.empty(STOICH.shape[0])
            out[b, 0] = y
            j = 1
            h = 0.5
            log_err_old = np.log(1e-4)
            for piece in range(levels.shape[0]):
                t = breaks[piece]
                t_end = breaks[piece + 1]
                conc = levels[piece]
                rhs(y, p, conc, rate_buf, k[0])
                while t < t_end:
                    last = t + h >= t_end - 1e-12
                    if last:
                        h = t_end - t
                    for stage in range(1, 7):
                        for i in range(2):
                            for lane in range(w):
                                acc = 0.0
                                for m in range(stage):
                                    acc += DP_A[stage, m] * k[m, i, lane]
                                y_stage[i, lane] = y[i, lane] + h * acc
                        rhs(y_stage, p, conc, rate_buf, k[stage])
                    err = 0.0
                    for lane in range(w):
                        sq = 0.0
                        for i in range(2):
                            dot = 0.0
                            for m in range(7):
                                dot += DP_E[m] * k[m, i, lane]
                            scale = atol + rtol * max(abs(y[i, lane]), abs(y_stage[i, lane]))
                            sq += (h * dot / scale) ** 2
                        err = max(err, sq)
                    err = np.sqrt(err / 2.0)
                    if err > 1.0:
                        h *= max(0.2, 0.9 * err**-0.2)
                        continue
                    t_new = t_end if last else t + h
                    if j < t_out.shape[0] and t_out[j] <= t_new:
                        for m in range(4):
                            for i in range(2):
                                for lane in range(w):
                                    acc = 0.0
                                    for stage in range(7):
                                        acc += k[stage, i, lane] * DENSE_P[stage, m]
                                    q[m, i, lane] = h * acc
                        while j < t_out.shape[0] and t_out[j] <= t_new:
                            s = (t_out[j] - t) / h
                            for i in range(2):
                                for lane in range(w):
                                    poly = q[2, i, lane] + s * q[3, i, lane]
                                    poly = q[0, i, lane] + s * (q[1, i, lane] + s * poly)
                                    out[b, j, i, lane] = y[i, lane] + s * poly
                            j += 1
                    for i in range(2):
                        for lane in range(w):
                            y[i, lane] = y_stage[i, lane]
                            k[0, i, lane] = k[6, i, lane]
                    t = t_new
                    log_err = np.log(max(err, 1e-10))
                    fac = np.exp((0.2 - 0.04 * 0.75) * log_err - 0.04 * log_err_old)
                    h /= max(0.1, min(5.0, fac / 0.9))
                    log_err_old = max(log_err, np.log(1e-4))
                    if last:
                        break

    return solve


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_240)
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--rtol", type=float, nargs="+", default=[1e-6, 1e-7])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    n = args.samples
    table = wp.jittered_table(MODEL, n)
    schedule = tolsim.Schedule.from_phases([{"days": 120, "tamoxifen": 1.0}, {"days": 240}])
    compiled = schedule.compile(MODEL.drugs)
    levels = np.ascontiguousarray(compiled.level_um)
    breaks = compiled.breakpoints_days
    t_out = np.arange(361.0)
    packed = MODEL.pack_table(table)
    reference = tolsim.simulate(MODEL, table, schedule, t_out, rtol=1e-11, atol=1e-9).N.values

    rows = []
    for rtol in args.rtol:
        tolsim.simulate(MODEL, table, schedule, t_out, rtol=rtol)
        seconds = median_time(
            lambda r=rtol: tolsim.simulate(MODEL, table, schedule, t_out, rtol=r), args.repeats
        )
        ds = tolsim.simulate(MODEL, table, schedule, t_out, rtol=rtol)
        error = float(np.max(np.abs(ds.N.values - reference) / reference))
        rows.append({"solver": "tolsim.simulate", "rtol": rtol, "us": seconds / n * 1e6,
                     "error": error})  # fmt: skip
    for lanes in args.lanes:
        if n % lanes:
            raise SystemExit(f"--samples {n} is not a multiple of --lanes {lanes}")
        batched = np.ascontiguousarray(packed.T.reshape(-1, n // lanes, lanes).transpose(1, 0, 2))
        x0 = np.ascontiguousarray(batched[:, [NAMES.index("S0"), NAMES.index("T0")], :])
        for inline in (False, True):
            solve = make_solver(lanes, inline)
            out = np.empty((n // lanes, t_out.size, 2, lanes))
            for rtol in args.rtol:
                arguments = (batched, x0, levels, breaks, t_out, rtol, 1e-6, out)
                solve(*arguments)
                seconds = median_time(lambda f=solve, a=arguments: f(*a), args.repeats)
                cells = out.sum(axis=2).transpose(0, 2, 1).reshape(n, t_out.size)
                error = float(np.max(np.abs(cells - reference) / reference))
                rows.append({"solver": f"lanes={lanes} rates={'inline' if inline else 'model'}",
                             "rtol": rtol, "us": seconds / n * 1e6, "error": error})  # fmt: skip
    print("| solver | rtol | µs / trajectory | error |\n|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['solver']} | {row['rtol']:g} | {row['us']:.2f} | {row['error']:.1e} |")
    if args.out:
        args.out.write_text(json.dumps({"samples": n, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
