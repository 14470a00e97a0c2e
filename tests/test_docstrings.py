"""Every docstring example in the public modules runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest

FRAMEWORK = {"rewards.adapters.torch": "torch", "rewards.adapters.jax": "jax", "rewards.adapters.trl": "trl"}


def _public_modules() -> list[str]:
    import rewards.adapters  # mapped from adapters/ in the repository: walked on its own

    names = ["rewards", "rewards.adapters"]
    for package in (rewards, rewards.adapters):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                names.append(info.name)
    return sorted(set(names))


MODULES = _public_modules()


def test_public_modules_are_found():
    assert {"rewards.detection", "rewards.adapters.torch", "rewards.adapters.box_tokens"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name in FRAMEWORK:
        pytest.importorskip(FRAMEWORK[name])
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    if name not in ("rewards.adapters",):
        assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
