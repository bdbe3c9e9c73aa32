"""Layers point one way: the composition root imports the packages, never the reverse, and
storage is the bottom."""

from __future__ import annotations

import pytest

from tests.imports import ROOT, imported_by, modules, packages_imported_by

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


def test_the_tests_never_import_the_benchmarks():
    # The benchmarks build on the tests' harness; the reverse would make a test depend on them.
    found = imported_by(modules(ROOT / "tests"))
    assert not {m for m in found if m.partition(".")[0] == "bench"}
