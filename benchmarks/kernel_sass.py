"""Static machine-code figures of the benchmark's CUDA kernel variants, without a GPU.

Compiles the metrics-only DOPRI5 kernel of ``benchmarks/gpu.py``'s scenario for a GPU
architecture (sm_90a by default: H100, H200) the way :mod:`tolsim.cuda_prebuilt` does,
answering numba-cuda's device queries, and reads the cubin: registers, local (spill) frame,
instructions, spill stores and loads (``STL``/``LDL``), global loads, double divisions
(``MUFU.RCP64H``), calls and branches. Nothing runs: these are static counts, a guide to
which variants are worth a GPU's time, not a timing. On 2026-11-27 they explained the
generic kernel's 31% gap to the one with the design's constants compiled in (41.8 against
28.8 ms on an H100): 456 against 240 bytes of spill frame, 338 against 134 spill loads,
twice the code (cold branches for Hill exponents other than 1 and the other crowding laws
in every stage), and the same executed arithmetic.

    python benchmarks/kernel_sass.py                       # generic and specialised, cap 128
    python benchmarks/kernel_sass.py --caps 128 168 255    # register caps
    python benchmarks/kernel_sass.py --kinds generic family specialised
    python benchmarks/kernel_sass.py --set SPEC_SLOT_20=... # extra template constants

Needs the ``[cuda]`` extra and NVIDIA's disassembler (``pip install nvidia-cuda-nvdisasm``);
no GPU. Each variant compiles for 10-30 s on one core.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import gpu  # noqa: E402  (the benchmark's scenario)
import gpu_variants  # noqa: E402

from tolsim import cuda, cuda_prebuilt  # noqa: E402
from tolsim.recurrence import metric_grid  # noqa: E402


def nvdisasm() -> str:
    found = shutil.which("nvdisasm")
    if found:
        return found
    import nvidia  # the nvidia-cuda-nvdisasm wheel

    for root in nvidia.__path__:
        for path in Path(root).glob("*/bin/nvdisasm"):
            return str(path)
    raise SystemExit("nvdisasm not found: pip install nvidia-cuda-nvdisasm")


def compile_cubin(kind: str, cap: int, arch: tuple, extra: dict) -> tuple[bytes, float]:
    """The sm_``arch`` cubin of the scenario's metrics-only kernel, and the compile seconds:
    ``kind`` "generic", "specialised" (the design's constant parameters compiled in) or
    "family" (the model's constants and Hill coefficients of 1 compiled in:
    ``gpu_variants.family_constants``)."""
    import numba.cuda.dispatcher as dispatcher
    from numba.cuda import codegen

    grid = metric_grid(gpu.SCHEDULE, None)
    table = cuda.schedule_table(gpu.MODEL, [gpu.SCHEDULE], [grid])
    packed = gpu.MODEL.pack_table(gpu.table(4096))
    base, _, slot = cuda.parameter_slots(packed)
    constants = cuda.variant_constants(
        gpu.MODEL, table.n_channels, cap, (base, slot) if kind == "specialised" else None,
        method="dopri5", trajectories=False,
    )  # fmt: skip
    if kind == "family":
        fixed, _ = gpu_variants.family_constants(gpu.MODEL, packed)
        constants |= dict(item.split("=", 1) for item in fixed.split("/"))
    constants |= extra
    module = cuda.kernel_copy(gpu.MODEL, constants)
    argtypes = cuda_prebuilt.launch_argument_types(gpu.MODEL, table.n_channels)

    class Device:
        compute_capability = arch[:2]

    saved = dispatcher.get_current_device, codegen.CUDACodeLibrary._ensure_cc
    dispatcher.get_current_device = Device
    codegen.CUDACodeLibrary._ensure_cc = lambda self, cc: arch if cc is None else cc
    start = time.perf_counter()
    try:
        kernel = dispatcher._Kernel(
            module.solve_kernel.py_func, argtypes, **module.solve_kernel.targetoptions
        )
        cubin = kernel._codelibrary.get_cubin(cc=arch)
    finally:
        dispatcher.get_current_device, codegen.CUDACodeLibrary._ensure_cc = saved
    return bytes(getattr(cubin, "code", cubin)), time.perf_counter() - start


def kernel_attributes(cubin: bytes) -> dict:
    """``REGCOUNT`` and ``FRAME_SIZE`` (local bytes) from the cubin's ``.nv.info`` sections."""
    wanted = {0x2F: "registers", 0x11: "frame_bytes"}
    (section_offset,) = struct.unpack_from("<Q", cubin, 0x28)
    entry_size, n_sections, names_index = struct.unpack_from("<HHH", cubin, 0x3A)
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", cubin, section_offset + i * entry_size)
        for i in range(n_sections)
    ]
    names = sections[names_index][4]
    found = {}
    for name, _, _, _, offset, size, *_ in sections:
        if not cubin[names + name :].startswith(b".nv.info"):
            continue
        at = offset
        while at < offset + size:
            form, attribute = cubin[at], cubin[at + 1]
            if form == 0x04:  # a sized value: (function index, value) for these two
                (length,) = struct.unpack_from("<H", cubin, at + 2)
                if attribute in wanted and length == 8:
                    found[wanted[attribute]] = struct.unpack_from("<II", cubin, at + 4)[1]
                at += 4 + length
            else:
                at += 4 if form == 0x03 else 2
    return found


def figures(cubin: bytes, disassembler: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as file:
        file.write(cubin)
        file.flush()
        text = subprocess.run(
            [disassembler, "-c", file.name], capture_output=True, text=True, check=True
        ).stdout
    instructions = re.findall(r"/\*[0-9a-f]{4,}\*/\s+(.*?);", text)

    def opcode(line: str) -> str:
        line = re.sub(r"^@!?U?P[T0-9]+\s+", "", line.strip())
        return line.split()[0].split(".")[0] if line else ""

    counts = collections.Counter(opcode(line) for line in instructions)
    offsets = [
        int(m, 16) for line in instructions for m in re.findall(r"\[R1\+0x([0-9a-f]+)\]", line)
    ]
    return kernel_attributes(cubin) | {
        "highest_spill_offset": max(offsets, default=-1),
        "instructions": len(instructions),
        "STL": counts["STL"],
        "LDL": counts["LDL"],
        "LDG": counts["LDG"],
        "double_divisions": sum("MUFU.RCP64H" in line for line in instructions),
        "CALL": counts["CALL"],
        "BRA": counts["BRA"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--caps", type=int, nargs="+", default=[128])
    parser.add_argument("--kinds", nargs="+", default=["generic", "specialised"],
                        choices=["generic", "family", "specialised"])  # fmt: skip
    parser.add_argument("--arch", default="90a", help="e.g. 90a, 80, 100a")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="template constants added to every variant")  # fmt: skip
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    found = re.fullmatch(r"(\d+)(\d)(a?)", args.arch)
    if not found:
        raise SystemExit(f"--arch {args.arch!r}: expected digits like 90a or 80")
    arch = (int(found[1]), int(found[2]), found[3]) if found[3] else (int(found[1]), int(found[2]))
    extra = dict(item.split("=", 1) for item in args.set)
    disassembler = nvdisasm()
    report = {"arch": f"sm_{args.arch}", "set": extra, "variants": {}}
    for cap in args.caps:
        for kind in args.kinds:
            name = f"{kind}/{cap}"
            cubin, seconds = compile_cubin(kind, cap, arch, extra)
            report["variants"][name] = figures(cubin, disassembler) | {"compile_s": seconds}
            print(name, json.dumps(report["variants"][name]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
