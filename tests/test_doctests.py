"""Docstring examples of the public modules run and give what they show."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "name",
    [
        "tolsim.simulate",
        "tolsim.recurrence",
        "tolsim.models.base",
        "tolsim.models.tolerance",
        "tolsim.datasets",
        "tolsim.stochastic",
        "tolsim.branching",
        "tolsim.data",
        "tolsim.observe",
        "tolsim.fit",
        "tolsim.predict",
        "tolsim.optimize",
    ],
)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
