"""Fixtures of the storage tests: the configured tiers and stores in `tmp_path`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from storage.records import Tier

StoreFactory = Callable[..., EmbeddedStore]


@pytest.fixture
def tiers() -> tuple[Tier, ...]:
    return Settings().tiers()


@pytest.fixture
def open_store(tmp_path: Path, tiers: tuple[Tier, ...]) -> Iterator[StoreFactory]:
    """Opens stores on `tmp_path / "data"` (or a given path) and closes them after the test."""
    opened: list[EmbeddedStore] = []

    def factory(path: Path | None = None, **options: object) -> EmbeddedStore:
        store = EmbeddedStore(path or tmp_path / "data", tiers, **options)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield factory
    for store in reversed(opened):
        store.close()
