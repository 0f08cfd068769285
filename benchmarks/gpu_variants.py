"""Kernel variants of ``cuda_template`` timed against each other in one process (issue 7).

Each variant is ``NAME=BLOCK:CAP[:CONST=VALUE/...]``: threads per block, the register cap (0:
the compiler's choice) and overrides of the template's ``TOLSIM-CONSTANT`` lines (source text,
``/``-separated), for prototypes behind a constant. Scenario and launch as
``benchmarks/gpu.py``'s "kernel alone" (1e6 samples, inputs on the device, metrics only);
medians of ``--repeats`` interleaved rounds. Each variant's metrics are compared with the first
variant's (bit for bit, and the largest relative difference)::

    python benchmarks/gpu_variants.py base=64:128 wide=128:128 uncapped=64:0 --out v.json

Variants start from the kernel :func:`tolsim.cuda.solve` launches here (DOPRI5 and metrics
only compiled in: ``FIXED_METHOD=0``, ``NO_TRAJECTORIES=True``). ``--specialise`` adds, for
each variant, a copy with the design's constant parameters compiled in; ``--family`` a copy
with only the kernel family's constants compiled in (:func:`family_constants`: the model's
constants, i.e. the crowding law, and Hill coefficients of 1), the other parameters read at
run time as by the generic kernel; ``--e2e-chunks`` also times :func:`tolsim.cuda.solve` end
to end by chunk size.

``benchmarks/results/gpu_h100_shared_variants.json`` holds a run of this script with a
prototype (since removed) that kept per-thread arrays in shared memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu  # noqa: E402

from tolsim import cuda  # noqa: E402
from tolsim.kernels.specialise import specialised  # noqa: E402
from tolsim.recurrence import metric_grid  # noqa: E402


def family_constants(model, packed: np.ndarray) -> tuple[str, np.ndarray]:
    """The template constants (``SPEC_SLOT``/``SPEC_BASE`` overrides, ``/``-separated) that
    compile in the model's constants (after its parameters in a packed row: the crowding
    law's code) and each exposure's Hill coefficient that is 1 in every row, and the packed
    indices of the other parameters, to be sent as columns in that order."""
    names = model.parameter_names
    fixed = set(range(len(names), packed.shape[1]))
    for exposure in model.exposures:
        i = names.index(exposure.hill)
        if np.all(packed[:, i] == 1.0):
            fixed.add(i)
    keep = np.array([i for i in range(packed.shape[1]) if i not in fixed], dtype=np.int64)
    slot = np.full(packed.shape[1], -1, dtype=np.int64)
    slot[keep] = np.arange(keep.size)
    text = (
        f"SPEC_SLOT=np.array({slot.tolist()!r}, dtype=np.int64)"
        f"/SPEC_BASE=np.array({packed[0].tolist()!r})"
    )
    return text, keep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="NAME=BLOCK:CAP[:CONST=VALUE/...]")
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument(
        "--specialise",
        action="store_true",
        help="also, for every variant NAME, a variant NAME+spec: the same with this design's "
        "constant parameters compiled in (the template's SPEC_SLOT and SPEC_BASE)",
    )
    parser.add_argument(
        "--family",
        action="store_true",
        help="also, for every variant NAME, a variant NAME+family: the same with only the "
        "model's constants and Hill coefficients of 1 compiled in (a prototype: the other "
        "parameters are sent as columns, read once per sample as the generic kernel reads "
        "them)",
    )
    parser.add_argument(
        "--specialised-only",
        action="store_true",
        help="with --specialise: time only the NAME+spec variants",
    )
    parser.add_argument(
        "--e2e-chunks",
        type=int,
        nargs="*",
        default=[],
        help="also time tolsim.cuda.solve end to end (host rows -> host metrics) with these "
        "chunk sizes (0: the default), with the first variant's block size and register cap",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    module = cuda.require()
    grid = metric_grid(gpu.SCHEDULE, None)
    tab = cuda.schedule_table(gpu.MODEL, [gpu.SCHEDULE], [grid])
    packed = gpu.MODEL.pack_table(gpu.table(args.samples))
    launchers = {"plain": gpu.kernel_launcher(module, tab, packed)[:3]}

    specs = [(spec, "plain") for spec in args.variants]
    given = list(args.variants)
    if args.family:
        fixed, keep = family_constants(gpu.MODEL, packed)
        launchers["family"] = gpu.kernel_launcher(module, tab, packed, columns=keep)[:3]
        for spec in given:
            name, rest = spec.split("=", 1)
            specs.append(
                (f"{name}+family={rest}{'/' if rest.count(':') > 1 else ':'}{fixed}", "family")
            )
    if args.specialise:
        base, _, slot = cuda.parameter_slots(packed)
        fixed = (
            f"SPEC_SLOT=np.array({slot.tolist()!r}, dtype=np.int64)"
            f"/SPEC_BASE=np.array({base.tolist()!r})"
        )
        added = []
        for spec in given:
            name, rest = spec.split("=", 1)
            added.append(
                (f"{name}+spec={rest}{'/' if rest.count(':') > 1 else ':'}{fixed}", "plain")
            )
        specs = added if args.specialised_only else specs + added
    variants = {}
    for spec, launcher in specs:
        name, rest = spec.split("=", 1)
        block, cap, *overrides = rest.split(":", 2)
        cap = 0 if cuda._simulated() else int(cap)  # (the simulator caps nothing)
        constants = cuda.kernel_constants(gpu.MODEL, tab.n_channels, cap)
        # as cuda.solve compiles a metrics-only DOPRI5 launch (override to compare)
        constants |= {"FIXED_METHOD": "0", "NO_TRAJECTORIES": "True"}
        for item in overrides[0].split("/") if overrides else ():
            key, value = item.split("=", 1)
            constants[key] = value
        kernels = specialised("cuda_template", gpu.MODEL.rates, constants)
        threads = int(block)
        variants[name] = (kernels, threads, launcher, spec)

    def launch(name):
        kernels, threads, launcher, _ = variants[name]
        launchers[launcher][0](kernels, threads)

    report, reference = {}, None
    for name in variants:
        start = time.perf_counter()
        launch(name)
        compile_s = time.perf_counter() - start
        _, d_status, d_metrics = launchers[variants[name][2]]
        spec = variants[name][3]
        metrics = d_metrics.copy_to_host()
        failed = int((d_status.copy_to_host() != 0).sum())
        if reference is None:
            reference = metrics
        same = np.array_equal(metrics, reference, equal_nan=True)
        both = np.isfinite(metrics) & np.isfinite(reference)
        gap = np.abs(metrics - reference)[both] / np.maximum(np.abs(reference[both]), 1e-300)
        regs = None
        if not cuda._simulated():
            found = variants[name][0].solve_kernel.get_regs_per_thread()
            regs = list(found.values()) if isinstance(found, dict) else found
        report[name] = {
            "spec": spec,
            "first_call_s": compile_s,
            "failed": failed,
            "metrics_identical_to_first": bool(same),
            "max_relative_difference_to_first": float(gap.max()) if gap.size else 0.0,
            "same_finite_pattern_as_first": bool(
                np.array_equal(np.isfinite(metrics), np.isfinite(reference))
            ),
            "registers": regs,
            "all": [],
        }
    for _ in range(args.repeats):  # interleaved rounds
        for name in variants:
            start = time.perf_counter()
            launch(name)
            report[name]["all"].append(time.perf_counter() - start)
    for name, entry in report.items():
        entry["median_s"] = statistics.median(entry["all"])
        entry["traj_per_s"] = args.samples / entry["median_s"]
        print(
            f"{name:>12}: {entry['median_s'] * 1e3:8.2f} ms  {entry['traj_per_s']:.3g}/s  "
            f"regs {entry['registers']}  identical {entry['metrics_identical_to_first']} "
            f"(max rel. diff {entry['max_relative_difference_to_first']:.2g})  "
            f"failed {entry['failed']}  first call {entry['first_call_s']:.1f} s"
        )
    e2e = {}
    if args.e2e_chunks:
        block, cap = (int(v) for v in specs[0].split("=", 1)[1].split(":")[:2])
        schedule_of = np.zeros(args.samples, np.int32)

        def solve(chunk):
            return cuda.solve(
                gpu.MODEL, packed, tab, schedule_of, rtol=gpu.RTOL, atol=gpu.ATOL,
                method="dopri5", threads_per_block=block, max_registers=cap,
                chunk_size=chunk or None,
            )  # fmt: skip

        for chunk in args.e2e_chunks:
            solve(chunk)
            median, all_s = gpu.median_time(lambda c=chunk: solve(c), args.repeats)
            e2e[str(chunk)] = {"median_s": median, "all": all_s}
            print(f"end to end, chunk {chunk or 'default'}: {median * 1e3:8.2f} ms "
                  f"{args.samples / median:.3g}/s")  # fmt: skip
    if args.out:
        record = {"samples": args.samples, "variants": report, "end_to_end": e2e}
        args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
