"""One launch of the benchmark kernel of ``benchmarks/gpu.py``, for a profiler (issue 7).

The kernel is built with source line tables (``lineinfo``; the machine code is the same), so
Nsight Compute can attribute stalls and instructions to lines of ``cuda_template.py``. The
kernel is launched twice (the first launch compiles it); profile the second::

    ncu --set full --import-source yes --kernel-name regex:solve_kernel \\
        --launch-skip 1 --launch-count 1 -o profile python benchmarks/gpu_profile.py

``bash benchmarks/gpu_profile.sh [OUT_DIR]`` does this and writes text reports.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu  # noqa: E402  (the benchmark's scenario: model, schedule, jittered table)

from tolsim import cuda  # noqa: E402
from tolsim.kernels.specialise import specialised  # noqa: E402
from tolsim.recurrence import metric_grid  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--max-registers", type=int, default=128)
    parser.add_argument("--threads", type=int, default=64, help="threads per block")
    args = parser.parse_args()

    module = cuda.require()
    grid = metric_grid(gpu.SCHEDULE, None)
    tab = cuda.schedule_table(gpu.MODEL, [gpu.SCHEDULE], [grid])
    constants = cuda.kernel_constants(gpu.MODEL, tab.n_channels, args.max_registers)
    if not cuda._simulated():  # (the simulator's jit takes no lineinfo)
        constants["LINEINFO"] = "True"
    kernels = specialised("cuda_template", gpu.MODEL.rates, constants)

    packed = gpu.MODEL.pack_table(gpu.table(args.samples))
    launch, d_status, _, d_stats = gpu.kernel_launcher(module, tab, packed, stats=True)
    for name in ("first (compiles)", "second (profiled)"):
        start = time.perf_counter()
        launch(kernels, args.threads)
        print(f"{name}: {time.perf_counter() - start:.4f} s")
    stats = d_stats.copy_to_host()
    status = d_status.copy_to_host()
    steps, rejected, rhs = stats[:, 0], stats[:, 1], stats[:, 2]
    # a warp runs as long as its slowest thread: the divergence in step counts it pays for
    per_warp = (steps + rejected)[: args.samples // 32 * 32].reshape(-1, 32)
    print(f"failed samples: {int((status != 0).sum())}")
    print(
        f"accepted steps per sample: mean {steps.mean():.1f}, min {steps.min()}, "
        f"max {steps.max()}; rejected mean {rejected.mean():.2f}; rhs mean {rhs.mean():.1f}"
    )
    if per_warp.size:
        print(
            f"steps per warp: mean of the warps' maxima {per_warp.max(1).mean():.1f}, mean "
            f"{per_warp.mean():.1f} (lanes busy "
            f"{per_warp.mean() / per_warp.max(1).mean():.3f})"
        )
    try:
        regs = kernels.solve_kernel.get_regs_per_thread()
        print(f"registers per thread: {regs}")
    except Exception as error:  # noqa: BLE001 - informational only
        print(f"registers per thread: {error!r}")


if __name__ == "__main__":
    main()
