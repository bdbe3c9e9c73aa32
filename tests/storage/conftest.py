"""Fixtures of the storage tests: the configured tiers and stores in `tmp_path`."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shipboard.settings import Settings
from storage.embedded import EmbeddedStore
from storage.embedded_reader import EmbeddedReader
from storage.records import Tier
from tests.backends import BACKENDS, StoreOpener

StoreFactory = Callable[..., EmbeddedStore]
ReaderFactory = Callable[..., EmbeddedReader]


@pytest.fixture
def tiers() -> tuple[Tier, ...]:
    return Settings().tiers()


@pytest.fixture
def open_store(tmp_path: Path, tiers: tuple[Tier, ...]) -> Iterator[StoreFactory]:
    """Opens stores on `tmp_path / "data"` (or a given path), entered (their maintenance
    thread running), and closes them after the test, last opened first."""
    with contextlib.ExitStack() as stack:

        def factory(path: Path | None = None, **options: object) -> EmbeddedStore:
            store = EmbeddedStore(path or tmp_path / "data", tiers, **options)  # type: ignore[arg-type]
            return stack.enter_context(store)

        yield factory


@pytest.fixture
def open_reader(tmp_path: Path, tiers: tuple[Tier, ...]) -> Iterator[ReaderFactory]:
    """Opens read-only followers of `tmp_path / "data"` (or a given path)."""
    opened: list[EmbeddedReader] = []

    def factory(path: Path | None = None) -> EmbeddedReader:
        reader = EmbeddedReader(path or tmp_path / "data", tiers)
        opened.append(reader)
        return reader

    yield factory
    for reader in opened:
        reader.close()


@pytest.fixture(params=BACKENDS)
def open_any_store(
    request: pytest.FixtureRequest, tmp_path: Path, tiers: tuple[Tier, ...]
) -> Iterator[StoreOpener]:
    """Opens stores of each backend in turn (embedded in tmp_path, or a fresh database on the
    test run's influxd); reopening gives the same data. Closes them after the test."""
    opener = StoreOpener(request, request.param, tmp_path, tiers)
    yield opener
    opener.close()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the power-loss tests' cut copies go: tmpfs when there is one. The cuts are
    simulated on copies, so the disk's own fsyncs (hundreds of cases, each opening and
    checkpointing a store) would add nothing but time."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path_factory.mktemp("cuts")
        return
    directory = Path(tempfile.mkdtemp(prefix="power-loss-", dir=shm))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)
