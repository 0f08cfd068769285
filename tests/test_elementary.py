"""The portable logarithm, exponential and log-factorial of :mod:`tolsim.kernels.elementary`,
and the samplers built on them.

Accuracy is measured against numpy's (the C library's) functions, which are themselves within
about half a unit in the last place (ulp): a difference of at most 1 ulp bounds ours below
~1.5 ulp. The property that matters for the GPU — no C-library or LLVM transcendental, no fused
multiply-add — is read off the compiled code.
"""

import math
import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from scipy import stats

from tolsim.kernels import elementary, random

LEVEL = 1e-3  # significance level of the statistical tests


@njit(cache=True)
def _elementwise(values, function):
    """``elementary.log`` (0), ``exp`` (1) or ``exp_moderate`` (2) of every value."""
    out = np.empty_like(values)
    for i in range(values.size):
        if function == 0:
            out[i] = elementary.log(values[i])
        elif function == 1:
            out[i] = elementary.exp(values[i])
        else:
            out[i] = elementary.exp_moderate(values[i])
    return out


@njit(cache=True)
def _exponentials(seed, n):
    state = np.empty(random.STATE_WORDS, dtype=np.uint64)
    random.seed_stream(seed, 0, 0, state)
    out = np.empty(n)
    for i in range(n):
        out[i] = random.exponential(state)
    return out


def ulps(got, reference):
    """|got - reference| in units of the reference's last place (subnormal spacing below)."""
    return np.abs(got - reference) / np.spacing(np.abs(reference))


_TRANSCENDENTAL = {"log", "exp", "lgamma", "pow", "llvm.log.f64", "llvm.exp.f64", "llvm.pow.f64"}


def _compiled_ir(function, signature) -> str:
    """LLVM IR of a fresh compile of ``function`` (cached code cannot be inspected)."""
    fresh = njit(function.py_func)
    fresh.compile(signature)
    return "\n".join(fresh.inspect_llvm().values())


def _calls(ir: str) -> set[str]:
    """Names of the functions ``ir`` calls."""
    return set(re.findall(r"\bcall [^@\n]*@\"?([\w.$]+)", ir))


def test_log_is_within_one_ulp_of_the_c_library():
    rng = np.random.default_rng(1)
    x = np.concatenate(
        [
            rng.random(200_000),  # uniforms (the samplers' arguments)
            np.arange(1, 100_000) * 2.0**-53,  # the smallest uniforms, exactly
            np.exp(rng.uniform(-740.0, 709.0, 200_000)),  # every exponent
            rng.uniform(0.5, 2.0, 200_000),  # around 1, where log is small
            np.array([5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1.0, 2.0]),
        ]
    )
    reference = np.log(x)
    got = _elementwise(x, 0)
    assert got[-2] == 0.0  # log 1 exactly
    nonzero = reference != 0.0
    assert ulps(got[nonzero], reference[nonzero]).max() <= 1.0
    # not a copy of the C library's: it rounds differently somewhere (else this test proves
    # nothing about portability)
    assert (got != reference).any()


def test_exp_is_within_one_ulp_of_the_c_library_and_underflows_gradually():
    rng = np.random.default_rng(2)
    x = np.concatenate(
        [
            rng.uniform(-708.0, 709.7, 200_000),
            rng.uniform(-8.0, 0.0, 200_000),  # the ziggurat wedge's exp(-x)
            rng.uniform(-1e-6, 1e-6, 10_000),
            rng.uniform(-745.0, -708.5, 20_000),  # subnormal results
        ]
    )
    reference = np.exp(x)
    got = _elementwise(x, 1)
    normal = reference >= 2.2250738585072014e-308
    assert ulps(got[normal], reference[normal]).max() <= 1.0
    moderate = (x >= -708.0) & (x <= 709.0)  # the samplers' exp: the same numbers there
    np.testing.assert_array_equal(_elementwise(x[moderate], 2), got[moderate])
    # subnormals: one rounding at the end, as the C library (within its 1-ulp accuracy)
    assert np.abs(got[~normal] - reference[~normal]).max() <= 5e-324
    assert (got != reference).any()


def test_special_values():
    log, exp = elementary.log, elementary.exp
    assert log(0.0) == -math.inf and log(math.inf) == math.inf
    assert math.isnan(log(-1.0)) and math.isnan(log(math.nan)) and math.isnan(exp(math.nan))
    assert exp(-math.inf) == 0.0 and exp(math.inf) == math.inf
    assert exp(709.78) == math.exp(709.78) and exp(709.79) == math.inf  # overflow threshold
    assert exp(-745.1) == 5e-324 and exp(-745.2) == 0.0
    assert exp(0.0) == 1.0 and exp(-0.0) == 1.0


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=1e-300, max_value=1e300))
def test_exp_inverts_log(x):
    """exp(log x) = x to within the error log's rounding can cause: |x| * |log x| * 2^-52."""
    back = elementary.exp(elementary.log(x))
    assert abs(back - x) <= x * (abs(math.log(x)) + 2.0) * 2.0**-52


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=-700.0, max_value=700.0), st.floats(min_value=-700.0, max_value=700.0))
def test_exp_is_monotone(a, b):
    if a <= b:
        assert elementary.exp(a) <= elementary.exp(b)


def test_log_factorial_matches_lgamma_across_the_table_edge():
    k = np.concatenate([np.arange(0.0, 400.0), np.exp(np.linspace(6.0, 40.0, 200)).round()])
    got = np.array([elementary.log_factorial(v) for v in k])
    reference = np.array([math.lgamma(v + 1.0) for v in k])
    np.testing.assert_array_equal(got[:256], reference[:256])  # the table itself
    assert np.abs(got[2:] - reference[2:]).max() <= 4e-16 * np.abs(reference[2:]).max()
    np.testing.assert_allclose(got[256:], reference[256:], rtol=2e-15)


def test_compiled_code_calls_no_transcendental_and_fuses_nothing():
    """What makes the functions portable, read off numba's LLVM IR: no call to the C library's
    or LLVM's log/exp, and no fused multiply-add (``llvm.fma``, ``llvm.fmuladd``)."""
    functions = (elementary.log, elementary.exp, elementary.exp_moderate, elementary.log_factorial)
    for function in functions:
        ir = _compiled_ir(function, "float64(float64)")
        calls = _calls(ir)
        assert not calls & _TRANSCENDENTAL, (function.__name__, calls)
        assert not any(name.startswith(("llvm.fma", "llvm.fmuladd")) for name in calls)
    assert "fmul" in ir and "fdiv" in ir  # the arithmetic is there, inline


def test_exponential_sampler_has_the_exponential_distribution_and_tail():
    """Ziggurat draws: a Kolmogorov–Smirnov test, and the tail beyond the base layer's edge r
    (where the logarithm is taken), expected with probability exp(-r) = 4.5e-4."""
    draws = _exponentials(11, 2_000_000)
    assert stats.kstest(draws[:200_000], "expon").pvalue > LEVEL
    beyond = np.count_nonzero(draws > random._ZIG_R)
    p = math.exp(-random._ZIG_R)
    expected = p * draws.size
    assert abs(beyond - expected) <= 3.3 * math.sqrt(expected * (1 - p))  # two-sided 1e-3
    tail = draws[draws > random._ZIG_R] - random._ZIG_R  # memoryless: Exp(1) again
    assert stats.kstest(tail, "expon").pvalue > LEVEL
    mean, var = draws.mean(), draws.var()
    assert abs(mean - 1.0) <= 3.3 / math.sqrt(draws.size)
    assert abs(var - 1.0) <= 3.3 * math.sqrt(8.0 / draws.size)  # var of (X-1)^2 is 8


@njit
def _one_exponential(state):
    return random.exponential(state)  # (inline: its body is compiled into this function)


def test_samplers_take_no_c_library_transcendental():
    """The exponential (inlined into a caller), both Poisson samplers and PTRS's acceptance
    test: no C-library or LLVM log, exp, lgamma or pow left in their compiled code (the
    elementary functions are inlined; ``frexp`` and ``sqrt`` are exact and allowed). A
    positive control shows the check sees ``math.log``."""
    for function, signature in (
        (_one_exponential, "float64(uint64[::1])"),
        (random.poisson, "float64(uint64[::1], float64)"),
        (random._poisson_ptrs, "float64(uint64[::1], float64)"),
        (
            random._ptrs_accepts,
            "boolean(float64, float64, float64, float64, float64, float64, float64)",
        ),
    ):
        found = _calls(_compiled_ir(function, signature)) & _TRANSCENDENTAL
        assert not found, (function.__name__, found)
    control = njit(lambda x: math.log(x))
    assert _calls(_compiled_ir(control, "float64(float64)")) & _TRANSCENDENTAL == {"llvm.log.f64"}
