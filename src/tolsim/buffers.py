"""Reused memory for large result arrays.

Writing a result into fresh memory costs more than the arithmetic of the cheap solvers: Linux
maps and zeroes every new page on first touch, and on this project's virtual machines a page
freed and touched again also goes back and forth to the host. Measured here, 10,000 samples ×
361 days of the two-state model write 145 MB (states, dN/dt, totals, tolerant fraction): about
3 µs a trajectory on one thread for fresh memory, as much as the lockstep kernel's stepping.

:func:`empty` hands out arrays backed by blocks this module keeps: when the last array or view
of a block dies, the block returns to a pool and the next result of a similar size reuses its
pages without faults. The pool keeps at most ``max_bytes`` (default 512 MiB, or the environment
variable ``TOLSIM_BUFFER_POOL_BYTES``); beyond that a freed block goes back to the operating
system. ``configure(max_bytes=0)`` turns reuse off, :func:`clear` empties the pool.

Arrays from :func:`empty` are ordinary writeable C-contiguous numpy arrays with undefined
contents (like ``numpy.empty``). Their views keep the block in use (they all share one base
array, whose own base is the block); copies, pickles and files are independent of it.
"""

from __future__ import annotations

import mmap
import os
import threading
import weakref

import numpy as np

__all__ = ["MIN_BYTES", "clear", "configure", "empty", "pooled_bytes"]

MIN_BYTES = 1 << 20  # smaller arrays come from numpy.empty: their pages are reused by malloc
_BLOCK = 2 << 20  # block sizes are rounded up to whole huge pages
_DEFAULT_MAX_BYTES = 512 << 20


def _max_bytes_from_environment() -> int:
    value = os.environ.get("TOLSIM_BUFFER_POOL_BYTES")
    if value is None:
        return _DEFAULT_MAX_BYTES
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ValueError(
            f"environment variable TOLSIM_BUFFER_POOL_BYTES = {value!r}: expected a "
            "non-negative integer (bytes; 0 turns the pool off)"
        )
    return number


class _Pool:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        # reentrant: a collection inside a locked section may run a finaliser that gives a
        # block back from the same thread
        self.lock = threading.RLock()
        self.free: dict[int, list[mmap.mmap]] = {}
        self.held = 0

    def take(self, size: int) -> mmap.mmap:
        with self.lock:
            blocks = self.free.get(size)
            if blocks:
                self.held -= size
                return blocks.pop()
        block = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_HUGEPAGE"):
            block.madvise(mmap.MADV_HUGEPAGE)
        return block

    def give(self, block: mmap.mmap) -> None:
        """Called when the last array on ``block`` dies (a weakref callback: its buffer is
        still exported for a moment, so a block not kept is dropped, not closed)."""
        size = len(block)
        with self.lock:
            if self.held + size <= self.max_bytes:
                self.free.setdefault(size, []).append(block)
                self.held += size

    def clear(self) -> None:
        with self.lock:
            self.free.clear()
            self.held = 0


_POOL = _Pool(_max_bytes_from_environment())


def empty(shape, dtype=np.float64) -> np.ndarray:
    """An uninitialised C-contiguous array, on a pooled block when it is large."""
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in np.atleast_1d(shape)) if np.ndim(shape) else (int(shape),)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < MIN_BYTES or _POOL.max_bytes == 0:
        return np.empty(shape, dtype=dtype)
    size = -(-nbytes // _BLOCK) * _BLOCK
    block = _POOL.take(size)
    # every view of the result, the result included, has this flat array as its base (numpy
    # stops collapsing bases at an array whose own base is not an array): the block returns
    # to the pool when the last of them dies
    flat = np.frombuffer(block, dtype=dtype, count=nbytes // dtype.itemsize)
    weakref.finalize(flat, _POOL.give, block)
    return flat.reshape(shape)


def configure(*, max_bytes: int) -> None:
    """Keep at most ``max_bytes`` of freed blocks for reuse (0: no reuse; the blocks already
    kept beyond the new limit are released)."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int | np.integer):
        raise TypeError(f"`max_bytes` = {max_bytes!r}: expected an integer number of bytes")
    if max_bytes < 0:
        raise ValueError(f"`max_bytes` = {max_bytes!r}: expected >= 0 (0 turns reuse off)")
    with _POOL.lock:
        _POOL.max_bytes = int(max_bytes)
        for size in sorted(_POOL.free, reverse=True):
            blocks = _POOL.free[size]
            while blocks and _POOL.held > _POOL.max_bytes:
                blocks.pop()
                _POOL.held -= size


def clear() -> None:
    """Release every block the pool keeps (arrays in use are not affected)."""
    _POOL.clear()


def pooled_bytes() -> int:
    """Bytes of freed blocks kept for reuse."""
    return _POOL.held
