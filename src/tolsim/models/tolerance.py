"""Built-in models: sensitive (S) and NF-κB-high tamoxifen-tolerant (T) cells, optionally
stably resistant cells (R).

Per-cell rates (per day) with exposures ``E_tam``, ``E_inh`` (Hill functions of the
concentrations) and crowding ``g``:

* division of S ``lambda_S (1 - eps_S E_tam) g``; death of S ``delta_S + kappa_S E_tam``;
* switch S→T ``mu_0 + mu_E E_tam`` (``mu_E = 0``: pure selection of pre-existing tolerant
  cells; ``mu_E > 0``: drug-induced tolerance);
* division of T ``lambda_T (1 - eps_T E_tam)(1 - iota E_inh) g``; death of T
  ``delta_T + kappa_T E_inh`` (tolerant cells need NF-κB to survive);
* reversion T→S ``nu_0 + nu_off (1 - E_tam)`` (tolerance fades after withdrawal);
* three-state model only: T→R at ``rho``, division of R ``lambda_R g``, death ``delta_R``.

Crowding: ``"none"`` (g = 1), ``"logistic"`` (g = 1 - N/K) or ``"gompertz"``
(g = ln(K/N) / ln(K/N_0), so that g = 1 at the initial size N_0 = S0 + T0 (+ R0) and 0 at K).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tolsim.kernels.exposure import hill
from tolsim.models.base import Constraint, Exposure, Model, Parameter, Transition

__all__ = ["ThreeState", "TwoState"]

CROWDING_CODES = {"none": 0.0, "logistic": 1.0, "gompertz": 2.0}

_MAGI = (
    "Magi et al. 2021 (Sci Rep 11:18511) MCF-7: ~3.3-fold growth a week untreated, ~1.0-fold "
    "a week under tamoxifen (weeks 3-5)"
)

_MAGI_TAM = (
    "Magi et al. 2021 weekly fold under tamoxifen: 0.99, 1.04, 1.04, 1.23, 1.84, 1.83, 1.74, "
    "2.31 in weeks 3-10 (growth_rate_mean_se_from_observable_py.csv)"
)

_TWO_STATE_PARAMETERS = (
    Parameter(
        "lambda_S",
        "1/day",
        0.19,
        (0.0, 10.0),
        "division rate of sensitive cells",
        "net untreated growth lambda_S - delta_S = ln(3.3)/7 = 0.17/day; " + _MAGI,
    ),
    Parameter(
        "lambda_T",
        "1/day",
        0.19,
        (0.0, 10.0),
        "division rate of tolerant cells",
        "as lambda_S; with eps_T, tolerant regrowth under tamoxifen reaches ~2.2-fold a week "
        "by week 10 (data 2.31; " + _MAGI_TAM + ")",
    ),
    Parameter(
        "eps_S",
        "1",
        0.8,
        (0.0, 1.0),
        "max fractional block of S division by tamoxifen",
        "with kappa_S, gives ~0.9-1.0-fold weekly growth of S under 1 µM; " + _MAGI,
    ),
    Parameter(
        "eps_T",
        "1",
        0.25,
        (0.0, 1.0),
        "max fractional block of T division by tamoxifen",
        "tolerant cells keep dividing under the drug: weekly fold 1.0 (week 4) to 2.2 (week 10) "
        "as they take over (" + _MAGI_TAM + ")",
    ),
    Parameter(
        "delta_S",
        "1/day",
        0.02,
        (0.0, 10.0),
        "basal death rate of S",
        "small basal death in culture (assumption)",
    ),
    Parameter(
        "delta_T", "1/day", 0.02, (0.0, 10.0), "basal death rate of T", "as delta_S (assumption)"
    ),
    Parameter(
        "kappa_S",
        "1/day",
        0.05,
        (0.0, 10.0),
        "max extra death of S from tamoxifen",
        "tamoxifen mostly halts division and kills some cells; " + _MAGI,
    ),
    Parameter(
        "kappa_T",
        "1/day",
        0.3,
        (0.0, 10.0),
        "max extra death of T from NF-κB inhibition",
        "tolerant cells need NF-κB: inhibition kills them within days (assumption)",
    ),
    Parameter(
        "mu_0",
        "1/day",
        1e-4,
        (0.0, 10.0),
        "basal switching S→T",
        "rare spontaneous tolerant state (assumption)",
    ),
    Parameter(
        "mu_E",
        "1/day",
        1e-4,
        (0.0, 10.0),
        "drug-induced switching S→T at full exposure",
        "0 is pure selection; a small induction consistent with the weekly growth under "
        "tamoxifen (" + _MAGI_TAM + "); to be fitted",
    ),
    Parameter(
        "nu_0",
        "1/day",
        1e-3,
        (0.0, 10.0),
        "basal reversion T→S",
        "tolerant state is stable under the drug (assumption)",
    ),
    Parameter(
        "nu_off",
        "1/day",
        0.05,
        (0.0, 10.0),
        "extra reversion T→S without tamoxifen",
        "tolerance fades over weeks after withdrawal (assumption)",
    ),
    Parameter(
        "iota",
        "1",
        0.8,
        (0.0, 1.0),
        "max fractional block of T division by inhibitor",
        "NF-κB inhibition halts tolerant-cell division (assumption)",
    ),
    Parameter(
        "K",
        "cells",
        1e7,
        (1.0, 1e14),
        "carrying capacity",
        "order of a confluent culture vessel (assumption)",
    ),
    Parameter(
        "EC50_tam",
        "µM",
        0.1,
        (1e-9, 1e4),
        "tamoxifen (4-OHT) concentration at half effect",
        "4-OHT acts at ~0.01-0.1 µM on MCF-7; 1 µM gives E_tam = 0.91",
    ),
    Parameter(
        "h_tam",
        "1",
        1.0,
        (0.05, 20.0),
        "Hill coefficient of tamoxifen",
        "no cooperativity assumed",
    ),
    Parameter(
        "EC50_inh",
        "µM",
        1.0,
        (1e-9, 1e4),
        "NF-κB inhibitor concentration at half effect",
        "typical IKK inhibitor IC50 in cells, ~1 µM (assumption)",
    ),
    Parameter(
        "h_inh",
        "1",
        1.0,
        (0.05, 20.0),
        "Hill coefficient of the inhibitor",
        "no cooperativity assumed",
    ),
    Parameter("S0", "cells", 1e5, (0.0, 1e14), "initial sensitive cells", "a seeded culture well"),
    Parameter(
        "T0",
        "cells",
        100.0,
        (0.0, 1e14),
        "initial tolerant cells",
        "~0.1% pre-existing NF-κB-high cells: tolerant cells take ~6 weeks to dominate "
        "(" + _MAGI_TAM + ")",
    ),
)

_RESISTANT_PARAMETERS = (
    Parameter(
        "lambda_R",
        "1/day",
        0.15,
        (0.0, 10.0),
        "division rate of resistant cells",
        "stably resistant cells grow regardless of tamoxifen (assumption)",
    ),
    Parameter(
        "delta_R",
        "1/day",
        0.02,
        (0.0, 10.0),
        "death rate of resistant cells",
        "as delta_S (assumption)",
    ),
    Parameter(
        "rho",
        "1/day",
        1e-4,
        (0.0, 10.0),
        "switching T→R (stable resistance)",
        "rare genetic or stable epigenetic resistance (assumption)",
    ),
    Parameter("R0", "cells", 0.0, (0.0, 1e14), "initial resistant cells", "none at start"),
)

_TWO_STATE_TRANSITIONS = (
    Transition.of("division_S", "S divides", S=1),
    Transition.of("death_S", "S dies", S=-1),
    Transition.of("switch_S_to_T", "S becomes tolerant", S=-1, T=1),
    Transition.of("division_T", "T divides", T=1),
    Transition.of("death_T", "T dies", T=-1),
    Transition.of("revert_T_to_S", "T reverts to sensitive", T=-1, S=1),
)

_RESISTANT_TRANSITIONS = (
    Transition.of("switch_T_to_R", "T becomes stably resistant", T=-1, R=1),
    Transition.of("division_R", "R divides", R=1),
    Transition.of("death_R", "R dies", R=-1),
)

_EXPOSURES = (
    Exposure("E_tam", "tamoxifen", "EC50_tam", "h_tam"),
    Exposure("E_inh", "inhibitor", "EC50_inh", "h_inh"),
)


@njit(cache=True, error_model="numpy", inline="always")
def crowding(code, n_cells, capacity, n_initial):
    """Crowding factor g(N): 1 (code 0), 1 - N/K (1) or ln(K/N)/ln(K/N0) (2)."""
    if code == 0.0:
        return 1.0
    if code == 1.0:
        return 1.0 - n_cells / capacity
    if n_cells <= 0.0:
        return 1.0
    return np.log(capacity / n_cells) / np.log(capacity / n_initial)


@njit(cache=True, error_model="numpy", inline="always")
def _sensitive_tolerant_rates(s, t_cells, g, p, e_tam, e_inh, out):
    out[0] = p[0] * (1.0 - p[2] * e_tam) * g * s
    out[1] = (p[4] + p[6] * e_tam) * s
    out[2] = (p[8] + p[9] * e_tam) * s
    out[3] = p[1] * (1.0 - p[3] * e_tam) * (1.0 - p[12] * e_inh) * g * t_cells
    out[4] = (p[5] + p[7] * e_inh) * t_cells
    out[5] = (p[10] + p[11] * (1.0 - e_tam)) * t_cells


@njit(cache=True, error_model="numpy")
def two_state_rates(t, x, p, c, out):
    """Propensities (events/day) of the six two-state transitions."""
    e_tam = hill(c[0], p[14], p[15])
    e_inh = hill(c[1], p[16], p[17])
    g = crowding(p[20], x[0] + x[1], p[13], p[18] + p[19])
    _sensitive_tolerant_rates(x[0], x[1], g, p, e_tam, e_inh, out)


@njit(cache=True, error_model="numpy")
def three_state_rates(t, x, p, c, out):
    """Propensities (events/day) of the nine three-state transitions."""
    e_tam = hill(c[0], p[14], p[15])
    e_inh = hill(c[1], p[16], p[17])
    g = crowding(p[24], x[0] + x[1] + x[2], p[13], p[18] + p[19] + p[23])
    _sensitive_tolerant_rates(x[0], x[1], g, p, e_tam, e_inh, out)
    out[6] = p[22] * x[1]
    out[7] = p[20] * g * x[2]
    out[8] = p[21] * x[2]


@njit(cache=True, error_model="numpy", inline="always")
def _sensitive_tolerant_lane(lane, s, t_cells, g, p, e, out):
    """:func:`_sensitive_tolerant_rates` for column ``lane`` (the same operations)."""
    e_tam = e[0, lane]
    e_inh = e[1, lane]
    out[0, lane] = p[0, lane] * (1.0 - p[2, lane] * e_tam) * g * s
    out[1, lane] = (p[4, lane] + p[6, lane] * e_tam) * s
    out[2, lane] = (p[8, lane] + p[9, lane] * e_tam) * s
    out[3, lane] = (
        p[1, lane] * (1.0 - p[3, lane] * e_tam) * (1.0 - p[12, lane] * e_inh) * g * t_cells
    )
    out[4, lane] = (p[5, lane] + p[7, lane] * e_inh) * t_cells
    out[5, lane] = (p[10, lane] + p[11, lane] * (1.0 - e_tam)) * t_cells


@njit(cache=True, error_model="numpy")
def two_state_lane_rates(t, x, p, e, out):
    """:func:`two_state_rates` for lanes: column ``lane`` of ``x``, ``p``, ``e`` (exposures
    ``E_tam``, ``E_inh``) and ``out`` is one parameter set. The crowding law is a model
    constant, the same in every column, so the loops over lanes have no branch on it."""
    code = p[20, 0]
    if code == 1.0:
        for lane in range(x.shape[1]):
            s = x[0, lane]
            t_cells = x[1, lane]
            g = 1.0 - (s + t_cells) / p[13, lane]
            _sensitive_tolerant_lane(lane, s, t_cells, g, p, e, out)
    elif code == 0.0:
        for lane in range(x.shape[1]):
            _sensitive_tolerant_lane(lane, x[0, lane], x[1, lane], 1.0, p, e, out)
    else:
        for lane in range(x.shape[1]):
            s = x[0, lane]
            t_cells = x[1, lane]
            g = crowding(code, s + t_cells, p[13, lane], p[18, lane] + p[19, lane])
            _sensitive_tolerant_lane(lane, s, t_cells, g, p, e, out)


@njit(cache=True, error_model="numpy")
def three_state_lane_rates(t, x, p, e, out):
    """:func:`three_state_rates` for lanes (see :func:`two_state_lane_rates`)."""
    code = p[24, 0]
    for lane in range(x.shape[1]):
        s = x[0, lane]
        t_cells = x[1, lane]
        r = x[2, lane]
        if code == 1.0:
            g = 1.0 - (s + t_cells + r) / p[13, lane]
        else:
            g = crowding(
                code, s + t_cells + r, p[13, lane], p[18, lane] + p[19, lane] + p[23, lane]
            )
        _sensitive_tolerant_lane(lane, s, t_cells, g, p, e, out)
        out[6, lane] = p[22, lane] * t_cells
        out[7, lane] = p[20, lane] * g * r
        out[8, lane] = p[21, lane] * r


def _gompertz_constraint(initial: tuple[str, ...]) -> tuple[Constraint, ...]:
    total = " + ".join(initial)
    return (
        Constraint(
            f"K > {total}: Gompertz crowding ln(K/N)/ln(K/N0) needs a capacity above the "
            "initial size",
            lambda p: p["K"] > sum(p[name] for name in initial),
        ),
    )


def _crowding_code(crowding: str) -> float:
    if crowding not in CROWDING_CODES:
        raise ValueError(f"`crowding` = {crowding!r}: expected one of {sorted(CROWDING_CODES)}")
    return CROWDING_CODES[crowding]


def TwoState(crowding: str = "logistic") -> Model:  # noqa: N802 - reads as a model class
    """Two-state model: sensitive ``S`` and NF-κB-high tolerant ``T`` cells.

    Parameters
    ----------
    crowding : {"logistic", "none", "gompertz"}
        Density dependence of division. ``"none"`` makes the model linear (exact matrix
        exponential solutions, branching-process results).

    Examples
    --------
    >>> from tolsim.models import TwoState
    >>> model = TwoState(crowding="none")
    >>> model.states, model.linear
    (('S', 'T'), True)
    """
    code = _crowding_code(crowding)
    return Model(
        name="TwoState",
        states=("S", "T"),
        parameters=_TWO_STATE_PARAMETERS,
        transitions=_TWO_STATE_TRANSITIONS,
        rates=two_state_rates,
        lane_rates=two_state_lane_rates,
        initial=(("S", "S0"), ("T", "T0")),
        exposures=_EXPOSURES,
        constants=(code,),
        options=(("crowding", crowding),),
        linear=crowding == "none",
        tolerant_states=("T",),
        constraints=_gompertz_constraint(("S0", "T0")) if crowding == "gompertz" else (),
    )


def ThreeState(crowding: str = "logistic") -> Model:  # noqa: N802 - reads as a model class
    """Three-state model: :func:`TwoState` plus stably resistant cells ``R`` (T→R at ``rho``).

    Resistant cells divide at ``lambda_R g`` and die at ``delta_R`` whatever the drugs.
    """
    code = _crowding_code(crowding)
    return Model(
        name="ThreeState",
        states=("S", "T", "R"),
        parameters=_TWO_STATE_PARAMETERS + _RESISTANT_PARAMETERS,
        transitions=_TWO_STATE_TRANSITIONS + _RESISTANT_TRANSITIONS,
        rates=three_state_rates,
        lane_rates=three_state_lane_rates,
        initial=(("S", "S0"), ("T", "T0"), ("R", "R0")),
        exposures=_EXPOSURES,
        constants=(code,),
        options=(("crowding", crowding),),
        linear=crowding == "none",
        tolerant_states=("T",),
        constraints=_gompertz_constraint(("S0", "T0", "R0")) if crowding == "gompertz" else (),
    )
