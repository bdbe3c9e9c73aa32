"""A real Prometheus server (Debian's `prometheus` package) on a free loopback port with its own
data dir and config: it scrapes its own /metrics every second and remote-writes to a URL."""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.launcher import HOST, ServerProcess, free_port


def prometheus_config(port: int, remote_write_url: str, token: str = "") -> str:
    """The config a user would write: their scrape job and one remote_write URL (with the
    ingest token as a bearer credential), nothing tuned for Shipboard."""
    remote: dict[str, object] = {"url": remote_write_url}
    if token:
        remote["authorization"] = {"credentials": token}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"{HOST}:{port}"]}]}
        ],
        "remote_write": [remote],
    }
    return yaml.safe_dump(config)


class Prometheus:
    def __init__(self, home: Path, remote_write_url: str, token: str = "") -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is missing: scripts/test installs Debian's prometheus package")
        self.binary = binary
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        config = home / "prometheus.yml"
        config.write_text(prometheus_config(self.port, remote_write_url, token))
        command = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address={HOST}:{self.port}",
        ]
        self.server = ServerProcess("prometheus", command, home / "prometheus.log", self._ready)

    def _ready(self) -> bool:
        with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as response:
            return bool(response.status == 200)

    def start(self) -> Prometheus:
        self.server.start()
        return self

    def stop(self) -> int | None:
        return self.server.stop()

    def output(self) -> str:
        return self.server.output()
