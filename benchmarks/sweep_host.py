"""Host overhead of ``tolsim.sweep(device="cuda")``, measured without a GPU.

The GPU evaluation of each chunk (``tolsim.sweep._evaluate_cuda``: the upload, the kernel,
the download) is replaced by a stub that returns arrays of the right shapes, so what is timed
is everything else a GPU sweep does on the host: validating and packing the design, creating
the Zarr store and writing each chunk's region (``store=...``), or assembling the in-memory
Dataset (``store=None``). On a GPU machine the sweep takes about this plus the end-to-end
``cuda.solve`` time that ``benchmarks/gpu.py`` reports (60 ms per 1e6 on an H100), so this
shows which part bounds a GPU sweep, on any machine.

Scenario as in ``benchmarks/gpu.py`` (five jittered parameter columns, oral tamoxifen
schedule); one in-process Dask worker (``processes=False``, so the stub reaches it), chunks
of 250,000 into Zarr; the in-memory sweep in one chunk. Medians of ``--repeats``.

Run::

    python benchmarks/sweep_host.py                 # 1e6 samples
    python benchmarks/sweep_host.py --samples 200000

Writes ``benchmarks/results/sweep_host.json``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu import MODEL, SCHEDULE, median_time, table  # noqa: E402

import tolsim  # noqa: E402

sweep_module = importlib.import_module("tolsim.sweep")  # the module (tolsim.sweep is the function)
cuda_module = importlib.import_module("tolsim.cuda")
RESULTS = Path(__file__).resolve().parent / "results" / "sweep_host.json"


def stub_evaluate_cuda(model, packed, schedules, schedule_of, spec) -> dict:
    """What ``_evaluate_cuda`` returns for a metrics-only chunk, without computing it."""
    n = len(packed)
    data = {"status": np.zeros(n, dtype=np.int32)}
    for i, name in enumerate(cuda_module.METRIC_NAMES):
        data[name] = np.full(n, float(i))
    return data


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=250_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from distributed import Client, LocalCluster

    sweep_module._evaluate_cuda = stub_evaluate_cuda
    cuda_module.device_count = lambda: 1
    design = tolsim.design.Design(table(args.samples), "table")
    warm = tolsim.design.Design(table(4096, seed=5), "table")
    directory = tempfile.mkdtemp()
    counter = iter(range(10**6))
    cluster = LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    )
    try:
        with Client(cluster) as client:

            def into_zarr(d=design):
                store = f"{directory}/{next(counter)}.zarr"
                tolsim.sweep(MODEL, d, SCHEDULE, store=store, client=client, device="cuda",
                             chunk_size=args.chunk)  # fmt: skip

            into_zarr(warm)
            zarr_s, zarr_all = median_time(into_zarr, args.repeats)
    finally:
        cluster.close()
        shutil.rmtree(directory, ignore_errors=True)

    def in_memory(d=design):
        tolsim.sweep(MODEL, d, SCHEDULE, store=None, device="cuda", chunk_size=args.samples)

    in_memory(warm)
    memory_s, memory_all = median_time(in_memory, args.repeats)
    pack_s, _ = median_time(
        lambda: MODEL.pack_columns(dict(design.columns), "design"), args.repeats
    )
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "tolsim": tolsim.__version__,
        "samples": args.samples,
        "zarr_chunk": args.chunk,
        "repeats": args.repeats,
        "gpu": "stubbed: tolsim.sweep._evaluate_cuda returns arrays without computing",
        "zarr_s": zarr_s,
        "zarr_all_s": zarr_all,
        "in_memory_s": memory_s,
        "in_memory_all_s": memory_all,
        "pack_columns_s": pack_s,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    n = args.samples
    print(f"host overhead of a GPU sweep of {n:,} samples (GPU stubbed), medians:")
    print(f"  into Zarr, chunks of {args.chunk:,}: {zarr_s:.3f} s ({n / zarr_s:.3g} samples/s)")
    print(f"  in memory (store=None):          {memory_s:.3f} s ({n / memory_s:.3g} samples/s)")
    print(f"  of which pack_columns:           {pack_s:.3f} s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
