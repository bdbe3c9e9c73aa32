"""Layers point one way: the composition root imports the packages, never the reverse, and
storage is the bottom."""

from __future__ import annotations

import pytest

from tests.imports import packages_imported_by

ALLOWED = {
    "storage": set(),
    "collector": {"storage"},
    "aggregator": {"storage"},
    "annotations": {"storage", "aggregator"},
    "dashboards": {"storage", "aggregator", "annotations"},
}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package: str):
    assert packages_imported_by(package) <= ALLOWED[package]
