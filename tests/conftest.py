"""Fixtures shared by every test package."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

from tests.backends import influxd  # noqa: F401 (the influxd fixture, for every package)
from tests.postgres import pg_database_url  # noqa: F401 (the PostgreSQL fixture, likewise)
from tests.victoria import victoria, victoria_server  # noqa: F401 (VictoriaMetrics, likewise)


@pytest.fixture(autouse=True)
def blockbuster(request: pytest.FixtureRequest) -> Iterator[BlockBuster | None]:
    """Fail any blocking call (file, socket, sleep) made on the event loop of an async test."""
    if not inspect.iscoroutinefunction(request.function):
        yield None
        return
    with blockbuster_ctx() as bb:
        yield bb
