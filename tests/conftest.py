import os

# The CUDA kernels are tested under numba's CUDA simulator, which must be chosen before numba
# is imported. TOLSIM_TEST_CUDA=device runs the same tests on a real GPU instead.
if os.environ.get("TOLSIM_TEST_CUDA") != "device":
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import numpy as np
import pytest
from hypothesis import settings

import tolsim

# CI runs the same examples every time (a failure there reproduces); local runs explore.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def two_state():
    return tolsim.models.TwoState()


def hill(c, ec50, h):
    c = np.asarray(c, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(c > 0, 1.0 / (1.0 + (ec50 / np.where(c > 0, c, 1.0)) ** h), 0.0)


def two_state_rhs(y, p, c_tam, c_inh, crowding="logistic"):
    """The two-state equations exactly as issue 2 writes them (independent of the kernels)."""
    s, t = y
    e_tam = hill(c_tam, p["EC50_tam"], p["h_tam"])
    e_inh = hill(c_inh, p["EC50_inh"], p["h_inh"])
    n = s + t
    if crowding == "logistic":
        g = 1 - n / p["K"]
    elif crowding == "gompertz":
        g = np.log(p["K"] / n) / np.log(p["K"] / (p["S0"] + p["T0"]))
    else:
        g = 1.0
    ds = (
        p["lambda_S"] * (1 - p["eps_S"] * e_tam) * g
        - p["delta_S"]
        - p["kappa_S"] * e_tam
        - p["mu_0"]
        - p["mu_E"] * e_tam
    ) * s + (p["nu_0"] + p["nu_off"] * (1 - e_tam)) * t
    dt = (
        p["lambda_T"] * (1 - p["eps_T"] * e_tam) * (1 - p["iota"] * e_inh) * g
        - p["delta_T"]
        - p["kappa_T"] * e_inh
        - p["nu_0"]
        - p["nu_off"] * (1 - e_tam)
    ) * t + (p["mu_0"] + p["mu_E"] * e_tam) * s
    return np.array([ds, dt])


def linear_two_state_matrix(p, c_tam, c_inh):
    """Rate matrix of the linear (crowding='none') two-state model for constant drugs."""
    e_tam = float(hill(c_tam, p["EC50_tam"], p["h_tam"]))
    e_inh = float(hill(c_inh, p["EC50_inh"], p["h_inh"]))
    switch = p["mu_0"] + p["mu_E"] * e_tam
    revert = p["nu_0"] + p["nu_off"] * (1 - e_tam)
    a_ss = p["lambda_S"] * (1 - p["eps_S"] * e_tam) - p["delta_S"] - p["kappa_S"] * e_tam - switch
    a_tt = (
        p["lambda_T"] * (1 - p["eps_T"] * e_tam) * (1 - p["iota"] * e_inh)
        - p["delta_T"]
        - p["kappa_T"] * e_inh
        - revert
    )
    return np.array([[a_ss, revert], [switch, a_tt]])


def inhibitor_after_withdrawal():
    """28 days of tamoxifen, 12 off, 20 of a strong NF-kB inhibitor from day 40, 40 off: with
    ``mu_E = 1e-3, kappa_T = 2, T0 = 1e4`` the burden regrows after withdrawal and falls from
    day 40, a level step on every daily grid (the recurrence interpolant's hard case)."""
    return tolsim.Schedule.from_phases(
        [
            {"days": 28, "tamoxifen": 1.0},
            {"days": 12},
            {"days": 20, "inhibitor": 50.0},
            {"days": 40},
        ]  # fmt: skip
    )
