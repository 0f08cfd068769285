"""What models and schedules show of themselves: summaries and the parameter table."""

import dataclasses

import numpy as np
import pytest
from user_models import GrowthSwitch

import tolsim


@pytest.mark.parametrize(
    "model",
    [tolsim.models.TwoState(), tolsim.models.ThreeState(crowding="none"), GrowthSwitch()],
    ids=["two-state", "three-state linear", "user model"],
)
def test_parameter_table_is_the_parameters_in_packed_order(model):
    table = model.parameter_table()
    assert list(table.index) == list(model.parameter_names)
    defaults = model.default_params()
    np.testing.assert_array_equal(table["default"], [defaults[n] for n in table.index])
    for p in model.parameters:
        row = table.loc[p.name]
        assert (row["unit"], row["low"], row["high"]) == (p.unit, *p.bounds)
        assert (row["description"], row["source"]) == (p.description, p.source)


@pytest.mark.parametrize(
    "model",
    [tolsim.models.TwoState(), tolsim.models.ThreeState(crowding="none"), GrowthSwitch()],
    ids=["two-state", "three-state linear", "user model"],
)
def test_summary_names_every_part_in_lines_of_at_most_99_characters(model):
    text = repr(model)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 99
    assert lines[0] == (
        f"<tolsim Model {model.name!r} ({', '.join(f'{k}={v!r}' for k, v in model.options)}): "
        f"{len(model.states)} states, {len(model.parameters)} parameters, "
        f"{len(model.transitions)} transitions{', linear' if model.linear else ''}>"
    )
    flat = " ".join(line.strip() for line in lines)  # wrapped items rejoined
    for p in model.parameters:
        assert f"{p.name}={p.default:g}" in flat
    for t in model.transitions:
        assert f"{t.name} (" in flat
    states = next(line for line in lines if line.startswith("  states "))
    assert states.split(None, 1)[1] == ", ".join(model.states)
    hills = [e.name for e in model.exposures]
    assert all(f"→ {name})" in flat for name in hills)
    assert model.rates.py_func.__qualname__ in lines[-1]
    assert ("and lane_rates" in lines[-1]) == (model.lane_rates is not None)


def test_summary_says_none_for_what_a_model_lacks():
    bare = dataclasses.replace(GrowthSwitch(), drugs=(), tolerant_states=(), options=())
    lines = repr(bare).splitlines()
    assert lines[0].startswith("<tolsim Model 'GrowthSwitch': 2 states")
    assert "  drugs        (none)" in lines and "  tolerant     (none)" in lines


def test_schedule_summary_counts_its_parts_and_says_what_is_given_when():
    pk = tolsim.PK.tamoxifen_mouse()
    oral = tolsim.Schedule.oral(
        "tamoxifen", dose_mg=0.5, every_days=1.0, stop_day=60.0, duration_days=120.0, pk=pk
    )
    course = tolsim.Schedule.from_phases(
        [{"start_day": 30, "stop_day": 60, "inhibitor": 5.0}], duration_days=120.0
    )
    lines = repr(oral | course).splitlines()
    assert lines == [
        "<tolsim Schedule over 120 days: 1 phase, 1 oral regimen, 0 pellets>",
        "  days 30-60: inhibitor 5 µM",
        "  tamoxifen orally 0.5 mg every 1 days, days 0-60 (60 doses; mouse, half-life 0.25 days)",
    ]
    washout = tolsim.Schedule.from_phases([{"days": 60, "tamoxifen": 1.0}, {"days": 30}])
    assert str(washout).splitlines()[0] == (
        "<tolsim Schedule over 90 days: 2 phases, 0 oral regimens, 0 pellets>"
    )
    assert str(washout).splitlines()[1:] == [
        "  days 0-60: tamoxifen 1 µM",
        "  days 60-90: no drug",
    ]


def test_pk_shows_its_constants_in_one_line():
    pk = tolsim.PK.from_half_life(
        7.0, ka_per_day=24.0, volume_l=1700.0, molar_mass_g_per_mol=371.5, species="human"
    )
    assert repr(pk) == (
        "<tolsim PK (human): ka 24/day, ke 0.09902/day (half-life 7 days), V 1700 L, "
        "M 371.5 g/mol, F 1>"
    )
    assert "\n" not in repr(tolsim.PK.tamoxifen_mouse())  # its long note is left out
