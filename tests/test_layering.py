"""Layers point one way: the composition root imports the packages, never the reverse, and
storage is the bottom."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.imports import PACKAGES, ROOT, imported_by, modules, packages_imported_by

ALLOWED = {
    "storage": set(),
    "collector": {"storage"},
    "aggregator": {"storage"},
    "annotations": {"storage", "aggregator"},
    "dashboards": {"storage", "aggregator", "annotations"},
}


@pytest.mark.slow
@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package: str):
    assert packages_imported_by(package) <= ALLOWED[package]


@pytest.mark.slow
def test_the_tests_never_import_the_benchmarks():
    # The benchmarks build on the tests' harness; the reverse would make a test depend on them.
    found = imported_by(modules(ROOT / "tests"))
    assert not {m for m in found if m.partition(".")[0] == "bench"}


MAX_MODULE_LINES = 450
ANNOTATIONS_TOP_MODULES = 12


def our_modules() -> list[Path]:
    """Every module of the packages, the tests and the benchmarks (the peers' checkouts under
    bench/.peers are not ours)."""
    roots = [ROOT / name for name in (*PACKAGES, "tests", "bench")]
    return [
        path
        for root in roots
        for path in sorted(root.rglob("*.py"))
        if ".peers" not in path.relative_to(ROOT).parts
    ]


def test_no_module_is_longer_than_450_lines():
    lengths = {
        path.relative_to(ROOT): len(path.read_bytes().splitlines()) for path in our_modules()
    }
    assert {str(path): n for path, n in lengths.items() if n > MAX_MODULE_LINES} == {}


def test_annotations_keeps_at_most_12_modules_directly_in_its_folder():
    assert len(list((ROOT / "annotations").glob("*.py"))) <= ANNOTATIONS_TOP_MODULES
