"""Cold start: numba compile time against loading the on-disk cache, in fresh processes.

Each child process runs ``import tolsim`` and one simulation over 181 days (daily output),
with ``NUMBA_CACHE_DIR`` and ``TOLSIM_CACHE_DIR`` pointing at a fresh temporary directory per
case: the first child compiles every kernel the case needs and fills the cache (cold); the
next ones must load from it (warm). The child measures, with ``time.perf_counter``, from
before ``import tolsim`` to after ``simulate`` returns; the parent also reports the whole
subprocess wall time (interpreter start-up included). Issue target: a second process has its
first result in < 3 s.

Cases (each is one of the CPU ODE kernels a user meets first):

- ``lanes``: the default two-state model (logistic crowding), 60 days of tamoxifen then 120
  without: the lane kernel, method "auto";
- ``pk``: the same model, oral tamoxifen with mouse PK: the one-trajectory kernel's adaptive
  solver;
- ``exact``: the linear two-state model, the first schedule: the one-trajectory kernel's
  exact solver.

Run::

    python benchmarks/cold_start.py [--processes 3] [--case lanes pk exact]

Prints a markdown table and writes ``benchmarks/results/cold_start.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "cold_start.json"
TARGET_S = 3.0

CASES = ("lanes", "pk", "exact")
CHILD = """\
import sys, time
start = time.perf_counter()
import numpy as np
import tolsim
imported = time.perf_counter()
case = sys.argv[1]
model = tolsim.models.TwoState(crowding="none" if case == "exact" else "logistic")
if case == "pk":
    schedule = tolsim.Schedule.oral("tamoxifen", dose_mg=0.5, every_days=1.0, stop_day=60.0,
                                    duration_days=180.0, pk=tolsim.PK.tamoxifen_mouse())
else:
    schedule = tolsim.Schedule.from_phases([{"days": 60, "tamoxifen": 1.0}, {"days": 120}])
ds = tolsim.simulate(model, model.default_params(), schedule, np.arange(181.0))
done = time.perf_counter()
import json, numba
print("RESULT " + json.dumps({
    "import_s": imported - start,
    "first_result_s": done - start,
    "simulate_s": done - imported,
    "final_cells": float(ds.N[-1]),
    "numba": numba.__version__,
    "method": ds.attrs["method"],
}))
"""


def run_child(cache_root: Path, case: str) -> dict[str, float]:
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(cache_root / "numba")
    env["TOLSIM_CACHE_DIR"] = str(cache_root / "tolsim")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in work_precision.py: no spinning BLAS
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, case], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"child process failed ({proc.returncode}):\n{proc.stderr}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    result["process_wall_s"] = wall
    return result


def cache_size(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def run_case(case: str, processes: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="tolsim-cold-start-"))
    runs = []
    try:
        for i in range(processes):
            kind = "cold (compile, fill cache)" if i == 0 else "warm (load cache)"
            result = run_child(root, case)
            result["process"] = i + 1
            result["kind"] = kind
            runs.append(result)
            print(
                f"{case}: process {i + 1} {kind}: first result {result['first_result_s']:.2f} s, "
                f"process wall {result['process_wall_s']:.2f} s",
                flush=True,
            )
        n_files, n_bytes = cache_size(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    warm = [r["first_result_s"] for r in runs[1:]]
    return {
        "cache_files": n_files,
        "cache_bytes": n_bytes,
        "runs": runs,
        "warm_meets_target": bool(warm) and max(warm) < TARGET_S,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=3, help="1 cold + N-1 warm (3)")
    parser.add_argument(
        "--case", nargs="+", choices=CASES, default=list(CASES), help="cases to run (all)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error(f"--processes {args.processes}: expected at least 1")

    cases = {case: run_case(case, args.processes) for case in args.case}
    first = next(iter(cases.values()))["runs"][0]
    summary = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "numba": first["numba"],
        "target_first_result_s": TARGET_S,
        "cases": cases,
        "warm_meets_target": all(c["warm_meets_target"] for c in cases.values()),
    }
    lines = [
        "## Cold start: compile vs cache (fresh NUMBA_CACHE_DIR and TOLSIM_CACHE_DIR per case)",
        "",
        "Child: `import tolsim`, one simulation over 181 days (daily output).",
        "",
        "| case | method | process | | import tolsim (s) | import to first result (s) "
        "| process wall (s) |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for case, result in cases.items():
        for r in result["runs"]:
            lines.append(
                f"| {case} | {r['method']} | {r['process']} | {r['kind']} | {r['import_s']:.2f} "
                f"| {r['first_result_s']:.2f} | {r['process_wall_s']:.2f} |"
            )
    warm = [r["first_result_s"] for c in cases.values() for r in c["runs"][1:]]
    lines += [
        "",
        "Cache per case (files, MB): "
        + ", ".join(
            f"{case} {c['cache_files']}, {c['cache_bytes'] / 1e6:.1f}" for case, c in cases.items()
        )
        + f". Target: a warm process reaches its first result in < {TARGET_S:g} s: "
        + ("met" if summary["warm_meets_target"] else "NOT met")
        + (f" (slowest warm {max(warm):.2f} s)." if warm else "."),
        f"{os.cpu_count()} CPUs, numba {summary['numba']}, Python {summary['python']}, "
        f"{summary['date']}.",
    ]
    print()
    print("\n".join(lines))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
