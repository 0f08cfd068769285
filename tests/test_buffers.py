"""Pooled result memory (``tolsim.buffers``): a block is reused only once no array or view
of it is alive, results already handed out never change, the pool keeps what it is told."""

import gc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tolsim
from tolsim import buffers

LARGE = (buffers.MIN_BYTES // 8 + 1000,)  # float64 elements: above the pooling threshold


@pytest.fixture(autouse=True)
def fresh_pool():
    """Every test starts and ends with an empty pool at the default size."""
    default = buffers._max_bytes_from_environment()
    buffers.clear()
    yield
    buffers.configure(max_bytes=default)
    buffers.clear()


def address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_a_block_returns_to_the_pool_only_when_its_last_view_dies():
    a = buffers.empty((3, *LARGE))
    column, row = a[:, 5], a[1]
    where = address(a)
    del a
    gc.collect()
    assert buffers.pooled_bytes() == 0  # views alive: the block is in use
    b = buffers.empty((3, *LARGE))
    assert address(b) != where
    del column
    gc.collect()
    assert buffers.pooled_bytes() == 0
    del row
    gc.collect()
    assert buffers.pooled_bytes() > 0
    c = buffers.empty((3, *LARGE))
    assert address(c) == where and buffers.pooled_bytes() == 0
    del b, c


@settings(max_examples=30, deadline=None)
@given(
    shapes=st.lists(st.tuples(st.integers(1, 40), st.integers(1, 3000)), min_size=1, max_size=6),
    dtype=st.sampled_from([np.float64, np.int64, np.int32]),
    drop=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_live_arrays_never_share_memory(shapes, dtype, drop):
    """Arrays allocated, filled, partly dropped and allocated again: each live array keeps
    its own values (no block is handed out twice)."""
    live = []
    for round_ in range(2):
        for k, shape in enumerate(shapes):
            a = buffers.empty(shape, dtype=dtype)
            assert a.shape == shape and a.dtype == dtype
            assert a.flags.c_contiguous and a.flags.writeable
            a[...] = 1000 * round_ + k
            live.append((a, 1000 * round_ + k))
        live = [pair for pair, d in zip(live, drop * 3, strict=False) if not d]
        gc.collect()
    for a, value in live:
        assert (a == value).all()


def test_small_arrays_are_plain_numpy_arrays():
    a = buffers.empty((10, 10))
    assert a.flags.owndata and a.base is None


def test_the_pool_keeps_at_most_max_bytes():
    one = buffers.empty(LARGE)
    block = buffers.pooled_bytes()
    assert block == 0
    buffers.configure(max_bytes=2 * 2**21)  # two 2 MiB blocks
    arrays = [buffers.empty(LARGE) for _ in range(3)] + [one]
    del arrays, one
    gc.collect()
    assert buffers.pooled_bytes() == 2 * 2**21
    buffers.configure(max_bytes=2**21)
    assert buffers.pooled_bytes() == 2**21
    buffers.configure(max_bytes=0)
    assert buffers.pooled_bytes() == 0
    a = buffers.empty(LARGE)
    assert a.flags.owndata  # no pool: numpy's own allocation
    buffers.clear()


def test_results_handed_out_do_not_change_when_memory_is_reused():
    model = tolsim.models.TwoState()
    schedule = tolsim.Schedule.from_phases([{"days": 30, "tamoxifen": 1.0}, {"days": 30}])
    times = np.linspace(0.0, 60.0, 4000)  # 4,000 outputs x 40 samples: pooled arrays
    table = {"mu_E": np.linspace(0.0, 0.01, 40)}
    first = tolsim.simulate(model, table, schedule, times)
    kept = first.copy(deep=True)
    for k in range(3):  # results made and dropped: their blocks go back and are reused
        other = tolsim.simulate(model, {"mu_E": np.full(40, 0.02 + k)}, schedule, times)
        assert not np.shares_memory(other.S.values, first.S.values)
        del other
        gc.collect()
    assert buffers.pooled_bytes() > 0
    np.testing.assert_array_equal(first.S.values, kept.S.values)
    np.testing.assert_array_equal(first.N.values, kept.N.values)
    np.testing.assert_array_equal(first.dN_dt.values, kept.dN_dt.values)


@pytest.mark.parametrize("value", [-1, 2.5, True, "1"])
def test_configure_refuses_what_is_not_a_byte_count(value):
    with pytest.raises((ValueError, TypeError), match="max_bytes"):
        buffers.configure(max_bytes=value)


def test_a_bad_environment_setting_is_an_error_naming_it(monkeypatch):
    monkeypatch.setenv("TOLSIM_BUFFER_POOL_BYTES", "lots")
    with pytest.raises(ValueError, match="TOLSIM_BUFFER_POOL_BYTES = 'lots'"):
        buffers._max_bytes_from_environment()
    monkeypatch.setenv("TOLSIM_BUFFER_POOL_BYTES", "0")
    assert buffers._max_bytes_from_environment() == 0
