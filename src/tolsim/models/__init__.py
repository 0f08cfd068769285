"""Model descriptions. Built-ins: :func:`TwoState`, :func:`ThreeState`."""

from tolsim.models.base import Exposure, Model, Parameter, Transition
from tolsim.models.tolerance import ThreeState, TwoState

__all__ = ["Exposure", "Model", "Parameter", "ThreeState", "Transition", "TwoState"]
