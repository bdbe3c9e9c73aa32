"""PostgreSQL for tests. The shared server on 127.0.0.1:5432: started when it is down (a failure,
never a skip, when it cannot be), a fresh database per test run, and a fresh schema per use; it is
never stopped. And a server of a test's own (`own_pg`), which a test may stop and start again."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from tests.launcher import ServerProcess, free_port, wait_for

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
    try:
        wait_for(_pg_reachable, timeout_s=30)
    except AssertionError:
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
# PostgreSQL refuses to run as root: as root, its processes run as the `postgres` user.
_OWNER = "postgres" if os.geteuid() == 0 else None
# The postmaster's signal for each shutdown mode of `pg_ctl stop -m`.
_SHUTDOWN = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}


def _pg_bin(name: str) -> str:
    """The newest installed PostgreSQL's `name` (initdb, postgres)."""
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
    _server: ServerProcess | None = field(default=None, init=False, repr=False)

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
        as_owner = ["runuser", "-u", _OWNER, "--"] if _OWNER else []
        done = subprocess.run(
            [*as_owner, _pg_bin("initdb"), "--no-sync", "--auth=trust", "--username=postgres",
             "--encoding=UTF8", "-D", str(self.directory / "data")],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}{done.stderr}")
        return self

    def start(self) -> OwnPostgres:
        """Start the postmaster in the foreground and wait until it accepts connections."""
        self._server = ServerProcess(
            "postgres",
            [_pg_bin("postgres"), "-D", str(self.directory / "data"), "-p", str(self.port),
             "-k", str(self.directory), "-c", "listen_addresses=127.0.0.1",
             "-c", "max_connections=40", "-c", "shared_buffers=16MB"],
            self.log_path, self._accepts, timeout_s=60, user=_OWNER,
        ).start()  # fmt: skip
        return self

    def stop(self, mode: str = "immediate") -> None:
        """Stop it: `immediate` kills every backend at once (clients see the connection drop),
        `fast` ends their sessions first (clients get 57P01, administrator command)."""
        if self._server is not None:
            self._server.stop(_SHUTDOWN[mode], timeout_s=60)

    def running(self) -> bool:
        return self._server is not None and self._server.running() and self._accepts()

    def _accepts(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False


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
        own_pg_server.stop()  # one that does not answer
        own_pg_server.start()
    return own_pg_server


@pytest.fixture
def own_pg_url(own_pg: OwnPostgres) -> str:
    """A fresh, empty database on the module's own server."""
    return own_pg.create_database()
