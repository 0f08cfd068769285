"""What a model shows of itself: its summary and its parameter table."""

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
