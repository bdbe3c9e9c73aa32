"""Control-plane fixtures: every DB test runs on SQLite and on the PostgreSQL server."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from annotations.app import ControlPlane
from annotations.db import ControlDB
from tests.annotations.flag_server import LiveServer

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _pg_reachable() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def _start_pg() -> None:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        pytest.fail("PostgreSQL is not installed (no /etc/postgresql): install postgresql")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        check=False,
        capture_output=True,
        timeout=60,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _pg_reachable():
            return
        time.sleep(0.2)
    pytest.fail("PostgreSQL on 127.0.0.1:5432 is down and could not be started")


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL server for this test run, dropped at the end."""
    if not _pg_reachable():
        _start_pg()
    name = f"shipboard_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def control_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty control DB: SQLite in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'control.db'}"
        return
    base: str = request.getfixturevalue("pg_database_url")
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{base}?options=-csearch_path%3D{schema}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


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
