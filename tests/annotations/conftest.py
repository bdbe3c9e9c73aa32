"""Control-plane fixtures: every DB test runs on SQLite and on the PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from annotations.app import ControlPlane
from annotations.control.db import ControlDB
from annotations.control.tokens import create_token
from storage.base import Store
from tests.aggregator.conftest import TIERS
from tests.annotations.flag_server import LiveServer
from tests.backends import StoreOpener
from tests.postgres import (  # own_pg*: a server of the module's own, which a test may stop
    fresh_schema,
    own_pg,  # noqa: F401
    own_pg_server,  # noqa: F401
    own_pg_url,  # noqa: F401
)


# PostgreSQL cases make a schema on the server each: the fast lane runs the SQLite ones.
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def control_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty control DB: SQLite in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'control.db'}"
        return
    with fresh_schema(request.getfixturevalue("pg_database_url"), "t") as url:
        yield url


@pytest.fixture
def control(control_url: str, tmp_path: Path) -> Iterator[ControlPlane]:
    """An empty control plane (a module may override it with one holding its own data)."""
    plane = ControlPlane.open(control_url, tmp_path)
    yield plane
    plane.close()


@pytest.fixture
def tokens(control: ControlPlane) -> dict[str, dict[str, str]]:
    """Authorization headers for one token of each role."""
    headers = {}
    for role in ("viewer", "operator", "admin"):
        _, token = create_token(control.db, f"{role}-1", role)
        headers[role] = {"Authorization": f"Bearer {token}"}
    return headers


@pytest.fixture
def control_db(control_url: str, tmp_path: Path) -> Iterator[ControlDB]:
    db = ControlDB.open(control_url, tmp_path)
    yield db
    db.close()


@pytest.fixture
def server(control: ControlPlane) -> Iterator[LiveServer]:
    """The control app over the test module's own `control` plane, served on a free port from a
    background thread until the test ends (for the blocking SDK and CLI)."""
    live = LiveServer(control)
    live.start()
    yield live
    live.close()


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An embedded store with the aggregator tests' tiers, for the judges of changes."""
    opener = StoreOpener(request, "embedded", tmp_path, TIERS)
    yield opener()
    opener.close()
