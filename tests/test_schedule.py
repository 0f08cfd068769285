"""Tests of tolsim.schedule: construction, exact PK, composition, serialisation, errors."""

from __future__ import annotations

import doctest
import json
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

import tolsim.schedule
from tolsim.schedule import PK, OralDoses, Pellet, Phase, Schedule

DRUGS = ("tamoxifen", "inhibitor")


def toy_pk(**changes: float) -> PK:
    values = {
        "ka_per_day": 3.0,
        "ke_per_day": 0.7,
        "volume_l": 2.0,
        "molar_mass_g_per_mol": 300.0,
        "bioavailability": 0.8,
    }
    values.update(changes)
    return PK(**values)


def bateman_um(t: np.ndarray, dose_mg: float, pk: PK) -> np.ndarray:
    """Concentration after one oral dose at t = 0 (zero before it), µM."""
    t = np.asarray(t, dtype=np.float64)
    ka, ke = pk.ka_per_day, pk.ke_per_day
    amount = pk.bioavailability * dose_mg * ka / (ka - ke) * (np.exp(-ke * t) - np.exp(-ka * t))
    concentration = amount / pk.volume_l * 1000.0 / pk.molar_mass_g_per_mol
    return np.where(t >= 0.0, concentration, 0.0)


# --------------------------------------------------------------------------------------------
# construction and in-vitro levels


def test_from_phases_breakpoints_duration_and_levels():
    schedule = Schedule.from_phases(
        [
            {"days": 60, "tamoxifen": 1.0, "inhibitor": 5.0},
            {"days": 30, "tamoxifen": 0.5},
            {"days": 90},
        ]
    )
    assert schedule.duration_days == 180.0
    np.testing.assert_array_equal(schedule.breakpoints(), [0.0, 60.0, 90.0, 180.0])
    assert schedule.drugs == ("inhibitor", "tamoxifen")

    times = np.linspace(0.0, 180.0, 721)
    got = schedule.concentrations(times, DRUGS)
    expected_tamoxifen = np.select([times < 60, times < 90], [1.0, 0.5], 0.0)
    expected_inhibitor = np.where(times < 60, 5.0, 0.0)  # missing from phase 2: 0
    np.testing.assert_array_equal(got[:, 0], expected_tamoxifen)
    np.testing.assert_array_equal(got[:, 1], expected_inhibitor)


def test_from_phases_explicit_days_leave_gaps_without_drug():
    schedule = Schedule.from_phases(
        [
            {"start_day": 10, "stop_day": 20, "tamoxifen": 1.0},
            {"start_day": 40, "stop_day": 50, "tamoxifen": 2.0},
            {"days": 5, "tamoxifen": 3.0},  # continues from day 50
        ],
        duration_days=100,
    )
    assert schedule.duration_days == 100.0
    np.testing.assert_array_equal(schedule.breakpoints(), [0, 10, 20, 40, 50, 55, 100])
    times = np.array([0.0, 9.99, 10.0, 19.99, 20.0, 39.0, 40.0, 50.0, 54.9, 55.0, 100.0])
    expected = [0, 0, 1, 1, 0, 0, 2, 3, 3, 0, 0]
    np.testing.assert_array_equal(schedule.concentrations(times)[:, 0], expected)


def test_drug_missing_from_schedule_is_zero_column():
    schedule = Schedule.from_phases([{"days": 10, "tamoxifen": 2.0}])
    got = schedule.concentrations([0.0, 5.0, 10.0], ("inhibitor", "tamoxifen"))
    np.testing.assert_array_equal(got, [[0.0, 2.0], [0.0, 2.0], [0.0, 2.0]])


def test_in_vitro_then_withdraw_and_with_inhibitor():
    schedule = (
        Schedule.in_vitro(tamoxifen_um=1.0, on_days=60, off_days=0)
        .then_withdraw(days=120)
        .with_inhibitor(start_day=0, stop_day=30, dose_um=5.0)
    )
    assert schedule.duration_days == 180.0
    got = schedule.concentrations([0.0, 29.0, 30.0, 59.0, 60.0, 180.0], DRUGS)
    np.testing.assert_array_equal(got, [[1, 5], [1, 5], [1, 0], [1, 0], [0, 0], [0, 0]])
    direct = Schedule.in_vitro(on_days=60, off_days=120, inhibitor_um=5.0, inhibitor_stop_day=30)
    np.testing.assert_array_equal(direct.concentrations([29.0, 30.0, 61.0], DRUGS), got[[1, 2, 4]])


def test_schedules_are_hashable_values():
    a = Schedule.from_phases([{"days": 60, "tamoxifen": 1}, {"days": 120}])
    b = Schedule(180.0, phases=[Phase(0.0, 60.0, {"tamoxifen": 1.0}), Phase(60, 180)])
    assert a == b and hash(a) == hash(b)
    assert len({a, b, a.then_withdraw(1.0)}) == 2
    assert Phase(0, 1, {"b": 1.0, "a": 2.0}).concentrations_um == (("a", 2.0), ("b", 1.0))


# --------------------------------------------------------------------------------------------
# pharmacokinetics: exact solutions


def test_single_oral_dose_is_the_bateman_function():
    pk = toy_pk()
    schedule = Schedule.oral(
        "tamoxifen", dose_mg=5.0, every_days=100.0, stop_day=1.0, pk=pk, duration_days=30.0
    )
    times = np.linspace(0.0, 30.0, 601)
    got = schedule.concentrations(times)[:, 0]
    np.testing.assert_allclose(got, bateman_um(times, 5.0, pk), rtol=1e-12, atol=1e-300)
    assert got[0] == 0.0


def _bateman_digits(t: float, ka: float, ke: float) -> float:
    """ka / (ka - ke) (e^(-ke t) - e^(-ka t)) (ka t e^(-ke t) if equal) to 60 digits."""
    from decimal import Decimal, localcontext

    with localcontext() as context:
        context.prec = 60
        ka_, ke_, t_ = Decimal(ka), Decimal(ke), Decimal(t)
        if ka == ke:
            return float(ka_ * t_ * (-ke_ * t_).exp())
        return float(ka_ / (ka_ - ke_) * ((-ke_ * t_).exp() - (-ka_ * t_).exp()))


@pytest.mark.parametrize("gap", [0.0, 2e-9, -1e-8, 1e-7, 1e-6, 1e-3, 0.5, -0.5, 3.0, 100.0])
def test_oral_concentration_keeps_its_digits_when_absorption_nears_elimination(gap):
    """ka = ke (1 + gap): the difference of exponentials lost 1/|gap| of the precision
    (3.5e-4 relative at gap 2e-9, an hour after a dose); the kernels' form keeps it all
    (1e-14 here; a 60-digit reference), and stays finite for ka far from ke."""
    from tolsim.kernels.exposure import central_amount

    ke = math.log(2.0) / 7.0
    ka = ke * (1.0 + gap)
    for t in (0.0, 1e-6, 1e-3, 0.04, 0.5, 3.0, 9.0, 100.0, 5000.0):
        got = central_amount.py_func(t, 1.0, 0.0, 0.0, ka, ke)
        expected = _bateman_digits(t, ka, ke)
        # exp(-k t) carries the rounding of k t: k t ulps relative, whatever the form
        rel = 1e-14 + 4e-16 * max(ka, ke) * t
        assert got == pytest.approx(expected, rel=rel, abs=1e-300), (gap, t)
        assert central_amount(t, 1.0, 0.0, 0.0, ka, ke) == pytest.approx(expected, rel=rel)


def test_repeated_oral_doses_superpose():
    pk = toy_pk()
    schedule = Schedule.oral(
        "tamoxifen",
        dose_mg=5.0,
        every_days=1.5,
        start_day=0.5,
        stop_day=12.0,
        pk=pk,
        duration_days=20.0,
    )
    dose_days = schedule.oral_doses[0].dose_days
    np.testing.assert_allclose(dose_days, 0.5 + 1.5 * np.arange(8))
    times = np.linspace(0.0, 20.0, 1001)
    expected = sum(bateman_um(times - day, 5.0, pk) for day in dose_days)
    got = schedule.concentrations(times)[:, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-14)


def test_compiled_propagation_matches_solve_ivp_with_dose_jumps():
    oral_pk = toy_pk()
    pellet_pk = toy_pk(ka_per_day=1.0, ke_per_day=1.3, volume_l=3.0, bioavailability=0.5)
    dose_mg, release = 5.0, 0.4
    schedule = Schedule(
        12.0,
        phases=[Phase(3.0, 6.0, {"tamoxifen": 0.1})],
        oral_doses=[
            OralDoses(
                "tamoxifen",
                dose_mg=dose_mg,
                start_day=0.25,
                stop_day=10,
                every_days=1.5,
                pk=oral_pk,
            )
        ],
        pellets=[
            Pellet(
                "tamoxifen", start_day=2.0, stop_day=7.5, release_mg_per_day=release, pk=pellet_pk
            )
        ],
    )
    dose_days = 0.25 + 1.5 * np.arange(7)
    events = np.unique(np.concatenate([[0.0, 2.0, 7.5, 12.0], dose_days]))

    def rhs(t, y, infusion):
        depot, central_oral, central_pellet = y
        return [
            -oral_pk.ka_per_day * depot,
            oral_pk.ka_per_day * depot - oral_pk.ke_per_day * central_oral,
            infusion - pellet_pk.ke_per_day * central_pellet,
        ]

    times = np.linspace(0.0, 12.0, 481)
    segment = np.clip(np.searchsorted(events, times, side="right") - 1, 0, events.size - 2)
    amounts = np.empty((times.size, 3))
    y = np.zeros(3)
    for i in range(events.size - 1):
        start, stop = events[i], events[i + 1]
        if np.any(dose_days == start):
            y[0] += oral_pk.bioavailability * dose_mg  # pellets ignore bioavailability
        infusion = release if 2.0 <= start < 7.5 else 0.0
        solution = solve_ivp(
            rhs,
            (start, stop),
            y,
            method="DOP853",
            rtol=1e-10,
            atol=1e-14,
            dense_output=True,
            args=(infusion,),
        )
        assert solution.success
        inside = segment == i
        amounts[inside] = solution.sol(times[inside]).T
        y = solution.y[:, -1].copy()
    level = np.where((times >= 3.0) & (times < 6.0), 0.1, 0.0)
    expected = level + amounts[:, 1] * oral_pk.um_per_mg + amounts[:, 2] * pellet_pk.um_per_mg
    got = schedule.concentrations(times)[:, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-12)


def test_ka_equal_ke_limit_is_continuous_and_exact():
    ke = 0.5
    equal = toy_pk(ka_per_day=ke, ke_per_day=ke)
    near = toy_pk(ka_per_day=ke * (1 + 1e-7), ke_per_day=ke)
    times = np.linspace(0.0, 20.0, 201)

    def run(pk):
        schedule = Schedule.oral(
            "tamoxifen", dose_mg=5.0, every_days=4.0, stop_day=10.0, pk=pk, duration_days=20.0
        )
        return schedule.concentrations(times)[:, 0]

    np.testing.assert_allclose(run(near), run(equal), rtol=1e-6)
    single = Schedule.oral(
        "tamoxifen", dose_mg=5.0, every_days=100.0, stop_day=1.0, pk=equal, duration_days=20.0
    ).concentrations(times)[:, 0]
    limit = equal.bioavailability * 5.0 * ke * times * np.exp(-ke * times) * equal.um_per_mg
    np.testing.assert_allclose(single, limit, rtol=1e-12, atol=1e-300)


def test_pellet_reaches_steady_state_then_decays_exponentially():
    pk = PK.tamoxifen_mouse()
    release, start, stop = 0.5, 5.0, 30.0
    schedule = Schedule.pellet(
        "tamoxifen",
        release_mg_per_day=release,
        start_day=start,
        stop_day=stop,
        pk=pk,
        duration_days=40.0,
    )
    ke = pk.ke_per_day
    steady_um = release / (ke * pk.volume_l) * 1000.0 / pk.molar_mass_g_per_mol
    during = np.linspace(start, stop, 101)
    np.testing.assert_allclose(
        schedule.concentrations(during)[:, 0],
        steady_um * (1.0 - np.exp(-ke * (during - start))),
        rtol=1e-12,
    )
    assert schedule.concentrations([start - 1e-9])[0, 0] == 0.0
    after = np.linspace(stop, 40.0, 101)
    np.testing.assert_allclose(
        schedule.concentrations(after)[:, 0],
        steady_um * np.exp(-ke * (after - stop)),
        rtol=1e-11,
    )


def test_presets_half_lives_and_human_steady_state():
    human, mouse = PK.tamoxifen_human(), PK.tamoxifen_mouse()
    assert human.half_life_days / mouse.half_life_days > 20.0
    assert human.half_life_days == pytest.approx(7.0)
    assert mouse.half_life_days == pytest.approx(0.25)
    for pk in (human, mouse):
        assert "not fitted" in pk.note and pk.species
    # the note's claim: 20 mg/day gives an average steady state ~0.3 µM (AUC per interval
    # at steady state is F D / (ke V), exactly)
    schedule = Schedule.oral("tamoxifen", dose_mg=20.0, every_days=1.0, stop_day=300.0, pk=human)
    times = np.linspace(298.0, 299.0, 2001)
    average_um = np.trapezoid(schedule.concentrations(times)[:, 0], times)
    expected_um = human.bioavailability * 20.0 / (human.ke_per_day * 1.0) * human.um_per_mg
    assert average_um == pytest.approx(expected_um, rel=1e-6)
    assert 0.25 < expected_um < 0.4


def test_compile_arrays_and_channels():
    pk = toy_pk()
    schedule = Schedule.combine(
        Schedule.from_phases([{"days": 4, "inhibitor": 2.0}], duration_days=10.0),
        Schedule.oral("tamoxifen", dose_mg=5.0, every_days=2.0, stop_day=5.0, pk=pk),
        Schedule.pellet("inhibitor", release_mg_per_day=1.0, start_day=1.0, stop_day=3.0, pk=pk),
    )
    compiled = schedule.compile(DRUGS)
    np.testing.assert_array_equal(compiled.breakpoints_days, [0, 1, 2, 3, 4, 10])
    n_pieces = 5
    for name, array in compiled._asdict().items():
        assert array.flags.c_contiguous, name
        assert array.dtype == (np.int64 if name == "channel_drug" else np.float64), name
    np.testing.assert_array_equal(compiled.channel_drug, [0, 1])  # oral first, then pellet
    np.testing.assert_array_equal(compiled.channel_ka_per_day, [pk.ka_per_day, pk.ke_per_day])
    np.testing.assert_allclose(compiled.channel_um_per_mg, 1000.0 / (2.0 * 300.0))
    assert compiled.level_um.shape == (n_pieces, 2)
    np.testing.assert_array_equal(compiled.level_um[:, 1], [2, 2, 2, 2, 0])
    np.testing.assert_array_equal(compiled.infusion_mg_per_day[:, 1], [0, 1, 1, 0, 0])
    np.testing.assert_array_equal(compiled.depot_mg[:, 1], 0.0)
    # dose on day 2 (piece 2): the depot jumps by F * dose
    decayed = compiled.depot_mg[1, 0] * math.exp(-pk.ka_per_day * 1.0)
    assert compiled.depot_mg[2, 0] - decayed == pytest.approx(0.8 * 5.0, rel=1e-12)
    assert compiled.depot_mg[0, 0] == 0.8 * 5.0 and compiled.central_mg[0, 0] == 0.0

    empty = Schedule.from_phases([{"days": 3, "tamoxifen": 1.0}]).compile(DRUGS)
    assert empty.depot_mg.shape == (1, 0) and empty.infusion_mg_per_day.shape == (1, 0)
    assert empty.channel_drug.shape == (0,) and empty.channel_drug.dtype == np.int64
    assert empty.channel_ka_per_day.shape == (0,)


# --------------------------------------------------------------------------------------------
# composition and withdrawal


def test_combine_overlapping_phases_of_different_drugs_coexist():
    tamoxifen = Schedule.from_phases([{"days": 60, "tamoxifen": 1.0}, {"days": 120}])
    inhibitor = Schedule.from_phases([{"start_day": 30, "stop_day": 90, "inhibitor": 5.0}])
    combined = Schedule.combine(tamoxifen, inhibitor)
    assert combined == tamoxifen | inhibitor
    assert combined.duration_days == 180.0
    got = combined.concentrations([10.0, 45.0, 75.0, 120.0], DRUGS)
    np.testing.assert_array_equal(got, [[1, 0], [1, 5], [0, 5], [0, 0]])
    with pytest.raises(ValueError, match=r"`phases\[0\]`.*`phases\[2\]`.*'tamoxifen'"):
        tamoxifen | Schedule.from_phases([{"start_day": 50, "stop_day": 70, "tamoxifen": 2.0}])


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False))
def test_equality_ignores_the_order_of_parts(rng):
    pk = toy_pk()
    parts = [
        Schedule.from_phases([{"days": 60, "tamoxifen": 1.0}, {"days": 60}]),
        Schedule.from_phases([{"start_day": 30, "stop_day": 90, "inhibitor": 5.0}]),
        Schedule.oral("tamoxifen", dose_mg=5.0, every_days=7.0, stop_day=50.0, pk=pk),
        Schedule.oral("inhibitor", dose_mg=1.0, every_days=3.0, stop_day=40.0, pk=pk),
        Schedule.pellet("tamoxifen", release_mg_per_day=1.0, start_day=5.0, stop_day=80.0, pk=pk),
    ]
    shuffled = parts[:]
    rng.shuffle(shuffled)
    a, b = Schedule.combine(*parts), Schedule.combine(*shuffled)
    assert a == b and hash(a) == hash(b)
    times = np.linspace(0.0, 120.0, 241)
    np.testing.assert_allclose(a.concentrations(times), b.concentrations(times), rtol=1e-13)
    # Not equal when one part differs, or is missing.
    changed = parts[:]
    changed[rng.randrange(len(parts))] = Schedule.from_phases([{"days": 1, "inhibitor": 2.0}])
    assert Schedule.combine(*changed) != a
    assert Schedule.combine(*shuffled[1:]) != a


def test_extra_piece_boundaries_change_no_concentration():
    pk = toy_pk()
    oral = Schedule.oral("tamoxifen", dose_mg=5.0, every_days=1.0, stop_day=3.5, pk=pk)
    oral = oral | Schedule.pellet("tamoxifen", release_mg_per_day=2.0, stop_day=2.0, pk=pk)
    plain = oral.compile(("tamoxifen",))
    split = oral.compile(("tamoxifen",), extra_days=[3.5, 0.25, 0.0, 99.0])
    np.testing.assert_array_equal(
        split.breakpoints_days, np.union1d(plain.breakpoints_days, [0.25, 3.5])
    )
    times = np.linspace(0.0, oral.duration_days, 157)
    np.testing.assert_allclose(
        tolsim.schedule.concentrations_at(times, split, 1),
        tolsim.schedule.concentrations_at(times, plain, 1),
        rtol=1e-13,
        atol=1e-300,
    )


def test_combined_oral_channels_add():
    pk = toy_pk()
    one = Schedule.oral("tamoxifen", dose_mg=5.0, every_days=1.0, stop_day=3.0, pk=pk)
    times = np.linspace(0.0, 3.0, 31)
    double = (one | one).concentrations(times)
    np.testing.assert_allclose(double, 2.0 * one.concentrations(times), rtol=1e-14)


def test_then_shifts_the_second_schedule():
    pk = toy_pk()
    first = Schedule.from_phases([{"days": 10, "tamoxifen": 1.0}])
    second = Schedule.combine(
        Schedule.from_phases([{"days": 5, "tamoxifen": 2.0}], duration_days=20.0),
        Schedule.oral(
            "inhibitor", dose_mg=1.0, every_days=2.0, start_day=1.0, stop_day=6.0, pk=pk
        ),
        Schedule.pellet("inhibitor", release_mg_per_day=1.0, start_day=2.0, stop_day=8.0, pk=pk),
    )
    joined = first.then(second)
    assert joined.duration_days == 30.0
    assert joined.phases[1] == Phase(10.0, 15.0, {"tamoxifen": 2.0})
    np.testing.assert_array_equal(joined.oral_doses[0].dose_days, [11.0, 13.0, 15.0])
    assert (joined.pellets[0].start_day, joined.pellets[0].stop_day) == (12.0, 18.0)
    later = np.linspace(0.0, 20.0, 81)
    np.testing.assert_allclose(
        joined.concentrations(10.0 + later, DRUGS),
        second.concentrations(later, DRUGS),
        rtol=1e-12,
        atol=1e-15,
    )


def test_withdrawal_day_of_phases_oral_and_pellets():
    pk = toy_pk()
    phases = Schedule.from_phases(
        [{"days": 60, "tamoxifen": 1.0}, {"days": 20, "tamoxifen": 0.0, "inhibitor": 1.0}]
    )
    assert phases.withdrawal_day() == 60.0  # a zero level is no dose
    assert phases.withdrawal_day("inhibitor") == 80.0
    oral = Schedule.oral(
        "tamoxifen", dose_mg=20.0, every_days=7.0, stop_day=60.0, pk=pk, duration_days=90.0
    )
    assert oral.oral_doses[0].dose_days[-1] == 56.0
    assert oral.withdrawal_day() == 60.0  # the regimen's stop day, not the last dose day
    pellet = Schedule.pellet(
        "tamoxifen", release_mg_per_day=0.1, stop_day=21.0, pk=pk, duration_days=90.0
    )
    assert pellet.withdrawal_day("tamoxifen") == 21.0
    assert (phases | oral | pellet).withdrawal_day() == 60.0
    assert (pellet | oral.then_withdraw(10)).withdrawal_day() == 60.0
    with pytest.raises(ValueError, match=r"`drug` = 'inhibitor' is never given"):
        oral.withdrawal_day("inhibitor")


# --------------------------------------------------------------------------------------------
# serialisation


def full_schedule() -> Schedule:
    return Schedule.combine(
        Schedule.from_phases(
            [{"days": 60, "tamoxifen": 1.0, "inhibitor": 5.0}, {"days": 60.5}, {"days": 0.25}]
        ),
        Schedule.oral(
            "tamoxifen", dose_mg=20.0, every_days=1.0, stop_day=150.0, pk=PK.tamoxifen_human()
        ),
        Schedule.pellet(
            "4-OHT µ",
            release_mg_per_day=0.1,
            start_day=3.0,
            stop_day=24.0,
            pk=PK.tamoxifen_mouse(),
        ),
    )


def test_round_trips_dict_json_toml():
    schedule = full_schedule()
    data = schedule.to_dict()
    assert json.loads(json.dumps(data)) == data  # plain JSON-able values
    assert data["oral_doses"][0]["pk"]["species"] == "human"
    assert Schedule.from_dict(data) == schedule
    assert Schedule.from_json(schedule.to_json(indent=2)) == schedule
    assert Schedule.from_toml(schedule.to_toml()) == schedule
    assert Schedule.from_toml(schedule.to_toml()).oral_doses[0].pk == PK.tamoxifen_human()


def test_from_toml_accepts_integers_and_defaults():
    text = """
duration_days = 180
[[phases]]
start_day = 0
stop_day = 60
concentrations_um = { tamoxifen = 1 }
"""
    assert Schedule.from_toml(text) == Schedule.from_phases(
        [{"days": 60, "tamoxifen": 1.0}], duration_days=180.0
    )


phase_dicts = st.lists(
    st.fixed_dictionaries(
        {"days": st.floats(min_value=1e-3, max_value=1e3)},
        optional={
            "tamoxifen": st.floats(min_value=0.0, max_value=100.0),
            "inhibitor": st.floats(min_value=0.0, max_value=100.0),
            "drug ä.b": st.floats(min_value=0.0, max_value=1e-3),
        },
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(phases=phase_dicts, extra_days=st.floats(min_value=0.0, max_value=100.0))
def test_random_phase_lists_round_trip_with_sorted_breakpoints(phases, extra_days):
    last = Schedule.from_phases(phases).duration_days
    schedule = Schedule.from_phases(phases, duration_days=last + extra_days)
    assert Schedule.from_dict(schedule.to_dict()) == schedule
    assert Schedule.from_json(schedule.to_json()) == schedule
    assert Schedule.from_toml(schedule.to_toml()) == schedule
    breakpoints = schedule.breakpoints()
    assert breakpoints.dtype == np.float64
    assert breakpoints[0] == 0.0 and breakpoints[-1] == schedule.duration_days
    assert np.all(np.diff(breakpoints) > 0.0)


@settings(max_examples=40, deadline=None)
@given(
    start=st.floats(min_value=0.0, max_value=50.0),
    length=st.floats(min_value=0.5, max_value=50.0),
    fraction=st.floats(min_value=0.01, max_value=0.99),
    level=st.floats(min_value=0.0, max_value=10.0),
)
def test_splitting_a_phase_changes_no_concentration(start, length, fraction, level):
    stop = start + length
    middle = start + fraction * length
    duration = stop + 10.0
    oral = Schedule.oral(
        "tamoxifen", dose_mg=20.0, every_days=1.0, stop_day=duration, pk=PK.tamoxifen_mouse()
    )
    whole = oral | Schedule(duration, phases=[Phase(start, stop, {"tamoxifen": level})])
    split = oral | Schedule(
        duration,
        phases=[
            Phase(start, middle, {"tamoxifen": level}),
            Phase(middle, stop, {"tamoxifen": level}),
        ],
    )
    times = np.sort(np.concatenate([np.linspace(0.0, duration, 201), [middle, start, stop]]))
    np.testing.assert_allclose(
        split.concentrations(times), whole.concentrations(times), rtol=1e-11, atol=1e-14
    )


# --------------------------------------------------------------------------------------------
# error messages


def test_overlapping_phases_of_one_drug_name_both():
    message = r"`phases\[0\]` \(days 0 to 60\) and `phases\[1\]` \(days 30 to 90\) overlap"
    with pytest.raises(ValueError, match=message):
        Schedule(
            100.0,
            phases=[Phase(0, 60, {"tamoxifen": 1.0}), Phase(30, 90, {"tamoxifen": 1.0})],
        )
    # reported in index order whatever the order of the days
    with pytest.raises(ValueError, match=r"`phases\[0\]` \(days 50 to 60\) and `phases\[1\]`"):
        Schedule(
            100.0,
            phases=[Phase(50, 60, {"tamoxifen": 1.0}), Phase(0, 55, {"tamoxifen": 2.0})],
        )
    # different drugs, and drug-free phases, may overlap
    Schedule(100.0, phases=[Phase(0, 60, {"tamoxifen": 1.0}), Phase(30, 90, {"inhibitor": 1.0})])
    Schedule(100.0, phases=[Phase(0, 60, {"tamoxifen": 1.0}), Phase(30, 90)])


@pytest.mark.parametrize(("days", "shown"), [(0, "0"), (-5, "-5")])
def test_empty_phase_is_named(days, shown):
    with pytest.raises(ValueError, match=rf"`phases\[1\]` lasts {shown} days.*> 0 days"):
        Schedule.from_phases([{"days": 60, "tamoxifen": 1.0}, {"days": days}])


def test_negative_and_nan_concentrations_are_named():
    with pytest.raises(ValueError, match=r"`phases\[0\]\.tamoxifen` = -1\.0 µM.*>= 0"):
        Schedule.from_phases([{"days": 60, "tamoxifen": -1.0}])
    with pytest.raises(ValueError, match=r"`phases\[1\]\.inhibitor` = nan µM"):
        Schedule.from_phases([{"days": 6}, {"days": 6, "inhibitor": math.nan}])
    with pytest.raises(ValueError, match=r"`phases\[0\]\.start_day` = nan"):
        Schedule(10.0, phases=[Phase(math.nan, 5.0, {"tamoxifen": 1.0})])


def test_phase_outside_schedule_and_bad_duration():
    with pytest.raises(ValueError, match=r"`phases\[0\]\.stop_day` = 70\.0.*\[0, 60\]"):
        Schedule.from_phases([{"days": 70, "tamoxifen": 1.0}], duration_days=60)
    with pytest.raises(ValueError, match=r"`duration_days` = 0\.0"):
        Schedule(0.0)
    with pytest.raises(ValueError, match=r"`duration_days` = inf"):
        Schedule(math.inf)
    with pytest.raises(ValueError, match=r"`phases` is empty"):
        Schedule.from_phases([])


def test_from_phases_rejects_non_numbers_and_missing_days():
    with pytest.raises(TypeError, match=r"`phases\[0\]\['tamoxifen'\]` = 'high'"):
        Schedule.from_phases([{"days": 60, "tamoxifen": "high"}])
    with pytest.raises(ValueError, match=r"`phases\[0\]` .* has neither 'days'"):
        Schedule.from_phases([{"day": 60, "tamoxifen": 1.0}])
    with pytest.raises(ValueError, match=r"`phases\[0\]` gives both 'days' and 'stop_day'"):
        Schedule.from_phases([{"days": 60, "stop_day": 60}])


def test_dose_after_schedule_end_is_named():
    with pytest.raises(
        ValueError, match=r"`oral_doses\[0\]` gives a dose on day 60.*schedule's end \(day 60\)"
    ):
        Schedule.oral(
            "tamoxifen",
            dose_mg=20.0,
            every_days=10.0,
            stop_day=71.0,
            pk=toy_pk(),
            duration_days=60.0,
        )


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"dose_mg": -1.0}, r"`oral_doses\[0\]\.dose_mg` = -1\.0 mg"),
        ({"every_days": 0.0}, r"`oral_doses\[0\]\.every_days` = 0\.0"),
        ({"start_day": -1.0}, r"`oral_doses\[0\]\.start_day` = -1\.0"),
        ({"stop_day": 0.0}, r"`oral_doses\[0\]` stops on day 0"),
        ({"every_days": 1e-9}, r"`oral_doses\[0\]` gives ~\d+ doses"),
        # no dose: it counted as giving tamoxifen, with a withdrawal on day 1.0000000001
        (
            {"start_day": 1.0, "stop_day": 1.0 + 1e-10},
            r"`oral_doses\[0\]` gives no dose: it stops on day 1.* within rounding of its start",
        ),
    ],
)
def test_bad_oral_regimens_are_named(changes, name):
    values = {"dose_mg": 1.0, "start_day": 0.0, "stop_day": 5.0, "every_days": 1.0}
    values.update(changes)
    regimen = OralDoses("tamoxifen", pk=toy_pk(), **values)
    with pytest.raises(ValueError, match=name):
        Schedule(10.0, oral_doses=[regimen])


def test_bad_pellets_are_named():
    pk = toy_pk()
    with pytest.raises(ValueError, match=r"`pellets\[0\]\.release_mg_per_day` = -0\.5"):
        Schedule.pellet("tamoxifen", release_mg_per_day=-0.5, stop_day=5.0, pk=pk)
    with pytest.raises(ValueError, match=r"`pellets\[0\]\.stop_day` = 50\.0.*\[0, 30\]"):
        Schedule.pellet(
            "tamoxifen", release_mg_per_day=0.5, stop_day=50.0, pk=pk, duration_days=30.0
        )
    with pytest.raises(ValueError, match=r"`pellets\[0\]` lasts 0 days"):
        Schedule.pellet("tamoxifen", release_mg_per_day=0.5, start_day=5.0, stop_day=5.0, pk=pk)
    with pytest.raises(TypeError, match=r"`pk` = 3"):
        Pellet("tamoxifen", start_day=0.0, stop_day=1.0, release_mg_per_day=1.0, pk=3)


def test_unknown_drug_in_compile_lists_valid_drugs():
    schedule = Schedule.from_phases([{"days": 10, "inhibitor": 1.0}])
    with pytest.raises(ValueError, match=r"'inhibitor'.*`drugs` = \('tamoxifen',\).*'tamoxifen'"):
        schedule.compile(("tamoxifen",))
    with pytest.raises(ValueError, match=r"`drugs` .* must be unique"):
        schedule.compile(("inhibitor", "inhibitor"))
    with pytest.raises(TypeError, match=r"`drugs` = 'inhibitor'"):
        schedule.compile("inhibitor")


def test_times_outside_schedule_are_rejected():
    schedule = Schedule.from_phases([{"days": 10, "tamoxifen": 1.0}])
    with pytest.raises(ValueError, match=r"`times` holds 10\.5"):
        schedule.concentrations([1.0, 10.5])
    with pytest.raises(ValueError, match=r"`times` has shape \(1, 2\)"):
        schedule.concentrations([[1.0, 2.0]])


def test_unknown_and_missing_keys_in_from_dict_are_named():
    data = full_schedule().to_dict()
    with pytest.raises(ValueError, match=r"`schedule` has unknown key 'phase'"):
        Schedule.from_dict({**data, "phase": []})
    bad_phase = json.loads(json.dumps(data))
    bad_phase["phases"][1]["level"] = 3.0
    with pytest.raises(ValueError, match=r"`phases\[1\]` has unknown key 'level'"):
        Schedule.from_dict(bad_phase)
    bad_pk = json.loads(json.dumps(data))
    bad_pk["oral_doses"][0]["pk"]["half_life"] = 7.0
    with pytest.raises(ValueError, match=r"`oral_doses\[0\]\.pk` has unknown key 'half_life'"):
        Schedule.from_dict(bad_pk)
    missing = json.loads(json.dumps(data))
    del missing["pellets"][0]["release_mg_per_day"]
    with pytest.raises(
        ValueError, match=r"`pellets\[0\]` lacks required key 'release_mg_per_day'"
    ):
        Schedule.from_dict(missing)
    with pytest.raises(ValueError, match=r"`schedule` lacks required key 'duration_days'"):
        Schedule.from_json("{}")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ka_per_day", 0.0),
        ("ke_per_day", -1.0),
        ("volume_l", math.nan),
        ("molar_mass_g_per_mol", math.inf),
        ("bioavailability", 0.0),
        ("bioavailability", 1.5),
    ],
)
def test_bad_pk_values_are_named(field, value):
    with pytest.raises(ValueError, match=rf"`{field}` = {re.escape(repr(value))}"):
        toy_pk(**{field: value})


def test_bad_pk_types_and_half_life():
    with pytest.raises(TypeError, match=r"`ka_per_day` = 'fast'"):
        toy_pk(ka_per_day="fast")
    with pytest.raises(ValueError, match=r"`half_life_days` = 0\.0"):
        PK.from_half_life(0.0, ka_per_day=1.0, volume_l=1.0, molar_mass_g_per_mol=1.0)


def test_docstring_examples_run():
    result = doctest.testmod(tolsim.schedule, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 5 and result.failed == 0


def test_describe_mentions_every_regimen():
    text = full_schedule().describe()
    assert "Schedule over 150 days" in text
    assert "tamoxifen orally 20 mg every 1 days" in text
    assert "4-OHT µ pellet 0.1 mg/day" in text
    assert "no drug" in text


def test_treatment_end_day_is_the_last_drug_day_within_the_schedule():
    schedule = Schedule.from_phases(
        [{"days": 30, "tamoxifen": 1.0}, {"days": 20, "inhibitor": 2.0}, {"days": 10}]
    )
    assert schedule.treatment_end_day() == 50.0
    doses = Schedule.oral(
        "tamoxifen", dose_mg=1.0, every_days=7.0, stop_day=62.0, pk=PK.tamoxifen_mouse(),
        duration_days=60.0,
    )  # fmt: skip
    assert doses.withdrawal_day("tamoxifen") == 62.0
    assert doses.treatment_end_day() == 60.0  # clipped to the schedule
    with pytest.raises(ValueError, match="gives no drug"):
        Schedule.from_phases([{"days": 10}]).treatment_end_day()


# --------------------------------------------------------------------------------------------
# dose counts under rounding, drugs named at level 0


@pytest.mark.parametrize(
    ("every_days", "stop_day"), [(0.3, 0.9), (0.7, 2.1), (0.6, 1.8), (0.1, 0.3), (1.0, 3.0)]
)
def test_no_dose_on_stop_day_through_rounding(every_days, stop_day):
    # 0.9 / 0.3 = 3.0000000000000004: a fourth dose at day 0.8999999999999999 was given
    schedule = Schedule.oral(
        "tamoxifen", dose_mg=1, every_days=every_days, stop_day=stop_day, pk=toy_pk()
    )
    days = schedule.oral_doses[0].dose_days
    assert days.size == 3
    np.testing.assert_allclose(days, [0.0, every_days, 2 * every_days], rtol=1e-15)
    assert "(3 doses;" in schedule.describe()


@settings(max_examples=200, deadline=None)
@given(
    start=st.floats(min_value=0.0, max_value=100.0),
    every=st.floats(min_value=1e-3, max_value=10.0),
    count=st.integers(min_value=1, max_value=200),
    nudge=st.sampled_from([0.0, 1e-14, -1e-14, 0.5]),
)
def test_dose_days_are_equally_spaced_and_strictly_before_stop_day(start, every, count, nudge):
    # stop_day an exact multiple of the interval (up to rounding: nudge 0 and ±1e-14 days) or
    # half an interval after a dose
    stop = start + (count + nudge) * every
    regimen = OralDoses(
        "tamoxifen", dose_mg=1.0, start_day=start, stop_day=stop, every_days=every, pk=toy_pk()
    )
    days = regimen.dose_days
    expected = count + 1 if nudge == 0.5 else count
    assert days.size == expected
    assert days[0] == start and np.all(days < stop - 1e-10 * every)
    np.testing.assert_allclose(np.diff(days), every, rtol=1e-9)
    assert days.size == math.ceil((stop - start) / every - 1e-9)


def test_treatment_end_day_ignores_a_drug_named_at_level_zero():
    schedule = Schedule.in_vitro(tamoxifen_um=0.0, inhibitor_um=5.0, inhibitor_stop_day=30)
    assert schedule.drugs == ("inhibitor", "tamoxifen")  # named: compile() gives it a column
    assert schedule.given_drugs == ("inhibitor",)
    assert schedule.treatment_end_day() == 30.0
    message = (
        "`drug` = 'tamoxifen' is never given by this schedule (it is named only at level 0): "
        "it gives 'inhibitor'"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        schedule.withdrawal_day("tamoxifen")
    zero_doses = Schedule.oral("tamoxifen", dose_mg=0, every_days=1, stop_day=5, pk=toy_pk())
    assert zero_doses.given_drugs == ()
    with pytest.raises(ValueError, match="this schedule gives no drug"):
        zero_doses.treatment_end_day()
    with pytest.raises(ValueError, match=r"named only at level 0\): it gives no drug$"):
        zero_doses.withdrawal_day()


def test_with_inhibitor_names_its_own_argument():
    schedule = tolsim.Schedule.from_phases([{"days": 10, "tamoxifen": 1.0}])
    with pytest.raises(ValueError, match=r"`stop_day` = 20.0: days must lie within .*\[0, 10\]"):
        schedule.with_inhibitor(start_day=2.0, stop_day=20.0, dose_um=5.0)
    with pytest.raises(TypeError, match="`start_day` = 'x': expected a number of days"):
        schedule.with_inhibitor(start_day="x", stop_day=5.0, dose_um=5.0)
    given = schedule.with_inhibitor(start_day=2.0, stop_day=5.0, dose_um=5.0)
    assert given.withdrawal_day("inhibitor") == 5.0


def test_in_vitro_without_tamoxifen_days_is_a_drug_free_arm():
    control = Schedule.in_vitro(on_days=0, off_days=30)
    assert control.duration_days == 30.0 and control.drugs == ()
    np.testing.assert_array_equal(control.concentrations([0.0, 30.0], DRUGS), [[0, 0], [0, 0]])
    with_inhibitor = Schedule.in_vitro(on_days=0, off_days=30, inhibitor_um=5.0)
    assert with_inhibitor.drugs == ("inhibitor",)
    with pytest.raises(ValueError, match="`on_days` = 0 and `off_days` = 0: expected"):
        Schedule.in_vitro(on_days=0, off_days=0)
