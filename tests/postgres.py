"""The PostgreSQL server on 127.0.0.1:5432 for tests: started when it is down (a failure, never a
skip, when it cannot be), a fresh database per test run, and a fresh schema per use."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

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


@contextmanager
def fresh_schema(database_url: str, prefix: str) -> Iterator[str]:
    """A URL of `database_url` whose search path is a new, empty schema, dropped afterwards."""
    schema = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{database_url}?options=-csearch_path%3D{schema}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
