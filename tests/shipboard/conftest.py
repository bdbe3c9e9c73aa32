"""Fixtures of the end-to-end tests of `shipboard run` topologies."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.postgres import fresh_schema


@pytest.fixture
def control_schema(pg_database_url: str) -> Iterator[str]:
    """A control-DB URL on an empty schema of the test database, shared by every node."""
    with fresh_schema(pg_database_url, "nodes") as url:
        yield url
