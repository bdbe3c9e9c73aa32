"""A real VictoriaMetrics (Debian's `victoria-metrics`) on a free loopback port with its files in
a temp dir, started as Shipboard's docs ask: `-dedup.minScrapeInterval=1ms` (a point written
twice is one point) and `-search.latencyOffset=0s` (the newest points are searchable)."""

from __future__ import annotations

import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.launcher import HOST, ServerProcess, free_port

FLAGS = ("-dedup.minScrapeInterval=1ms", "-search.latencyOffset=0s", "-retentionPeriod=10y")
# A test's store: every write searchable on return, the newest buckets too, listings fresh.
STORE_OPTIONS: dict[str, Any] = {
    "listing_ttl_s": 0.0,
    "latency_offset_s": 0.0,
    "flush_writes": True,
}


class VictoriaMetrics:
    """One single-node process; `stop()` and `start()` again keep its port and data."""

    def __init__(self, home: Path) -> None:
        binary = shutil.which("victoria-metrics")
        if binary is None:
            pytest.fail("victoria-metrics is missing: scripts/test installs Debian's package")
        self.binary = binary
        self.home = home
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.server: ServerProcess | None = None

    def start(self) -> None:
        argv = [
            self.binary,
            f"-storageDataPath={self.home / 'data'}",
            f"-httpListenAddr={HOST}:{self.port}",
            *FLAGS,
        ]
        self.server = ServerProcess(
            "victoria-metrics", argv, self.home / "victoria-metrics.log", self._answers
        ).start()

    def _answers(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
            return bool(response.status == 200)

    def stop(self) -> None:
        """Stop the process by its PID (SIGTERM, then SIGKILL)."""
        if self.server is not None:
            self.server.stop()
        self.server = None

    def forget_everything(self) -> None:
        """Delete every series, so a test starts on an empty server."""
        match = urllib.parse.urlencode({"match[]": '{__name__=~".+"}'})
        url = f"{self.url}/api/v1/admin/tsdb/delete_series?{match}"
        urllib.request.urlopen(url, b"", timeout=10).close()

    def get(self, path: str, **params: str) -> bytes:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:
            data: bytes = response.read()
            return data


@pytest.fixture(scope="session")
def victoria_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """One VictoriaMetrics for the test run."""
    server = VictoriaMetrics(tmp_path_factory.mktemp("victoria-metrics"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def victoria(victoria_server: VictoriaMetrics) -> VictoriaMetrics:
    """The test run's VictoriaMetrics, emptied for this test."""
    victoria_server.forget_everything()
    return victoria_server
