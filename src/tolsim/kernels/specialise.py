"""Per-model copies of the kernel templates, so numba can cache them on disk.

Numba's cache does not hold a kernel that receives a jitted function as an argument: it is
compiled again in every process (seconds of start-up per model). Instead, each template in
this package calls a module-global ``rates``; for a model we write a copy of the template whose
``TOLSIM-RATES`` line binds the model's rate function (set in the module before it runs), import
it, and let numba cache that file. The copy's name carries a hash of the template, the kernels
it calls, the module that defines the rate function and the function itself (its code, the
jitted functions it calls and its global constants), so editing any of them gives a fresh copy
rather than a stale cache (numba does not track dependencies between files).

The copies live in ``$TOLSIM_CACHE_DIR`` (default ``$XDG_CACHE_HOME/tolsim`` or
``~/.cache/tolsim``), falling back to a temporary directory when that is not writable.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType

import numpy as np

_KERNEL_DIR = Path(__file__).resolve().parent
# Modules whose numba functions the templates call: part of every copy's hash.
_DEPENDENCIES = (
    "elementary.py",
    "events.py",
    "exposure.py",
    "linalg.py",
    "ode_template.py",
    "random.py",
    "stochastic_template.py",  # its functions compiled for the GPU by the CUDA tau kernel
    "cuda_template.py",  # device_function, used by the CUDA tau kernel
    "summary.py",
    "tableau.py",
)
_MARKER = re.compile(r"^from \S+ import \S+ as model_rates  # TOLSIM-RATES$", re.M)
_CONSTANT = re.compile(r"^(?P<name>[A-Z_][A-Z0-9_]*) = .*  # TOLSIM-CONSTANT$", re.M)
_LOCK = threading.Lock()
_LOADED: dict[tuple[str, object], ModuleType] = {}
_STALE_AFTER_S = 3600.0  # an older copy of the same kernels is deleted once this old


def cache_dir() -> Path:
    """Directory holding specialised kernel copies (created on demand)."""
    root = os.environ.get("TOLSIM_CACHE_DIR")
    if root:
        path = Path(root)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
        path = Path(base) / "tolsim"
    path = path / "kernels"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError:
        user = os.getuid() if hasattr(os, "getuid") else os.getlogin()  # no getuid on Windows
        path = Path(tempfile.gettempdir()) / f"tolsim-kernels-{user}"
        path.mkdir(parents=True, exist_ok=True)
    return path


# the kernel templates whose copies live in cache_dir() (longest first: one name starts another's)
TEMPLATES = (
    "cuda_stochastic_template",
    "stochastic_template",
    "ode_lanes_template",
    "cuda_template",
    "ode_template",
)
_COPY = re.compile(r"^tolsim_(?P<template>" + "|".join(TEMPLATES) + r")_.+?\.")


def cached_copies() -> list[dict]:
    """The kernel copies in :func:`cache_dir`, oldest first: one dict per copy with its
    ``name``, ``template``, ``bytes`` (the copy and numba's cache files of its kernels) and
    ``written`` (POSIX time the copy was written)."""
    directory = cache_dir()
    compiled: dict[str, int] = {}
    for path in (directory / "__pycache__").glob("tolsim_*"):
        name = path.name.split(".", 1)[0]
        compiled[name] = compiled.get(name, 0) + _size(path)
    copies = []
    for path in directory.glob("tolsim_*.py"):
        match = _COPY.match(path.name)
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed by another process meanwhile
            continue
        if match is not None:
            copies.append(
                {
                    "name": path.stem,
                    "template": match["template"],
                    "bytes": stat.st_size + compiled.get(path.stem, 0),
                    "written": stat.st_mtime,
                }
            )
    return sorted(copies, key=lambda copy: copy["written"])


def clear_cache() -> tuple[int, int]:
    """Delete every kernel copy in :func:`cache_dir`, with numba's cache files of its kernels
    and any half-written copy; return how many copies and bytes went.

    The next call of each kernel compiles it again. Run it while no tolsim process is
    running: a process importing a copy as it goes would fail. (Numba's cache of the shared
    kernels inside the package is numba's own, and stays; so do the cache files of the copies
    where ``NUMBA_CACHE_DIR`` puts them elsewhere: numba compiles a rewritten copy again.)
    """
    directory = cache_dir()
    n_copies = n_bytes = 0
    paths = list(directory.glob("tolsim_*.py")) + list(directory.glob("*.tmp"))
    paths += list((directory / "__pycache__").glob("tolsim_*"))
    for path in paths:
        size = _size(path)
        try:
            path.unlink()
        except FileNotFoundError:
            continue  # another process removed it first
        n_bytes += size
        n_copies += path.suffix == ".py" and _COPY.match(path.name) is not None
    return n_copies, n_bytes


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _function_fingerprint(
    func, digest, seen: set | None = None, *, source_text: bool = False
) -> None:
    """Feed ``digest`` with what a jitted function computes: its code (bytecode, constants,
    names, first line) and, through the globals it names, the code of the jitted functions it
    calls (also as ``module.function``) and the values of its global constants. Two functions
    of the same name in one file, an edited helper in another module, or a changed global
    then give another copy, where numba's cache of the old one would be loaded stale.

    ``source_text=True`` feeds each function's name and source text instead of its bytecode,
    which is the same under every Python version (the prebuilt CUDA kernels' key)."""
    seen = set() if seen is None else seen
    if id(func) in seen:
        return
    seen.add(id(func))
    code = func.__code__

    def feed_code(code) -> None:
        digest.update(code.co_code)
        digest.update(repr(code.co_names).encode())
        digest.update(str(code.co_firstlineno).encode())
        for const in code.co_consts:
            if hasattr(const, "co_code"):
                feed_code(const)
            else:
                digest.update(repr(const).encode())

    if source_text:
        digest.update(f"{func.__module__}.{func.__qualname__}".encode())
        try:
            digest.update(inspect.getsource(func).encode())
        except (OSError, TypeError):  # no source file: this Python's bytecode
            feed_code(code)
    else:
        feed_code(code)
    namespace = getattr(func, "__globals__", {})
    values = [namespace[name] for name in code.co_names if name in namespace]
    for value in list(values):  # attributes of the modules it reads: ``helpers.growth``
        if isinstance(value, ModuleType):
            values += [getattr(value, n) for n in code.co_names if hasattr(value, n)]
    for value in values:
        inner = getattr(value, "py_func", None)
        if inner is not None:  # a numba dispatcher (njit function) it calls
            _function_fingerprint(inner, digest, seen, source_text=source_text)
        elif isinstance(value, bool | int | float | complex | str | bytes | tuple):
            digest.update(repr(value).encode())
        elif isinstance(value, np.ndarray | np.generic):
            digest.update(np.ascontiguousarray(value).tobytes() + repr(value.dtype).encode())


def _rates_source(rates) -> str:
    func = rates.py_func
    module = sys.modules.get(func.__module__)
    try:
        return inspect.getsource(module) if module is not None else inspect.getsource(func)
    except (OSError, TypeError):
        try:
            return inspect.getsource(func)
        except (OSError, TypeError):
            return func.__code__.co_code.hex() + repr(func.__code__.co_consts)


def specialised(template: str, rates, constants: dict[str, str] | None = None) -> ModuleType:
    """Import the copy of kernel template ``template`` (e.g. ``"ode_template"``) for ``rates``.

    ``rates`` is a top-level ``numba.njit`` function; the result is cached per process.
    ``constants`` maps names of the template's ``NAME = ...  # TOLSIM-CONSTANT`` lines to the
    source text of their values in this copy (sizes that CUDA's local arrays need at compile
    time, for instance); they are part of the copy's name.
    """
    constants = dict(sorted((constants or {}).items()))
    # the dispatcher itself: holding it keeps its id from being reused
    key = (template, rates, tuple(constants.items()))
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        func = rates.py_func
        text = (_KERNEL_DIR / f"{template}.py").read_text()
        digest = hashlib.sha256(text.encode())
        for dep in _DEPENDENCIES:
            digest.update((_KERNEL_DIR / dep).read_bytes())
        digest.update(f"{func.__module__}.{func.__qualname__}".encode())
        digest.update(_rates_source(rates).encode())
        _function_fingerprint(func, digest)
        digest.update(repr(constants).encode())
        tag = digest.hexdigest()[:16]
        safe = re.sub(r"\W", "_", f"{func.__module__}_{func.__qualname__}")
        # copies with other constants (another stochastic method, a GPU kernel variant) are
        # other kernels, not older versions of this one: the name keeps them apart
        variant = hashlib.sha256(repr(constants).encode()).hexdigest()[:8]
        prefix = f"tolsim_{template}_{safe}_{variant}_"
        name = f"{prefix}{tag}"
        # the exact function this model was built with, set in the module before it runs (a
        # name looked up at import could by then be bound to another function)
        import_line = "model_rates = _TOLSIM_RATES  # TOLSIM-RATES"
        source, count = _MARKER.subn(import_line, text)
        if count != 1:
            raise RuntimeError(f"kernel template {template!r} lacks its TOLSIM-RATES import")
        source = _set_constants(template, source, constants)
        path = cache_dir() / f"{name}.py"
        if not path.exists() or path.read_text() != source:
            _remove_stale_copies(path.parent, f"tolsim_{template}_{safe}_", variant)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as handle:
                handle.write(source)
            os.replace(tmp, path)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        module._TOLSIM_RATES = rates
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _LOADED[key] = module
        return module


def _set_constants(template: str, source: str, constants: dict[str, str]) -> str:
    found = set()

    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in constants:
            return match[0]
        found.add(name)
        return f"{name} = {constants[name]}  # TOLSIM-CONSTANT"

    source = _CONSTANT.sub(replace, source)
    missing = set(constants) - found
    if missing:
        raise RuntimeError(
            f"kernel template {template!r} has no TOLSIM-CONSTANT {sorted(missing)}"
        )
    return source


def _remove_stale_copies(directory: Path, stem: str, variant: str) -> None:
    """Delete older copies (and their numba cache files) of the same template, rates and
    constants: ``<stem><variant>_`` and a tag other than the current one (the hash of older
    source), or a copy named as before the constants were part of the name (``<stem><tag>``).

    Only copies untouched for an hour go, so a process still importing one is not disturbed.
    (Loading a copy must not touch it: numba's disk cache is keyed on the source file's
    modification time, so touching the copy would make numba compile it again.)
    """
    now = time.time()
    # "<name>.py" and numba's "<name>.<function>-<line>...": a name, then a dot. Matching the
    # whole name keeps the copies of a rate function whose name merely starts with this one's.
    own = re.compile(re.escape(stem) + rf"({variant}_)?[0-9a-f]{{16}}\.")
    stale = [p for p in directory.glob(f"{stem}*.py") if own.match(p.name)]
    stale += [p for p in (directory / "__pycache__").glob(f"{stem}*") if own.match(p.name)]
    for path in stale:
        try:
            if now - path.stat().st_mtime > _STALE_AFTER_S:
                path.unlink()
        except OSError:
            pass  # another process may be removing it too
