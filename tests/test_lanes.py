"""The lane kernel (``tolsim.kernels.ode_lanes_template``) against the one-trajectory kernel.

Lanes share no arithmetic, only loops, so every number must be the same bit for bit: states,
dN/dt, statuses and step counts, whatever the samples sharing a block and however the lanes
are refilled.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

import tolsim
from tolsim.kernels import summary
from tolsim.kernels.exposure import hill
from tolsim.kernels.specialise import specialised
from tolsim.models import Model, Parameter, Transition
from tolsim.simulate import (
    exposure_index,
    lane_kernels,
    lanes_apply,
    solve_batch,
    tolerant_index,
)

AUTO, DOPRI5 = 1, 0
RATE_NAMES = ("lambda_S", "lambda_T", "delta_S", "delta_T", "kappa_S", "kappa_T", "mu_E")


def jittered(model, n, rng, spread=0.5, **fixed):
    """``n`` parameter sets: rates scaled by uniform(1 - spread, 1 + spread)."""
    table = {
        name: model.parameter(name).default * rng.uniform(1 - spread, 1 + spread, n)
        for name in RATE_NAMES
    }
    table.update({k: np.full(n, float(v)) for k, v in fixed.items()})
    return table


def checked_totals(model, result):
    """``solve_batch(..., totals=True)`` without its totals, once they are checked bit for bit
    against a separate pass over the states (as each sample finishes, in every kernel: lanes,
    one trajectory, lockstep groups, samples solved again alone, failed samples)."""
    out_x, out_dn, stats, total, fraction = result
    expected = summary.totals(out_x, tolerant_index(model))
    np.testing.assert_array_equal(total, expected[0], err_msg="total")
    np.testing.assert_array_equal(fraction, expected[1], err_msg="tolerant fraction")
    return out_x, out_dn, stats


def both(model, table, schedule, times, code=AUTO, rtol=1e-6, max_steps=100_000):
    packed = model.pack_table(table)
    compiled = schedule.compile(model.drugs)
    args = (model, packed, compiled, np.asarray(times, float), rtol, 1e-6, max_steps, code)
    return (
        checked_totals(model, solve_batch(*args, lanes=True, totals=True)),
        checked_totals(model, solve_batch(*args, lanes=False, totals=True)),
    )


def assert_identical(lanes, single):
    for got, expected, name in zip(lanes, single, ("states", "dN/dt", "stats"), strict=True):
        np.testing.assert_array_equal(got, expected, err_msg=name)


@pytest.mark.parametrize(
    "model",
    [
        tolsim.models.TwoState(),
        tolsim.models.TwoState(crowding="gompertz"),
        tolsim.models.TwoState(crowding="none"),
        tolsim.models.ThreeState(),
        tolsim.models.ThreeState(crowding="gompertz"),
    ],
    ids=["two-logistic", "two-gompertz", "two-none", "three-logistic", "three-gompertz"],
)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_lane_rates_are_the_rates_bit_for_bit(model, seed):
    rng = np.random.default_rng(seed)
    lanes = 8
    packed = model.pack_table(jittered(model, lanes, rng, h_tam=rng.uniform(0.5, 3.0)))
    x = rng.uniform(0.0, 2e6, (len(model.states), lanes))
    conc = np.array([rng.choice([0.0, rng.uniform(0, 5)]), rng.choice([0.0, rng.uniform(0, 5)])])
    index = exposure_index(model)
    e = np.array(
        [[hill(conc[d], packed[s, ec], packed[s, h]) for s in range(lanes)] for d, ec, h in index]
    )
    out = np.empty((len(model.transitions), lanes))
    model.lane_rates(np.zeros(lanes), x, np.ascontiguousarray(packed.T), e, out)
    for s in range(lanes):
        expected = np.empty(len(model.transitions))
        model.rates(0.0, np.ascontiguousarray(x[:, s]), packed[s], conc, expected)
        np.testing.assert_array_equal(out[:, s], expected)


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_samples=st.integers(1, 21),
    phases=st.lists(
        st.tuples(
            st.integers(1, 60), st.sampled_from([0.0, 0.3, 1.0]), st.sampled_from([0.0, 2.0])
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_lanes_equal_one_trajectory_kernel_bit_for_bit(seed, n_samples, phases):
    """Random parameter sets (a count that is not a multiple of the lanes) and schedules, with
    outputs on breakpoints, between them and at day 0."""
    rng = np.random.default_rng(seed)
    model = tolsim.models.TwoState()
    schedule = tolsim.Schedule.from_phases(
        [{"days": d, "tamoxifen": tam, "inhibitor": inh} for d, tam, inh in phases]
    )
    end = schedule.duration_days
    times = np.unique(np.concatenate([[0.0, end], schedule.breakpoints(), rng.uniform(0, end, 7)]))
    table = jittered(model, n_samples, rng, h_tam=rng.choice([1.0, 2.5]))
    lanes, single = both(model, table, schedule, times)
    assert_identical(lanes, single)
    assert np.all(lanes[2][:, 0] == 0)


@pytest.mark.parametrize("model", [tolsim.models.ThreeState(), tolsim.models.TwoState("none")])
def test_lanes_equal_one_trajectory_kernel_for_other_models_and_dopri5(model):
    rng = np.random.default_rng(7)
    schedule = tolsim.Schedule.from_phases([{"days": 30, "tamoxifen": 1.0}, {"days": 45}])
    lanes, single = both(
        model, jittered(model, 19, rng), schedule, np.linspace(0, 75, 31), code=DOPRI5
    )
    assert_identical(lanes, single)


def test_blocks_and_lane_refills_do_not_change_a_sample():
    """Sample 5 alone, and among 40 others: the same bits (lanes share no arithmetic)."""
    rng = np.random.default_rng(3)
    model = tolsim.models.TwoState()
    schedule = tolsim.Schedule.from_phases([{"days": 40, "tamoxifen": 1.0}, {"days": 40}])
    table = jittered(model, 41, rng)
    times = np.arange(81.0)
    all_x, all_dn, all_stats = both(model, table, schedule, times)[0]
    alone = {k: v[5:6] for k, v in table.items()}
    one_x, one_dn, one_stats = both(model, alone, schedule, times)[0]
    np.testing.assert_array_equal(all_x[5:6], one_x)
    np.testing.assert_array_equal(all_dn[5:6], one_dn)
    np.testing.assert_array_equal(all_stats[5:6], one_stats)


def test_failures_and_stiff_samples_match_the_one_trajectory_kernel():
    """Too few steps for some samples (status -2, NaN after the last output reached), and
    samples fast enough to trip the stiffness test (solved again on one trajectory with the
    Rosenbrock switch), between ordinary ones."""
    rng = np.random.default_rng(11)
    model = tolsim.models.TwoState()
    schedule = tolsim.Schedule.from_phases([{"days": 100, "inhibitor": 5.0}, {"days": 100}])
    table = jittered(model, 12, rng)
    table["kappa_T"] = np.where(np.arange(12) % 3 == 0, 10.0, 0.3)  # fast death: stiff
    table["delta_S"] = np.where(np.arange(12) % 3 == 0, 10.0, 0.02)
    times = np.linspace(0, 200, 41)
    lanes, single = both(model, table, schedule, times)
    assert_identical(lanes, single)
    assert lanes[2][:, 4].sum() >= 1  # some samples were found stiff
    lanes, single = both(model, table, schedule, times, max_steps=60)
    assert_identical(lanes, single)
    failed = lanes[2][:, 0] == -2
    assert failed.any() and not failed.all()
    assert np.isnan(lanes[0][failed, -1]).all()


def test_lanes_apply_only_where_they_can():
    model = tolsim.models.TwoState()
    in_vitro = tolsim.Schedule.from_phases([{"days": 10, "tamoxifen": 1.0}]).compile(model.drugs)
    oral = tolsim.Schedule.oral(
        "tamoxifen", dose_mg=0.1, every_days=1.0, stop_day=3.0, pk=tolsim.PK.tamoxifen_mouse()
    ).compile(model.drugs)
    assert lanes_apply(model, in_vitro, AUTO) and lanes_apply(model, in_vitro, DOPRI5)
    assert not lanes_apply(model, oral, AUTO)
    assert not lanes_apply(model, in_vitro, 2)  # rosenbrock
    packed = model.pack(model.default_params())[None, :]
    with pytest.raises(ValueError, match="lane kernels need"):
        solve_batch(model, packed, oral, np.array([0.0, 1.0]), 1e-6, 1e-6, 1000, AUTO, True)


@njit
def _no_lanes(t, x, p, c, out):
    out[0] = p[0] * x[0]


def test_lane_rates_are_checked_like_rates():
    base = dict(
        name="Growth",
        states=("A",),
        parameters=(
            Parameter("r", "1/day", 0.1, (0.0, 1.0)),
            Parameter("A0", "cells", 1.0, (0, 9)),
        ),
        transitions=(Transition.of("division", A=1),),
        rates=_no_lanes,
        initial=(("A", "A0"),),
    )
    assert Model(**base).lane_rates is None  # optional: the one-trajectory kernel is used
    with pytest.raises(TypeError, match="`lane_rates`.*numba.njit"):
        Model(**base, lane_rates=lambda t, x, p, e, out: None)

    @njit
    def local(t, x, p, e, out):
        pass

    with pytest.raises(ValueError, match="`lane_rates`.*top level"):
        Model(**base, lane_rates=local)
    with pytest.raises(TypeError, match=r"\(t, x, p, e, out\)"):
        Model(**base, lane_rates=_no_lanes_three_args)


@njit
def _no_lanes_three_args(x, p, out):
    pass


# -- lockstep: lanes that share their steps ------------------------------------------------


GROUP = lane_kernels(tolsim.models.TwoState()).LOCKSTEP_LANES


def lockstep(model, table, schedule, times, code=AUTO, rtol=1e-6, max_steps=100_000):
    packed = model.pack_table(table)
    compiled = schedule.compile(model.drugs)
    return checked_totals(model, solve_batch(
        model, packed, compiled, np.asarray(times, float), rtol, 1e-6, max_steps, code,
        lockstep=True, totals=True,
    ))  # fmt: skip


def test_a_lockstep_group_of_copies_is_the_one_trajectory_solution_bit_for_bit():
    """With every lane the same sample, the largest error is each lane's: the steps, and so
    every bit, are those of the sample alone (a check on the group's arithmetic)."""
    model = tolsim.models.TwoState()
    schedule = tolsim.Schedule.from_phases(
        [{"days": 50, "tamoxifen": 1.0}, {"days": 20, "inhibitor": 3.0}, {"days": 50}]
    )
    times = np.concatenate([[0.0, 0.5], np.arange(1.0, 121.0, 7.0), [50.0, 70.0, 120.0]])
    times = np.unique(times)
    one = jittered(model, 1, np.random.default_rng(5))
    table = {k: np.repeat(v, GROUP) for k, v in one.items()}
    grouped = lockstep(model, table, schedule, times)
    alone = both(model, {k: v[:1] for k, v in table.items()}, schedule, times)[1]
    for got, expected in zip(grouped, alone, strict=True):
        np.testing.assert_array_equal(got, np.repeat(expected, GROUP, axis=0))


def test_lockstep_meets_the_tolerance_for_every_sample():
    """Against a tight solution, each sample's error at rtol 1e-6 is within the error of the
    one-trajectory solution at the same rtol (shared steps are never larger than a lane's)
    up to a small factor, and the group is never less accurate overall."""
    rng = np.random.default_rng(1)
    model = tolsim.models.TwoState()
    schedule = tolsim.Schedule.from_phases([{"days": 120, "tamoxifen": 1.0}, {"days": 240}])
    times = np.arange(0.0, 361.0, 3.0)
    table = jittered(model, GROUP + 5, rng, spread=0.2)
    reference = both(model, table, schedule, times, rtol=1e-11)[1][0].sum(axis=2)
    grouped = lockstep(model, table, schedule, times)
    single = both(model, table, schedule, times)[1]
    error_grouped = np.max(np.abs(grouped[0].sum(axis=2) - reference) / reference, axis=1)
    error_single = np.max(np.abs(single[0].sum(axis=2) - reference) / reference, axis=1)
    assert np.all(grouped[2][:, 0] == 0)
    assert error_grouped.max() <= error_single.max()
    assert np.all(error_grouped <= 2.0 * error_single + 1e-9)
    # the group takes at least as many steps as its hardest member alone
    for g in range(0, GROUP + 5, GROUP):
        steps = grouped[2][g : g + GROUP, 1]
        assert np.all(steps == steps[0])
        assert steps[0] >= single[2][g : g + GROUP, 1].max()


def test_lockstep_results_depend_only_on_the_group():
    rng = np.random.default_rng(2)
    model = tolsim.models.TwoState()
    schedule = tolsim.Schedule.from_phases([{"days": 30, "tamoxifen": 1.0}, {"days": 30}])
    table = jittered(model, 2 * GROUP + 3, rng)
    times = np.arange(61.0)
    full = lockstep(model, table, schedule, times)
    second = slice(GROUP, 2 * GROUP)
    second_group = lockstep(model, {k: v[second] for k, v in table.items()}, schedule, times)
    for got, expected in zip(second_group, full, strict=True):
        np.testing.assert_array_equal(got, expected[second])


def test_lockstep_groups_that_fail_or_are_stiff_are_solved_alone():
    rng = np.random.default_rng(11)
    model = tolsim.models.TwoState()
    schedule = tolsim.Schedule.from_phases([{"days": 100, "inhibitor": 5.0}, {"days": 100}])
    n = GROUP + 4
    table = jittered(model, n, rng)
    table["kappa_T"] = np.where(np.arange(n) == 3, 10.0, 0.3)  # group 0 has a stiff sample
    table["delta_S"] = np.where(np.arange(n) == 3, 10.0, 0.02)
    times = np.linspace(0, 200, 41)
    grouped = lockstep(model, table, schedule, times)
    single = both(model, table, schedule, times)[1]
    assert single[2][3, 4] == 1  # sample 3 alone switches to the Rosenbrock method
    for got, expected in zip(grouped, single, strict=True):
        np.testing.assert_array_equal(got[:GROUP], expected[:GROUP])  # group 0: solved alone
    assert np.all(grouped[2][GROUP:, 1] == grouped[2][GROUP, 1])  # group 1: shared steps
    failing = lockstep(model, table, schedule, times, max_steps=60)
    expected = both(model, table, schedule, times, max_steps=60)[1]
    np.testing.assert_array_equal(failing[2][:, 0], expected[2][:, 0])
    np.testing.assert_array_equal(failing[0], expected[0])


def test_simulate_lockstep_records_itself_and_refuses_what_it_cannot_do(two_state):
    schedule = tolsim.Schedule.from_phases([{"days": 20, "tamoxifen": 1.0}, {"days": 20}])
    table = jittered(two_state, 20, np.random.default_rng(0))
    ds = tolsim.simulate(two_state, table, schedule, np.arange(41.0), lockstep=True)
    assert ds.attrs["lockstep_lanes"] == GROUP
    assert "lockstep group" in ds.n_steps.attrs["long_name"]
    assert "lockstep_lanes" not in tolsim.simulate(two_state, table, schedule, [0.0, 40.0]).attrs
    oral = tolsim.Schedule.oral(
        "tamoxifen", dose_mg=0.1, every_days=1.0, stop_day=3.0, pk=tolsim.PK.tamoxifen_mouse()
    )
    with pytest.raises(ValueError, match="PK dosing"):
        tolsim.simulate(two_state, table, oral, [0.0, 3.0], lockstep=True)
    with pytest.raises(ValueError, match="exact method"):
        tolsim.simulate(TWO_LINEAR, table, schedule, [0.0, 40.0], lockstep=True)
    with pytest.raises(ValueError, match="Rosenbrock"):
        tolsim.simulate(two_state, table, schedule, [0.0, 40.0], method="rosenbrock",
                        lockstep=True)  # fmt: skip
    with pytest.raises(ValueError, match="CPU's ODE methods"):
        tolsim.simulate(two_state, table, schedule, [0.0, 40.0], method="tau", seed=1,
                        lockstep=True)  # fmt: skip
    with pytest.raises(TypeError, match="`lockstep` = 'yes'"):
        tolsim.simulate(two_state, table, schedule, [0.0, 40.0], lockstep="yes")


TWO_LINEAR = tolsim.models.TwoState(crowding="none")


@pytest.mark.parametrize("model", [tolsim.models.TwoState(), tolsim.models.ThreeState("gompertz")])
def test_a_lockstep_group_of_one_is_the_sample_alone(model):
    """A table of one sample is a group of one: the one-trajectory kernel's numbers."""
    schedule = tolsim.Schedule.from_phases(
        [{"days": 25, "tamoxifen": 1.0}, {"days": 25, "inhibitor": 2.0}, {"days": 25}]
    )
    times = np.unique(np.concatenate([np.linspace(0.0, 75.0, 16), [25.0, 50.0]]))
    table = jittered(model, 1, np.random.default_rng(9))
    grouped = lockstep(model, table, schedule, times, code=DOPRI5)
    alone = both(model, table, schedule, times, code=DOPRI5)[1]
    for got, expected in zip(grouped, alone, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_a_lane_kernel_copy_without_the_models_stoichiometry_is_refused():
    # the guard both kernels call first (compiling only the guard keeps this test cheap)
    model = tolsim.models.TwoState()
    x0 = model.initial_state(model.pack_table({"lambda_S": np.array([0.3])}))
    placeholder = specialised("ode_lanes_template", model.lane_rates)  # STOICH not set
    with pytest.raises(ValueError, match="lane_kernels"):
        placeholder._check_copy(x0)
    lane_kernels(model)._check_copy(x0)  # the model's own copy passes
