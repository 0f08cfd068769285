"""tolsim: sensitive and NF-κB-high tamoxifen-tolerant cancer cells under dosing schedules.

The pieces, composed by :func:`simulate`: a :class:`~tolsim.models.Model` (states,
transitions, one numba rate function), a :class:`Schedule` (what drug is given when), the
numba kernels in :mod:`tolsim.kernels`, and analyses such as :func:`time_to_recurrence`.
"""

__version__ = "0.1.0"

from tolsim import data, datasets, design, models, observe
from tolsim.data import Measurements, read_measurements
from tolsim.fit import FitResult, fit, likelihood_ratio_test
from tolsim.info import show_versions
from tolsim.optimize import optimize_schedule
from tolsim.predict import predict
from tolsim.recurrence import time_to_recurrence
from tolsim.schedule import PK, OralDoses, Pellet, Phase, Schedule
from tolsim.simulate import SolverError, simulate, simulate_arms
from tolsim.stochastic import extinction_probability, recurrence_probability
from tolsim.sweep import sweep

__all__ = [
    "FitResult",
    "Measurements",
    "PK",
    "OralDoses",
    "Pellet",
    "Phase",
    "Schedule",
    "SolverError",
    "__version__",
    "data",
    "datasets",
    "design",
    "extinction_probability",
    "fit",
    "likelihood_ratio_test",
    "models",
    "observe",
    "optimize_schedule",
    "predict",
    "read_measurements",
    "recurrence_probability",
    "simulate",
    "simulate_arms",
    "show_versions",
    "sweep",
    "time_to_recurrence",
]


def __getattr__(name: str):
    """``tolsim.plot`` on first use: matplotlib is imported only by those who plot."""
    if name == "plot":
        import importlib

        return importlib.import_module("tolsim.plot")
    raise AttributeError(f"module 'tolsim' has no attribute {name!r}")
