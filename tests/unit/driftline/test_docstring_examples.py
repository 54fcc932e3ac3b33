"""Every example in a module docstring runs and prints what it shows (docs that cannot rot)."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil

import pytest

PACKAGES = ("driftline", "driftline.schemas", "driftline.stream", "driftline.consumers")
"""The top-level packages (pyproject maps schemas/, stream/ and consumers/ under driftline)."""


def _modules_with_examples() -> list[str]:
    names = set()
    infos = [
        info
        for package in PACKAGES
        for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + ".")
    ]
    for info in infos:
        spec = importlib.util.find_spec(info.name)
        origin = spec.origin if spec else None
        if origin and origin.endswith(".py"):
            with open(origin, encoding="utf-8") as fh:
                if ">>> " in fh.read():
                    names.add(info.name)
    return sorted(names)


MODULES = _modules_with_examples()


def test_the_examples_are_found() -> None:
    assert "driftline.schemas.codec" in MODULES and "driftline.stream.drift.exact_sum" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
