"""A real `influxd` (Debian's influxdb 1.6) on free loopback ports with its files in a temp dir,
and stores of either backend for the tests that run on both."""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bench.launch import influxd_config
from storage.base import Store
from storage.embedded import EmbeddedStore
from storage.influx import InfluxConfig, InfluxStore
from storage.records import Tier

HOST = "127.0.0.1"
BACKENDS = ("embedded", "influxdb")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


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
        self.process: subprocess.Popen[bytes] | None = None
        self._databases = itertools.count()

    def start(self) -> None:
        log = open(self.home / "influxd.log", "ab")  # noqa: SIM115 (the process keeps it)
        self.process = subprocess.Popen(
            [self.binary, "run", "-config", str(self.config)], stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"influxd exited: {(self.home / 'influxd.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as response:
                    if response.status == 204:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        pytest.fail("influxd did not answer /ping within 30 s")

    def stop(self) -> None:
        """Stop the process by its PID (SIGTERM, then SIGKILL)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

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
    """Opens stores of one backend on the same data (dir or database) and closes them all."""

    def __init__(
        self, request: pytest.FixtureRequest, backend: str, home: Path, tiers: Sequence[Tier]
    ) -> None:
        self.backend = backend
        self._home = home
        self._tiers = tiers
        self._opened: list[Store] = []
        self._influx: InfluxConfig | None = None
        if backend == "influxdb":
            server: Influxd = request.getfixturevalue("influxd")
            self._influx = InfluxConfig(server.url, api="v1", database=server.new_database())

    def __call__(self, **options: Any) -> Store:
        store: Store
        if self._influx is None:
            store = EmbeddedStore(self._home / "data", self._tiers, **options)
        else:
            # A test's writes have landed once they return: no settle time before a pass clears
            # the marks they leave.
            options = {"listing_ttl_s": 0.0, "settle_ns": 0} | options
            store = InfluxStore(self._influx, self._tiers, self._home / "spool", **options)
        self._opened.append(store)
        return store

    def close(self) -> None:
        for store in reversed(self._opened):
            store.close()


def checkpoint(store: Store) -> None:
    """Move an embedded store's head into blocks, so reads cross both; InfluxDB has no such step."""
    if isinstance(store, EmbeddedStore):
        store.checkpoint()
