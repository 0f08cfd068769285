"""CUDA kernels compiled ahead of time, so that a first GPU call need not compile.

Compiling the CUDA ODE kernel takes 6-12 s (numba's front end 3-5 s, NVVM 1.5-2 s, the link
1-3 s), once per machine and kernel variant before numba's disk cache holds it. For the
built-in models (``TwoState``, ``ThreeState``: every crowding law shares their rate
functions) the kernel variants a launch compiles (0, 1 or 2 PK channels; method ``"auto"``
or ``"dopri5"``; metrics only or with trajectories; the default register cap) ship
compiled, as machine code for several GPU architectures and as LLVM IR for the others, in
``tolsim/prebuilt/``. A launch whose kernel is one of them loads it instead of compiling
(:func:`attach`).

Each file holds one variant: the states of numba-cuda's kernel object and of its code
library (what numba's disk cache stores): cubins for :data:`ARCHITECTURES` and the LLVM IR
they were linked from, pickled as plain data (no Python code: any Python version reads
them). One is used only where all of these match, and otherwise numba compiles as before
(nothing is wrong, only slower):

- the source the variant was compiled from: the template, every kernel module it imports,
  the module defining the model's rate function and the variant's compile-time constants
  (:func:`source_key`);
- the launch's argument types;
- the numba-cuda version and the numba release series (0.68.x; the launch ABI and the
  pickled objects are theirs);
- numba-cuda's compile options (:data:`OPTIONS`: ``NUMBA_OPT=0`` or
  ``NUMBA_CUDA_DEBUGINFO=1`` ask for other code, which is then compiled).

On the GPU it runs its architecture's own cubin, or one of the same major version and a
lower minor one, which NVIDIA GPUs run (sm_80 code on an sm_86 or sm_89 card; the ``a``
variants, sm_90a and later, run on their own architecture only). For another architecture
numba links a cubin from the shipped LLVM IR (NVVM and the link, 2-3 s; the typing, 3-5 s,
is skipped), as it does for each further GPU of another kind in the machine.

If loading a prebuilt cubin fails (a driver older than the toolkit that linked it), a
warning says so once and the kernel is compiled. ``TOLSIM_CUDA_PREBUILT=0`` turns prebuilt
kernels off (to measure a compile, or to rule them out).

The files are built on any machine with the CUDA toolkit's NVVM and nvJitLink (the
``[cuda]`` extra), no GPU needed::

    python -m tolsim.cuda_prebuilt            # all variants, about 10 min on 2 cores

and a test fails when the shipped set no longer matches the sources
(``tests/test_cuda_prebuilt.py``).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import inspect
import json
import lzma
import os
import pickle
import threading
import warnings
from pathlib import Path

import numpy as np

__all__ = [
    "ARCHITECTURES",
    "attach",
    "build",
    "source_key",
    "summary",
    "template_modules",
    "variants",
]

PREBUILT_DIR = Path(__file__).resolve().parent / "prebuilt"
MANIFEST = "manifest.json"
TEMPLATE = "cuda_template"
# (major, minor, suffix) as numba-cuda names the architecture it builds for a device: the
# "a" (architecture-specific) variant from compute capability 9.0 on
ARCHITECTURES = ((8, 0, ""), (9, 0, "a"), (10, 0, "a"), (12, 0, "a"))
CHANNELS = (0, 1, 2)

_LOCK = threading.Lock()
_MANIFEST_CACHE: dict[Path, dict | None] = {}
_WARNED: set[str] = set()


def enabled() -> bool:
    """False where ``$TOLSIM_CUDA_PREBUILT`` is ``0`` (or ``false``/``no``/``off``)."""
    flag = os.environ.get("TOLSIM_CUDA_PREBUILT", "1").strip().lower()
    return flag not in ("0", "false", "no", "off")


def versions() -> dict[str, str]:
    """The numba and numba-cuda versions installed."""
    found = {}
    for name in ("numba", "numba-cuda"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "(not installed)"
    return found


def versions_match(built: dict, installed: dict) -> bool:
    """Whether kernels built under the versions ``built`` load under ``installed``: the same
    numba-cuda (its kernel objects and launch ABI) and the same numba release series (a
    patch release changes neither its types nor their data model)."""

    def series(version: str) -> str:
        return ".".join(str(version).split(".")[:2])

    return built.get("numba-cuda") == installed.get("numba-cuda") and series(
        built.get("numba", "")
    ) == series(installed.get("numba", "-"))


def template_modules(template: str = TEMPLATE) -> tuple[str, ...]:
    """File names of ``tolsim.kernels`` modules the template imports, directly or through
    one another (from their import statements; not the ``TOLSIM-RATES`` placeholder, whose
    rate function is fingerprinted on its own), the template's first."""
    from tolsim.kernels import specialise

    found, pending = [], [template]
    while pending:
        name = pending.pop(0)
        if name in found:
            continue
        found.append(name)
        tree = ast.parse((specialise._KERNEL_DIR / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "tolsim.kernels":
                pending += [alias.name for alias in node.names]  # from tolsim.kernels import x
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "tolsim.kernels."
            ):
                pending.append(node.module.split(".")[2])
            elif isinstance(node, ast.Import):
                pending += [
                    alias.name.split(".")[2]
                    for alias in node.names
                    if alias.name.startswith("tolsim.kernels.")
                ]
    return tuple(f"{name}.py" for name in found if name != "placeholder")


def source_key(rates, constants: dict[str, str]) -> str:
    """SHA-256 (hex) of what a CUDA kernel variant is compiled from: the template and the
    kernel modules it imports (:func:`template_modules`; not the stochastic kernels, so that
    a change to them leaves the shipped ODE kernels valid), the source of the module
    defining ``rates``, the source text of ``rates`` and of every jitted function it reaches
    through its globals as they are bound now
    (:func:`tolsim.kernels.specialise._function_fingerprint`), and the variant's
    ``constants``. Unlike the name of the template's copy, it holds no bytecode, so it is
    the same under every Python version."""
    from tolsim.kernels import specialise

    digest = hashlib.sha256()
    for name in template_modules():
        digest.update(name.encode())
        digest.update((specialise._KERNEL_DIR / name).read_bytes())
    func = rates.py_func
    digest.update(f"{func.__module__}.{func.__qualname__}".encode())
    digest.update(specialise._rates_source(rates).encode())
    specialise._function_fingerprint(func, digest, source_text=True)
    digest.update(repr(sorted(constants.items())).encode())
    return digest.hexdigest()


def entry_key(source: str, argtypes: tuple) -> str:
    """Name of the prebuilt file of the variant ``source`` launched with ``argtypes``."""
    digest = hashlib.sha256(source.encode())
    digest.update(repr(tuple(argtypes)).encode())
    return digest.hexdigest()[:32]


def _manifest(directory: Path) -> dict | None:
    """The manifest in ``directory``; None (and a warning, once) where it is missing or
    damaged: the kernels are then compiled."""
    if directory not in _MANIFEST_CACHE:
        manifest = None
        try:
            manifest = json.loads((directory / MANIFEST).read_text())
            if not isinstance(manifest, dict) or not isinstance(manifest.get("kernels"), dict):
                raise ValueError("it holds no table of kernels")
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as error:
            _warn_once(
                f"the prebuilt CUDA kernels' manifest {directory / MANIFEST} could not be "
                f"read ({error!r}); compiling the kernels instead"
            )
            manifest = None
        _MANIFEST_CACHE[directory] = manifest
    return _MANIFEST_CACHE[directory]


def compatible_architecture(available, device: tuple[int, int, str]):
    """The cubin of ``available`` (architecture tuples) a device of architecture ``device``
    runs: its own, else the highest of the same major version, a lower minor version and no
    suffix (NVIDIA's binary compatibility); None if none."""
    available = [tuple(a) for a in available]
    if tuple(device) in available:
        return tuple(device)
    major, minor = device[0], device[1]
    runnable = [a for a in available if a[0] == major and a[1] <= minor and not a[2]]
    return max(runnable) if runnable else None


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


# numba-cuda's compile options of a kernel dispatcher that the prebuilt kernels were built
# with, and must match (NUMBA_OPT=0 or NUMBA_CUDA_DEBUGINFO=1 asks for other code)
OPTIONS = ("opt", "debug", "lineinfo", "lto", "fastmath", "max_registers", "forceinline")


def compile_options(dispatcher) -> dict:
    """The :data:`OPTIONS` of a kernel dispatcher (as JSON would give them back)."""
    return json.loads(json.dumps({k: dispatcher.targetoptions.get(k) for k in OPTIONS}))


def load(
    source: str,
    argtypes: tuple,
    device: tuple[int, int, str],
    directory: Path | None = None,
    options: dict | None = None,
):
    """The prebuilt kernel (a numba-cuda ``_Kernel``) for variant ``source`` launched with
    ``argtypes``, with the cubin a device of architecture ``device`` runs filed under that
    architecture (where it has none, numba links one from the kernel's LLVM IR when it
    first runs there: NVVM and the link, no typing); None where there is no kernel for that
    variant and these versions."""
    directory = PREBUILT_DIR if directory is None else Path(directory)
    manifest = _manifest(directory)
    if manifest is None or not versions_match(manifest.get("versions", {}), versions()):
        return None
    name = entry_key(source, argtypes)
    entry = manifest["kernels"].get(name)
    if entry is None:
        return None
    if options is not None and entry.get("options") != options:
        return None  # compiled with other options than this dispatcher's
    try:
        arch = compatible_architecture(entry["architectures"], device)
        states = pickle.loads(lzma.decompress((directory / entry["file"]).read_bytes()))
        kernel = _rebuild(states)
        library = kernel._codelibrary
        if tuple(kernel.signature.args) != tuple(argtypes):
            raise ValueError("its argument types differ from the manifest's")
        if arch is not None:
            library._cubin_cache[tuple(device)] = library._cubin_cache[tuple(arch)]
    except Exception as error:  # a damaged or foreign file: compile instead
        _warn_once(
            f"the prebuilt CUDA kernel {entry.get('file', name)} could not be read "
            f"({error!r}); compiling it instead"
        )
        return None
    return kernel


def summary(directory: Path | None = None) -> str:
    """One line on the prebuilt kernels: how many, for which versions and architectures,
    and whether this installation can use them (``tolsim info`` shows it)."""
    directory = PREBUILT_DIR if directory is None else Path(directory)
    manifest = _manifest(directory)
    if manifest is None:
        return "none shipped"
    built = manifest.get("versions", {})
    archs = ", ".join(f"sm_{a[0]}{a[1]}{a[2]}" for a in manifest.get("architectures", []))
    text = (
        f"{len(manifest.get('kernels', {}))} kernels for numba-cuda "
        f"{built.get('numba-cuda')}, numba {built.get('numba')} ({archs})"
    )
    installed = versions()
    if not enabled():
        return text + ": off (TOLSIM_CUDA_PREBUILT=0)"
    if not versions_match(built, installed):
        return (
            text + f": not used here (numba-cuda {installed['numba-cuda']}, numba "
            f"{installed['numba']} installed)"
        )
    return text + ": used where they match"


def _device_architecture() -> tuple[int, int, str]:
    """The current GPU's architecture as numba-cuda names the one it compiles for."""
    from numba import cuda

    cc = tuple(cuda.get_current_device().compute_capability)
    return (cc[0], cc[1], "a" if cc >= (9, 0) else "")


def attach(dispatcher, source: str, args: tuple) -> str:
    """Give ``dispatcher`` (a kernel's ``cuda.jit`` dispatcher) the prebuilt kernel for
    launching it with ``args`` on the current device, if there is one. Returns how the launch
    will get its kernel: ``"in memory"`` (compiled or loaded before), ``"prebuilt"`` (loaded
    now), or ``"compile"`` (numba compiles it, or loads it from its disk cache)."""
    argtypes = tuple(dispatcher.typeof_pyval(a) for a in args)
    with _LOCK:
        if argtypes in dispatcher.overloads:
            return "in memory"
        if not enabled():
            return "compile"
        kernel = load(
            source, argtypes, _device_architecture(), options=compile_options(dispatcher)
        )
        if kernel is None:
            return "compile"
        try:
            kernel.bind()  # loads the cubin on the current device
        except Exception as error:
            _warn_once(
                f"loading a prebuilt CUDA kernel on this GPU failed ({error!r}; a driver older "
                "than the CUDA toolkit that built it?); compiling it instead (set "
                "TOLSIM_CUDA_PREBUILT=0 to skip this attempt)"
            )
            return "compile"
        dispatcher.add_overload(kernel, argtypes)
        return "prebuilt"


def _models():
    from tolsim.models import ThreeState, TwoState

    return {"TwoState": TwoState(), "ThreeState": ThreeState()}


def variants():
    """Every prebuilt variant: ``(model name, model, n_channels, method, trajectories)``."""
    from tolsim.cuda import METHODS

    return [
        (name, model, n_channels, method, trajectories)
        for name, model in _models().items()
        for n_channels in CHANNELS
        for method in METHODS
        for trajectories in (False, True)
    ]


def launch_argument_types(model, n_channels: int) -> tuple:
    """numba types of ``solve_kernel``'s arguments as :func:`tolsim.cuda.solve` passes them,
    from host arrays of the same shapes' ranks and dtypes (device arrays type alike)."""
    import numba

    from tolsim import cuda

    n_states, n_drugs, n_packed = len(model.states), len(model.drugs), model.pack({}).size
    table = cuda.ScheduleTable(
        breakpoints=np.zeros((1, 2)),
        n_pieces=np.ones(1, dtype=np.int64),
        level=np.zeros((1, 1, n_drugs)),
        pk=np.zeros((1, 1, max(n_channels, 1), cuda.PK_COLUMNS)),
        grid=np.zeros((1, 1)),
        n_grid=np.ones(1, dtype=np.int64),
        w_index=np.zeros(1, dtype=np.int64),
        w_day=np.zeros(1),
        traj_slot=np.zeros((1, 1), dtype=np.int32),
        n_channels=n_channels,
    )
    args = cuda.launch_arguments(
        np.zeros(n_packed),
        np.zeros(n_packed, dtype=np.int64),
        np.zeros((1, 1)),
        np.zeros(1, dtype=np.int32),
        table.arrays(),
        threshold=np.nan,
        rtol=1e-6,
        atol=1e-6,
        max_steps=1,
        method="dopri5",
        metrics=True,
        stats=False,
        out_metrics=np.zeros((1, cuda.N_METRICS)),
        status=np.zeros(1, dtype=np.int32),
        out_stats=np.zeros((1, cuda.N_STATS), dtype=np.int64),
        out_x=np.zeros((1, 1, n_states)),
        out_dn=np.zeros((1, 1)),
    )
    return tuple(numba.typeof(a) for a in args)


# what the pickled states must not hold: numba's cloudpickle of a function by value (Python
# bytecode, one version's), or cuda.core's objects (pickled through a private helper)
_FOREIGN = (b"_function_setstate", b"cloudpickle", b"cuda.core._module")


def _states(kernel) -> dict:
    """numba-cuda's states of ``kernel`` and of its code library (what its disk cache keeps),
    as plain data: pickling the kernel itself would go through numba's cloudpickle, which
    stores a function by value (Python bytecode, readable by this Python version only)."""
    states = dict(kernel._reduce_states())
    library = dict(states["codelibrary"]._reduce_states())
    # cubins as bytes (cuda.core's ObjectCode pickles through a private helper of its own
    # version): rebuilt with its public ObjectCode.from_cubin
    library["cubin_cache"] = {
        arch: (bytes(cubin.code), str(cubin.name))
        for arch, cubin in library["cubin_cache"].items()
    }
    states["codelibrary"] = library
    return states


def _rebuild(states: dict):
    """The kernel of :func:`_states`, rebuilt as numba-cuda's disk cache rebuilds one."""
    from cuda.core import ObjectCode
    from numba.cuda.codegen import CUDACodeLibrary
    from numba.cuda.dispatcher import _Kernel

    states = dict(states)
    library = dict(states["codelibrary"])
    library["cubin_cache"] = {
        tuple(arch): ObjectCode.from_cubin(code, name=name)
        for arch, (code, name) in library["cubin_cache"].items()
    }
    states["codelibrary"] = CUDACodeLibrary._rebuild(**library)
    return _Kernel._rebuild(**states)


def _compile(dispatcher, argtypes, architectures):
    """numba-cuda's kernel for ``argtypes``, linked for ``architectures``, on a machine
    without a GPU: numba-cuda asks the current device for its compute capability in two
    places, answered here with the first architecture's (the LLVM IR it generates does not
    depend on it for these kernels: the cubins are linked per architecture from it)."""
    import numba.cuda.dispatcher as numba_dispatcher
    from numba.cuda import codegen

    first = architectures[0]

    class Device:
        compute_capability = first[:2]

    original_device = numba_dispatcher.get_current_device
    original_cc = codegen.CUDACodeLibrary._ensure_cc
    numba_dispatcher.get_current_device = Device
    codegen.CUDACodeLibrary._ensure_cc = lambda self, cc: first if cc is None else cc
    try:
        kernel = numba_dispatcher._Kernel(dispatcher.py_func, argtypes, **dispatcher.targetoptions)
        library = kernel._codelibrary
        for arch in architectures:
            library.get_cubin(cc=arch)
    finally:
        numba_dispatcher.get_current_device = original_device
        codegen.CUDACodeLibrary._ensure_cc = original_cc
    library._ptx_cache = {}  # the cubins and the LLVM IR they are linked from are shipped
    library._linkerinfo_cache = {}
    return kernel


def build(
    directory: Path | None = None,
    architectures=ARCHITECTURES,
    selected=None,
    log=print,
) -> dict:
    """Compile every variant of :func:`variants` (or ``selected``, a list of them) for
    ``architectures`` into ``directory`` (default the package's ``prebuilt/``): one
    ``<key>.pkl.xz`` each and the manifest; files of variants no longer built are removed.
    Needs numba-cuda with the CUDA toolkit (NVVM, nvJitLink), not a GPU."""
    import time

    from tolsim import cuda

    directory = PREBUILT_DIR if directory is None else Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    architectures = [tuple(a) for a in architectures]
    kernels = {}
    for name, model, n_channels, method, trajectories in selected or variants():
        constants = cuda.variant_constants(
            model, n_channels, cuda.MAX_REGISTERS, method=method, trajectories=trajectories
        )
        module = cuda.kernel_copy(model, constants)
        argtypes = launch_argument_types(model, n_channels)
        source = source_key(model.rates, constants)
        key = entry_key(source, argtypes)
        start = time.perf_counter()
        kernel = _compile(module.solve_kernel, argtypes, architectures)
        raw = pickle.dumps(_states(kernel), protocol=4)
        foreign = [m for m in _FOREIGN if m in raw]
        if foreign:  # code pickled by value (per Python version), or a private helper's name
            raise RuntimeError(f"{name} {n_channels} {method}: the states pickle {foreign}")
        data = lzma.compress(raw)
        (directory / f"{key}.pkl.xz").write_bytes(data)
        kernels[key] = {
            "file": f"{key}.pkl.xz",
            "model": name,
            "n_channels": n_channels,
            "method": method,
            "trajectories": trajectories,
            "max_registers": cuda.MAX_REGISTERS,
            "options": compile_options(module.solve_kernel),
            "source_sha256": source,
            "architectures": [list(a) for a in architectures],
            "bytes": len(data),
        }
        log(
            f"{name} channels={n_channels} {method} trajectories={trajectories}: "
            f"{time.perf_counter() - start:.1f} s, {len(data):,} bytes"
        )
    manifest = {
        "versions": versions(),
        "architectures": [list(a) for a in architectures],
        "kernels": dict(sorted(kernels.items())),
    }
    if selected is None:
        for path in directory.glob("*.pkl.xz"):
            if path.name not in {k["file"] for k in kernels.values()}:
                path.unlink()
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    _MANIFEST_CACHE.pop(directory, None)
    return manifest


def _main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m tolsim.cuda_prebuilt",
        description=inspect.cleandoc(__doc__.split("\n\n")[0]),
    )
    parser.add_argument("--out", type=Path, default=None, help="directory (default: package)")
    parser.add_argument(
        "--arch",
        action="append",
        default=None,
        help="architecture as MAJOR.MINOR[a], repeatable (default: 8.0 9.0a 10.0a 12.0a)",
    )
    args = parser.parse_args(argv)
    architectures = ARCHITECTURES
    if args.arch:
        architectures = []
        for text in args.arch:
            suffix = "a" if text.endswith("a") else ""
            major, minor = text.rstrip("a").split(".")
            architectures.append((int(major), int(minor), suffix))
    build(args.out, architectures)


if __name__ == "__main__":
    _main()
