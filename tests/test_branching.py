"""Extinction probabilities of linear models: closed forms, the master equation, properties."""

import doctest
import math

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from scipy.integrate import solve_ivp
from scipy.sparse.linalg import expm_multiply

import tolsim
import tolsim.branching
from tolsim.branching import branching_extinction
from tolsim.models import Model, Parameter, Transition

LINEAR = tolsim.models.TwoState(crowding="none")
LINEAR_THREE = tolsim.models.ThreeState(crowding="none")
DRUG_FREE = tolsim.Schedule.from_phases([{"days": 30.0}])
S_ONLY = dict(T0=0.0, mu_0=0.0, mu_E=0.0, nu_0=0.0, nu_off=0.0)


def birth_death(division, death, cells, **overrides):
    """S cells only, dividing at ``division`` and dying at ``death`` per day when drug-free."""
    return LINEAR.default_params(lambda_S=division, delta_S=death, S0=cells, **S_ONLY, **overrides)


def exposure(conc_um, ec50):
    """Hill exposure with coefficient 1 (the models' default)."""
    return conc_um / (conc_um + ec50)


def kendall_generating_function(s, days, division, death):
    """``E[s ** N(t) | N(0) = 1]`` of the linear birth–death process (Kendall 1948)."""
    if division == death:
        x = division * days
        return (x * (1.0 - s) + s) / (x * (1.0 - s) + 1.0)
    decay = math.exp(-(division - death) * days)
    return (death * (s - 1.0) - (division * s - death) * decay) / (
        division * (s - 1.0) - (division * s - death) * decay
    )


# --------------------------------------------------------------------------------------------
# birth–death process: closed forms


@pytest.mark.parametrize(
    ("division", "death", "cells", "expected"),
    [(0.4, 0.1, 3, 0.25**3), (0.2, 0.3, 2, 1.0), (0.25, 0.25, 4, 1.0)],
    ids=["supercritical", "subcritical", "critical"],
)
def test_birth_death_eventual_extinction(division, death, cells, expected):
    ds = branching_extinction(
        LINEAR, birth_death(division, death, cells), DRUG_FREE, by_day=np.inf
    )
    # (d/b)^n for b > d, else 1; the critical root q* = 1 is double, found to round-off
    assert float(ds.extinction_probability) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("division", "death", "cells", "days"),
    [(0.4, 0.1, 3, 10.0), (0.2, 0.3, 2, 25.0), (0.25, 0.25, 4, 30.0), (1.5, 0.5, 1, 7.5)],
)
def test_birth_death_extinction_by_day(division, death, cells, days):
    ds = branching_extinction(LINEAR, birth_death(division, death, cells), DRUG_FREE, by_day=days)
    if division == death:
        one_cell = division * days / (1.0 + division * days)
    else:
        growth = math.exp((division - death) * days)
        one_cell = death * (growth - 1.0) / (division * growth - death)
    assert float(ds.extinction_probability) == pytest.approx(one_cell**cells, rel=1e-8)
    # with no S -> T switching, "no S cell left" is "no cell left"
    only_s = branching_extinction(
        LINEAR, birth_death(division, death, cells), DRUG_FREE, by_day=days, states=("S",)
    )
    assert float(only_s.extinction_probability) == pytest.approx(one_cell**cells, rel=1e-8)


def test_two_phases_compose_kendall_generating_functions():
    """Tamoxifen for 20 days changes division and death; the generating functions compose:
    P(N(35) = 0 | one cell) = F_1(F_2(0, 15 days), 20 days)."""
    params = birth_death(0.3, 0.05, 4, eps_S=0.8, kappa_S=0.2)
    schedule = tolsim.Schedule.from_phases([{"days": 20.0, "tamoxifen": 1.0}, {"days": 15.0}])
    e_tam = exposure(1.0, params["EC50_tam"])
    treated = (0.3 * (1.0 - 0.8 * e_tam), 0.05 + 0.2 * e_tam)  # (division, death) per day
    drug_free = (0.3, 0.05)

    def probability(by_day):
        return float(
            branching_extinction(LINEAR, params, schedule, by_day=by_day).extinction_probability
        )

    end = kendall_generating_function(
        kendall_generating_function(0.0, 15.0, *drug_free), 20.0, *treated
    )
    assert probability(35.0) == pytest.approx(end**4, rel=1e-8)
    during = kendall_generating_function(0.0, 12.0, *treated)
    assert probability(12.0) == pytest.approx(during**4, rel=1e-8)
    # eventual: the drug-free phase goes on for ever, whose one-cell extinction is d/b
    ever = kendall_generating_function(drug_free[1] / drug_free[0], 20.0, *treated)
    assert probability(np.inf) == pytest.approx(ever**4, rel=1e-8)


def test_oral_dosing_matches_kendall_time_varying_formula():
    """Oral tamoxifen with a short half-life makes the rates vary within each piece.

    Kendall (1948): for division rate b(t) and death rate d(t), one cell leaves none on day
    t with probability 1 - 1 / (exp(rho(t)) + int_0^t b exp(rho)), rho = int_0^t (d - b).
    The concentrations are summed Bateman functions written out here, independently of the
    PK code.
    """
    pk = tolsim.PK.tamoxifen_mouse()
    schedule = tolsim.Schedule.oral(
        "tamoxifen", dose_mg=0.05, every_days=2.0, stop_day=10.0, pk=pk, duration_days=20.0
    )
    params = birth_death(0.4, 0.05, 3, eps_S=0.9, kappa_S=0.6)
    dose_days = schedule.oral_doses[0].dose_days
    ka, ke = pk.ka_per_day, pk.ke_per_day

    def rates(day):
        after = np.clip(day - dose_days, 0.0, None)
        amount_mg = np.sum(0.05 * ka / (ka - ke) * (np.exp(-ke * after) - np.exp(-ka * after)))
        e_tam = exposure(amount_mg * pk.um_per_mg, params["EC50_tam"])
        return 0.4 * (1.0 - 0.9 * e_tam), 0.05 + 0.6 * e_tam

    def rhs(day, y):  # y = (rho, int b exp(rho))
        division, death = rates(day)
        return [death - division, division * math.exp(y[0])]

    y = np.zeros(2)
    for start, stop in zip([0.0, *dose_days[1:]], [*dose_days[1:], 20.0], strict=True):
        y = solve_ivp(rhs, (start, stop), y, method="DOP853", rtol=1e-12, atol=1e-14).y[:, -1]
    one_cell = 1.0 - 1.0 / (math.exp(y[0]) + y[1])
    ds = branching_extinction(LINEAR, params, schedule)
    assert float(ds.extinction_probability) == pytest.approx(one_cell**3, rel=1e-8)
    # afterwards drug-free for ever: add int_20^inf b exp(rho) = b exp(rho(20)) / (b - d)
    ever = 1.0 - 1.0 / (y[1] + 0.4 * math.exp(y[0]) / (0.4 - 0.05))
    ds = branching_extinction(LINEAR, params, schedule, by_day=np.inf)
    assert float(ds.extinction_probability) == pytest.approx(ever**3, rel=1e-8)


# --------------------------------------------------------------------------------------------
# several types: the forward master equation on a truncated lattice


def forward_master_equation(phases, initial, size):
    """Distribution of counts after ``phases`` of ``(days, reactions)``; each reaction is
    ``(rate per parent cell, parent type, change)``. Jumps off the lattice ``[0, size)^n`` are
    lost, so the missing mass bounds the truncation error. Returns (p, lost mass)."""
    n_types = len(initial)
    shape = (size,) * n_types
    counts = np.indices(shape).reshape(n_types, -1).T
    p = np.zeros(counts.shape[0])
    p[np.ravel_multi_index(initial, shape)] = 1.0
    for days, reactions in phases:
        rows, cols, values = [], [], []
        outflow = np.zeros(counts.shape[0])
        for rate, parent, change in reactions:
            propensity = rate * counts[:, parent]
            outflow += propensity
            target = counts + np.asarray(change)
            source = np.flatnonzero((propensity > 0) & np.all(target < size, axis=1))
            rows.append(np.ravel_multi_index(tuple(target[source].T), shape))
            cols.append(source)
            values.append(propensity[source])
        generator = scipy.sparse.csc_matrix(
            (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
            shape=(p.size, p.size),
        ) - scipy.sparse.diags(outflow)
        p = expm_multiply(generator * days, p)
    return p.reshape(shape), 1.0 - p.sum()


def sensitive_tolerant_reactions(p, tamoxifen_um, inhibitor_um):
    """The two-state per-cell rates as the model description writes them."""
    e_tam = exposure(tamoxifen_um, p["EC50_tam"])
    e_inh = exposure(inhibitor_um, p["EC50_inh"])
    return [
        (p["lambda_S"] * (1 - p["eps_S"] * e_tam), 0, (1, 0)),
        (p["delta_S"] + p["kappa_S"] * e_tam, 0, (-1, 0)),
        (p["mu_0"] + p["mu_E"] * e_tam, 0, (-1, 1)),
        (p["lambda_T"] * (1 - p["eps_T"] * e_tam) * (1 - p["iota"] * e_inh), 1, (0, 1)),
        (p["delta_T"] + p["kappa_T"] * e_inh, 1, (0, -1)),
        (p["nu_0"] + p["nu_off"] * (1 - e_tam), 1, (1, -1)),
    ]


def test_two_types_match_master_equation():
    params = LINEAR.default_params(
        lambda_S=0.2, delta_S=0.15, eps_S=0.5, kappa_S=0.3, lambda_T=0.2, delta_T=0.15,
        kappa_T=0.4, iota=0.5, mu_0=0.05, mu_E=0.2, nu_0=0.02, nu_off=0.1, S0=3, T0=2,
    )  # fmt: skip
    schedule = tolsim.Schedule.from_phases(
        [{"days": 8.0, "tamoxifen": 1.0, "inhibitor": 2.0}, {"days": 10.0}]
    )
    p, lost = forward_master_equation(
        [
            (8.0, sensitive_tolerant_reactions(params, 1.0, 2.0)),
            (10.0, sensitive_tolerant_reactions(params, 0.0, 0.0)),
        ],
        initial=(3, 2),
        size=60,
    )
    assert lost < 1e-9
    # the lattice misses at most `lost` of each probability; the rest is integration error
    tolerance = lost + 1e-9
    whole = branching_extinction(LINEAR, params, schedule)
    tolerant = branching_extinction(LINEAR, params, schedule, states=("T",))
    assert abs(float(whole.extinction_probability) - p[0, 0]) <= tolerance
    assert abs(float(tolerant.extinction_probability) - p[:, 0].sum()) <= tolerance
    assert 0.05 < p[0, 0] < 0.95 and 0.05 < p[:, 0].sum() < 0.95  # a test that can fail


def test_three_types_match_master_equation():
    params = LINEAR_THREE.default_params(
        lambda_S=0.1, delta_S=0.3, eps_S=0.5, kappa_S=0.2, lambda_T=0.1, delta_T=0.2,
        mu_0=0.05, mu_E=0.15, nu_0=0.02, nu_off=0.1, rho=0.1, lambda_R=0.1, delta_R=0.2,
        S0=2, T0=1, R0=1,
    )  # fmt: skip
    schedule = tolsim.Schedule.from_phases([{"days": 5.0, "tamoxifen": 1.0}])
    reactions = [
        (rate, parent, (*change, 0))
        for rate, parent, change in sensitive_tolerant_reactions(params, 1.0, 0.0)
    ]
    reactions += [(0.1, 1, (0, -1, 1)), (0.1, 2, (0, 0, 1)), (0.2, 2, (0, 0, -1))]
    p, lost = forward_master_equation([(5.0, reactions)], initial=(2, 1, 1), size=20)
    assert lost < 1e-9
    tolerance = lost + 1e-9
    whole = branching_extinction(LINEAR_THREE, params, schedule)
    no_t_nor_r = branching_extinction(LINEAR_THREE, params, schedule, states=("T", "R"))
    assert abs(float(whole.extinction_probability) - p[0, 0, 0]) <= tolerance
    assert abs(float(no_t_nor_r.extinction_probability) - p[:, 0, 0].sum()) <= tolerance
    assert 0.05 < p[0, 0, 0] < 0.95 and 0.05 < p[:, 0, 0].sum() < 0.95


# --------------------------------------------------------------------------------------------
# properties


@st.composite
def linear_cases(draw):
    model = draw(st.sampled_from([LINEAR, LINEAR_THREE]))
    rate = st.floats(0.0, 1.0)
    overrides = {
        name: draw(rate)
        for name in ("lambda_S", "lambda_T", "delta_S", "delta_T", "kappa_S", "kappa_T")
    }
    overrides |= {name: draw(st.floats(0.0, 0.3)) for name in ("mu_0", "mu_E", "nu_0", "nu_off")}
    for _, parameter in model.initial:
        overrides[parameter] = draw(st.integers(0, 5))
    if model is LINEAR_THREE:
        overrides |= {"rho": draw(st.floats(0.0, 0.3)), "lambda_R": draw(rate)}
        overrides["delta_R"] = draw(rate)
    phases = []
    for _ in range(draw(st.integers(1, 3))):
        phase = {"days": draw(st.floats(0.5, 20.0))}
        if draw(st.booleans()):
            phase["tamoxifen"] = draw(st.floats(0.0, 5.0))
        if draw(st.booleans()):
            phase["inhibitor"] = draw(st.floats(0.0, 5.0))
        phases.append(phase)
    fractions = sorted(draw(st.lists(st.floats(0.05, 1.0), min_size=2, max_size=2)))
    return model, model.default_params(**overrides), tolsim.Schedule.from_phases(phases), fractions


@settings(max_examples=25, deadline=None)
@given(linear_cases())
def test_probabilities_are_consistent(case):
    model, params, schedule, fractions = case
    earlier, later = (f * schedule.duration_days for f in fractions)
    results = [
        branching_extinction(model, params, schedule, by_day=by_day)
        for by_day in (earlier, later, np.inf)
    ]
    # extinction is absorbing: the probability never falls as the horizon moves on
    chances = [results[0].lineage_extinction_probability.values]
    chances += [ds.lineage_extinction_probability.values for ds in results[1:]]
    assert np.all(chances[0] <= chances[1] + 1e-9) and np.all(chances[1] <= chances[2] + 1e-9)
    # an empty population has no tolerant cell either
    tolerant = branching_extinction(model, params, schedule, by_day=later, states=("T",))
    whole = results[1].lineage_extinction_probability.values
    assert np.all(whole <= tolerant.lineage_extinction_probability.values + 1e-9)


def kendall_lineages(params, schedule, by_day):
    """One S and one T cell's extinction probabilities by ``by_day`` (np.inf: eventually)
    without switching: each lineage is a birth-death process whose rates are constant over
    each piece, so the generating functions of the pieces compose (Kendall 1948); after the
    end the last piece's rates go on (eventual extinction d/b where b > d, else 1; 0 for a
    cell that neither divides nor dies)."""
    p = params
    edges = schedule.breakpoints()
    pieces = list(zip(edges[:-1], edges[1:], strict=True))

    def hill(c, ec50, h):
        return c**h / (c**h + ec50**h) if c > 0 else 0.0

    def rates(start):
        tam, inh = schedule.concentrations([start], ["tamoxifen", "inhibitor"])[0]
        e_tam, e_inh = hill(tam, p["EC50_tam"], p["h_tam"]), hill(inh, p["EC50_inh"], p["h_inh"])
        sensitive = (p["lambda_S"] * (1 - p["eps_S"] * e_tam), p["delta_S"] + p["kappa_S"] * e_tam)
        tolerant = (
            p["lambda_T"] * (1 - p["eps_T"] * e_tam) * (1 - p["iota"] * e_inh),
            p["delta_T"] + p["kappa_T"] * e_inh,
        )
        return sensitive, tolerant

    lineages = []
    for k in (0, 1):
        if math.isinf(by_day):
            b, d = rates(pieces[-1][0])[k]
            q = d / b if b > d else (1.0 if d > 0 else 0.0)  # (b = d = 0: immortal)
            horizon = edges[-1]
        else:
            q, horizon = 0.0, by_day
        for start, stop in reversed(pieces):
            if start < horizon:
                q = kendall_generating_function(q, min(stop, horizon) - start, *rates(start)[k])
        lineages.append(q)
    return np.array(lineages)


@settings(max_examples=25, deadline=None)
@given(linear_cases())
def test_without_switching_each_lineage_is_kendalls_birth_death_process(case):
    """Random rates, exposures and phases with no S <-> T switching: every lineage's
    extinction probability (by two days and eventually) is the composition of the pieces'
    Kendall generating functions, and the population's is their product over its cells."""
    model, params, schedule, fractions = case
    if model is not LINEAR:
        params = {k: v for k, v in params.items() if k in LINEAR.parameter_names}
    params = dict(params, mu_0=0.0, mu_E=0.0, nu_0=0.0, nu_off=0.0)
    for by_day in (fractions[0] * schedule.duration_days, schedule.duration_days, np.inf):
        ds = branching_extinction(LINEAR, params, schedule, by_day=by_day)
        expected = kendall_lineages(params, schedule, by_day)
        got = ds.lineage_extinction_probability.values
        np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-10)
        cells = np.array([params["S0"], params["T0"]])
        product = float(np.prod(expected**cells))
        assert float(ds.extinction_probability) == pytest.approx(product, rel=1e-6, abs=1e-10)


def test_splitting_a_phase_changes_nothing():
    params = LINEAR.default_params(S0=4, T0=1, mu_0=0.01, nu_off=0.2)
    one = tolsim.Schedule.from_phases([{"days": 30.0, "tamoxifen": 1.0}, {"days": 20.0}])
    split = tolsim.Schedule.from_phases(
        [{"days": 12.0, "tamoxifen": 1.0}, {"days": 18.0, "tamoxifen": 1.0}, {"days": 20.0}]
    )
    for by_day, states in ((50.0, None), (50.0, ("T",)), (np.inf, None)):
        a = branching_extinction(LINEAR, params, one, by_day=by_day, states=states)
        b = branching_extinction(LINEAR, params, split, by_day=by_day, states=states)
        np.testing.assert_allclose(
            a.lineage_extinction_probability, b.lineage_extinction_probability, atol=1e-10
        )


# --------------------------------------------------------------------------------------------
# results


def test_table_and_initial_override():
    schedule = tolsim.Schedule.from_phases([{"days": 20.0, "tamoxifen": 1.0}, {"days": 10.0}])
    table = {"lambda_S": np.array([0.1, 0.3, 0.5]), "S0": np.array([1.0, 2.0, 3.0]), "T0": 1.0}
    ds = branching_extinction(LINEAR, table, schedule, initial={"T": 4})
    assert ds.extinction_probability.dims == ("sample",)
    assert ds.lineage_extinction_probability.dims == ("sample", "state")
    np.testing.assert_array_equal(ds.initial_cells.values, [[1, 4], [2, 4], [3, 4]])
    for i in range(3):
        single = branching_extinction(
            LINEAR, LINEAR.default_params(lambda_S=table["lambda_S"][i], S0=1.0, T0=1.0), schedule
        )
        np.testing.assert_allclose(
            ds.lineage_extinction_probability[i], single.lineage_extinction_probability, rtol=1e-12
        )
        q_s, q_t = single.lineage_extinction_probability.values
        assert float(ds.extinction_probability[i]) == pytest.approx(q_s ** (i + 1) * q_t**4)


def test_dataset_explains_itself():
    params = birth_death(0.4, 0.1, 3)
    ds = branching_extinction(LINEAR, params, DRUG_FREE, by_day=12.0, states=["T", "S"])
    assert list(ds.state.values) == ["S", "T"]
    assert ds.extinction_probability.attrs["units"] == "1"
    assert ds.lineage_extinction_probability.attrs["units"] == "1"
    assert ds.initial_cells.attrs["units"] == "cells"
    assert ds.attrs["by_day"] == 12.0 and ds.attrs["by_day_units"] == "days"
    assert ds.attrs["target_states"] == '["S", "T"]'
    assert ds.attrs["method"] == "branching process (backward Kolmogorov equations)"
    assert ds.attrs["tolsim_version"] == tolsim.__version__
    assert tolsim.Schedule.from_json(ds.attrs["schedule"]) == DRUG_FREE
    assert '"linear": true' in ds.attrs["model"]
    assert '"lambda_S": 0.4' in ds.attrs["params"]


def test_docstring_example():
    result = doctest.testmod(tolsim.branching, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# --------------------------------------------------------------------------------------------
# errors


@njit(cache=True)
def odd_rates(t, x, p, c, out):
    out[0] = p[0] * x[0]  # division of A
    out[1] = p[1] * x[1]  # death of B
    if p[5] == 0.0:
        out[2] = p[2] * x[0]  # an A cell removes a B cell
    elif p[5] == 1.0:
        out[2] = p[2]  # B cells arrive whatever the population
    else:
        out[2] = -p[2] * x[0]


def odd_model(mode, name, **change):
    """A linear-looking model that is no branching process (mode 0, 1) or has a negative
    rate (mode 2)."""
    return Model(
        name="Odd",
        states=("A", "B"),
        parameters=(
            Parameter("birth_A", "1/day", 0.1, (0.0, 10.0)),
            Parameter("death_B", "1/day", 0.1, (0.0, 10.0)),
            Parameter("odd_rate", "1/day", 0.2, (0.0, 10.0)),
            Parameter("A0", "cells", 1.0, (0.0, 1e6)),
            Parameter("B0", "cells", 1.0, (0.0, 1e6)),
        ),
        transitions=(
            Transition.of("division_A", A=1),
            Transition.of("death_B", B=-1),
            Transition.of(name, **change),
        ),
        rates=odd_rates,
        initial=(("A", "A0"), ("B", "B0")),
        constants=(float(mode),),
        linear=True,
    )


@pytest.mark.parametrize(
    ("mode", "name", "change", "message"),
    [
        (0, "removal_of_B", {"B": -1}, r"'removal_of_B'.*fires for one 'A' cell.*not a branching"),
        # immigration is not linear in the state: refused when the model is built
        (1, "arrival_of_B", {"B": 1}, r"'arrival_of_B' of model 'Odd' is not linear in the st"),
        (2, "odd_division", {"A": 1}, r"'odd_division'.*rate -0.2 /day.*expected a finite rate"),
    ],
)
def test_models_that_are_no_branching_process(mode, name, change, message):
    with pytest.raises(ValueError, match=message):
        model = odd_model(mode, name, **change)
        branching_extinction(model, model.default_params(), DRUG_FREE)


def test_nonlinear_model_points_to_monte_carlo():
    model = tolsim.models.TwoState()
    with pytest.raises(
        ValueError, match=r"not linear.*Monte Carlo.*method='ssa', 'tau' or 'hybrid'"
    ):
        branching_extinction(model, model.default_params(), DRUG_FREE)


def test_wrong_types():
    params = LINEAR.default_params()
    with pytest.raises(TypeError, match="`model` = .*: expected a tolsim.models.Model"):
        branching_extinction("TwoState", params, DRUG_FREE)
    with pytest.raises(TypeError, match="`schedule` = .*: expected a tolsim.Schedule"):
        branching_extinction(LINEAR, params, {"days": 30})


@pytest.mark.parametrize(
    ("states", "error", "message"),
    [
        (("T", "X"), ValueError, r"`states` names unknown state\(s\) \['X'\].*are \['S', 'T'\]"),
        ((), ValueError, r"`states` is empty: expected at least one of the states \['S', 'T'\]"),
        ("T", TypeError, r"`states` = 'T': expected a sequence of state names, e.g. \('T',\)"),
    ],
)
def test_bad_states(states, error, message):
    with pytest.raises(error, match=message):
        branching_extinction(LINEAR, LINEAR.default_params(), DRUG_FREE, states=states)


@pytest.mark.parametrize(
    ("initial", "error", "message"),
    [
        ({"X": 1}, ValueError, r"`initial` names unknown state\(s\) \['X'\]"),
        ({"S": 2.5}, ValueError, r"`initial\['S'\]` = 2.5: expected a whole number of cells >= 0"),
        ({"T": -1}, ValueError, r"`initial\['T'\]` = -1: expected a whole number of cells >= 0"),
        ({"T": np.nan}, ValueError, r"`initial\['T'\]` = nan: expected a whole number"),
        ({"S": "3"}, TypeError, r"`initial\['S'\]` = '3': expected a whole number of cells"),
        ([("S", 3)], TypeError, r"`initial` = .*: expected a mapping of state name to cells"),
    ],
)
def test_bad_initial(initial, error, message):
    with pytest.raises(error, match=message):
        branching_extinction(LINEAR, LINEAR.default_params(), DRUG_FREE, initial=initial)


def test_initial_values_in_params_must_be_whole_cells():
    with pytest.raises(ValueError, match=r"`params.S0` = 2.5 cells: .*expected a whole number"):
        branching_extinction(LINEAR, LINEAR.default_params(S0=2.5), DRUG_FREE)
    table = {"T0": np.array([1.0, 0.5])}
    with pytest.raises(ValueError, match=r"`params.T0\[1\]` = 0.5 cells"):
        branching_extinction(LINEAR, table, DRUG_FREE)
    # whole numbers given in `initial` replace the parameter
    ds = branching_extinction(LINEAR, LINEAR.default_params(S0=2.5), DRUG_FREE, initial={"S": 2})
    assert float(ds.initial_cells.sel(state="S")) == 2.0


@pytest.mark.parametrize("by_day", [0.0, -1.0, 30.5, np.nan, -np.inf])
def test_by_day_outside_the_schedule(by_day):
    with pytest.raises(ValueError, match=r"`by_day` = .*: expected a day in \(0, 30\]"):
        branching_extinction(LINEAR, LINEAR.default_params(), DRUG_FREE, by_day=by_day)


def test_by_day_errors():
    params = LINEAR.default_params()
    with pytest.raises(
        ValueError, match=r"`by_day` = inf \(eventual extinction\).*whole population"
    ):
        branching_extinction(LINEAR, params, DRUG_FREE, by_day=np.inf, states=("T",))
    with pytest.raises(TypeError, match=r"`by_day` = '10': expected a day \(a number\) or np.inf"):
        branching_extinction(LINEAR, params, DRUG_FREE, by_day="10")
    # every state named explicitly is the whole population
    ds = branching_extinction(LINEAR, params, DRUG_FREE, by_day=np.inf, states=("S", "T"))
    assert 0.0 <= float(ds.extinction_probability) <= 1.0


def test_growth_before_a_near_certain_kill_keeps_its_digits():
    """Twelve days of division (1/day, no death), then sixteen under tamoxifen that kills
    nearly every lineage (1 - q about 4e-6 per cell): the extinction probability by day 28,
    F_1(F_2(0)), divides by (1 - q_2) + q_2 e^-12 and so needs 1 - q_2 to full relative
    precision. Solved in q it was off by 1e-7 relative (an absolute 1e-12 on 1 - q_2); the
    equations are now solved in the survival probabilities."""
    params = LINEAR.default_params(lambda_S=1.0, delta_S=0.0, kappa_S=1.0, EC50_tam=0.1,
                                   **S_ONLY, S0=1)  # fmt: skip
    schedule = tolsim.Schedule.from_phases([{"days": 12.0}, {"days": 16.0, "tamoxifen": 4.0}])
    e_tam = exposure(4.0, 0.1)
    killing = (1.0 - params["eps_S"] * e_tam, e_tam)  # (division, death) per day
    expected = kendall_generating_function(
        kendall_generating_function(0.0, 16.0, *killing), 12.0, 1.0, 0.0
    )
    ds = branching_extinction(LINEAR, params, schedule, by_day=28.0)
    assert float(ds.extinction_probability) == pytest.approx(expected, rel=1e-9)


def test_eventual_extinction_under_oral_pk_with_an_inhibitor_course():
    """The survival probabilities leave [0, 1] by round-off in the solver's trial states
    under oral PK (log1p(-y) was NaN there, and the next piece failed: "y0 must be finite");
    the values are those of the previous formulation in q (commit 86580eb), which had no
    such edge, to its 1e-12 tolerance amplified by the pieces."""
    params = LINEAR.default_params(lambda_S=0.22423524092077107, lambda_T=0.18477323290708286,
                                   kappa_T=0.28653229387871443, mu_E=0.00010201273006802967,
                                   S0=1000.0, T0=20.0)  # fmt: skip
    schedule = tolsim.Schedule.oral(
        "tamoxifen", dose_mg=0.05, every_days=1.0, stop_day=28.0,
        pk=tolsim.PK.tamoxifen_mouse(), duration_days=60.0,
    ).with_inhibitor(start_day=0, stop_day=28, dose_um=5.0)  # fmt: skip
    ds = branching_extinction(LINEAR, params, schedule, by_day=np.inf)
    np.testing.assert_allclose(
        ds.lineage_extinction_probability.values, [0.25934086, 0.90362687], rtol=1e-7
    )
