"""Every docstring example in the public modules runs and prints what it says."""

import doctest
import importlib

import pytest

MODULES = [
    "rewards.detection",
    "rewards.panoptic",
    "rewards.captioning",
    "rewards.colorization",
    "rewards.adapters.torch",
    "rewards.adapters.jax",
    "rewards.adapters.box_tokens",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
