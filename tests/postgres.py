"""PostgreSQL for tests. The shared server on 127.0.0.1:5432: started when it is down (a failure,
never a skip, when it cannot be), a fresh database per test run, and a fresh schema per use; it is
never stopped. And a server of a test's own (`own_pg`), which a test may stop and start again."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from tests.running import free_port

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


PG_BIN_ROOT = Path("/usr/lib/postgresql")


def _pg_bin(name: str) -> str:
    """The newest installed PostgreSQL's `name` (initdb, pg_ctl)."""
    versions = (
        sorted(PG_BIN_ROOT.iterdir(), key=lambda p: int(p.name)) if PG_BIN_ROOT.is_dir() else []
    )
    if not versions:
        raise RuntimeError(
            "PostgreSQL is not installed (no /usr/lib/postgresql): install postgresql"
        )
    return str(versions[-1] / "bin" / name)


@dataclass
class OwnPostgres:
    """A PostgreSQL server of its own, on a free port of 127.0.0.1, its files in `directory`.
    Unlike the shared server on 5432 (which other tests use at the same time), it may be stopped
    and started again mid-test. As root, it runs as the `postgres` user."""

    directory: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def create_database(self) -> str:
        """A new, empty database's URL."""
        name = f"shipboard_{secrets.token_hex(6)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.database_url(name)

    @property
    def log_path(self) -> Path:
        return self.directory / "postgres.log"

    def init(self) -> OwnPostgres:
        self._run(_pg_bin("initdb"), "--no-sync", "--auth=trust", "--username=postgres",
                  "--encoding=UTF8", "-D", str(self.directory / "data"))  # fmt: skip
        return self

    def start(self) -> OwnPostgres:
        """Start and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
            " -c max_connections=40 -c shared_buffers=16MB"
        )
        self._run(_pg_bin("pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.directory / "data"),
                  "-l", str(self.log_path), "-o", options)  # fmt: skip
        return self

    def stop(self, mode: str = "immediate") -> None:
        """Stop it: `immediate` kills every backend at once (clients see the connection drop),
        `fast` ends their sessions first (clients get 57P01, administrator command)."""
        self._run(_pg_bin("pg_ctl"), "stop", "-w", "-t", "60", "-m", mode,
                  "-D", str(self.directory / "data"))  # fmt: skip

    def running(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def _run(self, *argv: str) -> None:
        as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*as_owner, *argv], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}{log[-2000:]}")


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    """A fresh PostgreSQL server of its own, started; stopped and its files removed afterwards.
    Its files live in a temporary directory of /tmp that the `postgres` user can reach (a
    pytest tmp_path is private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="shipboard-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    server = OwnPostgres(directory)
    try:
        server.init().start()
        yield server
    finally:
        with contextlib.suppress(RuntimeError):
            server.stop("fast")
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def own_pg_server() -> Iterator[OwnPostgres]:
    """A PostgreSQL server of the test module's own (its tests may stop and start it)."""
    with own_postgres() as server:
        yield server


@pytest.fixture
def own_pg(own_pg_server: OwnPostgres) -> OwnPostgres:
    """The module's own server, running when the test starts (a failed test may have left it
    stopped)."""
    if not own_pg_server.running():
        own_pg_server.start()
    return own_pg_server


@pytest.fixture
def own_pg_url(own_pg: OwnPostgres) -> str:
    """A fresh, empty database on the module's own server."""
    return own_pg.create_database()
