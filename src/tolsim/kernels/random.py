"""Reproducible random streams for parallel stochastic simulation (numba).

Every path owns a stream: a xoshiro256** generator (Blackman & Vigna 2018) whose 256-bit
state is derived from ``(seed, sample, path)`` by SplitMix64 mixing. A path's random numbers
therefore depend only on those three integers — not on the thread that runs it, the number of
threads, or how paths are split into batches — and two paths never share a stream.

The state is a ``uint64`` array of length 4 owned by the path. Samplers:

* :func:`uniform` in [0, 1) and :func:`uniform_open` in (0, 1] (53 random bits);
* :func:`exponential` with mean 1 (Marsaglia & Tsang's 2000 ziggurat with 256 levels, on
  53-bit integers as in numpy; the rare tail and wedge cases take a logarithm or an
  exponential);
* :func:`poisson` — multiplication method for means below 10, Hörmann's PTRS transformed
  rejection (1993, the algorithm numpy uses) above.

Only integer operations and IEEE arithmetic are used, so the same streams can be produced
on other devices: the logarithms, exponentials and log-factorials come from
:mod:`tolsim.kernels.elementary`, built from correctly rounded operations, not from the C
library's ``log`` and ``exp`` (which CUDA's libdevice rounds differently in the last bit).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, uint64

from tolsim.kernels.elementary import exp_moderate as ieee_exp
from tolsim.kernels.elementary import log as ieee_log
from tolsim.kernels.elementary import log_factorial

STATE_WORDS = 4

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SAMPLE_KEY = np.uint64(0xD1B54A32D192ED03)
_PATH_KEY = np.uint64(0x8CB92BA72F3D8DD7)
_TWO_POW_M53 = 1.0 / 9007199254740992.0  # 2**-53


@njit(cache=True, inline="always")
def _mix64(z):
    """SplitMix64's output function (a bijection of 64-bit words)."""
    z = (z ^ (z >> uint64(30))) * _MIX1
    z = (z ^ (z >> uint64(27))) * _MIX2
    return z ^ (z >> uint64(31))


@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << uint64(k)) | (x >> uint64(64 - k))


@njit(cache=True)
def seed_stream(seed, sample, path, state):
    """Fill ``state`` (uint64[4]) with the stream of path ``path`` of sample ``sample``.

    ``seed``, ``sample`` and ``path`` are non-negative integers below 2**63; distinct triples
    give unrelated streams (each word goes through SplitMix64's avalanche mixing).
    """
    key = _mix64(uint64(seed) + _GOLDEN)
    key = _mix64(key ^ (uint64(sample) * _SAMPLE_KEY + _GOLDEN))
    key = _mix64(key ^ (uint64(path) * _PATH_KEY + _GOLDEN))
    for i in range(STATE_WORDS):
        key += _GOLDEN
        state[i] = _mix64(key)
    if state[0] == 0 and state[1] == 0 and state[2] == 0 and state[3] == 0:
        state[0] = _GOLDEN  # the all-zero state is xoshiro's only fixed point


@njit(cache=True, inline="always")
def next_u64(state):
    """Next 64-bit word of the stream (xoshiro256**)."""
    result = _rotl(state[1] * uint64(5), 7) * uint64(9)
    t = state[1] << uint64(17)
    state[2] ^= state[0]
    state[3] ^= state[1]
    state[1] ^= state[2]
    state[0] ^= state[3]
    state[2] ^= t
    state[3] = _rotl(state[3], 45)
    return result


@njit(cache=True, inline="always")
def uniform(state):
    """Uniform double in [0, 1)."""
    return float(next_u64(state) >> uint64(11)) * _TWO_POW_M53


@njit(cache=True, inline="always")
def uniform_open(state):
    """Uniform double in (0, 1] (safe to take the logarithm of)."""
    return float((next_u64(state) >> uint64(11)) + uint64(1)) * _TWO_POW_M53


def _ziggurat_tables(levels: int = 256):
    """Tables of the exponential ziggurat (Marsaglia & Tsang 2000) for 53-bit integers."""
    scale = 2.0**53
    edge = 7.69711747013104972  # right edge r of the base layer
    volume = 3.949659822581572e-3  # area of each layer
    ke = np.zeros(levels, dtype=np.uint64)
    we = np.zeros(levels)
    fe = np.zeros(levels)
    de = edge
    te = de
    q = volume / math.exp(-de)
    ke[0] = np.uint64(math.floor((de / q) * scale))
    ke[1] = 0
    we[0] = q / scale
    we[levels - 1] = de / scale
    fe[0] = 1.0
    fe[levels - 1] = math.exp(-de)
    for i in range(levels - 2, 0, -1):
        de = -math.log(volume / de + math.exp(-de))
        ke[i + 1] = np.uint64(math.floor((de / te) * scale))
        te = de
        fe[i] = math.exp(-de)
        we[i] = de / scale
    return edge, ke, we, fe


_ZIG_R, _ZIG_K, _ZIG_W, _ZIG_F = _ziggurat_tables()


@njit(cache=True, inline="always")
def exponential(state):
    """Exponential variate with mean 1 (ziggurat: one 64-bit draw, a shift, a multiply and a
    comparison in 97.8% of calls). The slow path — the tail beyond the base layer, or a point
    in a wedge — retries in a loop, not by recursion, so that CUDA device code can use this
    function as it is. Its logarithm and exponential are inlined and small (the wedge's
    argument lies in [-7.7, 0]): a call there, or a larger body, even in a branch taken by 2%
    of draws, made every draw five times slower."""
    while True:
        bits = next_u64(state) >> uint64(3)
        index = int(bits & uint64(0xFF))
        bits >>= uint64(8)
        x = float(bits) * _ZIG_W[index]
        if bits < _ZIG_K[index]:
            return x
        if index == 0:
            return _ZIG_R - ieee_log(uniform_open(state))
        if (_ZIG_F[index - 1] - _ZIG_F[index]) * uniform(state) + _ZIG_F[index] < ieee_exp(-x):
            return x


@njit(cache=True)
def _poisson_ptrs(state, mean):
    """Hörmann (1993) PTRS transformed rejection with squeeze, for ``mean >= 10``."""
    slam = math.sqrt(mean)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    v_r = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        u = uniform(state) - 0.5
        v = uniform_open(state)
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + mean + 0.43)
        if us >= 0.07 and v <= v_r:
            return k
        if k < 0.0 or (us < 0.013 and v > us):
            continue
        if _ptrs_accepts(k, v, us, a, b, inv_alpha, mean):
            return k


@njit(cache=True, error_model="numpy")
def _ptrs_accepts(k, v, us, a, b, inv_alpha, mean):
    """PTRS's full acceptance test (the ~14% of draws the squeeze leaves): a function of its
    own, so that its logarithms do not weigh on the sampler's loop."""
    return ieee_log(v) + ieee_log(inv_alpha) - ieee_log(a / (us * us) + b) <= (
        -mean + k * ieee_log(mean) - log_factorial(k)
    )


@njit(cache=True)
def poisson(state, mean):
    """Poisson variate (as a float holding an integer) with the given mean >= 0."""
    if mean <= 0.0:
        return 0.0
    if mean >= 10.0:
        return _poisson_ptrs(state, mean)
    limit = ieee_exp(-mean)
    count = 0.0
    product = uniform_open(state)
    while product > limit:
        count += 1.0
        product *= uniform_open(state)
    return count


@njit(cache=True)
def draw_uniform(seed, sample, path, n):
    """``n`` uniforms of one stream (for tests and for other devices to compare against)."""
    state = np.empty(STATE_WORDS, dtype=np.uint64)
    seed_stream(seed, sample, path, state)
    out = np.empty(n)
    for i in range(n):
        out[i] = uniform(state)
    return out


@njit(cache=True)
def draw_poisson(seed, sample, path, mean, n):
    """``n`` Poisson variates of one stream with the given mean (for tests)."""
    state = np.empty(STATE_WORDS, dtype=np.uint64)
    seed_stream(seed, sample, path, state)
    out = np.empty(n)
    for i in range(n):
        out[i] = poisson(state, mean)
    return out
