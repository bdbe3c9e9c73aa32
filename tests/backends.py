"""A real `influxd` (Debian's influxdb 1.6) on free loopback ports with its files in a temp dir,
and stores of either backend for the tests that run on both."""

from __future__ import annotations

import contextlib
import itertools
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from storage.base import Store
from storage.embedded import EmbeddedStore
from storage.influx import InfluxConfig, InfluxStore
from storage.records import Tier
from storage.victoria import VictoriaStore
from storage.victoria_config import VictoriaConfig
from tests.launcher import HOST, ServerProcess, free_port
from tests.victoria import STORE_OPTIONS

# influxd-backed cases are end to end with a server process: the full run has them, the fast
# lane (-m "not slow") the embedded ones.
BACKENDS = ("embedded", pytest.param("influxdb", marks=pytest.mark.slow))
# VictoriaMetrics keeps milliseconds within its retention: for tests on realistic times (the
# query engine's), not the store protocol's nanosecond edge cases.
QUERY_BACKENDS = (*BACKENDS, pytest.param("victoriametrics", marks=pytest.mark.slow))


def influxd_config(home: Path, host: str, http_port: int, rpc_port: int) -> str:
    """An influxd 1.x config keeping its files under `home`, listening on `host` only: no
    reporting, WAL fsync on every write."""
    return f"""reporting-enabled = false
bind-address = "{host}:{rpc_port}"
[meta]
  dir = "{home}/meta"
  logging-enabled = false
[data]
  dir = "{home}/data"
  wal-dir = "{home}/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = false
  max-values-per-tag = 0
  max-series-per-database = 0
[monitor]
  store-enabled = false
[http]
  bind-address = "{host}:{http_port}"
  auth-enabled = false
  log-enabled = false
[continuous_queries]
  enabled = false
"""


class Influxd:
    """One influxd process; `stop()` and `start()` again keep its ports and data."""

    def __init__(self, home: Path) -> None:
        binary = shutil.which("influxd")
        if binary is None:
            pytest.fail("influxd is missing: scripts/test installs Debian's influxdb package")
        self.binary = binary
        self.home = home
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.config = home / "influxdb.conf"
        self.config.write_text(influxd_config(home, HOST, self.port, free_port()))
        self.server: ServerProcess | None = None
        self._databases = itertools.count()

    def start(self) -> None:
        self.server = ServerProcess(
            "influxd", [self.binary, "run", "-config", str(self.config)],
            self.home / "influxd.log", self._answers,
        ).start()  # fmt: skip

    def _answers(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as response:
            return bool(response.status == 204)

    def stop(self) -> None:
        """Stop the process by its PID (SIGTERM, then SIGKILL)."""
        if self.server is not None:
            self.server.stop()
        self.server = None

    def query(self, statement: str, db: str = "") -> bytes:
        body = urllib.parse.urlencode({"q": statement, "db": db, "epoch": "ns"}).encode()
        with urllib.request.urlopen(f"{self.url}/query", body, timeout=10) as response:
            data: bytes = response.read()
            return data

    def new_database(self) -> str:
        """A fresh database, so each test starts empty on the one shared server."""
        name = f"test_{next(self._databases)}"
        self.query(f'CREATE DATABASE "{name}"')
        return name


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """One influxd for the test run; tests take a fresh database with `new_database()`."""
    server = Influxd(tmp_path_factory.mktemp("influxd"))
    server.start()
    yield server
    server.stop()


class StoreOpener:
    """Opens stores of one backend on the same data (dir or database), entered (their
    background threads running), and closes them all, last opened first."""

    def __init__(
        self, request: pytest.FixtureRequest, backend: str, home: Path, tiers: Sequence[Tier]
    ) -> None:
        self.backend = backend
        self._home = home
        self._tiers = tiers
        self._stack = contextlib.ExitStack()
        self._influx: InfluxConfig | None = None
        self._victoria: VictoriaConfig | None = None
        if backend == "influxdb":
            server: Influxd = request.getfixturevalue("influxd")
            self._influx = InfluxConfig(server.url, api="v1", database=server.new_database())
        if backend == "victoriametrics":
            self._victoria = VictoriaConfig(url=request.getfixturevalue("victoria").url)

    def __call__(self, **options: Any) -> Store:
        store: Store
        if self._victoria is not None:
            options = STORE_OPTIONS | options
            store = VictoriaStore(self._victoria, self._tiers, self._home / "spool", **options)
        elif self._influx is None:
            store = EmbeddedStore(self._home / "data", self._tiers, **options)
        else:
            # A test's writes have landed once they return: no settle time before a pass clears
            # the marks they leave.
            options = {"listing_ttl_s": 0.0, "settle_ns": 0} | options
            store = InfluxStore(self._influx, self._tiers, self._home / "spool", **options)
        self._stack.enter_context(store)
        return store

    def close(self) -> None:
        self._stack.close()


def checkpoint(store: Store) -> None:
    """Move an embedded store's head into blocks, so reads cross both; InfluxDB has no such step."""
    if isinstance(store, EmbeddedStore):
        store.checkpoint()
