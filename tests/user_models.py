"""A model defined the way a user defines one: a top-level numba rate function and a Model.

Two populations ``A`` and ``B`` that divide, die and switch, with optional logistic crowding
on a shared capacity and a drug that adds to A's death rate. Special cases give closed-form
solutions (exponential and logistic growth, pure switching, a stiff fast-switching system).
"""

import numpy as np
from numba import njit

from tolsim.models import Model, Parameter, Transition


@njit(cache=True)
def growth_switch_rates(t, x, p, c, out):
    g = 1.0 - (x[0] + x[1]) / p[6] if p[10] == 1.0 else 1.0
    out[0] = p[0] * g * x[0]  # division of A
    out[1] = (p[1] + p[7] * c[0]) * x[0]  # death of A (drug "tamoxifen" kills A)
    out[2] = p[4] * x[0]  # A -> B
    out[3] = p[5] * x[1]  # B -> A
    out[4] = p[2] * g * x[1]  # division of B
    out[5] = p[3] * x[1]  # death of B


def GrowthSwitch(logistic: bool = False) -> Model:  # noqa: N802
    rate = (0.0, 100.0)
    return Model(
        name="GrowthSwitch",
        states=("A", "B"),
        parameters=(
            Parameter("birth_A", "1/day", 0.3, rate),
            Parameter("death_A", "1/day", 0.1, rate),
            Parameter("birth_B", "1/day", 0.2, rate),
            Parameter("death_B", "1/day", 0.05, rate),
            Parameter("switch_AB", "1/day", 0.01, (0.0, 1e6)),
            Parameter("switch_BA", "1/day", 0.02, (0.0, 1e6)),
            Parameter("capacity", "cells", 1e6, (1.0, 1e15)),
            Parameter("kill_A", "1/(day µM)", 0.0, rate),
            Parameter("A0", "cells", 100.0, (0.0, 1e15)),
            Parameter("B0", "cells", 0.0, (0.0, 1e15)),
        ),
        transitions=(
            Transition.of("division_A", A=1),
            Transition.of("death_A", A=-1),
            Transition.of("switch_AB", A=-1, B=1),
            Transition.of("switch_BA", A=1, B=-1),
            Transition.of("division_B", B=1),
            Transition.of("death_B", B=-1),
        ),
        rates=growth_switch_rates,
        initial=(("A", "A0"), ("B", "B0")),
        constants=(1.0 if logistic else 0.0,),
        options=(("logistic", logistic),),
        linear=not logistic,
        tolerant_states=("B",),
    )


@njit(cache=True)
def ageing_growth_rates(t, x, p, c, out):
    out[0] = p[0] * t * x[0]  # division of A, faster with every day (linear in A, not in t)
    out[1] = p[1] * x[0]  # death of A


def AgeingGrowth(linear: bool = False) -> Model:  # noqa: N802
    """Growth whose division rate rises with the day itself: A(t) = A0 exp(a t^2 / 2 - d t)."""
    return Model(
        name="AgeingGrowth",
        states=("A",),
        parameters=(
            Parameter("a", "1/day^2", 0.01, (0.0, 10.0)),
            Parameter("d", "1/day", 0.05, (0.0, 10.0)),
            Parameter("A0", "cells", 10.0, (0.0, 1e15)),
        ),
        transitions=(Transition.of("division_A", A=1), Transition.of("death_A", A=-1)),
        rates=ageing_growth_rates,
        initial=(("A", "A0"),),
        drugs=(),
        linear=linear,
    )


@njit(cache=True, error_model="numpy")
def root_death_rates(t, x, p, c, out):
    out[0] = p[0] * x[0]  # division
    out[1] = np.sqrt(p[1]) * x[0]  # death at the root of p[1]: NaN when p[1] < 0


def RootDeath() -> Model:  # noqa: N802
    """A rate function that gives NaN for some admissible parameters (p[1] < 0)."""
    return Model(
        name="RootDeath",
        states=("A",),
        parameters=(
            Parameter("b", "1/day", 0.3, (0.0, 10.0)),
            Parameter("s", "1/day^2", 0.01, (-1.0, 1.0)),
            Parameter("A0", "cells", 100.0, (0.0, 1e12)),
        ),
        transitions=(Transition.of("division", A=1), Transition.of("death", A=-1)),
        rates=root_death_rates,
        initial=(("A", "A0"),),
        drugs=(),
    )


@njit(cache=True, error_model="numpy")
def crowded_death_rates(t, x, p, c, out):
    out[0] = p[0] * x[0]  # division
    out[1] = (p[1] + p[2] * x[0]) * x[0]  # death, with a crowding term q A: quadratic in A


def CrowdedDeath() -> Model:  # noqa: N802
    """Declared linear, and linear at its defaults only (the crowding coefficient q is 0
    there): the linearity check must look beyond the defaults."""
    return Model(
        name="CrowdedDeath",
        states=("A",),
        parameters=(
            Parameter("b", "1/day", 0.3, (0.0, 10.0)),
            Parameter("d", "1/day", 0.1, (0.0, 10.0)),
            Parameter("q", "1/(day cell)", 0.0, (0.0, 1.0)),
            Parameter("A0", "cells", 100.0, (0.0, 1e12)),
        ),
        transitions=(Transition.of("division", A=1), Transition.of("death", A=-1)),
        rates=crowded_death_rates,
        initial=(("A", "A0"),),
        drugs=(),
        linear=True,
    )


@njit(cache=True, error_model="numpy")
def growth_switch_lane_rates_without_the_drug(t, x, p, e, out):
    """growth_switch_rates for lanes but for the drug term kill_A * c, which GrowthSwitch
    reads from the concentration (it declares no exposure) and lanes cannot."""
    for lane in range(x.shape[1]):
        g = 1.0 - (x[0, lane] + x[1, lane]) / p[6, lane] if p[10, lane] == 1.0 else 1.0
        out[0, lane] = p[0, lane] * g * x[0, lane]
        out[1, lane] = p[1, lane] * x[0, lane]
        out[2, lane] = p[4, lane] * x[0, lane]
        out[3, lane] = p[5, lane] * x[1, lane]
        out[4, lane] = p[2, lane] * g * x[1, lane]
        out[5, lane] = p[3, lane] * x[1, lane]
