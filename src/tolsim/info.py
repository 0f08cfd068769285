"""What this installation is: versions, threads, GPU and kernel cache, for bug reports.

``tolsim.show_versions()`` (or ``tolsim info``) prints it, as ``xarray.show_versions()`` does.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version

import tolsim

__all__ = ["show_versions", "versions"]

# the packages whose versions decide what tolsim computes and how fast (distribution names)
PACKAGES = (
    "numpy",
    "scipy",
    "numba",
    "llvmlite",
    "xarray",
    "pandas",
    "dask",
    "distributed",
    "zarr",
    "netCDF4",
    "emcee",
    "matplotlib",
    "numba-cuda",
    "cuda-bindings",
)


def versions(cuda: bool = True) -> dict[str, str]:
    """tolsim's version, Python's, the platform's, those of :data:`PACKAGES` (``"not
    installed"`` for a missing one), numba's threads, the kernel cache, and (``cuda=True``)
    whether a CUDA GPU can run the kernels (this loads the CUDA driver where there is one)."""
    import numba

    from tolsim.kernels.specialise import cache_dir, cached_copies

    info = {
        "tolsim": tolsim.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
    }
    for name in PACKAGES:
        try:
            info[name] = version(name)
        except PackageNotFoundError:
            info[name] = "not installed"
    info["numba threads"] = str(numba.config.NUMBA_NUM_THREADS)
    info["numba threading layer"] = str(numba.config.THREADING_LAYER)
    copies = cached_copies()
    size = sum(copy["bytes"] for copy in copies)
    info["kernel cache"] = f"{cache_dir()} ({len(copies)} kernel copies, {size / 1e6:.1f} MB)"
    if cuda:
        from tolsim.cuda_prebuilt import summary

        info["cuda"] = _cuda_state()
        info["cuda prebuilt kernels"] = summary()
    return info


def _cuda_state() -> str:
    from tolsim import cuda

    try:
        module = cuda.require()
    except cuda.CudaUnavailableError as error:
        return f"unavailable: {str(error).split('; ')[0]}"  # what is missing, not the remedies
    if cuda._simulated():
        return "numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
    names = [module.gpus[i].name for i in range(len(module.gpus))]
    return ", ".join(name.decode() if isinstance(name, bytes) else str(name) for name in names)


def show_versions(file=None, cuda: bool = True) -> None:
    """Print :func:`versions`, one ``name: value`` line each, to ``file`` (stdout)."""
    info = versions(cuda=cuda)
    width = max(len(name) for name in info)
    for name, value in info.items():
        print(f"{name:<{width}} : {value}", file=file or sys.stdout)
