"""Cold start: numba compile time against loading the on-disk cache, in fresh processes.

Each child process runs ``import tolsim`` and one default two-state simulation over 181 days,
with ``NUMBA_CACHE_DIR`` and ``TOLSIM_CACHE_DIR`` pointing at a fresh temporary directory:
the first child compiles every kernel and fills the cache (cold); the next ones must load
from it (warm). The child measures, with ``time.perf_counter``, from before ``import tolsim``
to after ``simulate`` returns; the parent also reports the whole subprocess wall time
(interpreter start-up included). Issue target: a second process has its first result in < 3 s.

Run::

    python benchmarks/cold_start.py [--processes 3]

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

CHILD = """\
import time
start = time.perf_counter()
import numpy as np
import tolsim
imported = time.perf_counter()
model = tolsim.models.TwoState()
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
}))
"""


def run_child(cache_root: Path) -> dict[str, float]:
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(cache_root / "numba")
    env["TOLSIM_CACHE_DIR"] = str(cache_root / "tolsim")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in work_precision.py: no spinning BLAS
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=False
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=3, help="1 cold + N-1 warm (3)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file to write")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="tolsim-cold-start-"))
    runs = []
    try:
        for i in range(args.processes):
            kind = "cold (compile, fill cache)" if i == 0 else "warm (load cache)"
            result = run_child(root)
            result["process"] = i + 1
            result["kind"] = kind
            runs.append(result)
            print(
                f"process {i + 1} {kind}: first result {result['first_result_s']:.2f} s, "
                f"process wall {result['process_wall_s']:.2f} s",
                flush=True,
            )
        n_files, n_bytes = cache_size(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    warm = [r["first_result_s"] for r in runs[1:]]
    summary = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "numba": runs[0]["numba"],
        "target_first_result_s": TARGET_S,
        "cache_files": n_files,
        "cache_bytes": n_bytes,
        "runs": runs,
        "warm_meets_target": bool(warm) and max(warm) < TARGET_S,
    }
    lines = [
        "## Cold start: compile vs cache (fresh NUMBA_CACHE_DIR and TOLSIM_CACHE_DIR)",
        "",
        "Child: `import tolsim`, one default TwoState simulation over 181 days (daily output).",
        "",
        "| process | | import tolsim (s) | import to first result (s) | process wall (s) |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r['process']} | {r['kind']} | {r['import_s']:.2f} | {r['first_result_s']:.2f} "
            f"| {r['process_wall_s']:.2f} |"
        )
    lines += [
        "",
        f"Cache: {n_files} files, {n_bytes / 1e6:.1f} MB. Target: a warm process reaches its "
        f"first result in < {TARGET_S:g} s: "
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
